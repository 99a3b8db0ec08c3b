//! The change feed: every stored change of an integration, in commit order, by sequence number.
//!
//! Threat: a consumer that follows the feed must end with exactly the store's live records. A
//! change it never sees (a number taken out of commit order, a delete pruned before it read
//! it) leaves a stale or a resurrected record downstream, silently.
//! Rule: [`Store::commit_page`] numbers each change inside the page's write transaction from
//! the integration's row in `change_feeds`, so numbers rise in commit order whatever streams
//! commit at once. The feed is compacted: a record keeps only the number of its latest change,
//! so a reader that catches up sees each key at most once. Delete tombstones are pruned after
//! a retention period; a cursor older than the newest pruned tombstone is refused
//! ([`StoreError::ResyncRequired`]), never answered with a feed that lacks the delete. Cursor
//! 0 never expires: it reads the whole compacted feed, which is a snapshot.

use super::*;

/// How long delete tombstones stay in the feed unless the operator says otherwise.
pub const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The most digits a cursor has: every number of that many fits a sequence number, so the
/// OpenAPI document can say exactly which texts are cursors.
pub const MAX_CURSOR_DIGITS: usize = 18;

/// A position in an integration's change feed: the sequence number of the last change read
/// (0: before the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct FeedCursor(pub i64);

/// Why a cursor given by a consumer cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cursor {given:?} is not a feed cursor: {why}")]
pub struct BadCursor {
    /// The text given.
    pub given: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl FeedCursor {
    /// Parses a cursor as the feed hands it out: a change's sequence number, in decimal.
    pub fn parse(text: &str) -> Result<Self, BadCursor> {
        let bad = |why| BadCursor {
            given: text.to_string(),
            why,
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("a cursor is the decimal number a previous answer gave"));
        }
        if text.len() > MAX_CURSOR_DIGITS {
            return Err(bad("a cursor has at most 18 digits"));
        }
        text.parse::<i64>()
            .map(Self)
            .map_err(|_| bad("the number is too large"))
    }
}

impl std::fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One change of the feed: the latest version of a record (or its tombstone).
#[derive(Debug, Clone)]
pub struct Change {
    /// Its sequence number: a cursor that resumes after it.
    pub seq: i64,
    /// The stored record as it stands after the change.
    pub record: StoredRecord,
    /// The run that committed it.
    pub run_id: Option<String>,
    /// When its page was committed (ms since the epoch).
    pub committed_at_ms: i64,
}

/// A page of the feed.
#[derive(Debug, Clone)]
pub struct FeedPage {
    /// The changes after the cursor, oldest first.
    pub changes: Vec<Change>,
    /// The cursor to read on from: the last change's, or the feed's head when none is left.
    pub next: FeedCursor,
    /// Whether more changes follow `next` already.
    pub more: bool,
}

/// An integration's feed counters as a reader sees them.
struct FeedHead {
    last_seq: i64,
    pruned_through: i64,
}

impl Store {
    /// The sequence number of integration `id`'s latest stored change (0 before the first):
    /// the feed cursor "now".
    pub fn latest_change_seq(&self, id: &str) -> Result<FeedCursor, StoreError> {
        let conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => {
                let client = pg.client()?;
                return Ok(FeedCursor(pg::wait(pg_feed_head(&*client, id))?.last_seq));
            }
        };
        let head = feed_head(&conn, id)?;
        Ok(FeedCursor(head.last_seq))
    }

    /// At most `limit` changes of integration `id` (optionally one stream) after `after`, in
    /// commit order. A cursor older than the newest pruned tombstone is
    /// [`StoreError::ResyncRequired`]; one past the feed's head is [`StoreError::CursorAhead`].
    pub fn changes_after(
        &self,
        id: &str,
        after: FeedCursor,
        stream: Option<&str>,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        let mut conn = match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(pg) => return pg_changes_after(pg, id, after, stream, limit),
        };
        // One read transaction: the head and the rows come from one snapshot, so "no more
        // changes up to the head" holds for the cursor handed out.
        let tx = conn.transaction()?;
        let head = feed_head(&tx, id)?;
        check_cursor(id, after, &head)?;
        let changes = {
            let mut stmt = tx.prepare_cached(
                "SELECT run_id, stream, key, version, deleted, cursor, json, seq, updated_at_ms
                 FROM records
                 WHERE integration_id = ?1 AND seq > ?2 AND (?3 IS NULL OR stream = ?3)
                 ORDER BY seq LIMIT ?4",
            )?;
            let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
            let rows = stmt.query_map(params![id, after.0, stream, fetch], |r| {
                let record = super::records::stored_record(r, 1)?;
                Ok(Change {
                    seq: record.seq,
                    committed_at_ms: record.updated_at_ms,
                    record,
                    run_id: r.get(0)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        tx.finish()?;
        Ok(feed_page(changes, after, &head, limit))
    }

    /// Removes delete tombstones last written before `before_ms`, remembering per integration
    /// the newest number pruned so that older cursors are refused. Returns how many went.
    pub fn prune_tombstones(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut conn = match &self.db {
            Db::Sqlite(db) => db.pages(),
            Db::Postgres(pg) => return pg_prune_tombstones(pg, before_ms),
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE change_feeds SET pruned_through = (
                 SELECT MAX(seq) FROM records
                 WHERE records.integration_id = change_feeds.integration_id
                   AND deleted = 1 AND updated_at_ms < ?1)
             WHERE (SELECT MAX(seq) FROM records
                    WHERE records.integration_id = change_feeds.integration_id
                      AND deleted = 1 AND updated_at_ms < ?1) > pruned_through",
            [before_ms],
        )?;
        let pruned = tx.execute(
            "DELETE FROM records WHERE deleted = 1 AND updated_at_ms < ?1",
            [before_ms],
        )?;
        tx.commit()?;
        if pruned > 0 {
            tracing::info!(pruned, "pruned delete tombstones past their retention");
        }
        Ok(pruned)
    }
}

/// The page of changes handed out from `changes`, fetched one past `limit` after `after`,
/// in the snapshot of `head`.
fn feed_page(
    mut changes: Vec<Change>,
    after: FeedCursor,
    head: &FeedHead,
    limit: usize,
) -> FeedPage {
    let more = changes.len() > limit;
    changes.truncate(limit);
    let next = match (more, changes.last()) {
        (true, Some(last)) => FeedCursor(last.seq),
        (true, None) => after,
        // Nothing is left up to the head in this snapshot, for this stream or any.
        (false, _) => FeedCursor(head.last_seq),
    };
    FeedPage {
        changes,
        next,
        more,
    }
}

/// The feed cursor of integration `id` "now", as `conn`'s transaction sees it.
pub(super) fn head_cursor(conn: &Connection, id: &str) -> Result<FeedCursor, StoreError> {
    Ok(FeedCursor(feed_head(conn, id)?.last_seq))
}

fn feed_head(conn: &Connection, id: &str) -> Result<FeedHead, StoreError> {
    let head = conn
        .prepare_cached(
            "SELECT last_seq, pruned_through FROM change_feeds WHERE integration_id = ?1",
        )?
        .query_row([id], |r| {
            Ok(FeedHead {
                last_seq: r.get(0)?,
                pruned_through: r.get(1)?,
            })
        })
        .optional()?;
    Ok(head.unwrap_or(FeedHead {
        last_seq: 0,
        pruned_through: 0,
    }))
}

fn check_cursor(id: &str, after: FeedCursor, head: &FeedHead) -> Result<(), StoreError> {
    if after.0 > head.last_seq {
        return Err(StoreError::CursorAhead {
            integration: id.to_string(),
            cursor: after.0,
            head: head.last_seq,
        });
    }
    // Cursor 0 reads everything there is, so nothing pruned can be missing from it.
    if after.0 != 0 && after.0 < head.pruned_through {
        return Err(StoreError::ResyncRequired {
            cursor: after.0,
            pruned_through: head.pruned_through,
        });
    }
    Ok(())
}

/// Numbers the changes of one page: reads the integration's latest number in the page's
/// transaction and hands out the next ones; [`SeqAllocator::store`] writes back the last.
pub(super) struct SeqAllocator {
    last: i64,
    start: i64,
}

impl SeqAllocator {
    /// The allocator of integration `id` inside the page transaction `tx`.
    pub(super) fn begin(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Self, StoreError> {
        let last = feed_head(tx, id)?.last_seq;
        Ok(Self { last, start: last })
    }

    /// The allocator of a feed whose latest number is `last`, read under the feed's row lock
    /// (see [`pg_lock_feed`]).
    pub(super) fn after(last: i64) -> Self {
        Self { last, start: last }
    }

    /// The last number handed out, when the page changed anything.
    pub(super) fn handed_out(&self) -> Option<i64> {
        (self.last != self.start).then_some(self.last)
    }

    /// The next sequence number.
    pub(super) fn next(&mut self) -> i64 {
        self.last += 1;
        self.last
    }

    /// Records the last number handed out, when the page changed anything.
    pub(super) fn store(self, tx: &rusqlite::Transaction<'_>, id: &str) -> Result<(), StoreError> {
        if self.last == self.start {
            return Ok(());
        }
        tx.prepare_cached(
            "INSERT INTO change_feeds (integration_id, last_seq) VALUES (?1, ?2)
             ON CONFLICT(integration_id) DO UPDATE SET last_seq = excluded.last_seq",
        )?
        .execute(params![id, self.last])?;
        Ok(())
    }
}

/// [`head_cursor`] on PostgreSQL.
pub(super) async fn pg_head_cursor(
    client: &impl tokio_postgres::GenericClient,
    id: &str,
) -> Result<FeedCursor, StoreError> {
    Ok(FeedCursor(pg_feed_head(client, id).await?.last_seq))
}

/// [`feed_head`] on PostgreSQL.
async fn pg_feed_head(
    client: &impl tokio_postgres::GenericClient,
    id: &str,
) -> Result<FeedHead, StoreError> {
    let row = client
        .query_opt(
            "SELECT last_seq, pruned_through FROM change_feeds WHERE integration_id = $1",
            &[&id],
        )
        .await?;
    Ok(match row {
        Some(row) => FeedHead {
            last_seq: row.try_get(0)?,
            pruned_through: row.try_get(1)?,
        },
        None => FeedHead {
            last_seq: 0,
            pruned_through: 0,
        },
    })
}

/// Takes integration `id`'s feed row for the rest of the page transaction `tx` (creating it
/// at 0 when missing) and returns its latest number. Each host numbers under this row lock,
/// so a second commit of the integration waits here until the first commits, then reads the
/// number the first one stored: numbers rise in commit order across hosts.
pub(super) async fn pg_lock_feed(
    tx: &tokio_postgres::Transaction<'_>,
    id: &str,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO change_feeds (integration_id, last_seq) VALUES ($1, 0)
         ON CONFLICT (integration_id) DO NOTHING",
        &[&id],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT last_seq FROM change_feeds WHERE integration_id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Stores the last number a page handed out, under the row lock of [`pg_lock_feed`].
pub(super) async fn pg_store_seq(
    tx: &tokio_postgres::Transaction<'_>,
    id: &str,
    seqs: &SeqAllocator,
) -> Result<(), StoreError> {
    if let Some(last) = seqs.handed_out() {
        tx.execute(
            "UPDATE change_feeds SET last_seq = $2 WHERE integration_id = $1",
            &[&id, &last],
        )
        .await?;
    }
    Ok(())
}

/// A read-only transaction seeing one snapshot for all its statements (PostgreSQL's default
/// takes a new snapshot per statement).
pub(super) async fn pg_snapshot(
    client: &mut tokio_postgres::Client,
) -> Result<tokio_postgres::Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

fn pg_changes_after(
    pg: &pg::Pg,
    id: &str,
    after: FeedCursor,
    stream: Option<&str>,
    limit: usize,
) -> Result<FeedPage, StoreError> {
    let mut client = pg.client()?;
    pg::wait(async {
        let tx = pg_snapshot(&mut client).await?;
        let head = pg_feed_head(&tx, id).await?;
        check_cursor(id, after, &head)?;
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let rows = tx
            .query(
                "SELECT run_id, stream, key, version, deleted, cursor, json, seq, updated_at_ms
                 FROM records
                 WHERE integration_id = $1 AND seq > $2 AND ($3::text IS NULL OR stream = $3)
                 ORDER BY seq LIMIT $4",
                &[&id, &after.0, &stream, &fetch],
            )
            .await?;
        tx.commit().await?;
        let changes = rows
            .iter()
            .map(|r| {
                let record = super::records::pg_stored_record(r, 1)?;
                Ok(Change {
                    seq: record.seq,
                    committed_at_ms: record.updated_at_ms,
                    record,
                    run_id: r.try_get(0)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(feed_page(changes, after, &head, limit))
    })
}

fn pg_prune_tombstones(pg: &pg::Pg, before_ms: i64) -> Result<usize, StoreError> {
    let mut client = pg.client()?;
    let pruned = pg::wait(async {
        let tx = client.transaction().await?;
        // Updating an integration's feed row takes the lock its page commits number under,
        // so no commit of it reads a tombstone that this transaction then removes.
        tx.execute(
            "UPDATE change_feeds SET pruned_through = pruned.seq
             FROM (SELECT integration_id, MAX(seq) AS seq FROM records
                   WHERE deleted AND updated_at_ms < $1 GROUP BY integration_id) AS pruned
             WHERE pruned.integration_id = change_feeds.integration_id
               AND pruned.seq > change_feeds.pruned_through",
            &[&before_ms],
        )
        .await?;
        let pruned = tx
            .execute(
                "DELETE FROM records WHERE deleted AND updated_at_ms < $1",
                &[&before_ms],
            )
            .await?;
        tx.commit().await?;
        Ok::<_, StoreError>(pruned)
    })?;
    if pruned > 0 {
        tracing::info!(pruned, "pruned delete tombstones past their retention");
    }
    Ok(pruned as usize)
}

#[cfg(test)]
mod tests;
