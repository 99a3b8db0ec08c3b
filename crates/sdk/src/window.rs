//! Boundary-safe time windows for incremental reads by a timestamp cursor.
//!
//! The danger: records that share a timestamp, or that commit after a later timestamp was
//! already read (long transactions, replication lag), are lost by a naive "cursor > last seen"
//! read, and re-delivered by a naive "cursor >= last seen" one. The rule, as the Salesforce
//! connector applies it:
//!
//! - Each window reads `(from, hi]`: `from` is the durable bound minus an overlap, `hi` is the
//!   provider's clock minus a lag (and any "covered up to" the provider reports), so records
//!   still being committed are left for the next window.
//! - Records are read ordered by `(cursor, id)`; the resume point inside a window is the last
//!   delivered `(cursor, id)` ([`Position`]), so a group of equal timestamps may span any number
//!   of pages and restarts without loss or repetition.
//! - The durable bound ([`Watermark::lo`]) moves only when a whole window is read, so it always
//!   sits on a boundary where every visible record at or before it was delivered.
//! - The overlap re-reads the end of the last window; the pairs delivered there are remembered
//!   ([`Watermark::seen`], capped) and dropped when read again. Forgetting one can only cause a
//!   duplicate upsert, never a loss.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most `(cursor, id)` pairs a [`Watermark`] remembers for overlap dedupe; beyond it the oldest
/// are dropped.
pub const MAX_SEEN: usize = 20_000;

/// How windows are bounded, in milliseconds of the provider's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRules {
    /// How far behind the provider's clock a window ends, for records still committing.
    pub lag_ms: i64,
    /// How much of the last window the next one reads again.
    pub overlap_ms: i64,
    /// The first cursor value of interest (inclusive), if the user set a start date.
    pub start_ms: Option<i64>,
}

impl WindowRules {
    /// The inclusive end of a window opened when the provider's clock reads `now_ms`, capped
    /// by what the provider says it has covered, if it says so.
    pub fn upper(&self, now_ms: i64, covered_ms: Option<i64>) -> i64 {
        let lagged = now_ms.saturating_sub(self.lag_ms);
        covered_ms.map_or(lagged, |c| lagged.min(c))
    }
}

/// The last delivered record of the current read: its cursor and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Cursor value, UTC millis.
    pub c: i64,
    /// The record's id.
    pub id: String,
}

impl Position {
    /// Whether `(c, id)` comes after this position in `(cursor, id)` order.
    pub fn precedes(&self, c: i64, id: &str) -> bool {
        c > self.c || (c == self.c && id > self.id.as_str())
    }
}

/// A window being read: cursor values in `(from, hi]`, resumed after `pos`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Exclusive lower bound; None reads from the beginning of history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// Inclusive upper bound.
    pub hi: i64,
    /// The last delivered record, None before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<Position>,
}

impl Window {
    /// Whether `(c, id)` belongs to this window and comes after what was already delivered.
    pub fn admits(&self, c: i64, id: &str) -> bool {
        self.from.is_none_or(|f| c > f)
            && c <= self.hi
            && self.pos.as_ref().is_none_or(|p| p.precedes(c, id))
    }

    /// Records `(c, id)` as delivered: the next read resumes after it.
    pub fn advance(&mut self, c: i64, id: &str) {
        self.pos = Some(Position {
            c,
            id: id.to_string(),
        });
    }
}

/// A stream's durable bound and the pairs delivered near it. Embed it in a checkpoint
/// (`#[serde(flatten)]` keeps its fields `lo` and `seen` at the checkpoint's top level).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Watermark {
    /// Every visible record with cursor ≤ `lo` has been delivered; None before the first
    /// window completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lo: Option<i64>,
    /// Delivered `(cursor → ids)` that the next window's overlap reads again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "seen_map")]
    pub seen: BTreeMap<i64, Vec<String>>,
}

impl Watermark {
    /// The lower bound of the next window: `lo - overlap`, or just before the start date, and
    /// never before the start date.
    pub fn next_from(&self, rules: &WindowRules) -> Option<i64> {
        let start = rules.start_ms.map(|s| s - 1);
        let from = match self.lo {
            Some(lo) => Some(lo - rules.overlap_ms),
            None => start,
        };
        from.map(|f| f.max(start.unwrap_or(i64::MIN)))
    }

    /// The next window up to `hi` (see [`WindowRules::upper`]), or None when nothing new can
    /// be there yet (`hi` is not past the bound).
    pub fn open(&self, rules: &WindowRules, hi: i64) -> Option<Window> {
        if self.lo.is_some_and(|lo| hi <= lo) {
            return None;
        }
        Some(Window {
            from: self.next_from(rules),
            hi,
            pos: None,
        })
    }

    /// Whether `(c, id)` was already delivered (read again by the overlap).
    pub fn was_seen(&self, c: i64, id: &str) -> bool {
        self.seen
            .get(&c)
            .is_some_and(|ids| ids.iter().any(|i| i == id))
    }

    /// Remembers a delivered pair.
    pub fn remember(&mut self, c: i64, id: &str) {
        let ids = self.seen.entry(c).or_default();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    /// Whether a record delivered at cursor `c` in a window ending at `hi` must be remembered:
    /// the next window's overlap, or a window re-read below the bound, reads it again.
    pub fn must_remember(&self, hi: i64, overlap_ms: i64, c: i64) -> bool {
        c > hi - overlap_ms || self.lo.is_some_and(|lo| c <= lo)
    }

    /// Delivers `(c, id)` read in a window ending at `hi`: false when it is an overlap
    /// duplicate to drop, else true, remembering it when the next overlap will read it again.
    pub fn deliver(&mut self, hi: i64, overlap_ms: i64, c: i64, id: &str) -> bool {
        if self.was_seen(c, id) {
            return false;
        }
        if self.must_remember(hi, overlap_ms, c) {
            self.remember(c, id);
        }
        true
    }

    /// Completes the window ending at `hi`: the bound moves to `hi` (never back), and only the
    /// pairs the next overlap reads again are kept, at most [`MAX_SEEN`].
    pub fn complete(&mut self, hi: i64, overlap_ms: i64) {
        self.lo = Some(self.lo.map_or(hi, |lo| lo.max(hi)));
        self.seen = self.seen.split_off(&(hi - overlap_ms + 1));
        let mut total: usize = self.seen.values().map(Vec::len).sum();
        while total > MAX_SEEN {
            let Some((_, ids)) = self.seen.pop_first() else {
                break;
            };
            total -= ids.len();
        }
    }
}

/// `seen` with its timestamps as JSON object keys (strings), read back whether the watermark
/// is a field of its own or flattened into a checkpoint (serde's flattening hands map keys
/// over as strings, which a plain `i64` key refuses).
mod seen_map {
    use std::collections::BTreeMap;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        seen: &BTreeMap<i64, Vec<String>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(seen.iter().map(|(c, ids)| (c.to_string(), ids)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<i64, Vec<String>>, D::Error> {
        let keyed: BTreeMap<String, Vec<String>> = BTreeMap::deserialize(deserializer)?;
        keyed
            .into_iter()
            .map(|(key, ids)| match key.parse::<i64>() {
                Ok(c) => Ok((c, ids)),
                Err(_) => Err(D::Error::custom(format!(
                    "`seen` has the key `{key}`, which is not a timestamp in milliseconds"
                ))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: WindowRules = WindowRules {
        lag_ms: 60_000,
        overlap_ms: 300_000,
        start_ms: None,
    };

    /// A provider's records as `(cursor, id)`, read through windows and pages of `page` rows
    /// ordered by `(cursor, id)`, the way a connector's queries would.
    struct Provider {
        records: Vec<(i64, String)>,
    }

    impl Provider {
        fn query(&self, win: &Window, page: usize) -> Vec<(i64, String)> {
            let mut rows: Vec<(i64, String)> = self
                .records
                .iter()
                .filter(|(c, id)| win.admits(*c, id))
                .cloned()
                .collect();
            rows.sort();
            rows.truncate(page);
            rows
        }
    }

    /// Reads one window to its end in pages of `page`, dropping overlap duplicates; a
    /// serialised checkpoint between pages stands for a restart.
    fn read_window(p: &Provider, mark: &mut Watermark, now: i64, page: usize) -> Vec<String> {
        let mut delivered = Vec::new();
        let Some(mut win) = mark.open(&RULES, RULES.upper(now, None)) else {
            return delivered;
        };
        loop {
            let rows = p.query(&win, page);
            for (c, id) in &rows {
                if mark.deliver(win.hi, RULES.overlap_ms, *c, id) {
                    delivered.push(id.clone());
                }
                win.advance(*c, id);
            }
            // A restart between pages: the checkpoint survives as JSON.
            let saved = serde_json::to_string(&(&*mark, &win)).unwrap();
            (*mark, win) = serde_json::from_str(&saved).unwrap();
            if rows.len() < page {
                mark.complete(win.hi, RULES.overlap_ms);
                return delivered;
            }
        }
    }

    #[test]
    fn equal_timestamps_across_pages_and_late_commits_are_delivered_once() {
        let t = 1_700_000_000_000;
        let mut p = Provider {
            records: (0..7).map(|i| (t, format!("a{i}"))).collect(),
        };
        p.records.push((t + 1000, "b".into()));
        // Too recent for the first window (inside the lag).
        p.records.push((t + 100_000, "late".into()));
        let mut mark = Watermark::default();
        let first = read_window(&p, &mut mark, t + 120_000, 3);
        assert_eq!(first, ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "b"]);
        assert_eq!(mark.lo, Some(t + 60_000));
        // A record committed late with a timestamp inside the overlap, and the lagged one.
        p.records.push((t + 30_000, "committed-late".into()));
        let second = read_window(&p, &mut mark, t + 400_000, 3);
        assert_eq!(second, ["committed-late", "late"]);
        // Nothing new: the clock has not moved past the bound.
        assert_eq!(mark.open(&RULES, RULES.upper(t + 400_000, None)), None);
        assert_eq!(
            read_window(&p, &mut mark, t + 400_000, 3),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_start_date_bounds_the_first_and_every_later_window() {
        let rules = WindowRules {
            start_ms: Some(10_000),
            ..RULES
        };
        let mark = Watermark::default();
        assert_eq!(mark.next_from(&rules), Some(9_999));
        let near_start = Watermark {
            lo: Some(20_000),
            ..Watermark::default()
        };
        assert_eq!(
            near_start.next_from(&rules),
            Some(9_999),
            "overlap stops at the start"
        );
        let later = Watermark {
            lo: Some(1_000_000),
            ..Watermark::default()
        };
        assert_eq!(later.next_from(&rules), Some(700_000));
        assert_eq!(RULES.upper(1_000_000, Some(500_000)), 500_000);
        assert_eq!(RULES.upper(1_000_000, None), 940_000);
    }

    #[test]
    fn completing_keeps_only_the_next_overlap_and_never_moves_back() {
        let mut mark = Watermark::default();
        for c in [100, 500, 700, 1000] {
            mark.remember(c, "x");
        }
        mark.complete(1000, 500);
        assert_eq!(mark.lo, Some(1000));
        assert_eq!(
            mark.seen.keys().copied().collect::<Vec<_>>(),
            vec![700, 1000]
        );
        mark.complete(900, 500);
        assert_eq!(mark.lo, Some(1000));
        let mut full = Watermark::default();
        for i in 0..MAX_SEEN + 10 {
            full.remember(i as i64, "x");
        }
        full.complete(MAX_SEEN as i64 + 10, i64::MAX / 2);
        assert_eq!(full.seen.values().map(Vec::len).sum::<usize>(), MAX_SEEN);
        assert!(!full.was_seen(0, "x") && full.was_seen(MAX_SEEN as i64 + 9, "x"));
    }

    /// Serde's flattening hands map keys over as strings: a plain `i64`-keyed `seen` fails
    /// to read back inside a checkpoint that flattens the watermark.
    #[test]
    fn a_watermark_flattened_into_a_checkpoint_reads_back() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Checkpoint {
            v: u32,
            #[serde(flatten)]
            mark: Watermark,
        }
        let mut mark = Watermark {
            lo: Some(-5),
            ..Watermark::default()
        };
        mark.remember(1_700_000_000_000, "a");
        mark.remember(-3, "b");
        let cp = Checkpoint { v: 1, mark };
        let text = serde_json::to_string(&cp).unwrap();
        assert_eq!(
            text,
            r#"{"v":1,"lo":-5,"seen":{"-3":["b"],"1700000000000":["a"]}}"#
        );
        assert_eq!(serde_json::from_str::<Checkpoint>(&text).unwrap(), cp);
        let bad = serde_json::from_str::<Checkpoint>(r#"{"v":1,"seen":{"x":["a"]}}"#);
        assert!(bad.unwrap_err().to_string().contains("`x`"));
    }

    #[test]
    fn positions_order_by_cursor_then_id() {
        let p = Position {
            c: 5,
            id: "m".into(),
        };
        assert!(p.precedes(5, "n") && p.precedes(6, "a"));
        assert!(!p.precedes(5, "m") && !p.precedes(5, "a") && !p.precedes(4, "z"));
        let win = Window {
            from: Some(1),
            hi: 10,
            pos: None,
        };
        assert!(!win.admits(1, "a") && win.admits(2, "a") && win.admits(10, "a"));
        assert!(!win.admits(11, "a"));
    }
}
