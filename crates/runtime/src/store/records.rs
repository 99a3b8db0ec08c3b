//! Records, checkpoints and the pages that commit them, in one transaction per page.

use super::feed::{self, SeqAllocator};
use super::page_changes::PageChanges;
use super::*;

mod postgres;

/// One stored record.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRecord {
    /// The stream.
    pub stream: String,
    /// The record's key.
    pub key: String,
    /// How many times it was written.
    pub version: i64,
    /// Whether it is a delete tombstone.
    pub deleted: bool,
    /// Its cursor value.
    pub cursor: String,
    /// Its JSON.
    pub json: Vec<u8>,
    /// The change-feed sequence number of its latest change.
    pub seq: i64,
    /// When its latest change was committed (ms since the epoch).
    pub updated_at_ms: i64,
}

/// The columns [`stored_record`] reads, in its order.
const RECORD_COLUMNS: &str = "stream, key, version, deleted, cursor, json, seq, updated_at_ms";

/// A [`StoredRecord`] from a row of [`RECORD_COLUMNS`] starting at column `at`.
pub(super) fn stored_record(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        stream: r.get(at)?,
        key: r.get(at + 1)?,
        version: r.get(at + 2)?,
        deleted: r.get(at + 3)?,
        cursor: r.get(at + 4)?,
        json: r.get(at + 5)?,
        seq: r.get(at + 6)?,
        updated_at_ms: r.get(at + 7)?,
    })
}

/// [`stored_record`] from a PostgreSQL row.
pub(super) fn pg_stored_record(
    r: &tokio_postgres::Row,
    at: usize,
) -> Result<StoredRecord, StoreError> {
    Ok(StoredRecord {
        stream: r.try_get(at)?,
        key: r.try_get(at + 1)?,
        version: r.try_get(at + 2)?,
        deleted: r.try_get(at + 3)?,
        cursor: r.try_get(at + 4)?,
        json: r.try_get(at + 5)?,
        seq: r.try_get(at + 6)?,
        updated_at_ms: r.try_get(at + 7)?,
    })
}

/// A page of records read with the feed cursor of the same snapshot.
#[derive(Debug, Clone)]
pub struct RecordsSnapshot {
    /// The records.
    pub records: Vec<StoredRecord>,
    /// The feed's head when they were read: following the feed from it picks up every change
    /// made since.
    pub cursor: FeedCursor,
}

/// Per-stream counts of stored records.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamCount {
    /// The stream.
    pub stream: String,
    /// Live records.
    pub live: i64,
    /// Tombstones.
    pub deleted: i64,
}

impl Store {
    /// The committed checkpoint of a stream.
    pub fn checkpoint(&self, id: &str, stream: &str) -> Result<Option<String>, StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => return postgres::checkpoint(pg, id, stream),
        };
        Ok(conn
            .query_row(
                "SELECT checkpoint FROM checkpoints WHERE integration_id = ?1 AND stream = ?2",
                [id, stream],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Every stream's checkpoint and status.
    pub fn checkpoints(
        &self,
        id: &str,
    ) -> Result<Vec<(String, Option<String>, CheckpointState)>, StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => return postgres::checkpoints(pg, id),
        };
        let mut stmt = conn.prepare(
            "SELECT stream, checkpoint, status FROM checkpoints WHERE integration_id = ?1
             ORDER BY stream",
        )?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets every checkpoint of an integration (a full pull); records are kept.
    pub fn clear_checkpoints(&self, id: &str) -> Result<(), StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => return postgres::clear_checkpoints(pg, id),
        };
        conn.execute("DELETE FROM checkpoints WHERE integration_id = ?1", [id])?;
        Ok(())
    }

    /// Commits one page: its rows (latest version per key, tombstones for deletes), the
    /// stream's new checkpoint and status, and the run's counters, in ONE transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_page(
        &self,
        id: &str,
        stream: &str,
        run_id: &str,
        rows: &[Row],
        checkpoint: Option<&str>,
        status: CheckpointState,
        api_calls: u32,
    ) -> Result<(), StoreError> {
        self.commit_page_inner(
            id, stream, run_id, rows, checkpoint, status, api_calls, None,
        )
    }

    /// [`Store::commit_page`], recording in the same transaction that `connector_version`
    /// served the page (see [`Store::run_pages`]).
    #[allow(clippy::too_many_arguments)]
    pub fn commit_page_served_by(
        &self,
        id: &str,
        stream: &str,
        run_id: &str,
        rows: &[Row],
        checkpoint: Option<&str>,
        status: CheckpointState,
        api_calls: u32,
        connector_version: u32,
    ) -> Result<(), StoreError> {
        self.commit_page_inner(
            id,
            stream,
            run_id,
            rows,
            checkpoint,
            status,
            api_calls,
            Some(connector_version),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_page_inner(
        &self,
        id: &str,
        stream: &str,
        run_id: &str,
        rows: &[Row],
        checkpoint: Option<&str>,
        status: CheckpointState,
        api_calls: u32,
        connector_version: Option<u32>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut conn = match &self.db {
            Db::Sqlite(db) => db.pages(),
            Db::Postgres(pg) => {
                let page = postgres::Page {
                    id,
                    stream,
                    run_id,
                    rows,
                    checkpoint,
                    status,
                    api_calls,
                    connector_version,
                    now,
                };
                return postgres::commit_page(pg, &page);
            }
        };
        // IMMEDIATE: take the write lock up front (waiting on `busy_timeout` if another
        // connection holds it) rather than upgrading a read snapshot halfway.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Numbered under the write lock just taken: the numbers rise in commit order.
        let mut seqs = SeqAllocator::begin(&tx, id)?;
        let mut changes = PageChanges::begin(&tx, id, stream, rows.iter().map(|r| r.key.as_str()))?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO records (integration_id, stream, key, version, deleted, cursor, json,
                     run_id, updated_at_ms, seq)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(integration_id, stream, key) DO UPDATE SET
                     version = records.version + 1, deleted = excluded.deleted,
                     cursor = excluded.cursor, json = excluded.json, run_id = excluded.run_id,
                     updated_at_ms = excluded.updated_at_ms, seq = excluded.seq",
            )?;
            // In row order: a page may upsert a record and merge into it after.
            for row in rows {
                let deleted = match row.op {
                    Operation::Upsert => false,
                    Operation::Delete => true,
                    Operation::Merge => {
                        if merge_row(&tx, id, stream, run_id, row, now, &mut seqs)? {
                            changes.merged();
                        }
                        continue;
                    }
                };
                changes.write(&row.key, deleted);
                upsert.execute(params![
                    id,
                    stream,
                    row.key,
                    deleted,
                    row.cursor,
                    row.json,
                    run_id,
                    now,
                    seqs.next()
                ])?;
            }
        }
        seqs.store(&tx, id)?;
        changes.store(&tx, run_id, id, stream)?;
        tx.prepare_cached(
            "INSERT INTO checkpoints (integration_id, stream, checkpoint, status, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(integration_id, stream) DO UPDATE SET checkpoint = excluded.checkpoint,
                 status = excluded.status, updated_at_ms = excluded.updated_at_ms",
        )?
        .execute(params![id, stream, checkpoint, status, now])?;
        tx.prepare_cached(
            "UPDATE runs SET records = records + ?2, api_calls = api_calls + ?3 WHERE id = ?1",
        )?
        .execute(params![run_id, rows.len() as i64, api_calls])?;
        if let Some(version) = connector_version {
            tx.prepare_cached(
                "INSERT INTO run_pages (run_id, seq, stream, rows, connector_version, committed_at_ms)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM run_pages WHERE run_id = ?1),
                     ?2, ?3, ?4, ?5)",
            )?
            .execute(params![run_id, stream, rows.len() as i64, version, now])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Calls `f` for every stored record of an integration (optionally one stream), in
    /// (stream, key) order. Tombstones are included only when `with_deleted`.
    pub fn for_each_record(
        &self,
        id: &str,
        stream: Option<&str>,
        with_deleted: bool,
        f: impl FnMut(StoredRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(db) => each_record(&db.conn(), id, stream, with_deleted, f),
            Db::Postgres(pg) => {
                postgres::for_each_record(pg, id, stream, with_deleted, f, false).map(|_| ())
            }
        }
    }

    /// [`Store::for_each_record`] in one read snapshot, returning that snapshot's feed cursor.
    pub fn export_records(
        &self,
        id: &str,
        stream: Option<&str>,
        with_deleted: bool,
        f: impl FnMut(StoredRecord) -> Result<(), StoreError>,
    ) -> Result<FeedCursor, StoreError> {
        let mut conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => {
                return postgres::for_each_record(pg, id, stream, with_deleted, f, true);
            }
        };
        let tx = conn.transaction()?;
        let cursor = feed::head_cursor(&tx, id)?;
        each_record(&tx, id, stream, with_deleted, f)?;
        tx.finish()?;
        Ok(cursor)
    }

    /// At most `limit` stored records of an integration (optionally one stream) after the
    /// `(stream, key)` position `after`, in (stream, key) order: one bounded read of the
    /// primary key index, so a small page never scans the table while holding the connection.
    /// Tombstones are included only when `with_deleted`.
    pub fn records_page(
        &self,
        id: &str,
        stream: Option<&str>,
        with_deleted: bool,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => {
                return postgres::records_page(pg, id, stream, with_deleted, after, limit);
            }
        };
        records_page_in(&conn, id, stream, with_deleted, after, limit)
    }

    /// [`Store::records_page`] with the feed cursor of the same read snapshot.
    pub fn records_snapshot(
        &self,
        id: &str,
        stream: Option<&str>,
        with_deleted: bool,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<RecordsSnapshot, StoreError> {
        let mut conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => {
                return postgres::records_snapshot(pg, id, stream, with_deleted, after, limit);
            }
        };
        let tx = conn.transaction()?;
        let cursor = feed::head_cursor(&tx, id)?;
        let records = records_page_in(&tx, id, stream, with_deleted, after, limit)?;
        tx.finish()?;
        Ok(RecordsSnapshot { records, cursor })
    }

    /// Live keys of one stream, ascending, greater than `after`, at most `limit`.
    pub fn live_keys_after(
        &self,
        id: &str,
        stream: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => return postgres::live_keys_after(pg, id, stream, after, limit),
        };
        let mut stmt = conn.prepare_cached(
            "SELECT key FROM records
             WHERE integration_id = ?1 AND stream = ?2 AND key > ?3 AND deleted = 0
             ORDER BY key LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![id, stream, after.unwrap_or(""), limit as i64],
            |r| r.get(0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored keys of integration `id`, as the engine answers them to its connector.
    pub fn keys_of(self: &Arc<Self>, id: &str) -> Arc<dyn crate::engine::KeySource> {
        Arc::new(IntegrationKeys {
            store: self.clone(),
            integration: id.to_string(),
        })
    }

    /// Live and deleted record counts per stream.
    pub fn record_counts(&self, id: &str) -> Result<Vec<StreamCount>, StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => return postgres::record_counts(pg, id),
        };
        let mut stmt = conn.prepare(
            "SELECT stream, SUM(deleted = 0), SUM(deleted = 1) FROM records
             WHERE integration_id = ?1 GROUP BY stream ORDER BY stream",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(StreamCount {
                stream: r.get(0)?,
                live: r.get(1)?,
                deleted: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn each_record(
    conn: &Connection,
    id: &str,
    stream: Option<&str>,
    with_deleted: bool,
    mut f: impl FnMut(StoredRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {RECORD_COLUMNS} FROM records
         WHERE integration_id = ?1 AND (?2 IS NULL OR stream = ?2) AND (?3 OR deleted = 0)
         ORDER BY stream, key"
    ))?;
    let mut rows = stmt.query(params![id, stream, with_deleted])?;
    while let Some(r) = rows.next()? {
        f(stored_record(r, 0)?)?;
    }
    Ok(())
}

fn records_page_in(
    conn: &Connection,
    id: &str,
    stream: Option<&str>,
    with_deleted: bool,
    after: Option<(&str, &str)>,
    limit: usize,
) -> Result<Vec<StoredRecord>, StoreError> {
    let (after_stream, after_key) = after.unzip();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM records
         WHERE integration_id = ?1 AND (?2 IS NULL OR stream = ?2) AND (?3 OR deleted = 0)
           AND (?4 IS NULL OR (stream, key) > (?4, ?5))
         ORDER BY stream, key LIMIT ?6"
    ))?;
    let rows = stmt.query_map(
        params![
            id,
            stream,
            with_deleted,
            after_stream,
            after_key,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |r| stored_record(r, 0),
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Applies one merge row inside a page's transaction (see [`merge`]); `true` when it changed
/// the stored record.
fn merge_row(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    stream: &str,
    run_id: &str,
    row: &Row,
    now: i64,
    seqs: &mut SeqAllocator,
) -> Result<bool, StoreError> {
    let patch = merge::fields(&row.json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let stored: Option<Vec<u8>> = tx
        .prepare_cached(
            "SELECT json FROM records
             WHERE integration_id = ?1 AND stream = ?2 AND key = ?3 AND deleted = 0",
        )?
        .query_row(params![id, stream, row.key], |r| r.get(0))
        .optional()?;
    let Some(stored) = stored else {
        return Ok(false);
    };
    match merge::apply(&stored, &patch) {
        merge::Merged::Changed(json) => {
            tx.prepare_cached(
                "UPDATE records SET version = version + 1, json = ?4, run_id = ?5,
                     updated_at_ms = ?6, seq = ?7
                 WHERE integration_id = ?1 AND stream = ?2 AND key = ?3",
            )?
            .execute(params![id, stream, row.key, json, run_id, now, seqs.next()])?;
            Ok(true)
        }
        merge::Merged::Unchanged => Ok(false),
        merge::Merged::NotAnObject => {
            tracing::warn!(integration = id, stream, key = %row.key, "a merge row was left alone: the stored record is not a JSON object");
            Ok(false)
        }
    }
}

/// One integration's stored keys, for the `stored-keys` host import.
struct IntegrationKeys {
    store: Arc<Store>,
    integration: String,
}

impl crate::engine::KeySource for IntegrationKeys {
    fn live_keys_after(
        &self,
        stream: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, String> {
        self.store
            .live_keys_after(&self.integration, stream, after, limit)
            .map_err(|e| e.to_string())
    }
}
