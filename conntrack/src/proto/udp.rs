//! The UDP tracker: unreplied, replied, stream.
//!
//! Kernel counterpart: `net/netfilter/nf_conntrack_proto_udp.c`
//! (`nf_conntrack_udp_packet()`); the length checks of `udp_error()` are
//! in [`crate::parse()`].

use crate::conn::{Config, Status};

/// How long after its first packet a replied UDP flow must still be active
/// to be a "stream" (Linux: `stream_ts = 2 * HZ + jiffies`), in ms.
pub const STREAM_AFTER_MS: u32 = 2000;

/// One packet of a UDP connection created at `born` (ms, wrapping): the
/// new timeout, and whether to set ASSURED. UDP keeps no state of its own
/// (Linux's `stream_ts` is `born` + [`STREAM_AFTER_MS`]), so this needs no
/// lock.
pub(crate) fn packet(status: Status, born: u32, now: u32, cfg: &Config) -> (u32, bool) {
    let t = &cfg.timeouts;
    if status.has(Status::SEEN_REPLY) {
        // Traffic both ways: some kind of UDP stream. Still active
        // after two seconds? Extend the timeout and set ASSURED. An
        // assured flow was (Linux's 64-bit jiffies never wrap; this 32-bit
        // clock does after 49 days, and an old stream stays one).
        if status.has(Status::ASSURED)
            || crate::conn::time_after(now, born.wrapping_add(STREAM_AFTER_MS))
        {
            (t.udp_replied, !status.has(Status::ASSURED))
        } else {
            (t.udp_unreplied, false)
        }
    } else {
        (t.udp_unreplied, false)
    }
}
