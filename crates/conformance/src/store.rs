//! The data a pull leaves behind, kept in memory as the host's store would keep it: per
//! stream, key → the live record's JSON; deletes remove the key, merges replace top-level
//! fields of a live record and never create one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sluice_engine::KeySource;
use sluice_engine::wit::types::{Operation, Row};

/// One stream's live records by key.
pub type Records = BTreeMap<String, Vec<u8>>;

/// Applies one page's rows to `records`, in order.
pub fn apply(records: &mut Records, rows: &[Row]) {
    for row in rows {
        match row.op {
            Operation::Upsert => {
                records.insert(row.key.clone(), row.json.clone());
            }
            Operation::Delete => {
                records.remove(&row.key);
            }
            Operation::Merge => {
                if let Some(live) = records.get_mut(&row.key) {
                    *live = merged(live, &row.json);
                }
            }
        }
    }
}

/// `live` with `patch`'s top-level fields replacing its own (both JSON objects); `live`
/// unchanged when either is not an object.
fn merged(live: &[u8], patch: &[u8]) -> Vec<u8> {
    use serde_json::{Map, Value};
    let parse = |bytes: &[u8]| serde_json::from_slice::<Map<String, Value>>(bytes).ok();
    match (parse(live), parse(patch)) {
        (Some(mut record), Some(fields)) => {
            record.extend(fields);
            serde_json::to_vec(&record).unwrap_or_else(|_| live.to_vec())
        }
        _ => live.to_vec(),
    }
}

/// One stream's records shared with the engine, which answers the connector's `stored-keys`
/// from them during `pull`.
#[derive(Clone, Default)]
pub struct SharedRecords(pub Arc<Mutex<Records>>);

impl SharedRecords {
    /// Shares `records`.
    pub fn new(records: Records) -> Self {
        Self(Arc::new(Mutex::new(records)))
    }

    /// A copy of the records now.
    pub fn snapshot(&self) -> Records {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies one page's rows.
    pub fn apply(&self, rows: &[Row]) {
        apply(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()), rows);
    }
}

impl KeySource for SharedRecords {
    fn live_keys_after(
        &self,
        _stream: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, String> {
        let records = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let keys = match after {
            Some(after) => records
                .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .map(|(k, _)| k.clone())
                .take(limit)
                .collect(),
            None => records.keys().take(limit).cloned().collect(),
        };
        Ok(keys)
    }
}

/// How two stores of one stream differ, in words, or None when they hold the same records.
pub fn difference(expected: &Records, actual: &Records) -> Option<String> {
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let changed: Vec<&String> = expected
        .iter()
        .filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    if missing.is_empty() && extra.is_empty() && changed.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    for (what, keys) in [
        ("missing", missing),
        ("extra", extra),
        ("different", changed),
    ] {
        if !keys.is_empty() {
            parts.push(format!("{} {what} (first: {})", keys.len(), sample(&keys)));
        }
    }
    Some(parts.join(", "))
}

/// Up to three keys, for a message.
fn sample(keys: &[&String]) -> String {
    let shown: Vec<&str> = keys.iter().take(3).map(|k| k.as_str()).collect();
    shown.join(", ")
}
