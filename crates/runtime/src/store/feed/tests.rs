use super::*;

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
