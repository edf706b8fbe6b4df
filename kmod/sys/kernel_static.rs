// SPDX-License-Identifier: GPL-2.0

//! Storage for kernel structures that the kernel links into its own lists.

use core::cell::UnsafeCell;

/// A static whose contents are handed to the kernel by address.
///
/// `pernet_operations`, `genl_family` and the hook table are registered by
/// pointer: the kernel keeps the pointer, links the structure into its lists
/// and writes some fields (`list`, `id`, ...). Rust therefore never forms a
/// reference to the contents; it writes them through [`KernelStatic::get`]
/// during module init, before registration, and afterwards only passes the
/// address on.
///
/// # Invariants
///
/// After the contents have been registered with the kernel, Rust code does
/// not write them until they have been unregistered.
#[repr(transparent)]
pub(crate) struct KernelStatic<T>(UnsafeCell<T>);

// SAFETY: Rust only writes the contents before registration (module init runs
// once, single-threaded) and after unregistration (module exit); in between,
// only the kernel, with its own locking, touches them.
unsafe impl<T> Sync for KernelStatic<T> {}

impl<T> KernelStatic<T> {
    /// A static holding `value`.
    pub(crate) const fn new(value: T) -> Self {
        KernelStatic(UnsafeCell::new(value))
    }

    /// The address of the contents, for the kernel and for init-time writes.
    pub(crate) const fn get(&self) -> *mut T {
        self.0.get()
    }
}
