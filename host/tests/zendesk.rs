//! Acceptance of the Zendesk connector, end to end: the component built from
//! `connectors/zendesk` for wasm32-wasip2, installed next to the bundled Salesforce connector
//! in a real host, given an OAuth grant the Zendesk emulator issued, connected by the
//! runtime's PKCE flow or by an API token (basic), and pulled. Every test
//! ends by comparing the stored records with the emulator's ground truth
//! (`/__emulator/records/{stream}`): the same live records, field for field, and tombstones
//! only for records the emulator deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};
use sluice::app::{App, EnteredSecret, IntegrationInput};
use sluice::engine::registry::HostApproval;
use sluice::runner::{Progress, PullOptions, RunStatus, RunSummary};
use sluice::secrets::Secret;
use sluice_test_support::guests;
use sluice_test_support::runtime::{emulator_app, grant};
use zendesk_emulator::{Emulator, EmulatorConfig};

/// The connector's streams and the emulator's ground-truth names for them.
const STREAMS: [(&str, &str); 3] = [
    ("tickets", "tickets"),
    ("ticket-comments", "ticket_comments"),
    ("users", "users"),
];

async fn emulator(scale: usize) -> Emulator {
    let mut config = EmulatorConfig {
        scale,
        ..EmulatorConfig::default()
    };
    config.settings.auto_approve = true;
    Emulator::start(config).await.expect("emulator starts")
}

/// A host with the bundled Salesforce connector and the Zendesk build under test.
async fn app_with_zendesk(emu: &Emulator) -> (Arc<App>, sluice_test_support::dirs::TestDir) {
    let (app, dir) = emulator_app("zendesk", &emu.url).await;
    app.registry()
        .install_with_approval("zendesk", guests::zendesk(), false, HostApproval::Approved)
        .await
        .expect("the Zendesk component installs");
    (app, dir)
}

/// A Zendesk integration on the emulator, with an OAuth grant the emulator issued (`read`
/// scope, refresh token) stored as a connect stores it.
async fn integration(app: &App, emu: &Emulator, extra: &[(&str, &str)]) -> String {
    let id = add_integration(app, emu, extra).await;
    let issued = control(emu, "POST", "oauth/grant", Some(json!({"scope": "read"}))).await;
    let tokens = grant(
        issued["access_token"].as_str().unwrap(),
        issued["refresh_token"].as_str(),
        &format!("{}/oauth/tokens", emu.url),
        &emu.url,
    );
    app.store().put_grant(&id, &tokens).unwrap();
    id
}

/// A Zendesk integration on the emulator, not connected.
async fn add_integration(app: &App, emu: &Emulator, extra: &[(&str, &str)]) -> String {
    let mut settings = vec![("subdomain".to_string(), emu.url.clone())];
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    app.add_integration(IntegrationInput {
        connector: Some("zendesk".into()),
        name: Some("zendesk e2e".into()),
        capability: Some("helpdesk".into()),
        client_id: Some(emu.client_id.clone()),
        client_secret: Some(emu.client_secret.clone()),
        settings,
        ..IntegrationInput::default()
    })
    .await
    .expect("integration added")
    .integration
    .id
}

/// Calls the emulator's control API; a failure fails the test.
async fn control(emu: &Emulator, method: &str, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let url = format!("{}/__emulator/{path}", emu.url);
    let request = match method {
        "GET" => client.get(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    }
    .bearer_auth(&emu.control_key);
    let request = match body {
        Some(b) => request.json(&b),
        None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Moves the emulator's clock past the one-minute rule (and into a fresh rate window).
async fn a_minute_later(emu: &Emulator) {
    control(emu, "POST", "clock", Some(json!({"advance_s": 61}))).await;
}

async fn pull_with(app: &Arc<App>, id: &str, options: PullOptions) -> RunSummary {
    sluice::runner::run_pull(app, id, options)
        .await
        .expect("pull runs")
}

async fn pull_ok(app: &Arc<App>, id: &str) -> RunSummary {
    let summary = pull_with(app, id, PullOptions::default()).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    summary
}

/// A record's key as the connector makes it.
fn key_of(stream: &str, record: &Value) -> String {
    match stream {
        "ticket-comments" => format!("{}/{}", record["ticket_id"], record["id"]),
        _ => record["id"].to_string(),
    }
}

/// The emulator's ground truth of `stream`: live records by key, and the keys it deleted.
async fn truth(
    emu: &Emulator,
    stream: &str,
    truth_name: &str,
) -> (BTreeMap<String, Value>, BTreeSet<String>) {
    let all = control(emu, "GET", &format!("records/{truth_name}"), None).await;
    let live = control(emu, "GET", &format!("records/{truth_name}?live=true"), None).await;
    let live: BTreeMap<String, Value> = live["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (key_of(stream, r), r.clone()))
        .collect();
    let gone = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| key_of(stream, r))
        .filter(|k| !live.contains_key(k))
        .collect();
    (live, gone)
}

/// Stored live records by key, and tombstones.
fn stored(app: &App, id: &str, stream: &str) -> (BTreeMap<String, Value>, BTreeSet<String>) {
    let mut live = BTreeMap::new();
    let mut tombstones = BTreeSet::new();
    app.store()
        .for_each_record(id, Some(stream), true, |r| {
            if r.deleted {
                assert!(tombstones.insert(r.key), "duplicate tombstone");
            } else {
                let v: Value = serde_json::from_slice(&r.json).unwrap();
                assert!(live.insert(r.key, v).is_none(), "duplicate key");
            }
            Ok(())
        })
        .unwrap();
    (live, tombstones)
}

/// Every stream's stored records equal the emulator's ground truth.
async fn assert_equal(app: &App, emu: &Emulator, id: &str) {
    for (stream, truth_name) in STREAMS {
        let (live, gone) = truth(emu, stream, truth_name).await;
        let (stored, tombstones) = stored(app, id, stream);
        let missing: Vec<_> = live.keys().filter(|k| !stored.contains_key(*k)).collect();
        let extra: Vec<_> = stored.keys().filter(|k| !live.contains_key(*k)).collect();
        let stale: Vec<_> = live
            .iter()
            .filter(|(k, v)| stored.get(*k).is_some_and(|s| s != *v))
            .map(|(k, _)| k)
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty() && stale.is_empty(),
            "{stream}: {} live in truth, {} stored; missing {:?}, extra {:?}, stale {:?}",
            live.len(),
            stored.len(),
            &missing[..missing.len().min(5)],
            &extra[..extra.len().min(5)],
            &stale[..stale.len().min(5)],
        );
        let bad: Vec<_> = tombstones.iter().filter(|k| !gone.contains(*k)).collect();
        assert!(
            bad.is_empty(),
            "{stream}: tombstones for live records: {bad:?}"
        );
    }
}

/// Lifts the request budgets, for tests whose small pages would spend Zendesk's 10 export
/// requests a minute.
async fn unlimited(emu: &Emulator) {
    let budgets =
        json!({"incremental_rate_limit_per_minute": 100000, "rate_limit_per_minute": 100000});
    control(emu, "POST", "settings", Some(budgets)).await;
}

async fn ops(emu: &Emulator, ops: Value) -> Value {
    control(emu, "POST", "records", Some(json!({ "ops": ops }))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pull_next_to_salesforce_equals_ground_truth() {
    let emu = emulator(200).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    for name in ["salesforce", "zendesk"] {
        assert!(
            app.registry().active(name).is_some(),
            "{name} is not serving"
        );
    }
    let id = integration(&app, &emu, &[]).await;
    let summary = pull_ok(&app, &id).await;
    assert!(summary.records > 200, "{summary:?}");
    assert_equal(&app, &emu, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_inserts_and_deletes_between_pulls_arrive() {
    let emu = emulator(60).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let id = integration(&app, &emu, &[]).await;
    pull_ok(&app, &id).await;
    assert_equal(&app, &emu, &id).await;
    let (users, _) = truth(&emu, "users", "users").await;
    let user = |i: usize| users.keys().nth(i).unwrap().parse::<u64>().unwrap();
    // Tickets 3 and 4 were live after the first pull; pick live ones to change.
    let (tickets, _) = truth(&emu, "tickets", "tickets").await;
    let ticket = |i: usize| tickets.keys().nth(i).unwrap().parse::<u64>().unwrap();
    ops(
        &emu,
        json!([
            {"op": "update", "stream": "tickets", "id": ticket(1), "fields": {"status": "solved"}},
            {"op": "delete", "stream": "tickets", "id": ticket(2)},
            {"op": "insert", "stream": "tickets", "fields": {"subject": "new", "description": "first words",
                "requester_id": user(1)}},
            {"op": "insert", "stream": "ticket_comments", "ticket_id": ticket(3),
                "fields": {"body": "a reply", "author_id": user(0), "public": false}},
            {"op": "update", "stream": "tickets", "id": ticket(4), "system_only": true},
            {"op": "update", "stream": "users", "id": user(2), "fields": {"name": "Renamed"}},
            {"op": "delete", "stream": "users", "id": user(3)},
        ]),
    )
    .await;
    a_minute_later(&emu).await;
    pull_ok(&app, &id).await;
    assert_equal(&app, &emu, &id).await;
    let (_, ticket_tombstones) = stored(&app, &id, "tickets");
    assert!(ticket_tombstones.contains(&ticket(2).to_string()));
    let (_, comment_tombstones) = stored(&app, &id, "ticket-comments");
    let prefix = format!("{}/", ticket(2));
    assert!(
        comment_tombstones.iter().any(|k| k.starts_with(&prefix)),
        "the deleted ticket's comments are deleted: {comment_tombstones:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_inside_the_last_minute_arrives_on_a_later_pull() {
    let emu = emulator(40).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let id = integration(&app, &emu, &[]).await;
    pull_ok(&app, &id).await;
    // Changed now, the record is held back by the export: this pull cannot see it.
    ops(
        &emu,
        json!([{"op": "update", "stream": "tickets", "id": 5, "fields": {"subject": "late"}}]),
    )
    .await;
    pull_ok(&app, &id).await;
    let (live, _) = stored(&app, &id, "tickets");
    assert_ne!(live["5"]["subject"], "late", "held back for a minute");
    // A minute on, the next pull gets it from the checkpointed cursor.
    a_minute_later(&emu).await;
    pull_ok(&app, &id).await;
    let (live, _) = stored(&app, &id, "tickets");
    assert_eq!(live["5"]["subject"], "late");
    assert_equal(&app, &emu, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_rate_limited_then_recovers() {
    let emu = emulator(30).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let id = integration(&app, &emu, &[]).await;
    // Longer than the host waits itself, so the connector sees it.
    control(
        &emu,
        "POST",
        "faults",
        Some(json!({"path_prefix": "/api/v2/incremental/", "count": 20, "status": 429,
            "headers": {"Retry-After": "45"},
            "body": {"error": "APIRateLimitExceeded", "description": "Number of allowed API requests per minute exceeded"}})),
    )
    .await;
    let limited = pull_with(&app, &id, PullOptions::default()).await;
    assert_eq!(limited.status, RunStatus::RateLimited, "{limited:?}");
    assert_eq!(limited.retry_after_s, Some(45), "{limited:?}");
    control(&emu, "DELETE", "faults", None).await;
    pull_ok(&app, &id).await;
    assert_equal(&app, &emu, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_every_checkpoint_gives_the_same_data() {
    let emu = emulator(40).await;
    unlimited(&emu).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let id = integration(&app, &emu, &[]).await;
    // Each run stops after its first committed page; the next resumes from that checkpoint.
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 500, "no end after {runs} interrupted runs");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let progress: sluice::runner::ProgressFn = Arc::new(move |p: &Progress| {
            if matches!(p, Progress::Page { .. }) {
                let _ = stop_tx.send(true);
            }
        });
        let summary = pull_with(
            &app,
            &id,
            PullOptions {
                page_records: 7,
                progress: Some(progress),
                stop: Some(stop_rx),
                ..PullOptions::default()
            },
        )
        .await;
        match summary.status {
            RunStatus::Succeeded => break,
            RunStatus::Interrupted => continue,
            other => panic!("run {runs} ended {other:?}: {summary:?}"),
        }
    }
    assert_equal(&app, &emu, &id).await;
    // Streams run side by side and finish the pages in flight, so a run may commit a few.
    assert!(
        runs > 5,
        "the pull took {runs} runs; pages of 7 should need more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_test_and_discover_go_through_the_host() {
    let emu = emulator(10).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let info = app.describe("zendesk").await.unwrap();
    assert_eq!(info.title, "Zendesk Support");
    let id = integration(&app, &emu, &[]).await;
    let report = app.test(&id).await.unwrap();
    assert!(report.failure.is_none(), "{report:?}");
    let probes: Vec<&str> = report.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(probes, ["identity", "tickets", "users"]);
    assert_eq!(report.user.as_deref(), Some(emu.email.as_str()));
    let schemas = app.discover(&id).await.unwrap();
    let names: Vec<&str> = schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["tickets", "ticket-comments", "users"]);
    // Every record the pull stores, deleted tickets and users included, fits its schema.
    pull_ok(&app, &id).await;
    for schema in &schemas {
        let json: Value = serde_json::from_str(&schema.json_schema).unwrap();
        let validator = jsonschema::validator_for(&json).expect("the schema compiles");
        let mut checked = 0;
        app.store()
            .for_each_record(&id, Some(&schema.name), false, |r| {
                let record: Value = serde_json::from_slice(&r.json).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&record)
                    .map(|e| e.to_string())
                    .collect();
                assert!(errors.is_empty(), "{} {}: {errors:?}", schema.name, r.key);
                checked += 1;
                Ok(())
            })
            .unwrap();
        assert!(checked > 0, "{} stored nothing", schema.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_need_reauthorization_and_keep_the_data() {
    let emu = emulator(20).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let id = integration(&app, &emu, &[]).await;
    pull_ok(&app, &id).await;
    control(&emu, "POST", "tokens/revoke", None).await;
    a_minute_later(&emu).await;
    let summary = pull_with(&app, &id, PullOptions::default()).await;
    assert_eq!(
        summary.status,
        RunStatus::NeedsReauthorization,
        "{summary:?}"
    );
    assert_equal(&app, &emu, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_on_its_401() {
    let emu = emulator(20).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let id = integration(&app, &emu, &[]).await;
    pull_ok(&app, &id).await;
    control(&emu, "POST", "tokens/expire", None).await;
    ops(
        &emu,
        json!([{"op": "update", "stream": "tickets", "id": 3, "fields": {"priority": "urgent"}}]),
    )
    .await;
    a_minute_later(&emu).await;
    pull_ok(&app, &id).await;
    let stats = control(&emu, "GET", "stats", None).await;
    assert_eq!(stats["tokens_refreshed"], 1, "{stats}");
    assert_equal(&app, &emu, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_by_oauth_with_pkce_and_pulls() {
    let emu = emulator(20).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let id = add_integration(&app, &emu, &[]).await;
    sluice_test_support::runtime::connect(&app, &id).await;
    let tokens = app.store().tokens(&id).unwrap().expect("tokens stored");
    assert!(tokens.refresh.is_some(), "a refresh token is kept");
    pull_ok(&app, &id).await;
    assert_equal(&app, &emu, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_during_a_pull_arrive_on_the_next_one() {
    let emu = emulator(60).await;
    unlimited(&emu).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let id = integration(&app, &emu, &[]).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let progress: sluice::runner::ProgressFn = Arc::new(move |p: &Progress| {
        if matches!(p, Progress::Page { .. }) {
            let _ = tx.send(());
        }
    });
    let run = {
        let app = app.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let options = PullOptions {
                page_records: 5,
                progress: Some(progress),
                ..PullOptions::default()
            };
            sluice::runner::run_pull(&app, &id, options).await
        })
    };
    rx.recv().await.expect("a page is committed");
    // Ticket 1 was in the first page of tickets; ticket 60 comes later in this run.
    ops(
        &emu,
        json!([
            {"op": "update", "stream": "tickets", "id": 1, "fields": {"subject": "during"}},
            {"op": "insert", "stream": "ticket_comments", "ticket_id": 1,
                "fields": {"body": "said during the pull", "author_id": 360000001, "public": true}},
            {"op": "delete", "stream": "tickets", "id": 60},
        ]),
    )
    .await;
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    a_minute_later(&emu).await;
    pull_ok(&app, &id).await;
    let (tickets, _) = stored(&app, &id, "tickets");
    assert_eq!(tickets["1"]["subject"], "during");
    assert_equal(&app, &emu, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_connects_by_basic_and_pulls() {
    let emu = emulator(20).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let id = add_integration(&app, &emu, &[("auth", "api-token")]).await;
    let token = EnteredSecret::Basic {
        username: format!("{}/token", emu.email),
        password: Secret::new(&emu.api_token),
    };
    app.connect_entered(&id, token).await.expect("connected");
    pull_ok(&app, &id).await;
    assert_equal(&app, &emu, &id).await;
    // Zendesk retires API tokens; once they are refused the integration needs new credentials.
    control(
        &emu,
        "POST",
        "settings",
        Some(json!({"api_tokens_enabled": false})),
    )
    .await;
    a_minute_later(&emu).await;
    let summary = pull_with(&app, &id, PullOptions::default()).await;
    assert_eq!(
        summary.status,
        RunStatus::NeedsReauthorization,
        "{summary:?}"
    );
    assert_equal(&app, &emu, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_token_needs_reauthorization() {
    let emu = emulator(10).await;
    let (app, _dir) = app_with_zendesk(&emu).await;
    let id = add_integration(&app, &emu, &[("auth", "api-token")]).await;
    let token = EnteredSecret::Basic {
        username: format!("{}/token", emu.email),
        password: Secret::new("not-the-token"),
    };
    app.connect_entered(&id, token).await.expect("stored");
    let summary = pull_with(&app, &id, PullOptions::default()).await;
    assert_eq!(
        summary.status,
        RunStatus::NeedsReauthorization,
        "{summary:?}"
    );
    assert!(stored(&app, &id, "tickets").0.is_empty());
}
