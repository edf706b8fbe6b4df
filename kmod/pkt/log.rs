// SPDX-License-Identifier: GPL-2.0

//! The LOG target (nf_log_syslog.c): a rate-limited line per logged
//! packet, and the rule-hit counting that comes with evaluation.
//!
//! As `nf_log_syslog` does (`nf_log_allowed`), only the initial namespace
//! logs, unless `net.netfilter.nf_log_all_netns` is 1: the root of any
//! user namespace can load a ruleset, and the kernel log is the host's. A
//! line is built in a buffer of `nf_log_buf`'s size, in its format
//! (`nat::log`, which says where rfw differs: names and prefix printed
//! safely), and printed as `nf_log_buf_close` prints it: level first, no
//! module prefix.

use core::fmt::Write;

use kernel::alloc::flags::{__GFP_NOWARN, GFP_ATOMIC};
use kernel::alloc::KVec;
use nat::eval::{PacketMeta, RuleSink};
use nat::log::{Line, PacketBytes};
use nat::rule::LogSpec;
use rfw_abi::rules_stats;

use crate::rules::{Loaded, RulesNet};
use crate::sys::netfilter::HookState;
use crate::sys::skbuff::SkBuff;

/// `nf_log_buf`'s `S_SIZE`: the longest line, level included; the rest
/// is cut off, as nf_log cuts it.
const LINE_MAX: usize = 1024 - 5;
/// Link-layer bytes printed at most (`LL_MAX_HEADER`'s largest value).
const MAC_MAX: usize = 128;

/// Counts rule hits into a loaded table's counters, and logs.
pub(super) struct Sink<'a> {
    pub(super) t: &'a Loaded,
    pub(super) rules: &'a RulesNet,
    /// The packet and its hook, for the lines.
    pub(super) skb: &'a SkBuff,
    pub(super) state: &'a HookState,
}

impl RuleSink for Sink<'_> {
    #[inline]
    fn hit(&mut self, index: usize, bytes: u32) {
        self.t.hit(index, bytes);
    }

    fn log(&mut self, index: usize, spec: &LogSpec, pkt: &PacketMeta) {
        // Not this namespace's to write (counted, so that its owner can
        // see why there is nothing), or over the rule's rate.
        let allowed = self.state.log_allowed() && {
            let now = crate::sys::time::ktime_ns();
            self.t.log_allow(index, now, spec.rate, spec.burst)
        };
        if allowed && log_line(spec, pkt, self.skb, self.state) {
            self.rules.count(rules_stats::Counter::Logged);
        } else {
            self.rules.count(rules_stats::Counter::LogSuppressed);
        }
    }
}

/// The packet's bytes from its network header, read as
/// `skb_header_pointer` reads them.
struct SkbBytes<'a>(&'a SkBuff);

impl PacketBytes for SkbBytes<'_> {
    fn len(&self) -> usize {
        self.0.network_bytes()
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        self.0.copy_network_at(offset, buf)
    }
}

/// A line being built: at most [`LINE_MAX`] bytes; a write that does not
/// fit ends the formatting (what fit is printed).
struct LineBuf(KVec<u8>);

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let b = s.as_bytes();
        let n = b.len().min(LINE_MAX.saturating_sub(self.0.len()));
        // Within the capacity reserved up front: no allocation.
        self.0
            .extend_from_slice(b.get(..n).unwrap_or(&[]), GFP_ATOMIC)
            .map_err(|_| core::fmt::Error)?;
        if n < b.len() {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// Prints one LOG line in `nf_log_syslog`'s format; false when there was
/// no memory for it (`nf_log_buf_open` falls back to a static buffer;
/// rfw drops the line and counts it suppressed).
fn log_line(spec: &LogSpec, p: &PacketMeta, skb: &SkBuff, state: &HookState) -> bool {
    // From the heap, as `nf_log_buf_open` takes it: a kilobyte is too much
    // for the stack of a hook.
    let Ok(v) = KVec::with_capacity(LINE_MAX, GFP_ATOMIC | __GFP_NOWARN) else {
        return false;
    };
    let mut buf = LineBuf(v);
    // `KERN_SOH` and the level, which printk takes off the text.
    let _ = buf.write_str("\x01");
    let _ = buf.write_char(char::from(b'0' + spec.level.min(7)));
    let mut mac = [0u8; MAC_MAX];
    // `dump_mac_header` for packets with an input device: the frame's
    // link-layer header, or nothing (`MAC= `) without one.
    let mac = state
        .in_dev()
        .map(|dev| skb.mac_header(dev.hard_header_len(), &mut mac));
    let line = Line {
        prefix: spec.prefix.as_bytes(),
        in_if: p.in_if.as_bytes(),
        out_if: p.out_if.as_bytes(),
        mac,
        family: p.family,
        packet: &SkbBytes(skb),
        gso_tcp: skb.is_gso_tcp(),
        mark: p.mark,
    };
    // A line cut at `LINE_MAX` is printed as far as it got.
    let _ = write!(buf, "{line}");
    crate::sys::printk::print_line(&buf.0);
    true
}
