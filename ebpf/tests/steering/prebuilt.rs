//! The committed prebuilt object must be what the current source compiles to.

use std::path::Path;

/// `build.rs` says whether it compiled the object (with which clang) or copied the prebuilt one.
const ORIGIN: &str = env!("UTIPC_EBPF_OBJECT_ORIGIN");
const CLANG: Option<&str> = option_env!("UTIPC_EBPF_CLANG_VERSION");

/// The object embedded by this build (compiled by build.rs when clang is present).
static BUILT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tipc_steer.bpf.o"));

#[test]
fn prebuilt_object_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf/prebuilt");
    let prebuilt = std::fs::read(dir.join("tipc_steer.bpf.o")).expect("prebuilt object");
    let info = std::fs::read_to_string(dir.join("BUILD-INFO")).expect("BUILD-INFO");
    let Some(clang) = CLANG.filter(|_| ORIGIN == "clang") else {
        eprintln!(
            "skipping prebuilt_object_is_up_to_date: this build used the prebuilt object \
             (no usable clang), so there is nothing to compare"
        );
        return;
    };
    let recorded = info
        .lines()
        .find_map(|l| l.strip_prefix("clang: "))
        .expect("BUILD-INFO names the clang");
    if recorded != clang {
        eprintln!(
            "skipping prebuilt_object_is_up_to_date: the prebuilt object was built by \
             {recorded:?}, this build by {clang:?}; their output may differ legitimately"
        );
        return;
    }
    assert!(
        BUILT == prebuilt.as_slice(),
        "ebpf/bpf/prebuilt/tipc_steer.bpf.o is stale: bpf/tipc_steer.bpf.c or tipc_steer.h \
         changed since it was built. Refresh it with \
         `UTIPC_EBPF_UPDATE_PREBUILT=1 cargo build -p utipc-ebpf` and commit it"
    );
}
