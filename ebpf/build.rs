//! Builds the XDP program `bpf/tipc_steer.bpf.c` into `$OUT_DIR/tipc_steer.bpf.o`, which
//! `src/program.rs` embeds.
//!
//! - With clang (and the libbpf-dev headers): compiles the source.
//! - Without clang: copies the committed `bpf/prebuilt/tipc_steer.bpf.o` (built from the same
//!   source) and says so with a `cargo:warning`, so a plain `cargo build` needs no apt package.
//!   Clang without the libbpf-dev headers falls back the same way, naming the missing header.
//! - `UTIPC_EBPF_PREBUILT=1` uses the prebuilt object even when clang is there.
//! - `UTIPC_EBPF_UPDATE_PREBUILT=1` also copies the fresh object over the prebuilt one and
//!   records the compiler in `bpf/prebuilt/BUILD-INFO` (the `prebuilt_object_is_up_to_date`
//!   test asks for this when the source changed).
//!
//! The output does not depend on the checkout's path (`-fdebug-prefix-map`), so the same clang
//! produces the same bytes everywhere.

use std::env;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = "bpf/tipc_steer.bpf.c";
const HEADER: &str = "bpf/tipc_steer.h";
const PREBUILT: &str = "bpf/prebuilt/tipc_steer.bpf.o";
const BUILD_INFO: &str = "bpf/prebuilt/BUILD-INFO";
const OBJECT: &str = "tipc_steer.bpf.o";

fn main() {
    for path in [SOURCE, HEADER, PREBUILT] {
        println!("cargo:rerun-if-changed={path}");
    }
    // PATH: so that a build with and without clang on PATH picks the right branch.
    for var in [
        "CLANG",
        "PATH",
        "UTIPC_EBPF_PREBUILT",
        "UTIPC_EBPF_UPDATE_PREBUILT",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it")).join(OBJECT);
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());

    let origin = if env::var("UTIPC_EBPF_PREBUILT").is_ok_and(|v| v == "1") {
        use_prebuilt(
            &manifest_dir,
            &out,
            "UTIPC_EBPF_PREBUILT=1: using the prebuilt XDP object",
        );
        "prebuilt".to_owned()
    } else {
        match compile(&clang, &manifest_dir, &out) {
            Ok(version) => {
                if env::var("UTIPC_EBPF_UPDATE_PREBUILT").is_ok_and(|v| v == "1") {
                    update_prebuilt(&manifest_dir, &out, &version);
                }
                println!("cargo:rustc-env=UTIPC_EBPF_CLANG_VERSION={version}");
                "clang".to_owned()
            }
            Err(Fallback(why)) => {
                use_prebuilt(&manifest_dir, &out, &why);
                "prebuilt".to_owned()
            }
        }
    };
    // Tells the tests whether the embedded object was compiled here or copied.
    println!("cargo:rustc-env=UTIPC_EBPF_OBJECT_ORIGIN={origin}");
}

/// Why the prebuilt object is used instead (the text of the cargo warning).
struct Fallback(String);

/// Compiles the program with `clang`; returns clang's version line.
///
/// Falls back (`Err`) when clang cannot be run or a system header is missing; panics when the
/// source itself does not compile, since the prebuilt object would then hide a broken source.
fn compile(clang: &str, manifest_dir: &Path, out: &Path) -> Result<String, Fallback> {
    let version = match Command::new(clang).arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("clang (unknown version)")
            .trim()
            .to_owned(),
        Ok(_) => {
            return Err(Fallback(format!(
                "`{clang} --version` failed: using the prebuilt XDP object (install clang and \
                 libbpf-dev to rebuild it)"
            )));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Fallback(
                "clang not found: using the prebuilt XDP object (install clang and libbpf-dev \
                 to rebuild it)"
                    .to_owned(),
            ));
        }
        Err(e) => {
            return Err(Fallback(format!(
                "cannot run {clang} ({e}): using the prebuilt XDP object (install clang and \
                 libbpf-dev to rebuild it)"
            )));
        }
    };

    let prefix_map = format!("-fdebug-prefix-map={}=.", manifest_dir.display());
    let multiarch = format!("-I/usr/include/{}", multiarch());
    let output = Command::new(clang)
        .current_dir(manifest_dir)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Wextra"])
        .arg(&prefix_map)
        .arg(&multiarch)
        .args(["-c", SOURCE, "-o"])
        .arg(out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {clang}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        // Not -Werror: a newer clang's new warnings must not break the build. Show them.
        for line in stderr.lines().filter(|l| l.contains("warning:")) {
            println!("cargo:warning={line}");
        }
        return Ok(version);
    }
    // "fatal error: 'bpf/bpf_helpers.h' file not found": a missing system package, not a bug.
    if let Some(line) = stderr
        .lines()
        .find(|l| l.contains("fatal error:") && l.contains("file not found"))
    {
        let header = line.split('\'').nth(1).unwrap_or("a header");
        return Err(Fallback(format!(
            "clang cannot find {header}: using the prebuilt XDP object (install libbpf-dev and \
             linux-libc-dev to rebuild it)"
        )));
    }
    panic!("{clang} failed to compile {SOURCE}:\n{stderr}");
}

/// The Debian multiarch triple for the kernel uapi `asm/` headers (`asm/types.h` lives in
/// `/usr/include/<triple>/asm`, which `-target bpf` does not search by itself).
fn multiarch() -> String {
    if let Ok(o) = Command::new("gcc").arg("-print-multiarch").output() {
        let triple = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        if o.status.success() && !triple.is_empty() {
            return triple;
        }
    }
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_owned());
    format!("{arch}-linux-gnu")
}

fn use_prebuilt(manifest_dir: &Path, out: &Path, why: &str) {
    let prebuilt = manifest_dir.join(PREBUILT);
    if let Err(e) = fs::copy(&prebuilt, out) {
        panic!(
            "{why}, but {} cannot be copied ({e}); install clang and libbpf-dev",
            prebuilt.display()
        );
    }
    println!("cargo:warning={why}");
}

fn update_prebuilt(manifest_dir: &Path, out: &Path, version: &str) {
    let prebuilt = manifest_dir.join(PREBUILT);
    fs::copy(out, &prebuilt)
        .unwrap_or_else(|e| panic!("cannot update {}: {e}", prebuilt.display()));
    let info = format!(
        "# Written by ebpf/build.rs with UTIPC_EBPF_UPDATE_PREBUILT=1; the test\n\
         # prebuilt_object_is_up_to_date compares bytes only when the local clang is this one.\n\
         clang: {version}\n"
    );
    let info_path = manifest_dir.join(BUILD_INFO);
    fs::write(&info_path, info)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", info_path.display()));
    println!(
        "cargo:warning=updated {} from {SOURCE} ({version})",
        prebuilt.display()
    );
}
