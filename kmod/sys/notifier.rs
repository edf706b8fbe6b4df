// SPDX-License-Identifier: GPL-2.0

//! The IPv4 and IPv6 address notifiers (`register_inetaddr_notifier`,
//! `register_inet6addr_notifier`), as MASQUERADE uses them
//! (`nf_nat_masquerade.c`): a handler learns which address of which
//! namespace went down.
//!
//! The IPv4 chain is a blocking one (process context, RTNL held); the IPv6
//! chain is atomic and may run in softirq context, so handlers must not
//! sleep.

use core::ffi::{c_int, c_ulong, c_void};
use core::marker::PhantomData;
use core::ptr::NonNull;

use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::Opaque;

use super::netdevice::NetDevice;
use super::pernet::NetRef;
use super::rtnl::Rtnl;
use crate::bindings;
use crate::pernet::RfwNet;

/// What to do when an address is removed from an interface.
pub(crate) trait AddrDown {
    /// `NETDEV_DOWN` for `addr` (IPv4: its 4 bytes first, zeros after;
    /// IPv6: all 16) in the namespace whose state is `net`. Must not sleep.
    fn addr_down(net: &RfwNet, addr: [u8; 16]);
}

/// `H`'s handlers on both address chains, registered for as long as this
/// value lives.
///
/// Create it after rfw's pernet operations (so every namespace that can
/// report an address has its `RfwNet`) and drop it before them: a device's
/// addresses are removed before its namespace's `exit` runs.
///
/// # Invariants
///
/// `nb4` and `nb6` are registered on the IPv4 and IPv6 chains, with
/// [`Registration::<H>::inet_event`] and [`Registration::<H>::inet6_event`]
/// as callbacks; the boxes keep them in place until `drop` unregistered them.
pub(crate) struct Registration<H: AddrDown> {
    nb4: KBox<Opaque<bindings::notifier_block>>,
    nb6: KBox<Opaque<bindings::notifier_block>>,
    _handler: PhantomData<fn() -> H>,
}

// SAFETY: the blocks are only touched by the kernel's chain code, under its
// own locks; dropping (unregistering) works from any process context.
unsafe impl<H: AddrDown> Send for Registration<H> {}
// SAFETY: `&Registration` gives access to nothing.
unsafe impl<H: AddrDown> Sync for Registration<H> {}

fn block(call: bindings::notifier_fn_t) -> Result<KBox<Opaque<bindings::notifier_block>>> {
    let nb = bindings::notifier_block {
        notifier_call: call,
        ..Default::default()
    };
    Ok(KBox::new(Opaque::new(nb), GFP_KERNEL)?)
}

impl<H: AddrDown> Registration<H> {
    /// Registers `H` on both chains.
    pub(crate) fn new() -> Result<Self> {
        let nb4 = block(Some(Self::inet_event))?;
        let nb6 = block(Some(Self::inet6_event))?;
        // SAFETY: a filled block in its own allocation, kept until `drop`
        // unregistered it.
        to_result(unsafe { bindings::register_inetaddr_notifier(nb4.get()) })?;
        // SAFETY: as above.
        if let Err(e) = to_result(unsafe { bindings::register_inet6addr_notifier(nb6.get()) }) {
            // SAFETY: registered just above.
            unsafe { bindings::unregister_inetaddr_notifier(nb4.get()) };
            return Err(e);
        }
        // INVARIANT: both registered above.
        Ok(Registration {
            nb4,
            nb6,
            _handler: PhantomData,
        })
    }

    /// `NETDEV_DOWN` for an IPv4 address.
    ///
    /// # Safety
    ///
    /// Called by the inetaddr notifier chain, with an `in_ifaddr`.
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
        // The device's namespace is live and rfw's pernet operations are
        // registered (this registration lives inside theirs); `exit` runs
        // after its devices, and so their addresses, are gone. rfw's
        // `init` may not have run for it (a namespace whose creation
        // failed removes the addresses it had).
        // SAFETY: so `get_live` may look.
        if let Some(rn) = unsafe { crate::sys::pernet::get_live(net) } {
            H::addr_down(rn, addr);
        }
        bindings::NOTIFY_DONE as c_int
    }

    /// `NETDEV_DOWN` for an IPv6 address.
    ///
    /// # Safety
    ///
    /// Called by the inet6addr notifier chain, with an `inet6_ifaddr`.
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
        if let Some(rn) = unsafe { crate::sys::pernet::get_live(net) } {
            H::addr_down(rn, addr);
        }
        bindings::NOTIFY_DONE as c_int
    }
}

impl<H: AddrDown> Drop for Registration<H> {
    fn drop(&mut self) {
        // After these return no callback runs or will run, so the blocks
        // may be freed with `self`.
        // SAFETY: both were registered in `new` (invariant).
        unsafe {
            bindings::unregister_inet6addr_notifier(self.nb6.get());
            bindings::unregister_inetaddr_notifier(self.nb4.get());
        }
    }
}

/// What to do when a network device comes, goes down or away, or its MTU
/// changes. Process context, RTNL held (`rtnl`, the notifier's).
pub(crate) trait DevDown {
    /// `NETDEV_DOWN`, `NETDEV_UNREGISTER` or `NETDEV_CHANGEMTU` of the
    /// device with index `ifindex` in the namespace whose state is `net`.
    fn dev_down(net: &RfwNet, ifindex: c_int);

    /// `NETDEV_REGISTER` of `dev` in namespace `netref`, whose state is
    /// `net`.
    fn dev_registered(net: &RfwNet, netref: NetRef<'_>, dev: &NetDevice, rtnl: &mut Rtnl);

    /// `NETDEV_UNREGISTER` of `dev` in namespace `netref` (it goes away,
    /// or to another namespace), after [`DevDown::dev_down`].
    fn dev_unregistered(net: &RfwNet, netref: NetRef<'_>, dev: &NetDevice, rtnl: &mut Rtnl);
}

/// `H`'s handler on the netdevice notifier chain
/// (`register_netdevice_notifier`), registered for as long as this value
/// lives. Registration replays `NETDEV_REGISTER`/`UP` for the devices that
/// exist, and unregistration `DOWN`/`UNREGISTER` (the chain's rule): `H`
/// sees those too.
///
/// Create it after rfw's pernet operations and drop it before them: a
/// namespace's devices are unregistered before any pernet `exit` runs
/// (`cleanup_net` runs `exit_batch_rtnl`, which unregisters them, first).
///
/// # Invariants
///
/// `nb` is registered on the netdevice chain with
/// [`DevRegistration::<H>::event`] as callback, until `drop`.
pub(crate) struct DevRegistration<H: DevDown> {
    nb: KBox<Opaque<bindings::notifier_block>>,
    _handler: PhantomData<fn() -> H>,
}

// SAFETY: as `Registration`.
unsafe impl<H: DevDown> Send for DevRegistration<H> {}
// SAFETY: as `Registration`.
unsafe impl<H: DevDown> Sync for DevRegistration<H> {}

impl<H: DevDown> DevRegistration<H> {
    /// Registers `H`.
    pub(crate) fn new() -> Result<Self> {
        let nb = block(Some(Self::event))?;
        // SAFETY: a filled block in its own allocation, kept until `drop`.
        to_result(unsafe { bindings::register_netdevice_notifier(nb.get()) })?;
        // INVARIANT: registered above.
        Ok(DevRegistration {
            nb,
            _handler: PhantomData,
        })
    }

    /// A netdevice event.
    ///
    /// # Safety
    ///
    /// Called by the netdevice notifier chain, with its
    /// `netdev_notifier_info`.
    unsafe extern "C" fn event(
        _nb: *mut bindings::notifier_block,
        event: c_ulong,
        ptr: *mut c_void,
    ) -> c_int {
        let is = |e: u32| event == c_ulong::from(e);
        let registered = is(bindings::netdev_cmd_NETDEV_REGISTER);
        let unregistered = is(bindings::netdev_cmd_NETDEV_UNREGISTER);
        let down = unregistered
            || is(bindings::netdev_cmd_NETDEV_DOWN)
            || is(bindings::netdev_cmd_NETDEV_CHANGEMTU);
        if !registered && !down {
            return bindings::NOTIFY_DONE as c_int;
        }
        let mut ifindex: c_int = 0;
        // SAFETY: `ptr` is the chain's `netdev_notifier_info`.
        let net = unsafe { bindings::rfw_netdev_info(ptr, &mut ifindex) };
        // The device's namespace is live and rfw's pernet operations are
        // registered (this registration lives inside theirs); its `exit`
        // runs after all its devices were unregistered. rfw's `init` may
        // not have run for it (a namespace whose creation failed).
        // SAFETY: so `get_live` may look.
        let Some(rn) = (unsafe { crate::sys::pernet::get_live(net) }) else {
            return bindings::NOTIFY_DONE as c_int;
        };
        if down {
            H::dev_down(rn, ifindex);
        }
        if registered || unregistered {
            // SAFETY: the chain's device, live for the call.
            let dev = unsafe { NetDevice::from_raw(bindings::rfw_netdev_notifier_dev(ptr)) };
            // SAFETY: the device's namespace, live for the call (above).
            let netref = NonNull::new(net).map(|n| unsafe { NetRef::from_raw(n) });
            // The netdevice chain runs under RTNL, and this call holds no
            // other token.
            // SAFETY: so the token is RTNL's for the call.
            let mut rtnl = unsafe { Rtnl::assume() };
            if let (Some(dev), Some(netref)) = (dev, netref) {
                if registered {
                    H::dev_registered(rn, netref, dev, &mut rtnl);
                } else {
                    H::dev_unregistered(rn, netref, dev, &mut rtnl);
                }
            }
        }
        bindings::NOTIFY_DONE as c_int
    }
}

impl<H: DevDown> Drop for DevRegistration<H> {
    fn drop(&mut self) {
        // SAFETY: registered in `new` (invariant); no callback runs after.
        unsafe { bindings::unregister_netdevice_notifier(self.nb.get()) };
    }
}
