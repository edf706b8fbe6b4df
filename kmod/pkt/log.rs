// SPDX-License-Identifier: GPL-2.0

//! The LOG target (nf_log_syslog.c): a rate-limited line per logged
//! packet, and the rule-hit counting that comes with evaluation.

use conntrack::{ipproto, Hook};
use nat::eval::{PacketMeta, RuleSink};
use nat::rule::{IfName, LogSpec};
use rfw_abi::rules_stats;

use crate::rules::{Loaded, RulesNet};

/// Counts rule hits into a loaded table's counters, and logs.
pub(super) struct Sink<'a> {
    pub(super) t: &'a Loaded,
    pub(super) rules: &'a RulesNet,
    pub(super) hook: Hook,
}

impl RuleSink for Sink<'_> {
    #[inline]
    fn hit(&mut self, index: usize, bytes: u32) {
        self.t.hit(index, bytes);
    }

    fn log(&mut self, index: usize, spec: &LogSpec, pkt: &PacketMeta) {
        let now = crate::sys::time::ktime_ns();
        if !self.t.log_allow(index, now, spec.rate, spec.burst) {
            self.rules.count(rules_stats::Counter::LogSuppressed);
            return;
        }
        self.rules.count(rules_stats::Counter::Logged);
        log_line(spec, pkt, self.hook);
    }
}

/// `PROTO=` as `nf_log_syslog` prints it: the name of the protocols it
/// dissects, the number of any other.
struct Proto(u8);

impl core::fmt::Display for Proto {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            ipproto::TCP => f.write_str("TCP"),
            ipproto::UDP => f.write_str("UDP"),
            ipproto::ICMP => f.write_str("ICMP"),
            ipproto::ICMPV6 => f.write_str("ICMPv6"),
            n => write!(f, "{n}"),
        }
    }
}

/// One LOG line, in the manner of `nf_log_syslog`.
fn log_line(spec: &LogSpec, p: &PacketMeta, hook: Hook) {
    fn name(n: &IfName) -> &str {
        core::str::from_utf8(n.as_bytes()).unwrap_or("?")
    }
    let prefix = core::str::from_utf8(spec.prefix.as_bytes()).unwrap_or("");
    macro_rules! line {
        ($m:ident) => {
            kernel::$m!(
                "{}IN={} OUT={} SRC={} DST={} LEN={} PROTO={} SPT={} DPT={} MARK=0x{:x} HOOK={:?}\n",
                prefix,
                name(&p.in_if),
                name(&p.out_if),
                p.src,
                p.dst,
                p.len,
                Proto(p.proto),
                p.sport,
                p.dport,
                p.mark,
                hook
            )
        };
    }
    match spec.level {
        0 => line!(pr_emerg),
        1 => line!(pr_alert),
        2 => line!(pr_crit),
        3 => line!(pr_err),
        4 => line!(pr_warn),
        5 => line!(pr_notice),
        6 => line!(pr_info),
        _ => line!(pr_debug),
    }
}
