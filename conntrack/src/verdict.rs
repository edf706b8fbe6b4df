//! What conntrack says about a packet: a [`Direction`] and a [`Class`],
//! with a reason for INVALID packets.
//!
//! Kernel counterpart: `enum ip_conntrack_info` (`IP_CT_NEW`,
//! `IP_CT_ESTABLISHED`, `IP_CT_RELATED`, `..._REPLY`), the `-NF_ACCEPT`
//! returns that leave a packet without a conntrack (what
//! `-m conntrack --ctstate INVALID` matches) and the texts of
//! `nf_ct_l4proto_log_invalid()` / `nf_tcp_log_invalid()`.

use crate::parse::ParseError;
use crate::tuple::Direction;
use core::fmt;

/// Why a packet is INVALID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// The packet could not be parsed.
    Malformed(ParseError),
    /// TCP flags that no valid segment carries (`tcp_valid_flags`).
    TcpFlags,
    /// A TCP packet that may not start a connection (not a SYN, and the
    /// configuration does not pick up connections midstream).
    TcpNotSyn,
    /// A TCP packet that may not start a connection (SYN/ACK, FIN, RST or
    /// no flags as a first packet: "invalid new").
    TcpInvalidNew,
    /// The TCP state table says this packet is invalid in this state.
    TcpState,
    /// TCP: SEQ is over the upper bound of the window.
    TcpSeqOver,
    /// TCP: ACK is over the upper bound (acknowledges data not seen yet).
    TcpAckOver,
    /// TCP: an RST whose SEQ is before the highest ACK seen.
    TcpRstBelowAck,
    /// An ICMP type above the highest known (18).
    IcmpUnknownType,
    /// An ICMP message that may not start a connection (a reply, or a type
    /// without a counterpart).
    IcmpNotNew,
    /// An ICMP error quoting a packet of no known connection.
    IcmpErrorNoConn,
    /// An ICMP error whose outer destination is not the connection's
    /// endpoint in that direction.
    IcmpErrorAddr,
    /// The table is full and no entry could be evicted.
    TableFull,
    /// A tuple of the new connection is already in the table.
    TableClash,
    /// The packet's protocol is not the connection's (a caller passed a
    /// packet to the wrong entry).
    WrongConn,
}

/// The names of [`InvalidReason`]'s indexes. Append-only.
const INVALID_NAMES: [&str; InvalidReason::COUNT] = [
    "malformed",
    "tcp_flags",
    "tcp_not_syn",
    "tcp_invalid_new",
    "tcp_state",
    "tcp_seq_over",
    "tcp_ack_over",
    "tcp_rst_below_ack",
    "icmp_unknown_type",
    "icmp_not_new",
    "icmp_error_no_conn",
    "icmp_error_addr",
    "table_full",
    "table_clash",
    "wrong_conn",
];

/// The `i`th name of `names` (a `const` lookup without a panic path).
pub(crate) const fn nth_name(names: &[&'static str], i: usize) -> Option<&'static str> {
    let mut rest = names;
    let mut k = i;
    while let [first, tail @ ..] = rest {
        if k == 0 {
            return Some(*first);
        }
        k -= 1;
        rest = tail;
    }
    None
}

impl InvalidReason {
    /// Number of indexes ([`InvalidReason::index`] is below it).
    pub const COUNT: usize = 15;

    /// A dense index in `0..COUNT`, for per-reason counters. All
    /// [`InvalidReason::Malformed`] share index 0 (count those by
    /// [`ParseError::index`]).
    ///
    /// The numbering is append-only: netlink statistics carry these
    /// indexes, so a new reason gets the next free index and existing
    /// ones never change.
    pub const fn index(self) -> usize {
        match self {
            InvalidReason::Malformed(_) => 0,
            InvalidReason::TcpFlags => 1,
            InvalidReason::TcpNotSyn => 2,
            InvalidReason::TcpInvalidNew => 3,
            InvalidReason::TcpState => 4,
            InvalidReason::TcpSeqOver => 5,
            InvalidReason::TcpAckOver => 6,
            InvalidReason::TcpRstBelowAck => 7,
            InvalidReason::IcmpUnknownType => 8,
            InvalidReason::IcmpNotNew => 9,
            InvalidReason::IcmpErrorNoConn => 10,
            InvalidReason::IcmpErrorAddr => 11,
            InvalidReason::TableFull => 12,
            InvalidReason::TableClash => 13,
            InvalidReason::WrongConn => 14,
        }
    }

    /// A short, stable snake_case identifier of [`InvalidReason::index`]
    /// (`"malformed"`, `"tcp_flags"`, ..., `"wrong_conn"`), for counters
    /// and tools.
    pub const fn name(self) -> &'static str {
        match Self::name_of_index(self.index()) {
            Some(n) => n,
            None => "unknown",
        }
    }

    /// The name of an index; `None` from [`InvalidReason::COUNT`] on
    /// (e.g. an index from a newer kernel module).
    pub const fn name_of_index(i: usize) -> Option<&'static str> {
        nth_name(&INVALID_NAMES, i)
    }

    /// A sentence a person understands.
    pub const fn as_str(self) -> &'static str {
        match self {
            InvalidReason::Malformed(e) => e.as_str(),
            InvalidReason::TcpFlags => "invalid TCP flag combination",
            InvalidReason::TcpNotSyn => "TCP packet without SYN cannot start a connection",
            InvalidReason::TcpInvalidNew => "TCP packet invalid as the first of a connection",
            InvalidReason::TcpState => "TCP packet invalid in the connection's state",
            InvalidReason::TcpSeqOver => {
                "SEQ is over the upper bound of the window (over the window of the receiver)"
            }
            InvalidReason::TcpAckOver => "ACK is over the upper bound (ACKed data not seen yet)",
            InvalidReason::TcpRstBelowAck => {
                "RST with SEQ below the highest ACK seen from the peer (invalid RST)"
            }
            InvalidReason::IcmpUnknownType => "unknown ICMP type",
            InvalidReason::IcmpNotNew => "ICMP message of this type cannot start a connection",
            InvalidReason::IcmpErrorNoConn => "ICMP error for no known connection",
            InvalidReason::IcmpErrorAddr => {
                "ICMP error whose outer destination does not match the connection"
            }
            InvalidReason::TableFull => "connection table full and nothing could be evicted",
            InvalidReason::TableClash => "a tuple of the new connection is already taken",
            InvalidReason::WrongConn => "packet does not belong to this connection",
        }
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidReason::Malformed(e) => fmt::Display::fmt(e, f),
            _ => f.write_str(self.as_str()),
        }
    }
}

/// Why a TCP packet was let through without updating the connection
/// (Linux's `NFCT_TCP_IGNORE` and the `sIG` rows): the packet is not
/// INVALID, its class stays that of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// SEQ is under the lower bound: already ACKed data retransmitted.
    SeqUnder,
    /// ACK under the lower bound (possibly overly delayed).
    AckUnder,
    /// More bytes than the receive window allows (data overshot).
    Overshot,
    /// The state table row says "ignore" (e.g. a SYN in ESTABLISHED, a
    /// SYN/ACK retransmission): the firewall may be out of sync.
    State,
    /// An RFC 5961 challenge ACK that must not close the connection.
    ChallengeAck,
}

impl IgnoreReason {
    /// A sentence a person understands.
    pub const fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::SeqUnder => {
                "SEQ is under the lower bound (already ACKed data retransmitted)"
            }
            IgnoreReason::AckUnder => "ignored ACK under the lower bound (possibly overly delayed)",
            IgnoreReason::Overshot => "more bytes than the receive window allows",
            IgnoreReason::State => "packet ignored in this TCP state (possibly out of sync)",
            IgnoreReason::ChallengeAck => "challenge ACK ignored",
        }
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// The first packet(s) of a connection not yet seen in the reply
    /// direction (`IP_CT_NEW`).
    New,
    /// Part of a connection that saw a reply (`IP_CT_ESTABLISHED`).
    Established,
    /// Related to a known connection: an ICMP error about it
    /// (`IP_CT_RELATED`).
    Related,
    /// Invalid, with the reason.
    Invalid(InvalidReason),
    /// Deliberately not tracked (ICMPv6 neighbour discovery, MLD).
    Untracked,
}

impl Class {
    /// True for [`Class::Invalid`].
    pub const fn is_invalid(&self) -> bool {
        matches!(self, Class::Invalid(_))
    }

    /// The state rules match this class with (the reason dropped).
    pub const fn state(&self) -> CtState {
        match self {
            Class::New => CtState::New,
            Class::Established => CtState::Established,
            Class::Related => CtState::Related,
            Class::Invalid(_) => CtState::Invalid,
            Class::Untracked => CtState::Untracked,
        }
    }
}

/// A packet's conntrack state as rules see it (`xt_conntrack
/// --ctstate`): a [`Class`] without the reason. The discriminants are
/// dense codes, and [`CtState::bit`] is `1 << code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CtState {
    /// First packet of a connection.
    New = 0,
    /// A packet of a connection that has seen traffic both ways.
    Established = 1,
    /// A packet related to another connection (an ICMP error, an expectation).
    Related = 2,
    /// A packet conntrack could not place.
    Invalid = 3,
    /// A packet exempted from tracking.
    Untracked = 4,
}

impl CtState {
    /// All states, in code order.
    pub const ALL: [CtState; 5] = [
        CtState::New,
        CtState::Established,
        CtState::Related,
        CtState::Invalid,
        CtState::Untracked,
    ];

    /// The state's code (`0..5`), to store it in a byte.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The state with code `c`.
    pub const fn from_code(c: u8) -> Option<CtState> {
        match c {
            0 => Some(CtState::New),
            1 => Some(CtState::Established),
            2 => Some(CtState::Related),
            3 => Some(CtState::Invalid),
            4 => Some(CtState::Untracked),
            _ => None,
        }
    }

    /// This state's bit in a set of states (`1 << code`).
    pub const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The verdict on one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdict {
    /// The packet's direction in its connection ([`Direction::Original`]
    /// when it has none).
    pub dir: Direction,
    /// The class.
    pub class: Class,
    /// Set when a TCP packet was accepted without being tracked.
    pub ignored: Option<IgnoreReason>,
}

impl Verdict {
    /// A verdict without an ignore note.
    pub const fn new(dir: Direction, class: Class) -> Verdict {
        Verdict {
            dir,
            class,
            ignored: None,
        }
    }

    /// An INVALID verdict.
    pub const fn invalid(dir: Direction, reason: InvalidReason) -> Verdict {
        Verdict::new(dir, Class::Invalid(reason))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::wire;
    use std::collections::HashSet;
    use std::vec::Vec;

    const ALL: [InvalidReason; InvalidReason::COUNT] = [
        InvalidReason::Malformed(ParseError::BadChecksum),
        InvalidReason::TcpFlags,
        InvalidReason::TcpNotSyn,
        InvalidReason::TcpInvalidNew,
        InvalidReason::TcpState,
        InvalidReason::TcpSeqOver,
        InvalidReason::TcpAckOver,
        InvalidReason::TcpRstBelowAck,
        InvalidReason::IcmpUnknownType,
        InvalidReason::IcmpNotNew,
        InvalidReason::IcmpErrorNoConn,
        InvalidReason::IcmpErrorAddr,
        InvalidReason::TableFull,
        InvalidReason::TableClash,
        InvalidReason::WrongConn,
    ];

    fn snake_case(n: &str) -> bool {
        !n.is_empty()
            && !n.starts_with('_')
            && !n.ends_with('_')
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    #[test]
    fn invalid_reason_indexes_and_names() {
        // Dense and in order: the array lists the reasons by index.
        for (i, r) in ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
            assert_eq!(InvalidReason::name_of_index(i), Some(r.name()));
            assert!(snake_case(r.name()), "{}", r.name());
        }
        assert_eq!(InvalidReason::name_of_index(InvalidReason::COUNT), None);
        assert_eq!(InvalidReason::name_of_index(usize::MAX), None);
        let names: HashSet<_> = ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), InvalidReason::COUNT, "names are unique");
        // All malformed packets share one index.
        for e in [
            ParseError::Fragment,
            ParseError::Ip(wire::Error::Truncated),
            ParseError::Tcp(wire::Error::BadHeaderLen),
        ] {
            assert_eq!(InvalidReason::Malformed(e).index(), 0);
            assert_eq!(InvalidReason::Malformed(e).name(), "malformed");
        }
        // Append-only: the numbers netlink carries do not move.
        assert_eq!(InvalidReason::TcpNotSyn.index(), 2);
        assert_eq!(InvalidReason::TableFull.name(), "table_full");
        assert_eq!(InvalidReason::TableClash.index(), 13);
        assert_eq!(InvalidReason::WrongConn.index(), 14);
    }

    #[test]
    fn parse_error_indexes_and_names() {
        use wire::Error as E;
        let errs = [
            E::Truncated,
            E::BadVersion,
            E::BadHeaderLen,
            E::BadLength,
            E::TooManyExtHeaders,
        ];
        let mut all: Vec<ParseError> = Vec::new();
        for layer in [
            ParseError::Ip,
            ParseError::Tcp,
            ParseError::Udp,
            ParseError::Icmp,
        ] {
            all.extend(errs.iter().map(|&e| layer(e)));
        }
        all.extend([
            ParseError::Fragment,
            ParseError::IcmpInner,
            ParseError::BadChecksum,
            ParseError::NoNextHeader,
        ]);
        assert_eq!(all.len(), ParseError::COUNT);
        let mut seen = HashSet::new();
        for e in &all {
            let i = e.index();
            assert!(i < ParseError::COUNT, "{e:?}");
            assert!(seen.insert(i), "{e:?}: index {i} taken twice");
            assert_eq!(ParseError::name_of_index(i), Some(e.name()));
            assert!(snake_case(e.name()), "{}", e.name());
        }
        assert_eq!(ParseError::name_of_index(ParseError::COUNT), None);
        let names: HashSet<_> = all.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), ParseError::COUNT, "names are unique");
        // Append-only: the numbers netlink carries do not move.
        assert_eq!(ParseError::Ip(E::Truncated).index(), 0);
        assert_eq!(ParseError::Ip(E::Truncated).name(), "ip_truncated");
        assert_eq!(ParseError::Fragment.index(), 5);
        assert_eq!(
            ParseError::Tcp(E::BadHeaderLen).name(),
            "tcp_bad_header_len"
        );
        assert_eq!(ParseError::Udp(E::BadLength).index(), 14);
        assert_eq!(ParseError::IcmpInner.name(), "icmp_inner");
        assert_eq!(ParseError::BadChecksum.index(), 22);
        assert_eq!(ParseError::NoNextHeader.index(), 23);
        assert_eq!(ParseError::NoNextHeader.name(), "no_next_header");
    }
}
