//! The fault injector around a real bearer (AF_PACKET over a veth pair): configured rates,
//! the same faults for the same seed, and delays driven by the caller's waits.

use std::time::{Duration, Instant};

use utipc_proto::bearer::Dest;
use utipc_proto::wire::discovery::MediaAddr;

use super::netns::{Pair, VETH, available, veth_pair};
use super::{BUF, expect_frame};
use crate::bearer::Bearer;
use crate::bearer::fault::{FaultConfig, FaultCounters, FaultInjector, Faults};
use crate::bearer::packet::PacketBearer;

const FRAMES: u32 = 3000;
const CHUNK: u32 = 100;

/// Sends `FRAMES` numbered frames from a to b's injector, in chunks that the socket buffers
/// hold, and returns the numbers b delivered (in order) and what the injector did.
fn run(pair: &Pair, cfg: FaultConfig) -> (Vec<u32>, FaultCounters) {
    let mut a = pair
        .a
        .run(|| PacketBearer::open(VETH))
        .expect("bearer in a");
    let b = pair
        .b
        .run(|| PacketBearer::open(VETH))
        .expect("bearer in b");
    let to_b = Dest::Unicast(b.local_addr());
    let mut b = FaultInjector::new(b, cfg);
    let mut got = Vec::new();
    let mut scratch = vec![0u8; BUF];
    let mut deliver = |b: &mut FaultInjector<PacketBearer>| {
        b.recv_batch(&mut scratch, 64, &mut |f, _| {
            got.push(u32::from_be_bytes(f[..4].try_into().expect("4 bytes")));
        })
        .expect("recv_batch")
    };
    for chunk in 0..FRAMES / CHUNK {
        for i in chunk * CHUNK..(chunk + 1) * CHUNK {
            let mut frame = i.to_be_bytes().to_vec();
            frame.resize(64, 0);
            a.send(&to_b, &frame).expect("send");
        }
        let sent = u64::from((chunk + 1) * CHUNK);
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.fault_stats().rx.frames < sent {
            assert!(
                Instant::now() < deadline,
                "b saw {} of {sent} frames",
                b.fault_stats().rx.frames
            );
            if deliver(&mut b) == 0 {
                b.wait_readable(Duration::from_millis(100)).expect("poll");
            }
        }
    }
    b.release_held().expect("release");
    while deliver(&mut b) > 0 {}
    assert_eq!(b.held(), 0);
    assert_eq!(b.inner().stats().counters.rx_frames, u64::from(FRAMES));
    (got, b.fault_stats().rx)
}

fn lossy(seed: u64) -> FaultConfig {
    FaultConfig::rx(
        seed,
        Faults {
            drop: 0.10,
            duplicate: 0.05,
            reorder: 0.10,
            reorder_depth: 3,
            // Reordering by frame count only, so the outcome does not depend on timing.
            reorder_timeout: Duration::from_secs(3600),
            ..Faults::NONE
        },
    )
}

#[test]
fn fault_injector_over_af_packet_is_seeded() {
    if !available("fault_injector_over_af_packet_is_seeded") {
        return;
    }
    let pair = veth_pair(None, None);
    let (first, c) = run(&pair, lossy(11));
    let n = f64::from(FRAMES);
    let rate = |k: u64| k as f64 / n;
    assert!((0.08..0.12).contains(&rate(c.dropped)), "{c:?}");
    assert!((0.03..0.07).contains(&rate(c.duplicated)), "{c:?}");
    assert!((0.06..0.12).contains(&rate(c.reordered)), "{c:?}");
    assert_eq!(
        first.len() as u64,
        u64::from(FRAMES) - c.dropped + c.duplicated
    );
    let inversions = first.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(inversions > 100, "{inversions} inversions");

    let (again, c2) = run(&pair, lossy(11));
    assert_eq!(again, first, "the same seed gives the same faults");
    assert_eq!(c2, c);
    let (other, _) = run(&pair, lossy(12));
    assert_ne!(other, first, "another seed gives other faults");
}

#[test]
fn fault_injector_delays_by_the_clock() {
    if !available("fault_injector_delays_by_the_clock") {
        return;
    }
    let pair = veth_pair(None, None);
    let mut a = pair.a.run(|| PacketBearer::open(VETH)).expect("bearer a");
    let b = pair.b.run(|| PacketBearer::open(VETH)).expect("bearer b");
    let mac_b = b.local_addr();
    let delay = Duration::from_millis(80);
    let mut b = FaultInjector::new(
        b,
        FaultConfig::rx(
            1,
            Faults {
                delay: 1.0,
                delay_min: delay,
                delay_max: delay,
                ..Faults::NONE
            },
        ),
    );
    let t0 = Instant::now();
    a.send(&Dest::Unicast(mac_b), b"delayed frame")
        .expect("send");
    let (frame, meta) = expect_frame(&mut b, "the delayed frame");
    assert_eq!(frame, b"delayed frame");
    assert_eq!(meta.src, a.local_addr());
    assert!(t0.elapsed() >= delay, "held for {:?}", t0.elapsed());
    let c = b.fault_stats().rx;
    assert_eq!((c.delayed, c.released), (1, 1));
    assert!(matches!(meta.dst, MediaAddr::Eth(_)));
}
