//! What a new user meets first: the demo's closing hint works when typed as printed, and the
//! CLI behaves in a pipe whose reader stops early.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use sluice_test_support::temp_dir;

fn sluice(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("--data-dir")
        .arg(data_dir)
        .env_remove("SLUICE_SECRET_KEY")
        .env_remove("RUST_LOG");
    cmd
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `sluice ARGS` with a reader that has already closed its end of the pipe.
fn with_closed_pipe(data_dir: &Path, args: &[&str]) -> Output {
    let mut child = sluice(data_dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    drop(child.stdout.take());
    child.wait_with_output().expect("sluice ends")
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let dir = temp_dir("pipe");
    let added = sluice(&dir)
        .args(["integration", "add", "--name", "Acme", "--capability"])
        .args([
            "helpdesk",
            "--set",
            "environment=production",
            "--set",
            "pull-by=updated",
        ])
        .args(["--set", "domain=https://acme.my.salesforce.com"])
        .output()
        .unwrap();
    let id = succeeded(&added).trim().to_string();
    for args in [
        &["integration", "list", "--json"][..],
        &["integration", "list"],
        &["integration", "show", &id, "--json"],
        &["integration", "show", &id],
        &["connector", "list"],
    ] {
        let out = with_closed_pipe(&dir, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?} printed: {stderr}");
    }
}

#[test]
fn the_demo_hint_works_when_typed_as_printed() {
    let dir = temp_dir("demo");
    let demo = sluice(&dir).arg("demo").output().unwrap();
    let stdout = succeeded(&demo);
    let hint = stdout
        .lines()
        .find_map(|line| line.strip_prefix("Try: "))
        .unwrap_or_else(|| panic!("no `Try:` line in the demo's output:\n{stdout}"));
    // A user who ran `cargo run` has no `sluice` on the PATH and may be anywhere.
    let typed = Command::new("sh")
        .args(["-c", hint])
        .current_dir(std::env::temp_dir())
        .env("PATH", "/usr/bin:/bin")
        .env_remove("SLUICE_DATA_DIR")
        .output()
        .unwrap();
    let listed = succeeded(&typed);
    for name in ["Demo helpdesk", "Demo crm", "content-management"] {
        assert!(listed.contains(name), "{hint}\nlisted:\n{listed}");
    }
}
