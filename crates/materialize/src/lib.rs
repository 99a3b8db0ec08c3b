//! Sluice's Postgres destination: keeps one table per stream up to date from an
//! integration's change feed.
//!
//! Threat: a destination that drifts from the store (a change applied twice, one skipped
//! across a crash, a delete lost, an older change written over a newer one) misleads every
//! reader downstream, silently; and stream names and record contents come from an untrusted
//! connector.
//! Rule: each stream's table holds one row per key: `_sluice_key` (primary key),
//! `_sluice_deleted` (soft delete), `_sluice_seq` (the feed's sequence number of the change),
//! `_sluice_synced_at` (when the store committed it) and `_sluice_record` (`jsonb`). Changes
//! are applied a feed page at a time, each page in one transaction together with the
//! consumer's cursor (`_sluice_cursors`), so each change applies exactly once across crashes
//! ([`apply`]); upserts are guarded by sequence number. Names become identifiers only through
//! [`names`]; contents only through bound parameters ([`rows`]).

pub mod apply;
pub mod connect;
pub mod error;
pub mod feed;
pub mod names;
pub mod rows;
pub mod tables;

use std::collections::BTreeSet;

pub use apply::BatchOutcome;
pub use error::MaterializeError;
pub use feed::{Feed, StoreFeed};
pub use names::Ident;
use sluice_runtime::engine::roots::ExtraRoots;
use sluice_runtime::store::FeedCursor;

/// The schema tables go to unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "public";

/// Changes per batch (one feed page, one transaction) unless told otherwise.
pub const DEFAULT_BATCH: usize = 1000;

/// How a materializer runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The destination schema (created if missing).
    pub schema: String,
    /// Changes per batch.
    pub batch: usize,
    /// On a cursor older than the feed's pruned tombstones, reload a snapshot instead of
    /// failing with [`MaterializeError::ResyncRequired`].
    pub resync: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.into(),
            batch: DEFAULT_BATCH,
            resync: false,
        }
    }
}

/// What a catch-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Batches committed.
    pub batches: u64,
    /// Changes read and applied.
    pub changes: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Whether a snapshot was reloaded.
    pub resynced: bool,
    /// The destination's cursor afterwards.
    pub cursor: FeedCursor,
}

/// A connected destination for one integration's feed.
pub struct Materializer {
    client: tokio_postgres::Client,
    schema: Ident,
    integration: String,
    options: Options,
    known_tables: BTreeSet<Ident>,
}

impl Materializer {
    /// Connects to the database at `url` (trusting `roots` for `sslmode=verify-full`
    /// besides the web PKI) and prepares `options.schema` for `integration`.
    pub async fn connect(
        url: &str,
        roots: &ExtraRoots,
        integration: &str,
        options: Options,
    ) -> Result<Self, MaterializeError> {
        let schema = Ident::new(&options.schema, "schema")?;
        let destination = connect::destination(url, roots)?;
        let mut client = connect::connect(&destination).await?;
        tables::prepare_schema(&mut client, &schema, integration).await?;
        Ok(Self {
            client,
            schema,
            integration: integration.to_string(),
            options: Options {
                batch: options.batch.max(1),
                ..options
            },
            known_tables: BTreeSet::new(),
        })
    }

    /// The cursor the destination holds.
    pub async fn cursor(&self) -> Result<FeedCursor, MaterializeError> {
        apply::read_cursor(&self.client, &self.schema, &self.integration).await
    }

    /// Applies the feed up to its head, a batch at a time.
    pub async fn catch_up(&mut self, feed: &impl Feed) -> Result<Progress, MaterializeError> {
        let mut progress = Progress::default();
        loop {
            let after = self.cursor().await?;
            progress.cursor = after;
            let page = match feed.changes_after(after, self.options.batch) {
                Ok(page) => page,
                Err(e) => match MaterializeError::from(e) {
                    MaterializeError::ResyncRequired { .. } if self.options.resync => {
                        self.resync(feed, &mut progress).await?;
                        continue;
                    }
                    other => return Err(other),
                },
            };
            if page.changes.is_empty() && page.next == after {
                return Ok(progress);
            }
            let more = page.more;
            let records = page.changes.into_iter().map(|c| c.record).collect();
            let span = (after, page.next);
            let applied = apply::apply_batch(
                &mut self.client,
                &self.schema,
                &self.integration,
                span,
                records,
                &mut self.known_tables,
            )
            .await?;
            // None: another materializer moved the cursor; read it again and go on from there.
            if let Some(outcome) = applied {
                progress.add(outcome);
                progress.cursor = page.next;
                tracing::debug!(
                    cursor = page.next.0,
                    changes = outcome.changes,
                    "batch applied"
                );
            }
            if !more && applied.is_some() {
                return Ok(progress);
            }
        }
    }

    async fn resync(
        &mut self,
        feed: &impl Feed,
        progress: &mut Progress,
    ) -> Result<(), MaterializeError> {
        let snapshot = feed.snapshot()?;
        tracing::info!(cursor = snapshot.0.0, "reloading a snapshot");
        let outcome = apply::apply_snapshot(
            &mut self.client,
            &self.schema,
            &self.integration,
            snapshot,
            &mut self.known_tables,
        )
        .await?;
        progress.add(outcome);
        progress.resynced = true;
        Ok(())
    }
}

impl Progress {
    fn add(&mut self, outcome: BatchOutcome) {
        self.batches += 1;
        self.changes += outcome.changes;
        self.rows_written += outcome.rows_written;
    }
}
