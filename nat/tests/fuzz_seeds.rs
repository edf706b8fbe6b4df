//! The fuzz targets' properties, run on their seeds and on every input a
//! fuzzer once found (`nat/fuzz/seeds/`), so that `cargo test` keeps them.

use std::path::Path;

use nat::codec::{decode_into, entries_needed, Entry};
use nat::rule::Counter;
use nat::spec::{Ruleset, TableSpec};

fn files(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(dir);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

#[test]
fn decode_seeds_hold_the_fuzz_property() {
    let mut decoded = 0;
    for data in files("decode") {
        let Ok(n) = entries_needed(&data) else {
            continue;
        };
        assert!(n <= data.len());
        let mut store = vec![Entry::EMPTY; n];
        if decode_into(&data, &mut store).is_err() {
            continue;
        }
        decoded += 1;
        let spec = TableSpec::decode(&data).unwrap();
        assert_eq!(spec.encode().unwrap(), data);
        let mut rs = Ruleset { tables: vec![spec] };
        let text = nat::text::print(&rs);
        // The text form has no handles: parsing numbers the rules 1..=n.
        rs.tables[0].renumber_handles();
        assert_eq!(nat::text::parse(&text).unwrap(), rs, "{text}");
    }
    assert!(decoded >= 3);
}

#[test]
fn text_seeds_hold_the_fuzz_property() {
    let mut parsed = 0;
    for data in files("text") {
        let Ok(s) = std::str::from_utf8(&data) else {
            continue;
        };
        let Ok(rs) = nat::text::parse(s) else {
            continue;
        };
        parsed += 1;
        let printed = nat::text::print(&rs);
        let back = nat::text::parse(&printed).unwrap();
        assert_eq!(back, rs);
        assert_eq!(nat::text::print(&back), printed);
        for t in &rs.tables {
            let mut d = TableSpec::decode(&t.encode().unwrap()).unwrap();
            let c: Vec<Counter> = t
                .chains
                .iter()
                .flat_map(|c| {
                    c.rules
                        .iter()
                        .map(|r| r.counter)
                        .chain(std::iter::once(c.counter))
                })
                .collect();
            d.set_counters(&c);
            assert_eq!(&d, t);
        }
    }
    // sample.txt, nat-ports-without-p.txt (NAT ports without -p) and
    // offload.txt.
    assert!(parsed >= 3, "only {parsed} text seeds parse");
}
