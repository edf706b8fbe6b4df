//! rfw's generic netlink messages as types, in the rust-netlink style.
//!
//! Counterpart of the kernel module's genl ops (as `nf_conntrack_netlink.c`
//! is for conntrack): one [`RfwMessage`] per genl message, one enum per
//! attribute set ([`RfwAttr`] top level, [`HookStatsAttr`] nested), each with
//! an `Other(DefaultNla)` escape hatch so attributes a newer kernel adds are
//! kept, not rejected. Numbers come from `rfw_abi`, never from here.

use netlink_packet_core::{
    emit_u64, parse_u64, parse_u8, DecodeError, DefaultNla, Emitable, ErrorContext, Nla, NlaBuffer,
    NlasIterator, Parseable, ParseableParametrized, NLA_F_NESTED,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};
use rfw_abi::{attr, hook_stats, Cmd};

/// One rfw generic netlink message: the command from the genl header and the
/// top-level attributes that follow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RfwMessage {
    /// `genlmsghdr.cmd`.
    pub cmd: Cmd,
    /// Top-level attributes, in wire order.
    pub attrs: Vec<RfwAttr>,
}

impl RfwMessage {
    /// The `StatsGet` request: no attributes.
    pub fn stats_get() -> Self {
        RfwMessage {
            cmd: Cmd::StatsGet,
            attrs: Vec::new(),
        }
    }

    /// Every [`RfwAttr::HookStats`] record of this message, decoded.
    pub fn hook_stats(&self) -> Result<Vec<HookStats>, DecodeError> {
        self.attrs
            .iter()
            .filter_map(|a| match a {
                RfwAttr::HookStats(nested) => Some(HookStats::from_attrs(nested)),
                _ => None,
            })
            .collect()
    }
}

impl GenlFamily for RfwMessage {
    fn family_name() -> &'static str {
        rfw_abi::FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd as u8
    }

    fn version(&self) -> u8 {
        rfw_abi::FAMILY_VERSION
    }
}

impl Emitable for RfwMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for RfwMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = Cmd::from_u8(header.cmd)
            .ok_or_else(|| DecodeError::from(format!("unknown rfw command {}", header.cmd)))?;
        Ok(RfwMessage {
            cmd,
            attrs: parse_nlas(buf).context("invalid rfw attributes")?,
        })
    }
}

/// What a command does, for error messages: `fwctl: <this>: <why>`.
pub fn describe(cmd: Cmd) -> &'static str {
    match cmd {
        Cmd::StatsGet => "reading rfw hook counters",
    }
}

/// Parses a run of attributes with `T`'s parser.
pub fn parse_nlas<T>(buf: &[u8]) -> Result<Vec<T>, DecodeError>
where
    T: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(buf)
        .map(|nla| nla.and_then(|nla| T::parse(&nla)))
        .collect()
}

/// Top-level attributes ([`rfw_abi::attr`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RfwAttr {
    /// [`attr::PAD`]: alignment filler before a u64, no value.
    Pad,
    /// [`attr::HOOK_STATS`]: one hook's counters, nested.
    HookStats(Vec<HookStatsAttr>),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for RfwAttr {
    fn value_len(&self) -> usize {
        match self {
            RfwAttr::Pad => 0,
            RfwAttr::HookStats(nested) => nested.as_slice().buffer_len(),
            RfwAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            RfwAttr::Pad => attr::PAD,
            // The kernel's nla_nest_start() sets NLA_F_NESTED.
            RfwAttr::HookStats(_) => attr::HOOK_STATS | NLA_F_NESTED,
            RfwAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            RfwAttr::Pad => {}
            RfwAttr::HookStats(nested) => nested.as_slice().emit(buffer),
            RfwAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for RfwAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            attr::PAD => RfwAttr::Pad,
            attr::HOOK_STATS => {
                RfwAttr::HookStats(parse_nlas(value).context("invalid RFW_ATTR_HOOK_STATS")?)
            }
            _ => RfwAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// Attributes nested in [`attr::HOOK_STATS`] ([`rfw_abi::hook_stats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookStatsAttr {
    /// [`hook_stats::PAD`]: alignment filler before a u64, no value.
    Pad,
    /// [`hook_stats::FAMILY`]: an [`rfw_abi::nfproto`] value.
    Family(u8),
    /// [`hook_stats::HOOK`]: an [`rfw_abi::hook`] value.
    Hook(u8),
    /// [`hook_stats::PACKETS`].
    Packets(u64),
    /// [`hook_stats::BYTES`].
    Bytes(u64),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for HookStatsAttr {
    fn value_len(&self) -> usize {
        match self {
            HookStatsAttr::Pad => 0,
            HookStatsAttr::Family(_) | HookStatsAttr::Hook(_) => 1,
            HookStatsAttr::Packets(_) | HookStatsAttr::Bytes(_) => 8,
            HookStatsAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            HookStatsAttr::Pad => hook_stats::PAD,
            HookStatsAttr::Family(_) => hook_stats::FAMILY,
            HookStatsAttr::Hook(_) => hook_stats::HOOK,
            HookStatsAttr::Packets(_) => hook_stats::PACKETS,
            HookStatsAttr::Bytes(_) => hook_stats::BYTES,
            HookStatsAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        // `Emitable::emit` hands over exactly `value_len()` bytes, so the
        // writes below cannot run short; their Results carry no information.
        match self {
            HookStatsAttr::Pad => {}
            HookStatsAttr::Family(v) | HookStatsAttr::Hook(v) => {
                if let Some(b) = buffer.first_mut() {
                    *b = *v;
                }
            }
            HookStatsAttr::Packets(v) | HookStatsAttr::Bytes(v) => {
                let _ = emit_u64(buffer, *v);
            }
            HookStatsAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for HookStatsAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            hook_stats::PAD => HookStatsAttr::Pad,
            hook_stats::FAMILY => {
                HookStatsAttr::Family(parse_u8(value).context("invalid HOOK_STATS_FAMILY")?)
            }
            hook_stats::HOOK => {
                HookStatsAttr::Hook(parse_u8(value).context("invalid HOOK_STATS_HOOK")?)
            }
            hook_stats::PACKETS => {
                HookStatsAttr::Packets(parse_u64(value).context("invalid HOOK_STATS_PACKETS")?)
            }
            hook_stats::BYTES => {
                HookStatsAttr::Bytes(parse_u64(value).context("invalid HOOK_STATS_BYTES")?)
            }
            _ => HookStatsAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// One decoded [`attr::HOOK_STATS`] record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookStats {
    /// [`rfw_abi::nfproto`] value.
    pub family: u8,
    /// [`rfw_abi::hook`] value.
    pub hook: u8,
    /// Packets seen at this hook.
    pub packets: u64,
    /// Bytes seen at this hook.
    pub bytes: u64,
}

impl HookStats {
    /// Decodes one record. Family and hook are required; a missing counter
    /// is zero (the kernel may leave out what it never counted).
    pub fn from_attrs(attrs: &[HookStatsAttr]) -> Result<Self, DecodeError> {
        let (mut family, mut hook, mut packets, mut bytes) = (None, None, 0, 0);
        for a in attrs {
            match *a {
                HookStatsAttr::Family(v) => family = Some(v),
                HookStatsAttr::Hook(v) => hook = Some(v),
                HookStatsAttr::Packets(v) => packets = v,
                HookStatsAttr::Bytes(v) => bytes = v,
                HookStatsAttr::Pad | HookStatsAttr::Other(_) => {}
            }
        }
        Ok(HookStats {
            family: family.ok_or("HOOK_STATS record without FAMILY")?,
            hook: hook.ok_or("HOOK_STATS record without HOOK")?,
            packets,
            bytes,
        })
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use netlink_packet_core::{
        NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
    };
    use netlink_packet_generic::GenlMessage;
    use rfw_abi::{hook, nfproto};

    use super::*;
    use crate::{fake_kernel::Skb, netlink::encode_request};

    const FAMILY_ID: u16 = 0x1d;
    const SEQ: u32 = 0x1234;
    const PORT: u32 = 4242;

    /// StatsGet, family id 0x1d, seq 0x1234.
    #[rustfmt::skip]
    const STATS_GET_REQUEST: [u8; 20] = [
        0x14, 0x00, 0x00, 0x00, // nlmsg_len = 20
        0x1d, 0x00,             // nlmsg_type = family id
        0x05, 0x00,             // NLM_F_REQUEST | NLM_F_ACK
        0x34, 0x12, 0x00, 0x00, // nlmsg_seq
        0x00, 0x00, 0x00, 0x00, // nlmsg_pid: the kernel knows who sent it
        0x01, 0x01, 0x00, 0x00, // cmd = StatsGet, version 1, reserved
    ];

    /// A StatsGet reply with two records, as `nla_put_u64_64bit` lays it out
    /// where it pads (no efficient unaligned access): a 4-byte PAD attribute
    /// precedes each u64 whose value would otherwise not be 8-aligned.
    #[rustfmt::skip]
    const STATS_REPLY_PADDED: [u8; 120] = [
        0x78, 0x00, 0x00, 0x00, // nlmsg_len = 120
        0x1d, 0x00,             // nlmsg_type = family id
        0x00, 0x00,             // flags: a plain genlmsg_reply
        0x34, 0x12, 0x00, 0x00, // nlmsg_seq
        0x92, 0x10, 0x00, 0x00, // nlmsg_pid = 4242
        0x01, 0x01, 0x00, 0x00, // cmd = StatsGet, version 1
        // @20 HOOK_STATS | NLA_F_NESTED, len 52
        0x34, 0x00, 0x02, 0x80,
        0x05, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, // @24 FAMILY = ipv4
        0x05, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, // @32 HOOK = prerouting
        0x04, 0x00, 0x01, 0x00,                         // @40 PAD: 40 is 8-aligned
        0x0c, 0x00, 0x04, 0x00,                         // @44 PACKETS = 3
        0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //     value @48
        0x04, 0x00, 0x01, 0x00,                         // @56 PAD
        0x0c, 0x00, 0x05, 0x00,                         // @60 BYTES = 180
        0xb4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //     value @64
        // @72 HOOK_STATS | NLA_F_NESTED, len 48
        0x30, 0x00, 0x02, 0x80,
        0x05, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x00, 0x00, // @76 FAMILY = ipv6
        0x05, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, // @84 HOOK = postrouting
        0x0c, 0x00, 0x04, 0x00,                         // @92 PACKETS, no PAD needed
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, //     value @96
        0x04, 0x00, 0x01, 0x00,                         // @104 PAD
        0x0c, 0x00, 0x05, 0x00,                         // @108 BYTES = 2^32
        0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, //     value @112
    ];

    fn records() -> [HookStats; 2] {
        [
            HookStats {
                family: nfproto::IPV4,
                hook: hook::PRE_ROUTING,
                packets: 3,
                bytes: 180,
            },
            HookStats {
                family: nfproto::IPV6,
                hook: hook::POST_ROUTING,
                packets: 0x0102_0304_0506_0708,
                bytes: 1 << 32,
            },
        ]
    }

    fn kernel_reply(pad_u64: bool) -> Vec<u8> {
        let mut skb = Skb::new(pad_u64);
        let start = skb.genlmsg_put(PORT, SEQ, FAMILY_ID, 0, Cmd::StatsGet as u8, 1);
        for r in records() {
            skb.hook_stats(r.family, r.hook, r.packets, r.bytes);
        }
        skb.nlmsg_end(start);
        skb.data
    }

    fn parse(bytes: &[u8]) -> NetlinkMessage<GenlMessage<RfwMessage>> {
        NetlinkMessage::deserialize(bytes).unwrap()
    }

    fn emit(msg: &NetlinkMessage<GenlMessage<RfwMessage>>) -> Vec<u8> {
        let mut buf = vec![0xff; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    #[test]
    fn stats_get_request_bytes() {
        let bytes = encode_request(
            RfwMessage::stats_get(),
            FAMILY_ID,
            NLM_F_REQUEST | NLM_F_ACK,
            SEQ,
        );
        assert_eq!(bytes, STATS_GET_REQUEST);
        let msg = parse(&bytes);
        assert_eq!(
            msg.payload,
            NetlinkPayload::InnerMessage(GenlMessage::new(
                GenlHeader { cmd: 1, version: 1 },
                RfwMessage::stats_get(),
                FAMILY_ID,
            ))
        );
    }

    #[test]
    fn padded_reply_parses_to_typed_attributes() {
        let msg = parse(&STATS_REPLY_PADDED);
        let mut header = NetlinkHeader::default();
        header.length = 120;
        header.message_type = FAMILY_ID;
        header.sequence_number = SEQ;
        header.port_number = PORT;
        assert_eq!(msg.header, header);
        let NetlinkPayload::InnerMessage(genl) = &msg.payload else {
            panic!("not a genl message: {msg:?}");
        };
        use HookStatsAttr::*;
        assert_eq!(
            genl.payload,
            RfwMessage {
                cmd: Cmd::StatsGet,
                attrs: vec![
                    RfwAttr::HookStats(vec![Family(2), Hook(0), Pad, Packets(3), Pad, Bytes(180)]),
                    RfwAttr::HookStats(vec![
                        Family(10),
                        Hook(4),
                        Packets(0x0102_0304_0506_0708),
                        Pad,
                        Bytes(1 << 32),
                    ]),
                ],
            }
        );
        assert_eq!(genl.payload.hook_stats().unwrap(), records());
    }

    #[test]
    fn padded_reply_emits_back_identically() {
        assert_eq!(emit(&parse(&STATS_REPLY_PADDED)), STATS_REPLY_PADDED);
    }

    #[test]
    fn kernel_model_pads_as_the_golden_bytes_do() {
        assert_eq!(kernel_reply(true), STATS_REPLY_PADDED);
    }

    /// x86_64 has efficient unaligned access: the kernel sends no PAD at all.
    #[test]
    fn unpadded_reply_round_trips_to_the_same_records() {
        let bytes = kernel_reply(false);
        assert_eq!(bytes.len(), 120 - 3 * 4);
        let msg = parse(&bytes);
        assert_eq!(emit(&msg), bytes);
        let NetlinkPayload::InnerMessage(genl) = msg.payload else {
            panic!()
        };
        assert_eq!(genl.payload.hook_stats().unwrap(), records());
    }

    #[test]
    fn unknown_attributes_are_kept_and_emitted_back() {
        let mut skb = Skb::new(false);
        let start = skb.genlmsg_put(PORT, SEQ, FAMILY_ID, 0, Cmd::StatsGet as u8, 1);
        skb.nla_put(77, b"top");
        let nest = skb.nla_nest_start(attr::HOOK_STATS);
        skb.nla_put_u8(hook_stats::FAMILY, 2);
        skb.nla_put_u8(hook_stats::HOOK, 1);
        skb.nla_put(hook_stats::BYTES + 10, &[1, 2, 3]);
        skb.nla_nest_end(nest);
        skb.nlmsg_end(start);

        let msg = parse(&skb.data);
        assert_eq!(emit(&msg), skb.data);
        let NetlinkPayload::InnerMessage(genl) = msg.payload else {
            panic!()
        };
        assert_eq!(
            genl.payload.attrs[0],
            RfwAttr::Other(DefaultNla::new(77, b"top".to_vec()))
        );
        // Counters the kernel left out read zero.
        assert_eq!(
            genl.payload.hook_stats().unwrap(),
            [HookStats {
                family: 2,
                hook: 1,
                packets: 0,
                bytes: 0
            }]
        );
    }

    #[test]
    fn malformed_records_are_errors() {
        let without_hook = [HookStatsAttr::Family(2), HookStatsAttr::Packets(1)];
        assert!(HookStats::from_attrs(&without_hook).is_err());

        // A u64 attribute 4 bytes long.
        let mut bytes = STATS_REPLY_PADDED;
        bytes[44] = 8;
        assert!(NetlinkMessage::<GenlMessage<RfwMessage>>::deserialize(&bytes).is_err());

        // An unknown command.
        let mut bytes = STATS_GET_REQUEST;
        bytes[16] = 200;
        assert!(NetlinkMessage::<GenlMessage<RfwMessage>>::deserialize(&bytes).is_err());
    }
}
