//! The edits of `fwctl filter|nat|mangle ...` on one table, as pure
//! functions of a [`TableSpec`]: each either changes the table as asked or
//! returns one line saying why not (without the table's name, which the
//! caller adds) and leaves it as it was.
//!
//! Rules move with their counters and handles, so whatever an edit does,
//! the rules that stay keep both; new rules get the table's largest handle
//! plus one and zero counters.

use nat::{
    rule::{is_valid_chain_name, ChainId, ChainName, Hook, Policy, TableKind, Target},
    spec::{ChainSpec, RuleSpec, TableSpec},
};

/// Where `add`/`insert` puts a rule in its chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// At the end (`add`).
    End,
    /// At the top (`insert`).
    Top,
    /// As rule N of the chain, from 1 (`insert --position N`).
    Nth(u32),
}

/// One edit of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// `add`/`insert`: a rule from its option words, into `chain` (or the
    /// NAT target's default chain) at `position`.
    Add {
        /// `--chain`, as typed.
        chain: Option<String>,
        /// Where in the chain.
        position: Position,
        /// The rule's options, as `nat::text::parse_rule` takes them.
        words: Vec<String>,
    },
    /// `delete --handle N [--chain C]`.
    Delete {
        /// `--chain`, as typed: when given, the rule must be in it.
        chain: Option<String>,
        /// The rule's handle.
        handle: u32,
    },
    /// `flush [--chain C]`: every rule of the chain, or of every chain.
    Flush {
        /// `--chain`, as typed.
        chain: Option<String>,
    },
    /// `policy CHAIN accept|drop`.
    Policy {
        /// The built-in chain, as typed.
        chain: String,
        /// The new policy.
        policy: Policy,
    },
    /// `chain add NAME`.
    ChainAdd(String),
    /// `chain delete NAME`.
    ChainDelete(String),
}

/// What an edit did, for the caller to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// A rule was added with this handle into this chain.
    Added {
        /// The chain.
        chain: String,
        /// The new rule's handle.
        handle: u32,
    },
    /// Rules were removed (delete, flush): how many.
    Removed(usize),
    /// Anything else.
    Changed,
}

impl Edit {
    /// Applies the edit to `t`; on error `t` is unchanged.
    pub fn apply(&self, t: &mut TableSpec) -> Result<Done, String> {
        match self {
            Edit::Add {
                chain,
                position,
                words,
            } => add(t, chain.as_deref(), *position, words),
            Edit::Delete { chain, handle } => delete(t, chain.as_deref(), *handle),
            Edit::Flush { chain } => flush(t, chain.as_deref()),
            Edit::Policy { chain, policy } => {
                let i = resolve_chain(t, chain)?;
                let c = &mut t.chains[i];
                if c.policy.is_none() {
                    return Err(format!(
                        "{} is a user chain; only built-in chains have a policy",
                        c.name
                    ));
                }
                c.policy = Some(*policy);
                Ok(Done::Changed)
            }
            Edit::ChainAdd(name) => chain_add(t, name),
            Edit::ChainDelete(name) => chain_delete(t, name),
        }
    }
}

/// The built-in chain `name` names in `kind`, ignoring case.
fn builtin_named(kind: TableKind, name: &str) -> Option<Hook> {
    Hook::ALL
        .into_iter()
        .find(|h| kind.has_hook(*h) && h.name().eq_ignore_ascii_case(name))
}

/// The index of the chain `name` names: a chain of exactly that name, or
/// else a built-in chain whatever the case (`prerouting`).
pub fn resolve_chain(t: &TableSpec, name: &str) -> Result<usize, String> {
    if let Some(i) = t.chains.iter().position(|c| c.name.as_str() == name) {
        return Ok(i);
    }
    if let Some(h) = builtin_named(t.kind, name) {
        if let Some(i) = t.chains.iter().position(|c| c.name.as_str() == h.name()) {
            return Ok(i);
        }
    }
    let names: Vec<&str> = t.chains.iter().map(|c| c.name.as_str()).collect();
    Err(format!("no chain {name:?} (chains: {})", names.join(", ")))
}

/// The chain a rule goes to without `--chain`: DNAT and REDIRECT to
/// PREROUTING, SNAT and MASQUERADE to POSTROUTING (in `nat`).
fn default_chain(kind: TableKind, target: &Target) -> Result<&'static str, String> {
    match (kind, target) {
        (TableKind::Nat, Target::Dnat(_) | Target::Redirect(_)) => Ok("PREROUTING"),
        (TableKind::Nat, Target::Snat(_) | Target::Masquerade(_)) => Ok("POSTROUTING"),
        (TableKind::Nat, _) => Err("--chain is needed (without it, --to-destination and \
             --redirect go to PREROUTING, --to-source and --masquerade to POSTROUTING)"
            .to_owned()),
        (_, _) => Err(format!(
            "--chain is needed ({} chains: {})",
            kind,
            Hook::ALL
                .into_iter()
                .filter(|h| kind.has_hook(*h))
                .map(Hook::name)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn add(
    t: &mut TableSpec,
    chain: Option<&str>,
    position: Position,
    words: &[String],
) -> Result<Done, String> {
    let rule = nat::text::parse_rule(words, t).map_err(|e| e.message)?;
    let ci = match chain {
        Some(c) => resolve_chain(t, c)?,
        None => resolve_chain(t, default_chain(t.kind, &rule.target)?)?,
    };
    let handle = t
        .next_handle()
        .ok_or("no handle left (the largest, 4294967295, is taken)")?;
    let c = &mut t.chains[ci];
    let at = match position {
        Position::End => c.rules.len(),
        Position::Top => 0,
        Position::Nth(n) => {
            let n = n as usize;
            if n == 0 || n > c.rules.len() + 1 {
                return Err(format!(
                    "--position {n} is not in chain {} ({} rules: 1 to {} can be given)",
                    c.name,
                    c.rules.len(),
                    c.rules.len() + 1
                ));
            }
            n - 1
        }
    };
    c.rules.insert(
        at,
        RuleSpec {
            handle,
            ..RuleSpec::from(rule)
        },
    );
    Ok(Done::Added {
        chain: c.name.to_string(),
        handle,
    })
}

fn delete(t: &mut TableSpec, chain: Option<&str>, handle: u32) -> Result<Done, String> {
    let want = chain.map(|c| resolve_chain(t, c)).transpose()?;
    match t.find_handle(handle) {
        Some((ci, ri)) if want.is_none_or(|w| w == ci) => {
            t.chains[ci].rules.remove(ri);
            Ok(Done::Removed(1))
        }
        Some((ci, _)) => Err(format!(
            "the rule with handle {handle} is in chain {}, not {}",
            t.chains[ci].name,
            want.map(|w| t.chains[w].name.to_string())
                .unwrap_or_default()
        )),
        None => Err(match want {
            Some(w) => format!("no rule with handle {handle} in chain {}", t.chains[w].name),
            None => format!("no rule with handle {handle}"),
        }),
    }
}

fn flush(t: &mut TableSpec, chain: Option<&str>) -> Result<Done, String> {
    let mut n = 0;
    match chain {
        Some(c) => {
            let i = resolve_chain(t, c)?;
            n += t.chains[i].rules.len();
            t.chains[i].rules.clear();
        }
        None => {
            for c in &mut t.chains {
                n += c.rules.len();
                c.rules.clear();
            }
        }
    }
    Ok(Done::Removed(n))
}

fn chain_add(t: &mut TableSpec, name: &str) -> Result<Done, String> {
    if let Some(h) = Hook::from_name(name.as_bytes()).or_else(|| builtin_named(t.kind, name)) {
        return Err(format!(
            "{name:?} names the built-in chain {h}; pick another name"
        ));
    }
    if Hook::ALL
        .iter()
        .any(|h| h.name().eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "{name:?} is the name of a built-in chain (of another table); pick another name"
        ));
    }
    if !is_valid_chain_name(name.as_bytes()) {
        return Err(format!(
            "bad chain name {name:?}: 1 to 28 printable characters, not starting with '-', \
             none of \" ' \\ ! # [ ] : *, and not a target name (ACCEPT, DROP, ...)"
        ));
    }
    if t.chains.iter().any(|c| c.name.as_str() == name) {
        return Err(format!("chain {name} exists"));
    }
    let name = ChainName::new(name.as_bytes()).ok_or_else(|| format!("bad chain name {name:?}"))?;
    t.chains.push(ChainSpec {
        name,
        policy: None,
        counter: Default::default(),
        rules: Vec::new(),
    });
    Ok(Done::Changed)
}

fn chain_delete(t: &mut TableSpec, name: &str) -> Result<Done, String> {
    let i = resolve_chain(t, name)?;
    let c = &t.chains[i];
    if c.policy.is_some() {
        return Err(format!(
            "{} is a built-in chain and cannot be deleted",
            c.name
        ));
    }
    if !c.rules.is_empty() {
        return Err(format!(
            "chain {} is not empty ({} rules); flush it first",
            c.name,
            c.rules.len()
        ));
    }
    let id = ChainId(i as u16);
    let users: Vec<String> = t
        .chains
        .iter()
        .flat_map(|c| c.rules.iter().map(move |r| (c, r)))
        .filter(|(_, r)| matches!(r.rule.target, Target::Jump(j) | Target::Goto(j) if j == id))
        .map(|(c, r)| format!("handle {} in {}", r.handle, c.name))
        .collect();
    if !users.is_empty() {
        return Err(format!(
            "chain {} is used by {} rule{} ({}); delete {} first",
            t.chains[i].name,
            users.len(),
            if users.len() == 1 { "" } else { "s" },
            users.join(", "),
            if users.len() == 1 { "it" } else { "them" }
        ));
    }
    t.chains.remove(i);
    // Chains after it move down one: so do the jumps to them.
    for r in t.chains.iter_mut().flat_map(|c| c.rules.iter_mut()) {
        if let Target::Jump(j) | Target::Goto(j) = &mut r.rule.target {
            if j.0 > id.0 {
                j.0 -= 1;
            }
        }
    }
    Ok(Done::Changed)
}

/// Gives each rule without a handle (0), or with a handle an earlier rule
/// in entry order has, a new one: the largest plus one, as an `add` would.
/// Tables fwctl wrote never need it; one written by another tool gets
/// unique handles from its first edit on. Returns how many changed.
pub fn repair_handles(t: &mut TableSpec) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut max = t
        .chains
        .iter()
        .flat_map(|c| c.rules.iter())
        .map(|r| r.handle)
        .max()
        .unwrap_or(0);
    let mut changed = 0;
    for r in t.chains.iter_mut().flat_map(|c| c.rules.iter_mut()) {
        if r.handle == 0 || !seen.insert(r.handle) {
            // Past u32::MAX (four billion rules) there is nothing to give.
            max = max.saturating_add(1);
            r.handle = max;
            seen.insert(max);
            changed += 1;
        }
    }
    changed
}

/// The number of rules jumping or going to each chain, by chain index.
pub fn references(t: &TableSpec) -> Vec<usize> {
    let mut refs = vec![0; t.chains.len()];
    for r in t.chains.iter().flat_map(|c| c.rules.iter()) {
        if let Target::Jump(j) | Target::Goto(j) = r.rule.target {
            if let Some(n) = refs.get_mut(usize::from(j.0)) {
                *n += 1;
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use nat::rule::Counter;

    use super::*;

    fn words(s: &str) -> Vec<String> {
        nat::text::tokenize(s).unwrap()
    }

    fn add_rule(
        t: &mut TableSpec,
        chain: Option<&str>,
        pos: Position,
        s: &str,
    ) -> Result<Done, String> {
        Edit::Add {
            chain: chain.map(str::to_owned),
            position: pos,
            words: words(s),
        }
        .apply(t)
    }

    /// (chain, handle, options) of every rule.
    fn rules(t: &TableSpec) -> Vec<(String, u32, String)> {
        t.chains
            .iter()
            .flat_map(|c| {
                c.rules.iter().map(move |r| {
                    (
                        c.name.to_string(),
                        r.handle,
                        nat::text::rule_options(&r.rule, t),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn nat_targets_pick_their_chain() {
        let mut t = TableSpec::new(TableKind::Nat);
        for s in [
            "--to-destination 1.2.3.4:8080 -p tcp",
            "-p tcp --dport 80 --redirect --to-ports 3128",
            "-o ppp0 --masquerade",
            "--to-source 1.2.3.4",
            "--to-destination 10.0.2.2:8080",
        ] {
            add_rule(&mut t, None, Position::End, s).unwrap();
        }
        assert_eq!(
            rules(&t),
            [
                (
                    "PREROUTING".into(),
                    1,
                    "-p tcp --to-destination 1.2.3.4:8080".into()
                ),
                (
                    "PREROUTING".into(),
                    2,
                    "-p tcp --dport 80 --redirect --to-ports 3128".into()
                ),
                (
                    "PREROUTING".into(),
                    5,
                    "--to-destination 10.0.2.2:8080".into()
                ),
                ("POSTROUTING".into(), 3, "-o ppp0 --masquerade".into()),
                ("POSTROUTING".into(), 4, "--to-source 1.2.3.4".into()),
            ]
        );
        let e = add_rule(&mut t, None, Position::End, "--accept").unwrap_err();
        assert!(e.starts_with("--chain is needed"), "{e}");
        let mut f = TableSpec::new(TableKind::Filter);
        let e = add_rule(&mut f, None, Position::End, "--accept").unwrap_err();
        assert_eq!(
            e,
            "--chain is needed (filter chains: INPUT, FORWARD, OUTPUT)"
        );
    }

    #[test]
    fn built_in_names_ignore_case_user_chains_do_not() {
        let mut t = TableSpec::new(TableKind::Filter);
        Edit::ChainAdd("ssh".into()).apply(&mut t).unwrap();
        add_rule(&mut t, Some("input"), Position::End, "--drop").unwrap();
        add_rule(&mut t, Some("ssh"), Position::End, "--accept").unwrap();
        let e = add_rule(&mut t, Some("SSH"), Position::End, "--accept").unwrap_err();
        assert_eq!(e, "no chain \"SSH\" (chains: INPUT, FORWARD, OUTPUT, ssh)");
        // PREROUTING is not a filter chain, whatever the case.
        assert!(resolve_chain(&t, "prerouting").is_err());
        for bad in ["input", "INPUT", "Prerouting", "ACCEPT", "-x", "a:b", ""] {
            assert!(Edit::ChainAdd(bad.into()).apply(&mut t).is_err(), "{bad}");
        }
        assert_eq!(
            Edit::ChainAdd("ssh".into()).apply(&mut t).unwrap_err(),
            "chain ssh exists"
        );
    }

    #[test]
    fn handles_are_stable_and_new_ones_are_max_plus_one() {
        let mut t = TableSpec::new(TableKind::Filter);
        for p in ["22", "80", "443"] {
            add_rule(
                &mut t,
                Some("INPUT"),
                Position::End,
                &format!("-p tcp --dport {p} --accept"),
            )
            .unwrap();
        }
        Edit::Delete {
            chain: Some("INPUT".into()),
            handle: 2,
        }
        .apply(&mut t)
        .unwrap();
        assert_eq!(
            add_rule(&mut t, Some("INPUT"), Position::Top, "--drop").unwrap(),
            Done::Added {
                chain: "INPUT".into(),
                handle: 4
            }
        );
        add_rule(&mut t, Some("INPUT"), Position::Nth(2), "-p udp --accept").unwrap();
        let h: Vec<u32> = t.chains[0].rules.iter().map(|r| r.handle).collect();
        assert_eq!(h, [4, 5, 1, 3]);
        let e = add_rule(&mut t, Some("INPUT"), Position::Nth(6), "--drop").unwrap_err();
        assert_eq!(
            e,
            "--position 6 is not in chain INPUT (4 rules: 1 to 5 can be given)"
        );
        assert!(add_rule(&mut t, Some("INPUT"), Position::Nth(0), "--drop").is_err());
        add_rule(&mut t, Some("INPUT"), Position::Nth(5), "--queue 1").unwrap();
        assert_eq!(t.chains[0].rules[4].handle, 6);
    }

    #[test]
    fn delete_names_where_the_handle_is() {
        let mut t = TableSpec::new(TableKind::Filter);
        add_rule(&mut t, Some("FORWARD"), Position::End, "--drop").unwrap();
        let before = t.clone();
        let del = |c: Option<&str>, h| Edit::Delete {
            chain: c.map(str::to_owned),
            handle: h,
        };
        assert_eq!(
            del(Some("INPUT"), 1).apply(&mut t).unwrap_err(),
            "the rule with handle 1 is in chain FORWARD, not INPUT"
        );
        assert_eq!(
            del(Some("INPUT"), 7).apply(&mut t).unwrap_err(),
            "no rule with handle 7 in chain INPUT"
        );
        assert_eq!(
            del(None, 7).apply(&mut t).unwrap_err(),
            "no rule with handle 7"
        );
        assert_eq!(t, before);
        assert_eq!(del(None, 1).apply(&mut t).unwrap(), Done::Removed(1));
    }

    #[test]
    fn chains_delete_only_when_empty_and_unused_and_jumps_follow() {
        let mut t = TableSpec::new(TableKind::Filter);
        for c in ["a", "b", "c"] {
            Edit::ChainAdd(c.into()).apply(&mut t).unwrap();
        }
        add_rule(&mut t, Some("INPUT"), Position::End, "-p tcp --jump c").unwrap();
        add_rule(&mut t, Some("a"), Position::End, "--goto c").unwrap();
        add_rule(&mut t, Some("b"), Position::End, "--accept").unwrap();
        assert_eq!(
            Edit::ChainDelete("c".into()).apply(&mut t).unwrap_err(),
            "chain c is used by 2 rules (handle 1 in INPUT, handle 2 in a); delete them first"
        );
        assert_eq!(
            Edit::ChainDelete("b".into()).apply(&mut t).unwrap_err(),
            "chain b is not empty (1 rules); flush it first"
        );
        assert_eq!(
            Edit::ChainDelete("INPUT".into()).apply(&mut t).unwrap_err(),
            "INPUT is a built-in chain and cannot be deleted"
        );
        Edit::Flush {
            chain: Some("b".into()),
        }
        .apply(&mut t)
        .unwrap();
        Edit::ChainDelete("b".into()).apply(&mut t).unwrap();
        // The jumps to c still name c.
        assert_eq!(
            rules(&t),
            [
                ("INPUT".into(), 1, "-p tcp --jump c".into()),
                ("a".into(), 2, "--goto c".into()),
            ]
        );
        t.validate().unwrap();
        assert_eq!(references(&t), [0, 0, 0, 0, 2]);
    }

    #[test]
    fn policy_only_on_built_in_chains_and_flush_keeps_policies_and_chains() {
        let mut t = TableSpec::new(TableKind::Mangle);
        Edit::ChainAdd("x".into()).apply(&mut t).unwrap();
        Edit::Policy {
            chain: "forward".into(),
            policy: Policy::Drop,
        }
        .apply(&mut t)
        .unwrap();
        assert_eq!(t.chains[2].policy, Some(Policy::Drop));
        assert_eq!(
            Edit::Policy {
                chain: "x".into(),
                policy: Policy::Drop
            }
            .apply(&mut t)
            .unwrap_err(),
            "x is a user chain; only built-in chains have a policy"
        );
        add_rule(&mut t, Some("x"), Position::End, "--ttl-dec 1").unwrap();
        add_rule(&mut t, Some("FORWARD"), Position::End, "--jump x").unwrap();
        assert_eq!(
            Edit::Flush { chain: None }.apply(&mut t).unwrap(),
            Done::Removed(2)
        );
        assert_eq!(t.chains.len(), 6);
        assert_eq!(t.chains[2].policy, Some(Policy::Drop));
    }

    #[test]
    fn missing_and_repeated_handles_are_repaired() {
        let mut t = TableSpec::new(TableKind::Filter);
        for _ in 0..4 {
            add_rule(&mut t, Some("INPUT"), Position::End, "--accept").unwrap();
        }
        let before = t.clone();
        assert_eq!(repair_handles(&mut t), 0);
        assert_eq!(t, before);
        let hs = [0, 7, 0, 7];
        for (r, h) in t.chains[0].rules.iter_mut().zip(hs) {
            r.handle = h;
        }
        assert_eq!(repair_handles(&mut t), 3);
        let h: Vec<u32> = t.chains[0].rules.iter().map(|r| r.handle).collect();
        assert_eq!(h, [8, 7, 9, 10]);
    }

    #[test]
    fn rules_move_with_their_counters() {
        let mut t = TableSpec::new(TableKind::Filter);
        for i in 0..3 {
            add_rule(&mut t, Some("INPUT"), Position::End, "--accept").unwrap();
            t.chains[0].rules[i].counter = Counter {
                packets: i as u64 + 1,
                bytes: 100,
            };
        }
        t.chains[0].counter = Counter {
            packets: 9,
            bytes: 900,
        };
        Edit::Delete {
            chain: None,
            handle: 1,
        }
        .apply(&mut t)
        .unwrap();
        add_rule(&mut t, Some("INPUT"), Position::Top, "--drop").unwrap();
        let c: Vec<u64> = t.counters().iter().map(|c| c.packets).collect();
        // New rule 0, then handles 2 and 3, INPUT's policy, FORWARD, OUTPUT.
        assert_eq!(c, [0, 2, 3, 9, 0, 0]);
    }
}
