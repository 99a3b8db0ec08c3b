//! `sluice dev` as a developer runs it: a standalone connector crate (the fixture
//! `tests/fixtures/dev-connector`, copied to a temporary directory) pulling users from the
//! Zendesk emulator. Editing its source shows the new behaviour on the next page without a
//! restart, from the previous version's checkpoint; a build error keeps the old version; a
//! recording replays the same rows with the emulator stopped. The same loop runs on a
//! standalone copy of the real Zendesk connector (`connectors/zendesk`) with OAuth.
//! Run: `cargo test --release --workspace --test dev`.
//!
//! The fixture's builds (the SDK and wit-bindgen for wasm32-wasip2) live in
//! `<target>/dev-fixture/<test>`, so only the first run compiles the dependencies; cargo runs
//! offline.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use sluice_test_support::standalone::copy_member;
use sluice_test_support::{TestDir, target_dir, temp_dir, workspace};
use zendesk_emulator::{Emulator, EmulatorConfig};

/// Generous bounds for a cold build of the fixture's dependencies on a busy machine; a bound
/// hit is a failure, never a measurement.
const FIRST_BUILD: Duration = Duration::from_secs(1200);
const REBUILD: Duration = Duration::from_secs(600);

/// The fixture crate copied to `dir/crate`, its SDK path made absolute and the workspace's
/// lock file beside it (so cargo resolves offline to the versions the workspace uses).
fn copy_fixture(dir: &Path) -> PathBuf {
    let from = workspace().join("tests/fixtures/dev-connector");
    let to = dir.join("crate");
    std::fs::create_dir_all(to.join("src")).unwrap();
    for file in ["manifest.json", "src/lib.rs"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
    let cargo_toml = std::fs::read_to_string(from.join("Cargo.toml")).unwrap();
    let sdk = workspace().join("crates/sdk");
    let cargo_toml = cargo_toml.replace(
        "path = \"../../../crates/sdk\"",
        &format!("path = {:?}", sdk.display().to_string()),
    );
    assert!(cargo_toml.contains(&sdk.display().to_string()));
    std::fs::write(to.join("Cargo.toml"), cargo_toml).unwrap();
    std::fs::copy(workspace().join("Cargo.lock"), to.join("Cargo.lock")).unwrap();
    to
}

/// An access token minted by the emulator's control API.
async fn token(emu: &Emulator) -> String {
    let grant: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/__emulator/oauth/grant", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .json(&serde_json::json!({"scope": "read"}))
        .send()
        .await
        .expect("grant request")
        .json()
        .await
        .expect("grant JSON");
    grant["access_token"].as_str().expect("a token").to_string()
}

/// The test's tag, from its directory's name (`sluice-TAG-…`).
fn tag(dir: &Path) -> String {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    name.split('-').take(3).collect::<Vec<_>>().join("-")
}

/// `sluice dev` running as a child, its stdout and stderr read line by line.
struct DevProcess {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevProcess {
    fn spawn(dir: &Path, args: &[&str], token: &str) -> Self {
        let settings = dir.join("settings.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("dev")
            .args(args)
            .arg("--settings")
            .arg(&settings)
            .args(["--token-env", "DEV_TEST_TOKEN"])
            .env("DEV_TEST_TOKEN", token)
            // One per test: crates of the same name share the `.wasm` cargo reports.
            .env(
                "CARGO_TARGET_DIR",
                target_dir().join("dev-fixture").join(tag(dir)),
            )
            .env("CARGO_NET_OFFLINE", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice dev starts");
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let err_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(format!("stderr: {line}"));
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The lines up to and including the first one `matches` accepts.
    fn until(
        &mut self,
        what: &str,
        within: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut taken = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    taken.push(line.clone());
                    if matches(&line) {
                        return taken;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("never saw {what}; output:\n{}", self.seen.join("\n"))
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "sluice dev ended before {what}; output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The lines of one version's run, up to its summary line.
    fn run_of(&mut self, version: u32, within: Duration) -> Vec<String> {
        let header = format!("== version {version} ");
        self.until(&header, within, |l| l.starts_with(&header));
        self.until("the run's summary", REBUILD, |l| {
            l.starts_with("API calls:")
        })
    }
}

fn settings(dir: &Path, emu: &Emulator) {
    let json = serde_json::json!({"capability": "helpdesk", "values": {"base-url": emu.url}});
    std::fs::write(dir.join("settings.json"), json.to_string()).unwrap();
}

/// The row keys printed under page lines.
fn keys(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.starts_with("  ") && l.contains(" upsert "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// The checkpoint moves printed, `(before, after)`.
fn checkpoints(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("checkpoint: "))
        .filter_map(|moved| moved.split_once(" -> "))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn edit(krate: &Path, from: &str, to: &str) {
    edit_file(&krate.join("src/lib.rs"), from, to);
}

fn edit_file(path: &Path, from: &str, to: &str) {
    let source = std::fs::read_to_string(path).unwrap();
    assert!(source.contains(from), "{} holds {from:?}", path.display());
    std::fs::write(path, source.replacen(from, to, 1)).unwrap();
}

/// The lines of the first page of `stream` in one run: its header, rows and checkpoint line.
fn page_of<'a>(lines: &'a [String], stream: &str) -> &'a [String] {
    let header = format!("page 1 of {stream} (");
    let start = lines
        .iter()
        .position(|l| l.starts_with(&header))
        .unwrap_or_else(|| panic!("no page of {stream}: {lines:#?}"));
    let len = lines[start..]
        .iter()
        .position(|l| l.trim().starts_with("checkpoint"))
        .unwrap_or_else(|| panic!("no checkpoint line for {stream}: {lines:#?}"));
    &lines[start..=start + len]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_serves_the_next_page_without_a_restart_and_a_build_error_keeps_the_old_version() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let token = token(&emu).await;
    let dir: TestDir = temp_dir("dev-loop");
    let krate = copy_fixture(dir.path());
    settings(dir.path(), &emu);
    let crate_arg = krate.display().to_string();
    let mut dev = DevProcess::spawn(
        dir.path(),
        &[
            &crate_arg,
            "--emulator",
            &emu.url,
            "--pages",
            "1",
            "--max-records",
            "4",
        ],
        &token,
    );

    let first = dev.run_of(1, FIRST_BUILD);
    assert!(first.iter().any(|l| l == "test: ok"), "{first:#?}");
    assert!(
        first
            .iter()
            .any(|l| l.contains("\"dev_marker\":\"first-version\"")),
        "{first:#?}"
    );
    let first_keys = keys(&first);
    assert_eq!(first_keys.len(), 3, "three rows shown: {first:#?}");
    let (_, after_first) = checkpoints(&first).pop().expect("the checkpoint moved");
    dev.until("the watch", REBUILD, |l| l.starts_with("watching "));

    edit(&krate, "\"first-version\"", "\"second-version\"");
    let second = dev.run_of(2, REBUILD);
    assert!(
        second
            .iter()
            .any(|l| l.contains("\"dev_marker\":\"second-version\"")),
        "the new version's field: {second:#?}"
    );
    assert!(
        !second.iter().any(|l| l.contains("first-version")),
        "{second:#?}"
    );
    assert!(
        second.iter().any(|l| l.starts_with("edit to first page: ")),
        "{second:#?}"
    );
    // The next page, from the first version's checkpoint: no restart.
    let (before_second, after_second) = checkpoints(&second).pop().expect("moved");
    assert_eq!(before_second, after_first, "{second:#?}");
    let second_keys = keys(&second);
    assert!(
        second_keys.iter().all(|k| !first_keys.contains(k)),
        "{first_keys:?} then {second_keys:?}"
    );

    edit(&krate, "\"second-version\";", "\"broken\" +;");
    let failed = dev.until("the build failure", REBUILD, |l| {
        l.starts_with("build failed")
    });
    let line = failed.last().unwrap();
    assert!(line.contains("version 2 keeps serving"), "{failed:#?}");
    assert!(
        failed.iter().any(|l| l.starts_with("stderr: error")),
        "cargo's error is shown: {failed:#?}"
    );

    edit(&krate, "\"broken\" +;", "\"third-version\";");
    let third = dev.run_of(3, REBUILD);
    assert!(
        third
            .iter()
            .any(|l| l.contains("\"dev_marker\":\"third-version\"")),
        "{third:#?}"
    );
    let (before_third, _) = checkpoints(&third).pop().expect("moved");
    assert_eq!(before_third, after_second, "{third:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_replays_the_same_rows_with_the_emulator_stopped() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let token = token(&emu).await;
    let dir: TestDir = temp_dir("dev-cassette");
    let krate = copy_fixture(dir.path());
    settings(dir.path(), &emu);
    let cassette = dir.path().join("cassette");
    let crate_arg = krate.display().to_string();
    let cassette_arg = cassette.display().to_string();
    let url = emu.url.clone();
    let common = [crate_arg.as_str(), "--emulator", &url, "--once"];

    let mut recording = common.to_vec();
    recording.extend(["--record", &cassette_arg]);
    let mut dev = DevProcess::spawn(dir.path(), &recording, &token);
    let recorded = dev.run_of(1, FIRST_BUILD);
    let recorded_rows = keys(&recorded);
    assert!(!recorded_rows.is_empty(), "{recorded:#?}");
    dev.until("the recording's summary", REBUILD, |l| {
        l.starts_with("recorded: ")
    });
    assert!(dev.child.wait().unwrap().success(), "{:#?}", dev.seen);
    for entry in std::fs::read_dir(&cassette).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(&token), "a cassette file holds the token");
    }
    emu.shutdown();

    let mut replaying = common.to_vec();
    replaying.extend(["--replay", &cassette_arg]);
    let mut dev = DevProcess::spawn(dir.path(), &replaying, "not-a-token");
    let replayed = dev.run_of(1, REBUILD);
    assert_eq!(keys(&replayed), recorded_rows, "{replayed:#?}");
    assert!(dev.child.wait().unwrap().success(), "{:#?}", dev.seen);
    assert!(
        !dev.seen.iter().any(|l| l.starts_with("replay: ")),
        "no request missed the cassette: {:#?}",
        dev.seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_egress_denial_is_printed_with_its_fix() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let dir: TestDir = temp_dir("dev-denial");
    let krate = copy_fixture(dir.path());
    // The connector is pointed at an origin the operator did not approve: another port.
    let elsewhere = format!(
        "http://127.0.0.1:{}",
        emu.addr.port().wrapping_add(1).max(1)
    );
    let json = serde_json::json!({"values": {"base-url": elsewhere}});
    std::fs::write(dir.path().join("settings.json"), json.to_string()).unwrap();
    let crate_arg = krate.display().to_string();
    let mut dev = DevProcess::spawn(
        dir.path(),
        &[&crate_arg, "--emulator", &emu.url, "--once"],
        "unused",
    );
    let run = dev.run_of(1, FIRST_BUILD);
    assert!(
        run.iter().any(|l| l.starts_with("test: failed")),
        "the test's request was refused: {run:#?}"
    );
    let denial = dev.until("the denial", REBUILD, |l| l.starts_with("egress denied: "));
    let denial = denial.last().unwrap();
    assert!(
        denial.starts_with(&format!("egress denied: {elsewhere}: ")),
        "{denial}"
    );
    let fix = dev.until("the fix", REBUILD, |l| l.starts_with("  fix: "));
    assert!(
        fix.last()
            .unwrap()
            .contains(&format!("`--extra-origin {elsewhere}`")),
        "{fix:#?}"
    );
    assert!(
        !dev.child.wait().unwrap().success(),
        "a denial fails --once"
    );
}

/// The Zendesk connector's row builder, as the edit finds it and as it leaves it: ticket rows
/// gain a field the first version never sent.
const ROW_JSON: &str = "json: record.to_string().into_bytes(),";
const EDITED_ROW_JSON: &str = r#"json: {
            let mut record = record.clone();
            if matches!(kind, Kind::Tickets) {
                record["_dev_edit"] = "second-version".into();
            }
            record.to_string().into_bytes()
        },"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_the_zendesk_connector_shows_on_the_next_ticket_page_without_a_restart() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let token = token(&emu).await;
    let dir: TestDir = temp_dir("dev-zendesk");
    let krate = copy_member("connectors/zendesk", &dir.path().join("crate"));
    let json = serde_json::json!({
        "capability": "helpdesk",
        "values": {"subdomain": emu.url, "auth": "oauth"},
    });
    std::fs::write(dir.path().join("settings.json"), json.to_string()).unwrap();
    let crate_arg = krate.display().to_string();
    let mut dev = DevProcess::spawn(
        dir.path(),
        &[
            &crate_arg,
            "--emulator",
            &emu.url,
            "--pages",
            "1",
            "--max-records",
            "5",
        ],
        &token,
    );

    let first = dev.run_of(1, FIRST_BUILD);
    assert!(first.iter().any(|l| l == "test: ok"), "{first:#?}");
    let first_tickets = page_of(&first, "tickets");
    let first_keys = keys(first_tickets);
    assert!(!first_keys.is_empty(), "{first:#?}");
    assert!(!first.iter().any(|l| l.contains("_dev_edit")), "{first:#?}");
    let (_, after_first) = checkpoints(first_tickets)
        .pop()
        .expect("the checkpoint moved");
    dev.until("the watch", REBUILD, |l| l.starts_with("watching "));

    edit_file(&krate.join("src/export.rs"), ROW_JSON, EDITED_ROW_JSON);
    let second = dev.run_of(2, REBUILD);
    let tickets = page_of(&second, "tickets");
    assert!(tickets[0].contains("(v2)"), "{second:#?}");
    let rows: Vec<&String> = tickets.iter().filter(|l| l.contains(" upsert ")).collect();
    assert!(!rows.is_empty(), "{second:#?}");
    assert!(
        rows.iter()
            .all(|l| l.contains(r#"{"_dev_edit":"second-version","#)),
        "every ticket row shows the new field: {second:#?}"
    );
    assert!(
        !page_of(&second, "users")
            .iter()
            .any(|l| l.contains("_dev_edit")),
        "only ticket rows changed: {second:#?}"
    );
    // The next page, from the first version's checkpoint: no restart.
    let (before_second, _) = checkpoints(tickets).pop().expect("moved");
    assert_eq!(before_second, after_first, "{second:#?}");
    let second_keys = keys(tickets);
    assert!(
        second_keys.iter().all(|k| !first_keys.contains(k)),
        "{first_keys:?} then {second_keys:?}"
    );
}
