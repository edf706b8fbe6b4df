//! ICMP header view (RFC 792).
//!
//! Kernel counterpart: `struct icmphdr`; the type classes follow
//! `net/netfilter/nf_conntrack_proto_icmp.c` (`invmap`, `valid_new`,
//! `icmp_is_err()`).

use super::{be16, put16, Error, Result};

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const SEQ: usize = 6;
}

/// Length of the ICMP header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = 8;

/// Echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Destination unreachable.
pub const DEST_UNREACH: u8 = 3;
/// Source quench.
pub const SOURCE_QUENCH: u8 = 4;
/// Redirect.
pub const REDIRECT: u8 = 5;
/// Echo request.
pub const ECHO: u8 = 8;
/// Time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Parameter problem.
pub const PARAMETER_PROB: u8 = 12;
/// Timestamp request.
pub const TIMESTAMP: u8 = 13;
/// Timestamp reply.
pub const TIMESTAMP_REPLY: u8 = 14;
/// Information request.
pub const INFO_REQUEST: u8 = 15;
/// Information reply.
pub const INFO_REPLY: u8 = 16;
/// Address mask request.
pub const ADDRESS: u8 = 17;
/// Address mask reply.
pub const ADDRESS_REPLY: u8 = 18;
/// Highest type Linux knows (`NR_ICMP_TYPES`).
pub const MAX_KNOWN_TYPE: u8 = 18;

// Codes of [`DEST_UNREACH`] (`ICMP_*` in `include/uapi/linux/icmp.h`);
// the ones rfw sends (REJECT, as nf_reject_ipv4.c).
/// Destination unreachable: network unreachable.
pub const NET_UNREACH: u8 = 0;
/// Destination unreachable: host unreachable.
pub const HOST_UNREACH: u8 = 1;
/// Destination unreachable: protocol unreachable.
pub const PROT_UNREACH: u8 = 2;
/// Destination unreachable: port unreachable.
pub const PORT_UNREACH: u8 = 3;
/// Destination unreachable: communication administratively prohibited.
pub const PKT_FILTERED: u8 = 13;

/// True for error messages, which quote the offending packet
/// (`icmp_is_err()`).
pub const fn is_error(ty: u8) -> bool {
    matches!(
        ty,
        DEST_UNREACH | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROB
    )
}

/// For a query or a reply, the type of its counterpart (`invmap`).
pub const fn inverse_type(ty: u8) -> Option<u8> {
    match ty {
        ECHO => Some(ECHO_REPLY),
        ECHO_REPLY => Some(ECHO),
        TIMESTAMP => Some(TIMESTAMP_REPLY),
        TIMESTAMP_REPLY => Some(TIMESTAMP),
        INFO_REQUEST => Some(INFO_REPLY),
        INFO_REPLY => Some(INFO_REQUEST),
        ADDRESS => Some(ADDRESS_REPLY),
        ADDRESS_REPLY => Some(ADDRESS),
        _ => None,
    }
}

/// True for the types that may start a connection (`valid_new`).
pub const fn is_query(ty: u8) -> bool {
    matches!(ty, ECHO | TIMESTAMP | INFO_REQUEST | ADDRESS)
}

/// A read/write view of an ICMP message.
///
/// # Invariants
/// After [`Packet::check_len`] succeeded: the buffer holds at least the
/// 8-byte header.
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

    /// Checks that the 8-byte header is present (Linux: "short packet").
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref().get(field::TYPE).copied().unwrap_or(0)
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref().get(field::CODE).copied().unwrap_or(0)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM).unwrap_or(0)
    }

    /// Identifier of echo/timestamp/info/address messages.
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT).unwrap_or(0)
    }

    /// Sequence number of echo messages.
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SEQ).unwrap_or(0)
    }

    /// The bytes after the 8-byte header (for errors: the quoted packet).
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// True when the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        crate::checksum::verify(crate::checksum::data(self.buffer.as_ref()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the identifier (NAT rewrites it like a port).
    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = crate::checksum::finish(crate::checksum::data(self.buffer.as_ref()));
        self.set_checksum(c);
    }

    /// The quoted packet of an error, writable (NAT rewrites it).
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_fields_and_checksum() {
        let mut b = [8u8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'p', b'i', b'n', b'g'];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"ping");
        p.fill_checksum();
        assert!(p.verify_checksum());
        let c = crate::checksum::update16(p.checksum(), 0x1234, 0x4321);
        p.set_echo_ident(0x4321);
        p.set_checksum(c);
        assert!(p.verify_checksum());
    }

    #[test]
    fn classes() {
        assert!(is_error(DEST_UNREACH) && is_error(TIME_EXCEEDED) && !is_error(ECHO));
        assert_eq!(inverse_type(ECHO), Some(ECHO_REPLY));
        assert_eq!(inverse_type(ADDRESS_REPLY), Some(ADDRESS));
        assert_eq!(inverse_type(DEST_UNREACH), None);
        assert!(is_query(TIMESTAMP) && !is_query(ECHO_REPLY));
        assert_eq!(
            Packet::new_checked(&[8u8, 0, 0][..]).unwrap_err(),
            Error::Truncated
        );
    }
}
