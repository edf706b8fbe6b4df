//! The ruleset commands: `fwctl filter|nat|mangle ...`, `fwctl save`,
//! `fwctl restore`, `fwctl rules stats`.

use std::{ffi::OsString, io::Read, path::PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use nat::{
    rule::{Counter, Policy, TableKind},
    spec::TableSpec,
};

use super::UsageError;
use crate::{
    error::Error,
    netlink::{Client, Transport},
    rules::{
        edit::{resolve_chain, Edit, Position},
        edit_table, format, replace, unload, Installed, ReplaceOptions, RulesStats,
    },
};

const RULE_ABOUT: &str = "\
Add a rule to a chain of the table: `add` appends it, `insert` puts it at the top (or, with --position N, makes it rule N of the chain). The rule gets a handle, the table's largest plus one, that it keeps whatever else is added or deleted; `list` shows it and `delete --handle N` takes it.

Everything after `add`/`insert` is the rule, in the text form of `fwctl save` (docs/RULESET.md):

  [--chain CHAIN] [--position N] MATCH... [TARGET]

--chain names the chain (built-in names in any case: input, PREROUTING). Without it, nat's DNAT (--to-destination) and REDIRECT go to PREROUTING and its SNAT (--to-source) and MASQUERADE to POSTROUTING; filter and mangle need it.

Matches (each may be negated: ! -s 10.0.0.0/8, or -s '!10.0.0.0/8' quoted for the shell):
  -4, -6                       IPv4 or IPv6 only
  -p tcp|udp|icmp|ipv6-icmp|udplite|sctp|dccp|N
  -s, -d ADDR[/LEN]            source, destination
  --sport, --dport P[:P]       ports (need -p tcp, udp, udplite, sctp or dccp)
  -i, -o IF                    input, output interface (eth+ is a prefix)
  --ct-state new,established,related,invalid,untracked
  --mark V[/M]
  --icmp-type T[/C]            (needs -p icmp or -p ipv6-icmp)
  --tcp-flags MASK COMP, --syn (need -p tcp)

Targets (none: the rule only counts):
  filter  --accept --drop --reject [--reject-with KIND] --return --jump CHAIN --goto CHAIN
          --queue N [--queue-bypass] --log [--log-prefix S] [--log-level 0-7] [--log-rate N] [--log-burst N]
          --offload (FORWARD only; the walk goes on to the next rule)
  nat     --to-destination ADDR[-ADDR][:PORT[-PORT]]   (DNAT)
          --to-source ADDR[-ADDR][:PORT[-PORT]]        (SNAT)
          --masquerade [--to-ports P[-P]]  --redirect [--to-ports P[-P]]
          each with --random, --fully-random, --persistent; IPv6 in brackets when a port follows
  mangle  --set-mark V[/M] --and-mark V --or-mark V --xor-mark V --set-tos V[/M] --set-dscp D
          --ttl-set N --ttl-inc N --ttl-dec N
iptables' -j TARGET spellings are accepted too.

--offload moves the flow to rfw's fast path (nft's `flow add @ft`, iptables' -j FLOWOFFLOAD) once it is established in both directions and a packet of each direction was routed through here after the rule matched; its packets then skip the rest of the ruleset, the rule counters, LOG, and the kernel's routing, FORWARD and POST_ROUTING. It does not decide: the rules after it do. `fwctl ct list` shows such flows as [OFFLOAD], `fwctl ct stats` counts them (offloaded, offload_*). See docs/RULESET.md.

--log writes one kernel log line per packet in nf_log_syslog's format (\"PREFIX IN=eth0 OUT= MAC=.. SRC=.. DST=.. LEN=.. TOS=.. PREC=.. TTL=.. ID=.. PROTO=..\", as iptables' LOG), at most --log-rate lines a second after a burst of --log-burst (default 5 and 10), with control characters in the prefix and interface names printed as \\xHH. Outside the initial network namespace lines are written only while the host's net.netfilter.nf_log_all_netns is 1, as for nf_log; the others count in `fwctl rules stats` log_suppressed.

The table is read, changed and written back whole, with its counters (rules keep theirs; the new one starts at zero); if another change came in between, fwctl starts again. A rule the kernel would refuse is refused first, with one line naming it, and nothing changes.

Examples:
  fwctl nat add --to-destination 1.2.3.4:8080                 # PREROUTING
  fwctl nat add -p tcp -i eth0 --dport 80 --to-destination 192.168.1.10:8080
  fwctl nat add -o ppp0 --masquerade                          # POSTROUTING
  fwctl nat add -6 -p udp --to-destination [2001:db8::53]:53
  fwctl filter add --chain INPUT --ct-state established,related --accept
  fwctl filter insert --chain input -p tcp --dport 22 ! -s 10.0.0.0/8 --drop
  fwctl filter insert --chain INPUT --position 3 -i lo --accept
  fwctl filter add --chain FORWARD --ct-state established --offload
  fwctl mangle add --chain FORWARD -o eth1 --ttl-set 64";

const LIST_RULES_ABOUT: &str = "\
List the table's chains and rules: per chain, its policy and the policy's packet and byte counters (built-in chains) or how many rules jump to it (user chains), then one line per rule: its handle, packets, bytes, and the rule as `fwctl save` writes it.

A table never loaded lists as empty, its policies ACCEPT.

With -o json: {\"table\":\"nat\",\"chains\":[{\"name\":\"PREROUTING\",\"policy\":\"ACCEPT\",\"packets\":N,\"bytes\":N,\"references\":0,\"rules\":[{\"handle\":1,\"packets\":N,\"bytes\":N,\"rule\":\"...\"}]},..]} (a user chain's policy is null).

Examples:
  fwctl nat list
  fwctl filter list --chain input
  fwctl -o json mangle list";

pub(super) const SAVE_ABOUT: &str = "\
Print every loaded table in the text form `fwctl restore` reads (docs/RULESET.md): *table, :CHAIN POLICY [packets:bytes], one -A CHAIN line per rule, COMMIT. Handles are not printed (a restore numbers the rules 1 to n). Without -c, every counter is printed as zero.

Examples:
  fwctl save > rules.txt
  fwctl save -c";

pub(super) const RESTORE_ABOUT: &str = "\
Read a ruleset in the text form of `fwctl save` from FILE (or standard input, with - or no FILE), check it as the kernel will, and replace every table it names in one atomic step: all of them or, on any error, none. Tables the file does not name stay as they are. The rules of each table get handles 1 to n.

Counters start from zero unless --counters is given, when they are taken from the file's [packets:bytes].

With --check, nothing is installed: the file is checked here and then by the kernel.

Examples:
  fwctl restore rules.txt
  fwctl restore --check rules.txt
  fwctl save -c | fwctl restore --counters";

/// A table's subcommands.
#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Append a rule to a chain: [--chain CHAIN] MATCH... TARGET.
    #[command(long_about = RULE_ABOUT)]
    Add(RuleArgs),
    /// Insert a rule at the top of a chain (or at --position N).
    #[command(long_about = RULE_ABOUT)]
    Insert(RuleArgs),
    /// Delete the rule with a handle.
    Delete(RuleDeleteArgs),
    /// List chains and rules with handles and counters.
    #[command(long_about = LIST_RULES_ABOUT)]
    List(ChainArg),
    /// Delete every rule of a chain, or of every chain (chains and
    /// policies stay).
    Flush(ChainArg),
    /// Set a built-in chain's policy.
    Policy(PolicyArgs),
    /// Add or delete a user chain.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Remove the whole table from this namespace, rules, chains and
    /// policies (`nft delete table`): its chains no longer run.
    #[command(long_about = UNLOAD_ABOUT)]
    Unload,
}

const UNLOAD_ABOUT: &str = "\
Remove the whole table from this network namespace: its rules, user chains and policies go, and its chains no longer run (as `nft delete table`; `fwctl save` no longer shows it). Nothing happens to the namespace's other tables or its connections. A namespace with no table left, no NAT binding ever made and `fwctl ct tracking auto` stops tracking, and rfw unregisters its hooks there (see `fwctl stats --help`); a namespace that made NAT bindings keeps tracking so that they keep translating.

Examples:
  fwctl filter unload
  fwctl nat unload";

/// `add` / `insert`.
#[derive(Debug, Args)]
pub struct RuleArgs {
    // This doc comment is the argument's --help text: its brackets are
    // usage syntax, not intra-doc links, and escaping them would show.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The rule: [--chain CHAIN] [--position N] MATCH... [TARGET], as in
    /// `fwctl save` (see --help).
    #[arg(value_name = "RULE", required = true, num_args = 1..,
          trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// `delete`.
#[derive(Debug, Args)]
pub struct RuleDeleteArgs {
    /// The chain the rule is in (optional: handles are unique in a table).
    #[arg(long, value_name = "CHAIN")]
    pub chain: Option<String>,
    /// The rule's handle, as `list` shows it.
    #[arg(long, value_name = "N")]
    pub handle: u32,
}

/// `list` / `flush`.
#[derive(Debug, Args)]
pub struct ChainArg {
    /// Only this chain.
    #[arg(long, value_name = "CHAIN")]
    pub chain: Option<String>,
}

/// `policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// A built-in chain of the table (any case).
    #[arg(value_name = "CHAIN")]
    pub chain: String,
    /// What happens to packets no rule decided on.
    #[arg(value_enum, ignore_case = true)]
    pub policy: PolicyArg,
}

/// A built-in chain's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Let them through.
    Accept,
    /// Drop them.
    Drop,
}

/// `chain add|delete NAME`.
#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Add an empty user chain (reached with --jump or --goto).
    Add {
        /// 1 to 28 printable characters; not a built-in chain's name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Delete a user chain: it must have no rules and no rule may jump to it.
    Delete {
        /// The chain.
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// `fwctl save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Print the packet and byte counters (otherwise zero).
    #[arg(short = 'c', long)]
    pub counters: bool,
}

/// `fwctl restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Check the file (here, then in the kernel); install nothing.
    #[arg(short = 't', long, visible_alias = "test")]
    pub check: bool,
    /// Take the counters from the file (otherwise they start at zero).
    #[arg(short = 'c', long)]
    pub counters: bool,
    /// The file; standard input if it is - or not given.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `fwctl rules ...`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Rule-path statistics: NAT bindings and failures, rewrite errors,
    /// rejects, queued and logged packets.
    Stats,
}

/// One checked ruleset command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulesJob {
    /// An edit of one table.
    Edit(TableKind, Edit),
    /// `list [--chain C]`.
    List(TableKind, Option<String>),
    /// `save [-c]`.
    Save {
        /// `-c`.
        counters: bool,
    },
    /// `restore`.
    Restore {
        /// The file; `None` for standard input.
        file: Option<PathBuf>,
        /// `--check`.
        check: bool,
        /// `--counters`.
        counters: bool,
    },
    /// `rules stats`.
    Stats,
    /// `TABLE unload`.
    Unload(TableKind),
}

/// The table subcommand's name, for usage errors.
fn table_path(kind: TableKind) -> &'static str {
    kind.name()
}

/// A rule's words with fwctl's own options taken out.
struct RuleWords {
    chain: Option<String>,
    position: Option<u32>,
    rule: Vec<String>,
}

/// Takes `--chain C` / `--chain=C` and `--position N` / `--position=N`
/// out of a rule's words.
fn split_rule_words(words: &[String], insert: bool) -> Result<RuleWords, String> {
    let (mut chain, mut position, mut rest) = (None, None, Vec::new());
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let (opt, inline) = match w.split_once('=') {
            Some((o @ ("--chain" | "--position"), v)) => (o, Some(v.to_owned())),
            _ => (w.as_str(), None),
        };
        match opt {
            "--chain" | "--position" => {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("{opt} needs a value"))?,
                };
                if opt == "--chain" {
                    if chain.replace(v).is_some() {
                        return Err("--chain given twice".to_owned());
                    }
                } else {
                    if !insert {
                        return Err("--position is for insert (add appends at the end)".to_owned());
                    }
                    let n =
                        v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                            format!("--position {v:?}: a rule number, 1 for the top")
                        })?;
                    if position.replace(n).is_some() {
                        return Err("--position given twice".to_owned());
                    }
                }
            }
            _ => rest.push(w.clone()),
        }
    }
    Ok(RuleWords {
        chain,
        position,
        rule: rest,
    })
}

/// Checks a table subcommand's arguments into a job.
pub fn table_job(kind: TableKind, cmd: &TableCommand) -> Result<RulesJob, UsageError> {
    let usage = |sub: &'static str| {
        move |message: String| UsageError {
            path: [table_path(kind), sub],
            message,
        }
    };
    Ok(match cmd {
        TableCommand::Add(a) | TableCommand::Insert(a) => {
            let insert = matches!(cmd, TableCommand::Insert(_));
            let sub = if insert { "insert" } else { "add" };
            let RuleWords {
                chain,
                position,
                rule: words,
            } = split_rule_words(&a.words, insert).map_err(usage(sub))?;
            // Syntax now, before any traffic; the table's checks come with
            // the table.
            nat::text::check_rule_syntax(&words).map_err(|e| usage(sub)(e.message))?;
            let position = match (insert, position) {
                (false, _) => Position::End,
                (true, None) => Position::Top,
                (true, Some(n)) => Position::Nth(n),
            };
            RulesJob::Edit(
                kind,
                Edit::Add {
                    chain,
                    position,
                    words,
                },
            )
        }
        TableCommand::Delete(a) => RulesJob::Edit(
            kind,
            Edit::Delete {
                chain: a.chain.clone(),
                handle: a.handle,
            },
        ),
        TableCommand::List(a) => RulesJob::List(kind, a.chain.clone()),
        TableCommand::Flush(a) => RulesJob::Edit(
            kind,
            Edit::Flush {
                chain: a.chain.clone(),
            },
        ),
        TableCommand::Policy(a) => RulesJob::Edit(
            kind,
            Edit::Policy {
                chain: a.chain.clone(),
                policy: match a.policy {
                    PolicyArg::Accept => Policy::Accept,
                    PolicyArg::Drop => Policy::Drop,
                },
            },
        ),
        TableCommand::Chain(ChainCommand::Add { name }) => {
            RulesJob::Edit(kind, Edit::ChainAdd(name.clone()))
        }
        TableCommand::Chain(ChainCommand::Delete { name }) => {
            RulesJob::Edit(kind, Edit::ChainDelete(name.clone()))
        }
        TableCommand::Unload => RulesJob::Unload(kind),
    })
}

/// Puts `--` right after `fwctl [-o FORMAT] filter|nat|mangle add|insert`,
/// so that every word of the rule reaches the rule parser, even those
/// clap knows as fwctl's own options (`-o IF` is the output interface
/// there, not the output format). Left alone when the rule starts with
/// `--` already, or is `-h`/`--help`.
pub fn escape_rule_words<I>(args: I) -> Vec<OsString>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let is = |a: Option<&OsString>, any: &[&str]| a.is_some_and(|a| any.iter().any(|x| a == *x));
    let mut i = 1;
    while let Some(a) = args.get(i) {
        if a == "-o" || a == "--output" {
            i += 2;
        } else if a.to_str().is_some_and(|s| s.starts_with('-') && s != "-") {
            i += 1;
        } else {
            break;
        }
    }
    if is(args.get(i), &["filter", "nat", "mangle"])
        && is(args.get(i + 1), &["add", "insert"])
        && args.get(i + 2).is_some()
        && !is(args.get(i + 2), &["--", "-h", "--help"])
    {
        args.insert(i + 2, OsString::from("--"));
    }
    args
}

fn warn(err: &mut dyn std::io::Write, warnings: &[String]) -> Result<(), Error> {
    for w in warnings {
        writeln!(err, "fwctl: warning: {w}").map_err(super::output_error)?;
    }
    Ok(())
}

impl RulesJob {
    /// Runs the job; returns what goes to stdout.
    pub fn run<T: Transport>(
        &self,
        client: &mut Client<T>,
        json: bool,
        err: &mut dyn std::io::Write,
    ) -> Result<String, Error> {
        match self {
            RulesJob::Edit(kind, edit) => {
                let (_, warnings) = edit_table(client, *kind, |t| edit.apply(t))?;
                warn(err, &warnings)?;
                Ok(String::new())
            }
            RulesJob::List(kind, chain) => {
                let t = Installed::fetch(client)?.table_or_new(*kind);
                let only = chain
                    .as_deref()
                    .map(|c| resolve_chain(&t, c))
                    .transpose()
                    .map_err(|m| Error::Rules(format!("{kind}: {m}")))?;
                if json {
                    format::list_json(&t, only)
                } else {
                    Ok(format::list_table(&t, only))
                }
            }
            RulesJob::Save { counters } => {
                let mut rs = Installed::fetch(client)?.ruleset();
                if !counters {
                    rs.tables.iter_mut().for_each(zero_counters);
                }
                Ok(nat::text::print(&rs))
            }
            RulesJob::Restore {
                file,
                check,
                counters,
            } => {
                let (name, text) = read_input(file.as_deref())?;
                let mut rs =
                    nat::text::parse(&text).map_err(|e| Error::Rules(format!("{name}: {e}")))?;
                if rs.tables.is_empty() {
                    return Ok(String::new());
                }
                if !counters {
                    rs.tables.iter_mut().for_each(zero_counters);
                }
                let opts = ReplaceOptions {
                    generation: None,
                    check: *check,
                    counters: *counters,
                };
                let (_, warnings) = replace(client, &rs.tables, opts)?;
                warn(err, &warnings)?;
                Ok(String::new())
            }
            RulesJob::Stats => {
                let s = RulesStats::fetch(client)?;
                if json {
                    format::stats_json(&s)
                } else {
                    Ok(format::stats_table(&s))
                }
            }
            RulesJob::Unload(kind) => {
                unload(client, *kind)?;
                Ok(String::new())
            }
        }
    }
}

fn zero_counters(t: &mut TableSpec) {
    t.set_counters(&vec![Counter::default(); t.entry_count()]);
}

/// The restore input and its name for messages.
fn read_input(file: Option<&std::path::Path>) -> Result<(String, String), Error> {
    let mut text = String::new();
    match file.filter(|p| p.as_os_str() != "-") {
        Some(p) => {
            let name = p.display().to_string();
            std::fs::File::open(p)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(|e| Error::io(&format!("reading {name}"), e))?;
            Ok((name, text))
        }
        None => {
            std::io::stdin()
                .lock()
                .read_to_string(&mut text)
                .map_err(|e| Error::io("reading standard input", e))?;
            Ok(("<stdin>".to_owned(), text))
        }
    }
}
