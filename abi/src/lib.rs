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

use core::ffi::CStr;

/// Generic netlink family name (`genl_family.name`).
pub const FAMILY_NAME: &str = "rfw";
/// The same name, NUL-terminated, as the kernel's `char name[GENL_NAMSIZ]` wants it.
pub const FAMILY_NAME_C: &[u8] = b"rfw\0";
/// Family version (`genl_family.version`).
pub const FAMILY_VERSION: u8 = 1;

/// Netfilter protocol families as used in attributes (the kernel's
/// `NFPROTO_*`): the wire's copy of `conntrack::Family`'s numbers, which this
/// crate needs to check a tuple's address length and cannot import (it has
/// no dependencies); fwctl's tests pin the two equal.
pub mod nfproto {
    /// `NFPROTO_IPV4`
    pub const IPV4: u8 = 2;
    /// `NFPROTO_IPV6`
    pub const IPV6: u8 = 10;
}

/// Commands (`genlmsghdr.cmd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmd {
    /// Reply: per-hook packet and byte counters of the caller's namespace.
    /// Request has no attributes; reply carries [`attr::STATS_COUNTING`]
    /// and one [`attr::HOOK_STATS`] per (family, hook).
    StatsGet = 1,
    /// Connections. `doit`: the request carries [`attr::CT_ORIG`] or
    /// [`attr::CT_REPLY`] (a tuple of either direction finds the entry); the
    /// reply is one connection message. Dump (`NLM_F_DUMP`, no attributes):
    /// every confirmed connection of the namespace, one message each, paged
    /// over as many `recvmsg` calls as it takes. A connection message
    /// carries [`attr::CT_ORIG`], [`attr::CT_REPLY`], [`attr::CT_STATUS`],
    /// [`attr::CT_TIMEOUT`], [`attr::CT_PROTO_STATE`] (TCP only),
    /// [`attr::CT_COUNTERS_ORIG`] and [`attr::CT_COUNTERS_REPLY`].
    CtGet = 2,
    /// Deletes the connection one of whose tuples is given ([`attr::CT_ORIG`]
    /// or [`attr::CT_REPLY`]); `ENOENT` when there is none.
    CtDelete = 3,
    /// Deletes every connection of the namespace; the reply carries
    /// [`attr::CT_COUNT`], how many were deleted.
    CtFlush = 4,
    /// The namespace's table statistics: reply [`attr::CT_STATS`].
    CtStatsGet = 5,
    /// The namespace's tracking settings: reply [`attr::CT_CONFIG`].
    CtConfigGet = 6,
    /// Changes settings: request [`attr::CT_CONFIG`] with any of
    /// [`ct_config::LIMIT`], [`ct_config::TRACKING`],
    /// [`ct_config::CHECKSUM`] and [`ct_config::TIMEOUT`] entries; all are
    /// checked before any is applied. The reply is the new [`attr::CT_CONFIG`].
    CtConfigSet = 7,
    /// The namespace's ruleset. Request: no attributes. Reply:
    /// [`attr::RULES_GENERATION`] and one [`attr::RULES_TABLE`] per table
    /// that is loaded (a table not loaded is empty with ACCEPT policies
    /// and is not sent), each with its blob and counters.
    RulesGet = 8,
    /// Replaces tables atomically. Request: one or more
    /// [`attr::RULES_TABLE`] (each [`rules_table::BLOB`], optionally
    /// [`rules_table::COUNTERS`] to carry counters over; or
    /// [`rules_table::KIND`] alone, to remove that table), optionally
    /// [`attr::RULES_GENERATION`] (the generation the caller read: `EAGAIN`
    /// when another replace came in between) and [`attr::RULES_CHECK`]
    /// (validate only). Every table is decoded and validated before any is
    /// installed; all are installed under one generation or none is. Reply:
    /// the new [`attr::RULES_GENERATION`].
    RulesReplace = 9,
    /// Rule-path statistics (NAT failures, rewrite errors, logs, rejects):
    /// reply [`attr::RULES_STATS`].
    RulesStatsGet = 10,
    /// Turns per-hook counting on or off in the caller's namespace: the
    /// request carries [`attr::STATS_COUNTING`]; the reply is
    /// [`Cmd::StatsGet`]'s.
    StatsSet = 11,
}

impl Cmd {
    /// The command for a wire value, if it is one this ABI knows.
    pub const fn from_u8(v: u8) -> Option<Cmd> {
        match v {
            1 => Some(Cmd::StatsGet),
            2 => Some(Cmd::CtGet),
            3 => Some(Cmd::CtDelete),
            4 => Some(Cmd::CtFlush),
            5 => Some(Cmd::CtStatsGet),
            6 => Some(Cmd::CtConfigGet),
            7 => Some(Cmd::CtConfigSet),
            8 => Some(Cmd::RulesGet),
            9 => Some(Cmd::RulesReplace),
            10 => Some(Cmd::RulesStatsGet),
            11 => Some(Cmd::StatsSet),
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
    /// Nested [`super::ct_tuple`]: the tuple of the original direction.
    pub const CT_ORIG: u16 = 3;
    /// Nested [`super::ct_tuple`]: the tuple of the reply direction.
    pub const CT_REPLY: u16 = 4;
    /// u32: status bits, numbered as the kernel's `IPS_*_BIT`
    /// ([`super::ct_status`]).
    pub const CT_STATUS: u16 = 5;
    /// u32: milliseconds until the connection expires.
    pub const CT_TIMEOUT: u16 = 6;
    /// u8: the TCP state ([`super::tcp_state`]); TCP connections only.
    pub const CT_PROTO_STATE: u16 = 7;
    /// Nested [`super::ct_counters`]: packets and bytes, original direction.
    pub const CT_COUNTERS_ORIG: u16 = 8;
    /// Nested [`super::ct_counters`]: packets and bytes, reply direction.
    pub const CT_COUNTERS_REPLY: u16 = 9;
    /// Nested [`super::ct_stats`]: table statistics.
    pub const CT_STATS: u16 = 10;
    /// Nested [`super::ct_config`]: limit and timeouts.
    pub const CT_CONFIG: u16 = 11;
    /// u64: a number of connections (the reply to [`super::Cmd::CtFlush`]).
    pub const CT_COUNT: u16 = 12;
    /// Nested [`super::rules_table`], repeated: one table of a ruleset.
    pub const RULES_TABLE: u16 = 13;
    /// u32: the ruleset's generation, bumped by every replace.
    pub const RULES_GENERATION: u16 = 14;
    /// Flag (no payload): validate the request, install nothing.
    pub const RULES_CHECK: u16 = 15;
    /// Nested [`super::rules_stats`].
    pub const RULES_STATS: u16 = 16;
    /// u8: 1 while rfw counts the namespace's packets per hook, 0 when
    /// not (the default: counting keeps rfw's hooks registered at every
    /// hook point, and a namespace that neither counts nor tracks has
    /// none).
    pub const STATS_COUNTING: u16 = 17;
    /// Highest top-level attribute number (`genl_family.maxattr`).
    pub const MAX: u16 = STATS_COUNTING;
}

/// Attributes nested in [`attr::RULES_TABLE`].
pub mod rules_table {
    /// u8: the table (0 filter, 1 nat, 2 mangle), as in the blob header.
    /// Sent by the kernel. In a request it is ignored beside a [`BLOB`]
    /// (the blob says it); alone, it removes that table from the
    /// namespace (`nft delete table`: its chains no longer run).
    pub const KIND: u16 = 1;
    /// Binary: the table in the format of `docs/RULESET.md` (`nat::codec`).
    pub const BLOB: u16 = 2;
    /// Binary: per-entry counters, in entry order (each chain's rules, then
    /// its policy): `packets: u64, bytes: u64`, little-endian, 16 bytes per
    /// entry. In a replace, fewer entries than the table has leave the rest
    /// at zero; more are an error.
    pub const COUNTERS: u16 = 3;
    /// Largest blob the kernel's decoder accepts (bytes). In practice a
    /// table travels in one [`super::attr::RULES_TABLE`] attribute, whose
    /// netlink length is 16 bits: blob and counters together stay under
    /// 65 535 bytes (a few thousand rules; a 1000-rule table is ~39 KB).
    /// Splitting a table over several attributes is not in this ABI yet.
    pub const BLOB_MAX: usize = 4 << 20;
    /// Bytes per counter entry.
    pub const COUNTER_BYTES: usize = 16;
}

/// Attributes nested in [`attr::RULES_STATS`] (u64 each, namespace totals).
pub mod rules_stats {
    /// Padding for 64-bit alignment.
    pub const PAD: u16 = 1;
    /// Packets dropped because no free tuple was left in a NAT range.
    pub const NAT_NO_TUPLE: u16 = 2;
    /// Packets dropped because MASQUERADE/REDIRECT found no address.
    pub const NAT_NO_ADDRESS: u16 = 3;
    /// Packets dropped because they could not be made writable or rewritten.
    pub const REWRITE_FAILED: u16 = 4;
    /// NAT bindings set up (connections translated).
    pub const NAT_BINDINGS: u16 = 5;
    /// Packets rejected (REJECT answered or dropped).
    pub const REJECTED: u16 = 6;
    /// LOG lines written.
    pub const LOGGED: u16 = 7;
    /// LOG lines not written: over the rule's rate, another CPU logging
    /// the same table, no memory for the line, or a namespace other than
    /// the initial one while `net.netfilter.nf_log_all_netns` is 0.
    pub const LOG_SUPPRESSED: u16 = 8;
    /// Packets queued to nfnetlink_queue.
    pub const QUEUED: u16 = 9;
    /// Connections removed because their MASQUERADE address went away.
    pub const MASQ_FLUSHED: u16 = 10;
    /// Packets whose headers could not be parsed for rule matching
    /// (evaluated with what could be read).
    pub const UNPARSED: u16 = 11;
    /// Highest attribute number.
    pub const MAX: u16 = UNPARSED;

    /// The counters above as one type: the kernel counts with
    /// [`Counter::index`], fwctl reads them back by [`Counter::attr`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[repr(u8)]
    pub enum Counter {
        /// [`NAT_NO_TUPLE`].
        NatNoTuple,
        /// [`NAT_NO_ADDRESS`].
        NatNoAddress,
        /// [`REWRITE_FAILED`].
        RewriteFailed,
        /// [`NAT_BINDINGS`].
        NatBindings,
        /// [`REJECTED`].
        Rejected,
        /// [`LOGGED`].
        Logged,
        /// [`LOG_SUPPRESSED`].
        LogSuppressed,
        /// [`QUEUED`].
        Queued,
        /// [`MASQ_FLUSHED`].
        MasqFlushed,
        /// [`UNPARSED`].
        Unparsed,
    }

    impl Counter {
        /// Number of counters.
        pub const COUNT: usize = 10;

        /// Every counter, in [`Counter::index`] order.
        pub const ALL: [Counter; Counter::COUNT] = [
            Counter::NatNoTuple,
            Counter::NatNoAddress,
            Counter::RewriteFailed,
            Counter::NatBindings,
            Counter::Rejected,
            Counter::Logged,
            Counter::LogSuppressed,
            Counter::Queued,
            Counter::MasqFlushed,
            Counter::Unparsed,
        ];

        /// Every counter, in the order they are reported (`fwctl rules
        /// stats`): NAT first, then the targets.
        pub const REPORT_ORDER: [Counter; Counter::COUNT] = [
            Counter::NatBindings,
            Counter::NatNoTuple,
            Counter::NatNoAddress,
            Counter::RewriteFailed,
            Counter::MasqFlushed,
            Counter::Rejected,
            Counter::Queued,
            Counter::Logged,
            Counter::LogSuppressed,
            Counter::Unparsed,
        ];

        /// A dense index (`0..COUNT`), for counter arrays.
        pub const fn index(self) -> usize {
            self as usize
        }

        /// The attribute that carries this counter.
        pub const fn attr(self) -> u16 {
            self as u16 + NAT_NO_TUPLE
        }

        /// The counter an attribute carries, if it is one.
        pub fn from_attr(attr: u16) -> Option<Counter> {
            Counter::ALL.into_iter().find(|c| c.attr() == attr)
        }

        /// The counter's stable snake_case name.
        pub const fn name(self) -> &'static str {
            match self {
                Counter::NatNoTuple => "nat_no_tuple",
                Counter::NatNoAddress => "nat_no_address",
                Counter::RewriteFailed => "rewrite_failed",
                Counter::NatBindings => "nat_bindings",
                Counter::Rejected => "rejected",
                Counter::Logged => "logged",
                Counter::LogSuppressed => "log_suppressed",
                Counter::Queued => "queued",
                Counter::MasqFlushed => "masq_flushed",
                Counter::Unparsed => "unparsed",
            }
        }
    }
}

/// Attributes nested in [`attr::CT_ORIG`] and [`attr::CT_REPLY`]. All five
/// are present in a tuple the kernel sends and required in one it receives.
pub mod ct_tuple {
    /// u8: [`super::nfproto`] value.
    pub const FAMILY: u16 = 1;
    /// u8: IP protocol number.
    pub const PROTO: u16 = 2;
    /// Binary, 4 bytes (IPv4) or 16 bytes (IPv6): source address.
    pub const SRC: u16 = 3;
    /// Binary, as [`SRC`]: destination address.
    pub const DST: u16 = 4;
    /// u16 (host order): source port; for ICMP and ICMPv6 the identifier.
    pub const SRC_PORT: u16 = 5;
    /// u16 (host order): destination port; for ICMP and ICMPv6
    /// `type << 8 | code`. Zero for protocols without ports.
    pub const DST_PORT: u16 = 6;
    /// Highest attribute number.
    pub const MAX: u16 = DST_PORT;
}

/// Attributes nested in [`attr::CT_COUNTERS_ORIG`] / [`attr::CT_COUNTERS_REPLY`].
pub mod ct_counters {
    /// Padding for 64-bit alignment of u64 attributes.
    pub const PAD: u16 = 1;
    /// u64: packets.
    pub const PACKETS: u16 = 2;
    /// u64: bytes (IP header included).
    pub const BYTES: u16 = 3;
}

/// Status bits in [`attr::CT_STATUS`] (the kernel's `IPS_*_BIT` numbering).
pub mod ct_status {
    /// A packet was seen in the reply direction.
    pub const SEEN_REPLY: u32 = 1 << 1;
    /// Assured: never evicted early.
    pub const ASSURED: u32 = 1 << 2;
    /// In the table.
    pub const CONFIRMED: u32 = 1 << 3;
    /// Source NAT applies.
    pub const SRC_NAT: u32 = 1 << 4;
    /// Destination NAT applies.
    pub const DST_NAT: u32 = 1 << 5;
    /// Being removed.
    pub const DYING: u32 = 1 << 9;
    /// The flow is offloaded to rfw's fast path (`IPS_OFFLOAD_BIT`).
    pub const OFFLOAD: u32 = 1 << 14;
}

/// TCP states in [`attr::CT_PROTO_STATE`] (the kernel's
/// `enum tcp_conntrack` numbering).
pub mod tcp_state {
    /// Names as `conntrack -L` prints them, indexed by state number.
    pub const NAMES: [&str; 10] = [
        "NONE",
        "SYN_SENT",
        "SYN_RECV",
        "ESTABLISHED",
        "FIN_WAIT",
        "CLOSE_WAIT",
        "LAST_ACK",
        "TIME_WAIT",
        "CLOSE",
        "SYN_SENT2",
    ];
}

/// Attributes nested in [`attr::CT_STATS`].
pub mod ct_stats {
    /// Padding for 64-bit alignment of u64 attributes.
    pub const PAD: u16 = 1;
    /// u64: entries of the namespace (confirmed and not yet confirmed).
    pub const COUNT: u16 = 2;
    /// u64: the namespace's entry limit.
    pub const LIMIT: u16 = 3;
    /// u64: entries created by a packet that has not left its last hook yet.
    pub const UNCONFIRMED: u16 = 4;
    /// u64: hash buckets (shared by all namespaces).
    pub const BUCKETS: u16 = 5;
    /// u64: packets that found their connection.
    pub const FOUND: u16 = 6;
    /// u64: connections created.
    pub const NEW: u16 = 7;
    /// u64: packets classified INVALID (all reasons).
    pub const INVALID: u16 = 8;
    /// u64: packets accepted but ignored by the TCP window tracking.
    pub const IGNORED: u16 = 9;
    /// u64: entries evicted to make room for a new one.
    pub const EARLY_DROP: u16 = 10;
    /// u64: packets dropped because the table was full.
    pub const DROP: u16 = 11;
    /// u64: inserts that lost a race for the same tuple.
    pub const INSERT_FAILED: u16 = 12;
    /// u64: inserts refused because a hash chain was too long.
    pub const CHAIN_TOO_LONG: u16 = 13;
    /// u64: entries removed because they expired.
    pub const EXPIRED: u16 = 14;
    /// u64: entries removed by a command, a flush or the tracker (RST).
    pub const DELETED: u16 = 15;
    /// u64: entries whose first packet never left its last hook (dropped or
    /// stolen after rfw saw it), removed by the garbage collector.
    pub const UNCONFIRMED_REAPED: u16 = 16;
    /// Nested, repeated: one INVALID reason, attributes in [`super::ct_reason`].
    pub const INVALID_REASON: u16 = 17;
    /// Nested, repeated: one kind of malformed packet, in [`super::ct_reason`].
    pub const MALFORMED_REASON: u16 = 18;
    /// u64: packets whose hash lookup walked a chain longer than the
    /// insert bound (a sign of hash flooding).
    pub const LONG_CHAIN_LOOKUPS: u16 = 19;
    /// u64: bytes of one entry as allocated from rfw's slab cache (the
    /// object size; the slab may round it up, see `/proc/slabinfo`).
    pub const ENTRY_BYTES: u16 = 20;
    /// u64: packets classified RELATED (ICMP errors about a connection).
    pub const RELATED: u16 = 21;
    /// u64: later hooks (FORWARD, LOCAL_IN, POST_ROUTING) that found the
    /// packet's connection in the record its tracking hook left.
    pub const SLOT_HITS: u16 = 22;
    /// u64: later hooks that found no record fitting the packet (queued and
    /// reinjected, nested too deep, another CPU) and looked it up.
    pub const SLOT_MISSES: u16 = 23;
    /// u64: lookups after a slot miss that found the connection.
    pub const FALLBACK_FOUND: u16 = 24;
    /// u64: lookups after a slot miss that found none (the packet is then
    /// handled as INVALID).
    pub const FALLBACK_NOT_FOUND: u16 = 25;
    /// u64: packets dropped because all namespaces together held the
    /// module's `max_total` entries (counted in [`DROP`] too; the
    /// namespace's own limit was not reached).
    pub const GLOBAL_FULL: u16 = 26;
    /// u64: hashes of a tuple into the table (lookups, NAT's in-use
    /// checks, confirmations, removals): with [`NEW`], the hashes a new
    /// connection costs.
    pub const HASHES: u16 = 27;
    /// u64: packets whose new connection another packet of the same flow
    /// inserted first, on another CPU, and that went with that entry
    /// (Linux's `nf_ct_resolve_clash`; not a failure).
    pub const CLASH_RESOLVED: u16 = 28;
    /// u64: table objects allocated (entries, and the side index's
    /// aliases of connections with destination NAT): with [`NEW`], the
    /// allocations a new connection costs.
    pub const ALLOCATIONS: u16 = 29;
    /// u64: flows that entered the fast path (an OFFLOAD rule).
    pub const OFFLOADED: u16 = 30;
    /// u64: packets the fast path forwarded.
    pub const OFFLOAD_PACKETS: u16 = 31;
    /// u64: packets of offloaded flows the fast path handed to the normal
    /// path (IP options, fragments, TTL <= 1, larger than the MTU, an
    /// unwritable header).
    pub const OFFLOAD_PUNTED: u16 = 32;
    /// u64: flows that left the fast path for a TCP FIN or RST.
    pub const OFFLOAD_END_TCP: u16 = 33;
    /// u64: offloaded flows that timed out.
    pub const OFFLOAD_END_EXPIRED: u16 = 34;
    /// u64: flows that left the fast path because a cached route went
    /// stale (a route change).
    pub const OFFLOAD_END_ROUTE: u16 = 35;
    /// u64: flows that left the fast path because a device went down or
    /// away.
    pub const OFFLOAD_END_DEVICE: u16 = 36;
    /// u64: flows that left the fast path because a ruleset replace no
    /// longer offloads them.
    pub const OFFLOAD_END_RULESET: u16 = 37;
    /// u64: flows that left the fast path because the connection was
    /// deleted (`fwctl ct delete`/`flush`, a MASQUERADE address change).
    pub const OFFLOAD_END_DELETED: u16 = 38;

    /// The u64 values above as one type. The first
    /// [`Counter::EVENTS`] are events the kernel counts per packet (at
    /// [`Counter::index`]); the others are read from the table when asked.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[repr(u8)]
    pub enum Counter {
        /// [`FOUND`].
        Found,
        /// [`NEW`].
        New,
        /// [`INVALID`].
        Invalid,
        /// [`IGNORED`].
        Ignored,
        /// [`EARLY_DROP`].
        EarlyDrop,
        /// [`DROP`].
        Drop,
        /// [`INSERT_FAILED`].
        InsertFailed,
        /// [`CHAIN_TOO_LONG`].
        ChainTooLong,
        /// [`EXPIRED`].
        Expired,
        /// [`DELETED`].
        Deleted,
        /// [`UNCONFIRMED_REAPED`].
        UnconfirmedReaped,
        /// [`LONG_CHAIN_LOOKUPS`].
        LongChainLookups,
        /// [`RELATED`].
        Related,
        /// [`SLOT_HITS`].
        SlotHits,
        /// [`SLOT_MISSES`].
        SlotMisses,
        /// [`FALLBACK_FOUND`].
        FallbackFound,
        /// [`FALLBACK_NOT_FOUND`].
        FallbackNotFound,
        /// [`GLOBAL_FULL`].
        GlobalFull,
        /// [`HASHES`].
        Hashes,
        /// [`CLASH_RESOLVED`].
        ClashResolved,
        /// [`ALLOCATIONS`].
        Allocations,
        /// [`OFFLOADED`].
        Offloaded,
        /// [`OFFLOAD_PACKETS`].
        OffloadPackets,
        /// [`OFFLOAD_PUNTED`].
        OffloadPunted,
        /// [`OFFLOAD_END_TCP`].
        OffloadEndTcp,
        /// [`OFFLOAD_END_EXPIRED`].
        OffloadEndExpired,
        /// [`OFFLOAD_END_ROUTE`].
        OffloadEndRoute,
        /// [`OFFLOAD_END_DEVICE`].
        OffloadEndDevice,
        /// [`OFFLOAD_END_RULESET`].
        OffloadEndRuleset,
        /// [`OFFLOAD_END_DELETED`].
        OffloadEndDeleted,
        /// [`COUNT`].
        Count,
        /// [`LIMIT`].
        Limit,
        /// [`UNCONFIRMED`].
        Unconfirmed,
        /// [`BUCKETS`].
        Buckets,
        /// [`ENTRY_BYTES`].
        EntryBytes,
    }

    impl Counter {
        /// Number of counters.
        pub const COUNT: usize = 35;
        /// Number of event counters: those with `index() < EVENTS`.
        pub const EVENTS: usize = Counter::OffloadEndDeleted as usize + 1;

        /// Every counter, in [`Counter::index`] order.
        pub const ALL: [Counter; Counter::COUNT] = [
            Counter::Found,
            Counter::New,
            Counter::Invalid,
            Counter::Ignored,
            Counter::EarlyDrop,
            Counter::Drop,
            Counter::InsertFailed,
            Counter::ChainTooLong,
            Counter::Expired,
            Counter::Deleted,
            Counter::UnconfirmedReaped,
            Counter::LongChainLookups,
            Counter::Related,
            Counter::SlotHits,
            Counter::SlotMisses,
            Counter::FallbackFound,
            Counter::FallbackNotFound,
            Counter::GlobalFull,
            Counter::Hashes,
            Counter::ClashResolved,
            Counter::Allocations,
            Counter::Offloaded,
            Counter::OffloadPackets,
            Counter::OffloadPunted,
            Counter::OffloadEndTcp,
            Counter::OffloadEndExpired,
            Counter::OffloadEndRoute,
            Counter::OffloadEndDevice,
            Counter::OffloadEndRuleset,
            Counter::OffloadEndDeleted,
            Counter::Count,
            Counter::Limit,
            Counter::Unconfirmed,
            Counter::Buckets,
            Counter::EntryBytes,
        ];

        /// Every counter, in the order they are reported (`fwctl ct
        /// stats`): the table, then the events, the fast path's last.
        pub const REPORT_ORDER: [Counter; Counter::COUNT] = [
            Counter::Count,
            Counter::Limit,
            Counter::Unconfirmed,
            Counter::Buckets,
            Counter::EntryBytes,
            Counter::Found,
            Counter::New,
            Counter::Related,
            Counter::Invalid,
            Counter::Ignored,
            Counter::EarlyDrop,
            Counter::Drop,
            Counter::GlobalFull,
            Counter::InsertFailed,
            Counter::ClashResolved,
            Counter::ChainTooLong,
            Counter::LongChainLookups,
            Counter::Hashes,
            Counter::Allocations,
            Counter::Expired,
            Counter::Deleted,
            Counter::UnconfirmedReaped,
            Counter::SlotHits,
            Counter::SlotMisses,
            Counter::FallbackFound,
            Counter::FallbackNotFound,
            Counter::Offloaded,
            Counter::OffloadPackets,
            Counter::OffloadPunted,
            Counter::OffloadEndTcp,
            Counter::OffloadEndExpired,
            Counter::OffloadEndRoute,
            Counter::OffloadEndDevice,
            Counter::OffloadEndRuleset,
            Counter::OffloadEndDeleted,
        ];

        /// A dense index (`0..COUNT`), for counter arrays.
        pub const fn index(self) -> usize {
            self as usize
        }

        /// True for the events counted per packet.
        pub const fn is_event(self) -> bool {
            self.index() < Counter::EVENTS
        }

        /// The attribute that carries this counter.
        pub const fn attr(self) -> u16 {
            match self {
                Counter::Count => COUNT,
                Counter::Limit => LIMIT,
                Counter::Unconfirmed => UNCONFIRMED,
                Counter::Buckets => BUCKETS,
                Counter::EntryBytes => ENTRY_BYTES,
                Counter::Found => FOUND,
                Counter::New => NEW,
                Counter::Related => RELATED,
                Counter::Invalid => INVALID,
                Counter::Ignored => IGNORED,
                Counter::EarlyDrop => EARLY_DROP,
                Counter::Drop => DROP,
                Counter::InsertFailed => INSERT_FAILED,
                Counter::ChainTooLong => CHAIN_TOO_LONG,
                Counter::LongChainLookups => LONG_CHAIN_LOOKUPS,
                Counter::Expired => EXPIRED,
                Counter::Deleted => DELETED,
                Counter::UnconfirmedReaped => UNCONFIRMED_REAPED,
                Counter::SlotHits => SLOT_HITS,
                Counter::SlotMisses => SLOT_MISSES,
                Counter::FallbackFound => FALLBACK_FOUND,
                Counter::FallbackNotFound => FALLBACK_NOT_FOUND,
                Counter::GlobalFull => GLOBAL_FULL,
                Counter::Hashes => HASHES,
                Counter::ClashResolved => CLASH_RESOLVED,
                Counter::Allocations => ALLOCATIONS,
                Counter::Offloaded => OFFLOADED,
                Counter::OffloadPackets => OFFLOAD_PACKETS,
                Counter::OffloadPunted => OFFLOAD_PUNTED,
                Counter::OffloadEndTcp => OFFLOAD_END_TCP,
                Counter::OffloadEndExpired => OFFLOAD_END_EXPIRED,
                Counter::OffloadEndRoute => OFFLOAD_END_ROUTE,
                Counter::OffloadEndDevice => OFFLOAD_END_DEVICE,
                Counter::OffloadEndRuleset => OFFLOAD_END_RULESET,
                Counter::OffloadEndDeleted => OFFLOAD_END_DELETED,
            }
        }

        /// The counter an attribute carries, if it is one.
        pub fn from_attr(attr: u16) -> Option<Counter> {
            Counter::ALL.into_iter().find(|c| c.attr() == attr)
        }

        /// The counter's stable snake_case name.
        pub const fn name(self) -> &'static str {
            match self {
                Counter::Count => "count",
                Counter::Limit => "limit",
                Counter::Unconfirmed => "unconfirmed",
                Counter::Buckets => "buckets",
                Counter::EntryBytes => "entry_bytes",
                Counter::Found => "found",
                Counter::New => "new",
                Counter::Related => "related",
                Counter::Invalid => "invalid",
                Counter::Ignored => "ignored",
                Counter::EarlyDrop => "early_drop",
                Counter::Drop => "drop",
                Counter::InsertFailed => "insert_failed",
                Counter::ChainTooLong => "chain_too_long",
                Counter::LongChainLookups => "long_chain_lookups",
                Counter::Expired => "expired",
                Counter::Deleted => "deleted",
                Counter::UnconfirmedReaped => "unconfirmed_reaped",
                Counter::SlotHits => "slot_hits",
                Counter::SlotMisses => "slot_misses",
                Counter::FallbackFound => "fallback_found",
                Counter::FallbackNotFound => "fallback_not_found",
                Counter::GlobalFull => "global_full",
                Counter::Hashes => "hashes",
                Counter::ClashResolved => "clash_resolved",
                Counter::Allocations => "allocations",
                Counter::Offloaded => "offloaded",
                Counter::OffloadPackets => "offload_packets",
                Counter::OffloadPunted => "offload_punted",
                Counter::OffloadEndTcp => "offload_end_tcp",
                Counter::OffloadEndExpired => "offload_end_expired",
                Counter::OffloadEndRoute => "offload_end_route",
                Counter::OffloadEndDevice => "offload_end_device",
                Counter::OffloadEndRuleset => "offload_end_ruleset",
                Counter::OffloadEndDeleted => "offload_end_deleted",
            }
        }
    }
}

/// Attributes nested in [`ct_stats::INVALID_REASON`] / [`ct_stats::MALFORMED_REASON`].
pub mod ct_reason {
    /// Padding for 64-bit alignment of u64 attributes.
    pub const PAD: u16 = 1;
    /// NUL-terminated string: the reason's stable snake_case name.
    pub const NAME: u16 = 2;
    /// u64: packets.
    pub const COUNT: u16 = 3;
}

/// Attributes nested in [`attr::CT_CONFIG`].
pub mod ct_config {
    /// u32: the namespace's entry limit (1 ..= [`LIMIT_MAX`]).
    pub const LIMIT: u16 = 1;
    /// u32: hash buckets (read only; the `hashsize` module parameter).
    pub const BUCKETS: u16 = 2;
    /// Nested, repeated: one timeout, attributes in [`super::ct_timeout`].
    pub const TIMEOUT: u16 = 3;
    /// u8: when the namespace tracks connections, one of [`TRACKING_AUTO`]
    /// and [`TRACKING_ON`].
    pub const TRACKING: u16 = 4;
    /// u8 (read only): 1 when the namespace tracks connections now.
    pub const ACTIVE: u16 = 5;
    /// u8: 1 (the default) when the L4 checksums of packets arriving at
    /// PRE_ROUTING are verified before tracking, 0 when not (Linux's
    /// `net.netfilter.nf_conntrack_checksum`).
    pub const CHECKSUM: u16 = 6;
    /// Highest attribute number.
    pub const MAX: u16 = CHECKSUM;
    /// Track while the namespace has a ruleset (any table loaded) or a
    /// connection was ever NATed in it; the default. This is what
    /// nf_conntrack does since Linux 4.10: its hooks are registered in a
    /// namespace only when a rule there needs them (`nf_ct_netns_get`).
    pub const TRACKING_AUTO: u8 = 0;
    /// Track every packet of the namespace, rules or not.
    pub const TRACKING_ON: u8 = 1;
    /// The largest entry limit accepted.
    pub const LIMIT_MAX: u32 = 1 << 26;
}

/// Attributes nested in [`ct_config::TIMEOUT`].
pub mod ct_timeout {
    /// NUL-terminated string: one of [`NAMES`].
    pub const NAME: u16 = 1;
    /// u32: milliseconds (1 ..= 2^31 - 1).
    pub const MS: u16 = 2;
    /// Highest attribute number.
    pub const MAX: u16 = MS;
    /// The timeouts, by name (Linux's `nf_conntrack_*_timeout*` sysctls).
    pub const NAMES: [&str; 15] = [
        "tcp_syn_sent",
        "tcp_syn_recv",
        "tcp_established",
        "tcp_fin_wait",
        "tcp_close_wait",
        "tcp_last_ack",
        "tcp_time_wait",
        "tcp_close",
        "tcp_syn_sent2",
        "tcp_retrans",
        "tcp_unacknowledged",
        "udp_unreplied",
        "udp_replied",
        "icmp",
        "generic",
    ];
}

/// Attributes nested in [`attr::HOOK_STATS`].
pub mod hook_stats {
    /// Padding for 64-bit alignment of u64 attributes.
    pub const PAD: u16 = 1;
    /// u8: [`super::nfproto`] value.
    pub const FAMILY: u16 = 2;
    /// u8: the hook's number in the kernel's `enum nf_inet_hooks`
    /// (`conntrack::Hook`).
    pub const HOOK: u16 = 3;
    /// u64: packets seen by rfw at this hook in this namespace.
    pub const PACKETS: u16 = 4;
    /// u64: bytes (skb->len at the hook) seen at this hook in this namespace.
    pub const BYTES: u16 = 5;
}

/// Reading attributes: a bounds-checked walk over the payload of a nested
/// attribute, for the kernel side's request parsing (the kernel's strict
/// validation has checked the top level; nested payloads are checked here,
/// in safe code that the host tests exercise).
pub mod nla {
    use core::ffi::CStr;

    /// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`: flag bits of `nla_type`.
    pub const TYPE_MASK: u16 = 0x3fff;

    /// One attribute: its type (flags removed) and payload.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Attr<'a> {
        /// Attribute type without flag bits.
        pub kind: u16,
        /// Payload.
        pub data: &'a [u8],
    }

    impl<'a> Attr<'a> {
        /// The payload as a u8.
        pub fn u8(&self) -> Result<u8, &'static CStr> {
            match self.data {
                [v] => Ok(*v),
                _ => Err(c"attribute must be a u8"),
            }
        }

        /// The payload as a native-endian u16.
        pub fn u16(&self) -> Result<u16, &'static CStr> {
            match self.data {
                [a, b] => Ok(u16::from_ne_bytes([*a, *b])),
                _ => Err(c"attribute must be a u16"),
            }
        }

        /// The payload as a native-endian u32.
        pub fn u32(&self) -> Result<u32, &'static CStr> {
            match self.data {
                [a, b, c, d] => Ok(u32::from_ne_bytes([*a, *b, *c, *d])),
                _ => Err(c"attribute must be a u32"),
            }
        }

        /// The payload as a NUL-terminated string (the NUL not included).
        pub fn str(&self) -> Result<&'a str, &'static CStr> {
            match self.data.split_last() {
                Some((0, s)) if !s.contains(&0) => {
                    core::str::from_utf8(s).map_err(|_| c"string attribute is not UTF-8")
                }
                _ => Err(c"string attribute must end with its only NUL"),
            }
        }
    }

    /// Iterates over the attributes in `buf`; yields an error (and then
    /// stops) at the first malformed header or length.
    pub fn iter(buf: &[u8]) -> Iter<'_> {
        Iter { buf, failed: false }
    }

    /// See [`iter`].
    #[derive(Clone, Debug)]
    pub struct Iter<'a> {
        buf: &'a [u8],
        failed: bool,
    }

    impl<'a> Iterator for Iter<'a> {
        type Item = Result<Attr<'a>, &'static CStr>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.failed || self.buf.is_empty() {
                return None;
            }
            let Some((hdr, _)) = self.buf.split_first_chunk::<4>() else {
                self.failed = true;
                return Some(Err(c"truncated attribute header"));
            };
            let len = usize::from(u16::from_ne_bytes([hdr[0], hdr[1]]));
            let kind = u16::from_ne_bytes([hdr[2], hdr[3]]) & TYPE_MASK;
            if len < 4 || len > self.buf.len() {
                self.failed = true;
                return Some(Err(c"attribute length out of bounds"));
            }
            let data = &self.buf[4..len];
            let aligned = (len + 3) & !3;
            self.buf = self.buf.get(aligned..).unwrap_or(&[]);
            Some(Ok(Attr { kind, data }))
        }
    }
}

/// A tuple as it travels in [`attr::CT_ORIG`] / [`attr::CT_REPLY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WireTuple {
    /// [`nfproto`] value.
    pub family: u8,
    /// IP protocol number.
    pub proto: u8,
    /// Source address; IPv4 in the first 4 bytes, the rest zero.
    pub src: [u8; 16],
    /// Destination address, as `src`.
    pub dst: [u8; 16],
    /// See [`ct_tuple::SRC_PORT`].
    pub src_port: u16,
    /// See [`ct_tuple::DST_PORT`].
    pub dst_port: u16,
}

impl WireTuple {
    /// Parses the payload of a tuple attribute: all of [`ct_tuple`]'s
    /// attributes exactly once, addresses of the family's length. The error
    /// is a sentence for the extended ACK (NUL-terminated: the kernel
    /// hands it to `NL_SET_ERR_MSG_ATTR` as is).
    pub fn parse(payload: &[u8]) -> Result<WireTuple, &'static CStr> {
        let mut t = WireTuple::default();
        let mut seen = 0u8;
        let mut src_len = 0;
        let mut dst_len = 0;
        for a in nla::iter(payload) {
            let a = a?;
            let bit = match a.kind {
                k @ ct_tuple::FAMILY..=ct_tuple::MAX => 1u8 << k,
                _ => return Err(c"unknown attribute in tuple"),
            };
            if seen & bit != 0 {
                return Err(c"repeated attribute in tuple");
            }
            seen |= bit;
            match a.kind {
                ct_tuple::FAMILY => t.family = a.u8()?,
                ct_tuple::PROTO => t.proto = a.u8()?,
                ct_tuple::SRC | ct_tuple::DST => {
                    let (dst, len) = if a.kind == ct_tuple::SRC {
                        (&mut t.src, &mut src_len)
                    } else {
                        (&mut t.dst, &mut dst_len)
                    };
                    if a.data.len() != 4 && a.data.len() != 16 {
                        return Err(c"tuple address must be 4 or 16 bytes");
                    }
                    dst[..a.data.len()].copy_from_slice(a.data);
                    *len = a.data.len();
                }
                ct_tuple::SRC_PORT => t.src_port = a.u16()?,
                _ => t.dst_port = a.u16()?,
            }
        }
        if seen != 0b111_1110 {
            return Err(c"tuple needs family, protocol, source, destination and both ports");
        }
        let want = match t.family {
            nfproto::IPV4 => 4,
            nfproto::IPV6 => 16,
            _ => return Err(c"tuple family must be IPv4 (2) or IPv6 (10)"),
        };
        if src_len != want || dst_len != want {
            return Err(c"tuple address length does not match its family");
        }
        Ok(t)
    }
}

/// A change of settings parsed from [`attr::CT_CONFIG`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConfigChange {
    /// New limit, if given.
    pub limit: Option<u32>,
    /// New timeouts, by index into [`ct_timeout::NAMES`], in ms.
    pub timeouts: [Option<u32>; ct_timeout::NAMES.len()],
    /// New tracking mode ([`ct_config::TRACKING_AUTO`] or
    /// [`ct_config::TRACKING_ON`]), if given.
    pub tracking: Option<u8>,
    /// Whether to verify checksums ([`ct_config::CHECKSUM`]), if given.
    pub checksum: Option<bool>,
}

impl ConfigChange {
    /// Parses and range-checks the payload of [`attr::CT_CONFIG`]. The
    /// error is a sentence for the extended ACK.
    pub fn parse(payload: &[u8]) -> Result<ConfigChange, &'static CStr> {
        let mut c = ConfigChange::default();
        let mut any = false;
        for a in nla::iter(payload) {
            let a = a?;
            match a.kind {
                ct_config::LIMIT => {
                    if c.limit.is_some() {
                        return Err(c"limit given twice");
                    }
                    let v = a.u32()?;
                    if v == 0 || v > ct_config::LIMIT_MAX {
                        return Err(c"limit must be between 1 and 67108864");
                    }
                    c.limit = Some(v);
                }
                ct_config::BUCKETS => {
                    return Err(
                        c"the bucket count is the hashsize module parameter and cannot be set",
                    )
                }
                ct_config::TRACKING => {
                    if c.tracking.is_some() {
                        return Err(c"tracking given twice");
                    }
                    let v = a.u8()?;
                    if v != ct_config::TRACKING_AUTO && v != ct_config::TRACKING_ON {
                        return Err(c"tracking must be 0 (auto) or 1 (on)");
                    }
                    c.tracking = Some(v);
                }
                ct_config::ACTIVE => {
                    return Err(c"whether tracking is active is read only; set TRACKING")
                }
                ct_config::CHECKSUM => {
                    if c.checksum.is_some() {
                        return Err(c"checksum given twice");
                    }
                    c.checksum = Some(match a.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(c"checksum must be 0 (off) or 1 (on)"),
                    });
                }
                ct_config::TIMEOUT => {
                    let (i, ms) = parse_timeout(a.data)?;
                    if c.timeouts[i].is_some() {
                        return Err(c"timeout given twice");
                    }
                    c.timeouts[i] = Some(ms);
                }
                _ => return Err(c"unknown attribute in config"),
            }
            any = true;
        }
        if !any {
            return Err(c"config change is empty");
        }
        Ok(c)
    }
}

fn parse_timeout(payload: &[u8]) -> Result<(usize, u32), &'static CStr> {
    let (mut name, mut ms) = (None, None);
    for a in nla::iter(payload) {
        let a = a?;
        match a.kind {
            ct_timeout::NAME if name.is_none() => {
                let s = a.str()?;
                let i = ct_timeout::NAMES.iter().position(|n| *n == s);
                name = Some(i.ok_or(c"unknown timeout name")?);
            }
            ct_timeout::MS if ms.is_none() => {
                let v = a.u32()?;
                if v == 0 || v > i32::MAX as u32 {
                    return Err(c"timeout must be between 1 ms and 2^31-1 ms (24.8 days)");
                }
                ms = Some(v);
            }
            ct_timeout::NAME | ct_timeout::MS => return Err(c"repeated attribute in timeout"),
            _ => return Err(c"unknown attribute in timeout"),
        }
    }
    match (name, ms) {
        (Some(n), Some(v)) => Ok((n, v)),
        _ => Err(c"timeout needs a name and a value"),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    macro_rules! check_counters {
        ($c:ty, $max:expr) => {{
            let all = <$c>::ALL;
            for (i, a) in all.iter().enumerate() {
                assert_eq!(a.index(), i);
                assert_eq!(<$c>::from_attr(a.attr()), Some(*a));
                assert!(a.attr() > 1 && a.attr() <= $max);
                assert!(<$c>::REPORT_ORDER.contains(a));
                for b in &all[i + 1..] {
                    assert_ne!(a.attr(), b.attr());
                    assert_ne!(a.name(), b.name());
                }
            }
        }};
    }

    #[test]
    fn counter_lists_are_one_to_one_with_the_attributes() {
        check_counters!(rules_stats::Counter, rules_stats::MAX);
        assert_eq!(
            rules_stats::Counter::COUNT,
            usize::from(rules_stats::MAX - 1)
        );
        check_counters!(ct_stats::Counter, ct_stats::OFFLOAD_END_DELETED);
        for a in ct_stats::COUNT..=ct_stats::OFFLOAD_END_DELETED {
            let nested = [ct_stats::INVALID_REASON, ct_stats::MALFORMED_REASON].contains(&a);
            assert_eq!(ct_stats::Counter::from_attr(a).is_some(), !nested);
        }
        assert!(ct_stats::Counter::Related.is_event() && !ct_stats::Counter::Count.is_event());
        // The events are one block: the kernel's per-CPU array is
        // `Counter::EVENTS` long, indexed by `Counter::index`.
        let events = ct_stats::Counter::ALL.iter().filter(|c| c.is_event());
        assert_eq!(events.count(), ct_stats::Counter::EVENTS);
        assert!(ct_stats::Counter::ALL[..ct_stats::Counter::EVENTS]
            .iter()
            .all(|c| c.is_event()));
        assert!(ct_stats::Counter::OffloadEndDeleted.is_event());
        assert_eq!(ct_stats::Counter::EVENTS, 30);
        // The fast path's counters: attributes 30 to 38, after ALLOCATIONS,
        // reported last, in this order.
        let offload = [
            (ct_stats::Counter::Offloaded, 30, "offloaded"),
            (ct_stats::Counter::OffloadPackets, 31, "offload_packets"),
            (ct_stats::Counter::OffloadPunted, 32, "offload_punted"),
            (ct_stats::Counter::OffloadEndTcp, 33, "offload_end_tcp"),
            (
                ct_stats::Counter::OffloadEndExpired,
                34,
                "offload_end_expired",
            ),
            (ct_stats::Counter::OffloadEndRoute, 35, "offload_end_route"),
            (
                ct_stats::Counter::OffloadEndDevice,
                36,
                "offload_end_device",
            ),
            (
                ct_stats::Counter::OffloadEndRuleset,
                37,
                "offload_end_ruleset",
            ),
            (
                ct_stats::Counter::OffloadEndDeleted,
                38,
                "offload_end_deleted",
            ),
        ];
        let report = &ct_stats::Counter::REPORT_ORDER;
        for (i, (c, attr, name)) in offload.into_iter().enumerate() {
            assert_eq!((c.attr(), c.name()), (attr, name));
            assert_eq!(report[report.len() - offload.len() + i], c);
        }
        assert_eq!(ct_status::OFFLOAD, 1 << 14);
    }

    #[test]
    fn command_numbers_round_trip() {
        assert_eq!(Cmd::from_u8(Cmd::StatsGet as u8), Some(Cmd::StatsGet));
        assert_eq!(Cmd::from_u8(Cmd::StatsSet as u8), Some(Cmd::StatsSet));
        assert_eq!(Cmd::from_u8(0), None);
        assert_eq!(Cmd::from_u8(200), None);
    }

    fn put(buf: &mut std::vec::Vec<u8>, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        buf.extend_from_slice(&(len as u16).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(data);
        while !buf.len().is_multiple_of(4) {
            buf.push(0);
        }
    }

    fn tuple_v4() -> std::vec::Vec<u8> {
        let mut b = std::vec::Vec::new();
        put(&mut b, ct_tuple::FAMILY, &[nfproto::IPV4]);
        put(&mut b, ct_tuple::PROTO, &[6]);
        put(&mut b, ct_tuple::SRC, &[10, 0, 1, 1]);
        put(&mut b, ct_tuple::DST, &[10, 0, 2, 1]);
        put(&mut b, ct_tuple::SRC_PORT, &1234u16.to_ne_bytes());
        put(&mut b, ct_tuple::DST_PORT, &80u16.to_ne_bytes());
        b
    }

    #[test]
    fn tuple_parses() {
        let t = WireTuple::parse(&tuple_v4()).unwrap();
        assert_eq!(t.family, nfproto::IPV4);
        assert_eq!(t.proto, 6);
        assert_eq!(&t.src[..4], &[10, 0, 1, 1]);
        assert_eq!(t.src[4..], [0; 12]);
        assert_eq!((t.src_port, t.dst_port), (1234, 80));
    }

    #[test]
    fn tuple_errors_are_sentences() {
        // Every truncation of a valid tuple is refused, none panics (the
        // last attribute's 2 bytes of padding may be left out).
        let full = tuple_v4();
        assert!(WireTuple::parse(&full[..full.len() - 2]).is_ok());
        for n in 0..full.len() - 2 {
            assert!(WireTuple::parse(&full[..n]).is_err(), "prefix {n}");
        }
        let mut b = tuple_v4();
        put(&mut b, ct_tuple::PROTO, &[17]);
        assert_eq!(WireTuple::parse(&b), Err(c"repeated attribute in tuple"));
        let mut b = tuple_v4();
        put(&mut b, 99, &[]);
        assert_eq!(WireTuple::parse(&b), Err(c"unknown attribute in tuple"));
        let mut b = std::vec::Vec::new();
        put(&mut b, ct_tuple::FAMILY, &[nfproto::IPV6]);
        put(&mut b, ct_tuple::PROTO, &[6]);
        put(&mut b, ct_tuple::SRC, &[10, 0, 1, 1]);
        put(&mut b, ct_tuple::DST, &[10, 0, 2, 1]);
        put(&mut b, ct_tuple::SRC_PORT, &[0, 0]);
        put(&mut b, ct_tuple::DST_PORT, &[0, 0]);
        assert_eq!(
            WireTuple::parse(&b),
            Err(c"tuple address length does not match its family")
        );
        // A length field pointing past the end.
        assert_eq!(
            WireTuple::parse(&[200, 0, 1, 0, 2]),
            Err(c"attribute length out of bounds")
        );
    }

    #[test]
    fn config_parses_and_checks_ranges() {
        let mut t = std::vec::Vec::new();
        put(&mut t, ct_timeout::NAME, b"udp_unreplied\0");
        put(&mut t, ct_timeout::MS, &5000u32.to_ne_bytes());
        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::LIMIT, &100u32.to_ne_bytes());
        put(&mut b, ct_config::TIMEOUT | 0x8000, &t);
        let c = ConfigChange::parse(&b).unwrap();
        assert_eq!(c.limit, Some(100));
        assert_eq!(c.timeouts[11], Some(5000));
        assert_eq!(c.timeouts.iter().flatten().count(), 1);

        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::LIMIT, &0u32.to_ne_bytes());
        assert!(ConfigChange::parse(&b).is_err());
        assert_eq!(ConfigChange::parse(&[]), Err(c"config change is empty"));
        let mut t = std::vec::Vec::new();
        put(&mut t, ct_timeout::NAME, b"bogus\0");
        put(&mut t, ct_timeout::MS, &1u32.to_ne_bytes());
        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::TIMEOUT, &t);
        assert_eq!(ConfigChange::parse(&b), Err(c"unknown timeout name"));
        let mut t = std::vec::Vec::new();
        put(&mut t, ct_timeout::NAME, b"icmp\0");
        put(&mut t, ct_timeout::MS, &u32::MAX.to_ne_bytes());
        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::TIMEOUT, &t);
        assert!(ConfigChange::parse(&b).is_err());

        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::TRACKING, &[ct_config::TRACKING_ON]);
        assert_eq!(ConfigChange::parse(&b).unwrap().tracking, Some(1));
        put(&mut b, ct_config::TRACKING, &[ct_config::TRACKING_AUTO]);
        assert_eq!(ConfigChange::parse(&b), Err(c"tracking given twice"));
        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::TRACKING, &[2]);
        assert!(ConfigChange::parse(&b).is_err());
        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::ACTIVE, &[1]);
        assert!(ConfigChange::parse(&b).is_err());

        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::CHECKSUM, &[0]);
        assert_eq!(ConfigChange::parse(&b).unwrap().checksum, Some(false));
        put(&mut b, ct_config::CHECKSUM, &[1]);
        assert_eq!(ConfigChange::parse(&b), Err(c"checksum given twice"));
        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::CHECKSUM, &[1]);
        assert_eq!(ConfigChange::parse(&b).unwrap().checksum, Some(true));
        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::CHECKSUM, &[2]);
        assert!(ConfigChange::parse(&b).is_err());
        let mut b = std::vec::Vec::new();
        put(&mut b, ct_config::CHECKSUM, &1u32.to_ne_bytes());
        assert!(ConfigChange::parse(&b).is_err());
    }

    #[test]
    fn nla_iter_never_panics_on_garbage() {
        // Deterministic pseudo-random buffers.
        let mut x = 0x1234_5678u32;
        for len in 0..64 {
            let mut b = std::vec::Vec::new();
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b.push(x as u8);
            }
            for a in nla::iter(&b) {
                let _ = a.map(|a| (a.u8(), a.u16(), a.u32(), a.str()));
            }
            let _ = WireTuple::parse(&b);
            let _ = ConfigChange::parse(&b);
        }
    }

    #[test]
    fn family_name_forms_agree() {
        assert_eq!(&FAMILY_NAME_C[..FAMILY_NAME.len()], FAMILY_NAME.as_bytes());
        assert_eq!(FAMILY_NAME_C.last(), Some(&0));
        // GENL_NAMSIZ is 16 including the NUL.
        assert!(FAMILY_NAME_C.len() <= 16);
    }
}
