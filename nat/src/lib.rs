//! rfw's ruleset, NAT and mangle engine.
#![no_std]
#![forbid(unsafe_code)]
