//! TCP tracking through the all-in-one path, on literal packets.

mod common;
use common::*;
use conntrack::conn::Config;
use conntrack::proto::tcp::TcpState;
use conntrack::{Class, Direction, Family, IgnoreReason, InvalidReason, Status};

fn handshake(f: &mut Flow, c_isn: u32, s_isn: u32, o: &[u8]) {
    let v = f.c(SYN, c_isn, 0, 65535, o, 0);
    assert_eq!(v.class, Class::New);
    assert_eq!(f.state(), Some(TcpState::SynSent));
    let v = f.s(SYN | ACK, s_isn, c_isn.wrapping_add(1), 65535, o, 0);
    assert_eq!((v.class, v.dir), (Class::Established, Direction::Reply));
    assert_eq!(f.state(), Some(TcpState::SynRecv));
    assert!(f.status().has(Status::SEEN_REPLY));
    assert!(!f.status().has(Status::ASSURED));
    let v = f.c(
        ACK,
        c_isn.wrapping_add(1),
        s_isn.wrapping_add(1),
        512,
        &[],
        0,
    );
    assert_eq!((v.class, v.dir), (Class::Established, Direction::Original));
    assert_eq!(f.state(), Some(TcpState::Established));
    assert!(f.status().has(Status::ASSURED));
}

#[test]
fn full_lifecycle_with_timeouts() {
    for fam in [Family::Ipv4, Family::Ipv6] {
        let mut f = Flow::new(fam);
        let t = Config::default().timeouts.tcp;
        handshake(
            &mut f,
            100,
            9000,
            &opts(&[mss(1460), sack_perm(), wscale(7)]),
        );
        let c = f.conn().unwrap();
        assert_eq!(c.expires_in(f.now), t.established);
        // Data both ways.
        assert_ok(&f.c(PSH | ACK, 101, 9001, 512, &[], 500));
        assert_eq!(f.conn().unwrap().expires_in(f.now), t.unack, "unacked data");
        assert_ok(&f.s(ACK, 9001, 601, 512, &[], 0));
        assert_eq!(f.conn().unwrap().expires_in(f.now), t.established);
        // Client closes: FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT.
        assert_ok(&f.c(FIN | ACK, 601, 9001, 512, &[], 0));
        assert_eq!(f.state(), Some(TcpState::FinWait));
        assert_ok(&f.s(ACK, 9001, 602, 512, &[], 0));
        assert_eq!(f.state(), Some(TcpState::CloseWait));
        assert_eq!(f.conn().unwrap().expires_in(f.now), t.close_wait);
        assert_ok(&f.s(FIN | ACK, 9001, 602, 512, &[], 0));
        assert_eq!(f.state(), Some(TcpState::LastAck));
        assert_eq!(f.conn().unwrap().expires_in(f.now), t.last_ack);
        assert_ok(&f.c(ACK, 602, 9002, 512, &[], 0));
        assert_eq!(f.state(), Some(TcpState::TimeWait));
        assert_eq!(f.conn().unwrap().expires_in(f.now), t.time_wait);
        // Counters.
        let (p, b) = f.conn().unwrap().counters(Direction::Original);
        assert_eq!(p, 5);
        let hdr = if fam == Family::Ipv4 { 40 } else { 60 };
        assert_eq!(b, (5 * hdr + 12 + 500) as u64);
        // A new SYN reopens the connection (RFC 1122): a new entry.
        f.advance(1000);
        let v = f.c(SYN, 50_000, 0, 65535, &[], 0);
        assert_eq!(v.class, Class::New);
        assert_eq!(f.state(), Some(TcpState::SynSent));
        assert_eq!(f.table.iter().count(), 1);
        assert_eq!(f.conn().unwrap().counters(Direction::Original).0, 1);
        // Expiry.
        f.advance(t.syn_sent as u64 + 1);
        assert_eq!(conntrack::Table::expire(&mut f.table, f.now, 10), 1);
        assert!(f.conn().is_none());
    }
}

/// Initial sequence numbers just below the wrap, 1 MiB each way: every
/// packet stays in window and the connection ESTABLISHED.
#[test]
fn one_mib_each_way_across_the_wrap() {
    for fam in [Family::Ipv4, Family::Ipv6] {
        let mut f = Flow::new(fam);
        let isn = 0xFFFF_FF00u32;
        handshake(
            &mut f,
            isn,
            isn,
            &opts(&[mss(1448), sack_perm(), wscale(7)]),
        );
        let total = 1usize << 20;
        let seg = 1448usize;
        let mut c_next = isn.wrapping_add(1);
        let mut s_next = isn.wrapping_add(1);
        let (mut c_sent, mut s_sent) = (0usize, 0usize);
        while c_sent < total || s_sent < total {
            // A flight of up to 40 segments from each side, then ACKs.
            for _ in 0..40 {
                if c_sent >= total {
                    break;
                }
                let n = seg.min(total - c_sent);
                let v = f.c(PSH | ACK, c_next, s_next, 512, &[], n);
                assert_eq!(
                    (v.class, v.ignored),
                    (Class::Established, None),
                    "client {c_sent}"
                );
                c_next = c_next.wrapping_add(n as u32);
                c_sent += n;
            }
            let v = f.s(ACK, s_next, c_next, 512, &[], 0);
            assert_eq!((v.class, v.ignored), (Class::Established, None));
            for _ in 0..40 {
                if s_sent >= total {
                    break;
                }
                let n = seg.min(total - s_sent);
                let v = f.s(PSH | ACK, s_next, c_next, 512, &[], n);
                assert_eq!(
                    (v.class, v.ignored),
                    (Class::Established, None),
                    "server {s_sent}"
                );
                s_next = s_next.wrapping_add(n as u32);
                s_sent += n;
            }
            let v = f.c(ACK, c_next, s_next, 512, &[], 0);
            assert_eq!((v.class, v.ignored), (Class::Established, None));
            assert_eq!(f.state(), Some(TcpState::Established));
        }
        assert!(c_next < isn && s_next < isn, "both sides wrapped");
        let c = f.conn().unwrap();
        assert!(c.counters(Direction::Original).1 > total as u64);
        assert!(c.counters(Direction::Reply).1 > total as u64);
    }
}

#[test]
fn seq_and_ack_bounds() {
    let mut f = Flow::new(Family::Ipv4);
    handshake(&mut f, 1000, 5000, &mss(1460));
    // Data beyond the receiver's window: SEQ over the upper bound.
    let v = f.c(PSH | ACK, 1001 + 200_000, 5001, 512, &[], 100);
    assert_eq!(v.class, Class::Invalid(InvalidReason::TcpSeqOver));
    assert_eq!(
        reason(&v),
        "SEQ is over the upper bound of the window (over the window of the receiver)"
    );
    // ACK of data never sent.
    let v = f.c(ACK, 1001, 5001 + 10_000, 512, &[], 0);
    assert_eq!(v.class, Class::Invalid(InvalidReason::TcpAckOver));
    // ACK far below: ignored, not invalid.
    let v = f.c(ACK, 1001, 5001u32.wrapping_sub(200_000), 512, &[], 0);
    assert_eq!(v.ignored, Some(IgnoreReason::AckUnder));
    assert_eq!(f.state(), Some(TcpState::Established));
    // Liberal mode accepts them.
    f.cfg.tcp_be_liberal = true;
    assert_ok(&f.c(PSH | ACK, 1001 + 200_000, 5001, 512, &[], 100));
}

#[test]
fn window_scaling_needs_both_sides() {
    // Client offers wscale 7, server none: no scaling, so a window of 512
    // allows only 512 bytes.
    let mut f = Flow::new(Family::Ipv4);
    assert_ok(&f.c(SYN, 1, 0, 65535, &wscale(7), 0));
    assert_ok(&f.s(SYN | ACK, 100, 2, 512, &[], 0));
    assert_ok(&f.c(ACK, 2, 101, 512, &[], 0));
    // Server's window is 512 (unscaled). Only the start of a segment is
    // checked (bound I), so a first segment of 2000 bytes passes, but the
    // next one starts beyond the window.
    assert_ok(&f.c(PSH | ACK, 2, 101, 512, &[], 2000));
    let v = f.c(PSH | ACK, 2002, 101, 512, &[], 100);
    assert!(v.ignored.is_some() || is_invalid(&v), "{v:?}");
    // Both sides scaling: 512 << 7 = 64 KiB.
    let mut g = Flow::new(Family::Ipv4);
    assert_ok(&g.c(SYN, 1, 0, 65535, &wscale(7), 0));
    assert_ok(&g.s(SYN | ACK, 100, 2, 512, &wscale(7), 0));
    assert_ok(&g.c(ACK, 2, 101, 512, &[], 0));
    // The window of a SYN is never scaled: the server's first non-SYN
    // segment announces 512 << 7.
    assert_ok(&g.s(ACK, 101, 2, 512, &[], 0));
    let v = g.c(PSH | ACK, 2, 101, 512, &[], 2000);
    assert_eq!((v.class, v.ignored), (Class::Established, None));
    let v = g.c(PSH | ACK, 2002, 101, 512, &[], 100);
    assert_eq!((v.class, v.ignored), (Class::Established, None));
    let v = g.s(ACK, 101, 2102, 512, &[], 0);
    assert_eq!((v.class, v.ignored), (Class::Established, None));
}

#[test]
fn sack_extends_the_ack() {
    let mut f = Flow::new(Family::Ipv4);
    let o = opts(&[sack_perm(), wscale(2)]);
    assert_ok(&f.c(SYN, 1, 0, 65535, &o, 0));
    assert_ok(&f.s(SYN | ACK, 100, 2, 65535, &o, 0));
    assert_ok(&f.c(ACK, 2, 101, 16000, &[], 0));
    // Client sends 3 segments, the first is lost; the server SACKs 2 and 3.
    for i in 0..3u32 {
        assert_ok(&f.c(PSH | ACK, 2 + 1000 * i, 101, 16000, &[], 1000));
    }
    let v = f.s(ACK, 101, 2, 16000, &sack(&[(1002, 3002)]), 0);
    assert_eq!((v.class, v.ignored), (Class::Established, None));
    // A SACK beyond what was sent is an ACK over the upper bound.
    let v = f.s(ACK, 101, 2, 16000, &sack(&[(1002, 9002)]), 0);
    assert_eq!(v.class, Class::Invalid(InvalidReason::TcpAckOver));
}

#[test]
fn simultaneous_open() {
    let mut f = Flow::new(Family::Ipv4);
    assert_ok(&f.c(SYN, 1, 0, 65535, &[], 0));
    assert_ok(&f.s(SYN, 100, 0, 65535, &[], 0));
    assert_eq!(f.state(), Some(TcpState::SynSent2));
    assert_ok(&f.c(SYN | ACK, 1, 101, 65535, &[], 0));
    assert_eq!(f.state(), Some(TcpState::SynRecv));
    assert_ok(&f.s(ACK, 101, 2, 65535, &[], 0));
    assert_eq!(f.state(), Some(TcpState::Established));
}

#[test]
fn loose_pickup_and_strict_mode() {
    // Linux default: pick up midstream, liberal for this connection.
    let mut f = Flow::new(Family::Ipv4);
    let v = f.c(ACK, 5000, 7000, 1000, &[], 100);
    assert_eq!(v.class, Class::New);
    assert_eq!(f.state(), Some(TcpState::Established));
    assert_eq!(
        f.conn().unwrap().expires_in(f.now),
        Config::default().timeouts.tcp.unack
    );
    assert_ok(&f.s(ACK, 7000, 5100, 1000, &[], 0));
    assert!(f.status().has(Status::SEEN_REPLY));
    // As in Linux, ASSURED comes with the next valid packet after the reply.
    assert!(!f.status().has(Status::ASSURED));
    assert_ok(&f.c(ACK, 5100, 7000, 1000, &[], 0));
    assert!(f.status().has(Status::ASSURED));
    // Strict: only a SYN creates a connection.
    let mut g = Flow::new(Family::Ipv4);
    g.cfg.tcp_loose = false;
    let v = g.c(ACK, 5000, 7000, 1000, &[], 100);
    assert_eq!(v.class, Class::Invalid(InvalidReason::TcpNotSyn));
    assert!(g.conn().is_none());
    // A SYN/ACK never creates one.
    let v = g.s(SYN | ACK, 1, 2, 1000, &[], 0);
    assert_eq!(v.class, Class::Invalid(InvalidReason::TcpInvalidNew));
    // Bad flags are INVALID before anything.
    let v = g.c(SYN | FIN, 1, 0, 1000, &[], 0);
    assert_eq!(v.class, Class::Invalid(InvalidReason::TcpFlags));
}

#[test]
fn rst_as_only_reply_deletes_the_entry() {
    let mut f = Flow::new(Family::Ipv4);
    assert_ok(&f.c(SYN, 1, 0, 65535, &[], 0));
    let v = f.s(RST | ACK, 0, 2, 0, &[], 0);
    assert_ok(&v);
    assert!(f.conn().is_none(), "entry killed");
}

#[test]
fn syn_retransmission_does_not_refresh() {
    let mut f = Flow::new(Family::Ipv4);
    assert_ok(&f.c(SYN, 1, 0, 65535, &[], 0));
    f.advance(100_000);
    assert_ok(&f.c(SYN, 1, 0, 65535, &[], 0));
    assert_eq!(f.conn().unwrap().expires_in(f.now), 20_000);
}

#[test]
fn retransmissions_lower_the_timeout() {
    let mut f = Flow::new(Family::Ipv4);
    handshake(&mut f, 1, 100, &[]);
    assert_ok(&f.s(ACK, 101, 2, 512, &[], 0));
    for _ in 0..4 {
        assert_ok(&f.c(PSH | ACK, 2, 101, 512, &[], 10));
    }
    // Same segment again and again: after tcp_max_retrans (3) the
    // RETRANS timeout (300 s) applies instead of 5 days.
    let t = Config::default().timeouts.tcp;
    for _ in 0..4 {
        f.c(ACK, 12, 101, 512, &[], 0);
    }
    assert_eq!(f.conn().unwrap().expires_in(f.now), t.retrans);
}

#[test]
fn timeouts_are_settable() {
    let mut f = Flow::new(Family::Ipv4);
    f.cfg.timeouts.tcp.syn_sent = 5_000;
    assert_ok(&f.c(SYN, 1, 0, 65535, &[], 0));
    assert_eq!(f.conn().unwrap().expires_in(f.now), 5_000);
}

#[test]
fn default_timeouts_are_linux_6_12() {
    let t = Config::default().timeouts;
    let s = 1000;
    assert_eq!(
        [
            t.tcp.syn_sent,
            t.tcp.syn_recv,
            t.tcp.established,
            t.tcp.fin_wait,
            t.tcp.close_wait,
            t.tcp.last_ack,
            t.tcp.time_wait,
            t.tcp.close,
            t.tcp.unack,
            t.tcp.retrans
        ],
        [
            120 * s,
            60 * s,
            5 * 86400 * s,
            120 * s,
            60 * s,
            30 * s,
            120 * s,
            10 * s,
            300 * s,
            300 * s
        ]
    );
    assert_eq!(
        (t.udp_unreplied, t.udp_replied, t.icmp, t.generic),
        (30 * s, 120 * s, 30 * s, 600 * s)
    );
}

#[test]
fn challenge_ack_in_last_ack_is_ignored() {
    let mut f = Flow::new(Family::Ipv4);
    handshake(&mut f, 1, 100, &[]);
    assert_ok(&f.c(FIN | ACK, 2, 101, 512, &[], 0));
    assert_ok(&f.s(FIN | ACK, 101, 3, 512, &[], 0));
    assert_eq!(f.state(), Some(TcpState::LastAck));
    // A new SYN from the client is let through (ignored) ...
    let v = f.c(SYN, 5000, 0, 65535, &[], 0);
    assert_eq!(v.ignored, Some(IgnoreReason::State));
    // ... and the server's challenge ACK must not be taken as the last ACK.
    let v = f.s(ACK, 102, 3, 512, &[], 0);
    assert_eq!(v.ignored, Some(IgnoreReason::ChallengeAck));
    assert_eq!(f.state(), Some(TcpState::LastAck));
}

#[test]
fn ignored_syn_resync() {
    // A SYN in ESTABLISHED (the client restarted) is ignored; the server's
    // SYN/ACK for it resynchronises the tracker.
    let mut f = Flow::new(Family::Ipv4);
    handshake(&mut f, 1, 100, &[]);
    let v = f.c(SYN, 70_000, 0, 65535, &wscale(3), 0);
    assert_eq!(v.ignored, Some(IgnoreReason::State));
    let v = f.s(SYN | ACK, 9_000_000, 70_001, 65535, &wscale(3), 0);
    assert_eq!((v.class, v.ignored), (Class::Established, None));
    assert_eq!(f.state(), Some(TcpState::SynRecv));
    assert_ok(&f.c(ACK, 70_001, 9_000_001, 65535, &[], 0));
    assert_eq!(f.state(), Some(TcpState::Established));
}

#[test]
fn out_of_window_fin_and_rst_from_both_sides_lower_the_timeout() {
    // nf_tcp_handle_invalid(): an assured connection whose both ends send
    // FIN/RST out of window gets the UNACK timeout instead of 5 days.
    let mut f = Flow::new(Family::Ipv4);
    handshake(&mut f, 1, 100, &[]);
    let t = Config::default().timeouts.tcp;
    assert_eq!(f.conn().unwrap().expires_in(f.now), t.established);
    let v = f.c(FIN | ACK, 1 + 500_000, 101, 512, &[], 0);
    assert!(is_invalid(&v));
    assert_eq!(f.conn().unwrap().expires_in(f.now), t.established);
    let v = f.s(RST | ACK, 101 + 500_000, 2, 0, &[], 0);
    assert!(is_invalid(&v));
    assert_eq!(f.conn().unwrap().expires_in(f.now), t.unack);
    assert_eq!(f.state(), Some(TcpState::Established));
}

#[test]
fn keepalive_and_zero_window() {
    let mut f = Flow::new(Family::Ipv4);
    handshake(&mut f, 1000, 5000, &[]);
    assert_ok(&f.s(ACK, 5001, 1001, 512, &[], 0));
    // Keepalive: one byte below the next sequence, no data.
    let v = f.c(ACK, 1000, 5001, 512, &[], 0);
    assert_eq!((v.class, v.ignored), (Class::Established, None));
    assert_ok(&f.s(ACK, 5001, 1001, 512, &[], 0));
    // A zero window: RETRANS timeout (300 s) instead of 5 days.
    assert_ok(&f.s(ACK, 5001, 1001, 0, &[], 0));
    let t = Config::default().timeouts.tcp;
    assert_eq!(f.conn().unwrap().expires_in(f.now), t.retrans);
}

#[test]
fn ipv4_options_do_not_disturb_tracking() {
    // A SYN whose IPv4 header carries options (IHL 6: NOP NOP NOP EOL).
    let mut f = Flow::new(Family::Ipv4);
    let p = tcp(Family::Ipv4, &f.client, &f.server, SYN, 7, 0, 1000, &[], 0);
    let mut q = Vec::new();
    q.push(0x46);
    q.extend_from_slice(&p[1..20]);
    q.extend_from_slice(&[1, 1, 1, 0]);
    q.extend_from_slice(&p[20..]);
    let total = q.len() as u16;
    q[2..4].copy_from_slice(&total.to_be_bytes());
    let v = conntrack::process(&mut f.table, &q, Family::Ipv4, f.now, &f.cfg);
    assert_eq!(v.verdict.class, Class::New);
    assert_eq!(f.state(), Some(TcpState::SynSent));
    let info = conntrack::parse(&q, Family::Ipv4, &f.cfg.parse).unwrap();
    assert_eq!(
        (info.tuple.src_port, info.tuple.dst_port),
        (f.client.port, f.server.port)
    );
}

#[test]
fn rst_train_closes() {
    // foo:80 > bar: P 235946583:235946602(19) ack 42, then R 235946602.
    let mut f = Flow::new(Family::Ipv4);
    handshake(&mut f, 41, 235_946_582, &[]);
    assert_ok(&f.c(ACK, 42, 235_946_583, 512, &[], 0));
    assert_ok(&f.s(PSH | ACK, 235_946_583, 42, 512, &[], 19));
    assert_ok(&f.s(RST, 235_946_602, 0, 0, &[], 0));
    assert_eq!(f.state(), Some(TcpState::Close));
    assert_eq!(
        f.conn().unwrap().expires_in(f.now),
        Config::default().timeouts.tcp.close
    );
}
