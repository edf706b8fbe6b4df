//! Every `fwctl ct` command end to end: arguments through clap and
//! [`Cli::job`], requests through [`Client`] to the fake kernel's model of
//! rfw's connection tracking (fake_kernel.rs), whose request parsing is
//! `rfw_abi`'s own, and the exact output.

use std::{cell::RefCell, io, rc::Rc};

use clap::Parser;
use rfw_abi::{
    attr, ct_stats as s,
    ct_status::{ASSURED, CONFIRMED, DST_NAT, OFFLOAD, SEEN_REPLY, SRC_NAT},
    ct_timeout, Cmd, ConfigChange as AbiConfigChange, WireTuple,
};

use super::*;
use crate::fake_kernel::{wire, FakeConn, FakeCt, FakeKernel, Skb, CT_FAMILY_ID, NLA_F_NESTED};

/// What one command did.
struct Outcome {
    result: Result<(), Error>,
    out: String,
    err: String,
}

impl Outcome {
    /// What `main` prints on stderr for a failure.
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
    Cli::try_parse_from(std::iter::once("fwctl").chain(args.iter().copied()))
}

/// Runs `fwctl ARGS` against `kernel`, as `main` does.
fn exec(args: &[&str], kernel: FakeKernel) -> Outcome {
    let cli = parse(args).unwrap();
    let job = cli.job().unwrap();
    let mut client = Client::new(kernel).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = job.run(&mut client, cli.output, &mut out, &mut err);
    Outcome {
        result,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

/// Runs `fwctl ARGS` against the model `ct`; returns the model afterwards.
fn ct(args: &[&str], ct: FakeCt) -> (Outcome, Rc<RefCell<FakeCt>>) {
    let (kernel, model) = ct.kernel();
    (exec(args, kernel), model)
}

fn conn(
    orig: WireTuple,
    reply: Option<WireTuple>,
    status: u32,
    timeout_ms: u32,
    tcp_state: Option<u8>,
    counters: [(u64, u64); 2],
) -> FakeConn {
    let mut c = FakeConn::mirrored(orig);
    if let Some(r) = reply {
        c.reply = r;
    }
    c.status = status;
    c.timeout_ms = timeout_ms;
    c.tcp_state = tcp_state;
    c.counters = counters;
    c
}

/// Eight connections: IPv4 and IPv6, TCP, UDP, ICMP, ICMPv6, GRE, NAT.
fn table() -> Vec<FakeConn> {
    vec![
        // a: the brief's example.
        conn(
            wire(6, "10.0.1.2", "10.0.2.2", 40000, 5201),
            None,
            SEEN_REPLY | ASSURED | CONFIRMED,
            431_999_999,
            Some(3),
            [(10, 800), (8, 600)],
        ),
        // b: UDP, no reply yet.
        conn(
            wire(17, "10.0.1.2", "10.0.2.2", 5353, 53),
            None,
            CONFIRMED,
            29_999,
            None,
            [(1, 60), (0, 0)],
        ),
        // c: ping: type 8 out, type 0 back.
        conn(
            wire(1, "10.0.1.2", "10.0.2.2", 1234, 8 << 8),
            None,
            SEEN_REPLY | CONFIRMED,
            30_000,
            None,
            [(1, 84), (1, 84)],
        ),
        // d: TCP over IPv6, SYN sent.
        conn(
            wire(6, "2001:db8::1", "2001:db8:0:1::2", 40001, 443),
            None,
            CONFIRMED,
            119_999,
            Some(1),
            [(1, 80), (0, 0)],
        ),
        // e: DNS over IPv6 to a DNATed server.
        conn(
            wire(17, "2001:db8::1", "2001:db8::100", 5000, 53),
            Some(wire(17, "fd00::53", "2001:db8::1", 53, 5000)),
            SEEN_REPLY | ASSURED | CONFIRMED | DST_NAT,
            179_000,
            None,
            [(2, 150), (2, 300)],
        ),
        // f: ICMPv6 echo: type 128 out, 129 back.
        conn(
            wire(58, "2001:db8::1", "2001:db8::2", 7, 128 << 8),
            None,
            SEEN_REPLY | CONFIRMED,
            29_000,
            None,
            [(3, 312), (3, 312)],
        ),
        // g: GRE: no ports.
        conn(
            wire(47, "10.0.1.2", "10.0.2.2", 0, 0),
            None,
            CONFIRMED,
            600_000,
            None,
            [(4, 400), (0, 0)],
        ),
        // h: SNAT, closing; more than 2^32 bytes back.
        conn(
            wire(6, "192.168.1.10", "198.51.100.7", 51000, 443),
            Some(wire(6, "198.51.100.7", "203.0.113.1", 443, 61000)),
            SEEN_REPLY | ASSURED | CONFIRMED | SRC_NAT,
            119_500,
            Some(7),
            [(12, 1500), (10, 5_000_000_000)],
        ),
    ]
}

const LINES: [&str; 8] = [
    "tcp      6 431999 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=5201 packets=10 bytes=800 src=10.0.2.2 dst=10.0.1.2 sport=5201 dport=40000 packets=8 bytes=600 [ASSURED]",
    "udp      17 29 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 packets=1 bytes=60 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 sport=53 dport=5353 packets=0 bytes=0",
    "icmp     1 30 src=10.0.1.2 dst=10.0.2.2 type=8 code=0 id=1234 packets=1 bytes=84 src=10.0.2.2 dst=10.0.1.2 type=0 code=0 id=1234 packets=1 bytes=84",
    "tcp      6 119 SYN_SENT src=2001:db8::1 dst=2001:db8:0:1::2 sport=40001 dport=443 packets=1 bytes=80 [UNREPLIED] src=2001:db8:0:1::2 dst=2001:db8::1 sport=443 dport=40001 packets=0 bytes=0",
    "udp      17 179 src=2001:db8::1 dst=2001:db8::100 sport=5000 dport=53 packets=2 bytes=150 src=fd00::53 dst=2001:db8::1 sport=53 dport=5000 packets=2 bytes=300 [ASSURED]",
    "icmpv6   58 29 src=2001:db8::1 dst=2001:db8::2 type=128 code=0 id=7 packets=3 bytes=312 src=2001:db8::2 dst=2001:db8::1 type=129 code=0 id=7 packets=3 bytes=312",
    "gre      47 600 src=10.0.1.2 dst=10.0.2.2 packets=4 bytes=400 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 packets=0 bytes=0",
    "tcp      6 119 TIME_WAIT src=192.168.1.10 dst=198.51.100.7 sport=51000 dport=443 packets=12 bytes=1500 src=198.51.100.7 dst=203.0.113.1 sport=443 dport=61000 packets=10 bytes=5000000000 [ASSURED]",
];

fn model(per_datagram: usize, pad_u64: bool) -> FakeCt {
    FakeCt {
        conns: table(),
        per_datagram,
        pad_u64,
        ..FakeCt::default()
    }
}

fn lines(picked: &[usize]) -> String {
    picked.iter().map(|&i| format!("{}\n", LINES[i])).collect()
}

#[test]
fn list_prints_every_connection_as_conntrack_does() {
    // Three connections per datagram (three datagrams), u64s padded; then
    // one per datagram, unpadded: the same text.
    for (per, pad) in [(3, true), (1, false), (100, true)] {
        let (o, _) = ct(&["ct", "list"], model(per, pad));
        assert_eq!(
            o.ok(),
            lines(&[0, 1, 2, 3, 4, 5, 6, 7]),
            "{per} per datagram"
        );
        assert_eq!(o.err, "fwctl: 8 flow entries have been shown.\n");
    }
}

#[test]
fn list_of_an_empty_table() {
    let (o, _) = ct(&["ct", "list"], FakeCt::default());
    assert_eq!(o.ok(), "");
    assert_eq!(o.err, "fwctl: 0 flow entries have been shown.\n");
    let (o, _) = ct(&["-o", "json", "ct", "list"], FakeCt::default());
    assert_eq!(o.ok(), "[]\n");
}

#[test]
fn list_filters() {
    let cases: [(&[&str], &[usize]); 15] = [
        (&["-p", "tcp"], &[0, 3, 7]),
        (&["-p", "TCP", "-s", "2001:db8::/32"], &[3]),
        (&["-s", "10.0.1.0/24"], &[0, 1, 2, 6]),
        (
            &["--src", "10.0.1.2", "--dst", "10.0.2.2", "-p", "icmp"],
            &[2],
        ),
        // Original destination only: the DNAT target and the SNAT address
        // are in reply tuples, which -s/-d do not look at.
        (&["-d", "2001:db8::100"], &[4]),
        (&["-s", "fd00::53"], &[]),
        (&["-d", "203.0.113.1"], &[]),
        (&["--state", "established"], &[0]),
        (&["--state", "TIME_WAIT"], &[7]),
        (&["--state", "UNREPLIED"], &[1, 3, 6]),
        (&["--state", "Assured"], &[0, 4, 7]),
        (&["-p", "icmpv6"], &[5]),
        (&["-p", "47"], &[6]),
        (
            &["-p", "udp", "--state", "assured", "-d", "2001:db8::100/128"],
            &[4],
        ),
        (&["--orig-src", "0.0.0.0/0", "-p", "17"], &[1]),
    ];
    for (filters, want) in cases {
        let args: Vec<&str> = ["ct", "list"].iter().chain(filters).copied().collect();
        let (o, _) = ct(&args, model(3, true));
        assert_eq!(o.ok(), lines(want), "{filters:?}");
        assert_eq!(
            o.err,
            format!("fwctl: {} flow entries have been shown.\n", want.len()),
            "{filters:?}"
        );
    }
}

#[test]
fn list_json() {
    let (o, _) = ct(
        &["ct", "list", "-o", "json", "--state", "unreplied"],
        model(2, true),
    );
    let want = concat!(
        "[\n",
        r#"{"proto":"udp","proto_num":17,"state":null,"timeout_s":29,"orig":{"src":"10.0.1.2","dst":"10.0.2.2","sport":5353,"dport":53,"packets":1,"bytes":60},"reply":{"src":"10.0.2.2","dst":"10.0.1.2","sport":53,"dport":5353,"packets":0,"bytes":0},"flags":["UNREPLIED"],"status":8},"#,
        "\n",
        r#"{"proto":"tcp","proto_num":6,"state":"SYN_SENT","timeout_s":119,"orig":{"src":"2001:db8::1","dst":"2001:db8:0:1::2","sport":40001,"dport":443,"packets":1,"bytes":80},"reply":{"src":"2001:db8:0:1::2","dst":"2001:db8::1","sport":443,"dport":40001,"packets":0,"bytes":0},"flags":["UNREPLIED"],"status":8},"#,
        "\n",
        r#"{"proto":"gre","proto_num":47,"state":null,"timeout_s":600,"orig":{"src":"10.0.1.2","dst":"10.0.2.2","packets":4,"bytes":400},"reply":{"src":"10.0.2.2","dst":"10.0.1.2","packets":0,"bytes":0},"flags":["UNREPLIED"],"status":8}"#,
        "\n]\n"
    );
    assert_eq!(o.ok(), want);
    assert_eq!(o.err, "fwctl: 3 flow entries have been shown.\n");

    let (o, _) = ct(&["-o", "json", "ct", "list", "-p", "icmp"], model(2, false));
    assert_eq!(
        o.ok(),
        concat!(
            "[\n",
            r#"{"proto":"icmp","proto_num":1,"state":null,"timeout_s":30,"orig":{"src":"10.0.1.2","dst":"10.0.2.2","type":8,"code":0,"id":1234,"packets":1,"bytes":84},"reply":{"src":"10.0.2.2","dst":"10.0.1.2","type":0,"code":0,"id":1234,"packets":1,"bytes":84},"flags":[],"status":10}"#,
            "\n]\n"
        )
    );

    // The whole table is one valid JSON document, reply counters above 2^32 too.
    let (o, _) = ct(&["-o", "json", "ct", "list"], model(3, true));
    let v: serde_json::Value = serde_json::from_str(o.ok()).unwrap();
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), 8);
    assert_eq!(all[7]["reply"]["bytes"], 5_000_000_000u64);
    assert_eq!(all[7]["state"], "TIME_WAIT");
    assert_eq!(all[7]["flags"], serde_json::json!(["ASSURED"]));
    assert_eq!(all[4]["reply"]["src"], "fd00::53");
}

#[test]
fn list_shows_offloaded_flows_as_conntrack_does() {
    // Connections a and h in the fast path: [OFFLOAD] where [ASSURED] was,
    // as conntrack -L prints them; still ASSURED for --state.
    let offloaded = || {
        let mut m = model(3, true);
        m.conns[0].status |= OFFLOAD;
        m.conns[7].status |= OFFLOAD;
        m
    };
    let want = [0, 4, 7]
        .map(|i| {
            let line = LINES[i];
            if i == 4 {
                format!("{line}\n")
            } else {
                format!("{}\n", line.replace("[ASSURED]", "[OFFLOAD]"))
            }
        })
        .concat();
    let (o, _) = ct(&["ct", "list", "--state", "assured"], offloaded());
    assert_eq!(o.ok(), want);
    assert!(o
        .ok()
        .lines()
        .next()
        .unwrap()
        .ends_with(" bytes=600 [OFFLOAD]"));
    let (o, _) = ct(&["ct", "list"], offloaded());
    assert_eq!(o.ok().matches("[OFFLOAD]").count(), 2);
    assert_eq!(o.ok().matches("[ASSURED]").count(), 1);

    let (o, _) = ct(&["-o", "json", "ct", "list", "-p", "tcp"], offloaded());
    let v: serde_json::Value = serde_json::from_str(o.ok()).unwrap();
    let all = v.as_array().unwrap();
    assert_eq!(all[0]["flags"], serde_json::json!(["OFFLOAD"]));
    assert_eq!(all[0]["status"], SEEN_REPLY | ASSURED | CONFIRMED | OFFLOAD);
    assert_eq!(all[1]["flags"], serde_json::json!(["UNREPLIED"]));
}

/// Records, at each write, how many datagrams the kernel had delivered.
struct Probe {
    delivered: Rc<std::cell::Cell<usize>>,
    at: Vec<usize>,
}

impl io::Write for Probe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.at.push(self.delivered.get());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn list_prints_as_the_dump_arrives() {
    let (kernel, _) = model(1, true).kernel();
    let delivered = Rc::clone(&kernel.delivered);
    let mut client = Client::new(kernel).unwrap();
    assert_eq!(delivered.get(), 1); // the family lookup
    let mut out = Probe {
        delivered,
        at: Vec::new(),
    };
    Job::CtList(Filter::default())
        .run(&mut client, Output::Table, &mut out, &mut io::sink())
        .unwrap();
    // Line n is written once datagram n has arrived, before the next.
    assert_eq!(out.at, [2, 3, 4, 5, 6, 7, 8, 9]);
}

#[test]
fn list_dumps_again_when_a_dump_was_interrupted() {
    // The first dump misses connection 7 and is flagged; the second is
    // whole: each connection is printed once, without a warning.
    for json in [false, true] {
        let mut m = model(3, true);
        m.dump_intr = 1;
        let args: &[&str] = if json {
            &["-o", "json", "ct", "list"]
        } else {
            &["ct", "list"]
        };
        let (o, _) = ct(args, m);
        let text = o.ok();
        if json {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(v.as_array().unwrap().len(), 8);
        } else {
            assert_eq!(text, lines(&[0, 1, 2, 3, 4, 5, 6, 7]));
        }
        assert_eq!(o.err, "fwctl: 8 flow entries have been shown.\n");
    }
}

#[test]
fn list_warns_when_every_dump_was_interrupted() {
    let mut m = model(3, true);
    m.dump_intr = 4;
    let (o, _) = ct(&["ct", "list"], m);
    assert_eq!(o.ok(), lines(&[0, 1, 2, 3, 4, 5, 6]));
    assert_eq!(
        o.err,
        "fwctl: warning: the table changed during each of 4 dumps; connections may be \
         missing\nfwctl: 7 flow entries have been shown.\n"
    );
}

#[test]
fn list_stops_at_a_bad_message_or_a_failed_dump() {
    // The second connection has no reply tuple.
    let k = FakeKernel::new(Some(CT_FAMILY_ID), |req| {
        let mut skb = Skb::new(true);
        let c = FakeConn::mirrored(wire(6, "10.0.1.2", "10.0.2.2", 40000, 5201));
        let start = skb.genlmsg_put(req.port, req.seq, CT_FAMILY_ID, 2, req.cmd, 1);
        skb.ct_conn(&c);
        skb.nlmsg_end(start);
        let start = skb.genlmsg_put(req.port, req.seq, CT_FAMILY_ID, 2, req.cmd, 1);
        skb.ct_tuple(attr::CT_ORIG, &c.orig);
        skb.nlmsg_end(start);
        vec![skb.data]
    });
    let o = exec(&["ct", "list"], k);
    assert_eq!(o.out.lines().count(), 1);
    assert_eq!(
        o.failure(),
        "fwctl: reading rfw connections: connection without CT_REPLY"
    );
    assert_eq!(o.err, "");

    let k = FakeKernel::new(Some(CT_FAMILY_ID), |req| {
        let mut skb = Skb::new(false);
        skb.done(req, -12, Some("out of memory walking the table"));
        vec![skb.data]
    });
    assert_eq!(
        exec(&["ct", "list"], k).failure(),
        "fwctl: reading rfw connections: out of memory walking the table (Cannot allocate memory)"
    );
}

/// The top-level attributes of a request: (type with flags, payload).
fn request_attrs(bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    for a in rfw_abi::nla::iter(&bytes[20..]) {
        let a = a.unwrap();
        out.push((a.kind, a.data.to_vec()));
    }
    out
}

#[test]
fn delete_sends_the_tuple_the_kernel_parses() {
    let (o, m) = ct(
        &[
            "ct", "delete", "-p", "tcp", "-s", "10.0.1.2", "-d", "10.0.2.2", "--sport", "40000",
            "--dport", "5201",
        ],
        model(3, true),
    );
    assert_eq!(o.ok(), "");
    assert_eq!(o.err, "");
    let m = m.borrow();
    #[rustfmt::skip]
    let want: [u8; 72] = [
        0x48, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x05, 0x00, // len 72, rfw, REQUEST|ACK
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seq 2, pid 0
        0x03, 0x01, 0x00, 0x00,                         // CtDelete, version 1
        0x34, 0x00, 0x03, 0x80,                         // CT_ORIG | NLA_F_NESTED, len 52
        0x05, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, // FAMILY = ipv4
        0x05, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, // PROTO = tcp
        0x08, 0x00, 0x03, 0x00, 10, 0, 1, 2,            // SRC
        0x08, 0x00, 0x04, 0x00, 10, 0, 2, 2,            // DST
        0x06, 0x00, 0x05, 0x00, 0x40, 0x9c, 0x00, 0x00, // SRC_PORT = 40000, host order
        0x06, 0x00, 0x06, 0x00, 0x51, 0x14, 0x00, 0x00, // DST_PORT = 5201
    ];
    assert_eq!(m.requests, [want.to_vec()]);
    let attrs = request_attrs(&want);
    assert_eq!(attrs.len(), 1);
    assert_eq!(attrs[0].0, attr::CT_ORIG);
    assert_eq!(
        WireTuple::parse(&attrs[0].1),
        Ok(wire(6, "10.0.1.2", "10.0.2.2", 40000, 5201))
    );
    // It was the first connection; the other seven remain.
    assert_eq!(m.conns.len(), 7);
    assert_eq!(m.conns[0].orig, wire(17, "10.0.1.2", "10.0.2.2", 5353, 53));
}

#[test]
fn delete_by_reply_tuple_icmp_and_protocols_without_ports() {
    let cases: [(&[&str], u16, WireTuple); 4] = [
        (
            &[
                "-p",
                "udp",
                "-s",
                "fd00::53",
                "-d",
                "2001:db8::1",
                "--sport",
                "53",
                "--dport",
                "5000",
                "--reply",
            ],
            attr::CT_REPLY,
            wire(17, "fd00::53", "2001:db8::1", 53, 5000),
        ),
        (
            &[
                "-p",
                "icmp",
                "-s",
                "10.0.1.2",
                "-d",
                "10.0.2.2",
                "--icmp-type",
                "8",
                "--icmp-code",
                "0",
                "--icmp-id",
                "1234",
            ],
            attr::CT_ORIG,
            wire(1, "10.0.1.2", "10.0.2.2", 1234, 0x0800),
        ),
        (
            // The reply direction's type comes from its own tuple; code defaults to 0.
            &[
                "-p",
                "icmpv6",
                "-s",
                "2001:db8::2",
                "-d",
                "2001:db8::1",
                "--icmp-type",
                "129",
                "--icmp-id",
                "7",
                "--reply",
            ],
            attr::CT_REPLY,
            wire(58, "2001:db8::2", "2001:db8::1", 7, 129 << 8),
        ),
        (
            &[
                "-p",
                "gre",
                "--orig-src",
                "10.0.1.2",
                "--orig-dst",
                "10.0.2.2",
            ],
            attr::CT_ORIG,
            wire(47, "10.0.1.2", "10.0.2.2", 0, 0),
        ),
    ];
    for (args, kind, tuple) in cases {
        let args: Vec<&str> = ["ct", "delete"].iter().chain(args).copied().collect();
        let (o, m) = ct(&args, model(3, true));
        assert_eq!(o.ok(), "", "{args:?}");
        let m = m.borrow();
        let attrs = request_attrs(&m.requests[0]);
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].0, kind, "{args:?}");
        assert_eq!(WireTuple::parse(&attrs[0].1), Ok(tuple), "{args:?}");
        assert_eq!(m.conns.len(), 7, "{args:?}");
    }
    // An ICMP code other than 0 goes in the low byte.
    let (o, m) = ct(
        &[
            "ct",
            "delete",
            "-p",
            "icmp",
            "-s",
            "10.0.1.2",
            "-d",
            "10.0.2.2",
            "--icmp-type",
            "3",
            "--icmp-code",
            "4",
            "--icmp-id",
            "0",
        ],
        model(3, true),
    );
    assert_eq!(o.failure(), "fwctl: no such connection");
    let attrs = request_attrs(&m.borrow().requests[0]);
    assert_eq!(WireTuple::parse(&attrs[0].1).unwrap().dst_port, 0x0304);
}

#[test]
fn delete_of_a_missing_connection() {
    // The module's extack says just that: printed once.
    let (o, m) = ct(
        &[
            "ct", "delete", "-p", "tcp", "-s", "10.0.1.2", "-d", "10.0.2.2", "--sport", "1",
            "--dport", "2",
        ],
        model(3, true),
    );
    assert_eq!(o.failure(), "fwctl: no such connection");
    assert_eq!((o.out.as_str(), o.err.as_str()), ("", ""));
    assert_eq!(m.borrow().conns.len(), 8);

    // Any other extack with ENOENT is shown.
    let k = FakeKernel::new(Some(CT_FAMILY_ID), |req| {
        let mut skb = Skb::new(false);
        skb.ack(
            req,
            -2,
            Some("connection tracking is off in this netns"),
            false,
        );
        vec![skb.data]
    });
    let o = exec(&["ct", "delete", "-p", "gre", "-s", "::1", "-d", "::2"], k);
    assert_eq!(
        o.failure(),
        "fwctl: no such connection: connection tracking is off in this netns"
    );
}

#[test]
fn other_kernel_errors_show_their_extack() {
    let k = |errno: i32| {
        FakeKernel::new(Some(CT_FAMILY_ID), move |req| {
            let mut skb = Skb::new(false);
            skb.ack(
                req,
                -errno,
                Some("limit must be between 1 and 67108864"),
                true,
            );
            vec![skb.data]
        })
    };
    assert_eq!(
        exec(&["ct", "limit", "5"], k(22)).failure(),
        "fwctl: changing rfw connection tracking settings: limit must be between 1 and \
         67108864 (Invalid argument)"
    );
    // EPERM without a reason: genetlink's capability check.
    let no_cap = FakeKernel::new(Some(CT_FAMILY_ID), |req| {
        let mut skb = Skb::new(false);
        skb.ack(req, -1, None, true);
        vec![skb.data]
    });
    assert_eq!(
        exec(&["ct", "flush"], no_cap).failure(),
        "fwctl: permission denied: rfw needs CAP_NET_ADMIN in this network namespace"
    );
    // EPERM with one: a limit only the host may raise, in one line.
    let above_default = FakeKernel::new(Some(CT_FAMILY_ID), |req| {
        let mut skb = Skb::new(false);
        skb.ack(
            req,
            -1,
            Some("only namespaces of the initial user namespace may set a limit above 65536"),
            true,
        );
        vec![skb.data]
    });
    let out = exec(&["ct", "limit", "100000"], above_default).failure();
    assert_eq!(
        out,
        "fwctl: changing rfw connection tracking settings: only namespaces of the initial \
         user namespace may set a limit above 65536 (Operation not permitted)"
    );
    assert!(!out.contains('\n'));
    // A reply without the attribute the command is for.
    let empty = FakeKernel::new(Some(CT_FAMILY_ID), |req| {
        let mut skb = Skb::new(false);
        let start = skb.genlmsg_put(req.port, req.seq, CT_FAMILY_ID, 0, req.cmd, 1);
        skb.nlmsg_end(start);
        skb.ack(req, 0, None, true);
        vec![skb.data]
    });
    assert_eq!(
        exec(&["ct", "stats"], empty).failure(),
        "fwctl: reading rfw connection tracking statistics: reply without CT_STATS"
    );
}

#[test]
fn flush_prints_how_many() {
    let (o, m) = ct(&["ct", "flush"], model(3, true));
    assert_eq!(o.ok(), "8 connections deleted\n");
    assert!(m.borrow().conns.is_empty());
    assert_eq!(m.borrow().requests[0][16], Cmd::CtFlush as u8);
    assert_eq!(m.borrow().requests[0].len(), 20, "no attributes");

    let one = FakeCt {
        conns: table()[..1].to_vec(),
        ..FakeCt::default()
    };
    assert_eq!(ct(&["ct", "flush"], one).0.ok(), "1 connection deleted\n");
    assert_eq!(
        ct(&["ct", "flush"], FakeCt::default()).0.ok(),
        "0 connections deleted\n"
    );
    assert_eq!(
        ct(&["ct", "flush", "-o", "json"], model(1, false)).0.ok(),
        "{\"deleted\":8}\n"
    );
}

#[test]
fn count_includes_unconfirmed_entries() {
    let mut m = model(3, true);
    m.unconfirmed = 2;
    let (o, k) = ct(&["ct", "count"], m);
    assert_eq!(o.ok(), "10\n");
    assert_eq!(k.borrow().requests[0][16], Cmd::CtStatsGet as u8);
    assert_eq!(
        ct(&["-o", "json", "ct", "count"], FakeCt::default()).0.ok(),
        "{\"count\":0}\n"
    );
}

fn stats_model(newer_kernel: bool) -> FakeCt {
    FakeCt {
        conns: table(),
        unconfirmed: 2,
        counters: vec![
            (s::FOUND, 1_000_000),
            (s::NEW, 50),
            (s::RELATED, 3),
            (s::INVALID, 7),
            (s::IGNORED, 1),
            (s::EARLY_DROP, 0),
            (s::DROP, 0),
            (s::INSERT_FAILED, 0),
            (s::CHAIN_TOO_LONG, 0),
            (s::EXPIRED, 40),
            (s::DELETED, 2),
            (s::UNCONFIRMED_REAPED, 1),
            (s::LONG_CHAIN_LOOKUPS, 0),
            (s::SLOT_HITS, 900),
            (s::SLOT_MISSES, 4),
            (s::FALLBACK_FOUND, 3),
            (s::FALLBACK_NOT_FOUND, 1),
            (s::GLOBAL_FULL, 0),
            (s::HASHES, 120),
            (s::CLASH_RESOLVED, 6),
            (s::ALLOCATIONS, 52),
            (s::OFFLOADED, 12),
            (s::OFFLOAD_PACKETS, 123_456),
            (s::OFFLOAD_PUNTED, 9),
            (s::OFFLOAD_END_TCP, 5),
            (s::OFFLOAD_END_EXPIRED, 2),
            (s::OFFLOAD_END_ROUTE, 1),
            (s::OFFLOAD_END_DEVICE, 0),
            (s::OFFLOAD_END_RULESET, 3),
            (s::OFFLOAD_END_DELETED, 4),
        ],
        invalid: vec![
            ("tcp_flags", 5),
            ("tcp_seq_over", 0),
            ("icmp_unknown_type", 2),
            ("table_full", 0),
        ],
        malformed: vec![("bad_checksum", 3), ("fragment", 0)],
        newer_kernel,
        ..FakeCt::default()
    }
}

#[test]
fn stats_table_and_json() {
    let want = "\
count                           10
limit                       262144
unconfirmed                      2
buckets                      65536
entry_bytes                    256
found                      1000000
new                             50
related                          3
invalid                          7
ignored                          1
early_drop                       0
drop                             0
global_full                      0
insert_failed                    0
clash_resolved                   6
chain_too_long                   0
long_chain_lookups               0
hashes                         120
allocations                     52
expired                         40
deleted                          2
unconfirmed_reaped               1
slot_hits                      900
slot_misses                      4
fallback_found                   3
fallback_not_found               1
offloaded                       12
offload_packets             123456
offload_punted                   9
offload_end_tcp                  5
offload_end_expired              2
offload_end_route                1
offload_end_device               0
offload_end_ruleset              3
offload_end_deleted              4
invalid.tcp_flags                5
invalid.icmp_unknown_type        2
malformed.bad_checksum           3
";
    // Attributes a newer kernel adds (top level, in CT_STATS, in a
    // reason) change nothing.
    for newer in [false, true] {
        let (o, _) = ct(&["ct", "stats"], stats_model(newer));
        assert_eq!(o.ok(), want, "newer kernel: {newer}");
    }
    let (o, _) = ct(&["ct", "stats", "-o", "json"], stats_model(true));
    assert_eq!(
        o.ok(),
        concat!(
            r#"{"count":10,"limit":262144,"unconfirmed":2,"buckets":65536,"entry_bytes":256,"#,
            r#""found":1000000,"new":50,"related":3,"invalid":7,"ignored":1,"early_drop":0,"drop":0,"#,
            r#""global_full":0,"insert_failed":0,"clash_resolved":6,"chain_too_long":0,"#,
            r#""long_chain_lookups":0,"hashes":120,"allocations":52,"expired":40,"#,
            r#""deleted":2,"unconfirmed_reaped":1,"slot_hits":900,"slot_misses":4,"#,
            r#""fallback_found":3,"fallback_not_found":1,"offloaded":12,"#,
            r#""offload_packets":123456,"offload_punted":9,"offload_end_tcp":5,"#,
            r#""offload_end_expired":2,"offload_end_route":1,"offload_end_device":0,"#,
            r#""offload_end_ruleset":3,"offload_end_deleted":4,"#,
            r#""invalid_reasons":{"tcp_flags":5,"tcp_seq_over":0,"icmp_unknown_type":2,"table_full":0},"#,
            r#""malformed_reasons":{"bad_checksum":3,"fragment":0}}"#,
            "\n"
        )
    );
}

const CONFIG: &str = "\
tracking: auto (inactive: no rules loaded)
checksum: on
limit               262144
buckets              65536
tcp_syn_sent           120
tcp_syn_recv            60
tcp_established     432000
tcp_fin_wait           120
tcp_close_wait          60
tcp_last_ack            30
tcp_time_wait          120
tcp_close               10
tcp_syn_sent2          120
tcp_retrans            300
tcp_unacknowledged     300
udp_unreplied           30
udp_replied            120
icmp                    30
generic                600
";

#[test]
fn timeout_shows_the_settings() {
    let (o, m) = ct(&["ct", "timeout"], FakeCt::default());
    assert_eq!(o.ok(), CONFIG);
    assert_eq!(m.borrow().requests[0][16], Cmd::CtConfigGet as u8);
    let (o, _) = ct(&["-o", "json", "ct", "timeout"], FakeCt::default());
    assert_eq!(
        o.ok(),
        concat!(
            r#"{"tracking":"auto","active":false,"limit":262144,"buckets":65536,"#,
            r#""checksum":true,"timeouts_ms":{"tcp_syn_sent":120000,"#,
            r#""tcp_syn_recv":60000,"tcp_established":432000000,"tcp_fin_wait":120000,"#,
            r#""tcp_close_wait":60000,"tcp_last_ack":30000,"tcp_time_wait":120000,"#,
            r#""tcp_close":10000,"tcp_syn_sent2":120000,"tcp_retrans":300000,"#,
            r#""tcp_unacknowledged":300000,"udp_unreplied":30000,"udp_replied":120000,"#,
            r#""icmp":30000,"generic":600000}}"#,
            "\n"
        )
    );
}

#[test]
fn timeout_set_sends_what_the_kernel_parses() {
    let (o, m) = ct(
        &["ct", "timeout", "tcp_established", "4d", "icmp", "0.5"],
        FakeCt::default(),
    );
    #[rustfmt::skip]
    let want: [u8; 80] = [
        0x50, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x05, 0x00, // len 80, rfw, REQUEST|ACK
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seq 2
        0x07, 0x01, 0x00, 0x00,                         // CtConfigSet, version 1
        0x3c, 0x00, 0x0b, 0x80,                         // CT_CONFIG | NLA_F_NESTED, len 60
        0x20, 0x00, 0x03, 0x80,                         //   TIMEOUT | NLA_F_NESTED, len 32
        0x14, 0x00, 0x01, 0x00,                         //     NAME, len 20
        b't', b'c', b'p', b'_', b'e', b's', b't', b'a',
        b'b', b'l', b'i', b's', b'h', b'e', b'd', 0x00,
        0x08, 0x00, 0x02, 0x00, 0x00, 0x70, 0x99, 0x14, //     MS = 345600000
        0x18, 0x00, 0x03, 0x80,                         //   TIMEOUT | NLA_F_NESTED, len 24
        0x09, 0x00, 0x01, 0x00,                         //     NAME, len 9
        b'i', b'c', b'm', b'p', 0x00, 0x00, 0x00, 0x00,
        0x08, 0x00, 0x02, 0x00, 0xf4, 0x01, 0x00, 0x00, //     MS = 500
    ];
    assert_eq!(m.borrow().requests, [want.to_vec()]);
    let attrs = request_attrs(&want);
    assert_eq!(attrs.len(), 1);
    assert_eq!(attrs[0].0, attr::CT_CONFIG);
    let change = AbiConfigChange::parse(&attrs[0].1).unwrap();
    let mut expected = AbiConfigChange::default();
    expected.timeouts[2] = Some(345_600_000);
    expected.timeouts[13] = Some(500);
    assert_eq!(change, expected);
    assert_eq!(ct_timeout::NAMES[2], "tcp_established");
    assert_eq!(ct_timeout::NAMES[13], "icmp");
    // The new settings, as the kernel replied them.
    let new = CONFIG
        .replace("tcp_established     432000", "tcp_established     345600")
        .replace("icmp                    30", "icmp                   0.5");
    assert_eq!(o.ok(), new);
}

#[test]
fn every_timeout_name_is_accepted_by_the_kernel_s_parser() {
    for (i, name) in ct_timeout::NAMES.iter().enumerate() {
        let upper = name.to_uppercase();
        let (o, m) = ct(&["ct", "timeout", &upper, "1ms"], FakeCt::default());
        o.ok();
        let attrs = request_attrs(&m.borrow().requests[0]);
        let change = AbiConfigChange::parse(&attrs[0].1).unwrap();
        assert_eq!(change.timeouts[i], Some(1), "{name}");
        assert_eq!(change.timeouts.iter().flatten().count(), 1);
    }
    // The largest value.
    let (_, m) = ct(
        &["ct", "timeout", "generic", "2147483.647"],
        FakeCt::default(),
    );
    let attrs = request_attrs(&m.borrow().requests[0]);
    let change = AbiConfigChange::parse(&attrs[0].1).unwrap();
    assert_eq!(change.timeouts[14], Some(i32::MAX as u32));
}

#[test]
fn limit_sends_what_the_kernel_parses() {
    let (o, m) = ct(&["ct", "limit", "1000"], FakeCt::default());
    #[rustfmt::skip]
    let want: [u8; 32] = [
        0x20, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x05, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x07, 0x01, 0x00, 0x00,                         // CtConfigSet
        0x0c, 0x00, 0x0b, 0x80,                         // CT_CONFIG | NLA_F_NESTED
        0x08, 0x00, 0x01, 0x00, 0xe8, 0x03, 0x00, 0x00, //   LIMIT = 1000
    ];
    assert_eq!(m.borrow().requests, [want.to_vec()]);
    let attrs = request_attrs(&want);
    let change = AbiConfigChange::parse(&attrs[0].1).unwrap();
    assert_eq!(change.limit, Some(1000));
    assert_eq!(change.timeouts, [None; 15]);
    assert_eq!(m.borrow().limit, 1000);
    assert_eq!(
        o.ok(),
        CONFIG.replace("limit               262144", "limit                 1000")
    );
    // The bounds are the kernel's.
    for n in ["1", "67108864"] {
        let (_, m) = ct(&["ct", "limit", n], FakeCt::default());
        let attrs = request_attrs(&m.borrow().requests[0]);
        assert!(AbiConfigChange::parse(&attrs[0].1).is_ok(), "{n}");
    }
}

#[test]
fn tracking_parses_to_a_config_get_or_a_set_of_tracking_only() {
    let job = |args: &[&str]| parse(args).unwrap().job().unwrap();
    assert_eq!(job(&["ct", "tracking"]), Job::CtConfigGet);
    for (word, mode) in [("auto", Tracking::Auto), ("on", Tracking::On)] {
        assert_eq!(
            job(&["ct", "tracking", word]),
            Job::CtConfigSet(ConfigChange {
                tracking: Some(mode),
                ..ConfigChange::default()
            })
        );
    }
    assert_eq!(
        job(&["-o", "json", "ct", "tracking", "on"]),
        job(&["ct", "tracking", "on"])
    );
}

#[test]
fn checksum_off_sends_checksum_only() {
    let (o, m) = ct(&["ct", "checksum", "off"], FakeCt::default());
    #[rustfmt::skip]
    let want: [u8; 32] = [
        0x20, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x05, 0x00, // len 32, rfw, REQUEST|ACK
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seq 2
        0x07, 0x01, 0x00, 0x00,                         // CtConfigSet, version 1
        0x0c, 0x00, 0x0b, 0x80,                         // CT_CONFIG | NLA_F_NESTED, len 12
        0x05, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, //   CHECKSUM = 0 (off), padded
    ];
    assert_eq!(m.borrow().requests, [want.to_vec()]);
    let attrs = request_attrs(&want);
    let change = AbiConfigChange::parse(&attrs[0].1).unwrap();
    assert_eq!(
        change,
        AbiConfigChange {
            checksum: Some(false),
            ..AbiConfigChange::default()
        }
    );
    assert!(!m.borrow().checksum);
    // The new settings, as the kernel replied them: nothing else changed.
    assert_eq!(o.ok(), CONFIG.replace("checksum: on", "checksum: off"));
    // And on again, with JSON; without an argument, the settings.
    let off = FakeCt {
        checksum: false,
        ..FakeCt::default()
    };
    let (o, m) = ct(&["-o", "json", "ct", "checksum", "on"], off);
    let attrs = request_attrs(&m.borrow().requests[0]);
    let change = AbiConfigChange::parse(&attrs[0].1).unwrap();
    assert_eq!(change.checksum, Some(true));
    assert_eq!((change.limit, change.tracking), (None, None));
    assert!(
        o.ok().contains(r#""buckets":65536,"checksum":true,"#),
        "{}",
        o.ok()
    );
    let (o, m) = ct(&["ct", "checksum"], FakeCt::default());
    assert_eq!(o.ok(), CONFIG);
    assert_eq!(m.borrow().requests[0].len(), 20, "no attributes");
    // A kernel that sends something else than 0 or 1: a protocol error.
    let o = exec(
        &["ct", "checksum"],
        config_kernel(|skb| skb.nla_put_u8(rfw_abi::ct_config::CHECKSUM, 3)),
    );
    assert_eq!(
        o.failure(),
        "fwctl: reading rfw connection tracking settings: CHECKSUM is 3, not 0 or 1"
    );
    // A kernel before CHECKSUM: no line.
    let o = exec(&["ct", "checksum"], config_kernel(|_| {}));
    assert_eq!(o.ok(), "limit  5\n");
}

#[test]
fn tracking_without_argument_shows_the_settings() {
    let (o, m) = ct(&["ct", "tracking"], FakeCt::default());
    assert_eq!(o.ok(), CONFIG);
    assert!(o
        .ok()
        .starts_with("tracking: auto (inactive: no rules loaded)\nchecksum: on\nlimit "));
    let m = m.borrow();
    assert_eq!(m.requests.len(), 1);
    assert_eq!(m.requests[0][16], Cmd::CtConfigGet as u8);
    assert_eq!(m.requests[0].len(), 20, "no attributes");

    let (o, _) = ct(&["-o", "json", "ct", "tracking"], FakeCt::default());
    assert!(
        o.ok()
            .starts_with(r#"{"tracking":"auto","active":false,"limit":262144,"buckets":65536,"#),
        "{}",
        o.ok()
    );
    assert!(o.ok().ends_with("\"generic\":600000}}\n"));
}

#[test]
fn tracking_on_sends_tracking_only_and_turns_tracking_active() {
    let (o, m) = ct(&["ct", "tracking", "on"], FakeCt::default());
    #[rustfmt::skip]
    let want: [u8; 32] = [
        0x20, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x05, 0x00, // len 32, rfw, REQUEST|ACK
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seq 2
        0x07, 0x01, 0x00, 0x00,                         // CtConfigSet, version 1
        0x0c, 0x00, 0x0b, 0x80,                         // CT_CONFIG | NLA_F_NESTED, len 12
        0x05, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, //   TRACKING = 1 (on), padded
    ];
    assert_eq!(m.borrow().requests, [want.to_vec()]);
    let attrs = request_attrs(&want);
    assert_eq!(attrs.len(), 1);
    assert_eq!(attrs[0].0, attr::CT_CONFIG);
    let change = AbiConfigChange::parse(&attrs[0].1).unwrap();
    assert_eq!(
        change,
        AbiConfigChange {
            tracking: Some(rfw_abi::ct_config::TRACKING_ON),
            ..AbiConfigChange::default()
        }
    );
    assert_eq!(m.borrow().tracking, rfw_abi::ct_config::TRACKING_ON);
    // The new settings, as the kernel replied them: nothing else changed.
    assert_eq!(
        o.ok(),
        CONFIG.replace(
            "tracking: auto (inactive: no rules loaded)",
            "tracking: on (active)"
        )
    );

    // And back: auto sends 0, and without rules tracking stops.
    let on = FakeCt {
        tracking: rfw_abi::ct_config::TRACKING_ON,
        ..FakeCt::default()
    };
    let (o, m) = ct(&["-o", "json", "ct", "tracking", "auto"], on);
    let attrs = request_attrs(&m.borrow().requests[0]);
    let change = AbiConfigChange::parse(&attrs[0].1).unwrap();
    assert_eq!(change.tracking, Some(rfw_abi::ct_config::TRACKING_AUTO));
    assert_eq!((change.limit, change.timeouts), (None, [None; 15]));
    assert!(o
        .ok()
        .starts_with(r#"{"tracking":"auto","active":false,"limit":"#));

    let on = FakeCt {
        tracking: rfw_abi::ct_config::TRACKING_ON,
        ..FakeCt::default()
    };
    let (o, _) = ct(&["-o", "json", "ct", "tracking"], on);
    assert!(o
        .ok()
        .starts_with(r#"{"tracking":"on","active":true,"limit":"#));
}

#[test]
fn auto_tracking_turns_active_once_a_table_is_loaded() {
    let rules = Rc::new(RefCell::new(crate::fake_kernel::FakeRules::default()));
    let model = Rc::new(RefCell::new(FakeCt {
        rules: Some(Rc::clone(&rules)),
        ..FakeCt::default()
    }));
    let run = |args: &[&str]| exec(args, FakeCt::kernel_of(&model));
    assert_eq!(
        run(&["ct", "tracking"]).ok().lines().next(),
        Some("tracking: auto (inactive: no rules loaded)")
    );
    run(&["filter", "add", "--chain", "INPUT", "--accept"]).ok();
    assert_eq!(rules.borrow().tables.len(), 1);
    assert_eq!(
        run(&["ct", "tracking"]).ok().lines().next(),
        Some("tracking: auto (active)")
    );
    assert!(run(&["-o", "json", "ct", "timeout"])
        .ok()
        .starts_with(r#"{"tracking":"auto","active":true,"#));
    // `on` with rules: active all the same.
    assert_eq!(
        run(&["ct", "tracking", "on"]).ok().lines().next(),
        Some("tracking: on (active)")
    );
    // The ruleset commands went to the ruleset, the others to ct.
    let cmds: Vec<u8> = model.borrow().requests.iter().map(|r| r[16]).collect();
    assert_eq!(
        cmds,
        [
            Cmd::CtConfigGet as u8,
            Cmd::CtConfigGet as u8,
            Cmd::CtConfigGet as u8,
            Cmd::CtConfigSet as u8
        ]
    );
    assert_eq!(rules.borrow().replaces(), 1);

    // A connection NATed once keeps auto tracking on, rules or not.
    let nated = FakeCt {
        nated: true,
        ..FakeCt::default()
    };
    let (o, _) = ct(&["ct", "tracking"], nated);
    assert_eq!(o.ok().lines().next(), Some("tracking: auto (active)"));
}

/// A `CtConfigGet` reply whose `CT_CONFIG` holds what `body` puts.
fn config_kernel(body: impl Fn(&mut Skb) + 'static) -> FakeKernel {
    FakeKernel::new(Some(CT_FAMILY_ID), move |req| {
        let mut skb = Skb::new(false);
        let start = skb.genlmsg_put(req.port, req.seq, CT_FAMILY_ID, 0, req.cmd, 1);
        let n = skb.nla_nest_start(attr::CT_CONFIG);
        skb.nla_put_u32(rfw_abi::ct_config::LIMIT, 5);
        body(&mut skb);
        skb.nla_nest_end(n);
        skb.nlmsg_end(start);
        skb.ack(req, 0, None, true);
        vec![skb.data]
    })
}

#[test]
fn tracking_from_older_or_odd_kernels() {
    use rfw_abi::ct_config::{ACTIVE, TRACKING};
    // A kernel before TRACKING: no tracking line, nulls in JSON.
    let o = exec(&["ct", "tracking"], config_kernel(|_| {}));
    assert_eq!(o.ok(), "limit  5\n");
    let o = exec(&["-o", "json", "ct", "tracking"], config_kernel(|_| {}));
    assert_eq!(
        o.ok(),
        "{\"tracking\":null,\"active\":null,\"limit\":5,\"buckets\":null,\"checksum\":null,\"timeouts_ms\":{}}\n"
    );
    // The mode without ACTIVE: no state.
    let o = exec(
        &["ct", "tracking"],
        config_kernel(|skb| skb.nla_put_u8(TRACKING, 1)),
    );
    assert_eq!(o.ok(), "tracking: on\nlimit  5\n");
    // A mode this fwctl does not know, a bad ACTIVE, a u32 TRACKING:
    // protocol errors, one line each.
    let o = exec(
        &["ct", "tracking"],
        config_kernel(|skb| skb.nla_put_u8(TRACKING, 7)),
    );
    assert_eq!(
        o.failure(),
        "fwctl: reading rfw connection tracking settings: unknown tracking mode 7"
    );
    let o = exec(
        &["ct", "tracking", "on"],
        config_kernel(|skb| {
            skb.nla_put_u8(TRACKING, 1);
            skb.nla_put_u8(ACTIVE, 2);
        }),
    );
    assert_eq!(
        o.failure(),
        "fwctl: changing rfw connection tracking settings: ACTIVE is 2, not 0 or 1"
    );
    let o = exec(
        &["ct", "tracking"],
        config_kernel(|skb| skb.nla_put_u32(TRACKING, 1)),
    );
    let e = o.failure();
    assert!(e.contains("CT_CONFIG_TRACKING"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

/// The error for arguments refused before any netlink traffic: clap's
/// (exit status 2) or [`Cli::job`]'s.
fn refused(args: &[&str]) -> String {
    match parse(args) {
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
            e.kind().to_string()
        }
        Ok(cli) => match cli.job() {
            Err(e) => {
                assert!(!e.message.contains('\n'), "{}", e.message);
                e.message
            }
            Ok(job) => panic!("{args:?} accepted: {job:?}"),
        },
    }
}

#[test]
fn bad_values_are_refused_before_any_netlink_traffic() {
    // Cli::job takes no client: nothing of these reaches a kernel.
    let t = "unknown timeout name \"tcp\"; valid names: tcp_syn_sent, tcp_syn_recv, \
             tcp_established, tcp_fin_wait, tcp_close_wait, tcp_last_ack, tcp_time_wait, \
             tcp_close, tcp_syn_sent2, tcp_retrans, tcp_unacknowledged, udp_unreplied, \
             udp_replied, icmp, generic";
    assert_eq!(refused(&["ct", "timeout", "tcp", "30"]), t);
    assert_eq!(refused(&["ct", "timeout", "icmp", "30", "tcp", "30"]), t);
    let range = "icmp: timeout \"0\" out of range: must be between 1ms and 2147483647ms \
                 (about 24.8 days)";
    assert_eq!(refused(&["ct", "timeout", "icmp", "0"]), range);
    assert!(refused(&["ct", "timeout", "icmp", "2147483.648"]).contains("out of range"));
    assert!(refused(&["ct", "timeout", "icmp", "25d"]).contains("out of range"));
    assert_eq!(
        refused(&["ct", "timeout", "icmp", "0.0001"]),
        "icmp: timeout \"0.0001\" is not a whole number of milliseconds"
    );
    assert!(refused(&["ct", "timeout", "icmp", "1w"]).contains("invalid timeout \"1w\""));
    assert_eq!(
        refused(&["ct", "timeout", "icmp"]),
        "timeout icmp needs a value"
    );
    assert_eq!(
        refused(&["ct", "timeout", "icmp", "1", "icmp", "2"]),
        "timeout icmp given twice"
    );

    let del = |rest: &[&str]| {
        let args: Vec<&str> = ["ct", "delete"].iter().chain(rest).copied().collect();
        refused(&args)
    };
    assert_eq!(
        del(&["-p", "tcp", "-s", "10.0.1.2", "-d", "10.0.2.2", "--sport", "1"]),
        "tcp needs --sport and --dport"
    );
    assert_eq!(
        del(&["-p", "udp", "-s", "10.0.1.2", "-d", "::1", "--sport", "1", "--dport", "2"]),
        "--src 10.0.1.2 and --dst ::1 are not of the same IP version"
    );
    assert_eq!(
        del(&[
            "-p",
            "icmp",
            "-s",
            "::1",
            "-d",
            "::2",
            "--icmp-type",
            "128",
            "--icmp-id",
            "1"
        ]),
        "icmp takes IPv4 addresses; for IPv6 use -p icmpv6"
    );
    assert_eq!(
        del(&[
            "-p",
            "icmpv6",
            "-s",
            "10.0.0.1",
            "-d",
            "10.0.0.2",
            "--icmp-type",
            "8",
            "--icmp-id",
            "1"
        ]),
        "icmpv6 takes IPv6 addresses; for IPv4 use -p icmp"
    );
    assert_eq!(
        del(&[
            "-p",
            "icmp",
            "-s",
            "10.0.1.2",
            "-d",
            "10.0.2.2",
            "--icmp-type",
            "8"
        ]),
        "icmp needs --icmp-type and --icmp-id"
    );
    assert_eq!(
        del(&["-p", "gre", "-s", "10.0.1.2", "-d", "10.0.2.2", "--dport", "1"]),
        "gre has no ports and no ICMP fields"
    );
    assert_eq!(
        del(&[
            "-p",
            "200",
            "-s",
            "10.0.1.2",
            "-d",
            "10.0.2.2",
            "--icmp-id",
            "1"
        ]),
        "protocol 200 has no ports and no ICMP fields"
    );
    assert_eq!(
        del(&[
            "-p",
            "sctp",
            "-s",
            "10.0.1.2",
            "-d",
            "10.0.2.2",
            "--icmp-code",
            "1"
        ]),
        "sctp takes --sport and --dport, not --icmp-*"
    );

    // clap's own checks.
    let clap = [
        &["ct", "limit", "0"][..],
        &["ct", "limit", "67108865"],
        &["ct", "limit"],
        &["ct", "list", "-p", "foo"],
        &["ct", "list", "-p", "256"],
        &["ct", "list", "-s", "10.0.0.0/33"],
        &["ct", "list", "-d", "not-an-address"],
        &["ct", "list", "--state", "OPEN"],
        &["ct", "list", "--sport", "80"],
        &["ct", "list", "-o", "yaml"],
        &[
            "ct",
            "delete",
            "-p",
            "tcp",
            "-s",
            "10.0.0.0/8",
            "-d",
            "10.0.0.1",
            "--sport",
            "1",
            "--dport",
            "2",
        ],
        &["ct", "delete", "-s", "10.0.0.1", "-d", "10.0.0.2"],
        &[
            "ct", "delete", "-p", "tcp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1",
            "--dport", "65536",
        ],
        &[
            "ct",
            "delete",
            "-p",
            "icmp",
            "-s",
            "10.0.0.1",
            "-d",
            "10.0.0.2",
            "--icmp-type",
            "8",
            "--icmp-id",
            "1",
            "--sport",
            "1",
        ],
        &[
            "ct",
            "delete",
            "-p",
            "icmp",
            "-s",
            "10.0.0.1",
            "-d",
            "10.0.0.2",
            "--icmp-type",
            "256",
            "--icmp-id",
            "1",
        ],
        &["ct", "count", "extra"],
        &["ct", "tracking", "bogus"],
        &["ct", "tracking", "ON"],
        &["ct", "tracking", "1"],
        &["ct", "tracking", "on", "auto"],
        &["ct"],
        &["ct", "frobnicate"],
    ];
    for args in clap {
        assert!(parse(args).is_err(), "{args:?}");
        refused(args);
    }
}

#[test]
fn help_texts_show_examples() {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let ct = cmd.find_subcommand_mut("ct").unwrap();
    for name in [
        "list", "count", "delete", "flush", "stats", "timeout", "limit", "tracking",
    ] {
        let sub = ct.find_subcommand_mut(name).unwrap();
        let help = sub.render_long_help().to_string();
        assert!(help.contains("Examples:"), "{name}");
        assert!(help.contains(&format!("  fwctl ct {name}")), "{name}");
    }
    // The help's lists are the ABI's.
    let timeout = ct
        .find_subcommand_mut("timeout")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(timeout.contains(&format!("Names: {}.", ct_timeout::NAMES.join(", "))));
    let limit = ct
        .find_subcommand_mut("limit")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(limit.contains(&format!("1 to {}", rfw_abi::ct_config::LIMIT_MAX)));
    let count = ct
        .find_subcommand_mut("count")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(count.contains("not yet confirmed"));
    let list = ct
        .find_subcommand_mut("list")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(list.contains(LINES[0]));
    // Each mode explained in one line.
    let tracking = ct
        .find_subcommand_mut("tracking")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(
        tracking.contains(
            "auto: track only while this namespace has rules loaded (the default; as \
             nf_conntrack since Linux 4.10)"
        ),
        "{tracking}"
    );
    assert!(
        tracking.contains("on:   track every packet of this namespace"),
        "{tracking}"
    );
    assert!(tracking.contains("tracking: auto (inactive: no rules loaded)"));
}

#[test]
fn nests_in_requests_carry_nla_f_nested() {
    // The module's policy (NLA_NESTED, strictly validated) refuses a nest
    // without the flag; the model does too, so every request above proves
    // it. Here, directly:
    let bytes = crate::netlink::encode_request(
        RfwMessage::ct_config_set(&ConfigChange {
            timeouts: vec![("icmp", 1)],
            ..ConfigChange::default()
        }),
        CT_FAMILY_ID,
        5,
        1,
    );
    assert_eq!(
        u16::from_ne_bytes([bytes[22], bytes[23]]),
        attr::CT_CONFIG | NLA_F_NESTED
    );
    assert_eq!(
        u16::from_ne_bytes([bytes[26], bytes[27]]),
        rfw_abi::ct_config::TIMEOUT | NLA_F_NESTED
    );
}

/// A stdout whose reader went away.
struct ClosedPipe;

impl io::Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_pipe_stops_the_list_quietly() {
    let (kernel, _) = model(1, true).kernel();
    let mut client = Client::new(kernel).unwrap();
    let mut err = Vec::new();
    let e = Job::CtList(Filter::default())
        .run(&mut client, Output::Table, &mut ClosedPipe, &mut err)
        .unwrap_err();
    // `main` exits 0 for this, printing nothing.
    assert!(is_broken_pipe(&e), "{e}");
    assert!(err.is_empty());
    assert!(!is_broken_pipe(&Error::io(
        "reading rfw connections",
        io::ErrorKind::BrokenPipe.into()
    )));
}

#[test]
fn stats_counting_parses_to_a_get_or_a_set() {
    let job = |args: &[&str]| parse(args).unwrap().job().unwrap();
    assert_eq!(job(&["stats"]), Job::Stats);
    assert_eq!(job(&["stats", "counting"]), Job::StatsCounting(None));
    assert_eq!(
        job(&["stats", "counting", "on"]),
        Job::StatsCounting(Some(true))
    );
    assert_eq!(
        job(&["stats", "counting", "off"]),
        Job::StatsCounting(Some(false))
    );
    assert!(parse(&["stats", "counting", "maybe"]).is_err());
    assert!(parse(&["stats", "counting", "on", "off"]).is_err());
    assert!(parse(&["stats", "bogus"]).is_err());
}

#[test]
fn stats_set_request_carries_one_counting_byte() {
    let m = RfwMessage::stats_set(true);
    assert_eq!(m.cmd, rfw_abi::Cmd::StatsSet);
    assert_eq!(m.stats_counting(), Some(true));
    assert_eq!(RfwMessage::stats_set(false).stats_counting(), Some(false));
    assert_eq!(RfwMessage::stats_get().stats_counting(), None);
}
