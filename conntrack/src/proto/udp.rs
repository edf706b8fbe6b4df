//! The UDP tracker: unreplied, replied, stream.
//!
//! Kernel counterpart: `net/netfilter/nf_conntrack_proto_udp.c`
//! (`nf_conntrack_udp_packet()`); the length checks of `udp_error()` are
//! in [`crate::parse()`].

use crate::conn::{Config, Status};

/// How long after its first packet a replied UDP flow must still be active
/// to be a "stream" (Linux: `stream_ts = 2 * HZ + jiffies`), in ms.
pub const STREAM_AFTER_MS: u32 = 2000;

/// The UDP part of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Udp {
    /// When the flow becomes a stream if still active (ms, wrapping).
    pub stream_at: u32,
}

impl Udp {
    /// State for a connection created at `now`.
    pub fn new(now: u32) -> Udp {
        Udp {
            stream_at: now.wrapping_add(STREAM_AFTER_MS),
        }
    }

    /// One packet: the new timeout, and whether to set ASSURED.
    pub(crate) fn packet(&self, status: Status, now: u32, cfg: &Config) -> (u32, bool) {
        let t = &cfg.timeouts;
        if status.has(Status::SEEN_REPLY) {
            // Traffic both ways: some kind of UDP stream. Still active
            // after two seconds? Extend the timeout and set ASSURED.
            if crate::conn::time_after(now, self.stream_at) {
                (t.udp_replied, !status.has(Status::ASSURED))
            } else {
                (t.udp_unreplied, false)
            }
        } else {
            (t.udp_unreplied, false)
        }
    }
}
