//! Two links over a simulated network (`harness`): link setup, exactly-once in-order delivery
//! under loss, duplication and reordering, failure detection, bundling, the sequence wrap.

use super::*;
use crate::link::harness::{NetConfig, Pair, data_msg, data_of};
use crate::link::{DownReason, LinkEvent, LinkStats};
use crate::rand::Rng;

fn configs() -> (LinkConfig, LinkConfig) {
    (kcfg(K1, K2, 0x1111), kcfg(K2, K1, 0xeeee))
}

fn lossy() -> NetConfig {
    NetConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_millis(4),
        loss: 0.10,
        dup: 0.05,
    }
}

/// Mostly small messages, some medium, one in ten up to the 66,000-byte maximum.
fn mixed_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..60 => 1 + rng.below(300) as usize,
        60..90 => 300 + rng.below(2700) as usize,
        _ => 3000 + rng.below(63_001) as usize,
    }
}

/// Runs `n` messages each way with sizes from `len` and checks exactly-once in-order delivery;
/// returns the pair for further checks.
fn exchange(seed: u64, n: u32, net: NetConfig, len: fn(&mut Rng) -> usize) -> Pair {
    exchange_with(seed, n, net, len, false)
}

/// [`exchange`] with [`LinkConfig::bundle_bursts`] on both links or not.
fn exchange_with(
    seed: u64,
    n: u32,
    net: NetConfig,
    len: fn(&mut Rng) -> usize,
    bundle_bursts: bool,
) -> Pair {
    let (mut a, mut b) = configs();
    a.bundle_bursts = bundle_bursts;
    b.bundle_bursts = bundle_bursts;
    let mut p = Pair::new(seed, a, b, net);
    assert!(p.establish(T0 + 20 * INTV), "seed {seed}: link setup");
    let mut rng = Rng::new(seed ^ 0xdead_beef);
    let addrs = [(K1, K2), (K2, K1)];
    let mut expected: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    for (i, &(own, peer)) in addrs.iter().enumerate() {
        for k in 0..n {
            let m = data_msg(own, peer, 0, k, len(&mut rng));
            expected[i].push(m.clone());
            p.sides[i].pending.push_back(m);
        }
    }
    let deadline = p.now + Duration::from_secs(600);
    let drained = p.drain(deadline, [n as usize; 2]);
    for (i, want) in expected.iter().enumerate() {
        let got = &p.sides[1 - i].delivered;
        assert_eq!(got.len(), want.len(), "seed {seed}: count {i}->{}", 1 - i);
        for (k, (g, e)) in got.iter().zip(want).enumerate() {
            assert!(
                data_of(g) == data_of(e),
                "seed {seed}: message {k} from side {i} differs"
            );
        }
        let downs: Vec<_> = p.sides[i]
            .events
            .iter()
            .filter(|(_, e)| matches!(e, LinkEvent::Down { .. }))
            .collect();
        assert!(
            downs.is_empty(),
            "seed {seed}: side {i} went down: {downs:?}"
        );
    }
    assert!(drained, "seed {seed}: not drained by {deadline:?}");
    p
}

#[test]
fn links_come_up_from_reset_within_a_few_ticks() {
    for seed in 0..20 {
        let (a, b) = configs();
        let mut p = Pair::new(seed, a, b, NetConfig::clean());
        // Tick 1 sends RESETs, the peer's next tick the ACTIVATE, whose arrival brings one side
        // up; its opening STATE brings the other.
        assert!(p.establish(Instant::ZERO + 3 * INTV), "seed {seed}");
        for s in &p.sides {
            assert_eq!(s.events.len(), 1);
            assert_eq!(s.events[0].1, LinkEvent::Up);
        }
    }
}

#[test]
fn exactly_once_in_order_under_loss_duplication_and_reordering() {
    let mut total = LinkStats::default();
    let mut messages = 0;
    for seed in 0..30 {
        let p = exchange(seed, 250, lossy(), mixed_len);
        messages += p.sides[0].delivered.len() + p.sides[1].delivered.len();
        for s in &p.sides {
            let st = s.link.stats();
            total.sent_nacks += st.sent_nacks;
            total.recv_nacks += st.recv_nacks;
            total.retransmitted += st.retransmitted;
            total.recv_gap_ack_blocks += st.recv_gap_ack_blocks;
            total.gap_ack_released += st.gap_ack_released;
            total.duplicates += st.duplicates;
            total.deferred_recv += st.deferred_recv;
            total.sent_bundles += st.sent_bundles;
            total.recv_fragmented += st.recv_fragmented;
            total.sent_probes += st.sent_probes;
        }
    }
    assert_eq!(messages, 30 * 2 * 250);
    // Every recovery path ran.
    assert!(total.sent_nacks > 0 && total.recv_nacks > 0, "{total:?}");
    assert!(
        total.recv_gap_ack_blocks > 0 && total.gap_ack_released > 0,
        "{total:?}"
    );
    assert!(total.retransmitted > 0 && total.duplicates > 0, "{total:?}");
    assert!(
        total.deferred_recv > 0 && total.recv_fragmented > 0,
        "{total:?}"
    );
    assert!(total.sent_probes > 0, "{total:?}");
}

#[test]
fn burst_bundling_keeps_exactly_once_in_order_under_loss() {
    // The harness hands every waiting message over at one instant: with burst bundling on,
    // most of them travel in bundles, and loss, duplication and reordering change nothing.
    let mut bundled = 0;
    for seed in 200..210 {
        let p = exchange_with(seed, 250, lossy(), mixed_len, true);
        for s in &p.sides {
            bundled += s.link.stats().sent_bundled;
        }
    }
    assert!(bundled > 1000, "{bundled} messages bundled");
}

#[test]
fn maximum_size_messages_under_loss() {
    for seed in 100..103 {
        let p = exchange(seed, 25, lossy(), |rng| 1 + rng.below(66_000) as usize);
        assert!(p.sides[0].link.stats().recv_fragmented > 0);
    }
}

#[test]
fn silent_peer_detected_within_tolerance_plus_two_intervals() {
    for seed in 0..10 {
        let (a, b) = configs();
        let mut p = Pair::new(seed, a, b, NetConfig::clean());
        assert!(p.establish(T0));
        // Some traffic, then side 1 falls silent at a random moment.
        for k in 0..20 {
            p.sides[1].pending.push_back(data_msg(K2, K1, 0, k, 100));
        }
        let until = p.now + Duration::from_millis(1000 + Rng::new(seed).below(1000));
        p.run_until(until, |_| false);
        p.mute[1] = true;
        let done = p.run_until(p.now + Duration::from_secs(10), |p| {
            !p.sides[0].events.iter().all(|(_, e)| *e == LinkEvent::Up)
        });
        assert!(done, "seed {seed}: no failure");
        let (t_down, ev) = p.sides[0].events[1];
        assert_eq!(
            ev,
            LinkEvent::Down {
                reason: DownReason::Tolerance
            }
        );
        let last = p.sides[0].last_rx.expect("heard before");
        let silent = t_down - last;
        let tol = p.sides[0].link.tolerance();
        assert!(
            silent >= tol + INTV && silent <= tol + 2 * INTV,
            "seed {seed}: failure after {silent:?} of silence"
        );
    }
}

#[test]
fn bundling_when_the_window_is_full() {
    let (a, b) = configs();
    let mut p = Pair::new(7, a, b, NetConfig::clean());
    assert!(p.establish(T0));
    let msgs: Vec<Vec<u8>> = (0..300).map(|k| data_msg(K1, K2, 0, k, 32)).collect();
    p.sides[0].pending.extend(msgs.iter().cloned());
    assert!(p.drain(p.now + Duration::from_secs(10), [0, 300]));
    let got = &p.sides[1].delivered;
    assert_eq!(got.len(), 300);
    assert!(got.iter().zip(&msgs).all(|(g, m)| data_of(g) == data_of(m)));
    let (tx, rx) = (p.sides[0].link.stats(), p.sides[1].link.stats());
    assert!(tx.sent_bundles > 0, "{tx:?}");
    assert_eq!(
        (rx.recv_bundles, rx.recv_bundled),
        (tx.sent_bundles, tx.sent_bundled)
    );
    // A bundle holds at most (1428 − 40) / 64 = 21 of these messages.
    assert!(tx.sent_bundled <= 21 * tx.sent_bundles && tx.sent_bundled >= 250 - 50);
    assert!(tx.sent_pkts < 300 - 200);
}

#[test]
fn sequence_numbers_wrap() {
    let (a, b) = configs();
    let mut p = Pair::new(3, a, b, lossy());
    assert!(p.establish(T0 + 20 * INTV));
    p.sides[0].link.jump_sequence(65_400, 65_450);
    p.sides[1].link.jump_sequence(65_450, 65_400);
    let mut msgs = [Vec::new(), Vec::new()];
    for k in 0..400 {
        for (i, (own, peer)) in [(K1, K2), (K2, K1)].into_iter().enumerate() {
            let m = data_msg(own, peer, 0, k, 50 + (k as usize % 700));
            msgs[i].push(m.clone());
            p.sides[i].pending.push_back(m);
        }
    }
    assert!(p.drain(p.now + Duration::from_secs(120), [400, 400]));
    for (i, sent) in msgs.iter().enumerate() {
        let got = &p.sides[1 - i].delivered;
        assert_eq!(got.len(), 400);
        assert!(got.iter().zip(sent).all(|(g, m)| data_of(g) == data_of(m)));
        assert!(p.sides[i].events.iter().all(|(_, e)| *e == LinkEvent::Up));
    }
}
