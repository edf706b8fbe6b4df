// SPDX-License-Identifier: GPL-2.0

//! rfw's module parameters (`hashsize`, `max`, `max_total`, declared in
//! `helpers.c` with `module_param_named`) and the machine size their
//! defaults follow.

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

/// The `max_total` parameter: entries of all namespaces together (0: a
/// default chosen at load, see `ct::table`).
pub(crate) fn max_total() -> u32 {
    // SAFETY: as in `hashsize`: read-only in sysfs, written only by the
    // loader before init and by `set_max_total` (module init, this task).
    unsafe { bindings::rfw_param_max_total }
}

/// Writes back the `max_total` chosen at load, so that
/// `/sys/module/rfw/parameters/max_total` shows it (as nf_conntrack's
/// `hashsize` shows the size it chose). Module init only.
pub(crate) fn set_max_total(value: u32) {
    // A `WRITE_ONCE` of a `u32`: sysfs readers see the old or the new
    // value.
    // SAFETY: plain call; the parameter is static.
    unsafe { bindings::rfw_param_set_max_total(value) };
}

/// Pages of RAM the kernel manages (`totalram_pages`).
pub(crate) fn totalram_pages() -> usize {
    // SAFETY: reads a kernel counter, in any context.
    unsafe { bindings::rfw_totalram_pages() as usize }
}
