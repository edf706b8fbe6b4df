//! The all-in-one path: bytes in, verdict out, with the table updated.
//! Used by host tests, benchmarks, the fuzz target and host tools; the
//! kernel glue composes the same steps itself (parse, lookup,
//! [`ConnRef::update`](crate::conn::ConnRef::update), under the entry's
//! lock for TCP only, create on a miss, insert, confirmation).
//!
//! Kernel counterpart: `nf_conntrack_in()`, `resolve_normal_ct()`,
//! `nf_conntrack_handle_icmp()` in `net/netfilter/nf_conntrack_core.c` and
//! `nf_conntrack_inet_error()` in `nf_conntrack_proto_icmp.c`.

use crate::conn::{Action, Config, Conn};
use crate::hook::Hook;
use crate::parse::{self, FragmentStatus, IcmpInfo, L4Checksum, L4Info, PacketInfo, ParseError};
use crate::table::{InsertError, Table};
use crate::tuple::{Direction, Family};
use crate::verdict::{Class, InvalidReason, Verdict};
use crate::wire::icmpv4;

/// The result of [`process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processed<H> {
    /// The verdict.
    pub verdict: Verdict,
    /// The connection the packet belongs to (for RELATED: the connection
    /// it is related to). Also given when this packet ended the connection
    /// ([`Table::remove`] was called on it): the packet is still one of
    /// its packets, and NAT must still translate it, as Linux keeps a
    /// killed conntrack attached to the skb. The handle is then only good
    /// for as long as the table keeps removed entries readable (the
    /// kernel's RCU section; a host table may have forgotten it).
    pub conn: Option<H>,
}

fn only<H>(verdict: Verdict) -> Processed<H> {
    Processed {
        verdict,
        conn: None,
    }
}

/// Parses, classifies and tracks one packet (starting at its IP header),
/// creating and inserting its connection if it is the first.
pub fn process<T: Table>(
    table: &mut T,
    bytes: &[u8],
    family: Family,
    now: u64,
    cfg: &Config,
) -> Processed<T::Handle> {
    match parse::parse(bytes, family, &cfg.parse) {
        Ok(info) => track(table, &info, now, cfg),
        Err(e) => only(Verdict::invalid(
            Direction::Original,
            InvalidReason::Malformed(e),
        )),
    }
}

/// The checksum to verify before tracking `info` at `hook`, if any:
/// the packet's L4 checksum ([`PacketInfo::checksum`]) at PRE_ROUTING
/// when [`Config::checksum`] is on. Linux verifies in the same place and
/// only there (`tcp_error()`, `udp_error()`, `icmp_error()`,
/// `icmpv6_error()`: "We skip checking packets on the outgoing path
/// because the checksum is assumed to be correct"; a forwarded packet was
/// verified at its PRE_ROUTING, a local one's checksum is the stack's own
/// or left to the device).
pub fn checksum_to_verify(info: &PacketInfo, hook: Hook, cfg: &Config) -> Option<L4Checksum> {
    if !cfg.checksum || hook != Hook::Prerouting {
        return None;
    }
    info.checksum
}

/// [`track`] at `hook`, with nf_conntrack's checksum check first: when
/// [`checksum_to_verify`] names a checksum, `verify` is asked whether it
/// is right (the kernel glue calls `nf_checksum()` on the skb, which
/// trusts a device that verified it already; host callers may use
/// [`L4Checksum::verify`]). A packet that fails is INVALID
/// ([`ParseError::BadChecksum`], counted as malformed `bad_checksum`) and
/// the table is not touched: no entry is created, refreshed, moved to
/// another state or ended. Linux's `-NF_ACCEPT` from the protocol's
/// `*_error()` does the same ("bad checksum"): the packet goes on, with
/// no conntrack, for the rules to judge as INVALID.
///
/// The check comes after the header length checks (the parser's, and
/// [`PacketInfo::invalid`]) and before the TCP flags check, in
/// `tcp_error()`'s and `udp_error()`'s order.
///
/// Before all of it, at LOCAL_OUT, an IPv4 fragment is INVALID
/// ([`ParseError::Fragment`]) and the table is not touched:
/// `ipv4_conntrack_local()` does not track a fragment (only an
/// `IP_NODEFRAG` socket's gets past defragmentation there), and a packet
/// without a conntrack is INVALID to the rules. IPv6 has no such exception
/// (`ipv6_conntrack_local()`).
pub fn track_verified<T: Table>(
    table: &mut T,
    info: &PacketInfo,
    hook: Hook,
    now: u64,
    cfg: &Config,
    verify: impl FnOnce(L4Checksum) -> bool,
) -> Processed<T::Handle> {
    if hook == Hook::Output
        && info.tuple.family == Family::Ipv4
        && info.fragment != FragmentStatus::Whole
    {
        return only(Verdict::invalid(
            Direction::Original,
            InvalidReason::Malformed(ParseError::Fragment),
        ));
    }
    if let Some(v) = invalid_as_parsed(info) {
        return only(v);
    }
    if let Some(c) = checksum_to_verify(info, hook, cfg) {
        if !verify(c) {
            return only(Verdict::invalid(
                Direction::Original,
                InvalidReason::Malformed(ParseError::BadChecksum),
            ));
        }
    }
    track(table, info, now, cfg)
}

/// The verdict for a packet the parser read but found INVALID
/// ([`PacketInfo::invalid`]).
fn invalid_as_parsed(info: &PacketInfo) -> Option<Verdict> {
    let e = info.invalid?;
    Some(Verdict::invalid(
        Direction::Original,
        InvalidReason::Malformed(e),
    ))
}

/// [`process`] for an already parsed packet.
pub fn track<T: Table>(
    table: &mut T,
    info: &PacketInfo,
    now: u64,
    cfg: &Config,
) -> Processed<T::Handle> {
    if let Some(v) = invalid_as_parsed(info) {
        return only(v);
    }
    match &info.l4 {
        L4Info::Icmp(IcmpInfo::Untracked { .. }) => {
            return only(Verdict::new(Direction::Original, Class::Untracked))
        }
        L4Info::Icmp(IcmpInfo::Error { quoted, .. }) => return related(table, info, quoted, now),
        L4Info::Icmp(IcmpInfo::Other { ty, .. })
            if info.tuple.family == Family::Ipv4 && *ty > icmpv4::MAX_KNOWN_TYPE =>
        {
            return only(Verdict::invalid(
                Direction::Original,
                InvalidReason::IcmpUnknownType,
            ))
        }
        L4Info::Tcp(t) if !crate::proto::tcp::valid_flags(t.flags) => {
            return only(Verdict::invalid(
                Direction::Original,
                InvalidReason::TcpFlags,
            ))
        }
        _ => {}
    }
    // Two rounds at most: a SYN reopening a closed connection removes it
    // and is processed again as the first packet of a new one.
    for _ in 0..2 {
        let Some((h, dir)) = table.lookup(&info.tuple) else {
            return create(table, info, now, cfg);
        };
        let upd = table.with_state(h, |mut c| {
            if c.state.is_expired(now) {
                None
            } else {
                Some(c.update(info, dir, now, cfg))
            }
        });
        match upd {
            Some(Some(u)) => match u.action {
                Action::Keep => {
                    return Processed {
                        verdict: u.verdict,
                        conn: Some(h),
                    }
                }
                Action::Remove => {
                    table.remove(h);
                    return Processed {
                        verdict: u.verdict,
                        conn: Some(h),
                    };
                }
                Action::RemoveAndRepeat => {
                    table.remove(h);
                }
            },
            // Expired but not collected yet: gone, as in
            // `nf_ct_gc_expired()`.
            Some(None) => {
                table.remove(h);
                return create(table, info, now, cfg);
            }
            None => return create(table, info, now, cfg),
        }
    }
    create(table, info, now, cfg)
}

fn create<T: Table>(
    table: &mut T,
    info: &PacketInfo,
    now: u64,
    cfg: &Config,
) -> Processed<T::Handle> {
    let mut conn = match Conn::new(info, now, cfg) {
        Ok(c) => c,
        Err(r) => return only(Verdict::invalid(Direction::Original, r)),
    };
    let upd = conn.update(info, Direction::Original, now, cfg);
    if upd.verdict.class.is_invalid() || upd.action != Action::Keep {
        return only(upd.verdict);
    }
    match table.insert(conn, now) {
        Ok(h) => Processed {
            verdict: upd.verdict,
            conn: Some(h),
        },
        Err(InsertError::Full) => only(Verdict::invalid(
            Direction::Original,
            InvalidReason::TableFull,
        )),
        Err(InsertError::Clash) => resolve_clash(table, info, now, cfg),
    }
}

/// Another packet of the flow inserted its original tuple between this
/// packet's lookup and insert (two CPUs creating the same connection, as
/// in the DNS A/AAAA race): the packet goes with that entry, as Linux's
/// `nf_ct_resolve_clash()` gives the later packet the conntrack already
/// in the table. INVALID (`TableClash`) only if the clash was not on the
/// original tuple (a table that checks the reply tuple at insert).
fn resolve_clash<T: Table>(
    table: &mut T,
    info: &PacketInfo,
    now: u64,
    cfg: &Config,
) -> Processed<T::Handle> {
    let clash = only(Verdict::invalid(
        Direction::Original,
        InvalidReason::TableClash,
    ));
    let Some((h, dir)) = table.lookup(&info.tuple) else {
        return clash;
    };
    let upd = table.with_state(h, |mut c| {
        (!c.state.is_expired(now)).then(|| c.update(info, dir, now, cfg))
    });
    match upd {
        Some(Some(u)) if u.action == Action::Keep => Processed {
            verdict: u.verdict,
            conn: Some(h),
        },
        _ => clash,
    }
}

/// An ICMP error: RELATED to the connection of the quoted packet, if the
/// outer destination is that connection's endpoint in that direction.
fn related<T: Table>(
    table: &mut T,
    info: &PacketInfo,
    quoted: &crate::Tuple,
    now: u64,
) -> Processed<T::Handle> {
    let no_conn = only(Verdict::invalid(
        Direction::Original,
        InvalidReason::IcmpErrorNoConn,
    ));
    let Some(inner) = quoted.invert() else {
        return no_conn;
    };
    let Some((h, dir)) = table.lookup(&inner).or_else(|| {
        // An error about the first packet of a connection not confirmed
        // yet (a router's fragmentation-needed for the packet it cannot
        // forward): a table that indexes such a connection by its
        // original tuple only (see `crate::table`) finds it by the quoted
        // tuple, in the direction opposite the error's. Linux attaches the
        // offending packet's unconfirmed conntrack to the error
        // (`nf_conntrack_attach`).
        table
            .lookup(quoted)
            .filter(|(_, d)| *d == Direction::Original)
            .map(|(h, _)| (h, Direction::Reply))
    }) else {
        return no_conn;
    };
    let outer_dst = info.tuple.dst;
    let ok = table.with_conn(h, |key, c| {
        if c.state.is_expired(now) {
            None
        } else {
            Some(key.tuple(dir).dst == outer_dst)
        }
    });
    match ok {
        Some(Some(true)) => Processed {
            verdict: Verdict::new(dir, Class::Related),
            conn: Some(h),
        },
        Some(Some(false)) => only(Verdict::invalid(dir, InvalidReason::IcmpErrorAddr)),
        _ => no_conn,
    }
}
