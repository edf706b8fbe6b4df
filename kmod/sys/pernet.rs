// SPDX-License-Identifier: GPL-2.0

//! Per-network-namespace state (`pernet_operations`, `net_generic`).
//!
//! [`Registration`] registers rfw's pernet operations (RAII: unregistered on
//! drop). The kernel then gives every namespace, the initial one and each
//! one created later, a zeroed area of `size_of::<RfwNet>()` bytes
//! (`net_generic`), in which the `init` trampoline builds the namespace's
//! [`NetState`] (which registers rfw's netfilter hooks there as the
//! namespace comes to need them). Teardown is split the way the kernel
//! intends: `pre_exit` unregisters the hooks,
//! the core then waits for an RCU grace period (every hook invocation runs
//! under `rcu_read_lock`), `exit` winds each namespace down, and
//! `exit_batch`, once for all the namespaces dying together, does the work
//! that is cheaper done once (one table walk, one grace period) and drops
//! the states the hooks used. Module unload takes the same path, with
//! every namespace in one batch (`unregister_pernet_subsys`).
//!
//! The kernel keeps one id (`NET_ID`) and one `pernet_operations` per
//! registration, in statics, so this serves one state type, `RfwNet`.

use core::ffi::{c_int, c_uint};
use core::marker::PhantomData;
use core::mem::size_of;
use core::pin::Pin;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use kernel::error::to_result;
use kernel::prelude::*;

use super::kernel_static::KernelStatic;
use crate::bindings;
use crate::pernet::RfwNet;

/// What a namespace's state does at the namespace's creation and death.
pub(crate) trait NetState: Sized + Send + Sync {
    /// Builds the state of a new namespace (pernet `init`).
    fn new() -> Result<Self>;

    /// Runs once the state is in its final place (pernet `init`), before
    /// anything else can reach it: for parts that must not move.
    fn start(self: Pin<&Self>);

    /// Unregisters the namespace's netfilter hooks for good (pernet
    /// `pre_exit`); the core then waits for a grace period before `exit`.
    fn pre_exit(&self, net: NetRef<'_>);

    /// Runs in pernet `exit`, a grace period after the hooks went:
    /// netlink commands cannot reach the namespace any more. `net` is the
    /// namespace.
    fn exit(&self, net: NetRef<'_>);

    /// Runs in pernet `exit_batch`, after `exit` of every namespace of the
    /// batch and just before their states are dropped: `each(f)` calls
    /// `f` on each of those states.
    fn exit_batch(each: &ForEach<'_, Self>);
}

/// Calls its argument on each state of a batch (see [`NetState::exit_batch`]).
pub(crate) type ForEach<'a, S> = dyn Fn(&mut dyn FnMut(&S)) + 'a;

/// A live network namespace, borrowed: what the kernel calls that act on
/// a namespace take (`struct net *`), for as long as the caller knows the
/// namespace lives (a netlink request from it, its pernet `exit`).
///
/// # Invariants
///
/// `net` points to a live `struct net` for all of `'a`.
#[derive(Clone, Copy)]
pub(crate) struct NetRef<'a> {
    net: NonNull<bindings::net>,
    _life: PhantomData<&'a bindings::net>,
}

impl NetRef<'_> {
    /// `net`, borrowed.
    ///
    /// # Safety
    ///
    /// `net` must be a live namespace for all of the returned value's
    /// lifetime.
    pub(crate) unsafe fn from_raw(net: NonNull<bindings::net>) -> Self {
        // INVARIANT: the caller's contract.
        NetRef {
            net,
            _life: PhantomData,
        }
    }

    /// The raw pointer, live for the borrow (type invariant).
    pub(crate) fn as_ptr(self) -> *mut bindings::net {
        self.net.as_ptr()
    }

    /// True when the namespace belongs to the initial user namespace
    /// (`net->user_ns == &init_user_ns`): it was made by a task privileged
    /// on the host, not by the root of a user namespace of its own (an
    /// unprivileged `unshare -Urn`). A namespace's owner never changes.
    pub(crate) fn owned_by_init_user_ns(self) -> bool {
        // SAFETY: the namespace is live for the borrow (type invariant).
        unsafe { bindings::rfw_net_owned_by_init_user_ns(self.as_ptr()) }
    }
}

/// The id the kernel assigns for `net_generic` lookups.
static NET_ID: KernelStatic<c_uint> = KernelStatic::new(0);

static OPS: KernelStatic<bindings::pernet_operations> =
    // `pernet_operations` holds pointers, integers and function pointers.
    // SAFETY: zero is a valid value for every field.
    KernelStatic::new(unsafe { core::mem::zeroed() });

/// The storage of `net`'s [`RfwNet`].
///
/// # Safety
///
/// `net` must be a live namespace and rfw's pernet operations registered.
unsafe fn slot(net: *const bindings::net) -> *mut RfwNet {
    // The kernel wrote `NET_ID` at registration, before any `init` call.
    // SAFETY: and does not write it again while registered.
    let id = unsafe { NET_ID.get().read() };
    // `net` is live and our id registered (caller): this is our area.
    // SAFETY: `rfw_net_generic` returns `size_of::<RfwNet>()` bytes of `net`.
    unsafe { bindings::rfw_net_generic(net, id) }.cast::<RfwNet>()
}

/// rfw's state in `net`.
///
/// # Safety
///
/// `net` must be a live namespace whose `init` has run and whose `exit` has
/// not: true inside rfw's hooks (registered after init, unregistered a grace
/// period before exit) and inside netlink commands (the family is registered
/// after, and unregistered before, the pernet operations; the requesting
/// socket holds its namespace alive).
pub(crate) unsafe fn get<'a>(net: *const bindings::net) -> &'a RfwNet {
    // SAFETY: per this function's contract `slot` holds an initialised value.
    unsafe { &*slot(net) }
}

/// rfw's state in `net` if rfw's `init` ran for it: for the address and
/// device notifiers, which also see the devices of a namespace whose
/// creation failed (`setup_net` unregisters them, a failed `init` of rfw's
/// or of an earlier module's notwithstanding), when rfw's state area is
/// still the zeroed memory `net_generic` gave it.
///
/// # Safety
///
/// `net` must be a live namespace and rfw's pernet operations registered,
/// and its `exit_batch` must not have dropped the state (a namespace's
/// devices are all unregistered before any pernet `exit` runs).
pub(crate) unsafe fn get_live<'a>(net: *const bindings::net) -> Option<&'a RfwNet> {
    // SAFETY: as `get`'s contract, up to whether `init` ran.
    let slot = unsafe { slot(net) };
    // Zeroed (a false `AtomicBool`) until `init` wrote the state, whose
    // `start` then set it; read through the field alone, without a
    // reference to a state that may not be there.
    // SAFETY: `slot` is our area of `net`, valid memory either way.
    let live = unsafe { &*core::ptr::addr_of!((*slot).live) };
    // Acquire pairs with `start`'s Release: the state written before.
    // SAFETY: initialised once `live` is set, and not dropped (caller).
    live.load(Ordering::Acquire).then(|| unsafe { &*slot })
}

/// `pernet_operations.init`: the state of a new namespace.
///
/// # Safety
///
/// Called by the namespace core only, with a live `net`.
unsafe extern "C" fn net_init(net: *mut bindings::net) -> c_int {
    let state = match RfwNet::new() {
        Ok(s) => s,
        Err(e) => return e.to_errno(),
    };
    // The kernel calls `init` for a live namespace with our id registered.
    // SAFETY: so the slot is zeroed memory of ours, initialised below.
    let slot = unsafe { slot(net) };
    // SAFETY: `slot` is valid for writes and holds no value yet.
    unsafe { slot.write(state) };
    // The state is in its final place now: it stays there until
    // `exit_batch` drops it in place, so it may be pinned.
    // SAFETY: `slot` holds the value just written.
    unsafe { Pin::new_unchecked(&*slot) }.start();
    0
}

/// `pernet_operations.pre_exit`: unhooks a dying namespace.
///
/// # Safety
///
/// Called by the namespace core only, for a `net` whose `init` succeeded.
unsafe extern "C" fn net_pre_exit(net: *mut bindings::net) {
    if let Some(nn) = NonNull::new(net) {
        // The namespace core calls `pre_exit` for a live (dying) namespace.
        // SAFETY: so it lives for this call.
        let net_ref = unsafe { NetRef::from_raw(nn) };
        // `init` succeeded for `net`, and its state is dropped only in
        // `exit_batch`.
        // SAFETY: so the state is live.
        unsafe { get(net) }.pre_exit(net_ref);
    }
}

/// `pernet_operations.exit`: winds a dying namespace's state down.
///
/// # Safety
///
/// Called by the namespace core only, for a `net` whose `init` succeeded,
/// an RCU grace period after `pre_exit`.
unsafe extern "C" fn net_exit(net: *mut bindings::net) {
    if let Some(nn) = NonNull::new(net) {
        // The namespace core calls `exit` for a live (dying) namespace.
        // SAFETY: so it lives for this call.
        let net_ref = unsafe { NetRef::from_raw(nn) };
        // `init` succeeded for `net`; its state is dropped in `exit_batch`,
        // which comes after.
        // SAFETY: so the state is live.
        unsafe { get(net) }.exit(net_ref);
    }
}

/// Calls `f` on each namespace of an exit batch (`list_for_each_entry(net,
/// list, exit_list)`).
///
/// # Safety
///
/// `list` is the batch the namespace core passed to `exit_batch`: a list of
/// live (dying) namespaces linked through `exit_list`, which nobody changes
/// during the call. `f` must not unlink them.
unsafe fn for_each_in_batch(list: *mut bindings::list_head, mut f: impl FnMut(*mut bindings::net)) {
    let off = core::mem::offset_of!(bindings::net, exit_list);
    // SAFETY: `list` is a valid list head (contract).
    let mut p = unsafe { (*list).next };
    while !p.is_null() && p != list {
        // `p` is the `exit_list` member of a namespace in the batch.
        // SAFETY: so stepping back by its offset gives that namespace.
        let net = unsafe { p.cast::<u8>().sub(off) }.cast::<bindings::net>();
        // SAFETY: `p` is a live list node (contract).
        let next = unsafe { (*p).next };
        f(net);
        p = next;
    }
}

/// `pernet_operations.exit_batch`: the batch's shared teardown, then the
/// states are freed.
///
/// # Safety
///
/// Called by the namespace core only, after `exit` of every namespace of
/// `list`, each of whose `init` succeeded.
unsafe extern "C" fn net_exit_batch(list: *mut bindings::list_head) {
    let each = |f: &mut dyn FnMut(&RfwNet)| {
        // The batch's states are live until the loop below drops them.
        // SAFETY: `list` is the core's batch, and each state is live.
        unsafe { for_each_in_batch(list, |net| f(get(net))) };
    };
    RfwNet::exit_batch(&each);
    // The hooks went in `pre_exit`, netlink commands cannot reach a dying
    // namespace, and `NetState::exit_batch` made sure that nothing else
    // refers to the states.
    // SAFETY: each slot holds our value and nothing can reach it any more.
    unsafe { for_each_in_batch(list, |net| core::ptr::drop_in_place(slot(net))) };
}

/// rfw's pernet operations, registered for as long as this value lives.
pub(crate) struct Registration(());

impl Registration {
    /// Registers the operations: the kernel runs `init` for every existing
    /// namespace now and for every new one later.
    pub(crate) fn new() -> Result<Self> {
        let ops = OPS.get();
        // Module init runs once; the operations are not registered yet.
        // SAFETY: nothing else reads them now (`KernelStatic` invariant).
        unsafe {
            (*ops).init = Some(net_init);
            (*ops).pre_exit = Some(net_pre_exit);
            (*ops).exit = Some(net_exit);
            (*ops).exit_batch = Some(net_exit_batch);
            (*ops).id = NET_ID.get();
            (*ops).size = size_of::<RfwNet>();
        }
        // SAFETY: `ops` is fully initialised and static.
        to_result(unsafe { bindings::register_pernet_subsys(ops) })?;
        Ok(Registration(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // This runs `pre_exit`, a grace period, `exit` for every namespace
        // and one `exit_batch` for all of them.
        // SAFETY: the operations were registered in `new`.
        unsafe { bindings::unregister_pernet_subsys(OPS.get()) };
    }
}
