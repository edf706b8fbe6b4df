//! IPv6 header view (RFC 8200) and a bounded walk of the extension
//! header chain.
//!
//! Kernel counterpart: `struct ipv6hdr`, and `ipv6_get_l4proto()` in
//! `net/netfilter/nf_conntrack_core.c`, which calls `ipv6_skip_exthdr()`.

use super::{array, be16, put_slice, Error, IpProtocol, Result};

mod field {
    pub(super) const VER_TC_FLOW: usize = 0;
    pub(super) const LENGTH: usize = 4;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: usize = 8;
    pub(super) const DST: usize = 24;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// The version field of an IPv6 header.
pub const VERSION: u8 = 6;

/// The default bound on the number of extension headers walked by
/// [`Packet::upper_layer`]. Linux's `ipv6_skip_exthdr()` has none, and
/// nf_conntrack tracks a packet behind any number of them (so does the
/// stack: `ip6_forward()` reads only the hop-by-hop header, and local
/// delivery takes one destination-options header after another). Every
/// extension header is at least 8 bytes, so no packet of 65535 bytes holds
/// this many: the bound never refuses what the kernel would walk, it only
/// caps a host caller's walk over a jumbogram. (rfw's kernel glue reads the
/// chain within the bytes it copies, `kmod/ct/hook.rs`'s `PREFIX`.)
pub const MAX_EXT_HEADERS: usize = 8192;

/// A read/write view of an IPv6 packet.
///
/// # Invariants
/// After [`Packet::check_len`] succeeded: the buffer holds at least
/// `40 + payload_len()` bytes and the version is 6.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// A fragment header found in the extension chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Fragment offset in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// Where the upper-layer header starts, after the extension chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol (for a non-first fragment, the protocol
    /// named by the fragment header; [`IpProtocol::Ipv6NoNxt`] when the
    /// chain ends with "no next header").
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// The fragment header, if one was crossed.
    pub fragment: Option<FragmentInfo>,
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

    /// Checks the version and the payload length against the buffer.
    /// A payload length of 0 (jumbogram) is treated as "no payload".
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        if self.buffer.as_ref().len() < HEADER_LEN + self.payload_len() as usize {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// [`Packet::check_len`] for a buffer holding only the first bytes of
    /// the packet: the fixed header must be in the buffer, the payload
    /// need not be. [`Packet::payload`], [`Packet::packet`] and
    /// [`Packet::upper_layer`] then see nothing past the header: walk the
    /// bytes that are there with [`walk_ext_headers`] instead.
    pub fn check_header_len(&self) -> Result<()> {
        self.check_header_len_any_version()?;
        if self.version() != VERSION {
            return Err(Error::BadVersion);
        }
        Ok(())
    }

    /// [`Packet::check_header_len`] whatever the version nibble says: for
    /// a caller that knows the family otherwise. nf_conntrack takes it
    /// from the hook (`state->pf`) and reads no version
    /// (`ipv6_get_l4proto()`); `ipv6_rcv()` drops a bad one before
    /// PRE_ROUTING, but a raw socket's packet reaches LOCAL_OUT with any
    /// (`rawv6_send_hdrinc()` does not look at it).
    pub fn check_header_len_any_version(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
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
        super::ip_version(self.buffer.as_ref()).unwrap_or(0)
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let w = be16(self.buffer.as_ref(), field::VER_TC_FLOW).unwrap_or(0);
        ((w >> 4) & 0xff) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        let b: [u8; 4] = array(self.buffer.as_ref(), field::VER_TC_FLOW);
        u32::from_be_bytes(b) & 0x000f_ffff
    }

    /// Payload length field.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH).unwrap_or(0)
    }

    /// The first next-header value.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(
            self.buffer
                .as_ref()
                .get(field::NXT_HDR)
                .copied()
                .unwrap_or(0),
        )
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::HOP_LIMIT)
            .copied()
            .unwrap_or(0)
    }

    /// Source address.
    pub fn src_addr(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::DST)
    }

    /// The bytes after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + self.payload_len() as usize;
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// The whole packet up to the payload length (header included).
    pub fn packet(&self) -> &[u8] {
        let end = HEADER_LEN + self.payload_len() as usize;
        self.buffer.as_ref().get(..end).unwrap_or(&[])
    }

    /// Walks the extension header chain (hop-by-hop, routing, fragment,
    /// destination options, AH) to the upper-layer header, crossing at
    /// most `max_headers` extension headers. ESP, "no next header" and
    /// unknown numbers end the walk. After a fragment header with a
    /// non-zero offset the walk stops too: what follows is not a header.
    pub fn upper_layer(&self, max_headers: usize) -> Result<UpperLayer> {
        walk_ext_headers(self.packet(), max_headers)
    }
}

/// Walks the extension header chain of `pkt`, which starts with a fixed
/// IPv6 header (only its next-header byte is read) and ends where the
/// caller's data ends: used directly for the truncated packet quoted in an
/// ICMPv6 error. See [`Packet::upper_layer`].
pub fn walk_ext_headers(pkt: &[u8], max_headers: usize) -> Result<UpperLayer> {
    let mut proto = IpProtocol::from(*pkt.get(field::NXT_HDR).ok_or(Error::Truncated)?);
    let mut off = HEADER_LEN;
    let mut fragment = None;
    let mut crossed = 0usize;
    loop {
        let len = match proto {
            IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                let l = pkt.get(off + 1).ok_or(Error::Truncated)?;
                (*l as usize + 1) * 8
            }
            IpProtocol::Ah => {
                let l = pkt.get(off + 1).ok_or(Error::Truncated)?;
                (*l as usize + 2) * 4
            }
            IpProtocol::Ipv6Frag => 8,
            _ => {
                return Ok(UpperLayer {
                    protocol: proto,
                    offset: off,
                    fragment,
                })
            }
        };
        if crossed >= max_headers {
            return Err(Error::TooManyExtHeaders);
        }
        crossed += 1;
        let next = IpProtocol::from(*pkt.get(off).ok_or(Error::Truncated)?);
        if pkt.len() < off + len {
            return Err(Error::Truncated);
        }
        if proto == IpProtocol::Ipv6Frag {
            let fo = be16(pkt, off + 2).ok_or(Error::Truncated)?;
            let ident: [u8; 4] = array(pkt, off + 4);
            let info = FragmentInfo {
                offset: fo & 0xfff8,
                more: fo & 1 != 0,
                ident: u32::from_be_bytes(ident),
            };
            fragment = Some(info);
            if info.offset != 0 {
                return Ok(UpperLayer {
                    protocol: next,
                    offset: off + len,
                    fragment,
                });
            }
        }
        off += len;
        proto = next;
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buffer.as_mut();
        if let [b0, b1, ..] = b {
            *b0 = (*b0 & 0xf0) | (tc >> 4);
            *b1 = (*b1 & 0x0f) | (tc << 4);
        }
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::HOP_LIMIT) {
            *b = v;
        }
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: [u8; 16]) {
        put_slice(self.buffer.as_mut(), field::SRC, &a);
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: [u8; 16]) {
        put_slice(self.buffer.as_mut(), field::DST, &a);
    }

    /// The whole packet up to the payload length, writable.
    pub fn packet_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + self.payload_len() as usize;
        self.buffer.as_mut().get_mut(..end).unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(next: u8, plen: u16) -> [u8; 40] {
        let mut h = [0u8; 40];
        h[0] = 0x6a; // version 6, tc high nibble 0xa
        h[1] = 0xb1; // tc low nibble 0xb, flow 0x1....
        h[2] = 0x23;
        h[3] = 0x45;
        h[4..6].copy_from_slice(&plen.to_be_bytes());
        h[6] = next;
        h[7] = 64;
        h[8] = 0x20;
        h[9] = 0x01;
        h[23] = 1;
        h[24] = 0x20;
        h[25] = 0x01;
        h[39] = 2;
        h
    }

    #[test]
    fn parse_fields_and_setters() {
        let mut b = [0u8; 48];
        b[..40].copy_from_slice(&header(17, 8));
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xab);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), IpProtocol::Udp);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr()[15], 1);
        assert_eq!(p.dst_addr()[15], 2);
        let ul = p.upper_layer(MAX_EXT_HEADERS).unwrap();
        assert_eq!(ul.protocol, IpProtocol::Udp);
        assert_eq!(ul.offset, 40);
        assert_eq!(ul.fragment, None);
        p.set_hop_limit(1);
        p.set_traffic_class(0x12);
        p.set_src_addr([9; 16]);
        assert_eq!(p.hop_limit(), 1);
        assert_eq!(p.traffic_class(), 0x12);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.src_addr(), [9; 16]);
    }

    #[test]
    fn extension_chain() {
        // HBH (8 bytes) -> DSTOPTS (16 bytes) -> FRAG (offset 0, M) -> TCP
        let mut b = [0u8; 40 + 8 + 16 + 8 + 20];
        b[..40].copy_from_slice(&header(0, 52));
        b[40] = 60;
        b[41] = 0;
        b[48] = 44;
        b[49] = 1;
        b[64] = 6;
        b[66] = 0;
        b[67] = 1; // M
        b[68..72].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let p = Packet::new_checked(&b[..]).unwrap();
        let ul = p.upper_layer(MAX_EXT_HEADERS).unwrap();
        assert_eq!(ul.protocol, IpProtocol::Tcp);
        assert_eq!(ul.offset, 72);
        assert_eq!(
            ul.fragment,
            Some(FragmentInfo {
                offset: 0,
                more: true,
                ident: 0xdeadbeef
            })
        );
        assert_eq!(p.upper_layer(2), Err(Error::TooManyExtHeaders));
        // Non-first fragment: stop at the fragment header.
        let mut c = b;
        c[66] = 0x05;
        c[67] = 0x00; // offset 0x500 = 1280
        let ul = Packet::new_checked(&c[..]).unwrap().upper_layer(8).unwrap();
        assert_eq!(ul.protocol, IpProtocol::Tcp);
        assert_eq!(ul.fragment.unwrap().offset, 1280);
    }

    #[test]
    fn errors() {
        let h = header(6, 20);
        assert_eq!(Packet::new_checked(&h[..39]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&h[..]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_unchecked(&h[..]).check_header_len(), Ok(()));
        assert_eq!(
            Packet::new_unchecked(&h[..39]).check_header_len(),
            Err(Error::Truncated)
        );
        let mut v = h;
        v[0] = 0x45;
        assert_eq!(Packet::new_checked(&v[..]).unwrap_err(), Error::BadVersion);
        assert_eq!(
            Packet::new_unchecked(&v[..]).check_header_len(),
            Err(Error::BadVersion)
        );
        // Whatever the version nibble, 40 bytes make the fixed header.
        assert_eq!(
            Packet::new_unchecked(&v[..]).check_header_len_any_version(),
            Ok(())
        );
        assert_eq!(
            Packet::new_unchecked(&v[..39]).check_header_len_any_version(),
            Err(Error::Truncated)
        );
        // HBH header claiming 16 bytes in an 8-byte payload.
        let mut b = [0u8; 48];
        b[..40].copy_from_slice(&header(0, 8));
        b[41] = 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer(8), Err(Error::Truncated));
        // A long chain of DSTOPTS headers hits an explicit bound; the
        // default one does not bind (`ipv6_skip_exthdr()` has none).
        let mut l = [0u8; 40 + 8 * 10];
        l[..40].copy_from_slice(&header(60, 80));
        for i in 0..10 {
            l[40 + 8 * i] = 60;
        }
        let p = Packet::new_checked(&l[..]).unwrap();
        assert_eq!(p.upper_layer(8), Err(Error::TooManyExtHeaders));
        // (This chain's last header names another that is not there.)
        assert_eq!(p.upper_layer(MAX_EXT_HEADERS), Err(Error::Truncated));
        // 40 headers and UDP, the malformed-packet matrix's case.
        let mut m = [0u8; 40 + 8 * 40];
        m[..40].copy_from_slice(&header(60, 8 * 40));
        for i in 0..40 {
            m[40 + 8 * i] = if i == 39 { 17 } else { 60 };
        }
        let ul = Packet::new_checked(&m[..])
            .unwrap()
            .upper_layer(MAX_EXT_HEADERS)
            .unwrap();
        assert_eq!((ul.protocol, ul.offset), (IpProtocol::Udp, 40 + 8 * 40));
    }
}
