//! rfw's connection tracking engine.
//!
//! Written once, tested on the host with `cargo test`, fuzzing and
//! benchmarks, and compiled unchanged into `rfw.ko` by Kbuild (one rustc
//! invocation, edition 2021, `core` only). Nothing here allocates, reads a
//! clock or panics on the packet path: time, the hash seed and storage come
//! from the caller.
//!
//! Layers, each usable on its own (the kernel glue and the NAT crate use
//! them separately):
//! * [`wire`]: zero-copy packet views; [`checksum`]: RFC 1071/1624 sums.
//! * [`tuple`]: [`Tuple`], [`Direction`], the keyed hash.
//! * [`seq`]: wrapping sequence-number comparison.
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
pub mod conn;
pub mod parse;
pub mod process;
pub mod proto;
pub mod seq;
pub mod table;
pub mod tuple;
pub mod verdict;
pub mod wire;

pub use conn::{Action, Config, Conn, Status, Timeouts, Update};
pub use parse::{parse, PacketInfo, ParseError};
pub use process::{process, track, Processed};
#[cfg(feature = "host")]
pub use table::{HostHandle, HostTable};
pub use table::{InsertError, Table, TableStats};
pub use tuple::{Direction, Family, HashKey, PerDir, Tuple};
pub use verdict::{Class, IgnoreReason, InvalidReason, Verdict};
