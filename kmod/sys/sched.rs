// SPDX-License-Identifier: GPL-2.0

//! Yielding the CPU in long process-context loops.

use crate::bindings;

/// Yields the CPU if another task should run (`cond_resched`). Process
/// context only, outside any RCU read-side section and lock: table-wide
/// walks call it between their sections.
pub(crate) fn cond_resched() {
    // SAFETY: `cond_resched` may be called from any sleepable context;
    // callers are (see above). Under a non-preemptible RCU it would be a
    // quiescent state, which is why no read-side section may be open.
    unsafe { bindings::rfw_cond_resched() };
}
