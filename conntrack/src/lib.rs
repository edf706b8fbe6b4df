//! rfw's connection tracking engine.
//!
//! Written once, tested on the host with `cargo test`, fuzzing and
//! benchmarks, and compiled unchanged into `rfw.ko` by Kbuild (one rustc
//! invocation, edition 2021, `core` only; `scripts/build-module.sh` does
//! it, through clippy).
//! Nothing here allocates, reads a clock or panics on the packet path:
//! time, the hash seed and storage come from the caller.
//!
//! # Layers
//! Each layer is usable on its own; the kernel glue and the NAT crate use
//! them separately. Every module names the netfilter file it corresponds
//! to.
//!
//! | module | what | Linux counterpart |
//! | --- | --- | --- |
//! | [`wire`] | zero-copy views: [`wire::ipv4`], [`wire::ipv6`], [`wire::tcp`], [`wire::udp`], [`wire::icmpv4`], [`wire::icmpv6`] | header structs, `skb_header_pointer()` |
//! | [`ipproto`] | IP protocol numbers and names | `IPPROTO_*` in `include/uapi/linux/in.h` |
//! | [`hook`] | [`Hook`]: where a packet is seen (the rules and the glue use it) | `enum nf_inet_hooks` |
//! | [`checksum`] | ones-complement sums, pseudo-headers, RFC 1624 updates | `include/net/checksum.h` |
//! | [`tuple`](mod@tuple) | [`Tuple`], [`Direction`], [`PerDir`], inversion, keyed SipHash-1-3 | `nf_conntrack_tuple.h`, `hash_conntrack_raw()` |
//! | [`parse`](mod@parse) | bytes (a whole packet, or with [`parse_prefix`] its first bytes) + family -> [`PacketInfo`] or [`ParseError`] | `nf_ct_get_tuple()`, `*_error()` length checks |
//! | [`conn`] | [`Conn`] = [`ConnKey`] (tuples, immutable once indexed) + [`ConnState`] (counters, deadline: atomics) + status word + TCP state; [`ConnRef`] for the per-packet update; [`Config`], [`Status`], timeouts | `struct nf_conn`, `init_conntrack()` |
//! | [`compact`] | [`compact::OrigTuple`], [`compact::ReplyTuple`]: tuples stored at their family's size (13 + 12 bytes for IPv4) | `struct nf_conntrack_tuple` |
//! | [`proto`] | TCP, UDP, ICMP/ICMPv6, generic trackers | `nf_conntrack_proto_*.c` |
//! | [`verdict`] | [`Verdict`]: [`Direction`] + [`Class`] (+ [`InvalidReason`]); [`CtState`] as rules see it | `enum ip_conntrack_info` |
//! | [`table`] | [`Table`] trait, `HostTable` (feature `host`) | hash table, `early_drop()`, `gc_worker()` |
//! | [`process`](mod@process) | all-in-one [`process()`] / [`track()`]; [`track_verified()`] checks the L4 checksum first | `nf_conntrack_in()`, the `*_error()` checksum checks |
//!
//! # The kernel glue's path
//! ```text
//! let n = skb_copy_bits(skb, 0, &mut buf[..min(skb.len, 384)]);       // a prefix
//! let info = conntrack::parse_prefix_len(&buf[..n], family, &cfg.parse,
//!                                        Some(skb.len))?;        // or INVALID
//! // info.invalid (a first fragment's UDP length): INVALID, table untouched
//! // at PRE_ROUTING, cfg.checksum on, info.checksum Some(c): nf_checksum()
//! // on the skb; bad: INVALID (bad_checksum), the table untouched
//! // (process::track_verified, before everything below)
//! match info.l4 {                                                        // before lookup:
//!     L4Info::Icmp(IcmpInfo::Untracked { .. }) => UNTRACKED,
//!     L4Info::Icmp(IcmpInfo::Error { quoted, .. }) => lookup(quoted.invert()),
//!         // RELATED when key.tuple(dir).dst == info.tuple.dst
//!     _ => {}
//! }
//! match rcu_table.lookup(&info.tuple) {   // hash: info.tuple.hash_with(&seed);
//!                                         // lock-free: entry.key.matches(dir, &info.tuple)
//!     Some((entry, dir)) => {
//!         // ConnRef { state, status, tcp }: lock-free but for TCP's
//!         // window state, which the entry's lock guards:
//!         let upd = conn_ref.update(&info, dir, now_ms, &cfg);
//!         // upd.verdict: dir + class; upd.action: Keep / Remove / RemoveAndRepeat
//!     }
//!     None => {
//!         let mut conn = Conn::new(&info, now_ms, &cfg)?;                // or INVALID(reason)
//!         let upd = conn.update(&info, Direction::Original, now_ms, &cfg); // NEW
//!         // NAT may call conn.set_reply_tuple() now: the key is frozen
//!         // once indexed. Table::insert indexes conn.tuple(Original) and
//!         // conn.tuple(Reply), possibly before confirmation; the table
//!         // sets CONFIRMED at the packet's last hook.
//!     }
//! }
//! ```
//! Periodically: `table.expire(now_ms, budget)`.
//!
//! Per-reason counters: [`InvalidReason::index`] (all malformed packets
//! share one index) and [`ParseError::index`] number the reasons densely
//! (`0..COUNT`, append-only: netlink statistics carry them);
//! [`InvalidReason::name`] / [`ParseError::name`] give stable snake_case
//! identifiers.
//!
//! # Time
//! `now` is monotonic **milliseconds** (`u64`) from the caller; the record
//! keeps a wrap-safe 32-bit deadline (see [`conn`]).
//!
//! # Features
//! `host`: `HostTable` over hashbrown, for tests, benchmarks, fuzzing and
//! host tools. Kbuild sets no feature, so none of it reaches `rfw.ko`.
// Kbuild also passes `-Zcrate-attr=no_std`: the attribute then appears
// twice, which is harmless; say so rather than drop it from the file.
#![allow(unused_attributes, clippy::duplicated_attributes)]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![deny(clippy::float_arithmetic)]
// The trackers mirror the C code's `switch` / `if` structure on purpose (the
// kernel's own flags allow this lint too).
#![allow(clippy::collapsible_match)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod checksum;
pub mod compact;
pub mod conn;
pub mod hook;
pub mod ipproto;
pub mod parse;
pub mod process;
pub mod proto;
pub mod seq;
pub mod table;
pub mod tuple;
pub mod verdict;
pub mod wire;

pub use conn::{
    Action, AtomicStatus, Config, Conn, ConnKey, ConnRef, ConnState, Status, StatusWord, Timeouts,
    Update,
};
pub use hook::Hook;
pub use parse::{parse, parse_prefix, parse_prefix_len, L4Checksum, PacketInfo, ParseError};
pub use process::{process, track, track_verified, Processed};
#[cfg(feature = "host")]
pub use table::{HostHandle, HostTable};
pub use table::{InsertError, Table, TableStats};
pub use tuple::{Direction, Family, HashKey, PerDir, Tuple};
pub use verdict::{Class, CtState, IgnoreReason, InvalidReason, Verdict};
