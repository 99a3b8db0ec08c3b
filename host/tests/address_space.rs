//! The `sluice` binary starts and runs connector calls under an address-space limit
//! (`ulimit -v`), where a pool reserving address space for every possible call cannot be set
//! up. Run: `cargo test --release -p sluice --test address_space`.

use std::path::Path;
use std::process::{Command, Output};

use sluice_test_support::temp_dir;

/// About 3.8 GiB, in KiB as `ulimit -v` takes it.
const LIMIT_KIB: &str = "4000000";

/// `sluice --data-dir DIR ARGS…` in a shell whose address space is limited.
fn sluice_limited(data_dir: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -v {LIMIT_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SLUICE_SECRET_KEY")
        .env_remove("RUST_LOG")
        .output()
        .expect("bash runs")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed under ulimit -v {LIMIT_KIB}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_cli_works_under_an_address_space_limit() {
    let dir = temp_dir("ulimit");
    assert_ok(
        &sluice_limited(&dir, &["integration", "list"]),
        "integration list",
    );
    // Adding an integration instantiates the connector and calls `configure`.
    let add = sluice_limited(
        &dir,
        &[
            "integration",
            "add",
            "--name",
            "Acme",
            "--capability",
            "crm",
            "--set",
            "environment=production",
            "--set",
            "pull-by=updated",
            "--set",
            "domain=https://acme.my.salesforce.com",
        ],
    );
    assert_ok(&add, "integration add");
    let list = sluice_limited(&dir, &["--json", "integration", "list"]);
    assert_ok(&list, "integration list");
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("Acme"),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
}
