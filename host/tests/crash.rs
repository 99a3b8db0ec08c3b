//! Acceptance: pull a large Case table from the emulator while killing the `sluice pull`
//! process with SIGKILL at random moments, resuming each time; the stored records must then
//! equal the emulator's ground truth exactly (nothing lost, nothing duplicated).
//!
//! Size: `SLUICE_CRASH_CASES` Cases (default 200,000) and `SLUICE_CRASH_KILLS` kills
//! (default 20).

#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sluice::app::{AppConfig, IntegrationInput};
use sluice_test_support::runtime::{approve_emulator, connect, open_app};
use sluice_test_support::temp_dir;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn random_ms(lo: u64, hi: u64) -> u64 {
    let t = sluice::secrets::random_token(8);
    let n = t
        .bytes()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    lo + n % (hi - lo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let cases = env_or("SLUICE_CRASH_CASES", 200_000);
    let kills = env_or("SLUICE_CRASH_KILLS", 20);
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        dataset: sf_emulator::Dataset::Bench,
        scale: cases,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let dir = temp_dir("crash");
    let mut config = AppConfig::new(dir.to_path_buf());
    approve_emulator(&mut config, &emu.url);
    let app = open_app(config).await;
    let id = app
        .add_integration(IntegrationInput {
            name: Some("crash".into()),
            capability: Some("helpdesk".into()),
            settings: sluice_test_support::runtime::salesforce_settings(
                &emu.url,
                &[("objects", "Case")],
            ),
            client_id: Some(emu.client_id.clone()),
            client_secret: Some(emu.client_secret.clone()),
            ..IntegrationInput::default()
        })
        .await
        .expect("integration added")
        .integration
        .id;
    connect(&app, &id).await;

    // Every run logs at trace level into one file, which is then searched for secrets.
    let logs = temp_dir("crash-log");
    let log_path = logs.join("runs.log");
    let pull_with = |extra: &[&str]| {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--data-dir")
            .arg(&dir)
            .args([
                "--allow-insecure-loopback",
                "--extra-origin",
                &emu.url,
                "-vvv",
                "--log-format",
                "json",
                "pull",
                &id,
            ])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sluice pull starts")
    };
    let pull = || pull_with(&[]);
    let started = Instant::now();
    let mut killed_mid_run = 0;
    for _ in 0..kills {
        let mut child = pull();
        let deadline = Instant::now() + Duration::from_millis(random_ms(150, 1500));
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() >= deadline {
                // `Child::kill` sends SIGKILL on unix.
                child.kill().expect("SIGKILL");
                let _ = child.wait();
                killed_mid_run += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // SIGTERM during a full re-pull: the run finishes its page, commits, records itself as
    // interrupted and exits promptly.
    let previous = app
        .store()
        .runs(&id, 1)
        .unwrap()
        .first()
        .map(|r| r.id.clone());
    let mut child = pull_with(&["--full"]);
    // Wait until the new run has committed a page, so the signal lands mid-run.
    let waiting = Instant::now();
    loop {
        let latest = app.store().runs(&id, 1).unwrap();
        if latest
            .first()
            .is_some_and(|r| Some(&r.id) != previous.as_ref() && r.records > 0)
        {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the run started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let asked = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "SIGTERM ends the pull"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = app.store().runs(&id, 1).unwrap().remove(0);
    assert!(
        last.status == sluice::store::RunState::Interrupted && last.ended_at_ms.is_some(),
        "a terminated run is recorded as ended: {last:?}"
    );
    println!("after SIGTERM the run ended as {}", last.status);

    let status = pull().wait().unwrap();
    assert!(status.success(), "the final resume completes");
    println!(
        "{cases} Cases, {killed_mid_run}/{kills} runs killed mid-run, {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Ground truth from the emulator.
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/__emulator/records/Case", emu.url))
        .bearer_auth(&emu.control_key)
        .send()
        .await
        .unwrap()
        .json_or_text()
        .await;
    let mut live_truth = BTreeMap::new();
    let mut deleted_truth = BTreeSet::new();
    for r in body["records"].as_array().unwrap() {
        let id = r["Id"].as_str().unwrap().to_string();
        if r["_deleted"].as_bool().unwrap() {
            deleted_truth.insert(id);
        } else {
            live_truth.insert(id, r["SystemModstamp"].as_str().unwrap().to_string());
        }
    }
    let mut live = BTreeMap::new();
    let mut tombstones = BTreeSet::new();
    app.store()
        .for_each_record(&id, Some("Case"), true, |r| {
            if r.deleted {
                tombstones.insert(r.key);
            } else {
                let json: serde_json::Value = serde_json::from_slice(&r.json).unwrap();
                live.insert(r.key, json["SystemModstamp"].as_str().unwrap().to_string());
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(live.len(), live_truth.len(), "live record count");
    assert!(live == live_truth, "live records equal the ground truth");
    assert!(
        tombstones.is_subset(&deleted_truth),
        "every tombstone is a deleted record"
    );

    // The outbox kept pace through every kill: each run has exactly one sync event, written
    // with its end (a killed run's when the next one closed it), and the counts they carry add
    // up to the store: added - deleted is the live count.
    let runs = app.store().runs(&id, 10_000).unwrap();
    let mut reported = BTreeMap::new();
    let mut net: i64 = 0;
    for event in app.store().webhook_events(100_000).unwrap() {
        let body: serde_json::Value = serde_json::from_str(&event.body).unwrap();
        if !body["type"].as_str().unwrap().starts_with("sync.") {
            continue;
        }
        let data = &body["data"];
        *reported
            .entry(data["run_id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
        for stream in data["streams"].as_array().unwrap() {
            net += stream["added"].as_i64().unwrap() - stream["deleted"].as_i64().unwrap();
        }
    }
    assert!(runs.iter().all(|r| r.ended_at_ms.is_some()));
    assert_eq!(
        reported.keys().collect::<BTreeSet<_>>(),
        runs.iter().map(|r| &r.id).collect::<BTreeSet<_>>(),
        "one sync event per run"
    );
    assert!(reported.values().all(|n| *n == 1), "{reported:?}");
    assert_eq!(
        net,
        live.len() as i64,
        "the events' counts add up to the live records"
    );

    // No token or client secret in the logs or the data directory (the key file aside).
    let tokens = app.store().tokens(&id).unwrap().unwrap();
    let secrets = [
        tokens.access.expose().to_string(),
        tokens.refresh.unwrap().expose().to_string(),
        emu.client_secret.clone(),
    ];
    let mut haystack = std::fs::read(&log_path).unwrap();
    assert!(haystack.len() > 1000, "the runs logged something");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.file_name().unwrap() != "secret.key" {
            haystack.extend(std::fs::read(&path).unwrap());
        }
    }
    for s in &secrets {
        assert!(
            !haystack.windows(s.len()).any(|w| w == s.as_bytes()),
            "a secret is in clear in the logs or the data directory"
        );
    }
}

/// `Response::json` needs reqwest's `json` feature; this parses the text instead.
trait JsonOrText {
    async fn json_or_text(self) -> serde_json::Value;
}

impl JsonOrText for reqwest::Response {
    async fn json_or_text(self) -> serde_json::Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}
