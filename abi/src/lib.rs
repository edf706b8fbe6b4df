//! The generic netlink ABI shared by `rfw.ko` and `fwctl`.
//!
//! One family, `rfw`, version 1. Every command is namespace-aware: it acts on
//! the network namespace of the socket that sent it, and requires
//! `CAP_NET_ADMIN` over that namespace's user namespace (the kernel side sets
//! `GENL_UNS_ADMIN_PERM` on every operation, as nf_tables does).
//!
//! The numbers here are the wire contract: they are only ever appended to,
//! never renumbered. The kernel module and fwctl both compile this crate, so a
//! mismatch between them cannot be written by accident.
//!
//! Layout conventions follow the kernel's generic netlink families: attribute
//! 0 is unused, u64 values are sent with `nla_put_u64_64bit` and a pad
//! attribute, repeated records are nested attributes.
#![no_std]
#![forbid(unsafe_code)]

/// Generic netlink family name (`genl_family.name`).
pub const FAMILY_NAME: &str = "rfw";
/// The same name, NUL-terminated, as the kernel's `char name[GENL_NAMSIZ]` wants it.
pub const FAMILY_NAME_C: &[u8] = b"rfw\0";
/// Family version (`genl_family.version`).
pub const FAMILY_VERSION: u8 = 1;

/// Netfilter protocol families as used in attributes (the kernel's `NFPROTO_*`).
pub mod nfproto {
    /// `NFPROTO_IPV4`
    pub const IPV4: u8 = 2;
    /// `NFPROTO_IPV6`
    pub const IPV6: u8 = 10;
}

/// Netfilter hook numbers (the kernel's `enum nf_inet_hooks`).
pub mod hook {
    /// `NF_INET_PRE_ROUTING`
    pub const PRE_ROUTING: u8 = 0;
    /// `NF_INET_LOCAL_IN`
    pub const LOCAL_IN: u8 = 1;
    /// `NF_INET_FORWARD`
    pub const FORWARD: u8 = 2;
    /// `NF_INET_LOCAL_OUT`
    pub const LOCAL_OUT: u8 = 3;
    /// `NF_INET_POST_ROUTING`
    pub const POST_ROUTING: u8 = 4;
    /// Number of hooks rfw attaches to per family.
    pub const COUNT: usize = 5;
    /// Hook names in the order of their numbers, as users read them.
    pub const NAMES: [&str; COUNT] = ["prerouting", "input", "forward", "output", "postrouting"];
}

/// Commands (`genlmsghdr.cmd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmd {
    /// Reply: per-hook packet and byte counters of the caller's namespace.
    /// Request has no attributes; reply carries one [`attr::HOOK_STATS`] per
    /// (family, hook).
    StatsGet = 1,
}

impl Cmd {
    /// The command for a wire value, if it is one this ABI knows.
    pub const fn from_u8(v: u8) -> Option<Cmd> {
        match v {
            1 => Some(Cmd::StatsGet),
            _ => None,
        }
    }
}

/// Top-level attributes.
pub mod attr {
    /// Padding for 64-bit alignment of u64 attributes.
    pub const PAD: u16 = 1;
    /// Nested, repeated: one hook's counters, attributes in [`super::hook_stats`].
    pub const HOOK_STATS: u16 = 2;
    /// Highest top-level attribute number (`genl_family.maxattr`).
    pub const MAX: u16 = HOOK_STATS;
}

/// Attributes nested in [`attr::HOOK_STATS`].
pub mod hook_stats {
    /// Padding for 64-bit alignment of u64 attributes.
    pub const PAD: u16 = 1;
    /// u8: [`super::nfproto`] value.
    pub const FAMILY: u16 = 2;
    /// u8: [`super::hook`] value.
    pub const HOOK: u16 = 3;
    /// u64: packets seen by rfw at this hook in this namespace.
    pub const PACKETS: u16 = 4;
    /// u64: bytes (skb->len at the hook) seen at this hook in this namespace.
    pub const BYTES: u16 = 5;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_numbers_round_trip() {
        assert_eq!(Cmd::from_u8(Cmd::StatsGet as u8), Some(Cmd::StatsGet));
        assert_eq!(Cmd::from_u8(0), None);
        assert_eq!(Cmd::from_u8(200), None);
    }

    #[test]
    fn family_name_forms_agree() {
        assert_eq!(&FAMILY_NAME_C[..FAMILY_NAME.len()], FAMILY_NAME.as_bytes());
        assert_eq!(FAMILY_NAME_C.last(), Some(&0));
        // GENL_NAMSIZ is 16 including the NUL.
        assert!(FAMILY_NAME_C.len() <= 16);
    }
}
