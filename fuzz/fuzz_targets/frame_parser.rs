//! Fuzz target: whatever a bearer may deliver goes through `Frame::parse`; a frame that parses
//! must describe itself, re-emit, and parse back to the same representation, and so must every
//! whole message nested in it (bundles, tunnels), followed recursively.
//!
//! Panics are crashes. Besides codec panics, the assertions below make a lossy parse/emit pair a
//! crash: if re-parsing the re-emitted bytes of a parsed message gives a different `MessageRepr`,
//! that is a codec bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use utipc_proto::wire::describe::Describe;
use utipc_proto::wire::link_proto::StatePayload;
use utipc_proto::wire::message::Nested;
use utipc_proto::wire::{Frame, MessageRepr, Packet};

/// How deep `nested()` is followed (a tunnel may carry a bundle that carries a tunnel...).
const MAX_DEPTH: usize = 4;

/// A parsed message re-emits; the bytes pass the length checks and parse back to the same
/// message; re-emitting that gives the same bytes.
fn check_reemit(m: &MessageRepr<'_>) {
    let bytes = m
        .to_vec()
        .unwrap_or_else(|e| panic!("a parsed message does not re-emit: {e}\n{m:?}"));
    assert_eq!(
        bytes.len(),
        m.buffer_len(),
        "buffer_len disagrees with to_vec"
    );
    let p = Packet::new_checked(&bytes[..])
        .unwrap_or_else(|e| panic!("re-emitted bytes fail the length checks: {e}\n{m:?}"));
    let again = MessageRepr::parse(&p)
        .unwrap_or_else(|e| panic!("re-emitted bytes do not parse: {e}\n{m:?}"));
    assert_eq!(&again, m, "re-emitted bytes parse to another message");
    let twice = again.to_vec().expect("second re-emission");
    assert_eq!(twice, bytes, "re-emission is not a fixed point");
}

/// The STATE payload records, as a receiver reads them with or without gap-ack blocks.
fn check_state_payload(payload: &[u8]) {
    for gap_ack in [false, true] {
        if let Ok(sp) = StatePayload::parse(payload, gap_ack) {
            let mut out = vec![0xa5; sp.buffer_len()];
            sp.emit(&mut out).expect("state payload re-emits");
            assert_eq!(StatePayload::parse(&out, gap_ack), Ok(sp));
        }
    }
}

fn walk(m: &MessageRepr<'_>, depth: usize) {
    let _ = m.describe();
    if let MessageRepr::LinkProto(l) | MessageRepr::BcastProto(l) = m {
        check_state_payload(l.base.payload);
    }
    if depth >= MAX_DEPTH {
        return;
    }
    for n in m.nested() {
        match n {
            Nested::Message(p) => {
                if let Ok(inner) = MessageRepr::parse(&p) {
                    check_reemit(&inner);
                    walk(&inner, depth + 1);
                }
            }
            Nested::HeaderOnly(p) => {
                // Only the header of a FIRST_FRAGMENT's message: its size describes bytes that
                // are not here, so its re-emission differs; it must only not panic.
                if let Ok(inner) = MessageRepr::parse(&p) {
                    let _ = inner.to_vec();
                    walk(&inner, depth + 1);
                }
            }
            Nested::Malformed(e) => {
                let _ = e.to_string();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::parse(data) else {
        return;
    };
    let _ = frame.describe();
    let bytes = frame
        .to_vec()
        .unwrap_or_else(|e| panic!("a parsed frame does not re-emit: {e}\n{frame:?}"));
    assert_eq!(
        Frame::parse(&bytes),
        Ok(frame),
        "re-emitted frame parses differently"
    );
    if let Frame::Plain(m) = frame {
        check_reemit(&m);
        walk(&m, 0);
    }
});
