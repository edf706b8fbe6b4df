// SPDX-License-Identifier: GPL-2.0

//! A line of text to the kernel log as it is (`printk("%s\n", buf)`),
//! without the `rfw: ` prefix the `pr_*!` macros put first: LOG lines are
//! `nf_log_syslog`'s, which `nf_log_buf_close` prints that way, with the
//! syslog level (`KERN_SOH` and a digit) at the start of the buffer.

use core::ffi::c_int;

use crate::bindings;

/// Prints `line` and a newline. The first bytes may be a `KERN_SOH` level
/// (printk parses it off the text); printk cuts a line longer than its
/// record size. The caller keeps control characters out of the rest.
pub(crate) fn print_line(line: &[u8]) {
    let Ok(len) = c_int::try_from(line.len()) else {
        return;
    };
    // `%.*s` reads at most `len` bytes of `line` (and stops at a NUL):
    // no terminator is needed. `printk` may be called in any context.
    // SAFETY: a static format whose arguments match it: an int, then a
    // pointer to at least `len` readable bytes.
    unsafe { bindings::_printk(c"%.*s\n".as_ptr(), len, line.as_ptr()) };
}
