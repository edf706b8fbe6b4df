//! Ruleset model, binary codec, validation, evaluation and text form.

use std::net::IpAddr;

use nat::codec::{decode_into, entries_needed, Entry, ErrorKind};
use nat::eval::{NoSink, Outcome, PacketMeta, RuleSink, TokenBucket, Verdict};
use nat::rule::*;
use nat::spec::{Ruleset, TableSpec};
use nat::text;

const SAMPLE: &str = r#"*filter
:INPUT DROP [10:600]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ssh - [0:0]
:web - [0:0]
-A INPUT --ct-state established,related --accept
-A INPUT -i lo --accept
[3:180] -A INPUT -4 -p tcp -s !10.0.0.0/8 --dport 22 --jump ssh
-A INPUT -6 -p ipv6-icmp --icmp-type 128 --accept
-A INPUT -4 -p icmp --icmp-type 3/4 --accept
-A INPUT -p tcp --tcp-flags FIN,SYN,RST,ACK SYN --ct-state !new --drop
-A INPUT -p udp --sport 1024:65535 --dport !53 --reject --reject-with admin-prohibited
-A INPUT -p tcp --dport 80:81 --goto web
-A INPUT --mark 0x1/0xff --queue 3
-A INPUT -d 2001:db8::/32 --log
-A OUTPUT -o eth+ --set-mark 0x10
-A ssh --log --log-prefix "ssh \"in\": " --log-level 6 --log-rate 2 --log-burst 3
-A ssh -s 192.0.2.0/24 --return
-A ssh --accept
-A web -i !eth1 --drop
-A web
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -4 -p tcp -i eth0 --dport 80 --to-destination 192.168.1.10-192.168.1.20:8080-8090 --random
-A PREROUTING -6 -p tcp --dport 80 --to-destination [2001:db8::10]:8080
-A PREROUTING -p tcp --dport 8000 --redirect --to-ports 3128
-A PREROUTING -i eth2 --to-destination 10.0.2.2:8080
-A INPUT -p udp --to-source :2000-3000 --fully-random
-A OUTPUT -4 -p udp --to-destination 10.0.0.1:53
-A OUTPUT -6 -p !tcp --redirect --to-ports 5353
-A POSTROUTING -o ppp0 --masquerade
-A POSTROUTING -p tcp -o ppp1 --masquerade --to-ports 1024-2047 --fully-random
-A POSTROUTING -4 -o eth1 --to-source 1.2.3.4-1.2.3.10 --persistent
-A POSTROUTING -6 -p udp --to-source 2001:db8::1-2001:db8::5
-A POSTROUTING -6 --to-source ::a:d00:0:0:1-2001:db8::5
-A POSTROUTING -o ppp2 --masquerade --to-ports 20000-29999 --random
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 --set-tos 0x10
-A PREROUTING -i eth1 --set-tos 0x20/0xfc
-A FORWARD --ttl-dec 1
-A FORWARD --ttl-inc 3
-A OUTPUT --xor-mark 0x3
-A OUTPUT --and-mark 0xff
-A OUTPUT --or-mark 0x100
-A OUTPUT --set-mark 0x5/0xf
-A POSTROUTING -6 --ttl-set 64
COMMIT
"#;

#[test]
fn text_round_trips_exactly() {
    let rs = text::parse(SAMPLE).unwrap();
    assert_eq!(rs.tables.len(), 3);
    let printed = text::print(&rs);
    assert_eq!(printed, SAMPLE);
    assert_eq!(text::parse(&printed).unwrap(), rs);
}

#[test]
fn binary_round_trips_exactly() {
    let rs = text::parse(SAMPLE).unwrap();
    for t in &rs.tables {
        let blob = t.encode().unwrap();
        let back = TableSpec::decode(&blob).unwrap();
        // Counters are not part of the binary form.
        let mut t0 = t.clone();
        t0.set_counters(&vec![Counter::default(); t.entry_count()]);
        assert_eq!(back, t0);
        assert_eq!(back.encode().unwrap(), blob);
    }
}

#[test]
fn queue_bypass_round_trips() {
    let text = "*filter\n:INPUT ACCEPT [0:0]\n\
                -A INPUT --queue 4 --queue-bypass\n\
                -A INPUT -j NFQUEUE --queue-num 5 --queue-bypass\n\
                -A INPUT --queue 6\nCOMMIT\n";
    let r = text::parse(text).unwrap();
    let printed = text::print(&r);
    assert!(printed.contains("--queue 4 --queue-bypass"), "{printed}");
    assert!(printed.contains("--queue 5 --queue-bypass"), "{printed}");
    assert!(printed.contains("--queue 6\n"), "{printed}");
    assert_eq!(text::parse(&printed).unwrap(), r);
    for bad in [
        "-A INPUT --queue-bypass",
        "-A INPUT --accept --queue-bypass",
    ] {
        let t = format!("*filter\n:INPUT ACCEPT [0:0]\n{bad}\nCOMMIT\n");
        assert!(text::parse(&t).is_err(), "{bad}");
    }
}

const OFFLOAD: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:fast - [0:0]
-A FORWARD --ct-state established --offload
-A FORWARD --accept
-A fast -p tcp --offload
COMMIT
";

#[test]
fn offload_parses_prints_and_round_trips() {
    let rs = text::parse(OFFLOAD).unwrap();
    let t = rs.table(TableKind::Filter).unwrap();
    assert_eq!(t.chains[1].rules[0].rule.target, Target::Offload);
    assert_eq!(Target::Offload.name(), "OFFLOAD");
    // Printed as --offload; parse and print agree.
    let printed = text::print(&rs);
    assert_eq!(printed, OFFLOAD);
    assert_eq!(text::parse(&printed).unwrap(), rs);
    // iptables' spelling (OpenWrt's FLOWOFFLOAD) is the same rule.
    let j = OFFLOAD.replace("-p tcp --offload", "-p tcp -j FLOWOFFLOAD");
    assert_eq!(text::parse(&j).unwrap(), rs);
    // fwctl's form: the rule alone.
    let r = text::parse_rule(&["--ct-state", "established", "--offload"], t).unwrap();
    assert_eq!(r, t.chains[1].rules[0].rule);
    assert_eq!(
        text::rule_options(&r, t),
        "--ct-state established --offload"
    );
    // Binary: decodes to the same table and encodes to the same bytes.
    let blob = t.encode().unwrap();
    let back = TableSpec::decode(&blob).unwrap();
    assert_eq!(&back, t);
    assert_eq!(back.encode().unwrap(), blob);
    // The tag is 17, appended after the others: ACCEPT's 1 is the only
    // byte that differs between the two one-rule tables.
    let one = |target| {
        let mut t = TableSpec::new(TableKind::Filter);
        t.chains[1].rules.push(Rule::new(target).into());
        t.encode().unwrap()
    };
    let (a, o) = (one(Target::Accept), one(Target::Offload));
    let diff: Vec<(u8, u8)> = a
        .iter()
        .zip(&o)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (*x, *y))
        .collect();
    assert_eq!((a.len(), diff), (o.len(), vec![(1, 17)]));
    // A target that takes no option refuses the NAT ones and a second target.
    for bad in [
        &["--offload", "--accept"][..],
        &["--offload", "--offload"],
        &["--offload", "--to-ports", "80"],
        &["--offload", "--reject-with", "tcp-reset"],
        &["!", "--offload"],
    ] {
        assert!(text::parse_rule(bad, t).is_err(), "{bad:?}");
    }
}

#[test]
fn offload_is_valid_only_in_filter_forward() {
    // FORWARD, a user chain reached only from FORWARD, and a user chain
    // reached from nowhere (as iptables: unreachable rules are not checked
    // against hooks).
    for ok in [
        "*filter\n-A FORWARD --offload\nCOMMIT\n",
        "*filter\n:a - [0:0]\n:b - [0:0]\n-A FORWARD --jump a\n-A a --goto b\n-A b --offload\nCOMMIT\n",
        "*filter\n:idle - [0:0]\n-A idle --offload\nCOMMIT\n",
    ] {
        text::parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    let cases: &[(&str, usize, &str)] = &[
        ("*nat\n-A PREROUTING --offload\nCOMMIT\n", 2, "chain PREROUTING rule 1: OFFLOAD not valid in this table"),
        ("*nat\n-A POSTROUTING -o eth0 --offload\nCOMMIT\n", 2, "OFFLOAD not valid in this table"),
        ("*mangle\n-A FORWARD --offload\nCOMMIT\n", 2, "chain FORWARD rule 1: OFFLOAD not valid in this table"),
        ("*filter\n-A INPUT --accept\n-A INPUT --offload\nCOMMIT\n", 3, "chain INPUT rule 2: OFFLOAD not valid in chains reached from INPUT"),
        ("*filter\n-A OUTPUT -j FLOWOFFLOAD\nCOMMIT\n", 2, "chain OUTPUT rule 1: OFFLOAD not valid in chains reached from OUTPUT"),
        // A user chain jumped to from INPUT too, though also from FORWARD.
        ("*filter\n:fast - [0:0]\n-A FORWARD --jump fast\n-A INPUT --jump fast\n-A fast --offload\nCOMMIT\n", 5, "chain fast rule 1: OFFLOAD not valid in chains reached from INPUT"),
        // FLOWOFFLOAD names the target: no chain may take it.
        ("*filter\n:FLOWOFFLOAD - [0:0]\nCOMMIT\n", 2, "invalid chain name"),
    ];
    for (src, line, msg) in cases {
        let (l, m) = err_of(src);
        assert!(m.contains(msg), "{src:?}: got {m:?}, want {msg:?}");
        assert_eq!(l, *line, "{src:?}: {m}");
    }
    // The kernel's decoder refuses the same, naming the rule.
    let mut t = TableSpec::new(TableKind::Filter);
    t.chains[0].rules.push(Rule::new(Target::Offload).into());
    let e = t.validate().unwrap_err();
    assert_eq!(e.kind, ErrorKind::TargetNotInHook("OFFLOAD", Hook::Input));
    assert_eq!(
        e.to_string(),
        "chain INPUT rule 1: OFFLOAD not valid in chains reached from INPUT"
    );
    let mut t = TableSpec::new(TableKind::Nat);
    t.chains[0].rules.push(Rule::new(Target::Offload).into());
    assert_eq!(
        t.validate().unwrap_err().kind,
        ErrorKind::TargetNotInTable("OFFLOAD")
    );
}

#[test]
fn text_accepts_iptables_spellings() {
    let a = text::parse(
        "*filter\n:INPUT ACCEPT [0:0]\n:x - [0:0]\n\
         -A INPUT ! -s 10.0.0.1 -p tcp --syn -j x\n\
         -A INPUT -p icmp --icmp-type echo-request -j ACCEPT\n\
         -A INPUT -j NFQUEUE --queue-num 7\n\
         -A INPUT -p tcp -j REJECT --reject-with tcp-reset\nCOMMIT\n\
         *nat\n-A POSTROUTING -j SNAT --to-source 1.2.3.4\n\
         -A PREROUTING -p tcp -j DNAT --to-destination [2001:db8::1]-[2001:db8::3]:80-81\nCOMMIT\n\
         *mangle\n-A FORWARD -j TTL --ttl-dec 2\n-A FORWARD -j MARK --set-xmark 1/3\n\
         -A FORWARD -j TOS --set-dscp 10\nCOMMIT\n",
    )
    .unwrap();
    let b = text::parse(
        "*filter\n:INPUT ACCEPT [0:0]\n:x - [0:0]\n\
         -A INPUT -s !10.0.0.1/32 -p tcp --tcp-flags FIN,SYN,RST,ACK SYN --jump x\n\
         -A INPUT -p icmp --icmp-type 8 --accept\n\
         -A INPUT --queue 7\n\
         -A INPUT -p tcp --reject --reject-with tcp-reset\nCOMMIT\n\
         *nat\n-A POSTROUTING --to-source 1.2.3.4\n\
         -A PREROUTING -p tcp --to-destination [2001:db8::1]-[2001:db8::3]:80-81\nCOMMIT\n\
         *mangle\n-A FORWARD --ttl-dec 2\n-A FORWARD --set-mark 0x1/0x3\n\
         -A FORWARD --set-tos 0x28/0xfc\nCOMMIT\n",
    )
    .unwrap();
    assert_eq!(a, b);
}

#[test]
fn parse_rule_for_fwctl_add() {
    let mut t = TableSpec::new(TableKind::Filter);
    t.chains.push(nat::spec::ChainSpec {
        name: ChainName::new(b"blk").unwrap(),
        policy: None,
        counter: Counter::default(),
        rules: vec![],
    });
    let r = text::parse_rule(
        &["-6", "-p", "tcp", "--dport", "!22:23", "--jump", "blk"],
        &t,
    )
    .unwrap();
    assert_eq!(r.matches.family, Some(Family::Ipv6));
    assert_eq!(
        r.matches.dport,
        Some(Neg::not(PortRange { lo: 22, hi: 23 }))
    );
    assert_eq!(r.target, Target::Jump(ChainId(3)));
    assert_eq!(
        text::rule_options(&r, &t),
        "-6 -p tcp --dport !22:23 --jump blk"
    );
    let bad = [
        &["--jump", "nosuch"][..],
        &["-p", "tcp", "--accept", "--drop"],
        &["--dport"],
        &["-s", "10.0.0.0/33"],
        &["--frobnicate"],
        &["--log-prefix", "x"],
        &["--to-ports", "80"],
        &["-i", "averyveryverylongname"],
        &["-i", "a b"],
        &["-i", "é"],
        &["-o", "#x"],
        &["-i", "a/b"],
        &["--mark", "zz"],
        &["!", "--accept"],
        &["-j", "SNAT"],
    ];
    for args in bad {
        assert!(text::parse_rule(args, &t).is_err(), "{args:?} should fail");
    }
}

fn err_of(text_src: &str) -> (usize, String) {
    match text::parse(text_src) {
        Ok(_) => panic!("expected an error for {text_src}"),
        Err(e) => (e.line, e.message),
    }
}

#[test]
fn validation_errors_name_rule_and_problem() {
    let cases: &[(&str, usize, &str)] = &[
        // DNAT outside PREROUTING/OUTPUT
        ("*nat\n-A POSTROUTING -p tcp --to-destination 1.2.3.4:80\nCOMMIT\n", 2, "chain POSTROUTING rule 1: DNAT not valid in chains reached from POSTROUTING"),
        // SNAT outside POSTROUTING/INPUT, reached through a user chain
        ("*nat\n:PREROUTING ACCEPT [0:0]\n:u - [0:0]\n-A PREROUTING --jump u\n-A u --to-source 1.2.3.4\nCOMMIT\n", 5, "chain u rule 1: SNAT not valid in chains reached from PREROUTING"),
        ("*nat\n-A OUTPUT --masquerade\nCOMMIT\n", 2, "MASQUERADE not valid in chains reached from OUTPUT"),
        ("*nat\n-A POSTROUTING --redirect\nCOMMIT\n", 2, "REDIRECT not valid"),
        ("*filter\n-A INPUT --to-source 1.2.3.4\nCOMMIT\n", 2, "SNAT not valid in this table"),
        ("*filter\n-A INPUT --ttl-set 3\nCOMMIT\n", 2, "TTL not valid in this table"),
        ("*nat\n-A PREROUTING --reject\nCOMMIT\n", 2, "REJECT not valid in this table"),
        // jump loops
        ("*filter\n:a - [0:0]\n:b - [0:0]\n-A INPUT --jump a\n-A a --jump b\n-A b --goto a\nCOMMIT\n", 0, "jump loop"),
        ("*filter\n:a - [0:0]\n-A a --jump a\nCOMMIT\n", 3, "chain a rule 1: jump loop"),
        // bad ranges
        ("*filter\n-A INPUT -p tcp --dport 90:80 --accept\nCOMMIT\n", 2, "chain INPUT rule 1: bad range"),
        ("*nat\n-A PREROUTING -p tcp --to-destination 10.0.0.9-10.0.0.1\nCOMMIT\n", 2, "bad range"),
        ("*nat\n-A PREROUTING -p tcp --to-destination 10.0.0.1:90-80\nCOMMIT\n", 2, "bad range"),
        ("*nat\n-A PREROUTING -p tcp --to-destination 10.0.0.1:0\nCOMMIT\n", 2, "bad range"),
        // options that need a protocol
        ("*filter\n-A INPUT --dport 80 --accept\nCOMMIT\n", 2, "--sport/--dport needs a matching -p"),
        ("*filter\n-A INPUT -p !tcp --dport 80 --accept\nCOMMIT\n", 2, "needs a matching -p"),
        ("*filter\n-A INPUT -p tcp --icmp-type 8 --accept\nCOMMIT\n", 2, "--icmp-type needs"),
        // a NAT port range with a -p whose ports NAT never maps (none
        // at all is fine: see nat_ports_without_a_protocol_are_accepted)
        ("*nat\n-A PREROUTING -p icmp --to-destination 10.0.0.1:80\nCOMMIT\n", 2, "a NAT port range needs"),
        ("*nat\n-A PREROUTING -6 -p ipv6-icmp --to-destination [2001:db8::1]:80\nCOMMIT\n", 2, "a NAT port range needs"),
        ("*nat\n-A PREROUTING -p sctp --to-destination 10.0.0.1:80\nCOMMIT\n", 2, "a NAT port range needs"),
        ("*nat\n-A PREROUTING -p 47 --redirect --to-ports 80\nCOMMIT\n", 2, "a NAT port range needs"),
        ("*nat\n-A POSTROUTING -p icmp --masquerade --to-ports 1024-2047\nCOMMIT\n", 2, "a NAT port range needs"),
        ("*nat\n-A POSTROUTING -p icmp --to-source :1024-2047\nCOMMIT\n", 2, "a NAT port range needs"),
        ("*filter\n-A INPUT -p udp --reject --reject-with tcp-reset\nCOMMIT\n", 2, "tcp-reset needs"),
        // families
        ("*filter\n-A INPUT -s 10.0.0.0/8 -d 2001:db8::/32 --accept\nCOMMIT\n", 2, "mixed"),
        ("*filter\n-A INPUT -6 -s 10.0.0.0/8 --accept\nCOMMIT\n", 2, "mixed"),
        ("*nat\n-A POSTROUTING -6 --to-source 1.2.3.4\nCOMMIT\n", 2, "mixed"),
        ("*filter\n-A INPUT -6 -p icmp --icmp-type 8 --accept\nCOMMIT\n", 2, "mixed"),
        // interfaces in hooks without them
        ("*filter\n-A OUTPUT -i eth0 --accept\nCOMMIT\n", 2, "-i not valid in chains reached from OUTPUT"),
        ("*filter\n-A INPUT -o eth0 --accept\nCOMMIT\n", 2, "-o not valid in chains reached from INPUT"),
        // chains
        ("*filter\n:INPUT ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\nCOMMIT\n", 3, "declared twice"),
        ("*filter\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", 2, "policy only on built-in chains"),
        ("*filter\n:INPUT - [0:0]\nCOMMIT\n", 2, "policy only on built-in chains"),
        ("*filter\n-A INPUT --jump INPUT\nCOMMIT\n", 2, "jump to a built-in chain"),
        ("*filter\n-A INPUT --jump nosuch\nCOMMIT\n", 2, "no chain"),
        ("*filter\n:FORWARD ACCEPT [0:0]\n-A INPUT --jump FORWARD\nCOMMIT\n", 3, "jump to a built-in chain"),
        ("*filter\n:ACCEPT - [0:0]\nCOMMIT\n", 2, "invalid chain name"),
        // values
        ("*mangle\n-A FORWARD --ttl-inc 0\nCOMMIT\n", 2, "--ttl-inc/--ttl-dec (0)"),
        ("*filter\n-A INPUT --log --log-level 9\nCOMMIT\n", 2, "--log-level"),
        ("*filter\n-A INPUT --log --log-rate 0\nCOMMIT\n", 2, "--log-rate"),
        ("*filter\n-A INPUT -p tcp --tcp-flags SYN SYN,ACK --accept\nCOMMIT\n", 2, "--tcp-flags"),
        // text-level
        ("*filter\n-A INPUT --accept\n", 2, "missing COMMIT"),
        ("-A INPUT --accept\n", 1, "expected *table"),
        ("*raw\nCOMMIT\n", 1, "unknown table"),
    ];
    for (src, line, msg) in cases {
        let (l, m) = err_of(src);
        assert!(m.contains(msg), "{src:?}: got {m:?}, want {msg:?}");
        if *line != 0 {
            assert_eq!(l, *line, "{src:?}: {m}");
        }
    }
}

#[test]
fn nat_ports_without_a_protocol_are_accepted() {
    // Unlike iptables: without -p (or with a negated one) the ports apply
    // to the protocols that have them and the rest get the address only.
    for rule in [
        "-A PREROUTING --to-destination 1.2.3.4:8080",
        "-A PREROUTING --to-destination 1.2.3.4-1.2.3.9:8080-8089",
        "-A PREROUTING -6 --to-destination [2001:db8::1]:8080",
        "-A PREROUTING -p !tcp --to-destination 1.2.3.4:53",
        "-A PREROUTING --redirect --to-ports 3128",
        "-A OUTPUT --redirect --to-ports 3128-3130",
        "-A POSTROUTING --to-source 1.2.3.4:1024-2047",
        "-A POSTROUTING --to-source :1024-2047",
        "-A INPUT --to-source 1.2.3.4:1024",
        "-A POSTROUTING -o ppp0 --masquerade --to-ports 1024-2047",
        // and with a protocol whose ports NAT maps, as before
        "-A PREROUTING -p tcp --to-destination 1.2.3.4:8080",
        "-A PREROUTING -p udp --to-destination 1.2.3.4:8080",
        "-A PREROUTING -p udplite --to-destination 1.2.3.4:8080",
        "-A PREROUTING -p dccp --to-destination 1.2.3.4:8080",
    ] {
        let src = format!("*nat\n{rule}\nCOMMIT\n");
        let rs = text::parse(&src).unwrap_or_else(|e| panic!("{rule}: {e}"));
        rs.validate().unwrap();
        let printed = text::print(&rs);
        assert!(printed.contains(&format!("\n{rule}\n")), "{printed}");
        assert_eq!(text::parse(&printed).unwrap(), rs);
    }
    // fwctl's form: the rule alone, the port kept, no protocol added.
    let t = TableSpec::new(TableKind::Nat);
    let r = text::parse_rule(&["--to-destination", "1.2.3.4:8080"], &t).unwrap();
    assert_eq!(r.matches.proto, None);
    assert_eq!(
        r.target,
        Target::Dnat(NatRange {
            addrs: Some(AddrRange::single("1.2.3.4".parse().unwrap())),
            ports: Some(PortRange::single(8080)),
            flags: NatFlags(0),
        })
    );
}

#[test]
fn deep_nesting_is_rejected_but_32_levels_pass() {
    let build = |depth: usize| {
        let mut s = String::from("*filter\n");
        for i in 0..depth {
            s += &format!(":c{i} - [0:0]\n");
        }
        s += "-A INPUT --jump c0\n";
        for i in 0..depth.saturating_sub(1) {
            s += &format!("-A c{i} --jump c{}\n", i + 1);
        }
        s + "COMMIT\n"
    };
    if let Err(e) = text::parse(&build(32)) {
        panic!("{e}");
    }
    let (_, m) = err_of(&build(34));
    assert!(m.contains("nested deeper"), "{m}");
}

#[test]
fn decoder_rejects_damaged_blobs() {
    let rs = text::parse(SAMPLE).unwrap();
    let blob = rs.tables[0].encode().unwrap();
    let n = entries_needed(&blob).unwrap();
    let mut store = vec![Entry::EMPTY; n];
    assert!(decode_into(&blob, &mut store).is_ok());
    // Too little storage.
    let mut small = vec![Entry::EMPTY; n - 1];
    assert_eq!(
        decode_into(&blob, &mut small).unwrap_err().kind,
        ErrorKind::StorageTooSmall
    );
    // Every truncation fails cleanly.
    for cut in 0..blob.len() {
        assert!(decode_into(&blob[..cut], &mut store).is_err());
    }
    // Bad magic, version, trailing bytes.
    let mut b = blob.clone();
    b[0] = b'X';
    assert_eq!(
        decode_into(&b, &mut store).unwrap_err().kind,
        ErrorKind::BadMagic
    );
    let mut b = blob.clone();
    b[4] = 9;
    assert_eq!(
        decode_into(&b, &mut store).unwrap_err().kind,
        ErrorKind::BadVersion(9)
    );
    let mut b = blob.clone();
    b.push(0);
    assert_eq!(
        decode_into(&b, &mut store).unwrap_err().kind,
        ErrorKind::BadLength
    );
    // Single-byte corruption never panics (and mostly fails).
    for i in 0..blob.len() {
        for v in [0u8, 1, 0x7f, 0xff] {
            let mut b = blob.clone();
            b[i] = v;
            let _ = decode_into(&b, &mut store);
        }
    }
}

fn pkt(src: &str, dst: &str, proto_: u8, sport: u16, dport: u16) -> PacketMeta {
    let src: IpAddr = src.parse().unwrap();
    let dst: IpAddr = dst.parse().unwrap();
    PacketMeta {
        family: Family::of(&src),
        proto: proto_,
        src,
        dst,
        sport,
        dport,
        in_if: IfName::new(b"eth0").unwrap(),
        out_if: IfName::NONE,
        ct_state: CtState::New,
        mark: 0,
        icmp_type: 0,
        icmp_code: 0,
        tcp_flags: tcp_flags::SYN,
        fragment: false,
        len: 60,
    }
}

struct Compiled {
    store: Vec<Entry>,
    spec: TableSpec,
}

impl Compiled {
    fn new(src: &str, kind: TableKind) -> Compiled {
        let rs = text::parse(src).unwrap();
        let spec = rs.table(kind).unwrap().clone();
        let blob = spec.encode().unwrap();
        let store = vec![Entry::EMPTY; entries_needed(&blob).unwrap()];
        let mut c = Compiled { store, spec };
        decode_into(&blob, &mut c.store).unwrap();
        c
    }

    fn eval(&mut self, hook: Hook, p: &PacketMeta) -> (Outcome, Vec<Counter>) {
        let blob = self.spec.encode().unwrap();
        let table = decode_into(&blob, &mut self.store).unwrap();
        let mut counters = vec![Counter::default(); table.entries().len()];
        let out = table.evaluate(hook, p, counters.as_mut_slice());
        (out, counters)
    }
}

#[test]
fn evaluation_follows_jumps_gotos_returns_and_policies() {
    let mut c = Compiled::new(SAMPLE, TableKind::Filter);
    // Established traffic: first rule.
    let mut p = pkt("10.1.1.1", "10.2.2.2", proto::TCP, 5555, 80);
    p.ct_state = CtState::Established;
    let (o, cnt) = c.eval(Hook::Input, &p);
    assert_eq!(o.verdict, Verdict::Accept);
    assert_eq!(o.entry, 0);
    assert_eq!(
        cnt[0],
        Counter {
            packets: 1,
            bytes: 60
        }
    );
    // New SSH from outside 10/8: jump to ssh, not returned early, accept at ssh rule 3.
    let p = pkt("192.168.1.1", "10.2.2.2", proto::TCP, 5555, 22);
    let (o, cnt) = c.eval(Hook::Input, &p);
    assert_eq!(o.verdict, Verdict::Accept);
    // Entries: INPUT 10 rules + policy (0..=10), FORWARD policy (11),
    // OUTPUT 1 rule + policy (12, 13), then ssh.
    let ssh_start = 14;
    assert_eq!(o.entry as usize, ssh_start + 2);
    assert_eq!(cnt[2].packets, 1, "jump rule counted");
    assert_eq!(cnt[ssh_start].packets, 1, "LOG rule counted");
    // SSH from 192.0.2.x: RETURN from ssh back to INPUT; then the SYN with
    // ct-state new does not hit the drop; falls to the policy DROP.
    let p = pkt("192.0.2.7", "10.2.2.2", proto::TCP, 5555, 22);
    let (o, cnt) = c.eval(Hook::Input, &p);
    assert_eq!(o.verdict, Verdict::Drop);
    assert_eq!(o.entry, 10, "INPUT policy entry");
    assert_eq!(cnt[10].packets, 1, "policy counted");
    // SSH from inside 10/8: -s !10/8 fails, policy.
    let p = pkt("10.9.9.9", "10.2.2.2", proto::TCP, 5555, 22);
    assert_eq!(c.eval(Hook::Input, &p).0.verdict, Verdict::Drop);
    // Port 80 goes to web (goto); -i !eth1 drops on eth0.
    let p = pkt("10.9.9.9", "10.2.2.2", proto::TCP, 5555, 80);
    assert_eq!(c.eval(Hook::Input, &p).0.verdict, Verdict::Drop);
    // On eth1, web's rules fall through: the goto does not return to INPUT,
    // so the result is INPUT's policy (DROP), and rules after the goto in
    // INPUT (--mark -> queue) are not evaluated.
    let mut p = pkt("10.9.9.9", "10.2.2.2", proto::TCP, 5555, 80);
    p.in_if = IfName::new(b"eth1").unwrap();
    p.mark = 1;
    let (o, cnt) = c.eval(Hook::Input, &p);
    assert_eq!(o.verdict, Verdict::Drop);
    assert_eq!(cnt[8].packets, 0, "queue rule after goto not reached");
    // Without the goto, the mark rule queues.
    let mut p = pkt("10.9.9.9", "10.2.2.2", proto::TCP, 5555, 443);
    p.mark = 0x301;
    assert_eq!(
        c.eval(Hook::Input, &p).0.verdict,
        Verdict::Queue(QueueSpec::num(3))
    );
    // UDP to a port other than 53 from a high port: REJECT.
    let p = pkt("10.9.9.9", "10.2.2.2", proto::UDP, 40000, 123);
    assert_eq!(
        c.eval(Hook::Input, &p).0.verdict,
        Verdict::Reject(RejectWith::AdminProhibited)
    );
    let p = pkt("10.9.9.9", "10.2.2.2", proto::UDP, 40000, 53);
    assert_eq!(c.eval(Hook::Input, &p).0.verdict, Verdict::Drop);
    // ICMPv6 echo request accepted; IPv4 echo not.
    let mut p = pkt("2001:db8::1", "2001:db8::2", proto::ICMPV6, 0, 0);
    p.icmp_type = 128;
    assert_eq!(c.eval(Hook::Input, &p).0.verdict, Verdict::Accept);
    let mut p = pkt("10.0.0.1", "10.0.0.2", proto::ICMP, 0, 0);
    p.icmp_type = 8;
    assert_eq!(c.eval(Hook::Input, &p).0.verdict, Verdict::Drop);
    p.icmp_type = 3;
    p.icmp_code = 4;
    assert_eq!(c.eval(Hook::Input, &p).0.verdict, Verdict::Accept);
    p.icmp_code = 3;
    assert_eq!(c.eval(Hook::Input, &p).0.verdict, Verdict::Drop);
    // SYN on a non-new connection: dropped by the tcp-flags rule.
    let mut p = pkt("10.9.9.9", "10.2.2.2", proto::TCP, 5555, 443);
    p.ct_state = CtState::Invalid;
    let (o, _) = c.eval(Hook::Input, &p);
    assert_eq!((o.verdict, o.entry), (Verdict::Drop, 5));
    // A fragment never matches port rules.
    let mut p = pkt("10.9.9.9", "10.2.2.2", proto::UDP, 40000, 123);
    p.fragment = true;
    assert_eq!(c.eval(Hook::Input, &p).0.verdict, Verdict::Drop);
    // A hook without a chain in this table accepts.
    assert_eq!(c.eval(Hook::Prerouting, &p).0.verdict, Verdict::Accept);
    // OUTPUT: MARK is non-terminal, policy ACCEPT, mark changed.
    let mut p = pkt("10.0.0.1", "10.0.0.2", proto::UDP, 1, 2);
    p.out_if = IfName::new(b"eth3").unwrap();
    p.mark = 0xff00;
    let (o, _) = c.eval(Hook::Output, &p);
    assert_eq!(
        (o.verdict, o.mark),
        (Verdict::Accept, 0x10),
        "--set-mark without mask replaces the mark"
    );
}

#[test]
fn nat_and_mangle_outcomes() {
    let mut n = Compiled::new(SAMPLE, TableKind::Nat);
    let mut p = pkt("198.51.100.1", "203.0.113.1", proto::TCP, 5555, 80);
    let (o, _) = n.eval(Hook::Prerouting, &p);
    let Verdict::Dnat(r) = o.verdict else {
        panic!("{o:?}")
    };
    assert_eq!(r.ports, Some(PortRange { lo: 8080, hi: 8090 }));
    assert!(r.flags.has(NatFlags::RANDOM));
    p.dport = 8000;
    assert!(matches!(
        n.eval(Hook::Prerouting, &p).0.verdict,
        Verdict::Redirect(_)
    ));
    p.out_if = IfName::new(b"ppp0").unwrap();
    p.in_if = IfName::NONE;
    assert!(matches!(
        n.eval(Hook::Postrouting, &p).0.verdict,
        Verdict::Masquerade(_)
    ));

    let mut m = Compiled::new(SAMPLE, TableKind::Mangle);
    let mut p = pkt("10.0.0.1", "10.0.0.2", proto::UDP, 1, 2);
    let (o, _) = m.eval(Hook::Forward, &p);
    // ttl-dec 1 then ttl-inc 3 fold into one function, clamped at 0 first.
    let f = o.mangle.ttl.unwrap();
    assert_eq!(f.apply(64), 66);
    assert_eq!(f.apply(0), 3);
    assert_eq!(f.apply(255), 255);
    let (o, _) = m.eval(Hook::Prerouting, &p);
    assert_eq!(o.mangle.tos.unwrap().apply(0xff), 0x10);
    p.in_if = IfName::new(b"eth1").unwrap();
    let (o, _) = m.eval(Hook::Prerouting, &p);
    assert_eq!(o.mangle.tos.unwrap().apply(0x03), 0x23);
    p.mark = 0xf0f0;
    let (o, _) = m.eval(Hook::Output, &p);
    // ((0xf0f0 ^ 3) & 0xff | 0x100) with low nibble set to 5
    assert_eq!(o.mark, ((((0xf0f0u32 ^ 3) & 0xff) | 0x100) & !0xf) | 5);
}

#[test]
fn mark_set_by_one_rule_is_seen_by_the_next() {
    let src = "*mangle\n-A PREROUTING --set-mark 0x7\n-A PREROUTING --mark 0x7 --drop\nCOMMIT\n";
    let mut c = Compiled::new(src, TableKind::Mangle);
    let p = pkt("10.0.0.1", "10.0.0.2", proto::UDP, 1, 2);
    let (o, cnt) = c.eval(Hook::Prerouting, &p);
    assert_eq!((o.verdict, o.mark), (Verdict::Drop, 7));
    assert_eq!(cnt[1].packets, 1);
}

#[test]
fn offload_marks_the_outcome_and_the_walk_goes_on() {
    let mut c = Compiled::new(OFFLOAD, TableKind::Filter);
    let mut p = pkt("10.0.1.2", "10.0.2.2", proto::TCP, 40000, 80);
    p.out_if = IfName::new(b"eth1").unwrap();
    // Entries: INPUT's policy (0), FORWARD's two rules (1, 2) and policy.
    // Established: the OFFLOAD rule matches and counts, and the next rule
    // decides (the policy is DROP).
    p.ct_state = CtState::Established;
    let (o, cnt) = c.eval(Hook::Forward, &p);
    assert_eq!((o.verdict, o.offload, o.entry), (Verdict::Accept, true, 2));
    assert_eq!((cnt[1].packets, cnt[2].packets), (1, 1));
    // New: the OFFLOAD rule does not match.
    p.ct_state = CtState::New;
    let (o, cnt) = c.eval(Hook::Forward, &p);
    assert_eq!((o.verdict, o.offload, o.entry), (Verdict::Accept, false, 2));
    assert_eq!((cnt[1].packets, cnt[2].packets), (0, 1));
    // Other hooks, and a hook the table has no chain for: never.
    p.ct_state = CtState::Established;
    assert!(!c.eval(Hook::Input, &p).0.offload);
    assert!(!c.eval(Hook::Prerouting, &p).0.offload);

    // In a user chain: still set after RETURN, and with the verdict of a
    // later rule, DROP included (what to do with a dropped packet's flow
    // is the caller's business).
    let src = "*filter\n:FORWARD ACCEPT [0:0]\n:fast - [0:0]\n\
               -A FORWARD --jump fast\n-A FORWARD -p udp --drop\n\
               -A fast -p tcp --offload\n-A fast -p udp --offload\nCOMMIT\n";
    let mut c = Compiled::new(src, TableKind::Filter);
    let p = pkt("10.0.1.2", "10.0.2.2", proto::TCP, 40000, 80);
    let (o, _) = c.eval(Hook::Forward, &p);
    assert_eq!((o.verdict, o.offload), (Verdict::Accept, true));
    let p = pkt("10.0.1.2", "10.0.2.2", proto::UDP, 40000, 53);
    let (o, _) = c.eval(Hook::Forward, &p);
    assert_eq!((o.verdict, o.offload), (Verdict::Drop, true));
    let p = pkt("10.0.1.2", "10.0.2.2", proto::ICMP, 0, 0);
    let (o, _) = c.eval(Hook::Forward, &p);
    assert_eq!((o.verdict, o.offload), (Verdict::Accept, false));
}

#[test]
fn log_goes_to_the_sink_and_is_rate_limited() {
    struct Logs(Vec<(usize, String)>, Vec<TokenBucket>, u64);
    impl RuleSink for Logs {
        fn hit(&mut self, _: usize, _: u32) {}
        fn log(&mut self, i: usize, spec: &LogSpec, _: &PacketMeta) {
            if self.1[i].allow(self.2, spec.rate, spec.burst) {
                self.0.push((i, spec.prefix.as_str().to_string()));
            }
        }
    }
    let rs = text::parse(SAMPLE).unwrap();
    let blob = rs.table(TableKind::Filter).unwrap().encode().unwrap();
    let mut store = vec![Entry::EMPTY; entries_needed(&blob).unwrap()];
    let t = decode_into(&blob, &mut store).unwrap();
    let mut sink = Logs(vec![], vec![TokenBucket::default(); t.entries().len()], 0);
    let p = pkt("192.168.1.1", "10.2.2.2", proto::TCP, 5555, 22);
    for _ in 0..10 {
        t.evaluate(Hook::Input, &p, &mut sink);
    }
    // burst 3: three lines at t=0.
    assert_eq!(sink.0.len(), 3);
    assert_eq!(sink.0[0].1, "ssh \"in\": ");
    // rate 2/s: half a second later, one more.
    sink.2 = 500_000_000;
    for _ in 0..10 {
        t.evaluate(Hook::Input, &p, &mut sink);
    }
    assert_eq!(sink.0.len(), 4);
    let _ = t.evaluate(Hook::Input, &p, &mut NoSink);
}

#[test]
fn empty_table_and_default_table_work() {
    let t = TableSpec::new(TableKind::Mangle);
    t.validate().unwrap();
    let rs = Ruleset {
        tables: vec![TableSpec::new(TableKind::Filter), t],
    };
    let s = text::print(&rs);
    assert_eq!(text::parse(&s).unwrap(), rs);
}

// ------------------------------------------------------ random round trips

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

fn rand_addr(r: &mut Rng, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(std::net::Ipv6Addr::from(
            (r.next() as u128) << 64 | r.next() as u128,
        ))
    } else {
        IpAddr::V4(std::net::Ipv4Addr::from(r.next() as u32))
    }
}

fn rand_ports(r: &mut Rng) -> PortRange {
    let a = r.below(65536) as u16;
    let b = r.below(65536) as u16;
    PortRange {
        lo: a.min(b),
        hi: a.max(b),
    }
}

fn rand_rule(r: &mut Rng, kind: TableKind, chains: u16, hook: Option<Hook>) -> Rule {
    let v6 = r.coin();
    let mut m = Match::ANY;
    let neg = |r: &mut Rng| r.below(4) == 0;
    if r.coin() {
        m.family = Some(if v6 { Family::Ipv6 } else { Family::Ipv4 });
    }
    let p = [
        proto::TCP,
        proto::UDP,
        if v6 { proto::ICMPV6 } else { proto::ICMP },
        47,
    ][r.below(4) as usize];
    if r.coin() {
        m.proto = Some(Neg {
            invert: r.below(8) == 0,
            value: p,
        });
    }
    if r.coin() {
        m.src = Some(Neg {
            invert: neg(r),
            value: Prefix {
                addr: rand_addr(r, v6),
                len: r.below(if v6 { 129 } else { 33 }) as u8,
            },
        });
    }
    if r.coin() {
        m.dst = Some(Neg {
            invert: neg(r),
            value: Prefix {
                addr: rand_addr(r, v6),
                len: r.below(if v6 { 129 } else { 33 }) as u8,
            },
        });
    }
    let positive = m.proto.filter(|p| !p.invert).map(|p| p.value);
    if positive.is_some_and(proto::has_ports) {
        if r.coin() {
            m.sport = Some(Neg {
                invert: neg(r),
                value: rand_ports(r),
            });
        }
        if r.coin() {
            m.dport = Some(Neg {
                invert: neg(r),
                value: rand_ports(r),
            });
        }
    }
    if positive == Some(proto::TCP) && r.coin() {
        let mask = r.next() as u8;
        m.tcp_flags = Some(Neg {
            invert: neg(r),
            value: TcpFlagsMatch {
                mask,
                comp: mask & r.next() as u8,
            },
        });
    }
    if matches!(positive, Some(proto::ICMP | proto::ICMPV6)) && r.coin() {
        m.icmp = Some(Neg {
            invert: neg(r),
            value: IcmpMatch {
                ty: r.next() as u8,
                code: r.coin().then(|| r.next() as u8),
            },
        });
    }
    let names: [&[u8]; 4] = [b"eth0", b"wlan+", b"veth-a.1", b"x"];
    let in_ok = matches!(hook, Some(Hook::Prerouting | Hook::Input | Hook::Forward));
    let out_ok = matches!(hook, Some(Hook::Forward | Hook::Output | Hook::Postrouting));
    if in_ok && r.below(3) == 0 {
        m.in_if = Some(Neg {
            invert: neg(r),
            value: IfName::new(names[r.below(4) as usize]).unwrap(),
        });
    }
    if out_ok && r.below(3) == 0 {
        m.out_if = Some(Neg {
            invert: neg(r),
            value: IfName::new(names[r.below(4) as usize]).unwrap(),
        });
    }
    if r.coin() {
        m.ct_state = Some(Neg {
            invert: neg(r),
            value: CtStateSet(1 + r.below(31) as u8),
        });
    }
    if r.coin() {
        m.mark = Some(Neg {
            invert: neg(r),
            value: MarkMatch {
                value: r.next() as u32,
                mask: if r.coin() { u32::MAX } else { r.next() as u32 },
            },
        });
    }
    // NAT ports: with no -p (or a negated one) or one whose ports NAT maps.
    let has_ports = positive.is_none_or(proto::nat_rewrites_ports);
    let nat_range = |r: &mut Rng, addrs: bool| {
        let mut nr = NatRange {
            addrs: None,
            ports: None,
            flags: NatFlags(r.below(8) as u8),
        };
        if addrs && r.coin() {
            let (a, b) = (rand_addr(r, v6), rand_addr(r, v6));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            nr.addrs = Some(AddrRange {
                lo,
                hi: if r.coin() { lo } else { hi },
            });
        }
        if has_ports && r.coin() {
            let mut p = rand_ports(r);
            p.lo = p.lo.max(1);
            p.hi = p.hi.max(1);
            nr.ports = Some(p);
        }
        if addrs && nr.addrs.is_none() && nr.ports.is_none() {
            nr.addrs = Some(AddrRange::single(rand_addr(r, v6)));
        }
        nr
    };
    let allowed: &[u64] = match (kind, hook) {
        (TableKind::Filter, Some(Hook::Forward)) => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 16],
        (TableKind::Filter, _) => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 13],
        (TableKind::Mangle, _) => &[0, 1, 2, 4, 5, 6, 7, 8, 13, 14, 15],
        (TableKind::Nat, Some(Hook::Prerouting | Hook::Output)) => &[0, 1, 2, 4, 5, 6, 8, 10, 12],
        (TableKind::Nat, Some(Hook::Postrouting)) => &[0, 1, 4, 5, 8, 9, 11],
        (TableKind::Nat, Some(_)) => &[0, 1, 2, 5, 6, 9],
        (TableKind::Nat, None) => &[0, 1, 2, 4, 5, 6, 7, 8, 13],
    };
    let target = match allowed[r.below(allowed.len() as u64) as usize] {
        0 => Target::Continue,
        1 => Target::Accept,
        2 => Target::Drop,
        3 => Target::Reject(RejectWith::NAMES[r.below(5) as usize].1),
        4 => Target::Return,
        5 => Target::Jump(ChainId(r.below(chains as u64) as u16)),
        6 => Target::Goto(ChainId(r.below(chains as u64) as u16)),
        7 => Target::Queue(QueueSpec {
            num: r.next() as u16,
            bypass: r.next() & 1 == 0,
        }),
        8 => {
            let pre = ["", "a b", "quote\"back\\slash", "x: "][r.below(4) as usize];
            Target::Log(LogSpec {
                prefix: LogPrefix::new(pre.as_bytes()).unwrap(),
                level: r.below(8) as u8,
                rate: 1 + r.below(100) as u16,
                burst: 1 + r.below(100) as u16,
            })
        }
        9 => Target::Snat(nat_range(r, true)),
        10 => Target::Dnat(nat_range(r, true)),
        11 => Target::Masquerade(nat_range(r, false)),
        12 => Target::Redirect(nat_range(r, false)),
        13 => Target::Mark(match r.below(4) {
            0 => MarkOp::Set {
                value: r.next() as u32,
                mask: r.next() as u32,
            },
            1 => MarkOp::And(r.next() as u32),
            2 => MarkOp::Or(r.next() as u32),
            _ => MarkOp::Xor(r.next() as u32),
        }),
        14 => Target::Tos(TosOp {
            value: r.next() as u8,
            mask: r.next() as u8,
        }),
        15 => Target::Ttl(
            [
                TtlOp::Set(r.next() as u8),
                TtlOp::Inc(1 + r.below(255) as u8),
                TtlOp::Dec(1 + r.below(255) as u8),
            ][r.below(3) as usize],
        ),
        16 => Target::Offload,
        _ => Target::Accept,
    };
    let _ = kind;
    Rule { matches: m, target }
}

fn rand_table(seed: u64) -> TableSpec {
    let mut r = Rng(seed | 1);
    let kind = TableKind::ALL[r.below(3) as usize];
    let mut t = TableSpec::new(kind);
    for i in 0..r.below(4) {
        t.chains.push(nat::spec::ChainSpec {
            name: ChainName::new(format!("u{i}").as_bytes()).unwrap(),
            policy: None,
            counter: Counter::default(),
            rules: vec![],
        });
    }
    let nchains = t.chains.len() as u16;
    for c in 0..t.chains.len() {
        if t.chains[c].policy.is_some() && r.coin() {
            t.chains[c].policy = Some(Policy::Drop);
        }
        t.chains[c].counter = Counter {
            packets: r.below(3),
            bytes: r.below(1000),
        };
        for _ in 0..r.below(6) {
            // Jumps only forward, to user chains, so most tables are valid.
            let hook = Hook::from_name(t.chains[c].name.as_bytes())
                .filter(|_| t.chains[c].policy.is_some());
            let mut rule = rand_rule(&mut r, kind, nchains, hook);
            if let Target::Jump(ChainId(j)) | Target::Goto(ChainId(j)) = &mut rule.target {
                let first_user = nchains - (nchains - kind.hooks().count_ones() as u16);
                let lo = (c as u16 + 1).max(first_user);
                if lo >= nchains {
                    rule.target = Target::Return;
                } else {
                    *j = lo + (r.below((nchains - lo) as u64) as u16);
                }
            }
            let counter = if r.coin() {
                Counter::default()
            } else {
                Counter {
                    packets: r.next() >> 20,
                    bytes: r.next() >> 10,
                }
            };
            // Handles as fwctl leaves them after edits: unique, any order,
            // with gaps; sometimes a duplicate (another tool's blob), which
            // the kernel accepts as it ignores handles.
            let handle = if r.below(16) == 0 { 7 } else { r.next() as u32 };
            t.chains[c].rules.push(nat::spec::RuleSpec {
                rule,
                counter,
                handle,
            });
        }
    }
    t
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
    #[test]
    fn random_tables_round_trip(seed in proptest::prelude::any::<u64>()) {
        let t = rand_table(seed);
        // Binary: always round-trips when valid; validation is the kernel's.
        let blob = t.encode().unwrap();
        let valid = t.validate();
        match TableSpec::decode(&blob) {
            Ok(back) => {
                proptest::prop_assert!(valid.is_ok());
                proptest::prop_assert_eq!(back.encode().unwrap(), blob);
                let mut t0 = t.clone();
                t0.set_counters(&vec![Counter::default(); t.entry_count()]);
                proptest::prop_assert_eq!(back, t0);
            }
            Err(e) => proptest::prop_assert_eq!(Err(e), valid),
        }
        if valid.is_ok() {
            // The text form has no handles: a restore numbers the rules.
            let mut t = t;
            t.renumber_handles();
            let rs = Ruleset { tables: vec![t] };
            let s = text::print(&rs);
            let back = text::parse(&s);
            proptest::prop_assert_eq!(back.as_ref(), Ok(&rs), "{}", s);
            proptest::prop_assert_eq!(text::print(&back.unwrap()), s);
        }
    }
}

#[test]
fn random_tables_are_often_valid() {
    // The round-trip property above is only as good as the share of valid
    // tables it sees.
    let valid = (1..=500u64)
        .filter(|s| {
            rand_table(s.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .validate()
                .is_ok()
        })
        .count();
    assert!(valid > 100, "only {valid} of 500 random tables valid");
}

/// `NAT_WRITE_SEEDS=dir cargo test -p nat --test ruleset write_fuzz_seeds`
/// writes the sample tables' blobs (and the OFFLOAD example's) as seeds for
/// the decode fuzz target.
#[test]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("NAT_WRITE_SEEDS") else {
        return;
    };
    let rs = text::parse(SAMPLE).unwrap();
    for t in &rs.tables {
        let path = std::path::Path::new(&dir).join(format!("{}.bin", t.kind));
        std::fs::write(path, t.encode().unwrap()).unwrap();
    }
    let rs = text::parse(OFFLOAD).unwrap();
    let path = std::path::Path::new(&dir).join("filter-offload.bin");
    std::fs::write(path, rs.tables[0].encode().unwrap()).unwrap();
}

// ------------------------------------------- evaluation against a reference

/// The family a rule is limited to, computed independently of the codec.
fn rule_family(rule: &Rule) -> Option<Family> {
    let m = &rule.matches;
    let mut f = m.family;
    for p in [m.src, m.dst].into_iter().flatten() {
        f = Some(p.value.family());
    }
    if m.icmp.is_some() {
        f = m.proto.map(|p| {
            if p.value == proto::ICMP {
                Family::Ipv4
            } else {
                Family::Ipv6
            }
        });
    }
    if let Target::Snat(r) | Target::Dnat(r) = rule.target {
        if let Some(a) = r.addrs {
            f = Some(Family::of(&a.lo));
        }
    }
    f
}

enum Flow {
    Verdict(Verdict),
    Return,
}

/// A recursive interpreter of iptables semantics over the owned model;
/// `offload` is set when an OFFLOAD rule matched.
fn reference(
    t: &TableSpec,
    chain: usize,
    p: &PacketMeta,
    mark: &mut u32,
    offload: &mut bool,
) -> Flow {
    for r in &t.chains[chain].rules {
        let mut view = *p;
        view.mark = *mark;
        if !nat::eval::matches(&r.rule.matches, rule_family(&r.rule), &view) {
            continue;
        }
        match r.rule.target {
            Target::Accept => return Flow::Verdict(Verdict::Accept),
            Target::Drop => return Flow::Verdict(Verdict::Drop),
            Target::Reject(w) => return Flow::Verdict(Verdict::Reject(w)),
            Target::Queue(q) => return Flow::Verdict(Verdict::Queue(q)),
            Target::Snat(r) => return Flow::Verdict(Verdict::Snat(r)),
            Target::Dnat(r) => return Flow::Verdict(Verdict::Dnat(r)),
            Target::Masquerade(r) => return Flow::Verdict(Verdict::Masquerade(r)),
            Target::Redirect(r) => return Flow::Verdict(Verdict::Redirect(r)),
            Target::Return => return Flow::Return,
            Target::Jump(c) => {
                if let Flow::Verdict(v) = reference(t, c.0 as usize, p, mark, offload) {
                    return Flow::Verdict(v);
                }
            }
            Target::Goto(c) => return reference(t, c.0 as usize, p, mark, offload),
            Target::Mark(op) => *mark = op.apply(*mark),
            Target::Offload => *offload = true,
            Target::Continue | Target::Log(_) | Target::Tos(_) | Target::Ttl(_) => {}
        }
    }
    Flow::Return
}

fn rand_packet(r: &mut Rng) -> PacketMeta {
    let v6 = r.coin();
    let pick = |r: &mut Rng| -> IpAddr {
        // Mostly addresses near zero or all-ones, so that short prefixes match.
        let a = rand_addr(r, v6);
        if r.coin() {
            a
        } else {
            match a {
                IpAddr::V4(x) => IpAddr::V4((x.to_bits() >> 28).into()),
                IpAddr::V6(x) => IpAddr::V6((x.to_bits() >> 120).into()),
            }
        }
    };
    let names: [&[u8]; 4] = [b"eth0", b"wlan7", b"veth-a.1", b"x"];
    PacketMeta {
        family: if v6 { Family::Ipv6 } else { Family::Ipv4 },
        proto: [
            proto::TCP,
            proto::UDP,
            if v6 { proto::ICMPV6 } else { proto::ICMP },
            47,
        ][r.below(4) as usize],
        src: pick(r),
        dst: pick(r),
        sport: r.next() as u16,
        dport: r.next() as u16,
        in_if: IfName::new(names[r.below(4) as usize]).unwrap(),
        out_if: IfName::new(names[r.below(4) as usize]).unwrap(),
        ct_state: [
            CtState::New,
            CtState::Established,
            CtState::Related,
            CtState::Invalid,
            CtState::Untracked,
        ][r.below(5) as usize],
        mark: r.below(4) as u32,
        icmp_type: r.below(4) as u8,
        icmp_code: r.below(2) as u8,
        tcp_flags: r.next() as u8,
        fragment: r.below(8) == 0,
        len: 100,
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    #[test]
    fn evaluation_agrees_with_a_reference_interpreter(seed in proptest::prelude::any::<u64>()) {
        let t = rand_table(seed);
        proptest::prop_assume!(t.validate().is_ok());
        let blob = t.encode().unwrap();
        let mut store = vec![Entry::EMPTY; entries_needed(&blob).unwrap()];
        let table = decode_into(&blob, &mut store).unwrap();
        let mut r = Rng(seed ^ 0x5555_5555_5555_5555 | 1);
        for _ in 0..20 {
            let p = rand_packet(&mut r);
            for hook in Hook::ALL {
                let got = table.evaluate(hook, &p, &mut NoSink);
                let want = match t.chain_id(hook.name()).filter(|_| t.kind.has_hook(hook)) {
                    None => (Verdict::Accept, p.mark, false),
                    Some(c) => {
                        let (mut mark, mut offload) = (p.mark, false);
                        let v = match reference(&t, c.0 as usize, &p, &mut mark, &mut offload) {
                            Flow::Verdict(v) => v,
                            Flow::Return => t.chains[c.0 as usize].policy.unwrap().into(),
                        };
                        (v, mark, offload)
                    }
                };
                proptest::prop_assert_eq!((got.verdict, got.mark, got.offload), want, "hook {} packet {:?}", hook, p);
            }
        }
    }
}

#[test]
fn big_tables_validate_in_linear_time() {
    // INPUT jumps to 4000 chains, each of which jumps to 10 leaf chains.
    let mut s = String::from("*filter\n");
    for i in 0..4000 {
        s += &format!(":c{i} - [0:0]\n");
    }
    for i in 0..10 {
        s += &format!(":leaf{i} - [0:0]\n");
    }
    for i in 0..4000 {
        s += &format!("-A INPUT -p tcp --dport {} --jump c{i}\n", i + 1);
    }
    for i in 0..4000 {
        for j in 0..10 {
            s += &format!("-A c{i} --mark {j} --jump leaf{j}\n");
        }
    }
    for j in 0..10 {
        s += &format!("-A leaf{j} --accept\n");
    }
    s += "COMMIT\n";
    let start = std::time::Instant::now();
    let rs = text::parse(&s).unwrap();
    assert_eq!(rs.tables[0].entry_count(), 4000 + 40000 + 10 + 4013);
    // A blow-up (a walk per path, not per chain) would take hours; the
    // bound is loose so that a slow or busy host still passes (well under
    // a second on an idle one).
    assert!(
        start.elapsed().as_secs() < 120,
        "validation took {:?}",
        start.elapsed()
    );
    // The same chains in a ring: a loop, found without a blow-up.
    let mut s = String::from("*filter\n");
    for i in 0..4000 {
        s += &format!(":c{i} - [0:0]\n");
    }
    s += "-A INPUT --jump c0\n";
    for i in 0..4000 {
        s += &format!("-A c{i} --jump c{}\n", (i + 1) % 4000);
    }
    s += "COMMIT\n";
    let e = text::parse(&s).unwrap_err();
    assert!(e.message.contains("jump loop"), "{e}");
    let mut ring = TableSpec::new(TableKind::Filter);
    for i in 0..4000u16 {
        ring.chains.push(nat::spec::ChainSpec {
            name: ChainName::new(format!("c{i}").as_bytes()).unwrap(),
            policy: None,
            counter: Counter::default(),
            rules: vec![Rule::new(Target::Jump(ChainId(3 + (i + 1) % 4000))).into()],
        });
    }
    let start = std::time::Instant::now();
    assert_eq!(ring.validate().unwrap_err().kind, ErrorKind::JumpLoop);
    // As above: loose enough for a busy host, far below a blow-up.
    assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
}

#[test]
fn table_info_reattaches_to_its_storage() {
    let rs = text::parse(SAMPLE).unwrap();
    let blob = rs.table(TableKind::Filter).unwrap().encode().unwrap();
    let n = entries_needed(&blob).unwrap();
    // Storage may be larger than needed; the info remembers the length.
    let mut store = vec![Entry::EMPTY; n + 3];
    let info = decode_into(&blob, &mut store).unwrap().info();
    assert_eq!(info.kind(), TableKind::Filter);
    let t = info.attach(&store).unwrap();
    assert_eq!(t.entries().len(), n);
    let p = pkt("192.168.1.1", "10.2.2.2", proto::TCP, 5555, 22);
    assert_eq!(
        t.evaluate(Hook::Input, &p, &mut NoSink).verdict,
        Verdict::Accept
    );
    assert!(info.attach(&store[..n - 1]).is_none());
}

// ------------------------------------------------------------------ handles

#[test]
fn restored_rules_are_numbered_in_entry_order() {
    // Lines of two chains interleaved: numbered by chain, then position.
    let rs = text::parse(
        "*filter\n:x - [0:0]\n-A INPUT --accept\n-A x --drop\n-A INPUT --drop\n\
         -A OUTPUT --accept\nCOMMIT\n*nat\n-A POSTROUTING -o ppp0 --masquerade\nCOMMIT\n",
    )
    .unwrap();
    let handles = |t: &TableSpec| -> Vec<Vec<u32>> {
        t.chains
            .iter()
            .map(|c| c.rules.iter().map(|r| r.handle).collect())
            .collect()
    };
    let filter = rs.table(TableKind::Filter).unwrap();
    assert_eq!(handles(filter), [vec![1, 2], vec![], vec![3], vec![4]]);
    let nat = rs.table(TableKind::Nat).unwrap();
    assert_eq!(handles(nat), [vec![], vec![], vec![], vec![1]]);
    assert_eq!(filter.next_handle(), Some(5));
    assert_eq!(filter.find_handle(3), Some((2, 0)));
    assert_eq!(filter.find_handle(9), None);
    assert_eq!(TableSpec::new(TableKind::Nat).next_handle(), Some(1));
}

#[test]
fn handles_travel_in_the_blob_and_the_kernel_ignores_them() {
    let rs = text::parse(SAMPLE).unwrap();
    let mut t = rs.table(TableKind::Filter).unwrap().clone();
    let mut h = 1000u32;
    for r in t.chains.iter_mut().flat_map(|c| c.rules.iter_mut()) {
        h = h.wrapping_mul(7).wrapping_add(13);
        r.handle = h;
    }
    t.chains[0].rules[0].handle = u32::MAX;
    t.set_counters(&vec![Counter::default(); t.entry_count()]);
    let blob = t.encode().unwrap();
    let back = TableSpec::decode(&blob).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.encode().unwrap(), blob);
    assert_eq!(back.next_handle(), None, "u32::MAX is taken");

    // The same table with other handles (even all equal): the kernel's
    // entries are the same, so is every verdict.
    let mut same = t.clone();
    for r in same.chains.iter_mut().flat_map(|c| c.rules.iter_mut()) {
        r.handle = 0;
    }
    let other = same.encode().unwrap();
    assert_ne!(other, blob);
    let n = entries_needed(&blob).unwrap();
    assert_eq!(entries_needed(&other).unwrap(), n);
    let (mut a, mut b) = (vec![Entry::EMPTY; n], vec![Entry::EMPTY; n]);
    let ta = decode_into(&blob, &mut a).unwrap();
    let tb = decode_into(&other, &mut b).unwrap();
    assert_eq!(ta.entries(), tb.entries());
    let p = pkt("192.168.1.1", "10.2.2.2", proto::TCP, 5555, 22);
    assert_eq!(
        ta.evaluate(Hook::Input, &p, &mut NoSink),
        tb.evaluate(Hook::Input, &p, &mut NoSink)
    );
}

#[test]
fn version_1_blobs_are_refused() {
    let rs = text::parse(SAMPLE).unwrap();
    let mut blob = rs.tables[0].encode().unwrap();
    assert_eq!(&blob[4..6], &nat::codec::VERSION.to_le_bytes());
    assert_eq!(nat::codec::VERSION, 2);
    blob[4] = 1;
    let mut store = vec![Entry::EMPTY; entries_needed(&rs.tables[0].encode().unwrap()).unwrap()];
    assert_eq!(
        decode_into(&blob, &mut store).unwrap_err().kind,
        ErrorKind::BadVersion(1)
    );
}

#[test]
fn a_rule_whose_length_leaves_no_room_for_its_handle_is_refused() {
    // INPUT's one rule "--accept" after the header (20 bytes) and INPUT's
    // (name length, "INPUT", policy, rule count: 11 bytes): its length is
    // 9 = handle 4 + present 2 + invert 2 + tag 1. Make it 3.
    let t = text::parse("*filter\n-A INPUT --accept\nCOMMIT\n").unwrap();
    let blob = t.tables[0].encode().unwrap();
    let at = 31;
    assert_eq!(blob[at..at + 2], 9u16.to_le_bytes());
    assert_eq!(blob[at + 2..at + 6], 1u32.to_le_bytes(), "handle 1");
    let mut bad = blob.clone();
    bad[at..at + 2].copy_from_slice(&3u16.to_le_bytes());
    let mut store = vec![Entry::EMPTY; entries_needed(&blob).unwrap()];
    assert!(decode_into(&bad, &mut store).is_err());
    assert!(TableSpec::decode(&bad).is_err());
}

#[test]
fn counters_come_out_in_entry_order() {
    let mut t = text::parse(SAMPLE).unwrap().tables[0].clone();
    let n = t.entry_count();
    let c: Vec<Counter> = (0..n as u64)
        .map(|i| Counter {
            packets: i,
            bytes: i * 100,
        })
        .collect();
    t.set_counters(&c);
    assert_eq!(t.counters(), c);
    // INPUT's policy comes after its 10 rules.
    assert_eq!(t.chains[0].counter.packets, 10);
}

#[test]
fn rule_syntax_is_checked_without_a_table() {
    assert!(text::check_rule_syntax(&["-p", "tcp", "--jump", "anything"]).is_ok());
    assert!(text::check_rule_syntax(&["--dport", "80", "--accept"]).is_ok()); // a table matter
    let e = text::check_rule_syntax(&["--bogus"]).unwrap_err();
    assert_eq!(e.to_string(), "unknown option \"--bogus\"");
    let e = text::check_rule_syntax(&["--accept", "--drop"]).unwrap_err();
    assert_eq!(e.to_string(), "two targets: --accept and --drop");
}
