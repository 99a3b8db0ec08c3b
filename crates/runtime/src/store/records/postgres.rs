//! The PostgreSQL statements of records, checkpoints and page commits.
//!
//! A page commit sends a fixed number of statements whatever the page's size: it takes the
//! integration's feed row (the numbering lock), reads the stored state of the page's keys in
//! one query, applies the rows in page order in memory with the same rules as SQLite's
//! per-row statements (`merge.rs` for merges, `PageChanges` for the counts), and writes the
//! result with one `unnest` upsert.

use std::collections::HashMap;

use futures::TryStreamExt;
use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::super::feed::{self, SeqAllocator};
use super::super::leases;
use super::super::page_changes::PageChanges;
use super::*;
use crate::store::pg::{self, Pg};

/// One page to commit, as [`Store::commit_page_served_by`] takes it.
pub(super) struct Page<'a> {
    pub id: &'a str,
    pub stream: &'a str,
    pub run_id: &'a str,
    pub rows: &'a [Row],
    pub checkpoint: Option<&'a str>,
    pub status: CheckpointState,
    pub api_calls: u32,
    pub connector_version: Option<u32>,
    pub now: i64,
}

/// A key's stored state before the page, as the page needs it.
struct Before {
    deleted: bool,
    cursor: String,
    /// Its JSON, read only when the page merges (a merge needs the stored fields).
    json: Option<Vec<u8>>,
}

/// A key's row as the page leaves it.
struct After {
    /// How many times the page wrote it: the version rises by this much.
    writes: i64,
    deleted: bool,
    cursor: String,
    json: Vec<u8>,
    seq: i64,
}

/// What a page writes: its keys' final rows in first-touch order, and its counts.
struct Plan {
    keys: Vec<String>,
    after: HashMap<String, After>,
    changes: PageChanges,
    seqs: SeqAllocator,
}

pub(super) fn checkpoint(pg: &Pg, id: &str, stream: &str) -> Result<Option<String>, StoreError> {
    let client = pg.client()?;
    let row = pg::wait(client.query_opt(
        "SELECT checkpoint FROM checkpoints WHERE integration_id = $1 AND stream = $2",
        &[&id, &stream],
    ))?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => None,
    })
}

pub(super) fn checkpoints(
    pg: &Pg,
    id: &str,
) -> Result<Vec<(String, Option<String>, CheckpointState)>, StoreError> {
    let client = pg.client()?;
    let rows = pg::wait(client.query(
        "SELECT stream, checkpoint, status FROM checkpoints WHERE integration_id = $1
         ORDER BY stream",
        &[&id],
    ))?;
    rows.iter()
        .map(|r| {
            let status: &str = r.try_get(2)?;
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                CheckpointState::parse(status)?,
            ))
        })
        .collect()
}

pub(super) fn clear_checkpoints(pg: &Pg, id: &str) -> Result<(), StoreError> {
    let client = pg.client()?;
    pg::wait(client.execute("DELETE FROM checkpoints WHERE integration_id = $1", &[&id]))?;
    Ok(())
}

/// Commits one page in one transaction (see the module's comment).
pub(super) fn commit_page(pg: &Pg, page: &Page<'_>) -> Result<(), StoreError> {
    let mut client = pg.client()?;
    pg::wait(async {
        let tx = client.transaction().await?;
        // A run whose host lost the integration's lease commits nothing.
        leases::fence(&tx, page.id, page.run_id).await?;
        // A second commit of this integration, on any host, waits here.
        let last_seq = feed::pg_lock_feed(&tx, page.id).await?;
        let before = stored_before(&tx, page).await?;
        let plan = plan_page(page, before, SeqAllocator::after(last_seq))?;
        write_records(&tx, page, &plan).await?;
        feed::pg_store_seq(&tx, page.id, &plan.seqs).await?;
        plan.changes
            .pg_store(&tx, page.run_id, page.id, page.stream)
            .await?;
        write_page_bookkeeping(&tx, page).await?;
        tx.commit().await?;
        Ok(())
    })
}

/// The stored state of the page's keys, in one query.
async fn stored_before(
    tx: &Transaction<'_>,
    page: &Page<'_>,
) -> Result<HashMap<String, Before>, StoreError> {
    let keys: Vec<&str> = page.rows.iter().map(|r| r.key.as_str()).collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let merges = page.rows.iter().any(|r| matches!(r.op, Operation::Merge));
    let rows = tx
        .query(
            "SELECT key, deleted, cursor, CASE WHEN $4 THEN json END FROM records
             WHERE integration_id = $1 AND stream = $2 AND key = ANY($3)",
            &[&page.id, &page.stream, &keys, &merges],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                Before {
                    deleted: r.try_get(1)?,
                    cursor: r.try_get(2)?,
                    json: r.try_get(3)?,
                },
            ))
        })
        .collect()
}

/// Applies the page's rows in order to the keys' stored states, as SQLite's per-row
/// statements do: each write numbers a change, a merge changes only a live record.
fn plan_page(
    page: &Page<'_>,
    before: HashMap<String, Before>,
    mut seqs: SeqAllocator,
) -> Result<Plan, StoreError> {
    let mut changes = PageChanges::from_known(
        before
            .iter()
            .map(|(key, b)| (key.clone(), b.deleted))
            .collect(),
    );
    let mut keys = Vec::new();
    let mut after: HashMap<String, After> = HashMap::new();
    for row in page.rows {
        let deleted = match row.op {
            Operation::Upsert => false,
            Operation::Delete => true,
            Operation::Merge => {
                let patch =
                    merge::fields(&row.json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if merge_planned(page, row, &patch, &before, &mut after, &mut keys, &mut seqs) {
                    changes.merged();
                }
                continue;
            }
        };
        changes.write(&row.key, deleted);
        let seq = seqs.next();
        match after.get_mut(&row.key) {
            Some(state) => {
                state.writes += 1;
                state.deleted = deleted;
                state.cursor = row.cursor.clone();
                state.json = row.json.clone();
                state.seq = seq;
            }
            None => {
                keys.push(row.key.clone());
                after.insert(
                    row.key.clone(),
                    After {
                        writes: 1,
                        deleted,
                        cursor: row.cursor.clone(),
                        json: row.json.clone(),
                        seq,
                    },
                );
            }
        }
    }
    Ok(Plan {
        keys,
        after,
        changes,
        seqs,
    })
}

/// Applies one merge row to the key's state so far in the page; `true` when it changed the
/// record.
fn merge_planned(
    page: &Page<'_>,
    row: &Row,
    patch: &serde_json::Map<String, serde_json::Value>,
    before: &HashMap<String, Before>,
    after: &mut HashMap<String, After>,
    keys: &mut Vec<String>,
    seqs: &mut SeqAllocator,
) -> bool {
    // The record as the page has left it so far: its own write, else the stored one.
    let current = match after.get(&row.key) {
        Some(state) => (!state.deleted).then_some((state.json.as_slice(), &state.cursor)),
        None => before
            .get(&row.key)
            .filter(|b| !b.deleted)
            .and_then(|b| Some((b.json.as_deref()?, &b.cursor))),
    };
    let Some((current, cursor)) = current else {
        return false;
    };
    // A merge keeps the record's cursor.
    let cursor = cursor.clone();
    match merge::apply(current, patch) {
        merge::Merged::Changed(json) => {
            let seq = seqs.next();
            match after.get_mut(&row.key) {
                Some(state) => {
                    state.writes += 1;
                    state.json = json;
                    state.seq = seq;
                }
                None => {
                    keys.push(row.key.clone());
                    after.insert(
                        row.key.clone(),
                        After {
                            writes: 1,
                            deleted: false,
                            cursor,
                            json,
                            seq,
                        },
                    );
                }
            }
            true
        }
        merge::Merged::Unchanged => false,
        merge::Merged::NotAnObject => {
            tracing::warn!(integration = page.id, stream = page.stream, key = %row.key, "a merge row was left alone: the stored record is not a JSON object");
            false
        }
    }
}

/// Writes the page's final rows with one statement.
async fn write_records(
    tx: &Transaction<'_>,
    page: &Page<'_>,
    plan: &Plan,
) -> Result<(), StoreError> {
    if plan.keys.is_empty() {
        return Ok(());
    }
    let rows: Vec<&After> = plan.keys.iter().map(|k| &plan.after[k]).collect();
    let writes: Vec<i64> = rows.iter().map(|r| r.writes).collect();
    let deleted: Vec<bool> = rows.iter().map(|r| r.deleted).collect();
    let cursors: Vec<&str> = rows.iter().map(|r| r.cursor.as_str()).collect();
    let jsons: Vec<&[u8]> = rows.iter().map(|r| r.json.as_slice()).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    // Versions rise by the page's writes of each key: a new key starts at its count.
    tx.execute(
        "INSERT INTO records (integration_id, stream, key, version, deleted, cursor, json,
             run_id, updated_at_ms, seq)
         SELECT $1, $2, t.key, t.writes, t.deleted, t.cursor, t.json, $3, $4, t.seq
         FROM unnest($5::text[], $6::bigint[], $7::boolean[], $8::text[], $9::bytea[],
                     $10::bigint[]) AS t(key, writes, deleted, cursor, json, seq)
         ON CONFLICT (integration_id, stream, key) DO UPDATE SET
             version = records.version + excluded.version, deleted = excluded.deleted,
             cursor = excluded.cursor,
             json = excluded.json, run_id = excluded.run_id,
             updated_at_ms = excluded.updated_at_ms, seq = excluded.seq",
        &[
            &page.id,
            &page.stream,
            &page.run_id,
            &page.now,
            &plan.keys,
            &writes,
            &deleted,
            &cursors,
            &jsons,
            &seqs,
        ],
    )
    .await?;
    Ok(())
}

/// The checkpoint, the run's counters and the run's page row of a committed page.
async fn write_page_bookkeeping(tx: &Transaction<'_>, page: &Page<'_>) -> Result<(), StoreError> {
    let rows = page.rows.len() as i64;
    let api_calls = i64::from(page.api_calls);
    let status = page.status.as_str();
    let checkpoint_params: [&(dyn ToSql + Sync); 5] =
        [&page.id, &page.stream, &page.checkpoint, &status, &page.now];
    let counter_params: [&(dyn ToSql + Sync); 3] = [&page.run_id, &rows, &api_calls];
    let checkpoint = tx.execute(
        "INSERT INTO checkpoints (integration_id, stream, checkpoint, status, updated_at_ms)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (integration_id, stream) DO UPDATE SET checkpoint = excluded.checkpoint,
             status = excluded.status, updated_at_ms = excluded.updated_at_ms",
        &checkpoint_params,
    );
    let counters = tx.execute(
        "UPDATE runs SET records = records + $2, api_calls = api_calls + $3 WHERE id = $1",
        &counter_params,
    );
    // Sent together: the connection pipelines them in one round trip.
    futures::future::try_join(checkpoint, counters).await?;
    if let Some(version) = page.connector_version {
        tx.execute(
            "INSERT INTO run_pages (run_id, seq, stream, rows, connector_version, committed_at_ms)
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM run_pages WHERE run_id = $1),
                 $2, $3, $4, $5)",
            &[
                &page.run_id,
                &page.stream,
                &rows,
                &i64::from(version),
                &page.now,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Calls `f` for each record as the rows arrive; with `snapshot`, reads them and the feed's
/// head in one snapshot and returns that head (else cursor 0).
pub(super) fn for_each_record(
    pg: &Pg,
    id: &str,
    stream: Option<&str>,
    with_deleted: bool,
    mut f: impl FnMut(StoredRecord) -> Result<(), StoreError>,
    snapshot: bool,
) -> Result<FeedCursor, StoreError> {
    let mut client = pg.client()?;
    pg::wait(async {
        let tx = feed::pg_snapshot(&mut client).await?;
        let cursor = if snapshot {
            feed::pg_head_cursor(&tx, id).await?
        } else {
            FeedCursor::default()
        };
        let params: [&(dyn ToSql + Sync); 3] = [&id, &stream, &with_deleted];
        let rows = tx
            .query_raw(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM records
                     WHERE integration_id = $1 AND ($2::text IS NULL OR stream = $2)
                       AND ($3 OR NOT deleted)
                     ORDER BY stream, key"
                ),
                params,
            )
            .await?;
        futures::pin_mut!(rows);
        while let Some(row) = rows.try_next().await? {
            f(pg_stored_record(&row, 0)?)?;
        }
        tx.commit().await?;
        Ok(cursor)
    })
}

async fn records_page_in(
    client: &impl tokio_postgres::GenericClient,
    id: &str,
    stream: Option<&str>,
    with_deleted: bool,
    after: Option<(&str, &str)>,
    limit: usize,
) -> Result<Vec<StoredRecord>, StoreError> {
    let (after_stream, after_key) = after.unzip();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM records
                 WHERE integration_id = $1 AND ($2::text IS NULL OR stream = $2)
                   AND ($3 OR NOT deleted)
                   AND ($4::text IS NULL OR (stream, key) > ($4, $5::text))
                 ORDER BY stream, key LIMIT $6"
            ),
            &[
                &id,
                &stream,
                &with_deleted,
                &after_stream,
                &after_key,
                &limit,
            ],
        )
        .await?;
    rows.iter().map(|r| pg_stored_record(r, 0)).collect()
}

pub(super) fn records_page(
    pg: &Pg,
    id: &str,
    stream: Option<&str>,
    with_deleted: bool,
    after: Option<(&str, &str)>,
    limit: usize,
) -> Result<Vec<StoredRecord>, StoreError> {
    let client = pg.client()?;
    pg::wait(records_page_in(
        &*client,
        id,
        stream,
        with_deleted,
        after,
        limit,
    ))
}

pub(super) fn records_snapshot(
    pg: &Pg,
    id: &str,
    stream: Option<&str>,
    with_deleted: bool,
    after: Option<(&str, &str)>,
    limit: usize,
) -> Result<RecordsSnapshot, StoreError> {
    let mut client = pg.client()?;
    pg::wait(async {
        let tx = feed::pg_snapshot(&mut client).await?;
        let cursor = feed::pg_head_cursor(&tx, id).await?;
        let records = records_page_in(&tx, id, stream, with_deleted, after, limit).await?;
        tx.commit().await?;
        Ok(RecordsSnapshot { records, cursor })
    })
}

pub(super) fn live_keys_after(
    pg: &Pg,
    id: &str,
    stream: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let client = pg.client()?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = pg::wait(client.query(
        "SELECT key FROM records
         WHERE integration_id = $1 AND stream = $2 AND key > $3 AND NOT deleted
         ORDER BY key LIMIT $4",
        &[&id, &stream, &after.unwrap_or(""), &limit],
    ))?;
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

pub(super) fn record_counts(pg: &Pg, id: &str) -> Result<Vec<StreamCount>, StoreError> {
    let client = pg.client()?;
    let rows = pg::wait(client.query(
        "SELECT stream, COUNT(*) FILTER (WHERE NOT deleted), COUNT(*) FILTER (WHERE deleted)
         FROM records WHERE integration_id = $1 GROUP BY stream ORDER BY stream",
        &[&id],
    ))?;
    rows.iter()
        .map(|r| {
            Ok(StreamCount {
                stream: r.try_get(0)?,
                live: r.try_get(1)?,
                deleted: r.try_get(2)?,
            })
        })
        .collect()
}
