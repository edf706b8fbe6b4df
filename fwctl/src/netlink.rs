//! Generic netlink transport: one socket, the `rfw` family, requests and dumps.
//!
//! The userspace half of what `net/netlink/af_netlink.c` (`netlink_rcv_skb`,
//! `netlink_ack`, `netlink_dump`) and `net/netlink/genetlink.c` do in the
//! kernel. Every system call goes through [`Transport`], so the exchange logic
//! (sequence and port checks, ACK/DONE handling, extended ACKs) is tested
//! against a fake kernel.

use std::{fmt::Debug, io, marker::PhantomData};

use netlink_packet_core::{
    parse_string, parse_u32, DecodeError, Emitable, NetlinkBuffer, NetlinkMessage, NetlinkPayload,
    NlasIterator, Parseable, ParseableParametrized, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_generic::{
    constants::{
        CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_ATTR_HDRSIZE, CTRL_ATTR_MAXATTR,
        CTRL_ATTR_VERSION, GENL_ID_CTRL,
    },
    ctrl::{nlas::GenlCtrlAttrs, GenlCtrl, GenlCtrlCmd},
    GenlFamily, GenlHeader, GenlMessage,
};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use crate::{
    error::{Error, ENOENT},
    rfw_msg::{describe, RfwMessage},
};

/// `NLMSGERR_ATTR_MSG`: the extended ACK's human-readable message.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// Receive buffer to start with. The kernel caps dump datagrams at 32 KiB;
/// a larger datagram is still read whole (see [`GenlSocket::recv`]).
const RECV_BUF_LEN: usize = 64 * 1024;

/// The one narrow path to the kernel: datagrams out, datagrams in.
pub trait Transport {
    /// Sends one datagram to the kernel.
    fn send(&mut self, datagram: &[u8]) -> io::Result<()>;
    /// Replaces `buf` with the next datagram the kernel sent, whole.
    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()>;
    /// The port id the kernel addresses replies to.
    fn port_id(&self) -> u32;
}

/// A bound and connected `NETLINK_GENERIC` socket.
pub struct GenlSocket {
    socket: Socket,
    port_id: u32,
}

impl GenlSocket {
    /// Opens a socket in the caller's network namespace, with extended ACKs
    /// (`NETLINK_EXT_ACK`) on and echoed requests capped (`NETLINK_CAP_ACK`).
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        let addr = socket.bind_auto()?;
        socket.set_ext_ack(true)?;
        socket.set_cap_ack(true)?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(GenlSocket {
            socket,
            port_id: addr.port_number(),
        })
    }
}

impl Transport for GenlSocket {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        loop {
            match self.socket.send(datagram, 0) {
                Ok(n) if n == datagram.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "short send: {n} of {} bytes",
                        datagram.len()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        loop {
            buf.clear();
            buf.reserve(RECV_BUF_LEN);
            // Peek with MSG_TRUNC for the datagram's real size, so that none
            // is ever cut short, then read it.
            let (len, _) = match self.socket.recv_from(buf, libc::MSG_PEEK | libc::MSG_TRUNC) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r?,
            };
            buf.clear();
            buf.reserve(len);
            let (got, from) = match self.socket.recv_from(buf, libc::MSG_TRUNC) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r?,
            };
            if got != buf.len() {
                return Err(io::Error::other(format!(
                    "netlink datagram of {got} bytes truncated to {}",
                    buf.len()
                )));
            }
            // Only the kernel (port 0) may talk to us; drop anything else.
            if from.port_number() == 0 {
                return Ok(());
            }
        }
    }

    fn port_id(&self) -> u32 {
        self.port_id
    }
}

/// A client of the `rfw` generic netlink family.
///
/// Holds the transport, the family id (resolved once, when the client is
/// made) and the sequence counter.
pub struct Client<T: Transport = GenlSocket> {
    transport: T,
    family_id: u16,
    family_version: u32,
    seq: u32,
}

impl Client<GenlSocket> {
    /// Opens a generic netlink socket and resolves the `rfw` family.
    pub fn connect() -> Result<Self, Error> {
        let socket =
            GenlSocket::open().map_err(|e| Error::io("opening a generic netlink socket", e))?;
        Client::new(socket)
    }
}

impl<T: Transport> Client<T> {
    /// Resolves the `rfw` family over `transport`.
    pub fn new(transport: T) -> Result<Self, Error> {
        let mut client = Client {
            transport,
            family_id: 0,
            family_version: 0,
            seq: 0,
        };
        let (id, version) = client
            .resolve_family(rfw_abi::FAMILY_NAME)
            .map_err(|e| match e {
                Error::Kernel { errno: ENOENT, .. } => Error::NotLoaded,
                e => e,
            })?;
        client.family_id = id;
        client.family_version = version;
        Ok(client)
    }

    /// The family id the kernel gave `rfw`.
    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    /// The family version the loaded module registered.
    pub fn family_version(&self) -> u32 {
        self.family_version
    }

    /// Sends `msg` with `NLM_F_REQUEST | NLM_F_ACK` and returns the replies
    /// that came before the ACK.
    pub fn request(&mut self, msg: RfwMessage) -> Result<Vec<RfwMessage>, Error> {
        let what = describe(msg.cmd);
        let family_id = self.family_id;
        self.start(what, family_id, NLM_F_REQUEST | NLM_F_ACK, msg)?
            .collect()
    }

    /// Sends `msg` with `NLM_F_REQUEST | NLM_F_DUMP` and returns the replies
    /// as they arrive, datagram by datagram, until `NLMSG_DONE`: a dump of
    /// any size is walked in constant memory.
    pub fn dump(&mut self, msg: RfwMessage) -> Result<Replies<'_, RfwMessage, T>, Error> {
        let what = describe(msg.cmd);
        let family_id = self.family_id;
        self.start(what, family_id, NLM_F_REQUEST | NLM_F_DUMP, msg)
    }

    /// `CTRL_CMD_GETFAMILY`: the id and version of the family called `name`.
    fn resolve_family(&mut self, name: &str) -> Result<(u16, u32), Error> {
        let what = format!("looking up generic netlink family \"{name}\"");
        let request = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(name.to_owned())],
        };
        let replies: Vec<CtrlReply> = self
            .start(&what, GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, request)?
            .collect::<Result<_, _>>()?;
        let attrs = || replies.iter().flat_map(|r| r.0.iter());
        let id = attrs().find_map(|a| match a {
            GenlCtrlAttrs::FamilyId(id) => Some(*id),
            _ => None,
        });
        let version = attrs()
            .find_map(|a| match a {
                GenlCtrlAttrs::Version(v) => Some(*v),
                _ => None,
            })
            .unwrap_or(0);
        match id {
            Some(id) => Ok((id, version)),
            None => Err(Error::protocol(&what, "reply without CTRL_ATTR_FAMILY_ID")),
        }
    }

    /// Sends one request and returns the iterator over its replies.
    fn start<Req, Rep>(
        &mut self,
        what: &str,
        family_id: u16,
        flags: u16,
        payload: Req,
    ) -> Result<Replies<'_, Rep, T>, Error>
    where
        Req: GenlFamily + Emitable + Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let datagram = encode_request(payload, family_id, flags, self.seq);
        self.transport
            .send(&datagram)
            .map_err(|e| Error::io(what, e))?;
        Ok(Replies {
            port_id: self.transport.port_id(),
            transport: &mut self.transport,
            what: what.to_owned(),
            family_id,
            seq: self.seq,
            buf: Vec::new(),
            pos: 0,
            done: false,
            interrupted: false,
            _reply: PhantomData,
        })
    }
}

/// The bytes of one request: `nlmsghdr`, `genlmsghdr`, attributes.
pub fn encode_request<M>(payload: M, family_id: u16, flags: u16, seq: u32) -> Vec<u8>
where
    M: GenlFamily + Emitable + Debug,
{
    let mut genl = GenlMessage::from_payload(payload);
    genl.set_resolved_family_id(family_id);
    let mut msg = NetlinkMessage::from(genl);
    msg.header.flags = flags;
    msg.header.sequence_number = seq;
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// The replies to one request, in order, until its ACK, error or `NLMSG_DONE`.
///
/// Stops after the first error. Dropping it early is safe for the next
/// request: what the kernel still sends for this one carries an old sequence
/// number and is skipped. But the kernel keeps an unfinished dump running on
/// the socket and refuses another dump there (`EBUSY`) until it is read to
/// the end, so a caller that wants a second dump reads the first one out.
pub struct Replies<'c, M, T: Transport> {
    transport: &'c mut T,
    port_id: u32,
    what: String,
    family_id: u16,
    seq: u32,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    interrupted: bool,
    _reply: PhantomData<fn() -> M>,
}

impl<M, T: Transport> Replies<'_, M, T> {
    /// Whether the kernel flagged a reply `NLM_F_DUMP_INTR`: the table
    /// changed while it was dumped, so the dump may be inconsistent.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }
}

impl<M, T> Iterator for Replies<'_, M, T>
where
    M: ParseableParametrized<[u8], GenlHeader> + Debug,
    T: Transport,
{
    type Item = Result<M, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.step() {
                Ok(Some(reply)) => return Some(Ok(reply)),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl<M, T> Replies<'_, M, T>
where
    M: ParseableParametrized<[u8], GenlHeader> + Debug,
    T: Transport,
{
    /// Handles the next netlink message, reading a datagram first if the
    /// current one is used up.
    fn step(&mut self) -> Result<Option<M>, Error> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            self.transport
                .recv(&mut self.buf)
                .map_err(|e| Error::io(&self.what, e))?;
            self.pos = 0;
            return Ok(None);
        }
        let raw = NetlinkBuffer::new_checked(rest).map_err(|e| self.bad(e))?;
        let len = raw.length() as usize;
        let bytes = rest
            .get(..len)
            .ok_or_else(|| self.bad("truncated message"))?;
        // NLMSG_ALIGN: the next message starts 4-aligned (or the datagram ends).
        self.pos += len.next_multiple_of(4);

        if raw.port_number() != self.port_id {
            return Err(self.bad(format_args!(
                "reply for port {}, ours is {}",
                raw.port_number(),
                self.port_id
            )));
        }
        let seq = raw.sequence_number();
        if seq != self.seq {
            // Leftovers of an earlier request (a dump dropped half-read) are
            // skipped; a number this client never sent is an error.
            if (self.seq.wrapping_sub(seq) as i32) > 0 {
                return Ok(None);
            }
            return Err(self.bad(format_args!(
                "reply with sequence number {seq}, expected {}",
                self.seq
            )));
        }

        let msg = NetlinkMessage::<GenlMessage<M>>::deserialize(bytes).map_err(|e| self.bad(e))?;
        let flags = msg.header.flags;
        if flags & NLM_F_DUMP_INTR != 0 {
            self.interrupted = true;
        }
        match msg.payload {
            NetlinkPayload::InnerMessage(genl) => {
                if msg.header.message_type != self.family_id {
                    return Err(self.bad(format_args!(
                        "reply of family {}, expected {}",
                        msg.header.message_type, self.family_id
                    )));
                }
                Ok(Some(genl.payload))
            }
            NetlinkPayload::Error(err) => {
                self.done = true;
                match err.code {
                    // The ACK: success.
                    None => Ok(None),
                    Some(code) => Err(Error::from_kernel(
                        &self.what,
                        code.get().wrapping_neg(),
                        error_extack(flags, &err.header),
                    )),
                }
            }
            NetlinkPayload::Done(done) => {
                self.done = true;
                if done.code < 0 {
                    let extack = if flags & NLM_F_ACK_TLVS != 0 {
                        extack_message(&done.extended_ack)
                    } else {
                        None
                    };
                    return Err(Error::from_kernel(
                        &self.what,
                        done.code.wrapping_neg(),
                        extack,
                    ));
                }
                Ok(None)
            }
            NetlinkPayload::Noop => Ok(None),
            NetlinkPayload::Overrun(_) => Err(self.bad("NLMSG_OVERRUN")),
            _ => Err(self.bad("unknown netlink control message")),
        }
    }

    fn bad(&self, detail: impl std::fmt::Display) -> Error {
        Error::protocol(&self.what, detail)
    }
}

/// The extended ACK message of an `NLMSG_ERROR`. `payload` is what follows
/// the error code: the request's `nlmsghdr`, the rest of the request unless
/// `NLM_F_CAPPED`, then the TLVs if `NLM_F_ACK_TLVS`.
pub fn error_extack(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = parse_u32(payload.get(..4)?).ok()? as usize;
        len.max(NLMSG_HDRLEN).next_multiple_of(4)
    };
    extack_message(payload.get(echoed..)?)
}

/// `NLMSGERR_ATTR_MSG` among extended ACK TLVs, as one printable line.
pub fn extack_message(tlvs: &[u8]) -> Option<String> {
    let nla = NlasIterator::new(tlvs)
        .map_while(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)?;
    let text = parse_string(nla.value()).ok()?;
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// The reply to `CTRL_CMD_GETFAMILY`, keeping only the family's scalar
/// attributes: the ops, groups and policies that follow are not needed, and
/// skipping them keeps a newer kernel's additions from breaking the lookup.
#[derive(Debug)]
struct CtrlReply(Vec<GenlCtrlAttrs>);

impl ParseableParametrized<[u8], GenlHeader> for CtrlReply {
    fn parse_with_param(buf: &[u8], _header: GenlHeader) -> Result<Self, DecodeError> {
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf) {
            let nla = nla?;
            if matches!(
                nla.kind(),
                CTRL_ATTR_FAMILY_ID
                    | CTRL_ATTR_FAMILY_NAME
                    | CTRL_ATTR_VERSION
                    | CTRL_ATTR_HDRSIZE
                    | CTRL_ATTR_MAXATTR
            ) {
                attrs.push(GenlCtrlAttrs::parse(&nla)?);
            }
        }
        Ok(CtrlReply(attrs))
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use rfw_abi::Cmd;

    use super::*;
    use crate::{
        fake_kernel::{
            FakeKernel, Request, Skb, EINVAL, NLM_F_DUMP_INTR as DUMP_INTR, NLM_F_MULTI,
        },
        rfw_msg::{HookStats, RfwAttr},
    };

    const RFW_ID: u16 = 0x1d;

    /// CTRL_CMD_GETFAMILY for "rfw", seq 1.
    #[rustfmt::skip]
    const GETFAMILY_RFW: [u8; 28] = [
        0x1c, 0x00, 0x00, 0x00, // nlmsg_len = 28
        0x10, 0x00,             // GENL_ID_CTRL
        0x05, 0x00,             // NLM_F_REQUEST | NLM_F_ACK
        0x01, 0x00, 0x00, 0x00, // seq 1
        0x00, 0x00, 0x00, 0x00, // pid
        0x03, 0x02, 0x00, 0x00, // CTRL_CMD_GETFAMILY, version 2
        0x08, 0x00, 0x02, 0x00, b'r', b'f', b'w', 0x00, // CTRL_ATTR_FAMILY_NAME
    ];

    fn reply(req: &Request, flags: u16, records: &[(u8, u8, u64, u64)]) -> Vec<u8> {
        let mut skb = Skb::new(false);
        let start = skb.genlmsg_put(req.port, req.seq, RFW_ID, flags, req.cmd, 1);
        for &(f, h, p, b) in records {
            skb.hook_stats(f, h, p, b);
        }
        skb.nlmsg_end(start);
        skb.data
    }

    fn nack(req: &Request, errno: i32, extack: Option<&str>, cap: bool) -> Vec<Vec<u8>> {
        let mut skb = Skb::new(false);
        skb.ack(req, -errno, extack, cap);
        vec![skb.data]
    }

    fn client(kernel: FakeKernel) -> Client<FakeKernel> {
        Client::new(kernel).unwrap()
    }

    fn stats_error(errno: i32, extack: Option<&'static str>, cap: bool) -> String {
        let mut c = client(FakeKernel::new(Some(RFW_ID), move |req| {
            nack(req, errno, extack, cap)
        }));
        c.request(RfwMessage::stats_get()).unwrap_err().to_string()
    }

    #[test]
    fn getfamily_request_bytes() {
        let request = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(rfw_abi::FAMILY_NAME.to_owned())],
        };
        assert_eq!(
            encode_request(request, GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, 1),
            GETFAMILY_RFW
        );
    }

    #[test]
    fn resolves_the_family_once_and_skips_what_it_does_not_need() {
        let c = client(FakeKernel::new(Some(RFW_ID), |_| unreachable!()));
        assert_eq!(c.family_id(), RFW_ID);
        assert_eq!(c.family_version(), 1);
    }

    #[test]
    fn request_collects_replies_until_the_ack() {
        let mut c = client(FakeKernel::new(Some(RFW_ID), |req| {
            assert_eq!(req.flags, NLM_F_REQUEST | NLM_F_ACK);
            assert_eq!(req.cmd, Cmd::StatsGet as u8);
            let mut ack = Skb::new(false);
            ack.ack(req, 0, None, true);
            // Reply and ACK in one datagram, as a busy socket may deliver.
            let mut d = reply(req, 0, &[(2, 1, 10, 20)]);
            d.extend(ack.data);
            vec![d]
        }));
        let replies = c.request(RfwMessage::stats_get()).unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(
            replies[0].hook_stats().unwrap(),
            [HookStats {
                family: 2,
                hook: 1,
                packets: 10,
                bytes: 20
            }]
        );
    }

    #[test]
    fn missing_family_means_not_loaded() {
        let err = Client::new(FakeKernel::new(None, |_| unreachable!()))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "rfw is not loaded (no generic netlink family \"rfw\"); try: modprobe rfw"
        );
    }

    #[test]
    fn eperm_and_eacces_mean_permission_denied() {
        let want = "permission denied: rfw needs CAP_NET_ADMIN in this network namespace";
        assert_eq!(stats_error(1, None, true), want);
        assert_eq!(stats_error(13, None, false), want);
    }

    #[test]
    fn other_errors_name_the_operation_and_the_errno() {
        assert_eq!(
            stats_error(EINVAL, None, true),
            "reading rfw hook counters: Invalid argument"
        );
        // ENOENT from rfw itself is not "module not loaded".
        assert_eq!(
            stats_error(2, None, true),
            "reading rfw hook counters: No such file or directory"
        );
    }

    #[test]
    fn extack_message_is_reported_capped_or_not() {
        let want = "reading rfw hook counters: rfw: no stats in this netns (Invalid argument)";
        assert_eq!(
            stats_error(EINVAL, Some("rfw: no stats in this netns"), true),
            want
        );
        assert_eq!(
            stats_error(EINVAL, Some("rfw: no stats in this netns"), false),
            want
        );
        // Kept to one line.
        assert_eq!(
            stats_error(EINVAL, Some("two\nlines\n"), true),
            "reading rfw hook counters: two lines (Invalid argument)"
        );
    }

    #[test]
    fn dump_reads_multipart_datagrams_until_done() {
        let mut c = client(FakeKernel::new(Some(RFW_ID), |req| {
            assert_eq!(req.flags, NLM_F_REQUEST | NLM_F_DUMP);
            let mut first = reply(req, NLM_F_MULTI, &[(2, 0, 1, 1)]);
            first.extend(reply(req, NLM_F_MULTI, &[(2, 1, 2, 2)]));
            let second = reply(req, NLM_F_MULTI | DUMP_INTR, &[(2, 2, 3, 3)]);
            let mut done = Skb::new(false);
            done.done(req, 0, None);
            vec![first, second, done.data]
        }));
        let mut dump = c.dump(RfwMessage::stats_get()).unwrap();
        let hooks: Vec<u8> = dump
            .by_ref()
            .map(|m| m.unwrap().hook_stats().unwrap()[0].hook)
            .collect();
        assert_eq!(hooks, [0, 1, 2]);
        assert!(dump.interrupted());
    }

    #[test]
    fn dump_error_in_done_carries_extack() {
        let mut c = client(FakeKernel::new(Some(RFW_ID), |req| {
            let mut skb = Skb::new(false);
            skb.done(req, -EINVAL, Some("table changed"));
            vec![reply(req, NLM_F_MULTI, &[]), skb.data]
        }));
        let got: Vec<_> = c.dump(RfwMessage::stats_get()).unwrap().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1].as_ref().unwrap_err().to_string(),
            "reading rfw hook counters: table changed (Invalid argument)"
        );
    }

    #[test]
    fn leftovers_of_an_abandoned_dump_are_skipped() {
        let mut c = client(FakeKernel::new(Some(RFW_ID), |req| {
            let mut out = Vec::new();
            if req.flags & NLM_F_DUMP != 0 {
                // Two parts; the caller reads only the first.
                out.push(reply(req, NLM_F_MULTI, &[(2, 0, 1, 1)]));
                out.push(reply(req, NLM_F_MULTI, &[(2, 1, 1, 1)]));
                let mut done = Skb::new(false);
                done.done(req, 0, None);
                out.push(done.data);
            } else {
                let mut skb = Skb::new(false);
                skb.ack(req, 0, None, true);
                out.push(reply(req, 0, &[(10, 4, 7, 7)]));
                out.push(skb.data);
            }
            out
        }));
        let first = c.dump(RfwMessage::stats_get()).unwrap().next();
        assert!(matches!(first, Some(Ok(_))));
        let replies = c.request(RfwMessage::stats_get()).unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].hook_stats().unwrap()[0].family, 10);
    }

    #[test]
    fn a_sequence_number_never_sent_is_an_error() {
        let mut c = client(FakeKernel::new(Some(RFW_ID), |req| {
            let future = Request {
                seq: req.seq + 5,
                bytes: req.bytes.clone(),
                ..*req
            };
            vec![reply(&future, 0, &[])]
        }));
        let err = c.request(RfwMessage::stats_get()).unwrap_err().to_string();
        assert_eq!(
            err,
            "reading rfw hook counters: reply with sequence number 7, expected 2"
        );
    }

    #[test]
    fn a_reply_for_another_port_is_an_error() {
        let mut c = client(FakeKernel::new(Some(RFW_ID), |req| {
            let other = Request {
                port: 1,
                bytes: req.bytes.clone(),
                ..*req
            };
            vec![reply(&other, 0, &[])]
        }));
        let err = c.request(RfwMessage::stats_get()).unwrap_err().to_string();
        assert_eq!(
            err,
            "reading rfw hook counters: reply for port 1, ours is 4242"
        );
    }

    #[test]
    fn garbage_is_a_protocol_error_not_a_panic() {
        let mut k = FakeKernel::new(Some(RFW_ID), |req| {
            let mut d = reply(req, 0, &[(2, 0, 1, 1)]);
            d[0] = 0xff; // nlmsg_len past the datagram
            vec![d]
        });
        k.push(vec![1, 2, 3]); // unasked-for junk before the family lookup
        assert!(matches!(Client::new(k), Err(Error::Protocol { .. })));

        let mut c = client(FakeKernel::new(Some(RFW_ID), |req| {
            let mut d = reply(req, 0, &[(2, 0, 1, 1)]);
            d[0] = 0xff;
            vec![d]
        }));
        assert!(matches!(
            c.request(RfwMessage::stats_get()),
            Err(Error::Protocol { .. })
        ));
    }

    #[test]
    fn unknown_top_level_attributes_reach_the_caller() {
        let mut c = client(FakeKernel::new(Some(RFW_ID), |req| {
            let mut skb = Skb::new(false);
            let start = skb.genlmsg_put(req.port, req.seq, RFW_ID, 0, req.cmd, 1);
            skb.nla_put(50, &[9]);
            skb.nlmsg_end(start);
            skb.ack(req, 0, None, true);
            vec![skb.data]
        }));
        let replies = c.request(RfwMessage::stats_get()).unwrap();
        assert!(matches!(&replies[0].attrs[..], [RfwAttr::Other(_)]));
    }

    #[test]
    fn extack_parsing_tolerates_junk() {
        assert_eq!(error_extack(NLM_F_ACK_TLVS, &[]), None);
        assert_eq!(error_extack(NLM_F_ACK_TLVS, &[0xff, 0xff, 0, 0]), None);
        assert_eq!(error_extack(NLM_F_ACK_TLVS | NLM_F_CAPPED, &[0; 16]), None);
        assert_eq!(extack_message(&[8, 0, 1, 0, 0, 0, 0, 0]), None);
        assert_eq!(
            extack_message(&[7, 0, 1, 0, b'h', b'i', 0, 0]).as_deref(),
            Some("hi")
        );
    }

    /// Against the running kernel, if it lets us: the live nlctrl reply
    /// parses (whatever attributes this kernel adds), nlctrl is 0x10, and
    /// extended ACKs arrive.
    #[test]
    fn live_kernel_resolves_nlctrl() {
        let Ok(socket) = GenlSocket::open() else {
            return; // no netlink here
        };
        let mut c = Client {
            transport: socket,
            family_id: 0,
            family_version: 0,
            seq: 0,
        };
        assert_eq!(c.resolve_family("nlctrl").unwrap().0, GENL_ID_CTRL);
        let err = c.resolve_family("rfw-nonexistent").unwrap_err();
        assert!(matches!(err, Error::Kernel { errno: ENOENT, .. }), "{err}");
        // Longer than GENL_NAMSIZ: the policy rejects it, and says so.
        let err = c.resolve_family("rfw-name-too-long").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Kernel {
                    extack: Some(_),
                    ..
                }
            ),
            "{err}"
        );
    }
}
