//! Pulling every stream to its end, page by page, as the host's runner does (one fresh
//! instance per page, the page's rows applied before the next request), while noting what
//! the page-level checks need: pages over `max-records`, keys that do not match their key
//! fields, and skipped pages that moved their checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_engine::wit::types::{Operation, Page, PullRequest, Row, StreamInfo, StreamStatus};

use crate::harness::Harness;
use crate::store::{Records, SharedRecords};

/// Pages one stream may take before the run gives up on it.
const MAX_PAGES: usize = 20_000;
/// Pages in a row without rows or a new checkpoint before the run gives up on a stream.
const MAX_IDLE_PAGES: u32 = 120;
/// Findings of one kind kept for messages; the rest are only counted.
const KEEP: usize = 5;

/// One page of a stream, as the run saw it.
#[derive(Debug, Clone)]
pub struct Step {
    /// The checkpoint after the page.
    pub checkpoint: Option<String>,
    /// Whether more pages followed.
    pub partial: bool,
    /// The stream's records after the page (kept only when asked for).
    pub snapshot: Option<Records>,
}

/// One stream pulled to its end, or to its failure.
#[derive(Debug, Clone)]
pub struct StreamRun {
    /// The pages, in order.
    pub steps: Vec<Step>,
    /// The stream's records at the end.
    pub records: Records,
    /// Why the stream did not finish, if it did not.
    pub failure: Option<String>,
}

/// Every stream pulled at one `max-records`.
#[derive(Debug, Clone)]
pub struct Run {
    /// The cap of every request.
    pub max_records: u32,
    /// Each stream's result, by name.
    pub streams: BTreeMap<String, StreamRun>,
}

impl Run {
    /// The first stream failure, naming the stream and the cap.
    pub fn failure(&self) -> Option<String> {
        self.streams.iter().find_map(|(name, run)| {
            run.failure.as_ref().map(|f| {
                format!(
                    "stream {name} failed at max-records {}: {f}",
                    self.max_records
                )
            })
        })
    }
}

/// What the page-level checks saw across runs.
#[derive(Debug, Default)]
pub struct Findings {
    /// Pages with more rows than asked for.
    pub over_max: Vec<String>,
    /// How many pages were over.
    pub over_max_count: usize,
    /// Rows whose key does not match their key fields.
    pub bad_keys: Vec<String>,
    /// How many rows' keys did not match.
    pub bad_key_count: usize,
    /// Upsert rows whose keys were checked.
    pub keys_checked: usize,
    /// Pages that skipped their stream.
    pub skipped_pages: usize,
    /// Skipped pages that moved their checkpoint.
    pub moved_on_skip: Vec<String>,
    /// Pages seen.
    pub pages: usize,
}

impl Findings {
    fn note(list: &mut Vec<String>, count: &mut usize, message: String) {
        *count += 1;
        if list.len() < KEEP {
            list.push(message);
        }
    }

    /// Notes what `page`, answered to `request` of `stream`, breaks.
    fn observe(&mut self, stream: &StreamInfo, request: &PullRequest, page: &Page) {
        self.pages += 1;
        if page.rows.len() > request.max_records as usize {
            let message = format!(
                "stream {}: a page of {} rows at max-records {}",
                stream.name,
                page.rows.len(),
                request.max_records
            );
            Self::note(&mut self.over_max, &mut self.over_max_count, message);
        }
        for row in page
            .rows
            .iter()
            .filter(|r| matches!(r.op, Operation::Upsert))
        {
            self.keys_checked += 1;
            if let Err(problem) = key_matches(row, &stream.key_fields) {
                let message = format!("stream {}: {problem}", stream.name);
                Self::note(&mut self.bad_keys, &mut self.bad_key_count, message);
            }
        }
        if let StreamStatus::Skipped(reason) = &page.status {
            self.skipped_pages += 1;
            if page.checkpoint != request.checkpoint && self.moved_on_skip.len() < KEEP {
                self.moved_on_skip.push(format!(
                    "stream {} was skipped ({reason}) but its checkpoint moved from {:?} to {:?}",
                    stream.name, request.checkpoint, page.checkpoint
                ));
            }
        }
    }
}

/// Whether a row's key is its key fields' values joined by `/` (strings as they are, other
/// JSON values as JSON text), or what differs.
pub fn key_matches(row: &Row, key_fields: &[String]) -> Result<(), String> {
    let record: serde_json::Value = serde_json::from_slice(&row.json)
        .map_err(|e| format!("row {:?} is not JSON: {e}", row.key))?;
    let mut parts = Vec::with_capacity(key_fields.len());
    for field in key_fields {
        match record.get(field) {
            Some(serde_json::Value::String(text)) => parts.push(text.clone()),
            Some(serde_json::Value::Null) | None => {
                return Err(format!("row {:?} has no key field {field}", row.key));
            }
            Some(other) => parts.push(other.to_string()),
        }
    }
    let expected = parts.join("/");
    if expected == row.key {
        Ok(())
    } else {
        Err(format!(
            "row key {:?} is not its key fields {} joined by / ({expected:?})",
            row.key,
            key_fields.join(", ")
        ))
    }
}

impl Harness {
    /// Pulls every configured stream from the beginning at `max_records`.
    pub async fn run(
        &self,
        max_records: u32,
        keep_snapshots: bool,
        findings: &mut Findings,
    ) -> Run {
        let mut streams = BTreeMap::new();
        for stream in &self.configured.streams {
            let run = self
                .pull_stream(
                    stream,
                    None,
                    Records::new(),
                    max_records,
                    keep_snapshots,
                    findings,
                )
                .await;
            streams.insert(stream.name.clone(), run);
        }
        Run {
            max_records,
            streams,
        }
    }

    /// Pulls `stream` from `checkpoint`, over `records`, until it completes, is skipped or
    /// fails.
    pub async fn pull_stream(
        &self,
        stream: &StreamInfo,
        mut checkpoint: Option<String>,
        records: Records,
        max_records: u32,
        keep_snapshots: bool,
        findings: &mut Findings,
    ) -> StreamRun {
        let shared = SharedRecords::new(records);
        let mut ctx = self.ctx.clone();
        ctx.stored_keys = Some(Arc::new(shared.clone()));
        let mut steps = Vec::new();
        let mut idle = 0u32;
        let failure = loop {
            if steps.len() >= MAX_PAGES {
                break Some(format!("no end after {MAX_PAGES} pages"));
            }
            let request = PullRequest {
                stream: stream.name.clone(),
                checkpoint: checkpoint.clone(),
                max_records,
            };
            let page = match self
                .engine
                .pull(&self.connector, &ctx, &self.session, &request)
                .await
            {
                Ok(Ok(page)) => page,
                Ok(Err(failure)) => {
                    break Some(format!("{:?}: {}", failure.kind, failure.message));
                }
                Err(error) => break Some(error.to_string()),
            };
            findings.observe(stream, &request, &page);
            let skipped = matches!(page.status, StreamStatus::Skipped(_));
            if !skipped {
                shared.apply(&page.rows);
            }
            let partial = matches!(page.status, StreamStatus::Partial);
            let progressed = !page.rows.is_empty() || page.checkpoint != checkpoint;
            if !skipped {
                checkpoint = page.checkpoint.clone();
            }
            steps.push(Step {
                checkpoint: checkpoint.clone(),
                partial,
                snapshot: keep_snapshots.then(|| shared.snapshot()),
            });
            if !partial {
                break None;
            }
            if progressed {
                idle = 0;
            } else {
                idle += 1;
                if idle >= MAX_IDLE_PAGES {
                    break Some(format!("{MAX_IDLE_PAGES} pages in a row without progress"));
                }
                tokio::time::sleep(backoff(idle)).await;
            }
        };
        StreamRun {
            steps,
            records: shared.snapshot(),
            failure,
        }
    }
}

/// The wait before asking again after `idle` pages without progress: 0.2 s doubling to 5 s.
fn backoff(idle: u32) -> Duration {
    let ms = 200u64.saturating_mul(1 << idle.min(5));
    Duration::from_millis(ms.min(5_000))
}
