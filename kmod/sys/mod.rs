// SPDX-License-Identifier: GPL-2.0

//! The safe layer between rfw's kernel glue and the C kernel: the kernel
//! abstractions rfw.ko needs and the 6.12 `kernel` crate lacks.
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
//! `unsafe` (the packet path, the hooks, pernet state, the connection
//! table's slab and work item, MASQUERADE's notifiers) are wrapped here one
//! kernel object at a time.
//!
//! * [`genl`], [`nlmsg`]: generic netlink families, their requests, dumps
//!   and replies.
//! * [`kernel_static`]: statics whose address is handed to the kernel
//!   (`pernet_operations`, `genl_family`, hook and notifier tables).
//! * [`netdevice`]: network devices: name, loopback, the addresses NAT
//!   takes from them.
//! * [`netfilter`]: hook state, verdicts, the hook table and its
//!   trampoline, re-routing and REJECT's answers.
//! * [`percpu`]: per-CPU values and counters (`alloc_percpu`,
//!   `this_cpu_ptr`, `this_cpu_add`).
//! * [`random`]: the kernel's random numbers (hash seeds, port choice).
//! * [`rcu`]: RCU read-side sections as lifetimes, grace periods.
//! * [`skbuff`]: socket buffers: length, mark, network header, checksum
//!   state, header copies and writable views.
//! * [`sync`]: lockdep-visible locks with RAII guards: `spinlock_t` taken
//!   with bottom halves off (nested subclasses, try-lock), a static
//!   `struct mutex`, bottom halves disabled (`local_bh_disable`).
//! * [`time`]: the jiffies clock in milliseconds.

pub(crate) mod genl;
pub(crate) mod kernel_static;
pub(crate) mod netdevice;
pub(crate) mod netfilter;
pub(crate) mod nlmsg;
pub(crate) mod percpu;
pub(crate) mod random;
pub(crate) mod rcu;
pub(crate) mod skbuff;
pub(crate) mod sync;
pub(crate) mod time;
