// SPDX-License-Identifier: GPL-2.0

//! The safe layer between rfw's kernel glue and the C kernel.
//!
//! This folder is meant to be the only home of `unsafe` code in `kmod/`,
//! in Rust-for-Linux's manner (`rust/kernel/`): each kernel object gets one
//! typed wrapper here, built from a raw pointer by an `unsafe fn from_raw`
//! whose `# Safety` section states the contract, types document their
//! `# Invariants`, registrations and owned objects are RAII values, and C
//! callbacks enter Rust through generic trampolines that hand safe code a
//! reference with the right lifetime and turn its `Result` into an errno.
//! The modules that use this layer carry `#![deny(unsafe_code)]`.
//!
//! The move is under way: files outside this folder that still hold
//! `unsafe` (the packet path, the connection table, pernet state, per-CPU
//! memory) are wrapped here one kernel object at a time.

pub(crate) mod genl;
pub(crate) mod nlmsg;
pub(crate) mod time;
