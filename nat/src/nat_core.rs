//! NAT bindings: choosing a unique tuple for a new connection.
//!
//! Corresponds to `net/netfilter/nf_nat_core.c`: `get_unique_tuple`,
//! `find_best_ips_proto`, `nf_nat_l4proto_unique_tuple`, `nf_in_range`,
//! `nf_nat_used_tuple` and `nf_nat_setup_info`; and to
//! `nf_nat_masquerade.c` / `nf_nat_redirect.c` for the address MASQUERADE
//! and REDIRECT map to ([`masquerade_range`], [`redirect_range`]).
//!
//! Differences from the kernel, on purpose:
//! * The result is never a duplicate: where `get_unique_tuple` gives up
//!   and lets `__nf_conntrack_confirm` drop the packet later, this returns
//!   [`NatError::NoFreeTuple`].
//! * `--random` takes its port offset from a keyed hash of the connection
//!   (as `secure_ipv4_port_ephemeral` did before 6.x), `--fully-random`
//!   from the caller's random numbers; without either, source NAT keeps the
//!   original port when it is free and otherwise starts from a random offset
//!   (as 6.12 does), destination NAT from offset 0.
//! * The address hash is keyed SipHash-1-3 (conntrack's), not jhash2.
//! * A range's ports apply only to the protocols NAT rewrites ports of
//!   (TCP, UDP, UDP-Lite, DCCP; see [`proto::nat_rewrites_ports`]). For the
//!   others (ICMP, ICMPv6, SCTP, GRE, ...) the port part is ignored: the
//!   address is mapped, and an ICMP id is kept unless the tuple clashes,
//!   as with no port range (`nf_nat_l4proto_unique_tuple` would map ICMP
//!   ids into the port range instead). This is what makes a rule without
//!   `-p` and with ports (`--to-destination 10.0.2.2:8080`) mean "this
//!   address for every packet, this port where there is one".
//!
//! The caller answers "is this reply tuple in use" ([`TupleTable`]), as the
//! kernel's conntrack hash table answers `nf_conntrack_tuple_taken`, and
//! supplies randomness ([`Entropy`]) and the hash key.

use core::hash::Hasher;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use conntrack::conn::ConnKey;
use conntrack::tuple::SipHasher13;
use conntrack::{Direction, HashKey, Status, Tuple};

use crate::rule::{proto, AddrRange, Family, Hook, NatFlags, NatRange, PortRange};

/// Which side of the tuple a NAT changes (`enum nf_nat_manip_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManipType {
    /// Source NAT (SNAT, MASQUERADE): changes the source.
    Src,
    /// Destination NAT (DNAT, REDIRECT): changes the destination.
    Dst,
}

impl ManipType {
    /// The manip a hook performs (`HOOK2MANIP`): source at POSTROUTING and
    /// INPUT, destination at PREROUTING and OUTPUT (and FORWARD, which has
    /// no NAT).
    pub const fn for_hook(hook: Hook) -> ManipType {
        match hook {
            Hook::Postrouting | Hook::Input => ManipType::Src,
            _ => ManipType::Dst,
        }
    }

    /// The other manip.
    pub const fn opposite(self) -> ManipType {
        match self {
            ManipType::Src => ManipType::Dst,
            ManipType::Dst => ManipType::Src,
        }
    }

    /// The [`Status`] bit a binding of this kind sets (`IPS_SRC_NAT`,
    /// `IPS_DST_NAT`).
    pub const fn nat_bit(self) -> u16 {
        match self {
            ManipType::Src => Status::SRC_NAT,
            ManipType::Dst => Status::DST_NAT,
        }
    }

    /// The [`Status`] bit saying the binding of this kind was set up
    /// (`IPS_SRC_NAT_DONE`, `IPS_DST_NAT_DONE`).
    pub const fn done_bit(self) -> u16 {
        match self {
            ManipType::Src => Status::SRC_NAT_DONE,
            ManipType::Dst => Status::DST_NAT_DONE,
        }
    }

    /// True when a packet of direction `dir` of a connection with
    /// `status` is rewritten at a hook of this kind (`nf_nat_packet`):
    /// source NAT rewrites the source of original packets and the
    /// destination of replies, destination NAT the other way round. Only
    /// the NAT bits of `status` are read.
    #[inline]
    pub const fn applies(self, status: Status, dir: Direction) -> bool {
        let mut bit = self.nat_bit();
        if let Direction::Reply = dir {
            bit ^= Status::NAT_MASK;
        }
        status.0 & bit != 0
    }
}

/// Why no binding could be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatError {
    /// Every tuple the bounded search tried is in use: the range is full
    /// (or nearly so). The packet should be dropped.
    NoFreeTuple,
    /// The range's addresses are of another family than the connection.
    FamilyMismatch,
    /// REDIRECT on an interface without an address, or MASQUERADE without one.
    NoAddress,
    /// The tuple cannot be inverted (an ICMP type without a reply type).
    Uninvertible,
}

impl core::fmt::Display for NatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NatError::NoFreeTuple => "no free tuple in the NAT range",
            NatError::FamilyMismatch => "NAT range of another address family",
            NatError::NoAddress => "no address to NAT to",
            NatError::Uninvertible => "tuple has no reply direction",
        })
    }
}

/// The caller's view of the conntrack table (`nf_conntrack_tuple_taken`).
pub trait TupleTable {
    /// True when a connection already uses `reply` as one of its tuples.
    fn reply_in_use(&self, reply: &Tuple) -> bool;

    /// An existing connection from the same source (address, protocol and
    /// port) that was already source-NATed: its original-direction tuple
    /// after NAT (`find_appropriate_src` via the by-source hash). Reusing it
    /// keeps a client on one mapping. The default knows none.
    fn existing_src_mapping(&self, orig: &Tuple) -> Option<Tuple> {
        let _ = orig;
        None
    }
}

/// Random numbers from the caller (`get_random_u16`).
pub trait Entropy {
    /// A fresh random value.
    fn next_u32(&mut self) -> u32;
}

/// Attempts in the first round of the port search (`NF_NAT_MAX_ATTEMPTS`).
pub const MAX_ATTEMPTS: u32 = 128;

/// The address of a tuple side as an [`IpAddr`].
pub fn tuple_addr(t: &Tuple, a: &[u8; 16]) -> IpAddr {
    match t.family {
        conntrack::Family::Ipv4 => {
            let [a0, a1, a2, a3, ..] = *a;
            IpAddr::V4(Ipv4Addr::new(a0, a1, a2, a3))
        }
        conntrack::Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(*a)),
    }
}

/// An [`IpAddr`] in a tuple's 16-byte form (IPv4 in the first 4 bytes).
pub fn addr_bytes(a: &IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => {
            let mut b = [0u8; 16];
            let [a0, a1, a2, a3] = v.octets();
            b[..4].copy_from_slice(&[a0, a1, a2, a3]);
            b
        }
        IpAddr::V6(v) => v.octets(),
    }
}

/// The rule family of a tuple.
pub const fn tuple_family(t: &Tuple) -> Family {
    match t.family {
        conntrack::Family::Ipv4 => Family::Ipv4,
        conntrack::Family::Ipv6 => Family::Ipv6,
    }
}

fn is_icmp(t: &Tuple) -> bool {
    t.is_icmp()
}

fn used<T: TupleTable + ?Sized>(t: &Tuple, table: &T) -> Result<bool, NatError> {
    let reply = t.invert().ok_or(NatError::Uninvertible)?;
    Ok(table.reply_in_use(&reply))
}

fn addr_in_range(t: &Tuple, a: &[u8; 16], r: &AddrRange) -> bool {
    r.contains(&tuple_addr(t, a))
}

/// The range as it applies to a connection of `t`'s protocol: without its
/// ports when NAT does not rewrite this protocol's ports (ICMP ids, SCTP,
/// GRE, ...), so that such a connection gets the address only.
fn range_for(t: &Tuple, range: &NatRange) -> NatRange {
    if proto::nat_rewrites_ports(t.proto) {
        *range
    } else {
        NatRange {
            ports: None,
            ..*range
        }
    }
}

/// Is the manipulable L4 part of `t` inside the range (`l4proto_in_range`)?
/// Only asked of protocols whose ports NAT rewrites ([`range_for`] drops
/// the port part for the others).
fn l4_in_range(t: &Tuple, manip: ManipType, r: &PortRange) -> bool {
    if proto::nat_rewrites_ports(t.proto) {
        let p = match manip {
            ManipType::Src => t.src_port,
            ManipType::Dst => t.dst_port,
        };
        return r.contains(p);
    }
    true
}

/// Would source-mapping to `t` meet `range` (`nf_in_range`)?
fn in_range(t: &Tuple, range: &NatRange) -> bool {
    if let Some(a) = &range.addrs {
        if !addr_in_range(t, &t.src, a) {
            return false;
        }
    }
    match &range.ports {
        None => true,
        Some(p) => l4_in_range(t, ManipType::Src, p),
    }
}

/// `reciprocal_scale`: maps `val` uniformly into `0..ep_ro`.
const fn reciprocal_scale(val: u32, ep_ro: u32) -> u32 {
    ((val as u64 * ep_ro as u64) >> 32) as u32
}

fn word(a: &[u8; 16], i: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = a.get(i * 4..i * 4 + 4) {
        w.copy_from_slice(s);
    }
    u32::from_be_bytes(w)
}

/// Picks the address inside the range (`find_best_ips_proto`): a keyed
/// hash of the source (and, unless `--persistent`, the destination), so a
/// client keeps its address across connections.
fn best_ip(t: &mut Tuple, range: &NatRange, manip: ManipType, key: &HashKey) {
    let Some(r) = &range.addrs else { return };
    let (lo, hi) = (addr_bytes(&r.lo), addr_bytes(&r.hi));
    let persistent = range.flags.has(NatFlags::PERSISTENT);
    if lo == hi {
        set_side(t, manip, lo);
        return;
    }
    let words = match t.family {
        conntrack::Family::Ipv4 => 1,
        conntrack::Family::Ipv6 => 4,
    };
    let mut h = SipHasher13::new_with_key(key);
    h.write(&t.src);
    if !persistent {
        h.write(&t.dst);
    }
    let mut j = h.finish() as u32;
    let dst = t.dst;
    let mut out = [0u8; 16];
    let mut full_range = false;
    for i in 0..words {
        let (minip, dist) = if full_range {
            (0, 0)
        } else {
            let (mn, mx) = (word(&lo, i), word(&hi, i));
            (mn, mx.wrapping_sub(mn).wrapping_add(1))
        };
        let v = if dist == 0 {
            minip.wrapping_add(j)
        } else {
            minip.wrapping_add(reciprocal_scale(j, dist))
        };
        if let Some(s) = out.get_mut(i * 4..i * 4 + 4) {
            s.copy_from_slice(&v.to_be_bytes());
        }
        if v != word(&hi, i) {
            full_range = true;
        }
        if !persistent {
            j ^= word(&dst, i);
        }
    }
    set_side(t, manip, out);
}

fn set_side(t: &mut Tuple, manip: ManipType, a: [u8; 16]) {
    match manip {
        ManipType::Src => t.src = a,
        ManipType::Dst => t.dst = a,
    }
}

/// The port (or ICMP id) search of `nf_nat_l4proto_unique_tuple`.
fn unique_l4<T: TupleTable + ?Sized, R: Entropy + ?Sized>(
    t: &mut Tuple,
    orig: &Tuple,
    range: &NatRange,
    manip: ManipType,
    table: &T,
    rng: &mut R,
    key: &HashKey,
) -> Result<(), NatError> {
    let icmp = is_icmp(t);
    let (min, size): (u32, u32) = if icmp {
        // Any id ([`range_for`] leaves ICMP ranges without ports).
        (0, 65536)
    } else if proto::nat_rewrites_ports(t.proto) {
        match &range.ports {
            Some(p) => (u32::from(p.lo), p.size()),
            None => {
                // A destination NAT without ports keeps the port.
                if manip == ManipType::Dst {
                    return if used(t, table)? {
                        Err(NatError::NoFreeTuple)
                    } else {
                        Ok(())
                    };
                }
                // Port classes, as the kernel: keep privileged ports
                // privileged ("loose convention: >> 512 is credential
                // passing").
                match t.src_port {
                    0..=511 => (1, 511),
                    512..=1023 => (600, 1023 - 600 + 1),
                    _ => (1024, 65535 - 1024 + 1),
                }
            }
        }
    } else {
        // No ports to vary (GRE without PPTP, other protocols).
        return if used(t, table)? {
            Err(NatError::NoFreeTuple)
        } else {
            Ok(())
        };
    };
    if size == 0 {
        return Err(NatError::NoFreeTuple);
    }
    let mut off: u32 = if range.flags.has(NatFlags::FULLY_RANDOM) {
        rng.next_u32()
    } else if range.flags.has(NatFlags::RANDOM) {
        orig.hash_with(key) as u32
    } else if manip == ManipType::Src {
        rng.next_u32()
    } else {
        0
    } & 0xffff;
    let mut attempts = size.min(MAX_ATTEMPTS);
    loop {
        for _ in 0..attempts {
            let port = (min + off % size) as u16;
            if icmp || manip == ManipType::Src {
                t.src_port = port;
            } else {
                t.dst_port = port;
            }
            if !used(t, table)? {
                return Ok(());
            }
            off = off.wrapping_add(1);
        }
        // Searching the whole range risks a soft lockup: retry from a new
        // random offset with an ever smaller window.
        if attempts >= size || attempts < 16 {
            return Err(NatError::NoFreeTuple);
        }
        attempts /= 2;
        off = rng.next_u32() & 0xffff;
    }
}

/// Chooses the tuple a new connection is mapped to (`get_unique_tuple`).
///
/// `orig` is the connection's original-direction tuple as it stands (after
/// any earlier NAT of the other kind); the result is the same tuple with
/// the source (for [`ManipType::Src`]) or destination moved into `range`,
/// such that its inverse is not in use. Never returns a tuple in use.
///
/// The range's ports apply only when NAT rewrites the ports of `orig`'s
/// protocol (TCP, UDP, UDP-Lite, DCCP); for any other protocol the range is
/// taken as having no ports: an ICMP echo keeps its id unless that clashes.
pub fn unique_tuple<T: TupleTable + ?Sized, R: Entropy + ?Sized>(
    orig: &Tuple,
    range: &NatRange,
    manip: ManipType,
    table: &T,
    rng: &mut R,
    key: &HashKey,
) -> Result<Tuple, NatError> {
    let range = &range_for(orig, range);
    if let Some(a) = &range.addrs {
        let f = tuple_family(orig);
        if Family::of(&a.lo) != f || Family::of(&a.hi) != f {
            return Err(NatError::FamilyMismatch);
        }
    }
    let random_all = range.flags.has(NatFlags::RANDOM | NatFlags::FULLY_RANDOM);

    // 1) Source NAT: keep the original tuple if it is in range and free,
    //    or reuse this source's existing mapping.
    if manip == ManipType::Src && !random_all {
        if in_range(orig, range) {
            if !used(orig, table)? {
                return Ok(*orig);
            }
        } else if let Some(mut prev) = table.existing_src_mapping(orig) {
            prev.dst = orig.dst;
            prev.dst_port = orig.dst_port;
            if prev.proto == orig.proto
                && prev.family == orig.family
                && in_range(&prev, range)
                && !used(&prev, table)?
            {
                return Ok(prev);
            }
        }
    }

    // 2) The address from the range.
    let mut t = *orig;
    best_ip(&mut t, range, manip, key);

    // 3) Keep the port if it is in range and the tuple is free.
    if !random_all {
        let keep = match &range.ports {
            Some(p) => l4_in_range(&t, manip, p),
            None => true,
        };
        if keep && !used(&t, table)? {
            return Ok(t);
        }
    }

    // 4) Search the port range.
    unique_l4(&mut t, orig, range, manip, table, rng, key)?;
    Ok(t)
}

/// A connection's NAT state: its two tuples, as conntrack keeps them
/// (`ct->tuplehash[dir].tuple`), and which manips were set up
/// (`ct->status`). Without NAT the reply tuple is the inverse of the
/// original; each NAT setup moves the reply tuple.
///
/// The binding governs both directions: [`Binding::manip`] says what to
/// write into a packet of either direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// `[original, reply]`.
    pub tuples: [Tuple; 2],
    /// Which manips apply: the [`Status::NAT_MASK`] bits of the
    /// connection's status, no other.
    pub status: Status,
}

/// The address and port (or ICMP id) a manip writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The new address.
    pub addr: IpAddr,
    /// The new port, or ICMP id.
    pub port: u16,
}

impl Binding {
    /// A connection without NAT.
    pub fn new(orig: Tuple) -> Result<Binding, NatError> {
        let reply = orig.invert().ok_or(NatError::Uninvertible)?;
        Ok(Binding {
            tuples: [orig, reply],
            status: Status(0),
        })
    }

    /// A binding from what a conntrack entry stores: its tuples and its
    /// status (of which only the NAT bits are kept).
    pub const fn from_parts(orig: Tuple, reply: Tuple, status: Status) -> Binding {
        Binding {
            tuples: [orig, reply],
            status: Status(status.0 & Status::NAT_MASK),
        }
    }

    /// The status bits a connection's key implies: source NAT when the
    /// reply tuple no longer mirrors the original's source address or
    /// port, destination NAT likewise for the destination
    /// ([`ConnKey::moved`]). [`Binding::setup`] sets a bit only when it
    /// changed the tuple, and for protocols with ports a manip changes its
    /// own end only, so for them this is the binding's status exactly: the
    /// kernel glue reads it from the entry's immutable key, without the
    /// state lock. `None` for ICMP (either manip may move the identifier,
    /// so the bits are needed).
    pub fn implied_status(key: &ConnKey) -> Option<Status> {
        if key.orig().is_icmp() {
            return None;
        }
        let (src, dst) = key.moved();
        let mut s = 0;
        if src {
            s |= Status::SRC_NAT;
        }
        if dst {
            s |= Status::DST_NAT;
        }
        Some(Status(s))
    }

    /// The original-direction tuple.
    pub const fn original(&self) -> &Tuple {
        &self.tuples[0]
    }

    /// The reply-direction tuple.
    pub const fn reply(&self) -> &Tuple {
        &self.tuples[1]
    }

    /// Sets up NAT of kind `manip` into `range` (`nf_nat_setup_info`):
    /// chooses a unique tuple and moves the reply tuple accordingly.
    pub fn setup<T: TupleTable + ?Sized, R: Entropy + ?Sized>(
        &mut self,
        range: &NatRange,
        manip: ManipType,
        table: &T,
        rng: &mut R,
        key: &HashKey,
    ) -> Result<(), NatError> {
        // What the original direction looks like now, earlier NAT included.
        let curr = self.reply().invert().ok_or(NatError::Uninvertible)?;
        let new = unique_tuple(&curr, range, manip, table, rng, key)?;
        if new != curr {
            self.tuples[1] = new.invert().ok_or(NatError::Uninvertible)?;
            self.status.insert(manip.nat_bit());
        }
        Ok(())
    }

    /// Sets up a null binding for a connection no NAT rule matched at a
    /// hook of kind `manip` (`nf_nat_alloc_null_binding`): it keeps its
    /// address, and its port too unless another connection's NAT already
    /// uses that tuple, which would make the two indistinguishable.
    pub fn setup_null<T: TupleTable + ?Sized, R: Entropy + ?Sized>(
        &mut self,
        manip: ManipType,
        table: &T,
        rng: &mut R,
        key: &HashKey,
    ) -> Result<(), NatError> {
        let curr = self.reply().invert().ok_or(NatError::Uninvertible)?;
        let addr = match manip {
            ManipType::Src => tuple_addr(&curr, &curr.src),
            ManipType::Dst => tuple_addr(&curr, &curr.dst),
        };
        let range = NatRange {
            addrs: Some(AddrRange::single(addr)),
            ports: None,
            flags: NatFlags(0),
        };
        self.setup(&range, manip, table, rng, key)
    }

    /// The tuple a packet of direction `dir` must carry after NAT: the
    /// inverse of the other direction's tuple.
    pub fn target(&self, dir: Direction) -> Option<Tuple> {
        let other = match dir {
            Direction::Original => self.reply(),
            Direction::Reply => self.original(),
        };
        other.invert()
    }

    /// True when a packet of direction `dir` is rewritten at a hook of kind
    /// `manip`: source NAT rewrites the source of original packets and the
    /// destination of replies, destination NAT the other way round.
    pub const fn applies(&self, dir: Direction, manip: ManipType) -> bool {
        manip.applies(self.status, dir)
    }

    /// What a packet of direction `dir` gets written at a hook of kind
    /// `manip` (`nf_nat_packet`), or `None` when that side is not NATed.
    pub fn manip(&self, dir: Direction, manip: ManipType) -> Option<Endpoint> {
        if !self.applies(dir, manip) {
            return None;
        }
        let target = self.target(dir)?;
        let (addr, port) = match manip {
            ManipType::Src => (&target.src, target.src_port),
            ManipType::Dst => (&target.dst, target.dst_port),
        };
        // ICMP ids live in src_port in both directions.
        let port = if is_icmp(&target) {
            target.src_port
        } else {
            port
        };
        Some(Endpoint {
            addr: tuple_addr(&target, addr),
            port,
        })
    }

    /// True when any NAT applies to this connection.
    pub const fn is_nat(&self) -> bool {
        self.status.0 != 0
    }
}

/// The range MASQUERADE maps into (`nf_nat_masquerade_ipv4/6`): the rule's
/// ports and flags, and the address the caller picked on the outgoing
/// interface for the destination.
pub fn masquerade_range(rule_range: &NatRange, addr: Option<IpAddr>) -> Result<NatRange, NatError> {
    let addr = addr.ok_or(NatError::NoAddress)?;
    Ok(NatRange {
        addrs: Some(AddrRange::single(addr)),
        ports: rule_range.ports,
        flags: rule_range.flags,
    })
}

/// The range REDIRECT maps into (`nf_nat_redirect_ipv4/6`): loopback for
/// locally generated packets (OUTPUT), else the incoming interface's
/// address (the caller's `in_addr`; none means drop).
pub fn redirect_range(
    rule_range: &NatRange,
    hook: Hook,
    family: Family,
    in_addr: Option<IpAddr>,
) -> Result<NatRange, NatError> {
    let addr = if hook == Hook::Output {
        match family {
            Family::Ipv4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Family::Ipv6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        }
    } else {
        in_addr.ok_or(NatError::NoAddress)?
    };
    if Family::of(&addr) != family {
        return Err(NatError::FamilyMismatch);
    }
    Ok(NatRange {
        addrs: Some(AddrRange::single(addr)),
        ports: rule_range.ports,
        flags: rule_range.flags,
    })
}

/// What a nat-table verdict asks for: the manip and the range to map into,
/// with MASQUERADE's and REDIRECT's addresses filled in from the caller's
/// interface addresses (`out_addr`: the outgoing interface's source address
/// for the destination; `in_addr`: the incoming interface's primary
/// address). `None` for verdicts that are not NAT.
pub fn nat_request(
    verdict: &crate::eval::Verdict,
    hook: Hook,
    family: Family,
    out_addr: Option<IpAddr>,
    in_addr: Option<IpAddr>,
) -> Result<Option<(ManipType, NatRange)>, NatError> {
    use crate::eval::Verdict;
    Ok(match verdict {
        Verdict::Snat(r) => Some((ManipType::Src, *r)),
        Verdict::Dnat(r) => Some((ManipType::Dst, *r)),
        Verdict::Masquerade(r) => Some((ManipType::Src, masquerade_range(r, out_addr)?)),
        Verdict::Redirect(r) => Some((ManipType::Dst, redirect_range(r, hook, family, in_addr)?)),
        _ => None,
    })
}
