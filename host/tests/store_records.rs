//! Records, checkpoints, page commits, runs and the change feed, each promise checked on
//! SQLite and on PostgreSQL with one test body (`each_backend!`).

use std::collections::BTreeMap;
use std::time::Duration;

use sluice::engine::wit::types::{Operation, Row};
use sluice::store::{
    CheckpointState, FeedCursor, Integration, IntegrationSettings, NewIntegration, RunState, Store,
    StoreError, StoredRecord, now_ms,
};
use sluice_test_support::each_backend;
use sluice_test_support::stores::{Backend, TestStore};

/// How long a test's run lease lasts: longer than any test.
const LEASE: Duration = Duration::from_secs(600);

fn integration(store: &Store, name: &str) -> Integration {
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
}

fn add(store: &Store, name: &str) -> String {
    integration(store, name).id
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

/// Every change after `after`, read in pages of `limit`.
fn read_all(
    store: &Store,
    id: &str,
    after: FeedCursor,
    limit: usize,
) -> Vec<sluice::store::Change> {
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

each_backend! {
    fn records_keep_the_latest_version_and_tombstones(store) {
        let i = integration(&store, "a");
        let run = store.start_run_as_runner(&i.id, "cli", "t");
        let page1 = [
            row("A", Operation::Upsert, r#"{"v":1}"#),
            row("B", Operation::Upsert, r#"{"v":1}"#),
        ];
        store
            .commit_page(
                &i.id,
                "Case",
                &run,
                &page1,
                Some("cp1"),
                CheckpointState::Partial,
                2,
            )
            .unwrap();
        let page2 = [
            row("A", Operation::Upsert, r#"{"v":2}"#),
            row("B", Operation::Delete, r#"{"deleted":true}"#),
        ];
        store
            .commit_page(
                &i.id,
                "Case",
                &run,
                &page2,
                Some("cp2"),
                CheckpointState::Complete,
                1,
            )
            .unwrap();
        let mut all = Vec::new();
        store
            .for_each_record(&i.id, Some("Case"), true, |r| {
                all.push(r);
                Ok(())
            })
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].key.as_str(), all[0].version, all[0].deleted),
            ("A", 2, false)
        );
        assert_eq!(all[0].json, br#"{"v":2}"#);
        assert_eq!((all[1].key.as_str(), all[1].deleted), ("B", true));
        let mut live = 0;
        store
            .for_each_record(&i.id, None, false, |_| {
                live += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(live, 1);
        assert_eq!(
            store.checkpoint(&i.id, "Case").unwrap().as_deref(),
            Some("cp2")
        );
        let runs = store.runs(&i.id, 10).unwrap();
        assert_eq!((runs[0].records, runs[0].api_calls), (4, 3));
        let counts = store.record_counts(&i.id).unwrap();
        assert_eq!((counts[0].live, counts[0].deleted), (1, 1));
    }

    fn merges_replace_fields_of_live_records_only(store) {
        let i = integration(&store, "a");
        let run = store.start_run_as_runner(&i.id, "cli", "t");
        let page1 = [
            row("A", Operation::Upsert, r#"{"Id":"A","F":1,"G":"x"}"#),
            row("D", Operation::Delete, r#"{"Id":"D"}"#),
        ];
        store
            .commit_page(
                &i.id,
                "Case",
                &run,
                &page1,
                Some("cp1"),
                CheckpointState::Partial,
                1,
            )
            .unwrap();
        let page2 = [
            row("A", Operation::Merge, r#"{"F":2}"#),
            row("B", Operation::Merge, r#"{"F":2}"#),
            row("D", Operation::Merge, r#"{"F":2}"#),
            // Rows apply in order: an upsert then a merge into it.
            row("C", Operation::Upsert, r#"{"Id":"C","F":1}"#),
            row("C", Operation::Merge, r#"{"F":3}"#),
        ];
        store
            .commit_page(
                &i.id,
                "Case",
                &run,
                &page2,
                Some("cp2"),
                CheckpointState::Partial,
                1,
            )
            .unwrap();
        // A merge that changes nothing leaves the version alone.
        store
            .commit_page(
                &i.id,
                "Case",
                &run,
                &[row("A", Operation::Merge, r#"{"F":2}"#)],
                Some("cp3"),
                CheckpointState::Complete,
                1,
            )
            .unwrap();
        let mut all = Vec::new();
        store
            .for_each_record(&i.id, Some("Case"), true, |r| {
                all.push((
                    r.key,
                    r.version,
                    r.deleted,
                    serde_json::from_slice::<serde_json::Value>(&r.json).unwrap(),
                ));
                Ok(())
            })
            .unwrap();
        let keys: Vec<&str> = all.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(keys, ["A", "C", "D"], "a merge never creates a record");
        assert_eq!(
            (all[0].1, &all[0].3),
            (2, &serde_json::json!({"Id": "A", "F": 2, "G": "x"}))
        );
        assert_eq!(
            (all[1].1, &all[1].3),
            (2, &serde_json::json!({"Id": "C", "F": 3}))
        );
        assert_eq!(
            (all[2].1, all[2].2, &all[2].3),
            (1, true, &serde_json::json!({"Id": "D"})),
            "a tombstone stays"
        );
    }

    fn live_keys_are_per_integration_and_stream_ascending_and_skip_tombstones(store) {
        let a = integration(&store, "a");
        let b = integration(&store, "b");
        let run = store.start_run_as_runner(&a.id, "cli", "t");
        let rows: Vec<Row> = ["k3", "k1", "k2", "k4"]
            .iter()
            .map(|k| row(k, Operation::Upsert, "{}"))
            .collect();
        store
            .commit_page(
                &a.id,
                "Case",
                &run,
                &rows,
                None,
                CheckpointState::Partial,
                1,
            )
            .unwrap();
        let gone = [row("k2", Operation::Delete, "{}")];
        store
            .commit_page(
                &a.id,
                "Case",
                &run,
                &gone,
                None,
                CheckpointState::Partial,
                1,
            )
            .unwrap();
        let other = [row("k9", Operation::Upsert, "{}")];
        store
            .commit_page(
                &a.id,
                "Account",
                &run,
                &other,
                None,
                CheckpointState::Partial,
                1,
            )
            .unwrap();
        let run_b = store.start_run_as_runner(&b.id, "cli", "t");
        store
            .commit_page(
                &b.id,
                "Case",
                &run_b,
                &other,
                None,
                CheckpointState::Partial,
                1,
            )
            .unwrap();

        assert_eq!(
            store.live_keys_after(&a.id, "Case", None, 10).unwrap(),
            vec!["k1", "k3", "k4"]
        );
        assert_eq!(
            store.live_keys_after(&a.id, "Case", Some("k1"), 1).unwrap(),
            vec!["k3"]
        );
        assert!(
            store.live_keys_after(&a.id, "Case", Some("k4"), 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.live_keys_after(&a.id, "Account", None, 10).unwrap(),
            vec!["k9"]
        );
    }

    fn record_pages_follow_the_keyset_across_streams(store) {
        let i = integration(&store, "a");
        let run = store.start_run_as_runner(&i.id, "cli", "t");
        for (stream, keys) in [("Account", ["A1", "A2"]), ("Case", ["C1", "C2"])] {
            let rows: Vec<Row> = keys
                .iter()
                .map(|k| row(k, Operation::Upsert, "{}"))
                .collect();
            store
                .commit_page(
                    &i.id,
                    stream,
                    &run,
                    &rows,
                    None,
                    CheckpointState::Complete,
                    1,
                )
                .unwrap();
        }
        store
            .commit_page(
                &i.id,
                "Case",
                &run,
                &[row("C1", Operation::Delete, "{}")],
                None,
                CheckpointState::Complete,
                1,
            )
            .unwrap();
        let keys = |page: Vec<StoredRecord>| -> Vec<(String, String)> {
            page.into_iter().map(|r| (r.stream, r.key)).collect()
        };
        let pair = |s: &str, k: &str| (s.to_string(), k.to_string());
        let first = store.records_page(&i.id, None, true, None, 3).unwrap();
        assert_eq!(
            keys(first),
            [
                pair("Account", "A1"),
                pair("Account", "A2"),
                pair("Case", "C1")
            ]
        );
        let next = store
            .records_page(&i.id, None, true, Some(("Account", "A2")), 3)
            .unwrap();
        assert_eq!(keys(next), [pair("Case", "C1"), pair("Case", "C2")]);
        let live = store
            .records_page(&i.id, Some("Case"), false, None, 10)
            .unwrap();
        assert_eq!(keys(live), [pair("Case", "C2")]);
        assert!(
            store
                .records_page(&i.id, None, true, None, 0)
                .unwrap()
                .is_empty()
        );
    }

    fn changes_are_numbered_in_commit_order_and_compacted_to_the_latest_per_key(store) {
        let id = add(&store, "a");
        let other = add(&store, "b");
        let run = store.start_run_as_runner(&id, "cli", "t");
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
        let other_run = store.start_run_as_runner(&other, "cli", "t");
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

    fn cursors_ahead_of_the_feed_and_unreadable_ones_are_refused(store) {
        let id = add(&store, "a");
        let run = store.start_run_as_runner(&id, "cli", "t");
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

    fn pruned_tombstones_make_older_cursors_resync_and_cursor_zero_never_does(store) {
        let id = add(&store, "a");
        let run = store.start_run_as_runner(&id, "cli", "t");
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

    fn parallel_streams_number_changes_so_a_concurrent_reader_misses_none(store) {
        const STREAMS: usize = 4;
        const PAGES: usize = 15;
        const ROWS: usize = 20;
        let id = add(&store, "a");
        let run = store.start_run_as_runner(&id, "cli", "t");
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
}

each_backend! {
    fn two_hosts_committing_one_integration_number_changes_in_commit_order(store) {
        // Two handles on one database, as two hosts; each commits pages of its own streams
        // from two threads, while a reader follows the feed.
        const WRITERS: usize = 4;
        const PAGES: usize = 12;
        const ROWS: usize = 25;
        let second_host = store.reopen();
        let hosts: [&Store; 2] = [&store, &second_host];
        let id = add(&store, "a");
        let run = store.start_run_as_runner(&id, "cli", "t");
        let mut followed: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
        let mut seen: Vec<i64> = Vec::new();
        std::thread::scope(|scope| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let (host, id, run) = (hosts[w % 2], &id, &run);
                    scope.spawn(move || {
                        let stream = format!("S{w}");
                        for p in 0..PAGES {
                            // Each page writes new keys, deletes one of the page before and
                            // merges into another: every kind of change crosses hosts.
                            let mut rows: Vec<Row> = (0..ROWS)
                                .map(|r| {
                                    let json = format!(r#"{{"w":{w},"p":{p},"r":{r}}}"#);
                                    row(&format!("{p:02}-{r:02}"), Operation::Upsert, &json)
                                })
                                .collect();
                            if p > 0 {
                                let before = p - 1;
                                rows.push(row(&format!("{before:02}-00"), Operation::Delete, "{}"));
                                rows.push(row(
                                    &format!("{before:02}-01"),
                                    Operation::Merge,
                                    &format!(r#"{{"merged":{p}}}"#),
                                ));
                            }
                            host.commit_page_served_by(
                                id,
                                &stream,
                                run,
                                &rows,
                                Some(&format!("{p}")),
                                CheckpointState::Partial,
                                1,
                                (w % 2 + 1) as u32,
                            )
                            .unwrap_or_else(|e| panic!("{stream} page {p}: {e}"));
                        }
                    })
                })
                .collect();
            let mut cursor = FeedCursor(0);
            loop {
                let done = writers.iter().all(|w| w.is_finished());
                let page = hosts[seen.len() % 2].changes_after(&id, cursor, None, 41).unwrap();
                for change in page.changes {
                    seen.push(change.seq);
                    let key = (change.record.stream, change.record.key);
                    if change.record.deleted {
                        followed.remove(&key);
                    } else {
                        followed.insert(key, change.record.json);
                    }
                }
                cursor = page.next;
                if done && !page.more {
                    break;
                }
            }
            writers.into_iter().for_each(|w| w.join().unwrap());
        });
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "a reader sees each number once, rising"
        );
        // Every page took a block of numbers of its own: its new keys (written once) hold
        // consecutive numbers.
        let mut by_page: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
        let mut live: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
        store
            .for_each_record(&id, None, true, |r| {
                let page = r.key[..2].to_string();
                // Written once: not deleted or merged into by the next page.
                if r.version == 1 {
                    by_page.entry((r.stream.clone(), page)).or_default().push(r.seq);
                }
                if !r.deleted {
                    live.insert((r.stream, r.key), r.json);
                }
                Ok(())
            })
            .unwrap();
        for (page, mut seqs) in by_page {
            seqs.sort();
            assert!(
                seqs.windows(2).all(|w| w[1] == w[0] + 1),
                "page {page:?} took numbers {seqs:?}"
            );
        }
        assert_eq!(followed, live, "the follower ends with exactly the live records");
        assert_eq!(live.len(), WRITERS * (PAGES * ROWS - (PAGES - 1)));
        let head = store.latest_change_seq(&id).unwrap();
        let numbered = (WRITERS * (PAGES * ROWS + 2 * (PAGES - 1))) as i64;
        assert_eq!(head, FeedCursor(numbered), "every change took one number");
        let pages: Vec<u32> = store.run_pages(&run).unwrap().iter().map(|p| p.seq).collect();
        assert_eq!(pages, (1..=(WRITERS * PAGES) as u32).collect::<Vec<_>>());
        let recorded = &store.runs(&id, 1).unwrap()[0];
        assert_eq!(recorded.records, (WRITERS * (PAGES * ROWS + 2 * (PAGES - 1))) as i64);
    }

    fn keys_list_in_byte_order(store) {
        // Byte order, as SQLite compares text: upper case before `_` before lower case, and
        // a multi-byte letter last. A database collating by language would interleave them.
        let id = add(&store, "a");
        let run = store.start_run_as_runner(&id, "cli", "t");
        let keys = ["é", "a", "_", "B", "b", "A"];
        let rows: Vec<Row> = keys.iter().map(|k| row(k, Operation::Upsert, "{}")).collect();
        commit(&store, &id, "Case", &run, &rows);
        let expected = ["A", "B", "_", "a", "b", "é"];
        assert_eq!(store.live_keys_after(&id, "Case", None, 10).unwrap(), expected);
        assert_eq!(store.live_keys_after(&id, "Case", Some("Z"), 10).unwrap(), expected[2..]);
        let paged: Vec<String> = store
            .records_page(&id, None, false, Some(("Case", "_")), 10)
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(paged, expected[3..]);
    }

    fn runs_list_newest_first_with_their_outcome(store) {
        let id = add(&store, "a");
        let other = add(&store, "b");
        let first = store.start_run(&id, "cli", true, "salesforce@1").unwrap();
        let second = store.start_run(&id, "schedule", false, "salesforce@2").unwrap();
        let third = store.start_run(&id, "api", false, "salesforce@2").unwrap();
        let elsewhere = store.start_run(&other, "cli", false, "salesforce@2").unwrap();
        let streams = serde_json::json!({"Case": {"status": "complete"}});
        store
            .finish_run(&first, RunState::Succeeded, &streams, None)
            .unwrap();
        store
            .finish_run(&second, RunState::Failed, &streams, Some("the API said no"))
            .unwrap();
        // `third` is left running, as by a crashed host.
        store.close_orphan_runs(&id).unwrap();
        let runs = store.runs(&id, 10).unwrap();
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        // Started within one millisecond or not: newest first.
        assert_eq!(ids, [third.as_str(), second.as_str(), first.as_str()]);
        let by_id = |run: &str| runs.iter().find(|r| r.id == run).unwrap();
        let first = by_id(&first);
        assert_eq!(
            (first.full, first.trigger.as_str(), first.connector_version.as_str()),
            (true, "cli", "salesforce@1")
        );
        assert_eq!((first.status, &first.streams, first.error.as_deref()), (RunState::Succeeded, &streams, None));
        assert!(first.ended_at_ms.unwrap() >= first.started_at_ms);
        let second = by_id(&second);
        assert_eq!((second.status, second.error.as_deref()), (RunState::Failed, Some("the API said no")));
        let third = by_id(&third);
        assert_eq!(third.status, RunState::Interrupted);
        assert!(third.ended_at_ms.is_some());
        assert!(third.error.as_deref().unwrap().contains("ended before the run finished"));
        // Another integration's running run is not touched.
        assert_eq!(store.runs(&other, 10).unwrap()[0].status, RunState::Running);
        assert_eq!(store.runs(&other, 10).unwrap()[0].id, elsewhere);
        assert_eq!(store.runs(&id, 1).unwrap().len(), 1);
    }

    fn run_pages_record_the_version_that_served_each_page(store) {
        let id = add(&store, "a");
        let run = store.start_run_as_runner(&id, "cli", "t");
        let rows = [row("1", Operation::Upsert, "{}"), row("2", Operation::Upsert, "{}")];
        store
            .commit_page_served_by(&id, "Case", &run, &rows, Some("c1"), CheckpointState::Partial, 3, 4)
            .unwrap();
        // A page committed without a version is not a served page.
        commit(&store, &id, "Case", &run, &rows[..1]);
        store
            .commit_page_served_by(&id, "Account", &run, &rows[..1], None, CheckpointState::Complete, 1, 5)
            .unwrap();
        let pages = store.run_pages(&run).unwrap();
        let seen: Vec<(u32, &str, u64, u32)> = pages
            .iter()
            .map(|p| (p.seq, p.stream.as_str(), p.rows, p.connector_version))
            .collect();
        assert_eq!(seen, [(1, "Case", 2, 4), (2, "Account", 1, 5)]);
        let recorded = &store.runs(&id, 1).unwrap()[0];
        assert_eq!((recorded.records, recorded.api_calls), (4, 5));
    }

    fn checkpoints_list_per_stream_and_clearing_keeps_the_records(store) {
        let id = add(&store, "a");
        let run = store.start_run_as_runner(&id, "cli", "t");
        let rows = [row("1", Operation::Upsert, "{}")];
        store
            .commit_page(&id, "Case", &run, &rows, Some("c1"), CheckpointState::Partial, 1)
            .unwrap();
        store
            .commit_page(&id, "Account", &run, &[], None, CheckpointState::Skipped, 1)
            .unwrap();
        store
            .commit_page(&id, "Case", &run, &[], Some("c2"), CheckpointState::Complete, 1)
            .unwrap();
        assert_eq!(
            store.checkpoints(&id).unwrap(),
            [
                ("Account".to_string(), None, CheckpointState::Skipped),
                ("Case".to_string(), Some("c2".to_string()), CheckpointState::Complete),
            ]
        );
        assert_eq!(store.checkpoint(&id, "Case").unwrap().as_deref(), Some("c2"));
        assert_eq!(store.checkpoint(&id, "Account").unwrap(), None);
        assert_eq!(store.checkpoint(&id, "Lead").unwrap(), None);
        // An empty page numbers nothing.
        assert_eq!(store.latest_change_seq(&id).unwrap(), FeedCursor(1));
        store.clear_checkpoints(&id).unwrap();
        assert!(store.checkpoints(&id).unwrap().is_empty());
        assert_eq!(store.record_counts(&id).unwrap()[0].live, 1);
    }

    fn snapshots_carry_the_cursor_to_follow_on_from(store) {
        let id = add(&store, "a");
        let run = store.start_run_as_runner(&id, "cli", "t");
        commit(&store, &id, "Case", &run, &[row("1", Operation::Upsert, "{}"), row("2", Operation::Upsert, "{}")]);
        let snapshot = store.records_snapshot(&id, None, false, None, 10).unwrap();
        assert_eq!((snapshot.records.len(), snapshot.cursor), (2, FeedCursor(2)));
        let mut exported = Vec::new();
        let cursor = store
            .export_records(&id, Some("Case"), false, |r| {
                exported.push(r.key);
                Ok(())
            })
            .unwrap();
        assert_eq!((exported, cursor), (vec!["1".to_string(), "2".to_string()], FeedCursor(2)));
        commit(&store, &id, "Case", &run, &[row("2", Operation::Delete, "{}")]);
        let after = store.changes_after(&id, snapshot.cursor, None, 10).unwrap();
        let keys: Vec<(&str, bool)> = after
            .changes
            .iter()
            .map(|c| (c.record.key.as_str(), c.record.deleted))
            .collect();
        assert_eq!(keys, [("2", true)]);
        // A callback's error stops the export and is answered as is.
        let err = store
            .export_records(&id, None, true, |_| Err(StoreError::Corrupt("stop".into())))
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(ref why) if why == "stop"), "{err}");
    }

    fn a_page_that_fails_midway_commits_nothing(store) {
        let id = add(&store, "a");
        let run = store.start_run_as_runner(&id, "cli", "t");
        store
            .commit_page(&id, "Case", &run, &[row("A", Operation::Upsert, "{}")], Some("cp1"), CheckpointState::Partial, 1)
            .unwrap();
        // The page's third row is a merge that is not a JSON object: the page fails after
        // two good rows.
        let page = [
            row("A", Operation::Upsert, r#"{"v":2}"#),
            row("B", Operation::Upsert, "{}"),
            row("A", Operation::Merge, "[1]"),
        ];
        let err = store
            .commit_page(&id, "Case", &run, &page, Some("cp2"), CheckpointState::Partial, 1)
            .unwrap_err();
        assert!(err.to_string().contains("merge row must hold a JSON object"), "{err}");
        let mut kept = Vec::new();
        store
            .for_each_record(&id, None, true, |r| {
                kept.push((r.key, r.version, r.json));
                Ok(())
            })
            .unwrap();
        assert_eq!(kept, [("A".to_string(), 1, b"{}".to_vec())]);
        assert_eq!(store.checkpoint(&id, "Case").unwrap().as_deref(), Some("cp1"));
        assert_eq!(store.latest_change_seq(&id).unwrap(), FeedCursor(1));
        assert_eq!(store.runs(&id, 1).unwrap()[0].records, 1);
        // The next page numbers on from the last committed one.
        commit(&store, &id, "Case", &run, &[row("B", Operation::Upsert, "{}")]);
        assert_eq!(store.latest_change_seq(&id).unwrap(), FeedCursor(2));
    }
}

#[test]
fn on_postgres_a_page_commits_only_for_the_run_holding_the_lease() {
    let store = TestStore::new(Backend::Postgres, "fence");
    let id = add(&store, "a");
    let run = store.start_run_as_runner(&id, "cli", "t");
    let page = [row("1", Operation::Upsert, "{}")];
    commit(&store, &id, "Case", &run, &page);
    // A run the lease was not bound to (a host that lost it and started over, or never
    // held it) commits nothing.
    let stray = store.start_run(&id, "cli", false, "t").unwrap();
    let err = store
        .commit_page(
            &id,
            "Case",
            &stray,
            &[row("2", Operation::Upsert, "{}")],
            Some("x"),
            CheckpointState::Partial,
            1,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    assert_eq!(store.latest_change_seq(&id).unwrap(), FeedCursor(1));
    assert_eq!(store.checkpoint(&id, "Case").unwrap(), None);
    // Another host taking the lease over fences the first run out too.
    sluice_test_support::PgCluster::shared().psql(
        store.database_name().unwrap(),
        &format!("UPDATE run_leases SET expires_at_ms = 0 WHERE integration_id = '{id}'"),
    );
    let second_host = store.reopen();
    let lease = second_host
        .claim_lease(&id, "host-2", LEASE)
        .unwrap()
        .expect("expired");
    let taken_over = second_host
        .start_leased_run(&lease, "cli", false, "t")
        .unwrap();
    let err = store
        .commit_page(&id, "Case", &run, &page, None, CheckpointState::Partial, 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    commit(&second_host, &id, "Case", &taken_over, &page);
    assert_eq!(store.latest_change_seq(&id).unwrap(), FeedCursor(2));
}
