//! DCCP generic header view (RFC 4340, section 5.1): the ports and the
//! checksum, which NAT rewrites.
//!
//! Kernel counterpart: `struct dccp_hdr` (`include/uapi/linux/dccp.h`),
//! as `dccp_manip_pkt()` in `net/netfilter/nf_nat_proto.c` uses it.
//! Conntrack tracks DCCP generically, so nothing else is read here.

use super::{be16, put16, Error, Result};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const CHECKSUM: usize = 6;
}

/// Bytes of the header an ICMP error quotes at least, and the DCCP
/// tracker guarantees: the ports, data offset, CsCov and the checksum.
pub const QUOTED_LEN: usize = 8;

/// A read/write view of a DCCP header.
///
/// # Invariants
/// After [`Packet::check_len`] succeeded: the buffer holds at least
/// [`QUOTED_LEN`] bytes.
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

    /// Checks that the first [`QUOTED_LEN`] bytes are present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < QUOTED_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT).unwrap_or(0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT).unwrap_or(0)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM).unwrap_or(0)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let mut b = [0x04, 0xd2, 0x00, 0x50, 3, 0, 0x12, 0x34, 0, 0, 0, 0];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.checksum()),
            (1234, 80, 0x1234)
        );
        p.set_dst_port(81);
        p.set_checksum(0xabcd);
        assert_eq!(b[2..8], [0, 81, 3, 0, 0xab, 0xcd]);
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }
}
