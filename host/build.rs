//! Builds the default Salesforce connector (`connectors/salesforce/`) as a wasm32-wasip2
//! component so that one `cargo build` produces both the `sluice` binary and the component it
//! embeds.
//!
//! Like wasmtime's own test programs, the guest is compiled by a nested `cargo` in a target
//! directory of its own: sharing the outer one would deadlock on Cargo's build lock. The
//! wasm32-wasip2 target is installed first when it is missing (`sluice-guest-build`).
//! The component, with `connectors/salesforce/manifest.json` appended as its `sluice:manifest`
//! custom section (the hosts and methods it needs, which the operator approves at install), is
//! written to `$OUT_DIR/salesforce.wasm` (embedded with `include_bytes!`) and to
//! `<target>/<profile>/salesforce.wasm`, beside the `sluice` binary, for inspection and
//! hot-swap.

use std::env;
use std::path::{Path, PathBuf};

use sluice_guest_build::append_custom_section;

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
        "connectors/salesforce/src",
        "connectors/salesforce/Cargo.toml",
        "connectors/salesforce/manifest.json",
        "crates/sdk",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    // Removing the wasm target must rerun this script, so the build installs it again.
    if let Ok(Some(libdir)) = sluice_guest_build::wasm_target_libdir() {
        println!("cargo:rerun-if-changed={}", libdir.display());
    }

    let guest = sluice_guest_build::Guest {
        workspace: &workspace,
        target_dir: &guest_target,
        package: "sluice-salesforce",
        optimize_for_speed: true,
        env: Vec::new(),
    };
    let wasm = match guest.build() {
        Ok((setup, wasm)) => {
            if let Some(line) = setup.message() {
                println!("cargo::warning={line}");
            }
            wasm
        }
        // One line that says what to do, not a panic with a backtrace. The failing exit is
        // what makes cargo print this script's stderr, where the nested cargo's errors are:
        // a script that logs `cargo::error` and exits 0 fails the build with its stderr
        // hidden.
        Err(e) => {
            println!("cargo::error={e}");
            std::process::exit(1);
        }
    };
    let manifest = workspace.join("connectors/salesforce/manifest.json");
    let manifest =
        std::fs::read(&manifest).unwrap_or_else(|e| panic!("reading {}: {e}", manifest.display()));
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

fn write(to: &Path, bytes: &[u8]) {
    std::fs::write(to, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
}
