//! One pull run: every configured stream, page by page, each page committed with its
//! checkpoint in one transaction, and the run recorded (start, end, connector version, per-stream
//! status, records, API calls).
//!
//! Streams pull in parallel: up to [`RunLimits::parallel_streams`] at once (a host setting;
//! 1 pulls them one after another), never more than the engine's concurrent calls, and every
//! page's call holds one of the host's call slots, so that all runs' streams together stay
//! within the engine's instance pool. Each stream commits its own pages, in order, one
//! transaction per page; the store serialises the transactions of all streams. A stream that
//! fails on its own does not stop the others; a stop request, a rate limit (the connector's
//! API budget guard answers one on every stream once the budget is spent) or a lost
//! authorization stops them all after their page in flight, and the run's status is the
//! heaviest end (module `standing`). Token refreshes stay single-flight across streams (the
//! token service serialises them per integration).
//!
//! Before each page a stream takes the connector's active version, after syncing with the
//! store: a version published mid-run, in this process or another one, serves the next page
//! under its own policy, and every committed page records the version that served it.
//!
//! A stop request (shutdown) is honoured between pages: the pages in flight finish and
//! commit, then the run ends as `interrupted` and the next run resumes from the checkpoints.
//!
//! A run is bounded ([`RunLimits`]): a page with more rows than asked for is refused before
//! anything of it commits (millions of tiny rows would fit the byte cap and hold the write lock
//! in one huge transaction); a stream fails at the run's deadline, or after too many pages in a
//! row without progress, so a connector answering `partial` forever cannot hold the
//! integration; a rate-limit pause the connector asks for is capped, logged and reported.
//!
//! Pages are pipelined ([`PageCommits`]): while page k commits on a blocking thread, the
//! connector already pulls page k+1, from page k's checkpoint as returned (not re-read from
//! the store). Commits stay strictly in order, one transaction per page, and a page is
//! submitted only once the page before it has committed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::{App, AppError, RunClaim};
use crate::engine::backoff::Backoff;
use crate::engine::wit::types::{
    Failure, FailureKind, Operation, Page, PullRequest, Row, Session, StreamStatus,
};
use crate::engine::{CallContext, KeySource, LoadedConnector};
use crate::store::{CheckpointState, IntegrationState, RunState, Store, StoreError};

mod board;
mod bounds;
mod commits;
mod outcome;
mod standing;
mod stream;

pub use board::{LiveRun, LiveState, LiveStream, RunBoard};
#[cfg(test)]
use bounds::malformed_row;
pub use bounds::{DEFAULT_PARALLEL_STREAMS, RunBound, RunLimits};
use bounds::{capped_retry_after, cross, refused_page};
use commits::PageDone;
pub use commits::{PageCommit, PageCommits};
pub use outcome::{FailureInfo, RunStatus, RunSummary, StreamOutcome, StreamResult, kind_label};
use standing::Standing;
use stream::StreamPull;

/// The default cap on rows per page asked of the connector (`max-records`). It bounds one
/// commit's transaction; connectors keep to their providers' smaller batches below it (REST
/// pages of 2,000), and a bulk results chunk of tens of thousands of rows fits in one page.
pub const DEFAULT_PAGE_RECORDS: u32 = 100_000;
/// The waits after partial pages with no rows (the provider is preparing data): from 200 ms,
/// doubling, up to 30 s.
const IDLE_WAIT: Backoff = Backoff {
    base: Duration::from_millis(200),
    max: Duration::from_secs(30),
};

/// What a caller watches while a run goes on.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The run started and will pull these streams.
    Started {
        /// The run id.
        run_id: String,
        /// The streams, in order.
        streams: Vec<String>,
    },
    /// A page of `stream` was committed.
    Page {
        /// The stream.
        stream: String,
        /// Rows in the page.
        rows: usize,
        /// Rows of the stream so far in this run.
        stream_total: u64,
        /// API usage as last reported (used, limit).
        api_usage: Option<(u64, u64)>,
    },
    /// A stream ended.
    StreamDone {
        /// Its outcome.
        outcome: StreamOutcome,
    },
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How the run is asked for.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Forget the checkpoints first (records are kept and updated in place).
    pub full: bool,
    /// `cli`, `schedule`, `api`, `demo`.
    pub trigger: String,
    /// Rows per page asked of the connector (0: the default).
    pub page_records: u32,
    /// Called after each step.
    pub progress: Option<ProgressFn>,
    /// When it turns true, the run stops after the current page.
    pub stop: Option<watch::Receiver<bool>>,
}

/// Runs one pull of integration `id`. Refuses when a run of `id` is already going on in
/// this process.
pub async fn run_pull(app: &Arc<App>, id: &str, opts: PullOptions) -> Result<RunSummary, AppError> {
    let claim = claim(app, id)?;
    run_claimed(app, &claim, opts).await
}

/// Claims integration `id` for one run; a conflict when a run of it is already going on or
/// its pulls are paused.
pub fn claim(app: &Arc<App>, id: &str) -> Result<RunClaim, AppError> {
    // The id names a lock file: only ids that exist get that far.
    if app.store.integration(id)?.paused_at_ms.is_some() {
        return Err(AppError::Paused(id.to_string()));
    }
    app.claim_run(id)
        .ok_or_else(|| AppError::AlreadyRunning(id.to_string()))
}

/// Runs one pull of the integration `claim` holds; the caller releases the claim after.
pub async fn run_claimed(
    app: &Arc<App>,
    claim: &RunClaim,
    opts: PullOptions,
) -> Result<RunSummary, AppError> {
    let id = claim.integration().to_string();
    let (run, streams) = Run::start(app, claim, opts).await?;
    let _on_board = board::OnBoard {
        board: &app.board,
        integration: id.clone(),
        run_id: run.run_id.clone(),
    };
    let run = Arc::new(run);
    let outcomes = pull_streams(&run, &streams).await?;
    run.finish(outcomes)
}

/// Pulls `streams` on up to [`Run::lanes`] tasks at once, each taking the next stream in
/// order when its last one is done; returns the outcomes in the order of `streams`. A store
/// error in one stream stops the others after their page in flight, and is returned once
/// they have ended.
async fn pull_streams(run: &Arc<Run>, streams: &[String]) -> Result<Vec<StreamOutcome>, AppError> {
    let queue: Arc<Mutex<VecDeque<(usize, String)>>> =
        Arc::new(Mutex::new(streams.iter().cloned().enumerate().collect()));
    let mut lanes = JoinSet::new();
    for _ in 0..run.lanes(streams.len()) {
        lanes.spawn(lane(run.clone(), queue.clone()));
    }
    let mut outcomes: Vec<Option<StreamOutcome>> = vec![None; streams.len()];
    let mut first_error = None;
    while let Some(joined) = lanes.join_next().await {
        let done = joined
            .map_err(|e| AppError::Internal(format!("a stream's task failed: {e}")))
            .and_then(|done| done);
        match done {
            Ok(done) => done.into_iter().for_each(|(i, o)| outcomes[i] = Some(o)),
            Err(e) => {
                run.halt();
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(outcomes
        .into_iter()
        .zip(streams)
        .map(|(o, stream)| o.unwrap_or_else(|| StreamOutcome::not_run(stream)))
        .collect())
}

/// One lane of a run: pulls streams from `queue` one after another until it is empty.
async fn lane(
    run: Arc<Run>,
    queue: Arc<Mutex<VecDeque<(usize, String)>>>,
) -> Result<Vec<(usize, StreamOutcome)>, AppError> {
    let mut done = Vec::new();
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let Some((i, stream)) = next else {
            return Ok(done);
        };
        let outcome = if run.goes_on() {
            StreamPull::new(&run, &stream)?.pull().await?
        } else {
            StreamOutcome::not_run(&stream)
        };
        done.push((i, outcome));
    }
}

/// The connector version serving a stream, with its session and call context.
#[derive(Clone)]
struct Serving {
    connector: Arc<LoadedConnector>,
    session: Session,
    ctx: CallContext,
}

/// One run in progress: what its streams share.
struct Run {
    app: Arc<App>,
    id: String,
    run_id: String,
    opts: PullOptions,
    started: Instant,
    page_records: u32,
    /// The version the run opened with; each stream starts from a copy, with the store's keys
    /// wrapped by its own page commits.
    opened: Serving,
    standing: Mutex<Standing>,
    /// The label of the newest version that served a page.
    label: Mutex<String>,
    /// Time spent in page commits, and the part the streams waited for.
    commit_time: Mutex<(Duration, Duration)>,
    /// Turns true when the streams must stop after their page in flight.
    halt: watch::Sender<bool>,
}

impl Run {
    /// Opens the session, records the run's start and returns the streams to pull.
    async fn start(
        app: &Arc<App>,
        claim: &RunClaim,
        opts: PullOptions,
    ) -> Result<(Run, Vec<String>), AppError> {
        let id = claim.integration();
        let started = Instant::now();
        let (connector, session, mut ctx, configured) = app.session(id, None).await?;
        let trigger = if opts.trigger.is_empty() {
            "cli"
        } else {
            &opts.trigger
        };
        let run_id = claim.start_run(trigger, opts.full, &connector.label)?;
        ctx.run = Some(run_id.clone());
        tracing::info!(integration = id, run = %run_id, connector = %connector.label, full = opts.full, "run started");
        let streams: Vec<String> = configured.streams.iter().map(|s| s.name.clone()).collect();
        let page_records = if opts.page_records == 0 {
            DEFAULT_PAGE_RECORDS
        } else {
            opts.page_records
        };
        let run = Run {
            app: app.clone(),
            id: id.to_string(),
            label: Mutex::new(connector.label.clone()),
            run_id,
            opts,
            started,
            page_records,
            opened: Serving {
                connector,
                session,
                ctx,
            },
            standing: Mutex::default(),
            commit_time: Mutex::default(),
            halt: watch::Sender::new(false),
        };
        run.progress(Progress::Started {
            run_id: run.run_id.clone(),
            streams: streams.clone(),
        });
        Ok((run, streams))
    }

    /// How many of `streams` streams pull at once: the host's setting, at most the engine's
    /// concurrent calls, at least one.
    fn lanes(&self, streams: usize) -> usize {
        let calls = self.app.config.limits.max_concurrent_calls as usize;
        self.app
            .config
            .runs
            .parallel_streams
            .min(calls)
            .min(streams)
            .max(1)
    }

    fn progress(&self, p: Progress) {
        self.app.board.record(&self.id, &p);
        if let Some(f) = &self.opts.progress {
            f(&p);
        }
    }

    fn standing(&self) -> std::sync::MutexGuard<'_, Standing> {
        self.standing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether streams still pull (see [`Standing::goes_on`]), and nothing halted them.
    fn goes_on(&self) -> bool {
        self.standing().goes_on() && !*self.halt.borrow()
    }

    /// Stops every stream after its page in flight.
    fn halt(&self) {
        self.halt.send_replace(true);
    }

    /// Records how a stream ended for the run; an end that stops the run halts the others.
    fn end(&self, status: RunStatus, error: Option<String>, retry_after_s: Option<u32>) {
        let mut standing = self.standing();
        standing.record(status, error, retry_after_s);
        if !standing.goes_on() {
            self.halt();
        }
    }

    /// Whether the caller asked the run to stop.
    fn stopped(&self) -> bool {
        self.opts.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Adds one stream's commit timings to the run's.
    fn add_commit_time(&self, (committing, waited): (Duration, Duration)) {
        let mut total = self.commit_time.lock().unwrap_or_else(|e| e.into_inner());
        total.0 += committing;
        total.1 += waited;
    }

    /// Records the run's end and sums it up.
    fn finish(&self, outcomes: Vec<StreamOutcome>) -> Result<RunSummary, AppError> {
        let (id, run_id) = (self.id.as_str(), &self.run_id);
        let (commit_time, commit_waited) =
            *self.commit_time.lock().unwrap_or_else(|e| e.into_inner());
        tracing::debug!(integration = id, run = %run_id, commit_ms = commit_time.as_millis() as u64, waited_ms = commit_waited.as_millis() as u64, "page commits");
        let records = outcomes.iter().map(|o| o.records).sum();
        let api_calls = outcomes.iter().map(|o| o.api_calls).sum();
        let streams_json = serde_json::to_value(&outcomes).unwrap_or_default();
        let (status, error, retry_after_s) = {
            let standing = self.standing();
            (
                standing.status(),
                standing.error().map(String::from),
                standing.retry_after_s(),
            )
        };
        self.app
            .store
            .finish_run(run_id, status.into(), &streams_json, error.as_deref())?;
        tracing::info!(integration = id, run = %run_id, status = status.as_str(), records, api_calls, "run finished");
        Ok(RunSummary {
            run_id: self.run_id.clone(),
            integration_id: id.to_string(),
            connector_version: self.label.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            status,
            streams: outcomes,
            records,
            api_calls,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            retry_after_s,
        })
    }
}

/// The active version of `current`'s connector, with a session and call context for run `run_id`
/// of integration `id`, when it is no longer `current`. Syncs with the store first, so that a
/// version another process published counts too.
async fn swapped_connector(
    app: &Arc<App>,
    id: &str,
    run_id: &str,
    current: &Arc<LoadedConnector>,
) -> Result<Option<Serving>, AppError> {
    if let Err(e) = app.registry.sync().await {
        // The versions loaded here keep serving.
        tracing::warn!(integration = id, run = %run_id, error = %e, "cannot read the connector versions from the store");
    }
    if Arc::ptr_eq(&app.connector(&current.name)?, current) {
        return Ok(None);
    }
    let (connector, session, ctx, _) = app.session(id, Some(run_id)).await?;
    Ok(Some(Serving {
        connector,
        session,
        ctx,
    }))
}

/// Records a connector's failure on the stream's outcome and marks the integration when a
/// person must connect it again; returns the run's status and the pause before a retry.
fn stream_failed(
    app: &App,
    id: &str,
    failure: &Failure,
    bounds: &RunLimits,
    outcome: &mut StreamOutcome,
) -> Result<(RunStatus, Option<u32>), AppError> {
    outcome.status = StreamResult::Failed;
    outcome.failure = Some(FailureInfo {
        kind: kind_label(failure.kind).into(),
        message: failure.message.clone(),
        retry_after_s: failure.retry_after_s,
    });
    Ok(match failure.kind {
        FailureKind::ReauthorizationRequired => {
            mark_needs_reauthorization(&app.store, id, &failure.message)?;
            (RunStatus::NeedsReauthorization, None)
        }
        FailureKind::RateLimited => {
            let pause = failure
                .retry_after_s
                .map(|asked| capped_retry_after(asked, bounds, outcome));
            if let Some(info) = &mut outcome.failure {
                info.retry_after_s = pause;
            }
            (RunStatus::RateLimited, pause)
        }
        _ => (RunStatus::Failed, None),
    })
}

/// Marks the integration as needing a new login. When the host's own token refresh already
/// did (the provider refused the refresh token), its reason is the provider's (for example
/// `inactive_user`) and more useful than the connector's "the session was refused": keep it.
fn mark_needs_reauthorization(store: &Store, id: &str, message: &str) -> Result<(), StoreError> {
    let current = store.integration(id)?;
    let marked =
        current.state == IntegrationState::NeedsReauthorization && current.state_reason.is_some();
    if marked {
        return Ok(());
    }
    store.set_state(id, IntegrationState::NeedsReauthorization, Some(message))
}

/// Sleeps for `wait`, or less when a stop is requested or the run is halted meanwhile.
async fn wait_or_stop(
    wait: Duration,
    stop: Option<watch::Receiver<bool>>,
    mut halt: watch::Receiver<bool>,
) {
    let stopped = async move {
        match stop {
            Some(mut stop) => drop(stop.wait_for(|s| *s).await),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = stopped => {}
        _ = halt.wait_for(|h| *h) => {}
    }
}

/// How long to wait before retrying after a rate limit, when the connector gave no hint.
pub const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(15 * 60);

#[cfg(test)]
mod tests;
