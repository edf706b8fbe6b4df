//! rfw's ruleset, NAT and mangle engine.
//!
//! The decisions and rewrites behind iptables' `filter`, `nat` and `mangle`
//! tables, as `no_std` code without allocation that rfw.ko runs unchanged:
//!
//! * [`rule`]: the ruleset model (tables, hooks, matches, targets).
//! * [`codec`]: the binary table format: decoding into caller storage and
//!   whole-table validation (`ip_tables.c` `translate_table`).
//! * [`eval`]: evaluation on the packet path (`ipt_do_table`).
//! * [`nat_core`]: NAT bindings and unique tuple choice (`nf_nat_core.c`),
//!   MASQUERADE and REDIRECT addresses (`nf_nat_masquerade.c`,
//!   `nf_nat_redirect.c`).
//! * [`nat_proto`]: packet rewriting with incremental checksums
//!   (`nf_nat_proto.c`).
//! * [`mangle`]: MARK, TOS and TTL (`xt_MARK`, `xt_DSCP.c`, `xt_HL.c`).
//! * [`log`]: LOG lines in `nf_log_syslog`'s format (`nf_log_syslog.c`).
//! * `spec`, `text` (feature `host`): the owned ruleset, its encoder and the
//!   save/restore text form used by fwctl.
#![no_std]
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

#[cfg(feature = "host")]
extern crate alloc;
#[cfg(any(test, feature = "host"))]
extern crate std;

pub mod codec;
pub mod eval;
pub mod log;
pub mod mangle;
pub mod nat_core;
pub mod nat_proto;
pub mod offload;
pub mod rule;
#[cfg(feature = "host")]
pub mod spec;
#[cfg(feature = "host")]
pub mod text;
