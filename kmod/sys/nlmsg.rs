// SPDX-License-Identifier: GPL-2.0

//! Building generic netlink messages (`include/net/netlink.h`,
//! `include/net/genetlink.h`).
//!
//! A [`Reply`] owns its skb until it is sent, so every error path frees it
//! (on drop); a [`DumpMsg`] is one message appended to the skb of a running
//! dump, trimmed off on drop unless ended. Both lend out a [`Writer`], whose
//! attribute writers return `EMSGSIZE` when the skb is full, as the kernel's
//! `nla_put_*` do.

use core::ffi::c_void;
use core::marker::PhantomData;
use core::ptr::NonNull;

use kernel::prelude::*;
use kernel::types::Opaque;

use super::genl::Request;
use crate::bindings;

/// The error of a full message (the 6.12 `kernel` crate has no `EMSGSIZE`).
pub(crate) fn emsgsize() -> Error {
    Error::from_errno(-(bindings::EMSGSIZE as core::ffi::c_int))
}

/// `NLA_HDRLEN`: an attribute's header, aligned.
const NLA_HDRLEN: usize = 4;

/// Attribute writer over a netlink message skb, lent out by a [`Reply`] or
/// a [`DumpMsg`] as `&Writer`: methods take `&self` (the skb is C memory,
/// hence [`Opaque`]), so two writers cannot be swapped under their owners.
///
/// # Invariants
///
/// The skb is a linear netlink message skb (netlink allocates no other
/// kind) that the lender may append to, and that nothing else touches, for
/// as long as the borrow lasts.
#[repr(transparent)]
pub(crate) struct Writer(Opaque<bindings::sk_buff>);

/// An open nested attribute (see [`Writer::nest_start`]), kept as its
/// offset in the message so that ending it can only ever write inside the
/// skb it is ended on.
pub(crate) struct Nest {
    offset: usize,
}

fn check(ret: core::ffi::c_int) -> Result {
    if ret == 0 {
        Ok(())
    } else {
        Err(emsgsize())
    }
}

impl Writer {
    /// The writer over `skb`.
    ///
    /// # Safety
    ///
    /// `skb` must be a linear netlink message skb that the caller may append
    /// to, and that nothing else touches, for `'w`.
    unsafe fn from_raw<'w>(skb: NonNull<bindings::sk_buff>) -> &'w Writer {
        // INVARIANT: the caller's contract.
        // SAFETY: `Writer` is a transparent `Opaque<sk_buff>`; `skb` is
        // valid for `'w` (caller).
        unsafe { &*skb.as_ptr().cast::<Writer>() }
    }

    fn skb(&self) -> *mut bindings::sk_buff {
        self.0.get()
    }

    /// Appends an attribute with `data` as its payload.
    pub(crate) fn put_bytes(&self, ty: u16, data: &[u8]) -> Result {
        // `nla_len` is 16 bits: a longer payload would wrap it silently.
        if data.len() > usize::from(u16::MAX) - 4 {
            return Err(emsgsize());
        }
        let len = core::ffi::c_int::try_from(data.len()).map_err(|_| emsgsize())?;
        // SAFETY: the skb is writable (type invariant); `data` is `len` bytes.
        check(unsafe {
            bindings::nla_put(self.skb(), ty.into(), len, data.as_ptr().cast::<c_void>())
        })
    }

    /// Appends a u8 attribute.
    pub(crate) fn put_u8(&self, ty: u16, value: u8) -> Result {
        self.put_bytes(ty, &[value])
    }

    /// Appends a u16 attribute (host order).
    pub(crate) fn put_u16(&self, ty: u16, value: u16) -> Result {
        self.put_bytes(ty, &value.to_ne_bytes())
    }

    /// Appends a u32 attribute (host order).
    pub(crate) fn put_u32(&self, ty: u16, value: u32) -> Result {
        self.put_bytes(ty, &value.to_ne_bytes())
    }

    /// Appends a NUL-terminated string attribute (at most 63 bytes of text).
    pub(crate) fn put_str(&self, ty: u16, s: &str) -> Result {
        let mut buf = [0u8; 64];
        let n = s.len().min(63);
        buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        self.put_bytes(ty, &buf[..=n])
    }

    /// Appends a u64 attribute, 8-byte aligned with a `pad` attribute if needed.
    pub(crate) fn put_u64(&self, ty: u16, value: u64, pad: u16) -> Result {
        // SAFETY: the skb is writable (type invariant).
        check(unsafe { bindings::rfw_nla_put_u64_64bit(self.skb(), ty.into(), value, pad.into()) })
    }

    /// Opens a nested attribute; close it with [`Writer::nest_end`].
    pub(crate) fn nest_start(&self, ty: u16) -> Result<Nest> {
        let skb = self.skb();
        // SAFETY: the skb is writable (type invariant).
        let a = unsafe { bindings::rfw_nla_nest_start(skb, ty.into()) };
        if a.is_null() {
            return Err(emsgsize());
        }
        // The attribute was just put at the tail of the linear skb.
        // SAFETY: the skb is valid (type invariant).
        let data = unsafe { (*skb).data };
        Ok(Nest {
            offset: (a as usize).wrapping_sub(data as usize),
        })
    }

    /// Closes a nested attribute opened on this message: its length becomes
    /// everything written since [`Writer::nest_start`]. A nest that is not
    /// inside this skb's data (opened on another message) is left alone.
    pub(crate) fn nest_end(&self, nest: Nest) {
        let skb = self.skb();
        // SAFETY: the skb is valid (type invariant).
        let (data, len) = unsafe { ((*skb).data, (*skb).len as usize) };
        if len < NLA_HDRLEN || nest.offset > len - NLA_HDRLEN {
            return;
        }
        // The skb is linear (type invariant): `data..data + len` is its
        // message, and the header at `offset` lies inside it.
        // SAFETY: so `start` is a writable attribute header of this skb.
        unsafe {
            let start = data.add(nest.offset).cast::<bindings::nlattr>();
            bindings::rfw_nla_nest_end(skb, start);
        }
    }
}

/// A reply being built for one request.
///
/// # Invariants
///
/// `skb` is a message allocated by `genlmsg_new`, owned by this value, with
/// a generic netlink header at `hdr`; `info` is the request being answered,
/// valid for `'a`.
pub(crate) struct Reply<'a> {
    skb: NonNull<bindings::sk_buff>,
    hdr: NonNull<c_void>,
    info: *mut bindings::genl_info,
    _req: PhantomData<&'a bindings::genl_info>,
}

impl<'a> Reply<'a> {
    /// Starts a reply to `req` carrying command `cmd` of the request's family.
    pub(crate) fn new(req: &Request<'a>, cmd: u8) -> Result<Self> {
        // SAFETY: reads a constant through its accessor.
        let size = unsafe { bindings::rfw_nlmsg_default_size() };
        Self::with_size(req, cmd, size)
    }

    /// [`Reply::new`] with room for `size` bytes of attributes.
    pub(crate) fn with_size(req: &Request<'a>, cmd: u8, size: usize) -> Result<Self> {
        let info = req.as_raw();
        // SAFETY: doits run in process context: the allocation may sleep.
        let skb = unsafe { bindings::rfw_genlmsg_new_size(size) };
        let skb = NonNull::new(skb).ok_or(ENOMEM)?;
        // `info` is valid for `'a` (`Request` invariant), and so is the
        // registered family it names.
        // SAFETY: `skb` is fresh; `info` and its family are valid.
        let hdr =
            unsafe { bindings::rfw_genlmsg_put_reply(skb.as_ptr(), info, (*info).family, 0, cmd) };
        let Some(hdr) = NonNull::new(hdr) else {
            // SAFETY: `skb` is ours and unsent.
            unsafe { bindings::rfw_nlmsg_free(skb.as_ptr()) };
            return Err(emsgsize());
        };
        // INVARIANT: `skb` is ours, with a header at `hdr`; `info` is `req`'s.
        Ok(Reply {
            skb,
            hdr,
            info,
            _req: PhantomData,
        })
    }

    /// Finishes the message and unicasts it to the requester.
    pub(crate) fn send(self) -> Result {
        let this = core::mem::ManuallyDrop::new(self);
        // `genlmsg_reply` takes the skb whatever it returns: not freed here.
        // SAFETY: the skb is ours, with its header at `hdr`, and `info` is
        // the live request (type invariant).
        let ret = unsafe {
            bindings::rfw_genlmsg_end(this.skb.as_ptr(), this.hdr.as_ptr());
            bindings::rfw_genlmsg_reply(this.skb.as_ptr(), this.info)
        };
        kernel::error::to_result(ret)
    }
}

impl core::ops::Deref for Reply<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        // SAFETY: the reply owns its skb, a linear netlink message (type
        // invariant), for as long as this borrow.
        unsafe { Writer::from_raw(self.skb) }
    }
}

impl Drop for Reply<'_> {
    fn drop(&mut self) {
        // SAFETY: an unsent reply still owns its skb (type invariant).
        unsafe { bindings::rfw_nlmsg_free(self.skb.as_ptr()) };
    }
}

/// One message of a dump, appended to the dump's skb; cancelled (trimmed
/// off) on drop unless [`DumpMsg::end`] finished it.
///
/// # Invariants
///
/// `skb` is the dump skb of the running `dumpit`, borrowed for `'d`, with
/// this message's header at `hdr`, the last thing in it.
pub(crate) struct DumpMsg<'d> {
    skb: NonNull<bindings::sk_buff>,
    hdr: NonNull<c_void>,
    _dump: PhantomData<&'d mut bindings::sk_buff>,
}

impl DumpMsg<'_> {
    /// Starts a message of command `cmd` in the dump skb of `cb`.
    ///
    /// # Safety
    ///
    /// `skb` and `cb` must be the arguments of the running `dumpit` and
    /// `family` its registered family; nothing else may touch the skb while
    /// the message lives.
    pub(super) unsafe fn new(
        skb: NonNull<bindings::sk_buff>,
        cb: *mut bindings::netlink_callback,
        family: *const bindings::genl_family,
        cmd: u8,
    ) -> Result<Self> {
        // SAFETY: `cb` is the running dump's callback (caller), its `nlh`
        // the dump request.
        let (portid, seq) = unsafe { (bindings::rfw_cb_portid(cb), (*(*cb).nlh).nlmsg_seq) };
        // `NLM_F_MULTI`: a part of a multipart answer.
        // SAFETY: `skb` is the dump skb and `family` registered (caller).
        let hdr = unsafe { bindings::genlmsg_put(skb.as_ptr(), portid, seq, family, 0x2, cmd) };
        let Some(hdr) = NonNull::new(hdr) else {
            return Err(emsgsize());
        };
        // `NLM_F_DUMP_INTR` if the dump moved `cb->seq` since its last
        // message (a dump that never sets it is never flagged).
        // SAFETY: `hdr` is this message's header in the dump skb of `cb`.
        unsafe { bindings::rfw_genl_dump_check_consistent(cb, hdr.as_ptr()) };
        // INVARIANT: the header just put is the last thing in the skb.
        Ok(DumpMsg {
            skb,
            hdr,
            _dump: PhantomData,
        })
    }

    /// Finishes the message (it stays in the skb).
    pub(crate) fn end(self) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: the header is this message's, in its skb (invariant).
        unsafe { bindings::rfw_genlmsg_end(this.skb.as_ptr(), this.hdr.as_ptr()) };
    }
}

impl core::ops::Deref for DumpMsg<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        // SAFETY: the dump skb, a linear netlink message, is this message's
        // to append to while it lives (type invariant).
        unsafe { Writer::from_raw(self.skb) }
    }
}

impl Drop for DumpMsg<'_> {
    fn drop(&mut self) {
        // An unfinished message is the last thing in the skb (invariant).
        // SAFETY: trimming it off leaves the earlier messages intact.
        unsafe { bindings::rfw_genlmsg_cancel(self.skb.as_ptr(), self.hdr.as_ptr()) };
    }
}
