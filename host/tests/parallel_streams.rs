//! Streams of one integration pulled in parallel, against the emulator: they overlap (proved
//! by the emulator's query rendezvous, not by a clock), each ends with the emulator's ground
//! truth, a failure in one leaves the others complete, and a rate limit stops them all.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use sf_emulator::{Emulator, EmulatorConfig};
use sluice::app::{App, AppConfig, IntegrationInput};
use sluice::runner::{PullOptions, RunStatus, RunSummary, StreamResult};
use sluice::store::CheckpointState;
use support::dirs::{TestDir, temp_dir};
use support::runtime::{approve_emulator, connect, control, live_truth, open_app, settings, stats};

const CRM: [&str; 4] = ["Account", "Contact", "Lead", "Opportunity"];

async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig {
        auto_approve: true,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// An app pulling up to `parallel` streams of an integration at once.
async fn app(emu: &Emulator, parallel: usize) -> (Arc<App>, TestDir) {
    let dir = temp_dir("parallel");
    let mut config = AppConfig::new(dir.to_path_buf());
    approve_emulator(&mut config, &emu.url);
    config.host_client = Default::default();
    config.runs.parallel_streams = parallel;
    (open_app(config).await, dir)
}

/// A connected CRM integration pulling `objects` through REST queries only (Bulk off: no
/// `COUNT()` query first, whose failure the connector would take as "use REST").
async fn integration(app: &App, emu: &Emulator, objects: &[&str]) -> String {
    let input = IntegrationInput {
        name: Some("parallel".into()),
        capability: Some("crm".into()),
        settings: sluice_test_support::runtime::salesforce_settings(
            &emu.url,
            &[("objects", &objects.join(",")), ("bulk-threshold", "0")],
        ),
        client_id: Some(emu.client_id.clone()),
        client_secret: Some(emu.client_secret.clone()),
        ..IntegrationInput::default()
    };
    let id = app
        .add_integration(input)
        .await
        .expect("added")
        .integration
        .id;
    connect(app, &id).await;
    id
}

async fn pull(app: &Arc<App>, id: &str, page_records: u32) -> RunSummary {
    let opts = PullOptions {
        page_records,
        ..PullOptions::default()
    };
    sluice::runner::run_pull(app, id, opts)
        .await
        .expect("pull runs")
}

/// The stored records of `stream` are exactly the emulator's live ones.
async fn assert_equal(app: &App, emu: &Emulator, id: &str, stream: &str) {
    let truth = live_truth(emu, stream).await;
    let mut stored = BTreeSet::new();
    app.store()
        .for_each_record(id, Some(stream), false, |r| {
            assert!(stored.insert(r.key), "duplicate key");
            Ok(())
        })
        .unwrap();
    assert!(!truth.is_empty(), "{stream}: the dataset has rows");
    let missing: Vec<_> = truth.difference(&stored).take(5).collect();
    let extra: Vec<_> = stored.difference(&truth).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{stream}: {} in truth, {} stored; missing {missing:?}, extra {extra:?}",
        truth.len(),
        stored.len()
    );
}

fn status_of(summary: &RunSummary, stream: &str) -> StreamResult {
    summary
        .streams
        .iter()
        .find(|o| o.stream == stream)
        .unwrap_or_else(|| panic!("{stream} in {summary:?}"))
        .status
}

async fn rendezvous(emu: &Emulator, objects: &[&str], timeout_ms: u64) {
    let body = json!({"objects": objects, "timeout_ms": timeout_ms});
    control(emu, "POST", "rendezvous", Some(body)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_streams_are_in_flight_at_once_and_each_ends_with_the_ground_truth() {
    let emu = emulator().await;
    let (app, _dir) = app(&emu, 2).await;
    let id = integration(&app, &emu, &["Account", "Contact"]).await;
    // Each stream's first query is held until the other stream's has arrived: the pull can
    // only succeed when both streams are in flight together.
    rendezvous(&emu, &["Account", "Contact"], 60_000).await;
    let summary = pull(&app, &id, 200).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    let meeting = control(&emu, "GET", "rendezvous", None).await;
    assert_eq!(meeting["met"], true, "{meeting}");
    for stream in ["Account", "Contact"] {
        assert_eq!(status_of(&summary, stream), StreamResult::Complete);
        assert_equal(&app, &emu, &id, stream).await;
    }
    let records: u64 = summary.streams.iter().map(|o| o.records).sum();
    let api_calls: u64 = summary.streams.iter().map(|o| o.api_calls).sum();
    assert_eq!(summary.records, records);
    assert_eq!(summary.api_calls, api_calls);
    let recorded = &app.store().runs(&id, 1).unwrap()[0];
    assert_eq!(
        recorded.records as u64, summary.records,
        "the run's counters"
    );
    assert_eq!(recorded.api_calls as u64, summary.api_calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_at_a_time_never_meets_the_rendezvous() {
    let emu = emulator().await;
    let (app, _dir) = app(&emu, 1).await;
    let id = integration(&app, &emu, &["Account", "Contact"]).await;
    rendezvous(&emu, &["Account", "Contact"], 1_000).await;
    let summary = pull(&app, &id, 200).await;
    assert_eq!(summary.status, RunStatus::Failed, "{summary:?}");
    let account = &summary.streams[0];
    assert_eq!(account.status, StreamResult::Failed, "{summary:?}");
    let failure = account.failure.as_ref().expect("the connector's failure");
    assert!(
        failure.message.contains("REQUEST_RUNNING_TOO_LONG"),
        "{failure:?}"
    );
    // The timeout called the rendezvous off, so the next stream went on alone.
    assert_eq!(status_of(&summary, "Contact"), StreamResult::Complete);
    let meeting = control(&emu, "GET", "rendezvous", None).await;
    assert_eq!(meeting["met"], false, "{meeting}");
    assert_eq!(meeting["timed_out"], 1);
}

/// The stream the first fault hit, by its outcome.
fn failed_stream(summary: &RunSummary) -> String {
    let failed: Vec<_> = summary
        .streams
        .iter()
        .filter(|o| o.status == StreamResult::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "exactly one stream failed: {summary:?}");
    failed[0].stream.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_in_one_stream_leaves_the_others_complete_with_their_checkpoints() {
    let emu = emulator().await;
    let (app, _dir) = app(&emu, 4).await;
    let id = integration(&app, &emu, &CRM).await;
    // The first query of the run fails, whichever stream sent it (a failed follow-up page
    // would not do: the connector opens the query again).
    let fault = json!({"path_prefix": "/services/data/v62.0/query",
        "errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred."});
    control(&emu, "POST", "faults", Some(fault)).await;
    let first = pull(&app, &id, 200).await;
    assert_eq!(first.status, RunStatus::Failed, "{first:?}");
    let failed = failed_stream(&first);
    let checkpoints = app.store().checkpoints(&id).unwrap();
    for stream in CRM.iter().filter(|s| **s != failed) {
        assert_eq!(
            status_of(&first, stream),
            StreamResult::Complete,
            "{first:?}"
        );
        assert_equal(&app, &emu, &id, stream).await;
        let (_, _, state) = checkpoints
            .iter()
            .find(|(s, _, _)| s == stream)
            .unwrap_or_else(|| panic!("{stream} has a checkpoint"));
        assert_eq!(*state, CheckpointState::Complete, "{stream}");
    }
    // The next run resumes the failed stream from what it committed and catches up.
    let second = pull(&app, &id, 200).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    for stream in CRM {
        assert_equal(&app, &emu, &id, stream).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_in_one_stream_stops_the_streams_not_yet_started() {
    let emu = emulator().await;
    let (app, _dir) = app(&emu, 2).await;
    let id = integration(&app, &emu, &CRM).await;
    let fault = json!({"path_prefix": "/services/data/v62.0/query", "status": 403,
        "errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."});
    control(&emu, "POST", "faults", Some(fault)).await;
    let summary = pull(&app, &id, 200).await;
    assert_eq!(summary.status, RunStatus::RateLimited, "{summary:?}");
    assert_eq!(summary.retry_after_s, Some(3600));
    let limited: Vec<_> = summary
        .streams
        .iter()
        .filter(|o| o.failure.as_ref().is_some_and(|f| f.kind == "rate-limited"))
        .collect();
    assert_eq!(limited.len(), 1, "{summary:?}");
    // Two lanes: the first two streams started; the rest never did.
    for stream in &CRM[2..] {
        assert_eq!(
            status_of(&summary, stream),
            StreamResult::NotRun,
            "{summary:?}"
        );
    }
    let recorded = &app.store().runs(&id, 1).unwrap()[0];
    assert_eq!(recorded.status.as_str(), "rate-limited");
    let streams: Value = recorded.streams.clone();
    assert_eq!(streams.as_array().map(Vec::len), Some(CRM.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_in_parallel_share_one_token_refresh() {
    let emu = emulator().await;
    let (app, _dir) = app(&emu, 4).await;
    let id = integration(&app, &emu, &CRM).await;
    // With rotation, two refreshes at once would burn each other's refresh token.
    settings(&emu, json!({"refresh_token_rotation": true})).await;
    control(&emu, "POST", "tokens/expire", None).await;
    let before = stats(&emu).await;
    let summary = pull(&app, &id, 200).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    let after = stats(&emu).await;
    let refreshed =
        after["tokens_refreshed"].as_u64().unwrap() - before["tokens_refreshed"].as_u64().unwrap();
    assert_eq!(refreshed, 1, "one refresh for every stream: {after}");
    assert_eq!(after["refresh_failures"], before["refresh_failures"]);
    for stream in CRM {
        assert_equal(&app, &emu, &id, stream).await;
    }
}
