use std::collections::BTreeMap;

use super::*;

fn store(tag: &str) -> (Store, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("sluice-feed-{tag}-"))
        .tempdir()
        .unwrap();
    let store = Store::open(
        &dir.path().join(DB_FILE),
        crate::secrets::Cipher::from_key(&[5u8; 32]),
    )
    .unwrap();
    (store, dir)
}

fn add(store: &Store, name: &str) -> String {
    store
        .insert_integration(&NewIntegration {
            name: name.into(),
            connector: "salesforce".into(),
            settings: IntegrationSettings::new("helpdesk", [("environment", "production")]),
            interval_s: 900,
            client_id: None,
            client_secret: None,
        })
        .unwrap()
        .id
}

fn row(key: &str, op: Operation, json: &str) -> Row {
    Row {
        key: key.into(),
        op,
        cursor: "2024-01-01T00:00:00.000Z".into(),
        json: json.as_bytes().to_vec(),
    }
}

fn commit(store: &Store, id: &str, stream: &str, run: &str, rows: &[Row]) {
    store
        .commit_page(id, stream, run, rows, None, CheckpointState::Partial, 1)
        .unwrap();
}

/// (stream, key, seq, deleted) of every change after `after`, read in pages of `limit`.
fn read_all(store: &Store, id: &str, after: FeedCursor, limit: usize) -> Vec<Change> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let page = store.changes_after(id, cursor, None, limit).unwrap();
        out.extend(page.changes);
        cursor = page.next;
        if !page.more {
            return out;
        }
    }
}

#[test]
fn changes_are_numbered_in_commit_order_and_compacted_to_the_latest_per_key() {
    let (store, _dir) = store("order");
    let id = add(&store, "a");
    let other = add(&store, "b");
    let run = store.start_run(&id, "cli", false, "t").unwrap();
    commit(
        &store,
        &id,
        "Case",
        &run,
        &[
            row("1", Operation::Upsert, r#"{"n":1}"#),
            row("2", Operation::Upsert, r#"{"n":2}"#),
            row("3", Operation::Upsert, r#"{"n":3}"#),
        ],
    );
    let other_run = store.start_run(&other, "cli", false, "t").unwrap();
    commit(
        &store,
        &other,
        "Case",
        &other_run,
        &[row("x", Operation::Upsert, "{}")],
    );
    commit(
        &store,
        &id,
        "Account",
        &run,
        &[
            row("A", Operation::Upsert, r#"{"n":"a"}"#),
            // A merge that changes nothing is no change.
            row("A", Operation::Merge, r#"{"n":"a"}"#),
        ],
    );
    commit(
        &store,
        &id,
        "Case",
        &run,
        &[
            row("1", Operation::Merge, r#"{"m":true}"#),
            row("2", Operation::Delete, r#"{"Id":"2"}"#),
        ],
    );
    // Each integration numbers its own changes.
    assert_eq!(store.latest_change_seq(&other).unwrap(), FeedCursor(1));
    // 3 + 1 + 2 numbers taken; the feed keeps the latest per key: 3, A, 1, 2.
    assert_eq!(store.latest_change_seq(&id).unwrap(), FeedCursor(6));
    let all = read_all(&store, &id, FeedCursor(0), 2);
    let seen: Vec<(&str, i64, bool)> = all
        .iter()
        .map(|c| (c.record.key.as_str(), c.seq, c.record.deleted))
        .collect();
    assert_eq!(
        seen,
        [
            ("3", 3, false),
            ("A", 4, false),
            ("1", 5, false),
            ("2", 6, true)
        ]
    );
    let merged: serde_json::Value = serde_json::from_slice(&all[2].record.json).unwrap();
    assert_eq!(merged, serde_json::json!({"n": 1, "m": true}));
    assert_eq!(all[0].run_id.as_deref(), Some(run.as_str()));
    // From a cursor on, only what came after; a stream filter keeps the integration's cursor
    // and runs to the head when nothing of that stream is left.
    let after_4 = store.changes_after(&id, FeedCursor(4), None, 10).unwrap();
    assert_eq!(after_4.changes.len(), 2);
    assert_eq!((after_4.next, after_4.more), (FeedCursor(6), false));
    let accounts = store
        .changes_after(&id, FeedCursor(0), Some("Account"), 10)
        .unwrap();
    assert_eq!(accounts.changes.len(), 1);
    assert_eq!(accounts.next, FeedCursor(6));
    // A page of one says more follow, and resumes after its change.
    let one = store.changes_after(&id, FeedCursor(0), None, 1).unwrap();
    assert_eq!((one.next, one.more), (FeedCursor(3), true));
    let none = store.changes_after(&id, FeedCursor(0), None, 0).unwrap();
    assert_eq!((none.next, none.more), (FeedCursor(0), true));
}

#[test]
fn cursors_ahead_of_the_feed_and_unreadable_ones_are_refused() {
    let (store, _dir) = store("ahead");
    let id = add(&store, "a");
    let run = store.start_run(&id, "cli", false, "t").unwrap();
    commit(
        &store,
        &id,
        "Case",
        &run,
        &[row("1", Operation::Upsert, "{}")],
    );
    let err = store
        .changes_after(&id, FeedCursor(2), None, 10)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::CursorAhead {
                cursor: 2,
                head: 1,
                ..
            }
        ),
        "{err}"
    );
    for bad in [
        "",
        "-1",
        "abc",
        "1.5",
        " 1",
        "99999999999999999999",
        "0000000000000000001",
    ] {
        let err = FeedCursor::parse(bad).unwrap_err();
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    assert_eq!(FeedCursor::parse("007").unwrap(), FeedCursor(7));
}

#[test]
fn pruned_tombstones_make_older_cursors_resync_and_cursor_zero_never_does() {
    let (store, _dir) = store("prune");
    let id = add(&store, "a");
    let run = store.start_run(&id, "cli", false, "t").unwrap();
    commit(
        &store,
        &id,
        "Case",
        &run,
        &[
            row("1", Operation::Upsert, "{}"),
            row("2", Operation::Upsert, "{}"),
        ],
    );
    commit(
        &store,
        &id,
        "Case",
        &run,
        &[row("1", Operation::Delete, "{}")],
    );
    commit(
        &store,
        &id,
        "Case",
        &run,
        &[row("3", Operation::Upsert, "{}")],
    );
    // Nothing is old enough yet.
    assert_eq!(store.prune_tombstones(0).unwrap(), 0);
    assert!(store.changes_after(&id, FeedCursor(1), None, 10).is_ok());
    assert_eq!(store.prune_tombstones(now_ms() + 1).unwrap(), 1);
    // The delete of "1" was change 3: a reader at 1 or 2 would miss it.
    for stale in [1, 2] {
        let err = store
            .changes_after(&id, FeedCursor(stale), None, 10)
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::ResyncRequired {
                    pruned_through: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("take a snapshot"), "{err}");
    }
    let from_3 = store.changes_after(&id, FeedCursor(3), None, 10).unwrap();
    assert_eq!(from_3.changes.len(), 1);
    // From zero: the live records only, the pruned delete is simply not there.
    let keys: Vec<String> = read_all(&store, &id, FeedCursor(0), 10)
        .into_iter()
        .map(|c| c.record.key)
        .collect();
    assert_eq!(keys, ["2", "3"]);
    // A later prune with nothing to prune keeps the mark.
    assert_eq!(store.prune_tombstones(now_ms() + 1).unwrap(), 0);
    assert!(store.changes_after(&id, FeedCursor(2), None, 10).is_err());
}

#[test]
fn parallel_streams_number_changes_so_a_concurrent_reader_misses_none() {
    const STREAMS: usize = 4;
    const PAGES: usize = 15;
    const ROWS: usize = 20;
    let (store, _dir) = store("parallel");
    let id = add(&store, "a");
    let run = store.start_run(&id, "cli", false, "t").unwrap();
    let mut seen: Vec<i64> = Vec::new();
    std::thread::scope(|scope| {
        let committers: Vec<_> = (0..STREAMS)
            .map(|s| {
                let (store, id, run) = (&store, &id, &run);
                scope.spawn(move || {
                    for p in 0..PAGES {
                        let rows: Vec<Row> = (0..ROWS)
                            .map(|r| row(&format!("{p}-{r}"), Operation::Upsert, "{}"))
                            .collect();
                        commit(store, id, &format!("S{s}"), run, &rows);
                    }
                })
            })
            .collect();
        // A reader follows the feed while the pages commit: every key is written once, so
        // it must see every number exactly once, however the commits interleave.
        let mut cursor = FeedCursor(0);
        loop {
            let done = committers.iter().all(|c| c.is_finished());
            let page = store.changes_after(&id, cursor, None, 37).unwrap();
            seen.extend(page.changes.iter().map(|c| c.seq));
            cursor = page.next;
            if done && !page.more {
                break;
            }
        }
        committers.into_iter().for_each(|c| c.join().unwrap());
    });
    let total = (STREAMS * PAGES * ROWS) as i64;
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    let live: BTreeMap<(String, String), i64> = read_all(&store, &id, FeedCursor(0), 1000)
        .into_iter()
        .map(|c| ((c.record.stream, c.record.key), c.seq))
        .collect();
    assert_eq!(live.len() as i64, total);
}

#[test]
fn a_schema_7_database_numbers_its_records_in_write_order() {
    let dir = tempfile::Builder::new()
        .prefix("sluice-feed-schema7-")
        .tempdir()
        .unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let conn = Connection::open(&path).unwrap();
        for sql in &migrations::MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 7).unwrap();
        conn.execute_batch(
            "INSERT INTO integrations (id, seq, name, connector, settings_json, interval_s,
                 state, created_at_ms, updated_at_ms)
             VALUES ('int_a', 1, 'a', 'salesforce', '{}', 900, 'active', 0, 0),
                    ('int_b', 2, 'b', 'salesforce', '{}', 900, 'active', 0, 0);
             INSERT INTO records (integration_id, stream, key, version, deleted, cursor, json,
                 run_id, updated_at_ms)
             VALUES ('int_a', 'Case', 'late', 1, 0, '', X'7B7D', NULL, 300),
                    ('int_a', 'Case', 'early', 2, 1, '', X'7B7D', NULL, 100),
                    ('int_a', 'Account', 'tie', 1, 0, '', X'7B7D', NULL, 300);",
        )
        .unwrap();
    }
    let store = Store::open(&path, crate::secrets::Cipher::from_key(&[5u8; 32])).unwrap();
    let order: Vec<(String, i64)> = read_all(&store, "int_a", FeedCursor(0), 10)
        .into_iter()
        .map(|c| (c.record.key, c.seq))
        .collect();
    assert_eq!(
        order,
        [("early".into(), 1), ("tie".into(), 2), ("late".into(), 3)]
    );
    assert_eq!(store.latest_change_seq("int_a").unwrap(), FeedCursor(3));
    assert_eq!(store.latest_change_seq("int_b").unwrap(), FeedCursor(0));
    // New changes continue the numbers.
    let run = store.start_run("int_a", "cli", false, "t").unwrap();
    commit(
        &store,
        "int_a",
        "Case",
        &run,
        &[row("new", Operation::Upsert, "{}")],
    );
    let after = store
        .changes_after("int_a", FeedCursor(3), None, 10)
        .unwrap();
    assert_eq!(after.changes[0].seq, 4);
}
