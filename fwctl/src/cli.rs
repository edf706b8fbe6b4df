//! The `fwctl` command line: its arguments (clap derive), checked into a
//! [`Job`], and what each job does over a [`Client`].
//!
//! `main` parses a [`Cli`], turns it into a [`Job`] with [`Cli::job`] (bad
//! combinations of arguments are refused there, before any netlink traffic,
//! as clap errors with exit status 2), connects, and calls [`Job::run`] with
//! stdout and stderr. The tests call the same with a fake kernel.

use std::{
    collections::HashSet,
    io::{self, Write},
    net::IpAddr,
};

use clap::{Args, Parser, Subcommand, ValueEnum};
use nat::rule::TableKind;
use rfw_abi::ct_config;

use crate::{
    ct::{
        format::{config_json, config_table, conn_json, conntrack_line, stats_json, stats_table},
        input::{self, Filter, Prefix, StateFilter},
        Checksum, ConfigChange, Conn, CtConfig, CtStats, CtTuple, Direction, L4Kind, Tracking,
    },
    error::{Error, ENOENT},
    netlink::{Client, Transport},
    rfw_msg::{describe, RfwMessage},
    stats::StatsReport,
};

/// Configure and inspect rfw, the connection-tracking and NAT engine.
#[derive(Debug, Parser)]
#[command(name = "fwctl", version)]
pub struct Cli {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `-o`: the output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// JSON for programs.
    Json,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per-hook packet and byte counters of this network namespace, and
    /// whether they count.
    #[command(long_about = HOOK_STATS_ABOUT)]
    Stats(StatsArgs),
    /// Connection tracking: connections, statistics, timeouts, limit, when
    /// to track.
    #[command(subcommand)]
    Ct(CtCommand),
    /// The filter table (INPUT, FORWARD, OUTPUT): add, insert, delete,
    /// list, flush rules; policies; user chains.
    #[command(subcommand)]
    Filter(TableCommand),
    /// The nat table (PREROUTING, INPUT, OUTPUT, POSTROUTING): DNAT, SNAT,
    /// MASQUERADE, REDIRECT rules.
    #[command(subcommand)]
    Nat(TableCommand),
    /// The mangle table (all five hooks): MARK, TOS, TTL rules.
    #[command(subcommand)]
    Mangle(TableCommand),
    /// Print the whole ruleset as text (what restore reads).
    #[command(long_about = ruleset::SAVE_ABOUT)]
    Save(SaveArgs),
    /// Replace the tables a text file names, all at once.
    #[command(long_about = ruleset::RESTORE_ABOUT)]
    Restore(RestoreArgs),
    /// Rule-path statistics.
    #[command(subcommand)]
    Rules(RulesCommand),
}

const LIST_ABOUT: &str = "\
List the connections of this network namespace, one line each, as `conntrack -L` prints them:

  tcp      6 431999 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=5201 packets=10 bytes=800 src=10.0.2.2 dst=10.0.1.2 sport=5201 dport=40000 packets=8 bytes=600 [ASSURED]
  udp      17 29 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 packets=1 bytes=60 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 sport=53 dport=5353 packets=0 bytes=0
  icmp     1 29 src=10.0.1.2 dst=10.0.2.2 type=8 code=0 id=1234 packets=1 bytes=84 src=10.0.2.2 dst=10.0.1.2 type=0 code=0 id=1234 packets=1 bytes=84

That is: the protocol (name and number), the seconds until the entry expires (rounded down), the TCP state (TCP only), the original direction's tuple and counters, [UNREPLIED] if no reply was seen yet, the reply direction's tuple and counters (NAT shows here), and [OFFLOAD] if the flow is in rfw's fast path (an --offload rule; see `fwctl filter add --help`), else [ASSURED] if assured (an offloaded flow's ASSURED is not shown, as by `conntrack -L`). ICMP and ICMPv6 show type, code and identifier instead of ports. rfw has no marks and no use counts, so there is no mark= and no use=. After the list, stderr gets \"fwctl: N flow entries have been shown.\".

Filters are combined: a connection is shown if it matches all of them. -s and -d are matched against the original direction only (its source and its destination), as `conntrack -L -s/-d` do; the reply tuple's addresses are not looked at.

With -o json: a JSON array, one connection object per line: {\"proto\":\"tcp\",\"proto_num\":6,\"state\":\"ESTABLISHED\",\"timeout_s\":431999,\"orig\":{\"src\":..,\"dst\":..,\"sport\":..,\"dport\":..,\"packets\":..,\"bytes\":..},\"reply\":{..},\"flags\":[\"ASSURED\"],\"status\":14}. ICMP tuples have type, code and id instead of sport and dport; state is null but for TCP; flags are the bracketed words of the table; status is the raw status bits.

The list is printed while the kernel's dump arrives, so it works for tables of any size.

Examples:
  fwctl ct list
  fwctl ct list -p tcp --state ESTABLISHED
  fwctl ct list -s 10.0.1.0/24 -d 10.0.2.2
  fwctl ct list -p icmpv6 -s 2001:db8::/32
  fwctl ct list --state UNREPLIED
  fwctl -o json ct list -p udp";

const COUNT_ABOUT: &str = "\
Print the number of connection tracking entries of this network namespace (the COUNT of `fwctl ct stats`).

It includes entries not yet confirmed (created by a packet that has not left its last hook yet), which `fwctl ct list` does not show, so it can be a little higher than the number of lines listed.

Examples:
  fwctl ct count
  fwctl -o json ct count      # {\"count\":N}";

const DELETE_ABOUT: &str = "\
Delete one connection, given by its original direction's tuple (or, with --reply, by its reply direction's tuple). Prints nothing on success; if there is no such connection, prints \"fwctl: no such connection\" and exits with status 1.

Ports are required for TCP, UDP, UDP-Lite, SCTP and DCCP; ICMP and ICMPv6 take --icmp-type and --icmp-id (and --icmp-code, 0 if not given) instead; other protocols take neither.

Examples:
  fwctl ct delete -p tcp -s 10.0.1.2 -d 10.0.2.2 --sport 40000 --dport 5201
  fwctl ct delete -p tcp -s 10.0.2.2 -d 10.0.1.2 --sport 5201 --dport 40000 --reply
  fwctl ct delete -p udp -s 2001:db8::1 -d 2001:db8::2 --sport 5353 --dport 53
  fwctl ct delete -p icmp -s 10.0.1.2 -d 10.0.2.2 --icmp-type 8 --icmp-code 0 --icmp-id 1234
  fwctl ct delete -p gre -s 10.0.1.2 -d 10.0.2.2";

const FLUSH_ABOUT: &str = "\
Delete every connection of this network namespace and print how many: \"N connections deleted\" (\"1 connection deleted\").

Examples:
  fwctl ct flush
  fwctl -o json ct flush      # {\"deleted\":N}";

const HOOK_STATS_ABOUT: &str = "\
Print rfw's packet and byte counters of this network namespace, one line per family (ipv4, ipv6) and hook (prerouting, input, forward, output, postrouting), as nft's counters count a base chain's packets.

Counting is off by default: a namespace that neither tracks nor counts has no rfw hook at all and pays nothing per packet (nf_conntrack's hooks are absent from namespaces whose rules do not need them too), and a tracking namespace has hooks only where its rules need them. `fwctl stats counting on` registers rfw's hooks at every hook point of the namespace and counts from then on; `fwctl stats counting off` stops counting (the counters keep their values) and drops the hooks that only counted. While counting is off the counters stand still and `fwctl stats` says so on stderr.

Examples:
  fwctl stats counting on
  fwctl stats
  fwctl -o json stats         # {\"counting\":true,\"hooks\":[{\"family\":\"ipv4\",\"hook\":\"prerouting\",\"packets\":N,\"bytes\":N},..]}
  fwctl stats counting        # counting: on";

const STATS_ABOUT: &str = "\
Print the connection table's statistics as aligned \"name value\" lines: count, limit, unconfirmed, buckets, entry_bytes, found, new, related, invalid, ignored, early_drop, drop, global_full, insert_failed, clash_resolved, chain_too_long, long_chain_lookups, hashes, allocations, expired, deleted, unconfirmed_reaped, slot_hits, slot_misses, fallback_found, fallback_not_found, and the fast path's (`--offload` rules): offloaded (flows that entered it), offload_packets (packets it forwarded), offload_punted (packets of offloaded flows it handed to the normal path: IP options, fragments, TTL <= 1, larger than the MTU, an unwritable header), and why flows left it: offload_end_tcp (FIN or RST), offload_end_expired, offload_end_route (a route change), offload_end_device (a device down or gone), offload_end_ruleset (a ruleset replace no longer offloads them), offload_end_deleted (the connection was deleted); then, for each reason with a nonzero count, \"invalid.<reason> N\" (why packets were INVALID) and \"malformed.<kind> N\" (packets that could not be parsed).

Examples:
  fwctl ct stats
  fwctl -o json ct stats      # {\"count\":N,..,\"invalid_reasons\":{..},\"malformed_reasons\":{..}}";

const TIMEOUT_ABOUT: &str = "\
Without arguments, print the settings: \"tracking: MODE (STATE)\" (see `fwctl ct tracking`), \"checksum: on|off\" (see `fwctl ct checksum`), then aligned: \"limit N\", \"buckets N\", and one line per timeout, \"NAME SECONDS\" (with up to 3 decimals when not whole).

With NAME VALUE pairs, change those timeouts (all or none: the kernel checks every pair before applying any) and print the new settings. VALUE is in seconds (30, 0.5) or has a unit: ms, s, m, h or d (500ms, 90s, 5m, 2h, 5d); it must be a whole number of milliseconds from 1ms to 2147483647ms (about 24.8 days).

Names: tcp_syn_sent, tcp_syn_recv, tcp_established, tcp_fin_wait, tcp_close_wait, tcp_last_ack, tcp_time_wait, tcp_close, tcp_syn_sent2, tcp_retrans, tcp_unacknowledged, udp_unreplied, udp_replied, icmp, generic.

Examples:
  fwctl ct timeout
  fwctl ct timeout tcp_established 5d
  fwctl ct timeout udp_unreplied 30 udp_replied 180 icmp 0.5
  fwctl -o json ct timeout    # {\"tracking\":\"auto\",\"active\":true,\"limit\":N,\"buckets\":N,\"checksum\":true,\"timeouts_ms\":{\"tcp_syn_sent\":120000,..}}";

const LIMIT_ABOUT: &str = "\
Set the maximum number of connection tracking entries of this network namespace (1 to 67108864) and print the new settings, as `fwctl ct timeout` does. When the table is full, a new connection first evicts an unassured one; if there is none, its packet is dropped (counted: `fwctl ct stats` drop).

A namespace starts with the module's default limit (the `max` parameter; else the bucket count, sized from RAM as nf_conntrack's). A namespace that belongs to a user namespace other than the initial one (made by `unshare -Urn`, or by a container runtime for an unprivileged container) may lower its limit and raise it back up to that default, not above: the kernel refuses with \"only namespaces of the initial user namespace may set a limit above N\" (Operation not permitted). Namespaces the host makes (`ip netns add`) may set any limit. All namespaces together hold at most the module's `max_total` entries (/sys/module/rfw/parameters/max_total); a packet dropped at that cap while its namespace is under its own limit is counted in `fwctl ct stats` global_full too.

Examples:
  fwctl ct limit 262144
  fwctl ct timeout            # shows the current limit";

const TRACKING_ABOUT: &str = "\
Without an argument, print the settings, as `fwctl ct timeout` does; their first line is when this network namespace tracks connections and whether it does now:

  tracking: auto (active)
  tracking: auto (inactive: no rules loaded)
  tracking: on (active)

With auto or on, set when this namespace tracks connections and print the new settings.

auto, the default, tracks while the namespace has a ruleset (any table loaded: filter, nat or mangle) or once a connection was NATed in it; until then rfw does not look at its packets (no hook of rfw's runs there unless `fwctl stats counting on` asked for counting) and they create no connections. This is what nf_conntrack does since Linux 4.10, whose hooks a namespace gets only while one of its rules needs them. on tracks every packet of the namespace, rules or not. When tracking stops (auto again, no rules), the entries stay until they expire.

With -o json: {\"tracking\":\"auto\"|\"on\",\"active\":true|false,\"limit\":N,\"buckets\":N,\"checksum\":true|false,\"timeouts_ms\":{..}}.

Examples:
  fwctl ct tracking
  fwctl ct tracking on
  fwctl ct tracking auto
  fwctl -o json ct tracking   # {\"tracking\":\"auto\",\"active\":false,..}";

const CHECKSUM_ABOUT: &str = "\
Without an argument, print the settings, as `fwctl ct timeout` does; their second line says whether this network namespace verifies checksums: \"checksum: on\" or \"checksum: off\".

With on or off, set it and print the new settings.

on, the default, verifies the TCP, UDP, ICMP and ICMPv6 checksum of every packet arriving from outside (at PRE_ROUTING) before it is tracked, as nf_conntrack does with net.netfilter.nf_conntrack_checksum=1: a packet whose checksum is wrong is INVALID (counted as malformed.bad_checksum in `fwctl ct stats`) and changes no connection, so that a forged or damaged RST cannot end one. The kernel trusts a network device that verified the checksum already. UDP without a checksum (0) passes. Locally generated packets are not verified. off tracks packets whatever their checksums, as nf_conntrack_checksum=0 does.

With -o json: {..,\"checksum\":true|false,..}.

Examples:
  fwctl ct checksum
  fwctl ct checksum off
  fwctl ct checksum on";

/// `fwctl ct ...`.
#[derive(Debug, Subcommand)]
pub enum CtCommand {
    /// List connections, as `conntrack -L` does.
    #[command(long_about = LIST_ABOUT)]
    List(ListArgs),
    /// Number of entries, including not yet confirmed ones.
    #[command(long_about = COUNT_ABOUT)]
    Count,
    /// Delete one connection, given by a tuple.
    #[command(long_about = DELETE_ABOUT)]
    Delete(DeleteArgs),
    /// Delete every connection.
    #[command(long_about = FLUSH_ABOUT)]
    Flush,
    /// Table statistics and INVALID reasons.
    #[command(long_about = STATS_ABOUT)]
    Stats,
    /// Show the settings (tracking, checksum, limit, timeouts), or change timeouts.
    #[command(long_about = TIMEOUT_ABOUT)]
    Timeout(TimeoutArgs),
    /// Set the maximum number of entries.
    #[command(long_about = LIMIT_ABOUT)]
    Limit(LimitArgs),
    /// Show or set when this namespace tracks connections: auto or on.
    #[command(long_about = TRACKING_ABOUT)]
    Tracking(TrackingArgs),
    /// Show or set whether checksums are verified: on or off.
    #[command(long_about = CHECKSUM_ABOUT)]
    Checksum(ChecksumArgs),
}

/// `fwctl ct list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this protocol: tcp, udp, udplite, icmp, icmpv6, sctp, dccp, gre
    /// or a number.
    #[arg(short = 'p', long = "proto", value_name = "PROTO", value_parser = input::parse_proto)]
    pub proto: Option<u8>,
    /// Only connections whose original source is ADDR (or in ADDR/LEN).
    #[arg(short = 's', long = "src", visible_alias = "orig-src", value_name = "ADDR[/LEN]",
          value_parser = Prefix::parse)]
    pub src: Option<Prefix>,
    /// Only connections whose original destination is ADDR (or in ADDR/LEN).
    #[arg(short = 'd', long = "dst", visible_alias = "orig-dst", value_name = "ADDR[/LEN]",
          value_parser = Prefix::parse)]
    pub dst: Option<Prefix>,
    /// Only connections in this TCP state (ESTABLISHED, TIME_WAIT, ...; any
    /// case), or with this flag: ASSURED, or UNREPLIED (no reply seen).
    #[arg(long, value_name = "STATE", value_parser = StateFilter::parse)]
    pub state: Option<StateFilter>,
}

/// `fwctl ct delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Protocol: tcp, udp, udplite, icmp, icmpv6, sctp, dccp, gre or a number.
    #[arg(short = 'p', long = "proto", value_name = "PROTO", value_parser = input::parse_proto)]
    pub proto: u8,
    /// Source address of the tuple.
    #[arg(
        short = 's',
        long = "src",
        visible_alias = "orig-src",
        value_name = "ADDR"
    )]
    pub src: IpAddr,
    /// Destination address of the tuple.
    #[arg(
        short = 'd',
        long = "dst",
        visible_alias = "orig-dst",
        value_name = "ADDR"
    )]
    pub dst: IpAddr,
    /// Source port (protocols with ports).
    #[arg(long, value_name = "PORT")]
    pub sport: Option<u16>,
    /// Destination port (protocols with ports).
    #[arg(long, value_name = "PORT")]
    pub dport: Option<u16>,
    /// ICMP type (icmp, icmpv6).
    #[arg(long = "icmp-type", value_name = "TYPE", conflicts_with_all = ["sport", "dport"])]
    pub icmp_type: Option<u8>,
    /// ICMP code (icmp, icmpv6); 0 if not given.
    #[arg(long = "icmp-code", value_name = "CODE", conflicts_with_all = ["sport", "dport"])]
    pub icmp_code: Option<u8>,
    /// ICMP identifier (icmp, icmpv6).
    #[arg(long = "icmp-id", value_name = "ID", conflicts_with_all = ["sport", "dport"])]
    pub icmp_id: Option<u16>,
    /// The tuple given is the reply direction's (sent as CT_REPLY).
    #[arg(long)]
    pub reply: bool,
}

/// `fwctl ct timeout`.
#[derive(Debug, Args)]
pub struct TimeoutArgs {
    /// Timeouts to set: a name, then its value in seconds or with a unit
    /// (ms, s, m, h, d); as many pairs as wanted.
    #[arg(value_name = "NAME VALUE")]
    pub pairs: Vec<String>,
}

/// `fwctl ct limit`.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// The new limit, 1 to 67108864.
    #[arg(value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ct_config::LIMIT_MAX)))]
    pub limit: u32,
}

/// `fwctl ct tracking`.
#[derive(Debug, Args)]
pub struct TrackingArgs {
    /// The new mode; without it, print the settings.
    #[arg(value_name = "MODE", value_enum)]
    pub mode: Option<Tracking>,
}

/// `fwctl stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Without a subcommand, print the counters.
    #[command(subcommand)]
    pub command: Option<StatsCommand>,
}

/// `fwctl stats ...`.
#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// Show or set whether this namespace's packets are counted: on or off.
    #[command(long_about = HOOK_STATS_ABOUT)]
    Counting(CountingArgs),
}

/// `fwctl stats counting`.
#[derive(Debug, Args)]
pub struct CountingArgs {
    /// on or off; without it, print whether counting is on.
    #[arg(value_name = "MODE", value_enum)]
    pub mode: Option<Counting>,
}

/// Whether rfw counts a namespace's packets per hook
/// ([`rfw_abi::attr::STATS_COUNTING`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Counting {
    /// count every packet at every hook point (registers rfw's hooks there)
    On,
    /// do not count (the default)
    Off,
}

/// `fwctl ct checksum`.
#[derive(Debug, Args)]
pub struct ChecksumArgs {
    /// on or off; without it, print the settings.
    #[arg(value_name = "MODE", value_enum)]
    pub mode: Option<Checksum>,
}

/// Arguments clap accepted but that do not fit together; `main` reports it
/// as a clap error of the subcommand `path` (exit status 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError {
    /// The subcommand, e.g. `["ct", "delete"]`.
    pub path: [&'static str; 2],
    /// One line.
    pub message: String,
}

/// One checked command, ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    /// `fwctl stats`.
    Stats,
    /// `fwctl stats counting [on|off]`: `Some(on)` sets.
    StatsCounting(Option<bool>),
    /// `fwctl ct list`.
    CtList(Filter),
    /// `fwctl ct count`.
    CtCount,
    /// `fwctl ct delete`.
    CtDelete(Direction, CtTuple),
    /// `fwctl ct flush`.
    CtFlush,
    /// `fwctl ct stats`.
    CtStats,
    /// `fwctl ct timeout`, `fwctl ct tracking`, `fwctl ct checksum`
    /// without arguments.
    CtConfigGet,
    /// `fwctl ct timeout NAME VALUE...`, `fwctl ct limit N`,
    /// `fwctl ct tracking MODE`, `fwctl ct checksum MODE`.
    CtConfigSet(ConfigChange),
    /// `fwctl filter|nat|mangle ...`, `save`, `restore`, `rules stats`.
    Rules(RulesJob),
}

impl Cli {
    /// Checks what clap could not and returns the job to run.
    pub fn job(&self) -> Result<Job, UsageError> {
        Ok(match &self.command {
            Command::Stats(a) => match &a.command {
                None => Job::Stats,
                Some(StatsCommand::Counting(c)) => {
                    Job::StatsCounting(c.mode.map(|m| m == Counting::On))
                }
            },
            Command::Filter(c) => Job::Rules(table_job(TableKind::Filter, c)?),
            Command::Nat(c) => Job::Rules(table_job(TableKind::Nat, c)?),
            Command::Mangle(c) => Job::Rules(table_job(TableKind::Mangle, c)?),
            Command::Save(a) => Job::Rules(RulesJob::Save {
                counters: a.counters,
            }),
            Command::Restore(a) => Job::Rules(RulesJob::Restore {
                file: a.file.clone(),
                check: a.check,
                counters: a.counters,
            }),
            Command::Rules(RulesCommand::Stats) => Job::Rules(RulesJob::Stats),
            Command::Ct(ct) => match ct {
                CtCommand::List(a) => Job::CtList(Filter {
                    proto: a.proto,
                    src: a.src,
                    dst: a.dst,
                    state: a.state,
                }),
                CtCommand::Count => Job::CtCount,
                CtCommand::Delete(a) => {
                    let (dir, tuple) = a.tuple().map_err(|message| UsageError {
                        path: ["ct", "delete"],
                        message,
                    })?;
                    Job::CtDelete(dir, tuple)
                }
                CtCommand::Flush => Job::CtFlush,
                CtCommand::Stats => Job::CtStats,
                CtCommand::Timeout(a) if a.pairs.is_empty() => Job::CtConfigGet,
                CtCommand::Timeout(a) => {
                    let timeouts =
                        input::parse_timeout_pairs(&a.pairs).map_err(|message| UsageError {
                            path: ["ct", "timeout"],
                            message,
                        })?;
                    Job::CtConfigSet(ConfigChange {
                        timeouts,
                        ..ConfigChange::default()
                    })
                }
                CtCommand::Limit(a) => Job::CtConfigSet(ConfigChange {
                    limit: Some(a.limit),
                    ..ConfigChange::default()
                }),
                CtCommand::Tracking(TrackingArgs { mode: None }) => Job::CtConfigGet,
                CtCommand::Tracking(TrackingArgs { mode: Some(m) }) => {
                    Job::CtConfigSet(ConfigChange {
                        tracking: Some(*m),
                        ..ConfigChange::default()
                    })
                }
                CtCommand::Checksum(ChecksumArgs { mode: None }) => Job::CtConfigGet,
                CtCommand::Checksum(ChecksumArgs { mode: Some(m) }) => {
                    Job::CtConfigSet(ConfigChange {
                        checksum: Some(*m),
                        ..ConfigChange::default()
                    })
                }
            },
        })
    }
}

impl DeleteArgs {
    /// The tuple, with the fields its protocol needs and no others.
    fn tuple(&self) -> Result<(Direction, CtTuple), String> {
        let name = crate::ct::proto_name(self.proto);
        let name = if name == "unknown" {
            format!("protocol {}", self.proto)
        } else {
            name.to_owned()
        };
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            return Err(format!(
                "--src {} and --dst {} are not of the same IP version",
                self.src, self.dst
            ));
        }
        match (self.proto, self.src) {
            (nat::rule::proto::ICMP, IpAddr::V6(_)) => {
                return Err("icmp takes IPv4 addresses; for IPv6 use -p icmpv6".to_owned())
            }
            (nat::rule::proto::ICMPV6, IpAddr::V4(_)) => {
                return Err("icmpv6 takes IPv6 addresses; for IPv4 use -p icmp".to_owned())
            }
            _ => {}
        }
        let ports = self.sport.is_some() || self.dport.is_some();
        let icmp = self.icmp_type.is_some() || self.icmp_code.is_some() || self.icmp_id.is_some();
        let tuple = match L4Kind::of(self.proto) {
            L4Kind::Ports => {
                if icmp {
                    return Err(format!("{name} takes --sport and --dport, not --icmp-*"));
                }
                let (Some(sport), Some(dport)) = (self.sport, self.dport) else {
                    return Err(format!("{name} needs --sport and --dport"));
                };
                CtTuple {
                    proto: self.proto,
                    src: self.src,
                    dst: self.dst,
                    src_port: sport,
                    dst_port: dport,
                }
            }
            L4Kind::Icmp => {
                let (Some(ty), Some(id)) = (self.icmp_type, self.icmp_id) else {
                    return Err(format!("{name} needs --icmp-type and --icmp-id"));
                };
                let code = self.icmp_code.unwrap_or(0);
                CtTuple::icmp(self.proto, self.src, self.dst, ty, code, id)
            }
            L4Kind::None => {
                if ports || icmp {
                    return Err(format!("{name} has no ports and no ICMP fields"));
                }
                CtTuple {
                    proto: self.proto,
                    src: self.src,
                    dst: self.dst,
                    src_port: 0,
                    dst_port: 0,
                }
            }
        };
        let dir = if self.reply {
            Direction::Reply
        } else {
            Direction::Orig
        };
        Ok((dir, tuple))
    }
}

/// A failed write to stdout or stderr. `main` treats a closed pipe
/// (`fwctl ct list | head`) as success.
pub fn output_error(e: io::Error) -> Error {
    Error::io("writing output", e)
}

/// Whether `e` is a write to a reader that went away.
pub fn is_broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { what, source } if what == "writing output"
        && source.kind() == io::ErrorKind::BrokenPipe)
}

impl Job {
    /// Runs the job: results to `out`, the `ct list` summary and warnings to
    /// `err`. `out` is flushed before anything goes to `err`.
    pub fn run<T: Transport>(
        &self,
        client: &mut Client<T>,
        output: Output,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(), Error> {
        let json = output == Output::Json;
        let text = match self {
            Job::Stats => {
                let report = StatsReport::fetch(client)?;
                if report.counting == Some(false) {
                    let _ = writeln!(
                        err,
                        "fwctl: counting is off in this namespace (`fwctl stats counting on`)"
                    );
                }
                if json {
                    report.to_json()?
                } else {
                    report.to_table()
                }
            }
            Job::StatsCounting(set) => {
                let report = match set {
                    Some(on) => StatsReport::set_counting(client, *on)?,
                    None => StatsReport::fetch(client)?,
                };
                let on = report.counting.unwrap_or(true);
                if json {
                    format!("{{\"counting\":{on}}}\n")
                } else {
                    format!("counting: {}\n", if on { "on" } else { "off" })
                }
            }
            Job::CtList(filter) => return list(client, filter, json, out, err),
            Job::Rules(job) => job.run(client, json, err)?,
            Job::CtCount => {
                let count = fetch_stats(client)?.count;
                if json {
                    format!("{{\"count\":{count}}}\n")
                } else {
                    format!("{count}\n")
                }
            }
            Job::CtDelete(dir, tuple) => match client.request(RfwMessage::ct_delete(*dir, tuple)) {
                Ok(_) => String::new(),
                Err(Error::Kernel {
                    errno: ENOENT,
                    extack,
                    ..
                }) => return Err(Error::NoSuchConnection { extack }),
                Err(e) => return Err(e),
            },
            Job::CtFlush => {
                let request = RfwMessage::ct_flush();
                let what = describe(request.cmd);
                let n = client
                    .request(request)?
                    .iter()
                    .find_map(RfwMessage::ct_count)
                    .ok_or_else(|| Error::protocol(what, "reply without CT_COUNT"))?;
                if json {
                    format!("{{\"deleted\":{n}}}\n")
                } else if n == 1 {
                    "1 connection deleted\n".to_owned()
                } else {
                    format!("{n} connections deleted\n")
                }
            }
            Job::CtStats => {
                let stats = fetch_stats(client)?;
                if json {
                    stats_json(&stats)? + "\n"
                } else {
                    stats_table(&stats)
                }
            }
            Job::CtConfigGet | Job::CtConfigSet(_) => {
                let request = match self {
                    Job::CtConfigSet(change) => RfwMessage::ct_config_set(change),
                    _ => RfwMessage::ct_config_get(),
                };
                let config = fetch_config(client, request)?;
                if json {
                    config_json(&config)? + "\n"
                } else {
                    config_table(&config)
                }
            }
        };
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(output_error)
    }
}

fn fetch_stats<T: Transport>(client: &mut Client<T>) -> Result<CtStats, Error> {
    let request = RfwMessage::ct_stats_get();
    let what = describe(request.cmd);
    let replies = client.request(request)?;
    match replies.iter().find_map(RfwMessage::ct_stats) {
        Some(stats) => stats.map_err(|e| Error::protocol(what, e)),
        None => Err(Error::protocol(what, "reply without CT_STATS")),
    }
}

fn fetch_config<T: Transport>(
    client: &mut Client<T>,
    request: RfwMessage,
) -> Result<CtConfig, Error> {
    let what = describe(request.cmd);
    let replies = client.request(request)?;
    match replies.iter().find_map(RfwMessage::ct_config) {
        Some(config) => config.map_err(|e| Error::protocol(what, e)),
        None => Err(Error::protocol(what, "reply without CT_CONFIG")),
    }
}

/// Dumps `fwctl ct list` makes at most when the kernel flags them
/// interrupted (`NLM_F_DUMP_INTR`).
const LIST_TRIES: usize = 4;

/// `fwctl ct list`: prints each connection as its message arrives.
///
/// rfw's dumps are exact (each connection in the table for the whole dump
/// is sent once); the kernel flags a dump `NLM_F_DUMP_INTR` only when it
/// could not keep that. Then fwctl dumps again and prints only the
/// connections it has not printed yet (by original tuple), up to
/// [`LIST_TRIES`] dumps in all, and warns if the last one was interrupted
/// too. Output stays streamed: a connection printed by an interrupted
/// dump was in the table when it was sent.
fn list<T: Transport>(
    client: &mut Client<T>,
    filter: &Filter,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let mut shown: u64 = 0;
    let mut printed: HashSet<CtTuple> = HashSet::new();
    if json {
        out.write_all(b"[").map_err(output_error)?;
    }
    let mut interrupted = false;
    for attempt in 0..LIST_TRIES {
        let request = RfwMessage::ct_dump();
        let what = describe(request.cmd);
        let mut dump = client.dump(request)?;
        for msg in dump.by_ref() {
            let conn = Conn::from_attrs(&msg?.attrs).map_err(|e| Error::protocol(what, e))?;
            if !filter.matches(&conn) {
                continue;
            }
            // The set is only needed once a dump was interrupted, but it
            // must then know what the first dump printed.
            if !printed.insert(conn.orig) && attempt > 0 {
                continue;
            }
            let line = if json {
                let sep = if shown == 0 { "\n" } else { ",\n" };
                format!("{sep}{}", conn_json(&conn)?)
            } else {
                conntrack_line(&conn) + "\n"
            };
            out.write_all(line.as_bytes()).map_err(output_error)?;
            shown += 1;
        }
        interrupted = dump.interrupted();
        if !interrupted {
            break;
        }
    }
    if json {
        let end: &[u8] = if shown == 0 { b"]\n" } else { b"\n]\n" };
        out.write_all(end).map_err(output_error)?;
    }
    out.flush().map_err(output_error)?;
    let mut summary = String::new();
    if interrupted {
        summary.push_str(&format!(
            "fwctl: warning: the table changed during each of {LIST_TRIES} dumps; \
             connections may be missing\n"
        ));
    }
    summary.push_str(&format!("fwctl: {shown} flow entries have been shown.\n"));
    err.write_all(summary.as_bytes()).map_err(output_error)
}

mod ruleset;
pub use ruleset::{
    escape_rule_words, table_job, ChainArg, ChainCommand, PolicyArg, PolicyArgs, RestoreArgs,
    RuleArgs, RuleDeleteArgs, RulesCommand, RulesJob, SaveArgs, TableCommand,
};

#[cfg(all(test, target_endian = "little"))]
mod ruleset_tests;
#[cfg(all(test, target_endian = "little"))]
mod tests;
