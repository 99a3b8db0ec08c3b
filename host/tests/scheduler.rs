//! Acceptance: many integrations (`SLUICE_SCHED_INTEGRATIONS`, default 500) on one host pull
//! on schedule with no overlapping runs, under a global concurrency limit; memory stays
//! bounded (the test prints it). Then a graceful stop lets the runs in flight finish.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice::app::{App, AppConfig, AppError, IntegrationInput};
use sluice::scheduler::{SchedulerConfig, SchedulerStats};
use sluice::store::{RunState, TokenHealthState};
use sluice_test_support::runtime::{add_connected, approve_emulator, connect, crm_input, open_app};
use sluice_test_support::{TestDir, temp_dir};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_integrations_pull_on_schedule_without_overlap() {
    let n: usize = std::env::var("SLUICE_SCHED_INTEGRATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        dataset: sf_emulator::Dataset::Empty,
        // The tenants stand for different users: one user approving the app this often
        // would keep only its last five approvals, as Salesforce does.
        settings: sf_emulator::Settings {
            approvals_per_app: u32::MAX,
            ..sf_emulator::Settings::default()
        },
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let dir = temp_dir("sched");
    let mut config = AppConfig::new(dir.to_path_buf());
    approve_emulator(&mut config, &emu.url);
    let app = open_app(config).await;
    let interval = Duration::from_secs(4);
    let mut ids = Vec::new();
    for i in 0..n {
        let id = app
            .add_integration(IntegrationInput {
                name: Some(format!("tenant {i}")),
                capability: Some("crm".into()),
                settings: sluice_test_support::runtime::salesforce_settings(
                    &emu.url,
                    &[("objects", "Account")],
                ),
                client_id: Some(emu.client_id.clone()),
                client_secret: Some(emu.client_secret.clone()),
                interval: Some(interval),
                ..IntegrationInput::default()
            })
            .await
            .unwrap()
            .integration
            .id;
        connect(&app, &id).await;
        ids.push(id);
    }
    let rss_before = rss_kib();
    let stats = Arc::new(SchedulerStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let max_concurrent = 16;
    let scheduler = tokio::spawn(sluice::scheduler::run(
        app.clone(),
        SchedulerConfig {
            max_concurrent,
            tick: Duration::from_millis(100),
            ..SchedulerConfig::default()
        },
        stats.clone(),
        stop_rx,
    ));
    let window = Duration::from_secs(14);
    let started = Instant::now();
    let mut rss_peak = rss_before;
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_peak = rss_peak.max(rss_kib());
    }
    stop_tx.send(true).unwrap();
    scheduler.await.unwrap();
    let rss_after = rss_kib();

    let (mut total, mut min_runs) = (0usize, usize::MAX);
    for id in &ids {
        let mut runs = app.store().runs(id, 1000).unwrap();
        runs.sort_by_key(|r| r.started_at_ms);
        for pair in runs.windows(2) {
            let end = pair[0].ended_at_ms.expect("every run ended");
            assert!(end <= pair[1].started_at_ms, "overlapping runs of {id}");
        }
        assert!(
            runs.iter()
                .all(|r| matches!(r.status, RunState::Succeeded | RunState::Interrupted))
        );
        total += runs.len();
        min_runs = min_runs.min(runs.len());
    }
    println!(
        "{n} integrations, interval {interval:?}, {window:?}: {total} runs (min {min_runs} per \
         integration), max {} at once (limit {max_concurrent}), RSS {} MiB before, {} MiB peak, \
         {} MiB after",
        stats.max_running.load(Ordering::SeqCst),
        rss_before / 1024,
        rss_peak / 1024,
        rss_after / 1024,
    );
    assert_eq!(stats.overlaps_refused.load(Ordering::SeqCst), 0);
    assert!(stats.max_running.load(Ordering::SeqCst) <= max_concurrent);
    assert!(min_runs >= 1, "every integration pulled at least once");
    assert!(rss_peak < rss_before + 512 * 1024, "memory stays bounded");
}

/// An emulator whose org holds no records, and an app on a new data directory that trusts it.
async fn empty_org(dir_name: &str) -> (sf_emulator::Emulator, TestDir, Arc<App>) {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        dataset: sf_emulator::Dataset::Empty,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let dir = temp_dir(dir_name);
    let mut config = AppConfig::new(dir.to_path_buf());
    approve_emulator(&mut config, &emu.url);
    let app = open_app(config).await;
    (emu, dir, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_finds_a_dead_refresh_token_before_a_pull() {
    let (emu, _dir, app) = empty_org("health").await;
    let id = app
        .add_integration(IntegrationInput {
            name: Some("t".into()),
            capability: Some("crm".into()),
            settings: sluice_test_support::runtime::salesforce_settings(&emu.url, &[]),
            client_id: Some(emu.client_id.clone()),
            client_secret: Some(emu.client_secret.clone()),
            // Far away: only the health check can notice.
            interval: Some(Duration::from_secs(7 * 24 * 3600)),
            ..IntegrationInput::default()
        })
        .await
        .unwrap()
        .integration
        .id;
    connect(&app, &id).await;
    let revoke = reqwest::Client::new()
        .post(format!("{}/__emulator/tokens/revoke", emu.url))
        .bearer_auth(&emu.control_key)
        .send()
        .await
        .unwrap();
    assert!(revoke.status().is_success());
    let stats = Arc::new(SchedulerStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(sluice::scheduler::run(
        app.clone(),
        SchedulerConfig {
            tick: Duration::from_millis(50),
            health_check_every: Duration::from_millis(300),
            ..SchedulerConfig::default()
        },
        stats.clone(),
        stop_rx,
    ));
    let started = Instant::now();
    while app.store().integration(&id).unwrap().state
        != sluice::store::IntegrationState::NeedsReauthorization
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "health check noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It is not asked about again: no retry loop.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop_tx.send(true).unwrap();
    scheduler.await.unwrap();
    assert_eq!(stats.health_checks.load(Ordering::SeqCst), 1);
    assert_eq!(stats.runs_started.load(Ordering::SeqCst), 0);
    assert_eq!(emu.state.stats.lock().unwrap().refresh_failures, 1);
    let health = app.store().token_health(&id).unwrap().unwrap();
    assert_eq!(health.health, TokenHealthState::Dead);
}

/// A token health check while a pull holds the integration would refresh under the run (with
/// rotation that can end the run's session and its query locators): it waits for the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_health_check_refresh_while_a_run_holds_the_integration() {
    let (emu, _dir, app) = empty_org("health").await;
    let id = app
        .add_integration(IntegrationInput {
            name: Some("held".into()),
            capability: Some("crm".into()),
            settings: sluice_test_support::runtime::salesforce_settings(
                &emu.url,
                &[("objects", "Account")],
            ),
            client_id: Some(emu.client_id.clone()),
            client_secret: Some(emu.client_secret.clone()),
            // No scheduled pull during the test: only health checks are due.
            interval: Some(Duration::from_secs(7 * 24 * 3600)),
            ..IntegrationInput::default()
        })
        .await
        .unwrap()
        .integration
        .id;
    connect(&app, &id).await;
    let refreshed = || emu.state.stats.lock().unwrap().tokens_refreshed;
    let claim = app.claim_run(&id).expect("the run claims the integration");
    let stats = Arc::new(SchedulerStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(sluice::scheduler::run(
        app.clone(),
        SchedulerConfig {
            tick: Duration::from_millis(50),
            health_check_every: Duration::from_millis(100),
            ..SchedulerConfig::default()
        },
        stats.clone(),
        stop_rx,
    ));
    // Bounded waits for the scheduler's ticks (the assertions are on counts, not times).
    for _ in 0..400 {
        if stats.health_checks_skipped.load(Ordering::SeqCst) >= 3 || refreshed() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        refreshed(),
        0,
        "no refresh while the run holds the integration"
    );
    assert!(stats.health_checks_skipped.load(Ordering::SeqCst) >= 3);
    assert_eq!(stats.health_checks.load(Ordering::SeqCst), 0);
    drop(claim);
    for _ in 0..400 {
        if stats.health_checks.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(true).unwrap();
    scheduler.await.unwrap();
    assert!(refreshed() >= 1, "the check runs once the run is over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_integration_is_not_pulled_until_resumed() {
    let (emu, _dir, app) = empty_org("sched-paused").await;
    let input = |name: &str| IntegrationInput {
        interval: Some(Duration::from_secs(1)),
        ..crm_input(&emu, name, &["Account"])
    };
    let paused = add_connected(&app, input("paused")).await;
    let going = add_connected(&app, input("going")).await;
    app.set_paused(&paused, true).unwrap();

    let err = sluice::runner::run_pull(&app, &paused, Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Paused(_)), "{err}");
    assert!(
        err.to_string().contains("sluice integration resume"),
        "{err}"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(sluice::scheduler::run(
        app.clone(),
        SchedulerConfig {
            tick: Duration::from_millis(100),
            ..SchedulerConfig::default()
        },
        Arc::new(SchedulerStats::default()),
        stop_rx,
    ));
    let runs = |id: &str| app.store().runs(id, 100).unwrap().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(runs(&paused), 0, "no pull while paused");
    assert!(runs(&going) >= 2, "the other one pulls on its schedule");

    app.set_paused(&paused, false).unwrap();
    let resumed = Instant::now();
    while runs(&paused) == 0 {
        assert!(
            resumed.elapsed() < Duration::from_secs(60),
            "no pull after resuming"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(true).unwrap();
    scheduler.await.unwrap();
}
