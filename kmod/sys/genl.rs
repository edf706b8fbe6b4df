// SPDX-License-Identifier: GPL-2.0

//! Generic netlink families (`include/net/genetlink.h`).
//!
//! A family's kernel structures live in a static [`Family`], filled in and
//! registered by [`Registration`] (unregistered on drop). Its commands are
//! types implementing [`DoIt`] (and [`DumpIt`] for a command that dumps);
//! the operation table points at [`doit`]`::<H>` and [`dumpit`]`::<H>`, one
//! instance per handler: the only `extern "C"` entry points, which build the
//! safe context ([`Request`], [`Dump`]), call the handler and turn its
//! `Result` into the errno genetlink expects.

use core::ffi::{c_char, c_int, c_long, CStr};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::Opaque;

use super::kernel_static::KernelStatic;
use super::nlmsg::DumpMsg;
use super::pernet;
use crate::bindings;
use crate::pernet::RfwNet;

/// `GENL_UNS_ADMIN_PERM`: the caller needs `CAP_NET_ADMIN` in the user
/// namespace that owns the network namespace of its socket.
pub(crate) const UNS_ADMIN_PERM: u8 = bindings::GENL_UNS_ADMIN_PERM as u8;

/// A command's request handler (`genl_small_ops.doit`).
pub(crate) trait DoIt {
    /// Handles one request. An `Err` goes back to the requester as its
    /// errno, with the extended ACK message `req` was given, if any.
    fn doit(req: &Request<'_>) -> Result;
}

/// A command's dump handler (`genl_small_ops.dumpit`).
pub(crate) trait DumpIt {
    /// Appends messages to the dump's skb. Each call that leaves the skb
    /// non-empty is followed by another; the dump ends after a call that
    /// adds nothing (netlink then sends `NLMSG_DONE`).
    fn dumpit(dump: &mut Dump<'_>) -> Result;
}

/// The errno netlink expects for `r`.
fn errno(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The `doit` of every command: runs `H` on the request.
///
/// # Safety
///
/// Called by genetlink only, as the `doit` of a family registered by
/// [`Registration`], with the request's `skb` and `info`.
unsafe extern "C" fn doit<H: DoIt>(
    _skb: *mut bindings::sk_buff,
    info: *mut bindings::genl_info,
) -> c_int {
    // SAFETY: genetlink passes the running request of our family, valid
    // until we return; the borrow below ends before that.
    let req = unsafe { Request::from_raw(info) };
    errno(H::doit(&req))
}

/// The `dumpit` of every dumping command: runs `H` on the dump; on success
/// returns the skb's length (zero ends the dump).
///
/// # Safety
///
/// Called by genetlink only, as the `dumpit` of a family registered by
/// [`Registration`], with the dump's `skb` and `cb`.
unsafe extern "C" fn dumpit<H: DumpIt>(
    skb: *mut bindings::sk_buff,
    cb: *mut bindings::netlink_callback,
) -> c_int {
    let Some(skb) = NonNull::new(skb) else {
        return EINVAL.to_errno();
    };
    // SAFETY: genetlink passes the running dump of our family, ours until
    // we return; the borrow below ends before that.
    let mut dump = unsafe { Dump::from_raw(skb, cb) };
    match H::dumpit(&mut dump) {
        Ok(()) => dump.skb_len() as c_int,
        Err(e) => e.to_errno(),
    }
}

type DoItFn = unsafe extern "C" fn(*mut bindings::sk_buff, *mut bindings::genl_info) -> c_int;
type DumpItFn =
    unsafe extern "C" fn(*mut bindings::sk_buff, *mut bindings::netlink_callback) -> c_int;

/// One command of a family: its number, `GENL_*` flags and handlers.
#[derive(Clone, Copy)]
pub(crate) struct Op {
    cmd: u8,
    flags: u8,
    doit: DoItFn,
    dumpit: Option<DumpItFn>,
}

impl Op {
    /// Command `cmd`, handled by `H`.
    pub(crate) const fn doit<H: DoIt>(cmd: u8, flags: u8) -> Op {
        Op {
            cmd,
            flags,
            doit: doit::<H>,
            dumpit: None,
        }
    }

    /// Command `cmd`, handled by `H`, which also dumps.
    pub(crate) const fn doit_dumpit<H: DoIt + DumpIt>(cmd: u8, flags: u8) -> Op {
        Op {
            cmd,
            flags,
            doit: doit::<H>,
            dumpit: Some(dumpit::<H>),
        }
    }
}

/// The type of a top-level attribute in the family policy.
#[derive(Clone, Copy)]
pub(crate) enum AttrType {
    /// `NLA_NESTED`.
    Nested,
    /// `NLA_U8`.
    U8,
    /// `NLA_U32`.
    U32,
    /// `NLA_FLAG`.
    Flag,
}

/// What a family is: everything [`Registration::new`] writes into its
/// [`Family`].
pub(crate) struct Spec<'s, const OPS: usize> {
    /// The family name, NUL-terminated, at most `GENL_NAMSIZ` bytes.
    pub(crate) name: &'s [u8],
    /// `genl_family.version`.
    pub(crate) version: u8,
    /// The commands.
    pub(crate) ops: [Op; OPS],
    /// The typed top-level attributes; under strict validation every other
    /// one is rejected (`NLA_UNSPEC`).
    pub(crate) policy: &'s [(u16, AttrType)],
    /// `netnsok`: commands act in the namespace of the caller's socket.
    pub(crate) netnsok: bool,
    /// `parallel_ops`: handlers run without `genl_mutex`.
    pub(crate) parallel_ops: bool,
    /// Commands from this one on are validated strictly.
    pub(crate) resv_start_op: u8,
    /// The module the handlers live in.
    pub(crate) module: &'static ThisModule,
}

/// The kernel structures of a family with `OPS` commands and attributes
/// `0..ATTRS` (`maxattr` is `ATTRS - 1`), in a static: genetlink links them
/// by address.
///
/// # Invariants
///
/// Rust writes the contents only in [`Registration::new`], while it holds
/// `claimed` and before registering; from then until the
/// [`Registration`] drops, only the kernel touches them.
pub(crate) struct Family<const OPS: usize, const ATTRS: usize> {
    family: KernelStatic<bindings::genl_family>,
    ops: KernelStatic<[bindings::genl_small_ops; OPS]>,
    policy: KernelStatic<[bindings::nla_policy; ATTRS]>,
    claimed: AtomicBool,
}

impl<const OPS: usize, const ATTRS: usize> Family<OPS, ATTRS> {
    /// An unregistered family.
    pub(crate) const fn new() -> Self {
        Family {
            // These structures hold integers, char arrays and (function)
            // pointers.
            // SAFETY: zero is a valid value for every field.
            family: KernelStatic::new(unsafe { core::mem::zeroed() }),
            // SAFETY: as above.
            ops: KernelStatic::new(unsafe { core::mem::zeroed() }),
            // SAFETY: as above.
            policy: KernelStatic::new(unsafe { core::mem::zeroed() }),
            claimed: AtomicBool::new(false),
        }
    }
}

/// A registered family, for as long as this value lives.
///
/// The request handlers reach rfw's per-namespace state
/// ([`Request::net`], [`Dump::net`]): a family must be registered after,
/// and dropped before, rfw's pernet operations (`Rfw` in `rfw_main.rs`).
pub(crate) struct Registration<const OPS: usize, const ATTRS: usize> {
    family: &'static Family<OPS, ATTRS>,
}

impl<const OPS: usize, const ATTRS: usize> Registration<OPS, ATTRS> {
    /// Fills in `family` after `spec` and registers it. `EBUSY` if it is
    /// registered already, `EINVAL` if `spec` does not fit it.
    pub(crate) fn new(family: &'static Family<OPS, ATTRS>, spec: Spec<'_, OPS>) -> Result<Self> {
        if family.claimed.swap(true, Ordering::Acquire) {
            return Err(EBUSY);
        }
        let r = Self::fill(family, &spec).and_then(|()| {
            // SAFETY: the family is fully initialised and static.
            to_result(unsafe { bindings::genl_register_family(family.family.get()) })
        });
        if let Err(e) = r {
            family.claimed.store(false, Ordering::Release);
            return Err(e);
        }
        Ok(Registration { family })
    }

    fn fill(family: &'static Family<OPS, ATTRS>, spec: &Spec<'_, OPS>) -> Result {
        // One NUL, at the end.
        let name_ok = spec.name.len() <= bindings::GENL_NAMSIZ as usize
            && spec.name.iter().position(|&c| c == 0).map(|i| i + 1) == Some(spec.name.len());
        let (Ok(n_ops), Ok(maxattr), true) = (
            u8::try_from(OPS),
            u32::try_from(ATTRS.wrapping_sub(1)),
            name_ok && ATTRS > 0,
        ) else {
            return Err(EINVAL);
        };
        let mut policy = [bindings::nla_policy::default(); ATTRS];
        for &(ty, t) in spec.policy {
            let p = policy.get_mut(usize::from(ty)).ok_or(EINVAL)?;
            p.type_ = match t {
                AttrType::Nested => bindings::NLA_NESTED,
                AttrType::U8 => bindings::NLA_U8,
                AttrType::U32 => bindings::NLA_U32,
                AttrType::Flag => bindings::NLA_FLAG,
            } as u8;
        }
        let mut ops = [bindings::genl_small_ops::default(); OPS];
        for (o, op) in ops.iter_mut().zip(spec.ops) {
            o.cmd = op.cmd;
            o.flags = op.flags;
            o.doit = Some(op.doit);
            o.dumpit = op.dumpit;
        }
        let mut fam = bindings::genl_family::default();
        for (d, s) in fam.name.iter_mut().zip(spec.name) {
            *d = *s as core::ffi::c_char;
        }
        fam.version = spec.version.into();
        fam.maxattr = maxattr;
        fam.policy = family.policy.get().cast::<bindings::nla_policy>();
        fam.set_netnsok(spec.netnsok.into());
        fam.set_parallel_ops(spec.parallel_ops.into());
        fam.resv_start_op = spec.resv_start_op;
        fam.small_ops = family.ops.get().cast::<bindings::genl_small_ops>();
        fam.n_small_ops = n_ops;
        fam.module = spec.module.as_ptr().cast();
        // We hold `claimed` and have not registered the family.
        // SAFETY: so nothing else reads or writes these statics now
        // (`Family` invariant).
        unsafe {
            family.policy.get().write(policy);
            family.ops.get().write(ops);
            family.family.get().write(fam);
        }
        Ok(())
    }
}

impl<const OPS: usize, const ATTRS: usize> Drop for Registration<OPS, ATTRS> {
    fn drop(&mut self) {
        // This waits for running handlers (they hold the family's cb_lock).
        // SAFETY: the family was registered in `new`.
        unsafe { bindings::genl_unregister_family(self.family.family.get()) };
        self.family.claimed.store(false, Ordering::Release);
    }
}

/// A top-level attribute of a request (`struct nlattr`).
///
/// # Invariants
///
/// The header and the `nla_len` bytes it announces are readable, and nobody
/// writes them, for as long as a reference to this value lives.
#[repr(transparent)]
pub(crate) struct Attr(Opaque<bindings::nlattr>);

/// `NLA_HDRLEN`.
const NLA_HDRLEN: usize = 4;

impl Attr {
    /// The attribute at `a`.
    ///
    /// # Safety
    ///
    /// `a` must point at an attribute whose header and announced length are
    /// readable and unchanged for `'b`.
    unsafe fn from_raw<'b>(a: NonNull<bindings::nlattr>) -> &'b Attr {
        // INVARIANT: the caller's contract.
        // SAFETY: `Attr` is a transparent `Opaque<nlattr>`, valid for `'b`.
        unsafe { &*a.as_ptr().cast::<Attr>() }
    }

    /// The payload (`nla_data`, `nla_len`).
    pub(crate) fn data(&self) -> &[u8] {
        let a = self.0.get();
        // SAFETY: the header is readable (type invariant).
        let len = usize::from(unsafe { (*a).nla_len }).saturating_sub(NLA_HDRLEN);
        // The `nla_len` bytes at `a` are readable and stay unchanged while
        // `self` is borrowed (type invariant).
        // SAFETY: so are the `len` bytes after the header.
        unsafe { core::slice::from_raw_parts(a.cast::<u8>().add(NLA_HDRLEN), len) }
    }
}

/// `NLMSG_HDRLEN` and `GENL_HDRLEN`: the headers before a genetlink
/// message's attributes (family header: none).
const NLMSG_HDRLEN: usize = core::mem::size_of::<bindings::nlmsghdr>().next_multiple_of(4);
const GENL_HDRLEN: usize = core::mem::size_of::<bindings::genlmsghdr>().next_multiple_of(4);

/// A request being handled by a [`DoIt`] (`struct genl_info`): its
/// attributes, its namespace's state and its error channel.
///
/// # Invariants
///
/// `info` is the request of a `doit` running for a family registered by
/// [`Registration`], valid and unchanged for `'a`: its `attrs` is null or
/// holds the `family->maxattr + 1` attributes genetlink parsed and checked
/// against the family policy, inside the request skb; `nlhdr` is the
/// request, `genlhdr` its genetlink header, both checked for length; its
/// namespace is alive and has rfw's per-namespace state.
pub(crate) struct Request<'a> {
    info: &'a Opaque<bindings::genl_info>,
}

impl<'a> Request<'a> {
    /// The request `info`.
    ///
    /// # Safety
    ///
    /// `info` must be the request of a `doit` running for a family
    /// registered by [`Registration`], for all of `'a`.
    unsafe fn from_raw(info: *mut bindings::genl_info) -> Request<'a> {
        // SAFETY: `Opaque<T>` is a transparent `T`; `info` is valid for `'a`.
        let info = unsafe { &*info.cast::<Opaque<bindings::genl_info>>() };
        // INVARIANT: the caller's contract; genetlink parsed and validated
        // the request before calling the `doit`; a family is registered
        // only while rfw's pernet operations are (`Registration`).
        Request { info }
    }

    /// The raw request, for the message builders.
    pub(super) fn as_raw(&self) -> *mut bindings::genl_info {
        self.info.get()
    }

    /// The top-level attribute `ty`, if present (the last one of its type).
    pub(crate) fn attr(&self, ty: u16) -> Option<&'a Attr> {
        let info = self.info.get();
        // SAFETY: `info` and its registered family are valid (invariant).
        let (attrs, maxattr) = unsafe { ((*info).attrs, (*(*info).family).maxattr) };
        if attrs.is_null() || u32::from(ty) > maxattr {
            return None;
        }
        // `attrs` holds `maxattr + 1` entries (invariant) and `ty <= maxattr`.
        // SAFETY: so entry `ty` is readable.
        let a = unsafe { *attrs.add(usize::from(ty)) };
        // A parsed attribute lies in the request skb, which outlives the
        // `doit`, and genetlink checked its length against the message.
        // SAFETY: so it is readable and unchanged for `'a`.
        NonNull::new(a).map(|a| unsafe { Attr::from_raw(a) })
    }

    /// The request's top-level attributes in order, repeated ones included
    /// ([`Request::attr`] sees only the last of each type).
    pub(crate) fn all_attrs(&self) -> &'a [u8] {
        let info = self.info.get();
        // SAFETY: `info` is valid and its headers checked (invariant).
        let (len, gnlh) = unsafe { ((*(*info).nlhdr).nlmsg_len, (*info).genlhdr) };
        // `genlmsg_len`, `genlmsg_data`.
        let Some(len) = (len as usize).checked_sub(NLMSG_HDRLEN + GENL_HDRLEN) else {
            return &[];
        };
        // The message (`nlmsg_len` bytes from its netlink header, which
        // genetlink checked against the skb) outlives the `doit`.
        // SAFETY: so the `len` bytes after the genetlink header are readable
        // and unchanged for `'a`.
        unsafe { core::slice::from_raw_parts(gnlh.cast::<u8>().add(GENL_HDRLEN), len) }
    }

    /// rfw's state in the requester's namespace.
    pub(crate) fn net(&self) -> &'a RfwNet {
        // SAFETY: `info` is valid (invariant).
        let net = unsafe { bindings::rfw_genl_info_net(self.info.get()) };
        // The requesting socket holds its namespace alive for the call, and
        // the family is registered only while rfw's pernet operations are
        // (invariant), so the namespace's `init` has run, its `exit` not.
        // SAFETY: so `pernet::get`'s contract holds for `'a`.
        unsafe { pernet::get(net) }
    }

    /// The requester's namespace, for the kernel calls that take it.
    pub(crate) fn net_ref(&self) -> Option<pernet::NetRef<'a>> {
        // SAFETY: `info` is valid (invariant).
        let net = NonNull::new(unsafe { bindings::rfw_genl_info_net(self.info.get()) })?;
        // The requesting socket holds its namespace alive for the call.
        // SAFETY: so it is live for `'a`.
        Some(unsafe { pernet::NetRef::from_raw(net) })
    }

    /// Runs `f` on the request's extended ACK, if it has one (it does not
    /// call back into this function).
    fn with_extack(&self, f: impl FnOnce(&mut bindings::netlink_ext_ack)) {
        // SAFETY: `info` is valid (invariant).
        let extack = unsafe { (*self.info.get()).extack };
        // A non-null `extack` is the request's own (on the stack of
        // `netlink_rcv_skb`), valid until the `doit` returns; only the
        // running command writes it meanwhile, and `Request` is neither
        // `Send` nor `Sync` (it holds an `&Opaque`), so no other reference
        // to it is alive while `f` runs.
        // SAFETY: so a unique reference for the call of `f` is sound.
        if let Some(e) = unsafe { extack.as_mut() } {
            f(e);
        }
    }

    /// Reports `msg` about attribute `a` (or the whole request) in the
    /// extended ACK.
    pub(crate) fn report(&self, a: Option<&Attr>, msg: &'static CStr) {
        // `NL_SET_ERR_MSG_ATTR(extack, attr, msg)` (include/linux/netlink.h)
        // without its tracepoint: the message is static, so the extack
        // points to it.
        self.with_extack(|e| {
            e._msg = msg.as_ptr();
            e.bad_attr = attr_ptr(a);
            e.policy = core::ptr::null();
        });
    }

    /// Reports a formatted message (at most 79 bytes) about attribute `a`.
    pub(crate) fn report_fmt(&self, a: Option<&Attr>, args: core::fmt::Arguments<'_>) {
        let mut buf = MsgBuf::default();
        let _ = core::fmt::Write::write_fmt(&mut buf, args);
        // `NL_SET_ERR_MSG_ATTR_FMT(extack, attr, ...)`
        // (include/linux/netlink.h) without its tracepoint: the message is
        // formatted into the extack's own buffer, which it then points to.
        self.with_extack(|e| {
            // `buf` is NUL-terminated within its `NETLINK_MAX_FMTMSG_LEN`
            // bytes, as is the buffer after the copy.
            let dst: &mut [c_char; 80] = &mut e._msg_buf;
            for (d, s) in dst.iter_mut().zip(buf.b) {
                *d = c_char::from_ne_bytes([s]);
            }
            e._msg = e._msg_buf.as_ptr();
            e.bad_attr = attr_ptr(a);
            e.policy = core::ptr::null();
        });
    }

    /// [`Request::report`], then `EINVAL` to return.
    pub(crate) fn bad(&self, a: Option<&Attr>, msg: &'static CStr) -> Error {
        self.report(a, msg);
        EINVAL
    }

    /// [`Request::report_fmt`], then `EINVAL` to return.
    pub(crate) fn bad_fmt(&self, a: Option<&Attr>, args: core::fmt::Arguments<'_>) -> Error {
        self.report_fmt(a, args);
        EINVAL
    }
}

fn attr_ptr(a: Option<&Attr>) -> *const bindings::nlattr {
    a.map_or(core::ptr::null(), |a| a.0.get().cast_const())
}

/// A NUL-terminated message of at most 79 bytes (`NETLINK_MAX_FMTMSG_LEN`).
struct MsgBuf {
    b: [u8; 80],
    n: usize,
}

impl Default for MsgBuf {
    fn default() -> Self {
        MsgBuf { b: [0; 80], n: 0 }
    }
}

impl core::fmt::Write for MsgBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &c in s.as_bytes() {
            if self.n + 1 >= self.b.len() {
                break;
            }
            self.b[self.n] = c;
            self.n += 1;
        }
        Ok(())
    }
}

/// One call of a running dump (`struct netlink_callback` and its skb), as
/// a [`DumpIt`] sees it.
///
/// # Invariants
///
/// `skb` and `cb` are the arguments of a `dumpit` running for a family
/// registered by [`Registration`], valid for `'a`; during `'a` nothing else
/// touches the skb, `cb->args` or `cb->seq`; `cb->data` is the dump's
/// `genl_dumpit_info` (`genl_start` sets it for every genetlink dump); the
/// dump's namespace is alive and has rfw's per-namespace state.
pub(crate) struct Dump<'a> {
    skb: NonNull<bindings::sk_buff>,
    cb: &'a Opaque<bindings::netlink_callback>,
}

impl<'a> Dump<'a> {
    /// The dump call of `skb` and `cb`.
    ///
    /// # Safety
    ///
    /// `skb` and `cb` must be the arguments of a `dumpit` running for a
    /// family registered by [`Registration`], for all of `'a`.
    unsafe fn from_raw(
        skb: NonNull<bindings::sk_buff>,
        cb: *mut bindings::netlink_callback,
    ) -> Self {
        // SAFETY: `Opaque<T>` is a transparent `T`; `cb` is valid for `'a`.
        let cb = unsafe { &*cb.cast::<Opaque<bindings::netlink_callback>>() };
        // INVARIANT: the caller's contract; the socket's `cb_mutex` keeps
        // other calls of the same dump out; see `Request::from_raw` for the
        // namespace.
        Dump { skb, cb }
    }

    /// rfw's state in the dumping socket's namespace.
    pub(crate) fn net(&self) -> &'a RfwNet {
        // SAFETY: `cb` is valid (invariant).
        let net = unsafe { bindings::rfw_cb_net(self.cb.get()) };
        // The dump runs for a socket of this live namespace, while the
        // family, hence rfw's pernet operations, are registered (invariant).
        // SAFETY: so `pernet::get`'s contract holds for `'a`.
        unsafe { pernet::get(net) }
    }

    /// `cb->args`: the dump's own state, kept between calls (zero at first).
    pub(crate) fn args(&mut self) -> &mut [c_long; 6] {
        // `args` is a plain array of longs (every bit pattern is valid) in a
        // union with `ctx`, which nothing else uses for this dump.
        // SAFETY: `cb` is valid and `args` ours, exclusively (invariant and
        // `&mut self`).
        unsafe { &mut (*self.cb.get()).__bindgen_anon_1.args }
    }

    /// `cb->seq`: the dump's generation. Each message of the dump is
    /// flagged `NLM_F_DUMP_INTR` if it changed since the previous message
    /// (`genl_dump_check_consistent`), as is the final `NLMSG_DONE`.
    pub(crate) fn seq(&self) -> u32 {
        // SAFETY: `cb` is valid (invariant).
        unsafe { (*self.cb.get()).seq }
    }

    /// Sets `cb->seq` (see [`Dump::seq`]).
    pub(crate) fn set_seq(&mut self, seq: u32) {
        // SAFETY: `cb` is valid and `seq` ours (invariant).
        unsafe { (*self.cb.get()).seq = seq };
    }

    /// The length of the dump skb (the messages of this call).
    pub(crate) fn skb_len(&self) -> u32 {
        // SAFETY: the skb is valid (invariant).
        unsafe { (*self.skb.as_ptr()).len }
    }

    /// Trims the dump skb to `len` bytes (nothing if it is not longer):
    /// drops the messages after that point.
    pub(crate) fn trim(&mut self, len: u32) {
        // No message is open: it would borrow `self`. The skb is linear.
        // SAFETY: the skb is ours (invariant).
        unsafe { bindings::skb_trim(self.skb.as_ptr(), len) };
    }

    /// Starts a message of command `cmd` of the dump's family.
    pub(crate) fn message(&mut self, cmd: u8) -> Result<DumpMsg<'_>> {
        let cb = self.cb.get();
        // `cb->data` is the dump's `genl_dumpit_info` (invariant), whose
        // `info.family` is the registered family.
        // SAFETY: so this reads a valid pointer.
        let family = unsafe {
            (*(*cb).data.cast::<bindings::genl_dumpit_info>())
                .info
                .family
        };
        // SAFETY: `skb` and `cb` are this dump's, the skb ours while the
        // message borrows `self`.
        unsafe { DumpMsg::new(self.skb, cb, family, cmd) }
    }

    /// Yields the CPU if another task should run (`cond_resched`): dumps run
    /// in process context (the socket's `cb_mutex` is a mutex). Not to be
    /// called inside an RCU read-side section.
    pub(crate) fn cond_resched(&mut self) {
        super::sched::cond_resched();
    }
}
