//! Builds the default Salesforce connector (`plugin/`) as a wasm32-wasip2 component so that
//! one `cargo build` produces both the `sluice` binary and the component it embeds.
//!
//! Like wasmtime's own test programs, the guest is compiled by a nested `cargo` in a target
//! directory of its own: sharing the outer one would deadlock on Cargo's build lock.
//! The component, with `plugin/manifest.json` appended as its `sluice:manifest` custom section
//! (the hosts and methods it needs, which the operator approves at install), is written to
//! `$OUT_DIR/salesforce.wasm` (embedded with `include_bytes!`) and to
//! `<target>/<profile>/salesforce.wasm`, beside the `sluice` binary, for inspection and
//! hot-swap.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ lives in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    // OUT_DIR is <target>/<profile>/build/sluice-<hash>/out.
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR has the usual layout");
    let target_dir = profile_dir.parent().expect("profile dir has a parent");
    let guest_target = target_dir.join("wasm-guests");

    for watched in [
        "plugin/src",
        "plugin/Cargo.toml",
        "plugin/manifest.json",
        "wit",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let wasm = build_guest(&workspace, &guest_target, "sluice-salesforce");
    let manifest = workspace.join("plugin/manifest.json");
    let manifest = std::fs::read(&manifest)
        .unwrap_or_else(|e| panic!("reading {}: {e}", manifest.display()));
    let mut component =
        std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()));
    append_custom_section(&mut component, "sluice:manifest", &manifest);
    let embedded = out_dir.join("salesforce.wasm");
    write(&embedded, &component);
    write(&profile_dir.join("salesforce.wasm"), &component);
    println!(
        "cargo:rustc-env=SLUICE_SALESFORCE_WASM={}",
        embedded.display()
    );
}

/// Compiles `package` for wasm32-wasip2 in release mode and returns the component's path.
fn build_guest(workspace: &Path, target_dir: &Path, package: &str) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "-p",
            package,
        ])
        .arg("--target-dir")
        .arg(target_dir);
    // The guest is small and runs on every page: build it for speed, not for quick rebuilds
    // (the workspace's release profile is incremental, which splits code into many units).
    cmd.env("CARGO_PROFILE_RELEASE_INCREMENTAL", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_LTO", "fat");
    // Flags meant for the host build must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("could not run cargo to build the wasm guest");
    assert!(
        status.success(),
        "building the {package} component failed; is the wasm32-wasip2 target installed? \
         (rust-toolchain.toml asks rustup for it)"
    );
    let file = format!("{}.wasm", package.replace('-', "_"));
    target_dir.join("wasm32-wasip2/release").join(file)
}

/// Appends a custom section (id 0: LEB128 size, LEB128 name length, name, payload), which a
/// component may carry at its top level.
fn append_custom_section(wasm: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    wasm.push(0);
    leb128(content.len(), wasm);
    wasm.extend_from_slice(&content);
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn write(to: &Path, bytes: &[u8]) {
    std::fs::write(to, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
}
