//! A fake kernel for the tests: builds messages the way the kernel's
//! `nlmsg_put`, `nla_put*`, `nla_nest_*` and `netlink_ack` do
//! (include/net/netlink.h, net/netlink/af_netlink.c), written apart from the
//! code under test, and a [`Transport`] that answers requests with them.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    io,
    net::IpAddr,
    rc::Rc,
};

use netlink_packet_generic::constants::{
    CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_ATTR_HDRSIZE, CTRL_ATTR_MAXATTR,
    CTRL_ATTR_OPS, CTRL_ATTR_VERSION, CTRL_CMD_NEWFAMILY, GENL_ID_CTRL,
};

use rfw_abi::{attr, ct_status, ct_timeout, nfproto, Cmd, ConfigChange, WireTuple};

use crate::netlink::Transport;

pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_MULTI: u16 = 2;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_CAPPED: u16 = 0x100;
pub(crate) const NLM_F_ACK_TLVS: u16 = 0x200;
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const EINVAL: i32 = 22;
pub(crate) const ENOENT: i32 = 2;

/// A socket buffer: bytes appended as the kernel appends them. Offsets are
/// taken as addresses, so `skb->data` is assumed 8-aligned.
pub(crate) struct Skb {
    pub(crate) data: Vec<u8>,
    /// Whether `nla_put_u64_64bit` pads: true where the architecture lacks
    /// `CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS`; false on x86_64 and arm64.
    pad_u64: bool,
}

impl Skb {
    pub(crate) fn new(pad_u64: bool) -> Self {
        Skb {
            data: Vec::new(),
            pad_u64,
        }
    }

    fn align4(&mut self) {
        while self.data.len() % 4 != 0 {
            self.data.push(0);
        }
    }

    /// `nlmsg_put`: returns where the message starts, for [`Skb::nlmsg_end`].
    pub(crate) fn nlmsg_put(&mut self, port: u32, seq: u32, ty: u16, flags: u16) -> usize {
        self.align4();
        let start = self.data.len();
        self.data.extend_from_slice(&0u32.to_ne_bytes());
        self.data.extend_from_slice(&ty.to_ne_bytes());
        self.data.extend_from_slice(&flags.to_ne_bytes());
        self.data.extend_from_slice(&seq.to_ne_bytes());
        self.data.extend_from_slice(&port.to_ne_bytes());
        start
    }

    /// `genlmsg_put`: `nlmsg_put` and the `genlmsghdr`.
    pub(crate) fn genlmsg_put(
        &mut self,
        port: u32,
        seq: u32,
        family: u16,
        flags: u16,
        cmd: u8,
        version: u8,
    ) -> usize {
        let start = self.nlmsg_put(port, seq, family, flags);
        self.data.extend_from_slice(&[cmd, version, 0, 0]);
        start
    }

    /// `nlmsg_end`.
    pub(crate) fn nlmsg_end(&mut self, start: usize) {
        let len = (self.data.len() - start) as u32;
        self.data[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// `nla_put`.
    pub(crate) fn nla_put(&mut self, ty: u16, value: &[u8]) {
        let len = (4 + value.len()) as u16;
        self.data.extend_from_slice(&len.to_ne_bytes());
        self.data.extend_from_slice(&ty.to_ne_bytes());
        self.data.extend_from_slice(value);
        self.align4();
    }

    pub(crate) fn nla_put_u8(&mut self, ty: u16, v: u8) {
        self.nla_put(ty, &[v]);
    }

    pub(crate) fn nla_put_u16(&mut self, ty: u16, v: u16) {
        self.nla_put(ty, &v.to_ne_bytes());
    }

    pub(crate) fn nla_put_u32(&mut self, ty: u16, v: u32) {
        self.nla_put(ty, &v.to_ne_bytes());
    }

    /// `nla_put_string`: with its NUL.
    pub(crate) fn nla_put_string(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.nla_put(ty, &v);
    }

    /// `nla_put_u64_64bit`: a zero-length `padattr` first when the value
    /// would otherwise sit 4 bytes off 8-alignment.
    pub(crate) fn nla_put_u64_64bit(&mut self, ty: u16, v: u64, padattr: u16) {
        if self.pad_u64 && self.data.len() % 8 == 0 {
            self.nla_put(padattr, &[]);
        }
        self.nla_put(ty, &v.to_ne_bytes());
    }

    /// `nla_nest_start` (which sets `NLA_F_NESTED`).
    pub(crate) fn nla_nest_start(&mut self, ty: u16) -> usize {
        let start = self.data.len();
        self.nla_put(ty | NLA_F_NESTED, &[]);
        start
    }

    /// `nla_nest_end`.
    pub(crate) fn nla_nest_end(&mut self, start: usize) {
        let len = (self.data.len() - start) as u16;
        self.data[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// One `RFW_ATTR_HOOK_STATS` record.
    pub(crate) fn hook_stats(&mut self, family: u8, hook: u8, packets: u64, bytes: u64) {
        use rfw_abi::{attr, hook_stats as hs};
        let nest = self.nla_nest_start(attr::HOOK_STATS);
        self.nla_put_u8(hs::FAMILY, family);
        self.nla_put_u8(hs::HOOK, hook);
        self.nla_put_u64_64bit(hs::PACKETS, packets, hs::PAD);
        self.nla_put_u64_64bit(hs::BYTES, bytes, hs::PAD);
        self.nla_nest_end(nest);
    }

    /// `netlink_ack`: an `NLMSG_ERROR` answering `req`, with the request
    /// echoed whole unless `cap_ack` (or an ACK), and the extack message.
    pub(crate) fn ack(&mut self, req: &Request, err: i32, extack: Option<&str>, cap_ack: bool) {
        let mut flags = 0;
        let echoed = if err != 0 && !cap_ack {
            &req.bytes[..]
        } else {
            flags |= NLM_F_CAPPED;
            &req.bytes[..16]
        };
        if extack.is_some() {
            flags |= NLM_F_ACK_TLVS;
        }
        let start = self.nlmsg_put(req.port, req.seq, NLMSG_ERROR, flags);
        self.data.extend_from_slice(&err.to_ne_bytes());
        self.data.extend_from_slice(echoed);
        if let Some(msg) = extack {
            let mut s = msg.as_bytes().to_vec();
            s.push(0);
            self.nla_put(1, &s); // NLMSGERR_ATTR_MSG
            self.nla_put(2, &20u32.to_ne_bytes()); // NLMSGERR_ATTR_OFFS
        }
        self.nlmsg_end(start);
    }

    /// `netlink_dump_done`: `NLMSG_DONE` with a status and maybe an extack.
    pub(crate) fn done(&mut self, req: &Request, status: i32, extack: Option<&str>) {
        let flags = NLM_F_MULTI | if extack.is_some() { NLM_F_ACK_TLVS } else { 0 };
        let start = self.nlmsg_put(req.port, req.seq, NLMSG_DONE, flags);
        self.data.extend_from_slice(&status.to_ne_bytes());
        if let Some(msg) = extack {
            let mut s = msg.as_bytes().to_vec();
            s.push(0);
            self.nla_put(1, &s);
        }
        self.nlmsg_end(start);
    }
}

/// A connection as the fake kernel's table holds it.
#[derive(Clone, Debug)]
pub(crate) struct FakeConn {
    pub(crate) orig: WireTuple,
    pub(crate) reply: WireTuple,
    pub(crate) status: u32,
    pub(crate) timeout_ms: u32,
    pub(crate) tcp_state: Option<u8>,
    /// (packets, bytes): original, reply.
    pub(crate) counters: [(u64, u64); 2],
}

/// A tuple from text: `wire(6, "10.0.1.2", "10.0.2.2", 40000, 5201)`.
pub(crate) fn wire(proto: u8, src: &str, dst: &str, src_port: u16, dst_port: u16) -> WireTuple {
    let addr = |s: &str| -> (u8, [u8; 16]) {
        let mut a = [0; 16];
        match s.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v4) => {
                a[..4].copy_from_slice(&v4.octets());
                (nfproto::IPV4, a)
            }
            IpAddr::V6(v6) => (nfproto::IPV6, v6.octets()),
        }
    };
    let (family, src) = addr(src);
    let (_, dst) = addr(dst);
    WireTuple {
        family,
        proto,
        src,
        dst,
        src_port,
        dst_port,
    }
}

impl FakeConn {
    /// A connection whose reply tuple mirrors `orig` (no NAT).
    pub(crate) fn mirrored(orig: WireTuple) -> Self {
        let mut reply = WireTuple {
            src: orig.dst,
            dst: orig.src,
            src_port: orig.dst_port,
            dst_port: orig.src_port,
            ..orig
        };
        if orig.proto == 1 || orig.proto == 58 {
            // ICMP echo request -> reply: the id stays, the type changes.
            let reply_type: u16 = if orig.proto == 1 { 0 } else { 129 };
            reply.src_port = orig.src_port;
            reply.dst_port = reply_type << 8;
        }
        FakeConn {
            orig,
            reply,
            status: ct_status::CONFIRMED,
            timeout_ms: 30_000,
            tcp_state: (orig.proto == 6).then_some(3),
            counters: [(1, 60), (0, 0)],
        }
    }
}

impl Skb {
    /// A `ct_tuple` nest, as `put_tuple` (kmod/ct/genl.rs) writes it.
    pub(crate) fn ct_tuple(&mut self, ty: u16, t: &WireTuple) {
        use rfw_abi::ct_tuple as ctt;
        let alen = if t.family == nfproto::IPV4 { 4 } else { 16 };
        let nest = self.nla_nest_start(ty);
        self.nla_put_u8(ctt::FAMILY, t.family);
        self.nla_put_u8(ctt::PROTO, t.proto);
        self.nla_put(ctt::SRC, &t.src[..alen]);
        self.nla_put(ctt::DST, &t.dst[..alen]);
        self.nla_put_u16(ctt::SRC_PORT, t.src_port);
        self.nla_put_u16(ctt::DST_PORT, t.dst_port);
        self.nla_nest_end(nest);
    }

    /// The attributes of one connection message, as `put_conn` writes them.
    pub(crate) fn ct_conn(&mut self, c: &FakeConn) {
        use rfw_abi::ct_counters as ctc;
        self.ct_tuple(attr::CT_ORIG, &c.orig);
        self.ct_tuple(attr::CT_REPLY, &c.reply);
        self.nla_put_u32(attr::CT_STATUS, c.status);
        self.nla_put_u32(attr::CT_TIMEOUT, c.timeout_ms);
        if let Some(s) = c.tcp_state {
            self.nla_put_u8(attr::CT_PROTO_STATE, s);
        }
        for (ty, (packets, bytes)) in [attr::CT_COUNTERS_ORIG, attr::CT_COUNTERS_REPLY]
            .into_iter()
            .zip(c.counters)
        {
            let nest = self.nla_nest_start(ty);
            self.nla_put_u64_64bit(ctc::PACKETS, packets, ctc::PAD);
            self.nla_put_u64_64bit(ctc::BYTES, bytes, ctc::PAD);
            self.nla_nest_end(nest);
        }
    }
}

/// rfw's connection tracking commands as the module answers them
/// (kmod/ct/genl.rs): the family policy's strict checks (only `CT_ORIG`,
/// `CT_REPLY` and `CT_CONFIG`, nested, flagged `NLA_F_NESTED`), nested
/// payloads parsed by `rfw_abi`'s own parsers, one message per connection
/// in a dump.
pub(crate) struct FakeCt {
    pub(crate) conns: Vec<FakeConn>,
    /// Connection messages per dump datagram.
    pub(crate) per_datagram: usize,
    /// How many of the next dumps are interrupted, as an inexact dump of
    /// a changing table would be: their datagrams after the first are
    /// flagged `NLM_F_DUMP_INTR`, and they miss the last connection.
    pub(crate) dump_intr: usize,
    pub(crate) pad_u64: bool,
    pub(crate) unconfirmed: u64,
    pub(crate) limit: u32,
    pub(crate) buckets: u32,
    pub(crate) timeouts: [u32; ct_timeout::NAMES.len()],
    /// u64 counters of `CT_STATS` after the gauges: (attribute, value).
    pub(crate) counters: Vec<(u16, u64)>,
    pub(crate) invalid: Vec<(&'static str, u64)>,
    pub(crate) malformed: Vec<(&'static str, u64)>,
    /// Attributes a newer kernel might add to `CT_STATS` and the top level.
    pub(crate) newer_kernel: bool,
    /// `ct_config::TRACKING`: when the namespace tracks.
    pub(crate) tracking: u8,
    /// `ct_config::CHECKSUM`: checksums verified at PRE_ROUTING.
    pub(crate) checksum: bool,
    /// A connection was NATed in the namespace (it tracks from then on).
    pub(crate) nated: bool,
    /// The namespace's ruleset: its commands are answered by it, and a
    /// table loaded there makes tracking active. `None`: no table.
    pub(crate) rules: Option<Rc<RefCell<FakeRules>>>,
    /// Every rfw request, as sent (the ruleset's go to `rules`).
    pub(crate) requests: Vec<Vec<u8>>,
}

impl Default for FakeCt {
    fn default() -> Self {
        FakeCt {
            conns: Vec::new(),
            per_datagram: 2,
            dump_intr: 0,
            pad_u64: true,
            unconfirmed: 0,
            limit: 262_144,
            buckets: 65_536,
            timeouts: [
                120_000,
                60_000,
                432_000_000,
                120_000,
                60_000,
                30_000,
                120_000,
                10_000,
                120_000,
                300_000,
                300_000,
                30_000,
                120_000,
                30_000,
                600_000,
            ],
            counters: Vec::new(),
            invalid: Vec::new(),
            malformed: Vec::new(),
            newer_kernel: false,
            tracking: rfw_abi::ct_config::TRACKING_AUTO,
            checksum: true,
            nated: false,
            rules: None,
            requests: Vec::new(),
        }
    }
}

/// A top-level attribute of a request: its type with flags, its payload.
fn request_attrs(req: &Request) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = &req.bytes[20..];
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let ty = u16::from_ne_bytes([rest[2], rest[3]]);
        assert!(len >= 4 && len <= rest.len(), "malformed request attribute");
        out.push((ty, rest[4..len].to_vec()));
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    assert!(rest.is_empty(), "trailing bytes in the request");
    out
}

impl FakeCt {
    /// A fake kernel answering with this model, and the model to look at.
    pub(crate) fn kernel(self) -> (FakeKernel, Rc<RefCell<FakeCt>>) {
        let ct = Rc::new(RefCell::new(self));
        (Self::kernel_of(&ct), ct)
    }

    /// A fake kernel answering with `ct` (one per command, the model kept
    /// across commands); ruleset commands go to its `rules`, if any.
    pub(crate) fn kernel_of(ct: &Rc<RefCell<FakeCt>>) -> FakeKernel {
        let model = Rc::clone(ct);
        FakeKernel::new(Some(CT_FAMILY_ID), move |req| {
            let rules = model.borrow().rules.clone();
            let ruleset_cmd = [Cmd::RulesGet, Cmd::RulesReplace, Cmd::RulesStatsGet]
                .iter()
                .any(|c| *c as u8 == req.cmd);
            match rules {
                Some(rules) if ruleset_cmd => FakeRules::serve(&rules, req),
                _ => model.borrow_mut().handle(req),
            }
        })
    }

    /// `ACTIVE`: whether the namespace tracks now.
    pub(crate) fn active(&self) -> bool {
        let tables = self
            .rules
            .as_ref()
            .is_some_and(|r| !r.borrow().tables.is_empty());
        self.tracking == rfw_abi::ct_config::TRACKING_ON || tables || self.nated
    }

    fn nack(req: &Request, errno: i32, msg: &str) -> Vec<Vec<u8>> {
        let mut skb = Skb::new(false);
        skb.ack(req, -errno, Some(msg), true);
        vec![skb.data]
    }

    /// A reply message filled in by `body`, then the ACK, in one datagram.
    fn reply(&self, req: &Request, body: impl FnOnce(&mut Skb)) -> Vec<Vec<u8>> {
        let mut skb = Skb::new(self.pad_u64);
        let start = skb.genlmsg_put(req.port, req.seq, CT_FAMILY_ID, 0, req.cmd, 1);
        body(&mut skb);
        skb.nlmsg_end(start);
        skb.ack(req, 0, None, true);
        vec![skb.data]
    }

    fn handle(&mut self, req: &Request) -> Vec<Vec<u8>> {
        self.requests.push(req.bytes.clone());
        let attrs = request_attrs(req);
        // The family policy, strictly validated by genetlink.
        for (ty, _) in &attrs {
            let kind = ty & !NLA_F_NESTED;
            if ![attr::CT_ORIG, attr::CT_REPLY, attr::CT_CONFIG].contains(&kind) {
                return Self::nack(req, EINVAL, "Unsupported attribute");
            }
            if ty & NLA_F_NESTED == 0 {
                return Self::nack(req, EINVAL, "NLA_F_NESTED is missing");
            }
        }
        let find = |kind: u16| attrs.iter().find(|(t, _)| t & !NLA_F_NESTED == kind);
        match Cmd::from_u8(req.cmd) {
            Some(Cmd::CtGet) if req.flags & NLM_F_DUMP != 0 => {
                assert!(attrs.is_empty(), "a dump of everything has no attributes");
                self.dump(req)
            }
            Some(Cmd::CtDelete) => {
                let (a, b) = (find(attr::CT_ORIG), find(attr::CT_REPLY));
                let payload = match (a, b) {
                    (Some((_, p)), None) | (None, Some((_, p))) => p,
                    _ => return Self::nack(req, EINVAL, "give CT_ORIG or CT_REPLY, not both"),
                };
                let t = match WireTuple::parse(payload) {
                    Ok(t) => t,
                    Err(m) => return Self::nack(req, EINVAL, m.to_str().unwrap()),
                };
                // The table's lookup finds an entry by either of its tuples.
                match self.conns.iter().position(|c| c.orig == t || c.reply == t) {
                    Some(i) => {
                        self.conns.remove(i);
                        let mut skb = Skb::new(false);
                        skb.ack(req, 0, None, true);
                        vec![skb.data]
                    }
                    None => Self::nack(req, ENOENT, "no such connection"),
                }
            }
            Some(Cmd::CtFlush) => {
                let n = self.conns.len() as u64;
                self.conns.clear();
                self.reply(req, |skb| {
                    skb.nla_put_u64_64bit(attr::CT_COUNT, n, attr::PAD)
                })
            }
            Some(Cmd::CtStatsGet) => self.reply(req, |skb| self.put_stats(skb)),
            Some(Cmd::CtConfigGet) => self.reply(req, |skb| self.put_config(skb)),
            Some(Cmd::CtConfigSet) => {
                let Some((_, payload)) = find(attr::CT_CONFIG) else {
                    return Self::nack(req, EINVAL, "CT_CONFIG is needed");
                };
                let change = match ConfigChange::parse(payload) {
                    Ok(c) => c,
                    Err(m) => return Self::nack(req, EINVAL, m.to_str().unwrap()),
                };
                for (slot, v) in self.timeouts.iter_mut().zip(change.timeouts) {
                    if let Some(v) = v {
                        *slot = v;
                    }
                }
                if let Some(l) = change.limit {
                    self.limit = l;
                }
                if let Some(t) = change.tracking {
                    self.tracking = t;
                }
                if let Some(c) = change.checksum {
                    self.checksum = c;
                }
                self.reply(req, |skb| self.put_config(skb))
            }
            other => panic!(
                "fake kernel: unexpected request {other:?}, flags {:#x}",
                req.flags
            ),
        }
    }

    fn dump(&mut self, req: &Request) -> Vec<Vec<u8>> {
        let mut datagrams = Vec::new();
        let per = self.per_datagram.max(1);
        let intr = self.dump_intr > 0;
        self.dump_intr = self.dump_intr.saturating_sub(1);
        let sent = if intr {
            &self.conns[..self.conns.len().saturating_sub(1)]
        } else {
            &self.conns[..]
        };
        for (i, batch) in sent.chunks(per).enumerate() {
            let mut skb = Skb::new(self.pad_u64);
            let flags = NLM_F_MULTI | if intr && i > 0 { NLM_F_DUMP_INTR } else { 0 };
            for c in batch {
                let start = skb.genlmsg_put(req.port, req.seq, CT_FAMILY_ID, flags, req.cmd, 1);
                skb.ct_conn(c);
                skb.nlmsg_end(start);
            }
            datagrams.push(skb.data);
        }
        let mut done = Skb::new(false);
        done.done(req, 0, None);
        datagrams.push(done.data);
        datagrams
    }

    fn put_stats(&self, skb: &mut Skb) {
        use rfw_abi::{ct_reason as r, ct_stats as s};
        if self.newer_kernel {
            skb.nla_put(attr::MAX + 5, b"top-level news");
        }
        let nest = skb.nla_nest_start(attr::CT_STATS);
        let gauges = [
            (s::COUNT, self.conns.len() as u64 + self.unconfirmed),
            (s::LIMIT, u64::from(self.limit)),
            (s::UNCONFIRMED, self.unconfirmed),
            (s::BUCKETS, u64::from(self.buckets)),
            (s::ENTRY_BYTES, 256),
        ];
        for (ty, v) in gauges.into_iter().chain(self.counters.iter().copied()) {
            skb.nla_put_u64_64bit(ty, v, s::PAD);
        }
        if self.newer_kernel {
            skb.nla_put_u64_64bit(40, 12345, s::PAD);
            let n = skb.nla_nest_start(41);
            skb.nla_put_string(r::NAME, "something_new");
            skb.nla_nest_end(n);
        }
        for (ty, reasons) in [
            (s::INVALID_REASON, &self.invalid),
            (s::MALFORMED_REASON, &self.malformed),
        ] {
            for (name, count) in reasons {
                let n = skb.nla_nest_start(ty);
                skb.nla_put_string(r::NAME, name);
                skb.nla_put_u64_64bit(r::COUNT, *count, r::PAD);
                if self.newer_kernel {
                    skb.nla_put_u8(9, 1);
                }
                skb.nla_nest_end(n);
            }
        }
        skb.nla_nest_end(nest);
    }

    /// `CT_CONFIG` as `reply_config` (kmod/ct/genl.rs) writes it.
    fn put_config(&self, skb: &mut Skb) {
        use rfw_abi::ct_config as c;
        let nest = skb.nla_nest_start(attr::CT_CONFIG);
        skb.nla_put_u32(c::LIMIT, self.limit);
        skb.nla_put_u32(c::BUCKETS, self.buckets);
        skb.nla_put_u8(c::TRACKING, self.tracking);
        skb.nla_put_u8(c::ACTIVE, u8::from(self.active()));
        skb.nla_put_u8(c::CHECKSUM, u8::from(self.checksum));
        for (name, ms) in ct_timeout::NAMES.iter().zip(self.timeouts) {
            let n = skb.nla_nest_start(c::TIMEOUT);
            skb.nla_put_string(ct_timeout::NAME, name);
            skb.nla_put_u32(ct_timeout::MS, ms);
            skb.nla_nest_end(n);
        }
        skb.nla_nest_end(nest);
    }
}

/// The family id [`FakeCt::kernel`] gives rfw.
pub(crate) const CT_FAMILY_ID: u16 = 0x1d;

/// A request as the fake kernel saw it.
pub(crate) struct Request {
    pub(crate) bytes: Vec<u8>,
    pub(crate) ty: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    /// The sender's port (what `NETLINK_CB(skb).portid` would say).
    pub(crate) port: u32,
    pub(crate) cmd: u8,
}

type Handler = Box<dyn FnMut(&Request) -> Vec<Vec<u8>>>;

/// A kernel with the nlctrl family and, if `rfw_id` is set, rfw, whose
/// requests `handler` answers with datagrams.
pub(crate) struct FakeKernel {
    pub(crate) port: u32,
    pub(crate) rfw_id: Option<u16>,
    /// Datagrams handed to the client so far.
    pub(crate) delivered: Rc<Cell<usize>>,
    handler: Handler,
    queue: VecDeque<Vec<u8>>,
}

impl FakeKernel {
    pub(crate) fn new(
        rfw_id: Option<u16>,
        handler: impl FnMut(&Request) -> Vec<Vec<u8>> + 'static,
    ) -> Self {
        FakeKernel {
            port: 4242,
            rfw_id,
            delivered: Rc::new(Cell::new(0)),
            handler: Box::new(handler),
            queue: VecDeque::new(),
        }
    }

    /// Queues a datagram as if the kernel had sent it unasked.
    pub(crate) fn push(&mut self, datagram: Vec<u8>) {
        self.queue.push_back(datagram);
    }

    fn getfamily(&self, req: &Request) -> Vec<u8> {
        let mut skb = Skb::new(false);
        let Some(id) = self.rfw_id else {
            skb.ack(req, -2, Some("Unknown family name"), true);
            return skb.data;
        };
        let start = skb.genlmsg_put(req.port, req.seq, GENL_ID_CTRL, 0, CTRL_CMD_NEWFAMILY, 2);
        skb.nla_put(CTRL_ATTR_FAMILY_NAME, b"rfw\0");
        skb.nla_put(CTRL_ATTR_FAMILY_ID, &id.to_ne_bytes());
        skb.nla_put(CTRL_ATTR_VERSION, &1u32.to_ne_bytes());
        skb.nla_put(CTRL_ATTR_HDRSIZE, &0u32.to_ne_bytes());
        skb.nla_put(CTRL_ATTR_MAXATTR, &2u32.to_ne_bytes());
        let ops = skb.nla_nest_start(CTRL_ATTR_OPS);
        let op = skb.nla_nest_start(1);
        skb.nla_put(1, &1u32.to_ne_bytes()); // CTRL_ATTR_OP_ID
        skb.nla_put(2, &0x1cu32.to_ne_bytes()); // CTRL_ATTR_OP_FLAGS
        skb.nla_nest_end(op);
        skb.nla_nest_end(ops);
        skb.nla_put(99, b"from a newer kernel");
        skb.nlmsg_end(start);
        skb.ack(req, 0, None, true);
        skb.data
    }
}

impl Transport for FakeKernel {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let u16_at = |o: usize| u16::from_ne_bytes([datagram[o], datagram[o + 1]]);
        let u32_at = |o: usize| u32::from_ne_bytes(datagram[o..o + 4].try_into().unwrap());
        assert_eq!(
            u32_at(0) as usize,
            datagram.len(),
            "one message per datagram"
        );
        let req = Request {
            bytes: datagram.to_vec(),
            ty: u16_at(4),
            flags: u16_at(6),
            seq: u32_at(8),
            port: self.port,
            cmd: datagram[16],
        };
        if req.ty == GENL_ID_CTRL {
            let reply = self.getfamily(&req);
            self.queue.push_back(reply);
        } else {
            assert_eq!(Some(req.ty), self.rfw_id, "request to an unknown family");
            let replies = (self.handler)(&req);
            self.queue.extend(replies);
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        match self.queue.pop_front() {
            Some(d) => {
                *buf = d;
                self.delivered.set(self.delivered.get() + 1);
                Ok(())
            }
            // A real socket would block forever: fail the test instead.
            None => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "fake kernel has nothing more to say",
            )),
        }
    }

    fn port_id(&self) -> u32 {
        self.port
    }
}

/// A table as the fake kernel holds it: the blob as installed and one
/// counter per entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FakeTable {
    pub(crate) kind: nat::rule::TableKind,
    pub(crate) blob: Vec<u8>,
    pub(crate) counters: Vec<nat::rule::Counter>,
}

impl FakeTable {
    /// The table as fwctl's model (handles from the blob, counters set).
    pub(crate) fn spec(&self) -> nat::spec::TableSpec {
        let mut t = nat::spec::TableSpec::decode(&self.blob).unwrap();
        t.set_counters(&self.counters);
        t
    }
}

/// Something that happens to the ruleset just before a `RulesReplace` is
/// handled: another process' replace, between fwctl's read and its write.
pub(crate) type Racer = Box<dyn FnOnce(&mut FakeRules)>;

/// rfw's ruleset commands as the module answers them, per the contract in
/// `rfw_abi` (`Cmd::RulesGet`, `RulesReplace`, `RulesStatsGet`): blobs
/// decoded and validated by the `nat` crate as the kernel does, `EAGAIN`
/// when the generation sent is not the current one, `RULES_CHECK`
/// installing nothing, and every table of a replace installed or none.
pub(crate) struct FakeRules {
    pub(crate) generation: u32,
    /// Installed tables, in the order they were first loaded.
    pub(crate) tables: Vec<FakeTable>,
    /// `RULES_STATS` counters: (attribute, value).
    pub(crate) stats: Vec<(u16, u64)>,
    pub(crate) pad_u64: bool,
    /// Run one per replace (not per check), front first.
    pub(crate) racers: VecDeque<Racer>,
    /// Refuse every replace with `EINVAL` and this extack (a kernel whose
    /// checks are stricter than this fwctl's).
    pub(crate) refuse: Option<&'static str>,
    /// Every request, as sent: (command, bytes).
    pub(crate) requests: Vec<(u8, Vec<u8>)>,
}

impl Default for FakeRules {
    fn default() -> Self {
        FakeRules {
            generation: 1,
            tables: Vec::new(),
            stats: Vec::new(),
            pad_u64: true,
            racers: VecDeque::new(),
            refuse: None,
            requests: Vec::new(),
        }
    }
}

impl FakeRules {
    /// A fake kernel answering with `rules` (one per command, the model
    /// kept across commands).
    pub(crate) fn kernel_of(rules: &Rc<RefCell<FakeRules>>) -> FakeKernel {
        let model = Rc::clone(rules);
        FakeKernel::new(Some(CT_FAMILY_ID), move |req| FakeRules::serve(&model, req))
    }

    /// Answers one request with `model`, running a racer first if due.
    pub(crate) fn serve(model: &Rc<RefCell<FakeRules>>, req: &Request) -> Vec<Vec<u8>> {
        // A racer runs with the model borrowed mutably: take it first.
        let racer = if req.cmd == Cmd::RulesReplace as u8 {
            let mut m = model.borrow_mut();
            let check = request_attrs(req)
                .iter()
                .any(|(t, _)| t & !NLA_F_NESTED == attr::RULES_CHECK);
            if check {
                None
            } else {
                m.racers.pop_front()
            }
        } else {
            None
        };
        if let Some(r) = racer {
            r(&mut model.borrow_mut());
        }
        model.borrow_mut().handle(req)
    }

    /// Installs `t` as another process would (a replace: generation + 1).
    pub(crate) fn install(&mut self, t: &nat::spec::TableSpec) {
        let blob = t.encode().unwrap();
        let table = FakeTable {
            kind: t.kind,
            blob,
            counters: t.counters(),
        };
        match self.tables.iter_mut().find(|x| x.kind == t.kind) {
            Some(x) => *x = table,
            None => self.tables.push(table),
        }
        self.generation = self.generation.wrapping_add(1);
    }

    /// The installed table of `kind`.
    pub(crate) fn table(&self, kind: nat::rule::TableKind) -> Option<&FakeTable> {
        self.tables.iter().find(|t| t.kind == kind)
    }

    /// Counts `packets` packets of `bytes` bytes each on the rule with
    /// `handle` of the table of `kind`, as traffic would.
    pub(crate) fn hit(
        &mut self,
        kind: nat::rule::TableKind,
        handle: u32,
        packets: u64,
        bytes: u64,
    ) {
        let t = self.tables.iter_mut().find(|t| t.kind == kind).unwrap();
        let spec = nat::spec::TableSpec::decode(&t.blob).unwrap();
        let mut i = 0;
        for c in &spec.chains {
            for r in &c.rules {
                if r.handle == handle {
                    t.counters[i].packets += packets;
                    t.counters[i].bytes += packets * bytes;
                    return;
                }
                i += 1;
            }
            i += 1;
        }
        panic!("no rule with handle {handle}");
    }

    /// Counts on the policy of the chain `chain`.
    pub(crate) fn hit_policy(&mut self, kind: nat::rule::TableKind, chain: &str, packets: u64) {
        let t = self.tables.iter_mut().find(|t| t.kind == kind).unwrap();
        let spec = nat::spec::TableSpec::decode(&t.blob).unwrap();
        let mut i = 0;
        for c in &spec.chains {
            i += c.rules.len();
            if c.name.as_str() == chain {
                t.counters[i].packets += packets;
                t.counters[i].bytes += packets * 100;
                return;
            }
            i += 1;
        }
        panic!("no chain {chain}");
    }

    /// The replaces handled (installed or refused), checks included.
    pub(crate) fn replaces(&self) -> usize {
        self.requests
            .iter()
            .filter(|(c, _)| *c == Cmd::RulesReplace as u8)
            .count()
    }

    fn reply(&self, req: &Request, body: impl FnOnce(&mut Skb)) -> Vec<Vec<u8>> {
        let mut skb = Skb::new(self.pad_u64);
        let start = skb.genlmsg_put(req.port, req.seq, CT_FAMILY_ID, 0, req.cmd, 1);
        body(&mut skb);
        skb.nlmsg_end(start);
        skb.ack(req, 0, None, true);
        vec![skb.data]
    }

    fn handle(&mut self, req: &Request) -> Vec<Vec<u8>> {
        self.requests.push((req.cmd, req.bytes.clone()));
        let attrs = request_attrs(req);
        // The family policy, strictly validated by genetlink.
        for (ty, payload) in &attrs {
            let kind = ty & !NLA_F_NESTED;
            let ok = match kind {
                attr::RULES_TABLE => ty & NLA_F_NESTED != 0,
                attr::RULES_GENERATION => payload.len() == 4,
                attr::RULES_CHECK => payload.is_empty(),
                _ => false,
            };
            if !ok {
                return FakeCt::nack(req, EINVAL, "Unsupported attribute");
            }
        }
        match Cmd::from_u8(req.cmd) {
            Some(Cmd::RulesGet) => {
                assert!(attrs.is_empty(), "RulesGet has no attributes");
                assert_eq!(req.flags & NLM_F_DUMP, 0, "RulesGet is a doit");
                self.reply(req, |skb| {
                    skb.nla_put_u32(attr::RULES_GENERATION, self.generation);
                    for t in &self.tables {
                        let n = skb.nla_nest_start(attr::RULES_TABLE);
                        skb.nla_put_u8(rfw_abi::rules_table::KIND, t.kind as u8);
                        skb.nla_put(rfw_abi::rules_table::BLOB, &t.blob);
                        let mut c = Vec::new();
                        for x in &t.counters {
                            c.extend_from_slice(&x.packets.to_le_bytes());
                            c.extend_from_slice(&x.bytes.to_le_bytes());
                        }
                        skb.nla_put(rfw_abi::rules_table::COUNTERS, &c);
                        skb.nla_nest_end(n);
                    }
                })
            }
            Some(Cmd::RulesStatsGet) => {
                assert!(attrs.is_empty(), "RulesStatsGet has no attributes");
                self.reply(req, |skb| {
                    let n = skb.nla_nest_start(attr::RULES_STATS);
                    for (ty, v) in &self.stats {
                        skb.nla_put_u64_64bit(*ty, *v, rfw_abi::rules_stats::PAD);
                    }
                    skb.nla_nest_end(n);
                })
            }
            Some(Cmd::RulesReplace) => match self.replace(&attrs) {
                Ok(()) => self.reply(req, |skb| {
                    skb.nla_put_u32(attr::RULES_GENERATION, self.generation)
                }),
                Err((errno, msg)) => FakeCt::nack(req, errno, &msg),
            },
            other => panic!("fake kernel: unexpected request {other:?}"),
        }
    }

    /// `RulesReplace`: everything checked before anything is installed.
    fn replace(&mut self, attrs: &[(u16, Vec<u8>)]) -> Result<(), (i32, String)> {
        use rfw_abi::{nla, rules_table as rt};
        let einval = |m: String| (EINVAL, m);
        let mut generation = None;
        let mut check = false;
        let mut new: Vec<FakeTable> = Vec::new();
        let mut gone: Vec<nat::rule::TableKind> = Vec::new();
        for (ty, payload) in attrs {
            match ty & !NLA_F_NESTED {
                attr::RULES_GENERATION => {
                    generation = Some(u32::from_ne_bytes(payload[..4].try_into().unwrap()))
                }
                attr::RULES_CHECK => check = true,
                _ => {
                    let (mut blob, mut counters, mut kind_only) = (None, None, None);
                    for a in nla::iter(payload) {
                        let a = a.map_err(|m| einval(m.to_str().unwrap().to_owned()))?;
                        let slot = match a.kind {
                            rt::KIND => &mut kind_only,
                            rt::BLOB => &mut blob,
                            rt::COUNTERS => &mut counters,
                            _ => return Err(einval("unknown attribute in table".into())),
                        };
                        if slot.replace(a.data).is_some() {
                            return Err(einval("repeated attribute in table".into()));
                        }
                    }
                    let Some(blob) = blob else {
                        // A kind alone removes that table.
                        let k = match kind_only {
                            Some([0]) => nat::rule::TableKind::Filter,
                            Some([1]) => nat::rule::TableKind::Nat,
                            Some([2]) => nat::rule::TableKind::Mangle,
                            _ => return Err(einval("table without blob or kind".into())),
                        };
                        if counters.is_some() || gone.contains(&k) {
                            return Err(einval("bad table removal".into()));
                        }
                        gone.push(k);
                        continue;
                    };
                    if blob.len() > rt::BLOB_MAX {
                        return Err(einval("table blob too big".into()));
                    }
                    let kind =
                        nat::codec::table_kind(blob).map_err(|e| einval(format!("table: {e}")))?;
                    let n = nat::codec::entries_needed(blob)
                        .map_err(|e| einval(format!("{kind} table: {e}")))?;
                    let mut store = vec![nat::codec::Entry::EMPTY; n];
                    nat::codec::decode_into(blob, &mut store)
                        .map_err(|e| einval(format!("{kind} table: {e}")))?;
                    let mut c = vec![nat::rule::Counter::default(); n];
                    if let Some(bytes) = counters {
                        if bytes.len() % rt::COUNTER_BYTES != 0 {
                            return Err(einval("counters: not a whole number of entries".into()));
                        }
                        if bytes.len() / rt::COUNTER_BYTES > n {
                            return Err(einval(format!(
                                "{kind} table: more counters than entries"
                            )));
                        }
                        for (slot, b) in c.iter_mut().zip(bytes.chunks_exact(rt::COUNTER_BYTES)) {
                            slot.packets = u64::from_le_bytes(b[..8].try_into().unwrap());
                            slot.bytes = u64::from_le_bytes(b[8..].try_into().unwrap());
                        }
                    }
                    if new.iter().any(|t| t.kind == kind) {
                        return Err(einval(format!("{kind} table given twice")));
                    }
                    new.push(FakeTable {
                        kind,
                        blob: blob.to_vec(),
                        counters: c,
                    });
                }
            }
        }
        if new.is_empty() && gone.is_empty() {
            return Err(einval("no table to replace".into()));
        }
        if gone.iter().any(|k| new.iter().any(|t| t.kind == *k)) {
            return Err(einval("a table given twice".into()));
        }
        if let Some(g) = generation {
            if g != self.generation {
                return Err((
                    EAGAIN,
                    format!("ruleset changed (generation {g}, now {})", self.generation),
                ));
            }
        }
        if let Some(m) = self.refuse {
            return Err(einval(m.to_owned()));
        }
        if check {
            return Ok(());
        }
        for t in new {
            match self.tables.iter_mut().find(|x| x.kind == t.kind) {
                Some(x) => *x = t,
                None => self.tables.push(t),
            }
        }
        self.tables.retain(|t| !gone.contains(&t.kind));
        self.generation = self.generation.wrapping_add(1);
        Ok(())
    }
}

pub(crate) const EAGAIN: i32 = 11;
