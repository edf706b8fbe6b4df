// SPDX-License-Identifier: GPL-2.0

//! rfw's module parameters (`hashsize`, `max`, declared in `helpers.c` with
//! `module_param_named`) and the machine size their defaults follow.

use crate::bindings;

/// The `hashsize` parameter: connection table buckets (0: sized from RAM).
pub(crate) fn hashsize() -> u32 {
    // The parameter is read-only (0444) in sysfs and written only by the
    // module loader, before init.
    // SAFETY: so this read races with no write.
    unsafe { bindings::rfw_param_hashsize }
}

/// The `max` parameter: a new namespace's connection limit (0: the bucket
/// count).
pub(crate) fn max() -> u32 {
    // SAFETY: as in `hashsize`: read-only after load.
    unsafe { bindings::rfw_param_max }
}

/// Pages of RAM the kernel manages (`totalram_pages`).
pub(crate) fn totalram_pages() -> usize {
    // SAFETY: reads a kernel counter, in any context.
    unsafe { bindings::rfw_totalram_pages() as usize }
}
