//! Feed records as rows of a stream table, checked before any is written.
//!
//! Threat: a record PostgreSQL cannot hold (a NUL character, which neither `text` nor
//! `jsonb` accepts; text that is not JSON) would fail its batch with an error that does not
//! say which record, or, worse, be altered to fit.
//! Rule: every record of a batch is checked first; one that cannot be stored as it is fails
//! the batch with its stream and key, and nothing of the batch is applied. The JSON goes to
//! PostgreSQL as the provider's text (numbers keep their digits), never re-serialized.

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_runtime::store::StoredRecord;

use crate::MaterializeError;
use crate::names::Ident;

/// One stream's rows of a batch, as parallel columns (bound as arrays).
#[derive(Debug, Default)]
pub struct StreamRows {
    /// `_sluice_key`.
    pub keys: Vec<String>,
    /// `_sluice_deleted`.
    pub deleted: Vec<bool>,
    /// `_sluice_seq`.
    pub seqs: Vec<i64>,
    /// When the change was committed to the store, ms since the epoch (`_sluice_synced_at`).
    pub committed_ms: Vec<i64>,
    /// `_sluice_record`, as JSON text.
    pub records: Vec<String>,
}

/// A batch's records grouped by stream table.
pub fn group(
    records: impl IntoIterator<Item = StoredRecord>,
) -> Result<BTreeMap<Ident, StreamRows>, MaterializeError> {
    let mut by_stream: BTreeMap<Ident, StreamRows> = BTreeMap::new();
    for record in records {
        let table = Ident::new(&record.stream, "table")?;
        let json = checked_json(&record)?;
        let rows = by_stream.entry(table).or_default();
        rows.keys.push(record.key);
        rows.deleted.push(record.deleted);
        rows.seqs.push(record.seq);
        rows.committed_ms.push(record.updated_at_ms);
        rows.records.push(json);
    }
    Ok(by_stream)
}

fn checked_json(record: &StoredRecord) -> Result<String, MaterializeError> {
    let bad = |why: String| MaterializeError::BadRecord {
        stream: record.stream.clone(),
        key: record.key.clone(),
        why,
    };
    if record.key.contains('\0') {
        return Err(bad(
            "its key holds a NUL character, which PostgreSQL text cannot".into(),
        ));
    }
    let text = std::str::from_utf8(&record.json)
        .map_err(|_| bad("the record is not UTF-8 text".into()))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("the record is not JSON ({e})")))?;
    if holds_nul(&value) {
        return Err(bad(
            "the record holds a NUL character (\\u0000), which PostgreSQL's jsonb cannot".into(),
        ));
    }
    Ok(text.to_string())
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stream: &str, key: &str, json: &str) -> StoredRecord {
        StoredRecord {
            stream: stream.into(),
            key: key.into(),
            version: 1,
            deleted: false,
            cursor: String::new(),
            json: json.as_bytes().to_vec(),
            seq: 7,
            updated_at_ms: 1_000,
        }
    }

    #[test]
    fn records_group_by_stream_and_keep_their_json_text() {
        let json = r#"{"n": 12345678901234567890123, "s": "'; DROP TABLE x; --"}"#;
        let grouped = group([record("A", "1", json), record("B", "2", "{}")]).unwrap();
        let a = &grouped[&Ident::new("A", "table").unwrap()];
        assert_eq!(a.records, vec![json.to_string()]);
        assert_eq!(
            (a.keys[0].as_str(), a.seqs[0], a.committed_ms[0]),
            ("1", 7, 1_000)
        );
        assert_eq!(grouped.len(), 2);
    }

    #[test]
    fn what_postgres_cannot_hold_names_the_record() {
        for (key, json, why) in [
            ("k", r#"{"a": "x\u0000y"}"#, "NUL"),
            ("k", r#"{"a\u0000": 1}"#, "NUL"),
            ("k\0", "{}", "key holds a NUL"),
            ("k", "not json", "not JSON"),
        ] {
            let err = group([record("Account", key, json)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(why) && err.contains("Account"), "{err}");
        }
        let err = group([record("bad name", "k", "{}")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"bad name\""), "{err}");
    }
}
