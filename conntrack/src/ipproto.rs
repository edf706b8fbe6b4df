//! IP protocol numbers and their names, shared by the crates.
//!
//! Counterpart: the `IPPROTO_*` values of `include/uapi/linux/in.h` and
//! `in6.h`. A tuple's `proto`, a rule's `-p` and the netlink ABI carry
//! these numbers; [`crate::wire::IpProtocol`] is the typed form the packet
//! views return.
//!
//! Names: the tools rfw imitates spell them differently.
//! [`name`] is `conntrack -L`'s spelling (libnetfilter_conntrack),
//! [`iptables_name`] iptables-save's (`ipv6-icmp` for ICMPv6, from
//! `/etc/protocols`); [`from_name`] reads either.

/// IPv6 hop-by-hop options (`IPPROTO_HOPOPTS`).
pub const HOPOPTS: u8 = 0;
/// ICMP (`IPPROTO_ICMP`).
pub const ICMP: u8 = 1;
/// TCP (`IPPROTO_TCP`).
pub const TCP: u8 = 6;
/// UDP (`IPPROTO_UDP`).
pub const UDP: u8 = 17;
/// DCCP (`IPPROTO_DCCP`).
pub const DCCP: u8 = 33;
/// IPv6 routing header (`IPPROTO_ROUTING`).
pub const ROUTING: u8 = 43;
/// IPv6 fragment header (`IPPROTO_FRAGMENT`).
pub const FRAGMENT: u8 = 44;
/// GRE (`IPPROTO_GRE`).
pub const GRE: u8 = 47;
/// IPsec ESP (`IPPROTO_ESP`).
pub const ESP: u8 = 50;
/// IPsec AH (`IPPROTO_AH`).
pub const AH: u8 = 51;
/// ICMPv6 (`IPPROTO_ICMPV6`).
pub const ICMPV6: u8 = 58;
/// IPv6 "no next header" (`IPPROTO_NONE`).
pub const NONE: u8 = 59;
/// IPv6 destination options (`IPPROTO_DSTOPTS`).
pub const DSTOPTS: u8 = 60;
/// SCTP (`IPPROTO_SCTP`).
pub const SCTP: u8 = 132;
/// UDP-Lite (`IPPROTO_UDPLITE`).
pub const UDPLITE: u8 = 136;

/// The protocols rfw names, as `conntrack -L` prints them.
pub const NAMES: [(u8, &str); 8] = [
    (TCP, "tcp"),
    (UDP, "udp"),
    (UDPLITE, "udplite"),
    (ICMP, "icmp"),
    (ICMPV6, "icmpv6"),
    (SCTP, "sctp"),
    (DCCP, "dccp"),
    (GRE, "gre"),
];

/// A protocol's name as `conntrack -L` prints it; `None` for one without
/// a name.
pub fn name(p: u8) -> Option<&'static str> {
    NAMES.iter().find(|(n, _)| *n == p).map(|(_, s)| *s)
}

/// A protocol's name as iptables-save prints it (`-p`); `None` for one
/// printed as a number.
pub fn iptables_name(p: u8) -> Option<&'static str> {
    match p {
        ICMPV6 => Some("ipv6-icmp"),
        // Not in iptables' own list (`xtables_chain_protos`): printed as
        // its number, as rfw's rules text always did.
        GRE => None,
        _ => name(p),
    }
}

/// The protocol named `s` in either spelling (ASCII case ignored), or
/// with ICMPv6's other alias `icmp6`.
pub fn from_name(s: &str) -> Option<u8> {
    if s.eq_ignore_ascii_case("ipv6-icmp") || s.eq_ignore_ascii_case("icmp6") {
        return Some(ICMPV6);
    }
    NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(s))
        .map(|(p, _)| *p)
}

/// True for the protocols whose header starts with 16-bit source and
/// destination ports (the ones `--sport`/`--dport`, tuple ports and NAT
/// port ranges apply to).
pub const fn has_ports(p: u8) -> bool {
    matches!(p, TCP | UDP | UDPLITE | SCTP | DCCP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (p, n) in NAMES {
            assert_eq!(name(p), Some(n));
            assert_eq!(from_name(n), Some(p));
            if let Some(i) = iptables_name(p) {
                assert_eq!(from_name(i), Some(p));
            }
        }
        assert_eq!(iptables_name(ICMPV6), Some("ipv6-icmp"));
        assert_eq!(from_name("ICMP6"), Some(ICMPV6));
        assert_eq!(
            (name(0), iptables_name(GRE), from_name("x")),
            (None, None, None)
        );
    }
}
