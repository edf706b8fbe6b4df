//! The ICMP and ICMPv6 trackers: request/reply pairing. Errors are
//! classified RELATED in [`crate::process()`] through the quoted tuple.
//!
//! Kernel counterpart: `net/netfilter/nf_conntrack_proto_icmp.c` and
//! `nf_conntrack_proto_icmpv6.c` (`nf_conntrack_icmp{,v6}_packet()`,
//! `valid_new`, `nf_conntrack_inet_error()`).

use crate::tuple::{Family, Tuple};
use crate::verdict::InvalidReason;
use crate::wire::{icmpv4, icmpv6};

/// Checks that the first packet of a connection may start one: only
/// queries (echo, timestamp, info, address mask; ICMPv6 echo and node
/// information) do.
pub fn check_new(orig: &Tuple) -> Result<(), InvalidReason> {
    let ok = match orig.family {
        Family::Ipv4 => icmpv4::is_query(orig.icmp_type()),
        Family::Ipv6 => icmpv6::is_query(orig.icmp_type()),
    };
    if ok {
        Ok(())
    } else {
        Err(InvalidReason::IcmpNotNew)
    }
}
