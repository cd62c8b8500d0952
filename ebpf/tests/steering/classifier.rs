//! The classifier under `BPF_PROG_TEST_RUN`: crafted frames, no interface. Each test loads its
//! own program, so counters start at zero.

use utipc_ebpf::{Counter, Counters, SteerConfig, SteeringError, SteeringProgram, XdpAction};

use crate::frames::{self, Case, Rng, Verdict};
use crate::netns::{netns, privileged};
use crate::sockets::{Xsk, if_index};

fn load() -> SteeringProgram {
    SteeringProgram::load().unwrap_or_else(|e| panic!("loading the program: {e}"))
}

/// The action and counter a verdict must produce, with or without a registered socket.
fn expected(verdict: Verdict, socket: bool) -> (XdpAction, Counter) {
    match (verdict, socket) {
        (Verdict::Steer, true) => (XdpAction::Redirect, Counter::Steered),
        (Verdict::Steer, false) => (XdpAction::Pass, Counter::NoSocket),
        (Verdict::Pass, _) => (XdpAction::Pass, Counter::Passed),
        (Verdict::Drop, _) => (XdpAction::Drop, Counter::Dropped),
    }
}

/// Runs `frame` and asserts the action and that exactly `counter` went up by one.
fn run_one(prog: &SteeringProgram, what: &str, frame: &[u8], verdict: Verdict, socket: bool) {
    let (action, counter) = expected(verdict, socket);
    let before = prog.counters().expect("counters");
    let got = prog
        .test_run(frame)
        .unwrap_or_else(|e| panic!("{what} ({} bytes): {e}", frame.len()));
    assert_eq!(got, action, "{what} ({} bytes): action", frame.len());
    let after = prog.counters().expect("counters");
    for c in Counter::ALL {
        let delta = after.get(c) - before.get(c);
        let want = u64::from(c == counter);
        assert_eq!(delta, want, "{what} ({} bytes): counter {c:?}", frame.len());
    }
}

fn run_cases(prog: &SteeringProgram, cases: &[Case], socket: bool) -> Counters {
    for c in cases {
        run_one(prog, c.name, &c.frame, c.verdict, socket);
    }
    prog.counters().expect("counters")
}

fn tally(cases: &[Case], socket: bool) -> Counters {
    let mut want = Counters::default();
    for c in cases {
        match expected(c.verdict, socket).1 {
            Counter::Steered => want.steered += 1,
            Counter::Passed => want.passed += 1,
            Counter::Dropped => want.dropped += 1,
            Counter::NoSocket => want.no_socket += 1,
        }
    }
    want
}

#[test]
fn crafted_frames_without_a_socket() {
    if !privileged("crafted_frames_without_a_socket") {
        return;
    }
    let prog = load();
    let cases = frames::cases();
    let got = run_cases(&prog, &cases, false);
    assert_eq!(got, tally(&cases, false));
    assert_eq!(got.steered, 0);
    assert!(
        got.no_socket >= 10 && got.passed >= 10 && got.dropped == 3,
        "{got}"
    );
}

/// With an AF_XDP socket bound to `lo` queue 0 of a fresh namespace and registered for queue
/// 0, TIPC frames are redirected (`BPF_PROG_TEST_RUN` runs the program as if the frame came in
/// on that namespace's loopback, queue 0).
#[test]
fn crafted_frames_with_a_socket_are_redirected() {
    if !privileged("crafted_frames_with_a_socket_are_redirected") {
        return;
    }
    let ns = netns("lo");
    let mut prog = load();
    ns.run(|| {
        let xsk = Xsk::bind(if_index("lo"), 0).expect("AF_XDP socket on lo");
        prog.register_xsk(0, xsk.raw_fd()).expect("register");
        let cases = frames::cases();
        let got = run_cases(&prog, &cases, true);
        assert_eq!(got, tally(&cases, true));

        // Unregistered again: TIPC counts as "no socket"; unregistering twice is fine.
        prog.unregister_xsk(0).expect("unregister");
        prog.unregister_xsk(0).expect("unregister again");
        run_one(
            &prog,
            "tipc after unregister",
            &frames::tipc_frame(&[], 60),
            Verdict::Steer,
            false,
        );
    });
}

#[test]
fn truncated_frames_of_every_length() {
    if !privileged("truncated_frames_of_every_length") {
        return;
    }
    let prog = load();
    // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header (EINVAL), so lengths
    // start at 14; the program itself passes shorter ones.
    for c in frames::cases() {
        for len in 14..=c.frame.len().min(200) {
            let frame = &c.frame[..len];
            let verdict = frames::model(frame, true, true);
            run_one(
                &prog,
                &format!("{} cut to {len}", c.name),
                frame,
                verdict,
                false,
            );
        }
    }
    let e = prog.test_run(&[0u8; 13]).expect_err("13 bytes");
    assert!(matches!(e, SteeringError::TestRun(_)), "{e}");
}

/// Random byte flips and cuts of the crafted frames, judged by the reference model.
#[test]
fn mutated_frames_match_the_model() {
    if !privileged("mutated_frames_match_the_model") {
        return;
    }
    let prog = load();
    let cases = frames::cases();
    let mut rng = Rng::new(0x7419_c0de);
    let mut want = Counters::default();
    for round in 0..3000 {
        let base = &cases[rng.below(cases.len())].frame;
        let mut frame = base.clone();
        for _ in 0..=rng.below(3) {
            // Mostly header bytes, where decisions are made.
            let at = rng.below(frame.len().min(80));
            let bits = u8::try_from(rng.below(256)).expect("byte");
            frame[at] ^= bits.max(1);
        }
        if rng.below(4) == 0 {
            frame.truncate(14 + rng.below(frame.len() - 13));
        }
        let verdict = frames::model(&frame, true, true);
        let (action, counter) = expected(verdict, false);
        let got = prog.test_run(&frame).expect("test run");
        assert_eq!(got, action, "round {round}: {frame:02x?}");
        match counter {
            Counter::Steered => want.steered += 1,
            Counter::Passed => want.passed += 1,
            Counter::Dropped => want.dropped += 1,
            Counter::NoSocket => want.no_socket += 1,
        }
    }
    assert_eq!(prog.counters().expect("counters"), want);
}

#[test]
fn config_switches_classes_off() {
    if !privileged("config_switches_classes_off") {
        return;
    }
    let mut prog = load();
    assert_eq!(prog.config().expect("config"), SteerConfig::default());
    let cases = frames::cases();
    for (ethernet, udp) in [(false, true), (true, false), (false, false), (true, true)] {
        let config = SteerConfig { ethernet, udp };
        prog.set_config(config).expect("set config");
        assert_eq!(prog.config().expect("config"), config);
        for c in &cases {
            let verdict = frames::model(&c.frame, ethernet, udp);
            run_one(
                &prog,
                &format!("{} with {config:?}", c.name),
                &c.frame,
                verdict,
                false,
            );
        }
    }
}

#[test]
fn queue_range_and_bad_socket_are_errors() {
    if !privileged("queue_range_and_bad_socket_are_errors") {
        return;
    }
    let mut prog = load();
    let e = prog
        .register_xsk(utipc_ebpf::MAX_QUEUES, 0)
        .expect_err("queue out of range");
    assert!(
        matches!(e, SteeringError::QueueOutOfRange { queue: 64, max: 64 }),
        "{e}"
    );
    let e = prog.unregister_xsk(1000).expect_err("queue out of range");
    assert!(matches!(e, SteeringError::QueueOutOfRange { .. }), "{e}");
    // Standard error is not an AF_XDP socket.
    let e = prog.register_xsk(0, 2).expect_err("not an AF_XDP socket");
    assert!(matches!(e, SteeringError::Map { .. }), "{e}");
}

#[test]
fn free_test_run_helper() {
    if !privileged("free_test_run_helper") {
        return;
    }
    let tipc = frames::tipc_frame(&[], 60);
    assert_eq!(utipc_ebpf::test_run(&tipc).expect("run"), XdpAction::Pass);
    let runt = frames::tipc_frame(&[], 4);
    assert_eq!(utipc_ebpf::test_run(&runt).expect("run"), XdpAction::Drop);
}

/// Capabilities are per thread: a thread that drops some from its effective set gets the
/// actionable errors, while the rest of the process keeps them.
#[test]
fn missing_capabilities_are_named() {
    if !privileged("missing_capabilities_are_named") {
        return;
    }
    // Load once with full capabilities first: aya probes kernel features once per process.
    drop(load());
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let without = |caps: &'static [u32]| {
        std::thread::spawn(move || {
            drop_effective(caps);
            SteeringProgram::load().expect_err("load without capabilities")
        })
        .join()
        .expect("thread")
    };

    let e = without(&[CAP_SYS_ADMIN, CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON]);
    let text = e.to_string();
    eprintln!("without any: {text}");
    assert!(matches!(e, SteeringError::Permission { .. }), "{text}");
    assert!(
        text.contains("missing CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON"),
        "{text}"
    );
    assert!(
        text.ends_with("run as root or grant cap_bpf,cap_net_admin,cap_perfmon"),
        "{text}"
    );

    // Without CAP_PERFMON the verifier refuses the IHL-dependent packet offset.
    let e = without(&[CAP_SYS_ADMIN, CAP_PERFMON]);
    let text = e.to_string();
    eprintln!("without CAP_PERFMON: {text}");
    assert!(matches!(e, SteeringError::Permission { .. }), "{text}");
    assert!(text.contains("missing CAP_PERFMON"), "{text}");
}

/// Clears `caps` from the calling thread's effective set (raw capset: per thread).
fn drop_effective(caps: &[u32]) {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two Data entries for version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    for &cap in caps {
        let word = usize::try_from(cap / 32).expect("small");
        data[word].effective &= !(1 << (cap % 32));
    }
    // SAFETY: capset reads the header and two Data entries.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}
