//! How `fwctl ct` prints: connections as `conntrack -L` does, statistics and
//! settings as aligned `name value` lines, and JSON for each.

use std::{fmt::Write as _, net::IpAddr};

use serde::{ser::SerializeMap, Serialize, Serializer};

use super::{
    proto_name, Checksum, Conn, Counters, CtConfig, CtStats, CtTuple, L4Kind, Reason, Timeout,
    Tracking,
};
use crate::error::Error;

/// A TCP state's name as `conntrack -L` prints it; `UNKNOWN` for a number
/// [`rfw_abi::tcp_state::NAMES`] does not have.
pub fn tcp_state_name(state: u8) -> &'static str {
    rfw_abi::tcp_state::NAMES
        .get(usize::from(state))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// Milliseconds as seconds: whole seconds without a point, otherwise up to
/// three decimals without trailing zeros (`120`, `0.5`, `1.234`).
pub fn seconds(ms: u32) -> String {
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        return s.to_string();
    }
    let frac = format!("{frac:03}");
    format!("{s}.{}", frac.trim_end_matches('0'))
}

fn tuple_fields(out: &mut String, t: &CtTuple, c: &Counters) {
    let _ = write!(out, " src={} dst={}", t.src, t.dst);
    match L4Kind::of(t.proto) {
        L4Kind::Ports => {
            let _ = write!(out, " sport={} dport={}", t.src_port, t.dst_port);
        }
        L4Kind::Icmp => {
            let _ = write!(
                out,
                " type={} code={} id={}",
                t.icmp_type(),
                t.icmp_code(),
                t.icmp_id()
            );
        }
        L4Kind::None => {}
    }
    let _ = write!(out, " packets={} bytes={}", c.packets, c.bytes);
}

/// One connection as `conntrack -L` prints it, without `mark=` and `use=`
/// (rfw has neither) and without a newline:
///
/// `tcp      6 431999 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000
/// dport=5201 packets=10 bytes=800 src=10.0.2.2 dst=10.0.1.2 sport=5201
/// dport=40000 packets=8 bytes=600 [ASSURED]`
///
/// The protocol name padded to 8 and its number; the timeout in whole
/// seconds (rounded down); the TCP state, for TCP; the original tuple and
/// its counters; `[UNREPLIED]` if no reply was seen; the reply tuple and its
/// counters; `[OFFLOAD]` if the flow is in the fast path, else `[ASSURED]` if
/// assured (an offloaded flow's ASSURED is not shown, as by `conntrack -L`
/// and `/proc/net/nf_conntrack`). ICMP tuples show `type= code= id=`
/// instead of ports (each direction its own type), protocols without ports
/// neither.
pub fn conntrack_line(c: &Conn) -> String {
    let mut out = String::with_capacity(192);
    let _ = write!(
        out,
        "{:<8} {} {}",
        proto_name(c.orig.proto),
        c.orig.proto,
        c.timeout_ms / 1000
    );
    if let Some(state) = c.tcp_state {
        let _ = write!(out, " {}", tcp_state_name(state));
    }
    tuple_fields(&mut out, &c.orig, &c.orig_counters);
    if !c.seen_reply() {
        out.push_str(" [UNREPLIED]");
    }
    tuple_fields(&mut out, &c.reply, &c.reply_counters);
    if c.offloaded() {
        out.push_str(" [OFFLOAD]");
    } else if c.assured() {
        out.push_str(" [ASSURED]");
    }
    out
}

/// The bracketed flags of [`conntrack_line`], in its order.
pub fn flags(c: &Conn) -> Vec<&'static str> {
    let mut f = Vec::new();
    if !c.seen_reply() {
        f.push("UNREPLIED");
    }
    if c.offloaded() {
        f.push("OFFLOAD");
    } else if c.assured() {
        f.push("ASSURED");
    }
    f
}

#[derive(Serialize)]
struct TupleJson {
    src: IpAddr,
    dst: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    sport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dport: Option<u16>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u16>,
    packets: u64,
    bytes: u64,
}

impl TupleJson {
    fn new(t: &CtTuple, c: &Counters) -> Self {
        let kind = L4Kind::of(t.proto);
        let ports = kind == L4Kind::Ports;
        let icmp = kind == L4Kind::Icmp;
        TupleJson {
            src: t.src,
            dst: t.dst,
            sport: ports.then_some(t.src_port),
            dport: ports.then_some(t.dst_port),
            icmp_type: icmp.then(|| t.icmp_type()),
            code: icmp.then(|| t.icmp_code()),
            id: icmp.then(|| t.icmp_id()),
            packets: c.packets,
            bytes: c.bytes,
        }
    }
}

#[derive(Serialize)]
struct ConnJson {
    proto: &'static str,
    proto_num: u8,
    state: Option<&'static str>,
    timeout_s: u32,
    orig: TupleJson,
    reply: TupleJson,
    flags: Vec<&'static str>,
    status: u32,
}

/// One connection as a JSON object, on one line:
///
/// `{"proto":"tcp","proto_num":6,"state":"ESTABLISHED","timeout_s":431999,
/// "orig":{"src":"10.0.1.2","dst":"10.0.2.2","sport":40000,"dport":5201,
/// "packets":10,"bytes":800},"reply":{...},"flags":["ASSURED"],"status":14}`
///
/// `state` is null but for TCP; a tuple has `sport`/`dport` for protocols
/// with ports, `type`/`code`/`id` for ICMP, neither for others. `flags` are
/// those [`conntrack_line`] shows in brackets; `status` the raw bits.
pub fn conn_json(c: &Conn) -> Result<String, Error> {
    let j = ConnJson {
        proto: proto_name(c.orig.proto),
        proto_num: c.orig.proto,
        state: c.tcp_state.map(tcp_state_name),
        timeout_s: c.timeout_ms / 1000,
        orig: TupleJson::new(&c.orig, &c.orig_counters),
        reply: TupleJson::new(&c.reply, &c.reply_counters),
        flags: flags(c),
        status: c.status,
    };
    json(&j)
}

fn json(v: &impl Serialize) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::protocol("encoding JSON", e))
}

/// `name value` lines: names left-aligned, values right-aligned, two spaces
/// between, each line ending in a newline.
pub fn aligned(rows: &[(String, String)]) -> String {
    let wn = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let wv = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (n, v) in rows {
        let _ = writeln!(out, "{n:<wn$}  {v:>wv$}");
    }
    out
}

/// `fwctl ct stats`: every counter in [`CtStats::counters`] order, then
/// `invalid.<reason>` and `malformed.<kind>` for each nonzero one, in the
/// kernel's order, all aligned.
pub fn stats_table(s: &CtStats) -> String {
    let mut rows: Vec<(String, String)> = s
        .counters()
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.to_string()))
        .collect();
    for (prefix, reasons) in [("invalid", &s.invalid_reasons), ("malformed", &s.malformed)] {
        for r in reasons.iter().filter(|r| r.count != 0) {
            rows.push((format!("{prefix}.{}", r.name), r.count.to_string()));
        }
    }
    aligned(&rows)
}

/// Reasons as a JSON object, in the kernel's order.
struct ReasonsJson<'a>(&'a [Reason]);

impl Serialize for ReasonsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for r in self.0 {
            m.serialize_entry(&r.name, &r.count)?;
        }
        m.end()
    }
}

struct StatsJson<'a>(&'a CtStats);

impl Serialize for StatsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let counters = self.0.counters();
        let mut m = s.serialize_map(Some(counters.len() + 2))?;
        for (name, v) in counters {
            m.serialize_entry(name, &v)?;
        }
        m.serialize_entry("invalid_reasons", &ReasonsJson(&self.0.invalid_reasons))?;
        m.serialize_entry("malformed_reasons", &ReasonsJson(&self.0.malformed))?;
        m.end()
    }
}

/// `fwctl -o json ct stats`: one line, `{"count":..,..,"unconfirmed_reaped":..,
/// "invalid_reasons":{"<name>":N,..},"malformed_reasons":{..}}`, every
/// reason the kernel sent (zeros too).
pub fn stats_json(s: &CtStats) -> Result<String, Error> {
    json(&StatsJson(s))
}

/// The `tracking:` line of [`config_table`], without its newline:
/// `tracking: auto (active)`, `tracking: on (active)`, `tracking: auto
/// (inactive: no rules loaded)`; just `tracking: MODE` when the kernel did
/// not say whether it tracks now. `None` when it did not send the mode.
pub fn tracking_line(c: &CtConfig) -> Option<String> {
    let mode = c.tracking?;
    let state = match (mode, c.active) {
        (_, None) => "",
        (_, Some(true)) => " (active)",
        (Tracking::Auto, Some(false)) => " (inactive: no rules loaded)",
        (Tracking::On, Some(false)) => " (inactive)",
    };
    Some(format!("tracking: {}{state}", mode.name()))
}

/// `fwctl ct timeout`, `fwctl ct tracking`, `fwctl ct checksum`: the
/// [`tracking_line`] (when the kernel sent the mode), `checksum: on|off`
/// (when the kernel sent it), then `limit N`, `buckets N` (when the kernel
/// sent them) and `NAME SECONDS` per timeout ([`seconds`]), aligned.
pub fn config_table(c: &CtConfig) -> String {
    let head = tracking_line(c).map_or_else(String::new, |l| l + "\n");
    let checksum = c
        .checksum
        .map_or_else(String::new, |v| format!("checksum: {}\n", v.name()));
    head + &checksum + &config_rows(c)
}

fn config_rows(c: &CtConfig) -> String {
    let mut rows = Vec::new();
    if let Some(l) = c.limit {
        rows.push(("limit".to_owned(), l.to_string()));
    }
    if let Some(b) = c.buckets {
        rows.push(("buckets".to_owned(), b.to_string()));
    }
    for t in &c.timeouts {
        rows.push((t.name.clone(), seconds(t.ms)));
    }
    aligned(&rows)
}

struct TimeoutsJson<'a>(&'a [Timeout]);

impl Serialize for TimeoutsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for t in self.0 {
            m.serialize_entry(&t.name, &t.ms)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct ConfigJson<'a> {
    tracking: Option<&'static str>,
    active: Option<bool>,
    limit: Option<u32>,
    buckets: Option<u32>,
    checksum: Option<bool>,
    timeouts_ms: TimeoutsJson<'a>,
}

/// `fwctl -o json ct timeout`, `fwctl -o json ct tracking`, `fwctl -o json
/// ct checksum`: one line, `{"tracking":"auto"|"on","active":true|false,
/// "limit":N,"buckets":N,"checksum":true|false,"timeouts_ms":{"<name>":MS,
/// ..}}`, timeouts in milliseconds; what the kernel did not send is null.
pub fn config_json(c: &CtConfig) -> Result<String, Error> {
    json(&ConfigJson {
        tracking: c.tracking.map(Tracking::name),
        active: c.active,
        limit: c.limit,
        buckets: c.buckets,
        checksum: c.checksum.map(Checksum::is_on),
        timeouts_ms: TimeoutsJson(&c.timeouts),
    })
}

#[cfg(test)]
mod tests {
    use rfw_abi::ct_status::{ASSURED, CONFIRMED, OFFLOAD, SEEN_REPLY};

    use super::*;

    fn tcp() -> Conn {
        let orig = CtTuple {
            proto: 6,
            src: "10.0.1.2".parse().unwrap(),
            dst: "10.0.2.2".parse().unwrap(),
            src_port: 40000,
            dst_port: 5201,
        };
        Conn {
            orig,
            reply: CtTuple {
                src: orig.dst,
                dst: orig.src,
                src_port: 5201,
                dst_port: 40000,
                ..orig
            },
            status: SEEN_REPLY | ASSURED | CONFIRMED,
            timeout_ms: 431_999_999,
            tcp_state: Some(3),
            orig_counters: Counters {
                packets: 10,
                bytes: 800,
            },
            reply_counters: Counters {
                packets: 8,
                bytes: 600,
            },
        }
    }

    #[test]
    fn the_brief_s_example_line() {
        assert_eq!(
            conntrack_line(&tcp()),
            "tcp      6 431999 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=5201 \
             packets=10 bytes=800 src=10.0.2.2 dst=10.0.1.2 sport=5201 dport=40000 packets=8 \
             bytes=600 [ASSURED]"
        );
        assert_eq!(
            conn_json(&tcp()).unwrap(),
            r#"{"proto":"tcp","proto_num":6,"state":"ESTABLISHED","timeout_s":431999,"orig":{"src":"10.0.1.2","dst":"10.0.2.2","sport":40000,"dport":5201,"packets":10,"bytes":800},"reply":{"src":"10.0.2.2","dst":"10.0.1.2","sport":5201,"dport":40000,"packets":8,"bytes":600},"flags":["ASSURED"],"status":14}"#
        );
    }

    #[test]
    fn an_offloaded_flow_shows_offload_where_assured_was() {
        // As conntrack -L: [OFFLOAD] takes [ASSURED]'s place.
        let mut c = tcp();
        c.status |= OFFLOAD;
        assert_eq!(
            conntrack_line(&c),
            "tcp      6 431999 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=5201 \
             packets=10 bytes=800 src=10.0.2.2 dst=10.0.1.2 sport=5201 dport=40000 packets=8 \
             bytes=600 [OFFLOAD]"
        );
        assert_eq!(flags(&c), ["OFFLOAD"]);
        assert!(conn_json(&c)
            .unwrap()
            .ends_with(r#""flags":["OFFLOAD"],"status":16398}"#));
        // Without ASSURED too; and UNREPLIED keeps its place.
        c.status = OFFLOAD | CONFIRMED;
        let line = conntrack_line(&c);
        assert!(
            line.contains("bytes=800 [UNREPLIED] src=10.0.2.2"),
            "{line}"
        );
        assert!(line.ends_with("bytes=600 [OFFLOAD]"), "{line}");
        assert_eq!(flags(&c), ["UNREPLIED", "OFFLOAD"]);
    }

    #[test]
    fn unknown_protocol_and_state() {
        let mut c = tcp();
        c.orig.proto = 253;
        c.reply.proto = 253;
        c.tcp_state = Some(42);
        c.status = 0;
        c.timeout_ms = 999;
        assert_eq!(
            conntrack_line(&c),
            "unknown  253 0 UNKNOWN src=10.0.1.2 dst=10.0.2.2 packets=10 bytes=800 [UNREPLIED] \
             src=10.0.2.2 dst=10.0.1.2 packets=8 bytes=600"
        );
        // A name longer than the column pushes the number right.
        c.orig.proto = 136;
        c.tcp_state = None;
        assert!(conntrack_line(&c).starts_with("udplite  136 0 src="));
    }

    #[test]
    fn seconds_keep_up_to_three_decimals() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(1), "0.001");
        assert_eq!(seconds(500), "0.5");
        assert_eq!(seconds(1230), "1.23");
        assert_eq!(seconds(120_000), "120");
        assert_eq!(seconds(u32::MAX), "4294967.295");
    }

    #[test]
    fn tracking_line_and_json() {
        let mut c = CtConfig {
            limit: Some(10),
            ..CtConfig::default()
        };
        assert_eq!(tracking_line(&c), None);
        assert_eq!(config_table(&c), "limit  10\n");
        for (mode, active, line, j) in [
            (
                Tracking::Auto,
                Some(true),
                "tracking: auto (active)",
                r#""auto","active":true"#,
            ),
            (
                Tracking::Auto,
                Some(false),
                "tracking: auto (inactive: no rules loaded)",
                r#""auto","active":false"#,
            ),
            (
                Tracking::On,
                Some(true),
                "tracking: on (active)",
                r#""on","active":true"#,
            ),
            (
                Tracking::On,
                Some(false),
                "tracking: on (inactive)",
                r#""on","active":false"#,
            ),
            (Tracking::On, None, "tracking: on", r#""on","active":null"#),
        ] {
            c.tracking = Some(mode);
            c.active = active;
            assert_eq!(tracking_line(&c).as_deref(), Some(line));
            assert_eq!(config_table(&c), format!("{line}\nlimit  10\n"));
            assert_eq!(
                config_json(&c).unwrap(),
                format!(
                    r#"{{"tracking":{j},"limit":10,"buckets":null,"checksum":null,"timeouts_ms":{{}}}}"#
                )
            );
        }
    }

    #[test]
    fn aligned_rows() {
        let rows = [
            ("a".to_owned(), "1".to_owned()),
            ("bbb".to_owned(), "22".to_owned()),
        ];
        assert_eq!(aligned(&rows), "a     1\nbbb  22\n");
        assert_eq!(aligned(&[]), "");
    }
}
