//! UDP header view (RFC 768).
//!
//! Kernel counterpart: `struct udphdr`; the length checks follow
//! `udp_error()` in `net/netfilter/nf_conntrack_proto_udp.c`.

use super::{be16, put16, Error, Result};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const LENGTH: usize = 4;
    pub(super) const CHECKSUM: usize = 6;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// Length of the two ports that start a UDP header (and a TCP, SCTP, DCCP
/// or UDP-Lite one): all nf_conntrack reads of such a header to make a
/// tuple (`nf_ct_get_tuple_ports()`: "Actually only need first 4 bytes to
/// get ports").
pub const PORTS_LEN: usize = 4;

/// A read/write view of a UDP datagram.
///
/// # Invariants
/// After [`Packet::check_len`] succeeded: the buffer holds at least
/// `len() >= 8` bytes. After [`Packet::check_header_len`] only the 8-byte
/// header is promised; after [`Packet::check_ports_len`] only the ports
/// (enough for the tuple of a datagram quoted in an ICMP error).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and checks it with [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header and the length field: `8 <= len <= buffer`
    /// (Linux: "truncated/malformed packet").
    pub fn check_len(&self) -> Result<()> {
        self.check_len_within(self.buffer.as_ref().len())
    }

    /// [`Packet::check_len`] for a buffer holding only the first bytes of
    /// the datagram, whose length on the wire (the IP payload length) is
    /// `wire_len`: the header must be in the buffer, and
    /// `8 <= len <= wire_len`.
    pub fn check_len_within(&self, wire_len: usize) -> Result<()> {
        self.check_header_len()?;
        let l = self.len() as usize;
        if l < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if l > wire_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Checks only that the 8-byte header is present.
    pub fn check_header_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Checks only that the ports ([`PORTS_LEN`] bytes) are present.
    pub fn check_ports_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PORTS_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT).unwrap_or(0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT).unwrap_or(0)
    }

    /// Length field (header + payload).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH).unwrap_or(0)
    }

    /// Checksum field (0: none, IPv4 only).
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM).unwrap_or(0)
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        let l = self.len() as usize;
        self.buffer.as_ref().get(HEADER_LEN..l).unwrap_or(&[])
    }

    /// True when the checksum (with the given pseudo-header sum) is
    /// correct, or absent (zero).
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let l = self.len() as usize;
        let d = self.buffer.as_ref().get(..l).unwrap_or(&[]);
        crate::checksum::verify(crate::checksum::add(crate::checksum::data(d), pseudo))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Recomputes the checksum from scratch; a computed 0 is sent as
    /// 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let l = self.len() as usize;
        let d = self.buffer.as_ref().get(..l).unwrap_or(&[]);
        let c = crate::checksum::finish(crate::checksum::add(crate::checksum::data(d), pseudo));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;

    const DGRAM: [u8; 12] = [
        0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, b'a', b'b', b'c', b'd',
    ];

    #[test]
    fn fields_and_checksum() {
        let mut b = DGRAM;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.src_port(), 1234);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert_eq!(p.payload(), b"abcd");
        assert!(p.verify_checksum(0x1234)); // absent checksum
        let ph = checksum::pseudo_header_v4(&[1, 2, 3, 4], &[5, 6, 7, 8], 17, 12);
        p.fill_checksum(ph);
        assert!(p.verify_checksum(ph));
        p.set_dst_port(5353);
        assert!(!p.verify_checksum(ph));
    }

    #[test]
    fn errors() {
        assert_eq!(
            Packet::new_checked(&DGRAM[..7]).unwrap_err(),
            Error::Truncated
        );
        let mut b = DGRAM;
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
        b[5] = 13;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        assert!(Packet::new_unchecked(&b[..]).check_header_len().is_ok());
        // A prefix: the length is checked against the wire length.
        let pre = Packet::new_unchecked(&b[..8]);
        assert_eq!(pre.check_len_within(13), Ok(()));
        assert_eq!(pre.check_len_within(12), Err(Error::Truncated));
        assert_eq!(
            Packet::new_unchecked(&b[..7]).check_len_within(13),
            Err(Error::Truncated)
        );
        // The ports alone: 4 bytes.
        assert_eq!(Packet::new_unchecked(&b[..4]).check_ports_len(), Ok(()));
        assert_eq!(
            Packet::new_unchecked(&b[..3]).check_ports_len(),
            Err(Error::Truncated)
        );
        assert_eq!(Packet::new_unchecked(&b[..4]).dst_port(), 53);
        // Trailing bytes past the length field are ignored.
        let mut l = [0u8; 16];
        l[..12].copy_from_slice(&DGRAM);
        assert_eq!(Packet::new_checked(&l[..]).unwrap().payload(), b"abcd");
    }
}
