//! The apply loop: feed pages into stream tables, one transaction per page.
//!
//! Threat: a materializer killed between writing rows and saving its cursor would, on
//! restart, apply the same changes again (or, saving the cursor first, skip some); two
//! materializers of one integration at once would interleave; a change applied late (a
//! resync, a replay) could overwrite a newer one.
//! Rule: a batch's rows and the cursor that covers them commit in one transaction, which
//! first locks the cursor row and checks it still holds the cursor the batch was read
//! after, so each change applies exactly once whatever kills or races happen. Every upsert
//! is guarded by sequence number: a row only moves forward.

use std::collections::{BTreeMap, BTreeSet};

use sluice_runtime::store::{FeedCursor, StoredRecord};
use tokio_postgres::Transaction;

use crate::MaterializeError;
use crate::names::Ident;
use crate::rows::{StreamRows, group};
use crate::tables::{CURSORS_TABLE, ensure_stream_table, qualified, stream_tables};

/// What one committed batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Changes in the batch.
    pub changes: u64,
    /// Rows written (a change older than its row's is not written).
    pub rows_written: u64,
}

/// Reads the cursor row under a lock; `None` when another materializer moved it away from
/// `expected` since it was read (the caller reads again).
async fn lock_cursor(
    tx: &Transaction<'_>,
    schema: &Ident,
    integration: &str,
    expected: FeedCursor,
) -> Result<bool, MaterializeError> {
    let row = tx
        .query_one(
            &format!(
                "SELECT feed_cursor FROM {} WHERE integration_id = $1 FOR UPDATE",
                qualified(schema, CURSORS_TABLE)
            ),
            &[&integration],
        )
        .await?;
    Ok(row.get::<_, i64>(0) == expected.0)
}

async fn save_cursor(
    tx: &Transaction<'_>,
    schema: &Ident,
    integration: &str,
    cursor: FeedCursor,
) -> Result<(), MaterializeError> {
    tx.execute(
        &format!(
            "UPDATE {} SET feed_cursor = $2, updated_at = now() WHERE integration_id = $1",
            qualified(schema, CURSORS_TABLE)
        ),
        &[&integration, &cursor.0],
    )
    .await?;
    Ok(())
}

/// The cursor the destination holds for `integration`.
pub async fn read_cursor(
    client: &tokio_postgres::Client,
    schema: &Ident,
    integration: &str,
) -> Result<FeedCursor, MaterializeError> {
    let row = client
        .query_one(
            &format!(
                "SELECT feed_cursor FROM {} WHERE integration_id = $1",
                qualified(schema, CURSORS_TABLE)
            ),
            &[&integration],
        )
        .await?;
    Ok(FeedCursor(row.get(0)))
}

/// Upserts one stream's rows, each only over an older version of itself; returns how many
/// rows were written.
async fn upsert(
    tx: &Transaction<'_>,
    schema: &Ident,
    table: &Ident,
    rows: &StreamRows,
) -> Result<u64, MaterializeError> {
    let sql = format!(
        "INSERT INTO {} AS t
             (_sluice_key, _sluice_deleted, _sluice_seq, _sluice_synced_at, _sluice_record)
         SELECT k, d, s, to_timestamp(ms / 1000.0), r::jsonb
         FROM unnest($1::text[], $2::bool[], $3::int8[], $4::int8[], $5::text[])
             AS u(k, d, s, ms, r)
         ON CONFLICT (_sluice_key) DO UPDATE SET
             _sluice_deleted = excluded._sluice_deleted,
             _sluice_seq = excluded._sluice_seq,
             _sluice_synced_at = excluded._sluice_synced_at,
             _sluice_record = excluded._sluice_record
         WHERE t._sluice_seq < excluded._sluice_seq",
        qualified(schema, table.as_str())
    );
    Ok(tx
        .execute(
            &sql,
            &[
                &rows.keys,
                &rows.deleted,
                &rows.seqs,
                &rows.committed_ms,
                &rows.records,
            ],
        )
        .await?)
}

/// Applies `records` and moves the cursor from `after` to `next` in one transaction.
/// Returns `None` when the cursor had moved (another materializer): nothing was applied.
/// `known` holds the tables already checked; those this batch creates join it on commit.
pub async fn apply_batch(
    client: &mut tokio_postgres::Client,
    schema: &Ident,
    integration: &str,
    (after, next): (FeedCursor, FeedCursor),
    records: Vec<StoredRecord>,
    known: &mut BTreeSet<Ident>,
) -> Result<Option<BatchOutcome>, MaterializeError> {
    let changes = records.len() as u64;
    let by_stream = group(records)?;
    let tx = client.transaction().await?;
    if !lock_cursor(&tx, schema, integration, after).await? {
        return Ok(None);
    }
    let mut rows_written = 0;
    let mut checked = Vec::new();
    for (table, rows) in &by_stream {
        if !known.contains(table) {
            ensure_stream_table(&tx, schema, table).await?;
            checked.push(table.clone());
        }
        rows_written += upsert(&tx, schema, table, rows).await?;
    }
    save_cursor(&tx, schema, integration, next).await?;
    tx.commit().await?;
    known.extend(checked);
    Ok(Some(BatchOutcome {
        changes,
        rows_written,
    }))
}

/// Reloads a snapshot in one transaction: every record upserted (guarded as always), every
/// row the snapshot lacks marked deleted (its tombstone expired from the feed), and the
/// cursor set to the snapshot's.
pub async fn apply_snapshot(
    client: &mut tokio_postgres::Client,
    schema: &Ident,
    integration: &str,
    (cursor, records): (FeedCursor, Vec<StoredRecord>),
    known: &mut BTreeSet<Ident>,
) -> Result<BatchOutcome, MaterializeError> {
    let changes = records.len() as u64;
    let by_stream = group(records)?;
    let tx = client.transaction().await?;
    tx.query_one(
        &format!(
            "SELECT feed_cursor FROM {} WHERE integration_id = $1 FOR UPDATE",
            qualified(schema, CURSORS_TABLE)
        ),
        &[&integration],
    )
    .await?;
    let mut rows_written = 0;
    let mut checked = Vec::new();
    for (table, rows) in &by_stream {
        if !known.contains(table) {
            ensure_stream_table(&tx, schema, table).await?;
            checked.push(table.clone());
        }
        rows_written += upsert(&tx, schema, table, rows).await?;
    }
    rows_written += mark_missing_deleted(&tx, schema, &by_stream).await?;
    save_cursor(&tx, schema, integration, cursor).await?;
    tx.commit().await?;
    known.extend(checked);
    Ok(BatchOutcome {
        changes,
        rows_written,
    })
}

async fn mark_missing_deleted(
    tx: &Transaction<'_>,
    schema: &Ident,
    snapshot: &BTreeMap<Ident, StreamRows>,
) -> Result<u64, MaterializeError> {
    let mut marked = 0;
    for table in stream_tables(tx, schema).await? {
        let empty = Vec::new();
        let keys = Ident::new(&table, "table")
            .ok()
            .and_then(|ident| snapshot.get(&ident))
            .map_or(&empty, |rows| &rows.keys);
        marked += tx
            .execute(
                &format!(
                    "UPDATE {} SET _sluice_deleted = true, _sluice_synced_at = now()
                     WHERE NOT _sluice_deleted AND NOT (_sluice_key = ANY($1::text[]))",
                    qualified(schema, &table)
                ),
                &[keys],
            )
            .await?;
    }
    Ok(marked)
}
