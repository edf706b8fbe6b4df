// SPDX-License-Identifier: GPL-2.0

//! The fast path for established flows (nftables' flowtable:
//! nf_flow_table_ip.c, nft_flow_offload.c).
//!
//! A filter FORWARD rule with `--offload` (non-terminal, as `flow add
//! @ft`) marks the connection of a packet it matches for offload, if the
//! connection is established in both directions (a reply was seen; TCP in
//! ESTABLISHED), is TCP or UDP, and the packet is accepted at FORWARD
//! ([`capture`]). Every packet of the connection that passes FORWARD then
//! leaves its direction's route there (held: `sys::dst::Dst`), with the
//! device it arrived on and the route's MTU; once both directions have
//! one, the connection is offloaded.
//!
//! From then on [`Fast`], a netdev ingress hook on each device of the
//! namespace (registered while its ruleset has an `--offload` rule, as
//! nftables hooks a flowtable's devices: `sys::netfilter::DevHooks`),
//! looks each TCP or UDP packet up by its tuple before the IP layer sees
//! it, and for an offloaded connection applies its NAT, takes one from the
//! TTL or hop limit, counts the packet and refreshes the connection's
//! timeout, and sends it on the cached route to the route's next hop
//! (`neigh_xmit`): no `ip_rcv`, no routing, no PRE_ROUTING, FORWARD or
//! POST_ROUTING hook, no rules. Since it runs before `ip_rcv`, it checks
//! what that would: the frame is for this host, the IPv4 header's
//! checksum and length fields are right, and link-layer padding is
//! trimmed. What it cannot do exactly goes the normal way, which handles
//! the packet as any other (counted as `offload_punted`): IPv4 options, a
//! bad IPv4 header checksum, a TTL of 1, a packet larger than the route's
//! MTU (the normal path sends the ICMP that PMTU discovery needs), one
//! that arrived on another device than its direction's, no memory to trim
//! it or make its header writable. Fragments go the normal way uncounted
//! (defragmentation comes after ingress), as do VLAN and PPPoE frames.
//!
//! The connection leaves the fast path (its record goes, with the route
//! references; counted by reason in `fwctl ct stats`):
//! * on TCP FIN or RST, which the normal path then tracks (`offload_end_tcp`;
//!   window checks are liberal from the offload on, as the flowtable's
//!   `flow_offload_fixup_tcp` makes them, since the tracker did not see
//!   the offloaded segments);
//! * when a route is obsolete (`dst_check`: a route change, an address
//!   change; `offload_end_route`) or a device it uses goes down or away
//!   (`offload_end_device`, from the device notifier);
//! * when a packet meets a ruleset other than the one whose rule offloaded
//!   it (`offload_end_ruleset`): the normal path decides again, and a rule
//!   of the new ruleset may offload it again;
//! * when the connection is deleted or flushed, or MASQUERADE's address
//!   goes (`offload_end_deleted`), or it times out (`offload_end_expired`).
//!
//! As with nftables' flowtable, offloaded packets skip everything after
//! the offload rule: later rules and their counters, LOG, the mangle and
//! nat tables' rules, other modules' hooks at FORWARD and POST_ROUTING,
//! and the kernel's forwarding path (ICMP redirects, IPsec policy checks:
//! a route through an IPsec bundle is never offloaded).

use ::nat::nat_core::Binding;
use ::nat::offload as fast;
use conntrack::{ipproto, CtState, Direction, Family, Status};
use kernel::alloc::flags::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, GFP_KERNEL_ACCOUNT};
use kernel::alloc::KBox;
use rfw_abi::{ct_stats, rules_stats};

use super::meta::Pkt;
use super::rewrite;
use super::slot::Ct;
use crate::ct::offload::Route;
use crate::ct::table::{self, EntryRef};
use crate::pernet::{NetRef, RfwNet};
use crate::rules::Ruleset;
use crate::sys::dst::{Dst, FastSkb};
use crate::sys::netdevice::NetDevice;
use crate::sys::netfilter::{self, FastHook, HookState};
use crate::sys::notifier::DevDown;
use crate::sys::rcu::Rcu;
use crate::sys::rtnl::Rtnl;

/// At FORWARD, after the filter table accepted `p` and an `--offload` rule
/// matched it: marks the connection for offload under `set`'s generation
/// and records the route of `p`'s direction.
pub(super) fn capture(rn: &RfwNet, rcu: &Rcu, set: &Ruleset, p: &Pkt<'_>, c: &Ct<'_>) {
    if c.state != CtState::Established || !matches!(p.proto, ipproto::TCP | ipproto::UDP) {
        return;
    }
    let t = table::get();
    let e = c.e;
    let st = e.status();
    if !st.has(Status::CONFIRMED | Status::SEEN_REPLY) || st.has(Status::DYING) {
        return;
    }
    let o = match e.offload_for(rcu, set.generation) {
        Some(o) => o,
        None => {
            // A record of an older ruleset: that offload is over, and
            // this packet starts the new one.
            if let Some(old) = e.offload(rcu).filter(|o| o.gen != set.generation) {
                e.offload_end(old, ct_stats::Counter::OffloadEndRuleset);
            }
            match e.offload_for(rcu, set.generation) {
                Some(o) => o,
                None => return,
            }
        }
    };
    if o.route(c.dir).is_some() || !e.may_offload(t) {
        return;
    }
    let v6 = p.family == Family::Ipv6;
    let (Some(dst), Some(iif)) = (Dst::of_skb(p.skb, v6), p.state.in_dev()) else {
        return;
    };
    let route = Route {
        iif: iif.ifindex(),
        oif: dst.ifindex(),
        mtu: dst.mtu(v6),
        dst,
    };
    // Charged as the entries are.
    let account = GFP_KERNEL_ACCOUNT & !GFP_KERNEL;
    let Ok(route) = KBox::new(route, GFP_ATOMIC | __GFP_NOWARN | account) else {
        return;
    };
    if o.set_route(c.dir, route) && o.announce() {
        // Offloaded now: the tracker will not see the fast path's
        // segments.
        e.set_tcp_liberal(t);
        rn.ct.count(ct_stats::Counter::Offloaded);
    }
}

/// At LOCAL_IN or POST_ROUTING, a packet of connection `c` on the normal
/// path: a fast-path record of an older ruleset ends there (the fast path
/// would end it at the connection's next packet, but its hook is gone when
/// the new ruleset offloads nothing).
pub(super) fn recheck(rcu: &Rcu, set: &Ruleset, c: &Ct<'_>) {
    if let Some(o) = c.e.offload(rcu).filter(|o| o.gen != set.generation) {
        c.e.offload_end(o, ct_stats::Counter::OffloadEndRuleset);
    }
}

/// True when the namespace's ruleset offloads (its filter table has an
/// `--offload` rule): the fast hook is registered only then.
pub(crate) fn wanted(set: &Ruleset) -> bool {
    set.offloads()
}

/// The fast path's hook (see the module docs).
pub(crate) struct Fast;

impl FastHook for Fast {
    fn run(rn: &RfwNet, rcu: &Rcu, skb: FastSkb<'_>, state: &HookState) -> netfilter::Verdict {
        match forward(rn, rcu, skb, state) {
            Ok(v) => v,
            Err(()) => netfilter::ACCEPT,
        }
    }
}

/// Bytes of the network header on that [`fast::parse`] reads.
const PARSE_BYTES: usize = 60;

/// `ETH_P_IP`, `ETH_P_IPV6`: `skb->protocol` of IPv4 and IPv6 frames.
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// The fast path proper: `Err` hands the packet to the normal path.
fn forward(
    rn: &RfwNet,
    rcu: &Rcu,
    mut skb: FastSkb<'_>,
    state: &HookState,
) -> Result<netfilter::Verdict, ()> {
    // Netdev ingress: before `ip_rcv`, so nothing was checked yet. Frames
    // for other hosts (a device in promiscuous mode), broadcast and
    // multicast are never an offloaded flow's; VLAN and PPPoE frames go
    // the normal way.
    let family = match skb.host_protocol() {
        ETH_P_IP => Family::Ipv4,
        ETH_P_IPV6 => Family::Ipv6,
        _ => return Err(()),
    };
    let set = rn.rules.current(rcu);
    let len = skb.skb().network_len().ok_or(())?;
    let f =
        fast::parse(skb.skb().network_linear(PARSE_BYTES), len as usize, family).map_err(|_| ())?;
    let t = table::get();
    let (e, dir) = t.lookup(rcu, &rn.ct, &f.tuple).ok_or(())?;
    let o = e.offload(rcu).ok_or(())?;
    let route = o.route(dir).filter(|_| o.ready()).ok_or(())?;
    if e.status().has(Status::DYING) {
        return Err(());
    }
    let end = |why| {
        e.offload_end(o, why);
        Err(())
    };
    if o.gen != set.generation {
        return end(ct_stats::Counter::OffloadEndRuleset);
    }
    if f.tcp_flags & fast::TCP_FIN_RST != 0 {
        return end(ct_stats::Counter::OffloadEndTcp);
    }
    if !route.dst.check() {
        return end(ct_stats::Counter::OffloadEndRoute);
    }
    let punt = || {
        rn.ct.count(ct_stats::Counter::OffloadPunted);
        Err(())
    };
    if f.slow || state.in_dev().map(|d| d.ifindex()) != Some(route.iif) {
        return punt();
    }
    // Link-layer padding is not the datagram's (`ip_rcv_core` trims it).
    let ip_len = u32::try_from(f.ip_len).map_err(|_| ())?;
    if ip_len < len && !skb.trim(ip_len) {
        return punt();
    }
    if skb.exceeds_mtu(route.mtu) || !skb.headroom_for(&route.dst) {
        return punt();
    }
    let Some(key) = e.key() else {
        return Err(());
    };
    let b = binding(e, &key);
    let v6 = family == Family::Ipv6;
    let n = fast::rewrite_len(family, f.tuple.proto);
    match rewrite(skb.skb(), n, |bytes, mode| {
        fast::forward(bytes, &b, dir, mode)
    }) {
        // Not writable (no memory): unchanged, the normal path's.
        None => return punt(),
        Some(Ok(())) => {}
        Some(Err(_)) => {
            // Checked by `parse`: cannot happen; a packet half rewritten
            // must not go on.
            rn.rules.count(rules_stats::Counter::RewriteFailed);
            return Ok(netfilter::DROP);
        }
    }
    let now = u64::from(crate::sys::time::jiffies_msecs());
    let timeout = rn.ct.config(rcu).timeouts.offloaded(f.tuple.proto);
    e.offloaded_packet(dir, u64::from(ip_len), now, timeout);
    rn.ct.count(ct_stats::Counter::OffloadPackets);
    // The packet's destination after NAT: the other direction's source.
    let daddr = key.tuple(dir.opposite()).src;
    Ok(skb.xmit(&route.dst, &daddr, v6))
}

/// The device notifier's handler: a device that went down or away, or
/// whose MTU changed (the records hold the MTU their route had), takes its
/// namespace's offloads through it back to the normal path, which may
/// offload them again with what is true now; a device that comes or goes
/// gains or loses the fast path's hook.
pub(crate) struct DevGone;

impl DevDown for DevGone {
    fn dev_down(net: &RfwNet, ifindex: core::ffi::c_int) {
        table::get().offload_end_dev(&net.ct, ifindex);
    }

    fn dev_registered(net: &RfwNet, netref: NetRef<'_>, dev: &NetDevice, rtnl: &mut Rtnl) {
        net.dev_hooks.dev_registered(netref, dev, rtnl);
    }

    fn dev_unregistered(net: &RfwNet, netref: NetRef<'_>, dev: &NetDevice, rtnl: &mut Rtnl) {
        net.dev_hooks.dev_unregistered(netref, dev, rtnl);
    }
}

/// The NAT binding of a confirmed connection with key `key`, as the NAT
/// hooks read it (`nat::nat_rewrite`).
fn binding(e: EntryRef<'_>, key: &conntrack::conn::ConnKey) -> Binding {
    let nat = Binding::implied_status(key).unwrap_or_else(|| e.status());
    Binding::from_parts(
        key.tuple(Direction::Original),
        key.tuple(Direction::Reply),
        nat,
    )
}
