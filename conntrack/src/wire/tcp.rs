//! TCP header view (RFC 9293) and option parsing (MSS, window scale,
//! SACK-permitted, SACK blocks, timestamps).
//!
//! Kernel counterpart: `struct tcphdr`; the option walk follows
//! `tcp_options()` and `tcp_sack()` in
//! `net/netfilter/nf_conntrack_proto_tcp.c` (itself a simplified
//! `tcp_parse_options()`): a malformed option ends the walk silently,
//! keeping what was found before it.

use super::{be16, be32, put16, Error, Result};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ: usize = 4;
    pub(super) const ACK: usize = 8;
    pub(super) const DOFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: usize = 14;
    pub(super) const CHECKSUM: usize = 16;
    pub(super) const URGENT: usize = 18;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;

/// Bytes of the header an ICMP error quotes at least (RFC 792): ports and
/// sequence number.
pub const QUOTED_LEN: usize = 8;

/// Largest window scale shift accepted (RFC 7323; `TCP_MAX_WSCALE`).
pub const MAX_WSCALE: u8 = 14;

/// The eight TCP flag bits, as in the header's 13th byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;

    /// True when every bit of `mask` is set.
    pub const fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
    /// FIN set.
    pub const fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    /// SYN set.
    pub const fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    /// RST set.
    pub const fn rst(self) -> bool {
        self.has(Self::RST)
    }
    /// ACK set.
    pub const fn ack(self) -> bool {
        self.has(Self::ACK)
    }
}

/// The options conntrack cares about, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Maximum segment size.
    pub mss: Option<u16>,
    /// Window scale shift, clamped to [`MAX_WSCALE`].
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack_permitted: bool,
    /// Timestamps (value, echo reply).
    pub timestamps: Option<(u32, u32)>,
    /// The highest right edge (by sequence order) of the SACK blocks of
    /// the first SACK option, if any (what `tcp_sack()` extracts).
    pub sack_right_edge: Option<u32>,
}

/// One TCP option as found on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list.
    EndOfList,
    /// No operation.
    NoOperation,
    /// Maximum segment size.
    MaxSegmentSize(u16),
    /// Window scale (raw, unclamped).
    WindowScale(u8),
    /// SACK permitted.
    SackPermitted,
    /// SACK blocks, as raw bytes (a multiple of 8).
    SackRange(&'a [u8]),
    /// Timestamps (value, echo reply).
    Timestamps(u32, u32),
    /// Any other option: kind and data.
    Unknown(u8, &'a [u8]),
}

/// Iterator over the options of a header. Yields `Err` once, then stops,
/// on a malformed option.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionIter<'a> {
    /// Iterates over raw option bytes.
    pub const fn new(bytes: &'a [u8]) -> Self {
        OptionIter { rest: bytes }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after) = self.rest.split_first()?;
        match kind {
            0 => {
                self.rest = &[];
                Some(Ok(TcpOption::EndOfList))
            }
            1 => {
                self.rest = after;
                Some(Ok(TcpOption::NoOperation))
            }
            _ => {
                let size = match after.first() {
                    Some(&s) if s >= 2 && (s as usize) <= self.rest.len() => s as usize,
                    _ => {
                        self.rest = &[];
                        return Some(Err(Error::Truncated));
                    }
                };
                let data = self.rest.get(2..size).unwrap_or(&[]);
                self.rest = self.rest.get(size..).unwrap_or(&[]);
                let opt = match (kind, data.len()) {
                    (2, 2) => TcpOption::MaxSegmentSize(be16(data, 0).unwrap_or(0)),
                    (3, 1) => TcpOption::WindowScale(data.first().copied().unwrap_or(0)),
                    (4, 0) => TcpOption::SackPermitted,
                    (5, n) if n >= 8 && n % 8 == 0 => TcpOption::SackRange(data),
                    (8, 8) => TcpOption::Timestamps(
                        be32(data, 0).unwrap_or(0),
                        be32(data, 4).unwrap_or(0),
                    ),
                    _ => TcpOption::Unknown(kind, data),
                };
                Some(Ok(opt))
            }
        }
    }
}

/// Summarises option bytes the way conntrack does: stops at the end of
/// list or at the first malformed option, keeping what came before.
pub fn parse_options(bytes: &[u8]) -> Options {
    let mut o = Options::default();
    for opt in OptionIter::new(bytes) {
        match opt {
            Ok(TcpOption::MaxSegmentSize(m)) => o.mss = Some(m),
            Ok(TcpOption::WindowScale(w)) => {
                o.wscale = Some(if w > MAX_WSCALE { MAX_WSCALE } else { w })
            }
            Ok(TcpOption::SackPermitted) => o.sack_permitted = true,
            Ok(TcpOption::Timestamps(v, e)) => o.timestamps = Some((v, e)),
            Ok(TcpOption::SackRange(blocks)) => {
                if o.sack_right_edge.is_none() {
                    let mut best: Option<u32> = None;
                    for blk in blocks.chunks_exact(8) {
                        let right = be32(blk, 4).unwrap_or(0);
                        best = match best {
                            Some(b) if !crate::seq::after(right, b) => Some(b),
                            _ => Some(right),
                        };
                    }
                    o.sack_right_edge = best;
                }
            }
            Ok(TcpOption::EndOfList) | Err(_) => break,
            Ok(_) => {}
        }
    }
    o
}

/// A read/write view of a TCP segment.
///
/// # Invariants
/// After [`Packet::check_len`] succeeded: the buffer holds at least
/// `header_len() >= 20` bytes.
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

    /// Checks that the first [`QUOTED_LEN`] bytes are present: what an
    /// ICMP error quotes at least (RFC 792), and what NAT needs to rewrite
    /// the ports (`tcp_manip_pkt`: "TCP connection tracking guarantees
    /// this much"). Past them only [`Packet::has_checksum`] says more.
    pub fn check_quoted_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < QUOTED_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// True when the buffer reaches past the checksum field (a header
    /// quoted in an ICMP error may stop after [`QUOTED_LEN`] bytes).
    pub fn has_checksum(&self) -> bool {
        self.buffer.as_ref().len() >= field::CHECKSUM + 2
    }

    /// Checks that the fixed header and the options fit (as Linux's
    /// `tcp_error()`: "truncated packet").
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len() as usize;
        if hl < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if len < hl {
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ).unwrap_or(0)
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK).unwrap_or(0)
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::DOFF)
            .map_or(0, |b| (b >> 4) * 4)
    }

    /// The flag byte.
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref().get(field::FLAGS).copied().unwrap_or(0))
    }

    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW).unwrap_or(0)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM).unwrap_or(0)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT).unwrap_or(0)
    }

    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        let hl = self.header_len() as usize;
        self.buffer.as_ref().get(HEADER_LEN..hl).unwrap_or(&[])
    }

    /// The payload (everything after the header).
    pub fn payload(&self) -> &[u8] {
        let hl = self.header_len() as usize;
        self.buffer.as_ref().get(hl..).unwrap_or(&[])
    }

    /// True when the checksum over the segment and the given pseudo-header
    /// sum (see [`crate::checksum`]) is correct.
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        let c = crate::checksum::data(self.buffer.as_ref());
        crate::checksum::verify(crate::checksum::add(c, pseudo))
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

    /// Recomputes the checksum from scratch, given the pseudo-header sum.
    pub fn fill_checksum(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let c = crate::checksum::data(self.buffer.as_ref());
        self.set_checksum(crate::checksum::finish(crate::checksum::add(c, pseudo)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;

    // 12345 -> 80, seq 1, ack 0, SYN, win 65535, options:
    // MSS 1460, SACK_PERM, TS 1/0, NOP, WS 8 (20 bytes) -> doff 10.
    const SYN: [u8; 40] = [
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0, 0x02, 0xff, 0xff, 0, 0, 0, 0, 2, 4,
        0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 8,
    ];

    #[test]
    fn fields() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 12345);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert!(p.flags().syn() && !p.flags().ack());
        assert_eq!(p.window_len(), 65535);
        assert_eq!(p.options().len(), 20);
        assert!(p.payload().is_empty());
        let o = parse_options(p.options());
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamps, Some((1, 0)));
        assert_eq!(o.wscale, Some(8));
        assert_eq!(o.sack_right_edge, None);
    }

    #[test]
    fn sack_blocks_and_clamp() {
        // NOP NOP SACK(2 blocks) ; WS 15 -> clamped 14
        let opts = [
            1, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 5, 3, 3, 15, 0,
        ];
        let o = parse_options(&opts);
        // 5 is after 20 in sequence space when compared with wrap (5 - 20 < 0)?
        // No: 20 -> 5 is a step of -15; 0x...f0 -> 5 is +21, so the max is 20
        // versus 5: after(5, 20) is false, max stays 20.
        assert_eq!(o.sack_right_edge, Some(20));
        assert_eq!(o.wscale, Some(14));
    }

    #[test]
    fn malformed_options_stop_the_walk() {
        // MSS, then an option of size 1 (silly), then WS which is ignored.
        let o = parse_options(&[2, 4, 0x02, 0x00, 8, 1, 3, 3, 7]);
        assert_eq!(o.mss, Some(512));
        assert_eq!(o.wscale, None);
        // Option longer than what is left.
        let o = parse_options(&[3, 3, 7, 2, 9, 0]);
        assert_eq!(o.wscale, Some(7));
        assert_eq!(o.mss, None);
        // Wrong-size MSS is kept as Unknown and skipped.
        let mut it = OptionIter::new(&[2, 3, 1, 0]);
        assert_eq!(it.next(), Some(Ok(TcpOption::Unknown(2, &[1]))));
        assert_eq!(it.next(), Some(Ok(TcpOption::EndOfList)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Packet::new_checked(&SYN[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&SYN[..39]).unwrap_err(),
            Error::Truncated
        );
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadHeaderLen
        );
    }

    #[test]
    fn checksum_roundtrip_and_setters() {
        let mut b = [0u8; 44];
        b[..40].copy_from_slice(&SYN);
        b[40..].copy_from_slice(b"data");
        let pseudo = checksum::pseudo_header_v4(&[10, 0, 0, 1], &[10, 0, 0, 2], 6, 44);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(pseudo);
        assert!(p.verify_checksum(pseudo));
        // NAT: rewrite the port with an incremental update.
        let c = checksum::update16(p.checksum(), 12345, 40000);
        p.set_src_port(40000);
        p.set_checksum(c);
        assert!(p.verify_checksum(pseudo));
        assert_eq!(p.payload(), b"data");
    }
}
