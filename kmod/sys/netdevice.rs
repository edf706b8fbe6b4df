// SPDX-License-Identifier: GPL-2.0

//! Network devices (`include/linux/netdevice.h`, `inetdevice.h`,
//! `net/addrconf.h`): a hook's input or output device ([`NetDevice`]), its
//! name, whether it is loopback, and the addresses NAT takes from it.
//!
//! Plain fields (`flags`, `name`, `hard_header_len`) are read here over
//! bindgen's layout of `struct net_device` (made with this build's
//! configuration, as the kernel's own accessors see it); what needs the
//! kernel's logic (the addresses: RCU, `inet_select_addr`) goes to C.

use core::ffi::c_int;
use core::ptr::addr_of;

use kernel::types::Opaque;

use super::netfilter::HookState;
use super::rcu::Rcu;
use crate::bindings;

/// `IFNAMSIZ`: bytes of a device name, its NUL included.
pub(crate) const IFNAMSIZ: usize = 16;

/// A `struct net_device` the kernel lends rfw (a hook's `state->in` or
/// `state->out`).
///
/// # Invariants
///
/// The wrapped `net_device` is valid for the lifetime of every reference
/// to this `NetDevice`.
#[repr(transparent)]
pub(crate) struct NetDevice(Opaque<bindings::net_device>);

impl NetDevice {
    /// The `NetDevice` at `ptr`, `None` for a null pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must be null or point to a `net_device` valid for `'a` (e.g.
    /// a hook's device, which the stack holds for the hook call).
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::net_device) -> Option<&'a NetDevice> {
        // INVARIANT: the caller vouches for `'a`.
        // SAFETY: `NetDevice` is a transparent `Opaque<net_device>`, which
        // is a transparent `net_device`; the pointer is null or valid.
        unsafe { ptr.cast::<NetDevice>().as_ref() }
    }

    pub(super) fn as_ptr(&self) -> *mut bindings::net_device {
        self.0.get()
    }

    /// `dev->ifindex`.
    #[inline]
    pub(crate) fn ifindex(&self) -> c_int {
        // SAFETY: the device is valid (type invariant); a plain field.
        unsafe { (*self.as_ptr()).ifindex }
    }

    /// `dev->name`, whole (NUL-padded).
    #[inline]
    pub(crate) fn name(&self) -> [u8; IFNAMSIZ] {
        // `name` is an array of IFNAMSIZ bytes: read it whole (one copy,
        // not a read per byte). A rename (under RTNL) may race with the
        // read, as it does with every reader of `dev->name` in C.
        // SAFETY: the device is valid (type invariant); a field's bytes.
        let n = unsafe { core::ptr::read(addr_of!((*self.as_ptr()).name)) };
        n.map(|c| c as u8)
    }

    /// `dev->hard_header_len`: bytes of the link-layer header the device
    /// puts on a frame (0 for a device without one, e.g. a tunnel).
    #[inline]
    pub(crate) fn hard_header_len(&self) -> usize {
        // SAFETY: the device is valid (type invariant); a plain field.
        usize::from(unsafe { (*self.as_ptr()).hard_header_len })
    }

    /// `dev->flags & IFF_LOOPBACK`.
    #[inline]
    pub(crate) fn is_loopback(&self) -> bool {
        // `flags` changes under RTNL (`dev_change_flags`), as C's readers
        // of it see: one aligned word, whole.
        // SAFETY: the device is valid (type invariant); a plain field.
        let flags = unsafe { core::ptr::read_volatile(addr_of!((*self.as_ptr()).flags)) };
        flags & bindings::net_device_flags_IFF_LOOPBACK != 0
    }

    /// The device's primary IPv4 address, as REDIRECT takes it at
    /// PREROUTING: Linux's `nf_nat_redirect_ipv4` reads
    /// `__in_dev_get_rcu(dev)->ifa_list`'s first entry's `ifa_local` (the
    /// list is kept with primary addresses first), under the hook's RCU
    /// read-side section. `None` without IPv4 on the device or an
    /// address on it.
    pub(crate) fn first_addr4(&self, _rcu: &Rcu) -> Option<[u8; 4]> {
        // `__in_dev_get_rcu`: `rcu_dereference(dev->ip_ptr)`.
        // SAFETY: the device is valid (type invariant); inside an RCU
        // read-side section (`_rcu`).
        let indev = unsafe { bindings::rfw_in_dev_get_rcu(self.as_ptr()) };
        if indev.is_null() {
            return None;
        }
        // `rcu_dereference(indev->ifa_list)`: one load of the published
        // pointer (READ_ONCE).
        // SAFETY: `indev` is live for the RCU section (freed after a grace
        // period, `in_dev_finish_destroy` via `call_rcu`).
        let ifa = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*indev).ifa_list)) };
        if ifa.is_null() {
            return None;
        }
        // An address is filled in before it is published in the list and
        // freed a grace period after it is unlinked (`kfree_rcu`).
        // SAFETY: so `ifa` is readable for the RCU section.
        let a = unsafe { (*ifa).ifa_local };
        (a != 0).then(|| a.to_ne_bytes())
    }

    /// `inet_select_addr(dev, nexthop, RT_SCOPE_UNIVERSE)`: the IPv4
    /// source address this device would use towards `nexthop` (as
    /// `nf_nat_masquerade_ipv4` asks). Addresses in network order.
    pub(crate) fn inet_select_addr(&self, nexthop: [u8; 4]) -> Option<[u8; 4]> {
        // SAFETY: the device is valid (type invariant); takes the RCU
        // read lock itself.
        let a = unsafe {
            bindings::inet_select_addr(
                self.as_ptr(),
                u32::from_ne_bytes(nexthop),
                bindings::rt_scope_t_RT_SCOPE_UNIVERSE as c_int,
            )
        };
        (a != 0).then(|| a.to_ne_bytes())
    }

    /// `ipv6_dev_get_saddr(net, dev, dst, 0, &src)` in the hook's
    /// namespace: the IPv6 source address this device would use towards
    /// `dst` (as `nf_nat_masquerade_ipv6` asks).
    pub(crate) fn ipv6_saddr(&self, state: &HookState, dst: [u8; 16]) -> Option<[u8; 16]> {
        let dst = in6(dst);
        let mut src = in6([0; 16]);
        // SAFETY: the hook's namespace and a valid device (type
        // invariant); two addresses of ours.
        let r = unsafe {
            bindings::ipv6_dev_get_saddr(state.net_ptr(), self.as_ptr(), &dst, 0, &mut src)
        };
        (r == 0).then(|| in6_bytes(&src))
    }
}

/// An `in6_addr` holding `b`.
fn in6(b: [u8; 16]) -> bindings::in6_addr {
    // SAFETY: `in6_addr` is a union of byte/word views of 16 bytes: any bytes are valid.
    unsafe { core::mem::transmute::<[u8; 16], bindings::in6_addr>(b) }
}

/// The 16 bytes of an `in6_addr`.
fn in6_bytes(a: &bindings::in6_addr) -> [u8; 16] {
    // SAFETY: as in `in6`: 16 bytes, every view valid.
    unsafe { core::mem::transmute::<bindings::in6_addr, [u8; 16]>(*a) }
}
