// SPDX-License-Identifier: GPL-2.0

//! rfw.ko: stateful connection tracking and NAT for Linux, in Rust.
//!
//! This crate is the kernel glue. It owns the registrations with the kernel
//! (pernet operations, netfilter hooks, the generic netlink family) and the
//! kernel memory (per-CPU counters); packet parsing, tracking, NAT and rules
//! are decided by the `conntrack` and `nat` crates, which are safe Rust
//! throughout (their lint level forbids anything else). Within this crate,
//! code the compiler cannot check lives in [`sys`] alone: Kbuild denies it
//! on the command line for the whole crate, and `sys` is the one module
//! that allows it. The `module!` declaration is there too (`sys::module`).
//!
//! Lifetime of the registrations (see `Rfw`): pernet operations first, so that
//! every namespace has its hooks and counters before any command can ask for
//! them; the netlink family last. Teardown runs in the opposite order.

use kernel::prelude::*;

mod ct;
mod genl;
mod hooks;
mod masq;
mod percpu;
mod pernet;
mod pkt;
mod rules;
mod sys;

use sys::bindings;
/// For the printing macros, which name it `crate::__LOG_PREFIX`.
use sys::module::LOG_PREFIX as __LOG_PREFIX;

/// The loaded module. Dropping it unregisters everything, in field order:
/// the netlink family first (no command can reach per-namespace state any
/// more), then the address notifiers (MASQUERADE flushes), then the pernet operations (hooks gone, every namespace's
/// connections removed, memory freed), then the connection table (collector
/// stopped, last entries freed after a grace period, slab cache destroyed),
/// and last waits for the RCU callbacks that free replaced rulesets and
/// settings (`rcu_barrier`), whose code is this module's.
struct Rfw {
    _genl: genl::Registration,
    _masq: masq::Registration,
    _pernet: pernet::Registration,
    _table: ct::table::Registration,
    _rcu_callbacks: sys::rcu::CallbackBarrier,
}

impl kernel::Module for Rfw {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let barrier = sys::rcu::CallbackBarrier::new();
        let table = ct::table::Registration::new()?;
        let pernet = pernet::Registration::new()?;
        let masq = masq::Registration::new()?;
        let genl = genl::Registration::new(module)?;
        let t = ct::table::get();
        pr_info!(
            "loaded: IPv4 and IPv6 hooks in each network namespace that needs them; {} buckets per family, limit {} per namespace, {} in all, {}/{} bytes per IPv4/IPv6 entry (TCP: +{})\n",
            t.buckets(),
            t.default_limit(),
            t.max_total(),
            ct::table::ENTRY_SIZE_V4,
            ct::table::ENTRY_SIZE_V6,
            ct::table::TCP_STATE_SIZE
        );
        Ok(Rfw {
            _genl: genl,
            _masq: masq,
            _pernet: pernet,
            _table: table,
            _rcu_callbacks: barrier,
        })
    }
}

impl Drop for Rfw {
    fn drop(&mut self) {
        pr_info!("unloading\n");
    }
}
