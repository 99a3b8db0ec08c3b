//! The runs going on in this process, as their [`Progress`] reports them: what a page showing a
//! pull as it goes reads. An entry lives from a run's start to its end; the finished run's
//! counts are then the ones the store recorded.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Progress, StreamResult};

/// Where one stream of a running pull is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveState {
    /// The run has not reached it yet.
    Waiting,
    /// At least one of its pages is committed and it goes on.
    Pulling,
    /// It ended this way.
    Ended(StreamResult),
}

/// One stream of a running pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveStream {
    /// The stream's name.
    pub stream: String,
    /// Where it is.
    pub state: LiveState,
    /// Pages committed so far in this run.
    pub pages: u32,
    /// Records committed so far in this run.
    pub records: u64,
}

/// A running pull's streams, in the run's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRun {
    /// The run's id.
    pub run_id: String,
    /// Its streams.
    pub streams: Vec<LiveStream>,
}

/// The running pulls of this process, by integration.
#[derive(Debug, Default)]
pub struct RunBoard {
    runs: Mutex<HashMap<String, LiveRun>>,
}

impl RunBoard {
    /// The pull of `integration` running now, if any.
    pub fn get(&self, integration: &str) -> Option<LiveRun> {
        self.lock().get(integration).cloned()
    }

    /// Applies one step of the run of `integration`.
    pub(crate) fn record(&self, integration: &str, step: &Progress) {
        let mut runs = self.lock();
        match step {
            Progress::Started { run_id, streams } => {
                let streams = streams.iter().map(|s| LiveStream::waiting(s)).collect();
                let run_id = run_id.clone();
                runs.insert(integration.to_string(), LiveRun { run_id, streams });
            }
            Progress::Page {
                stream,
                stream_total,
                ..
            } => {
                if let Some(s) = runs.get_mut(integration).and_then(|r| r.stream(stream)) {
                    s.state = LiveState::Pulling;
                    s.pages += 1;
                    s.records = *stream_total;
                }
            }
            Progress::StreamDone { outcome } => {
                if let Some(s) = runs
                    .get_mut(integration)
                    .and_then(|r| r.stream(&outcome.stream))
                {
                    s.state = LiveState::Ended(outcome.status);
                    s.pages = outcome.pages;
                    s.records = outcome.records;
                }
            }
        }
    }

    /// Takes the run `run_id` of `integration` off the board: it ended.
    pub(crate) fn end(&self, integration: &str, run_id: &str) {
        let mut runs = self.lock();
        if runs.get(integration).is_some_and(|r| r.run_id == run_id) {
            runs.remove(integration);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveRun>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LiveRun {
    fn stream(&mut self, name: &str) -> Option<&mut LiveStream> {
        self.streams.iter_mut().find(|s| s.stream == name)
    }
}

impl LiveStream {
    fn waiting(stream: &str) -> Self {
        Self {
            stream: stream.to_string(),
            state: LiveState::Waiting,
            pages: 0,
            records: 0,
        }
    }
}

/// Takes a run off its board when dropped, however the run ended.
pub(crate) struct OnBoard<'a> {
    pub(crate) board: &'a RunBoard,
    pub(crate) integration: String,
    pub(crate) run_id: String,
}

impl Drop for OnBoard<'_> {
    fn drop(&mut self) {
        self.board.end(&self.integration, &self.run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::StreamOutcome;

    #[test]
    fn a_run_is_followed_from_start_to_end() {
        let board = RunBoard::default();
        let started = Progress::Started {
            run_id: "r1".into(),
            streams: vec!["a".into(), "b".into()],
        };
        board.record("i", &started);
        let page = |rows, total| Progress::Page {
            stream: "a".into(),
            rows,
            stream_total: total,
            api_usage: None,
        };
        board.record("i", &page(5, 5));
        board.record("i", &page(3, 8));
        let live = board.get("i").unwrap();
        assert_eq!(live.streams[0].state, LiveState::Pulling);
        assert_eq!((live.streams[0].pages, live.streams[0].records), (2, 8));
        assert_eq!(live.streams[1].state, LiveState::Waiting);
        let mut outcome = StreamOutcome::not_run("a");
        outcome.status = StreamResult::Complete;
        outcome.pages = 2;
        outcome.records = 8;
        board.record("i", &Progress::StreamDone { outcome });
        let live = board.get("i").unwrap();
        assert_eq!(
            live.streams[0].state,
            LiveState::Ended(StreamResult::Complete)
        );
        // Another run's end leaves this one alone.
        board.end("i", "r0");
        assert!(board.get("i").is_some());
        board.end("i", "r1");
        assert!(board.get("i").is_none());
    }
}
