//! fwctl: configure and inspect rfw over generic netlink.
//!
//! * [`cli`]: the command line (clap) and what each command does.
//! * [`netlink`]: the socket, family resolution, requests and dumps ([`netlink::Client`]).
//! * [`rfw_msg`]: rfw's messages and attributes as types, numbers from `rfw_abi`.
//! * [`stats`]: `fwctl stats`.
//! * [`ct`]: connection tracking records, their formats and user input.
//! * [`rules`]: the ruleset (filter, nat, mangle): read, edit, replace.
//! * [`error`]: every failure as one printable line.
//!
//! A command is a request (or a dump) of [`rfw_msg::RfwMessage`]s:
//!
//! ```no_run
//! use fwctl::{netlink::Client, rfw_msg::RfwMessage};
//!
//! let mut client = Client::connect()?; // resolves the "rfw" family once
//! for reply in client.request(RfwMessage::stats_get())? {
//!     for record in reply.hook_stats()? {
//!         println!("{record:?}");
//!     }
//! }
//! // A dump streams, one message at a time, until NLMSG_DONE:
//! for reply in client.dump(RfwMessage::stats_get())? {
//!     let _attrs = reply?.attrs;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cli;
pub mod ct;
pub mod error;
pub mod netlink;
pub mod rfw_msg;
pub mod rules;
pub mod stats;

#[cfg(test)]
mod fake_kernel;
