//! The ruleset: rfw's `filter`, `nat` and `mangle` tables as the kernel
//! holds them, read with [`Cmd::RulesGet`] and replaced, all tables of a
//! request or none, with [`Cmd::RulesReplace`].
//!
//! * [`Installed`]: what `RulesGet` returned (generation, tables with their
//!   counters and handles).
//! * [`replace`]: one `RulesReplace` of whole tables, with or without
//!   counters, a generation to check, or `RULES_CHECK`.
//! * [`edit_table`]: read-modify-write of one table, retried when another
//!   replace came in between (`EAGAIN`).
//! * [`edit`]: the edits themselves (add, insert, delete, flush, policy,
//!   chains), on a [`TableSpec`].
//! * [`mod@format`]: `list` and `rules stats` output.
//!
//! Tables travel in `nat::codec`'s binary form; fwctl validates them with
//! the kernel's own decoder (`TableSpec::validate`) before sending, so a
//! bad rule is refused with the kernel's reason and without any traffic
//! that changes something.

pub mod edit;
pub mod format;

use nat::{
    codec,
    rule::{proto, Counter, TableKind},
    spec::{Ruleset, TableSpec},
};
use rfw_abi::{rules_table, Cmd};

use crate::{
    error::{Error, EAGAIN},
    netlink::{Client, Transport},
    rfw_msg::{describe, RfwAttr, RfwMessage, RulesCounter, RulesStatsAttr, RulesTableAttr},
};

/// How many times an edit is tried when other replaces keep coming in
/// between its read and its write.
pub const EDIT_ATTEMPTS: usize = 5;

/// The largest payload of one netlink attribute (`nla_len` is a u16 that
/// counts the 4-byte header too).
pub const NLA_PAYLOAD_MAX: usize = u16::MAX as usize - 4;

/// The largest blob one [`rfw_abi::attr::RULES_TABLE`] can carry: the
/// nest's payload less the blob attribute's header, 4-aligned.
pub const BLOB_WIRE_MAX: usize = (NLA_PAYLOAD_MAX - 4) & !3;

/// The ruleset as `RulesGet` returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// The generation, to send back with a replace built on this.
    pub generation: u32,
    /// The tables ever loaded, in [`TableKind::ALL`] order, with their
    /// counters and handles.
    pub tables: Vec<TableSpec>,
}

impl Installed {
    /// Reads the namespace's ruleset.
    pub fn fetch<T: Transport>(client: &mut Client<T>) -> Result<Installed, Error> {
        let request = RfwMessage::rules_get();
        let what = describe(request.cmd);
        let replies = client.request(request)?;
        Installed::from_replies(&replies).map_err(|e| Error::protocol(what, e))
    }

    /// The ruleset of a `RulesGet` reply.
    pub fn from_replies(replies: &[RfwMessage]) -> Result<Installed, String> {
        let mut generation = None;
        let mut tables: Vec<TableSpec> = Vec::new();
        for a in replies.iter().flat_map(|m| m.attrs.iter()) {
            match a {
                RfwAttr::RulesGeneration(g) => generation = Some(*g),
                RfwAttr::RulesTable(nested) => {
                    let t = table_from_wire(nested)?;
                    if tables.iter().any(|x| x.kind == t.kind) {
                        return Err(format!("table {} sent twice", t.kind));
                    }
                    tables.push(t);
                }
                _ => {}
            }
        }
        tables.sort_by_key(|t| t.kind as u8);
        Ok(Installed {
            generation: generation.ok_or("reply without RULES_GENERATION")?,
            tables,
        })
    }

    /// The installed table of `kind`, if it was ever loaded.
    pub fn table(&self, kind: TableKind) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.kind == kind)
    }

    /// The table of `kind`; one never loaded is empty with ACCEPT policies.
    pub fn table_or_new(&self, kind: TableKind) -> TableSpec {
        self.table(kind)
            .cloned()
            .unwrap_or_else(|| TableSpec::new(kind))
    }

    /// The loaded tables as a ruleset (what `fwctl save` prints).
    pub fn ruleset(&self) -> Ruleset {
        Ruleset {
            tables: self.tables.clone(),
        }
    }
}

/// One [`RfwAttr::RulesTable`] from the kernel: its blob decoded (and
/// validated) by this fwctl's `nat`, its counters put in.
fn table_from_wire(attrs: &[RulesTableAttr]) -> Result<TableSpec, String> {
    let (mut kind, mut blob, mut counters) = (None, None, None);
    for a in attrs {
        match a {
            RulesTableAttr::Kind(k) => kind = Some(*k),
            RulesTableAttr::Blob(b) => blob = Some(b),
            RulesTableAttr::Counters(c) => counters = Some(c),
            RulesTableAttr::Other(_) => {}
        }
    }
    let blob = blob.ok_or("RULES_TABLE without BLOB")?;
    let mut t = TableSpec::decode(blob).map_err(|e| {
        // The header's table byte, whatever the version says.
        let name = blob
            .get(6)
            .and_then(|&c| TableKind::from_code(c))
            .map(|k| format!("{k} table"))
            .unwrap_or_else(|| "a table".to_owned());
        format!("{name} from the kernel does not decode: {e}")
    })?;
    if let Some(k) = kind {
        if k != t.kind as u8 {
            return Err(format!("RULES_TABLE_KIND {k} with a {} table", t.kind));
        }
    }
    if let Some(c) = counters {
        let c = counters_from_bytes(c)?;
        if c.len() > t.entry_count() {
            return Err(format!(
                "{} counters for the {} entries of the {} table",
                c.len(),
                t.entry_count(),
                t.kind
            ));
        }
        t.set_counters(&c);
    }
    Ok(t)
}

/// [`rules_table::COUNTERS`] as counters.
pub fn counters_from_bytes(b: &[u8]) -> Result<Vec<Counter>, String> {
    let n = rules_table::COUNTER_BYTES;
    if b.len() % n != 0 {
        return Err(format!("RULES_TABLE_COUNTERS of {} bytes", b.len()));
    }
    Ok(b.chunks_exact(n)
        .map(|c| {
            let (p, by) = c.split_at(8);
            let u = |x: &[u8]| u64::from_le_bytes(x.try_into().unwrap_or([0; 8]));
            Counter {
                packets: u(p),
                bytes: u(by),
            }
        })
        .collect())
}

/// Counters as [`rules_table::COUNTERS`].
pub fn counters_to_bytes(c: &[Counter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(c.len() * rules_table::COUNTER_BYTES);
    for x in c {
        out.extend_from_slice(&x.packets.to_le_bytes());
        out.extend_from_slice(&x.bytes.to_le_bytes());
    }
    out
}

/// One table as a [`RfwAttr::RulesTable`]: its blob and, if `counters`,
/// its counters in entry order. Trailing zero counters are left out (the
/// kernel zeroes what is not sent). A blob too big for one netlink
/// attribute is an error; counters that do not all fit next to it are cut
/// (the rest start from zero) with a warning in `warnings`.
pub fn wire_table(
    t: &TableSpec,
    counters: bool,
    warnings: &mut Vec<String>,
) -> Result<RfwAttr, Error> {
    let blob = t
        .encode()
        .map_err(|e| Error::Rules(format!("{}: {e}", t.kind)))?;
    if blob.len() > BLOB_WIRE_MAX {
        return Err(Error::Rules(format!(
            "{}: the table is {} bytes in binary form, more than the {} one netlink \
             attribute carries (rfw ABI limit); split it into user chains of fewer rules \
             or use fewer rules",
            t.kind,
            blob.len(),
            BLOB_WIRE_MAX
        )));
    }
    let mut nest = vec![RulesTableAttr::Blob(blob)];
    if counters {
        let mut c = t.counters();
        while c.last() == Some(&Counter::default()) {
            c.pop();
        }
        // Room left in the nest: its payload less the blob attribute
        // (header and padding) and the counters attribute's header.
        let used = 4 + nest_blob_len(&nest);
        let room = NLA_PAYLOAD_MAX.saturating_sub(used + 4) / rules_table::COUNTER_BYTES;
        if c.len() > room {
            let lost = c.len() - room;
            c.truncate(room);
            warnings.push(format!(
                "{}: the counters of the last {lost} entries do not fit in the netlink \
                 request with the table and start again from zero",
                t.kind
            ));
        }
        if !c.is_empty() {
            nest.push(RulesTableAttr::Counters(counters_to_bytes(&c)));
        }
    }
    Ok(RfwAttr::RulesTable(nest))
}

fn nest_blob_len(nest: &[RulesTableAttr]) -> usize {
    nest.iter()
        .map(|a| match a {
            RulesTableAttr::Blob(b) => b.len().next_multiple_of(4),
            _ => 0,
        })
        .sum()
}

/// What a [`replace`] sends besides the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReplaceOptions {
    /// The generation the tables were built on (`EAGAIN` if it changed).
    pub generation: Option<u32>,
    /// `RULES_CHECK`: the kernel validates and installs nothing.
    pub check: bool,
    /// Send each table's counters.
    pub counters: bool,
}

/// One `RulesReplace` of `tables` (all installed or none). Returns the
/// generation the kernel answered and warnings for stderr.
pub fn replace<T: Transport>(
    client: &mut Client<T>,
    tables: &[TableSpec],
    opts: ReplaceOptions,
) -> Result<(u32, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let mut attrs = Vec::with_capacity(tables.len() + 2);
    for t in tables {
        attrs.push(wire_table(t, opts.counters, &mut warnings)?);
    }
    if let Some(g) = opts.generation {
        attrs.push(RfwAttr::RulesGeneration(g));
    }
    if opts.check {
        attrs.push(RfwAttr::RulesCheck);
    }
    let request = RfwMessage::new(Cmd::RulesReplace, attrs);
    let what = describe(request.cmd);
    let replies = client.request(request)?;
    let generation = replies
        .iter()
        .flat_map(|m| m.attrs.iter())
        .find_map(|a| match a {
            RfwAttr::RulesGeneration(g) => Some(*g),
            _ => None,
        })
        .ok_or_else(|| Error::protocol(what, "reply without RULES_GENERATION"))?;
    Ok((generation, warnings))
}

/// Removes the table of `kind` from the namespace (one `RulesReplace`
/// whose table carries only its kind); returns the new generation.
pub fn unload<T: Transport>(client: &mut Client<T>, kind: TableKind) -> Result<u32, Error> {
    let request = RfwMessage::new(
        Cmd::RulesReplace,
        vec![RfwAttr::RulesTable(vec![RulesTableAttr::Kind(kind as u8)])],
    );
    let what = describe(request.cmd);
    client
        .request(request)?
        .iter()
        .flat_map(|m| m.attrs.iter())
        .find_map(|a| match a {
            RfwAttr::RulesGeneration(g) => Some(*g),
            _ => None,
        })
        .ok_or_else(|| Error::protocol(what, "reply without RULES_GENERATION"))
}

/// Read-modify-write of the table of `kind`: reads the ruleset, applies
/// `op` to the table (a never loaded one starts empty), validates it as
/// the kernel will, and replaces it with the generation read and the
/// counters re-indexed to the new entry order (rules that stay keep
/// theirs, new rules start at zero). When another replace came in between
/// (`EAGAIN`), starts again, [`EDIT_ATTEMPTS`] times in all. `op`'s error
/// is one line; it is prefixed with the table's name. Returns what `op`
/// returned on the attempt that was installed, and warnings for stderr.
/// Rules without a unique handle (a table another tool wrote) get one
/// first ([`edit::repair_handles`]).
pub fn edit_table<T: Transport, R>(
    client: &mut Client<T>,
    kind: TableKind,
    mut op: impl FnMut(&mut TableSpec) -> Result<R, String>,
) -> Result<(R, Vec<String>), Error> {
    for attempt in 1..=EDIT_ATTEMPTS {
        let installed = Installed::fetch(client)?;
        let mut table = installed.table_or_new(kind);
        edit::repair_handles(&mut table);
        let result = op(&mut table).map_err(|m| Error::Rules(format!("{kind}: {m}")))?;
        table
            .validate()
            .map_err(|e| Error::Rules(validation_message(kind, &e)))?;
        let opts = ReplaceOptions {
            generation: Some(installed.generation),
            check: false,
            counters: true,
        };
        match replace(client, std::slice::from_ref(&table), opts) {
            Ok((_, warnings)) => return Ok((result, warnings)),
            Err(Error::Kernel { errno: EAGAIN, .. }) if attempt < EDIT_ATTEMPTS => continue,
            Err(Error::Kernel { errno: EAGAIN, .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Rules(format!(
        "{kind}: the ruleset was replaced by someone else {EDIT_ATTEMPTS} times while \
         this change was being made; nothing was changed, try again"
    )))
}

/// A validation error of the kernel's decoder as one line:
/// `nat: rule 3 in chain PREROUTING: ...`.
pub fn validation_message(kind: TableKind, e: &codec::Error) -> String {
    let what = error_kind_text(&e.kind);
    match (e.chain, e.rule) {
        (Some(c), 0) => format!("{kind}: chain {c}: {what}"),
        (Some(c), r) => format!("{kind}: rule {r} in chain {c}: {what}"),
        (None, _) => format!("{kind}: {what}"),
    }
}

/// The codec's error text, with the protocols an option needs spelled out.
pub fn error_kind_text(k: &codec::ErrorKind) -> String {
    let ports = [
        proto::TCP,
        proto::UDP,
        proto::UDPLITE,
        proto::SCTP,
        proto::DCCP,
    ];
    let names = |f: fn(u8) -> bool| {
        ports
            .iter()
            .filter(|&&p| f(p))
            .map(|&p| crate::ct::proto_name(p))
            .collect::<Vec<_>>()
            .join("|")
    };
    match k {
        codec::ErrorKind::NeedsProtocol("--sport/--dport") => {
            format!("--sport/--dport need -p {}", names(proto::has_ports))
        }
        // Only a -p without ports gets here: no -p at all is fine.
        codec::ErrorKind::NeedsProtocol("a NAT port range") => format!(
            "a NAT port range needs -p {} or no -p",
            names(proto::nat_rewrites_ports)
        ),
        codec::ErrorKind::NeedsProtocol("--icmp-type") => {
            "--icmp-type needs -p icmp (with -4) or -p ipv6-icmp (with -6)".to_owned()
        }
        codec::ErrorKind::NeedsProtocol(w @ ("--tcp-flags" | "--reject-with tcp-reset")) => {
            format!("{w} needs -p tcp")
        }
        k => k.to_string(),
    }
}

/// The rule-path statistics of [`Cmd::RulesStatsGet`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RulesStats {
    /// (counter, value), in [`RulesCounter::REPORT_ORDER`]; counters the
    /// kernel did not send read zero.
    pub counters: Vec<(RulesCounter, u64)>,
}

impl RulesStats {
    /// From the attributes nested in `RULES_STATS`.
    pub fn from_attrs(attrs: &[RulesStatsAttr]) -> Self {
        let value = |c: RulesCounter| {
            attrs
                .iter()
                .rev()
                .find_map(|a| match a {
                    RulesStatsAttr::Counter(k, v) if *k == c => Some(*v),
                    _ => None,
                })
                .unwrap_or(0)
        };
        RulesStats {
            counters: RulesCounter::REPORT_ORDER
                .iter()
                .map(|&c| (c, value(c)))
                .collect(),
        }
    }

    /// Asks the kernel.
    pub fn fetch<T: Transport>(client: &mut Client<T>) -> Result<Self, Error> {
        let request = RfwMessage::new(Cmd::RulesStatsGet, Vec::new());
        let what = describe(request.cmd);
        let replies = client.request(request)?;
        replies
            .iter()
            .flat_map(|m| m.attrs.iter())
            .find_map(|a| match a {
                RfwAttr::RulesStats(n) => Some(RulesStats::from_attrs(n)),
                _ => None,
            })
            .ok_or_else(|| Error::protocol(what, "reply without RULES_STATS"))
    }
}

/// Requests of the `Rules*` commands.
impl RfwMessage {
    /// [`Cmd::RulesGet`].
    pub fn rules_get() -> Self {
        RfwMessage::new(Cmd::RulesGet, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_bytes_round_trip_and_refuse_odd_lengths() {
        let c = vec![
            Counter {
                packets: 1,
                bytes: 2,
            },
            Counter {
                packets: u64::MAX,
                bytes: 1 << 40,
            },
        ];
        let b = counters_to_bytes(&c);
        assert_eq!(b.len(), 32);
        assert_eq!(&b[..8], &1u64.to_le_bytes());
        assert_eq!(counters_from_bytes(&b).unwrap(), c);
        assert!(counters_from_bytes(&b[..31]).is_err());
        assert_eq!(counters_from_bytes(&[]).unwrap(), []);
    }

    #[test]
    fn needs_protocol_errors_spell_the_protocols_out() {
        use codec::ErrorKind::NeedsProtocol;
        assert_eq!(
            error_kind_text(&NeedsProtocol("--sport/--dport")),
            "--sport/--dport need -p tcp|udp|udplite|sctp|dccp"
        );
        assert_eq!(
            error_kind_text(&NeedsProtocol("a NAT port range")),
            "a NAT port range needs -p tcp|udp|udplite|dccp or no -p"
        );
        assert_eq!(
            error_kind_text(&NeedsProtocol("--tcp-flags")),
            "--tcp-flags needs -p tcp"
        );
        assert_eq!(error_kind_text(&codec::ErrorKind::JumpLoop), "jump loop");
    }

    #[test]
    fn big_tables_are_refused_and_counters_cut_to_fit() {
        // 3000 rules of 28 bytes: a blob of about 84 KB.
        let mut t = TableSpec::new(TableKind::Filter);
        for i in 0..3000u32 {
            let port = format!("{}", i + 1);
            let words = [
                "-s",
                "10.0.0.0/8",
                "-d",
                "192.168.0.0/16",
                "-p",
                "tcp",
                "--dport",
                &port,
                "--accept",
            ];
            let rule = nat::text::parse_rule(&words, &t).unwrap();
            t.chains[0].rules.push(nat::spec::RuleSpec {
                handle: i + 1,
                ..rule.into()
            });
        }
        let mut w = Vec::new();
        let Err(e) = wire_table(&t, true, &mut w) else {
            panic!("a table of 84 KB went through")
        };
        let e = e.to_string();
        assert!(e.starts_with("filter: the table is "), "{e}");
        assert!(e.contains("65524"), "{e}");

        // 2000 rules fit (about 56 KB), but not all of their counters.
        t.chains[0].rules.truncate(2000);
        for r in &mut t.chains[0].rules {
            r.counter.packets = 1;
        }
        let RfwAttr::RulesTable(nest) = wire_table(&t, true, &mut w).unwrap() else {
            panic!()
        };
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("filter: the counters of the last "),
            "{w:?}"
        );
        let len: usize = nest
            .iter()
            .map(|a| 4 + a.value_len().next_multiple_of(4))
            .sum();
        assert!(len + 4 <= usize::from(u16::MAX), "{len}");
        // Without counters: just the blob.
        let mut w = Vec::new();
        let RfwAttr::RulesTable(nest) = wire_table(&t, false, &mut w).unwrap() else {
            panic!()
        };
        assert_eq!(nest.len(), 1);
        assert!(w.is_empty());
    }

    use netlink_packet_core::Nla;
}
