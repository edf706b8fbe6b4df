// SPDX-License-Identifier: GPL-2.0

//! Building generic netlink replies.
//!
//! [`Reply`] owns the reply skb until it is sent, so every error path frees
//! it (on drop); attribute writers return `EMSGSIZE` when the skb is full, as
//! the kernel's `nla_put_*` do.

use core::ffi::c_void;
use core::ptr::NonNull;

use kernel::prelude::*;

use crate::bindings;

/// The error of a full message (the 6.12 `kernel` crate has no `EMSGSIZE`).
pub(crate) fn emsgsize() -> Error {
    Error::from_errno(-(bindings::EMSGSIZE as core::ffi::c_int))
}

/// Attribute writer over a message skb (owned by a [`Reply`] or by the
/// netlink dump machinery).
///
/// # Invariants
///
/// `skb` is a valid netlink message skb that the holder may append to.
pub(crate) struct Writer {
    skb: NonNull<bindings::sk_buff>,
}

/// An open nested attribute (see [`Writer::nest_start`]).
pub(crate) struct Nest(NonNull<bindings::nlattr>);

fn check(ret: core::ffi::c_int) -> Result {
    if ret == 0 {
        Ok(())
    } else {
        Err(emsgsize())
    }
}

impl Writer {
    /// Appends an attribute with `data` as its payload.
    pub(crate) fn put_bytes(&mut self, ty: u16, data: &[u8]) -> Result {
        // `nla_len` is 16 bits: a longer payload would wrap it silently.
        if data.len() > usize::from(u16::MAX) - 4 {
            return Err(emsgsize());
        }
        let len = core::ffi::c_int::try_from(data.len()).map_err(|_| emsgsize())?;
        // SAFETY: `skb` is writable (type invariant); `data` is `len` bytes.
        check(unsafe {
            bindings::nla_put(
                self.skb.as_ptr(),
                ty.into(),
                len,
                data.as_ptr().cast::<c_void>(),
            )
        })
    }

    /// Appends a u8 attribute.
    pub(crate) fn put_u8(&mut self, ty: u16, value: u8) -> Result {
        self.put_bytes(ty, &[value])
    }

    /// Appends a u16 attribute (host order).
    pub(crate) fn put_u16(&mut self, ty: u16, value: u16) -> Result {
        self.put_bytes(ty, &value.to_ne_bytes())
    }

    /// Appends a u32 attribute (host order).
    pub(crate) fn put_u32(&mut self, ty: u16, value: u32) -> Result {
        self.put_bytes(ty, &value.to_ne_bytes())
    }

    /// Appends a NUL-terminated string attribute (at most 63 bytes of text).
    pub(crate) fn put_str(&mut self, ty: u16, s: &str) -> Result {
        let mut buf = [0u8; 64];
        let n = s.len().min(63);
        buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        self.put_bytes(ty, &buf[..=n])
    }

    /// Appends a u64 attribute, 8-byte aligned with a `pad` attribute if needed.
    pub(crate) fn put_u64(&mut self, ty: u16, value: u64, pad: u16) -> Result {
        // SAFETY: `skb` is writable (type invariant).
        check(unsafe {
            bindings::rfw_nla_put_u64_64bit(self.skb.as_ptr(), ty.into(), value, pad.into())
        })
    }

    /// Opens a nested attribute; close it with [`Writer::nest_end`].
    pub(crate) fn nest_start(&mut self, ty: u16) -> Result<Nest> {
        // SAFETY: `skb` is writable (type invariant).
        let a = unsafe { bindings::rfw_nla_nest_start(self.skb.as_ptr(), ty.into()) };
        NonNull::new(a).map(Nest).ok_or_else(emsgsize)
    }

    /// Closes a nested attribute opened on this message.
    pub(crate) fn nest_end(&mut self, nest: Nest) {
        // SAFETY: `nest` was opened on this skb and is the innermost open one.
        unsafe { bindings::rfw_nla_nest_end(self.skb.as_ptr(), nest.0.as_ptr()) };
    }
}

/// A reply being built for one request.
///
/// # Invariants
///
/// `w.skb` is a message allocated by `genlmsg_new`, owned by this value, with a
/// generic netlink header at `hdr`; `info` is the request being answered.
pub(crate) struct Reply {
    w: Writer,
    hdr: *mut c_void,
    info: *mut bindings::genl_info,
}

impl Reply {
    /// Starts a reply to `info` carrying command `cmd` of `family`.
    ///
    /// # Safety
    ///
    /// `info` must be the request of the running `doit` and `family` the
    /// registered family it came through; the reply must not outlive them.
    pub(crate) unsafe fn new(
        info: *mut bindings::genl_info,
        family: *const bindings::genl_family,
        cmd: u8,
    ) -> Result<Self> {
        // SAFETY: reads a constant through its accessor.
        let size = unsafe { bindings::rfw_nlmsg_default_size() };
        // SAFETY: the caller's contract is ours.
        unsafe { Self::with_size(info, family, cmd, size) }
    }

    /// [`Reply::new`] with room for `size` bytes of attributes.
    ///
    /// # Safety
    ///
    /// As for [`Reply::new`].
    pub(crate) unsafe fn with_size(
        info: *mut bindings::genl_info,
        family: *const bindings::genl_family,
        cmd: u8,
        size: usize,
    ) -> Result<Self> {
        // SAFETY: plain allocation call (may sleep: process context).
        let skb = unsafe { bindings::rfw_genlmsg_new_size(size) };
        let skb = NonNull::new(skb).ok_or(ENOMEM)?;
        // SAFETY: `skb` is fresh; `info` and `family` are valid (caller).
        let hdr = unsafe { bindings::rfw_genlmsg_put_reply(skb.as_ptr(), info, family, 0, cmd) };
        if hdr.is_null() {
            // SAFETY: `skb` is ours and unsent.
            unsafe { bindings::rfw_nlmsg_free(skb.as_ptr()) };
            return Err(emsgsize());
        }
        // INVARIANT: `skb` is ours, with a header at `hdr`.
        Ok(Reply {
            w: Writer { skb },
            hdr,
            info,
        })
    }

    /// Finishes the message and unicasts it to the requester.
    pub(crate) fn send(self) -> Result {
        let this = core::mem::ManuallyDrop::new(self);
        // `genlmsg_reply` takes the skb whatever it returns: not freed here.
        // SAFETY: the skb is ours, with its header at `hdr` (type invariant).
        let ret = unsafe {
            bindings::rfw_genlmsg_end(this.w.skb.as_ptr(), this.hdr);
            bindings::rfw_genlmsg_reply(this.w.skb.as_ptr(), this.info)
        };
        kernel::error::to_result(ret)
    }
}

impl core::ops::Deref for Reply {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.w
    }
}

impl core::ops::DerefMut for Reply {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.w
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        // SAFETY: an unsent reply still owns its skb (type invariant).
        unsafe { bindings::rfw_nlmsg_free(self.w.skb.as_ptr()) };
    }
}

/// One message of a dump, appended to the dump's skb; cancelled (trimmed
/// off) on drop unless [`DumpMsg::end`] finished it.
///
/// # Invariants
///
/// `w.skb` is the dump skb of the running `dumpit`, with this message's
/// header at `hdr`, the last thing in it.
pub(crate) struct DumpMsg {
    w: Writer,
    hdr: *mut c_void,
}

impl DumpMsg {
    /// Starts a message of command `cmd` in the dump skb of `cb`.
    ///
    /// # Safety
    ///
    /// `skb` and `cb` must be the arguments of the running `dumpit` and
    /// `family` the registered family.
    pub(crate) unsafe fn new(
        skb: *mut bindings::sk_buff,
        cb: *mut bindings::netlink_callback,
        family: *const bindings::genl_family,
        cmd: u8,
    ) -> Result<Self> {
        let skb = NonNull::new(skb).ok_or(EINVAL)?;
        // SAFETY: `cb` is the running dump's callback (caller).
        let (portid, seq) = unsafe { (bindings::rfw_cb_portid(cb), bindings::rfw_cb_seq(cb)) };
        // `NLM_F_MULTI`: a part of a multipart answer.
        // SAFETY: `skb` is the dump skb and `family` registered (caller).
        let hdr = unsafe { bindings::genlmsg_put(skb.as_ptr(), portid, seq, family, 0x2, cmd) };
        if hdr.is_null() {
            return Err(emsgsize());
        }
        // `NLM_F_DUMP_INTR` if the dump moved `cb->seq` since its last
        // message (a dump that never sets it is never flagged).
        // SAFETY: `hdr` is this message's header in the dump skb of `cb`.
        unsafe { bindings::rfw_genl_dump_check_consistent(cb, hdr) };
        Ok(DumpMsg {
            w: Writer { skb },
            hdr,
        })
    }

    /// Finishes the message (it stays in the skb).
    pub(crate) fn end(self) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: the header is this message's, in its skb (invariant).
        unsafe { bindings::rfw_genlmsg_end(this.w.skb.as_ptr(), this.hdr) };
    }
}

impl core::ops::Deref for DumpMsg {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.w
    }
}

impl core::ops::DerefMut for DumpMsg {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.w
    }
}

impl Drop for DumpMsg {
    fn drop(&mut self) {
        // An unfinished message is the last thing in the skb (invariant).
        // SAFETY: trimming it off leaves the earlier messages intact.
        unsafe { bindings::rfw_genlmsg_cancel(self.w.skb.as_ptr(), self.hdr) };
    }
}
