//! The webhook outbox and connector versions, each checked on SQLite and on PostgreSQL with
//! one test body (`each_backend!`): events commit or roll back with the state change they
//! report, carry the same members on both databases, go to the endpoints they concern, and are
//! leased, retried, given up, put back and pruned; two hosts never claim one delivery.
//!
//! The state changes are written with SQL, as any code path (or another host) could make
//! them: the triggers, not the store's methods, write the events.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use sluice::engine::registry::{NewVersion, VersionStore};
use sluice::secrets::Secret;
use sluice::store::{
    AttemptResult, DeliveryState, Store, StoreError, WebhookEndpoint, WebhookEvent,
    WebhookEventType, now_ms,
};
use sluice_test_support::PgCluster;
use sluice_test_support::each_backend;
use sluice_test_support::stores::{Backend, TestStore};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Runs one statement on the store's database as another client would, and returns its rows,
/// one a line, columns separated by `|` (NULL as empty).
fn sql(store: &TestStore, statement: &str) -> String {
    match store.backend {
        Backend::Sqlite => {
            let conn = open_sqlite(store);
            let mut stmt = conn.prepare(statement).unwrap();
            let columns = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            let mut out = String::new();
            while let Some(row) = rows.next().unwrap() {
                let cells: Vec<String> = (0..columns)
                    .map(|i| text_of(row.get_ref(i).unwrap()))
                    .collect();
                out.push_str(&cells.join("|"));
                out.push('\n');
            }
            out
        }
        Backend::Postgres => PgCluster::shared().psql(&pg_name(store), statement),
    }
}

fn open_sqlite(store: &TestStore) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(store.path().unwrap()).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    conn
}

fn pg_name(store: &TestStore) -> String {
    store.database_name().unwrap().to_string()
}

fn text_of(value: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => String::new(),
        ValueRef::Integer(v) => v.to_string(),
        ValueRef::Real(v) => v.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    }
}

fn count(store: &TestStore, table: &str) -> i64 {
    sql(store, &format!("SELECT COUNT(*) FROM {table}"))
        .trim()
        .parse()
        .unwrap()
}

/// Adds an integration of `connector`, pending authorization; returns its id.
fn add(store: &TestStore, id: &str, connector: &str) -> String {
    sql(
        store,
        &format!(
            r#"INSERT INTO integrations (id, seq, name, connector, settings_json, interval_s,
                 state, created_at_ms, updated_at_ms)
             VALUES ('{id}', (SELECT COALESCE(MAX(seq), 0) + 1 FROM integrations),
                 'name of {id}', '{connector}', '{{"capability": "records", "values": {{}}}}',
                 900, 'pending-authorization', 0, 0)"#
        ),
    );
    id.to_string()
}

fn set_state(store: &TestStore, id: &str, state: &str, reason: Option<&str>) {
    let reason = reason.map_or("NULL".to_string(), |r| format!("'{r}'"));
    sql(
        store,
        &format!(
            "UPDATE integrations SET state = '{state}', state_reason = {reason} WHERE id = '{id}'"
        ),
    );
}

fn endpoint(store: &Store, integration: Option<&str>) -> WebhookEndpoint {
    store
        .insert_webhook_endpoint(
            "https://hooks.example.com/in",
            integration,
            &Secret::new(SECRET),
        )
        .unwrap()
}

/// The events of `kind`, oldest first.
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

/// An event's `data`, after checking its envelope: its type, and an RFC 3339 UTC timestamp
/// with milliseconds.
fn data(event: &WebhookEvent) -> serde_json::Value {
    let body: serde_json::Value = serde_json::from_str(&event.body).unwrap();
    assert_eq!(body["type"], event.event_type.as_str());
    let at = body["timestamp"].as_str().unwrap();
    let shape: String = at
        .chars()
        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
        .collect();
    assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.dddZ", "{at}");
    assert!(
        event.id.starts_with("evt_") && event.id.len() == 28,
        "{}",
        event.id
    );
    assert!(event.id[4..].chars().all(|c| c.is_ascii_hexdigit()));
    body["data"].clone()
}

fn deliveries_to(store: &Store, e: &WebhookEndpoint) -> usize {
    store.webhook_deliveries(Some(&e.id), 100).unwrap().len()
}

/// Starts a run of `integration`; returns its id.
fn start_run(store: &TestStore, id: &str, integration: &str) -> String {
    sql(
        store,
        &format!(
            "INSERT INTO runs (id, integration_id, trigger, \"full\", connector_version,
                 started_at_ms, status)
             VALUES ('{id}', '{integration}', 'schedule', FALSE, 'salesforce@1', 1000, 'running')"
        ),
    );
    id.to_string()
}

fn end_run(store: &TestStore, run: &str, status: &str, streams: &str, error: Option<&str>) {
    let error = error.map_or("NULL".to_string(), |e| format!("'{e}'"));
    sql(
        store,
        &format!(
            "UPDATE runs SET status = '{status}', ended_at_ms = 2000, records = 7,
                 streams_json = '{streams}', error = {error} WHERE id = '{run}'"
        ),
    );
}

fn set_feed_head(store: &TestStore, integration: &str, last_seq: i64) {
    sql(
        store,
        &format!(
            "INSERT INTO change_feeds (integration_id, last_seq) VALUES ('{integration}', {last_seq})
             ON CONFLICT (integration_id) DO UPDATE SET last_seq = {last_seq}"
        ),
    );
}

/// An empty component (magic, version 0xd, layer 1) carrying `manifest` in its custom section.
fn component(manifest: &str) -> Vec<u8> {
    let name = b"sluice:manifest";
    let mut wasm = b"\0asm\x0d\x00\x01\x00".to_vec();
    wasm.push(0);
    wasm.push((1 + name.len() + manifest.len()) as u8);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.extend_from_slice(manifest.as_bytes());
    wasm
}

fn add_version(store: &Store, name: &str, sha256: &str) -> u32 {
    let added = store
        .add_version(&NewVersion {
            name,
            sha256,
            contract: "sluice:connector@0.4",
            installed_at: SystemTime::now(),
            wasm: &component(&format!(r#"{{"hosts":["{sha256}.example.com"]}}"#)),
        })
        .unwrap();
    added.version
}

each_backend! {
    fn an_event_commits_or_rolls_back_with_its_state_change(store) {
        let i = add(&store, "int_a", "salesforce");
        endpoint(&store, None);
        // A host that changes the state and dies before committing: its transaction is
        // gone, and with it the event.
        let change = format!("UPDATE integrations SET state = 'active' WHERE id = '{i}'");
        let counts = "SELECT (SELECT COUNT(*) FROM webhook_events) || '|' ||
                             (SELECT COUNT(*) FROM webhook_deliveries)";
        let seen_inside = match store.backend {
            Backend::Sqlite => {
                let conn = open_sqlite(&store);
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                conn.execute(&change, []).unwrap();
                conn.query_row(counts, [], |r| r.get::<_, String>(0)).unwrap()
                // dropped without COMMIT, as a crash leaves it
            }
            Backend::Postgres => PgCluster::shared()
                .psql(&pg_name(&store), &format!("BEGIN; {change}; {counts}; ROLLBACK"))
                .trim()
                .to_string(),
        };
        assert_eq!(seen_inside, "1|1", "written in the same transaction");
        assert_eq!(count(&store, "webhook_events"), 0);
        assert_eq!(count(&store, "webhook_deliveries"), 0);

        // The same change committed: exactly one event, one delivery per endpoint.
        set_state(&store, &i, "active", None);
        let connected = events_of(&store, WebhookEventType::IntegrationConnected);
        assert_eq!(connected.len(), 1);
        assert_eq!(connected[0].integration_id.as_deref(), Some(i.as_str()));
        assert_eq!(
            data(&connected[0]),
            serde_json::json!({"integration_id": i, "name": "name of int_a",
                "connector": "salesforce", "previous_state": "pending-authorization"})
        );
        assert_eq!(count(&store, "webhook_deliveries"), 1);
        // No change, no event.
        set_state(&store, &i, "active", None);
        assert_eq!(events_of(&store, WebhookEventType::IntegrationConnected).len(), 1);

        set_state(&store, &i, "needs-reauthorization", Some("invalid_grant: expired"));
        let lost = events_of(&store, WebhookEventType::IntegrationNeedsReauthorization);
        assert_eq!(lost.len(), 1);
        assert_eq!(
            data(&lost[0]),
            serde_json::json!({"integration_id": i, "name": "name of int_a",
                "connector": "salesforce", "reason": "invalid_grant: expired"})
        );
        // Newest first.
        let listed = store.webhook_events(10).unwrap();
        assert_eq!(listed[0].id, lost[0].id);
        assert_eq!(listed[1].id, connected[0].id);
    }

    fn a_run_end_reports_each_streams_changes_and_the_feed_cursors_around_it(store) {
        let i = add(&store, "int_a", "salesforce");
        let seen = add(&store, "int_b", "salesforce");
        let own = endpoint(&store, Some(&i));
        let other = endpoint(&store, Some(&seen));
        let host = endpoint(&store, None);
        set_feed_head(&store, &i, 5);
        let run = start_run(&store, "run_1", &i);
        // What the run's pages changed, and where they left the feed.
        sql(
            &store,
            &format!(
                "INSERT INTO run_changes (run_id, integration_id, stream, added, updated, deleted)
                 VALUES ('{run}', '{i}', 'Account', 2, 1, 1), ('{run}', '{i}', 'Contact', 1, 0, 0)"
            ),
        );
        set_feed_head(&store, &i, 9);
        end_run(
            &store,
            &run,
            "failed",
            r#"[{"stream": "Contact", "status": "failed", "records": 1},
                {"stream": "Account", "status": "complete", "records": 6},
                {"stream": "Lead", "status": "not-run", "records": 0}]"#,
            Some("Contact failed"),
        );
        assert!(events_of(&store, WebhookEventType::SyncCompleted).is_empty());
        let failed = events_of(&store, WebhookEventType::SyncFailed);
        assert_eq!(failed.len(), 1);
        assert_eq!(
            data(&failed[0]),
            serde_json::json!({
                "integration_id": i, "connector": "salesforce",
                "connector_version": "salesforce@1", "run_id": run, "trigger": "schedule",
                "full": false, "status": "failed", "error": "Contact failed",
                "started_at_ms": 1000, "ended_at_ms": 2000, "records": 7,
                "changes": {"after": "5", "through": "9"},
                // In the outcomes' order; a stream without changes counts zeros.
                "streams": [
                    {"stream": "Contact", "status": "failed", "added": 1, "updated": 0, "deleted": 0},
                    {"stream": "Account", "status": "complete", "added": 2, "updated": 1, "deleted": 1},
                    {"stream": "Lead", "status": "not-run", "added": 0, "updated": 0, "deleted": 0},
                ],
            })
        );
        // The integration's own endpoint and the host's get it; another integration's does not.
        assert_eq!(
            (deliveries_to(&store, &own), deliveries_to(&store, &other), deliveries_to(&store, &host)),
            (1, 0, 1)
        );

        // The next run starts where the feed stands, and a success is `sync.completed`.
        let run2 = start_run(&store, "run_2", &i);
        set_feed_head(&store, &i, 10);
        end_run(&store, &run2, "succeeded", "[]", None);
        let completed = events_of(&store, WebhookEventType::SyncCompleted);
        assert_eq!(completed.len(), 1);
        let d = data(&completed[0]);
        assert_eq!(d["changes"], serde_json::json!({"after": "9", "through": "10"}));
        assert_eq!(d["streams"], serde_json::json!([]));
        assert_eq!(d["error"], serde_json::Value::Null);
        // A run's end is reported once: a later update of an ended run is no end.
        sql(&store, &format!("UPDATE runs SET status = 'failed' WHERE id = '{run2}'"));
        assert_eq!(events_of(&store, WebhookEventType::SyncFailed).len(), 1);
    }

    fn an_orphaned_run_closed_later_reports_the_streams_it_committed(store) {
        let i = add(&store, "int_a", "salesforce");
        let run = start_run(&store, "run_1", &i);
        sql(
            &store,
            &format!(
                "INSERT INTO run_changes (run_id, integration_id, stream, added, updated, deleted)
                 VALUES ('{run}', '{i}', 'Lead', 0, 3, 0), ('{run}', '{i}', 'Case', 1, 0, 0),
                     ('{run}', '{i}', 'account', 0, 0, 2)"
            ),
        );
        // Its process died: closed without outcomes.
        end_run(&store, &run, "interrupted", "{}", Some("the host stopped"));
        let failed = events_of(&store, WebhookEventType::SyncFailed);
        assert_eq!(failed.len(), 1);
        let d = data(&failed[0]);
        assert_eq!(d["status"], "interrupted");
        assert_eq!(d["changes"], serde_json::json!({"after": "0", "through": "0"}));
        assert_eq!(
            d["streams"],
            serde_json::json!([
                {"stream": "Case", "status": "interrupted", "added": 1, "updated": 0, "deleted": 0},
                {"stream": "Lead", "status": "interrupted", "added": 0, "updated": 3, "deleted": 0},
                // Bytewise, as SQLite orders names, whatever the database's locale.
                {"stream": "account", "status": "interrupted", "added": 0, "updated": 0, "deleted": 2},
            ])
        );
    }

    fn a_connector_activation_is_reported_once_to_the_endpoints_it_concerns(store) {
        let uses = add(&store, "int_a", "zendesk");
        let other = add(&store, "int_b", "salesforce");
        let (uses_ep, other_ep, host_ep) = (
            endpoint(&store, Some(&uses)),
            endpoint(&store, Some(&other)),
            endpoint(&store, None),
        );
        assert_eq!(add_version(&store, "zendesk", "sha-1"), 1);
        assert_eq!(add_version(&store, "zendesk", "sha-2"), 2);
        store.set_active("zendesk", 1, SystemTime::now()).unwrap();
        store.set_active("zendesk", 1, SystemTime::now()).unwrap();
        store.set_active("zendesk", 2, SystemTime::now()).unwrap();
        let activated = events_of(&store, WebhookEventType::ConnectorVersionActivated);
        let data: Vec<_> = activated.iter().map(data).collect();
        assert_eq!(
            data,
            [1, 2].map(|v| serde_json::json!({"connector": "zendesk", "version": v,
                "sha256": format!("sha-{v}"), "contract": "sluice:connector@0.4"}))
        );
        assert_eq!(activated[0].integration_id, None);
        assert_eq!(
            (deliveries_to(&store, &uses_ep), deliveries_to(&store, &other_ep),
             deliveries_to(&store, &host_ep)),
            (2, 0, 2)
        );
    }

    fn endpoints_are_listed_oldest_first_and_an_unknown_integration_is_refused(store) {
        let i = add(&store, "int_a", "salesforce");
        let first = endpoint(&store, Some(&i));
        let second = endpoint(&store, None);
        assert_eq!(first.integration_id.as_deref(), Some(i.as_str()));
        assert_eq!((first.pending, first.delivered, first.failed), (0, 0, 0));
        // Oldest first; endpoints added in one millisecond by id, compared bytewise.
        let mut expected = [&first, &second].map(|e| (e.created_at_ms, e.id.clone()));
        expected.sort();
        let listed: Vec<_> = store
            .webhook_endpoints()
            .unwrap()
            .into_iter()
            .map(|e| (e.created_at_ms, e.id))
            .collect();
        assert_eq!(listed, expected);
        assert!(matches!(
            store.insert_webhook_endpoint("https://h.example/in", Some("int_missing"),
                &Secret::new(SECRET)),
            Err(StoreError::UnknownIntegration(id)) if id == "int_missing"
        ));
        assert_eq!(store.webhook_endpoints().unwrap().len(), 2);
        assert!(matches!(
            store.webhook_endpoint("whk_missing"),
            Err(StoreError::UnknownWebhook(_))
        ));
        assert!(matches!(
            store.webhook_deliveries(Some("whk_missing"), 10),
            Err(StoreError::UnknownWebhook(_))
        ));
        // An integration's endpoints go with it.
        sql(&store, &format!("DELETE FROM integrations WHERE id = '{i}'"));
        let left: Vec<_> = store.webhook_endpoints().unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(left, [second.id]);
    }

    fn deliveries_are_leased_retried_given_up_and_put_back(store) {
        let i = add(&store, "int_a", "salesforce");
        let ep = endpoint(&store, None);
        // The signing secret is sealed: the stored bytes do not hold it in clear.
        let sealed = sql(&store, "SELECT secret FROM webhook_endpoints");
        assert!(!sealed.is_empty());
        assert!(!sealed.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{sealed}");
        set_state(&store, &i, "active", None);
        let now = now_ms();
        let due = store.claim_due_deliveries(now, 60_000, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].secret.expose(), SECRET);
        assert_eq!(due[0].url, "https://hooks.example.com/in");
        assert_eq!(due[0].attempts, 0);
        assert_eq!(due[0].body, store.webhook_events(1).unwrap()[0].body);
        // Leased: not taken again until the lease runs out.
        assert!(store.claim_due_deliveries(now, 60_000, 10).unwrap().is_empty());
        assert_eq!(store.claim_due_deliveries(now + 60_000, 60_000, 10).unwrap().len(), 1);

        let (event, endpoint_id) = (due[0].event_id.clone(), ep.id.clone());
        let fail = |retry_at_ms| AttemptResult::Failed {
            status: Some(503),
            error: "the endpoint answered 503".into(),
            retry_at_ms,
        };
        store.record_delivery_attempt(&event, &endpoint_id, &fail(Some(now))).unwrap();
        let shown = store.webhook_endpoint(&endpoint_id).unwrap();
        assert_eq!((shown.pending, shown.failed), (1, 0));
        assert_eq!(shown.last_error.as_deref(), Some("the endpoint answered 503"));
        let listed = store.webhook_deliveries(None, 10).unwrap();
        assert_eq!(listed[0].next_attempt_at_ms, Some(now));
        assert_eq!(listed[0].last_status, Some(503));
        store.record_delivery_attempt(&event, &endpoint_id, &fail(None)).unwrap();
        let listed = store.webhook_deliveries(None, 10).unwrap();
        assert_eq!((listed[0].state, listed[0].attempts), (DeliveryState::Failed, 2));
        assert_eq!(listed[0].next_attempt_at_ms, None, "shown only while pending");
        assert_eq!(listed[0].event_type, WebhookEventType::IntegrationConnected);
        assert!(store.claim_due_deliveries(now + 600_000, 1, 10).unwrap().is_empty());

        assert_eq!(store.retry_failed_deliveries(&endpoint_id).unwrap(), 1);
        let again = store.claim_due_deliveries(now_ms(), 1, 10).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 0, "put back with a fresh count");
        store
            .record_delivery_attempt(&event, &endpoint_id, &AttemptResult::Delivered { status: 204 })
            .unwrap();
        let shown = store.webhook_endpoint(&endpoint_id).unwrap();
        assert_eq!((shown.pending, shown.delivered, shown.failed), (0, 1, 0));
        assert_eq!(shown.last_error, None);
        let delivered = &store.webhook_deliveries(None, 10).unwrap()[0];
        assert_eq!(delivered.last_status, Some(204));
        assert!(delivered.delivered_at_ms.is_some());
        assert!(matches!(
            store.delete_webhook_endpoint("whk_missing"),
            Err(StoreError::UnknownWebhook(_))
        ));
        store.delete_webhook_endpoint(&endpoint_id).unwrap();
        assert!(store.webhook_deliveries(None, 10).unwrap().is_empty());
        assert_eq!(store.webhook_events(10).unwrap().len(), 1, "events stay in the outbox");
    }

    fn a_secret_that_cannot_be_opened_fails_its_deliveries_and_spares_the_others(store) {
        let i = add(&store, "int_a", "salesforce");
        let broken = endpoint(&store, None);
        let fine = endpoint(&store, None);
        // Sealed for another endpoint: it does not open under this one's context.
        sql(
            &store,
            &format!(
                "UPDATE webhook_endpoints SET secret = (SELECT secret FROM webhook_endpoints
                     WHERE id = '{}') WHERE id = '{}'",
                fine.id, broken.id
            ),
        );
        set_state(&store, &i, "active", None);
        let due = store.claim_due_deliveries(now_ms(), 60_000, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].endpoint_id, fine.id);
        let shown = store.webhook_endpoint(&broken.id).unwrap();
        assert_eq!((shown.pending, shown.failed), (0, 1));
        assert!(shown.last_error.unwrap().contains("signing secret"));
    }

    fn settled_events_past_the_retention_are_pruned_and_owed_ones_stay(store) {
        let i = add(&store, "int_a", "salesforce");
        let first = endpoint(&store, None);
        let second = endpoint(&store, None);
        // Three events, each to both endpoints.
        set_state(&store, &i, "active", None);
        set_state(&store, &i, "needs-reauthorization", None);
        set_state(&store, &i, "active", None);
        let events: Vec<String> = store.webhook_events(100).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(events.len(), 3);
        let settle = |event: &str, endpoint: &str, result: AttemptResult| {
            store.record_delivery_attempt(event, endpoint, &result).unwrap()
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
        settle(&events[1], &first.id, AttemptResult::Delivered { status: 200 });
        settle(&events[1], &second.id, given_up());
        settle(&events[2], &first.id, AttemptResult::Delivered { status: 200 });

        // Nothing is older than a cut-off in the past.
        assert_eq!(store.prune_webhook_events(0).unwrap(), 0);
        assert_eq!(store.webhook_events(100).unwrap().len(), 3);
        let later = now_ms() + 1;
        assert_eq!(store.prune_webhook_events(later).unwrap(), 2);
        let left = store.webhook_events(100).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, events[2], "the event still owed stays");
        let deliveries = store.webhook_deliveries(None, 100).unwrap();
        assert!(deliveries.iter().all(|d| d.event_id == events[2]));
        assert_eq!(deliveries.len(), 2);
    }

    fn two_hosts_claiming_at_once_never_claim_one_delivery_twice(store) {
        for _ in 0..3 {
            endpoint(&store, None);
        }
        for n in 0..40 {
            sql(
                &store,
                &format!(
                    "INSERT INTO webhook_events (id, type, created_at_ms, body)
                     VALUES ('evt_{n:024x}', 'sync.completed', {n}, '{{}}')"
                ),
            );
        }
        assert_eq!(count(&store, "webhook_deliveries"), 120);
        let second_host = store.reopen();
        let now = now_ms();
        let claim_all = |host: &Store| {
            let mut claimed = Vec::new();
            loop {
                let batch = host.claim_due_deliveries(now, 600_000, 3).unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch.into_iter().map(|d| (d.event_id, d.endpoint_id)));
            }
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| claim_all(&store));
            let b = s.spawn(|| claim_all(&second_host));
            (a.join().unwrap(), b.join().unwrap())
        });
        let distinct: HashSet<_> = a.iter().chain(&b).collect();
        assert_eq!(a.len() + b.len(), 120, "each delivery claimed once: {} + {}", a.len(), b.len());
        assert_eq!(distinct.len(), 120);
    }

    fn versions_are_numbered_per_connector_and_the_same_bytes_are_one_version(store) {
        assert_eq!(add_version(&store, "zendesk", "sha-a"), 1);
        assert_eq!(add_version(&store, "salesforce", "sha-a"), 1);
        assert_eq!(add_version(&store, "zendesk", "sha-b"), 2);
        let again = store
            .add_version(&NewVersion {
                name: "zendesk",
                sha256: "sha-a",
                contract: "sluice:connector@0.4",
                installed_at: SystemTime::now(),
                wasm: &component("{}"),
            })
            .unwrap();
        assert_eq!((again.version, again.existing), (1, true));
        let listed: Vec<_> = store
            .versions()
            .unwrap()
            .into_iter()
            .map(|v| (v.record.name, v.record.version, v.record.sha256, v.active_since.is_some()))
            .collect();
        assert_eq!(
            listed,
            [
                ("salesforce".to_string(), 1, "sha-a".to_string(), false),
                ("zendesk".to_string(), 1, "sha-a".to_string(), false),
                ("zendesk".to_string(), 2, "sha-b".to_string(), false),
            ]
        );
        let since = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        store.set_active("zendesk", 2, since).unwrap();
        let active: Vec<_> = store
            .versions()
            .unwrap()
            .into_iter()
            .filter(|v| v.active_since.is_some())
            .map(|v| (v.record.name, v.record.version, v.active_since))
            .collect();
        assert_eq!(active, [("zendesk".to_string(), 2, Some(since))]);
        assert_eq!(store.wasm("zendesk", 2).unwrap(), Some(component(r#"{"hosts":["sha-b.example.com"]}"#)));
        assert_eq!(store.wasm("zendesk", 3).unwrap(), None);
    }

    fn hosts_installing_at_once_get_distinct_version_numbers(store) {
        let second_host = store.reopen();
        let numbers: Vec<u32> = std::thread::scope(|s| {
            let installs: Vec<_> = (0..8)
                .map(|n| {
                    let host: &Store = if n % 2 == 0 { &store } else { &second_host };
                    s.spawn(move || add_version(host, "zendesk", &format!("sha-{n}")))
                })
                .collect();
            installs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = numbers.clone();
        sorted.sort();
        assert_eq!(sorted, (1..=8).collect::<Vec<u32>>(), "{numbers:?}");
    }

    fn the_active_versions_manifest_is_stored_with_it(store) {
        assert!(store.active_manifest("p").unwrap().hosts.is_empty());
        let added = store
            .add_version(&NewVersion {
                name: "p",
                sha256: "x",
                contract: "0.1.0",
                installed_at: SystemTime::now(),
                wasm: &component(r#"{"hosts":["*.salesforce.com"],"credential-methods":["GET"]}"#),
            })
            .unwrap();
        assert_eq!(added.version, 1);
        assert!(store.active_manifest("p").unwrap().hosts.is_empty(), "none active yet");
        store.set_active("p", 1, SystemTime::now()).unwrap();
        let stored = store.active_manifest("p").unwrap();
        assert!(stored.matches_host("acme.my.salesforce.com"));
        let json = sql(&store, "SELECT manifest_json FROM connector_versions");
        assert!(json.contains("*.salesforce.com"), "{json}");
    }

    fn another_host_hears_of_an_activation_on_postgres(store) {
        let other_host = store.reopen();
        let Some(mut heard) = other_host.connector_activations().unwrap() else {
            assert_eq!(store.backend, Backend::Sqlite, "only SQLite has no notifications");
            return;
        };
        assert_eq!(store.backend, Backend::Postgres);
        add_version(&store, "zendesk", "sha-1");
        add_version(&store, "salesforce", "sha-1");
        // Installing is no activation; activating is, once per change.
        store.set_active("zendesk", 1, SystemTime::now()).unwrap();
        store.set_active("zendesk", 1, SystemTime::now()).unwrap();
        store.set_active("salesforce", 1, SystemTime::now()).unwrap();
        let mut names = Vec::new();
        // Bounded only so a broken listener fails rather than hangs.
        for _ in 0..3000 {
            match heard.try_recv() {
                Ok(name) => names.push(name),
                Err(_) if names.len() == 2 => break,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        assert_eq!(names, ["zendesk", "salesforce"]);
    }
}
