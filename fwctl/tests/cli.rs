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
