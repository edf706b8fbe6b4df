//! The kernel's conntrack packetdrill scripts
//! (tools/testing/selftests/net/netfilter/packetdrill/conntrack_*.pkt,
//! Linux 6.12) re-expressed as host tests with the same outcomes.
//!
//! Sequence numbers follow packetdrill's rules: a SYN's sequence number is
//! literal; other sequence numbers and all ACK numbers are relative to the
//! ISN of the side they belong to. `L` is the local (kernel under test)
//! ISN, which packetdrill lets the kernel choose; `R` the remote one.
//! "<" packets go through INPUT (here: `f.s` in connect scripts, `f.c` in
//! listen scripts), ">" packets through OUTPUT. The scripts' iptables
//! INVALID counters are the number of INVALID verdicts per direction.

mod common;
use common::*;
use conntrack::proto::tcp::TcpState;
use conntrack::{Family, Status, Verdict};

const L: u32 = 3_000_000_000;

/// Counts INVALID verdicts on the way in and out.
#[derive(Default)]
struct Counters {
    input: u32,
    output: u32,
}

impl Counters {
    fn input(&mut self, v: Verdict) -> Verdict {
        if is_invalid(&v) {
            self.input += 1;
        }
        v
    }
    fn output(&mut self, v: Verdict) -> Verdict {
        if is_invalid(&v) {
            self.output += 1;
        }
        v
    }
}

fn syn_opts() -> Vec<u8> {
    // <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 8>
    opts(&[mss(1460), sack_perm(), ts(1, 0), wscale(8)])
}

fn for_families(f: impl Fn(Family)) {
    f(Family::Ipv4);
    f(Family::Ipv6);
}

/// conntrack_rst_invalid.pkt: out-of-window resets are INVALID and the
/// connection stays ESTABLISHED; the exact-sequence RST closes it.
#[test]
fn rst_invalid() {
    for_families(|fam| {
        let mut f = Flow::new(fam);
        let mut n = Counters::default();
        let r = 1u32; // < S. 1:1(0)
        n.output(f.c(SYN, L, 0, 65535, &syn_opts(), 0));
        n.input(f.s(SYN | ACK, r, L + 1, 65535, &mss(1460), 0));
        n.output(f.c(ACK, L + 1, r + 1, 65535, &[], 0));
        for i in 0..3 {
            n.input(f.s(ACK, r + 1 + 1000 * i, L + 1, 65535, &[], 1000));
        }
        for i in 1..=3 {
            n.output(f.c(ACK, L + 1, r + 1000 * i, 65535, &[], 0));
        }
        // out of window
        let v = n.input(f.s(RST, r, 0, 0, &[], 0));
        assert!(is_invalid(&v), "{v:?}");
        assert_eq!(f.state(), Some(TcpState::Established));
        // out of window
        n.input(f.s(RST, r + 1_000_000, 0, 0, &[], 0));
        assert_eq!(f.state(), Some(TcpState::Established));
        // in-window but not exact match
        n.input(f.s(RST, r + 42, 0, 0, &[], 0));
        assert_eq!(f.state(), Some(TcpState::Established));
        assert_ok(&n.output(f.c(PSH | ACK, L + 1, r + 3001, 65535, &[], 1000)));
        assert_eq!(f.state(), Some(TcpState::Established));
        assert_ok(&n.input(f.s(ACK, r + 3001, L + 1001, 65535, &[], 0)));
        n.input(f.s(RST | ACK, r + 3000, L + 1001, 0, &[], 0));
        assert_eq!(f.state(), Some(TcpState::Established));
        // exact next sequence
        assert_ok(&n.input(f.s(RST | ACK, r + 3001, L + 1001, 0, &[], 0)));
        // Expect four invalid RSTs.
        assert_eq!((n.input, n.output), (4, 0));
        assert_eq!(f.state(), Some(TcpState::Close));
    });
}

/// conntrack_inexact_rst.pkt: an RST that does not match the next
/// sequence exactly still closes a connection already in FIN/CLOSE_WAIT,
/// and a spurious RST afterwards is not INVALID.
#[test]
fn inexact_rst() {
    for_families(|fam| {
        let mut f = Flow::new(fam);
        let mut n = Counters::default();
        let r = 1u32;
        n.output(f.c(SYN, L, 0, 65535, &syn_opts(), 0));
        n.input(f.s(SYN | ACK, r, L + 1, 65535, &mss(1460), 0));
        n.output(f.c(ACK, L + 1, r + 1, 65535, &[], 0));
        for i in 0..3 {
            n.input(f.s(ACK, r + 1 + 1000 * i, L + 1, 65535, &[], 1000));
        }
        for i in 1..=3 {
            n.output(f.c(ACK, L + 1, r + 1000 * i, 65535, &[], 0));
        }
        n.output(f.c(PSH | ACK, L + 1, r + 3001, 65535, &[], 1000));
        // Conntrack should move to FIN_WAIT, then CLOSE_WAIT.
        n.input(f.s(FIN | ACK, r + 3001, L + 1001, 65535, &[], 0));
        assert_eq!(f.state(), Some(TcpState::FinWait));
        n.output(f.c(ACK, L + 1001, r + 3002, 65535, &[], 0));
        assert_eq!(f.state(), Some(TcpState::CloseWait));
        // RST: unread data. FIN was seen, hence ack + 1 ... and then CLOSE.
        n.output(f.c(RST | ACK, L + 1001, r + 3002, 65535, &[], 0));
        assert_eq!(f.state(), Some(TcpState::Close));
        // Spurious RST from the peer: not INVALID, conntrack is closing.
        n.input(f.s(RST, r + 2001, 0, 0, &[], 0));
        assert_eq!((n.input, n.output), (0, 0));
    });
}

/// conntrack_syn_challenge_ack.pkt: connection reuse; the peer answers
/// the SYN with a challenge ACK; the RST and the new SYN pass and a new
/// connection is established.
///
/// The script also checks for an UNREPLIED SYN_SENT entry right after the
/// RST. Following the 6.12 source, the ignored challenge ACK sets
/// SEEN_REPLY (`nf_conntrack_in()` sets it for every accepted reply) and
/// the RST moves the entry to CLOSE; the next SYN then reopens it
/// (`-NF_REPEAT`) as an unreplied SYN_SENT entry. We check that state
/// after the SYN.
#[test]
fn syn_challenge_ack() {
    for_families(|fam| {
        let mut f = Flow::new(fam);
        let mut n = Counters::default();
        n.output(f.c(SYN, L, 0, 65535, &syn_opts(), 0));
        // Challenge ACK, old incarnation.
        let ch = opts(&[mss(1460), vec![1, 1], ts(1, 1)[2..].to_vec(), wscale(0)]);
        let v = n.input(f.s(ACK, 145_824_453, L.wrapping_add(643_160_523), 240, &ch, 0));
        assert!(v.ignored.is_some(), "{v:?}");
        n.output(f.c(RST, L.wrapping_add(643_160_523), 0, 0, &[], 0));
        assert_eq!(f.state(), Some(TcpState::Close));
        assert!(f.status().has(Status::SEEN_REPLY));
        // Must go through.
        f.advance(10);
        n.output(f.c(SYN, L, 0, 65535, &syn_opts(), 0));
        assert_eq!(f.state(), Some(TcpState::SynSent));
        assert!(!f.status().has(Status::SEEN_REPLY));
        // Correct SYN/ACK.
        let sa = opts(&[mss(1460), vec![1, 1], ts(1, 1)[2..].to_vec(), wscale(0)]);
        n.input(f.s(SYN | ACK, 0, L + 1, 250, &sa, 0));
        // 3WHS completes.
        n.output(f.c(ACK, L + 1, 1, 256, &ts(1, 1), 0));
        assert_eq!(f.state(), Some(TcpState::Established));
        assert!(f.status().has(Status::ASSURED));
        assert_eq!((n.input, n.output), (0, 0));
    });
}

/// conntrack_synack_old.pkt: a SYN/ACK of an old incarnation is INVALID,
/// the correct SYN/ACK after the SYN retransmission is accepted.
#[test]
fn synack_old() {
    for_families(|fam| {
        let mut f = Flow::new(fam);
        let mut n = Counters::default();
        n.output(f.c(SYN, L, 0, 65535, &syn_opts(), 0));
        // Bogus / outdated SYN/ACK, invalid ack value.
        let old = opts(&[mss(1440), vec![1, 1], ts(1, 1)[2..].to_vec(), wscale(0)]);
        let r = 145_824_453u32;
        let v = n.input(f.s(SYN | ACK, r, L.wrapping_add(643_160_523), 240, &old, 0));
        assert_eq!(
            reason(&v),
            "ACK is over the upper bound (ACKed data not seen yet)"
        );
        // SYN retransmitted.
        f.advance(1000);
        n.output(f.c(
            SYN,
            L,
            0,
            65535,
            &opts(&[mss(1460), sack_perm(), ts(1015, 0), wscale(8)]),
            0,
        ));
        assert_eq!(f.state(), Some(TcpState::SynSent));
        assert!(!f.status().has(Status::SEEN_REPLY));
        // Correct SYN/ACK.
        let good = opts(&[mss(1460), vec![1, 1], ts(1, 1)[2..].to_vec(), wscale(0)]);
        assert_ok(&n.input(f.s(SYN | ACK, 145_758_918, L + 1, 250, &good, 0)));
        assert_eq!(f.state(), Some(TcpState::SynRecv));
        // The kernel's ACK of the SYN/ACK, then the write.
        let ack = r.wrapping_add(4_294_901_762); // = 145758918 + 1
        n.output(f.c(ACK, L + 1, ack, 256, &ts(1033, 1), 0));
        assert_eq!(f.state(), Some(TcpState::Established));
        assert!(f.status().has(Status::ASSURED));
        n.output(f.c(PSH | ACK, L + 1, ack, 256, &ts(1067, 1), 1));
        assert_eq!(f.state(), Some(TcpState::Established));
        // No INVALID in OUTPUT, 1 in INPUT.
        assert_eq!((n.input, n.output), (1, 0));
    });
}

/// conntrack_synack_reuse.pkt: a SYN for an established connection is let
/// through, the challenge ACK passes, the RST clears the state and the
/// SYN retransmission gives a new SYN_RECV connection.
#[test]
fn synack_reuse() {
    for_families(|fam| {
        let mut f = Flow::new(fam);
        let mut n = Counters::default();
        let o = opts(&[mss(1000), wscale(7), ts(1, 0)[2..].to_vec(), vec![1, 1]]);
        n.input(f.c(SYN, 0, 0, 32792, &o, 0));
        n.output(f.s(
            SYN | ACK,
            L,
            1,
            65535,
            &opts(&[mss(1460), ts(100, 1), wscale(8)]),
            0,
        ));
        n.input(f.c(ACK, 1, L + 1, 257, &ts(1, 100), 0));
        n.input(f.c(PSH | ACK, 1, L + 1, 257, &ts(2, 100), 100));
        n.output(f.s(ACK, L + 1, 101, 256, &ts(110, 2), 0));
        assert_eq!(f.state(), Some(TcpState::Established));
        f.advance(1000);
        let o2 = opts(&[mss(1000), wscale(7), ts(233, 0)[2..].to_vec(), vec![1, 1]]);
        let v = n.input(f.c(SYN, 2000, 0, 32792, &o2, 0));
        assert!(v.ignored.is_some(), "{v:?}");
        // The challenge ACK.
        n.output(f.s(ACK, L + 1, 101, 256, &ts(112, 2), 0));
        n.input(f.c(RST | ACK, 101, L + 1, 257, &[], 0));
        assert_eq!(f.state(), Some(TcpState::Close));
        f.advance(500);
        let o3 = opts(&[mss(1000), wscale(0), ts(233, 0)[2..].to_vec(), vec![1, 1]]);
        n.input(f.c(SYN, 2000, 0, 32792, &o3, 0));
        // The kernel answers at once with its SYN/ACK (not INVALID).
        let l2 = L.wrapping_add(77_777);
        let v = n.output(f.s(
            SYN | ACK,
            l2,
            2001,
            65535,
            &opts(&[mss(1460), ts(300, 233), wscale(8)]),
            0,
        ));
        assert_ok(&v);
        assert_eq!(f.state(), Some(TcpState::SynRecv));
        assert_eq!((n.input, n.output), (0, 0));
    });
}

/// conntrack_ack_loss_stall.pkt: a retransmission of already acknowledged
/// data is let through, not tagged INVALID.
#[test]
fn ack_loss_stall() {
    for_families(|fam| {
        let mut f = Flow::new(fam);
        let mut n = Counters::default();
        n.input(f.c(SYN, 0, 0, 32792, &mss(1000), 0));
        n.output(f.s(SYN | ACK, L, 1, 65535, &mss(1460), 0));
        n.input(f.c(ACK, 1, L + 1, 65535, &[], 0));
        for i in 0..46u32 {
            n.input(f.c(PSH | ACK, 1 + 1460 * i, L + 1, 257, &[], 1460));
            n.output(f.s(ACK, L + 1, 1461 + 1460 * i, 65535, &[], 0));
        }
        // "SEQ is under the lower bound (already ACKed data retransmitted)"
        let v = n.input(f.c(PSH | ACK, 1, L + 1, 257, &[], 1460));
        assert_eq!(
            v.ignored.map(|r| r.as_str()),
            Some("SEQ is under the lower bound (already ACKed data retransmitted)")
        );
        // Only sent if the packet above is not INVALID.
        n.output(f.s(ACK, L + 1, 67161, 65535, &[], 0));
        assert_eq!((n.input, n.output), (0, 0));
        assert_eq!(f.state(), Some(TcpState::Established));
    });
}
