//! `--bearer eth:IFACE` takes AF_XDP when it can and otherwise AF_PACKET, saying in one line
//! why; `--bearer xdp:IFACE` insists on AF_XDP. Run in a throwaway network namespace with a
//! veth pair (root needed; skipped with a message otherwise unless UTIPC_REQUIRE_NETNS=1).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

use utipc_control::node_setup::{SetupError, open_ethernet};

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn eth_prefers_af_xdp_and_falls_back_with_a_reason() {
    // Creating a namespace needs CAP_SYS_ADMIN: without it the test cannot run.
    let name = format!("utbs-{}", std::process::id());
    if !ip(&["netns", "add", &name]) {
        assert!(
            std::env::var("UTIPC_REQUIRE_NETNS").map_or(true, |v| v != "1"),
            "network namespaces are required (UTIPC_REQUIRE_NETNS=1) but `ip netns add` failed"
        );
        eprintln!("skipping: cannot create a network namespace (not root?)");
        return;
    }
    let ns = Ns(name);
    assert!(ip(&[
        "-n", &ns.0, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"
    ]));
    assert!(ip(&["-n", &ns.0, "link", "set", "veth0", "up"]));
    assert!(ip(&["-n", &ns.0, "link", "set", "veth1", "up"]));
    let file = File::open(format!("/var/run/netns/{}", ns.0)).expect("netns file");
    let fd = file.as_raw_fd();
    let notes = std::thread::spawn(move || {
        // SAFETY: `fd` is the namespace file, open for the whole test; setns changes only
        // this thread's network namespace.
        let r = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let (first, note1) = open_ethernet("veth0", false).expect("first bearer");
        // The steering program of the first bearer holds the interface: the second falls
        // back to AF_PACKET and says why, and xdp: refuses.
        let (_second, note2) = open_ethernet("veth0", false).expect("fallback bearer");
        let insist = open_ethernet("veth0", true).map(|_| ());
        // Dropping the AF_XDP bearer detaches its steering program (the bearer's guard), so
        // AF_XDP is available again.
        drop(first);
        drop(_second);
        let again = open_ethernet("veth0", true).map(|(_, note)| note);
        assert!(
            again.as_ref().is_ok_and(|n| n.starts_with("AF_XDP ")),
            "{again:?}"
        );
        (note1, note2, insist)
    })
    .join()
    .expect("thread");
    let (note1, note2, insist) = notes;
    assert!(note1.starts_with("AF_XDP "), "{note1}");
    assert!(
        note2.starts_with("AF_XDP unavailable, using AF_PACKET: "),
        "{note2}"
    );
    assert!(!note2.contains('\n'), "one line: {note2}");
    match insist {
        Err(e @ SetupError::NoXdp(..)) => {
            assert!(e.to_string().contains("use eth:veth0"), "{e}");
        }
        other => panic!("xdp: should refuse: {other:?}"),
    }
    drop(file);
}

#[test]
fn pcap_option_captures_what_the_node_sends() {
    let name = format!("utbp-{}", std::process::id());
    if !ip(&["netns", "add", &name]) {
        assert!(
            std::env::var("UTIPC_REQUIRE_NETNS").map_or(true, |v| v != "1"),
            "network namespaces are required (UTIPC_REQUIRE_NETNS=1) but `ip netns add` failed"
        );
        eprintln!("skipping: cannot create a network namespace (not root?)");
        return;
    }
    let ns = Ns(name);
    assert!(ip(&[
        "-n", &ns.0, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"
    ]));
    assert!(ip(&["-n", &ns.0, "link", "set", "veth0", "up"]));
    assert!(ip(&["-n", &ns.0, "link", "set", "veth1", "up"]));
    let dir = std::env::temp_dir().join(format!("utbp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("node.pcap");
    let file = File::open(format!("/var/run/netns/{}", ns.0)).expect("netns file");
    let fd = file.as_raw_fd();
    let p = path.clone();
    std::thread::spawn(move || {
        // SAFETY: `fd` is the namespace file, open for the whole test; setns changes only
        // this thread's network namespace.
        let r = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let mut opts = utipc_control::config::NodeOptions::default();
        opts.set_id("pcapnode").expect("id");
        opts.bearers.push(utipc_control::config::BearerSpec::Eth {
            iface: "veth0".into(),
        });
        opts.pcap = Some(p);
        let mut rt = utipc_control::node_setup::start(&opts, 1).expect("node");
        // The trial's discovery messages go out in the first 400 ms.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(400);
        while std::time::Instant::now() < deadline {
            rt.poll(std::time::Duration::from_millis(20), &[])
                .expect("poll");
        }
        rt.shutdown();
    })
    .join()
    .expect("thread");
    let (frames, _) = utipc_control::capture::read_capture(&path).expect("pcap readable");
    assert!(frames.len() >= 3, "{} frames", frames.len());
    for f in &frames {
        // Every captured frame is a TIPC discovery message from our node.
        assert_eq!(f.tipc[0] >> 5, 2);
        assert_eq!((f.tipc[0] >> 1) & 0xf, 13, "LINK_CONFIG");
    }
    let _ = std::fs::remove_dir_all(&dir);
    drop(file);
}
