//! Kernel captures replayed against the link: what the kernel sent at each point, the link must
//! send byte for byte, given the same state (spec §5.3–§5.6, §5.12).

use super::*;
use crate::link::reassembly::Reassembler;
use crate::link::{DownReason, LinkEvent, LinkState};
use crate::wire::testutil::eth_fixture;

/// The messages of a capture (Ethernet header and padding stripped), indexed by frame number.
fn frames(name: &str) -> Vec<Vec<u8>> {
    let mut v = vec![Vec::new()];
    for (n, b) in eth_fixture(name) {
        assert_eq!(n, v.len());
        let p = Packet::new_checked(&b[..]).expect("valid frame");
        v.push(p.message().to_vec());
    }
    v
}

/// A captured sequenced message as the node layer hands it to `send`: link words cleared.
fn unstamped(msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    let mut p = Packet::new_unchecked(&mut m[..]);
    p.set_ack_seqno(0, 0);
    p.set_bcast_ack(0);
    m
}

fn send(l: &mut Link, now: Instant, msg: Vec<u8>, bc: &BcastCtx) -> LinkOutput {
    let mut out = LinkOutput::default();
    l.send(now, msg, bc, &mut out).expect("sent");
    out
}

/// `eth-02-link-setup` from ktnode1's side: its first RESET (frame 1), the ACTIVATE it answers
/// ktnode2's RESET with on the next tick (frame 5), the STATE that opens the link when
/// ktnode2's STATE arrives (frame 10), then its broadcast init and name bulk (frames 11, 12).
#[test]
fn eth02_link_setup_ktnode1() {
    let f = frames("eth-02-link-setup.pcap");
    let mut l = Link::new(kcfg(K1, K2, 0x8e6e), T0);
    assert_eq!(
        l.poll_timeout(),
        Some(T0 + INTV),
        "first RESET one interval later"
    );
    let mut out = LinkOutput::default();
    l.handle_timeout(T0 + INTV / 2, &BC_DOWN, &mut out);
    assert_eq!(out, LinkOutput::default(), "nothing before the first tick");

    let (t, out) = tick(&mut l, &BC_DOWN);
    assert_eq!(out.transmit, [f[1].clone()], "RESET = frame 1");

    let out = feed(&mut l, t, &f[2], &BC_DOWN);
    assert_eq!(l.state(), LinkState::Establishing);
    assert!(out.transmit.is_empty(), "the ACTIVATE waits for the timer");
    assert_eq!(l.peer_session(), Some(0xabe1));
    assert_eq!(l.peer_if_name(), Some("eth0"));

    let (t, out) = tick(&mut l, &BC_DOWN);
    assert_eq!(out.transmit, [f[5].clone()], "ACTIVATE = frame 5");

    let out = feed(&mut l, t, &f[6], &BC_DOWN);
    assert_eq!(out.events, [LinkEvent::Up]);
    assert_eq!(out.transmit, [f[10].clone()], "opening STATE = frame 10");
    assert_eq!((l.mtu(), l.mss()), (1500, 1428));

    let out = send(&mut l, t, unstamped(&f[11]), &BC_DOWN);
    assert_eq!(out.transmit, [f[11].clone()], "broadcast init = frame 11");
    let out = send(&mut l, t, unstamped(&f[12]), &BC_DOWN);
    assert_eq!(out.transmit, [f[12].clone()], "name bulk = frame 12");

    let mut delivered = Vec::new();
    for n in [7, 8, 9] {
        let out = feed(&mut l, t, &f[n], &BC_DOWN);
        assert!(out.transmit.is_empty(), "frame {n} needs no answer");
        delivered.extend(out.deliver);
    }
    assert_eq!(delivered, [f[7].clone(), f[8].clone()]);
    assert_eq!(l.stats().recv_states, 2);
    assert_eq!(l.name("ktnode1", "ktnode2"), "ktnode1:eth0-ktnode2:eth0");
}

/// `eth-02-link-setup` from ktnode2's side: its RESET (frame 2); ktnode1's ACTIVATE brings it
/// up and it opens with a STATE (frame 6), sends its broadcast init and bulk (frames 7, 8),
/// and on the next tick a STATE because both are unacknowledged (frame 9).
#[test]
fn eth02_link_setup_ktnode2() {
    let f = frames("eth-02-link-setup.pcap");
    let mut l = Link::new(kcfg(K2, K1, 0xabe1), T0);
    let (t, out) = tick(&mut l, &BC_DOWN);
    assert_eq!(out.transmit, [f[2].clone()], "RESET = frame 2");
    let out = feed(&mut l, t, &f[1], &BC_DOWN);
    assert!(out.transmit.is_empty());
    assert_eq!(l.state(), LinkState::Establishing);
    let out = feed(&mut l, t, &f[5], &BC_DOWN);
    assert_eq!(out.events, [LinkEvent::Up]);
    assert_eq!(out.transmit, [f[6].clone()], "opening STATE = frame 6");
    let out = send(&mut l, t, unstamped(&f[7]), &BC_DOWN);
    assert_eq!(out.transmit, [f[7].clone()], "broadcast init = frame 7");
    let out = send(&mut l, t, unstamped(&f[8]), &BC_DOWN);
    assert_eq!(out.transmit, [f[8].clone()], "name bulk = frame 8");
    let (t, out) = tick(&mut l, &BC_DOWN);
    assert_eq!(out.transmit, [f[9].clone()], "tick STATE = frame 9");
    let mut delivered = Vec::new();
    for n in [10, 11, 12] {
        let out = feed(&mut l, t, &f[n], &BC_DOWN);
        assert!(out.transmit.is_empty());
        delivered.extend(out.deliver);
    }
    assert_eq!(delivered, [f[11].clone(), f[12].clone()]);
}

/// Brings a link from `own` (session `session`) up with a peer of session `peer_session`, then
/// exchanges 20 data packets each way without any STATE, so that snd_nxt = rcv_nxt = 21 and
/// the STATE counter is 2: where both kernels were in `eth-04-fragmented-66000`.
fn link_at_21(own: u32, peer: u32, session: u16, peer_session: u16, bc: &BcastCtx) -> Link {
    let mut l = up_link(own, peer, session, peer_session);
    for i in 1..=20u16 {
        let out = feed(&mut l, T0, &data(peer, own, i, i - 1, 16), bc);
        assert_eq!(out.deliver.len(), 1);
        assert!(out.transmit.is_empty());
        let out = send(
            &mut l,
            T0,
            super::super::harness::data_msg(own, peer, 0, 0, 8),
            bc,
        );
        assert_eq!(out.transmit.len(), 1);
    }
    assert_eq!(l.stats().sent_states, 1);
    l
}

/// Concatenated fragment payloads of frames `range`: the original message.
fn reassemble(f: &[Vec<u8>], range: core::ops::RangeInclusive<usize>) -> Vec<u8> {
    let mut r = Reassembler::default();
    let mut whole = None;
    for n in range {
        whole = r.push(&f[n]).expect("in place");
    }
    whole.expect("complete")
}

/// `eth-04-fragmented-66000` from ktnode1's side: it receives the 48 fragments of a 66,040-byte
/// message (frames 1–48), acknowledges every 16 packets (STATEs = frames 49, 50, 51: acks 36,
/// 52, 68), delivers the message, then fragments its 66,032-byte reply exactly as the kernel
/// did (frames 52–99: ack 68, seqnos 21–68, 1428-byte fragments, last 836 bytes).
#[test]
fn eth04_fragments_received_acked_and_sent_ktnode1() {
    let f = frames("eth-04-fragmented-66000.pcap");
    let mut l = link_at_21(K1, K2, 0x8e6e, 0xabe1, &BC_UP);
    let mut states = Vec::new();
    let mut delivered = Vec::new();
    for (n, frame) in f.iter().enumerate().take(49).skip(1) {
        let out = feed(&mut l, T0, frame, &BC_UP);
        if !out.transmit.is_empty() {
            states.push((n, out.transmit));
        }
        delivered.extend(out.deliver);
    }
    assert_eq!(
        states,
        [
            (16, vec![f[49].clone()]),
            (32, vec![f[50].clone()]),
            (48, vec![f[51].clone()])
        ]
    );
    assert_eq!(delivered, [reassemble(&f, 1..=48)]);
    assert_eq!(delivered[0].len(), 66_040);
    assert_eq!(
        (l.stats().recv_fragments, l.stats().recv_fragmented),
        (48, 1)
    );

    let reply = reassemble(&f, 52..=99);
    assert_eq!(reply.len(), 66_032);
    let out = send(&mut l, T0, reply, &BC_UP);
    assert_eq!(out.transmit.len(), 48);
    for (i, pkt) in out.transmit.iter().enumerate() {
        assert_eq!(pkt, &f[52 + i], "fragment {} = frame {}", i + 1, 52 + i);
    }
    assert_eq!(l.stats().sent_fragments, 48);
}

/// `eth-04-fragmented-66000` from ktnode2's side: its fragmentation of the 66,000-byte NAMED
/// message gives exactly frames 1–48 (1428 bytes each, the last 844 = 40 + 804).
#[test]
fn eth04_fragments_sent_ktnode2() {
    let f = frames("eth-04-fragmented-66000.pcap");
    let mut l = link_at_21(K2, K1, 0xabe1, 0x8e6e, &BC_UP);
    // ktnode1 acknowledged our 20 packets before frame 1.
    let ack = Proto::state(0x8e6e, 2, 20, 21).bytes(K1, K2);
    assert!(feed(&mut l, T0, &ack, &BC_UP).transmit.is_empty());
    let msg = reassemble(&f, 1..=48);
    let out = send(&mut l, T0, msg, &BC_UP);
    let sizes: Vec<usize> = out.transmit.iter().map(Vec::len).collect();
    assert_eq!(sizes.len(), 48);
    assert!(sizes[..47].iter().all(|&s| s == 1428) && sizes[47] == 844);
    for (i, pkt) in out.transmit.iter().enumerate() {
        assert_eq!(pkt, &f[1 + i], "fragment {} = frame {}", i + 1, 1 + i);
    }
}

/// `eth-09-link-failure`: ktnode2 falls silent. ktnode1, idle, probes on the five ticks after
/// the last packet heard and declares the link lost on the sixth (abort limit 4 + 2), with the single
/// RESET carrying peer_stopping and the new session (frame 15: its broadcast link still up,
/// ack 3); the timer's RESETs that follow have no peer_stopping (frame 17) and come on the
/// first 5 ticks, then every 16th.
#[test]
fn eth09_silent_peer_fails_the_link() {
    let f = frames("eth-09-link-failure.pcap");
    let bc_before = BcastCtx {
        rcv_ack: 3,
        rcv_ack_invalid: false,
        last_bcast: 0,
        bc_gap: 0,
        redundant_link: true,
    };
    let mut l = up_link(K1, K2, 0x8e6e, 0xabe1);
    // The first tick of a new link finds nothing to send; the peer is last heard right then.
    let (t_last, out) = tick(&mut l, &bc_before);
    assert!(out.transmit.is_empty());
    let last = Proto::state(0xabe1, 2, 0, 1).bytes(K2, K1);
    assert!(feed(&mut l, t_last, &last, &bc_before).transmit.is_empty());
    for n in 1..=5 {
        let (_, out) = tick(&mut l, &bc_before);
        assert!(out.events.is_empty());
        assert_eq!(out.transmit.len(), 1, "tick {n}");
        let s = parse(&out.transmit[0]);
        assert!(s.probe && s.keepalive(), "tick {n} probes");
    }
    let (t_fail, out) = tick(&mut l, &bc_before);
    assert_eq!(
        out.events,
        [LinkEvent::Down {
            reason: DownReason::Tolerance
        }]
    );
    assert_eq!(
        out.transmit,
        [f[15].clone()],
        "RESET with peer_stopping = frame 15"
    );
    assert_eq!(
        t_fail - t_last,
        6 * INTV,
        "sixth tick after the last packet heard"
    );
    assert_eq!((l.state(), l.session()), (LinkState::Reset, 0x8e6f));
    let mut resets = Vec::new();
    for n in 1..=40 {
        let (_, out) = tick(&mut l, &BC_DOWN);
        if !out.transmit.is_empty() {
            assert_eq!(out.transmit, [f[17].clone()], "periodic RESET = frame 17");
            resets.push(n);
        }
    }
    assert_eq!(resets, [1, 2, 3, 4, 5, 16, 32]);
}

/// `eth-10-bearer-disable-reset`: ktnode2 disables its bearer and sends RESET with
/// peer_stopping (frame 7). ktnode1 takes the link down and answers with its own stopping
/// RESET at once (frame 8), then RESETs on its timer (frame 9).
#[test]
fn eth10_peer_stopping_reset() {
    let f = frames("eth-10-bearer-disable-reset.pcap");
    let mut l = up_link(K1, K2, 0xce1a, 0x6346);
    let out = feed(&mut l, T0, &f[7], &BC_UP);
    assert_eq!(
        out.events,
        [LinkEvent::Down {
            reason: DownReason::PeerStopping
        }]
    );
    assert_eq!(out.transmit, [f[8].clone()], "stopping RESET = frame 8");
    assert_eq!(l.peer_session(), None);
    let (_, out) = tick(&mut l, &BC_DOWN);
    assert_eq!(out.transmit, [f[9].clone()], "periodic RESET = frame 9");
    // The peer's stopping RESET again: FAILURE does nothing in RESET.
    let out = feed(&mut l, T0, &f[7], &BC_DOWN);
    assert_eq!(out, LinkOutput::default());
    assert_eq!(l.state(), LinkState::Reset);
}

/// Every captured frame, fed to links in each state, is handled without panicking; the link
/// stays consistent.
#[test]
fn every_captured_frame_is_handled() {
    for name in [
        "eth-02-link-setup.pcap",
        "eth-03-rdm-named-datagrams.pcap",
        "eth-05-bundling-burst.pcap",
        "eth-07-stream-connection.pcap",
    ] {
        let f = frames(name);
        for mut l in [
            Link::new(kcfg(K1, K2, 1), T0),
            up_link(K1, K2, 0x8e6e, 0xabe1),
            up_link(K2, K1, 0xabe1, 0x8e6e),
        ] {
            for pkt in &f[1..] {
                let mut out = LinkOutput::default();
                l.handle_packet(T0, pkt, &BC_UP, &mut out);
                l.handle_timeout(T0 + INTV, &BC_UP, &mut out);
            }
        }
    }
}
