//! The checkpoint of one stream and the window bookkeeping of the incremental algorithm.
//!
//! The windows are the SDK's boundary-safe ones (`sluice_connector_sdk::window`): the durable
//! lower bound `lo` only moves when a whole window `(from, hi]` has been read, so it always
//! sits on a tie-group boundary (every record with cursor ≤ `hi` that was visible has been
//! delivered). Inside a window the resume position is the last delivered `(cursor, Id)`; the
//! next query asks for `(C > c) OR (C = c AND Id > id)`, so a tie group of any size can span
//! many pages and restarts without loss or re-delivery.

use serde::{Deserialize, Serialize};

use crate::describe::Describe;

/// The last delivered record of the current query.
pub use sluice_connector_sdk::window::Position as Pos;
pub use sluice_connector_sdk::window::Watermark;

/// The checkpoint format version.
pub const VERSION: u32 = 1;

/// What part of a window is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pass {
    /// The main query (`queryAll` with IsDeleted in updated-time mode).
    Main,
    /// Knowledge: archived versions in the window, turned into deletes of their key.
    Archived,
    /// Knowledge: published versions.
    Online,
    /// `/sobjects/X/deleted` for the window.
    Deleted,
    /// Stored keys checked against Salesforce by Id: hard deletes the delete log forgot.
    Reconcile,
    /// Formula fields of every record read again, as merge rows.
    Formulas,
}

/// A window being read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Exclusive lower bound (last `lo` minus the overlap); None = from the start date.
    pub from: Option<i64>,
    /// Inclusive upper bound from server time.
    pub hi: i64,
    /// Passes still to do, current first.
    pub passes: Vec<Pass>,
    /// Everything in `(from, done_to]` is read for the current pass (after a shrink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_to: Option<i64>,
    /// Upper bound of the current sub-window after a QUERY_TIMEOUT shrink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<i64>,
    /// Resume position inside the current query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<Pos>,
    /// The query locator of the next page; a hint, the position is the truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// When `next` was received, by the connector's clock (UTC millis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<i64>,
    /// Delete records of `/deleted` already delivered.
    #[serde(default)]
    pub del_done: usize,
    /// The last key the reconcile pass has checked, or the last Id the formula pass has read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_to: Option<String>,
    /// The Bulk API 2.0 job reading the main pass, when the window is a large backfill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkJob>,
    /// The window was opened again on a fresh describe after `INVALID_FIELD`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redescribed: bool,
}

/// A Bulk API 2.0 query job and how far its results have been read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkJob {
    /// The job id.
    pub id: String,
    /// Whether the job reached `JobComplete`.
    #[serde(default)]
    pub ready: bool,
    /// The `Sforce-Locator` of the next results chunk; None = the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locator: Option<String>,
}

impl Window {
    /// The lower bound of the current query, exclusive.
    pub fn lower(&self) -> Option<i64> {
        self.done_to.or(self.from)
    }

    /// The upper bound of the current query, inclusive.
    pub fn upper(&self) -> i64 {
        self.upper.unwrap_or(self.hi)
    }

    /// Marks the current query finished; returns true when the pass is finished too.
    pub fn finish_query(&mut self) -> bool {
        self.pos = None;
        self.next = None;
        self.next_at = None;
        match self.upper {
            Some(u) if u < self.hi => {
                let size = (u - self.lower().unwrap_or(u)).max(1000);
                self.done_to = Some(u);
                // Same size again; a sliver left at the end is folded into this step.
                let next = u + size;
                self.upper = Some(if next + size / 4 >= self.hi {
                    self.hi
                } else {
                    next
                });
                false
            }
            _ => {
                self.done_to = None;
                self.upper = None;
                self.del_done = 0;
                self.checked_to = None;
                if !self.passes.is_empty() {
                    self.passes.remove(0);
                }
                true
            }
        }
    }

    /// Halves the current query's range after a QUERY_TIMEOUT; false when it cannot shrink.
    pub fn shrink(&mut self, floor: i64) -> bool {
        let lower = self
            .pos
            .as_ref()
            .map(|p| p.c)
            .or(self.lower())
            .unwrap_or(floor);
        let upper = self.upper();
        if upper - lower <= 1000 {
            return false;
        }
        if self.lower().is_none() {
            // An open window (from the start date) gets an explicit lower bound, so that the
            // following steps keep the shrunk size instead of falling back to one second.
            self.done_to = Some(floor - 1);
        }
        self.upper = Some(lower + (upper - lower) / 2);
        self.next = None;
        self.next_at = None;
        true
    }
}

/// A stream's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub v: u32,
    /// The durable bound `lo` (every record with cursor ≤ `lo` has been delivered) and the
    /// `(cursor → Ids)` delivered near it, to drop overlap re-reads; stored as the
    /// checkpoint's own `lo` and `seen` fields.
    #[serde(flatten)]
    pub mark: Watermark,
    /// Cached describe of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<Describe>,
    /// The window in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub win: Option<Window>,
    /// Server time (UTC millis) of the last Id reconciliation, or of the first window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled: Option<i64>,
    /// Server time (UTC millis) of the last formula refresh, or of the first window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formulas_refreshed: Option<i64>,
    /// A smaller query URL budget than the default, after Salesforce answered 414 or 431.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_budget: Option<u32>,
    /// Most fields per query, after Salesforce answered `QUERY_TOO_COMPLICATED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fields: Option<u32>,
    /// Most formula fields per query of the formula refresh, after `QUERY_TOO_COMPLICATED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_formulas: Option<u32>,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Self {
            v: VERSION,
            mark: Watermark::default(),
            desc: None,
            win: None,
            reconciled: None,
            formulas_refreshed: None,
            url_budget: None,
            max_fields: None,
            max_formulas: None,
        }
    }
}

impl Checkpoint {
    /// Parses a checkpoint; None means start from the beginning.
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        let Some(s) = s else {
            return Ok(Self::default());
        };
        let cp: Self =
            serde_json::from_str(s).map_err(|e| format!("unreadable checkpoint: {e}"))?;
        if cp.v != VERSION {
            return Err(format!(
                "checkpoint version {} is not supported by this connector (version {VERSION})",
                cp.v
            ));
        }
        Ok(cp)
    }

    /// Serialises the checkpoint.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether `(c, id)` was already delivered.
    pub fn was_seen(&self, c: i64, id: &str) -> bool {
        self.mark.was_seen(c, id)
    }

    /// Remembers a delivered pair.
    pub fn remember(&mut self, c: i64, id: &str) {
        self.mark.remember(c, id);
    }

    /// Completes the window: `lo := hi`, keep only pairs still inside the next overlap.
    pub fn complete_window(&mut self, hi: i64, overlap_ms: i64) {
        self.mark.complete(hi, overlap_ms);
        self.win = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_versions() {
        let mut cp = Checkpoint {
            mark: Watermark {
                lo: Some(5),
                ..Watermark::default()
            },
            ..Default::default()
        };
        cp.remember(5, "a");
        let s = cp.to_json();
        assert_eq!(s, r#"{"v":1,"lo":5,"seen":{"5":["a"]}}"#);
        assert_eq!(Checkpoint::parse(Some(&s)).unwrap(), cp);
        assert!(Checkpoint::parse(Some(r#"{"v":2}"#)).is_err());
        assert_eq!(Checkpoint::parse(None).unwrap(), Checkpoint::default());
    }

    #[test]
    fn completing_prunes_seen_to_overlap() {
        let mut cp = Checkpoint::default();
        for c in [100, 500, 700, 1000] {
            cp.remember(c, "x");
        }
        cp.complete_window(1000, 500);
        assert_eq!(cp.mark.lo, Some(1000));
        assert_eq!(
            cp.mark.seen.keys().copied().collect::<Vec<_>>(),
            vec![700, 1000]
        );
    }

    #[test]
    fn shrink_halves_and_stops_at_a_second() {
        let mut w = Window {
            from: Some(0),
            hi: 8000,
            passes: vec![Pass::Main],
            done_to: None,
            upper: None,
            pos: None,
            next: None,
            next_at: None,
            del_done: 0,
            checked_to: None,
            bulk: None,
            redescribed: false,
        };
        assert!(w.shrink(0));
        assert_eq!(w.upper(), 4000);
        assert!(!w.finish_query());
        assert_eq!((w.done_to, w.upper), (Some(4000), Some(8000)));
        assert!(w.finish_query());
        assert!(w.passes.is_empty());
        let mut w2 = Window {
            from: Some(0),
            hi: 1000,
            ..w
        };
        assert!(!w2.shrink(0));
    }

    /// An open window (no lower bound: from the start of history) keeps the shrunk step
    /// size; it used to fall back to one-second steps over decades of empty history.
    #[test]
    fn shrink_of_an_open_window_keeps_its_step() {
        let hi = 1_764_000_000_000;
        let mut w = Window {
            from: None,
            hi,
            passes: vec![Pass::Main],
            done_to: None,
            upper: None,
            pos: None,
            next: None,
            next_at: None,
            del_done: 0,
            checked_to: None,
            bulk: None,
            redescribed: false,
        };
        assert!(w.shrink(0));
        assert_eq!(w.upper(), hi / 2);
        assert!(!w.finish_query());
        assert_eq!(w.upper(), hi, "the next step covers the rest");
        assert!(w.finish_query());
    }
}
