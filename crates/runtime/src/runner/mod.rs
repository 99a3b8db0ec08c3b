//! One pull run: every configured stream, page by page, each page committed with its
//! checkpoint in one transaction, and the run recorded (start, end, connector version, per-stream
//! status, records, API calls).
//!
//! Before each page the runner takes the connector's active version, after syncing with the
//! store: a version published mid-run, in this process or another one, serves the next page
//! under its own policy, and every committed page records the version that served it.
//!
//! A stop request (shutdown) is honoured between pages: the page in flight finishes and
//! commits, then the run ends as `interrupted` and the next run resumes from the checkpoint.
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

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::app::{App, AppError, RunClaim};
use crate::engine::backoff::Backoff;
use crate::engine::wit::types::{
    Failure, FailureKind, Operation, PullRequest, Row, Session, StreamStatus,
};
use crate::engine::{CallContext, KeySource, LoadedConnector};
use crate::store::{CheckpointState, IntegrationState, RunState, Store, StoreError};

mod bounds;
mod commits;
mod outcome;

#[cfg(test)]
use bounds::malformed_row;
pub use bounds::{RunBound, RunLimits};
use bounds::{capped_retry_after, cross, refused_page};
use commits::PageDone;
pub use commits::{PageCommit, PageCommits};
pub use outcome::{FailureInfo, RunStatus, RunSummary, StreamOutcome, StreamResult, kind_label};

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
    run_claimed(app, claim, opts).await
}

/// Claims integration `id` for one run; a conflict when a run of it is already going on.
pub fn claim(app: &Arc<App>, id: &str) -> Result<RunClaim, AppError> {
    // The id names a lock file: only ids that exist get that far.
    app.store.integration(id)?;
    app.claim_run(id)
        .ok_or_else(|| AppError::AlreadyRunning(id.to_string()))
}

/// Runs one pull of the integration `claim` holds; the claim is released when it ends.
pub async fn run_claimed(
    app: &Arc<App>,
    claim: RunClaim,
    opts: PullOptions,
) -> Result<RunSummary, AppError> {
    let id = claim.integration().to_string();
    let (mut run, streams) = Run::start(app, &id, &opts).await?;
    let mut outcomes = Vec::new();
    for stream in &streams {
        let outcome = if run.goes_on() {
            run.pull_stream(stream).await?
        } else {
            StreamOutcome::not_run(stream)
        };
        outcomes.push(outcome);
    }
    let summary = run.finish(outcomes);
    drop(claim);
    summary
}

/// The connector version serving a run, with its session and call context.
struct Serving {
    connector: Arc<LoadedConnector>,
    session: Session,
    ctx: CallContext,
}

/// What a run does after a page.
enum Step {
    /// Pull the stream's next page.
    NextPage,
    /// The stream is done (complete, skipped, failed or stopped).
    StreamDone,
}

/// One run in progress: what its streams share.
struct Run<'a> {
    app: &'a Arc<App>,
    id: &'a str,
    run_id: String,
    opts: &'a PullOptions,
    started: Instant,
    page_records: u32,
    serving: Serving,
    commits: PageCommits<PageDone>,
    status: RunStatus,
    retry_after_s: Option<u32>,
    run_error: Option<String>,
}

impl<'a> Run<'a> {
    /// Opens the session, records the run's start and returns the streams to pull.
    async fn start(
        app: &'a Arc<App>,
        id: &'a str,
        opts: &'a PullOptions,
    ) -> Result<(Run<'a>, Vec<String>), AppError> {
        let started = Instant::now();
        let (connector, session, mut ctx, configured) = app.session(id, None).await?;
        app.store.close_orphan_runs(id)?;
        if opts.full {
            app.store.clear_checkpoints(id)?;
        }
        let trigger = if opts.trigger.is_empty() {
            "cli"
        } else {
            &opts.trigger
        };
        let run_id = app
            .store
            .start_run(id, trigger, opts.full, &connector.label)?;
        ctx.run = Some(run_id.clone());
        tracing::info!(integration = id, run = %run_id, connector = %connector.label, full = opts.full, "run started");
        let streams: Vec<String> = configured.streams.iter().map(|s| s.name.clone()).collect();
        let commits = PageCommits::new(app.store.clone(), id, &run_id);
        ctx.stored_keys = ctx
            .stored_keys
            .take()
            .map(|keys| commits.keys_after_commits(keys));
        let run = Run {
            app,
            id,
            run_id,
            opts,
            started,
            page_records: if opts.page_records == 0 {
                DEFAULT_PAGE_RECORDS
            } else {
                opts.page_records
            },
            serving: Serving {
                connector,
                session,
                ctx,
            },
            commits,
            status: RunStatus::Succeeded,
            retry_after_s: None,
            run_error: None,
        };
        run.progress(Progress::Started {
            run_id: run.run_id.clone(),
            streams: streams.clone(),
        });
        Ok((run, streams))
    }

    fn progress(&self, p: Progress) {
        if let Some(f) = &self.opts.progress {
            f(&p);
        }
    }

    /// Whether later streams still run: a failed stream does not stop the others, a stop,
    /// a rate limit or a lost authorization does.
    fn goes_on(&self) -> bool {
        matches!(self.status, RunStatus::Succeeded | RunStatus::Failed)
    }

    fn stopped(&self) -> bool {
        self.opts.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// A committed page: counted and reported only once its transaction is durable.
    fn committed(&self, outcome: &mut StreamOutcome, page: PageDone) {
        outcome.records += page.rows as u64;
        outcome.pages += 1;
        outcome.api_calls += u64::from(page.api_calls);
        self.progress(Progress::Page {
            stream: outcome.stream.clone(),
            rows: page.rows,
            stream_total: outcome.records,
            api_usage: page.api_usage,
        });
    }

    /// Fails the stream with `detail`, and the run with it.
    fn fail(&mut self, outcome: &mut StreamOutcome, detail: String) {
        self.run_error = Some(format!("{}: {detail}", outcome.stream));
        outcome.status = StreamResult::Failed;
        outcome.detail = Some(detail);
        self.status = RunStatus::Failed;
    }

    /// Fails the stream and the run on a run bound.
    fn cross(&mut self, outcome: &mut StreamOutcome, bound: RunBound) {
        cross(outcome, bound, &mut self.run_error);
        self.status = RunStatus::Failed;
    }

    /// Pulls one stream page by page; its last page is committed before it is reported done.
    async fn pull_stream(&mut self, stream: &str) -> Result<StreamOutcome, AppError> {
        let mut outcome = StreamOutcome::not_run(stream);
        let mut idle_pages = 0u32;
        // The first page starts from the committed checkpoint; each later one from the
        // checkpoint the page before it returned, which commits while this one is pulled.
        let mut checkpoint = self.app.store.checkpoint(self.id, stream)?;
        while let Step::NextPage = self
            .page(&mut outcome, &mut checkpoint, &mut idle_pages)
            .await?
        {}
        if let Some(last) = self.commits.wait().await? {
            self.committed(&mut outcome, last);
        }
        self.progress(Progress::StreamDone {
            outcome: outcome.clone(),
        });
        Ok(outcome)
    }

    /// Stops the stream when the run is stopped or past its deadline, and lets a version
    /// published since the last page serve the next one.
    async fn before_page(&mut self, outcome: &mut StreamOutcome) -> Result<Step, AppError> {
        if self.stopped() {
            outcome.status = StreamResult::Interrupted;
            self.status = RunStatus::Interrupted;
            return Ok(Step::StreamDone);
        }
        let deadline = self.app.config.runs.deadline;
        if self.started.elapsed() >= deadline {
            self.cross(outcome, RunBound::Deadline(deadline));
            return Ok(Step::StreamDone);
        }
        // A version published since the last page, here or by another process, serves
        // this one, under the policy its own `configure` gives.
        match swapped_connector(self.app, self.id, &self.run_id, &self.serving.connector).await {
            Ok(Some(mut next)) => {
                next.ctx.stored_keys = next
                    .ctx
                    .stored_keys
                    .take()
                    .map(|keys| self.commits.keys_after_commits(keys));
                tracing::info!(integration = self.id, run = %self.run_id, from = %self.serving.connector.label, to = %next.connector.label, "a new connector version serves the next page");
                self.serving = next;
                Ok(Step::NextPage)
            }
            Ok(None) => Ok(Step::NextPage),
            Err(e) => {
                tracing::warn!(integration = self.id, run = %self.run_id, stream = %outcome.stream, error = %e, "the new connector version cannot serve this run");
                self.fail(outcome, e.to_string());
                Ok(Step::StreamDone)
            }
        }
    }

    /// Pulls one page of `outcome.stream` from `checkpoint`, submits it for commit and says
    /// whether the stream goes on.
    async fn page(
        &mut self,
        outcome: &mut StreamOutcome,
        checkpoint: &mut Option<String>,
        idle_pages: &mut u32,
    ) -> Result<Step, AppError> {
        if let Step::StreamDone = self.before_page(outcome).await? {
            return Ok(Step::StreamDone);
        }
        let stream = outcome.stream.clone();
        let request = PullRequest {
            stream: stream.clone(),
            checkpoint: checkpoint.clone(),
            max_records: self.page_records,
        };
        let Serving {
            connector,
            session,
            ctx,
        } = &self.serving;
        let page = match self
            .app
            .engine
            .pull(connector, ctx, session, &request)
            .await
        {
            Ok(Ok(page)) => page,
            Ok(Err(failure)) => {
                tracing::warn!(integration = self.id, run = %self.run_id, stream, kind = kind_label(failure.kind), message = %failure.message, "stream failed");
                let bounds = &self.app.config.runs;
                (self.status, self.retry_after_s) =
                    stream_failed(self.app, self.id, &failure, bounds, outcome)?;
                self.run_error = Some(format!(
                    "{stream}: {}: {}",
                    kind_label(failure.kind),
                    failure.message
                ));
                return Ok(Step::StreamDone);
            }
            Err(e) => {
                tracing::warn!(integration = self.id, run = %self.run_id, stream, error = %e, "stream failed in the engine");
                self.fail(outcome, e.to_string());
                return Ok(Step::StreamDone);
            }
        };
        if let Some(bound) = refused_page(&page.rows, self.page_records) {
            self.cross(outcome, bound);
            return Ok(Step::StreamDone);
        }
        let (stream_status, detail) = match &page.status {
            StreamStatus::Partial => (CheckpointState::Partial, None),
            StreamStatus::Complete => (CheckpointState::Complete, None),
            StreamStatus::Skipped(why) => (CheckpointState::Skipped, Some(why.clone())),
        };
        // A skipped stream's checkpoint does not advance (the contract says so): keep ours.
        let advanced = stream_status != CheckpointState::Skipped && page.checkpoint != *checkpoint;
        let progressed = !page.rows.is_empty() || advanced;
        if advanced {
            *checkpoint = page.checkpoint;
        }
        let done = PageDone {
            rows: page.rows.len(),
            api_calls: page.api_calls,
            api_usage: page.api_usage.map(|u| (u.used, u.limit)),
        };
        let commit = PageCommit {
            stream,
            rows: page.rows,
            checkpoint: checkpoint.clone(),
            status: stream_status,
            api_calls: page.api_calls,
            connector_version: self.serving.connector.version,
        };
        if let Some(previous) = self.commits.submit(commit, done).await? {
            self.committed(outcome, previous);
        }
        self.after_page(page.status, progressed, detail, idle_pages, outcome)
            .await
    }

    /// Ends the stream on its last page; after a partial page with nothing new, waits on the
    /// provider (bounded), so a connector that is preparing data is not polled hot.
    async fn after_page(
        &mut self,
        status: StreamStatus,
        progressed: bool,
        detail: Option<String>,
        idle_pages: &mut u32,
        outcome: &mut StreamOutcome,
    ) -> Result<Step, AppError> {
        match status {
            StreamStatus::Partial if !progressed => {
                *idle_pages += 1;
                let max_idle = self.app.config.runs.max_idle_pages;
                if *idle_pages >= max_idle {
                    self.cross(outcome, RunBound::Idle(*idle_pages));
                    return Ok(Step::StreamDone);
                }
                let wait = IDLE_WAIT.ceiling(*idle_pages - 1);
                tracing::debug!(integration = self.id, run = %self.run_id, stream = %outcome.stream, wait_ms = wait.as_millis() as u64, "connector is waiting on the provider");
                wait_or_stop(wait, self.opts.stop.clone()).await;
                Ok(Step::NextPage)
            }
            StreamStatus::Partial => {
                *idle_pages = 0;
                Ok(Step::NextPage)
            }
            StreamStatus::Complete => {
                outcome.status = StreamResult::Complete;
                Ok(Step::StreamDone)
            }
            StreamStatus::Skipped(_) => {
                outcome.status = StreamResult::Skipped;
                outcome.detail = detail;
                Ok(Step::StreamDone)
            }
        }
    }

    /// Records the run's end and sums it up.
    fn finish(self, outcomes: Vec<StreamOutcome>) -> Result<RunSummary, AppError> {
        let (id, run_id) = (self.id, &self.run_id);
        let (commit_time, commit_waited) = self.commits.timings();
        tracing::debug!(integration = id, run = %run_id, commit_ms = commit_time.as_millis() as u64, waited_ms = commit_waited.as_millis() as u64, "page commits");
        let records = outcomes.iter().map(|o| o.records).sum();
        let api_calls = outcomes.iter().map(|o| o.api_calls).sum();
        let streams_json = serde_json::to_value(&outcomes).unwrap_or_default();
        self.app.store.finish_run(
            run_id,
            self.status.into(),
            &streams_json,
            self.run_error.as_deref(),
        )?;
        tracing::info!(integration = id, run = %run_id, status = self.status.as_str(), records, api_calls, "run finished");
        Ok(RunSummary {
            run_id: self.run_id.clone(),
            integration_id: id.to_string(),
            connector_version: self.serving.connector.label.clone(),
            status: self.status,
            streams: outcomes,
            records,
            api_calls,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            retry_after_s: self.retry_after_s,
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

/// Sleeps for `wait`, or less when a stop is requested meanwhile.
async fn wait_or_stop(wait: Duration, stop: Option<watch::Receiver<bool>>) {
    let Some(mut stop) = stop else {
        tokio::time::sleep(wait).await;
        return;
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// How long to wait before retrying after a rate limit, when the connector gave no hint.
pub const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(15 * 60);

#[cfg(test)]
mod tests;
