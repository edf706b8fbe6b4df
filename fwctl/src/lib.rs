//! fwctl: configure and inspect rfw over generic netlink.
//!
//! * [`netlink`]: the socket, family resolution, requests and dumps ([`netlink::Client`]).
//! * [`rfw_msg`]: rfw's messages and attributes as types, numbers from `rfw_abi`.
//! * [`stats`]: `fwctl stats`.
//! * [`error`]: every failure as one printable line.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod error;
pub mod netlink;
pub mod rfw_msg;
pub mod stats;

#[cfg(test)]
mod fake_kernel;
