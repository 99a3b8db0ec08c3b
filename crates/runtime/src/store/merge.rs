//! Merge rows: fields that change without moving a record's cursor (formula fields), applied to
//! the record already stored.
//!
//! A merge never creates a record and never revives a tombstone: the full record arrives as an
//! upsert, and a merge that changes no value leaves the record's version alone, so a scheduled
//! refresh of a million records shows downstream only the records whose values moved.

use serde_json::{Map, Value};

/// What a merge does to a stored record.
#[derive(Debug, PartialEq, Eq)]
pub enum Merged {
    /// The record with the merge's fields in place.
    Changed(Vec<u8>),
    /// Every merged field already held its value.
    Unchanged,
    /// The stored record is not a JSON object, so there are no fields to merge into.
    NotAnObject,
}

/// Why a merge row cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a merge row must hold a JSON object of the fields to replace ({0})")]
pub struct MergeRowError(String);

/// Parses a merge row's JSON: an object of the fields to replace.
pub fn fields(json: &[u8]) -> Result<Map<String, Value>, MergeRowError> {
    match serde_json::from_slice::<Value>(json) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(MergeRowError(format!("got {}", kind(&other)))),
        Err(e) => Err(MergeRowError(format!("unreadable JSON: {e}"))),
    }
}

/// Applies `patch`'s top-level fields to the `stored` record's JSON.
pub fn apply(stored: &[u8], patch: &Map<String, Value>) -> Merged {
    let Ok(Value::Object(mut record)) = serde_json::from_slice::<Value>(stored) else {
        return Merged::NotAnObject;
    };
    let mut changed = false;
    for (name, value) in patch {
        if record.get(name) != Some(value) {
            record.insert(name.clone(), value.clone());
            changed = true;
        }
    }
    if changed {
        Merged::Changed(Value::Object(record).to_string().into_bytes())
    } else {
        Merged::Unchanged
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(s: &str) -> Map<String, Value> {
        fields(s.as_bytes()).unwrap()
    }

    #[test]
    fn replaces_the_given_fields_and_keeps_the_others() {
        let out = apply(
            br#"{"Id":"a","Name":"x","Age__c":1}"#,
            &patch(r#"{"Age__c":2}"#),
        );
        let Merged::Changed(bytes) = out else {
            panic!("expected a change, got {out:?}");
        };
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v, serde_json::json!({"Id": "a", "Name": "x", "Age__c": 2}));
    }

    #[test]
    fn equal_values_change_nothing() {
        let stored = br#"{"Id":"a","Age__c":2,"Score__c":null}"#;
        assert_eq!(
            apply(stored, &patch(r#"{"Age__c":2,"Score__c":null}"#)),
            Merged::Unchanged
        );
        // A field the record lacked is a change, even to null.
        assert!(matches!(
            apply(stored, &patch(r#"{"New__c":null}"#)),
            Merged::Changed(_)
        ));
    }

    #[test]
    fn only_objects_merge() {
        assert_eq!(apply(b"[1]", &patch("{}")), Merged::NotAnObject);
        assert!(
            fields(b"[1]")
                .unwrap_err()
                .to_string()
                .contains("got an array")
        );
        assert!(
            fields(b"{")
                .unwrap_err()
                .to_string()
                .contains("unreadable JSON")
        );
    }
}
