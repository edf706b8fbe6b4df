//! The per-connection record [`Conn`], its creation from a first packet
//! and its per-packet [`ConnRef::update`]; the [`Config`] with Linux
//! 6.12's default timeouts.
//!
//! A [`Conn`] is a [`ConnKey`] (both tuples: immutable once a table has
//! indexed the entry, so that lock-free readers may compare them), a
//! [`ConnState`] (counters and deadline: atomics, updated by any CPU
//! without a lock), a status word ([`StatusWord`]: atomic bits) and, for
//! TCP only, its [`Tcp`] window state (written under the entry's lock).
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
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

use crate::proto::tcp::{Outcome, Tcp, TcpState};
use crate::proto::{generic, icmp, udp};
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

impl Timeouts {
    /// The timeout a packet of an offloaded connection of protocol `proto`
    /// gives it: TCP's ESTABLISHED (only established connections are
    /// offloaded, and FIN or RST leaves the fast path), a UDP stream's, or
    /// the generic one.
    pub fn offloaded(&self, proto: u8) -> u32 {
        match proto {
            crate::ipproto::TCP => self.tcp.established,
            crate::ipproto::UDP => self.udp_replied,
            _ => self.generic,
        }
    }
}

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

/// One connection, owned: its [`ConnKey`] (both tuples, immutable once
/// the entry is in a table), its [`ConnState`] (deadline and counters,
/// changed lock-free by every packet), its status bits and, for TCP, its
/// [`Tcp`] state (changed under the entry's lock).
///
/// A table stores these parts apart ([`Conn::into_parts`]): a concurrent
/// table compares tuples without a lock, refreshes UDP, ICMP and other
/// connections with atomic operations alone (as Linux's
/// `nf_ct_refresh_acct()` does: `WRITE_ONCE` of the timeout, atomic
/// counters, `set_bit` on the status), and takes the entry's lock only
/// for TCP's window tracking. [`ConnRef`] is the view of the parts that
/// the per-packet update works on. `Conn` keeps the whole-record API
/// (thin delegating methods) for code that owns the record, such as a
/// new connection before it is inserted.
#[derive(Debug)]
pub struct Conn {
    key: ConnKey,
    state: ConnState,
    status: AtomicStatus,
    tcp: Option<Tcp>,
}

impl Clone for Conn {
    fn clone(&self) -> Conn {
        Conn {
            key: self.key,
            state: self.state.clone(),
            status: AtomicStatus::new(self.status.load()),
            tcp: self.tcp,
        }
    }
}

impl PartialEq for Conn {
    fn eq(&self, o: &Conn) -> bool {
        self.key == o.key
            && self.state == o.state
            && self.status.load() == o.status.load()
            && self.tcp == o.tcp
    }
}

impl Eq for Conn {}

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

/// A connection's status word, as a table stores it: read and written
/// with atomic operations, as Linux's `ct->status` is with `set_bit()` and
/// `test_bit()`. The per-packet update sets SEEN_REPLY and ASSURED through
/// it without any lock.
///
/// [`Status::CONFIRMED`] is the table's: [`StatusWord::set`] and
/// [`StatusWord::clear`] never change it (a table that reads the reply
/// tuple without a lock once CONFIRMED is set must be the only one to set
/// it; the kernel table's confirmation does, `HostTable` on insert).
pub trait StatusWord {
    /// The bits now.
    fn load(&self) -> Status;
    /// Sets the bits of `mask` (except CONFIRMED); returns the bits before.
    fn set(&self, mask: u16) -> Status;
    /// Clears the bits of `mask` (except CONFIRMED).
    fn clear(&self, mask: u16);
}

/// A [`StatusWord`] of its own, for an owned [`Conn`] and host tables.
#[derive(Debug, Default)]
pub struct AtomicStatus(AtomicU16);

impl AtomicStatus {
    /// A word holding `s`.
    pub const fn new(s: Status) -> AtomicStatus {
        AtomicStatus(AtomicU16::new(s.0))
    }

    /// Sets [`Status::CONFIRMED`] (the owner of the word: a table
    /// confirming its entry).
    pub fn confirm(&self) {
        self.0.fetch_or(Status::CONFIRMED, Ordering::Release);
    }
}

impl StatusWord for AtomicStatus {
    #[inline]
    fn load(&self) -> Status {
        Status(self.0.load(Ordering::Acquire))
    }

    #[inline]
    fn set(&self, mask: u16) -> Status {
        Status(self.0.fetch_or(mask & !Status::CONFIRMED, Ordering::AcqRel))
    }

    #[inline]
    fn clear(&self, mask: u16) {
        self.0
            .fetch_and(!(mask & !Status::CONFIRMED), Ordering::AcqRel);
    }
}

/// The lock-free part of a connection: byte and packet counters, deadline
/// and time of creation. Every field is an atomic or fixed at creation,
/// so any CPU may read or update it at any time (`&ConnState` is all it
/// takes): two packets of one UDP flow on two CPUs refresh it at once,
/// each store of the deadline is whole, and no count is lost.
///
/// 32 bytes, alignment 8.
#[derive(Debug)]
pub struct ConnState {
    bytes: PerDir<AtomicU64>,
    packets: PerDir<AtomicU32>,
    expires: AtomicU32,
    /// The time of creation, in milliseconds (wrapping). UDP's stream
    /// detection counts from it (Linux keeps `stream_ts`, the same time
    /// plus 2 s, in the UDP part of `nf_conn`), and the table tells from it
    /// how long an entry has been unconfirmed.
    born: u32,
}

impl Clone for ConnState {
    /// A copy of the values as they are now.
    fn clone(&self) -> ConnState {
        let r = Ordering::Relaxed;
        let b = |d| AtomicU64::new(self.bytes[d].load(r));
        let p = |d| AtomicU32::new(self.packets[d].load(r));
        ConnState {
            bytes: PerDir([b(Direction::Original), b(Direction::Reply)]),
            packets: PerDir([p(Direction::Original), p(Direction::Reply)]),
            expires: AtomicU32::new(self.expires.load(r)),
            born: self.born,
        }
    }
}

impl PartialEq for ConnState {
    fn eq(&self, o: &ConnState) -> bool {
        let r = Ordering::Relaxed;
        [Direction::Original, Direction::Reply]
            .iter()
            .all(|&d| self.counters(d) == o.counters(d))
            && self.expires.load(r) == o.expires.load(r)
            && self.born == o.born
    }
}

impl Eq for ConnState {}

/// How far a fast path's refresh may leave the deadline behind
/// ([`ConnState::offloaded_packet`]): one second, the flowtable's `HZ`.
pub const REFRESH_SLACK_MS: u32 = 1000;

fn cap(t: u32) -> u32 {
    t.min(MAX_TIMEOUT_MS)
}

impl ConnState {
    /// The state of a connection created at `now`: no packets counted,
    /// expired until the first update sets its timeout.
    pub fn new(now: u64) -> ConnState {
        ConnState {
            bytes: PerDir([AtomicU64::new(0), AtomicU64::new(0)]),
            packets: PerDir([AtomicU32::new(0), AtomicU32::new(0)]),
            expires: AtomicU32::new(now as u32),
            born: now as u32,
        }
    }

    /// Packets and bytes seen in one direction.
    pub fn counters(&self, dir: Direction) -> (u32, u64) {
        (
            self.packets[dir].load(Ordering::Relaxed),
            self.bytes[dir].load(Ordering::Relaxed),
        )
    }

    /// Milliseconds since the entry was created (wrapping at 2^32):
    /// meant for unconfirmed entries, which the collector reaps within
    /// seconds. A packet crosses its hooks in microseconds unless it waits
    /// in a user-space queue; an entry unconfirmed for longer lost its
    /// packet between hooks (Linux frees such a conntrack with its skb).
    #[inline]
    pub fn age_ms(&self, now: u64) -> u32 {
        (now as u32).wrapping_sub(self.born)
    }

    /// True when the deadline has passed (`nf_ct_is_expired()`).
    #[inline]
    pub fn is_expired(&self, now: u64) -> bool {
        !time_after(self.expires.load(Ordering::Relaxed), now as u32)
    }

    /// Milliseconds until expiry (0 when expired).
    pub fn expires_in(&self, now: u64) -> u32 {
        let e = self.expires.load(Ordering::Relaxed);
        if !time_after(e, now as u32) {
            0
        } else {
            e.wrapping_sub(now as u32)
        }
    }

    /// Sets the deadline to `now + timeout` (capped). A plain store, as
    /// Linux's `WRITE_ONCE(ct->timeout, ...)`: of two packets refreshing
    /// at once, the later store wins, and both are `now` plus a timeout.
    pub fn set_timeout(&self, now: u64, timeout_ms: u32) {
        self.expires.store(
            (now as u32).wrapping_add(cap(timeout_ms)),
            Ordering::Relaxed,
        );
    }

    /// One packet of `len` bytes in `dir` forwarded by a fast path: counted
    /// (`nf_ct_acct_update()`), and the deadline moved to `now +
    /// timeout_ms` with the timeout of the connection's established state
    /// ([`Timeouts::offloaded`]), as the flowtable keeps an offloaded
    /// conntrack alive while its packets flow. No tracker runs.
    ///
    /// The deadline is written only when it moves by more than
    /// [`REFRESH_SLACK_MS`], as `flow_offload_refresh` writes the flow's
    /// (`timeout - flow->timeout > HZ`): the two directions of a busy flow,
    /// often on two CPUs, do not write the same word at every packet. A
    /// later deadline (of a longer timeout set before) stays.
    #[inline]
    pub fn offloaded_packet(&self, dir: Direction, len: u64, now: u64, timeout_ms: u32) {
        self.account(dir, len);
        let want = (now as u32).wrapping_add(cap(timeout_ms));
        let cur = self.expires.load(Ordering::Relaxed);
        if want.wrapping_sub(cur) as i32 > REFRESH_SLACK_MS as i32 {
            self.expires.store(want, Ordering::Relaxed);
        }
    }

    /// `nf_ct_acct_update()`: one packet of `len` bytes in `dir`.
    #[inline]
    fn account(&self, dir: Direction, len: u64) {
        self.packets[dir].fetch_add(1, Ordering::Relaxed);
        self.bytes[dir].fetch_add(len, Ordering::Relaxed);
    }
}

/// True when a table may evict a connection with status `status` and TCP
/// state `tcp` to make room (`early_drop_list()` /
/// `gc_worker_can_early_drop()`): not assured, or a TCP connection that is
/// closing.
pub fn can_early_drop(status: Status, tcp: Option<&Tcp>) -> bool {
    !status.has(Status::ASSURED) || tcp.is_some_and(Tcp::can_early_drop)
}

/// The class of a packet in `dir` of a connection with status `status`,
/// before tracking (`resolve_normal_ct()`): reply packets and packets of
/// replied connections are ESTABLISHED, others NEW.
pub fn class_of(status: Status, dir: Direction) -> Class {
    if dir == Direction::Reply || status.has(Status::SEEN_REPLY) {
        Class::Established
    } else {
        Class::New
    }
}

/// The parts of a stored connection that the per-packet update works on:
/// its lock-free state, its status word and, for TCP only, its [`Tcp`]
/// state, which the table hands out under the entry's lock. A table gives
/// a UDP, ICMP or other connection's `ConnRef` without any lock.
pub struct ConnRef<'a, S: StatusWord + ?Sized> {
    /// Counters, deadline, time of creation.
    pub state: &'a ConnState,
    /// The status bits.
    pub status: &'a S,
    /// The TCP state: `Some` for a TCP connection (under its lock),
    /// `None` for any other.
    pub tcp: Option<&'a mut Tcp>,
}

impl<S: StatusWord + ?Sized> ConnRef<'_, S> {
    /// True when the table may evict this entry ([`can_early_drop`]).
    pub fn can_early_drop(&self) -> bool {
        can_early_drop(self.status.load(), self.tcp.as_deref())
    }

    /// The TCP state, for TCP connections.
    pub fn tcp_state(&self) -> Option<TcpState> {
        self.tcp.as_ref().map(|t| t.state)
    }

    /// Runs the protocol tracker on one packet of this connection
    /// (`nf_conntrack_handle_packet()` and what `nf_conntrack_in()` does
    /// after it): updates the TCP state, the deadline, the counters and
    /// the SEEN_REPLY / ASSURED bits, and returns the verdict and what the
    /// table must do. `info` must belong to this connection in `dir`
    /// (the tuples are not needed: the caller found the entry by them).
    ///
    /// Only a TCP connection's update needs the entry's lock (for
    /// `self.tcp`); any other's is a few atomic operations, as in Linux,
    /// whose UDP, ICMP and generic trackers take no lock.
    pub fn update(&mut self, info: &PacketInfo, dir: Direction, now: u64, cfg: &Config) -> Update {
        let status = self.status.load();
        let class = class_of(status, dir);
        let state = self.state;
        let mut action = Action::Keep;
        let mut assure = false;
        let refresh: Option<u32> = match (self.tcp.as_deref_mut(), &info.l4) {
            (Some(t), L4Info::Tcp(ti)) => {
                if !crate::proto::tcp::valid_flags(ti.flags) {
                    return invalid(dir, InvalidReason::TcpFlags);
                }
                match t.packet(ti, dir, status, state.expires_in(now), cfg) {
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
                            self.status.set(Status::SEEN_REPLY);
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
                            state.set_timeout(now, t);
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
            (None, L4Info::Udp { .. }) => {
                let (t, a) = udp::packet(status, state.born, now as u32, cfg);
                assure = a;
                Some(t)
            }
            (None, L4Info::Icmp(IcmpInfo::Query { .. })) => Some(cfg.timeouts.icmp),
            (None, L4Info::Other) => Some(cfg.timeouts.generic),
            // A packet whose protocol does not match the entry's: the
            // caller looked up the wrong entry. Say so, change nothing.
            _ => return invalid(dir, InvalidReason::WrongConn),
        };
        if let Some(t) = refresh {
            if !status.has(Status::FIXED_TIMEOUT) {
                state.set_timeout(now, t);
            }
        }
        // nf_ct_refresh_acct(): counters.
        state.account(dir, info.ip_len as u64);
        let mut bits = 0;
        if assure {
            bits |= Status::ASSURED;
        }
        if dir == Direction::Reply {
            bits |= Status::SEEN_REPLY;
        }
        // One atomic operation, and only when a bit is missing (most
        // packets of an established flow set nothing).
        if bits != 0 && !status.has(bits) {
            self.status.set(bits);
        }
        Update {
            verdict: Verdict::new(dir, class),
            action,
        }
    }
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
        let tcp = match &info.l4 {
            L4Info::Tcp(t) => {
                if !crate::proto::tcp::valid_flags(t.flags) {
                    return Err(InvalidReason::TcpFlags);
                }
                Some(Tcp::new(t, cfg)?)
            }
            L4Info::Udp { .. } => None,
            L4Info::Icmp(IcmpInfo::Query { .. }) => {
                icmp::check_new(&orig)?;
                None
            }
            L4Info::Icmp(IcmpInfo::Other { ty, .. }) => {
                if orig.family == crate::Family::Ipv4 && *ty > crate::wire::icmpv4::MAX_KNOWN_TYPE {
                    return Err(InvalidReason::IcmpUnknownType);
                }
                return Err(InvalidReason::IcmpNotNew);
            }
            L4Info::Icmp(_) => return Err(InvalidReason::IcmpNotNew),
            L4Info::Other => None,
        };
        let reply = orig.invert().ok_or(InvalidReason::IcmpNotNew)?;
        Ok(Conn {
            key: ConnKey {
                orig,
                reply: ReplyPart::of(&reply),
            },
            state: ConnState::new(now),
            status: AtomicStatus::default(),
            tcp,
        })
    }

    /// Reassembles a connection from its parts (e.g. when a table hands
    /// an entry back).
    #[inline]
    pub fn from_parts(key: ConnKey, state: ConnState, status: Status, tcp: Option<Tcp>) -> Conn {
        Conn {
            key,
            state,
            status: AtomicStatus::new(status),
            tcp,
        }
    }

    /// Splits the connection into its key, its state, its status bits and
    /// its TCP state (to store them apart in a table entry).
    #[inline]
    pub fn into_parts(self) -> (ConnKey, ConnState, Status, Option<Tcp>) {
        let status = self.status.load();
        (self.key, self.state, status, self.tcp)
    }

    /// The key: both tuples.
    #[inline]
    pub fn key(&self) -> &ConnKey {
        &self.key
    }

    /// The lock-free state.
    #[inline]
    pub fn state(&self) -> &ConnState {
        &self.state
    }

    /// The status word.
    #[inline]
    pub fn status_word(&self) -> &AtomicStatus {
        &self.status
    }

    /// The key, read-only, and the parts the update works on.
    #[inline]
    pub fn parts(&mut self) -> (&ConnKey, ConnRef<'_, AtomicStatus>) {
        (
            &self.key,
            ConnRef {
                state: &self.state,
                status: &self.status,
                tcp: self.tcp.as_mut(),
            },
        )
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

    /// Status bits.
    #[inline]
    pub fn status(&self) -> Status {
        self.status.load()
    }

    /// Sets status bits ([`StatusWord::set`]; CONFIRMED is the table's).
    #[inline]
    pub fn set_status(&self, mask: u16) {
        self.status.set(mask);
    }

    /// The TCP state, for TCP connections.
    pub fn tcp(&self) -> Option<&Tcp> {
        self.tcp.as_ref()
    }

    /// The TCP state's name, for TCP connections.
    pub fn tcp_state(&self) -> Option<TcpState> {
        self.tcp.as_ref().map(|t| t.state)
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
    pub fn set_timeout(&self, now: u64, timeout_ms: u32) {
        self.state.set_timeout(now, timeout_ms)
    }

    /// True when the table may evict this entry ([`can_early_drop`]).
    pub fn can_early_drop(&self) -> bool {
        can_early_drop(self.status(), self.tcp.as_ref())
    }

    /// The class of a packet in `dir` before tracking ([`class_of`]).
    pub fn class_of(&self, dir: Direction) -> Class {
        class_of(self.status(), dir)
    }

    /// Runs the protocol tracker on one packet ([`ConnRef::update`]).
    pub fn update(&mut self, info: &PacketInfo, dir: Direction, now: u64, cfg: &Config) -> Update {
        self.parts().1.update(info, dir, now, cfg)
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
    fn an_offloaded_packet_counts_and_refreshes() {
        let st = ConnState::new(1000);
        let t = Timeouts::default();
        st.offloaded_packet(Direction::Reply, 60, 2000, t.offloaded(crate::ipproto::UDP));
        assert_eq!(st.counters(Direction::Reply), (1, 60));
        assert_eq!(st.counters(Direction::Original), (0, 0));
        assert_eq!(st.expires_in(2000), t.udp_replied);
        // Within the slack: counted, the deadline left as it is.
        st.offloaded_packet(Direction::Original, 40, 2900, t.udp_replied);
        assert_eq!(st.counters(Direction::Original), (1, 40));
        assert_eq!(st.expires_in(2000), t.udp_replied);
        // Past it: moved.
        st.offloaded_packet(Direction::Original, 40, 3001, t.udp_replied);
        assert_eq!(st.expires_in(3001), t.udp_replied);
        // A later deadline of a longer timeout stays.
        st.set_timeout(3001, 100 * t.udp_replied);
        st.offloaded_packet(Direction::Original, 40, 9000, t.udp_replied);
        assert_eq!(st.expires_in(3001), 100 * t.udp_replied);
        assert_eq!(t.offloaded(crate::ipproto::TCP), t.tcp.established);
        assert_eq!(t.offloaded(47), t.generic);
    }

    #[test]
    fn record_size() {
        use core::mem::{align_of, size_of};
        let (k, st) = (size_of::<ConnKey>(), size_of::<ConnState>());
        std::println!(
            "ConnKey = {k} (align {}), ConnState = {st} (align {}), Tuple = {}, Tcp = {}, \
             Option<Tcp> = {}",
            align_of::<ConnKey>(),
            align_of::<ConnState>(),
            size_of::<Tuple>(),
            size_of::<Tcp>(),
            size_of::<Option<Tcp>>()
        );
        assert_eq!(k, 74, "ConnKey holds 74 bytes of data");
        // What the kernel table's entries are built from (the TCP state
        // goes in an allocation of its own, for TCP connections only).
        assert_eq!(st, 32);
        assert_eq!(size_of::<Tcp>(), 52);
    }

    #[test]
    fn lock_free_updates_lose_no_count() {
        // Four threads update one UDP connection's shared parts at once,
        // as four CPUs would, with no lock: every packet and byte is
        // counted, the status bits are all there, the deadline is one of
        // the stores.
        let cfg = Config::default();
        let info = PacketInfo {
            tuple: Tuple::v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 1000, 53),
            l4: L4Info::Udp { payload_len: 72 },
            fragment: crate::parse::FragmentStatus::Whole,
            ip_len: 100,
            checksum: None,
            invalid: None,
        };
        let c = Conn::new(&info, 0, &cfg).unwrap();
        let (_, state, status, _) = c.into_parts();
        let word = AtomicStatus::new(status);
        let per_thread = 10_000u64;
        std::thread::scope(|s| {
            for i in 0..4u64 {
                let (state, word, cfg) = (&state, &word, &cfg);
                s.spawn(move || {
                    let dir = if i % 2 == 0 {
                        Direction::Original
                    } else {
                        Direction::Reply
                    };
                    for n in 0..per_thread {
                        let mut r = ConnRef {
                            state,
                            status: word,
                            tcp: None,
                        };
                        r.update(&info, dir, 3000 + n, cfg);
                    }
                });
            }
        });
        for dir in [Direction::Original, Direction::Reply] {
            assert_eq!(
                state.counters(dir),
                (2 * per_thread as u32, 2 * per_thread * 100)
            );
        }
        assert!(word.load().has(Status::SEEN_REPLY | Status::ASSURED));
        let left = state.expires_in(3000 + per_thread - 1);
        assert!(left <= cfg.timeouts.udp_replied && left > cfg.timeouts.udp_replied - 20_000);
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
        assert_eq!(c.state().age_ms(born + 0x20), 0x20);
        assert_eq!(c.state().age_ms(born + 65_536), 65_536);
        // Across the 32-bit wrap of the clock.
        let born = 0xffff_fff0;
        let c = Conn::new(&info, born, &cfg).unwrap();
        assert_eq!(c.state().age_ms(born + 0x20), 0x20);
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
        let (key, state, status, tcp) = c.into_parts();
        assert_eq!(Conn::from_parts(key, state.clone(), status, tcp), c2);
        // The state updates without the key, and without a lock: shared
        // references only.
        let word = AtomicStatus::new(status);
        let mut r = ConnRef {
            state: &state,
            status: &word,
            tcp: None,
        };
        let u = r.update(&info, Direction::Original, 5, &cfg);
        assert_eq!(u.verdict.class, Class::New);
        assert_eq!(state.counters(Direction::Original), (1, 28));
        assert_eq!(state.expires_in(5), cfg.timeouts.udp_unreplied);
        // A reply sets SEEN_REPLY through the word; after 2 s the flow is
        // a stream: ASSURED, replied timeout.
        let u = r.update(&info, Direction::Reply, 10, &cfg);
        assert_eq!(u.verdict.class, Class::Established);
        assert!(word.load().has(Status::SEEN_REPLY));
        assert!(!word.load().has(Status::ASSURED));
        r.update(&info, Direction::Original, 2_100, &cfg);
        assert!(word.load().has(Status::ASSURED));
        assert_eq!(state.expires_in(2_100), cfg.timeouts.udp_replied);
        assert_eq!(state.counters(Direction::Reply), (1, 28));
        // 64-bit byte counters.
        let big = PacketInfo {
            ip_len: u32::MAX,
            ..info
        };
        r.update(&big, Direction::Reply, 2_200, &cfg);
        r.update(&big, Direction::Reply, 2_200, &cfg);
        assert_eq!(
            state.counters(Direction::Reply),
            (3, 28 + 2 * u32::MAX as u64)
        );
        // CONFIRMED is not the word's to set.
        word.set(Status::CONFIRMED);
        assert!(!word.load().has(Status::CONFIRMED));
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
