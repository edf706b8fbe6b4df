// SPDX-License-Identifier: GPL-2.0

//! The kernel abstractions rfw.ko needs and the 6.12 `kernel` crate lacks,
//! in the manner of `rust/kernel/`: each wraps one kind of kernel object
//! once, states its contract in `# Safety` and `# Invariants` sections, and
//! gives the rest of kmod a safe interface.
//!
//! This folder is meant to be the only home of `unsafe` code in kmod; the
//! files outside it that still hold some (the packet path, the hooks,
//! pernet, generic netlink, the connection table) are moved here one kind
//! of object at a time.
//!
//! * [`kernel_static`]: statics whose address is handed to the kernel
//!   (`pernet_operations`, `genl_family`, hook and notifier tables).
//! * [`rcu`]: RCU read-side sections as lifetimes, grace periods.
//! * [`sync`]: lockdep-visible locks with RAII guards: `spinlock_t` taken
//!   with bottom halves off (nested subclasses, try-lock), a static
//!   `struct mutex`, bottom halves disabled (`local_bh_disable`).
//! * [`percpu`]: per-CPU values and counters (`alloc_percpu`,
//!   `this_cpu_ptr`, `this_cpu_add`).

pub(crate) mod kernel_static;
pub(crate) mod percpu;
pub(crate) mod rcu;
pub(crate) mod sync;
