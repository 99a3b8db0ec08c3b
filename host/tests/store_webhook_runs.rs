//! A run's end event on both databases, through the store's own methods: what its pages
//! changed, counted by the page commit, never record contents.

use sluice::engine::wit::types::{Operation, Row};
use sluice::secrets::Secret;
use sluice::store::{
    CheckpointState, Integration, IntegrationSettings, NewIntegration, RunState, Store,
    WebhookEndpoint, WebhookEvent, WebhookEventType,
};
use sluice_test_support::each_backend;

fn add(store: &Store, name: &str, connector: &str) -> Integration {
    store
        .insert_integration(&NewIntegration {
            name: name.into(),
            connector: connector.into(),
            settings: IntegrationSettings::new("records", [("domain", "https://acme.example")]),
            interval_s: 900,
            client_id: None,
            client_secret: None,
        })
        .unwrap()
}

fn endpoint(store: &Store, integration: Option<&str>) -> WebhookEndpoint {
    store
        .insert_webhook_endpoint(
            "https://hooks.example.com/in",
            integration,
            &Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        )
        .unwrap()
}

fn row(key: &str, op: Operation, json: &str) -> Row {
    Row {
        key: key.into(),
        op,
        cursor: "2024-01-01T00:00:00.000Z".into(),
        json: json.as_bytes().to_vec(),
    }
}

fn events_of(store: &Store, kind: WebhookEventType) -> Vec<WebhookEvent> {
    let mut events: Vec<_> = store
        .webhook_events(1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == kind)
        .collect();
    events.reverse();
    events
}

fn data(event: &WebhookEvent) -> serde_json::Value {
    let body: serde_json::Value = serde_json::from_str(&event.body).unwrap();
    assert_eq!(body["type"], event.event_type.as_str());
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    body["data"].clone()
}

/// The counts of one stream of a finished run, as its end event reports them.
fn counts_of(store: &Store, event: WebhookEventType, stream: &str) -> serde_json::Value {
    let events = events_of(store, event);
    let last = events.last().expect("an end event");
    let streams = data(last)["streams"].as_array().unwrap().clone();
    let s = streams.into_iter().find(|s| s["stream"] == stream).unwrap();
    serde_json::json!([s["added"], s["updated"], s["deleted"]])
}

each_backend! {
fn a_run_end_reports_each_streams_changes_without_record_contents(store) {
    let i = add(&store, "a", "salesforce");
    let seen = add(&store, "b", "salesforce");
    let own = endpoint(&store, Some(&i.id));
    let other = endpoint(&store, Some(&seen.id));
    let host = endpoint(&store, None);
    let secret_value = "Ssn-123-45-6789";
    let body = format!(r#"{{"Id":"1","Ssn":"{secret_value}"}}"#);
    let run = store.start_run_as_runner(&i.id, "cli", "salesforce@1");
    let commit = |stream: &str, rows: &[Row]| {
        store
            .commit_page(
                &i.id,
                stream,
                &run,
                rows,
                Some("c"),
                CheckpointState::Partial,
                1,
            )
            .unwrap()
    };
    commit(
        "Account",
        &[
            row("1", Operation::Upsert, &body),
            row("2", Operation::Upsert, &body),
        ],
    );
    commit(
        "Account",
        &[
            row("1", Operation::Upsert, &body),
            row("2", Operation::Delete, "{}"),
            row("3", Operation::Delete, "{}"),
            // A delete of a tombstone changes nothing.
            row("2", Operation::Delete, "{}"),
        ],
    );
    commit("Contact", &[row("9", Operation::Upsert, &body)]);
    let outcomes = serde_json::json!([
        {"stream": "Account", "status": "complete", "records": 6},
        {"stream": "Contact", "status": "failed", "records": 1},
        {"stream": "Lead", "status": "not-run", "records": 0},
    ]);
    store
        .finish_run(&run, RunState::Failed, &outcomes, Some("Contact failed"))
        .unwrap();

    assert!(events_of(&store, WebhookEventType::SyncCompleted).is_empty());
    let failed = events_of(&store, WebhookEventType::SyncFailed);
    assert_eq!(failed.len(), 1);
    assert!(!failed[0].body.contains(secret_value), "{}", failed[0].body);
    let d = data(&failed[0]);
    assert_eq!(d["run_id"], run.as_str());
    assert_eq!(d["status"], "failed");
    assert_eq!(d["error"], "Contact failed");
    assert_eq!(
        d["streams"],
        serde_json::json!([
            // The delete of key 3, never stored, removed nothing.
            {"stream": "Account", "status": "complete", "added": 2, "updated": 1, "deleted": 1},
            {"stream": "Contact", "status": "failed", "added": 1, "updated": 0, "deleted": 0},
            {"stream": "Lead", "status": "not-run", "added": 0, "updated": 0, "deleted": 0},
        ])
    );
    // The integration's own endpoint and the host's get it; another integration's does not.
    let to = |e: &WebhookEndpoint| store.webhook_deliveries(Some(&e.id), 10).unwrap().len();
    assert_eq!((to(&own), to(&other), to(&host)), (1, 0, 1));

    // A later run counts its own changes: the tombstone coming back is an add.
    let run2 = store.start_run_as_runner(&i.id, "schedule", "salesforce@1");
    store
        .commit_page(
            &i.id,
            "Account",
            &run2,
            &[row("2", Operation::Upsert, &body)],
            None,
            CheckpointState::Complete,
            1,
        )
        .unwrap();
    store
        .finish_run(
            &run2,
            RunState::Succeeded,
            &serde_json::json!([{"stream": "Account", "status": "complete"}]),
            None,
        )
        .unwrap();
    let completed = events_of(&store, WebhookEventType::SyncCompleted);
    assert_eq!(completed.len(), 1);
    assert_eq!(
        data(&completed[0])["streams"][0],
        serde_json::json!({"stream": "Account", "status": "complete", "added": 1, "updated": 0, "deleted": 0})
    );
    assert_eq!(data(&completed[0])["full"], false);
    assert_eq!(data(&completed[0])["trigger"], "schedule");

    // Each run names the feed cursors around it: the second starts where the first ended and
    // made one change.
    let cursor = |event: &WebhookEvent, end: &str| -> i64 {
        data(event)["changes"][end]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(cursor(&failed[0], "after"), 0);
    let first_through = cursor(&failed[0], "through");
    assert_eq!(first_through, store.latest_change_seq(&i.id).unwrap().0 - 1);
    assert_eq!(cursor(&completed[0], "after"), first_through);
    assert_eq!(cursor(&completed[0], "through"), first_through + 1);
}

fn merges_and_a_keys_changes_within_one_page_count_in_page_order(store) {
    let i = add(&store, "a", "salesforce");
    let run = store.start_run_as_runner(&i.id, "cli", "salesforce@1");
    let page = |rows: &[Row]| {
        store
            .commit_page(&i.id, "Case", &run, rows, None, CheckpointState::Partial, 1)
            .unwrap()
    };
    page(&[
        row("A", Operation::Upsert, r#"{"Id":"A","F":1}"#),
        row("B", Operation::Upsert, r#"{"Id":"B","F":1}"#),
    ]);
    page(&[
        // A merge that changes a live record is an update; one that changes nothing, or
        // targets a key never stored, counts nothing.
        row("A", Operation::Merge, r#"{"F":2}"#),
        row("B", Operation::Merge, r#"{"F":1}"#),
        row("Z", Operation::Merge, r#"{"F":2}"#),
        // A new key written, then deleted, then written again within one page.
        row("C", Operation::Upsert, r#"{"Id":"C"}"#),
        row("C", Operation::Delete, "{}"),
        row("C", Operation::Upsert, r#"{"Id":"C"}"#),
        // A merge into a record the same page wrote.
        row("C", Operation::Merge, r#"{"F":3}"#),
    ]);
    store
        .finish_run(
            &run,
            RunState::Succeeded,
            &serde_json::json!([{"stream": "Case", "status": "complete"}]),
            None,
        )
        .unwrap();
    // Added A, B, C, C again; updated A (merge), C (merge); deleted C.
    assert_eq!(
        counts_of(&store, WebhookEventType::SyncCompleted, "Case"),
        serde_json::json!([4, 2, 1])
    );
    let live: i64 = store
        .record_counts(&i.id)
        .unwrap()
        .iter()
        .map(|c| c.live)
        .sum();
    // Summed over runs, added - deleted is the live count.
    assert_eq!(live, 4 - 1);
}

fn an_orphaned_run_closed_later_reports_a_failed_sync_with_what_it_committed(store) {
    let i = add(&store, "a", "salesforce");
    let run = store.start_run_as_runner(&i.id, "cli", "salesforce@1");
    store
        .commit_page(
            &i.id,
            "Case",
            &run,
            &[row("1", Operation::Upsert, "{}")],
            Some("c"),
            CheckpointState::Partial,
            1,
        )
        .unwrap();
    // Its process died; the next run's start closes it.
    store.close_orphan_runs(&i.id).unwrap();
    let failed = events_of(&store, WebhookEventType::SyncFailed);
    assert_eq!(failed.len(), 1);
    assert_eq!(data(&failed[0])["status"], "interrupted");
    assert_eq!(
        data(&failed[0])["streams"],
        serde_json::json!([
            {"stream": "Case", "status": "interrupted", "added": 1, "updated": 0, "deleted": 0}
        ])
    );
}
}
