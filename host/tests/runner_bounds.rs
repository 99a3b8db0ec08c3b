//! A pull run is bounded whatever the connector answers: pages over the requested size are
//! refused, a connector answering `partial` forever is stopped, and a rate-limit pause is
//! capped. The hostile connector serves as the integration's connector.
//! Run: `cargo test --release -p sluice --test runner_bounds`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sluice::app::{App, AppConfig, IntegrationInput};
use sluice::engine::ConnectorEngine;
use sluice::runner::{PullOptions, RunStatus, RunSummary};
use sluice_test_support::runtime::grant;
use sluice_test_support::*;

/// A compile cache holding the embedded connector and the hostile one, made once per process,
/// so each test's app starts without compiling them again. It lives in the target directory
/// (a static is never dropped, so a temporary directory would stay behind) and starts empty,
/// so artifacts of older builds are not copied into every app.
fn warm_cache() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_dir().join("runner-bounds-warm-cache");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = AppConfig::new(dir.clone());
        let engine = ConnectorEngine::with_cache(config.limits, Some(&dir)).unwrap();
        engine
            .load("salesforce", sluice::SALESFORCE_COMPONENT)
            .unwrap();
        engine.load("hostile", hostile()).unwrap();
        dir
    })
}

/// An app whose `salesforce` connector is the hostile connector, with `change` applied to its
/// configuration; its data directory lives as long as the returned guard.
async fn app_with(change: impl FnOnce(&mut AppConfig)) -> (Arc<App>, TestDir) {
    let dir = TestDir::new_in(&target_dir().join("runner-bounds-scratch"), "app");
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for entry in std::fs::read_dir(warm_cache()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), cache.join(entry.file_name())).unwrap();
    }
    let mut config = AppConfig::new(dir.to_path_buf());
    config.allow_insecure_loopback = true;
    // The grants below name this instance (never contacted): the operator approves it.
    config.extra_origins =
        vec![sluice::engine::policy::parse_extra_origin("https://instance.example").unwrap()];
    change(&mut config);
    let app = App::open(config).await.expect("app opens");
    app.registry()
        .install("salesforce", hostile(), false)
        .await
        .expect("the hostile connector installs");
    (app, dir)
}

/// A connected integration whose connector behaves as `behaviour`.
async fn integration(app: &App, behaviour: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("behaviour".to_string(), behaviour.to_string())];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let id = app
        .add_integration(IntegrationInput {
            name: Some(behaviour.into()),
            capability: Some("crm".into()),
            settings: [("environment".to_string(), "production".to_string())]
                .into_iter()
                .chain(pairs)
                .collect(),
            ..IntegrationInput::default()
        })
        .await
        .expect("the integration is added")
        .integration
        .id;
    let tokens = grant(
        "access",
        None,
        "https://login.example/token",
        "https://instance.example",
    );
    app.store().put_grant(&id, &tokens).unwrap();
    id
}

/// Runs one pull; a run that never ends fails the test instead of hanging it.
async fn run(app: &Arc<App>, id: &str, page_records: u32) -> RunSummary {
    let opts = PullOptions {
        trigger: "test".into(),
        page_records,
        ..PullOptions::default()
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        sluice::runner::run_pull(app, id, opts),
    )
    .await
    .expect("the run ended")
    .expect("the run ran")
}

fn detail(summary: &RunSummary) -> String {
    summary.streams[0].detail.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_with_more_rows_than_asked_is_refused() {
    let (app, _dir) = app_with(|_| {}).await;
    // Four 64 KiB rows, within the byte cap, for a page of at most one row.
    let id = integration(&app, "big-page", &[("size", "262144")]).await;
    let summary = run(&app, &id, 1).await;
    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(
        summary.streams[0].status,
        sluice::runner::StreamResult::Failed
    );
    assert!(detail(&summary).contains("4 rows"), "{}", detail(&summary));
    assert_eq!(summary.records, 0);
    assert_eq!(app.store().checkpoint(&id, "Thing").unwrap(), None);
    // The same connector within the requested size commits.
    let summary = run(&app, &id, 10).await;
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(summary.records, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_that_never_progresses_is_stopped() {
    let (app, _dir) = app_with(|c| c.runs.max_idle_pages = 3).await;
    let id = integration(&app, "stall", &[]).await;
    let summary = run(&app, &id, 10).await;
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(
        detail(&summary).contains("3 pages in a row"),
        "{}",
        detail(&summary)
    );
    // The integration is free again.
    assert!(app.claim_run(&id).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_keeps_answering_partial_ends_at_its_deadline() {
    let (app, _dir) = app_with(|c| c.runs.deadline = Duration::from_secs(2)).await;
    let id = integration(&app, "endless", &[]).await;
    let summary = run(&app, &id, 10).await;
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(
        detail(&summary).contains("deadline"),
        "{}",
        detail(&summary)
    );
    // What committed is kept, and the next run resumes after it.
    assert!(summary.records > 0);
    assert_eq!(
        app.store().checkpoint(&id, "Thing").unwrap(),
        Some(summary.records.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_rate_limit_pause_is_capped_and_reported() {
    let (app, _dir) = app_with(|c| c.runs.max_retry_after = Duration::from_secs(3600)).await;
    let id = integration(&app, "rate-limited", &[]).await;
    let summary = run(&app, &id, 10).await;
    assert_eq!(summary.status, RunStatus::RateLimited);
    assert_eq!(summary.retry_after_s, Some(3600));
    let stream = &summary.streams[0];
    assert_eq!(stream.failure.as_ref().unwrap().retry_after_s, Some(3600));
    assert!(
        detail(&summary).contains(&u32::MAX.to_string()),
        "{}",
        detail(&summary)
    );
    // A pause within the cap is kept as asked.
    let id = integration(&app, "rate-limited", &[("retry-after", "120")]).await;
    assert_eq!(run(&app, &id, 10).await.retry_after_s, Some(120));
}
