//! What users type: protocols, addresses and prefixes, states, timeouts.
//!
//! Each parser returns a one-line message on error; the ones clap calls
//! (`value_parser`) are short, as clap prefixes them with the argument.

use std::net::IpAddr;

use rfw_abi::{ct_timeout, tcp_state};

use nat::rule::proto;

use super::Conn;

/// `-p`: a protocol name ([`proto::from_name`], any case) or a number 0-255.
pub fn parse_proto(s: &str) -> Result<u8, String> {
    if let Some(p) = proto::from_name(s) {
        return Ok(p);
    }
    s.parse::<u8>().map_err(|_| {
        let names: Vec<&str> = proto::NAMES.iter().map(|(_, name)| *name).collect();
        format!("expected {} or a protocol number 0-255", names.join(", "))
    })
}

/// An address or a prefix: `10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`. Host
/// bits under the prefix length are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The address as given.
    pub addr: IpAddr,
    /// Leading bits that must match: 0-32 for IPv4, 0-128 for IPv6.
    pub len: u8,
}

impl Prefix {
    /// Parses `ADDR` or `ADDR/LEN`.
    pub fn parse(s: &str) -> Result<Prefix, String> {
        const EXPECTED: &str =
            "expected an IPv4 or IPv6 address, optionally with a prefix length (10.0.0.0/8, 2001:db8::/32)";
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| EXPECTED.to_owned())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            // u8's parser takes a leading '+': digits only here.
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max && l.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "prefix length must be between 0 and {max} for {addr}"
                    ))
                }
            },
        };
        Ok(Prefix { addr, len })
    }

    /// Whether `a` is of the same version and its first `len` bits match.
    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(p) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(p) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `--state`: a TCP state or a status flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    /// TCP connections in this [`rfw_abi::tcp_state`].
    Tcp(u8),
    /// Connections with the ASSURED status bit.
    Assured,
    /// Connections that have not seen a reply (no SEEN_REPLY bit).
    Unreplied,
}

impl StateFilter {
    /// Parses a name, in any case.
    pub fn parse(s: &str) -> Result<StateFilter, String> {
        if s.eq_ignore_ascii_case("ASSURED") {
            return Ok(StateFilter::Assured);
        }
        if s.eq_ignore_ascii_case("UNREPLIED") {
            return Ok(StateFilter::Unreplied);
        }
        match (0u8..)
            .zip(tcp_state::NAMES)
            .find(|(_, name)| name.eq_ignore_ascii_case(s))
        {
            Some((n, _)) => Ok(StateFilter::Tcp(n)),
            None => Err(format!(
                "expected a TCP state ({}), ASSURED or UNREPLIED",
                tcp_state::NAMES.join(", ")
            )),
        }
    }

    /// Whether `c` is in this state.
    pub fn matches(&self, c: &Conn) -> bool {
        match *self {
            StateFilter::Tcp(n) => c.tcp_state == Some(n),
            StateFilter::Assured => c.assured(),
            StateFilter::Unreplied => !c.seen_reply(),
        }
    }
}

/// The filters of `fwctl ct list`, all of which must match. Addresses are
/// matched against the original direction's tuple only, as `conntrack -L
/// -s/-d` does: `src` against its source, `dst` against its destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// IP protocol number.
    pub proto: Option<u8>,
    /// Original source address or prefix.
    pub src: Option<Prefix>,
    /// Original destination address or prefix.
    pub dst: Option<Prefix>,
    /// TCP state or status flag.
    pub state: Option<StateFilter>,
}

impl Filter {
    /// Whether `c` passes every filter given.
    pub fn matches(&self, c: &Conn) -> bool {
        self.proto.is_none_or(|p| c.orig.proto == p)
            && self.src.is_none_or(|p| p.contains(c.orig.src))
            && self.dst.is_none_or(|p| p.contains(c.orig.dst))
            && self.state.is_none_or(|s| s.matches(c))
    }
}

/// The largest timeout the kernel takes, in ms (`2^31 - 1`, about 24.8 days).
pub const TIMEOUT_MS_MAX: u32 = i32::MAX as u32;

/// A timeout name from [`ct_timeout::NAMES`], in any case.
pub fn timeout_name(s: &str) -> Result<&'static str, String> {
    ct_timeout::NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(s))
        .copied()
        .ok_or_else(|| {
            format!(
                "unknown timeout name \"{s}\"; valid names: {}",
                ct_timeout::NAMES.join(", ")
            )
        })
}

/// A timeout value in ms: seconds (`30`, `0.5`) or a number with a unit
/// (`500ms`, `30s`, `5m`, `2h`, `1d`), a whole number of milliseconds
/// between 1 and [`TIMEOUT_MS_MAX`].
pub fn parse_timeout_ms(s: &str) -> Result<u32, String> {
    let syntax = || {
        format!(
            "invalid timeout \"{s}\": expected seconds (30, 0.5) or a number with a unit \
             (500ms, 30s, 5m, 2h, 1d)"
        )
    };
    let (number, unit_ms): (&str, u128) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000)
    } else if let Some(n) = s.strip_suffix('d') {
        (n, 86_400_000)
    } else {
        (s, 1_000)
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) || (int.is_empty() && frac.is_empty()) {
        return Err(syntax());
    }
    let range = || {
        format!("timeout \"{s}\" out of range: must be between 1ms and {TIMEOUT_MS_MAX}ms (about 24.8 days)")
    };
    // Leading zeros are harmless; more than 20 significant integer digits
    // are out of range anyway.
    let int = int.trim_start_matches('0');
    if int.len() > 20 {
        return Err(range());
    }
    let frac = frac.trim_end_matches('0');
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| syntax())?
    };
    // int * unit_ms + frac * unit_ms / 10^k, which must be whole.
    let not_whole = || format!("timeout \"{s}\" is not a whole number of milliseconds");
    let ms = if frac.is_empty() {
        int * unit_ms
    } else {
        // 86_400_000 = 2^10 3^3 5^5: no fraction of more than 10 digits
        // (whose last is not 0) is a whole number of ms.
        if frac.len() > 10 {
            return Err(not_whole());
        }
        let scale = 10u128.pow(frac.len() as u32);
        let f: u128 = frac.parse().map_err(|_| syntax())?;
        let f_ms = f * unit_ms;
        if f_ms % scale != 0 {
            return Err(not_whole());
        }
        int * unit_ms + f_ms / scale
    };
    match u32::try_from(ms) {
        Ok(ms) if (1..=TIMEOUT_MS_MAX).contains(&ms) => Ok(ms),
        _ => Err(range()),
    }
}

/// `NAME VALUE [NAME VALUE ...]` of `fwctl ct timeout`: each name known,
/// none twice, each value valid.
pub fn parse_timeout_pairs(args: &[String]) -> Result<Vec<(&'static str, u32)>, String> {
    let mut out: Vec<(&'static str, u32)> = Vec::new();
    for pair in args.chunks(2) {
        let name = timeout_name(&pair[0])?;
        let Some(value) = pair.get(1) else {
            return Err(format!("timeout {name} needs a value"));
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("timeout {name} given twice"));
        }
        let ms = parse_timeout_ms(value).map_err(|e| format!("{name}: {e}"))?;
        out.push((name, ms));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ct::{Counters, CtTuple};

    #[test]
    fn protocols() {
        assert_eq!(parse_proto("tcp"), Ok(6));
        assert_eq!(parse_proto("UDP"), Ok(17));
        assert_eq!(parse_proto("icmpv6"), Ok(58));
        assert_eq!(parse_proto("sctp"), Ok(132));
        assert_eq!(parse_proto("47"), Ok(47));
        assert_eq!(parse_proto("0"), Ok(0));
        assert_eq!(
            parse_proto("256"),
            Err("expected tcp, udp, udplite, icmp, icmpv6, sctp, dccp, gre or a protocol number 0-255".into())
        );
        assert!(parse_proto("").is_err());
        assert!(parse_proto("-1").is_err());
    }

    #[test]
    fn prefixes() {
        let p = Prefix::parse("10.0.0.0/8").unwrap();
        assert!(p.contains("10.255.1.2".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        assert!(!p.contains("::a00:1".parse().unwrap()));
        let p = Prefix::parse("10.0.1.2").unwrap();
        assert_eq!(p.len, 32);
        assert!(p.contains("10.0.1.2".parse().unwrap()));
        assert!(!p.contains("10.0.1.3".parse().unwrap()));
        // Host bits are ignored; /0 matches every address of the version.
        assert!(Prefix::parse("10.9.9.9/8")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
        let all = Prefix::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("255.1.2.3".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let p = Prefix::parse("2001:db8::/32").unwrap();
        assert!(p.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!p.contains("2001:db9::1".parse().unwrap()));
        assert!(Prefix::parse("::/0")
            .unwrap()
            .contains("fe80::1".parse().unwrap()));
        assert_eq!(Prefix::parse("::1").unwrap().len, 128);
        assert_eq!(
            Prefix::parse("10.0.0.0/33"),
            Err("prefix length must be between 0 and 32 for 10.0.0.0".into())
        );
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "x/8",
            "::/129",
            "1.2.3.4/+8",
        ] {
            assert!(Prefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn states() {
        assert_eq!(StateFilter::parse("ESTABLISHED"), Ok(StateFilter::Tcp(3)));
        assert_eq!(StateFilter::parse("time_wait"), Ok(StateFilter::Tcp(7)));
        assert_eq!(StateFilter::parse("Syn_Sent2"), Ok(StateFilter::Tcp(9)));
        assert_eq!(StateFilter::parse("assured"), Ok(StateFilter::Assured));
        assert_eq!(StateFilter::parse("UNREPLIED"), Ok(StateFilter::Unreplied));
        assert_eq!(
            StateFilter::parse("OPEN"),
            Err(
                "expected a TCP state (NONE, SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, \
                 CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2), ASSURED or UNREPLIED"
                    .into()
            )
        );
    }

    #[test]
    fn filters_match_the_original_tuple() {
        let orig = CtTuple {
            proto: 6,
            src: "10.0.1.2".parse().unwrap(),
            dst: "10.0.2.2".parse().unwrap(),
            src_port: 40000,
            dst_port: 5201,
        };
        // Reply as after DNAT: its addresses must not match -s/-d.
        let reply = CtTuple {
            src: "192.168.0.9".parse().unwrap(),
            dst: "10.0.1.2".parse().unwrap(),
            src_port: 5201,
            dst_port: 40000,
            ..orig
        };
        let c = Conn {
            orig,
            reply,
            status: rfw_abi::ct_status::ASSURED | rfw_abi::ct_status::SEEN_REPLY,
            timeout_ms: 1000,
            tcp_state: Some(3),
            orig_counters: Counters::default(),
            reply_counters: Counters::default(),
        };
        let f = |s: &str| {
            let mut f = Filter::default();
            for part in s.split_whitespace() {
                let (k, v) = part.split_once('=').unwrap();
                match k {
                    "p" => f.proto = Some(parse_proto(v).unwrap()),
                    "s" => f.src = Some(Prefix::parse(v).unwrap()),
                    "d" => f.dst = Some(Prefix::parse(v).unwrap()),
                    _ => f.state = Some(StateFilter::parse(v).unwrap()),
                }
            }
            f.matches(&c)
        };
        assert!(f(""));
        assert!(f("p=tcp s=10.0.1.2 d=10.0.2.0/24 state=established"));
        assert!(f("state=ASSURED"));
        assert!(!f("state=UNREPLIED"));
        assert!(!f("state=TIME_WAIT"));
        assert!(!f("p=udp"));
        assert!(!f("s=10.0.2.2"));
        assert!(!f("d=192.168.0.9"));
        assert!(!f("d=10.0.1.2"));
        let unreplied = Conn {
            status: 0,
            tcp_state: None,
            ..c
        };
        assert!(StateFilter::Unreplied.matches(&unreplied));
        assert!(!StateFilter::Tcp(0).matches(&unreplied));
    }

    #[test]
    fn timeout_values() {
        let ok = |s: &str| parse_timeout_ms(s).unwrap();
        assert_eq!(ok("30"), 30_000);
        assert_eq!(ok("0.5"), 500);
        assert_eq!(ok(".5"), 500);
        assert_eq!(ok("1."), 1000);
        assert_eq!(ok("0.001"), 1);
        assert_eq!(ok("1.2340000"), 1234);
        assert_eq!(ok("007"), 7000);
        assert_eq!(ok("500ms"), 500);
        assert_eq!(ok("30s"), 30_000);
        assert_eq!(ok("5m"), 300_000);
        assert_eq!(ok("1.5m"), 90_000);
        assert_eq!(ok("2h"), 7_200_000);
        assert_eq!(ok("1d"), 86_400_000);
        assert_eq!(ok("0.00001d"), 864);
        assert_eq!(ok("2147483.647"), TIMEOUT_MS_MAX);
        assert_eq!(ok("2147483647ms"), TIMEOUT_MS_MAX);
        assert_eq!(ok("24d"), 2_073_600_000);

        let err = |s: &str| parse_timeout_ms(s).unwrap_err();
        assert_eq!(
            err("2147483.648"),
            "timeout \"2147483.648\" out of range: must be between 1ms and 2147483647ms (about 24.8 days)"
        );
        assert!(err("25d").contains("out of range"));
        assert!(err("0").contains("out of range"));
        assert!(err("0.000").contains("out of range"));
        assert!(err("0ms").contains("out of range"));
        assert!(err("99999999999999999999999999999").contains("out of range"));
        assert_eq!(
            err("0.0005"),
            "timeout \"0.0005\" is not a whole number of milliseconds"
        );
        assert!(err("1.5ms").contains("not a whole number"));
        assert!(err("0.000000000000000000001d").contains("not a whole number"));
        for bad in [
            "", ".", "s", "ms", "1.2.3", "-1", "+1", "1e3", "1 s", "1sec", "1w", "x", "1.5.ms", "١",
        ] {
            assert!(
                err(bad).starts_with("invalid timeout"),
                "{bad}: {}",
                err(bad)
            );
        }
    }

    #[test]
    fn timeout_names_and_pairs() {
        assert_eq!(timeout_name("tcp_established"), Ok("tcp_established"));
        assert_eq!(timeout_name("ICMP"), Ok("icmp"));
        assert_eq!(
            timeout_name("tcp"),
            Err(
                "unknown timeout name \"tcp\"; valid names: tcp_syn_sent, tcp_syn_recv, \
                 tcp_established, tcp_fin_wait, tcp_close_wait, tcp_last_ack, tcp_time_wait, \
                 tcp_close, tcp_syn_sent2, tcp_retrans, tcp_unacknowledged, udp_unreplied, \
                 udp_replied, icmp, generic"
                    .into()
            )
        );
        let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            parse_timeout_pairs(&args("icmp 0.5 tcp_established 5d")),
            Ok(vec![("icmp", 500), ("tcp_established", 432_000_000)])
        );
        assert_eq!(parse_timeout_pairs(&[]), Ok(vec![]));
        assert_eq!(
            parse_timeout_pairs(&args("icmp 1 generic")),
            Err("timeout generic needs a value".into())
        );
        assert_eq!(
            parse_timeout_pairs(&args("icmp 1 ICMP 2")),
            Err("timeout icmp given twice".into())
        );
        assert_eq!(
            parse_timeout_pairs(&args("icmp 1x")),
            Err(
                "icmp: invalid timeout \"1x\": expected seconds (30, 0.5) or a number with a \
                 unit (500ms, 30s, 5m, 2h, 1d)"
                    .into()
            )
        );
        assert!(parse_timeout_pairs(&args("30 icmp"))
            .unwrap_err()
            .starts_with("unknown timeout name \"30\""));
    }
}
