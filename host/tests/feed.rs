//! The change feed against the emulator: pulls with parallel streams commit while a reader
//! follows the feed; records change between pulls through the emulator's control API
//! (inserts, updates, deletes). The reader ends with exactly the store's live records (and
//! the emulator's), seeing each key at most once per page and never the same change twice;
//! `sluice changes` and `--format airbyte` print the same feed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use sf_emulator::Emulator;
use sluice::app::App;
use sluice::runner::{PullOptions, RunStatus};
use sluice::store::{FeedCursor, Store};
use support::binary::sluice_command;
use support::dirs::{TestDir, temp_dir};
use support::runtime::{connected_crm, control, live_truth};

const OBJECTS: [&str; 2] = ["Account", "Contact"];

async fn setup() -> (Emulator, Arc<App>, TestDir, String) {
    connected_crm("feed", &OBJECTS, |config| config.runs.parallel_streams = 2).await
}

/// A full pull: it reads every record again, soft deletes included (an incremental one waits
/// for the provider's delete log to cover a whole minute), so each round rewrites every key.
async fn pull(app: &Arc<App>, id: &str) {
    let opts = PullOptions {
        full: true,
        page_records: 40,
        ..PullOptions::default()
    };
    let summary = sluice::runner::run_pull(app, id, opts).await.unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
}

/// Inserts, updates and deletes a few records of each object, choosing among the live ones by
/// `round` so that every round touches other records. The writes are stamped minutes ago: a
/// pull reads up to a whole minute behind the server's clock (the delete log's unit), and the
/// test should not wait for the minute to turn.
async fn change_records(emu: &Emulator, round: usize) {
    let stamp = (time::OffsetDateTime::now_utc() - time::Duration::minutes(5))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for object in OBJECTS {
        let live: Vec<String> = live_truth(emu, object).await.into_iter().collect();
        let pick = |n: usize| live[(round * 7 + n * 13) % live.len()].clone();
        let mut ops = vec![
            json!({"op": "insert", "object": object, "SystemModstamp": stamp,
                "fields": {"Name": format!("r{round}-a")}}),
            json!({"op": "insert", "object": object, "SystemModstamp": stamp,
                "fields": {"Name": format!("r{round}-b")}}),
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

/// A key's latest change as a reader holds it.
struct Held {
    seq: i64,
    version: i64,
    deleted: bool,
    json: Vec<u8>,
}

/// What a feed reader holds: each key's latest change.
#[derive(Default)]
struct Follower {
    cursor: FeedCursor,
    held: BTreeMap<(String, String), Held>,
    catch_ups: usize,
    changes_read: usize,
}

impl Follower {
    /// Reads the feed to its head, in small pages, checking what the feed promises.
    fn catch_up(&mut self, store: &Store, id: &str) {
        let mut seen_this_catch_up: BTreeMap<(String, String), i64> = BTreeMap::new();
        loop {
            let page = store.changes_after(id, self.cursor, None, 25).unwrap();
            let mut in_page = BTreeSet::new();
            let mut last = self.cursor.0;
            for c in page.changes {
                assert!(c.seq > last, "numbers rise: {} after {last}", c.seq);
                last = c.seq;
                let key = (c.record.stream.clone(), c.record.key.clone());
                assert!(in_page.insert(key.clone()), "{key:?} twice in one page");
                // Seen again in the same catch-up only as a newer change made meanwhile.
                if let Some(before) = seen_this_catch_up.insert(key.clone(), c.record.version) {
                    assert!(c.record.version > before, "{key:?}: the same change twice");
                }
                if let Some(held) = self.held.get(&key) {
                    assert!(
                        c.seq > held.seq && c.record.version > held.version,
                        "{key:?} went back"
                    );
                }
                let held = Held {
                    seq: c.seq,
                    version: c.record.version,
                    deleted: c.record.deleted,
                    json: c.record.json,
                };
                self.held.insert(key, held);
                self.changes_read += 1;
            }
            assert!(page.next >= self.cursor);
            self.cursor = page.next;
            if !page.more {
                self.catch_ups += 1;
                return;
            }
        }
    }

    fn live(&self) -> BTreeMap<(String, String), Vec<u8>> {
        self.held
            .iter()
            .filter(|(_, held)| !held.deleted)
            .map(|(k, held)| (k.clone(), held.json.clone()))
            .collect()
    }
}

fn stored_live(store: &Store, id: &str) -> BTreeMap<(String, String), Vec<u8>> {
    let mut live = BTreeMap::new();
    store
        .for_each_record(id, None, false, |r| {
            live.insert((r.stream, r.key), r.json);
            Ok(())
        })
        .unwrap();
    live
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_following_the_feed_during_pulls_ends_with_exactly_the_live_records() {
    let (emu, app, dir, id) = setup().await;
    pull(&app, &id).await;
    let store = app.store().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, id, stop) = (store.clone(), id.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut follower = Follower::default();
            while !stop.load(Ordering::Relaxed) {
                follower.catch_up(&store, &id);
            }
            // One more after the last commit.
            follower.catch_up(&store, &id);
            follower
        })
    };
    let mut deleted_any = false;
    for round in 0..4 {
        change_records(&emu, round).await;
        pull(&app, &id).await;
        deleted_any |= store
            .record_counts(&id)
            .unwrap()
            .iter()
            .any(|c| c.deleted > 0);
    }
    stop.store(true, Ordering::Relaxed);
    let follower = reader.join().unwrap();
    assert!(deleted_any, "the pulls stored deletes");
    assert!(
        follower.catch_ups > 1,
        "the reader read while the pulls ran"
    );

    let live = stored_live(&store, &id);
    assert_eq!(
        follower.live(),
        live,
        "the follower holds the store's live records"
    );
    for object in OBJECTS {
        let truth = live_truth(&emu, object).await;
        let held: BTreeSet<String> = live
            .keys()
            .filter(|(stream, _)| stream == object)
            .map(|(_, key)| key.clone())
            .collect();
        let missing: Vec<_> = truth.difference(&held).collect();
        let extra: Vec<_> = held.difference(&truth).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{object}: the store misses {missing:?} and holds {extra:?} beyond the emulator's \
             live records ({} live)",
            truth.len()
        );
    }

    // A reader starting now from zero sees each key exactly once.
    let mut fresh = Follower::default();
    fresh.catch_up(&store, &id);
    let stored_keys = store
        .record_counts(&id)
        .unwrap()
        .iter()
        .map(|c| (c.live + c.deleted) as usize)
        .sum::<usize>();
    assert_eq!(fresh.changes_read, stored_keys);
    assert_eq!(fresh.live(), live);
    assert_eq!(fresh.cursor, store.latest_change_seq(&id).unwrap());

    cli_prints_the_same_feed(&emu, &dir, &id, &store, &fresh);
}

/// `sluice changes` and `--format airbyte` on the data directory the pulls wrote.
fn cli_prints_the_same_feed(
    emu: &Emulator,
    dir: &TestDir,
    id: &str,
    store: &Store,
    fresh: &Follower,
) {
    let loopback = ["--allow-insecure-loopback", "--extra-origin", &emu.url];
    let run = |args: &[&str]| {
        let out = sluice_command(dir)
            .args(loopback)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (
            out.status.success(),
            lines,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let head = store.latest_change_seq(id).unwrap();

    let (ok, lines, stderr) = run(&["changes", id, "--after", "0"]);
    assert!(ok, "{stderr}");
    assert_eq!(lines.len(), fresh.changes_read);
    assert!(stderr.contains(&format!("next cursor: {head}")), "{stderr}");
    let deletes = lines.iter().filter(|l| l["op"] == "delete").count();
    assert!(deletes > 0, "the feed shows deletes");
    for line in &lines {
        for field in [
            "seq",
            "stream",
            "key",
            "op",
            "cursor",
            "record",
            "run_id",
            "committed_at_ms",
        ] {
            assert!(line.get(field).is_some(), "{field} in {line}");
        }
    }
    // From a cursor on: only the later changes.
    let middle = lines[lines.len() / 2]["seq"].as_i64().unwrap();
    let (ok, later, _) = run(&["changes", id, "--after", &middle.to_string()]);
    assert!(ok);
    assert!(later.iter().all(|l| l["seq"].as_i64().unwrap() > middle));
    assert_eq!(
        later.len(),
        lines
            .iter()
            .filter(|l| l["seq"].as_i64().unwrap() > middle)
            .count()
    );

    let (ok, messages, stderr) = run(&["changes", id, "--format", "airbyte"]);
    assert!(ok, "{stderr}");
    assert_airbyte(&messages, fresh.changes_read, head);
    assert!(
        messages.iter().any(|m| m["type"] == "RECORD"
            && m["record"]["data"]["_ab_cdc_deleted_at"].is_string()),
        "a delete carries _ab_cdc_deleted_at"
    );
    let live = stored_live(store, id).len();
    let (ok, messages, stderr) = run(&["records", id, "--format", "airbyte"]);
    assert!(ok, "{stderr}");
    assert_airbyte(&messages, live, head);

    // A bad cursor names itself; one older than a pruned tombstone must resync.
    let (ok, _, stderr) = run(&["changes", id, "--after", "12x"]);
    assert!(!ok && stderr.contains("\"12x\""), "{stderr}");
    assert!(store.prune_tombstones(sluice::store::now_ms() + 1).unwrap() > 0);
    let (ok, _, stderr) = run(&["changes", id, "--after", "1"]);
    assert!(!ok && stderr.contains("resync required"), "{stderr}");
    let (ok, lines, stderr) = run(&["changes", id]);
    assert!(ok, "{stderr}");
    assert_eq!(
        lines.len(),
        live,
        "from zero: the live records, the pruned deletes gone"
    );
}

/// CATALOG first, with discover's schemas and keys; `records` RECORDs; a final STATE at `head`.
fn assert_airbyte(messages: &[Value], records: usize, head: FeedCursor) {
    let catalog = &messages[0];
    assert_eq!(catalog["type"], "CATALOG", "{catalog}");
    let streams = catalog["catalog"]["streams"].as_array().unwrap();
    let names: BTreeSet<&str> = streams
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, OBJECTS.into_iter().collect());
    for s in streams {
        assert_eq!(s["json_schema"]["type"], "object", "{s}");
        assert!(
            s["json_schema"]["properties"].is_object(),
            "discover's schema: {s}"
        );
        assert_eq!(s["source_defined_primary_key"], json!([["Id"]]), "{s}");
        assert_eq!(
            s["supported_sync_modes"],
            json!(["full_refresh", "incremental"])
        );
    }
    let rows: Vec<&Value> = messages.iter().filter(|m| m["type"] == "RECORD").collect();
    assert_eq!(rows.len(), records);
    for r in &rows {
        assert!(
            r["record"]["stream"].is_string() && r["record"]["emitted_at"].is_i64(),
            "{r}"
        );
        assert!(r["record"]["data"]["Id"].is_string(), "{r}");
    }
    let state = messages.last().unwrap();
    assert_eq!(state["type"], "STATE", "{state}");
    assert_eq!(state["state"]["type"], "GLOBAL");
    assert_eq!(
        state["state"]["global"]["shared_state"]["sluice_cursor"],
        head.to_string()
    );
    assert_eq!(
        state["state"]["global"]["stream_states"]
            .as_array()
            .unwrap()
            .len(),
        OBJECTS.len()
    );
}

/// `serve --tombstone-retention 1s` prunes a delete once it is older than that; a cursor from
/// before the delete then answers 410 "resync required", the feed from 0 still answers, and
/// `/records` names its snapshot's cursor.
#[test]
fn serve_prunes_tombstones_past_the_retention_and_an_older_cursor_must_resync() {
    use sluice::engine::wit::types::{Operation, Row};
    use sluice::store::{CheckpointState, IntegrationSettings, NewIntegration};
    let dir = temp_dir("feed-retention");
    let id = {
        let store = Store::open_dir(&dir).unwrap();
        let id = store
            .insert_integration(&NewIntegration {
                name: "retention".into(),
                connector: "salesforce".into(),
                settings: IntegrationSettings::new("helpdesk", [("environment", "production")]),
                interval_s: 7 * 24 * 3600,
                client_id: None,
                client_secret: None,
            })
            .unwrap()
            .id;
        let run = store.start_run(&id, "cli", false, "t").unwrap();
        let row = |key: &str, op| Row {
            key: key.into(),
            op,
            cursor: "2024-01-01T00:00:00Z".into(),
            json: format!(r#"{{"Id":"{key}"}}"#).into_bytes(),
        };
        let page = |rows: &[Row]| {
            store
                .commit_page(&id, "Case", &run, rows, None, CheckpointState::Partial, 1)
                .unwrap()
        };
        page(&[row("a", Operation::Upsert), row("b", Operation::Upsert)]);
        page(&[row("a", Operation::Delete)]);
        id
    };
    let server = support::binary::serve(&dir, &["--tombstone-retention", "1s"], &[], "");
    let token = server.generated_token();
    let auth = format!("Bearer {token}");
    let get = |path: &str| {
        let (status, body) = server.send(
            "GET",
            path,
            &server.host(),
            &[("Authorization", &auth)],
            b"",
        );
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body)),
        )
    };
    let changes = format!("/api/integrations/{id}/changes");
    // The delete is change 3; the pruner runs every second and takes it once a second old.
    let mut answer = get(&format!("{changes}?after=1"));
    for _ in 0..400 {
        if answer.0 != 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
        answer = get(&format!("{changes}?after=1"));
    }
    let (status, body) = answer;
    assert_eq!(status, 410, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("resync required") && error.contains("snapshot"),
        "{error}"
    );
    let (status, from_zero) = get(&changes);
    assert_eq!(status, 200, "{from_zero}");
    let keys: Vec<&str> = from_zero["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["b"],
        "the pruned delete is gone, the live record stays"
    );
    assert_eq!(from_zero["next_cursor"], "3");
    let (status, _) = get(&format!("{changes}?after=3"));
    assert_eq!(status, 200);

    // The records page names the cursor of its snapshot.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "GET /api/integrations/{id}/records HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\n\
         Connection: close\r\n\r\n",
        server.host()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(
        raw.to_ascii_lowercase()
            .contains("\r\nsluice-snapshot-cursor: 3\r\n"),
        "{raw}"
    );
}
