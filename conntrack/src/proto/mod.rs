//! Per-protocol trackers behind one dispatch in [`crate::conn`].
//!
//! Kernel counterpart: `net/netfilter/nf_conntrack_proto.c` (the l4proto
//! table) and one file per protocol, named in each submodule.

pub mod generic;
pub mod icmp;
pub mod tcp;
pub mod udp;
