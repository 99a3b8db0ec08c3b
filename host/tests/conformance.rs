//! `sluice conformance` end to end, on loopback only: the bundled Salesforce connector passes
//! against the Salesforce emulator; the conformance test guest (`tests/conformance-guest`)
//! passes against the Zendesk emulator in its correct build, and each broken build fails
//! exactly the check that names its fault (a key that does not match its key fields, a
//! checkpoint that skips records, a wrong failure kind, a request to an undeclared host; a
//! version that cannot read its predecessor's checkpoints fails the upgrade check); the JUnit
//! report parses and lists every check.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use quick_xml::Reader;
use quick_xml::events::Event;
use sluice_conformance::Check;
use sluice_test_support::{TestDir, conformance_guest, temp_dir};

/// The environment variable the tests hand the token in.
const TOKEN_VAR: &str = "SLUICE_CONFORMANCE_TEST_TOKEN";

/// One `sluice conformance` run.
struct Checked {
    output: Output,
    junit: PathBuf,
    _dir: TestDir,
}

impl Checked {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// The printed line of `check`.
    fn line(&self, check: Check) -> String {
        self.stdout()
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(check.name()))
            .unwrap_or_else(|| panic!("no line for {check} in:\n{}", self.stdout()))
            .to_string()
    }

    /// The checks printed as FAIL.
    fn failed(&self) -> Vec<String> {
        self.stdout()
            .lines()
            .filter(|l| l.starts_with("FAIL"))
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect()
    }
}

/// Runs `sluice conformance` on `wasm` with `settings` (JSON), the token in the environment,
/// and `origin` approved.
async fn conformance(
    tag: &str,
    wasm: &Path,
    previous: Option<&Path>,
    settings: serde_json::Value,
    token: &str,
    origin: &str,
) -> Checked {
    let dir = temp_dir(tag);
    let settings_file = dir.join("settings.json");
    std::fs::write(&settings_file, settings.to_string()).unwrap();
    let junit = dir.join("junit.xml");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .env(TOKEN_VAR, token)
        .env("SLUICE_DATA_DIR", dir.join("data"))
        .args(["--allow-insecure-loopback", "--extra-origin", origin])
        .arg("conformance")
        .arg(wasm)
        .arg("--settings")
        .arg(&settings_file)
        .args(["--token-env", TOKEN_VAR])
        .arg("--junit")
        .arg(&junit);
    if let Some(previous) = previous {
        command.arg("--previous").arg(previous);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Checked {
        output,
        junit,
        _dir: dir,
    }
}

/// A token response from an emulator's control API.
async fn grant(url: &str, control_key: &str) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{url}/__emulator/oauth/grant"))
        .bearer_auth(control_key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn zendesk() -> (zendesk_emulator::Emulator, String) {
    let config = zendesk_emulator::EmulatorConfig {
        scale: 100,
        ..Default::default()
    };
    let emu = zendesk_emulator::Emulator::start(config).await.unwrap();
    let token = grant(&emu.url, &emu.control_key).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    (emu, token)
}

/// Settings against the Zendesk emulator: `values` with `{url}` standing for the emulator's
/// URL; the grant names the emulator as the instance, the origin that receives the token.
fn zendesk_settings(url: &str, values: &[(&str, &str)]) -> serde_json::Value {
    let values: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(name, value)| (name.to_string(), value.replace("{url}", url).into()))
        .collect();
    serde_json::json!({
        "capability": "helpdesk",
        "values": values,
        "grant": {"instance_url": url, "scope": "read"},
    })
}

/// The conformance guest's settings.
fn guest_settings(url: &str) -> serde_json::Value {
    zendesk_settings(url, &[("base-url", "{url}")])
}

async fn check_guest(variant: &str) -> Checked {
    let (emu, token) = zendesk().await;
    let wasm = conformance_guest(variant);
    conformance(
        variant,
        &wasm,
        None,
        guest_settings(&emu.url),
        &token,
        &emu.url,
    )
    .await
}

/// Asserts that the connector component `wasm`, with `values` as its settings (see
/// [`zendesk_settings`]), passes every check against the Zendesk emulator with an OAuth bearer
/// token. A Zendesk connector joins with one test:
/// `#[tokio::test(flavor = "multi_thread")] async fn the_zendesk_connector_passes() { passes_against_zendesk(sluice_test_support::guests::zendesk(), &[("subdomain", "{url}"), ("auth", "oauth")]).await; }`
async fn passes_against_zendesk(wasm: &[u8], values: &[(&str, &str)]) -> Checked {
    let (emu, token) = zendesk().await;
    let dir = temp_dir("zendesk-wasm");
    let file = dir.join("connector.wasm");
    std::fs::write(&file, wasm).unwrap();
    let settings = zendesk_settings(&emu.url, values);
    let checked = conformance("zendesk", &file, None, settings, &token, &emu.url).await;
    assert!(checked.output.status.success(), "{}", checked.stdout());
    assert!(checked.failed().is_empty(), "{:?}", checked.failed());
    checked
}

#[tokio::test(flavor = "multi_thread")]
async fn the_correct_guest_passes() {
    let wasm = std::fs::read(conformance_guest("correct")).unwrap();
    let checked = passes_against_zendesk(&wasm, &[("base-url", "{url}")]).await;
    for check in [
        Check::Imports,
        Check::FieldErrorsNameSettings,
        Check::ConfigureIdempotent,
        Check::AllowedHostsExact,
        Check::PlainHttpRefused,
        Check::TestFailureKinds,
        Check::RowsWithinMaxRecords,
        Check::KeysMatchKeyFields,
        Check::SameDataAcrossPageSizes,
        Check::ResumeFromCheckpoints,
        Check::SkippedStreamKeepsCheckpoint,
        Check::NoEgressOutsideAllowedHosts,
    ] {
        let line = checked.line(check);
        assert!(line.starts_with("pass"), "{check}: {line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_skip_that_moves_the_checkpoint_fails_exactly_the_skip_check() {
    let checked = check_guest("skip-moves-checkpoint").await;
    assert!(!checked.output.status.success());
    assert_eq!(
        checked.failed(),
        [Check::SkippedStreamKeepsCheckpoint.name()]
    );
    let line = checked.line(Check::SkippedStreamKeepsCheckpoint);
    assert!(line.contains("past-everything"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_does_not_match_its_key_fields_fails_exactly_that_check() {
    let checked = check_guest("bad-key").await;
    assert!(!checked.output.status.success());
    assert_eq!(checked.failed(), [Check::KeysMatchKeyFields.name()]);
    let line = checked.line(Check::KeysMatchKeyFields);
    assert!(
        line.contains("user-") && line.contains("key fields id"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_that_skips_records_fails_exactly_the_resume_check() {
    let checked = check_guest("skip-checkpoint").await;
    assert!(!checked.output.status.success());
    assert_eq!(checked.failed(), [Check::ResumeFromCheckpoints.name()]);
    let line = checked.line(Check::ResumeFromCheckpoints);
    assert!(line.contains("missing"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_reported_as_unknown_fails_exactly_the_failure_kinds_check() {
    let checked = check_guest("wrong-failure-kind").await;
    assert!(!checked.output.status.success());
    assert_eq!(checked.failed(), [Check::TestFailureKinds.name()]);
    let line = checked.line(Check::TestFailureKinds);
    assert!(
        line.contains("401") && line.contains("ReauthorizationRequired"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_to_an_undeclared_host_fails_exactly_the_egress_check() {
    let checked = check_guest("stray-egress").await;
    assert!(!checked.output.status.success());
    assert_eq!(
        checked.failed(),
        [Check::NoEgressOutsideAllowedHosts.name()]
    );
    let line = checked.line(Check::NoEgressOutsideAllowedHosts);
    assert!(line.contains("collector.attacker.example"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_that_cannot_read_its_predecessors_checkpoints_fails_the_upgrade_check() {
    let (emu, token) = zendesk().await;
    let (new, old) = (
        conformance_guest("correct"),
        conformance_guest("skip-checkpoint"),
    );
    let settings = guest_settings(&emu.url);
    let same = conformance(
        "upgrade-same",
        &new,
        Some(&new),
        settings.clone(),
        &token,
        &emu.url,
    )
    .await;
    assert!(
        same.line(Check::PreviousVersion).starts_with("pass"),
        "{}",
        same.stdout()
    );
    let broken = conformance("upgrade", &new, Some(&old), settings, &token, &emu.url).await;
    assert_eq!(broken.failed(), [Check::PreviousVersion.name()]);
    assert!(broken.line(Check::PreviousVersion).contains("checkpoint"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_junit_report_parses_and_lists_every_check() {
    let checked = check_guest("bad-key").await;
    let xml = std::fs::read_to_string(&checked.junit).unwrap();
    let mut reader = Reader::from_str(&xml);
    let (mut cases, mut failures, mut skipped) = (Vec::new(), Vec::new(), 0);
    let mut current = String::new();
    loop {
        match reader.read_event().expect("well-formed JUnit XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testcase" => {
                    let name = e.try_get_attribute("name").unwrap().expect("a name");
                    current = name.unescape_value().unwrap().into_owned();
                    cases.push(current.clone());
                }
                b"failure" => failures.push(current.clone()),
                b"skipped" => skipped += 1,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    let all: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(cases, all);
    assert_eq!(failures, [Check::KeysMatchKeyFields.name()]);
    assert!(skipped >= 1, "test-failure-kinds is skipped");
}

/// Runs the bundled Salesforce connector against a small emulated org, with `previous` as
/// the version it replaces, and asserts it passes.
async fn salesforce_passes(previous: Option<&Path>) -> Checked {
    let config = sf_emulator::EmulatorConfig {
        dataset: sf_emulator::Dataset::Bench,
        scale: 30,
        ..Default::default()
    };
    let emu = sf_emulator::Emulator::start(config).await.unwrap();
    let token = grant(&emu.url, &emu.control_key).await;
    let settings = serde_json::json!({
        "capability": "helpdesk",
        "values": {"environment": "production", "pull-by": "updated", "domain": emu.url},
        "grant": {
            "instance_url": token["instance_url"],
            "id": token["id"],
            "scope": token["scope"],
        },
    });
    let dir = temp_dir("salesforce-wasm");
    let wasm = dir.join("salesforce.wasm");
    std::fs::write(&wasm, sluice::SALESFORCE_COMPONENT).unwrap();
    let access = token["access_token"].as_str().unwrap();
    let checked = conformance("salesforce", &wasm, previous, settings, access, &emu.url).await;
    assert!(checked.output.status.success(), "{}", checked.stdout());
    assert!(checked.failed().is_empty(), "{:?}", checked.failed());
    checked
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bundled_salesforce_connector_passes() {
    let checked = salesforce_passes(None).await;
    for check in [
        Check::ConfigureIdempotent,
        Check::PlainHttpRefused,
        Check::TestFailureKinds,
        Check::SameDataAcrossPageSizes,
        Check::ResumeFromCheckpoints,
    ] {
        let line = checked.line(check);
        assert!(line.starts_with("pass"), "{check}: {line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_salesforce_connector_resumes_from_its_contract_0_1_builds_checkpoints() {
    let old = sluice_test_support::workspace().join("tests/fixtures/salesforce-contract-0.1.wasm");
    let checked = salesforce_passes(Some(&old)).await;
    let line = checked.line(Check::PreviousVersion);
    assert!(line.starts_with("pass"), "{line}");
}

#[test]
fn bad_input_stops_with_an_error_naming_it() {
    let dir = temp_dir("conformance-input");
    let settings = dir.join("settings.json");
    let wasm = conformance_guest("correct");
    let run = |settings_json: &str, token_var: &str| {
        std::fs::write(&settings, settings_json).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .env_remove("SLUICE_NO_SUCH_TOKEN")
            .env("SLUICE_DATA_DIR", dir.join("data"))
            .arg("conformance")
            .arg(&wasm)
            .arg("--settings")
            .arg(&settings)
            .args(["--token-env", token_var])
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let good = r#"{"capability":"helpdesk","values":{"base-url":"https://a.zendesk.com"}}"#;
    let missing = run(good, "SLUICE_NO_SUCH_TOKEN");
    assert!(missing.contains("SLUICE_NO_SUCH_TOKEN"), "{missing}");
    let secret = r#"{"capability":"helpdesk","grant":{"refresh_token":"r-123"}}"#;
    let refused = run(secret, "PATH");
    assert!(
        refused.contains("refresh_token") && !refused.contains("r-123"),
        "{refused}"
    );
    let unknown =
        r#"{"capability":"helpdesk","values":{"base-url":"https://a.zendesk.com","colour":"red"}}"#;
    let named = run(unknown, "PATH");
    assert!(named.contains("colour"), "{named}");
}

/// The Zendesk connector passes every check. Its exports are Zendesk's, limited to 10 requests
/// a minute, and at max-records 1 every ticket is one export request; the checks are about
/// the data, so the emulator's budgets are lifted (the connector's rate-limited answer has its
/// own test in `zendesk.rs`).
#[tokio::test(flavor = "multi_thread")]
async fn the_zendesk_connector_passes() {
    let (emu, token) = zendesk().await;
    let budgets = serde_json::json!({"incremental_rate_limit_per_minute": 100000,
        "rate_limit_per_minute": 100000});
    reqwest::Client::new()
        .post(format!("{}/__emulator/settings", emu.url))
        .bearer_auth(&emu.control_key)
        .json(&budgets)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let dir = temp_dir("zendesk-connector");
    let file = dir.join("zendesk.wasm");
    std::fs::write(&file, sluice_test_support::guests::zendesk()).unwrap();
    let values = [("subdomain", "{url}"), ("auth", "oauth")];
    let settings = zendesk_settings(&emu.url, &values);
    let checked = conformance("zendesk", &file, None, settings, &token, &emu.url).await;
    assert!(checked.output.status.success(), "{}", checked.stdout());
    assert!(checked.failed().is_empty(), "{:?}", checked.failed());
}
