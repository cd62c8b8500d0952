//! Test support shared by the connection and topology-server tests: two nodes on one wire,
//! every frame delivered at once and in order (unless a test's tamper function drops or
//! rewrites it), timers run on a shared virtual clock.

use super::{Node, SocketEvent};
use crate::bearer::BearerId;
use crate::time::Instant;
use crate::wire::discovery::MediaAddr;

/// Rewrites a frame node `i` sends before it is recorded (a node playing another sender).
pub(super) type Rewrite<'a> = &'a mut dyn FnMut(usize, &mut Vec<u8>);

/// The wire: decides whether a recorded frame from node `i` reaches the other node (and may
/// change it on the way).
pub(super) type Wire<'a> = &'a mut dyn FnMut(usize, &mut Vec<u8>) -> bool;

/// Delivers frames until both nodes are quiet, recording every frame sent as (sender, bytes)
/// and every socket event per node. No event may name one of the node's internal ports.
pub(super) fn pump(
    n: &mut [Node; 2],
    now: Instant,
    macs: [MediaAddr; 2],
    frames: &mut Vec<(usize, Vec<u8>)>,
    events: &mut [Vec<SocketEvent>; 2],
    rewrite: Rewrite<'_>,
    wire: Wire<'_>,
) {
    for _ in 0..1_000_000 {
        let mut moved = false;
        for i in 0..2 {
            while let Some(tx) = n[i].poll_transmit() {
                moved = true;
                let mut data = tx.data;
                rewrite(i, &mut data);
                frames.push((i, data.clone()));
                if wire(i, &mut data) {
                    n[1 - i].handle_frame(now, BearerId(0), macs[i], &data);
                }
            }
        }
        for i in 0..2 {
            while n[i].poll_event().is_some() {}
            while let Some(e) = n[i].poll_socket_event() {
                assert!(
                    !n[i].is_internal_port(e.port()),
                    "internal port surfaced: {e:?}"
                );
                events[i].push(e);
            }
        }
        if !moved {
            return;
        }
    }
    panic!("the nodes never fall quiet");
}

/// Runs both nodes' timers until `end`, calling `pump` after every timer run.
pub(super) fn advance(
    n: &mut [Node; 2],
    now: &mut Instant,
    end: Instant,
    mut pump: impl FnMut(&mut [Node; 2], Instant),
) {
    pump(n, *now);
    for _ in 0..10_000_000 {
        let next = n.iter().filter_map(Node::poll_timeout).min();
        match next {
            Some(t) if t <= end => {
                *now = (*now).max(t);
                for node in n.iter_mut() {
                    if node.poll_timeout().is_some_and(|x| x <= *now) {
                        node.handle_timeout(*now);
                    }
                }
                pump(n, *now);
            }
            _ => {
                *now = end;
                return;
            }
        }
    }
    panic!("timers do not advance");
}
