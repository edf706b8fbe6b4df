//! The generic tracker for protocols without their own: the connection
//! is the address pair and protocol, refreshed by every packet.
//!
//! Kernel counterpart: `net/netfilter/nf_conntrack_proto_generic.c`.

/// Default generic timeout (`nf_ct_generic_timeout`: 600 s), in ms.
pub const DEFAULT_TIMEOUT_MS: u32 = 600_000;
