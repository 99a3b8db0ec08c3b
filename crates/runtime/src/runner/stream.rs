//! One stream of a run, page by page: each page pulled from the checkpoint the page before it
//! returned, refused or submitted for commit in order, and the stream's outcome kept.

use super::*;

/// What a stream does after a page.
enum Step {
    /// Pull the stream's next page.
    NextPage,
    /// The stream is done (complete, skipped, failed or stopped).
    StreamDone,
}

/// One stream being pulled within a run.
pub(super) struct StreamPull<'r> {
    run: &'r Run,
    serving: Serving,
    /// This stream's pages, committed in order; other streams commit their own.
    commits: PageCommits<PageDone>,
    outcome: StreamOutcome,
    /// The checkpoint the next page starts from.
    checkpoint: Option<String>,
    /// Partial pages in a row without progress.
    idle_pages: u32,
    /// Whether a page was pulled yet.
    pulled: bool,
}

impl<'r> StreamPull<'r> {
    /// A pull of `stream` from its committed checkpoint, served by the run's opening version.
    pub(super) fn new(run: &'r Run, stream: &str) -> Result<Self, AppError> {
        let commits = PageCommits::new(run.app.store.clone(), &run.id, &run.run_id);
        let mut serving = run.opened.clone();
        serving.ctx.stored_keys = serving
            .ctx
            .stored_keys
            .take()
            .map(|keys| commits.keys_after_commits(keys));
        Ok(Self {
            checkpoint: run.app.store.checkpoint(&run.id, stream)?,
            run,
            serving,
            commits,
            outcome: StreamOutcome::not_run(stream),
            idle_pages: 0,
            pulled: false,
        })
    }

    /// Pulls the stream page by page; its last page is committed before it is reported done.
    pub(super) async fn pull(mut self) -> Result<StreamOutcome, AppError> {
        while let Step::NextPage = self.page().await? {}
        if let Some(last) = self.commits.wait().await? {
            self.committed(last);
        }
        self.run.add_commit_time(self.commits.timings());
        self.run.progress(Progress::StreamDone {
            outcome: self.outcome.clone(),
        });
        Ok(self.outcome)
    }

    /// A committed page: counted and reported only once its transaction is durable.
    fn committed(&mut self, page: PageDone) {
        let outcome = &mut self.outcome;
        outcome.records += page.rows as u64;
        outcome.pages += 1;
        outcome.api_calls += u64::from(page.api_calls);
        self.run.progress(Progress::Page {
            stream: outcome.stream.clone(),
            rows: page.rows,
            stream_total: outcome.records,
            api_usage: page.api_usage,
        });
    }

    /// Fails the stream with `detail`, and the run with it.
    fn fail(&mut self, detail: String) {
        let error = format!("{}: {detail}", self.outcome.stream);
        self.outcome.status = StreamResult::Failed;
        self.outcome.detail = Some(detail);
        self.run.end(RunStatus::Failed, Some(error), None);
    }

    /// Fails the stream and the run on a run bound.
    fn cross(&mut self, bound: RunBound) {
        let mut error = None;
        cross(&mut self.outcome, bound, &mut error);
        self.run.end(RunStatus::Failed, error, None);
    }

    /// Stops the stream when the run is stopped (by its caller or by another stream) or past
    /// its deadline, and lets a version published since the last page serve the next one.
    async fn before_page(&mut self) -> Result<Step, AppError> {
        if self.run.stopped() {
            self.outcome.status = StreamResult::Interrupted;
            self.run.end(RunStatus::Interrupted, None, None);
            return Ok(Step::StreamDone);
        }
        if !self.run.goes_on() {
            // Another stream stopped the run; this one resumes from its checkpoint next time.
            if self.pulled {
                self.outcome.status = StreamResult::Interrupted;
                self.outcome.detail =
                    Some("stopped with the run, which another stream ended".into());
            }
            return Ok(Step::StreamDone);
        }
        let deadline = self.run.app.config.runs.deadline;
        if self.run.started.elapsed() >= deadline {
            self.cross(RunBound::Deadline(deadline));
            return Ok(Step::StreamDone);
        }
        let run = self.run;
        // A version published since the last page, here or by another process, serves
        // this one, under the policy its own `configure` gives.
        match swapped_connector(&run.app, &run.id, &run.run_id, &self.serving.connector).await {
            Ok(Some(mut next)) => {
                next.ctx.stored_keys = next
                    .ctx
                    .stored_keys
                    .take()
                    .map(|keys| self.commits.keys_after_commits(keys));
                tracing::info!(integration = %run.id, run = %run.run_id, stream = %self.outcome.stream, from = %self.serving.connector.label, to = %next.connector.label, "a new connector version serves the next page");
                *run.label.lock().unwrap_or_else(|e| e.into_inner()) = next.connector.label.clone();
                self.serving = next;
                Ok(Step::NextPage)
            }
            Ok(None) => Ok(Step::NextPage),
            Err(e) => {
                tracing::warn!(integration = %run.id, run = %run.run_id, stream = %self.outcome.stream, error = %e, "the new connector version cannot serve this run");
                self.fail(e.to_string());
                Ok(Step::StreamDone)
            }
        }
    }

    /// Calls the connector for the page `request` asks for, holding one of the host's call
    /// slots meanwhile, so that parallel streams of all runs together stay within the engine's
    /// concurrent calls.
    async fn call(
        &self,
        request: &PullRequest,
    ) -> Result<Result<Page, Failure>, crate::engine::EngineError> {
        let app = &self.run.app;
        let _slot = app.call_slots.acquire().await;
        let Serving {
            connector,
            session,
            ctx,
        } = &self.serving;
        app.engine.pull(connector, ctx, session, request).await
    }

    /// Pulls one page from the stream's checkpoint, submits it for commit and says whether
    /// the stream goes on.
    async fn page(&mut self) -> Result<Step, AppError> {
        if let Step::StreamDone = self.before_page().await? {
            return Ok(Step::StreamDone);
        }
        let run = self.run;
        let stream = self.outcome.stream.clone();
        let request = PullRequest {
            stream: stream.clone(),
            checkpoint: self.checkpoint.clone(),
            max_records: run.page_records,
        };
        self.pulled = true;
        let page = match self.call(&request).await {
            Ok(Ok(page)) => page,
            Ok(Err(failure)) => {
                tracing::warn!(integration = %run.id, run = %run.run_id, stream, kind = kind_label(failure.kind), message = %failure.message, "stream failed");
                let bounds = &run.app.config.runs;
                let (status, retry_after_s) =
                    stream_failed(&run.app, &run.id, &failure, bounds, &mut self.outcome)?;
                let error = format!(
                    "{stream}: {}: {}",
                    kind_label(failure.kind),
                    failure.message
                );
                run.end(status, Some(error), retry_after_s);
                return Ok(Step::StreamDone);
            }
            Err(e) => {
                tracing::warn!(integration = %run.id, run = %run.run_id, stream, error = %e, "stream failed in the engine");
                self.fail(e.to_string());
                return Ok(Step::StreamDone);
            }
        };
        if let Some(bound) = refused_page(&page.rows, run.page_records) {
            self.cross(bound);
            return Ok(Step::StreamDone);
        }
        let (stream_status, detail) = match &page.status {
            StreamStatus::Partial => (CheckpointState::Partial, None),
            StreamStatus::Complete => (CheckpointState::Complete, None),
            StreamStatus::Skipped(why) => (CheckpointState::Skipped, Some(why.clone())),
        };
        // A skipped stream's checkpoint does not advance (the contract says so): keep ours.
        let advanced =
            stream_status != CheckpointState::Skipped && page.checkpoint != self.checkpoint;
        let progressed = !page.rows.is_empty() || advanced;
        if advanced {
            self.checkpoint = page.checkpoint;
        }
        let done = PageDone {
            rows: page.rows.len(),
            api_calls: page.api_calls,
            api_usage: page.api_usage.map(|u| (u.used, u.limit)),
        };
        let commit = PageCommit {
            stream,
            rows: page.rows,
            checkpoint: self.checkpoint.clone(),
            status: stream_status,
            api_calls: page.api_calls,
            connector_version: self.serving.connector.version,
        };
        if let Some(previous) = self.commits.submit(commit, done).await? {
            self.committed(previous);
        }
        self.after_page(page.status, progressed, detail).await
    }

    /// Ends the stream on its last page; after a partial page with nothing new, waits on the
    /// provider (bounded), so a connector that is preparing data is not polled hot.
    async fn after_page(
        &mut self,
        status: StreamStatus,
        progressed: bool,
        detail: Option<String>,
    ) -> Result<Step, AppError> {
        match status {
            StreamStatus::Partial if !progressed => {
                self.idle_pages += 1;
                let max_idle = self.run.app.config.runs.max_idle_pages;
                if self.idle_pages >= max_idle {
                    self.cross(RunBound::Idle(self.idle_pages));
                    return Ok(Step::StreamDone);
                }
                let wait = IDLE_WAIT.ceiling(self.idle_pages - 1);
                tracing::debug!(integration = %self.run.id, run = %self.run.run_id, stream = %self.outcome.stream, wait_ms = wait.as_millis() as u64, "connector is waiting on the provider");
                wait_or_stop(wait, self.run.opts.stop.clone(), self.run.halt.subscribe()).await;
                Ok(Step::NextPage)
            }
            StreamStatus::Partial => {
                self.idle_pages = 0;
                Ok(Step::NextPage)
            }
            StreamStatus::Complete => {
                self.outcome.status = StreamResult::Complete;
                Ok(Step::StreamDone)
            }
            StreamStatus::Skipped(_) => {
                self.outcome.status = StreamResult::Skipped;
                self.outcome.detail = detail;
                Ok(Step::StreamDone)
            }
        }
    }
}
