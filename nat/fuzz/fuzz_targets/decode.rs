//! The kernel's entry point for untrusted bytes: decode and validate a
//! table blob. Whatever decodes must evaluate without panicking, be the
//! canonical encoding of what it decodes to (handles included), and
//! survive the text form (which renumbers the handles).
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use nat::codec::{decode_into, entries_needed, Entry};
use nat::eval::PacketMeta;
use nat::rule::{Counter, CtState, Family, Hook, IfName};
use nat::spec::{Ruleset, TableSpec};

fn meta(v6: bool, proto: u8, seed: u8) -> PacketMeta {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    } else {
        ([10, 0, 0, seed].into(), [192, 0, 2, 1].into())
    };
    PacketMeta {
        family: if v6 { Family::Ipv6 } else { Family::Ipv4 },
        proto,
        src,
        dst,
        sport: 1024 + u16::from(seed),
        dport: 80,
        in_if: IfName::new(b"eth0").unwrap(),
        out_if: IfName::new(b"eth1").unwrap(),
        ct_state: if seed & 1 == 0 {
            CtState::New
        } else {
            CtState::Established
        },
        mark: u32::from(seed),
        icmp_type: 8,
        icmp_code: 0,
        tcp_flags: seed,
        fragment: seed & 4 != 0,
        len: 100,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(n) = entries_needed(data) else { return };
    assert!(n <= data.len(), "header promises more entries than bytes");
    let mut store = vec![Entry::EMPTY; n];
    let Ok(table) = decode_into(data, &mut store) else {
        return;
    };
    let mut counters = vec![Counter::default(); table.entries().len()];
    for hook in Hook::ALL {
        for (v6, proto) in [(false, 6), (false, 17), (false, 1), (true, 58), (true, 6)] {
            let _ = table.evaluate(
                hook,
                &meta(v6, proto, data.len() as u8),
                counters.as_mut_slice(),
            );
        }
    }
    let spec = TableSpec::decode(data).expect("decodes twice");
    assert_eq!(
        spec.encode().expect("encodes"),
        data,
        "encoding is canonical"
    );
    let mut rs = Ruleset { tables: vec![spec] };
    let text = nat::text::print(&rs);
    let back = nat::text::parse(&text)
        .unwrap_or_else(|e| panic!("printed text does not parse: {e}\n{text}"));
    // The text form has no handles: parsing numbers the rules 1..=n.
    rs.tables[0].renumber_handles();
    assert_eq!(back, rs, "{text}");
});
