//! One protocol rule at a time, against crafted peer messages.

use super::*;
use crate::link::bundle;
use crate::link::harness::data_msg;
use crate::link::{DownReason, LinkEvent, LinkState, SendError};
use crate::rand::Rng;
use crate::wire::User;
use crate::wire::link_proto::{GapAckBlock, GapAckRecord};

const S: u16 = 100;
const P: u16 = 200;

fn up() -> Link {
    up_link(K1, K2, S, P)
}

fn send_ok(l: &mut Link, now: Instant, msg: Vec<u8>) -> LinkOutput {
    let mut out = LinkOutput::default();
    l.send(now, msg, &BC_UP, &mut out).expect("sent");
    out
}

fn peer_state(seqno: u16, ack: u16, next_sent: u16) -> Proto {
    Proto::state(P, seqno, ack, next_sent)
}

fn seqnos(pkts: &[Vec<u8>]) -> Vec<u16> {
    pkts.iter()
        .map(|p| Packet::new_unchecked(&p[..]).seqno())
        .collect()
}

#[test]
fn reset_and_activate_timers() {
    let mut l = Link::new(kcfg(K1, K2, S), T0);
    let mut resets = Vec::new();
    for n in 1..=33 {
        let (_, out) = tick(&mut l, &BC_DOWN);
        for p in &out.transmit {
            let m = parse(p);
            assert_eq!(m.msg_type, LinkProtoType::Reset);
            assert!(!m.peer_stopping && m.bc_ack_invalid && !m.redundant_link);
            assert_eq!((m.priority, m.tolerance, m.max_pkt), (0, 0, 1500));
            resets.push(n);
        }
    }
    assert_eq!(resets, [1, 2, 3, 4, 5, 16, 32]);
    feed(&mut l, T0, &Proto::reset(P).bytes(K2, K1), &BC_DOWN);
    assert_eq!(l.state(), LinkState::Establishing);
    for _ in 0..5 {
        let (_, out) = tick(&mut l, &BC_DOWN);
        assert_eq!(out.transmit.len(), 1);
        let m = parse(&out.transmit[0]);
        assert_eq!(m.msg_type, LinkProtoType::Activate);
        assert_eq!(m.dest_session(), Some(P));
        assert_eq!(m.session, S);
    }
}

#[test]
fn session_rules() {
    let mut l = up();
    let rejected = l.stats().rejected_proto;
    // RESET with the current or an older session: ignored.
    for s in [P, P - 50] {
        let out = feed(&mut l, T0, &Proto::reset(s).bytes(K2, K1), &BC_UP);
        assert_eq!(out, LinkOutput::default());
        assert!(l.is_up());
    }
    // STATE with another session, even a probe: ignored.
    let mut probe = peer_state(2, 0, 1);
    probe.probe = true;
    probe.session = P + 1;
    assert!(
        feed(&mut l, T0, &probe.bytes(K2, K1), &BC_UP)
            .transmit
            .is_empty()
    );
    // STATE with an old counter: ignored. With a new one: answered.
    probe.session = P;
    probe.seqno = 1;
    assert!(
        feed(&mut l, T0, &probe.bytes(K2, K1), &BC_UP)
            .transmit
            .is_empty()
    );
    assert_eq!(l.stats().rejected_proto, rejected + 4);
    probe.seqno = 2;
    assert_eq!(
        feed(&mut l, T0, &probe.bytes(K2, K1), &BC_UP)
            .transmit
            .len(),
        1
    );
    // The same STATE again (a duplicate): ignored.
    assert!(
        feed(&mut l, T0, &probe.bytes(K2, K1), &BC_UP)
            .transmit
            .is_empty()
    );
    // ACTIVATE with the current session on an up link: harmless.
    let out = feed(&mut l, T0, &Proto::activate(P, S).bytes(K2, K1), &BC_UP);
    assert_eq!(out, LinkOutput::default());
    assert!(l.is_up());

    // Before the link is up: no STATE out of session, none with a non-zero ack.
    let mut l = Link::new(kcfg(K1, K2, S), T0);
    let st = peer_state(1, 0, 1).bytes(K2, K1);
    assert!(feed(&mut l, T0, &st, &BC_DOWN).events.is_empty());
    feed(&mut l, T0, &Proto::reset(P).bytes(K2, K1), &BC_DOWN);
    assert!(
        feed(&mut l, T0, &peer_state(1, 5, 1).bytes(K2, K1), &BC_DOWN)
            .events
            .is_empty()
    );
    assert_eq!(l.state(), LinkState::Establishing);
    assert_eq!(feed(&mut l, T0, &st, &BC_DOWN).events, [LinkEvent::Up]);
}

#[test]
fn activate_resynchronises_our_session() {
    let mut l = Link::new(kcfg(K1, K2, 10), T0);
    // The peer knows a newer session of ours than we use: jump past it, nothing else.
    let out = feed(&mut l, T0, &Proto::activate(P, 20).bytes(K2, K1), &BC_DOWN);
    assert_eq!(out, LinkOutput::default());
    assert_eq!(
        (l.session(), l.peer_session(), l.state()),
        (21, None, LinkState::Reset)
    );
    let (_, out) = tick(&mut l, &BC_DOWN);
    assert_eq!(parse(&out.transmit[0]).session, 21);
    // An older one: ignored.
    feed(&mut l, T0, &Proto::activate(P, 5).bytes(K2, K1), &BC_DOWN);
    assert_eq!(l.session(), 21);
    // Ours: RESET → ESTABLISHING → up in one go.
    let out = feed(&mut l, T0, &Proto::activate(P, 21).bytes(K2, K1), &BC_DOWN);
    assert_eq!(out.events, [LinkEvent::Up]);
    assert_eq!(parse(&out.transmit[0]).msg_type, LinkProtoType::State);
}

#[test]
fn peer_stopping_never_advances_a_link() {
    let mut stop = Proto::reset(P);
    stop.peer_stopping = true;
    // In RESET and ESTABLISHING a stopping RESET does nothing at all.
    let mut l = Link::new(kcfg(K1, K2, S), T0);
    assert_eq!(
        feed(&mut l, T0, &stop.bytes(K2, K1), &BC_DOWN),
        LinkOutput::default()
    );
    assert_eq!((l.state(), l.peer_session()), (LinkState::Reset, None));
    feed(&mut l, T0, &Proto::reset(P).bytes(K2, K1), &BC_DOWN);
    stop.session = P + 1;
    assert_eq!(
        feed(&mut l, T0, &stop.bytes(K2, K1), &BC_DOWN),
        LinkOutput::default()
    );
    assert_eq!(l.state(), LinkState::Establishing);
    // On an up link it takes the link down, and we announce our own stop.
    let mut l = up();
    send_ok(&mut l, T0, data_msg(K1, K2, 0, 1, 100));
    let out = feed(&mut l, T0, &stop.bytes(K2, K1), &BC_UP);
    assert_eq!(
        out.events,
        [LinkEvent::Down {
            reason: DownReason::PeerStopping
        }]
    );
    assert_eq!(out.transmit.len(), 1);
    let m = parse(&out.transmit[0]);
    assert_eq!(
        (m.msg_type, m.peer_stopping, m.session),
        (LinkProtoType::Reset, true, S + 1)
    );
    assert_eq!((l.state(), l.transmit_queue_len()), (LinkState::Reset, 0));
}

#[test]
fn plain_reset_from_the_peer_answers_with_activate() {
    let mut l = up();
    let out = feed(&mut l, T0, &Proto::reset(P + 1).bytes(K2, K1), &BC_UP);
    assert_eq!(
        out.events,
        [LinkEvent::Down {
            reason: DownReason::PeerReset
        }]
    );
    let m = parse(&out.transmit[0]);
    assert_eq!(m.msg_type, LinkProtoType::Activate);
    assert!(!m.peer_stopping);
    // The kernel forces a session re-sync: our copy of the peer session was decremented.
    assert_eq!((m.session, m.dest_session()), (S + 1, Some(P)));
    assert_eq!(
        (l.state(), l.peer_session()),
        (LinkState::Establishing, None)
    );
    // The peer's next RESET puts us in session; the next ACTIVATE names it.
    feed(&mut l, T0, &Proto::reset(P + 1).bytes(K2, K1), &BC_UP);
    assert_eq!(l.peer_session(), Some(P + 1));
    let (_, out) = tick(&mut l, &BC_UP);
    assert_eq!(parse(&out.transmit[0]).dest_session(), Some(P + 1));
}

#[test]
fn priority_rules() {
    let mut l = Link::new(kcfg(K1, K2, S), T0);
    let mut r = Proto::reset(P);
    r.priority = 5;
    feed(&mut l, T0, &r.bytes(K2, K1), &BC_DOWN);
    assert_eq!(l.priority(), 10, "RESET only raises the priority");
    let mut r = Proto::reset(P + 1);
    r.priority = 12;
    feed(&mut l, T0, &r.bytes(K2, K1), &BC_DOWN);
    assert_eq!(l.priority(), 12);

    let mut l = up();
    let mut st = peer_state(2, 0, 1);
    st.priority = 10;
    assert!(
        feed(&mut l, T0, &st.bytes(K2, K1), &BC_UP)
            .events
            .is_empty()
    );
    st.seqno = 3;
    st.priority = 20;
    let out = feed(&mut l, T0, &st.bytes(K2, K1), &BC_UP);
    assert_eq!(
        out.events,
        [LinkEvent::Down {
            reason: DownReason::PriorityChange
        }]
    );
    assert_eq!(l.priority(), 20);
    assert!(parse(&out.transmit[0]).peer_stopping);

    let mut l = up();
    let mut out = LinkOutput::default();
    l.set_priority(T0, 7, &BC_UP, &mut out);
    assert_eq!((l.priority(), parse(&out.transmit[0]).priority), (7, 7));
}

#[test]
fn tolerance_adoption() {
    let mut l = up();
    assert_eq!((l.interval(), l.abort_limit()), (INTV, 4));
    let mut st = peer_state(2, 0, 1);
    st.tolerance = 3000;
    feed(&mut l, T0, &st.bytes(K2, K1), &BC_UP);
    assert_eq!(l.tolerance(), Duration::from_secs(3));
    assert_eq!(
        (l.interval(), l.abort_limit()),
        (Duration::from_millis(500), 6)
    );
    st.seqno = 3;
    st.tolerance = 20;
    feed(&mut l, T0, &st.bytes(K2, K1), &BC_UP);
    assert_eq!(
        l.tolerance(),
        Duration::from_secs(3),
        "out of range: ignored"
    );

    let mut l = Link::new(kcfg(K1, K2, S), T0);
    let mut r = Proto::reset(P);
    r.tolerance = 1000;
    feed(&mut l, T0, &r.bytes(K2, K1), &BC_DOWN);
    assert_eq!(l.tolerance(), Duration::from_secs(1));

    let mut l = up();
    let mut out = LinkOutput::default();
    l.set_tolerance(T0, Duration::from_millis(800), &BC_UP, &mut out);
    assert_eq!(parse(&out.transmit[0]).tolerance, 800);
    assert_eq!(l.tolerance(), Duration::from_millis(800));
    // Routine STATEs carry 0.
    let (_, out) = tick(&mut l, &BC_UP);
    assert!(out.transmit.iter().all(|p| parse(p).tolerance == 0));
}

#[test]
fn mtu_negotiation() {
    let mut l = Link::new(kcfg(K1, K2, S), T0);
    let mut r = Proto::reset(P);
    r.max_pkt = 96;
    feed(&mut l, T0, &r.bytes(K2, K1), &BC_DOWN);
    assert_eq!(
        l.state(),
        LinkState::Reset,
        "max_pkt below the bearer minimum: ignored"
    );
    r.max_pkt = 1000;
    feed(&mut l, T0, &r.bytes(K2, K1), &BC_DOWN);
    feed(&mut l, T0, &peer_state(1, 0, 1).bytes(K2, K1), &BC_DOWN);
    assert!(l.is_up());
    assert_eq!((l.mtu(), l.mss()), (1000, 928));
    let out = send_ok(&mut l, T0, data_msg(K1, K2, 2, 0, 2000));
    let sizes: Vec<usize> = out.transmit.iter().map(Vec::len).collect();
    assert_eq!(sizes, [928, 928, 2032 + 3 * 40 - 2 * 928]);
    let mut out = LinkOutput::default();
    l.reset(T0, DownReason::Local, &BC_UP, &mut out);
    assert_eq!(l.mtu(), 1500, "back to the advertised MTU");
}

#[test]
fn data_while_establishing_brings_the_link_up_and_is_dropped() {
    let mut l = Link::new(kcfg(K1, K2, S), T0);
    feed(&mut l, T0, &Proto::reset(P).bytes(K2, K1), &BC_DOWN);
    let out = feed(&mut l, T0, &data(K2, K1, 1, 0, 10), &BC_DOWN);
    assert_eq!(out.events, [LinkEvent::Up]);
    assert!(
        out.deliver.is_empty(),
        "the packet is dropped unacknowledged"
    );
    let m = parse(&out.transmit[0]);
    assert_eq!((m.msg_type, m.base.common.ack), (LinkProtoType::State, 0));
    // Its retransmission is delivered.
    let out = feed(&mut l, T0, &data(K2, K1, 1, 0, 10), &BC_DOWN);
    assert_eq!(out.deliver.len(), 1);
}

#[test]
fn explicit_ack_after_16_packets() {
    let mut l = up();
    for s in 1..=15 {
        assert!(
            feed(&mut l, T0, &data(K2, K1, s, 0, 10), &BC_UP)
                .transmit
                .is_empty()
        );
    }
    let out = feed(&mut l, T0, &data(K2, K1, 16, 0, 10), &BC_UP);
    let m = parse(&out.transmit[0]);
    assert_eq!((m.base.common.ack, m.seq_gap, m.probe), (16, 0, false));
    // Sending anything restarts the count.
    for s in 17..=26 {
        feed(&mut l, T0, &data(K2, K1, s, 0, 10), &BC_UP);
    }
    send_ok(&mut l, T0, data_msg(K1, K2, 0, 0, 10));
    for s in 27..=41 {
        assert!(
            feed(&mut l, T0, &data(K2, K1, s, 0, 10), &BC_UP)
                .transmit
                .is_empty()
        );
    }
    assert_eq!(l.stats().duplicates, 0);
    feed(&mut l, T0, &data(K2, K1, 3, 0, 10), &BC_UP);
    assert_eq!(l.stats().duplicates, 1);
}

#[test]
fn nack_with_gap_ack_blocks() {
    let mut l = up();
    feed(&mut l, T0, &data(K2, K1, 1, 0, 10), &BC_UP);
    assert!(
        feed(&mut l, T0, &data(K2, K1, 3, 0, 10), &BC_UP)
            .transmit
            .is_empty()
    );
    assert!(
        feed(&mut l, T0, &data(K2, K1, 5, 0, 10), &BC_UP)
            .transmit
            .is_empty()
    );
    // Third parked packet: NACK with seq_gap = 3 − 2 and blocks for the runs 3, 5–6.
    let out = feed(&mut l, T0, &data(K2, K1, 6, 0, 10), &BC_UP);
    let m = parse(&out.transmit[0]);
    assert_eq!((m.base.common.ack, m.seq_gap, m.probe), (1, 1, false));
    let b = |ack, gap| GapAckBlock { ack, gap };
    assert_eq!(
        GapAckRecord::parse(m.base.payload).expect("record"),
        GapAckRecord {
            bcast: vec![],
            ucast: vec![b(3, 1), b(6, 0)]
        }
    );
    assert_eq!(l.stats().sent_nacks, 1);
    // The next NACK comes 16 parked packets later.
    for s in 7..=21 {
        assert!(
            feed(&mut l, T0, &data(K2, K1, s, 0, 10), &BC_UP)
                .transmit
                .is_empty()
        );
    }
    let out = feed(&mut l, T0, &data(K2, K1, 22, 0, 10), &BC_UP);
    assert_eq!(parse(&out.transmit[0]).seq_gap, 1);
    // The gaps fill: everything is delivered in order.
    let out = feed(&mut l, T0, &data(K2, K1, 2, 0, 10), &BC_UP);
    assert_eq!(out.deliver.len(), 2);
    let out = feed(&mut l, T0, &data(K2, K1, 4, 0, 10), &BC_UP);
    let order: Vec<u16> = out
        .deliver
        .iter()
        .map(|d| Packet::new_unchecked(&d[..]).seqno())
        .collect();
    assert_eq!(order, (4..=22).collect::<Vec<_>>());
}

#[test]
fn retransmission_on_nack_and_gap_ack_blocks() {
    let mut l = up();
    let mut sent = Vec::new();
    for i in 0..6 {
        sent.extend(send_ok(&mut l, T0, data_msg(K1, K2, 0, i, 50)).transmit);
    }
    assert_eq!(seqnos(&sent), [1, 2, 3, 4, 5, 6]);
    // We received 3 packets meanwhile: retransmissions carry the fresh ack.
    for s in 1..=3 {
        feed(&mut l, T0, &data(K2, K1, s, 0, 10), &BC_UP);
    }
    let mut st = peer_state(2, 1, 4);
    st.seq_gap = 1;
    let rec = GapAckRecord {
        bcast: vec![],
        ucast: vec![
            GapAckBlock { ack: 3, gap: 1 },
            GapAckBlock { ack: 6, gap: 0 },
        ],
    };
    st.payload = vec![0; rec.buffer_len()];
    rec.emit(&mut st.payload).expect("emit");
    let out = feed(&mut l, T0, &st.bytes(K2, K1), &BC_UP);
    assert_eq!(seqnos(&out.transmit), [2, 4]);
    for p in &out.transmit {
        assert_eq!(Packet::new_unchecked(&p[..]).ack(), 3);
    }
    assert_eq!(l.transmit_queue_len(), 2);
    assert_eq!(l.stats().gap_ack_released, 3);
    assert_eq!((l.stats().recv_nacks, l.stats().retransmitted), (1, 2));
    // Within 1 ms: not again. After: again.
    st.seqno = 3;
    assert!(
        feed(&mut l, T0, &st.bytes(K2, K1), &BC_UP)
            .transmit
            .is_empty()
    );
    st.seqno = 4;
    let later = T0 + Duration::from_millis(2);
    assert_eq!(
        seqnos(&feed(&mut l, later, &st.bytes(K2, K1), &BC_UP).transmit),
        [2, 4]
    );
    // A gap-ack record longer than the STATE: the whole STATE is dropped.
    st.seqno = 5;
    st.ack = 6;
    st.payload = vec![0, 12, 1, 0];
    let later = T0 + Duration::from_millis(4);
    assert!(
        feed(&mut l, later, &st.bytes(K2, K1), &BC_UP)
            .transmit
            .is_empty()
    );
    assert_eq!(l.transmit_queue_len(), 2);
}

#[test]
fn probes_replies_and_tail_loss() {
    let mut l = up();
    let mut probe = peer_state(2, 0, 1);
    probe.probe = true;
    probe.keepalive = true;
    let out = feed(&mut l, T0, &probe.bytes(K2, K1), &BC_UP);
    let m = parse(&out.transmit[0]);
    assert!(m.keepalive() && !m.probe && m.seq_gap == 0);
    // The peer sent up to 4 and nothing arrived: the reply is a NACK.
    probe.seqno = 3;
    probe.next_sent = 5;
    let m_out = feed(&mut l, T0, &probe.bytes(K2, K1), &BC_UP);
    assert_eq!(parse(&m_out.transmit[0]).seq_gap, 4);
    // A plain STATE with the same news: no reply.
    let st = peer_state(4, 0, 5);
    assert!(
        feed(&mut l, T0, &st.bytes(K2, K1), &BC_UP)
            .transmit
            .is_empty()
    );
    // With packets parked, a probe reply NACKs up to the first of them.
    feed(&mut l, T0, &data(K2, K1, 3, 0, 10), &BC_UP);
    probe.seqno = 5;
    let m_out = feed(&mut l, T0, &probe.bytes(K2, K1), &BC_UP);
    assert_eq!(parse(&m_out.transmit[0]).seq_gap, 2);
    assert_eq!(l.stats().recv_probes, 3);
}

#[test]
fn idle_link_probes_every_tick() {
    let mut l = up();
    let (_, out) = tick(&mut l, &BC_UP);
    assert!(
        out.transmit.is_empty(),
        "first tick: nothing pending, no checkpoint yet"
    );
    for _ in 0..3 {
        let (t, out) = tick(&mut l, &BC_UP);
        assert!(parse(&out.transmit[0]).probe);
        let reply = Proto {
            keepalive: true,
            ..peer_state(2 + l.stats().recv_states as u16, 0, 1)
        };
        feed(&mut l, t, &reply.bytes(K2, K1), &BC_UP);
    }
    assert!(l.is_up());
}

#[test]
fn retransmission_failure() {
    let mut l = up();
    send_ok(&mut l, T0, data_msg(K1, K2, 0, 0, 50));
    let mut nack = peer_state(2, 0, 1);
    nack.seq_gap = 1;
    assert_eq!(
        feed(&mut l, T0, &nack.bytes(K2, K1), &BC_UP).transmit.len(),
        1
    );
    nack.seqno = 3;
    let t = T0 + Duration::from_millis(15_000);
    assert!(
        feed(&mut l, t, &nack.bytes(K2, K1), &BC_UP)
            .events
            .is_empty()
    );
    nack.seqno = 4;
    let t = t + Duration::from_millis(1);
    let out = feed(&mut l, t, &nack.bytes(K2, K1), &BC_UP);
    assert_eq!(
        out.events,
        [LinkEvent::Down {
            reason: DownReason::RetransmitFailure
        }]
    );
    assert!(parse(&out.transmit[0]).peer_stopping);
}

#[test]
fn congestion() {
    let mut l = up();
    let mut out = LinkOutput::default();
    // 1000-byte messages cannot share a bundle: one backlog entry each.
    let mut accepted = 0;
    let err = loop {
        match l.send(T0, data_msg(K1, K2, 0, accepted, 968), &BC_UP, &mut out) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, SendError::Congested { importance: 0 });
    assert_eq!(accepted, 150, "window 50 + backlog 100");
    assert_eq!((out.transmit.len(), l.backlog_len(0)), (50, 100));
    assert!(l.is_congested(0) && !l.is_congested(1));
    assert_eq!(l.stats().link_congs, 1);
    l.send(T0, data_msg(K1, K2, 1, 0, 968), &BC_UP, &mut out)
        .expect("other importance still accepted");
    // An ack opens the window: the backlog moves, oldest first.
    let out = feed(&mut l, T0, &peer_state(2, 10, 1).bytes(K2, K1), &BC_UP);
    // Slow start grew the window by the 10 released packets: 20 move.
    assert_eq!(seqnos(&out.transmit), (51..=70).collect::<Vec<_>>());
    assert!(!l.is_congested(0));
}

#[test]
fn bursts_are_bundled_when_asked() {
    let mut cfg = kcfg(K1, K2, S);
    cfg.bundle_bursts = true;
    let mut l = up_link_with(cfg, P);
    let t1 = T0 + Duration::from_millis(1);
    let msgs: Vec<Vec<u8>> = (0..10).map(|k| data_msg(K1, K2, 0, k, 64)).collect();
    let mut out = LinkOutput::default();
    for m in &msgs {
        l.send(t1, m.clone(), &BC_UP, &mut out).expect("sent");
    }
    // The first goes at once; the other nine wait, and the timer is due at once.
    assert_eq!(seqnos(&out.transmit), [1]);
    assert!(l.is_corked());
    assert_eq!(l.poll_timeout(), Some(t1));
    assert_eq!(l.backlog_len(0), 1, "one bundle");
    let mut out = LinkOutput::default();
    l.handle_timeout(t1, &BC_UP, &mut out);
    assert_eq!(seqnos(&out.transmit), [2]);
    let b = Packet::new_checked(&out.transmit[0][..]).expect("valid");
    assert_eq!(User::from(b.user_raw()), User::MsgBundler);
    let (inner, skipped) = bundle::unbundle(&out.transmit[0]);
    assert_eq!((inner.as_slice(), skipped), (&msgs[1..], 0));
    assert!(!l.is_corked());
    assert_eq!(l.poll_timeout(), Some(T0 + INTV), "back to the link timer");
    assert_eq!((l.stats().sent_bundles, l.stats().sent_bundled), (1, 9));

    // Another instant: sent at once. At that instant internal messages and fragmented ones
    // are never held back, and data is released by an ack as well as by the timer.
    let t2 = t1 + Duration::from_micros(1);
    assert_eq!(seqnos(&send_ok(&mut l, t2, msgs[0].clone()).transmit), [3]);
    let named = data_msg(K1, K2, 11, 0, 64);
    assert_eq!(seqnos(&send_ok(&mut l, t2, named).transmit), [4]);
    let long = data_msg(K1, K2, 0, 1, 3000);
    assert_eq!(seqnos(&send_ok(&mut l, t2, long).transmit), [5, 6, 7]);
    assert!(send_ok(&mut l, t2, msgs[1].clone()).transmit.is_empty());
    assert!(send_ok(&mut l, t2, msgs[2].clone()).transmit.is_empty());
    let out = feed(&mut l, t2, &peer_state(2, 3, 1).bytes(K2, K1), &BC_UP);
    assert_eq!(seqnos(&out.transmit), [8]);
    assert!(!l.is_corked());

    // Off (the default): one packet per message, as the kernel sends them.
    let mut l = up();
    let mut out = LinkOutput::default();
    for m in &msgs {
        l.send(t1, m.clone(), &BC_UP, &mut out).expect("sent");
    }
    assert_eq!(seqnos(&out.transmit), (1..=10).collect::<Vec<_>>());
    assert!(!l.is_corked());
}

#[test]
fn system_backlog_overflow_resets_the_link() {
    let mut l = up();
    let mut out = LinkOutput::default();
    // NAME_DISTRIBUTOR messages of 1000 bytes: system importance, limit 873.
    let mut named = vec![0u8; 1000];
    named[..4].copy_from_slice(&(0x5740_0000u32 | 1000).to_be_bytes());
    let mut n = 0;
    let err = loop {
        match l.send(T0, named.clone(), &BC_UP, &mut out) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!((err, n), (SendError::Congested { importance: 4 }, 50 + 873));
    assert_eq!(
        out.events,
        [LinkEvent::Down {
            reason: DownReason::Local
        }]
    );
}

#[test]
fn send_errors() {
    let mut l = Link::new(kcfg(K1, K2, S), T0);
    let mut out = LinkOutput::default();
    let msg = data_msg(K1, K2, 0, 0, 10);
    assert_eq!(l.send(T0, msg, &BC_UP, &mut out), Err(SendError::NotUp));
    let mut l = up();
    let big = data_msg(K1, K2, 0, 0, 66_001 + 28);
    assert_eq!(l.send(T0, big, &BC_UP, &mut out), Err(SendError::TooLarge));
    assert_eq!(
        l.send(T0, vec![0xff; 50], &BC_UP, &mut out),
        Err(SendError::Malformed)
    );
    let reset = Proto::reset(1).bytes(K1, K2);
    assert_eq!(
        l.send(T0, reset, &BC_UP, &mut out),
        Err(SendError::Malformed)
    );
    assert!(out.transmit.is_empty());
    let max = data_msg(K1, K2, 0, 0, 66_000);
    assert_eq!(l.send(T0, max, &BC_UP, &mut out), Ok(()));
    assert_eq!(out.transmit.len(), 48);
}

#[test]
fn fragment_out_of_place_fails_the_link() {
    let mut l = up();
    let mut frag = crate::link::frag::fragment(&data_msg(K2, K1, 0, 0, 3000), 1428, K2, K1, 0)
        .expect("fragments");
    let mut middle = frag.remove(1);
    Packet::new_unchecked(&mut middle[..]).set_ack_seqno(0, 1);
    let out = feed(&mut l, T0, &middle, &BC_UP);
    assert_eq!(
        out.events,
        [LinkEvent::Down {
            reason: DownReason::ReassemblyFailure
        }]
    );
    assert!(parse(&out.transmit[0]).peer_stopping);
}

#[test]
fn node_reset_takes_the_link_down() {
    let mut l = up();
    send_ok(&mut l, T0, data_msg(K1, K2, 0, 0, 10));
    let mut out = LinkOutput::default();
    l.reset(T0, DownReason::Local, &BC_UP, &mut out);
    assert_eq!(
        out.events,
        [LinkEvent::Down {
            reason: DownReason::Local
        }]
    );
    let m = parse(&out.transmit[0]);
    assert!(m.peer_stopping && m.msg_type == LinkProtoType::Reset);
    assert_eq!(
        (l.state(), l.transmit_queue_len(), l.session()),
        (LinkState::Reset, 0, S + 1)
    );
    // A link that is not up: no Down, but the stopping RESET still goes out.
    let mut out = LinkOutput::default();
    l.reset(T0, DownReason::Local, &BC_UP, &mut out);
    assert!(out.events.is_empty());
    assert!(parse(&out.transmit[0]).peer_stopping);
}

#[test]
fn sequenced_packets_report_broadcast_acks() {
    let mut l = up();
    let mut pkt = data(K2, K1, 1, 0, 10);
    Packet::new_unchecked(&mut pkt[..]).set_bcast_ack(7);
    let out = feed(&mut l, T0, &pkt, &BC_UP);
    assert_eq!((out.peer_bcast.len(), out.peer_bcast[0].bcast_ack), (1, 7));
    assert!(!out.peer_bcast[0].is_state);
    let st = feed(&mut l, T0, &peer_state(2, 0, 2).bytes(K2, K1), &BC_UP);
    assert!(st.peer_bcast[0].is_state && st.peer_bcast[0].bc_ack_invalid);
}

#[test]
fn capabilities_decide_the_state_format() {
    // A peer without LINK_PROTO_SEQNO and GAP_ACK_BLOCK: STATE seqno = snd_nxt + 32767 and
    // no gap-ack record; its STATEs are taken without counter check or record.
    let mut cfg = kcfg(K1, K2, S);
    cfg.peer_caps = 0x3f;
    let mut l = Link::new(cfg, T0);
    feed(&mut l, T0, &Proto::reset(P).bytes(K2, K1), &BC_DOWN);
    let mut st = peer_state(40_000, 0, 1);
    st.payload = Vec::new();
    let out = feed(&mut l, T0, &st.bytes(K2, K1), &BC_DOWN);
    assert_eq!(out.events, [LinkEvent::Up]);
    assert_eq!(out.transmit[0].len(), 40);
    let m = parse(&out.transmit[0]);
    assert_eq!(m.base.common.seqno, 32_768);
    st.seqno = 7;
    st.probe = true;
    let out = feed(&mut l, T0, &st.bytes(K2, K1), &BC_UP);
    assert_eq!(out.transmit.len(), 1, "old counter accepted: not in use");
    // We advertise neither: the peer's record is not parsed, even a nonsensical one.
    let mut cfg = kcfg(K1, K2, S);
    cfg.own_caps = 0x3f;
    let mut l = Link::new(cfg, T0);
    feed(&mut l, T0, &Proto::reset(P).bytes(K2, K1), &BC_DOWN);
    feed(&mut l, T0, &peer_state(1, 0, 1).bytes(K2, K1), &BC_DOWN);
    st.seqno = 2;
    st.payload = vec![0xff; 8];
    assert_eq!(
        feed(&mut l, T0, &st.bytes(K2, K1), &BC_UP).transmit.len(),
        1
    );
}

/// Random bytes, truncations and mutations of valid packets, in every state: no panic.
#[test]
fn garbage_never_panics() {
    let mut rng = Rng::new(0x5eed);
    let valid: Vec<Vec<u8>> = vec![
        Proto::reset(P).bytes(K2, K1),
        Proto::activate(P, S).bytes(K2, K1),
        peer_state(2, 0, 1).bytes(K2, K1),
        data(K2, K1, 1, 0, 100),
        bundle::start(&data(K2, K1, 0, 0, 30), K2, K1, 0),
        crate::link::frag::fragment(&data_msg(K2, K1, 0, 0, 3000), 1428, K2, K1, 0)
            .expect("fragments")
            .remove(0),
    ];
    let mut links = [Link::new(kcfg(K1, K2, S), T0), up(), up()];
    feed(&mut links[0], T0, &Proto::reset(P).bytes(K2, K1), &BC_UP);
    let mut now = T0;
    for i in 0..30_000u32 {
        let pkt = match rng.below(4) {
            0 => {
                let len = rng.below(120) as usize;
                (0..len).map(|_| rng.next_u32() as u8).collect()
            }
            1 => {
                let v = &valid[rng.below(valid.len() as u64) as usize];
                v[..rng.below(v.len() as u64 + 1) as usize].to_vec()
            }
            _ => {
                let mut v = valid[rng.below(valid.len() as u64) as usize].clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(v.len() as u64) as usize;
                    v[at] = rng.next_u32() as u8;
                }
                // Keep most of them plausible: version 2.
                if rng.chance(0.8) {
                    v[0] = (v[0] & 0x1f) | 0x40;
                }
                v
            }
        };
        let l = &mut links[(i % 3) as usize];
        let mut out = LinkOutput::default();
        l.handle_packet(now, &pkt, &BC_UP, &mut out);
        if i % 97 == 0 {
            now += Duration::from_millis(50);
            l.handle_timeout(now, &BC_UP, &mut out);
        }
    }
}

#[test]
fn tick_acks_broadcast_progress_without_other_traffic() {
    let mut l = up();
    let mut out = LinkOutput::default();
    let t = l.poll_timeout().expect("armed");
    l.send_state(t, false, &BC_UP, &mut out);
    // Nothing pending on the unicast link; only the broadcast receive link moved.
    let bc = BcastCtx {
        rcv_ack: 7,
        ..BC_UP
    };
    let (_, out) = tick(&mut l, &bc);
    let states: Vec<_> = out.transmit.iter().map(|p| parse(p)).collect();
    assert_eq!(states.len(), 1, "one STATE carries the new broadcast ack");
    assert_eq!(states[0].base.common.bcast_ack, 7);
    // Acked now: the next tick has no reason beyond the idle probe.
    let (_, out) = tick(&mut l, &bc);
    assert!(out.transmit.iter().all(|p| parse(p).probe));
}
