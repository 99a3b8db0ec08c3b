//! The progress of an integration's pull: while it runs, each stream's pages and records so
//! far and where it is, as the runner reports them to this process's run board; once it
//! ended, the counts the store recorded for it. The detail page shows it and `progress.js`
//! refreshes it from `GET /integrations/{id}/progress` until the pull ends.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::list::failure;
use super::page::render;
use crate::admin::AdminState;
use crate::app::AppError;
use crate::runner::{LiveRun, LiveState};
use crate::store::{RunRecord, RunState};

/// One stream's line.
pub(crate) struct StreamLine {
    stream: String,
    state: String,
    class: &'static str,
    pages: u64,
    records: u64,
}

/// The progress part of the detail page.
#[derive(Template)]
#[template(path = "progress.html")]
pub(crate) struct ProgressPart {
    running: bool,
    summary: String,
    streams: Vec<StreamLine>,
}

impl ProgressPart {
    /// The latest pull of integration `id`.
    pub(crate) fn of(s: &AdminState, id: &str) -> Result<Self, AppError> {
        if let Some(live) = s.app.run_board().get(id) {
            return Ok(Self::running(&live));
        }
        let latest = s.app.store().runs(id, 1)?;
        Ok(match latest.first() {
            None => Self {
                running: false,
                summary: "No pull yet.".into(),
                streams: Vec::new(),
            },
            Some(run) if run.status == RunState::Running => Self {
                running: true,
                summary: "A pull started by another process is running; its counts show here \
                          when it ends."
                    .into(),
                streams: Vec::new(),
            },
            Some(run) => Self::ended(run),
        })
    }

    fn running(live: &LiveRun) -> Self {
        let streams: Vec<StreamLine> = live
            .streams
            .iter()
            .map(|s| {
                let (state, class) = match s.state {
                    LiveState::Waiting => ("waiting".to_string(), "warn"),
                    LiveState::Pulling => ("pulling".to_string(), "warn"),
                    LiveState::Ended(r) => (r.as_str().to_string(), ended_class(r.as_str())),
                };
                StreamLine {
                    stream: s.stream.clone(),
                    state,
                    class,
                    pages: u64::from(s.pages),
                    records: s.records,
                }
            })
            .collect();
        let done = live
            .streams
            .iter()
            .filter(|s| matches!(s.state, LiveState::Ended(_)))
            .count();
        let (pages, records) = totals(&streams);
        Self {
            running: true,
            summary: format!(
                "Pull running: {pages} pages and {records} records so far; {done} of {} \
                 streams done.",
                streams.len()
            ),
            streams,
        }
    }

    fn ended(run: &RunRecord) -> Self {
        let streams: Vec<StreamLine> = run
            .streams
            .as_array()
            .map(|list| list.iter().filter_map(stream_line).collect())
            .unwrap_or_default();
        let (pages, records) = totals(&streams);
        Self {
            running: false,
            summary: format!(
                "Last pull {}: {records} records in {pages} pages.",
                run.status.as_str()
            ),
            streams,
        }
    }
}

/// A stream's final counts, from the run's recorded outcome.
fn stream_line(outcome: &serde_json::Value) -> Option<StreamLine> {
    let state = outcome["status"].as_str()?.to_string();
    Some(StreamLine {
        stream: outcome["stream"].as_str()?.to_string(),
        class: ended_class(&state),
        state,
        pages: outcome["pages"].as_u64().unwrap_or(0),
        records: outcome["records"].as_u64().unwrap_or(0),
    })
}

fn ended_class(state: &str) -> &'static str {
    match state {
        "complete" | "skipped" => "ok",
        "failed" => "bad",
        _ => "warn",
    }
}

fn totals(streams: &[StreamLine]) -> (u64, u64) {
    streams
        .iter()
        .fold((0, 0), |(p, r), s| (p + s.pages, r + s.records))
}

/// `GET /integrations/{id}/progress`: the progress part alone, for `progress.js`.
pub(crate) async fn part(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    match ProgressPart::of(&s, &id) {
        Ok(part) => render(&part),
        Err(e) => failure(&e),
    }
}
