// SPDX-License-Identifier: GPL-2.0

//! Time (`include/linux/jiffies.h`).

use crate::bindings;

/// Milliseconds since boot, from `jiffies` (wraps with it, every ~49 days).
pub(crate) fn jiffies_msecs() -> u32 {
    // SAFETY: reads `jiffies`, in any context.
    unsafe { bindings::rfw_jiffies_msecs() }
}

/// Nanoseconds on the monotonic clock (`ktime_get_ns`).
pub(crate) fn ktime_ns() -> u64 {
    // SAFETY: reads the monotonic clock, in any context.
    unsafe { bindings::rfw_ktime_get_ns() }
}
