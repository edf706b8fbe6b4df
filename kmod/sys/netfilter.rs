// SPDX-License-Identifier: GPL-2.0

//! Netfilter hooks (`include/linux/netfilter.h`): the hook's context
//! ([`HookState`]), verdicts, the hook table handed to
//! `nf_register_net_hooks` ([`HookTable`]) and the one `extern "C"`
//! trampoline through which netfilter enters rfw ([`NetHook`]), plus the
//! kernel calls made on a hook's behalf (re-routing, REJECT's answers).

use core::ffi::{c_int, c_uint, c_void};
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::types::Opaque;

use super::kernel_static::KernelStatic;
use super::netdevice::NetDevice;
use super::rcu::Rcu;
use super::skbuff::SkBuff;
use crate::bindings;
use crate::pernet::{self, RfwNet};

/// A netfilter verdict (`NF_ACCEPT`, `NF_DROP`, `NF_QUEUE_NR(n)`).
pub(crate) type Verdict = c_uint;

/// `NF_ACCEPT`: the packet goes on.
pub(crate) const ACCEPT: Verdict = bindings::NF_ACCEPT;
/// `NF_DROP`: the packet is freed.
pub(crate) const DROP: Verdict = bindings::NF_DROP;

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
    pub(crate) fn route_me_harder4(&self, skb: &SkBuff) -> bool {
        let s = self.raw();
        // SAFETY: the hook's namespace, socket (or null) and skb, all live
        // for the hook; the skb's struct may be written (`Opaque`).
        let r = unsafe {
            bindings::ip_route_me_harder(s.net, s.sk, skb.as_ptr(), bindings::RTN_UNSPEC as c_uint)
        };
        r == 0
    }

    /// `ip6_route_me_harder(net, sk, skb)`: as [`Self::route_me_harder4`].
    pub(crate) fn route_me_harder6(&self, skb: &SkBuff) -> bool {
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
/// Called by netfilter only, as the hook function of a [`HookTable`]
/// entry registered in `state->net` (registered after rfw's pernet `init`
/// for that namespace, unregistered in its `pre_exit`).
unsafe extern "C" fn trampoline<H: NetHook>(
    _priv: *mut c_void,
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
    // The hook is registered in `state->net` only between `init` and
    // `pre_exit` (caller).
    // SAFETY: so its `RfwNet` is live for the call (`pernet::get`).
    let rn = unsafe { pernet::get(state.net_ptr()) };
    H::run(rn, &rcu, skb, state)
}

/// One entry of a [`HookTable`]: hook `H` at hook point `hooknum` of
/// family `pf`, at priority `priority`.
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

/// `N` `nf_hook_ops` in a static, registered by address in every namespace
/// (the kernel only reads them).
///
/// # Invariants
///
/// Rust writes the entries only in [`HookTable::fill`], once (guarded by
/// `filled`), before the table is first registered; afterwards only the
/// kernel reads them.
pub(crate) struct HookTable<const N: usize> {
    ops: KernelStatic<[bindings::nf_hook_ops; N]>,
    filled: AtomicBool,
}

impl<const N: usize> HookTable<N> {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        HookTable {
            // `nf_hook_ops` holds pointers, integers and an optional
            // function pointer.
            // SAFETY: zero is a valid value for every field.
            ops: KernelStatic::new(unsafe { core::mem::zeroed() }),
            filled: AtomicBool::new(false),
        }
    }

    /// Fills the table; to be called once, before the table is first
    /// registered (later calls do nothing).
    pub(crate) fn fill(&self, ops: [HookOps; N]) {
        if self.filled.swap(true, Ordering::AcqRel) {
            return;
        }
        let table = self.ops.get();
        for (i, o) in ops.iter().enumerate() {
            // INVARIANT: the first call, before any registration.
            // SAFETY: so nothing else reads the table now; `i < N`.
            let e = unsafe { &mut (*table)[i] };
            e.hook = Some(o.hook);
            e.pf = o.pf;
            e.hooknum = c_uint::from(o.hooknum);
            e.priority = o.priority;
        }
    }

    /// The table, for `nf_register_net_hooks` (`N` entries).
    pub(crate) fn as_ptr(&self) -> *const bindings::nf_hook_ops {
        self.ops.get().cast::<bindings::nf_hook_ops>()
    }
}
