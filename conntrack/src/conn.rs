//! The per-connection record [`Conn`], its creation from a first packet
//! and its per-packet [`ConnState::update`]; the [`Config`] with Linux
//! 6.12's default timeouts.
//!
//! A [`Conn`] is a [`ConnKey`] (both tuples: immutable once a table has
//! indexed the entry, so that lock-free readers may compare them) and a
//! [`ConnState`] (everything a packet changes, written under the entry's
//! lock).
//!
//! Kernel counterpart: `struct nf_conn` and `init_conntrack()`,
//! `nf_conntrack_handle_packet()`, `nf_ct_refresh_acct()`,
//! `resolve_normal_ct()` in `net/netfilter/nf_conntrack_core.c`.
//!
//! # Time
//! `now` is a monotonic time in **milliseconds** from the caller (the
//! kernel glue passes `jiffies_to_msecs(jiffies)` or `ktime_get_ns() /
//! 1_000_000`). The record keeps its deadline as the low 32 bits and
//! compares wrap-safely, like `nf_ct_is_expired()` does with jiffies: a
//! deadline is correct for up to 2^31 ms (24.8 days) around `now`, so every
//! timeout is capped at [`MAX_TIMEOUT_MS`] and the table's expiry must
//! visit each entry at least that often (it visits them all every few
//! seconds to minutes).

use crate::parse::{IcmpInfo, L4Info, PacketInfo};
use crate::proto::tcp::{Outcome, Tcp, TcpState};
use crate::proto::udp::Udp;
use crate::proto::{generic, icmp};
use crate::tuple::{Direction, PerDir, Tuple};
use crate::verdict::{Class, InvalidReason, Verdict};

/// The largest timeout a deadline can hold (2^31 - 1 ms, 24.8 days).
pub const MAX_TIMEOUT_MS: u32 = i32::MAX as u32;

/// `a` is after `b` on the wrapping 32-bit millisecond clock.
#[inline]
pub const fn time_after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// TCP timeouts per state, in ms (Linux 6.12 `tcp_timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTimeouts {
    /// SYN_SENT: 120 s.
    pub syn_sent: u32,
    /// SYN_RECV: 60 s.
    pub syn_recv: u32,
    /// ESTABLISHED: 5 days.
    pub established: u32,
    /// FIN_WAIT: 120 s.
    pub fin_wait: u32,
    /// CLOSE_WAIT: 60 s.
    pub close_wait: u32,
    /// LAST_ACK: 30 s.
    pub last_ack: u32,
    /// TIME_WAIT: 120 s.
    pub time_wait: u32,
    /// CLOSE: 10 s.
    pub close: u32,
    /// SYN_SENT2: 120 s.
    pub syn_sent2: u32,
    /// After `tcp_max_retrans` retransmissions: 300 s.
    pub retrans: u32,
    /// With unacknowledged data: 300 s.
    pub unack: u32,
}

/// All timeouts, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP, per state.
    pub tcp: TcpTimeouts,
    /// UDP without a reply: 30 s.
    pub udp_unreplied: u32,
    /// UDP stream (replied, active after 2 s): 120 s.
    pub udp_replied: u32,
    /// ICMP / ICMPv6: 30 s.
    pub icmp: u32,
    /// Other protocols: 600 s.
    pub generic: u32,
}

const S: u32 = 1000;

impl Default for Timeouts {
    /// Linux 6.12's defaults.
    fn default() -> Self {
        Timeouts {
            tcp: TcpTimeouts {
                syn_sent: 120 * S,
                syn_recv: 60 * S,
                established: 5 * 24 * 3600 * S,
                fin_wait: 120 * S,
                close_wait: 60 * S,
                last_ack: 30 * S,
                time_wait: 120 * S,
                close: 10 * S,
                syn_sent2: 120 * S,
                retrans: 300 * S,
                unack: 300 * S,
            },
            udp_unreplied: 30 * S,
            udp_replied: 120 * S,
            icmp: 30 * S,
            generic: generic::DEFAULT_TIMEOUT_MS,
        }
    }
}

/// Tracking settings (Linux's `net.netfilter.nf_conntrack_*` sysctls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Timeouts, in ms (each capped at [`MAX_TIMEOUT_MS`] when used).
    pub timeouts: Timeouts,
    /// Pick up TCP connections midstream (`nf_conntrack_tcp_loose`,
    /// Linux default on). When off, only a SYN creates a TCP connection.
    pub tcp_loose: bool,
    /// Accept out-of-window TCP packets (`nf_conntrack_tcp_be_liberal`,
    /// default off): the "liberal mode".
    pub tcp_be_liberal: bool,
    /// Do not mark RSTs below the highest ACK invalid
    /// (`nf_conntrack_tcp_ignore_invalid_rst`, default off).
    pub tcp_ignore_invalid_rst: bool,
    /// Retransmissions after which the RETRANS timeout applies
    /// (`nf_conntrack_tcp_max_retrans`, default 3).
    pub tcp_max_retrans: u8,
    /// Verify the L4 checksum of packets arriving from outside (PRE_ROUTING)
    /// before tracking them (`nf_conntrack_checksum`, default on); see
    /// [`crate::process::track_verified`].
    pub checksum: bool,
    /// Parse settings.
    pub parse: crate::parse::ParseOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeouts: Timeouts::default(),
            tcp_loose: true,
            tcp_be_liberal: false,
            tcp_ignore_invalid_rst: false,
            tcp_max_retrans: 3,
            checksum: true,
            parse: crate::parse::ParseOptions::default(),
        }
    }
}

/// Connection status bits; the numbering is the kernel's `IPS_*_BIT`, so
/// that they can be reported over netlink unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status(pub u16);

impl Status {
    /// Expected connection (unused by rfw yet).
    pub const EXPECTED: u16 = 1 << 0;
    /// A packet was seen in the reply direction.
    pub const SEEN_REPLY: u16 = 1 << 1;
    /// The connection is assured: not early-dropped.
    pub const ASSURED: u16 = 1 << 2;
    /// The connection is in the table (set by the table on insert).
    pub const CONFIRMED: u16 = 1 << 3;
    /// Source NAT applies (set by the NAT crate).
    pub const SRC_NAT: u16 = 1 << 4;
    /// Destination NAT applies (set by the NAT crate).
    pub const DST_NAT: u16 = 1 << 5;
    /// Both NAT bits (`IPS_NAT_MASK`).
    pub const NAT_MASK: u16 = Self::SRC_NAT | Self::DST_NAT;
    /// Sequence adjustment (unused by rfw).
    pub const SEQ_ADJUST: u16 = 1 << 6;
    /// Source NAT set up.
    pub const SRC_NAT_DONE: u16 = 1 << 7;
    /// Destination NAT set up.
    pub const DST_NAT_DONE: u16 = 1 << 8;
    /// Being removed.
    pub const DYING: u16 = 1 << 9;
    /// The timeout is fixed: packets do not refresh it.
    pub const FIXED_TIMEOUT: u16 = 1 << 10;
    /// The source NAT is a MASQUERADE: the binding dies when its address
    /// leaves the interface (set and read by the kernel glue only; Linux
    /// keeps this in the NAT extension, not in `IPS_*`: mask it out before
    /// reporting the status).
    pub const MASQUERADE: u16 = 1 << 14;
    /// Reserved for table implementations: never set or read by this
    /// crate; a table implementation may use it (the kernel table marks
    /// unconfirmed entries seen by one garbage-collection pass). Not an
    /// `IPS_*` bit: mask it out before reporting the status.
    pub const TABLE_PRIVATE: u16 = 1 << 15;

    /// True when all bits of `mask` are set.
    #[inline]
    pub const fn has(self, mask: u16) -> bool {
        self.0 & mask == mask
    }

    /// Sets the bits of `mask`.
    #[inline]
    pub fn insert(&mut self, mask: u16) {
        self.0 |= mask;
    }

    /// Clears the bits of `mask`.
    #[inline]
    pub fn remove(&mut self, mask: u16) {
        self.0 &= !mask;
    }
}

/// The protocol part of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4State {
    /// TCP: state and windows.
    Tcp(Tcp),
    /// UDP: stream detection.
    Udp(Udp),
    /// ICMP / ICMPv6 queries.
    Icmp,
    /// Any other protocol.
    Generic,
}

/// What the caller must do with the connection after [`Conn::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    Keep,
    /// Remove it from the table (an RST was the only reply); the packet is
    /// accepted with the verdict given.
    Remove,
    /// Remove it and process the packet again as the first of a new
    /// connection (a SYN reopening a closed TCP connection; Linux's
    /// `nf_ct_kill()` + `NF_REPEAT`).
    RemoveAndRepeat,
}

/// Result of [`Conn::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    /// The packet's verdict.
    pub verdict: Verdict,
    /// What to do with the connection.
    pub action: Action,
}

/// One connection: its [`ConnKey`] (both tuples, immutable once the entry
/// is in a table) and its [`ConnState`] (protocol state, deadline, status
/// and counters, changed by every packet).
///
/// The split lets a concurrent table compare tuples without a lock while
/// a writer holds `&mut ConnState` under the entry's lock: in Rust a
/// reader reading any field of a `Conn` while another CPU holds
/// `&mut Conn` is a data race, even if the fields differ. `Conn` keeps
/// the whole-record API (thin delegating methods) for code that owns the
/// record, such as a new connection before it is inserted.
///
/// `size_of::<Conn>()` is at most 160 bytes (the tests check it, the
/// benches print it): [`ConnKey`] 74, [`ConnState`] 84.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    key: ConnKey,
    state: ConnState,
}

/// The tuples of a connection: the original tuple and the reply tuple
/// (`nf_conn.tuplehash[]`'s tuples). The original tuple never changes; the
/// reply tuple may change until the connection is confirmed (NAT chooses
/// it: [`Conn::set_reply_tuple`], or in a table the table's own way), and
/// never after (see [`crate::table`]). A table may therefore keep the two
/// parts apart ([`ConnKey::into_parts`]).
///
/// 74 bytes, alignment 2: the reply tuple is kept without the protocol
/// and family it shares with the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnKey {
    orig: Tuple,
    reply: ReplyPart,
}

/// The reply tuple without the protocol and family it shares with the
/// original tuple (saves 2 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyPart {
    src: [u8; 16],
    dst: [u8; 16],
    src_port: u16,
    dst_port: u16,
}

impl ReplyPart {
    /// The part of reply tuple `t` a [`ConnKey`] keeps.
    #[inline]
    pub fn of(t: &Tuple) -> ReplyPart {
        ReplyPart {
            src: t.src,
            dst: t.dst,
            src_port: t.src_port,
            dst_port: t.dst_port,
        }
    }

    /// The reply tuple of a connection whose original tuple is `orig`.
    #[inline]
    pub fn tuple(&self, orig: &Tuple) -> Tuple {
        Tuple {
            src: self.src,
            dst: self.dst,
            src_port: self.src_port,
            dst_port: self.dst_port,
            proto: orig.proto,
            family: orig.family,
        }
    }

    /// True when the reply tuple of a connection whose original tuple is
    /// `orig` equals `t` (compared in place).
    #[inline]
    pub fn matches(&self, orig: &Tuple, t: &Tuple) -> bool {
        orig.proto == t.proto
            && orig.family == t.family
            && self.src_port == t.src_port
            && self.dst_port == t.dst_port
            && self.src == t.src
            && self.dst == t.dst
    }
}

impl ConnKey {
    /// The key of a connection with these tuples (the reply tuple's
    /// protocol and family are the original's).
    pub fn from_tuples(orig: Tuple, reply: &Tuple) -> ConnKey {
        ConnKey {
            orig,
            reply: ReplyPart::of(reply),
        }
    }

    /// The key of original tuple `orig` and reply part `reply`.
    #[inline]
    pub fn from_parts(orig: Tuple, reply: ReplyPart) -> ConnKey {
        ConnKey { orig, reply }
    }

    /// The original tuple and the reply part, apart.
    #[inline]
    pub fn into_parts(self) -> (Tuple, ReplyPart) {
        (self.orig, self.reply)
    }

    /// The tuple of one direction.
    #[inline]
    pub fn tuple(&self, dir: Direction) -> Tuple {
        match dir {
            Direction::Original => self.orig,
            Direction::Reply => self.reply.tuple(&self.orig),
        }
    }

    /// The original tuple.
    #[inline]
    pub fn orig(&self) -> &Tuple {
        &self.orig
    }

    /// Which ends of the original tuple the reply tuple no longer mirrors:
    /// `(source, destination)`. The reply tuple of an untranslated
    /// connection is the original's inverse; NAT moves the source end
    /// (source NAT) or the destination end (destination NAT). Compared in
    /// place. Only meaningful where the inverse is a plain swap of
    /// addresses and ports: not for ICMP, whose inverse changes the type
    /// and keeps the identifier (the caller checks).
    #[inline]
    pub fn moved(&self) -> (bool, bool) {
        let (o, r) = (&self.orig, &self.reply);
        (
            r.dst != o.src || r.dst_port != o.src_port,
            r.src != o.dst || r.src_port != o.dst_port,
        )
    }

    /// The original direction's tuple between destination and source NAT,
    /// when the connection has both (hairpin NAT, DNAT and MASQUERADE of
    /// one flow): what its packets carry after the destination NAT hook
    /// (PRE_ROUTING, LOCAL_OUT) and before the source NAT one (LOCAL_IN,
    /// POST_ROUTING), the original source to the reply's source. A reply
    /// carries its inverse between its two hooks. Neither is one of the
    /// connection's tuples; Linux never looks a packet up by it (the skb
    /// carries its conntrack), rfw's fallback lookup does.
    ///
    /// For ICMP queries only the addresses tell a manip (either may move
    /// the identifier), and the identifier after destination NAT is
    /// already the final one: both manips write the target tuple's
    /// (`nf_nat_proto.c`, `icmp_manip_pkt`).
    pub fn between_nat(&self) -> Option<Tuple> {
        self.after_dnat(true)
    }

    /// The original direction's tuple after destination NAT, when the
    /// connection has one: what its packets carry from the destination
    /// NAT hook on, until a source NAT hook (if any) rewrites them. With
    /// `need_snat`, only for connections that also have source NAT
    /// ([`ConnKey::between_nat`]). A connection with destination NAT only
    /// carries the inverse of its reply tuple; before it is confirmed
    /// that tuple is not yet in a table (see [`crate::table`]), so rfw's
    /// fallback lookup indexes this one instead.
    pub fn after_dnat(&self, need_snat: bool) -> Option<Tuple> {
        let (o, r) = (&self.orig, &self.reply);
        let (src, dst, src_port) = if o.is_icmp() {
            (r.dst != o.src, r.src != o.dst, r.src_port)
        } else {
            let (s, d) = self.moved();
            (s, d, o.src_port)
        };
        ((src || !need_snat) && dst).then_some(Tuple {
            src: o.src,
            dst: r.src,
            src_port,
            dst_port: if o.is_icmp() { o.dst_port } else { r.src_port },
            proto: o.proto,
            family: o.family,
        })
    }

    /// True when the tuple of `dir` equals `t` (compares in place,
    /// without building the reply tuple).
    #[inline]
    pub fn matches(&self, dir: Direction, t: &Tuple) -> bool {
        match dir {
            Direction::Original => self.orig == *t,
            Direction::Reply => self.reply.matches(&self.orig, t),
        }
    }

    /// The direction whose tuple equals `t` (the original first, as a
    /// connection whose tuples are equal is found in that direction).
    #[inline]
    pub fn direction_of(&self, t: &Tuple) -> Option<Direction> {
        if self.matches(Direction::Original, t) {
            Some(Direction::Original)
        } else if self.matches(Direction::Reply, t) {
            Some(Direction::Reply)
        } else {
            None
        }
    }
}

/// The mutable part of a connection: protocol state, byte and packet
/// counters, deadline and status. Everything a packet changes; a
/// concurrent table hands out `&mut ConnState` only under the entry's
/// lock ([`crate::table::Table::with_conn_mut`]).
///
/// 84 bytes, alignment 4 (the 64-bit byte counters are stored as two
/// 32-bit halves so that no padding is needed next to the 74-byte key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnState {
    l4: L4State,
    bytes: PerDir<Bytes>,
    packets: PerDir<u32>,
    expires: u32,
    status: Status,
    /// The low 16 bits of the time of creation, in milliseconds: how long
    /// an entry has been unconfirmed ([`ConnState::age_ms`]). It fills
    /// what would be padding.
    born: u16,
}

/// A 64-bit counter with 4-byte alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Bytes {
    lo: u32,
    hi: u32,
}

impl Bytes {
    #[inline]
    fn get(self) -> u64 {
        (self.hi as u64) << 32 | self.lo as u64
    }

    #[inline]
    fn add(&mut self, n: u64) {
        let v = self.get().wrapping_add(n);
        self.lo = v as u32;
        self.hi = (v >> 32) as u32;
    }
}

fn cap(t: u32) -> u32 {
    t.min(MAX_TIMEOUT_MS)
}

impl Conn {
    /// Creates the (unconfirmed) connection of a packet that matched no
    /// entry, or says why that packet may not create one
    /// (`init_conntrack()` and the l4proto `new` checks: `tcp_new()`,
    /// ICMP `valid_new`). The reply tuple is the inverse of the packet's
    /// tuple; NAT may change it before the entry is inserted.
    ///
    /// The packet itself is not accounted yet: call [`Conn::update`] with
    /// [`Direction::Original`] next, as Linux runs the tracker on the first
    /// packet after creating the entry.
    pub fn new(info: &PacketInfo, now: u64, cfg: &Config) -> Result<Conn, InvalidReason> {
        let orig = info.tuple;
        let l4 = match &info.l4 {
            L4Info::Tcp(t) => {
                if !crate::proto::tcp::valid_flags(t.flags) {
                    return Err(InvalidReason::TcpFlags);
                }
                L4State::Tcp(Tcp::new(t, cfg)?)
            }
            L4Info::Udp { .. } => L4State::Udp(Udp::new(now as u32)),
            L4Info::Icmp(IcmpInfo::Query { .. }) => {
                icmp::check_new(&orig)?;
                L4State::Icmp
            }
            L4Info::Icmp(IcmpInfo::Other { ty, .. }) => {
                if orig.family == crate::Family::Ipv4 && *ty > crate::wire::icmpv4::MAX_KNOWN_TYPE {
                    return Err(InvalidReason::IcmpUnknownType);
                }
                return Err(InvalidReason::IcmpNotNew);
            }
            L4Info::Icmp(_) => return Err(InvalidReason::IcmpNotNew),
            L4Info::Other => L4State::Generic,
        };
        let reply = orig.invert().ok_or(InvalidReason::IcmpNotNew)?;
        Ok(Conn {
            key: ConnKey {
                orig,
                reply: ReplyPart::of(&reply),
            },
            state: ConnState {
                l4,
                bytes: PerDir([Bytes::default(); 2]),
                packets: PerDir([0, 0]),
                expires: now as u32,
                status: Status::default(),
                born: now as u16,
            },
        })
    }

    /// Reassembles a connection from its parts (e.g. when a table hands
    /// an entry back).
    #[inline]
    pub fn from_parts(key: ConnKey, state: ConnState) -> Conn {
        Conn { key, state }
    }

    /// Splits the connection into its key and its state (e.g. to store
    /// them apart in a table entry).
    #[inline]
    pub fn into_parts(self) -> (ConnKey, ConnState) {
        (self.key, self.state)
    }

    /// The key: both tuples.
    #[inline]
    pub fn key(&self) -> &ConnKey {
        &self.key
    }

    /// The state.
    #[inline]
    pub fn state(&self) -> &ConnState {
        &self.state
    }

    /// The state, writable.
    #[inline]
    pub fn state_mut(&mut self) -> &mut ConnState {
        &mut self.state
    }

    /// The key, read-only, and the state, writable, at once (what
    /// [`crate::table::Table::with_conn_mut`] hands out).
    #[inline]
    pub fn parts_mut(&mut self) -> (&ConnKey, &mut ConnState) {
        (&self.key, &mut self.state)
    }

    /// The tuple of one direction ([`ConnKey::tuple`]).
    #[inline]
    pub fn tuple(&self, dir: Direction) -> Tuple {
        self.key.tuple(dir)
    }

    /// Replaces the reply tuple's addresses and ports (NAT, before the
    /// entry is inserted: a table never gives write access to the key of
    /// an indexed entry). Its protocol and family are the original's.
    pub fn set_reply_tuple(&mut self, t: Tuple) {
        self.key.reply = ReplyPart::of(&t);
    }

    /// Status bits ([`ConnState::status`]).
    #[inline]
    pub fn status(&self) -> Status {
        self.state.status()
    }

    /// Status bits, writable ([`ConnState::status_mut`]).
    #[inline]
    pub fn status_mut(&mut self) -> &mut Status {
        self.state.status_mut()
    }

    /// The protocol state ([`ConnState::l4`]).
    pub fn l4(&self) -> &L4State {
        self.state.l4()
    }

    /// The TCP state, for TCP connections ([`ConnState::tcp_state`]).
    pub fn tcp_state(&self) -> Option<TcpState> {
        self.state.tcp_state()
    }

    /// Packets and bytes seen in one direction ([`ConnState::counters`]).
    pub fn counters(&self, dir: Direction) -> (u32, u64) {
        self.state.counters(dir)
    }

    /// True when the deadline has passed ([`ConnState::is_expired`]).
    #[inline]
    pub fn is_expired(&self, now: u64) -> bool {
        self.state.is_expired(now)
    }

    /// Milliseconds until expiry ([`ConnState::expires_in`]).
    pub fn expires_in(&self, now: u64) -> u32 {
        self.state.expires_in(now)
    }

    /// Sets the deadline ([`ConnState::set_timeout`]).
    pub fn set_timeout(&mut self, now: u64, timeout_ms: u32) {
        self.state.set_timeout(now, timeout_ms)
    }

    /// True when the table may evict this entry
    /// ([`ConnState::can_early_drop`]).
    pub fn can_early_drop(&self) -> bool {
        self.state.can_early_drop()
    }

    /// The class of a packet in `dir` before tracking
    /// ([`ConnState::class_of`]).
    pub fn class_of(&self, dir: Direction) -> Class {
        self.state.class_of(dir)
    }

    /// Runs the protocol tracker on one packet ([`ConnState::update`]).
    pub fn update(&mut self, info: &PacketInfo, dir: Direction, now: u64, cfg: &Config) -> Update {
        self.state.update(info, dir, now, cfg)
    }
}

impl ConnState {
    /// Status bits.
    #[inline]
    pub fn status(&self) -> Status {
        self.status
    }

    /// Status bits, writable (NAT and the table set theirs).
    #[inline]
    pub fn status_mut(&mut self) -> &mut Status {
        &mut self.status
    }

    /// The protocol state.
    pub fn l4(&self) -> &L4State {
        &self.l4
    }

    /// The TCP state, for TCP connections.
    pub fn tcp_state(&self) -> Option<TcpState> {
        match &self.l4 {
            L4State::Tcp(t) => Some(t.state),
            _ => None,
        }
    }

    /// Packets and bytes seen in one direction.
    pub fn counters(&self, dir: Direction) -> (u32, u64) {
        (self.packets[dir], self.bytes[dir].get())
    }

    /// Milliseconds since the entry was created, modulo 65,536: meant
    /// for unconfirmed entries, which the collector reaps long before
    /// that wraps. A packet crosses its hooks in microseconds unless it
    /// waits in a user-space queue; an entry unconfirmed for longer lost
    /// its packet between hooks (Linux frees such a conntrack with its
    /// skb).
    #[inline]
    pub fn age_ms(&self, now: u64) -> u16 {
        (now as u16).wrapping_sub(self.born)
    }

    /// True when the deadline has passed (`nf_ct_is_expired()`).
    #[inline]
    pub fn is_expired(&self, now: u64) -> bool {
        !time_after(self.expires, now as u32)
    }

    /// Milliseconds until expiry (0 when expired).
    pub fn expires_in(&self, now: u64) -> u32 {
        if self.is_expired(now) {
            0
        } else {
            self.expires.wrapping_sub(now as u32)
        }
    }

    /// Sets the deadline to `now + timeout` (capped).
    pub fn set_timeout(&mut self, now: u64, timeout_ms: u32) {
        self.expires = (now as u32).wrapping_add(cap(timeout_ms));
    }

    /// True when the table may evict this entry to make room
    /// (`early_drop_list()` / `gc_worker_can_early_drop()`): not assured,
    /// or a TCP connection that is closing.
    pub fn can_early_drop(&self) -> bool {
        if !self.status.has(Status::ASSURED) {
            return true;
        }
        matches!(&self.l4, L4State::Tcp(t) if t.can_early_drop())
    }

    /// The class of a packet in `dir` before tracking
    /// (`resolve_normal_ct()`): reply packets and packets of replied
    /// connections are ESTABLISHED, others NEW.
    pub fn class_of(&self, dir: Direction) -> Class {
        if dir == Direction::Reply || self.status.has(Status::SEEN_REPLY) {
            Class::Established
        } else {
            Class::New
        }
    }

    /// Runs the protocol tracker on one packet of this connection
    /// (`nf_conntrack_handle_packet()` and what `nf_conntrack_in()` does
    /// after it): updates the state, the deadline, the counters and the
    /// SEEN_REPLY / ASSURED bits, and returns the verdict and what the
    /// table must do. `info` must belong to this connection in `dir`
    /// (the tuples are not needed: the caller found the entry by them).
    pub fn update(&mut self, info: &PacketInfo, dir: Direction, now: u64, cfg: &Config) -> Update {
        let class = self.class_of(dir);
        let now32 = now as u32;
        let expires_in = self.expires_in(now);
        let status = self.status;
        let mut action = Action::Keep;
        let mut assure = false;
        let refresh: Option<u32> = match (&mut self.l4, &info.l4) {
            (L4State::Tcp(t), L4Info::Tcp(ti)) => {
                if !crate::proto::tcp::valid_flags(ti.flags) {
                    return invalid(dir, InvalidReason::TcpFlags);
                }
                match t.packet(ti, dir, status, expires_in, cfg) {
                    Outcome::Accept {
                        timeout,
                        assure: a,
                        kill,
                    } => {
                        assure = a;
                        if kill {
                            action = Action::Remove;
                        }
                        timeout
                    }
                    Outcome::Ignore(r) => {
                        // Accepted without tracking: no refresh, no
                        // accounting, but `nf_conntrack_in()` still marks
                        // the reply as seen.
                        if dir == Direction::Reply {
                            self.status.insert(Status::SEEN_REPLY);
                        }
                        return Update {
                            verdict: Verdict {
                                dir,
                                class,
                                ignored: Some(r),
                            },
                            action: Action::Keep,
                        };
                    }
                    Outcome::Invalid {
                        reason,
                        lower_timeout,
                    } => {
                        if let Some(t) = lower_timeout {
                            self.set_timeout(now, t);
                        }
                        return invalid(dir, reason);
                    }
                    Outcome::Repeat => {
                        return Update {
                            verdict: Verdict::new(dir, Class::New),
                            action: Action::RemoveAndRepeat,
                        }
                    }
                }
            }
            (L4State::Udp(u), L4Info::Udp { .. }) => {
                let (t, a) = u.packet(status, now32, cfg);
                assure = a;
                Some(t)
            }
            (L4State::Icmp, L4Info::Icmp(IcmpInfo::Query { .. })) => Some(cfg.timeouts.icmp),
            (L4State::Generic, _) => Some(cfg.timeouts.generic),
            // A packet whose protocol does not match the entry's: the
            // caller looked up the wrong entry. Say so, change nothing.
            _ => return invalid(dir, InvalidReason::WrongConn),
        };
        if let Some(t) = refresh {
            if !self.status.has(Status::FIXED_TIMEOUT) {
                self.set_timeout(now, t);
            }
        }
        // nf_ct_refresh_acct(): counters.
        self.packets[dir] = self.packets[dir].wrapping_add(1);
        self.bytes[dir].add(info.ip_len as u64);
        if assure {
            self.status.insert(Status::ASSURED);
        }
        if dir == Direction::Reply {
            self.status.insert(Status::SEEN_REPLY);
        }
        Update {
            verdict: Verdict::new(dir, class),
            action,
        }
    }
}

fn invalid(dir: Direction, reason: InvalidReason) -> Update {
    Update {
        verdict: Verdict::invalid(dir, reason),
        action: Action::Keep,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn record_size() {
        use core::mem::{align_of, size_of};
        let (n, k, st) = (
            size_of::<Conn>(),
            size_of::<ConnKey>(),
            size_of::<ConnState>(),
        );
        std::println!(
            "size_of::<Conn>() = {n}, ConnKey = {k} (align {}), ConnState = {st} (align {}), \
             Tuple = {}, Tcp = {}, L4State = {}",
            align_of::<ConnKey>(),
            align_of::<ConnState>(),
            size_of::<Tuple>(),
            size_of::<Tcp>(),
            size_of::<L4State>()
        );
        assert!(n <= 160, "Conn grew to {n} bytes");
        assert!(k + st <= 160, "ConnKey + ConnState = {k} + {st} bytes");
        assert_eq!(k, 74, "ConnKey holds 74 bytes of data");
    }

    #[test]
    fn age_counts_from_creation_and_wraps() {
        let cfg = Config::default();
        let info = PacketInfo {
            tuple: Tuple::v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 1000, 53),
            l4: L4Info::Udp { payload_len: 0 },
            fragment: crate::parse::FragmentStatus::Whole,
            ip_len: 28,
            checksum: None,
            invalid: None,
        };
        let born = 0x1_fff0;
        let c = Conn::new(&info, born, &cfg).unwrap();
        assert_eq!(c.state().age_ms(born), 0);
        assert_eq!(c.state().age_ms(born + 1500), 1500);
        // Across the 16-bit wrap of the clock.
        assert_eq!(c.state().age_ms(born + 0x20), 0x20);
        assert_eq!(c.state().age_ms(born + 65_535), 65_535);
        assert_eq!(c.state().age_ms(born + 65_536), 0);
    }

    #[test]
    fn key_matches_its_tuples() {
        let cfg = Config::default();
        let t = Tuple::v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 1000, 53);
        let info = PacketInfo {
            tuple: t,
            l4: L4Info::Udp { payload_len: 0 },
            fragment: crate::parse::FragmentStatus::Whole,
            invalid: None,
            ip_len: 28,
            checksum: None,
        };
        let mut c = Conn::new(&info, 0, &cfg).unwrap();
        let mut r = t.invert().unwrap();
        r.dst = [192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        r.dst_port = 6000;
        c.set_reply_tuple(r);
        let k = c.key();
        for dir in [Direction::Original, Direction::Reply] {
            assert!(k.matches(dir, &k.tuple(dir)));
            assert!(!k.matches(dir, &k.tuple(dir.opposite())));
            assert_eq!(k.direction_of(&k.tuple(dir)), Some(dir));
        }
        assert_eq!(k.orig(), &t);
        assert_eq!(k.tuple(Direction::Reply), r);
        // Protocol and family of the reply are the original's.
        let mut other = r;
        other.proto = 6;
        assert!(!k.matches(Direction::Reply, &other));
        assert_eq!(k.direction_of(&other), None);
        other = r;
        other.src_port ^= 1;
        assert!(!k.matches(Direction::Reply, &other));
        // Parts round-trip.
        let c2 = c.clone();
        let (key, mut state) = c.into_parts();
        assert_eq!(Conn::from_parts(key, state.clone()), c2);
        // The state updates without the key.
        let u = state.update(&info, Direction::Original, 5, &cfg);
        assert_eq!(u.verdict.class, Class::New);
        assert_eq!(state.counters(Direction::Original), (1, 28));
        assert_eq!(state.expires_in(5), cfg.timeouts.udp_unreplied);
        // 64-bit byte counters across the 32-bit boundary.
        let mut b = Bytes::default();
        b.add(u32::MAX as u64);
        b.add(2);
        assert_eq!(b.get(), (1 << 32) + 1);
        b.add(u64::MAX);
        assert_eq!(b.get(), 1 << 32);
    }
}

#[cfg(test)]
mod between_nat_tests {
    use super::*;
    use crate::ipproto;

    const C: [u8; 4] = [10, 0, 1, 2];
    const S: [u8; 4] = [10, 0, 1, 3];
    const R: [u8; 4] = [10, 0, 1, 1];
    const P: [u8; 4] = [192, 0, 2, 1];

    fn key(orig: Tuple, reply: Tuple) -> ConnKey {
        ConnKey::from_tuples(orig, &reply)
    }

    #[test]
    fn hairpin_tcp_is_between_its_manips() {
        // C:40000 -> P:8080, DNAT to S:80, MASQUERADE to R:61000.
        let orig = Tuple::v4(C, P, ipproto::TCP, 40000, 8080);
        let reply = Tuple::v4(S, R, ipproto::TCP, 80, 61000);
        let t = key(orig, reply).between_nat().expect("both manips");
        assert_eq!(t, Tuple::v4(C, S, ipproto::TCP, 40000, 80));
    }

    #[test]
    fn one_manip_or_none_has_no_between_tuple() {
        let orig = Tuple::v4(C, P, ipproto::UDP, 5000, 53);
        // Untranslated, DNAT only, SNAT only, SNAT of the port only.
        for reply in [
            Tuple::v4(P, C, ipproto::UDP, 53, 5000),
            Tuple::v4(S, C, ipproto::UDP, 53, 5000),
            Tuple::v4(P, R, ipproto::UDP, 53, 1024),
            Tuple::v4(P, C, ipproto::UDP, 53, 1024),
        ] {
            assert_eq!(key(orig, reply).between_nat(), None, "{reply:?}");
        }
        // Both ends moved by their ports alone still count.
        let reply = Tuple::v4(P, C, ipproto::UDP, 5353, 1024);
        assert_eq!(
            key(orig, reply).between_nat(),
            Some(Tuple::v4(C, P, ipproto::UDP, 5000, 5353))
        );
    }

    #[test]
    fn icmp_takes_the_final_identifier_and_addresses_decide() {
        // Echo request C -> P id 7, DNAT to S, SNAT to R with id 9.
        let orig = Tuple::v4(C, P, ipproto::ICMP, 7, 8 << 8);
        let reply = Tuple::v4(S, R, ipproto::ICMP, 9, 0);
        let t = key(orig, reply).between_nat().expect("both manips");
        assert_eq!(t, Tuple::v4(C, S, ipproto::ICMP, 9, 8 << 8));
        // Only the identifier moved: not both manips.
        let reply = Tuple::v4(P, C, ipproto::ICMP, 9, 0);
        assert_eq!(key(orig, reply).between_nat(), None);
    }
}
