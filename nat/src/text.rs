//! The save/restore text form of a ruleset (host only), as `fwctl save` /
//! `fwctl restore` use it, and the rule-option parser `fwctl add` reuses.
//!
//! Corresponds to `iptables-save` / `iptables-restore`
//! (`iptables/iptables-save.c`, `iptables-restore.c`): a `*table` line,
//! `:chain policy [packets:bytes]` declarations, one `-A chain options`
//! line per rule (optionally prefixed by `[packets:bytes]`), and `COMMIT`.
//!
//! ```text
//! *filter
//! :INPUT DROP [0:0]
//! :FORWARD ACCEPT [0:0]
//! :OUTPUT ACCEPT [0:0]
//! :ssh - [0:0]
//! -A INPUT --ct-state established,related --accept
//! -A INPUT -4 -p tcp -s !10.0.0.0/8 --dport 22 --jump ssh
//! -A ssh --log --log-prefix "ssh: "
//! -A ssh --accept
//! COMMIT
//! ```
//!
//! Options (negation is written `!value`, or `! --option value` on input):
//! `-4`, `-6`, `-p PROTO`, `-s PREFIX`, `-d PREFIX`, `-i IF`, `-o IF`,
//! `--sport P[:P]`, `--dport P[:P]`, `--icmp-type T[/C]`,
//! `--tcp-flags MASK COMP` (or `--syn`), `--ct-state LIST`, `--mark V[/M]`.
//! Targets: `--accept`, `--drop`, `--reject [--reject-with K]`, `--return`,
//! `--jump CHAIN`, `--goto CHAIN`, `--queue N [--queue-bypass]`, `--log [--log-prefix S]
//! [--log-level N] [--log-rate N] [--log-burst N]`, `--to-source RANGE`,
//! `--to-destination RANGE`, `--masquerade [--to-ports P[-P]]`,
//! `--redirect [--to-ports P[-P]]`, with `--random`, `--fully-random`,
//! `--persistent`; `--set-mark V[/M]`, `--and-mark V`, `--or-mark V`,
//! `--xor-mark V`, `--set-tos V[/M]`, `--set-dscp D`, `--ttl-set N`,
//! `--ttl-inc N`, `--ttl-dec N`, `--offload`. iptables' `-j TARGET` is
//! accepted too (`-j FLOWOFFLOAD` for `--offload`).
//! A NAT RANGE is `ADDR[-ADDR][:PORT[-PORT]]` or `:PORT[-PORT]`, IPv6
//! addresses in brackets when a port follows. Unlike iptables, its ports
//! need no `-p`: they apply to the protocols with ports, the others get the
//! address only (`docs/RULESET.md`, validation).
//!
//! The printer writes one canonical form; [`parse`] of [`print`] gives
//! the same ruleset back, and [`print`] of that gives the same text.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::net::IpAddr;

use crate::rule::{
    proto, tcp_flags, AddrRange, ChainId, ChainName, Counter, CtStateSet, Family, IcmpMatch,
    IfName, LogPrefix, LogSpec, MarkMatch, MarkOp, Match, NatFlags, NatRange, Neg, Policy,
    PortRange, Prefix, QueueSpec, RejectWith, Rule, TableKind, Target, TcpFlagsMatch, TosOp, TtlOp,
};
use crate::spec::{ChainSpec, RuleSpec, Ruleset, TableSpec};

/// A text-form error, with its line (from 1; 0 for a lone rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

type Res<T> = Result<T, String>;

/// Splits a line into words: whitespace separates, `"..."` quotes (with
/// `\"` and `\\` escapes), `#` outside quotes starts a comment.
pub fn tokenize(line: &str) -> Res<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err("unterminated quote".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => cur.push(e),
                            _ => return Err("bad escape in quotes".into()),
                        },
                        Some(c) => cur.push(c),
                    }
                }
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    out.push(core::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

// ---------------------------------------------------------------- printing

fn proto_name(p: u8) -> String {
    proto::iptables_name(p).map_or_else(|| p.to_string(), String::from)
}

fn bang(invert: bool) -> &'static str {
    if invert {
        "!"
    } else {
        ""
    }
}

fn ports_colon(p: &PortRange) -> String {
    if p.lo == p.hi {
        p.lo.to_string()
    } else {
        format!("{}:{}", p.lo, p.hi)
    }
}

fn ports_dash(p: &PortRange) -> String {
    if p.lo == p.hi {
        p.lo.to_string()
    } else {
        format!("{}-{}", p.lo, p.hi)
    }
}

fn flag_names(bits: u8) -> String {
    if bits == 0 {
        return "NONE".into();
    }
    let names: Vec<&str> = tcp_flags::NAMES
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| *n)
        .collect();
    names.join(",")
}

fn ct_names(bits: u8) -> String {
    let names: Vec<&str> = CtStateSet::NAMES
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| *n)
        .collect();
    names.join(",")
}

fn nat_range_text(r: &NatRange) -> String {
    let mut s = String::new();
    let bracket = r.ports.is_some();
    let addr = |a: &IpAddr| match a {
        IpAddr::V6(v) if bracket => format!("[{v}]"),
        a => a.to_string(),
    };
    if let Some(a) = &r.addrs {
        s.push_str(&addr(&a.lo));
        if a.hi != a.lo {
            s.push('-');
            s.push_str(&addr(&a.hi));
        }
    }
    if let Some(p) = &r.ports {
        s.push(':');
        s.push_str(&ports_dash(p));
    }
    s
}

fn nat_flags_text(out: &mut String, f: NatFlags) {
    if f.has(NatFlags::RANDOM) {
        out.push_str(" --random");
    }
    if f.has(NatFlags::FULLY_RANDOM) {
        out.push_str(" --fully-random");
    }
    if f.has(NatFlags::PERSISTENT) {
        out.push_str(" --persistent");
    }
}

/// The options of one rule (no `-A chain`), chain names resolved in `table`.
pub fn rule_options(rule: &Rule, table: &TableSpec) -> String {
    let mut o = String::new();
    let m = &rule.matches;
    match m.family {
        Some(Family::Ipv4) => o.push_str(" -4"),
        Some(Family::Ipv6) => o.push_str(" -6"),
        None => {}
    }
    let mut opt = |name: &str, invert: bool, value: &str| {
        let _ = write!(o, " {name} {}{value}", bang(invert));
    };
    if let Some(p) = m.proto {
        opt("-p", p.invert, &proto_name(p.value));
    }
    if let Some(p) = m.src {
        opt("-s", p.invert, &format!("{}/{}", p.value.addr, p.value.len));
    }
    if let Some(p) = m.dst {
        opt("-d", p.invert, &format!("{}/{}", p.value.addr, p.value.len));
    }
    if let Some(i) = m.in_if {
        opt("-i", i.invert, &String::from_utf8_lossy(i.value.as_bytes()));
    }
    if let Some(i) = m.out_if {
        opt("-o", i.invert, &String::from_utf8_lossy(i.value.as_bytes()));
    }
    if let Some(p) = m.sport {
        opt("--sport", p.invert, &ports_colon(&p.value));
    }
    if let Some(p) = m.dport {
        opt("--dport", p.invert, &ports_colon(&p.value));
    }
    if let Some(i) = m.icmp {
        let v = match i.value.code {
            Some(c) => format!("{}/{}", i.value.ty, c),
            None => i.value.ty.to_string(),
        };
        opt("--icmp-type", i.invert, &v);
    }
    if let Some(t) = m.tcp_flags {
        opt(
            "--tcp-flags",
            t.invert,
            &format!("{} {}", flag_names(t.value.mask), flag_names(t.value.comp)),
        );
    }
    if let Some(s) = m.ct_state {
        opt("--ct-state", s.invert, &ct_names(s.value.0));
    }
    if let Some(k) = m.mark {
        let v = if k.value.mask == u32::MAX {
            format!("{:#x}", k.value.value)
        } else {
            format!("{:#x}/{:#x}", k.value.value, k.value.mask)
        };
        opt("--mark", k.invert, &v);
    }
    let chain = |id: &ChainId| {
        table
            .chain_name(*id)
            .map(|n| n.to_string())
            .unwrap_or_else(|| format!("#{}", id.0))
    };
    match &rule.target {
        Target::Continue => {}
        Target::Accept => o.push_str(" --accept"),
        Target::Drop => o.push_str(" --drop"),
        Target::Reject(k) => {
            o.push_str(" --reject");
            if *k != RejectWith::PortUnreachable {
                let name = RejectWith::NAMES
                    .iter()
                    .find(|(_, r)| r == k)
                    .map(|(n, _)| *n)
                    .unwrap_or("?");
                let _ = write!(o, " --reject-with {name}");
            }
        }
        Target::Return => o.push_str(" --return"),
        Target::Jump(c) => {
            let _ = write!(o, " --jump {}", chain(c));
        }
        Target::Goto(c) => {
            let _ = write!(o, " --goto {}", chain(c));
        }
        Target::Queue(q) => {
            let _ = write!(o, " --queue {}", q.num);
            if q.bypass {
                o.push_str(" --queue-bypass");
            }
        }
        Target::Log(l) => {
            o.push_str(" --log");
            if !l.prefix.is_empty() {
                let _ = write!(o, " --log-prefix {}", quote(l.prefix.as_str()));
            }
            if l.level != LogSpec::DEFAULT_LEVEL {
                let _ = write!(o, " --log-level {}", l.level);
            }
            if l.rate != LogSpec::DEFAULT_RATE {
                let _ = write!(o, " --log-rate {}", l.rate);
            }
            if l.burst != LogSpec::DEFAULT_BURST {
                let _ = write!(o, " --log-burst {}", l.burst);
            }
        }
        Target::Snat(r) => {
            let _ = write!(o, " --to-source {}", nat_range_text(r));
            nat_flags_text(&mut o, r.flags);
        }
        Target::Dnat(r) => {
            let _ = write!(o, " --to-destination {}", nat_range_text(r));
            nat_flags_text(&mut o, r.flags);
        }
        Target::Masquerade(r) | Target::Redirect(r) => {
            o.push_str(if matches!(rule.target, Target::Masquerade(_)) {
                " --masquerade"
            } else {
                " --redirect"
            });
            if let Some(p) = &r.ports {
                let _ = write!(o, " --to-ports {}", ports_dash(p));
            }
            nat_flags_text(&mut o, r.flags);
        }
        Target::Mark(op) => {
            let _ = match *op {
                MarkOp::Set {
                    value,
                    mask: u32::MAX,
                } => write!(o, " --set-mark {value:#x}"),
                MarkOp::Set { value, mask } => write!(o, " --set-mark {value:#x}/{mask:#x}"),
                MarkOp::And(v) => write!(o, " --and-mark {v:#x}"),
                MarkOp::Or(v) => write!(o, " --or-mark {v:#x}"),
                MarkOp::Xor(v) => write!(o, " --xor-mark {v:#x}"),
            };
        }
        Target::Tos(t) => {
            let _ = if t.mask == 0xff {
                write!(o, " --set-tos {:#x}", t.value)
            } else {
                write!(o, " --set-tos {:#x}/{:#x}", t.value, t.mask)
            };
        }
        Target::Ttl(t) => {
            let _ = match *t {
                TtlOp::Set(n) => write!(o, " --ttl-set {n}"),
                TtlOp::Inc(n) => write!(o, " --ttl-inc {n}"),
                TtlOp::Dec(n) => write!(o, " --ttl-dec {n}"),
            };
        }
        Target::Offload => o.push_str(" --offload"),
    }
    o.trim_start().to_string()
}

fn counter_text(c: &Counter) -> String {
    format!("[{}:{}]", c.packets, c.bytes)
}

/// Prints one table (without a trailing newline after `COMMIT`'s).
pub fn print_table(t: &TableSpec) -> String {
    let mut s = format!("*{}\n", t.kind.name());
    for c in &t.chains {
        let policy = match c.policy {
            Some(Policy::Accept) => "ACCEPT",
            Some(Policy::Drop) => "DROP",
            None => "-",
        };
        let _ = writeln!(s, ":{} {} {}", c.name, policy, counter_text(&c.counter));
    }
    for c in &t.chains {
        for r in &c.rules {
            if r.counter != Counter::default() {
                s.push_str(&counter_text(&r.counter));
                s.push(' ');
            }
            let opts = rule_options(&r.rule, t);
            if opts.is_empty() {
                let _ = writeln!(s, "-A {}", c.name);
            } else {
                let _ = writeln!(s, "-A {} {}", c.name, opts);
            }
        }
    }
    s.push_str("COMMIT\n");
    s
}

/// Prints a whole ruleset.
pub fn print(r: &Ruleset) -> String {
    r.tables.iter().map(print_table).collect()
}

// ----------------------------------------------------------------- parsing

fn parse_u32(s: &str) -> Res<u32> {
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else {
        s.parse::<u32>()
    };
    r.map_err(|_| format!("bad number {s:?}"))
}

fn parse_u8(s: &str) -> Res<u8> {
    u8::try_from(parse_u32(s)?).map_err(|_| format!("{s:?} out of range 0..=255"))
}

fn parse_u16(s: &str) -> Res<u16> {
    u16::try_from(parse_u32(s)?).map_err(|_| format!("{s:?} out of range 0..=65535"))
}

fn parse_port(s: &str) -> Res<u16> {
    s.parse::<u16>().map_err(|_| format!("bad port {s:?}"))
}

fn parse_port_range(s: &str, sep: char) -> Res<PortRange> {
    match s.split_once(sep) {
        None => Ok(PortRange::single(parse_port(s)?)),
        Some((a, b)) => Ok(PortRange {
            lo: if a.is_empty() { 0 } else { parse_port(a)? },
            hi: if b.is_empty() {
                u16::MAX
            } else {
                parse_port(b)?
            },
        }),
    }
}

fn parse_addr(s: &str) -> Res<IpAddr> {
    s.parse::<IpAddr>()
        .map_err(|_| format!("bad address {s:?}"))
}

fn parse_prefix(s: &str) -> Res<Prefix> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr = parse_addr(a)?;
    let max = Family::of(&addr).max_prefix();
    let len = match l {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|&l| l <= max)
            .ok_or_else(|| format!("bad prefix length {l:?}"))?,
    };
    Ok(Prefix { addr, len })
}

fn parse_proto(s: &str) -> Res<u8> {
    match proto::from_name(s) {
        Some(p) => Ok(p),
        None => s
            .parse::<u8>()
            .map_err(|_| format!("unknown protocol {s:?}")),
    }
}

fn parse_flags(s: &str) -> Res<u8> {
    match s {
        "NONE" => return Ok(0),
        "ALL" => return Ok(0xff),
        _ => {}
    }
    let mut bits = 0;
    for name in s.split(',') {
        let b = tcp_flags::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown TCP flag {name:?}"))?;
        bits |= b.1;
    }
    Ok(bits)
}

fn parse_ct(s: &str) -> Res<CtStateSet> {
    let mut bits = 0;
    for name in s.split(',') {
        let b = CtStateSet::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown conntrack state {name:?}"))?;
        bits |= b.1;
    }
    Ok(CtStateSet(bits))
}

fn parse_value_mask(s: &str, full: u32) -> Res<(u32, u32)> {
    match s.split_once('/') {
        Some((v, m)) => Ok((parse_u32(v)?, parse_u32(m)?)),
        None => Ok((parse_u32(s)?, full)),
    }
}

fn icmp_name(name: &str, v6: bool) -> Option<u8> {
    const V4: [(&str, u8); 6] = [
        ("echo-reply", 0),
        ("destination-unreachable", 3),
        ("redirect", 5),
        ("echo-request", 8),
        ("time-exceeded", 11),
        ("parameter-problem", 12),
    ];
    const V6: [(&str, u8); 6] = [
        ("destination-unreachable", 1),
        ("packet-too-big", 2),
        ("time-exceeded", 3),
        ("parameter-problem", 4),
        ("echo-request", 128),
        ("echo-reply", 129),
    ];
    let table: &[(&str, u8)] = if v6 { &V6 } else { &V4 };
    table.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Splits a NAT range address part `A`, `A-B`, `[A]`, `[A]-[B]` from its
/// `:ports` part.
fn parse_nat_range(s: &str) -> Res<NatRange> {
    let mut r = NatRange::default();
    let (addrs, ports) = if s.starts_with('[') {
        // Bracketed IPv6: [a] or [a]-[b], then optionally :ports.
        let close = s.rfind(']').ok_or("missing ']'")?;
        let (a, rest) = s.split_at(close + 1);
        let ports = match rest {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("expected ':' after ']'")?),
        };
        (Some(a), ports)
    } else if s.starts_with(':') && s.matches(':').count() == 1 {
        (None, s.strip_prefix(':'))
    } else if s.matches(':').count() > 1 {
        (Some(s), None) // bare IPv6, no ports
    } else {
        match s.split_once(':') {
            Some((a, p)) => (Some(a), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(a) = addrs {
        let strip = |x: &str| -> Res<IpAddr> {
            let x = x
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .unwrap_or(x);
            parse_addr(x)
        };
        let (lo, hi) = match a.split_once("]-[") {
            Some((l, h)) => (strip(&format!("{l}]"))?, strip(&format!("[{h}"))?),
            None if a.starts_with('[') => {
                let v = strip(a)?;
                (v, v)
            }
            None => match a.split_once('-') {
                Some((l, h)) => (strip(l)?, strip(h)?),
                None => {
                    let v = strip(a)?;
                    (v, v)
                }
            },
        };
        r.addrs = Some(AddrRange { lo, hi });
    }
    if let Some(p) = ports {
        r.ports = Some(parse_port_range(p, '-')?);
    }
    if r.addrs.is_none() && r.ports.is_none() {
        return Err("empty NAT range".into());
    }
    Ok(r)
}

/// What the target options said, before they are put together.
#[derive(Default)]
struct TargetParts {
    kind: Option<(&'static str, Target)>,
    /// `-j NAME` whose parameters come from later options: the option
    /// name that must follow, and the target if none does.
    pending: Option<(&'static str, Option<Target>)>,
    reject_with: Option<RejectWith>,
    log: Option<LogSpec>,
    to_ports: Option<PortRange>,
    flags: u8,
    /// `--queue-bypass` was given.
    queue_bypass: bool,
}

impl TargetParts {
    fn set(&mut self, name: &'static str, t: Target) -> Res<()> {
        match self.kind {
            Some((prev, _)) if prev != name => Err(format!("two targets: {prev} and {name}")),
            Some(_) => Err(format!("{name} given twice")),
            None => {
                self.kind = Some((name, t));
                Ok(())
            }
        }
    }

    fn log(&mut self) -> &mut LogSpec {
        self.log.get_or_insert(LogSpec::DEFAULT)
    }
}

/// Reads the next word as an option value, taking a leading `!` as
/// negation (`-s !10.0.0.0/8` or `-s ! 10.0.0.0/8`).
fn value<'a>(
    it: &mut core::slice::Iter<'a, String>,
    opt: &str,
    pre_bang: &mut bool,
) -> Res<(bool, &'a str)> {
    let v = it.next().ok_or_else(|| format!("{opt} needs a value"))?;
    let mut invert = core::mem::take(pre_bang);
    let v: &str = if v == "!" {
        invert = !invert;
        it.next().ok_or_else(|| format!("{opt} needs a value"))?
    } else if let Some(rest) = v.strip_prefix('!') {
        invert = !invert;
        rest
    } else {
        v
    };
    Ok((invert, v))
}

fn no_invert(invert: bool, opt: &str) -> Res<()> {
    if invert {
        Err(format!("{opt} cannot be negated"))
    } else {
        Ok(())
    }
}

fn once<T>(slot: &mut Option<T>, v: T, opt: &str) -> Res<()> {
    if slot.is_some() {
        return Err(format!("{opt} given twice"));
    }
    *slot = Some(v);
    Ok(())
}

/// Parses the options of one rule (what follows `-A CHAIN`, or fwctl's
/// `add` arguments), resolving `--jump`/`--goto` names in `table`.
pub fn parse_rule<S: AsRef<str>>(args: &[S], table: &TableSpec) -> Result<Rule, ParseError> {
    let words: Vec<String> = args.iter().map(|s| s.as_ref().to_string()).collect();
    parse_rule_words(&words, &|name: &str| table.chain_id(name))
        .map_err(|message| ParseError { line: 0, message })
}

/// Checks the options of one rule as [`parse_rule`] does, taking every
/// `--jump`/`--goto` name as an existing chain: the syntax errors a rule
/// has whatever table it goes into (fwctl checks arguments with it before
/// it has read the table).
pub fn check_rule_syntax<S: AsRef<str>>(args: &[S]) -> Result<(), ParseError> {
    let words: Vec<String> = args.iter().map(|s| s.as_ref().to_string()).collect();
    parse_rule_words(&words, &|_: &str| Some(ChainId(0)))
        .map(|_| ())
        .map_err(|message| ParseError { line: 0, message })
}

fn parse_rule_words(words: &[String], lookup: &dyn Fn(&str) -> Option<ChainId>) -> Res<Rule> {
    let mut m = Match::ANY;
    let mut t = TargetParts::default();
    let mut it = words.iter();
    let mut pre_bang = false;
    let chain = |name: &str| -> Res<ChainId> {
        lookup(name).ok_or_else(|| format!("no chain {name:?} (declare it first)"))
    };
    while let Some(w) = it.next() {
        let opt = w.as_str();
        if opt == "!" {
            if pre_bang {
                return Err("'!' twice".into());
            }
            pre_bang = true;
            continue;
        }
        match opt {
            "-4" | "--ipv4" | "-6" | "--ipv6" => {
                no_invert(pre_bang, opt)?;
                let f = if opt.contains('4') {
                    Family::Ipv4
                } else {
                    Family::Ipv6
                };
                once(&mut m.family, f, "-4/-6")?;
            }
            "-p" | "--protocol" => {
                let (inv, v) = value(&mut it, opt, &mut pre_bang)?;
                once(
                    &mut m.proto,
                    Neg {
                        invert: inv,
                        value: parse_proto(v)?,
                    },
                    opt,
                )?;
            }
            "-s" | "--source" | "-d" | "--destination" => {
                let (inv, v) = value(&mut it, opt, &mut pre_bang)?;
                let p = Neg {
                    invert: inv,
                    value: parse_prefix(v)?,
                };
                let slot = if opt.starts_with("-s") || opt == "--source" {
                    &mut m.src
                } else {
                    &mut m.dst
                };
                once(slot, p, opt)?;
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let (inv, v) = value(&mut it, opt, &mut pre_bang)?;
                let name = IfName::new(v.as_bytes())
                    .filter(|n| crate::rule::is_valid_if_pattern(n.as_bytes()))
                    .ok_or_else(|| format!("bad interface name {v:?}"))?;
                let slot = if opt == "-i" || opt == "--in-interface" {
                    &mut m.in_if
                } else {
                    &mut m.out_if
                };
                once(
                    slot,
                    Neg {
                        invert: inv,
                        value: name,
                    },
                    opt,
                )?;
            }
            "--sport" | "--source-port" | "--dport" | "--destination-port" => {
                let (inv, v) = value(&mut it, opt, &mut pre_bang)?;
                let p = Neg {
                    invert: inv,
                    value: parse_port_range(v, ':')?,
                };
                let slot = if opt.starts_with("--s") {
                    &mut m.sport
                } else {
                    &mut m.dport
                };
                once(slot, p, opt)?;
            }
            "--icmp-type" | "--icmpv6-type" => {
                let (inv, v) = value(&mut it, opt, &mut pre_bang)?;
                let v6 =
                    m.proto.is_some_and(|p| p.value == proto::ICMPV6) || opt == "--icmpv6-type";
                let (ty, code) = match v.split_once('/') {
                    Some((a, b)) => (parse_u8(a)?, Some(parse_u8(b)?)),
                    None => match icmp_name(v, v6) {
                        Some(ty) => (ty, None),
                        None => (parse_u8(v)?, None),
                    },
                };
                once(
                    &mut m.icmp,
                    Neg {
                        invert: inv,
                        value: IcmpMatch { ty, code },
                    },
                    opt,
                )?;
            }
            "--tcp-flags" => {
                let (inv, mask) = value(&mut it, opt, &mut pre_bang)?;
                let comp = it.next().ok_or("--tcp-flags needs MASK and COMP")?;
                let f = TcpFlagsMatch {
                    mask: parse_flags(mask)?,
                    comp: parse_flags(comp)?,
                };
                once(
                    &mut m.tcp_flags,
                    Neg {
                        invert: inv,
                        value: f,
                    },
                    opt,
                )?;
            }
            "--syn" => {
                let inv = core::mem::take(&mut pre_bang);
                let f = TcpFlagsMatch {
                    mask: tcp_flags::FIN | tcp_flags::SYN | tcp_flags::RST | tcp_flags::ACK,
                    comp: tcp_flags::SYN,
                };
                once(
                    &mut m.tcp_flags,
                    Neg {
                        invert: inv,
                        value: f,
                    },
                    opt,
                )?;
            }
            "--ct-state" | "--ctstate" | "--state" => {
                let (inv, v) = value(&mut it, opt, &mut pre_bang)?;
                once(
                    &mut m.ct_state,
                    Neg {
                        invert: inv,
                        value: parse_ct(v)?,
                    },
                    opt,
                )?;
            }
            "--mark" => {
                let (inv, v) = value(&mut it, opt, &mut pre_bang)?;
                let (value, mask) = parse_value_mask(v, u32::MAX)?;
                once(
                    &mut m.mark,
                    Neg {
                        invert: inv,
                        value: MarkMatch { value, mask },
                    },
                    opt,
                )?;
            }
            _ => {
                no_invert(pre_bang, opt)?;
                parse_target_opt(opt, &mut it, &mut t, &chain)?;
            }
        }
    }
    if pre_bang {
        return Err("'!' at the end".into());
    }
    Ok(Rule {
        matches: m,
        target: finish_target(t)?,
    })
}

fn next_word<'a>(it: &mut core::slice::Iter<'a, String>, opt: &str) -> Res<&'a str> {
    it.next()
        .map(String::as_str)
        .ok_or_else(|| format!("{opt} needs a value"))
}

fn parse_target_opt(
    opt: &str,
    it: &mut core::slice::Iter<'_, String>,
    t: &mut TargetParts,
    chain: &dyn Fn(&str) -> Res<ChainId>,
) -> Res<()> {
    let nat = NatRange::default();
    match opt {
        "--accept" => t.set("--accept", Target::Accept),
        "--drop" => t.set("--drop", Target::Drop),
        "--reject" => t.set("--reject", Target::Reject(RejectWith::PortUnreachable)),
        "--return" => t.set("--return", Target::Return),
        "--masquerade" => t.set("--masquerade", Target::Masquerade(nat)),
        "--redirect" => t.set("--redirect", Target::Redirect(nat)),
        "--offload" => t.set("--offload", Target::Offload),
        "--log" => {
            t.log();
            t.set("--log", Target::Log(LogSpec::DEFAULT))
        }
        "--jump" | "--goto" | "-g" => {
            let name = next_word(it, opt)?;
            let id = chain(name)?;
            if opt == "--jump" {
                t.set("--jump", Target::Jump(id))
            } else {
                t.set("--goto", Target::Goto(id))
            }
        }
        "-j" => {
            let name = next_word(it, opt)?;
            match name {
                "ACCEPT" => t.set("--accept", Target::Accept),
                "DROP" => t.set("--drop", Target::Drop),
                "REJECT" => t.set("--reject", Target::Reject(RejectWith::PortUnreachable)),
                "RETURN" => t.set("--return", Target::Return),
                "QUEUE" | "NFQUEUE" => pend(t, "--queue", Some(Target::Queue(QueueSpec::num(0)))),
                "LOG" => {
                    t.log();
                    t.set("--log", Target::Log(LogSpec::DEFAULT))
                }
                "MASQUERADE" => t.set("--masquerade", Target::Masquerade(nat)),
                "REDIRECT" => t.set("--redirect", Target::Redirect(nat)),
                "SNAT" => pend(t, "--to-source", None),
                "DNAT" => pend(t, "--to-destination", None),
                "MARK" => pend(t, "MARK", None),
                "TOS" => pend(t, "--set-tos", None),
                "TTL" | "HL" => pend(t, "TTL", None),
                "FLOWOFFLOAD" => t.set("--offload", Target::Offload),
                other => t.set("--jump", Target::Jump(chain(other)?)),
            }
        }
        "--queue" | "--queue-num" => {
            let q = parse_u16(next_word(it, opt)?)?;
            t.set("--queue", Target::Queue(QueueSpec::num(q)))
        }
        "--queue-bypass" => {
            t.queue_bypass = true;
            Ok(())
        }
        "--reject-with" => {
            let v = next_word(it, opt)?;
            let k = RejectWith::NAMES
                .iter()
                .find(|(n, _)| {
                    *n == v
                        || n.strip_suffix("-unreachable")
                            .is_some_and(|s| format!("icmp-{s}-unreachable") == v)
                })
                .map(|(_, k)| *k)
                .ok_or_else(|| format!("unknown --reject-with {v:?}"))?;
            once(&mut t.reject_with, k, opt)
        }
        "--log-prefix" => {
            let v = next_word(it, opt)?;
            t.log().prefix = LogPrefix::new(v.as_bytes())
                .filter(|p| crate::rule::is_valid_log_prefix(p.as_bytes()))
                .ok_or_else(|| {
                    format!("bad --log-prefix {v:?} (29 printable characters at most)")
                })?;
            Ok(())
        }
        "--log-level" => {
            t.log().level = parse_u8(next_word(it, opt)?)?;
            Ok(())
        }
        "--log-rate" => {
            t.log().rate = parse_u16(next_word(it, opt)?)?;
            Ok(())
        }
        "--log-burst" => {
            t.log().burst = parse_u16(next_word(it, opt)?)?;
            Ok(())
        }
        "--to-source" | "--to-destination" | "--to" => {
            let r = parse_nat_range(next_word(it, opt)?)?;
            if opt == "--to-source" {
                t.set("--to-source", Target::Snat(r))
            } else {
                t.set("--to-destination", Target::Dnat(r))
            }
        }
        "--to-ports" => once(
            &mut t.to_ports,
            parse_port_range(next_word(it, opt)?, '-')?,
            opt,
        ),
        "--random" => flag(t, NatFlags::RANDOM, opt),
        "--fully-random" | "--random-fully" => flag(t, NatFlags::FULLY_RANDOM, opt),
        "--persistent" => flag(t, NatFlags::PERSISTENT, opt),
        "--set-mark" | "--set-xmark" | "--and-mark" | "--or-mark" | "--xor-mark" => {
            let v = next_word(it, opt)?;
            let op = match opt {
                "--and-mark" => MarkOp::And(parse_u32(v)?),
                "--or-mark" => MarkOp::Or(parse_u32(v)?),
                "--xor-mark" => MarkOp::Xor(parse_u32(v)?),
                _ => {
                    let (value, mask) = parse_value_mask(v, u32::MAX)?;
                    MarkOp::Set { value, mask }
                }
            };
            t.set("MARK", Target::Mark(op))
        }
        "--set-tos" | "--set-dscp" => {
            let v = next_word(it, opt)?;
            let op = if opt == "--set-dscp" {
                let d = parse_u8(v)?;
                if d > 0x3f {
                    return Err(format!("--set-dscp {d} out of range 0..=63"));
                }
                TosOp {
                    value: d << 2,
                    mask: 0xfc,
                }
            } else {
                let (value, mask) = parse_value_mask(v, 0xff)?;
                let value = u8::try_from(value).map_err(|_| "--set-tos value out of range")?;
                let mask = u8::try_from(mask).map_err(|_| "--set-tos mask out of range")?;
                TosOp { value, mask }
            };
            t.set("--set-tos", Target::Tos(op))
        }
        "--ttl-set" | "--ttl-inc" | "--ttl-dec" | "--hl-set" | "--hl-inc" | "--hl-dec" => {
            let n = parse_u8(next_word(it, opt)?)?;
            let op = match &opt[opt.len() - 3..] {
                "set" => TtlOp::Set(n),
                "inc" => TtlOp::Inc(n),
                _ => TtlOp::Dec(n),
            };
            t.set("TTL", Target::Ttl(op))
        }
        other => Err(format!("unknown option {other:?}")),
    }
}

fn flag(t: &mut TargetParts, bit: u8, opt: &str) -> Res<()> {
    if t.flags & bit != 0 {
        return Err(format!("{opt} given twice"));
    }
    t.flags |= bit;
    Ok(())
}

/// `-j NAME` for a target whose parameters follow as options.
fn pend(t: &mut TargetParts, option: &'static str, default: Option<Target>) -> Res<()> {
    if t.pending.is_some() {
        return Err("-j given twice".into());
    }
    t.pending = Some((option, default));
    Ok(())
}

fn finish_target(t: TargetParts) -> Res<Target> {
    let mut target = match (t.pending, t.kind) {
        (None, kind) => kind.map(|k| k.1).unwrap_or(Target::Continue),
        (Some((_, Some(default))), None) => default,
        (Some((want, None)), None) => return Err(format!("-j needs {want}")),
        (Some((want, _)), Some((got, k))) => {
            if want != got {
                return Err(format!("two targets: -j and {got}"));
            }
            k
        }
    };
    let nat_opts = t.flags != 0 || t.to_ports.is_some();
    match &mut target {
        Target::Snat(r) | Target::Dnat(r) => {
            if t.to_ports.is_some() {
                return Err("--to-ports is for --masquerade and --redirect".into());
            }
            r.flags = NatFlags(t.flags);
        }
        Target::Masquerade(r) | Target::Redirect(r) => {
            r.ports = t.to_ports;
            r.flags = NatFlags(t.flags);
        }
        _ if nat_opts => {
            return Err("--to-ports/--random/--fully-random/--persistent need a NAT target".into())
        }
        _ => {}
    }
    match (&mut target, t.reject_with) {
        (Target::Reject(k), Some(w)) => *k = w,
        (_, Some(_)) => return Err("--reject-with needs --reject".into()),
        _ => {}
    }
    match (&mut target, t.queue_bypass) {
        (Target::Queue(q), true) => q.bypass = true,
        (_, true) => return Err("--queue-bypass needs --queue".into()),
        _ => {}
    }
    match (&mut target, t.log) {
        (Target::Log(l), Some(spec)) => *l = spec,
        (_, Some(_)) => return Err("--log-prefix/--log-level need --log".into()),
        _ => {}
    }
    Ok(target)
}

fn parse_counter(s: &str) -> Res<Counter> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or("bad counters")?;
    let (p, b) = inner.split_once(':').ok_or("bad counters")?;
    Ok(Counter {
        packets: p.parse().map_err(|_| "bad packet counter")?,
        bytes: b.parse().map_err(|_| "bad byte counter")?,
    })
}

/// Parses a whole save file. Each table must end with `COMMIT`; user
/// chains are declared (`:name - [p:b]`) before rules use them; built-in
/// chains exist from the start (policy ACCEPT unless declared otherwise).
/// Tables are validated as the kernel would validate them; an error names
/// the line of the offending rule. Rules get handles 1..=n per table, in
/// entry order (each chain's rules, chains in declaration order).
pub fn parse(text: &str) -> Result<Ruleset, ParseError> {
    let mut rs = Ruleset::default();
    // The table being read, and the line of each of its rules (for errors).
    let mut cur: Option<(TableSpec, Vec<Vec<usize>>)> = None;
    let mut declared: std::collections::HashSet<ChainName> = std::collections::HashSet::new();
    // Chain name -> id of the table being read.
    let mut ids: std::collections::HashMap<String, ChainId> = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        let err = |message: String| ParseError {
            line: lineno,
            message,
        };
        let words = tokenize(line).map_err(err)?;
        let Some(first) = words.first() else { continue };
        if let Some(name) = first.strip_prefix('*') {
            if cur.is_some() {
                return Err(err("table not closed with COMMIT".into()));
            }
            if words.len() != 1 {
                return Err(err("junk after table name".into()));
            }
            let kind = TableKind::from_name(name.as_bytes())
                .ok_or_else(|| err(format!("unknown table {name:?}")))?;
            if rs.tables.iter().any(|t| t.kind == kind) {
                return Err(err(format!("table {name} given twice")));
            }
            let table = TableSpec::new(kind);
            let lines = alloc::vec![Vec::new(); table.chains.len()];
            declared.clear();
            ids.clear();
            for (i, c) in table.chains.iter().enumerate() {
                ids.insert(c.name.to_string(), ChainId(i as u16));
            }
            cur = Some((table, lines));
            continue;
        }
        let Some((table, lines)) = cur.as_mut() else {
            return Err(err("expected *table".into()));
        };
        if first == "COMMIT" {
            if words.len() != 1 {
                return Err(err("junk after COMMIT".into()));
            }
            let Some((mut table, lines)) = cur.take() else {
                continue;
            };
            // Handles are not part of the text: a restored table's rules
            // are numbered 1..=n in entry order.
            table.renumber_handles();
            if let Err(e) = table.validate() {
                let chain = e.chain.and_then(|c| table.chain_id(c.as_str()));
                let rule_line = chain
                    .and_then(|c| lines.get(usize::from(c.0)))
                    .and_then(|l| l.get((e.rule as usize).checked_sub(1)?))
                    .copied();
                // A chain-level error points at the chain's declaration.
                let decl_line = e.chain.and_then(|c| {
                    let decl = format!(":{c} ");
                    let pos = text
                        .lines()
                        .take(lineno)
                        .enumerate()
                        .filter(|(_, l)| l.starts_with(&decl))
                        .last()?;
                    Some(pos.0 + 1)
                });
                let line = rule_line.or(decl_line).unwrap_or(lineno);
                return Err(ParseError {
                    line,
                    message: format!("{} table: {e}", table.kind),
                });
            }
            rs.tables.push(table);
            continue;
        }
        if let Some(name) = first.strip_prefix(':') {
            let [_, policy, counter] = words.as_slice() else {
                return Err(err("expected :chain POLICY [packets:bytes]".into()));
            };
            let name = ChainName::new(name.as_bytes())
                .ok_or_else(|| err(format!("chain name {name:?} too long")))?;
            if !declared.insert(name) {
                return Err(err(format!("chain {name} declared twice")));
            }
            let policy = match policy.as_str() {
                "ACCEPT" => Some(Policy::Accept),
                "DROP" => Some(Policy::Drop),
                "-" => None,
                p => return Err(err(format!("bad policy {p:?}"))),
            };
            let counter = parse_counter(counter).map_err(err)?;
            let existing = ids.get(name.as_str()).copied();
            match existing.and_then(|id| table.chains.get_mut(usize::from(id.0))) {
                // A built-in chain: its policy and counters.
                Some(c) => {
                    c.policy = policy;
                    c.counter = counter;
                }
                None => {
                    let id = u16::try_from(table.chains.len())
                        .map_err(|_| err("too many chains".into()))?;
                    ids.insert(name.to_string(), ChainId(id));
                    table.chains.push(ChainSpec {
                        name,
                        policy,
                        counter,
                        rules: Vec::new(),
                    });
                    lines.push(Vec::new());
                }
            }
            continue;
        }
        let (counter, rest) = if first.starts_with('[') {
            (
                parse_counter(first).map_err(err)?,
                words.get(1..).unwrap_or(&[]),
            )
        } else {
            (Counter::default(), words.as_slice())
        };
        let [a, chain, opts @ ..] = rest else {
            return Err(err("expected -A chain ...".into()));
        };
        if a != "-A" && a != "--append" {
            return Err(err(format!("unexpected {a:?}")));
        }
        let id = *ids
            .get(chain.as_str())
            .ok_or_else(|| err(format!("no chain {chain:?} (declare it first)")))?;
        let rule = parse_rule_words(opts, &|name: &str| ids.get(name).copied()).map_err(err)?;
        if let (Some(c), Some(l)) = (
            table.chains.get_mut(usize::from(id.0)),
            lines.get_mut(usize::from(id.0)),
        ) {
            c.rules.push(RuleSpec {
                rule,
                counter,
                handle: 0,
            });
            l.push(lineno);
        }
    }
    if cur.is_some() {
        return Err(ParseError {
            line: text.lines().count(),
            message: "missing COMMIT".into(),
        });
    }
    Ok(rs)
}
