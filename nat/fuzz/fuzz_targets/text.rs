//! The save/restore text parser (and fwctl's rule parser): whatever parses
//! prints to text that parses to the same ruleset and prints the same, and
//! encodes to a blob the kernel decodes back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nat::rule::Counter;
use nat::spec::TableSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // The option parser alone, on each line's words.
    let filter = TableSpec::new(nat::rule::TableKind::Filter);
    for line in s.lines() {
        if let Ok(words) = nat::text::tokenize(line) {
            let _ = nat::text::parse_rule(&words, &filter);
        }
    }
    let Ok(rs) = nat::text::parse(s) else { return };
    let printed = nat::text::print(&rs);
    let back = nat::text::parse(&printed)
        .unwrap_or_else(|e| panic!("printed text does not parse: {e}\n{printed}"));
    assert_eq!(back, rs, "{printed}");
    assert_eq!(nat::text::print(&back), printed);
    for t in &rs.tables {
        let blob = t.encode().expect("valid tables encode");
        let mut d = TableSpec::decode(&blob).expect("valid tables decode");
        let counters: Vec<Counter> = t
            .chains
            .iter()
            .flat_map(|c| {
                c.rules
                    .iter()
                    .map(|r| r.counter)
                    .chain(std::iter::once(c.counter))
            })
            .collect();
        d.set_counters(&counters);
        assert_eq!(&d, t);
    }
});
