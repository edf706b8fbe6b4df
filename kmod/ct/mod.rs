// SPDX-License-Identifier: GPL-2.0

//! Connection tracking in the kernel: the RCU table ([`table`]), each
//! namespace's counters and settings ([`net`]), the packet path ([`hook`])
//! and the netlink commands ([`genl`]). The tracking decisions themselves
//! are the `conntrack` crate's; this module stores, finds, locks and frees.

pub(crate) mod alias;
pub(crate) mod genl;
pub(crate) mod hook;
pub(crate) mod net;
pub(crate) mod offload;
pub(crate) mod table;
