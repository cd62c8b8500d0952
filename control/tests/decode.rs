//! `utipc decode` end to end: the binary over the kernel captures, text and JSON, and its exit
//! status on bad input.

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut files = Vec::new();
    for dir in ["pcap", "pcapng"] {
        for e in std::fs::read_dir(root.join(dir)).expect("fixture dir") {
            files.push(e.expect("entry").path());
        }
    }
    files.sort();
    files
}

fn utipc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_utipc"))
}

fn last_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn check_passes_on_every_fixture() {
    let files = fixtures();
    assert!(files.len() >= 14, "{files:?}");
    let out = utipc()
        .arg("decode")
        .arg("--check")
        .args(&files)
        .output()
        .expect("runs");
    let last = last_line(&out.stdout);
    assert!(
        out.status.success(),
        "{last}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(last.ends_with("failed=0"), "{last}");
    // Every line but the summary is a checked message.
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l.contains(" check=ok"))
    );
    let tipc: usize = last
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("tipc="))
        .and_then(|v| v.parse().ok())
        .expect("tipc count");
    assert_eq!(tipc, lines.len() - 1);
}

#[test]
fn per_file_counts_match_tshark() {
    // Frame counts from `tshark -r F | wc -l`; UDP: 1307 frames of which 715 TIPC datagrams
    // after IP reassembly (`tshark -Y udp.port==6118`).
    for (name, frames) in [("eth-02-link-setup.pcap", 12), ("udp-session.pcap", 1307)] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/pcap")
            .join(name);
        let out = utipc().arg("decode").arg(&path).output().expect("runs");
        assert!(out.status.success());
        let last = last_line(&out.stdout);
        assert!(last.starts_with(&format!("frames={frames} ")), "{last}");
    }
}

#[test]
fn json_lines_carry_the_required_keys() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/pcap/eth-05-bundling-burst.pcap");
    let out = utipc()
        .args(["decode", "--json", "--check"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut nested = 0;
    let mut bundles = 0;
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
        for key in ["frame", "depth", "user", "mtype", "size"] {
            assert!(v.get(key).is_some_and(|x| x.is_u64()), "{key} in {line}");
        }
        assert_eq!(v["check"], "ok");
        if v["depth"] == 1 {
            nested += 1;
            assert_eq!(v["user"], 0);
            if v["mtype"] == 2 {
                assert_eq!(v["name_type"], 18888);
            }
        }
        if v["user"] == 6 {
            bundles += 1;
            assert!(v["msg_count"].as_u64().is_some_and(|n| n > 1));
        }
    }
    assert_eq!(bundles, 16);
    assert!(nested > 100, "{nested}");
}

#[test]
fn corrupt_message_fails_with_status_1() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/pcap/eth-02-link-setup.pcap");
    let mut bytes = std::fs::read(&src).expect("fixture");
    // First record: 24-byte global header, 16-byte record header, 14-byte Ethernet header,
    // then the TIPC header. Version 2 -> 1 in word 0.
    let tipc = 24 + 16 + 14;
    bytes[tipc] = (bytes[tipc] & 0x1f) | (1 << 5);
    let dir = std::env::temp_dir().join(format!("utipc-decode-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bad = dir.join("bad.pcap");
    std::fs::write(&bad, &bytes).expect("write");
    let out = utipc()
        .args(["decode", "--check"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("version"), "{text}");
    assert!(last_line(&out.stdout).ends_with("failed=1"));
    let missing = utipc()
        .args(["decode"])
        .arg(dir.join("missing.pcap"))
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(1));
    assert!(!missing.stderr.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
