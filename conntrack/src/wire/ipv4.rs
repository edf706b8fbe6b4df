//! IPv4 header view (RFC 791), options and fragments recognised.
//!
//! Kernel counterpart: `struct iphdr`, and `ipv4_get_l4proto()` in
//! `net/netfilter/nf_conntrack_core.c` for what conntrack needs from it.

use super::{array, be16, put16, put_slice, Error, IpProtocol, Result};
use crate::checksum;

mod field {
    pub(super) const VER_IHL: usize = 0;
    pub(super) const TOS: usize = 1;
    pub(super) const LENGTH: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLG_OFF: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC: usize = 12;
    pub(super) const DST: usize = 16;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

/// The version field of an IPv4 header.
pub const VERSION: u8 = 4;

/// A read/write view of an IPv4 packet.
///
/// # Invariants
/// After [`Packet::check_len`] succeeded: the buffer holds at least
/// `total_len()` bytes, `total_len() >= header_len() >= 20`.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and checks its lengths ([`Packet::check_len`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the version, IHL and total length against the buffer.
    /// Trailing bytes beyond the total length (link-layer padding) are
    /// allowed and ignored by [`Packet::payload`].
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        if self.buffer.as_ref().len() < self.total_len() as usize {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// [`Packet::check_len`] for a buffer holding only the first bytes of
    /// the packet: the header, options included, must be in the buffer;
    /// the total length must be consistent with it but the rest of the
    /// packet need not be there. [`Packet::payload`] is then empty:
    /// slice the buffer from [`Packet::header_len`] instead.
    pub fn check_header_len(&self) -> Result<()> {
        self.check_header_len_with(self.total_len() as usize)
    }

    /// [`Packet::check_header_len`] with `total` as the packet's length in
    /// place of the total length field: for a packet whose field says 0
    /// and whose length the stack knows otherwise (a BIG TCP GSO packet,
    /// Linux's `iph_totlen()`).
    pub fn check_header_len_with(&self, total: usize) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != VERSION {
            return Err(Error::BadVersion);
        }
        self.check_header_len_any_version(total)
    }

    /// [`Packet::check_header_len_with`] whatever the version nibble says:
    /// for a caller that knows the family otherwise. nf_conntrack takes it
    /// from the hook (`state->pf`) and reads no version
    /// (`ipv4_get_l4proto()`); the input path drops a bad one before
    /// PRE_ROUTING (`ip_rcv_core()`), but a raw socket's packet reaches
    /// LOCAL_OUT with any (`raw_send_hdrinc()` does not look at it).
    pub fn check_header_len_any_version(&self, total: usize) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len() as usize;
        if hl < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if total < hl {
            return Err(Error::BadLength);
        }
        if b.len() < hl {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version nibble.
    pub fn version(&self) -> u8 {
        // The version nibble is in the first byte (`field::VER_IHL`).
        super::ip_version(self.buffer.as_ref()).unwrap_or(0)
    }

    /// Header length in bytes (IHL * 4), options included.
    pub fn header_len(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::VER_IHL)
            .map_or(0, |b| (b & 0x0f) * 4)
    }

    /// The TOS byte (DSCP << 2 | ECN).
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref().get(field::TOS).copied().unwrap_or(0)
    }

    /// Total length field.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH).unwrap_or(0)
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT).unwrap_or(0)
    }

    /// The DF flag.
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF).unwrap_or(0) & 0x4000 != 0
    }

    /// The MF flag.
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF).unwrap_or(0) & 0x2000 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF).unwrap_or(0) & 0x1fff) << 3
    }

    /// True for any fragment (MF set or offset non-zero).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref().get(field::TTL).copied().unwrap_or(0)
    }

    /// The protocol of the payload.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(
            self.buffer
                .as_ref()
                .get(field::PROTOCOL)
                .copied()
                .unwrap_or(0),
        )
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM).unwrap_or(0)
    }

    /// Source address.
    pub fn src_addr(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::DST)
    }

    /// The options bytes (empty without options).
    pub fn options(&self) -> &[u8] {
        let hl = self.header_len() as usize;
        self.buffer.as_ref().get(HEADER_LEN..hl).unwrap_or(&[])
    }

    /// The payload: from the end of the header to the total length.
    pub fn payload(&self) -> &[u8] {
        let hl = self.header_len() as usize;
        let tl = self.total_len() as usize;
        self.buffer.as_ref().get(hl..tl).unwrap_or(&[])
    }

    /// The header bytes (options included).
    pub fn header(&self) -> &[u8] {
        let hl = self.header_len() as usize;
        self.buffer.as_ref().get(..hl).unwrap_or(&[])
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(checksum::data(self.header()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the TOS byte.
    pub fn set_tos(&mut self, v: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::TOS) {
            *b = v;
        }
    }

    /// Sets the TTL.
    pub fn set_ttl(&mut self, v: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::TTL) {
            *b = v;
        }
    }

    /// Sets the TOS byte and updates the header checksum incrementally
    /// (RFC 1624 over the 16-bit word holding it, as `ipv4_change_dsfield`
    /// does).
    pub fn replace_tos(&mut self, v: u8) {
        self.replace_byte(field::TOS, v);
    }

    /// Sets the TTL and updates the header checksum incrementally
    /// (`csum_replace2`, as `ip_decrease_ttl` and `xt_HL` do).
    pub fn replace_ttl(&mut self, v: u8) {
        self.replace_byte(field::TTL, v);
    }

    fn replace_byte(&mut self, at: usize, v: u8) {
        let word_at = at & !1;
        let b = self.buffer.as_mut();
        let old = be16(b, word_at).unwrap_or(0);
        if let Some(x) = b.get_mut(at) {
            *x = v;
        }
        let new = be16(b, word_at).unwrap_or(0);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: [u8; 4]) {
        put_slice(self.buffer.as_mut(), field::SRC, &a);
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: [u8; 4]) {
        put_slice(self.buffer.as_mut(), field::DST, &a);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::data(self.header()));
        self.set_checksum(c);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        let tl = self.total_len() as usize;
        self.buffer.as_mut().get_mut(hl..tl).unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 10.0.0.2, TCP, total 40, id 0x1234, DF, ttl 64.
    const PKT: [u8; 40] = [
        0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 10, 0, 0, 1, 10, 0,
        0, 2, // TCP header follows
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];

    #[test]
    fn parse_fields() {
        let p = Packet::new_checked(&PKT[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.next_header(), IpProtocol::Tcp);
        assert_eq!(p.src_addr(), [10, 0, 0, 1]);
        assert_eq!(p.dst_addr(), [10, 0, 0, 2]);
        assert_eq!(p.payload().len(), 20);
        assert!(p.options().is_empty());
    }

    #[test]
    fn setters_and_checksum() {
        let mut b = PKT;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_src_addr([192, 168, 1, 1]);
        p.set_dst_addr([192, 168, 1, 2]);
        p.set_ttl(3);
        p.set_tos(0xb8);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), [192, 168, 1, 1]);
        assert_eq!(p.ttl(), 3);
        assert_eq!(p.tos(), 0xb8);
    }

    #[test]
    fn replace_keeps_the_checksum() {
        let mut b = PKT;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        for v in [0u8, 1, 0x7f, 0xb8, 0xff] {
            p.replace_tos(v);
            p.replace_ttl(v);
            assert_eq!((p.tos(), p.ttl()), (v, v));
            assert!(p.verify_checksum());
        }
    }

    #[test]
    fn options_and_fragments() {
        // IHL 6 (4 bytes of options: NOP NOP NOP EOL), MF set, offset 185*8.
        let mut b = [0u8; 32];
        b[0] = 0x46;
        b[3] = 32;
        b[6] = 0x20;
        b[7] = 185;
        b[9] = 17;
        b[20] = 1;
        b[21] = 1;
        b[22] = 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Packet::new_checked(&PKT[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut b = PKT;
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        b[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadHeaderLen
        );
        b[0] = 0x45;
        b[3] = 19;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
        b[3] = 41;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        // Padding after total length is fine.
        let mut long = [0u8; 60];
        long[..40].copy_from_slice(&PKT);
        let p = Packet::new_checked(&long[..]).unwrap();
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn header_only_checks() {
        // The fixed header suffices without options; with IHL 6 the
        // options must be there too; the total length need not be.
        let p = Packet::new_unchecked(&PKT[..20]);
        assert_eq!(p.check_header_len(), Ok(()));
        assert_eq!(p.check_len(), Err(Error::Truncated));
        assert_eq!(
            Packet::new_unchecked(&PKT[..19]).check_header_len(),
            Err(Error::Truncated)
        );
        let mut b = PKT;
        b[0] = 0x46;
        assert_eq!(
            Packet::new_unchecked(&b[..23]).check_header_len(),
            Err(Error::Truncated)
        );
        assert_eq!(Packet::new_unchecked(&b[..24]).check_header_len(), Ok(()));
        b[3] = 23; // total length below the header length
        assert_eq!(
            Packet::new_unchecked(&b[..24]).check_header_len(),
            Err(Error::BadLength)
        );
        b[0] = 0x44;
        assert_eq!(
            Packet::new_unchecked(&b[..24]).check_header_len(),
            Err(Error::BadHeaderLen)
        );
        b[0] = 0x65;
        assert_eq!(
            Packet::new_unchecked(&b[..24]).check_header_len(),
            Err(Error::BadVersion)
        );
        // Whatever the version nibble, the lengths are still checked.
        b[0] = 0x66;
        b[3] = 40;
        assert_eq!(
            Packet::new_unchecked(&b[..24]).check_header_len_any_version(40),
            Ok(())
        );
        assert_eq!(
            Packet::new_unchecked(&b[..24]).check_header_len_any_version(23),
            Err(Error::BadLength)
        );
        assert_eq!(
            Packet::new_unchecked(&b[..23]).check_header_len_any_version(40),
            Err(Error::Truncated)
        );
        b[0] = 0x54;
        assert_eq!(
            Packet::new_unchecked(&b[..24]).check_header_len_any_version(40),
            Err(Error::BadHeaderLen)
        );
    }

    #[test]
    fn unchecked_accessors_never_panic() {
        let p = Packet::new_unchecked(&[0x4fu8][..]);
        let _ = (
            p.ttl(),
            p.src_addr(),
            p.payload(),
            p.options(),
            p.total_len(),
        );
    }
}
