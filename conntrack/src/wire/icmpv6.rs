//! ICMPv6 header view (RFC 4443).
//!
//! Kernel counterpart: `struct icmp6hdr`; the type classes follow
//! `net/netfilter/nf_conntrack_proto_icmpv6.c` (`invmap`, `valid_new`,
//! `noct_valid_new`).

use super::{be16, put16, Error, Result};

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const SEQ: usize = 6;
}

/// Length of the ICMPv6 header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = 8;

/// Destination unreachable.
pub const DEST_UNREACH: u8 = 1;
/// Packet too big.
pub const PKT_TOOBIG: u8 = 2;
/// Time exceeded.
pub const TIME_EXCEED: u8 = 3;
/// Parameter problem.
pub const PARAMPROB: u8 = 4;
/// Echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Echo reply.
pub const ECHO_REPLY: u8 = 129;
/// Node information query.
pub const NI_QUERY: u8 = 139;
/// Node information reply.
pub const NI_REPLY: u8 = 140;
/// Redirect (NDISC).
pub const NDISC_REDIRECT: u8 = 137;

// Codes of [`DEST_UNREACH`] (`ICMPV6_*` in `include/uapi/linux/icmpv6.h`);
// the ones rfw sends (REJECT, as nf_reject_ipv6.c).
/// Destination unreachable: no route to destination.
pub const NOROUTE: u8 = 0;
/// Destination unreachable: communication administratively prohibited.
pub const ADM_PROHIBITED: u8 = 1;
/// Destination unreachable: address unreachable.
pub const ADDR_UNREACH: u8 = 3;
/// Destination unreachable: port unreachable.
pub const PORT_UNREACH: u8 = 4;

/// True for error messages (types below 128), which quote the offending
/// packet.
pub const fn is_error(ty: u8) -> bool {
    ty < 128
}

/// For a query or a reply, the type of its counterpart (`invmap`).
pub const fn inverse_type(ty: u8) -> Option<u8> {
    match ty {
        ECHO_REQUEST => Some(ECHO_REPLY),
        ECHO_REPLY => Some(ECHO_REQUEST),
        NI_QUERY => Some(NI_REPLY),
        NI_REPLY => Some(NI_QUERY),
        _ => None,
    }
}

/// True for the types that may start a connection (`valid_new`).
pub const fn is_query(ty: u8) -> bool {
    matches!(ty, ECHO_REQUEST | NI_QUERY)
}

/// True for neighbour discovery and multicast listener messages, which
/// conntrack leaves untracked (`noct_valid_new`: MLD query/report/done,
/// router/neighbour solicitation/advertisement, MLDv2 report, multicast
/// router discovery).
pub const fn is_untracked(ty: u8) -> bool {
    matches!(ty, 130..=136 | 143 | 151 | 152)
}

/// A read/write view of an ICMPv6 message.
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

    /// Checks that the 8-byte header is present.
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

    /// Identifier of echo / node information messages.
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

    /// True when the checksum with the given pseudo-header sum is correct.
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        let c = crate::checksum::data(self.buffer.as_ref());
        crate::checksum::verify(crate::checksum::add(c, pseudo))
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

    /// Recomputes the checksum, given the pseudo-header sum.
    pub fn fill_checksum(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let c = crate::checksum::data(self.buffer.as_ref());
        self.set_checksum(crate::checksum::finish(crate::checksum::add(c, pseudo)));
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
    use crate::checksum;

    #[test]
    fn echo_fields_and_checksum() {
        let mut b = [128u8, 0, 0, 0, 0xab, 0xcd, 0x00, 0x07, 1, 2, 3];
        let s = [0xfeu8; 16];
        let d = [0x20u8; 16];
        let ph = checksum::pseudo_header_v6(&s, &d, 58, b.len() as u32);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO_REQUEST);
        assert_eq!(p.echo_ident(), 0xabcd);
        assert_eq!(p.echo_seq_no(), 7);
        assert_eq!(p.data(), &[1, 2, 3]);
        p.fill_checksum(ph);
        assert!(p.verify_checksum(ph));
        p.set_echo_ident(1);
        assert!(!p.verify_checksum(ph));
    }

    #[test]
    fn classes() {
        assert!(is_error(PKT_TOOBIG) && !is_error(ECHO_REQUEST));
        assert_eq!(inverse_type(ECHO_REPLY), Some(ECHO_REQUEST));
        assert_eq!(inverse_type(135), None);
        assert!(is_untracked(135) && is_untracked(143) && !is_untracked(128));
        assert!(is_query(NI_QUERY));
        assert_eq!(
            Packet::new_checked(&[1u8; 7][..]).unwrap_err(),
            Error::Truncated
        );
    }
}
