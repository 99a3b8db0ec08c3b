//! Pipelined page commits: page k commits on a blocking thread while the connector pulls
//! page k+1, strictly in order, one transaction per page.

use super::*;
use tracing::Instrument;

/// What the runner reports once a page has committed.
pub(super) struct PageDone {
    pub(super) rows: usize,
    pub(super) api_calls: u32,
    pub(super) api_usage: Option<(u64, u64)>,
}

/// One page for [`PageCommits`]: what [`Store::commit_page`] writes in one transaction.
#[derive(Debug)]
pub struct PageCommit {
    /// The stream.
    pub stream: String,
    /// The page's rows.
    pub rows: Vec<Row>,
    /// The stream's checkpoint after this page.
    pub checkpoint: Option<String>,
    /// `partial`, `complete` or `skipped`.
    pub status: CheckpointState,
    /// Provider API calls the page used.
    pub api_calls: u32,
    /// The number of the connector version that served the page.
    pub connector_version: u32,
}

/// Commits a run's pages on a blocking thread, in order, with at most one page in flight, so
/// that the caller pulls page k+1 while SQLite writes page k.
///
/// Crash safety is [`Store::commit_page`]'s (one transaction per page: rows, checkpoint, run
/// counters) plus the ordering kept here: [`PageCommits::submit`] first waits for the page in
/// flight, so pages commit strictly in submission order and a failed commit is returned before
/// any later page is written (the caller stops the run). The caller may pull page k+1 from
/// page k's checkpoint before page k is durable: a crash then leaves page k-1's or page k's
/// checkpoint in the store, and the next run resumes from it, pulling again whatever did not
/// commit. Nothing is lost, nothing is applied twice.
///
/// What the connector reads back from the store during a pull (the `stored-keys` import) must
/// include every page the run returned before: [`PageCommits::keys_after_commits`] wraps the
/// integration's [`KeySource`] so that each read first waits for the page in flight.
///
/// `T` is what the caller wants back when a page has committed (counts for its progress).
/// Dropping `PageCommits` with a page in flight lets that commit finish on its own.
pub struct PageCommits<T> {
    store: Arc<Store>,
    integration: String,
    run_id: String,
    in_flight: Option<(T, tokio::task::JoinHandle<Result<Duration, StoreError>>)>,
    pending: Arc<Pending>,
    committing: Duration,
    waited: Duration,
}

/// Whether a page commit is under way, for readers on other threads.
#[derive(Default)]
pub(super) struct Pending {
    busy: std::sync::Mutex<bool>,
    done: std::sync::Condvar,
}

impl Pending {
    fn set(&self, busy: bool) {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner()) = busy;
        if !busy {
            self.done.notify_all();
        }
    }

    /// Blocks until no commit is under way.
    fn wait_idle(&self) {
        let busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        drop(
            self.done
                .wait_while(busy, |busy| *busy)
                .unwrap_or_else(|e| e.into_inner()),
        );
    }
}

/// Marks a commit under way until dropped.
pub(super) struct Busy(Arc<Pending>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// A [`KeySource`] that answers only once the pages submitted so far have committed.
pub(super) struct KeysAfterCommits {
    source: Arc<dyn KeySource>,
    pending: Arc<Pending>,
}

impl KeySource for KeysAfterCommits {
    fn live_keys_after(
        &self,
        stream: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, String> {
        // Blocks the calling thread for at most the rest of one page commit, which runs on
        // the blocking pool and needs nothing from this thread.
        self.pending.wait_idle();
        self.source.live_keys_after(stream, after, limit)
    }
}

impl<T> PageCommits<T> {
    /// Commits pages of run `run_id` of `integration` into `store`.
    pub fn new(store: Arc<Store>, integration: &str, run_id: &str) -> Self {
        Self {
            store,
            integration: integration.to_string(),
            run_id: run_id.to_string(),
            in_flight: None,
            pending: Arc::default(),
            committing: Duration::ZERO,
            waited: Duration::ZERO,
        }
    }

    /// Waits for the page in flight to commit, then starts committing `page`. Returns the tag
    /// of the page that just committed, if any, or its commit's error (then `page` is not
    /// committed).
    pub async fn submit(&mut self, page: PageCommit, tag: T) -> Result<Option<T>, AppError> {
        let previous = self.wait().await?;
        let (store, id, run_id, pending) = (
            self.store.clone(),
            self.integration.clone(),
            self.run_id.clone(),
            self.pending.clone(),
        );
        pending.set(true);
        // Cleared when the commit ends, whichever way (even if the task never runs).
        let busy = Busy(pending);
        // SQLite work blocks: keep it off the async workers that drive the connector.
        let task = tokio::task::spawn_blocking(move || {
            let _busy = busy;
            let _timed = tracing::debug_span!("commit_page").entered();
            let started = Instant::now();
            store.commit_page_served_by(
                &id,
                &page.stream,
                &run_id,
                &page.rows,
                page.checkpoint.as_deref(),
                page.status,
                page.api_calls,
                page.connector_version,
            )?;
            Ok(started.elapsed())
        });
        self.in_flight = Some((tag, task));
        Ok(previous)
    }

    /// Waits for the page in flight, if any, to commit, and returns its tag.
    pub async fn wait(&mut self) -> Result<Option<T>, AppError> {
        let Some((tag, task)) = self.in_flight.take() else {
            return Ok(None);
        };
        let started = Instant::now();
        let result = task.instrument(tracing::debug_span!("commit_wait")).await;
        self.waited += started.elapsed();
        self.committing += result
            .map_err(|e| AppError::Internal(format!("the page commit task failed: {e}")))??;
        Ok(Some(tag))
    }

    /// `source`, answering only once the pages submitted so far have committed (see
    /// [`PageCommits`]).
    pub fn keys_after_commits(&self, source: Arc<dyn KeySource>) -> Arc<dyn KeySource> {
        Arc::new(KeysAfterCommits {
            source,
            pending: self.pending.clone(),
        })
    }

    /// Time spent in page commits, and the part of it the caller waited for (the rest
    /// overlapped with its pulls).
    pub fn timings(&self) -> (Duration, Duration) {
        (self.committing, self.waited)
    }
}
