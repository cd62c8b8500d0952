//! Crafted frames, and a reference model of the classifier written from the rules in the crate
//! docs (not from the C code), to judge truncated and mutated frames.

use utipc_ebpf::{ETH_P_TIPC, MAX_IPV6_EXT_HDRS, MAX_VLAN_TAGS, MIN_TIPC_LEN, TIPC_UDP_PORT};

pub(crate) const ETH_P_IP: u16 = 0x0800;
pub(crate) const ETH_P_ARP: u16 = 0x0806;
pub(crate) const ETH_P_IPV6: u16 = 0x86DD;
pub(crate) const ETH_P_8021Q: u16 = 0x8100;
pub(crate) const ETH_P_8021AD: u16 = 0x88A8;

pub(crate) const IPPROTO_HOPOPTS: u8 = 0;
pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
pub(crate) const IPPROTO_ROUTING: u8 = 43;
pub(crate) const IPPROTO_FRAGMENT: u8 = 44;
pub(crate) const IPPROTO_ESP: u8 = 50;
pub(crate) const IPPROTO_AH: u8 = 51;
pub(crate) const IPPROTO_DSTOPTS: u8 = 60;

pub(crate) const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub(crate) const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// An Ethernet frame: `tags` are the TPIDs of the VLAN tags, outermost first.
pub(crate) fn ethernet(dst: [u8; 6], tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&SRC_MAC);
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        let tci = 100 + u16::try_from(i).expect("few tags");
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `len` bytes of a TIPC LINK_CONFIG message (word 0: version 2, user 13, header size 60,
/// message size `len`), then a recognisable pattern.
pub(crate) fn tipc(len: usize) -> Vec<u8> {
    let size = u32::try_from(len).expect("small");
    let word0: u32 = (2 << 29) | (13 << 25) | (15 << 21) | size;
    let mut m: Vec<u8> = word0.to_be_bytes().to_vec();
    m.extend((4..len.max(4)).map(|i| (i % 251) as u8));
    m.truncate(len);
    m
}

/// A TIPC-over-Ethernet frame with `len` bytes of TIPC.
pub(crate) fn tipc_frame(tags: &[u16], len: usize) -> Vec<u8> {
    ethernet(DST_MAC, tags, ETH_P_TIPC, &tipc(len))
}

/// A UDP header (checksum 0) and payload.
pub(crate) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("small");
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A minimal TCP header (SYN) to `dport`.
pub(crate) fn tcp(dport: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t
}

/// An IPv4 packet with `ihl` header words (options are NOPs), flags+fragment offset
/// `frag_off`, protocol `proto`, and a valid header checksum.
pub(crate) fn ipv4(ihl: u8, frag_off: u16, proto: u8, l4: &[u8]) -> Vec<u8> {
    let hlen = usize::from(ihl.max(5)) * 4;
    let total = u16::try_from(hlen + l4.len()).expect("small");
    let mut h = vec![0u8; hlen];
    h[0] = 0x40 | ihl;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    h[6..8].copy_from_slice(&frag_off.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&[198, 18, 0, 2]);
    h[16..20].copy_from_slice(&[198, 18, 0, 1]);
    for b in &mut h[20..] {
        *b = 1; // NOP option
    }
    let csum = checksum(&h);
    h[10..12].copy_from_slice(&csum.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

/// The Internet checksum of `data`.
pub(crate) fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).expect("folded")
}

/// An IPv6 extension header of type `kind` that says `next` comes after it; `units` is its
/// length field (8-byte units minus 1, or 4-byte units minus 2 for AH).
pub(crate) fn ext(kind: u8, next: u8, units: u8) -> Vec<u8> {
    let len = match kind {
        IPPROTO_AH => (usize::from(units) + 2) * 4,
        IPPROTO_FRAGMENT => 8,
        _ => (usize::from(units) + 1) * 8,
    };
    let mut e = vec![0u8; len];
    e[0] = next;
    e[1] = if kind == IPPROTO_FRAGMENT { 0 } else { units };
    if kind == IPPROTO_FRAGMENT {
        // Offset 0, M set: the first fragment, which still carries the UDP header.
        e[3] = 1;
    } else if kind != IPPROTO_AH && len > 2 {
        // A PadN option filling the rest.
        e[2] = 1;
        e[3] = u8::try_from(len - 4).expect("small");
    }
    e
}

/// An IPv6 packet: the chain of extension headers `exts` (kinds, each with its length field
/// `units`), then `proto` and `l4`.
pub(crate) fn ipv6(exts: &[(u8, u8)], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, &(kind, units)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(proto, |&(k, _)| k);
        body.extend_from_slice(&ext(kind, next, units));
    }
    body.extend_from_slice(l4);
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    let plen = u16::try_from(body.len()).expect("small");
    h[4..6].copy_from_slice(&plen.to_be_bytes());
    h[6] = exts.first().map_or(proto, |&(k, _)| k);
    h[7] = 64;
    h[8..24].copy_from_slice(&[0xfd, 0, 1, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h[24..40].copy_from_slice(&[0xfd, 0, 1, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(&body);
    h
}

/// An ARP request.
pub(crate) fn arp() -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    a.extend_from_slice(&SRC_MAC);
    a.extend_from_slice(&[198, 18, 0, 2]);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&[198, 18, 0, 1]);
    ethernet([0xff; 6], &[], ETH_P_ARP, &a)
}

/// What the program should do with a frame (before the socket lookup).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// TIPC: redirect if a socket is registered for the queue, else pass as "no socket".
    Steer,
    /// Not TIPC (or switched off): pass.
    Pass,
    /// A runt 0x88CA frame: drop.
    Drop,
}

/// The reference classifier (see the table in the crate docs).
pub(crate) fn model(frame: &[u8], steer_ethernet: bool, steer_udp: bool) -> Verdict {
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
    };
    let Some(mut proto) = be16(12) else {
        return Verdict::Pass;
    };
    let mut at = 14;
    for _ in 0..MAX_VLAN_TAGS {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        if frame.len() < at + 4 {
            return Verdict::Pass;
        }
        proto = be16(at + 2).unwrap_or(0);
        at += 4;
    }
    if proto == ETH_P_TIPC {
        return if !steer_ethernet {
            Verdict::Pass
        } else if frame.len() < at + MIN_TIPC_LEN {
            Verdict::Drop
        } else {
            Verdict::Steer
        };
    }
    if !steer_udp {
        return Verdict::Pass;
    }
    let udp_at = match proto {
        ETH_P_IP => ipv4_udp_offset(frame, at),
        ETH_P_IPV6 => ipv6_udp_offset(frame, at),
        _ => None,
    };
    match udp_at {
        Some(u) if frame.len() >= u + 8 && be16(u + 2) == Some(TIPC_UDP_PORT) => Verdict::Steer,
        _ => Verdict::Pass,
    }
}

/// Where the UDP header of an unfragmented IPv4/UDP packet at `at` starts.
fn ipv4_udp_offset(frame: &[u8], at: usize) -> Option<usize> {
    let h = frame.get(at..at + 20)?;
    let (version, ihl) = (h[0] >> 4, usize::from(h[0] & 0xf));
    let frag = u16::from_be_bytes([h[6], h[7]]);
    (version == 4 && ihl >= 5 && h[9] == IPPROTO_UDP && frag & 0x3fff == 0).then_some(at + ihl * 4)
}

/// Where the UDP header of an IPv6/UDP packet at `at` starts, after at most
/// `MAX_IPV6_EXT_HDRS` hop-by-hop/routing/destination/AH headers.
fn ipv6_udp_offset(frame: &[u8], at: usize) -> Option<usize> {
    let h = frame.get(at..at + 40)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let mut next = h[6];
    let mut cur = at + 40;
    for _ in 0..MAX_IPV6_EXT_HDRS {
        let len_unit = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => 8,
            IPPROTO_AH => 4,
            _ => break,
        };
        let e = frame.get(cur..cur + 2)?;
        cur += if len_unit == 4 {
            (usize::from(e[1]) + 2) * 4
        } else {
            (usize::from(e[1]) + 1) * 8
        };
        next = e[0];
    }
    (next == IPPROTO_UDP).then_some(cur)
}

/// A named frame with the verdict the program must reach (default config).
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) frame: Vec<u8>,
    pub(crate) verdict: Verdict,
}

fn case(name: &'static str, frame: Vec<u8>, verdict: Verdict) -> Case {
    Case {
        name,
        frame,
        verdict,
    }
}

/// The crafted frames with their expected verdicts.
pub(crate) fn cases() -> Vec<Case> {
    use Verdict::{Drop, Pass, Steer};
    let payload = tipc(40);
    let u = |dport| udp(40000, dport, &payload);
    let v4 = |l4: &[u8]| ethernet(DST_MAC, &[], ETH_P_IP, &ipv4(5, 0, IPPROTO_UDP, l4));
    let v6 = |exts: &[(u8, u8)], l4: &[u8]| {
        ethernet(DST_MAC, &[], ETH_P_IPV6, &ipv6(exts, IPPROTO_UDP, l4))
    };
    let q = ETH_P_8021Q;
    let ad = ETH_P_8021AD;
    vec![
        case("tipc, plain", tipc_frame(&[], 60), Steer),
        case("tipc, 802.1Q", tipc_frame(&[q], 60), Steer),
        case("tipc, 802.1ad", tipc_frame(&[ad], 60), Steer),
        case(
            "tipc, QinQ (802.1ad + 802.1Q)",
            tipc_frame(&[ad, q], 60),
            Steer,
        ),
        case("tipc, two 802.1Q tags", tipc_frame(&[q, q], 60), Steer),
        case("tipc, three tags", tipc_frame(&[ad, q, q], 60), Pass),
        case(
            "tipc, exactly 24 bytes",
            tipc_frame(&[], MIN_TIPC_LEN),
            Steer,
        ),
        case(
            "tipc runt, 23 bytes",
            tipc_frame(&[], MIN_TIPC_LEN - 1),
            Drop,
        ),
        case("tipc runt, no TIPC bytes", tipc_frame(&[], 0), Drop),
        case("tipc runt behind 802.1Q", tipc_frame(&[q], 10), Drop),
        case("tipc, 1500 bytes", tipc_frame(&[], 1500), Steer),
        case("ipv4 udp 6118, ihl 5", v4(&u(TIPC_UDP_PORT)), Steer),
        case(
            "ipv4 udp 6118, ihl 6 (options)",
            ethernet(DST_MAC, &[], ETH_P_IP, &ipv4(6, 0, IPPROTO_UDP, &u(6118))),
            Steer,
        ),
        case(
            "ipv4 udp 6118, ihl 15 (options)",
            ethernet(DST_MAC, &[], ETH_P_IP, &ipv4(15, 0, IPPROTO_UDP, &u(6118))),
            Steer,
        ),
        case(
            "ipv4 udp 6118, DF set",
            ethernet(
                DST_MAC,
                &[],
                ETH_P_IP,
                &ipv4(5, 0x4000, IPPROTO_UDP, &u(6118)),
            ),
            Steer,
        ),
        case(
            "ipv4 udp 6118 behind 802.1Q",
            ethernet(DST_MAC, &[q], ETH_P_IP, &ipv4(5, 0, IPPROTO_UDP, &u(6118))),
            Steer,
        ),
        case(
            "ipv4 udp 6118 behind QinQ",
            ethernet(
                DST_MAC,
                &[ad, q],
                ETH_P_IP,
                &ipv4(5, 0, IPPROTO_UDP, &u(6118)),
            ),
            Steer,
        ),
        case(
            "ipv4 fragment, offset 185 (no UDP header)",
            ethernet(DST_MAC, &[], ETH_P_IP, &ipv4(5, 185, IPPROTO_UDP, &payload)),
            Pass,
        ),
        case(
            "ipv4 first fragment (MF, offset 0) to 6118",
            ethernet(
                DST_MAC,
                &[],
                ETH_P_IP,
                &ipv4(5, 0x2000, IPPROTO_UDP, &u(6118)),
            ),
            Pass,
        ),
        case(
            "ipv4 last fragment whose bytes look like udp 6118",
            ethernet(DST_MAC, &[], ETH_P_IP, &ipv4(5, 3, IPPROTO_UDP, &u(6118))),
            Pass,
        ),
        case(
            "ipv4 ihl 4 (malformed)",
            ethernet(DST_MAC, &[], ETH_P_IP, &ipv4(4, 0, IPPROTO_UDP, &u(6118))),
            Pass,
        ),
        case("ipv4 udp to 7118", v4(&u(7118)), Pass),
        case(
            "ipv4 udp from 6118 to 7118",
            v4(&udp(6118, 7118, &payload)),
            Pass,
        ),
        case(
            "ipv4 tcp to 6118",
            ethernet(DST_MAC, &[], ETH_P_IP, &ipv4(5, 0, IPPROTO_TCP, &tcp(6118))),
            Pass,
        ),
        case(
            "ipv6 header in an ipv4 ethertype",
            ethernet(DST_MAC, &[], ETH_P_IP, &ipv6(&[], IPPROTO_UDP, &u(6118))),
            Pass,
        ),
        case("arp request", arp(), Pass),
        case("ipv6 udp 6118", v6(&[], &u(6118)), Steer),
        case(
            "ipv6 hop-by-hop + udp 6118",
            v6(&[(IPPROTO_HOPOPTS, 0)], &u(6118)),
            Steer,
        ),
        case(
            "ipv6 hop-by-hop (24 bytes) + dstopts + routing + AH + udp 6118",
            v6(
                &[
                    (IPPROTO_HOPOPTS, 2),
                    (IPPROTO_DSTOPTS, 0),
                    (IPPROTO_ROUTING, 0),
                    (IPPROTO_AH, 4),
                ],
                &u(6118),
            ),
            Steer,
        ),
        case(
            "ipv6 five extension headers + udp 6118",
            v6(
                &[
                    (IPPROTO_HOPOPTS, 0),
                    (IPPROTO_DSTOPTS, 0),
                    (IPPROTO_ROUTING, 0),
                    (IPPROTO_DSTOPTS, 0),
                    (IPPROTO_DSTOPTS, 0),
                ],
                &u(6118),
            ),
            Pass,
        ),
        case(
            "ipv6 fragment header (first fragment) + udp 6118",
            v6(&[(IPPROTO_FRAGMENT, 0)], &u(6118)),
            Pass,
        ),
        case(
            "ipv6 ESP",
            ethernet(DST_MAC, &[], ETH_P_IPV6, &ipv6(&[], IPPROTO_ESP, &u(6118))),
            Pass,
        ),
        case("ipv6 udp to 7118", v6(&[], &u(7118)), Pass),
        case(
            "ipv6 tcp to 6118",
            ethernet(
                DST_MAC,
                &[],
                ETH_P_IPV6,
                &ipv6(&[], IPPROTO_TCP, &tcp(6118)),
            ),
            Pass,
        ),
        case(
            "ipv6 udp 6118 behind QinQ",
            ethernet(
                DST_MAC,
                &[ad, q],
                ETH_P_IPV6,
                &ipv6(&[], IPPROTO_UDP, &u(6118)),
            ),
            Steer,
        ),
        case(
            "ipv4 header in an ipv6 ethertype",
            ethernet(DST_MAC, &[], ETH_P_IPV6, &ipv4(5, 0, IPPROTO_UDP, &u(6118))),
            Pass,
        ),
        case(
            "802.1Q with an unknown inner ethertype",
            ethernet(DST_MAC, &[q], 0x1234, &payload),
            Pass,
        ),
        case(
            "bare ethernet header, ethertype 0x0800",
            ethernet(DST_MAC, &[], ETH_P_IP, &[]),
            Pass,
        ),
    ]
}

/// A small deterministic generator (xorshift64*), for the mutation test.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("fits")).expect("fits")
    }
}

#[test]
fn model_agrees_with_the_table() {
    for c in cases() {
        assert_eq!(model(&c.frame, true, true), c.verdict, "{}", c.name);
    }
}
