//! `fwctl stats`: rfw's per-hook packet and byte counters of the caller's
//! network namespace, like the per-table counters `nft list counters` shows.

use std::fmt::Write as _;

use nat::rule::Hook;
use rfw_abi::nfproto;
use serde::Serialize;

use crate::{
    error::Error,
    netlink::{Client, Transport},
    rfw_msg::{describe, HookStats, RfwMessage},
};

/// The families rfw hooks into, in print order, with their names.
pub const FAMILIES: [(u8, &str); 2] = [(nfproto::IPV4, "ipv4"), (nfproto::IPV6, "ipv6")];

/// One (family, hook) row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookRow {
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
    /// The hook's [`Hook::nft_name`].
    pub hook: &'static str,
    /// Packets seen.
    pub packets: u64,
    /// Bytes seen.
    pub bytes: u64,
}

/// Every (family, hook) row, in a fixed order: families as in [`FAMILIES`],
/// hooks by number. Rows the kernel left out read zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatsReport {
    /// Whether rfw counts this namespace's packets (`None`: the module did
    /// not say). While it does not, the counters stand still.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counting: Option<bool>,
    /// One row per (family, hook): always `FAMILIES.len() * Hook::COUNT`.
    pub hooks: Vec<HookRow>,
}

impl StatsReport {
    /// Places the kernel's records on the fixed grid. Records for a family
    /// or hook this fwctl does not know (a newer module) are left out.
    pub fn from_records(records: &[HookStats]) -> Self {
        let mut hooks = Vec::with_capacity(FAMILIES.len() * Hook::COUNT);
        for (family, family_name) in FAMILIES {
            for hook in Hook::ALL {
                let found = records
                    .iter()
                    .rev()
                    .find(|r| r.family == family && r.hook == hook as u8);
                hooks.push(HookRow {
                    family: family_name,
                    hook: hook.nft_name(),
                    packets: found.map_or(0, |r| r.packets),
                    bytes: found.map_or(0, |r| r.bytes),
                });
            }
        }
        StatsReport {
            counting: None,
            hooks,
        }
    }

    /// Asks the kernel for the counters.
    pub fn fetch<T: Transport>(client: &mut Client<T>) -> Result<Self, Error> {
        Self::exchange(client, RfwMessage::stats_get())
    }

    /// Turns counting on or off; returns the counters as they are then.
    pub fn set_counting<T: Transport>(client: &mut Client<T>, on: bool) -> Result<Self, Error> {
        Self::exchange(client, RfwMessage::stats_set(on))
    }

    fn exchange<T: Transport>(client: &mut Client<T>, request: RfwMessage) -> Result<Self, Error> {
        let what = describe(request.cmd);
        let mut records = Vec::new();
        let mut counting = None;
        for reply in client.request(request)? {
            records.extend(reply.hook_stats().map_err(|e| Error::protocol(what, e))?);
            counting = counting.or(reply.stats_counting());
        }
        Ok(StatsReport {
            counting,
            ..StatsReport::from_records(&records)
        })
    }

    /// A table with a header line, numbers right-aligned.
    pub fn to_table(&self) -> String {
        const HEAD: [&str; 4] = ["FAMILY", "HOOK", "PACKETS", "BYTES"];
        let cells: Vec<[String; 4]> = self
            .hooks
            .iter()
            .map(|r| {
                [
                    r.family.to_owned(),
                    r.hook.to_owned(),
                    r.packets.to_string(),
                    r.bytes.to_string(),
                ]
            })
            .collect();
        let mut width = HEAD.map(str::len);
        for row in &cells {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let [wf, wh, wp, wb] = width;
        let mut out = String::new();
        let mut line = |c: [&str; 4]| {
            let _ = writeln!(
                out,
                "{:<wf$}  {:<wh$}  {:>wp$}  {:>wb$}",
                c[0], c[1], c[2], c[3]
            );
        };
        line(HEAD);
        for [f, h, p, b] in &cells {
            line([f, h, p, b]);
        }
        out
    }

    /// One line of JSON: `{"counting":..,"hooks":[{"family":..,"hook":..,"packets":..,"bytes":..},..]}`.
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(self)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| Error::protocol("encoding JSON", e))
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::fake_kernel::{FakeKernel, Skb};

    /// The ABI's family numbers are conntrack's (the ABI crate cannot
    /// import them).
    #[test]
    fn abi_families_are_conntracks() {
        use nat::rule::Family;
        assert_eq!(nfproto::IPV4, Family::Ipv4.nfproto());
        assert_eq!(nfproto::IPV6, Family::Ipv6.nfproto());
        assert_eq!(Family::from_nfproto(nfproto::IPV6), Some(Family::Ipv6));
    }

    /// A reply with three of the ten rows, the rest left out by the kernel.
    fn known_reply() -> FakeKernel {
        FakeKernel::new(Some(0x1d), |req| {
            let mut skb = Skb::new(true);
            let start = skb.genlmsg_put(req.port, req.seq, 0x1d, 0, req.cmd, 1);
            skb.nla_put_u8(rfw_abi::attr::STATS_COUNTING, 1);
            skb.hook_stats(nfproto::IPV6, Hook::Output as u8, 7, 560);
            skb.hook_stats(nfproto::IPV4, Hook::Prerouting as u8, 1234567, 987654321);
            skb.hook_stats(nfproto::IPV4, Hook::Forward as u8, 3, 180);
            skb.hook_stats(7, Hook::Forward as u8, 99, 99); // NFPROTO_BRIDGE: not ours
            skb.nlmsg_end(start);
            skb.ack(req, 0, None, true);
            vec![skb.data]
        })
    }

    fn report() -> StatsReport {
        let mut client = Client::new(known_reply()).unwrap();
        StatsReport::fetch(&mut client).unwrap()
    }

    #[test]
    fn all_ten_rows_in_order_zeros_filled_in() {
        let rows: Vec<_> = report()
            .hooks
            .iter()
            .map(|r| (r.family, r.hook, r.packets, r.bytes))
            .collect();
        assert_eq!(
            rows,
            [
                ("ipv4", "prerouting", 1234567, 987654321),
                ("ipv4", "input", 0, 0),
                ("ipv4", "forward", 3, 180),
                ("ipv4", "output", 0, 0),
                ("ipv4", "postrouting", 0, 0),
                ("ipv6", "prerouting", 0, 0),
                ("ipv6", "input", 0, 0),
                ("ipv6", "forward", 0, 0),
                ("ipv6", "output", 7, 560),
                ("ipv6", "postrouting", 0, 0),
            ]
        );
    }

    #[test]
    fn table() {
        let want = "\
FAMILY  HOOK         PACKETS      BYTES
ipv4    prerouting   1234567  987654321
ipv4    input              0          0
ipv4    forward            3        180
ipv4    output             0          0
ipv4    postrouting        0          0
ipv6    prerouting         0          0
ipv6    input              0          0
ipv6    forward            0          0
ipv6    output             7        560
ipv6    postrouting        0          0
";
        assert_eq!(report().to_table(), want);
    }

    #[test]
    fn json() {
        let want = concat!(
            r#"{"counting":true,"hooks":["#,
            r#"{"family":"ipv4","hook":"prerouting","packets":1234567,"bytes":987654321},"#,
            r#"{"family":"ipv4","hook":"input","packets":0,"bytes":0},"#,
            r#"{"family":"ipv4","hook":"forward","packets":3,"bytes":180},"#,
            r#"{"family":"ipv4","hook":"output","packets":0,"bytes":0},"#,
            r#"{"family":"ipv4","hook":"postrouting","packets":0,"bytes":0},"#,
            r#"{"family":"ipv6","hook":"prerouting","packets":0,"bytes":0},"#,
            r#"{"family":"ipv6","hook":"input","packets":0,"bytes":0},"#,
            r#"{"family":"ipv6","hook":"forward","packets":0,"bytes":0},"#,
            r#"{"family":"ipv6","hook":"output","packets":7,"bytes":560},"#,
            r#"{"family":"ipv6","hook":"postrouting","packets":0,"bytes":0}"#,
            "]}\n"
        );
        assert_eq!(report().to_json().unwrap(), want);
    }

    #[test]
    fn counting_from_the_reply() {
        assert_eq!(report().counting, Some(true));
        // A module that does not say: no "counting" in JSON.
        let r = StatsReport::from_records(&[]);
        assert_eq!(r.counting, None);
        assert!(r.to_json().unwrap().starts_with(r#"{"hooks":["#));
    }

    #[test]
    fn empty_reply_is_all_zeros() {
        let r = StatsReport::from_records(&[]);
        assert_eq!(r.hooks.len(), 10);
        assert!(r.hooks.iter().all(|h| h.packets == 0 && h.bytes == 0));
    }

    #[test]
    fn u64_max_fits_the_table() {
        let r = StatsReport::from_records(&[HookStats {
            family: nfproto::IPV6,
            hook: Hook::Postrouting as u8,
            packets: u64::MAX,
            bytes: u64::MAX,
        }]);
        let table = r.to_table();
        let last = table.lines().last().unwrap();
        assert_eq!(
            last,
            "ipv6    postrouting  18446744073709551615  18446744073709551615"
        );
        assert!(r
            .to_json()
            .unwrap()
            .contains("\"bytes\":18446744073709551615}"));
    }
}
