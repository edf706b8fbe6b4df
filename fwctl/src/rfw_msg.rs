//! rfw's generic netlink messages as types, in the rust-netlink style.
//!
//! Counterpart of the kernel module's genl ops (as `nf_conntrack_netlink.c`
//! is for conntrack): one [`RfwMessage`] per genl message, one enum per
//! attribute set ([`RfwAttr`] top level; [`HookStatsAttr`], [`CtTupleAttr`],
//! [`CtCountersAttr`], [`CtStatsAttr`], [`CtReasonAttr`], [`CtConfigAttr`],
//! [`CtTimeoutAttr`], [`RulesTableAttr`] and [`RulesStatsAttr`] nested),
//! each with an `Other(DefaultNla)` escape
//! hatch so attributes a newer kernel adds are kept, not rejected. Numbers
//! come from `rfw_abi`, never from here.
//!
//! Nests are emitted with `NLA_F_NESTED`, as the kernel's `nla_nest_start()`
//! sends them and as its strict validation (`NL_VALIDATE_NESTED`) requires
//! them in requests. Strings are emitted NUL-terminated (`NLA_NUL_STRING`).

use std::net::IpAddr;

use netlink_packet_core::{
    emit_u16, emit_u32, emit_u64, parse_ip, parse_string, parse_u16, parse_u32, parse_u64,
    parse_u8, DecodeError, DefaultNla, Emitable, ErrorContext, Nla, NlaBuffer, NlasIterator,
    Parseable, ParseableParametrized, NLA_F_NESTED,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};
use rfw_abi::{
    attr, ct_config, ct_counters, ct_reason, ct_stats, ct_timeout, ct_tuple, hook_stats,
    rules_stats, rules_table, Cmd,
};

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

    /// The `StatsSet` request: counting on or off.
    pub fn stats_set(on: bool) -> Self {
        RfwMessage {
            cmd: Cmd::StatsSet,
            attrs: vec![RfwAttr::StatsCounting(u8::from(on))],
        }
    }

    /// The [`RfwAttr::StatsCounting`] of this message (`None` from a
    /// module that does not send it).
    pub fn stats_counting(&self) -> Option<bool> {
        self.attrs.iter().find_map(|a| match a {
            RfwAttr::StatsCounting(v) => Some(*v != 0),
            _ => None,
        })
    }

    /// A message of `cmd` with `attrs`.
    pub fn new(cmd: Cmd, attrs: Vec<RfwAttr>) -> Self {
        RfwMessage { cmd, attrs }
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
        Cmd::CtGet => "reading rfw connections",
        Cmd::CtDelete => "deleting an rfw connection",
        Cmd::CtFlush => "flushing rfw connections",
        Cmd::CtStatsGet => "reading rfw connection tracking statistics",
        Cmd::CtConfigGet => "reading rfw connection tracking settings",
        Cmd::CtConfigSet => "changing rfw connection tracking settings",
        Cmd::RulesGet => "reading rfw rules",
        Cmd::RulesReplace => "replacing rfw rules",
        Cmd::RulesStatsGet => "reading rfw rule statistics",
        Cmd::StatsSet => "switching rfw hook counting",
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
    /// [`attr::CT_ORIG`]: the original direction's tuple, nested.
    CtOrig(Vec<CtTupleAttr>),
    /// [`attr::CT_REPLY`]: the reply direction's tuple, nested.
    CtReply(Vec<CtTupleAttr>),
    /// [`attr::CT_STATUS`]: [`rfw_abi::ct_status`] bits.
    CtStatus(u32),
    /// [`attr::CT_TIMEOUT`]: milliseconds until the connection expires.
    CtTimeout(u32),
    /// [`attr::CT_PROTO_STATE`]: a [`rfw_abi::tcp_state`] number.
    CtProtoState(u8),
    /// [`attr::CT_COUNTERS_ORIG`]: original direction's counters, nested.
    CtCountersOrig(Vec<CtCountersAttr>),
    /// [`attr::CT_COUNTERS_REPLY`]: reply direction's counters, nested.
    CtCountersReply(Vec<CtCountersAttr>),
    /// [`attr::CT_STATS`]: table statistics, nested.
    CtStats(Vec<CtStatsAttr>),
    /// [`attr::CT_CONFIG`]: limit and timeouts, nested.
    CtConfig(Vec<CtConfigAttr>),
    /// [`attr::CT_COUNT`]: a number of connections.
    CtCount(u64),
    /// [`attr::RULES_TABLE`]: one table of a ruleset, nested.
    RulesTable(Vec<RulesTableAttr>),
    /// [`attr::RULES_GENERATION`]: the ruleset's generation.
    RulesGeneration(u32),
    /// [`attr::RULES_CHECK`]: a flag, no value: validate only.
    RulesCheck,
    /// [`attr::RULES_STATS`]: rule-path statistics, nested.
    RulesStats(Vec<RulesStatsAttr>),
    /// [`attr::STATS_COUNTING`]: 1 while the namespace counts per hook.
    StatsCounting(u8),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for RfwAttr {
    fn value_len(&self) -> usize {
        match self {
            RfwAttr::Pad => 0,
            RfwAttr::HookStats(nested) => nested.as_slice().buffer_len(),
            RfwAttr::CtOrig(nested) | RfwAttr::CtReply(nested) => nested.as_slice().buffer_len(),
            RfwAttr::CtStatus(_) | RfwAttr::CtTimeout(_) => 4,
            RfwAttr::CtProtoState(_) => 1,
            RfwAttr::CtCountersOrig(nested) | RfwAttr::CtCountersReply(nested) => {
                nested.as_slice().buffer_len()
            }
            RfwAttr::CtStats(nested) => nested.as_slice().buffer_len(),
            RfwAttr::CtConfig(nested) => nested.as_slice().buffer_len(),
            RfwAttr::CtCount(_) => 8,
            RfwAttr::RulesTable(nested) => nested.as_slice().buffer_len(),
            RfwAttr::RulesGeneration(_) => 4,
            RfwAttr::RulesCheck => 0,
            RfwAttr::RulesStats(nested) => nested.as_slice().buffer_len(),
            RfwAttr::StatsCounting(_) => 1,
            RfwAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            RfwAttr::Pad => attr::PAD,
            // The kernel's nla_nest_start() sets NLA_F_NESTED.
            RfwAttr::HookStats(_) => attr::HOOK_STATS | NLA_F_NESTED,
            RfwAttr::CtOrig(_) => attr::CT_ORIG | NLA_F_NESTED,
            RfwAttr::CtReply(_) => attr::CT_REPLY | NLA_F_NESTED,
            RfwAttr::CtStatus(_) => attr::CT_STATUS,
            RfwAttr::CtTimeout(_) => attr::CT_TIMEOUT,
            RfwAttr::CtProtoState(_) => attr::CT_PROTO_STATE,
            RfwAttr::CtCountersOrig(_) => attr::CT_COUNTERS_ORIG | NLA_F_NESTED,
            RfwAttr::CtCountersReply(_) => attr::CT_COUNTERS_REPLY | NLA_F_NESTED,
            RfwAttr::CtStats(_) => attr::CT_STATS | NLA_F_NESTED,
            RfwAttr::CtConfig(_) => attr::CT_CONFIG | NLA_F_NESTED,
            RfwAttr::CtCount(_) => attr::CT_COUNT,
            RfwAttr::RulesTable(_) => attr::RULES_TABLE | NLA_F_NESTED,
            RfwAttr::RulesGeneration(_) => attr::RULES_GENERATION,
            RfwAttr::RulesCheck => attr::RULES_CHECK,
            RfwAttr::RulesStats(_) => attr::RULES_STATS | NLA_F_NESTED,
            RfwAttr::StatsCounting(_) => attr::STATS_COUNTING,
            RfwAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        // `Emitable::emit` hands over exactly `value_len()` bytes, so the
        // writes below cannot run short; their Results carry no information.
        match self {
            RfwAttr::Pad => {}
            RfwAttr::HookStats(nested) => nested.as_slice().emit(buffer),
            RfwAttr::CtOrig(nested) | RfwAttr::CtReply(nested) => nested.as_slice().emit(buffer),
            RfwAttr::CtStatus(v) | RfwAttr::CtTimeout(v) => {
                let _ = emit_u32(buffer, *v);
            }
            RfwAttr::CtProtoState(v) => emit_u8(buffer, *v),
            RfwAttr::CtCountersOrig(nested) | RfwAttr::CtCountersReply(nested) => {
                nested.as_slice().emit(buffer)
            }
            RfwAttr::CtStats(nested) => nested.as_slice().emit(buffer),
            RfwAttr::CtConfig(nested) => nested.as_slice().emit(buffer),
            RfwAttr::CtCount(v) => {
                let _ = emit_u64(buffer, *v);
            }
            RfwAttr::RulesTable(nested) => nested.as_slice().emit(buffer),
            RfwAttr::RulesGeneration(v) => {
                let _ = emit_u32(buffer, *v);
            }
            RfwAttr::RulesCheck => {}
            RfwAttr::RulesStats(nested) => nested.as_slice().emit(buffer),
            RfwAttr::StatsCounting(v) => emit_u8(buffer, *v),
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
            attr::CT_ORIG => {
                RfwAttr::CtOrig(parse_nlas(value).context("invalid RFW_ATTR_CT_ORIG")?)
            }
            attr::CT_REPLY => {
                RfwAttr::CtReply(parse_nlas(value).context("invalid RFW_ATTR_CT_REPLY")?)
            }
            attr::CT_STATUS => {
                RfwAttr::CtStatus(parse_u32(value).context("invalid RFW_ATTR_CT_STATUS")?)
            }
            attr::CT_TIMEOUT => {
                RfwAttr::CtTimeout(parse_u32(value).context("invalid RFW_ATTR_CT_TIMEOUT")?)
            }
            attr::CT_PROTO_STATE => {
                RfwAttr::CtProtoState(parse_u8(value).context("invalid RFW_ATTR_CT_PROTO_STATE")?)
            }
            attr::CT_COUNTERS_ORIG => RfwAttr::CtCountersOrig(
                parse_nlas(value).context("invalid RFW_ATTR_CT_COUNTERS_ORIG")?,
            ),
            attr::CT_COUNTERS_REPLY => RfwAttr::CtCountersReply(
                parse_nlas(value).context("invalid RFW_ATTR_CT_COUNTERS_REPLY")?,
            ),
            attr::CT_STATS => {
                RfwAttr::CtStats(parse_nlas(value).context("invalid RFW_ATTR_CT_STATS")?)
            }
            attr::CT_CONFIG => {
                RfwAttr::CtConfig(parse_nlas(value).context("invalid RFW_ATTR_CT_CONFIG")?)
            }
            attr::CT_COUNT => {
                RfwAttr::CtCount(parse_u64(value).context("invalid RFW_ATTR_CT_COUNT")?)
            }
            attr::RULES_TABLE => {
                RfwAttr::RulesTable(parse_nlas(value).context("invalid RFW_ATTR_RULES_TABLE")?)
            }
            attr::RULES_GENERATION => RfwAttr::RulesGeneration(
                parse_u32(value).context("invalid RFW_ATTR_RULES_GENERATION")?,
            ),
            attr::RULES_CHECK if value.is_empty() => RfwAttr::RulesCheck,
            attr::RULES_CHECK => {
                return Err(DecodeError::from(
                    "invalid RFW_ATTR_RULES_CHECK: a flag has no value",
                ))
            }
            attr::RULES_STATS => {
                RfwAttr::RulesStats(parse_nlas(value).context("invalid RFW_ATTR_RULES_STATS")?)
            }
            attr::STATS_COUNTING => {
                RfwAttr::StatsCounting(parse_u8(value).context("invalid RFW_ATTR_STATS_COUNTING")?)
            }
            _ => RfwAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// Writes one byte; `Emitable::emit` hands over exactly the value's length.
fn emit_u8(buffer: &mut [u8], v: u8) {
    if let Some(b) = buffer.first_mut() {
        *b = v;
    }
}

/// Writes a NUL-terminated string (`value_len` is `s.len() + 1`).
fn emit_cstr(buffer: &mut [u8], s: &str) {
    for (d, c) in buffer.iter_mut().zip(s.bytes().chain([0])) {
        *d = c;
    }
}

/// Attributes nested in [`attr::CT_ORIG`] and [`attr::CT_REPLY`]
/// ([`rfw_abi::ct_tuple`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtTupleAttr {
    /// [`ct_tuple::FAMILY`]: an [`rfw_abi::nfproto`] value.
    Family(u8),
    /// [`ct_tuple::PROTO`]: the IP protocol number.
    Proto(u8),
    /// [`ct_tuple::SRC`]: 4 bytes for IPv4, 16 for IPv6.
    Src(IpAddr),
    /// [`ct_tuple::DST`]: as [`CtTupleAttr::Src`].
    Dst(IpAddr),
    /// [`ct_tuple::SRC_PORT`]: host order; the ICMP identifier for ICMP.
    SrcPort(u16),
    /// [`ct_tuple::DST_PORT`]: host order; `type << 8 | code` for ICMP.
    DstPort(u16),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

fn ip_len(ip: &IpAddr) -> usize {
    match ip {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16,
    }
}

impl Nla for CtTupleAttr {
    fn value_len(&self) -> usize {
        match self {
            CtTupleAttr::Family(_) | CtTupleAttr::Proto(_) => 1,
            CtTupleAttr::Src(ip) | CtTupleAttr::Dst(ip) => ip_len(ip),
            CtTupleAttr::SrcPort(_) | CtTupleAttr::DstPort(_) => 2,
            CtTupleAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            CtTupleAttr::Family(_) => ct_tuple::FAMILY,
            CtTupleAttr::Proto(_) => ct_tuple::PROTO,
            CtTupleAttr::Src(_) => ct_tuple::SRC,
            CtTupleAttr::Dst(_) => ct_tuple::DST,
            CtTupleAttr::SrcPort(_) => ct_tuple::SRC_PORT,
            CtTupleAttr::DstPort(_) => ct_tuple::DST_PORT,
            CtTupleAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            CtTupleAttr::Family(v) | CtTupleAttr::Proto(v) => emit_u8(buffer, *v),
            CtTupleAttr::Src(ip) | CtTupleAttr::Dst(ip) => {
                let octets = match ip {
                    IpAddr::V4(a) => a.octets().to_vec(),
                    IpAddr::V6(a) => a.octets().to_vec(),
                };
                for (d, s) in buffer.iter_mut().zip(octets) {
                    *d = s;
                }
            }
            CtTupleAttr::SrcPort(v) | CtTupleAttr::DstPort(v) => {
                let _ = emit_u16(buffer, *v);
            }
            CtTupleAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for CtTupleAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            ct_tuple::FAMILY => {
                CtTupleAttr::Family(parse_u8(value).context("invalid CT_TUPLE_FAMILY")?)
            }
            ct_tuple::PROTO => {
                CtTupleAttr::Proto(parse_u8(value).context("invalid CT_TUPLE_PROTO")?)
            }
            ct_tuple::SRC => CtTupleAttr::Src(parse_ip(value).context("invalid CT_TUPLE_SRC")?),
            ct_tuple::DST => CtTupleAttr::Dst(parse_ip(value).context("invalid CT_TUPLE_DST")?),
            ct_tuple::SRC_PORT => {
                CtTupleAttr::SrcPort(parse_u16(value).context("invalid CT_TUPLE_SRC_PORT")?)
            }
            ct_tuple::DST_PORT => {
                CtTupleAttr::DstPort(parse_u16(value).context("invalid CT_TUPLE_DST_PORT")?)
            }
            _ => CtTupleAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// Attributes nested in [`attr::CT_COUNTERS_ORIG`] and
/// [`attr::CT_COUNTERS_REPLY`] ([`rfw_abi::ct_counters`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtCountersAttr {
    /// [`ct_counters::PAD`]: alignment filler before a u64, no value.
    Pad,
    /// [`ct_counters::PACKETS`].
    Packets(u64),
    /// [`ct_counters::BYTES`].
    Bytes(u64),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for CtCountersAttr {
    fn value_len(&self) -> usize {
        match self {
            CtCountersAttr::Pad => 0,
            CtCountersAttr::Packets(_) | CtCountersAttr::Bytes(_) => 8,
            CtCountersAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            CtCountersAttr::Pad => ct_counters::PAD,
            CtCountersAttr::Packets(_) => ct_counters::PACKETS,
            CtCountersAttr::Bytes(_) => ct_counters::BYTES,
            CtCountersAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            CtCountersAttr::Pad => {}
            CtCountersAttr::Packets(v) | CtCountersAttr::Bytes(v) => {
                let _ = emit_u64(buffer, *v);
            }
            CtCountersAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for CtCountersAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            ct_counters::PAD => CtCountersAttr::Pad,
            ct_counters::PACKETS => {
                CtCountersAttr::Packets(parse_u64(value).context("invalid CT_COUNTERS_PACKETS")?)
            }
            ct_counters::BYTES => {
                CtCountersAttr::Bytes(parse_u64(value).context("invalid CT_COUNTERS_BYTES")?)
            }
            _ => CtCountersAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// The u64 counters nested in [`attr::CT_STATS`]: the ABI's list.
pub use rfw_abi::ct_stats::Counter as CtCounter;

/// Attributes nested in [`attr::CT_STATS`] ([`rfw_abi::ct_stats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtStatsAttr {
    /// [`ct_stats::PAD`]: alignment filler before a u64, no value.
    Pad,
    /// One of the u64 counters.
    Counter(CtCounter, u64),
    /// [`ct_stats::INVALID_REASON`]: one reason packets were INVALID, nested.
    InvalidReason(Vec<CtReasonAttr>),
    /// [`ct_stats::MALFORMED_REASON`]: one kind of malformed packet, nested.
    MalformedReason(Vec<CtReasonAttr>),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for CtStatsAttr {
    fn value_len(&self) -> usize {
        match self {
            CtStatsAttr::Pad => 0,
            CtStatsAttr::Counter(..) => 8,
            CtStatsAttr::InvalidReason(nested) | CtStatsAttr::MalformedReason(nested) => {
                nested.as_slice().buffer_len()
            }
            CtStatsAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            CtStatsAttr::Pad => ct_stats::PAD,
            CtStatsAttr::Counter(c, _) => c.attr(),
            CtStatsAttr::InvalidReason(_) => ct_stats::INVALID_REASON | NLA_F_NESTED,
            CtStatsAttr::MalformedReason(_) => ct_stats::MALFORMED_REASON | NLA_F_NESTED,
            CtStatsAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            CtStatsAttr::Pad => {}
            CtStatsAttr::Counter(_, v) => {
                let _ = emit_u64(buffer, *v);
            }
            CtStatsAttr::InvalidReason(nested) | CtStatsAttr::MalformedReason(nested) => {
                nested.as_slice().emit(buffer)
            }
            CtStatsAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for CtStatsAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        let kind = buf.kind();
        if let Some(counter) = CtCounter::from_attr(kind) {
            let v = parse_u64(value)
                .with_context(|| format!("invalid CT_STATS counter {}", counter.name()))?;
            return Ok(CtStatsAttr::Counter(counter, v));
        }
        Ok(match kind {
            ct_stats::PAD => CtStatsAttr::Pad,
            ct_stats::INVALID_REASON => CtStatsAttr::InvalidReason(
                parse_nlas(value).context("invalid CT_STATS_INVALID_REASON")?,
            ),
            ct_stats::MALFORMED_REASON => CtStatsAttr::MalformedReason(
                parse_nlas(value).context("invalid CT_STATS_MALFORMED_REASON")?,
            ),
            _ => CtStatsAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// Attributes nested in [`ct_stats::INVALID_REASON`] and
/// [`ct_stats::MALFORMED_REASON`] ([`rfw_abi::ct_reason`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtReasonAttr {
    /// [`ct_reason::PAD`]: alignment filler before a u64, no value.
    Pad,
    /// [`ct_reason::NAME`]: the reason's snake_case name.
    Name(String),
    /// [`ct_reason::COUNT`]: packets.
    Count(u64),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for CtReasonAttr {
    fn value_len(&self) -> usize {
        match self {
            CtReasonAttr::Pad => 0,
            CtReasonAttr::Name(s) => s.len() + 1,
            CtReasonAttr::Count(_) => 8,
            CtReasonAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            CtReasonAttr::Pad => ct_reason::PAD,
            CtReasonAttr::Name(_) => ct_reason::NAME,
            CtReasonAttr::Count(_) => ct_reason::COUNT,
            CtReasonAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            CtReasonAttr::Pad => {}
            CtReasonAttr::Name(s) => emit_cstr(buffer, s),
            CtReasonAttr::Count(v) => {
                let _ = emit_u64(buffer, *v);
            }
            CtReasonAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for CtReasonAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            ct_reason::PAD => CtReasonAttr::Pad,
            ct_reason::NAME => {
                CtReasonAttr::Name(parse_string(value).context("invalid CT_REASON_NAME")?)
            }
            ct_reason::COUNT => {
                CtReasonAttr::Count(parse_u64(value).context("invalid CT_REASON_COUNT")?)
            }
            _ => CtReasonAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// Attributes nested in [`attr::CT_CONFIG`] ([`rfw_abi::ct_config`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtConfigAttr {
    /// [`ct_config::LIMIT`]: the entry limit.
    Limit(u32),
    /// [`ct_config::BUCKETS`]: hash buckets (read only).
    Buckets(u32),
    /// [`ct_config::TIMEOUT`]: one timeout, nested.
    Timeout(Vec<CtTimeoutAttr>),
    /// [`ct_config::TRACKING`]: when the namespace tracks connections
    /// ([`ct_config::TRACKING_AUTO`] or [`ct_config::TRACKING_ON`]).
    Tracking(u8),
    /// [`ct_config::ACTIVE`]: 1 when the namespace tracks now (read only).
    Active(u8),
    /// [`ct_config::CHECKSUM`]: 1 when checksums are verified at
    /// PRE_ROUTING, 0 when not.
    Checksum(u8),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for CtConfigAttr {
    fn value_len(&self) -> usize {
        match self {
            CtConfigAttr::Limit(_) | CtConfigAttr::Buckets(_) => 4,
            CtConfigAttr::Tracking(_) | CtConfigAttr::Active(_) | CtConfigAttr::Checksum(_) => 1,
            CtConfigAttr::Timeout(nested) => nested.as_slice().buffer_len(),
            CtConfigAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            CtConfigAttr::Limit(_) => ct_config::LIMIT,
            CtConfigAttr::Buckets(_) => ct_config::BUCKETS,
            CtConfigAttr::Timeout(_) => ct_config::TIMEOUT | NLA_F_NESTED,
            CtConfigAttr::Tracking(_) => ct_config::TRACKING,
            CtConfigAttr::Active(_) => ct_config::ACTIVE,
            CtConfigAttr::Checksum(_) => ct_config::CHECKSUM,
            CtConfigAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            CtConfigAttr::Limit(v) | CtConfigAttr::Buckets(v) => {
                let _ = emit_u32(buffer, *v);
            }
            CtConfigAttr::Timeout(nested) => nested.as_slice().emit(buffer),
            CtConfigAttr::Tracking(v) | CtConfigAttr::Active(v) | CtConfigAttr::Checksum(v) => {
                emit_u8(buffer, *v)
            }
            CtConfigAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for CtConfigAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            ct_config::LIMIT => {
                CtConfigAttr::Limit(parse_u32(value).context("invalid CT_CONFIG_LIMIT")?)
            }
            ct_config::BUCKETS => {
                CtConfigAttr::Buckets(parse_u32(value).context("invalid CT_CONFIG_BUCKETS")?)
            }
            ct_config::TIMEOUT => {
                CtConfigAttr::Timeout(parse_nlas(value).context("invalid CT_CONFIG_TIMEOUT")?)
            }
            ct_config::TRACKING => {
                CtConfigAttr::Tracking(parse_u8(value).context("invalid CT_CONFIG_TRACKING")?)
            }
            ct_config::ACTIVE => {
                CtConfigAttr::Active(parse_u8(value).context("invalid CT_CONFIG_ACTIVE")?)
            }
            ct_config::CHECKSUM => {
                CtConfigAttr::Checksum(parse_u8(value).context("invalid CT_CONFIG_CHECKSUM")?)
            }
            _ => CtConfigAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// Attributes nested in [`ct_config::TIMEOUT`] ([`rfw_abi::ct_timeout`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtTimeoutAttr {
    /// [`ct_timeout::NAME`]: one of [`ct_timeout::NAMES`].
    Name(String),
    /// [`ct_timeout::MS`]: milliseconds.
    Ms(u32),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for CtTimeoutAttr {
    fn value_len(&self) -> usize {
        match self {
            CtTimeoutAttr::Name(s) => s.len() + 1,
            CtTimeoutAttr::Ms(_) => 4,
            CtTimeoutAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            CtTimeoutAttr::Name(_) => ct_timeout::NAME,
            CtTimeoutAttr::Ms(_) => ct_timeout::MS,
            CtTimeoutAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            CtTimeoutAttr::Name(s) => emit_cstr(buffer, s),
            CtTimeoutAttr::Ms(v) => {
                let _ = emit_u32(buffer, *v);
            }
            CtTimeoutAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for CtTimeoutAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            ct_timeout::NAME => {
                CtTimeoutAttr::Name(parse_string(value).context("invalid CT_TIMEOUT_NAME")?)
            }
            ct_timeout::MS => CtTimeoutAttr::Ms(parse_u32(value).context("invalid CT_TIMEOUT_MS")?),
            _ => CtTimeoutAttr::Other(DefaultNla::parse(buf)?),
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
    /// [`hook_stats::HOOK`]: an [`nat::rule::Hook`] number.
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
    /// [`nat::rule::Hook`] number.
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

/// Attributes nested in [`attr::RULES_TABLE`] ([`rfw_abi::rules_table`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulesTableAttr {
    /// [`rules_table::KIND`]: 0 filter, 1 nat, 2 mangle (the kernel sends it).
    Kind(u8),
    /// [`rules_table::BLOB`]: the table in `nat::codec`'s binary form.
    Blob(Vec<u8>),
    /// [`rules_table::COUNTERS`]: `packets: u64, bytes: u64` little-endian
    /// per entry, in entry order.
    Counters(Vec<u8>),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for RulesTableAttr {
    fn value_len(&self) -> usize {
        match self {
            RulesTableAttr::Kind(_) => 1,
            RulesTableAttr::Blob(b) | RulesTableAttr::Counters(b) => b.len(),
            RulesTableAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            RulesTableAttr::Kind(_) => rules_table::KIND,
            RulesTableAttr::Blob(_) => rules_table::BLOB,
            RulesTableAttr::Counters(_) => rules_table::COUNTERS,
            RulesTableAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            RulesTableAttr::Kind(v) => emit_u8(buffer, *v),
            RulesTableAttr::Blob(b) | RulesTableAttr::Counters(b) => {
                for (d, s) in buffer.iter_mut().zip(b) {
                    *d = *s;
                }
            }
            RulesTableAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for RulesTableAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            rules_table::KIND => {
                RulesTableAttr::Kind(parse_u8(value).context("invalid RULES_TABLE_KIND")?)
            }
            rules_table::BLOB => RulesTableAttr::Blob(value.to_vec()),
            rules_table::COUNTERS => RulesTableAttr::Counters(value.to_vec()),
            _ => RulesTableAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// The counters nested in [`attr::RULES_STATS`]: the ABI's list.
pub use rfw_abi::rules_stats::Counter as RulesCounter;

/// Attributes nested in [`attr::RULES_STATS`] ([`rfw_abi::rules_stats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulesStatsAttr {
    /// [`rules_stats::PAD`]: alignment filler before a u64, no value.
    Pad,
    /// One of the u64 counters.
    Counter(RulesCounter, u64),
    /// Anything else, kept as it came.
    Other(DefaultNla),
}

impl Nla for RulesStatsAttr {
    fn value_len(&self) -> usize {
        match self {
            RulesStatsAttr::Pad => 0,
            RulesStatsAttr::Counter(..) => 8,
            RulesStatsAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            RulesStatsAttr::Pad => rules_stats::PAD,
            RulesStatsAttr::Counter(c, _) => c.attr(),
            RulesStatsAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            RulesStatsAttr::Pad => {}
            RulesStatsAttr::Counter(_, v) => {
                let _ = emit_u64(buffer, *v);
            }
            RulesStatsAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for RulesStatsAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        let kind = buf.kind();
        if let Some(counter) = RulesCounter::from_attr(kind) {
            let v = parse_u64(value)
                .with_context(|| format!("invalid RULES_STATS counter {}", counter.name()))?;
            return Ok(RulesStatsAttr::Counter(counter, v));
        }
        Ok(match kind {
            rules_stats::PAD => RulesStatsAttr::Pad,
            _ => RulesStatsAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use nat::rule::Hook;
    use netlink_packet_core::{
        NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
    };
    use netlink_packet_generic::GenlMessage;
    use rfw_abi::nfproto;

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
                hook: Hook::Prerouting as u8,
                packets: 3,
                bytes: 180,
            },
            HookStats {
                family: nfproto::IPV6,
                hook: Hook::Postrouting as u8,
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

    /// A RulesGet reply as the kernel lays it out (u8 KIND padded, blobs of
    /// any length padded, a padded u64 in RULES_STATS) parses to typed
    /// attributes and emits back byte for byte.
    #[test]
    fn rules_attributes_parse_and_emit_back() {
        let mut skb = Skb::new(true);
        let start = skb.genlmsg_put(PORT, SEQ, FAMILY_ID, 0, Cmd::RulesGet as u8, 1);
        skb.nla_put_u32(attr::RULES_GENERATION, 7);
        let nest = skb.nla_nest_start(attr::RULES_TABLE);
        skb.nla_put_u8(rules_table::KIND, 1);
        skb.nla_put(rules_table::BLOB, b"RFWT\x02");
        skb.nla_put(rules_table::COUNTERS, &[9; 16]);
        skb.nla_nest_end(nest);
        let nest = skb.nla_nest_start(attr::RULES_STATS);
        skb.nla_put_u64_64bit(rules_stats::LOGGED, 5, rules_stats::PAD);
        skb.nla_put_u64_64bit(rules_stats::MAX + 1, 6, rules_stats::PAD);
        skb.nla_nest_end(nest);
        skb.nla_put(attr::RULES_CHECK, &[]);
        skb.nlmsg_end(start);

        let msg = parse(&skb.data);
        assert_eq!(emit(&msg), skb.data);
        let NetlinkPayload::InnerMessage(genl) = msg.payload else {
            panic!()
        };
        let attrs = &genl.payload.attrs;
        assert_eq!(attrs[0], RfwAttr::RulesGeneration(7));
        assert_eq!(
            attrs[1],
            RfwAttr::RulesTable(vec![
                RulesTableAttr::Kind(1),
                RulesTableAttr::Blob(b"RFWT\x02".to_vec()),
                RulesTableAttr::Counters(vec![9; 16]),
            ])
        );
        let RfwAttr::RulesStats(stats) = &attrs[2] else {
            panic!("{:?}", attrs[2])
        };
        assert!(stats.contains(&RulesStatsAttr::Counter(RulesCounter::Logged, 5)));
        assert!(matches!(stats.last(), Some(RulesStatsAttr::Other(_))));
        assert_eq!(attrs[3], RfwAttr::RulesCheck);

        // A flag with a value is malformed.
        let mut skb = Skb::new(false);
        let start = skb.genlmsg_put(PORT, SEQ, FAMILY_ID, 0, Cmd::RulesGet as u8, 1);
        skb.nla_put_u8(attr::RULES_CHECK, 1);
        skb.nlmsg_end(start);
        assert!(NetlinkMessage::<GenlMessage<RfwMessage>>::deserialize(&skb.data).is_err());
        // (That every counter has its own attribute and name is the ABI
        // crate's test.)
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
