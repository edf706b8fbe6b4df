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

impl InvalidReason {
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
