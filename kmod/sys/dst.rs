// SPDX-License-Identifier: GPL-2.0

//! Routes (`struct dst_entry`, include/net/dst.h) held for the fast path,
//! and the fast path's transmit (nf_flow_table_ip.c's NEIGH mode).
//!
//! A forwarded packet's route is taken from its skb at FORWARD, with a
//! reference of its own ([`Dst`]), and kept with the offloaded flow; the
//! fast path checks it (`dst_check`: a route change or a device going
//! away makes it obsolete) and sends later packets of the flow through its
//! device to its next hop with `neigh_xmit`, as nftables' flowtable does.

use core::ptr::NonNull;

use super::netfilter::{Verdict, STOLEN};
use super::skbuff::SkBuff;
use crate::bindings;

/// A held reference to a route (`dst_hold`), released on drop
/// (`dst_release`, from any context: the route itself is freed by RCU once
/// its last reference goes).
///
/// # Invariants
///
/// `ptr` points to a `dst_entry` on which this value holds one reference.
pub(crate) struct Dst {
    ptr: NonNull<bindings::dst_entry>,
    /// `rt6_get_cookie` at the time it was taken (IPv6; 0 for IPv4),
    /// which `dst_check` compares.
    cookie: u32,
}

// SAFETY: a reference count may be dropped from any CPU and context.
unsafe impl Send for Dst {}
// SAFETY: `&Dst` only reads the route and calls `dst_check`, which
// readers on every CPU call concurrently in the kernel.
unsafe impl Sync for Dst {}

impl Dst {
    /// The route attached to `skb`, with a reference of its own: `None`
    /// if there is none, if it is being freed (`dst_hold_safe` fails), or
    /// if it is an IPsec bundle (`dst_xfrm`: the fast path sends in the
    /// clear, so such flows stay on the normal path).
    pub(crate) fn of_skb(skb: &SkBuff, v6: bool) -> Option<Dst> {
        // SAFETY: the skb is valid while lent to us.
        let d = NonNull::new(unsafe { bindings::rfw_skb_dst(skb.as_ptr()) })?;
        // SAFETY: the skb's route is valid for the hook call (the skb
        // holds it, or the hook's RCU section does for a noref one).
        if unsafe { bindings::rfw_dst_has_xfrm(d.as_ptr()) } {
            return None;
        }
        // SAFETY: as above; on success the reference is ours.
        if !unsafe { bindings::rfw_dst_hold_safe(d.as_ptr()) } {
            return None;
        }
        let cookie = if v6 {
            // SAFETY: an IPv6 packet's route is an `rt6_info`, held.
            unsafe { bindings::rfw_rt6_cookie(d.as_ptr()) }
        } else {
            0
        };
        // INVARIANT: the reference taken above.
        Some(Dst { ptr: d, cookie })
    }

    /// `dst_check`: false once the route is obsolete (a route or
    /// address change flushed it, its device went away).
    #[inline]
    pub(crate) fn check(&self) -> bool {
        // SAFETY: held (type invariant).
        unsafe { bindings::rfw_dst_check(self.ptr.as_ptr(), self.cookie) }
    }

    /// The MTU a packet forwarded on this route is held to
    /// (`ip_dst_mtu_maybe_forward` / `ip6_dst_mtu_maybe_forward`).
    pub(crate) fn mtu(&self, v6: bool) -> u32 {
        // SAFETY: held (type invariant).
        unsafe { bindings::rfw_dst_mtu_forward(self.ptr.as_ptr(), v6) }
    }

    /// The index of the device the route leaves by.
    pub(crate) fn ifindex(&self) -> i32 {
        // SAFETY: held (type invariant); a held route keeps a device
        // (its own, or the blackhole device once its own went away).
        unsafe { bindings::rfw_dst_ifindex(self.ptr.as_ptr()) }
    }
}

impl Drop for Dst {
    fn drop(&mut self) {
        // SAFETY: our reference (type invariant), given back once.
        unsafe { bindings::rfw_dst_release(self.ptr.as_ptr()) };
    }
}

/// A packet at the fast path's hook, whose hook may hand it on
/// ([`FastSkb::xmit`]) instead of returning a verdict on it: the skb is
/// lent to the hook, and consumed by the transmit, after which nothing can
/// reach it (the handle is moved into `xmit`).
pub(crate) struct FastSkb<'a>(&'a mut SkBuff);

impl<'a> FastSkb<'a> {
    /// The hook's packet.
    ///
    /// # Safety
    ///
    /// `skb` is the packet of the netfilter hook being run, and the
    /// hook returns the verdict [`FastSkb::xmit`] gives, if it calls it.
    pub(crate) unsafe fn new(skb: &'a mut SkBuff) -> Self {
        FastSkb(skb)
    }

    /// The packet.
    #[inline]
    pub(crate) fn skb(&mut self) -> &mut SkBuff {
        self.0
    }

    /// The frame's network protocol (`skb->protocol`, host order:
    /// `ETH_P_IP`, `ETH_P_IPV6`, ...) if it was addressed to this host
    /// (`PACKET_HOST`), else 0: at netdev ingress nothing checked either
    /// yet.
    #[inline]
    pub(crate) fn host_protocol(&self) -> u16 {
        // SAFETY: the skb is valid while lent to us.
        unsafe { bindings::rfw_skb_host_protocol(self.0.as_ptr()) }
    }

    /// Trims the packet to `len` bytes from `skb->data`, keeping a
    /// `CHECKSUM_COMPLETE` sum right (`pskb_trim_rcsum`, as `ip_rcv_core`
    /// drops link-layer padding); false if the kernel could not (no
    /// memory).
    pub(crate) fn trim(&mut self, len: u32) -> bool {
        // SAFETY: the skb is ours for the hook call; its bytes may move
        // (`&mut`: nothing borrows them).
        unsafe { bindings::rfw_skb_trim_rcsum(self.0.as_ptr(), len) == 0 }
    }

    /// Whether the packet is larger than `mtu` in a way forwarding must
    /// refuse (`nf_flow_exceeds_mtu`: a GSO packet whose segments fit
    /// passes).
    #[inline]
    pub(crate) fn exceeds_mtu(&self, mtu: u32) -> bool {
        // Most packets fit: no call for those.
        if self.0.len() <= mtu {
            return false;
        }
        // SAFETY: the skb is valid while lent to us.
        unsafe { bindings::rfw_skb_exceeds_mtu(self.0.as_ptr(), mtu) }
    }

    /// Makes room in front of the packet for `dst`'s link-layer header
    /// (`skb_cow_head`); false if the kernel could not (no memory).
    #[inline]
    pub(crate) fn headroom_for(&mut self, dst: &Dst) -> bool {
        // SAFETY: the skb is ours for the hook call; `dst` is held.
        unsafe { bindings::rfw_skb_cow_head_for(self.0.as_ptr(), dst.ptr.as_ptr()) == 0 }
    }

    /// Sends the packet on `dst` to its next hop towards `daddr` (the
    /// packet's destination after NAT; 4 or 16 bytes, network order), as
    /// the flowtable's NEIGH transmit: the packet is the neighbour layer's
    /// now, and the hook returns the verdict given (`NF_STOLEN`).
    pub(crate) fn xmit(self, dst: &Dst, daddr: &[u8; 16], v6: bool) -> Verdict {
        let skb = self.0.as_ptr();
        if v6 {
            let a = bindings::in6_addr {
                in6_u: bindings::in6_addr__bindgen_ty_1 { u6_addr8: *daddr },
            };
            // SAFETY: the hook's skb, handed on (this handle is consumed
            // and the hook returns STOLEN, see `new`); `dst` is held and
            // outlives the hook's RCU section, which covers the transmit.
            unsafe { bindings::rfw_neigh_xmit6(skb, dst.ptr.as_ptr(), &a) };
        } else {
            let a = u32::from_ne_bytes([daddr[0], daddr[1], daddr[2], daddr[3]]);
            // SAFETY: as above.
            unsafe { bindings::rfw_neigh_xmit4(skb, dst.ptr.as_ptr(), a) };
        }
        STOLEN
    }
}
