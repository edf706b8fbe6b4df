//! rfw's connection tracking engine.
#![no_std]
#![forbid(unsafe_code)]
