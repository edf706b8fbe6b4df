// SPDX-License-Identifier: GPL-2.0

//! The module declaration.
//!
//! `module!` expands to the exported `init_module`/`cleanup_module`
//! symbols, the `.modinfo` strings, `THIS_MODULE` and the `static mut`
//! holding the loaded [`Rfw`], with `unsafe` blocks of its own: so it is
//! invoked here, where Kbuild's `-Dunsafe_code` is allowed, not in the
//! crate root.

use kernel::prelude::*;

use crate::Rfw;

module! {
    type: Rfw,
    name: "rfw",
    author: "rfw developers",
    description: "Stateful connection tracking and NAT, in Rust",
    license: "GPL",
}

/// The module name, NUL-terminated, as `module!` made it: the printing
/// macros (`pr_info!`, ...) read it as `crate::__LOG_PREFIX`, which the
/// crate root imports from here.
pub(crate) const LOG_PREFIX: &[u8] = __LOG_PREFIX;
