//! The generic netlink ABI shared by rfw.ko and fwctl.
#![no_std]
#![forbid(unsafe_code)]
