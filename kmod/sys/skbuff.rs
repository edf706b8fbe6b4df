// SPDX-License-Identifier: GPL-2.0

//! Socket buffers (`include/linux/skbuff.h`): the packet a netfilter hook
//! is handed ([`SkBuff`]), its length, mark, network header and checksum
//! state, and the writable view of its headers NAT and mangle rewrite.
//!
//! Plain fields (`len`, `data_len`, `mark`, the header offsets,
//! `ip_summed`) are read and written here over bindgen's layout of
//! `struct sk_buff`, as the kernel's own one-line accessors do; the
//! accessors that do real work (`skb_rtable` + `rt_nexthop`, `skb_orphan`,
//! `inet_sk_transparent`) stay C wrappers in `helpers.c`. Headers are
//! read where they lie when the linear area holds them, as
//! `skb_header_pointer` reads them, and copied only from paged data.

use core::ffi::{c_int, c_uint};
use core::mem::MaybeUninit;
use core::ptr::{addr_of_mut, NonNull};

use kernel::types::Opaque;

use crate::bindings;

/// The members of `struct_group(headers, ...)` in `struct sk_buff`
/// (`mark`, `ip_summed`, `network_header`, ...), an anonymous struct to C:
/// bindgen numbers it, so it is named once, here. A kernel whose layout
/// moves `mark` elsewhere fails to build rather than read the wrong field.
type Headers = bindings::sk_buff__bindgen_ty_4__bindgen_ty_1;

/// `skb->ip_summed`: what is known of the packet's checksums.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum IpSummed {
    /// `CHECKSUM_NONE`: nothing; the stack verifies in software.
    None,
    /// `CHECKSUM_UNNECESSARY`: the device verified them.
    Unnecessary,
    /// `CHECKSUM_COMPLETE`: `skb->csum` holds the sum of the received bytes.
    Complete,
    /// `CHECKSUM_PARTIAL`: the device or GSO will finish the L4 checksum
    /// of an outgoing packet (the field holds the pseudo-header sum).
    Partial,
}

impl IpSummed {
    fn from_raw(v: u8) -> IpSummed {
        match u32::from(v) {
            bindings::CHECKSUM_UNNECESSARY => IpSummed::Unnecessary,
            bindings::CHECKSUM_COMPLETE => IpSummed::Complete,
            bindings::CHECKSUM_PARTIAL => IpSummed::Partial,
            _ => IpSummed::None,
        }
    }

    fn to_raw(self) -> u8 {
        (match self {
            IpSummed::None => bindings::CHECKSUM_NONE,
            IpSummed::Unnecessary => bindings::CHECKSUM_UNNECESSARY,
            IpSummed::Complete => bindings::CHECKSUM_COMPLETE,
            IpSummed::Partial => bindings::CHECKSUM_PARTIAL,
        }) as u8
    }
}

/// Room for `N` bytes of headers that [`SkBuff::network_header`] could not
/// read in place (`skb_header_pointer`'s `buffer`), on the caller's stack.
/// Left uninitialised: only bytes the copy wrote are ever read.
pub(crate) struct HeaderBuf<const N: usize>(MaybeUninit<[u8; N]>);

impl<const N: usize> HeaderBuf<N> {
    /// An empty buffer.
    #[inline]
    pub(crate) const fn new() -> Self {
        HeaderBuf(MaybeUninit::uninit())
    }
}

/// A `struct sk_buff` lent to rfw by the kernel (a netfilter hook's
/// packet).
///
/// Reads and changes of the struct's own fields go through `&self`: the
/// struct is C memory behind an [`Opaque`] (interior mutability), Rust
/// never holds a reference into it, and `SkBuff` is not `Sync`, so a
/// `&SkBuff` stays on the task the kernel lent it to. The packet's bytes
/// are another matter: [`SkBuff::network_linear`] lends them as `&[u8]`
/// for as long as it borrows `self`, and whatever may write or move them
/// takes `&mut self` ([`SkBuff::writable`], which lends them as
/// `&mut [u8]` for as long; the re-routes, which may give the skb a new
/// head), so no read of the bytes overlaps a write or a move.
///
/// # Invariants
///
/// The wrapped `sk_buff` is valid, and used by no other task, for the
/// lifetime of every reference to this `SkBuff`.
#[repr(transparent)]
pub(crate) struct SkBuff(Opaque<bindings::sk_buff>);

impl SkBuff {
    /// The `SkBuff` at `ptr`, exclusively borrowed for `'a`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `sk_buff` that no other task uses, and
    /// no other Rust reference to it exists, for `'a` (e.g. the skb of a
    /// netfilter hook, for the duration of the hook call).
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::sk_buff) -> &'a mut SkBuff {
        // INVARIANT: the caller lends the skb to us for `'a`.
        // SAFETY: `SkBuff` is a transparent `Opaque<sk_buff>`, which is a
        // transparent `sk_buff`; the pointer is valid and unaliased for `'a`.
        unsafe { &mut *ptr.cast::<SkBuff>() }
    }

    /// The raw pointer, for the kernel functions that take the skb.
    #[inline]
    pub(super) fn as_ptr(&self) -> *mut bindings::sk_buff {
        self.0.get()
    }

    /// The `headers` group of the struct.
    #[inline]
    fn headers(&self) -> *mut Headers {
        // A field's address, no read: `__BindgenUnionField` is bindgen's
        // marker for a union member at the union's address.
        // SAFETY: the skb is valid (type invariant).
        unsafe { addr_of_mut!((*self.as_ptr()).__bindgen_anon_4.__bindgen_anon_1) }
            .cast::<Headers>()
    }

    /// The skb's address, as an identity for per-CPU state (never
    /// dereferenced).
    #[inline]
    pub(crate) fn addr(&self) -> usize {
        self.as_ptr() as usize
    }

    /// The address of the packet's network header (`skb_network_header`),
    /// as an identity for per-CPU state (never dereferenced): with
    /// [`SkBuff::addr`], it tells a packet from a later one given the same
    /// `sk_buff`, unless that one also got the same data buffer.
    #[inline]
    pub(crate) fn network_addr(&self) -> usize {
        let p = self.as_ptr();
        // SAFETY: the skb is valid (type invariant); plain fields.
        let (head, nh) = unsafe { ((*p).head as usize, (*self.headers()).network_header) };
        head.wrapping_add(usize::from(nh))
    }

    /// `skb->len`: bytes of the packet from `skb->data` (linear and paged).
    #[inline]
    pub(crate) fn len(&self) -> u32 {
        // SAFETY: the skb is valid (type invariant); a plain field.
        unsafe { (*self.as_ptr()).len }
    }

    /// The packet's length from its network header on (`skb->len` minus
    /// the network offset), `None` if the network header lies past the
    /// data: the length nf_conntrack measures the packet by
    /// (`ipv4_get_l4proto()`, the `*_error()` functions), whatever the IP
    /// header's length field says.
    pub(crate) fn network_len(&self) -> Option<u32> {
        u32::try_from(i64::from(self.len()) - i64::from(self.network_offset())).ok()
    }

    /// `skb->mark`.
    #[inline]
    pub(crate) fn mark(&self) -> u32 {
        // SAFETY: the skb is valid (type invariant); a plain field.
        unsafe { (*self.headers()).__bindgen_anon_4.mark }
    }

    /// Sets `skb->mark`.
    #[inline]
    pub(crate) fn set_mark(&self, mark: u32) {
        // SAFETY: the skb is valid and ours (type invariant); no Rust
        // reference into it exists (`Opaque`).
        unsafe { (*self.headers()).__bindgen_anon_4.mark = mark };
    }

    /// `skb_network_offset`: where the network header starts, relative to
    /// `skb->data` (negative once the stack pulled past it).
    #[inline]
    pub(crate) fn network_offset(&self) -> i32 {
        let p = self.as_ptr();
        // `skb_network_header(skb) - skb->data`, as integers: only the
        // difference is wanted.
        // SAFETY: the skb is valid (type invariant); plain fields.
        let (head, data, nh) = unsafe {
            (
                (*p).head as isize,
                (*p).data as isize,
                (*self.headers()).network_header,
            )
        };
        head.wrapping_add(nh as isize).wrapping_sub(data) as i32
    }

    /// The packet's bytes from its network header that lie in the skb's
    /// linear area (`skb_headlen`), at most `max`, where they lie: empty
    /// when the network header is not in that area.
    ///
    /// The bytes borrow the skb: whatever may rewrite or move them
    /// ([`SkBuff::writable`], a re-route) takes `&mut self`, so the borrow
    /// checker ends this borrow first.
    pub(crate) fn network_linear(&self, max: usize) -> &[u8] {
        let Ok(off) = usize::try_from(self.network_offset()) else {
            return &[];
        };
        let p = self.as_ptr();
        // SAFETY: the skb is valid (type invariant); plain fields.
        let (data, len, data_len) = unsafe { ((*p).data, (*p).len, (*p).data_len) };
        // `skb_headlen`: the bytes from `skb->data` in the linear area
        // (the rest, `data_len` of them, is paged).
        let headlen = len.saturating_sub(data_len) as usize;
        let n = headlen.saturating_sub(off).min(max);
        if n == 0 || data.is_null() {
            return &[];
        }
        // `[data + off, data + off + n)` lies in the linear area
        // `[data, data + skb_headlen)`, which the skb's head holds (the
        // kernel keeps `skb->tail` there) and the skb owns while it is
        // lent to us (type invariant), so it is
        // readable while `self` is borrowed. Nothing writes it meanwhile:
        // rfw writes packet bytes only through `Writable`, and moves them
        // only in `&mut self` methods, which the borrow of `self` keeps
        // out; the kernel functions rfw calls through `&self` change the
        // struct (checksum state, route, socket), never the bytes; and the
        // holder of a clone sharing them writes only after un-sharing its
        // copy (`skb_ensure_writable`, `skb_cow`): the rule every
        // `skb_header_pointer` reader relies on.
        // SAFETY: so these `n` bytes may be borrowed for as long as `self`.
        unsafe { core::slice::from_raw_parts(data.add(off), n) }
    }

    /// The packet's first bytes from its network header, as many as it
    /// has and at most `N`, read as `skb_header_pointer` reads them: in
    /// place when the skb's linear area holds them all
    /// ([`SkBuff::network_linear`]), else copied into `buf` with
    /// `skb_copy_bits` (paged data). `None` when there is not one byte, or
    /// the network header lies before `skb->data`.
    pub(crate) fn network_header<'a, const N: usize>(
        &'a self,
        buf: &'a mut HeaderBuf<N>,
    ) -> Option<&'a [u8]> {
        let off = self.network_offset();
        let len = i64::from(self.len()).checked_sub(i64::from(off))?;
        if len <= 0 || off < 0 {
            return None;
        }
        let n = (len as usize).min(N);
        let linear = self.network_linear(n);
        if linear.len() == n {
            return Some(linear);
        }
        // `off + n <= skb->len` (checked above), and `skb_copy_bits`
        // checks the bounds again.
        // SAFETY: the skb is valid (type invariant); `buf` has room for `n`.
        let r = unsafe {
            bindings::skb_copy_bits(self.as_ptr(), off, buf.0.as_mut_ptr().cast(), n as c_int)
        };
        if r != 0 {
            return None;
        }
        // SAFETY: `skb_copy_bits` wrote the first `n` bytes of `buf`.
        Some(unsafe { core::slice::from_raw_parts(buf.0.as_ptr().cast::<u8>(), n) })
    }

    /// Whether the skb is a TCP GSO packet (`skb_is_gso() &&
    /// skb_is_gso_tcp()`): what an IP length field of 0 means then (BIG
    /// TCP), as `iph_totlen()` and `ipv6_payload_len()` read it.
    pub(crate) fn is_gso_tcp(&self) -> bool {
        // SAFETY: the skb is valid (type invariant).
        unsafe { bindings::rfw_skb_is_gso_tcp(self.as_ptr()) }
    }

    /// [`SkBuff::network_len`] as a byte count; 0 when the network header
    /// lies outside the data.
    pub(crate) fn network_bytes(&self) -> usize {
        if self.network_offset() < 0 {
            return 0;
        }
        self.network_len().map_or(0, |l| l as usize)
    }

    /// Copies the `buf.len()` bytes at `offset` from the network header
    /// into `buf` (`skb_header_pointer`'s copy, with `skb_copy_bits`);
    /// false when the packet does not have them all.
    pub(crate) fn copy_network_at(&self, offset: usize, buf: &mut [u8]) -> bool {
        let end = offset.checked_add(buf.len());
        if end.is_none_or(|e| e > self.network_bytes()) {
            return false;
        }
        let (Ok(off), Ok(n)) = (
            c_int::try_from(i64::from(self.network_offset()) + offset as i64),
            c_int::try_from(buf.len()),
        ) else {
            return false;
        };
        // `off + n <= skb->len` (checked above), and `skb_copy_bits`
        // checks the bounds again.
        // SAFETY: the skb is valid (type invariant); `buf` has room for `n`.
        let r = unsafe { bindings::skb_copy_bits(self.as_ptr(), off, buf.as_mut_ptr().cast(), n) };
        r == 0
    }

    /// The link-layer header the packet came with (`skb_mac_header`, for
    /// `skb_mac_header_len` bytes), at most `max` and `buf.len()` bytes of
    /// it, copied into `buf`; empty when the skb has none
    /// (`!skb_mac_header_was_set`, or it does not end before the network
    /// header).
    pub(crate) fn mac_header<'b>(&self, max: usize, buf: &'b mut [u8]) -> &'b [u8] {
        let p = self.as_ptr();
        // SAFETY: the skb is valid (type invariant); plain fields.
        let (head, mh, nh) = unsafe {
            (
                (*p).head,
                (*self.headers()).mac_header,
                (*self.headers()).network_header,
            )
        };
        // `skb_mac_header_was_set`: `mac_header` is `(u16)~0U` until set.
        if mh == u16::MAX || nh <= mh || head.is_null() {
            return &[];
        }
        let n = usize::from(nh - mh).min(max).min(buf.len());
        // Both offsets count from `skb->head` into the skb's linear
        // buffer, where the stack put the link-layer and the network
        // header (the network header is pulled into it before any hook),
        // so `[head + mh, head + mh + n)`, which ends at or before the
        // network header, lies in that buffer; `buf` has room for `n`.
        // SAFETY: so this copy reads and writes valid memory.
        unsafe { core::ptr::copy_nonoverlapping(head.add(usize::from(mh)), buf.as_mut_ptr(), n) };
        buf.get(..n).unwrap_or(&[])
    }

    /// True when the L4 checksum of the packet is right:
    /// `nf_checksum(skb, hook, dataoff, proto, pf) == 0`, the check
    /// nf_conntrack's `tcp_error()` and its siblings make. `offset` is
    /// where the L4 header starts, counted from the network header; `pf`
    /// the family (`NFPROTO_IPV4` and `_IPV6` are `AF_INET` and
    /// `AF_INET6`). The kernel trusts a device that verified the checksum
    /// (`CHECKSUM_UNNECESSARY`, or `CHECKSUM_COMPLETE` at PRE_ROUTING and
    /// LOCAL_IN) and otherwise sums the packet in software, recording the
    /// result in the skb (`ip_summed`, `csum`) as the transport's own
    /// check would, so the packet is not summed twice. `false` when the
    /// network header is not at or after `skb->data` (never the case at
    /// PRE_ROUTING, where the check is made).
    pub(crate) fn l4_checksum_ok(&self, hook: u8, offset: u16, proto: u8, pf: u8) -> bool {
        // `nf_checksum()` counts `dataoff` from `skb->data` (and sums
        // from there: a valid IPv4 header adds nothing to the sum).
        let Ok(nh) = u32::try_from(self.network_offset()) else {
            return false;
        };
        let dataoff = nh.saturating_add(u32::from(offset));
        if dataoff > self.len() {
            return false;
        }
        // SAFETY: the skb is valid and ours (type invariant); the kernel
        // may update its checksum state (`Opaque`: no Rust reference into
        // it exists), and reads at most `skb->len` bytes from `skb->data`.
        let sum = unsafe {
            bindings::nf_checksum(
                self.as_ptr(),
                c_uint::from(hook),
                dataoff,
                proto,
                u16::from(pf),
            )
        };
        sum == 0
    }

    /// `skb->ip_summed`.
    #[inline]
    pub(crate) fn ip_summed(&self) -> IpSummed {
        // SAFETY: the skb is valid (type invariant); bindgen's accessor
        // reads the bitfield's bytes through the raw pointer.
        IpSummed::from_raw(unsafe { Headers::ip_summed_raw(self.headers()) })
    }

    /// Sets `skb->ip_summed`.
    #[inline]
    pub(crate) fn set_ip_summed(&self, v: IpSummed) {
        // SAFETY: the skb is valid and ours (type invariant); bindgen's
        // accessor rewrites the bitfield's byte through the raw pointer.
        unsafe { Headers::set_ip_summed_raw(self.headers(), v.to_raw()) };
    }

    /// The first `len` bytes from the network header (fewer if the packet
    /// is shorter), made writable: `skb_ensure_writable` un-clones the
    /// data and pulls the bytes into the linear area as needed (as
    /// `nf_nat_manip_pkt` does). `None` if there is nothing to write or
    /// the kernel could not make it writable (no memory).
    pub(crate) fn writable(&mut self, len: usize) -> Option<Writable<'_>> {
        let off = self.network_offset();
        let total = (i64::from(self.len()) - i64::from(off)).max(0) as usize;
        let len = len.min(total);
        if off < 0 || len == 0 {
            return None;
        }
        let end = c_uint::try_from(off as usize + len).ok()?;
        // SAFETY: the skb is valid and ours (type invariant).
        if unsafe { bindings::skb_ensure_writable(self.as_ptr(), end) } != 0 {
            return None;
        }
        // `skb_network_header`: `head + network_header`; the `len` bytes
        // from there are linear, un-shared and within the data now.
        // SAFETY: the skb is valid (type invariant); plain fields.
        let data = unsafe {
            (*self.as_ptr())
                .head
                .wrapping_add(usize::from((*self.headers()).network_header))
        };
        let data = NonNull::new(data)?;
        // INVARIANT: see above; `&mut self` is held for the view's life.
        Some(Writable {
            skb: self,
            data,
            len,
        })
    }

    /// The IPv4 next hop towards `daddr` of the route attached to the skb
    /// (`rt_nexthop(skb_rtable(skb), daddr)`, the gateway or `daddr`
    /// itself); `daddr` when no route is attached. Addresses in network
    /// order.
    pub(crate) fn rt_nexthop4(&self, daddr: [u8; 4]) -> [u8; 4] {
        // SAFETY: the skb is valid (type invariant).
        let nh = unsafe { bindings::rfw_rt_nexthop4(self.as_ptr(), u32::from_ne_bytes(daddr)) };
        nh.to_ne_bytes()
    }

    /// True when early demux attached a (non-transparent) socket to the skb.
    pub(crate) fn has_demux_sk(&self) -> bool {
        // SAFETY: the skb is valid (type invariant).
        unsafe { bindings::rfw_skb_has_demux_sk(self.as_ptr()) }
    }

    /// `skb_orphan`: drops the skb's socket reference (running its
    /// destructor).
    pub(crate) fn orphan(&self) {
        // SAFETY: the skb is valid and ours (type invariant).
        unsafe { bindings::rfw_skb_orphan(self.as_ptr()) };
    }
}

/// A packet's first header bytes, writable (see [`SkBuff::writable`]).
///
/// # Invariants
///
/// `data` points to `len` bytes of `skb`'s linear, un-shared data, valid
/// while `skb` is borrowed; the exclusive borrow keeps any other access to
/// the skb (and any move of its data) out while this view lives.
pub(crate) struct Writable<'a> {
    skb: &'a mut SkBuff,
    data: NonNull<u8>,
    len: usize,
}

impl Writable<'_> {
    /// The bytes.
    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `len` valid, writable bytes that only this view reaches
        // (type invariant); the slice borrows the view.
        unsafe { core::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }

    /// The skb's checksum state.
    pub(crate) fn ip_summed(&self) -> IpSummed {
        self.skb.ip_summed()
    }

    /// Sets the skb's checksum state.
    pub(crate) fn set_ip_summed(&mut self, v: IpSummed) {
        self.skb.set_ip_summed(v);
    }
}
