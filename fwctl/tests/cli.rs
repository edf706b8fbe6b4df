//! The built binary, on a host without rfw.ko (the build hosts never load it).

use std::process::{Command, Output};

fn fwctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fwctl"))
        .args(args)
        .output()
        .expect("fwctl runs")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Exit 1 and one line on stderr. Normally "rfw is not loaded"; without
/// netlink (a sandbox) it is another one-line error, never a panic.
fn assert_not_loaded(out: &Output) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let lines = stderr_lines(out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("fwctl: "), "{lines:?}");
    // Where this process can open a generic netlink socket, so can fwctl,
    // and the family lookup needs no privilege.
    if fwctl::netlink::GenlSocket::open().is_ok() {
        assert!(
            lines[0].starts_with("fwctl: rfw is not loaded"),
            "{lines:?}"
        );
    }
}

#[test]
fn stats_without_the_module() {
    assert_not_loaded(&fwctl(&["stats"]));
}

#[test]
fn stats_json_without_the_module() {
    assert_not_loaded(&fwctl(&["-o", "json", "stats"]));
    assert_not_loaded(&fwctl(&["stats", "--output=json"]));
}

#[test]
fn exact_not_loaded_message() {
    let out = fwctl(&["stats"]);
    if fwctl::netlink::GenlSocket::open().is_ok() {
        assert_eq!(
            stderr_lines(&out),
            ["fwctl: rfw is not loaded (no generic netlink family \"rfw\"); try: modprobe rfw"]
        );
    }
}

#[test]
fn bad_arguments_are_clap_errors_with_exit_2() {
    for args in [&["stats", "-o", "yaml"][..], &["frobnicate"], &[]] {
        let out = fwctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        assert!(!out.stderr.is_empty(), "{out:?}");
    }
}

#[test]
fn help_exits_0() {
    let out = fwctl(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stats"));
}

#[test]
fn ct_commands_without_the_module() {
    for args in [
        &["ct", "list"][..],
        &[
            "-o",
            "json",
            "ct",
            "list",
            "-p",
            "tcp",
            "--state",
            "established",
        ],
        &["ct", "count"],
        &[
            "ct", "delete", "-p", "tcp", "-s", "10.0.1.2", "-d", "10.0.2.2", "--sport", "1",
            "--dport", "2",
        ],
        &["ct", "flush"],
        &["ct", "stats"],
        &["ct", "timeout"],
        &["ct", "timeout", "icmp", "0.5"],
        &["ct", "limit", "1000"],
        &["ct", "tracking"],
        &["ct", "tracking", "on"],
        &["-o", "json", "ct", "tracking", "auto"],
    ] {
        let out = fwctl(args);
        assert_not_loaded(&out);
    }
}

/// Bad values exit 2, not 1 ("not loaded"): they are refused before fwctl
/// talks to the kernel at all.
#[test]
fn bad_ct_values_exit_2_before_any_netlink_traffic() {
    for args in [
        &["ct", "timeout", "bogus", "30"][..],
        &["ct", "timeout", "icmp", "0"],
        &["ct", "timeout", "icmp"],
        &["ct", "limit", "0"],
        &["ct", "limit", "67108865"],
        &["ct", "tracking", "bogus"],
        &["ct", "tracking", "on", "auto"],
        &["ct", "list", "-p", "bogus"],
        &["ct", "list", "-s", "10.0.0.0/40"],
        &["ct", "list", "--state", "bogus"],
        &[
            "ct", "delete", "-p", "tcp", "-s", "10.0.1.2", "-d", "10.0.2.2",
        ],
        &[
            "ct",
            "delete",
            "-p",
            "icmp",
            "-s",
            "::1",
            "-d",
            "::2",
            "--icmp-type",
            "128",
            "--icmp-id",
            "1",
        ],
    ] {
        let out = fwctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    // The name error is one line and lists the valid names.
    let out = fwctl(&["ct", "timeout", "bogus", "30"]);
    let first = stderr_lines(&out).into_iter().next().unwrap();
    assert_eq!(
        first,
        format!(
            "error: unknown timeout name \"bogus\"; valid names: {}",
            rfw_abi::ct_timeout::NAMES.join(", ")
        )
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: fwctl ct timeout"));
    // A bad mode: clap's error names the two.
    let out = fwctl(&["ct", "tracking", "bogus"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'bogus'") && err.contains("[possible values: auto, on]"),
        "{err}"
    );
}

#[test]
fn ct_help_exits_0_with_examples() {
    for sub in [
        "list", "count", "delete", "flush", "stats", "timeout", "limit", "tracking",
    ] {
        let out = fwctl(&["ct", sub, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{sub}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Examples:"), "{sub}: {help}");
    }
}

#[test]
fn ruleset_commands_without_the_module() {
    for args in [
        &["nat", "add", "--to-destination", "1.2.3.4"][..],
        // `-o` first is the rule's output interface, not the output format.
        &["nat", "add", "-o", "ppp0", "--masquerade"],
        &[
            "-o", "json", "filter", "insert", "--chain", "INPUT", "-o", "eth0", "--drop",
        ],
        &["filter", "delete", "--chain", "INPUT", "--handle", "3"],
        &["filter", "list"],
        &["nat", "list", "-o", "json"],
        &["mangle", "flush", "--chain", "forward"],
        &["filter", "policy", "INPUT", "drop"],
        &["filter", "chain", "add", "ssh"],
        &["filter", "chain", "delete", "ssh"],
        &["save", "-c"],
        &["rules", "stats"],
    ] {
        assert_not_loaded(&fwctl(args));
    }
}

/// Rule syntax is checked before fwctl talks to the kernel: exit 2 and
/// the parser's one line, as clap reports bad arguments.
#[test]
fn bad_rule_syntax_exits_2_before_any_netlink_traffic() {
    for (args, want) in [
        (
            &["nat", "add", "--bogus"][..],
            "error: unknown option \"--bogus\"",
        ),
        (
            &["filter", "add", "--chain", "INPUT", "--accept", "--drop"],
            "error: two targets: --accept and --drop",
        ),
        (
            &[
                "filter",
                "add",
                "--position",
                "1",
                "--chain",
                "INPUT",
                "--drop",
            ],
            "error: --position is for insert (add appends at the end)",
        ),
        (&["filter", "policy", "INPUT", "maybe"], ""),
        (&["filter", "delete", "--handle", "x"], ""),
        (&["nat", "add"], ""),
    ] {
        let out = fwctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let first = stderr_lines(&out).into_iter().next().unwrap();
        assert!(first.starts_with(want), "{args:?}: {first}");
    }
    let out = fwctl(&["nat", "add", "--bogus"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: fwctl nat add"));
}

#[test]
fn restore_of_a_bad_file_fails_in_one_line_without_the_module() {
    // fwctl resolves rfw's family before it reads the file: without the
    // module, that is the one line (exit 1), whatever the file says.
    let path = std::env::temp_dir().join(format!("fwctl-cli-{}-bad", std::process::id()));
    std::fs::write(&path, "*nat\n-A INPUT --to-destination 1.2.3.4\nCOMMIT\n").unwrap();
    let out = fwctl(&["restore", "--check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stderr_lines(&out).len(), 1, "{out:?}");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn ruleset_help_exits_0_with_examples() {
    for args in [
        &["nat", "add", "--help"][..],
        &["filter", "insert", "--help"],
        &["nat", "list", "--help"],
        &["save", "--help"],
        &["restore", "--help"],
    ] {
        let out = fwctl(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Examples:"), "{args:?}: {help}");
    }
}
