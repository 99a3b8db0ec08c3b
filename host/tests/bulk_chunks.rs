//! Bulk API 2.0 backfills in large results chunks, end to end: the host's runner and the
//! sandboxed connector against the in-process emulator. A chunk is one API call and one
//! committed page; the stored records equal the emulator's ground truth exactly, and a
//! failure between chunks resumes at the next chunk's locator, losing and repeating nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sf_emulator::{Dataset, Emulator, EmulatorConfig};
use sluice::app::{App, IntegrationInput};
use sluice::runner::{Progress, PullOptions, RunStatus, RunSummary};
use sluice_test_support::runtime::{connect, control, emulator_app, live_records, settings, stats};

/// Cases in the emulator; with [`CHUNK`], five chunks, the last one short.
const N: usize = 23_000;
/// `bulk-chunk-records` of these tests.
const CHUNK: usize = 5_000;
const JOBS_PATH: &str = "/services/data/v62.0/jobs/query";

async fn bench_emulator() -> Emulator {
    Emulator::start(EmulatorConfig {
        auto_approve: true,
        dataset: Dataset::Bench,
        scale: N,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// A connected integration pulling Case through Bulk in chunks of [`CHUNK`] rows.
async fn bulk_integration(app: &App, emu: &Emulator) -> String {
    let input = IntegrationInput {
        name: Some("bulk chunks".into()),
        capability: Some("helpdesk".into()),
        settings: sluice_test_support::runtime::salesforce_settings(
            &emu.url,
            &[
                ("objects", "Case"),
                ("bulk-threshold", "1000"),
                ("bulk-chunk-records", &CHUNK.to_string()),
            ],
        ),
        client_id: Some(emu.client_id.clone()),
        client_secret: Some(emu.client_secret.clone()),
        ..IntegrationInput::default()
    };
    let id = app
        .add_integration(input)
        .await
        .expect("integration added")
        .integration
        .id;
    connect(app, &id).await;
    id
}

/// A pull of `id`, with the row counts of its committed pages.
async fn pull(app: &Arc<App>, id: &str) -> (RunSummary, Vec<usize>) {
    let pages = Arc::new(Mutex::new(Vec::new()));
    let seen = pages.clone();
    let summary = sluice::runner::run_pull(
        app,
        id,
        PullOptions {
            progress: Some(Arc::new(move |p: &Progress| {
                if let Progress::Page { rows, .. } = p {
                    seen.lock().unwrap().push(*rows);
                }
            })),
            ..PullOptions::default()
        },
    )
    .await
    .expect("pull runs");
    let pages = pages.lock().unwrap().clone();
    (summary, pages)
}

/// The stored live Cases: Id → record without `attributes`; panics on a stored tombstone of a
/// live record or a key stored twice.
fn stored(app: &App, id: &str) -> BTreeMap<String, Value> {
    let mut live = BTreeMap::new();
    app.store()
        .for_each_record(id, Some("Case"), true, |r| {
            if !r.deleted {
                let mut v: Value = serde_json::from_slice(&r.json).unwrap();
                v.as_object_mut().unwrap().remove("attributes");
                assert!(live.insert(r.key, v).is_none(), "a key stored twice");
            }
            Ok(())
        })
        .unwrap();
    live
}

/// Every stored record equals its ground-truth record, field for field, and no record is
/// missing or extra.
async fn assert_stored_equal_truth(app: &App, emu: &Emulator, id: &str) -> usize {
    let truth = live_records(emu, "Case").await;
    let stored = stored(app, id);
    let missing: Vec<_> = truth.keys().filter(|k| !stored.contains_key(*k)).collect();
    let extra: Vec<_> = stored.keys().filter(|k| !truth.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} in truth, {} stored; missing {:?}, extra {:?}",
        truth.len(),
        stored.len(),
        &missing[..missing.len().min(5)],
        &extra[..extra.len().min(5)]
    );
    let differ: Vec<_> = truth
        .iter()
        .filter(|(k, v)| stored.get(*k) != Some(*v))
        .take(2)
        .map(|(k, v)| (v.clone(), stored[k].clone()))
        .collect();
    assert!(
        differ.is_empty(),
        "records differ (truth, stored): {differ:?}"
    );
    truth.len()
}

/// The heads of the Bulk job requests the emulator received.
async fn job_requests(emu: &Emulator) -> Vec<Value> {
    let r = control(
        emu,
        "GET",
        &format!("requests?path_prefix={JOBS_PATH}"),
        None,
    )
    .await;
    r["requests"].as_array().unwrap().clone()
}

fn header<'v>(head: &'v Value, name: &str) -> Option<&'v str> {
    head["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0].as_str() == Some(name))
        .and_then(|h| h[1].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_backfill_reads_large_chunks_one_call_and_one_page_each() {
    let emu = bench_emulator().await;
    let (app, _dir) = emulator_app("bulk-chunks", &emu.url).await;
    let id = bulk_integration(&app, &emu).await;

    let calls_before = stats(&emu).await["api_calls"].as_u64().unwrap();
    let (summary, pages) = pull(&app, &id).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    let calls = stats(&emu).await["api_calls"].as_u64().unwrap() - calls_before;
    let live = assert_stored_equal_truth(&app, &emu, &id).await;

    // The job reads every Case the window holds, deleted ones included (queryAll).
    let chunks = N.div_ceil(CHUNK) as u64;
    assert!(
        calls <= chunks + 10,
        "{calls} API calls for {N} Cases in chunks of {CHUNK} (at most {})",
        chunks + 10
    );
    assert_eq!(summary.api_calls, calls, "the run counts every API call");
    assert_eq!(
        pages.iter().max().copied(),
        Some(CHUNK),
        "a chunk fills one page: {pages:?}"
    );
    assert!(live > N * 9 / 10, "{live} live Cases");

    let heads = job_requests(&emu).await;
    let results: Vec<&Value> = heads
        .iter()
        .filter(|h| h["path"].as_str().unwrap().contains("/results?"))
        .collect();
    assert_eq!(
        results.len() as u64,
        chunks,
        "one request per chunk: {heads:?}"
    );
    for h in &results {
        let path = h["path"].as_str().unwrap();
        assert!(path.contains(&format!("maxRecords={CHUNK}")), "{path}");
    }
    for h in &heads {
        let accepts = header(h, "accept-encoding").unwrap_or_default();
        assert!(
            accepts.split(',').any(|e| e.trim() == "gzip"),
            "a Bulk request without Accept-Encoding: gzip: {h}"
        );
    }
    assert!(stats(&emu).await["compressed_responses"].as_u64().unwrap() >= chunks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_between_chunks_resumes_at_the_next_chunk() {
    let emu = bench_emulator().await;
    let (app, _dir) = emulator_app("bulk-chunks", &emu.url).await;
    settings(&emu, json!({"bulk_polls_to_complete": 1})).await;
    let id = bulk_integration(&app, &emu).await;
    // The job's GETs: the poll that finds it complete, chunk 1, chunk 2, then chunk 3 fails.
    control(
        &emu,
        "POST",
        "faults",
        Some(
            json!({"method": "GET", "path_prefix": format!("{JOBS_PATH}/"), "skip": 3,
            "count": 1, "status": 403, "errorCode": "REQUEST_LIMIT_EXCEEDED",
            "message": "TotalRequests Limit exceeded."}),
        ),
    )
    .await;

    let (first, _) = pull(&app, &id).await;
    assert_eq!(first.status, RunStatus::RateLimited, "{first:?}");
    assert_eq!(first.records, 2 * CHUNK as u64, "two chunks committed");
    control(&emu, "DELETE", "requests", None).await;

    let (second, _) = pull(&app, &id).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    let heads = job_requests(&emu).await;
    let first_read = heads
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .find(|p| p.contains("/results?"))
        .expect("the second run reads results");
    assert!(
        first_read.contains("locator="),
        "the second run started the job's results over: {first_read}"
    );
    assert_eq!(
        stats(&emu).await["bulk_jobs_created"].as_u64().unwrap(),
        1,
        "the same job serves both runs"
    );

    let live = assert_stored_equal_truth(&app, &emu, &id).await;
    // Every row the job holds was committed exactly once over the two runs: the job's rows
    // are the live Cases plus the deleted ones queryAll returns.
    let job_rows = control(&emu, "GET", "records/Case?limit=1", None).await["totalSize"]
        .as_u64()
        .unwrap();
    assert_eq!(
        first.records + second.records,
        job_rows,
        "rows committed over both runs ({live} live)"
    );
}
