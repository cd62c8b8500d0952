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
        drop(first);
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
