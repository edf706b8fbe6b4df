// SPDX-License-Identifier: GPL-2.0

//! MASQUERADE bindings die with their address (`nf_nat_masquerade.c`).
//!
//! When an IPv4 or IPv6 address is removed from an interface, the
//! connections MASQUERADEd to it can never work again (replies to that
//! address will not arrive); Linux deletes them so that the next packet
//! of the flow starts a new connection with the interface's new address.
//! rfw does the same: the address notifiers (the IPv6 one may run in
//! softirq context) queue the address in the namespace's [`MasqNet`] and
//! kick a work item; the work walks the table in process context and
//! removes the namespace's connections marked `Status::MASQUERADE` whose
//! reply tuple is addressed to it (counted as `masq_flushed`). If more
//! addresses go at once than the queue holds, every MASQUERADE connection
//! of the namespace is removed, as Linux does for a device going down.

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_ulong, c_void};
use core::mem::offset_of;

use conntrack::{Direction, Status};
use kernel::error::to_result;
use kernel::prelude::*;

use crate::bindings;
use crate::ct::table;
use crate::pernet::{self, RfwNet};
use crate::rules::RStat;
use crate::sys::kernel_static::KernelStatic;
use crate::sys::sync::{LockClassKey, SpinLockBh};

const QUEUE: usize = 8;

#[derive(Clone, Copy)]
struct Pending {
    n: usize,
    all: bool,
    addrs: [[u8; 16]; QUEUE],
}

/// The lockdep class of every namespace's `MasqNet::pending` lock.
static PENDING_CLASS: LockClassKey = LockClassKey::new();

/// A namespace's queue of removed addresses and its work item.
pub(crate) struct MasqNet {
    /// Taken by the notifiers (the IPv6 one may run in softirq) and the work.
    pending: SpinLockBh<Pending>,
    work: UnsafeCell<bindings::delayed_work>,
}

// SAFETY: `pending` is behind its lock; `work` is only touched through the
// kernel's workqueue calls.
unsafe impl Sync for MasqNet {}
// SAFETY: see `Sync`.
unsafe impl Send for MasqNet {}

impl MasqNet {
    /// An empty queue; [`MasqNet::init`] must run once it is in place.
    pub(crate) fn new() -> Self {
        MasqNet {
            pending: SpinLockBh::new(
                Pending {
                    n: 0,
                    all: false,
                    addrs: [[0; 16]; QUEUE],
                },
                c"rfw_masq_pending",
                &PENDING_CLASS,
            ),
            // SAFETY: plain data, initialised in place by `init`.
            work: UnsafeCell::new(unsafe { core::mem::zeroed() }),
        }
    }

    /// Initialises the work item in its final place (the namespace's
    /// `RfwNet`, which never moves).
    pub(crate) fn init(&self) {
        // SAFETY: our own work item, not queued yet.
        unsafe { bindings::rfw_init_delayed_work(self.work.get(), Some(masq_work)) };
    }

    /// Waits for a queued or running flush; none can be queued afterwards
    /// once the notifiers cannot reach this namespace (pernet exit).
    pub(crate) fn stop(&self) {
        // SAFETY: the work item was initialised by `init`.
        unsafe { bindings::cancel_delayed_work_sync(self.work.get()) };
    }

    fn queue(&self, addr: [u8; 16]) {
        {
            let mut p = self.pending.lock();
            if p.n < QUEUE {
                let n = p.n;
                p.addrs[n] = addr;
                p.n += 1;
            } else {
                p.all = true;
            }
        }
        // SAFETY: initialised work item; callable from any context.
        unsafe { bindings::rfw_mod_delayed_work(self.work.get(), 0) };
    }
}

/// The flush, in process context.
///
/// # Safety
///
/// Called by the workqueue only, for the work item of a live `MasqNet`
/// inside an `RfwNet` (cancelled before the `RfwNet` is dropped).
unsafe extern "C" fn masq_work(work: *mut bindings::work_struct) {
    // SAFETY: `work` is the `work` field of a `MasqNet`'s delayed work.
    let dw = unsafe { bindings::rfw_to_delayed_work(work) };
    let off = offset_of!(RfwNet, masq) + offset_of!(MasqNet, work);
    // The delayed work lives at `off` inside a live `RfwNet` (contract).
    // SAFETY: so stepping back gives that `RfwNet`.
    let rn = unsafe { &*dw.cast::<u8>().sub(off).cast::<RfwNet>() };
    let p = {
        let mut p = rn.masq.pending.lock();
        let taken = *p;
        p.n = 0;
        p.all = false;
        taken
    };
    let addrs = &p.addrs[..p.n];
    let removed = table::get().remove_if(&rn.ct, |k, st| {
        st.has(Status::MASQUERADE)
            && (p.all || addrs.iter().any(|a| *a == k.tuple(Direction::Reply).dst))
    });
    for _ in 0..removed {
        rn.rules.count(RStat::MasqFlushed);
    }
}

/// `NETDEV_DOWN` for an IPv4 address.
///
/// # Safety
///
/// Called by the inetaddr notifier chain with an `in_ifaddr`.
unsafe extern "C" fn inet_event(
    _nb: *mut bindings::notifier_block,
    event: c_ulong,
    ptr: *mut c_void,
) -> c_int {
    if event != c_ulong::from(bindings::netdev_cmd_NETDEV_DOWN) {
        return bindings::NOTIFY_DONE as c_int;
    }
    let mut a: u32 = 0;
    // SAFETY: `ptr` is the chain's `in_ifaddr`; `a` is ours.
    let net = unsafe { bindings::rfw_ifa4_info(ptr, &mut a) };
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&a.to_ne_bytes());
    // The device's namespace is live and rfw's `init` ran for it (see
    // `Registration`); `exit` runs after its devices are gone.
    // SAFETY: so its `RfwNet` is live.
    unsafe { pernet::get(net) }.masq.queue(addr);
    bindings::NOTIFY_DONE as c_int
}

/// `NETDEV_DOWN` for an IPv6 address.
///
/// # Safety
///
/// Called by the inet6addr notifier chain with an `inet6_ifaddr`.
unsafe extern "C" fn inet6_event(
    _nb: *mut bindings::notifier_block,
    event: c_ulong,
    ptr: *mut c_void,
) -> c_int {
    if event != c_ulong::from(bindings::netdev_cmd_NETDEV_DOWN) {
        return bindings::NOTIFY_DONE as c_int;
    }
    let mut addr = [0u8; 16];
    // SAFETY: `ptr` is the chain's `inet6_ifaddr`; `addr` has 16 bytes.
    let net = unsafe { bindings::rfw_ifa6_info(ptr, addr.as_mut_ptr()) };
    // SAFETY: as in `inet_event`.
    unsafe { pernet::get(net) }.masq.queue(addr);
    bindings::NOTIFY_DONE as c_int
}

static NB4: KernelStatic<bindings::notifier_block> =
    // SAFETY: zero is a valid value for every field.
    KernelStatic::new(unsafe { core::mem::zeroed() });
static NB6: KernelStatic<bindings::notifier_block> =
    // SAFETY: zero is a valid value for every field.
    KernelStatic::new(unsafe { core::mem::zeroed() });

/// The address notifiers, registered for as long as this value lives.
/// Created after the pernet operations (every namespace has its
/// `RfwNet`), dropped before them.
pub(crate) struct Registration(());

impl Registration {
    /// Registers both notifiers.
    pub(crate) fn new() -> Result<Self> {
        // Module init runs once; the blocks are not registered yet.
        // SAFETY: nothing else reads them now (`KernelStatic` invariant).
        unsafe {
            (*NB4.get()).notifier_call = Some(inet_event);
            (*NB6.get()).notifier_call = Some(inet6_event);
        }
        // SAFETY: a filled, static notifier block.
        to_result(unsafe { bindings::register_inetaddr_notifier(NB4.get()) })?;
        // SAFETY: as above.
        if let Err(e) = to_result(unsafe { bindings::register_inet6addr_notifier(NB6.get()) }) {
            // SAFETY: registered just above.
            unsafe { bindings::unregister_inetaddr_notifier(NB4.get()) };
            return Err(e);
        }
        Ok(Registration(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // After these return no callback runs or will run.
        // SAFETY: both were registered in `new`.
        unsafe {
            bindings::unregister_inet6addr_notifier(NB6.get());
            bindings::unregister_inetaddr_notifier(NB4.get());
        }
    }
}
