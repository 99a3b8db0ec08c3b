//! The outbox: events commit or roll back with the state change they report, go to the
//! endpoints they concern, and carry counts, never record contents.

use super::*;
use crate::engine::registry::VersionStore;
use crate::engine::wit::types::{Operation, Row};

fn store(tag: &str) -> (Store, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("sluice-hooks-{tag}-"))
        .tempdir()
        .unwrap();
    let store = Store::open(&dir.path().join(DB_FILE), Cipher::from_key(&[7u8; 32])).unwrap();
    (store, dir)
}

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

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn an_event_commits_or_rolls_back_with_its_state_change() {
    let (store, dir) = store("atomic");
    let i = add(&store, "a", "salesforce");
    endpoint(&store, None);
    // A process that changes the state and dies before committing: its transaction is gone,
    // and with it the event.
    {
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute(
            "UPDATE integrations SET state = 'active' WHERE id = ?1",
            [&i.id],
        )
        .unwrap();
        assert_eq!(
            count(&conn, "webhook_events"),
            1,
            "written in the same transaction"
        );
        assert_eq!(count(&conn, "webhook_deliveries"), 1);
        drop(conn); // no COMMIT: as a crash leaves it
    }
    assert_eq!(
        store.integration(&i.id).unwrap().state,
        IntegrationState::PendingAuthorization
    );
    assert!(store.webhook_events(10).unwrap().is_empty());
    assert_eq!(count(&store.conn("test").unwrap(), "webhook_deliveries"), 0);

    // The same change committed: exactly one event, one delivery per endpoint.
    store
        .set_state(&i.id, IntegrationState::Active, None)
        .unwrap();
    let connected = events_of(&store, WebhookEventType::IntegrationConnected);
    assert_eq!(connected.len(), 1);
    assert_eq!(data(&connected[0])["integration_id"], i.id.as_str());
    assert_eq!(
        data(&connected[0])["previous_state"],
        "pending-authorization"
    );
    assert_eq!(count(&store.conn("test").unwrap(), "webhook_deliveries"), 1);
    // No change, no event.
    store
        .set_state(&i.id, IntegrationState::Active, None)
        .unwrap();
    assert_eq!(
        events_of(&store, WebhookEventType::IntegrationConnected).len(),
        1
    );

    store
        .set_state(
            &i.id,
            IntegrationState::NeedsReauthorization,
            Some("invalid_grant: expired"),
        )
        .unwrap();
    let lost = events_of(&store, WebhookEventType::IntegrationNeedsReauthorization);
    assert_eq!(lost.len(), 1);
    assert_eq!(data(&lost[0])["reason"], "invalid_grant: expired");
}

#[test]
fn a_run_end_reports_each_streams_changes_without_record_contents() {
    let (store, _dir) = store("counts");
    let i = add(&store, "a", "salesforce");
    let seen = add(&store, "b", "salesforce");
    let own = endpoint(&store, Some(&i.id));
    let other = endpoint(&store, Some(&seen.id));
    let host = endpoint(&store, None);
    let secret_value = "Ssn-123-45-6789";
    let body = format!(r#"{{"Id":"1","Ssn":"{secret_value}"}}"#);
    let run = store
        .start_run(&i.id, "cli", false, "salesforce@1")
        .unwrap();
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
    let run2 = store
        .start_run(&i.id, "schedule", false, "salesforce@1")
        .unwrap();
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

/// The counts of one stream of a finished run, as its end event reports them.
fn counts_of(store: &Store, event: WebhookEventType, stream: &str) -> serde_json::Value {
    let events = events_of(store, event);
    let last = events.last().expect("an end event");
    let streams = data(last)["streams"].as_array().unwrap().clone();
    let s = streams.into_iter().find(|s| s["stream"] == stream).unwrap();
    serde_json::json!([s["added"], s["updated"], s["deleted"]])
}

#[test]
fn merges_and_a_keys_changes_within_one_page_count_in_page_order() {
    let (store, _dir) = store("merge-counts");
    let i = add(&store, "a", "salesforce");
    let run = store
        .start_run(&i.id, "cli", false, "salesforce@1")
        .unwrap();
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

#[test]
fn an_orphaned_run_closed_later_reports_a_failed_sync_with_what_it_committed() {
    let (store, _dir) = store("orphan");
    let i = add(&store, "a", "salesforce");
    let run = store
        .start_run(&i.id, "cli", false, "salesforce@1")
        .unwrap();
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

#[test]
fn a_connector_activation_is_reported_once_to_the_endpoints_it_concerns() {
    let (store, _dir) = store("activate");
    let uses = add(&store, "a", "zendesk");
    let other = add(&store, "b", "salesforce");
    let (uses_ep, other_ep, host_ep) = (
        endpoint(&store, Some(&uses.id)),
        endpoint(&store, Some(&other.id)),
        endpoint(&store, None),
    );
    for version in [1, 2] {
        store
            .conn("test")
            .unwrap()
            .execute(
                "INSERT INTO connector_versions (name, version, sha256, contract, installed_at_ms,
                     wasm, manifest_json) VALUES ('zendesk', ?1, ?2, 'sluice:connector@0.4', 0,
                     x'00', '{}')",
                params![version, format!("sha-{version}")],
            )
            .unwrap();
    }
    store.set_active("zendesk", 1, SystemTime::now()).unwrap();
    store.set_active("zendesk", 1, SystemTime::now()).unwrap();
    store.set_active("zendesk", 2, SystemTime::now()).unwrap();
    let activated = events_of(&store, WebhookEventType::ConnectorVersionActivated);
    let versions: Vec<_> = activated
        .iter()
        .map(|e| data(e)["version"].clone())
        .collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(data(&activated[0])["connector"], "zendesk");
    let to = |e: &WebhookEndpoint| store.webhook_deliveries(Some(&e.id), 10).unwrap().len();
    assert_eq!((to(&uses_ep), to(&other_ep), to(&host_ep)), (2, 0, 2));
}

#[test]
fn deliveries_are_leased_retried_given_up_and_put_back() {
    let (store, dir) = store("lease");
    let i = add(&store, "a", "salesforce");
    let ep = endpoint(&store, None);
    // The signing secret is sealed: neither the database nor its WAL holds it in clear.
    let mut bytes = std::fs::read(dir.path().join(DB_FILE)).unwrap();
    bytes.extend(std::fs::read(dir.path().join("sluice.db-wal")).unwrap_or_default());
    let holds = |text: &[u8]| bytes.windows(text.len()).any(|w| w == text);
    assert!(
        holds(b"https://hooks.example.com/in"),
        "the search finds what is there"
    );
    assert!(!holds(b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    store
        .set_state(&i.id, IntegrationState::Active, None)
        .unwrap();
    let now = now_ms();
    let due = store.claim_due_deliveries(now, 60_000, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].secret.expose(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    );
    assert_eq!(due[0].body, store.webhook_events(1).unwrap()[0].body);
    // Leased: not taken again until the lease runs out.
    assert!(
        store
            .claim_due_deliveries(now, 60_000, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim_due_deliveries(now + 60_000, 60_000, 10)
            .unwrap()
            .len(),
        1
    );

    let (event, endpoint_id) = (due[0].event_id.clone(), ep.id.clone());
    let fail = |retry_at_ms| AttemptResult::Failed {
        status: Some(503),
        error: "the endpoint answered 503".into(),
        retry_at_ms,
    };
    store
        .record_delivery_attempt(&event, &endpoint_id, &fail(Some(now)))
        .unwrap();
    let shown = store.webhook_endpoint(&endpoint_id).unwrap();
    assert_eq!((shown.pending, shown.failed), (1, 0));
    assert_eq!(
        shown.last_error.as_deref(),
        Some("the endpoint answered 503")
    );
    store
        .record_delivery_attempt(&event, &endpoint_id, &fail(None))
        .unwrap();
    let listed = store.webhook_deliveries(None, 10).unwrap();
    assert_eq!(
        (listed[0].state, listed[0].attempts),
        (DeliveryState::Failed, 2)
    );
    assert!(
        store
            .claim_due_deliveries(now + 600_000, 1, 10)
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.retry_failed_deliveries(&endpoint_id).unwrap(), 1);
    let again = store.claim_due_deliveries(now_ms(), 1, 10).unwrap();
    assert_eq!(again.len(), 1);
    store
        .record_delivery_attempt(
            &event,
            &endpoint_id,
            &AttemptResult::Delivered { status: 204 },
        )
        .unwrap();
    let shown = store.webhook_endpoint(&endpoint_id).unwrap();
    assert_eq!((shown.pending, shown.delivered, shown.failed), (0, 1, 0));
    assert!(matches!(
        store.delete_webhook_endpoint("whk_missing"),
        Err(StoreError::UnknownWebhook(_))
    ));
    store.delete_webhook_endpoint(&endpoint_id).unwrap();
    assert!(store.webhook_deliveries(None, 10).unwrap().is_empty());
    assert_eq!(
        store.webhook_events(10).unwrap().len(),
        1,
        "events stay in the outbox"
    );
}

#[test]
fn a_secret_that_cannot_be_opened_fails_its_deliveries_and_spares_the_others() {
    let (store, _dir) = store("sealed");
    let i = add(&store, "a", "salesforce");
    let broken = endpoint(&store, None);
    let fine = endpoint(&store, None);
    // Sealed for another endpoint: it does not open under this one's context.
    store
        .conn("test")
        .unwrap()
        .execute(
            "UPDATE webhook_endpoints SET secret = (SELECT secret FROM webhook_endpoints
                 WHERE id = ?2) WHERE id = ?1",
            params![broken.id, fine.id],
        )
        .unwrap();
    store
        .set_state(&i.id, IntegrationState::Active, None)
        .unwrap();
    let due = store.claim_due_deliveries(now_ms(), 60_000, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].endpoint_id, fine.id);
    let shown = store.webhook_endpoint(&broken.id).unwrap();
    assert_eq!((shown.pending, shown.failed), (0, 1));
    assert!(shown.last_error.unwrap().contains("signing secret"));
}

#[test]
fn settled_events_past_the_retention_are_pruned_and_owed_ones_stay() {
    let (store, _dir) = store("prune");
    let i = add(&store, "a", "salesforce");
    let first = endpoint(&store, None);
    let second = endpoint(&store, None);
    let event_count = |store: &Store| store.webhook_events(100).unwrap().len();
    // Three events, each to both endpoints.
    store
        .set_state(&i.id, IntegrationState::Active, None)
        .unwrap();
    store
        .set_state(&i.id, IntegrationState::NeedsReauthorization, None)
        .unwrap();
    store
        .set_state(&i.id, IntegrationState::Active, None)
        .unwrap();
    let events: Vec<String> = store
        .webhook_events(100)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(events.len(), 3);
    let settle = |event: &str, endpoint: &str, result: AttemptResult| {
        store
            .record_delivery_attempt(event, endpoint, &result)
            .unwrap()
    };
    let given_up = || AttemptResult::Failed {
        status: Some(500),
        error: "the endpoint answered 500".into(),
        retry_at_ms: None,
    };
    // events[0]: delivered to both; events[1]: delivered to one, given up by the other;
    // events[2]: delivered to one, still owed to the other.
    for ep in [&first.id, &second.id] {
        settle(&events[0], ep, AttemptResult::Delivered { status: 200 });
    }
    settle(
        &events[1],
        &first.id,
        AttemptResult::Delivered { status: 200 },
    );
    settle(&events[1], &second.id, given_up());
    settle(
        &events[2],
        &first.id,
        AttemptResult::Delivered { status: 200 },
    );

    // Nothing is older than a cut-off in the past.
    assert_eq!(store.prune_webhook_events(0).unwrap(), 0);
    assert_eq!(event_count(&store), 3);
    let later = now_ms() + 1;
    assert_eq!(store.prune_webhook_events(later).unwrap(), 2);
    let left = store.webhook_events(100).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, events[2], "the event still owed stays");
    let deliveries = store.webhook_deliveries(None, 100).unwrap();
    assert!(deliveries.iter().all(|d| d.event_id == events[2]));
    assert_eq!(deliveries.len(), 2);
}
