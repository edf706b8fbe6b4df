// SPDX-License-Identifier: GPL-2.0

//! The safe layer between rfw's kernel glue and the C kernel: the kernel
//! abstractions rfw.ko needs and the 6.12 `kernel` crate lacks.
//!
//! This folder is the only home of `unsafe` code in `kmod/`, in
//! Rust-for-Linux's manner (`rust/kernel/`): each kernel object gets one
//! typed wrapper here, built from a raw pointer by an `unsafe fn from_raw`
//! whose `# Safety` section states the contract, types document their
//! `# Invariants`, registrations and owned objects are RAII values, and C
//! callbacks enter Rust through generic trampolines that hand safe code a
//! reference with the right lifetime and turn its `Result` into an errno.
//! Kbuild denies `unsafe_code` in the whole crate (`-Dunsafe_code` in
//! `RUSTFLAGS_kmod/rfw_main.o`); this module alone allows it.
//!
//! * [`bindings`]: bindgen's declarations of the C interfaces rfw uses.
//! * [`genl`], [`nlmsg`]: generic netlink families, their requests, dumps
//!   and replies.
//! * [`defrag`]: IP defragmentation (nf_defrag_ipv4/6) held per
//!   namespace while rfw tracks there.
//! * [`dst`]: routes held for the fast path, and its transmit
//!   (`neigh_xmit`).
//! * [`global`]: a value published from module init to exit (the table).
//! * [`kernel_static`]: statics whose address is handed to the kernel
//!   (`pernet_operations`, `genl_family`, hook and notifier tables).
//! * [`module`]: the module declaration (`module!`, whose expansion
//!   exports the init and exit symbols).
//! * [`netdevice`]: network devices: name, loopback, the addresses NAT
//!   takes from them.
//! * [`netfilter`]: hook state, verdicts, the hook table and its
//!   trampoline, re-routing and REJECT's answers.
//! * [`notifier`]: the IPv4/IPv6 address notifiers (an address went down).
//! * [`params`]: module parameters and the RAM size their defaults follow.
//! * [`percpu`]: per-CPU values and counters (`alloc_percpu`,
//!   `this_cpu_ptr`, `this_cpu_add`).
//! * [`pernet`]: per-namespace state (`pernet_operations`, `net_generic`)
//!   and the registration of each namespace's netfilter hooks.
//! * [`printk`]: a line to the kernel log without rfw's prefix (LOG).
//! * [`random`]: the kernel's random numbers (hash seeds, port choice).
//! * [`rcu`]: RCU read-side sections as lifetimes, grace periods, values
//!   published under RCU ([`rcu::RcuBox`]) and freed by RCU callbacks,
//!   the barrier that waits for those at unload.
//! * [`rtnl`]: the RTNL mutex as a token, and values only touched under
//!   it.
//! * [`rculist`]: RCU hash chains of objects in two chains at once, their
//!   lock stripes and graveyard (the connection table's pointer work).
//! * [`skbuff`]: socket buffers: length, mark, network header, checksum
//!   state, headers read in place (or copied from paged data) and
//!   writable views.
//! * [`slab`]: a typed `kmem_cache`.
//! * [`striped`]: small values guarded by a shared array of lock stripes.
//! * [`sync`]: lockdep-visible locks with RAII guards: `spinlock_t` taken
//!   with bottom halves off (nested subclasses, try-lock), a `struct
//!   mutex` in a static or a pinned box, bottom halves disabled
//!   (`local_bh_disable`).
//! * [`time`]: the jiffies and monotonic clocks.
//! * [`workqueue`]: delayed work items embedded in their owner.

#![allow(unsafe_code)]

pub(crate) mod bindings;
pub(crate) mod defrag;
pub(crate) mod dst;
pub(crate) mod genl;
pub(crate) mod global;
pub(crate) mod kernel_static;
pub(crate) mod module;
pub(crate) mod netdevice;
pub(crate) mod netfilter;
pub(crate) mod nlmsg;
pub(crate) mod notifier;
pub(crate) mod params;
pub(crate) mod percpu;
pub(crate) mod pernet;
pub(crate) mod printk;
pub(crate) mod random;
pub(crate) mod rcu;
pub(crate) mod rculist;
pub(crate) mod rtnl;
pub(crate) mod sched;
pub(crate) mod skbuff;
pub(crate) mod slab;
pub(crate) mod striped;
pub(crate) mod sync;
pub(crate) mod time;
pub(crate) mod workqueue;
