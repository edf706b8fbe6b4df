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

/// A reply being built for one request.
///
/// # Invariants
///
/// `skb` is a message allocated by `genlmsg_new`, owned by this value, with a
/// generic netlink header at `hdr`; `info` is the request being answered.
pub(crate) struct Reply {
    skb: NonNull<bindings::sk_buff>,
    hdr: *mut c_void,
    info: *mut bindings::genl_info,
}

/// An open nested attribute (see [`Reply::nest_start`]).
pub(crate) struct Nest(NonNull<bindings::nlattr>);

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
        // SAFETY: plain allocation calls.
        let skb = unsafe {
            bindings::rfw_genlmsg_new(
                bindings::rfw_nlmsg_default_size(),
                kernel::bindings::GFP_KERNEL,
            )
        };
        let skb = NonNull::new(skb).ok_or(ENOMEM)?;
        // SAFETY: `skb` is fresh; `info` and `family` are valid (caller).
        let hdr = unsafe { bindings::rfw_genlmsg_put_reply(skb.as_ptr(), info, family, 0, cmd) };
        if hdr.is_null() {
            // SAFETY: `skb` is ours and unsent.
            unsafe { bindings::rfw_nlmsg_free(skb.as_ptr()) };
            return Err(emsgsize());
        }
        // INVARIANT: `skb` is ours, with a header at `hdr`.
        Ok(Reply { skb, hdr, info })
    }

    fn check(ret: core::ffi::c_int) -> Result {
        if ret == 0 {
            Ok(())
        } else {
            Err(emsgsize())
        }
    }

    /// Appends a u8 attribute.
    pub(crate) fn put_u8(&mut self, ty: u16, value: u8) -> Result {
        // SAFETY: `skb` is ours (type invariant).
        Self::check(unsafe { bindings::rfw_nla_put_u8(self.skb.as_ptr(), ty.into(), value) })
    }

    /// Appends a u64 attribute, 8-byte aligned with a `pad` attribute if needed.
    pub(crate) fn put_u64(&mut self, ty: u16, value: u64, pad: u16) -> Result {
        // SAFETY: `skb` is ours (type invariant).
        Self::check(unsafe {
            bindings::rfw_nla_put_u64_64bit(self.skb.as_ptr(), ty.into(), value, pad.into())
        })
    }

    /// Opens a nested attribute; close it with [`Reply::nest_end`].
    pub(crate) fn nest_start(&mut self, ty: u16) -> Result<Nest> {
        // SAFETY: `skb` is ours (type invariant).
        let a = unsafe { bindings::rfw_nla_nest_start(self.skb.as_ptr(), ty.into()) };
        NonNull::new(a).map(Nest).ok_or_else(emsgsize)
    }

    /// Closes a nested attribute opened on this reply.
    pub(crate) fn nest_end(&mut self, nest: Nest) {
        // SAFETY: `nest` was opened on this skb and is the innermost open one.
        unsafe { bindings::rfw_nla_nest_end(self.skb.as_ptr(), nest.0.as_ptr()) };
    }

    /// Finishes the message and unicasts it to the requester.
    pub(crate) fn send(self) -> Result {
        let this = core::mem::ManuallyDrop::new(self);
        // `genlmsg_reply` takes the skb whatever it returns: not freed here.
        // SAFETY: the skb is ours, with its header at `hdr` (type invariant).
        let ret = unsafe {
            bindings::rfw_genlmsg_end(this.skb.as_ptr(), this.hdr);
            bindings::rfw_genlmsg_reply(this.skb.as_ptr(), this.info)
        };
        kernel::error::to_result(ret)
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        // SAFETY: an unsent reply still owns its skb (type invariant).
        unsafe { bindings::rfw_nlmsg_free(self.skb.as_ptr()) };
    }
}
