// SPDX-License-Identifier: GPL-2.0

//! Netfilter hooks (`include/linux/netfilter.h`): the hook's context
//! ([`HookState`]), verdicts, a namespace's hook entries, registered one
//! by one as it needs them ([`NetHooks`]), and the one `extern "C"`
//! trampoline through which netfilter enters rfw ([`NetHook`]), plus the
//! kernel calls made on a hook's behalf (re-routing, REJECT's answers).

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_uint, c_void};
use core::marker::PhantomData;
use core::pin::Pin;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

use kernel::alloc::flags::GFP_KERNEL_ACCOUNT;
use kernel::alloc::KVec;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::Opaque;

use super::dst::FastSkb;
use super::netdevice::NetDevice;
use super::pernet::NetRef;
use super::rcu::Rcu;
use super::rtnl::{Rtnl, RtnlCell};
use super::skbuff::SkBuff;
use super::sync::{LockClassKey, Mutex};
use crate::bindings;
use crate::pernet::RfwNet;

/// A netfilter verdict (`NF_ACCEPT`, `NF_DROP`, `NF_QUEUE_NR(n)`).
pub(crate) type Verdict = c_uint;

/// `NF_ACCEPT`: the packet goes on.
pub(crate) const ACCEPT: Verdict = bindings::NF_ACCEPT;
/// `NF_DROP`: the packet is freed.
pub(crate) const DROP: Verdict = bindings::NF_DROP;
/// `NF_STOLEN`: the hook handed the packet on (the fast path's transmit).
pub(crate) const STOLEN: Verdict = bindings::NF_STOLEN;

/// `NF_QUEUE_NR(n)`: the packet goes to userspace queue `n`; with
/// `bypass` (`NF_VERDICT_FLAG_QUEUE_BYPASS`) it is accepted when nobody
/// listens there, else dropped (`nf_hook_slow`).
pub(crate) fn queue(n: u16, bypass: bool) -> Verdict {
    let flag = if bypass {
        bindings::NF_VERDICT_FLAG_QUEUE_BYPASS
    } else {
        0
    };
    (c_uint::from(n) << bindings::NF_VERDICT_QBITS) | bindings::NF_QUEUE | flag
}

/// True for a `NF_QUEUE_NR(n)` verdict (`verdict & NF_VERDICT_MASK`).
pub(crate) fn is_queue(v: Verdict) -> bool {
    v & bindings::NF_VERDICT_MASK == bindings::NF_QUEUE
}

/// A hook's `struct nf_hook_state`: where the packet is (hook number,
/// family, devices) and in which namespace.
///
/// # Invariants
///
/// The wrapped `nf_hook_state` is valid, and its namespace and devices
/// live, for the lifetime of every reference to this `HookState`.
#[repr(transparent)]
pub(crate) struct HookState(Opaque<bindings::nf_hook_state>);

impl HookState {
    /// The `HookState` at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `nf_hook_state` whose namespace and
    /// devices live for `'a`, and which nobody writes during `'a` (a
    /// hook's state, for the hook call).
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::nf_hook_state) -> &'a HookState {
        // INVARIANT: the caller vouches for `'a`.
        // SAFETY: `HookState` is a transparent `Opaque<nf_hook_state>`,
        // which is a transparent `nf_hook_state`, valid for `'a`.
        unsafe { &*ptr.cast::<HookState>() }
    }

    fn raw(&self) -> &bindings::nf_hook_state {
        // Nobody writes the state while it is lent (type invariant).
        // SAFETY: so a shared reference to it is sound.
        unsafe { &*self.0.get() }
    }

    /// `state->hook`: the hook point (`NF_INET_*`).
    #[inline]
    pub(crate) fn hook(&self) -> u8 {
        self.raw().hook
    }

    /// `state->pf`: the family (`NFPROTO_*`).
    #[inline]
    pub(crate) fn pf(&self) -> u8 {
        self.raw().pf
    }

    /// `state->in`: the input device (PRE_ROUTING, LOCAL_IN, FORWARD).
    pub(crate) fn in_dev(&self) -> Option<&NetDevice> {
        // SAFETY: null or the hook's live device (type invariant).
        unsafe { NetDevice::from_raw(self.raw().in_) }
    }

    /// `state->out`: the output device (FORWARD, LOCAL_OUT, POST_ROUTING).
    pub(crate) fn out_dev(&self) -> Option<&NetDevice> {
        // SAFETY: null or the hook's live device (type invariant).
        unsafe { NetDevice::from_raw(self.raw().out) }
    }

    /// `state->net`, for kernel calls in this folder.
    pub(super) fn net_ptr(&self) -> *mut bindings::net {
        self.raw().net
    }

    /// Whether LOG may write to the kernel log for a packet of the hook's
    /// namespace: always in the initial namespace, elsewhere only while
    /// `net.netfilter.nf_log_all_netns` is 1 (nf_log_syslog.c's
    /// `nf_log_allowed`, reading the kernel's own `sysctl_nf_log_all_netns`).
    pub(crate) fn log_allowed(&self) -> bool {
        // SAFETY: the hook's live namespace (type invariant).
        unsafe { bindings::rfw_nf_log_allowed(self.net_ptr()) }
    }

    /// `inet_get_local_port_range` of the hook's namespace
    /// (`net.ipv4.ip_local_port_range`): `(low, high)`.
    pub(crate) fn local_port_range(&self) -> (c_int, c_int) {
        let (mut lo, mut hi): (c_int, c_int) = (0, 0);
        // SAFETY: the hook's live namespace (type invariant); two ints of ours.
        unsafe { bindings::rfw_local_port_range(self.net_ptr(), &mut lo, &mut hi) };
        (lo, hi)
    }

    /// `ip_route_me_harder(net, sk, skb, RTN_UNSPEC)`: routes a locally
    /// generated IPv4 packet again after its destination or mark changed.
    /// It may give the skb a new head (more headroom for the new device),
    /// so it takes the skb exclusively: no borrow of its bytes lives on.
    pub(crate) fn route_me_harder4(&self, skb: &mut SkBuff) -> bool {
        let s = self.raw();
        // SAFETY: the hook's namespace, socket (or null) and skb, all live
        // for the hook; the skb's struct may be written (`Opaque`), its
        // bytes moved (`&mut`: nothing borrows them).
        let r = unsafe {
            bindings::ip_route_me_harder(s.net, s.sk, skb.as_ptr(), bindings::RTN_UNSPEC as c_uint)
        };
        r == 0
    }

    /// `ip6_route_me_harder(net, sk, skb)`: as [`Self::route_me_harder4`].
    pub(crate) fn route_me_harder6(&self, skb: &mut SkBuff) -> bool {
        let s = self.raw();
        // SAFETY: as in `route_me_harder4`.
        unsafe { bindings::ip6_route_me_harder(s.net, s.sk, skb.as_ptr()) == 0 }
    }

    /// `nf_send_reset`: answers the hook's IPv4 TCP packet with a RST.
    pub(crate) fn send_reset4(&self, skb: &SkBuff) {
        let s = self.raw();
        // The answer is a new packet; `skb` is only read (its checksum
        // state may be updated).
        // SAFETY: the hook's namespace, socket and skb, as the kernel's
        // REJECT target passes them.
        unsafe { bindings::nf_send_reset(s.net, s.sk, skb.as_ptr(), c_int::from(s.hook)) };
    }

    /// `nf_send_reset6`: answers the hook's IPv6 TCP packet with a RST.
    pub(crate) fn send_reset6(&self, skb: &SkBuff) {
        let s = self.raw();
        // SAFETY: as in `send_reset4`.
        unsafe { bindings::nf_send_reset6(s.net, s.sk, skb.as_ptr(), c_int::from(s.hook)) };
    }

    /// `nf_send_unreach`: answers the hook's IPv4 packet with an ICMP
    /// destination unreachable of code `code`.
    pub(crate) fn send_unreach4(&self, skb: &SkBuff, code: u8) {
        let s = self.raw();
        // SAFETY: the hook's skb, as the kernel's REJECT target passes it.
        unsafe { bindings::nf_send_unreach(skb.as_ptr(), c_int::from(code), c_int::from(s.hook)) };
    }

    /// `nf_send_unreach6`: answers the hook's IPv6 packet with an ICMPv6
    /// destination unreachable of code `code`.
    pub(crate) fn send_unreach6(&self, skb: &SkBuff, code: u8) {
        let s = self.raw();
        // SAFETY: the hook's namespace and skb, as the kernel's REJECT
        // target passes them.
        unsafe { bindings::nf_send_unreach6(s.net, skb.as_ptr(), code, c_uint::from(s.hook)) };
    }
}

/// What runs at a hook: netfilter calls [`NetHook::run`] through the
/// trampoline of a [`HookOps`] made by [`HookOps::new`].
pub(crate) trait NetHook {
    /// Handles one packet; returns the verdict. `rn` is the namespace's
    /// state, `rcu` the RCU read-side section netfilter runs hooks in
    /// (`nf_hook_slow` holds `rcu_read_lock`), `skb` the packet, lent for
    /// the call.
    fn run(rn: &RfwNet, rcu: &Rcu, skb: &mut SkBuff, state: &HookState) -> Verdict;
}

/// The `nf_hookfn` of every hook: runs `H` on the packet.
///
/// # Safety
///
/// Called by netfilter only, as the hook function of an entry of a
/// [`NetHooks`] registered in `state->net`, with that entry's `priv`
/// (the namespace's `RfwNet`, see the type's invariants).
unsafe extern "C" fn trampoline<H: NetHook>(
    priv_: *mut c_void,
    skb: *mut bindings::sk_buff,
    state: *const bindings::nf_hook_state,
) -> c_uint {
    // Netfilter passes a valid state, with live devices and namespace, that
    // nobody changes during the call.
    // SAFETY: so it may be lent for the call.
    let state = unsafe { HookState::from_raw(state) };
    // The skb belongs to the hook for the call (netfilter's verdict decides
    // what happens to it next).
    // SAFETY: so it may be lent, exclusively, for the call.
    let skb = unsafe { SkBuff::from_raw(skb) };
    // `nf_hook_slow` runs hooks inside `rcu_read_lock()`.
    // SAFETY: the section lasts for this whole call, and the token does not
    // outlive it.
    let rcu = unsafe { Rcu::assume() };
    // `priv` is the `RfwNet` that holds the registered entry, which lives
    // until a grace period after the entry was unregistered (`NetHooks`
    // and `DevHooks` invariants); this call runs inside a read-side section that began
    // while the entry was registered.
    // SAFETY: so it is live, and only shared, for the call.
    let rn = unsafe { &*priv_.cast_const().cast::<RfwNet>() };
    H::run(rn, &rcu, skb, state)
}

/// What runs at a hook that may hand the packet on instead of returning
/// a verdict on it (the fast path): netfilter calls [`FastHook::run`]
/// through the trampoline of a device's hook in [`DevHooks`].
pub(crate) trait FastHook {
    /// Handles one packet, as [`NetHook::run`]; the packet comes as a
    /// [`FastSkb`], whose `xmit` consumes it and gives `NF_STOLEN`.
    fn run(rn: &RfwNet, rcu: &Rcu, skb: FastSkb<'_>, state: &HookState) -> Verdict;
}

/// The `nf_hookfn` of the fast path's hooks: runs `H` on the packet.
///
/// # Safety
///
/// As [`trampoline`], for a hook of a [`DevHooks`] (whose `priv` is its
/// namespace's `RfwNet`, live as `NetHooks`' is).
unsafe extern "C" fn fast_trampoline<H: FastHook>(
    priv_: *mut c_void,
    skb: *mut bindings::sk_buff,
    state: *const bindings::nf_hook_state,
) -> c_uint {
    // SAFETY: as in `trampoline`.
    let state = unsafe { HookState::from_raw(state) };
    // SAFETY: as in `trampoline`.
    let skb = unsafe { SkBuff::from_raw(skb) };
    // SAFETY: as in `trampoline`.
    let rcu = unsafe { Rcu::assume() };
    // SAFETY: as in `trampoline`.
    let rn = unsafe { &*priv_.cast_const().cast::<RfwNet>() };
    // The hook's own packet, and this function returns `H`'s verdict,
    // which is `xmit`'s STOLEN whenever `H` handed the packet on.
    // SAFETY: so the handle's contract holds.
    let skb = unsafe { FastSkb::new(skb) };
    H::run(rn, &rcu, skb, state)
}

/// One hook of a [`NetHooks`]: hook `H` at hook point `hooknum` of family
/// `pf`, at priority `priority`.
#[derive(Clone, Copy)]
pub(crate) struct HookOps {
    hook: unsafe extern "C" fn(
        *mut c_void,
        *mut bindings::sk_buff,
        *const bindings::nf_hook_state,
    ) -> c_uint,
    pf: u8,
    hooknum: u8,
    priority: c_int,
}

impl HookOps {
    /// `H` at hook point `hooknum` of family `pf`, at `priority`.
    pub(crate) const fn new<H: NetHook>(pf: u8, hooknum: u8, priority: c_int) -> HookOps {
        HookOps {
            hook: trampoline::<H>,
            pf,
            hooknum,
            priority,
        }
    }
}

/// The lockdep class of [`HOOKS_MUTEX`].
static HOOKS_MUTEX_CLASS: LockClassKey = LockClassKey::new();
/// Serialises every namespace's hook switches, so that a namespace's
/// `registered` mask and the kernel's hook lists change together (the
/// kernel takes its own `nf_hook_mutex` inside each call).
static HOOKS_MUTEX: Mutex<()> = Mutex::new((), c"rfw_hooks_mutex", &HOOKS_MUTEX_CLASS);

/// A namespace's own `N` `nf_hook_ops` (at most 32), each registered in
/// the namespace only while the namespace needs it ([`NetHooks::switch`]),
/// as nf_conntrack registers its hooks in a namespace only while a rule
/// there needs them (`nf_ct_netns_get`): a namespace that needs none pays
/// nothing per packet. Each entry's `priv` is the namespace's `RfwNet`,
/// which the trampoline hands to the hook without a `net_generic` lookup.
///
/// # Invariants
///
/// * Rust writes `ops` only in [`NetHooks::new`] and, once, in
///   [`NetHooks::bind`], before any entry is registered; afterwards only
///   the kernel and the trampoline read them.
/// * Once bound, every entry's `priv` is the address of the `RfwNet` that
///   holds this value, which does not move, and is dropped only after a
///   grace period has passed since [`NetHooks::close`] unregistered every
///   entry (the namespace's pernet `exit_batch`, after `pre_exit` and the
///   core's grace period).
/// * Bit `i` of `registered` is set exactly when `ops[i]` is registered in
///   the namespace; it changes only under [`HOOKS_MUTEX`]. Nothing is
///   registered before `bind` or after `close`.
pub(crate) struct NetHooks<const N: usize> {
    ops: UnsafeCell<[bindings::nf_hook_ops; N]>,
    registered: AtomicU32,
    bound: AtomicBool,
    closed: AtomicBool,
}

// SAFETY: `ops` is written only before it is shared with the kernel (type
// invariants); everything else is atomic.
unsafe impl<const N: usize> Sync for NetHooks<N> {}
// SAFETY: the entries hold pointers to static functions and, once bound,
// to the state that holds them: nothing tied to a thread.
unsafe impl<const N: usize> Send for NetHooks<N> {}

impl<const N: usize> NetHooks<N> {
    const FITS: () = assert!(N <= 32);

    /// The entries `ops`, none registered.
    pub(crate) fn new(ops: [HookOps; N]) -> Self {
        let () = Self::FITS;
        // `nf_hook_ops` holds pointers, integers and an optional function
        // pointer.
        // SAFETY: zero is a valid value for every field.
        let mut table: [bindings::nf_hook_ops; N] = unsafe { core::mem::zeroed() };
        for (e, o) in table.iter_mut().zip(ops.iter()) {
            e.hook = Some(o.hook);
            e.pf = o.pf;
            e.hooknum = c_uint::from(o.hooknum);
            e.priority = o.priority;
        }
        NetHooks {
            ops: UnsafeCell::new(table),
            registered: AtomicU32::new(0),
            bound: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// Makes `owner`, the namespace state that holds `self`, the `priv` of
    /// every entry; nothing is registered before this. Later calls do
    /// nothing.
    pub(crate) fn bind(&self, owner: Pin<&RfwNet>) {
        let _guard = HOOKS_MUTEX.lock();
        if self.bound.load(Ordering::Relaxed) {
            return;
        }
        let owner = core::ptr::from_ref::<RfwNet>(owner.get_ref()).cast_mut();
        let ops = self.ops.get();
        for i in 0..N {
            // INVARIANT: not bound yet, so nothing is registered and
            // nobody else reads the entries; `owner` is pinned.
            // SAFETY: so this write races with nothing; `i < N`.
            unsafe { (*ops)[i].priv_ = owner.cast::<c_void>() };
        }
        self.bound.store(true, Ordering::Relaxed);
    }

    /// Entry `i`, for the kernel.
    fn op(&self, i: usize) -> *const bindings::nf_hook_ops {
        // In bounds: callers pass `i < N`.
        self.ops
            .get()
            .cast::<bindings::nf_hook_ops>()
            .wrapping_add(i)
    }

    /// Registers in `net` (the namespace whose state holds `self`) the
    /// entries whose bits `want()` sets, and unregisters the others.
    /// `want` runs under the mutex, after every earlier switch, so it must
    /// read the namespace's state then: two callers that change that state
    /// and switch concurrently leave the hooks matching the last state.
    /// Process context (the kernel's calls sleep).
    ///
    /// Entries are unregistered in index order and registered in reverse
    /// index order, so with callers that put a packet's later hooks at
    /// higher indices, no packet meets an earlier hook without its later
    /// ones. On a failed registration (`ENOMEM`), the entries this call
    /// registered are unregistered again and the error returned.
    pub(crate) fn switch(&self, net: NetRef<'_>, want: impl FnOnce() -> u32) -> Result {
        let _guard = HOOKS_MUTEX.lock();
        if !self.bound.load(Ordering::Relaxed) || self.closed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let all = u32::MAX >> (32 - N);
        let want = want() & all;
        let mut have = self.registered.load(Ordering::Relaxed);
        for i in 0..N {
            let bit = 1u32 << i;
            if have & bit != 0 && want & bit == 0 {
                // Bit `i` says entry `i` is registered in `net`.
                // SAFETY: so it may be unregistered; `net` is live.
                unsafe { bindings::nf_unregister_net_hook(net.as_ptr(), self.op(i)) };
                have &= !bit;
                // INVARIANT: under the mutex, after the unregistration.
                self.registered.store(have, Ordering::Relaxed);
            }
        }
        let mut added = 0u32;
        for i in (0..N).rev() {
            let bit = 1u32 << i;
            if have & bit == 0 && want & bit != 0 {
                // The entry is bound and not registered; it lives as long
                // as `net`'s state (type invariants).
                // SAFETY: `net` is live.
                let r = unsafe { bindings::nf_register_net_hook(net.as_ptr(), self.op(i)) };
                if let Err(e) = to_result(r) {
                    self.unregister(net, added);
                    return Err(e);
                }
                have |= bit;
                added |= bit;
                // INVARIANT: under the mutex, after the registration.
                self.registered.store(have, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Unregisters the registered entries among `mask`, in index order;
    /// [`HOOKS_MUTEX`] is held.
    fn unregister(&self, net: NetRef<'_>, mask: u32) {
        let mut have = self.registered.load(Ordering::Relaxed);
        for i in 0..N {
            let bit = 1u32 << i;
            if have & mask & bit != 0 {
                // Bit `i` says entry `i` is registered in `net`.
                // SAFETY: so it may be unregistered; `net` is live.
                unsafe { bindings::nf_unregister_net_hook(net.as_ptr(), self.op(i)) };
                have &= !bit;
                // INVARIANT: under the mutex, after the unregistration.
                self.registered.store(have, Ordering::Relaxed);
            }
        }
    }

    /// Unregisters every entry from `net` for good (pernet `pre_exit`):
    /// later switches register nothing.
    pub(crate) fn close(&self, net: NetRef<'_>) {
        let _guard = HOOKS_MUTEX.lock();
        self.closed.store(true, Ordering::Relaxed);
        self.unregister(net, u32::MAX);
    }
}

/// The fast path's hook `H` at netdev ingress (`NF_NETDEV_INGRESS`) of
/// each device of one namespace, registered while the namespace wants it
/// ([`DevHooks::switch`]), as nftables registers a flowtable's hook on
/// each of its devices (`nft_register_flowtable_net_hooks`), and kept in
/// step with the devices that come and go (the netdevice notifier calls
/// [`DevHooks::dev_registered`] and [`DevHooks::dev_unregistered`]).
/// Each hook's `priv` is the namespace's `RfwNet`, as with [`NetHooks`].
///
/// A hook that cannot be registered (the kernel's `ENOMEM`) leaves its
/// device without the fast path, with a warning: its packets take the
/// normal path, which forwards them as before.
///
/// # Invariants
///
/// * `owner` is null until [`DevHooks::bind`], then the address of the
///   `RfwNet` that holds this value, which does not move and is dropped
///   only after a grace period has passed since [`DevHooks::close`]
///   unregistered every hook (as `NetHooks`).
/// * `state.hooks` holds exactly the hooks registered, each on a live
///   device of the namespace (one per device), made by `rfw_dev_hook_new`
///   with `owner` as `priv`; they change only under RTNL. Nothing is
///   registered before `bind` or after `close`.
pub(crate) struct DevHooks<H: FastHook> {
    owner: AtomicPtr<RfwNet>,
    state: RtnlCell<DevState>,
    priority: c_int,
    _hook: PhantomData<fn() -> H>,
}

/// What [`DevHooks`] keeps under RTNL.
struct DevState {
    /// The namespace wants the hooks (its last switch said so).
    want: bool,
    /// Closed for good (pernet `pre_exit`).
    closed: bool,
    /// The registered hooks' ops (`rfw_dev_hook_new`).
    hooks: KVec<NonNull<bindings::nf_hook_ops>>,
}

// SAFETY: the ops pointers are only touched under RTNL (type invariants),
// from whichever thread holds it.
unsafe impl Send for DevState {}

impl<H: FastHook> DevHooks<H> {
    /// No hook, at `priority` once there are.
    pub(crate) fn new(priority: c_int) -> Self {
        DevHooks {
            owner: AtomicPtr::new(core::ptr::null_mut()),
            state: RtnlCell::new(DevState {
                want: false,
                closed: false,
                hooks: KVec::new(),
            }),
            priority,
            _hook: PhantomData,
        }
    }

    /// Makes `owner`, the namespace state that holds `self`, the `priv` of
    /// every hook; nothing is registered before this.
    pub(crate) fn bind(&self, owner: Pin<&RfwNet>) {
        let p = core::ptr::from_ref::<RfwNet>(owner.get_ref()).cast_mut();
        // INVARIANT: `owner` is pinned and holds `self`; read under RTNL
        // after this store (the registration paths take it, and RTNL's
        // mutex orders them after this store, made before the namespace
        // is live).
        self.owner.store(p, Ordering::Release);
    }

    /// Registers the hook on every device of `net` (the namespace whose
    /// state holds `self`) if `want()`, else unregisters them all; `want`
    /// runs under RTNL, after every earlier switch, so it must read the
    /// namespace's state then. Process context; takes RTNL.
    pub(crate) fn switch(&self, net: NetRef<'_>, want: impl FnOnce() -> bool) {
        let mut rtnl = Rtnl::lock();
        let owner = self.owner.load(Ordering::Acquire);
        let s = self.state.get(&mut rtnl);
        if owner.is_null() || s.closed {
            return;
        }
        s.want = want();
        if !s.want {
            Self::remove_all(s, net);
            return;
        }
        struct Ctx<'a> {
            s: &'a mut DevState,
            net: NetRef<'a>,
            owner: *mut RfwNet,
            priority: c_int,
        }
        /// `rfw_for_each_netdev`'s callback: `add` for `dev`.
        ///
        /// # Safety
        ///
        /// `ctx` is a `Ctx` lent for the walk, `dev` a device of its
        /// namespace, under RTNL.
        unsafe extern "C" fn each<H: FastHook>(
            ctx: *mut c_void,
            dev: *mut bindings::net_device,
        ) -> c_int {
            // SAFETY: the walk lends the context exclusively to each call.
            let c = unsafe { &mut *ctx.cast::<Ctx<'_>>() };
            // SAFETY: a listed device of `net`, under RTNL.
            unsafe { DevHooks::<H>::add(c.s, c.net, dev, c.owner, c.priority) };
            0
        }
        let mut c = Ctx {
            s,
            net,
            owner,
            priority: self.priority,
        };
        // SAFETY: RTNL is held (`rtnl`); `c` outlives the walk, and only
        // the callbacks use it meanwhile.
        unsafe {
            bindings::rfw_for_each_netdev(
                net.as_ptr(),
                Some(each::<H>),
                core::ptr::from_mut(&mut c).cast::<c_void>(),
            )
        };
    }

    /// `NETDEV_REGISTER` of `dev` in `net`: the hook goes on it too if
    /// the namespace wants the hooks. `rtnl` is the notifier's RTNL.
    pub(crate) fn dev_registered(&self, net: NetRef<'_>, dev: &NetDevice, rtnl: &mut Rtnl) {
        let owner = self.owner.load(Ordering::Acquire);
        let s = self.state.get(rtnl);
        if owner.is_null() || s.closed || !s.want {
            return;
        }
        // SAFETY: the notifier's device, registered in `net`, under RTNL.
        unsafe { Self::add(s, net, dev.as_ptr(), owner, self.priority) };
    }

    /// `NETDEV_UNREGISTER` of `dev` in `net` (going away, or to another
    /// namespace): its hook goes. `rtnl` is the notifier's RTNL.
    pub(crate) fn dev_unregistered(&self, net: NetRef<'_>, dev: &NetDevice, rtnl: &mut Rtnl) {
        let s = self.state.get(rtnl);
        let found = find(&s.hooks, dev.as_ptr());
        if let Some(o) = found.and_then(|i| take(&mut s.hooks, i)) {
            // INVARIANT: out of the list, unregistered and freed here.
            // SAFETY: registered in `net` on `dev`, which is still
            // `net`'s during its `NETDEV_UNREGISTER`.
            unsafe { Self::unregister(net, o) };
        }
    }

    /// Unregisters every hook for good (pernet `pre_exit`): later
    /// switches and device events register nothing. Takes RTNL.
    pub(crate) fn close(&self, net: NetRef<'_>) {
        let mut rtnl = Rtnl::lock();
        let s = self.state.get(&mut rtnl);
        s.closed = true;
        Self::remove_all(s, net);
    }

    /// Unregisters and frees every hook of `s`; RTNL held.
    fn remove_all(s: &mut DevState, net: NetRef<'_>) {
        while let Some(o) = s
            .hooks
            .len()
            .checked_sub(1)
            .and_then(|i| take(&mut s.hooks, i))
        {
            // INVARIANT: out of the list, unregistered and freed here.
            // SAFETY: a hook of the list, registered in `net` on one of
            // its live devices (type invariants).
            unsafe { Self::unregister(net, o) };
        }
    }

    /// Unregisters hook `o` from `net` and frees it a grace period later
    /// (the kernel's hook blobs point at it until their RCU free).
    ///
    /// # Safety
    ///
    /// `o` is a hook of `rfw_dev_hook_new` registered in `net`, on a device
    /// still in `net`, no longer in any list; RTNL is held.
    unsafe fn unregister(net: NetRef<'_>, o: NonNull<bindings::nf_hook_ops>) {
        // SAFETY: the caller's contract.
        unsafe {
            bindings::nf_unregister_net_hook(net.as_ptr(), o.as_ptr());
            bindings::rfw_dev_hook_free(o.as_ptr());
        }
    }

    /// Registers the hook on `dev` unless it has one; a failure leaves the
    /// device without it, with a warning.
    ///
    /// # Safety
    ///
    /// `dev` is a registered device of `net`, RTNL is held (so it stays
    /// one until its `NETDEV_UNREGISTER`, which removes the hook), and
    /// `owner` is the bound owner of the `DevHooks` that holds `s`.
    unsafe fn add(
        s: &mut DevState,
        net: NetRef<'_>,
        dev: *mut bindings::net_device,
        owner: *mut RfwNet,
        priority: c_int,
    ) {
        if find(&s.hooks, dev).is_some() {
            return;
        }
        // Room first: a registered hook must not fail to be listed.
        if s.hooks.reserve(1, GFP_KERNEL_ACCOUNT).is_err() {
            pr_warn!("rfw: no memory for the fast path's hook on a device; its packets take the normal path\n");
            return;
        }
        // SAFETY: `dev` is live (contract); the trampoline's contract is
        // the ops' `priv`, `owner` (type invariants).
        let ops = unsafe {
            bindings::rfw_dev_hook_new(
                dev,
                Some(fast_trampoline::<H>),
                owner.cast::<c_void>(),
                priority,
            )
        };
        let Some(o) = NonNull::new(ops) else {
            pr_warn!("rfw: no memory for the fast path's hook on a device; its packets take the normal path\n");
            return;
        };
        // SAFETY: a filled ops on a device of `net`, kept until it is
        // unregistered.
        let r = unsafe { bindings::nf_register_net_hook(net.as_ptr(), o.as_ptr()) };
        if let Err(e) = to_result(r) {
            pr_warn!(
                "rfw: the fast path's hook on a device failed ({:?}); its packets take the normal path\n",
                e
            );
            // SAFETY: made above and never registered.
            unsafe { bindings::rfw_dev_hook_free(o.as_ptr()) };
            return;
        }
        // INVARIANT: registered, and listed (room reserved above).
        if s.hooks.push(o, GFP_KERNEL_ACCOUNT).is_err() {
            // Cannot happen (room reserved); never leave a hook unlisted.
            // SAFETY: registered above, in no list.
            unsafe { Self::unregister(net, o) };
        }
    }
}

/// Where the hook on `dev` is among `hooks` (a [`DevHooks`]' list, under
/// RTNL).
fn find(
    hooks: &KVec<NonNull<bindings::nf_hook_ops>>,
    dev: *mut bindings::net_device,
) -> Option<usize> {
    hooks.as_slice().iter().position(|o| {
        // SAFETY: each entry is a live ops of `rfw_dev_hook_new` (`DevHooks`
        // invariants); only its `dev` field is read.
        let d = unsafe { bindings::rfw_dev_hook_dev(o.as_ptr()) };
        d == dev.cast_const()
    })
}

/// Removes entry `i` of `v` (the last one takes its place), as `swap_remove`,
/// which 6.12's `KVec` lacks; `None` if there is no entry `i`.
fn take<T: Copy>(v: &mut KVec<T>, i: usize) -> Option<T> {
    let n = v.len();
    let last = *v.as_slice().last()?;
    let out = core::mem::replace(v.as_mut_slice().get_mut(i)?, last);
    // SAFETY: `n - 1 < n` entries stay initialised (`T: Copy` has no drop
    // to run for the one left past the end).
    unsafe { v.set_len(n - 1) };
    Some(out)
}
