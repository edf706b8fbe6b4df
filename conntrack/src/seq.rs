//! TCP sequence-number arithmetic: always wrapping (RFC 1982 style
//! comparison), as `before()` / `after()` in `include/net/tcp.h`.
//!
//! The kernel builds with overflow checks on: a plain `+` on a sequence
//! number from the wire would be a remote panic. Every sequence operation
//! of this crate goes through these helpers or `wrapping_*`.

/// `a` is strictly before `b` in sequence space.
#[inline]
pub const fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` is strictly after `b` in sequence space.
#[inline]
pub const fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps() {
        assert!(before(1, 2));
        assert!(!before(2, 2));
        assert!(before(0xffff_fff0, 5));
        assert!(after(5, 0xffff_fff0));
        // Exactly half the space apart, both hold, as in the kernel.
        assert!(after(0x8000_0000, 0));
        assert!(before(0x8000_0000, 0));
        assert!(!after(0x7fff_ffff, 0x7fff_ffff));
    }
}
