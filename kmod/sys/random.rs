// SPDX-License-Identifier: GPL-2.0

//! Random numbers (`include/linux/random.h`).

use core::ffi::c_void;

use crate::bindings;

/// Fills `buf` with bytes from the kernel's CSPRNG (`get_random_bytes`), as
/// hash seeds want: nf_conntrack seeds its hash with `get_random_once`.
pub(crate) fn fill(buf: &mut [u8]) {
    // SAFETY: `buf` is ours, writable for `buf.len()` bytes; the call may be
    // made in any context.
    unsafe { bindings::get_random_bytes(buf.as_mut_ptr().cast::<c_void>(), buf.len()) };
}

/// A random `u32` (`get_random_u32`), e.g. a NAT port search's start.
pub(crate) fn u32() -> u32 {
    // SAFETY: no arguments; callable in any context.
    unsafe { bindings::get_random_u32() }
}
