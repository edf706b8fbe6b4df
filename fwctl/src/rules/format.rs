//! How `fwctl filter|nat|mangle list` and `fwctl rules stats` print.

use std::fmt::Write as _;

use nat::{rule::Policy, spec::TableSpec};
use serde::{ser::SerializeMap, Serialize, Serializer};

use super::{edit::references, RulesStats};
use crate::{ct::format::aligned, error::Error};

fn policy_name(p: Option<Policy>) -> Option<&'static str> {
    p.map(|p| match p {
        Policy::Accept => "ACCEPT",
        Policy::Drop => "DROP",
    })
}

/// `list` as a table: per chain a header line (built-in: its policy and
/// the policy's counters; user chain: how many rules jump or go to it),
/// then, if it has rules, a column header and one line per rule: handle,
/// packets, bytes, and the rule in the text form. Chains are separated by
/// an empty line. `only` picks one chain by index.
///
/// ```text
/// Chain PREROUTING (policy ACCEPT 12 packets, 720 bytes)
/// HANDLE  PACKETS  BYTES  RULE
///      1        3    180  -4 -p tcp --dport 80 --to-destination 192.168.1.10:8080
///
/// Chain ssh (1 reference)
/// ```
pub fn list_table(t: &TableSpec, only: Option<usize>) -> String {
    let refs = references(t);
    let chains: Vec<usize> = match only {
        Some(i) => vec![i],
        None => (0..t.chains.len()).collect(),
    };
    // One set of column widths for the whole listing.
    let rows = chains
        .iter()
        .flat_map(|&i| t.chains[i].rules.iter())
        .map(|r| {
            (
                r.handle.to_string(),
                r.counter.packets.to_string(),
                r.counter.bytes.to_string(),
            )
        });
    let (mut wh, mut wp, mut wb) = ("HANDLE".len(), "PACKETS".len(), "BYTES".len());
    for (h, p, b) in rows {
        wh = wh.max(h.len());
        wp = wp.max(p.len());
        wb = wb.max(b.len());
    }
    let mut out = String::new();
    for (n, &i) in chains.iter().enumerate() {
        let c = &t.chains[i];
        if n > 0 {
            out.push('\n');
        }
        match policy_name(c.policy) {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "Chain {} (policy {p} {} packets, {} bytes)",
                    c.name, c.counter.packets, c.counter.bytes
                );
            }
            None => {
                let r = refs.get(i).copied().unwrap_or(0);
                let s = if r == 1 { "" } else { "s" };
                let _ = writeln!(out, "Chain {} ({r} reference{s})", c.name);
            }
        }
        if c.rules.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "{:>wh$}  {:>wp$}  {:>wb$}  RULE",
            "HANDLE", "PACKETS", "BYTES"
        );
        for r in &c.rules {
            let opts = nat::text::rule_options(&r.rule, t);
            let line = format!(
                "{:>wh$}  {:>wp$}  {:>wb$}  {opts}",
                r.handle, r.counter.packets, r.counter.bytes
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

#[derive(Serialize)]
struct RuleJson {
    handle: u32,
    packets: u64,
    bytes: u64,
    rule: String,
}

#[derive(Serialize)]
struct ChainJson {
    name: String,
    policy: Option<&'static str>,
    packets: u64,
    bytes: u64,
    references: usize,
    rules: Vec<RuleJson>,
}

#[derive(Serialize)]
struct TableJson {
    table: &'static str,
    chains: Vec<ChainJson>,
}

/// `list -o json`: `{"table":"nat","chains":[{"name":"PREROUTING",
/// "policy":"ACCEPT","packets":0,"bytes":0,"references":0,"rules":[{"handle":1,
/// "packets":0,"bytes":0,"rule":"-p tcp --to-destination 1.2.3.4:8080"}]},..]}`.
/// A user chain's policy is null and its counters zero.
pub fn list_json(t: &TableSpec, only: Option<usize>) -> Result<String, Error> {
    let refs = references(t);
    let chains = t
        .chains
        .iter()
        .enumerate()
        .filter(|(i, _)| only.is_none_or(|o| o == *i))
        .map(|(i, c)| ChainJson {
            name: c.name.to_string(),
            policy: policy_name(c.policy),
            packets: c.counter.packets,
            bytes: c.counter.bytes,
            references: refs.get(i).copied().unwrap_or(0),
            rules: c
                .rules
                .iter()
                .map(|r| RuleJson {
                    handle: r.handle,
                    packets: r.counter.packets,
                    bytes: r.counter.bytes,
                    rule: nat::text::rule_options(&r.rule, t),
                })
                .collect(),
        })
        .collect();
    let v = TableJson {
        table: t.kind.name(),
        chains,
    };
    serde_json::to_string(&v)
        .map(|s| s + "\n")
        .map_err(|e| Error::protocol("encoding JSON", e))
}

/// `rules stats`: aligned `name value` lines.
pub fn stats_table(s: &RulesStats) -> String {
    let rows: Vec<(String, String)> = s
        .counters
        .iter()
        .map(|(c, v)| (c.name().to_owned(), v.to_string()))
        .collect();
    aligned(&rows)
}

struct StatsJson<'a>(&'a RulesStats);

impl Serialize for StatsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.counters.len()))?;
        for (c, v) in &self.0.counters {
            m.serialize_entry(c.name(), v)?;
        }
        m.end()
    }
}

/// `rules stats -o json`: one object, counters by name, in print order.
pub fn stats_json(s: &RulesStats) -> Result<String, Error> {
    serde_json::to_string(&StatsJson(s))
        .map(|s| s + "\n")
        .map_err(|e| Error::protocol("encoding JSON", e))
}
