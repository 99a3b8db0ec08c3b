//! `sluice materialize` against a throwaway PostgreSQL cluster: after pulls from the emulator
//! (with inserts, updates and deletes between them) the stream tables equal the store and
//! the emulator's ground truth, deletes as soft deletes; SIGKILLs in the middle of a
//! materialization lose and repeat nothing (checked from an audit of every row write and
//! cursor move, made by triggers in the destination); a re-run with nothing new writes
//! nothing; an expired cursor asks for a resync and `--resync` performs it; `--follow` applies
//! each new pull until SIGTERM; hostile stream names and contents cannot inject SQL.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use sf_emulator::Emulator;
use sluice::app::App;
use sluice::runner::{PullOptions, RunStatus};
use sluice::store::{Change, FeedCursor, FeedPage, Store, StoreError, StoredRecord};
use sluice_materialize::{Feed, MaterializeError, Materializer, Options};
use sluice_test_support::PgCluster;
use support::binary::sluice_command;
use support::dirs::TestDir;
use support::runtime::{connected_crm, control, live_truth};

/// A key's row as the destination or the store holds it: deleted, seq, record.
type Row = (bool, i64, Value);
/// Every stream's rows by key.
type Rows = BTreeMap<String, BTreeMap<String, Row>>;

async fn setup(objects: &[&str]) -> (Emulator, Arc<App>, TestDir, String) {
    connected_crm("materialize", objects, |_| {}).await
}

/// A full pull: it reads every record again, soft deletes included (an incremental one waits
/// for the provider's delete log to cover a whole minute).
async fn pull(app: &Arc<App>, id: &str) {
    let opts = PullOptions {
        full: true,
        page_records: 200,
        ..PullOptions::default()
    };
    let summary = sluice::runner::run_pull(app, id, opts).await.unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
}

/// Inserts, updates and deletes a few records of each object through the emulator's control
/// API, stamped minutes ago so that the next pull reads them.
async fn change_records(emu: &Emulator, objects: &[&str], round: usize) {
    let stamp = (time::OffsetDateTime::now_utc() - time::Duration::minutes(5))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for object in objects {
        let live: Vec<String> = live_truth(emu, object).await.into_iter().collect();
        let pick = |n: usize| live[(round * 7 + n * 13) % live.len()].clone();
        let mut ops = vec![
            json!({"op": "insert", "object": object, "SystemModstamp": stamp,
                "fields": {"Name": format!("r{round}-'; DROP TABLE \"{object}\"; --")}}),
            json!({"op": "update", "object": object, "ids": [pick(0), pick(1)],
                "SystemModstamp": stamp, "fields": {"Description": format!("round {round}")}}),
        ];
        for n in [2, 3] {
            ops.push(
                json!({"op": "delete", "object": object, "id": pick(n), "SystemModstamp": stamp}),
            );
        }
        control(emu, "POST", "records", Some(Value::Array(ops))).await;
    }
}

/// `sluice materialize ID --to URL ARGS` in `dir`, run to its end.
fn materialize(dir: &Path, id: &str, url: &str, args: &[&str]) -> (bool, String, String) {
    let out = sluice_command(dir)
        .args(["materialize", id, "--to", url])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test database");
    tokio::spawn(connection);
    client
}

/// Every row of the stream tables of `schema`.
async fn destination_rows(client: &tokio_postgres::Client, schema: &str) -> Rows {
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.columns
             WHERE table_schema = $1 AND column_name = '_sluice_key'",
            &[&schema],
        )
        .await
        .unwrap();
    let mut all = Rows::new();
    for table in tables {
        let table: String = table.get(0);
        let rows = client
            .query(
                &format!(
                    "SELECT _sluice_key, _sluice_deleted, _sluice_seq, _sluice_record::text
                     FROM \"{schema}\".\"{table}\""
                ),
                &[],
            )
            .await
            .unwrap();
        let rows = rows.into_iter().map(|r| {
            let record: String = r.get(3);
            let row = (
                r.get(1),
                r.get(2),
                numbers_as_f64(serde_json::from_str(&record).unwrap()),
            );
            (r.get::<_, String>(0), row)
        });
        all.insert(table, rows.collect());
    }
    all
}

/// Every stored record, tombstones included, as the destination should hold it.
fn store_rows(store: &Store, id: &str) -> Rows {
    let mut all = Rows::new();
    store
        .for_each_record(id, None, true, |r| {
            let record = numbers_as_f64(serde_json::from_slice(&r.json).unwrap());
            all.entry(r.stream)
                .or_default()
                .insert(r.key, (r.deleted, r.seq, record));
            Ok(())
        })
        .unwrap();
    all
}

/// `value` with every number as a double: the provider writes `1.5E8` where `jsonb` prints
/// `150000000`, the same number.
fn numbers_as_f64(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_f64).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, numbers_as_f64(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The keys of the rows not deleted.
fn live_keys(rows: &BTreeMap<String, Row>) -> std::collections::BTreeSet<String> {
    rows.iter()
        .filter(|(_, (deleted, _, _))| !deleted)
        .map(|(key, _)| key.clone())
        .collect()
}

/// Fails naming the first few keys where `found` and `expected` differ.
fn assert_same_rows(found: &Rows, expected: &Rows, what: &str) {
    let mut differences = Vec::new();
    let streams: std::collections::BTreeSet<&String> =
        found.keys().chain(expected.keys()).collect();
    for stream in streams {
        let empty = BTreeMap::new();
        let (f, e) = (
            found.get(stream).unwrap_or(&empty),
            expected.get(stream).unwrap_or(&empty),
        );
        let keys: std::collections::BTreeSet<&String> = f.keys().chain(e.keys()).collect();
        for key in keys {
            let (a, b) = (f.get(key), e.get(key));
            if a != b {
                let brief = |row: Option<&Row>| row.map(|(d, s, _)| (*d, *s));
                differences.push(format!(
                    "{stream}/{key}: found {:?}, expected {:?}{}",
                    brief(a),
                    brief(b),
                    if brief(a) == brief(b) {
                        " (records differ)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{what}: {} rows differ, e.g. {:#?}",
        differences.len(),
        &differences[..differences.len().min(5)]
    );
}

async fn cursor_row(client: &tokio_postgres::Client, schema: &str, id: &str) -> i64 {
    client
        .query_one(
            &format!(
                "SELECT feed_cursor FROM \"{schema}\"._sluice_cursors WHERE integration_id = $1"
            ),
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

/// The destination equals the store (seq per key included), its live rows equal the
/// emulator's live records, and its cursor is the feed's head.
async fn assert_matches(
    client: &tokio_postgres::Client,
    schema: &str,
    (emu, store, id): (&Emulator, &Store, &str),
    objects: &[&str],
) {
    let rows = destination_rows(client, schema).await;
    assert_same_rows(
        &rows,
        &store_rows(store, id),
        "the tables against the store",
    );
    for object in objects {
        let live: std::collections::BTreeSet<String> = rows[*object]
            .iter()
            .filter(|(_, (deleted, _, _))| !deleted)
            .map(|(key, _)| key.clone())
            .collect();
        assert_eq!(live, live_truth(emu, object).await, "{object}: live rows");
    }
    let head = store.latest_change_seq(id).unwrap();
    assert_eq!(
        cursor_row(client, schema, id).await,
        head.0,
        "the cursor row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_follow_pulls_with_soft_deletes_and_a_rerun_writes_nothing() {
    const OBJECTS: [&str; 2] = ["Account", "Contact"];
    let (emu, app, dir, id) = setup(&OBJECTS).await;
    let cluster = PgCluster::shared();
    let db = cluster.create_database();
    let client = pg(&db.url).await;
    let store = app.store().clone();
    pull(&app, &id).await;
    let (ok, out, err) = materialize(&dir, &id, &db.url, &["--batch", "50", "--schema", "crm"]);
    assert!(ok, "{err}");
    assert!(out.contains("into schema crm"), "{out}");
    assert_matches(&client, "crm", (&emu, &store, &id), &OBJECTS).await;

    let mut deleted_rows = 0;
    for round in 0..2 {
        change_records(&emu, &OBJECTS, round).await;
        pull(&app, &id).await;
        let (ok, _, err) = materialize(&dir, &id, &db.url, &["--batch", "7", "--schema", "crm"]);
        assert!(ok, "{err}");
        assert_matches(&client, "crm", (&emu, &store, &id), &OBJECTS).await;
        deleted_rows = destination_rows(&client, "crm")
            .await
            .values()
            .flat_map(|rows| rows.values())
            .filter(|(deleted, _, _)| *deleted)
            .count();
    }
    assert!(
        deleted_rows >= 8,
        "deletes are kept as soft deletes: {deleted_rows}"
    );

    // Nothing new: no row is rewritten (a rewrite gives it a new xmin), the cursor row neither.
    let versions = "SELECT string_agg(_sluice_key || ':' || xmin::text, ',' ORDER BY _sluice_key)
                    FROM crm.\"Account\"";
    let before: String = client.query_one(versions, &[]).await.unwrap().get(0);
    let cursor_version = "SELECT xmin::text FROM crm._sluice_cursors";
    let cursor_before: String = client.query_one(cursor_version, &[]).await.unwrap().get(0);
    let (ok, out, err) = materialize(&dir, &id, &db.url, &["--schema", "crm", "--json"]);
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (report["changes"].as_u64(), report["batches"].as_u64()),
        (Some(0), Some(0))
    );
    let after: String = client.query_one(versions, &[]).await.unwrap().get(0);
    let cursor_after: String = client.query_one(cursor_version, &[]).await.unwrap().get(0);
    assert_eq!(
        (before, cursor_before),
        (after, cursor_after),
        "a re-run writes nothing"
    );
}

/// Audit triggers: every row write of a stream table and every cursor move, with the
/// transaction that made it. The tables are made here, in the shape the materializer makes
/// them, so that the triggers are there before its first write.
async fn install_audit(client: &tokio_postgres::Client, objects: &[&str]) {
    client
        .batch_execute(
            "CREATE TABLE audit_rows (tbl text, key text, seq bigint, tx bigint);
             CREATE TABLE audit_cursor (old bigint, new bigint, tx bigint);
             CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                 INSERT INTO audit_rows VALUES (TG_TABLE_NAME, NEW._sluice_key,
                     NEW._sluice_seq, txid_current());
                 RETURN NEW; END $$;
             CREATE FUNCTION audit_cursor() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                 INSERT INTO audit_cursor VALUES (OLD.feed_cursor, NEW.feed_cursor,
                     txid_current());
                 RETURN NEW; END $$;
             CREATE SCHEMA sf;
             CREATE TABLE sf._sluice_cursors (integration_id text PRIMARY KEY,
                 feed_cursor bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
             CREATE TRIGGER audit AFTER UPDATE ON sf._sluice_cursors
                 FOR EACH ROW EXECUTE FUNCTION audit_cursor();",
        )
        .await
        .unwrap();
    for object in objects {
        client
            .batch_execute(&format!(
                "CREATE TABLE sf.\"{object}\" (_sluice_key text PRIMARY KEY,
                     _sluice_deleted boolean NOT NULL, _sluice_seq bigint NOT NULL,
                     _sluice_synced_at timestamptz NOT NULL, _sluice_record jsonb NOT NULL);
                 CREATE TRIGGER audit AFTER INSERT OR UPDATE ON sf.\"{object}\"
                     FOR EACH ROW EXECUTE FUNCTION audit_row();"
            ))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_in_the_middle_of_a_materialization_lose_and_repeat_nothing() {
    const OBJECTS: [&str; 4] = ["Account", "Contact", "Lead", "Opportunity"];
    const KILLS: usize = 6;
    let (emu, app, dir, id) = setup(&OBJECTS).await;
    let cluster = PgCluster::shared();
    let db = cluster.create_database();
    let client = pg(&db.url).await;
    install_audit(&client, &OBJECTS).await;
    let store = app.store().clone();
    pull(&app, &id).await;
    change_records(&emu, &OBJECTS[..2], 0).await;
    pull(&app, &id).await;
    let head = store.latest_change_seq(&id).unwrap().0;
    let args = [
        "materialize",
        &id,
        "--to",
        &db.url,
        "--schema",
        "sf",
        "--batch",
        "3",
    ];

    // Each run is killed once the cursor passed the next of KILLS marks spread over the feed:
    // always in the middle of the run, whatever the machine's speed.
    let mut mid_run_kills = 0;
    for kill in 1..=KILLS {
        let mark = head * kill as i64 / (KILLS as i64 + 1);
        let mut child = sluice_command(&dir).args(args).spawn().unwrap();
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            let cursor = client
                .query_opt("SELECT feed_cursor FROM sf._sluice_cursors", &[])
                .await
                .ok()
                .flatten()
                .map_or(0, |r| r.get::<_, i64>(0));
            if cursor > mark {
                break false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        };
        if !finished {
            child.kill().unwrap();
            mid_run_kills += 1;
        }
        child.wait().unwrap();
        let cursor = cursor_row(&client, "sf", &id).await;
        if cursor == head {
            break;
        }
    }
    assert!(
        mid_run_kills >= 3,
        "only {mid_run_kills} kills landed mid-run"
    );
    let (ok, _, err) = materialize(&dir, &id, &db.url, &["--schema", "sf", "--batch", "3"]);
    assert!(ok, "{err}");
    assert_matches(&client, "sf", (&emu, &store, &id), &OBJECTS).await;

    // The cursor moved in one unbroken chain from 0 to the head, one move per transaction.
    let moves = client
        .query("SELECT old, new, tx FROM audit_cursor ORDER BY new", &[])
        .await
        .unwrap();
    let mut at = 0;
    let mut spans = BTreeMap::new();
    for m in &moves {
        let (old, new, tx): (i64, i64, i64) = (m.get(0), m.get(1), m.get(2));
        assert_eq!(old, at, "a cursor move starts where the last one ended");
        assert!(new > old);
        assert!(
            spans.insert(tx, (old, new)).is_none(),
            "one move per transaction"
        );
        at = new;
    }
    assert_eq!(at, head);
    // Every committed row write belongs to a transaction that moved the cursor over its
    // change, and each change was written exactly once.
    let writes = client
        .query("SELECT tbl, key, seq, tx FROM audit_rows", &[])
        .await
        .unwrap();
    let mut written = BTreeMap::new();
    for w in &writes {
        let (table, key, seq, tx): (String, String, i64, i64) =
            (w.get(0), w.get(1), w.get(2), w.get(3));
        let (old, new) = *spans.get(&tx).unwrap_or_else(|| {
            panic!("{table}/{key} seq {seq} written by a transaction that kept the cursor")
        });
        assert!(
            old < seq && seq <= new,
            "{table}/{key} seq {seq} outside its batch"
        );
        let again = written.insert((table.clone(), key.clone(), seq), tx);
        assert!(again.is_none(), "{table}/{key} seq {seq} written twice");
    }
    for (table, rows) in store_rows(&store, &id) {
        for (key, (_, seq, _)) in rows {
            let write = (table.clone(), key.clone(), seq);
            assert!(
                written.contains_key(&write),
                "{table}/{key}: its last change written"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cursor_asks_for_a_resync_and_resync_marks_what_went() {
    const OBJECTS: [&str; 1] = ["Account"];
    let (emu, app, dir, id) = setup(&OBJECTS).await;
    let db = PgCluster::shared().create_database();
    let client = pg(&db.url).await;
    let store = app.store().clone();
    pull(&app, &id).await;
    let (ok, _, err) = materialize(&dir, &id, &db.url, &[]);
    assert!(ok, "{err}");
    change_records(&emu, &OBJECTS, 1).await;
    pull(&app, &id).await;
    // Every tombstone expires before the destination read it.
    assert!(store.prune_tombstones(sluice::store::now_ms() + 1).unwrap() > 0);

    let live_before = live_keys(&destination_rows(&client, "public").await["Account"]);
    let (ok, _, err) = materialize(&dir, &id, &db.url, &[]);
    assert!(!ok, "an expired cursor is refused");
    assert!(err.contains("resync") && err.contains("--resync"), "{err}");
    let (ok, out, err) = materialize(&dir, &id, &db.url, &["--resync"]);
    assert!(ok, "{err}");
    assert!(out.contains("after reloading a snapshot"), "{out}");
    let rows = &destination_rows(&client, "public").await["Account"];
    let live = live_keys(rows);
    assert_eq!(live, live_truth(&emu, "Account").await);
    let stored = &store_rows(&store, &id)["Account"];
    let kept: BTreeMap<String, Row> = rows
        .iter()
        .filter(|(key, _)| stored.contains_key(*key))
        .map(|(key, row)| (key.clone(), row.clone()))
        .collect();
    let as_stored = |rows: BTreeMap<String, Row>| Rows::from([("Account".to_string(), rows)]);
    assert_same_rows(
        &as_stored(kept),
        &as_stored(stored.clone()),
        "rows the store holds",
    );
    let absent: Vec<&String> = rows.keys().filter(|k| !stored.contains_key(*k)).collect();
    assert!(
        absent.iter().all(|k| rows[*k].0),
        "rows the snapshot lacks are deleted"
    );
    let newly_deleted = live_before.difference(&live).count();
    assert_eq!(
        newly_deleted, 2,
        "the two deletes whose tombstones expired are marked deleted"
    );
    assert_eq!(
        cursor_row(&client, "public", &id).await,
        store.latest_change_seq(&id).unwrap().0
    );
}

/// A feed of given changes, as a hostile connector could have made them.
struct GivenFeed(Vec<StoredRecord>);

impl Feed for GivenFeed {
    fn changes_after(&self, after: FeedCursor, limit: usize) -> Result<FeedPage, StoreError> {
        let changes: Vec<Change> = self
            .0
            .iter()
            .filter(|r| r.seq > after.0)
            .take(limit)
            .map(|r| Change {
                seq: r.seq,
                record: r.clone(),
                run_id: None,
                committed_at_ms: r.updated_at_ms,
            })
            .collect();
        let head = self.0.iter().map(|r| r.seq).max().unwrap_or(0);
        let next = changes
            .last()
            .map_or(FeedCursor(head), |c| FeedCursor(c.seq));
        Ok(FeedPage {
            more: next.0 < head,
            changes,
            next,
        })
    }

    fn snapshot(&self) -> Result<(FeedCursor, Vec<StoredRecord>), StoreError> {
        unreachable!("these tests never resync")
    }
}

fn record(stream: &str, key: &str, seq: i64, json: &str) -> StoredRecord {
    StoredRecord {
        stream: stream.into(),
        key: key.into(),
        version: 1,
        deleted: false,
        cursor: String::new(),
        json: json.as_bytes().to_vec(),
        seq,
        updated_at_ms: 1_700_000_000_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_stream_names_and_contents_cannot_inject_sql() {
    let db = PgCluster::shared().create_database();
    let client = pg(&db.url).await;
    client
        .batch_execute("CREATE TABLE canary (v int); INSERT INTO canary VALUES (1)")
        .await
        .unwrap();
    let options = Options {
        batch: 2,
        ..Options::default()
    };
    let mut dest = Materializer::connect(&db.url, &Default::default(), "int-1", options.clone())
        .await
        .unwrap();

    // Contents and keys travel as parameters: stored exactly, nothing run.
    let evil = r#"{"Name": "x'); DROP TABLE canary; --", "q": "\"; DELETE FROM canary; --", "n": 123456789012345678901234567890}"#;
    let feed = GivenFeed(vec![
        record("Account", "k'); DROP TABLE canary; --", 1, evil),
        record("Account", "plain", 2, "{}"),
        record("Account", "k'); DROP TABLE canary; --", 3, evil),
    ]);
    let progress = dest.catch_up(&feed).await.unwrap();
    assert_eq!((progress.changes, progress.cursor), (3, FeedCursor(3)));
    let row = client
        .query_one(
            "SELECT _sluice_record::text, _sluice_seq FROM \"Account\" WHERE _sluice_key = $1",
            &[&"k'); DROP TABLE canary; --"],
        )
        .await
        .unwrap();
    let stored: Value = serde_json::from_str(&row.get::<_, String>(0)).unwrap();
    assert_eq!(stored, serde_json::from_str::<Value>(evil).unwrap());
    assert_eq!(row.get::<_, i64>(1), 3);
    let numbers: String = client
        .query_one(
            "SELECT _sluice_record->>'n' FROM \"Account\" WHERE _sluice_seq = 3",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        numbers, "123456789012345678901234567890",
        "numbers keep their digits"
    );

    // A stream name that is not an identifier fails its batch, naming it; nothing applied.
    for name in [
        "x\"; DROP TABLE canary; --",
        "_sluice_cursors",
        &"a".repeat(64),
    ] {
        let mut more = feed.0.clone();
        more.push(record(name, "k", 4, "{}"));
        let err = dest.catch_up(&GivenFeed(more)).await.unwrap_err();
        assert!(matches!(err, MaterializeError::BadName(_)), "{err}");
        assert!(
            err.to_string().contains("cannot name a PostgreSQL table"),
            "{err}"
        );
        assert_eq!(
            dest.cursor().await.unwrap(),
            FeedCursor(3),
            "nothing applied"
        );
    }
    // A record PostgreSQL cannot hold fails its batch, naming it.
    let mut nul = feed.0.clone();
    nul.push(record("Account", "nul", 4, r#"{"a": "x\u0000"}"#));
    let err = dest
        .catch_up(&GivenFeed(nul))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"nul\"") && err.contains("NUL"), "{err}");
    assert_eq!(dest.cursor().await.unwrap(), FeedCursor(3));

    // An older change never overwrites a newer one, even replayed from an older cursor.
    client
        .batch_execute("UPDATE _sluice_cursors SET feed_cursor = 0")
        .await
        .unwrap();
    let older = GivenFeed(vec![record("Account", "plain", 1, r#"{"old": true}"#)]);
    dest.catch_up(&older).await.unwrap();
    let plain: String = client
        .query_one(
            "SELECT _sluice_record::text FROM \"Account\" WHERE _sluice_key = 'plain'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plain, "{}", "the row keeps its newer change");

    // A table of the stream's name with other columns is refused by name.
    client
        .batch_execute("CREATE TABLE \"Contact\" (id int PRIMARY KEY, name text)")
        .await
        .unwrap();
    let contact = GivenFeed(vec![record("Contact", "c", 5, "{}")]);
    let err = dest.catch_up(&contact).await.unwrap_err().to_string();
    assert!(
        err.contains("public.Contact") && err.contains("id integer"),
        "{err}"
    );

    // Another integration cannot take over the schema.
    let err = Materializer::connect(&db.url, &Default::default(), "int-2", options)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, MaterializeError::SchemaTaken { .. }), "{err}");

    let canary: i32 = client
        .query_one("SELECT v FROM canary", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(canary, 1, "the canary table is untouched");
}

/// Waits until the destination's cursor reaches `head`; fails if `child` exits first.
async fn wait_for_cursor(
    client: &tokio_postgres::Client,
    id: &str,
    head: i64,
    child: &mut std::process::Child,
) {
    // A bound that only stops a hung test; nothing here measures speed.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let cursor = client
            .query_opt(
                "SELECT feed_cursor FROM public._sluice_cursors WHERE integration_id = $1",
                &[&id],
            )
            .await
            .ok()
            .flatten()
            .map_or(0, |r| r.get::<_, i64>(0));
        if cursor == head {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("materialize --follow exited ({status}) at cursor {cursor} of {head}");
        }
        assert!(
            std::time::Instant::now() < give_up,
            "stuck at cursor {cursor} of {head}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_applies_each_new_pull_and_stops_on_sigterm() {
    const OBJECTS: [&str; 1] = ["Account"];
    let (emu, app, dir, id) = setup(&OBJECTS).await;
    let db = PgCluster::shared().create_database();
    let client = pg(&db.url).await;
    let store = app.store().clone();
    let mut child = sluice_command(&dir)
        .args(["materialize", &id, "--to", &db.url, "--follow"])
        .args(["--interval", "100ms", "--batch", "40"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for round in 0..2 {
        if round > 0 {
            change_records(&emu, &OBJECTS, round).await;
        }
        pull(&app, &id).await;
        let head = store.latest_change_seq(&id).unwrap().0;
        wait_for_cursor(&client, &id, head, &mut child).await;
        assert_matches(&client, "public", (&emu, &store, &id), &OBJECTS).await;
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM ends --follow cleanly: {status}");
}

/// A destination across a network speaks TLS: `sslmode=verify-full` connects when the
/// server's CA is trusted (`--ca-file`) and is refused when it is not, and the rows then
/// arrive over an encrypted connection, as the server itself reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_is_reached_over_verified_tls_with_the_ca_it_is_given() {
    let (emu, app, dir, id) = setup(&["Account"]).await;
    pull(&app, &id).await;
    let (cluster, ca_pem) = tokio::task::spawn_blocking(PgCluster::start_tls)
        .await
        .unwrap();
    let db = cluster.create_database();
    let ca = dir.join("destination-ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let url = format!(
        "postgres://postgres@localhost:{}/{}?sslmode=verify-full",
        cluster.port(),
        db.name
    );
    let run = |trust: bool| {
        let mut cmd = sluice_command(&dir);
        if trust {
            cmd.args(["--ca-file", ca.to_str().unwrap()]);
        }
        cmd.args(["materialize", &id, "--to", &url, "--schema", "sf"])
            .output()
            .unwrap()
    };

    let untrusted = run(false);
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        !untrusted.status.success(),
        "connected to an untrusted server"
    );
    assert!(said.contains("certificate"), "{said}");

    let trusted = run(true);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let rows = cluster.psql(
        &db.name,
        "SELECT count(*) FROM sf.\"Account\" WHERE NOT _sluice_deleted",
    );
    let live = live_truth(&emu, "Account").await.len();
    assert_eq!(rows.trim(), live.to_string(), "every live Account arrived");
}
