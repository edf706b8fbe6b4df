//! A fake kernel for the tests: builds messages the way the kernel's
//! `nlmsg_put`, `nla_put*`, `nla_nest_*` and `netlink_ack` do
//! (include/net/netlink.h, net/netlink/af_netlink.c), written apart from the
//! code under test, and a [`Transport`] that answers requests with them.

use std::{collections::VecDeque, io};

use netlink_packet_generic::constants::{
    CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_ATTR_HDRSIZE, CTRL_ATTR_MAXATTR,
    CTRL_ATTR_OPS, CTRL_ATTR_VERSION, CTRL_CMD_NEWFAMILY, GENL_ID_CTRL,
};

use crate::netlink::Transport;

pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_MULTI: u16 = 2;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_CAPPED: u16 = 0x100;
pub(crate) const NLM_F_ACK_TLVS: u16 = 0x200;
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
pub(crate) const EINVAL: i32 = 22;

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
