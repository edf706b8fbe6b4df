//! Netfilter hooks: where in the stack a packet is seen.
//!
//! Counterpart: `enum nf_inet_hooks` (`include/uapi/linux/netfilter.h`).
//! The tracker itself does not look at the hook; the rules (`nat`), the
//! kernel glue and the netlink statistics do, and share this type.

use core::fmt;

/// A netfilter hook (`enum nf_inet_hooks`), which is also a built-in
/// chain. The discriminants are the kernel's hook numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Hook {
    /// `NF_INET_PRE_ROUTING`.
    Prerouting = 0,
    /// `NF_INET_LOCAL_IN`.
    Input = 1,
    /// `NF_INET_FORWARD`.
    Forward = 2,
    /// `NF_INET_LOCAL_OUT`.
    Output = 3,
    /// `NF_INET_POST_ROUTING`.
    Postrouting = 4,
}

impl Hook {
    /// Number of hooks (`NF_INET_NUMHOOKS`).
    pub const COUNT: usize = 5;

    /// All hooks in `nf_inet_hooks` order.
    pub const ALL: [Hook; Hook::COUNT] = [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
    ];

    /// The built-in chain name (`PREROUTING`, ...), as iptables writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }

    /// The hook's name as nft writes it (`prerouting`, ...): how rfw's
    /// statistics name it.
    pub const fn nft_name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }

    /// The hook whose built-in chain is called `name`.
    pub fn from_name(name: &[u8]) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.name().as_bytes() == name)
    }

    /// This hook's bit in a hook mask.
    pub const fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The hook's number (`NF_INET_*`), also its index in per-hook arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The hook with number `i`.
    pub const fn from_index(i: usize) -> Option<Hook> {
        match i {
            0 => Some(Hook::Prerouting),
            1 => Some(Hook::Input),
            2 => Some(Hook::Forward),
            3 => Some(Hook::Output),
            4 => Some(Hook::Postrouting),
            _ => None,
        }
    }

    /// The hook with number `n` as the kernel passes it
    /// (`nf_hook_state.hook`, a `u8`).
    pub const fn from_u8(n: u8) -> Option<Hook> {
        Hook::from_index(n as usize)
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        for (i, h) in Hook::ALL.into_iter().enumerate() {
            assert_eq!(h.index(), i);
            assert_eq!(Hook::from_u8(i as u8), Some(h));
            assert_eq!(Hook::from_name(h.name().as_bytes()), Some(h));
        }
        assert_eq!(Hook::from_u8(5), None);
    }
}
