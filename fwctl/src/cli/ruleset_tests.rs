//! Every ruleset command end to end: arguments through clap (after
//! [`escape_rule_words`], as `main` does) and [`Cli::job`], requests
//! through [`Client`] to the fake kernel's model of rfw's ruleset commands
//! (fake_kernel.rs: blobs decoded and validated by the `nat` crate, EAGAIN
//! on a stale generation, RULES_CHECK, all tables or none), and the exact
//! output.

use std::{cell::RefCell, rc::Rc};

use clap::Parser;
use nat::{
    rule::{Counter, Policy, PortRange, TableKind, Target},
    spec::TableSpec,
};
use rfw_abi::{attr, rules_stats, Cmd};

use super::*;
use crate::fake_kernel::{FakeKernel, FakeRules, NLA_F_NESTED};

struct Outcome {
    result: Result<(), Error>,
    out: String,
    err: String,
}

impl Outcome {
    fn failure(&self) -> String {
        match &self.result {
            Ok(()) => panic!("succeeded: {}", self.out),
            Err(e) => format!("fwctl: {e}"),
        }
    }

    fn ok(&self) -> &str {
        if let Err(e) = &self.result {
            panic!("failed: fwctl: {e}");
        }
        &self.out
    }
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(escape_rule_words(
        std::iter::once("fwctl").chain(args.iter().copied()),
    ))
}

fn exec(args: &[&str], kernel: FakeKernel) -> Outcome {
    let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let job = cli
        .job()
        .unwrap_or_else(|e| panic!("{args:?}: {}", e.message));
    let mut client = Client::new(kernel).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = job.run(&mut client, cli.output, &mut out, &mut err);
    Outcome {
        result,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

type Model = Rc<RefCell<FakeRules>>;

/// A fake kernel over `model` (shared: commands run one after another).
fn kernel_of(model: &Model) -> FakeKernel {
    FakeRules::kernel_of(model)
}

fn model() -> Model {
    Rc::new(RefCell::new(FakeRules::default()))
}

/// Runs `fwctl ARGS` against `model`.
fn run(model: &Model, args: &[&str]) -> Outcome {
    exec(args, kernel_of(model))
}

fn ok(model: &Model, args: &[&str]) -> String {
    run(model, args).ok().to_owned()
}

/// (chain, handle, options) of the installed table of `kind`.
fn rules_of(model: &Model, kind: TableKind) -> Vec<(String, u32, String)> {
    let t = model.borrow().table(kind).unwrap().spec();
    t.chains
        .iter()
        .flat_map(|c| {
            c.rules.iter().map(|r| {
                (
                    c.name.to_string(),
                    r.handle,
                    nat::text::rule_options(&r.rule, &t),
                )
            })
        })
        .collect()
}

fn counter_of(model: &Model, kind: TableKind, handle: u32) -> Counter {
    let t = model.borrow().table(kind).unwrap().spec();
    let (c, r) = t.find_handle(handle).unwrap();
    t.chains[c].rules[r].counter
}

fn cmds(model: &Model) -> Vec<Cmd> {
    model
        .borrow()
        .requests
        .iter()
        .map(|(c, _)| Cmd::from_u8(*c).unwrap())
        .collect()
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("fwctl-test-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_readme_example_lands_in_nat_prerouting() {
    let m = model();
    // Unlike iptables, a NAT port needs no -p: the address applies to
    // every packet, the port to the protocols with ports.
    assert_eq!(
        ok(&m, &["nat", "add", "--to-destination", "1.2.3.4:8080"]),
        ""
    );
    assert_eq!(cmds(&m), [Cmd::RulesGet, Cmd::RulesReplace]);
    assert_eq!(
        rules_of(&m, TableKind::Nat),
        [(
            "PREROUTING".into(),
            1,
            "--to-destination 1.2.3.4:8080".into()
        )]
    );
    let t = m.borrow().table(TableKind::Nat).unwrap().spec();
    let range = match t.chains[0].rules[0].rule.target {
        Target::Dnat(r) => r,
        t => panic!("not DNAT: {t:?}"),
    };
    assert_eq!(range.ports, Some(PortRange::single(8080)));
    assert_eq!(t.chains[0].rules[0].rule.matches.proto, None);
    // A -p without ports can never use the port: refused, in one line.
    m.borrow_mut().requests.clear();
    assert_eq!(
        run(
            &m,
            &["nat", "add", "-p", "icmp", "--to-destination", "1.2.3.4:80"]
        )
        .failure(),
        "fwctl: nat: rule 2 in chain PREROUTING: \
         a NAT port range needs -p tcp|udp|udplite|dccp or no -p"
    );
    assert_eq!(cmds(&m), [Cmd::RulesGet]);
    assert_eq!(ok(&m, &["nat", "add", "--to-destination", "1.2.3.4"]), "");
    assert_eq!(
        ok(
            &m,
            &[
                "nat",
                "add",
                "-p",
                "tcp",
                "--to-destination",
                "1.2.3.4:8080"
            ]
        ),
        ""
    );
    assert_eq!(
        rules_of(&m, TableKind::Nat),
        [
            (
                "PREROUTING".into(),
                1,
                "--to-destination 1.2.3.4:8080".into()
            ),
            ("PREROUTING".into(), 2, "--to-destination 1.2.3.4".into()),
            (
                "PREROUTING".into(),
                3,
                "-p tcp --to-destination 1.2.3.4:8080".into()
            ),
        ]
    );
    m.borrow_mut().requests.clear();
    ok(&m, &["nat", "delete", "--handle", "2"]);
    // Only the nat table was loaded; one read, one replace.
    assert!(m.borrow().table(TableKind::Filter).is_none());
    assert_eq!(cmds(&m), [Cmd::RulesGet, Cmd::RulesReplace]);
    assert_eq!(m.borrow().generation, 5);
    assert_eq!(
        ok(&m, &["nat", "list"]),
        "\
Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
HANDLE  PACKETS  BYTES  RULE
     1        0      0  --to-destination 1.2.3.4:8080
     3        0      0  -p tcp --to-destination 1.2.3.4:8080

Chain INPUT (policy ACCEPT 0 packets, 0 bytes)

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)

Chain POSTROUTING (policy ACCEPT 0 packets, 0 bytes)
"
    );
}

#[test]
fn nat_targets_default_their_chain_and_rule_words_keep_o() {
    let m = model();
    // `-o` first: the output interface, not fwctl's output format.
    ok(&m, &["nat", "add", "-o", "ppp0", "--masquerade"]);
    ok(
        &m,
        &[
            "nat",
            "add",
            "-p",
            "tcp",
            "-o",
            "eth1",
            "--to-source",
            "192.0.2.1:1024-2047",
            "--fully-random",
        ],
    );
    ok(
        &m,
        &[
            "nat",
            "add",
            "-6",
            "-p",
            "tcp",
            "--dport",
            "80",
            "--to-destination",
            "[2001:db8::10]-[2001:db8::12]:8080",
            "--persistent",
        ],
    );
    ok(
        &m,
        &[
            "nat",
            "add",
            "-p",
            "tcp",
            "--dport",
            "80",
            "--redirect",
            "--to-ports",
            "3128",
            "--random",
        ],
    );
    ok(
        &m,
        &[
            "nat",
            "add",
            "--chain",
            "output",
            "-p",
            "udp",
            "--dport",
            "53",
            "--to-destination",
            "10.0.0.1",
        ],
    );
    assert_eq!(
        rules_of(&m, TableKind::Nat),
        [
            ("PREROUTING".into(), 3, "-6 -p tcp --dport 80 --to-destination [2001:db8::10]-[2001:db8::12]:8080 --persistent".into()),
            ("PREROUTING".into(), 4, "-p tcp --dport 80 --redirect --to-ports 3128 --random".into()),
            ("OUTPUT".into(), 5, "-p udp --dport 53 --to-destination 10.0.0.1".into()),
            ("POSTROUTING".into(), 1, "-o ppp0 --masquerade".into()),
            ("POSTROUTING".into(), 2, "-p tcp -o eth1 --to-source 192.0.2.1:1024-2047 --fully-random".into()),
        ]
    );
    // The global -o still works before the table.
    let o = run(&m, &["-o", "json", "nat", "list", "--chain", "postrouting"]);
    assert_eq!(
        o.ok(),
        "{\"table\":\"nat\",\"chains\":[{\"name\":\"POSTROUTING\",\"policy\":\"ACCEPT\",\
         \"packets\":0,\"bytes\":0,\"references\":0,\"rules\":[\
         {\"handle\":1,\"packets\":0,\"bytes\":0,\"rule\":\"-o ppp0 --masquerade\"},\
         {\"handle\":2,\"packets\":0,\"bytes\":0,\"rule\":\"-p tcp -o eth1 --to-source 192.0.2.1:1024-2047 --fully-random\"}]}]}\n"
    );
}

#[test]
fn filter_and_mangle_need_a_chain_and_nat_needs_one_for_other_targets() {
    let m = model();
    assert_eq!(
        run(&m, &["filter", "add", "--accept"]).failure(),
        "fwctl: filter: --chain is needed (filter chains: INPUT, FORWARD, OUTPUT)"
    );
    assert_eq!(
        run(&m, &["mangle", "add", "--ttl-set", "64"]).failure(),
        "fwctl: mangle: --chain is needed (mangle chains: PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING)"
    );
    assert!(run(&m, &["nat", "add", "--accept"])
        .failure()
        .starts_with("fwctl: nat: --chain is needed"));
    // Nothing was replaced.
    assert_eq!(m.borrow().replaces(), 0);
}

#[test]
fn a_bad_rule_is_refused_in_one_line_and_nothing_changes() {
    let m = model();
    ok(
        &m,
        &[
            "filter", "add", "--chain", "INPUT", "-p", "tcp", "--dport", "22", "--accept",
        ],
    );
    let before = m.borrow().tables.clone();
    let generation = m.borrow().generation;
    let cases: [(&[&str], &str); 5] = [
        (
            &["filter", "add", "--chain", "INPUT", "--dport", "80", "--accept"],
            "fwctl: filter: rule 2 in chain INPUT: --sport/--dport need -p tcp|udp|udplite|sctp|dccp",
        ),
        (
            &["filter", "insert", "--chain", "INPUT", "--dport", "80", "--accept"],
            "fwctl: filter: rule 1 in chain INPUT: --sport/--dport need -p tcp|udp|udplite|sctp|dccp",
        ),
        (
            &["nat", "add", "--chain", "INPUT", "--to-destination", "1.2.3.4"],
            "fwctl: nat: rule 1 in chain INPUT: DNAT not valid in chains reached from INPUT",
        ),
        (
            &["filter", "add", "--chain", "OUTPUT", "-i", "eth0", "--drop"],
            "fwctl: filter: rule 1 in chain OUTPUT: -i not valid in chains reached from OUTPUT",
        ),
        (
            &["filter", "add", "--chain", "INPUT", "--jump", "nowhere"],
            "fwctl: filter: no chain \"nowhere\" (declare it first)",
        ),
    ];
    for (args, want) in cases {
        let o = run(&m, args);
        assert_eq!(o.failure(), want, "{args:?}");
        assert!(!o.failure().contains('\n'));
    }
    assert_eq!(m.borrow().tables, before);
    assert_eq!(m.borrow().generation, generation);
    assert_eq!(m.borrow().replaces(), 1, "only the first, good add");
}

#[test]
fn rule_syntax_errors_are_usage_errors_before_any_traffic() {
    for (args, want) in [
        (&["nat", "add", "--bogus"][..], "unknown option \"--bogus\""),
        (
            &["filter", "add", "--chain", "INPUT", "--accept", "--drop"],
            "two targets: --accept and --drop",
        ),
        (
            &[
                "filter",
                "add",
                "--position",
                "2",
                "--chain",
                "INPUT",
                "--drop",
            ],
            "--position is for insert (add appends at the end)",
        ),
        (
            &[
                "filter",
                "insert",
                "--position",
                "0",
                "--chain",
                "INPUT",
                "--drop",
            ],
            "--position \"0\": a rule number, 1 for the top",
        ),
        (
            &[
                "filter", "add", "--chain", "INPUT", "--chain", "OUTPUT", "--drop",
            ],
            "--chain given twice",
        ),
        (&["filter", "add", "--chain"], "--chain needs a value"),
        (
            &["filter", "add", "-s", "10.0.0.0/33", "--chain", "INPUT"],
            "bad prefix length \"33\"",
        ),
    ] {
        let e = parse(args).unwrap().job().unwrap_err();
        assert_eq!(e.message, want, "{args:?}");
        assert_eq!(e.path[0], args[0]);
    }
}

#[test]
fn handles_are_stable_across_adds_inserts_and_deletes() {
    let m = model();
    for p in ["22", "80", "443"] {
        ok(
            &m,
            &[
                "filter", "add", "--chain", "INPUT", "-p", "tcp", "--dport", p, "--accept",
            ],
        );
    }
    ok(
        &m,
        &["filter", "delete", "--chain", "INPUT", "--handle", "2"],
    );
    ok(
        &m,
        &[
            "filter", "insert", "--chain", "input", "-i", "lo", "--accept",
        ],
    );
    ok(
        &m,
        &[
            "filter",
            "insert",
            "--chain",
            "INPUT",
            "--position",
            "3",
            "-p",
            "udp",
            "--dport",
            "53",
            "--accept",
        ],
    );
    ok(&m, &["filter", "add", "--chain", "FORWARD", "--drop"]);
    // Without --chain: handles are unique in the table.
    ok(&m, &["filter", "delete", "--handle", "1"]);
    assert_eq!(
        rules_of(&m, TableKind::Filter),
        [
            ("INPUT".into(), 4, "-i lo --accept".into()),
            ("INPUT".into(), 5, "-p udp --dport 53 --accept".into()),
            ("INPUT".into(), 3, "-p tcp --dport 443 --accept".into()),
            ("FORWARD".into(), 6, "--drop".into()),
        ]
    );
    assert_eq!(
        run(
            &m,
            &["filter", "delete", "--chain", "INPUT", "--handle", "6"]
        )
        .failure(),
        "fwctl: filter: the rule with handle 6 is in chain FORWARD, not INPUT"
    );
    assert_eq!(
        run(&m, &["filter", "delete", "--handle", "1"]).failure(),
        "fwctl: filter: no rule with handle 1"
    );
    assert_eq!(
        run(
            &m,
            &[
                "filter",
                "insert",
                "--chain",
                "FORWARD",
                "--position",
                "3",
                "--drop"
            ]
        )
        .failure(),
        "fwctl: filter: --position 3 is not in chain FORWARD (1 rules: 1 to 2 can be given)"
    );
}

#[test]
fn counters_survive_adds_and_deletes() {
    let m = model();
    ok(
        &m,
        &[
            "filter", "add", "--chain", "INPUT", "-p", "tcp", "--dport", "22", "--accept",
        ],
    );
    ok(
        &m,
        &[
            "filter", "add", "--chain", "INPUT", "-p", "tcp", "--dport", "80", "--accept",
        ],
    );
    ok(&m, &["filter", "add", "--chain", "OUTPUT", "--accept"]);
    m.borrow_mut().hit(TableKind::Filter, 1, 10, 60);
    m.borrow_mut().hit(TableKind::Filter, 2, 3, 1500);
    m.borrow_mut().hit(TableKind::Filter, 3, 7, 100);
    m.borrow_mut().hit_policy(TableKind::Filter, "INPUT", 5);
    ok(
        &m,
        &[
            "filter", "insert", "--chain", "INPUT", "-i", "lo", "--accept",
        ],
    );
    ok(&m, &["filter", "delete", "--handle", "1"]);
    ok(&m, &["filter", "add", "--chain", "FORWARD", "--drop"]);
    let c = |h| counter_of(&m, TableKind::Filter, h);
    assert_eq!(
        c(2),
        Counter {
            packets: 3,
            bytes: 4500
        }
    );
    assert_eq!(
        c(3),
        Counter {
            packets: 7,
            bytes: 700
        }
    );
    assert_eq!(c(4), Counter::default());
    assert_eq!(c(5), Counter::default());
    let t = m.borrow().table(TableKind::Filter).unwrap().spec();
    assert_eq!(
        t.chains[0].counter,
        Counter {
            packets: 5,
            bytes: 500
        }
    );
    assert_eq!(
        ok(&m, &["filter", "list"]),
        "\
Chain INPUT (policy ACCEPT 5 packets, 500 bytes)
HANDLE  PACKETS  BYTES  RULE
     4        0      0  -i lo --accept
     2        3   4500  -p tcp --dport 80 --accept

Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
HANDLE  PACKETS  BYTES  RULE
     5        0      0  --drop

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
HANDLE  PACKETS  BYTES  RULE
     3        7    700  --accept
"
    );
}

#[test]
fn a_concurrent_replace_makes_the_edit_start_again() {
    let m = model();
    ok(&m, &["filter", "add", "--chain", "INPUT", "--accept"]);
    // Between fwctl's read and its write, someone adds a rule to FORWARD
    // (and counts on INPUT's rule).
    m.borrow_mut()
        .racers
        .push_back(Box::new(|k: &mut FakeRules| {
            let mut t = k.table(TableKind::Filter).unwrap().spec();
            let rule = nat::text::parse_rule(&["--drop"], &t).unwrap();
            t.chains[1].rules.push(nat::spec::RuleSpec {
                handle: 9,
                ..rule.into()
            });
            t.chains[0].rules[0].counter.packets = 42;
            k.install(&t);
        }));
    m.borrow_mut().requests.clear();
    let o = run(
        &m,
        &[
            "filter", "add", "--chain", "OUTPUT", "-o", "eth0", "--accept",
        ],
    );
    assert_eq!(o.ok(), "");
    assert_eq!(o.err, "");
    assert_eq!(
        cmds(&m),
        [
            Cmd::RulesGet,
            Cmd::RulesReplace,
            Cmd::RulesGet,
            Cmd::RulesReplace
        ]
    );
    // Both changes are in; the new rule's handle follows the racer's.
    assert_eq!(
        rules_of(&m, TableKind::Filter),
        [
            ("INPUT".into(), 1, "--accept".into()),
            ("FORWARD".into(), 9, "--drop".into()),
            ("OUTPUT".into(), 10, "-o eth0 --accept".into()),
        ]
    );
    assert_eq!(counter_of(&m, TableKind::Filter, 1).packets, 42);
}

#[test]
fn an_edit_gives_up_after_five_concurrent_replaces() {
    let m = model();
    ok(&m, &["filter", "add", "--chain", "INPUT", "--accept"]);
    for _ in 0..crate::rules::EDIT_ATTEMPTS {
        m.borrow_mut()
            .racers
            .push_back(Box::new(|k: &mut FakeRules| {
                k.generation += 1;
            }));
    }
    let before = m.borrow().tables.clone();
    m.borrow_mut().requests.clear();
    let o = run(&m, &["filter", "add", "--chain", "INPUT", "--drop"]);
    assert_eq!(
        o.failure(),
        "fwctl: filter: the ruleset was replaced by someone else 5 times while this change \
         was being made; nothing was changed, try again"
    );
    assert_eq!(m.borrow().tables, before);
    assert_eq!(m.borrow().replaces(), 5);
    // The next one goes through.
    ok(&m, &["filter", "add", "--chain", "INPUT", "--drop"]);
    assert_eq!(rules_of(&m, TableKind::Filter).len(), 2);
}

#[test]
fn policies_flush_and_user_chains() {
    let m = model();
    ok(&m, &["filter", "policy", "input", "DROP"]);
    ok(&m, &["filter", "chain", "add", "ssh"]);
    ok(
        &m,
        &[
            "filter", "add", "--chain", "INPUT", "-p", "tcp", "--dport", "22", "--jump", "ssh",
        ],
    );
    ok(
        &m,
        &[
            "filter",
            "add",
            "--chain",
            "ssh",
            "-s",
            "10.0.0.0/8",
            "--accept",
        ],
    );
    ok(
        &m,
        &[
            "filter",
            "add",
            "--chain",
            "ssh",
            "--log",
            "--log-prefix",
            "ssh drop: ",
        ],
    );
    assert_eq!(
        ok(&m, &["filter", "list", "--chain", "ssh"]),
        "\
Chain ssh (1 reference)
HANDLE  PACKETS  BYTES  RULE
     2        0      0  -s 10.0.0.0/8 --accept
     3        0      0  --log --log-prefix \"ssh drop: \"
"
    );
    assert_eq!(
        run(&m, &["filter", "chain", "delete", "ssh"]).failure(),
        "fwctl: filter: chain ssh is not empty (2 rules); flush it first"
    );
    ok(&m, &["filter", "flush", "--chain", "ssh"]);
    assert_eq!(
        run(&m, &["filter", "chain", "delete", "ssh"]).failure(),
        "fwctl: filter: chain ssh is used by 1 rule (handle 1 in INPUT); delete it first"
    );
    assert_eq!(
        run(&m, &["filter", "policy", "ssh", "accept"]).failure(),
        "fwctl: filter: ssh is a user chain; only built-in chains have a policy"
    );
    assert_eq!(
        run(&m, &["filter", "chain", "add", "Input"]).failure(),
        "fwctl: filter: \"Input\" names the built-in chain INPUT; pick another name"
    );
    ok(&m, &["filter", "flush"]);
    ok(&m, &["filter", "chain", "delete", "ssh"]);
    let t = m.borrow().table(TableKind::Filter).unwrap().spec();
    assert_eq!(t.chains.len(), 3);
    assert_eq!(t.chains[0].policy, Some(Policy::Drop));
    assert_eq!(
        run(&m, &["filter", "list", "--chain", "ssh"]).failure(),
        "fwctl: filter: no chain \"ssh\" (chains: INPUT, FORWARD, OUTPUT)"
    );
}

#[test]
fn a_table_never_loaded_lists_empty_and_is_not_saved() {
    let m = model();
    assert_eq!(
        ok(&m, &["filter", "list"]),
        "\
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)

Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
"
    );
    assert_eq!(ok(&m, &["save"]), "");
    assert_eq!(cmds(&m), [Cmd::RulesGet, Cmd::RulesGet]);
}

const RULES: &str = "\
*filter
:INPUT DROP [10:600]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ssh - [0:0]
-A INPUT --ct-state established,related --accept
[3:180] -A INPUT -4 -p tcp -s !10.0.0.0/8 --dport 22 --jump ssh
-A ssh --log --log-prefix \"ssh: \"
[1:60] -A ssh --accept
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [2:120]
-A PREROUTING -4 -p tcp -i eth0 --dport 80 --to-destination 192.168.1.10:8080
-A POSTROUTING -o ppp0 --masquerade
COMMIT
";

#[test]
fn save_and_restore_round_trip() {
    let m = model();
    let f = temp_file("rules", RULES);
    let path = f.to_str().unwrap();
    assert_eq!(ok(&m, &["restore", "--counters", path]), "");
    // One replace for both tables.
    assert_eq!(cmds(&m), [Cmd::RulesReplace]);
    assert_eq!(m.borrow().generation, 2);
    assert_eq!(ok(&m, &["save", "-c"]), RULES);
    // Handles 1..n per table, in entry order.
    assert_eq!(
        rules_of(&m, TableKind::Filter)
            .iter()
            .map(|r| r.1)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(rules_of(&m, TableKind::Nat)[1].1, 2);
    // Without -c every counter is zero.
    let zero = ok(&m, &["save"]);
    assert_eq!(
        zero,
        RULES
            .replace("[10:600]", "[0:0]")
            .replace("[2:120]", "[0:0]")
            .replace("[3:180] ", "")
            .replace("[1:60] ", "")
    );

    // Into another kernel, that had a mangle table: it stays.
    let other = model();
    ok(
        &other,
        &["mangle", "add", "--chain", "FORWARD", "--ttl-dec", "1"],
    );
    let saved = temp_file("saved", &ok(&m, &["save", "-c"]));
    ok(&other, &["restore", "-c", saved.to_str().unwrap()]);
    assert_eq!(
        ok(&other, &["save", "-c"]),
        format!("{RULES}*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A FORWARD --ttl-dec 1\nCOMMIT\n")
    );
    // Without --counters, restored counters start at zero.
    ok(&other, &["restore", saved.to_str().unwrap()]);
    assert_eq!(counter_of(&other, TableKind::Filter, 2), Counter::default());
    std::fs::remove_file(f).unwrap();
    std::fs::remove_file(saved).unwrap();
}

#[test]
fn restore_check_changes_nothing() {
    let m = model();
    ok(&m, &["nat", "add", "--to-destination", "1.2.3.4"]);
    let before = m.borrow().tables.clone();
    m.borrow_mut().requests.clear();

    // A file that does not validate: refused here, nothing sent.
    let bad = temp_file(
        "bad",
        "*filter\n-A INPUT --accept\nCOMMIT\n*nat\n-A INPUT -p tcp --to-destination 10.0.0.1:80\nCOMMIT\n",
    );
    for args in [&["restore", "--check"][..], &["restore"]] {
        let mut a = args.to_vec();
        a.push(bad.to_str().unwrap());
        let o = run(&m, &a);
        assert_eq!(
            o.failure(),
            format!(
                "fwctl: {}: line 5: nat table: chain INPUT rule 1: DNAT not valid in chains reached from INPUT",
                bad.display()
            )
        );
    }
    assert!(cmds(&m).is_empty());

    // A good file: checked by the kernel too, nothing installed.
    let good = temp_file("good", RULES);
    ok(&m, &["restore", "--check", good.to_str().unwrap()]);
    assert_eq!(cmds(&m), [Cmd::RulesReplace]);
    let req = m.borrow().requests[0].1.clone();
    assert!(has_attr(&req, attr::RULES_CHECK));
    assert!(!has_attr(&req, attr::RULES_GENERATION));
    assert_eq!(m.borrow().tables, before);
    assert_eq!(m.borrow().generation, 2);

    // A kernel that refuses: its reason, in one line; nothing installed.
    m.borrow_mut().refuse = Some("filter table: chain INPUT rule 1: something newer");
    let o = run(&m, &["restore", "-t", good.to_str().unwrap()]);
    assert_eq!(
        o.failure(),
        "fwctl: replacing rfw rules: filter table: chain INPUT rule 1: something newer (Invalid argument)"
    );
    assert_eq!(m.borrow().tables, before);
    for f in [bad, good] {
        std::fs::remove_file(f).unwrap();
    }
}

/// Whether a request carries a top-level attribute of `kind`.
fn has_attr(req: &[u8], kind: u16) -> bool {
    rfw_abi::nla::iter(&req[20..]).any(|a| a.unwrap().kind == kind)
}

#[test]
fn replace_is_all_tables_or_none() {
    let m = model();
    let mut client = Client::new(kernel_of(&m)).unwrap();
    let filter = nat::text::parse("*filter\n-A INPUT --accept\nCOMMIT\n")
        .unwrap()
        .tables;
    // A nat table the kernel refuses (not validated here: replace sends
    // what it is given).
    let mut bad = TableSpec::new(TableKind::Nat);
    let rule = nat::text::parse_rule(&["--to-destination", "1.2.3.4"], &bad).unwrap();
    bad.chains[1].rules.push(rule.into());
    let tables = [filter[0].clone(), bad];
    let e = crate::rules::replace(&mut client, &tables, Default::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "replacing rfw rules: nat table: chain INPUT rule 1: DNAT not valid in chains reached from INPUT (Invalid argument)"
    );
    assert!(m.borrow().tables.is_empty());
    assert_eq!(m.borrow().generation, 1);
    // The same with a generation that is stale: EAGAIN, and nothing.
    let opts = crate::rules::ReplaceOptions {
        generation: Some(0),
        ..Default::default()
    };
    let e = crate::rules::replace(&mut client, &tables[..1], opts).unwrap_err();
    assert!(matches!(e, Error::Kernel { errno: 11, .. }), "{e}");
    assert!(m.borrow().tables.is_empty());
    let opts = crate::rules::ReplaceOptions {
        generation: Some(1),
        ..Default::default()
    };
    assert_eq!(
        crate::rules::replace(&mut client, &tables[..1], opts)
            .unwrap()
            .0,
        2
    );
}

#[test]
fn restore_reads_standard_input_name_in_errors() {
    // No FILE and "-" both mean stdin; an unreadable file is one line.
    let m = model();
    let o = run(&m, &["restore", "/nonexistent/rules"]);
    assert_eq!(
        o.failure(),
        "fwctl: reading /nonexistent/rules: No such file or directory"
    );
    let cli = parse(&["restore", "-"]).unwrap();
    assert_eq!(
        cli.job().unwrap(),
        Job::Rules(RulesJob::Restore {
            file: Some("-".into()),
            check: false,
            counters: false
        })
    );
}

#[test]
fn an_empty_restore_does_nothing() {
    let m = model();
    let f = temp_file("empty", "# nothing\n\n");
    ok(&m, &["restore", f.to_str().unwrap()]);
    assert!(cmds(&m).is_empty());
    std::fs::remove_file(f).unwrap();
}

#[test]
fn edits_send_counters_reindexed_and_the_generation_read() {
    let m = model();
    ok(&m, &["filter", "add", "--chain", "INPUT", "--accept"]);
    ok(&m, &["filter", "add", "--chain", "INPUT", "--drop"]);
    m.borrow_mut().hit(TableKind::Filter, 2, 4, 10);
    m.borrow_mut().requests.clear();
    ok(
        &m,
        &["filter", "insert", "--chain", "INPUT", "--queue", "1"],
    );
    let req = m.borrow().requests[1].1.clone();
    let mut generation = None;
    let mut counters = None;
    for a in rfw_abi::nla::iter(&req[20..]) {
        let a = a.unwrap();
        match a.kind {
            attr::RULES_GENERATION => generation = Some(a.u32().unwrap()),
            attr::RULES_TABLE => {
                for n in rfw_abi::nla::iter(a.data) {
                    let n = n.unwrap();
                    if n.kind == rfw_abi::rules_table::COUNTERS {
                        counters = Some(crate::rules::counters_from_bytes(n.data).unwrap());
                    }
                }
            }
            _ => panic!("unexpected attribute {}", a.kind),
        }
    }
    assert_eq!(generation, Some(3));
    // New rule, handle 1, handle 2 (4 packets), and nothing after: the
    // trailing zeros are left for the kernel to fill in.
    let p: Vec<u64> = counters.unwrap().iter().map(|c| c.packets).collect();
    assert_eq!(p, [0, 0, 4]);
    // The nest is flagged as such, as the kernel's strict policy wants.
    let nest = rfw_abi::nla::iter(&req[20..])
        .map(|a| a.unwrap())
        .find(|a| a.kind == attr::RULES_TABLE)
        .unwrap();
    let offset = nest.data.as_ptr() as usize - req.as_ptr() as usize - 4;
    let ty = u16::from_ne_bytes([req[offset + 2], req[offset + 3]]);
    assert_ne!(ty & NLA_F_NESTED, 0);
}

#[test]
fn rules_stats_print_in_order_and_as_json() {
    let m = model();
    m.borrow_mut().stats = vec![
        (rules_stats::NAT_BINDINGS, 12),
        (rules_stats::NAT_NO_TUPLE, 1),
        (rules_stats::LOGGED, 1 << 33),
        (40, 7), // from a newer kernel: ignored
    ];
    assert_eq!(
        ok(&m, &["rules", "stats"]),
        "\
nat_bindings            12
nat_no_tuple             1
nat_no_address           0
rewrite_failed           0
masq_flushed             0
rejected                 0
queued                   0
logged          8589934592
log_suppressed           0
unparsed                 0
"
    );
    assert_eq!(
        ok(&m, &["rules", "stats", "-o", "json"]),
        "{\"nat_bindings\":12,\"nat_no_tuple\":1,\"nat_no_address\":0,\"rewrite_failed\":0,\
         \"masq_flushed\":0,\"rejected\":0,\"queued\":0,\"logged\":8589934592,\
         \"log_suppressed\":0,\"unparsed\":0}\n"
    );
}

#[test]
fn mangle_targets() {
    let m = model();
    ok(
        &m,
        &[
            "mangle",
            "add",
            "--chain",
            "prerouting",
            "-i",
            "eth0",
            "--set-mark",
            "0x10/0xff",
        ],
    );
    ok(
        &m,
        &[
            "mangle",
            "add",
            "--chain",
            "POSTROUTING",
            "-6",
            "--set-tos",
            "0x10",
        ],
    );
    ok(
        &m,
        &["mangle", "add", "--chain", "FORWARD", "--ttl-inc", "2"],
    );
    ok(
        &m,
        &[
            "mangle",
            "add",
            "--chain",
            "OUTPUT",
            "--mark",
            "!0x1/0x1",
            "--ttl-set",
            "64",
        ],
    );
    assert_eq!(
        rules_of(&m, TableKind::Mangle),
        [
            (
                "PREROUTING".into(),
                1,
                "-i eth0 --set-mark 0x10/0xff".into()
            ),
            ("FORWARD".into(), 3, "--ttl-inc 2".into()),
            ("OUTPUT".into(), 4, "--mark !0x1/0x1 --ttl-set 64".into()),
            ("POSTROUTING".into(), 2, "-6 --set-tos 0x10".into()),
        ]
    );
    assert_eq!(
        run(
            &m,
            &["mangle", "add", "--chain", "FORWARD", "--ttl-dec", "0"]
        )
        .failure(),
        "fwctl: mangle: rule 2 in chain FORWARD: bad value for --ttl-inc/--ttl-dec (0)"
    );
    assert_eq!(
        run(&m, &["filter", "add", "--chain", "INPUT", "--ttl-set", "1"]).failure(),
        "fwctl: filter: rule 1 in chain INPUT: TTL not valid in this table"
    );
}

#[test]
fn filter_matches_and_targets() {
    let m = model();
    for args in [
        &[
            "filter",
            "add",
            "--chain",
            "FORWARD",
            "-4",
            "-p",
            "tcp",
            "-s",
            "!10.0.0.0/8",
            "-d",
            "192.0.2.0/24",
            "--sport",
            "1024:65535",
            "--dport",
            "!22",
            "-i",
            "eth+",
            "-o",
            "!eth1",
            "--ct-state",
            "new,established",
            "--mark",
            "0x2/0x3",
            "--reject",
        ][..],
        &[
            "filter",
            "add",
            "--chain",
            "INPUT",
            "-p",
            "icmp",
            "--icmp-type",
            "8",
            "--accept",
        ],
        &[
            "filter",
            "add",
            "--chain",
            "INPUT",
            "-6",
            "-p",
            "ipv6-icmp",
            "--icmp-type",
            "128/0",
            "--queue",
            "3",
        ],
        &[
            "filter",
            "add",
            "--chain",
            "INPUT",
            "--ct-state",
            "invalid",
            "--log",
            "--log-prefix",
            "bad: ",
        ],
        &[
            "filter",
            "add",
            "--chain",
            "INPUT",
            "--ct-state",
            "invalid",
            "--drop",
        ],
        &[
            "filter", "add", "--chain", "OUTPUT", "!", "-d", "10.0.0.1", "--return",
        ],
    ] {
        ok(&m, args);
    }
    ok(&m, &["filter", "chain", "add", "web"]);
    ok(
        &m,
        &[
            "filter", "add", "--chain", "INPUT", "-p", "tcp", "--dport", "80", "--goto", "web",
        ],
    );
    let r: Vec<String> = rules_of(&m, TableKind::Filter)
        .into_iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(
        r,
        [
            "-p icmp --icmp-type 8 --accept",
            "-6 -p ipv6-icmp --icmp-type 128/0 --queue 3",
            "--ct-state invalid --log --log-prefix \"bad: \"",
            "--ct-state invalid --drop",
            "-p tcp --dport 80 --goto web",
            "-4 -p tcp -s !10.0.0.0/8 -d 192.0.2.0/24 -i eth+ -o !eth1 --sport 1024:65535 --dport !22 --ct-state new,established --mark 0x2/0x3 --reject",
            "-d !10.0.0.1/32 --return",
        ]
        .map(String::from)
    );
}

#[test]
fn offload_rules_are_added_saved_and_restored_in_filter_forward() {
    let m = model();
    assert_eq!(
        ok(
            &m,
            &[
                "filter",
                "add",
                "--chain",
                "forward",
                "--ct-state",
                "established",
                "--offload",
            ]
        ),
        ""
    );
    ok(&m, &["filter", "add", "--chain", "FORWARD", "--accept"]);
    // A user chain reached only from FORWARD, with iptables' spelling.
    ok(&m, &["filter", "chain", "add", "fast"]);
    ok(
        &m,
        &["filter", "insert", "--chain", "FORWARD", "--jump", "fast"],
    );
    ok(
        &m,
        &[
            "filter",
            "add",
            "--chain",
            "fast",
            "-p",
            "tcp",
            "-j",
            "FLOWOFFLOAD",
        ],
    );
    assert_eq!(
        rules_of(&m, TableKind::Filter),
        [
            ("FORWARD".into(), 3, "--jump fast".into()),
            (
                "FORWARD".into(),
                1,
                "--ct-state established --offload".into()
            ),
            ("FORWARD".into(), 2, "--accept".into()),
            ("fast".into(), 4, "-p tcp --offload".into()),
        ]
    );
    let t = m.borrow().table(TableKind::Filter).unwrap().spec();
    assert_eq!(t.chains[1].rules[1].rule.target, Target::Offload);

    // save, and restore into another kernel: the same text.
    let saved = ok(&m, &["save"]);
    assert!(
        saved.contains("\n-A FORWARD --ct-state established --offload\n"),
        "{saved}"
    );
    let f = temp_file("offload", &saved);
    let other = model();
    assert_eq!(ok(&other, &["restore", f.to_str().unwrap()]), "");
    assert_eq!(ok(&other, &["save"]), saved);
    std::fs::remove_file(f).unwrap();

    // Anywhere else: refused in one line, nothing changes.
    ok(&m, &["filter", "chain", "add", "local"]);
    ok(
        &m,
        &["filter", "add", "--chain", "INPUT", "--jump", "local"],
    );
    let before = m.borrow().tables.clone();
    for (args, want) in [
        (
            &["filter", "add", "--chain", "INPUT", "--offload"][..],
            "fwctl: filter: rule 2 in chain INPUT: OFFLOAD not valid in chains reached from INPUT",
        ),
        (
            &["filter", "add", "--chain", "OUTPUT", "--offload"],
            "fwctl: filter: rule 1 in chain OUTPUT: OFFLOAD not valid in chains reached from OUTPUT",
        ),
        (
            &["filter", "add", "--chain", "local", "--offload"],
            "fwctl: filter: rule 1 in chain local: OFFLOAD not valid in chains reached from INPUT",
        ),
        (
            &["nat", "add", "--chain", "POSTROUTING", "--offload"],
            "fwctl: nat: rule 1 in chain POSTROUTING: OFFLOAD not valid in this table",
        ),
        (
            &["mangle", "add", "--chain", "FORWARD", "--offload"],
            "fwctl: mangle: rule 1 in chain FORWARD: OFFLOAD not valid in this table",
        ),
    ] {
        assert_eq!(run(&m, args).failure(), want, "{args:?}");
    }
    assert_eq!(m.borrow().tables, before);
}

#[test]
fn a_table_written_without_handles_gets_them_at_its_first_edit() {
    let m = model();
    let mut t = TableSpec::new(TableKind::Filter);
    for s in ["--accept", "--drop"] {
        let rule = nat::text::parse_rule(&[s], &t).unwrap();
        t.chains[0].rules.push(rule.into()); // handle 0
    }
    m.borrow_mut().install(&t);
    assert!(ok(&m, &["filter", "list"]).contains("     0        0      0  --drop\n"));
    ok(&m, &["filter", "add", "--chain", "OUTPUT", "--accept"]);
    assert_eq!(
        rules_of(&m, TableKind::Filter),
        [
            ("INPUT".into(), 1, "--accept".into()),
            ("INPUT".into(), 2, "--drop".into()),
            ("OUTPUT".into(), 3, "--accept".into()),
        ]
    );
}

#[test]
fn kernel_tables_this_fwctl_cannot_read_are_protocol_errors() {
    let m = model();
    ok(&m, &["filter", "add", "--chain", "INPUT", "--accept"]);
    // A module speaking blob version 1 (no handles).
    m.borrow_mut().tables[0].blob[4] = 1;
    assert_eq!(
        run(&m, &["filter", "list"]).failure(),
        "fwctl: reading rfw rules: filter table from the kernel does not decode: unsupported version 1"
    );
    // And an edit does not write anything based on it.
    m.borrow_mut().requests.clear();
    assert!(run(&m, &["filter", "flush"]).result.is_err());
    assert_eq!(cmds(&m), [Cmd::RulesGet]);
}

#[test]
fn escape_rule_words_only_touches_add_and_insert() {
    let esc = |a: &[&str]| -> Vec<String> {
        escape_rule_words(a.iter().copied())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    };
    assert_eq!(
        esc(&["fwctl", "nat", "add", "-o", "ppp0", "--masquerade"]),
        ["fwctl", "nat", "add", "--", "-o", "ppp0", "--masquerade"]
    );
    assert_eq!(
        esc(&["fwctl", "-o", "json", "filter", "insert", "--chain", "INPUT"]),
        ["fwctl", "-o", "json", "filter", "insert", "--", "--chain", "INPUT"]
    );
    assert_eq!(
        esc(&["fwctl", "--output=json", "mangle", "add", "-h"]),
        ["fwctl", "--output=json", "mangle", "add", "-h"]
    );
    for a in [
        &["fwctl", "nat", "list", "-o", "json"][..],
        &["fwctl", "nat", "add"],
        &["fwctl", "nat", "add", "--", "-o", "x"],
        &["fwctl", "ct", "list"],
        &["fwctl", "save"],
    ] {
        assert_eq!(esc(a), a);
    }
    // And `fwctl nat list -o json` is still the output format.
    assert_eq!(
        parse(&["nat", "list", "-o", "json"]).unwrap().output,
        Output::Json
    );
    assert!(parse(&["nat", "add", "--help"]).is_err(), "help is shown");
}

#[test]
fn unload_removes_one_table_and_keeps_the_others() {
    let m = model();
    ok(
        &m,
        &[
            "filter", "add", "--chain", "forward", "-p", "udp", "--dport", "9", "--drop",
        ],
    );
    ok(&m, &["nat", "add", "--to-destination", "10.0.2.2:8080"]);
    let before = m.borrow().generation;
    assert_eq!(ok(&m, &["filter", "unload"]), "");
    assert!(m.borrow().table(TableKind::Filter).is_none());
    assert!(m.borrow().table(TableKind::Nat).is_some());
    assert_eq!(m.borrow().generation, before.wrapping_add(1));
    // One replace, no read: the kernel removes the table by its kind.
    assert_eq!(cmds(&m).last(), Some(&Cmd::RulesReplace));
    let save = ok(&m, &["save"]);
    assert!(!save.contains("*filter") && save.contains("*nat"), "{save}");
    // Unloading a table that is not loaded changes nothing but the
    // generation.
    assert_eq!(ok(&m, &["mangle", "unload"]), "");
    assert!(m.borrow().table(TableKind::Nat).is_some());
    assert!(parse(&["filter", "unload", "extra"]).is_err());
}
