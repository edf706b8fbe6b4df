//! LOG lines in `nf_log_syslog`'s format (net/netfilter/nf_log_syslog.c:
//! `nf_log_dump_packet_common`, `dump_mac_header`, `dump_ipv4_packet`,
//! `dump_ipv6_packet`), as iptables' LOG target prints them without
//! `--log-tcp-sequence`, `--log-tcp-options`, `--log-ip-options`,
//! `--log-uid` or `--log-macdecode` (`logflags` 0, the target's default;
//! rfw has none of those flags):
//!
//! ```text
//! PREFIX IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=10.0.1.2 DST=10.0.2.2 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1234 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0
//! ```
//!
//! The same fields in the same order, the same spellings (`%pI4`, `%pI6`:
//! every IPv6 group in four digits), the trailing space, the ICMP error's
//! quoted packet in brackets, `INCOMPLETE [N bytes]` and `TRUNCATED` where
//! the headers end early, `MARK=` when the packet has a mark. Headers are
//! read as `skb_header_pointer` reads them, through [`PacketBytes`].
//!
//! Where rfw differs, on purpose: names are printed safely. A device can
//! be named anything but `/`, `:`, whitespace and NUL (`dev_valid_name`),
//! so control characters, escape sequences and non-ASCII bytes in `IN=`
//! and `OUT=` are printed as `\xHH` (and a backslash as `\x5c`, so that
//! the form is unambiguous); the prefix, which the namespace's ruleset
//! owner chooses, keeps its text but not its control characters (a newline
//! could forge a second log line): those, and bytes that are not UTF-8,
//! are printed as `\xHH`. `nf_log_syslog` prints both raw. Not printed:
//! `PHYSIN=`/`PHYSOUT=` (bridge netfilter), `TUNNEL=` (an `ARPHRD_SIT`
//! device's outer addresses: such devices have no hard header in 6.12,
//! so nf_log prints `MAC= ` for them too).

use core::fmt::{self, Write};

use conntrack::{ipproto, Family};

/// The packet's bytes from its network header on, as a hook sees them.
pub trait PacketBytes {
    /// The packet's length from its network header (`skb->len` minus the
    /// network offset).
    fn len(&self) -> usize;

    /// Copies the `buf.len()` bytes at `offset` (from the network header)
    /// into `buf`; false, and `buf` unspecified, when the packet is
    /// shorter (`skb_header_pointer` returning NULL).
    fn read(&self, offset: usize, buf: &mut [u8]) -> bool;

    /// True when the packet has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PacketBytes for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        let Some(end) = offset.checked_add(buf.len()) else {
            return false;
        };
        match self.get(offset..end) {
            Some(b) => {
                buf.copy_from_slice(b);
                true
            }
            None => false,
        }
    }
}

/// One LOG line (without its syslog level and its newline).
pub struct Line<'a, P: ?Sized> {
    /// `--log-prefix`, printed first, as it is but for control characters.
    pub prefix: &'a [u8],
    /// The input device's name (empty: none).
    pub in_if: &'a [u8],
    /// The output device's name (empty: none).
    pub out_if: &'a [u8],
    /// `None` when there is no input device (no `MAC=` field at all);
    /// else the link-layer header's bytes, empty when the packet has none
    /// or the device no hard header (`MAC= `).
    pub mac: Option<&'a [u8]>,
    /// The packet's family.
    pub family: Family,
    /// The packet, from its network header.
    pub packet: &'a P,
    /// The skb is a TCP GSO packet: an IP length field of 0 means "the
    /// skb's length" (BIG TCP; `iph_totlen`, `ipv6_payload_len`).
    pub gso_tcp: bool,
    /// The packet's mark (`MARK=` unless 0).
    pub mark: u32,
}

/// A device name, with anything but printable ASCII (and the backslash)
/// as `\xHH`.
struct Name<'a>(&'a [u8]);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if b.is_ascii_graphic() && b != b'\\' {
                f.write_char(char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Free text (the prefix): its UTF-8 as it is, but control characters
/// and bytes that are not UTF-8 as `\xHH`.
struct Text<'a>(&'a [u8]);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    let mut b = [0u8; 4];
                    for byte in c.encode_utf8(&mut b).bytes() {
                        write!(f, "\\x{byte:02x}")?;
                    }
                } else {
                    f.write_char(c)?;
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// `%pI4`.
struct Ip4([u8; 4]);

impl fmt::Display for Ip4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// `%pI6`: eight groups of four lowercase hex digits, nothing compressed.
struct Ip6([u8; 16]);

impl fmt::Display for Ip6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.0.chunks_exact(2).enumerate() {
            if i > 0 {
                f.write_char(':')?;
            }
            for b in g {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}

/// Bytes an ICMP message of each type must have for nf_log to decode it
/// (`dump_ipv4_packet`'s `required_len`, indexed by type up to
/// `NR_ICMP_TYPES`; 0: no minimum).
const ICMP_REQUIRED_LEN: [usize; 19] = [
    4,      // ECHOREPLY
    0,      // 1
    0,      // 2
    8 + 20, // DEST_UNREACH
    8 + 20, // SOURCE_QUENCH
    8 + 20, // REDIRECT
    0,      // 6
    0,      // 7
    4,      // ECHO
    0,      // 9
    0,      // 10
    8 + 20, // TIME_EXCEEDED
    8 + 20, // PARAMETERPROB
    20,     // TIMESTAMP
    20,     // TIMESTAMPREPLY
    0,      // 15
    0,      // 16
    12,     // ADDRESS
    12,     // ADDRESSREPLY
];

impl<P: PacketBytes + ?Sized> Line<'_, P> {
    fn read<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let mut b = [0u8; N];
        self.packet.read(offset, &mut b).then_some(b)
    }

    /// `skb->len - offset`, as the kernel's unsigned arithmetic gives it.
    fn left(&self, offset: usize) -> u32 {
        (self.packet.len() as u32).wrapping_sub(offset as u32)
    }

    /// `nf_log_dump_tcp_header`; true when the caller stops there.
    fn tcp(
        &self,
        f: &mut fmt::Formatter<'_>,
        fragment: bool,
        off: usize,
    ) -> Result<bool, fmt::Error> {
        f.write_str("PROTO=TCP ")?;
        if fragment {
            return Ok(false);
        }
        let Some(th) = self.read::<20>(off) else {
            write!(f, "INCOMPLETE [{} bytes] ", self.left(off))?;
            return Ok(true);
        };
        write!(
            f,
            "SPT={} DPT={} ",
            be16([th[0], th[1]]),
            be16([th[2], th[3]])
        )?;
        write!(f, "WINDOW={} ", be16([th[14], th[15]]))?;
        // `ntohl(tcp_flag_word(th) & TCP_RESERVED_BITS) >> 22`.
        write!(f, "RES=0x{:02x} ", (th[12] & 0x0f) << 2)?;
        for (bit, name) in [
            (0x80, "CWR "),
            (0x40, "ECE "),
            (0x20, "URG "),
            (0x10, "ACK "),
            (0x08, "PSH "),
            (0x04, "RST "),
            (0x02, "SYN "),
            (0x01, "FIN "),
        ] {
            if th[13] & bit != 0 {
                f.write_str(name)?;
            }
        }
        write!(f, "URGP={} ", be16([th[18], th[19]]))?;
        Ok(false)
    }

    /// `nf_log_dump_udp_header`; true when the caller stops there.
    fn udp(
        &self,
        f: &mut fmt::Formatter<'_>,
        proto: u8,
        fragment: bool,
        off: usize,
    ) -> Result<bool, fmt::Error> {
        f.write_str(if proto == ipproto::UDP {
            "PROTO=UDP "
        } else {
            "PROTO=UDPLITE "
        })?;
        if fragment {
            return Ok(false);
        }
        let Some(uh) = self.read::<8>(off) else {
            write!(f, "INCOMPLETE [{} bytes] ", self.left(off))?;
            return Ok(true);
        };
        write!(
            f,
            "SPT={} DPT={} LEN={} ",
            be16([uh[0], uh[1]]),
            be16([uh[2], uh[3]]),
            be16([uh[4], uh[5]])
        )?;
        Ok(false)
    }

    /// `dump_ipv4_packet` at `off` (0: the packet; else the packet an ICMP
    /// error quotes).
    fn ipv4(&self, f: &mut fmt::Formatter<'_>, off: usize) -> fmt::Result {
        let Some(ih) = self.read::<20>(off) else {
            return f.write_str("TRUNCATED");
        };
        let tot = be16([ih[2], ih[3]]);
        let len = if tot == 0 && self.gso_tcp {
            self.packet.len() as u32
        } else {
            u32::from(tot)
        };
        write!(
            f,
            "SRC={} DST={} ",
            Ip4([ih[12], ih[13], ih[14], ih[15]]),
            Ip4([ih[16], ih[17], ih[18], ih[19]])
        )?;
        write!(
            f,
            "LEN={len} TOS=0x{:02X} PREC=0x{:02X} TTL={} ID={} ",
            ih[1] & 0x1e,
            ih[1] & 0xe0,
            ih[8],
            be16([ih[4], ih[5]])
        )?;
        let frag = be16([ih[6], ih[7]]);
        for (bit, name) in [(0x8000, "CE "), (0x4000, "DF "), (0x2000, "MF ")] {
            if frag & bit != 0 {
                f.write_str(name)?;
            }
        }
        let offset = frag & 0x1fff;
        if offset != 0 {
            write!(f, "FRAG:{offset} ")?;
        }
        let fragment = offset != 0;
        let l4 = off + usize::from(ih[0] & 0x0f) * 4;
        match ih[9] {
            ipproto::TCP => {
                if self.tcp(f, fragment, l4)? {
                    return Ok(());
                }
            }
            ipproto::UDP | ipproto::UDPLITE => {
                if self.udp(f, ih[9], fragment, l4)? {
                    return Ok(());
                }
            }
            ipproto::ICMP => self.icmp(f, off, fragment, l4)?,
            ipproto::AH => {
                if !fragment {
                    f.write_str("PROTO=AH ")?;
                    match self.read::<12>(l4) {
                        None => write!(f, "INCOMPLETE [{} bytes] ", self.left(l4))?,
                        Some(ah) => write!(f, "SPI=0x{:x} ", be32([ah[4], ah[5], ah[6], ah[7]]))?,
                    }
                }
            }
            ipproto::ESP => {
                f.write_str("PROTO=ESP ")?;
                if !fragment {
                    match self.read::<8>(l4) {
                        None => write!(f, "INCOMPLETE [{} bytes] ", self.left(l4))?,
                        Some(eh) => write!(f, "SPI=0x{:x} ", be32([eh[0], eh[1], eh[2], eh[3]]))?,
                    }
                }
            }
            p => write!(f, "PROTO={p} ")?,
        }
        if off == 0 && self.mark != 0 {
            write!(f, "MARK=0x{:x} ", self.mark)?;
        }
        Ok(())
    }

    /// The ICMP part of `dump_ipv4_packet`.
    fn icmp(
        &self,
        f: &mut fmt::Formatter<'_>,
        off: usize,
        fragment: bool,
        l4: usize,
    ) -> fmt::Result {
        f.write_str("PROTO=ICMP ")?;
        if fragment {
            return Ok(());
        }
        let Some(ich) = self.read::<8>(l4) else {
            return write!(f, "INCOMPLETE [{} bytes] ", self.left(l4));
        };
        let (ty, code) = (ich[0], ich[1]);
        write!(f, "TYPE={ty} CODE={code} ")?;
        let required = ICMP_REQUIRED_LEN.get(usize::from(ty)).copied().unwrap_or(0);
        if required != 0 && (self.left(l4) as usize) < required {
            return write!(f, "INCOMPLETE [{} bytes] ", self.left(l4));
        }
        match ty {
            // ECHOREPLY, ECHO
            0 | 8 => write!(
                f,
                "ID={} SEQ={} ",
                be16([ich[4], ich[5]]),
                be16([ich[6], ich[7]])
            )?,
            // PARAMETERPROB
            12 => write!(f, "PARAMETER={} ", ich[4])?,
            // REDIRECT (then as the errors below), DEST_UNREACH,
            // SOURCE_QUENCH, TIME_EXCEEDED
            3 | 4 | 5 | 11 => {
                if ty == 5 {
                    write!(f, "GATEWAY={} ", Ip4([ich[4], ich[5], ich[6], ich[7]]))?;
                }
                // Only one level deep.
                if off == 0 {
                    f.write_char('[')?;
                    self.ipv4(f, l4 + 8)?;
                    f.write_str("] ")?;
                }
                // DEST_UNREACH, FRAG_NEEDED
                if ty == 3 && code == 4 {
                    write!(f, "MTU={} ", be16([ich[6], ich[7]]))?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `dump_ipv6_packet` at `off`; `recurse` for the packet itself, not
    /// for the one an ICMPv6 error quotes.
    fn ipv6(&self, f: &mut fmt::Formatter<'_>, off: usize, recurse: bool) -> fmt::Result {
        let Some(ih) = self.read::<40>(off) else {
            return f.write_str("TRUNCATED");
        };
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(ih.get(8..24).unwrap_or(&[0; 16]));
        dst.copy_from_slice(ih.get(24..40).unwrap_or(&[0; 16]));
        write!(f, "SRC={} DST={} ", Ip6(src), Ip6(dst))?;
        let payload = be16([ih[4], ih[5]]);
        let len = if payload == 0 && self.gso_tcp {
            self.packet.len()
        } else {
            usize::from(payload) + 40
        };
        let w = be32([ih[0], ih[1], ih[2], ih[3]]);
        write!(
            f,
            "LEN={len} TC={} HOPLIMIT={} FLOWLBL={} ",
            (w & 0x0ff0_0000) >> 20,
            ih[7],
            w & 0x000f_ffff
        )?;
        let mut fragment = false;
        let mut ptr = off + 40;
        let mut cur = ih[6];
        // `nf_ip6_ext_hdr` (NONE ends the walk first). Every header moves
        // `ptr` on by 8 bytes at least, and a read past the packet ends
        // the walk: it ends.
        while matches!(
            cur,
            ipproto::HOPOPTS
                | ipproto::ROUTING
                | ipproto::FRAGMENT
                | ipproto::ESP
                | ipproto::AH
                | ipproto::DSTOPTS
        ) {
            let Some(hp) = self.read::<2>(ptr) else {
                return f.write_str("TRUNCATED");
            };
            let hdrlen = match cur {
                ipproto::FRAGMENT => {
                    f.write_str("FRAG:")?;
                    let Some(fh) = self.read::<8>(ptr) else {
                        return f.write_str("TRUNCATED ");
                    };
                    let fo = be16([fh[2], fh[3]]);
                    write!(f, "{} ", fo & 0xfff8)?;
                    if fo & 1 != 0 {
                        f.write_str("INCOMPLETE ")?;
                    }
                    write!(f, "ID:{:08x} ", be32([fh[4], fh[5], fh[6], fh[7]]))?;
                    if fo & 0xfff8 != 0 {
                        fragment = true;
                    }
                    8
                }
                ipproto::DSTOPTS | ipproto::ROUTING | ipproto::HOPOPTS => {
                    if fragment {
                        return Ok(());
                    }
                    (usize::from(hp[1]) + 1) * 8
                }
                ipproto::AH => (usize::from(hp[1]) + 2) * 4,
                // ESP: nothing after it can be read.
                _ => return Ok(()),
            };
            cur = hp[0];
            ptr += hdrlen;
        }
        match cur {
            ipproto::TCP => {
                if self.tcp(f, fragment, ptr)? {
                    return Ok(());
                }
            }
            ipproto::UDP | ipproto::UDPLITE => {
                if self.udp(f, cur, fragment, ptr)? {
                    return Ok(());
                }
            }
            ipproto::ICMPV6 => {
                f.write_str("PROTO=ICMPv6 ")?;
                if !fragment {
                    let Some(ic) = self.read::<8>(ptr) else {
                        return write!(f, "INCOMPLETE [{} bytes] ", self.left(ptr));
                    };
                    let ty = ic[0];
                    write!(f, "TYPE={ty} CODE={} ", ic[1])?;
                    match ty {
                        // ECHO_REQUEST, ECHO_REPLY
                        128 | 129 => write!(
                            f,
                            "ID={} SEQ={} ",
                            be16([ic[4], ic[5]]),
                            be16([ic[6], ic[7]])
                        )?,
                        // PARAMPROB (then as the errors below),
                        // DEST_UNREACH, PKT_TOOBIG, TIME_EXCEED
                        1..=4 => {
                            if ty == 4 {
                                write!(f, "POINTER={:08x} ", be32([ic[4], ic[5], ic[6], ic[7]]))?;
                            }
                            if recurse {
                                f.write_char('[')?;
                                self.ipv6(f, ptr + 8, false)?;
                                f.write_str("] ")?;
                            }
                            if ty == 2 {
                                write!(f, "MTU={} ", be32([ic[4], ic[5], ic[6], ic[7]]))?;
                            }
                        }
                        _ => {}
                    }
                }
            }
            p => write!(f, "PROTO={p} ")?,
        }
        if recurse && self.mark != 0 {
            write!(f, "MARK=0x{:x} ", self.mark)?;
        }
        Ok(())
    }
}

impl<P: PacketBytes + ?Sized> fmt::Display for Line<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}IN={} OUT={} ",
            Text(self.prefix),
            Name(self.in_if),
            Name(self.out_if)
        )?;
        // `dump_mac_header`'s fallback, for packets with an input device.
        if let Some(mac) = self.mac {
            f.write_str("MAC=")?;
            for (i, b) in mac.iter().enumerate() {
                if i > 0 {
                    f.write_char(':')?;
                }
                write!(f, "{b:02x}")?;
            }
            f.write_char(' ')?;
        }
        match self.family {
            Family::Ipv4 => self.ipv4(f, 0),
            Family::Ipv6 => self.ipv6(f, 0, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    fn line(family: Family, pkt: &[u8], mac: Option<&[u8]>, mark: u32) -> String {
        format!(
            "{}",
            Line {
                prefix: b"rfw: ",
                in_if: b"eth0",
                out_if: b"",
                mac,
                family,
                packet: pkt,
                gso_tcp: false,
                mark,
            }
        )
    }

    /// An IPv4 header: tos, total length, id, frag word, ttl, protocol.
    fn ip4(tos: u8, len: u16, id: u16, frag: u16, ttl: u8, proto: u8) -> Vec<u8> {
        let mut h = std::vec![0x45, tos];
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[ttl, proto, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2]);
        h
    }

    fn tcp_syn() -> [u8; 20] {
        [
            0x9c, 0x40, 0x00, 0x16, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
        ]
    }

    const MAC: [u8; 14] = [
        0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x54, 0, 0x65, 0x43, 0x21, 0x08, 0x00,
    ];

    #[test]
    fn tcp_syn_as_iptables_logs_it() {
        let mut p = ip4(0, 40, 1234, 0x4000, 63, ipproto::TCP);
        p.extend_from_slice(&tcp_syn());
        assert_eq!(
            line(Family::Ipv4, &p, Some(&MAC), 0),
            "rfw: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 \
             SRC=10.0.1.2 DST=10.0.2.2 LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1234 DF \
             PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 "
        );
    }

    #[test]
    fn tcp_flags_reserved_bits_tos_and_mark() {
        let mut p = ip4(0xb8, 40, 7, 0, 64, ipproto::TCP);
        let mut t = tcp_syn();
        t[12] = 0x5f; // all four reserved bits
        t[13] = 0xff; // every flag
        t[18] = 0x01; // urgent pointer 256
        p.extend_from_slice(&t);
        let l = line(Family::Ipv4, &p, None, 42);
        assert!(l.starts_with("rfw: IN=eth0 OUT= SRC="), "{l}");
        assert!(
            l.contains("TOS=0x18 PREC=0xA0 TTL=64 ID=7 PROTO=TCP"),
            "{l}"
        );
        assert!(
            l.ends_with("RES=0x3c CWR ECE URG ACK PSH RST SYN FIN URGP=256 MARK=0x2a "),
            "{l}"
        );
    }

    #[test]
    fn udp_icmp_and_the_quoted_packet() {
        let mut p = ip4(0, 36, 1, 0, 64, ipproto::UDP);
        p.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0x00, 0x10, 0, 0]);
        assert!(line(Family::Ipv4, &p, Some(&[]), 0)
            .ends_with("MAC= SRC=10.0.1.2 DST=10.0.2.2 LEN=36 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=5000 DPT=53 LEN=16 "));

        let mut echo = ip4(0, 28, 2, 0, 64, ipproto::ICMP);
        echo.extend_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, 1]);
        assert!(
            line(Family::Ipv4, &echo, None, 0).ends_with("PROTO=ICMP TYPE=8 CODE=0 ID=4660 SEQ=1 ")
        );

        // Port unreachable quoting the UDP datagram.
        let mut err = ip4(0xc0, 64, 3, 0, 64, ipproto::ICMP);
        err.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
        err.extend_from_slice(&p);
        assert!(
            line(Family::Ipv4, &err, None, 5).ends_with(
                "PROTO=ICMP TYPE=3 CODE=3 [SRC=10.0.1.2 DST=10.0.2.2 LEN=36 TOS=0x00 \
                 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=5000 DPT=53 LEN=16 ] MARK=0x5 "
            ),
            "{}",
            line(Family::Ipv4, &err, None, 5)
        );
        // Fragmentation needed: the MTU after the quote.
        let mut frag_needed = ip4(0, 56, 3, 0, 64, ipproto::ICMP);
        frag_needed.extend_from_slice(&[3, 4, 0, 0, 0, 0, 0x05, 0xdc]);
        frag_needed.extend_from_slice(&p[..28]);
        assert!(line(Family::Ipv4, &frag_needed, None, 0).ends_with("LEN=16 ] MTU=1500 "));
        // An error too short for its quote.
        let mut short = ip4(0, 36, 3, 0, 64, ipproto::ICMP);
        short.extend_from_slice(&[11, 0, 0, 0, 0, 0, 0, 0]);
        assert!(line(Family::Ipv4, &short, None, 0)
            .ends_with("PROTO=ICMP TYPE=11 CODE=0 INCOMPLETE [8 bytes] "));
    }

    #[test]
    fn fragments_truncation_and_other_protocols() {
        // A later fragment: flags and offset, no ports.
        let mut p = ip4(0, 1500, 9, 0x2000 | 185, 64, ipproto::UDP);
        p.extend_from_slice(&[0; 8]);
        assert!(line(Family::Ipv4, &p, None, 7).ends_with("ID=9 MF FRAG:185 PROTO=UDP MARK=0x7 "));
        // A TCP header cut short: INCOMPLETE, and no MARK after it.
        let mut t = ip4(0, 24, 9, 0, 64, ipproto::TCP);
        t.extend_from_slice(&[0; 4]);
        assert!(line(Family::Ipv4, &t, None, 7).ends_with("PROTO=TCP INCOMPLETE [4 bytes] "));
        // No IP header at all.
        assert_eq!(
            line(Family::Ipv4, &[0x45, 0, 0], None, 0),
            "rfw: IN=eth0 OUT= TRUNCATED"
        );
        let mut gre = ip4(0, 24, 9, 0, 64, ipproto::GRE);
        gre.extend_from_slice(&[0; 4]);
        assert!(line(Family::Ipv4, &gre, None, 0).ends_with("ID=9 PROTO=47 "));
        let mut esp = ip4(0, 28, 9, 0, 64, ipproto::ESP);
        esp.extend_from_slice(&[0, 0, 0x10, 0x01, 0, 0, 0, 1]);
        assert!(line(Family::Ipv4, &esp, None, 0).ends_with("PROTO=ESP SPI=0x1001 "));
    }

    /// An IPv6 header: traffic class, flow label, payload length, next
    /// header, hop limit; 2001:db8::1 to 2001:db8::2.
    fn ip6(tc: u8, flow: u32, len: u16, next: u8, hops: u8) -> Vec<u8> {
        let w = (6u32 << 28) | (u32::from(tc) << 20) | flow;
        let mut h = w.to_be_bytes().to_vec();
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(&[next, hops]);
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = 1;
        h.extend_from_slice(&a);
        a[15] = 2;
        h.extend_from_slice(&a);
        h
    }

    #[test]
    fn ipv6_udp_fragment_and_icmpv6() {
        let mut p = ip6(0, 12345, 8, ipproto::UDP, 64);
        p.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0x00, 0x08, 0, 0]);
        assert_eq!(
            line(Family::Ipv6, &p, None, 0),
            "rfw: IN=eth0 OUT= SRC=2001:0db8:0000:0000:0000:0000:0000:0001 \
             DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 \
             FLOWLBL=12345 PROTO=UDP SPT=5000 DPT=53 LEN=8 "
        );
        // A later fragment: its header, no ports.
        let mut fr = ip6(0, 0, 16, ipproto::FRAGMENT, 64);
        fr.extend_from_slice(&[ipproto::UDP, 0, 0x05, 0xa9, 0, 0, 0xab, 0xcd]);
        fr.extend_from_slice(&[0; 8]);
        assert!(line(Family::Ipv6, &fr, None, 0)
            .ends_with("FLOWLBL=0 FRAG:1448 INCOMPLETE ID:0000abcd PROTO=UDP "));
        // Echo request, then a Packet Too Big quoting it.
        let mut echo = ip6(0, 0, 8, ipproto::ICMPV6, 64);
        echo.extend_from_slice(&[128, 0, 0, 0, 0, 7, 0, 1]);
        assert!(line(Family::Ipv6, &echo, None, 1)
            .ends_with("PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=1 MARK=0x1 "));
        let mut big = ip6(0, 0, 56, ipproto::ICMPV6, 64);
        big.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0x05, 0x00]);
        big.extend_from_slice(&echo);
        assert!(line(Family::Ipv6, &big, None, 0).ends_with(
            "PROTO=ICMPv6 TYPE=2 CODE=0 [SRC=2001:0db8:0000:0000:0000:0000:0000:0001 \
             DST=2001:0db8:0000:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 \
             PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=1 ] MTU=1280 "
        ));
        // Hop-by-hop options, then TCP cut short.
        let mut hbh = ip6(0, 0, 12, ipproto::HOPOPTS, 1);
        hbh.extend_from_slice(&[ipproto::TCP, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(line(Family::Ipv6, &hbh, None, 0)
            .ends_with("HOPLIMIT=1 FLOWLBL=0 PROTO=TCP INCOMPLETE [4 bytes] "));
        assert_eq!(
            line(Family::Ipv6, &p[..39], None, 0),
            "rfw: IN=eth0 OUT= TRUNCATED"
        );
    }

    #[test]
    fn gso_length_zero_is_the_packets() {
        let mut p = ip4(0, 0, 1, 0x4000, 64, ipproto::TCP);
        p.extend_from_slice(&tcp_syn());
        let l = Line {
            prefix: b"",
            in_if: b"",
            out_if: b"eth1",
            mac: None,
            family: Family::Ipv4,
            packet: &p[..],
            gso_tcp: true,
            mark: 0,
        };
        assert!(format!("{l}").starts_with("IN= OUT=eth1 SRC=10.0.1.2 DST=10.0.2.2 LEN=40 "));
    }

    #[test]
    fn names_and_prefix_are_printed_safely() {
        let mut p = ip4(0, 20, 1, 0, 64, 250);
        p.truncate(20);
        let l = Line {
            prefix: "drop\n<0>fake é\x1b[2J \\ \u{85}\u{ff}".as_bytes(),
            in_if: b"ev\x1b[31mil",
            out_if: b"a\\b\xff",
            mac: None,
            family: Family::Ipv4,
            packet: &p[..],
            gso_tcp: false,
            mark: 0,
        };
        let s = format!("{l}");
        assert!(
            s.starts_with(
                "drop\\x0a<0>fake é\\x1b[2J \\ \\xc2\\x85ÿIN=ev\\x1b[31mil OUT=a\\x5cb\\xff SRC="
            ),
            "{s}"
        );
        assert!(!s.chars().any(char::is_control), "{s}");
        // Bytes that are not UTF-8 in the prefix.
        let bad = Line {
            prefix: b"x\xff\xfe ",
            ..l
        };
        assert!(format!("{bad}").starts_with("x\\xff\\xfe IN="));
    }
}
