//! The native pull: the connector's logic (`Salesforce::pull`) with a native [`Host`]
//! over reqwest, committed through the runner's own `PageCommits` pipeline.

use super::*;
use std::cell::Cell;
use std::rc::Rc;

/// The connector's surroundings, natively: the SDK's [`NativeHost`] (reqwest, with the Bearer
/// token added the way the host's outbound client adds it), the integration's stored keys, and
/// what the bench reports besides: the first query URL and the time spent in HTTP.
pub(crate) struct BenchHost {
    http: NativeHost,
    first_query: Option<String>,
    /// Time the pull spent blocked on HTTP (shared with the requests it started ahead).
    http_time: Rc<Cell<Duration>>,
    /// The host's stored keys of the integration, as the engine would answer them.
    keys: Arc<dyn sluice::engine::KeySource>,
    /// The stream being pulled.
    stream: String,
}

impl BenchHost {
    fn note_first_query(&mut self, request: &Request) {
        if self.first_query.is_none() && request.url.contains("/query") {
            self.first_query = Some(request.url.clone());
        }
    }
}

impl Host for BenchHost {
    fn send(&mut self, request: Request) -> Result<Response, TransportError> {
        self.note_first_query(&request);
        let started = Instant::now();
        let result = self.http.send(request);
        self.http_time.set(self.http_time.get() + started.elapsed());
        result
    }

    fn start(&mut self, request: Request) -> InFlight {
        self.note_first_query(&request);
        let in_flight = self.http.start(request);
        let http_time = self.http_time.clone();
        InFlight::pending(move || {
            let started = Instant::now();
            let result = in_flight.wait();
            http_time.set(http_time.get() + started.elapsed());
            result
        })
    }

    // The comparison measures pulling, not logging: lines are dropped.
    fn log(&mut self, _level: pm::Level, _message: &str, _fields: &[(&str, &str)]) {}

    fn stored_keys(&mut self, after: Option<&str>, limit: u32) -> Vec<String> {
        // A failed read ends the bench rather than pass as "nothing stored".
        self.keys
            .live_keys_after(&self.stream, after, limit as usize)
            .expect("reading the stored keys")
    }

    fn now_ms(&mut self) -> Option<i64> {
        self.http.now_ms()
    }
}

/// The native pull: the same per-page steps as `sluice::runner::run_pull` (committed
/// checkpoint, then pull from the previous page's checkpoint, each page committed in one
/// transaction by the runner's `PageCommits` while the next one is pulled), on a blocking
/// thread.
pub(crate) fn native_pull(
    app: &Arc<App>,
    id: &str,
    handle: tokio::runtime::Handle,
) -> anyhow::Result<(u64, f64, Option<String>)> {
    let integration = app.store().integration(id)?;
    let tokens = app.store().tokens(id)?.context("tokens")?;
    let wit = sluice::app::to_wit_settings(&integration.settings);
    let settings = pm::Settings {
        capability: wit.capability,
        values: wit.values,
    };
    let host = pm::HostContext {
        allow_insecure_loopback: true,
        contract_version: sluice::engine::wit::VERSION.into(),
    };
    let configured =
        Salesforce::configure(&settings, &host).map_err(|e| anyhow::anyhow!("configure: {e:?}"))?;
    let wit_grant = sluice::grant::wit_grant(&tokens);
    let session = pm::Session {
        settings,
        host,
        grant: pm::Grant {
            instance_url: wit_grant.instance_url,
            fields: wit_grant.fields,
            issued_at_ms: wit_grant.issued_at_ms,
            scopes: tokens.scopes.clone(),
        },
    };
    let mut env = BenchHost {
        http: NativeHost::new(handle.clone()).with_bearer(tokens.access.expose()),
        first_query: None,
        http_time: Rc::default(),
        keys: app.store().keys_of(id),
        stream: String::new(),
    };
    let store = app.store();
    let start = Instant::now();
    store.close_orphan_runs(id)?;
    store.clear_checkpoints(id)?;
    let run_id = store.start_run(id, "bench-native", true, "native")?;
    let mut records = 0u64;
    let mut pull_time = Duration::ZERO;
    // The runner's page pipeline: page k commits on a blocking thread while page k+1 is
    // pulled from page k's checkpoint.
    let mut commits = PageCommits::new(store.clone(), id, &run_id);
    env.keys = commits.keys_after_commits(env.keys.clone());
    for stream in configured.streams.iter().map(|s| s.name.clone()) {
        env.stream = stream.clone();
        let mut checkpoint = store.checkpoint(id, &stream)?;
        loop {
            let request = pm::PullRequest {
                stream: stream.clone(),
                checkpoint: checkpoint.clone(),
                max_records: DEFAULT_PAGE_RECORDS,
            };
            let t_pull = Instant::now();
            let page = Salesforce::pull(&mut env, &session, &request)
                .map_err(|f| anyhow::anyhow!("native pull of {stream}: {f:?}"))?;
            pull_time += t_pull.elapsed();
            let status = match &page.status {
                pm::StreamStatus::Partial => CheckpointState::Partial,
                pm::StreamStatus::Complete => CheckpointState::Complete,
                pm::StreamStatus::Skipped(_) => CheckpointState::Skipped,
            };
            if status != CheckpointState::Skipped {
                checkpoint = page.checkpoint;
            }
            // The host's row type (what the component returns); a move, no copy of the JSON.
            let rows: Vec<wt::Row> = page
                .rows
                .into_iter()
                .map(|r| wt::Row {
                    key: r.key,
                    op: match r.op {
                        pm::Operation::Upsert => wt::Operation::Upsert,
                        pm::Operation::Delete => wt::Operation::Delete,
                        pm::Operation::Merge => wt::Operation::Merge,
                    },
                    cursor: r.cursor,
                    json: r.json,
                })
                .collect();
            let n = rows.len() as u64;
            let page = PageCommit {
                stream: stream.clone(),
                rows,
                checkpoint: checkpoint.clone(),
                status,
                api_calls: page.api_calls,
                // The native connector is no registry version.
                connector_version: 0,
            };
            records += handle.block_on(commits.submit(page, n))?.unwrap_or(0);
            if status != CheckpointState::Partial {
                break;
            }
        }
        records += handle.block_on(commits.wait())?.unwrap_or(0);
    }
    store.finish_run(&run_id, RunState::Succeeded, &json!([]), None)?;
    let (commit_time, commit_waited) = commits.timings();
    eprintln!(
        "  native breakdown: connector pull (HTTP + parse) {:.1} s, HTTP wait {:.1} s, commit_page {:.1} s (waited for {:.1} s)",
        pull_time.as_secs_f64(),
        env.http_time.get().as_secs_f64(),
        commit_time.as_secs_f64(),
        commit_waited.as_secs_f64(),
    );
    Ok((records, start.elapsed().as_secs_f64(), env.first_query))
}
