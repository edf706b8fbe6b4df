// SPDX-License-Identifier: GPL-2.0

//! Time (`include/linux/jiffies.h`).

use crate::bindings;

/// `HZ`: jiffies per second (`CONFIG_HZ`).
const HZ: u32 = bindings::CONFIG_HZ;
/// Milliseconds per jiffy when `HZ` divides 1000 (100, 250, 500, 1000),
/// else 0.
const MSEC_PER_JIFFY: u32 = if 1000 % HZ == 0 { 1000 / HZ } else { 0 };

/// Milliseconds since boot, from `jiffies` (wraps with it, every ~49 days):
/// `jiffies_to_msecs(jiffies)`.
///
/// Read here rather than through a C wrapper: the packet path asks once
/// per tracked packet. `jiffies_to_msecs` is `(MSEC_PER_SEC / HZ) * j`,
/// truncated to 32 bits, whenever `HZ` divides 1000 (as it does in every
/// configuration rfw is built for); other rates keep the kernel's function.
#[inline]
pub(crate) fn jiffies_msecs() -> u32 {
    // `jiffies` is a `volatile unsigned long` the timer tick updates:
    // read it once, whole, as C's reads of it do (an aligned word).
    // SAFETY: the kernel's exported variable, valid for the kernel's life.
    let j = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(bindings::jiffies)) };
    if MSEC_PER_JIFFY != 0 {
        (j as u32).wrapping_mul(MSEC_PER_JIFFY)
    } else {
        // SAFETY: a pure function of its argument, in any context.
        unsafe { bindings::jiffies_to_msecs(j) }
    }
}

/// Nanoseconds on the monotonic clock (`ktime_get_ns`).
pub(crate) fn ktime_ns() -> u64 {
    // SAFETY: reads the monotonic clock, in any context.
    unsafe { bindings::rfw_ktime_get_ns() }
}
