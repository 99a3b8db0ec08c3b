//! The bounds of a run: what a connector may not make a run do, and what happens when it tries.

use super::*;

/// Streams of one integration pulled at once unless the host says otherwise.
pub const DEFAULT_PARALLEL_STREAMS: usize = 4;

/// Bounds of every run; see the module doc.
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Longest a run may take; a stream still going then fails, keeping what it committed
    /// (the next run resumes from its checkpoint).
    pub deadline: Duration,
    /// Pages in a row without progress (no rows, unchanged checkpoint) after which a stream
    /// fails.
    pub max_idle_pages: u32,
    /// Longest rate-limit pause a connector may ask for; a longer one is capped.
    pub max_retry_after: Duration,
    /// Streams of one integration pulled at once (at least 1; 1 pulls them one after
    /// another). The engine's concurrent calls bound it too.
    pub parallel_streams: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(12 * 3600),
            // With waits doubling up to 30 s, about an hour of a provider preparing data.
            max_idle_pages: 120,
            max_retry_after: Duration::from_secs(24 * 3600),
            parallel_streams: DEFAULT_PARALLEL_STREAMS,
        }
    }
}

/// A run bound a stream crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunBound {
    /// A row the store cannot apply, such as a merge that is not a JSON object.
    MalformedRow {
        /// The row's key.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The page held more rows than the run asked for.
    OversizedPage {
        /// Rows returned.
        rows: usize,
        /// Rows asked for.
        max_records: u32,
    },
    /// The run reached [`RunLimits::deadline`].
    Deadline(Duration),
    /// [`RunLimits::max_idle_pages`] pages in a row made no progress.
    Idle(u32),
}

impl std::fmt::Display for RunBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MalformedRow { key, detail } => write!(
                f,
                "the connector returned row `{key}` that cannot be applied: {detail}; the page \
                 was refused and nothing of it was committed"
            ),
            Self::OversizedPage { rows, max_records } => write!(
                f,
                "the connector returned {rows} rows for a page of at most {max_records}; the \
                 page was refused and nothing of it was committed"
            ),
            Self::Deadline(limit) => write!(
                f,
                "the run reached its deadline of {} s; what was committed is kept and the next \
                 run resumes from the last checkpoint",
                limit.as_secs()
            ),
            Self::Idle(pages) => write!(
                f,
                "the connector answered {pages} pages in a row without rows or a new checkpoint"
            ),
        }
    }
}

/// Why a page must be refused before anything of it commits: more rows than asked for, or a
/// row the store cannot apply.
pub(super) fn refused_page(rows: &[Row], max_records: u32) -> Option<RunBound> {
    if rows.len() > max_records as usize {
        return Some(RunBound::OversizedPage {
            rows: rows.len(),
            max_records,
        });
    }
    malformed_row(rows)
}

/// The first row of a page that the store could not apply: a merge must be a JSON object.
pub(super) fn malformed_row(rows: &[Row]) -> Option<RunBound> {
    rows.iter()
        .filter(|r| matches!(r.op, Operation::Merge))
        .find_map(|r| {
            crate::store::merge::fields(&r.json)
                .err()
                .map(|e| RunBound::MalformedRow {
                    key: r.key.clone(),
                    detail: e.to_string(),
                })
        })
}

/// Ends `outcome` as failed on `bound`, and records it as the run's error.
pub(super) fn cross(outcome: &mut StreamOutcome, bound: RunBound, run_error: &mut Option<String>) {
    tracing::warn!(stream = %outcome.stream, %bound, "stream stopped by a run bound");
    *run_error = Some(format!("{}: {bound}", outcome.stream));
    outcome.status = StreamResult::Failed;
    outcome.detail = Some(bound.to_string());
}

/// The pause to take for a connector that asked for `asked` seconds: at most
/// [`RunLimits::max_retry_after`]; a capped request is logged and noted on `outcome`.
pub(super) fn capped_retry_after(
    asked: u32,
    bounds: &RunLimits,
    outcome: &mut StreamOutcome,
) -> u32 {
    let cap = u32::try_from(bounds.max_retry_after.as_secs()).unwrap_or(u32::MAX);
    if asked <= cap {
        return asked;
    }
    let note = format!("the connector asked to wait {asked} s before retrying; capped to {cap} s");
    tracing::warn!(stream = %outcome.stream, asked, cap, "rate-limit pause capped");
    outcome.detail = Some(note);
    cap
}
