//! The TCP tracker: states, the transition table and the window checks.
//!
//! Kernel counterpart: `net/netfilter/nf_conntrack_proto_tcp.c` (Linux
//! 6.12). Names follow the C code (`td_end` is [`TcpPeer::end`], ...), so
//! that a reviewer can compare line by line. Differences:
//! * NAT sequence adjustment (`nf_ct_seq_offset()`) is not applied: rfw's
//!   NAT does not change sequence numbers.
//! * SYN proxy is not supported (its special case in the `sIV` branch is
//!   left out).
//! * Time is the caller's `now` in milliseconds, not jiffies.

use crate::conn::{Config, Status, TcpTimeouts};
use crate::parse::TcpInfo;
use crate::seq::{after, before};
use crate::tuple::{Direction, PerDir};
use crate::verdict::{IgnoreReason, InvalidReason};
use crate::wire::tcp::{Flags, MAX_WSCALE};

/// The TCP connection states of conntrack (`enum tcp_conntrack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum TcpState {
    /// Initial state.
    #[default]
    None = 0,
    /// SYN-only packet seen.
    SynSent = 1,
    /// SYN-ACK packet seen.
    SynRecv = 2,
    /// ACK packet seen.
    Established = 3,
    /// FIN packet seen.
    FinWait = 4,
    /// ACK seen (after FIN).
    CloseWait = 5,
    /// FIN seen (after FIN).
    LastAck = 6,
    /// Last ACK seen.
    TimeWait = 7,
    /// Closed connection (RST).
    Close = 8,
    /// SYN-only packet seen from the reply direction (simultaneous open).
    SynSent2 = 9,
}

impl TcpState {
    /// The name `conntrack -L` prints.
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::SynSent2 => "SYN_SENT2",
        }
    }

    /// All states, in table order.
    pub const ALL: [TcpState; 10] = [
        TcpState::None,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::Established,
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::SynSent2,
    ];

    fn timeout(self, t: &TcpTimeouts) -> u32 {
        match self {
            TcpState::None => t.close,
            TcpState::SynSent => t.syn_sent,
            TcpState::SynRecv => t.syn_recv,
            TcpState::Established => t.established,
            TcpState::FinWait => t.fin_wait,
            TcpState::CloseWait => t.close_wait,
            TcpState::LastAck => t.last_ack,
            TcpState::TimeWait => t.time_wait,
            TcpState::Close => t.close,
            TcpState::SynSent2 => t.syn_sent2,
        }
    }
}

/// What the transition table says for a (direction, flags, state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Go to this state (after the window check).
    To(TcpState),
    /// `sIV`: the packet is invalid.
    Invalid,
    /// `sIG`: let the packet through without tracking it.
    Ignore,
}

/// Which of RST/SYN/FIN/ACK decides the table row (`enum tcp_bit_set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlagIndex {
    /// SYN without ACK.
    Syn = 0,
    /// SYN with ACK.
    SynAck = 1,
    /// FIN (without SYN or RST).
    Fin = 2,
    /// ACK only.
    Ack = 3,
    /// RST.
    Rst = 4,
    /// None of them.
    None = 5,
}

impl FlagIndex {
    /// `get_conntrack_index()`.
    pub const fn of(f: Flags) -> FlagIndex {
        if f.rst() {
            FlagIndex::Rst
        } else if f.syn() {
            if f.ack() {
                FlagIndex::SynAck
            } else {
                FlagIndex::Syn
            }
        } else if f.fin() {
            FlagIndex::Fin
        } else if f.ack() {
            FlagIndex::Ack
        } else {
            FlagIndex::None
        }
    }
}

use TcpState as S;
const NO: Transition = Transition::To(S::None);
const SS: Transition = Transition::To(S::SynSent);
const SR: Transition = Transition::To(S::SynRecv);
const ES: Transition = Transition::To(S::Established);
const FW: Transition = Transition::To(S::FinWait);
const CW: Transition = Transition::To(S::CloseWait);
const LA: Transition = Transition::To(S::LastAck);
const TW: Transition = Transition::To(S::TimeWait);
const CL: Transition = Transition::To(S::Close);
const S2: Transition = Transition::To(S::SynSent2);
const IV: Transition = Transition::Invalid;
const IG: Transition = Transition::Ignore;

/// `tcp_conntracks[dir][index][state]`, with the kernel's comment for
/// every row. Columns: sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2.
#[rustfmt::skip]
pub const TABLE: [[[Transition; 10]; 6]; 2] = [
    // ORIGINAL
    [
        // syn: sNO->sSS initialise a new connection; sSS->sSS retransmitted
        // SYN; sS2->sS2 late retransmitted SYN; sSR, sES, sFW, sCW, sLA ->
        // sIG: SYNs in window outside SYN_SENT are errors, the receiver
        // will answer with RST (or we hold a dead connection); sTW, sCL ->
        // sSS: reopened connection (RFC 1122).
        [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        // synack: sNO->sIV too late, nothing to do; sSS->sIV the client
        // cannot send SYN then SYN/ACK; sS2->sSR SYN/ACK sent to SYN2 in
        // simultaneous open; sSR->sSR late retransmitted SYN/ACK in
        // simultaneous open; sES..sCL -> sIV invalid SYN/ACKs from the
        // client.
        [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        // fin: sNO->sIV too late; sSS->sIV the client might not send FIN
        // here, we wait for the SYN/ACK; sS2->sIV; sSR, sES -> sFW close
        // started; sFW, sCW -> sLA FIN seen both ways, waiting for the last
        // ACK (or a retransmitted FIN); sLA->sLA retransmitted FIN; sTW->sTW;
        // sCL->sCL.
        [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // ack: sNO->sES assumed (picked up midstream); sSS->sIV no SYN/ACK
        // seen yet; sS2->sIV; sSR->sES established; sES->sES; sFW->sCW
        // close answered by ACK; sCW->sCW; sLA->sTW last ACK (RFC 5961
        // challenged); sTW->sTW retransmitted last ACK; sCL->sCL.
        [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        // rst: sNO->sIV; any other state -> sCL.
        [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // none: no RST/SYN/FIN/ACK: always invalid.
        [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
    // REPLY
    [
        // syn: sNO->sIV never reached; sSS->sS2 simultaneous open; sS2->sS2
        // retransmitted simultaneous SYN; sSR..sLA -> sIV invalid SYNs from
        // the server; sTW->sSS reopened connection, the server may have
        // switched role; sCL->sIV.
        [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        // synack: sSS->sSR standard open; sS2->sSR simultaneous open;
        // sSR->sIG retransmitted SYN/ACK; sES->sIG late retransmitted
        // SYN/ACK?; sFW..sCL -> sIG might answer an ignored SYN.
        [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        // fin: sSS->sIV the server might not send FIN here; sS2->sIV;
        // sSR, sES -> sFW close started; sFW, sCW -> sLA FIN seen both
        // ways; sLA->sLA retransmitted FIN; sTW->sTW; sCL->sCL.
        [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // ack: sSS->sIG might be a half-open connection; sS2->sIG;
        // sSR->sSR might answer a late resent SYN; sES->sES; sFW->sCW close
        // answered; sCW->sCW; sLA->sTW last ACK (RFC 5961 challenged);
        // sTW->sTW retransmitted last ACK; sCL->sCL.
        [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        // rst: sNO->sIV; any other state -> sCL.
        [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // none.
        [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
];

// Silence "unused" for NO: the table has no transition *to* NONE, but the
// constant keeps the column header readable.
const _: Transition = NO;

/// Looks up the transition table.
pub fn transition(dir: Direction, index: FlagIndex, state: TcpState) -> Transition {
    TABLE
        .get(dir.index())
        .and_then(|d| d.get(index as usize))
        .and_then(|r| r.get(state as usize))
        .copied()
        .unwrap_or(Transition::Invalid)
}

// Per-direction flags (IP_CT_TCP_FLAG_*).
/// The peer sent the window scale option.
pub const FLAG_WINDOW_SCALE: u8 = 0x01;
/// The peer sent SACK-permitted.
pub const FLAG_SACK_PERM: u8 = 0x02;
/// This direction sent the first FIN.
pub const FLAG_CLOSE_INIT: u8 = 0x04;
/// Be liberal in window checks for this direction.
pub const FLAG_BE_LIBERAL: u8 = 0x08;
/// This direction has unacknowledged data.
pub const FLAG_DATA_UNACKNOWLEDGED: u8 = 0x10;
/// `maxack` holds a value.
pub const FLAG_MAXACK_SET: u8 = 0x20;
// Connection flags kept in `last_flags`.
/// An RFC 5961 challenge ACK may come (`IP_CT_EXP_CHALLENGE_ACK`).
pub const FLAG_EXP_CHALLENGE_ACK: u8 = 0x40;
/// Simultaneous open seen (`IP_CT_TCP_SIMULTANEOUS_OPEN`).
pub const FLAG_SIMULTANEOUS_OPEN: u8 = 0x80;

/// `MAXACKWINCONST`.
const MAX_ACK_WIN_CONST: u32 = 66000;

/// The window data of one direction (`struct ip_ct_tcp_state`, without the
/// scale and flags, which [`Tcp`] keeps apart to save padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpPeer {
    /// `td_end`: max of seq + len.
    pub end: u32,
    /// `td_maxend`: max of ack + max(win, 1).
    pub maxend: u32,
    /// `td_maxwin`: max(win).
    pub maxwin: u32,
    /// `td_maxack`: max of ack.
    pub maxack: u32,
}

/// The TCP part of a connection (`struct ip_ct_tcp`): 52 bytes.
///
/// The annotation of the last packet (Linux's `last_dir`, `last_index`,
/// `last_wscale`, `last_end`) is packed: the end is kept as its distance
/// from [`Tcp::last_seq`] (16 bits: an IP packet's length is 16 bits, so
/// `payload + SYN + FIN` of any parsed segment fits), the direction, flag
/// index and window scale share one byte. Read them with
/// [`Tcp::last_dir`], [`Tcp::last_index`], [`Tcp::last_wscale`] and
/// [`Tcp::last_end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tcp {
    /// Window data per direction.
    pub seen: PerDir<TcpPeer>,
    /// `td_scale` per direction.
    pub scale: PerDir<u8>,
    /// `flags` per direction (`FLAG_*`).
    pub flags: PerDir<u8>,
    /// Sequence number of the last packet (for retransmission detection).
    pub last_seq: u32,
    /// Ack of the last packet.
    pub last_ack: u32,
    /// Window of the last packet (raw).
    pub last_win: u16,
    /// `last_end - last_seq` (saturated at `u16::MAX`).
    last_len: u16,
    /// The state.
    pub state: TcpState,
    /// Bits 0-2: flag index, bit 3: direction, bits 4-7: window scale of
    /// the annotated ignored SYN.
    last: u8,
    /// Number of retransmissions seen (saturating).
    pub retrans: u8,
    /// Connection flags (`FLAG_*`, for the annotated ignored SYN).
    pub last_flags: u8,
}

const LAST_INDEX_MASK: u8 = 0x07;
const LAST_DIR_BIT: u8 = 0x08;
const LAST_WSCALE_SHIFT: u32 = 4;

/// `tcp_error()`'s flag check: is this combination valid?
pub const fn valid_flags(f: Flags) -> bool {
    let t = f.0 & !(Flags::ECE | Flags::CWR | Flags::PSH);
    const SYN: u8 = Flags::SYN;
    const ACK: u8 = Flags::ACK;
    const RST: u8 = Flags::RST;
    const FIN: u8 = Flags::FIN;
    const URG: u8 = Flags::URG;
    matches!(t, x if x == SYN
        || x == SYN | URG
        || x == SYN | ACK
        || x == RST
        || x == RST | ACK
        || x == FIN | ACK
        || x == FIN | ACK | URG
        || x == ACK
        || x == ACK | URG)
}

/// Result of the TCP tracker for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Accepted: refresh the timeout to this many ms; `kill` deletes the
    /// connection after accepting (an RST as the only reply).
    Accept {
        timeout: Option<u32>,
        assure: bool,
        kill: bool,
    },
    /// Let through without tracking.
    Ignore(IgnoreReason),
    /// Invalid; `lower_timeout` is set when the timeout must be shortened
    /// to the UNACK timeout (`nf_tcp_handle_invalid()`).
    Invalid {
        reason: InvalidReason,
        lower_timeout: Option<u32>,
    },
    /// A SYN reopening a closed connection: delete it and look up again.
    Repeat,
}

fn apply_options(info: &TcpInfo, scale: &mut u8, flags: &mut u8) {
    // tcp_options(): nothing happens without options.
    if !info.has_options {
        return;
    }
    *scale = 0;
    *flags &= FLAG_BE_LIBERAL;
    if info.options.sack_permitted {
        *flags |= FLAG_SACK_PERM;
    }
    if let Some(ws) = info.options.wscale {
        *scale = ws;
        *flags |= FLAG_WINDOW_SCALE;
    }
}

impl Tcp {
    /// Direction of the last packet (0 original, 1 reply).
    #[inline]
    pub const fn last_dir(&self) -> u8 {
        (self.last & LAST_DIR_BIT != 0) as u8
    }

    /// [`FlagIndex`] of the last packet, as a number.
    #[inline]
    pub const fn last_index(&self) -> u8 {
        self.last & LAST_INDEX_MASK
    }

    /// Window scale of the annotated ignored SYN.
    #[inline]
    pub const fn last_wscale(&self) -> u8 {
        self.last >> LAST_WSCALE_SHIFT
    }

    /// End (`seq + len + SYN + FIN`) of the last packet.
    #[inline]
    pub const fn last_end(&self) -> u32 {
        self.last_seq.wrapping_add(self.last_len as u32)
    }

    fn set_last_dir(&mut self, d: u8) {
        self.last = (self.last & !LAST_DIR_BIT) | if d & 1 != 0 { LAST_DIR_BIT } else { 0 };
    }

    fn set_last_index(&mut self, index: FlagIndex) {
        self.last = (self.last & !LAST_INDEX_MASK) | (index as u8 & LAST_INDEX_MASK);
    }

    /// Window scales are at most [`MAX_WSCALE`] (14): 4 bits.
    fn set_last_wscale(&mut self, ws: u8) {
        let ws = if ws > MAX_WSCALE { MAX_WSCALE } else { ws };
        self.last = (self.last & !(0x0f << LAST_WSCALE_SHIFT)) | (ws << LAST_WSCALE_SHIFT);
    }

    /// Sets [`Tcp::last_seq`] and [`Tcp::last_end`].
    fn set_last_segment(&mut self, seq: u32, end: u32) {
        self.last_seq = seq;
        self.last_len = u16::try_from(end.wrapping_sub(seq)).unwrap_or(u16::MAX);
    }

    /// `tcp_new()`: the TCP part of a connection created by its first
    /// packet, or why that packet may not create one.
    pub fn new(info: &TcpInfo, cfg: &Config) -> Result<Tcp, InvalidReason> {
        let index = FlagIndex::of(info.flags);
        let mut t = Tcp::default();
        t.set_last_index(FlagIndex::None);
        match transition(Direction::Original, index, TcpState::None) {
            Transition::To(TcpState::SynSent) => {
                let end = info.end();
                t.seen[Direction::Original].end = end;
                t.seen[Direction::Original].maxwin = (info.window as u32).max(1);
                t.seen[Direction::Original].maxend = end;
                apply_options(
                    info,
                    &mut t.scale[Direction::Original],
                    &mut t.flags[Direction::Original],
                );
            }
            Transition::To(_) => {
                if !cfg.tcp_loose {
                    return Err(InvalidReason::TcpNotSyn);
                }
                // Midstream pickup: the history is lost, use the packet.
                let end = info.end();
                let maxwin = (info.window as u32).max(1);
                t.seen[Direction::Original].end = end;
                t.seen[Direction::Original].maxwin = maxwin;
                t.seen[Direction::Original].maxend = end.wrapping_add(maxwin);
                // We assume SACK and liberal window checking to handle
                // window scaling.
                t.flags = PerDir([FLAG_SACK_PERM | FLAG_BE_LIBERAL; 2]);
            }
            Transition::Invalid | Transition::Ignore => return Err(InvalidReason::TcpInvalidNew),
        }
        Ok(t)
    }

    /// `nf_conntrack_tcp_established()`.
    fn established(&self, status: Status) -> bool {
        self.state == TcpState::Established && status.has(Status::ASSURED)
    }

    /// True when the connection may go to a fast path
    /// (`nft_flow_offload_eval`: TCP in ESTABLISHED only).
    pub fn can_offload(&self) -> bool {
        self.state == TcpState::Established
    }

    /// Window checks of both directions become liberal
    /// (`flow_offload_fixup_tcp`): once a fast path forwarded segments
    /// this tracker never saw, its window data is stale, and the segments
    /// the normal path sees again must not be judged by it.
    pub fn set_liberal(&mut self) {
        for f in self.flags.0.iter_mut() {
            *f |= FLAG_BE_LIBERAL;
        }
    }

    /// `tcp_can_early_drop()`: states in which a connection is about to end.
    pub fn can_early_drop(&self) -> bool {
        matches!(
            self.state,
            TcpState::FinWait
                | TcpState::LastAck
                | TcpState::TimeWait
                | TcpState::Close
                | TcpState::CloseWait
        )
    }

    /// `nf_conntrack_tcp_packet()` for a packet of a known connection.
    /// `expires_in` is the time left before the connection expires.
    pub(crate) fn packet(
        &mut self,
        info: &TcpInfo,
        dir: Direction,
        status: Status,
        expires_in: u32,
        cfg: &Config,
    ) -> Outcome {
        let d = dir as u8;
        let odir = dir.opposite();
        let mut old_state = self.state;
        let index = FlagIndex::of(info.flags);
        let trans = transition(dir, index, old_state);
        let mut new_state = match trans {
            Transition::To(s) => s,
            Transition::Ignore => old_state,
            Transition::Invalid => {
                return Outcome::Invalid {
                    reason: InvalidReason::TcpState,
                    lower_timeout: None,
                }
            }
        };
        let mut ignored = trans == Transition::Ignore;
        if new_state == TcpState::SynSent && old_state >= TcpState::TimeWait {
            // RFC 1122: a SYN may reopen a connection in TIME_WAIT. Also
            // handles aborted connections: we and the server think there is
            // a connection but the client aborted it and starts anew.
            let either = self.flags[dir] | self.flags[odir];
            if either & FLAG_CLOSE_INIT != 0
                || (self.last_dir() == d && self.last_index() == FlagIndex::Rst as u8)
            {
                return Outcome::Repeat;
            }
            ignored = true;
        }
        let mut skip_window = false;
        if ignored {
            if self.resync(info, dir, index) {
                old_state = TcpState::SynSent;
                new_state = TcpState::SynRecv;
            } else {
                return self.annotate_ignored(info, dir, index, old_state);
            }
        } else {
            match new_state {
                TcpState::TimeWait => {
                    // RFC 5961 challenge ACK answering a spurious SYN: it
                    // must not be taken as the ACK of the last FIN.
                    if old_state == TcpState::LastAck
                        && index == FlagIndex::Ack
                        && self.last_dir() != d
                        && self.last_index() == FlagIndex::Syn as u8
                        && self.last_flags & FLAG_EXP_CHALLENGE_ACK != 0
                    {
                        self.last_flags &= !FLAG_EXP_CHALLENGE_ACK;
                        return Outcome::Ignore(IgnoreReason::ChallengeAck);
                    }
                }
                TcpState::SynSent2 => {
                    // The table is not smart enough for simultaneous open.
                    self.last_flags |= FLAG_SIMULTANEOUS_OPEN;
                }
                TcpState::SynRecv => {
                    if dir == Direction::Reply
                        && index == FlagIndex::Ack
                        && self.last_flags & FLAG_SIMULTANEOUS_OPEN != 0
                    {
                        new_state = TcpState::Established;
                    }
                }
                TcpState::Close if index == FlagIndex::Rst => {
                    match self.rst_check(info, dir, status, old_state, cfg) {
                        RstCheck::Invalid => {
                            return Outcome::Invalid {
                                reason: InvalidReason::TcpRstBelowAck,
                                lower_timeout: None,
                            }
                        }
                        RstCheck::Window { keep_state, skip } => {
                            if keep_state {
                                new_state = old_state;
                            }
                            skip_window = skip;
                        }
                    }
                }
                _ => {}
            }
        }
        if !skip_window {
            match self.in_window(info, dir, index, cfg) {
                Window::Accept => {}
                Window::Ignore(r) => return Outcome::Ignore(r),
                Window::Invalid(reason) => {
                    let lower_timeout = self.handle_invalid(dir, index, status, expires_in, cfg);
                    return Outcome::Invalid {
                        reason,
                        lower_timeout,
                    };
                }
            }
        }
        self.accept(info, dir, index, old_state, new_state, status, cfg)
    }

    /// The SYN/ACK that answers a SYN we let through unannotated (case b
    /// of the `TCP_CONNTRACK_IGNORE` branch): client and server are in
    /// sync, the firewall is not. Returns true after getting in sync from
    /// the annotated values.
    fn resync(&mut self, info: &TcpInfo, dir: Direction, index: FlagIndex) -> bool {
        let d = dir as u8;
        if !(index == FlagIndex::SynAck
            && self.last_index() == FlagIndex::Syn as u8
            && self.last_dir() != d
            && info.ack == self.last_end())
        {
            return false;
        }
        let ld = Direction::from_bits(self.last_dir());
        let (last_end, last_win) = (self.last_end(), self.last_win);
        self.seen[ld].end = last_end;
        self.seen[ld].maxend = last_end;
        self.seen[ld].maxwin = (last_win as u32).max(1);
        self.scale[ld] = self.last_wscale();
        self.last_flags &= !FLAG_EXP_CHALLENGE_ACK;
        self.flags[ld] = self.last_flags;
        // nf_ct_tcp_state_reset(&seen[dir])
        self.seen[dir] = TcpPeer::default();
        self.scale[dir] = 0;
        self.flags[dir] &= FLAG_BE_LIBERAL;
        true
    }

    /// The rest of the `TCP_CONNTRACK_IGNORE` branch: annotate the packet
    /// and let it through untracked.
    fn annotate_ignored(
        &mut self,
        info: &TcpInfo,
        dir: Direction,
        index: FlagIndex,
        old_state: TcpState,
    ) -> Outcome {
        self.set_last_index(index);
        self.set_last_dir(dir.index() as u8);
        self.set_last_segment(info.seq, info.end());
        self.last_win = info.window;
        // a) A SYN in ORIGINAL: annotate its options. If it is valid the
        // server answers with a SYN/ACK and we get in sync (resync);
        // otherwise it may answer with an RFC 5961 challenge ACK.
        if index == FlagIndex::Syn && dir == Direction::Original {
            self.last_flags = 0;
            self.set_last_wscale(0);
            if info.has_options {
                if let Some(ws) = info.options.wscale {
                    self.last_flags |= FLAG_WINDOW_SCALE;
                    self.set_last_wscale(ws);
                }
                if info.options.sack_permitted {
                    self.last_flags |= FLAG_SACK_PERM;
                }
            }
            // A challenge ACK is a problem in LAST_ACK: it would be taken
            // as the ACK of the last FIN.
            if old_state == TcpState::LastAck {
                self.last_flags |= FLAG_EXP_CHALLENGE_ACK;
            }
        }
        // c) A possible challenge ACK answering a SYN.
        if old_state == TcpState::SynSent && index == FlagIndex::Ack && dir == Direction::Reply {
            self.last_ack = info.ack;
        }
        Outcome::Ignore(IgnoreReason::State)
    }

    /// The checks of an RST in the `TCP_CONNTRACK_CLOSE` case.
    fn rst_check(
        &self,
        info: &TcpInfo,
        dir: Direction,
        status: Status,
        old_state: TcpState,
        cfg: &Config,
    ) -> RstCheck {
        let d = dir as u8;
        let odir = dir.opposite();
        // If we are closing, the tuple may have been reused already: the
        // fields used for validation are outdated. Skip the checks.
        if self.can_early_drop() {
            return RstCheck::Window {
                keep_state: false,
                skip: true,
            };
        }
        let mut keep_state = false;
        // td_maxack might be outdated if we let a SYN through earlier.
        if self.flags[odir] & FLAG_MAXACK_SET != 0 && self.last_index() != FlagIndex::Syn as u8 {
            let seq = info.seq;
            let maxack = self.seen[odir].maxack;
            // Not established and SEQ 0: most likely the answer to a SYN
            // we let through (last_index can move with out-of-order ACKs).
            if seq == 0 && !self.established(status) {
                return RstCheck::CHECK;
            }
            if before(seq, maxack) && !cfg.tcp_ignore_invalid_rst {
                return RstCheck::Invalid;
            }
            if !self.established(status) || seq == maxack {
                return RstCheck::CHECK;
            }
            // Part of a train, such as
            //   foo:80 > bar:4379: P, 235946583:235946602(19) ack 42
            //   foo:80 > bar:4379: R, 235946602:235946602(0)  ack 42
            if self.last_index() == FlagIndex::Ack as u8
                && self.last_dir() == d
                && seq == self.last_end()
            {
                return RstCheck::CHECK;
            }
            // The RST sequence does not match exactly: keep the state to
            // allow a possible challenge ACK.
            keep_state = true;
        }
        if ((status.has(Status::SEEN_REPLY)
            && self.last_index() == FlagIndex::Syn as u8
            && self.last_dir() != d)
            || (!status.has(Status::ASSURED) && self.last_index() == FlagIndex::Ack as u8))
            && info.ack == self.last_end()
        {
            // RST sent to an invalid SYN or ACK we let through (a and c):
            // skip the window check, the packet may ACK ignored segments.
            return RstCheck::Window {
                keep_state,
                skip: true,
            };
        }
        // Reset answering a challenge ACK we let through earlier.
        if old_state == TcpState::SynSent
            && self.last_index() == FlagIndex::Ack as u8
            && self.last_dir() == Direction::Reply as u8
            && info.seq == self.last_ack
        {
            return RstCheck::Window {
                keep_state,
                skip: true,
            };
        }
        RstCheck::Window {
            keep_state,
            skip: false,
        }
    }

    /// `tcp_in_window()`.
    fn in_window(
        &mut self,
        info: &TcpInfo,
        dir: Direction,
        index: FlagIndex,
        cfg: &Config,
    ) -> Window {
        let d = dir as u8;
        let odir = dir.opposite();
        let flags = info.flags;
        let mut seq = info.seq;
        let mut ack = info.ack;
        let mut sack = ack;
        let win_raw = info.window;
        let mut win = win_raw as u32;
        let mut end = info.end();
        let liberal = cfg.tcp_be_liberal || self.flags[dir] & FLAG_BE_LIBERAL != 0;

        if self.flags[odir] & FLAG_SACK_PERM != 0 {
            // tcp_sack(): the highest right edge beyond the ACK.
            if let Some(r) = info.options.sack_right_edge {
                if after(r, sack) {
                    sack = r;
                }
            }
        }

        if self.seen[dir].maxwin == 0 {
            // Initialise sender data.
            if flags.syn() {
                self.init_sender(info, dir, end, win);
                if !flags.ack() {
                    // Simultaneous open.
                    return Window::Accept;
                }
            } else {
                // In the middle of a connection, its history lost for us:
                // use the data from the packet.
                self.seen[dir].end = end;
                let swin = win.checked_shl(self.scale[dir] as u32).unwrap_or(0);
                self.seen[dir].maxwin = swin.max(1);
                self.seen[dir].maxend = end.wrapping_add(self.seen[dir].maxwin);
                if self.seen[odir].maxwin == 0 {
                    // No traffic the other way yet: tweak the tracking to
                    // pass III and IV until that happens.
                    self.seen[odir].end = sack;
                    self.seen[odir].maxend = sack;
                } else if sack == self.seen[odir].end.wrapping_add(1) {
                    // Likely a reply to a keepalive. Needed for III.
                    self.seen[odir].end = self.seen[odir].end.wrapping_add(1);
                }
            }
        } else if flags.syn()
            && after(end, self.seen[dir].end)
            && matches!(self.state, TcpState::SynSent | TcpState::SynRecv)
        {
            // RFC 793: "if a TCP is reinitialized ... then it need not wait
            // at all; it must only be sure to use sequence numbers larger
            // than those recently used." Re-init this direction.
            self.init_sender(info, dir, end, win);
            if dir == Direction::Reply && !flags.ack() {
                return Window::Accept;
            }
        }

        if !flags.ack() {
            // No ACK: pretend it was set and OK.
            ack = self.seen[odir].end;
            sack = ack;
        } else if flags.rst() && ack == 0 {
            // Broken stacks that set ACK in RST packets with a zero ack.
            ack = self.seen[odir].end;
            sack = ack;
        }

        if flags.rst() && seq == 0 && self.state == TcpState::SynSent {
            // RST answering a SYN.
            seq = self.seen[dir].end;
            end = seq;
        }

        let sender = self.seen[dir];
        let receiver = self.seen[odir];
        let max_ack_window = sender.maxwin.max(MAX_ACK_WIN_CONST);

        // I. Upper bound for valid data: seq <= sender.td_maxend
        let seq_ok = before(seq, sender.maxend.wrapping_add(1));
        if !seq_ok {
            let overshot = end.wrapping_sub(sender.maxend).wrapping_add(1);
            let ack_ok = after(
                sack,
                receiver.end.wrapping_sub(max_ack_window).wrapping_sub(1),
            );
            let in_recv_win = receiver.maxwin != 0
                && after(
                    end,
                    sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
                );
            if in_recv_win
                && ack_ok
                && overshot <= receiver.maxwin
                && before(sack, receiver.end.wrapping_add(1))
            {
                // Work around stacks that send more than the receive window
                // allows: update td_end so that an ACK for this data can
                // update the state, and let the packet through untracked.
                self.seen[dir].end = end;
                self.flags[dir] |= FLAG_DATA_UNACKNOWLEDGED;
                return store_invalid(liberal, Window::Ignore(IgnoreReason::Overshot));
            }
            return store_invalid(liberal, Window::Invalid(InvalidReason::TcpSeqOver));
        }

        // III. Upper bound for valid (s)ack: sack <= receiver.td_end
        if !before(sack, receiver.end.wrapping_add(1)) {
            return store_invalid(liberal, Window::Invalid(InvalidReason::TcpAckOver));
        }

        // II. Lower bound for valid data: seq + len >= sender.td_end -
        // receiver.td_maxwin (is the end in the receive window?)
        let in_recv_win = receiver.maxwin == 0
            || after(
                end,
                sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
            );
        if !in_recv_win {
            return store_invalid(liberal, Window::Ignore(IgnoreReason::SeqUnder));
        }
        // IV. Lower bound for valid (s)ack.
        if !after(
            sack,
            receiver.end.wrapping_sub(max_ack_window).wrapping_sub(1),
        ) {
            return store_invalid(liberal, Window::Ignore(IgnoreReason::AckUnder));
        }

        // Window scaling (RFC 1323).
        if !flags.syn() {
            win = win.checked_shl(self.scale[dir] as u32).unwrap_or(0);
        }

        // Update sender data.
        let swin = win.wrapping_add(sack.wrapping_sub(ack));
        if self.seen[dir].maxwin < swin {
            self.seen[dir].maxwin = swin;
        }
        if after(end, self.seen[dir].end) {
            self.seen[dir].end = end;
            self.flags[dir] |= FLAG_DATA_UNACKNOWLEDGED;
        }
        if flags.ack() {
            if self.flags[dir] & FLAG_MAXACK_SET == 0 {
                self.seen[dir].maxack = ack;
                self.flags[dir] |= FLAG_MAXACK_SET;
            } else if after(ack, self.seen[dir].maxack) {
                self.seen[dir].maxack = ack;
            }
        }

        // Update receiver data.
        let sender_maxend = self.seen[dir].maxend;
        if self.seen[odir].maxwin != 0 && after(end, sender_maxend) {
            self.seen[odir].maxwin = self.seen[odir]
                .maxwin
                .wrapping_add(end.wrapping_sub(sender_maxend));
        }
        let sack_win = sack.wrapping_add(win);
        if after(sack_win, self.seen[odir].maxend.wrapping_sub(1)) {
            self.seen[odir].maxend = sack_win;
            if win == 0 {
                self.seen[odir].maxend = self.seen[odir].maxend.wrapping_add(1);
            }
        }
        if ack == self.seen[odir].end {
            self.flags[odir] &= !FLAG_DATA_UNACKNOWLEDGED;
        }

        // Check retransmissions.
        if index == FlagIndex::Ack {
            if self.last_dir() == d
                && self.last_seq == seq
                && self.last_ack == ack
                && self.last_end() == end
                && self.last_win == win_raw
            {
                self.retrans = self.retrans.saturating_add(1);
            } else {
                self.set_last_dir(d);
                self.set_last_segment(seq, end);
                self.last_ack = ack;
                self.last_win = win_raw;
                self.retrans = 0;
            }
        }
        Window::Accept
    }

    /// `tcp_init_sender()`: a SYN/ACK answering a SYN, or a SYN from the
    /// reply direction in simultaneous open.
    fn init_sender(&mut self, info: &TcpInfo, dir: Direction, end: u32, win: u32) {
        let odir = dir.opposite();
        self.seen[dir].end = end;
        self.seen[dir].maxend = end;
        self.seen[dir].maxwin = win.max(1);
        let (mut scale, mut flags) = (self.scale[dir], self.flags[dir]);
        apply_options(info, &mut scale, &mut flags);
        self.scale[dir] = scale;
        self.flags[dir] = flags;
        // RFC 1323: both sides must send the window scale option to enable
        // scaling in either direction.
        if dir == Direction::Reply
            && !(self.flags[dir] & FLAG_WINDOW_SCALE != 0
                && self.flags[odir] & FLAG_WINDOW_SCALE != 0)
        {
            self.scale[dir] = 0;
            self.scale[odir] = 0;
        }
    }

    /// `nf_tcp_handle_invalid()`: shrink the timeout of an assured
    /// connection when both ends sent out-of-window FIN/RST, so that a
    /// connection whose ends and conntrack are out of sync does not linger
    /// for days.
    fn handle_invalid(
        &mut self,
        dir: Direction,
        index: FlagIndex,
        status: Status,
        expires_in: u32,
        cfg: &Config,
    ) -> Option<u32> {
        if !status.has(Status::ASSURED) || status.has(Status::FIXED_TIMEOUT) {
            return None;
        }
        if !matches!(index, FlagIndex::Rst | FlagIndex::Fin) {
            return None;
        }
        let d = dir as u8;
        if self.last_dir() != d
            && (self.last_index() == FlagIndex::Fin as u8
                || self.last_index() == FlagIndex::Rst as u8)
        {
            if expires_in < 120_000 {
                return None;
            }
            let timeout = cfg.timeouts.tcp.unack;
            if expires_in > timeout {
                return Some(timeout);
            }
        } else {
            self.set_last_index(index);
            self.set_last_dir(d);
        }
        None
    }

    /// After an in-window packet: the state change and the timeout.
    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        info: &TcpInfo,
        dir: Direction,
        index: FlagIndex,
        old_state: TcpState,
        new_state: TcpState,
        status: Status,
        cfg: &Config,
    ) -> Outcome {
        let d = dir as u8;
        self.set_last_index(index);
        self.set_last_dir(d);
        self.state = new_state;
        if old_state != new_state && new_state == TcpState::FinWait {
            self.flags[dir] |= FLAG_CLOSE_INIT;
        }
        let t = &cfg.timeouts.tcp;
        let state_timeout = new_state.timeout(t);
        let mut timeout = if self.retrans >= cfg.tcp_max_retrans && state_timeout > t.retrans {
            t.retrans
        } else if state_timeout > t.unack
            && ((index == FlagIndex::Rst && new_state == TcpState::Established)
                || (self.flags.0[0] | self.flags.0[1]) & FLAG_DATA_UNACKNOWLEDGED != 0)
        {
            // An RST that keeps ESTABLISHED, or data not acknowledged yet.
            t.unack
        } else if self.last_win == 0 && state_timeout > t.retrans {
            t.retrans
        } else {
            state_timeout
        };
        let mut assure = false;
        if !status.has(Status::SEEN_REPLY) {
            // If the only reply is an RST, there is no connection: delete
            // it now (a fairly common case).
            if info.flags.rst() {
                return Outcome::Accept {
                    timeout: None,
                    assure: false,
                    kill: true,
                };
            }
            if index == FlagIndex::Syn && old_state == TcpState::SynSent {
                // Do not renew the timeout on a SYN retransmission, or port
                // reuse could keep the entry alive forever.
                return Outcome::Accept {
                    timeout: None,
                    assure: false,
                    kill: false,
                };
            }
            // ESTABLISHED without a reply: a midstream pickup. Avoid the
            // long ESTABLISHED timeout.
            if new_state == TcpState::Established && timeout > t.unack {
                timeout = t.unack;
            }
        } else if !status.has(Status::ASSURED)
            && matches!(old_state, TcpState::SynRecv | TcpState::Established)
            && new_state == TcpState::Established
        {
            // A valid ACK in ESTABLISHED after SYN_RECV, or a valid answer
            // for a picked-up connection.
            assure = true;
        }
        Outcome::Accept {
            timeout: Some(timeout),
            assure,
            kill: false,
        }
    }
}

/// Result of the RST checks: invalid, or go on, keeping the old state
/// ("keep established state to allow a possible challenge ACK") and/or
/// skipping the window check (`goto in_window`).
enum RstCheck {
    Invalid,
    Window { keep_state: bool, skip: bool },
}

impl RstCheck {
    /// `break`: the window check decides, the state becomes CLOSE.
    const CHECK: RstCheck = RstCheck::Window {
        keep_state: false,
        skip: false,
    };
}

/// Result of `tcp_in_window()`.
enum Window {
    Accept,
    Ignore(IgnoreReason),
    Invalid(InvalidReason),
}

/// `nf_tcp_store_invalid()`: in liberal mode, accept.
fn store_invalid(liberal: bool, w: Window) -> Window {
    if liberal {
        Window::Accept
    } else {
        w
    }
}

#[cfg(test)]
mod table_tests {
    //! Every cell of the state table, checked against the kernel's table
    //! as text (copied from nf_conntrack_proto_tcp.c, Linux 6.12), by
    //! running a packet through a connection in each state.
    extern crate std;
    use super::*;
    use crate::conn::Config;
    use crate::wire::tcp::Options;
    use std::vec::Vec;

    const KERNEL: [[&str; 6]; 2] = [
        [
            "sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2", // syn
            "sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR", // synack
            "sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV", // fin
            "sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV", // ack
            "sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL", // rst
            "sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV", // none
        ],
        [
            "sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2",
            "sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR",
            "sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV",
            "sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG",
            "sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL",
            "sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV",
        ],
    ];

    fn parse_cell(s: &str) -> Transition {
        match s.trim() {
            "sNO" => Transition::To(TcpState::None),
            "sSS" => Transition::To(TcpState::SynSent),
            "sSR" => Transition::To(TcpState::SynRecv),
            "sES" => Transition::To(TcpState::Established),
            "sFW" => Transition::To(TcpState::FinWait),
            "sCW" => Transition::To(TcpState::CloseWait),
            "sLA" => Transition::To(TcpState::LastAck),
            "sTW" => Transition::To(TcpState::TimeWait),
            "sCL" => Transition::To(TcpState::Close),
            "sS2" => Transition::To(TcpState::SynSent2),
            "sIV" => Transition::Invalid,
            "sIG" => Transition::Ignore,
            other => panic!("bad cell {other}"),
        }
    }

    const FLAGS: [u8; 6] = [
        Flags::SYN,
        Flags::SYN | Flags::ACK,
        Flags::FIN | Flags::ACK,
        Flags::ACK,
        Flags::RST,
        0,
    ];

    fn info(flags: u8) -> TcpInfo {
        TcpInfo {
            flags: Flags(flags),
            seq: 1000,
            ack: 5000,
            window: 1000,
            options: Options::default(),
            has_options: false,
            payload_len: 0,
        }
    }

    #[test]
    fn the_table_is_the_kernels() {
        for (d, dir) in [Direction::Original, Direction::Reply]
            .into_iter()
            .enumerate()
        {
            for (i, row) in KERNEL[d].iter().enumerate() {
                let cells: Vec<Transition> = row.split(',').map(parse_cell).collect();
                for (s, &expected) in cells.iter().enumerate() {
                    let state = TcpState::ALL[s];
                    let index = FlagIndex::of(Flags(FLAGS[i]));
                    assert_eq!(index as usize, i);
                    assert_eq!(
                        transition(dir, index, state),
                        expected,
                        "{dir:?} {i} {state:?}"
                    );
                }
            }
        }
    }

    /// Runs each cell's packet through a connection in that state, with
    /// the window checks in liberal mode so that only the table decides.
    #[test]
    fn every_cell_behaves_as_the_table_says() {
        let cfg = Config {
            tcp_be_liberal: true,
            ..Config::default()
        };
        let status = Status(Status::SEEN_REPLY | Status::ASSURED);
        for (d, dir) in [Direction::Original, Direction::Reply]
            .into_iter()
            .enumerate()
        {
            for (i, row) in KERNEL[d].iter().enumerate() {
                for (s, cell) in row.split(',').enumerate() {
                    let state = TcpState::ALL[s];
                    let mut t = Tcp {
                        state,
                        ..Tcp::default()
                    };
                    t.set_last_index(FlagIndex::None);
                    t.seen = PerDir([
                        TcpPeer {
                            end: 1000,
                            maxend: 6000,
                            maxwin: 5000,
                            maxack: 0,
                        },
                        TcpPeer {
                            end: 5000,
                            maxend: 10000,
                            maxwin: 5000,
                            maxack: 0,
                        },
                    ]);
                    if dir == Direction::Reply {
                        t.seen.0.swap(0, 1);
                    }
                    let out = t.packet(&info(FLAGS[i]), dir, status, 1_000_000, &cfg);
                    let what = std::format!("{dir:?} flags {:#x} in {state:?}", FLAGS[i]);
                    match parse_cell(cell) {
                        Transition::Invalid => assert_eq!(
                            out,
                            Outcome::Invalid {
                                reason: InvalidReason::TcpState,
                                lower_timeout: None
                            },
                            "{what}"
                        ),
                        Transition::Ignore => {
                            assert_eq!(out, Outcome::Ignore(IgnoreReason::State), "{what}")
                        }
                        // A SYN in TIME_WAIT / CLOSE without a close seen
                        // and without an RST last is let through untracked.
                        Transition::To(TcpState::SynSent) if state >= TcpState::TimeWait => {
                            assert_eq!(out, Outcome::Ignore(IgnoreReason::State), "{what}")
                        }
                        Transition::To(next) => {
                            assert!(matches!(out, Outcome::Accept { .. }), "{what}: {out:?}");
                            assert_eq!(t.state, next, "{what}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn syn_reopens_time_wait_after_a_close() {
        let cfg = Config::default();
        let mut t = Tcp {
            state: TcpState::TimeWait,
            ..Tcp::default()
        };
        t.flags[Direction::Reply] |= FLAG_CLOSE_INIT;
        let status = Status(Status::SEEN_REPLY | Status::ASSURED);
        let out = t.packet(&info(Flags::SYN), Direction::Original, status, 1000, &cfg);
        assert_eq!(out, Outcome::Repeat);
        // An RST last in the same direction also allows it (CLOSE).
        let mut t = Tcp {
            state: TcpState::Close,
            ..Tcp::default()
        };
        t.set_last_index(FlagIndex::Rst);
        t.set_last_dir(Direction::Original as u8);
        let out = t.packet(&info(Flags::SYN), Direction::Original, status, 1000, &cfg);
        assert_eq!(out, Outcome::Repeat);
    }

    #[test]
    fn packed_last_packet_annotation() {
        assert_eq!(core::mem::size_of::<Tcp>(), 52);
        let mut t = Tcp::default();
        for ws in 0..=MAX_WSCALE {
            for index in [
                FlagIndex::Syn,
                FlagIndex::SynAck,
                FlagIndex::Fin,
                FlagIndex::Ack,
                FlagIndex::Rst,
                FlagIndex::None,
            ] {
                for d in [0u8, 1] {
                    t.set_last_wscale(ws);
                    t.set_last_index(index);
                    t.set_last_dir(d);
                    assert_eq!(
                        (t.last_wscale(), t.last_index(), t.last_dir()),
                        (ws, index as u8, d)
                    );
                    t.set_last_dir(d ^ 1);
                    t.set_last_wscale(MAX_WSCALE - ws);
                    assert_eq!(t.last_index(), index as u8);
                }
            }
        }
        t.set_last_wscale(200);
        assert_eq!(t.last_wscale(), MAX_WSCALE);
        // The end of the largest segment an IP packet can carry, across
        // the sequence wrap.
        for seq in [0u32, 0xFFFF_FF00, u32::MAX] {
            for len in [0u32, 1, 1460, 65_517, 65_535] {
                t.set_last_segment(seq, seq.wrapping_add(len));
                assert_eq!(t.last_seq, seq);
                assert_eq!(t.last_end(), seq.wrapping_add(len));
            }
        }
    }

    #[test]
    fn flag_validity() {
        assert!(valid_flags(Flags(Flags::SYN | Flags::ECE | Flags::CWR)));
        assert!(valid_flags(Flags(Flags::FIN | Flags::ACK | Flags::PSH)));
        assert!(!valid_flags(Flags(Flags::SYN | Flags::FIN)));
        assert!(!valid_flags(Flags(Flags::FIN)));
        assert!(!valid_flags(Flags(0)));
        assert!(!valid_flags(Flags(Flags::SYN | Flags::RST)));
    }
}
