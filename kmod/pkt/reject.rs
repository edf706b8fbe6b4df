// SPDX-License-Identifier: GPL-2.0

//! The REJECT target's answers (nf_reject_ipv4.c, nf_reject_ipv6.c, as
//! nft_reject_inet.c picks them): a TCP RST or an ICMP/ICMPv6 destination
//! unreachable.

use conntrack::wire::{icmpv4, icmpv6};
use conntrack::{ipproto, Family};
use nat::rule::RejectWith;
use rfw_abi::rules_stats;

use super::meta::Pkt;
use crate::rules::RulesNet;

/// Sends the REJECT answer; the packet itself is dropped by the caller.
pub(super) fn reject(p: &Pkt<'_>, with: RejectWith, rules: &RulesNet) {
    rules.count(rules_stats::Counter::Rejected);
    let tcp = p.proto == ipproto::TCP;
    // These build and send a new packet and leave the hook's alone.
    match (p.family, with) {
        (Family::Ipv4, RejectWith::TcpReset) if tcp => p.state.send_reset4(p.skb),
        (Family::Ipv6, RejectWith::TcpReset) if tcp => p.state.send_reset6(p.skb),
        (Family::Ipv4, w) => {
            let code = match w {
                RejectWith::NetUnreachable => icmpv4::NET_UNREACH,
                RejectWith::HostUnreachable => icmpv4::HOST_UNREACH,
                RejectWith::ProtoUnreachable => icmpv4::PROT_UNREACH,
                RejectWith::AdminProhibited => icmpv4::PKT_FILTERED,
                _ => icmpv4::PORT_UNREACH,
            };
            p.state.send_unreach4(p.skb, code)
        }
        (Family::Ipv6, w) => {
            let code = match w {
                RejectWith::NetUnreachable => icmpv6::NOROUTE,
                RejectWith::AdminProhibited => icmpv6::ADM_PROHIBITED,
                RejectWith::HostUnreachable => icmpv6::ADDR_UNREACH,
                _ => icmpv6::PORT_UNREACH,
            };
            p.state.send_unreach6(p.skb, code)
        }
    }
}
