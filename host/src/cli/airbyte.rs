//! Airbyte protocol messages for `records --format airbyte` and `changes --format airbyte`: a
//! CATALOG of the streams, a RECORD per record, and a GLOBAL STATE holding the change-feed
//! cursor to resume from, so that any Airbyte destination can consume Sluice's output.
//!
//! Deletes follow Airbyte's change-data-capture columns: every record carries
//! `_ab_cdc_updated_at`, and a delete `_ab_cdc_deleted_at` (null otherwise), both ISO 8601.

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::*;
use crate::store::{FeedCursor, StoredRecord};

/// Airbyte's sync modes a Sluice stream supports: a snapshot, and the feed after a cursor.
const SYNC_MODES: [&str; 2] = ["full_refresh", "incremental"];

/// The CATALOG message of integration `id`: discover's streams with their JSON Schemas and
/// keys; when the connector cannot describe them now (no credentials, provider down), the
/// streams stored records hold, with an open schema, after a warning on stderr.
pub(super) async fn catalog(app: &Arc<App>, id: &str) -> anyhow::Result<Value> {
    let streams = match app.discover(id).await {
        Ok(schemas) => schemas.into_iter().map(discovered_stream).collect(),
        Err(e) => {
            eprintln!(
                "warning: the connector could not describe the streams ({e}); the catalog \
                 lists the stored streams with an open schema"
            );
            app.store()
                .record_counts(id)?
                .into_iter()
                .map(|count| {
                    json!({
                        "name": count.stream,
                        "json_schema": {"type": "object"},
                        "supported_sync_modes": SYNC_MODES,
                    })
                })
                .collect()
        }
    };
    Ok(json!({"type": "CATALOG", "catalog": {"streams": Value::Array(streams)}}))
}

fn discovered_stream(stream: crate::engine::wit::types::StreamSchema) -> Value {
    // A schema that is not JSON still names the stream; its records are objects anyway.
    let schema: Value =
        serde_json::from_str(&stream.json_schema).unwrap_or_else(|_| json!({"type": "object"}));
    let mut out = json!({
        "name": stream.name,
        "json_schema": schema,
        "supported_sync_modes": SYNC_MODES,
        "source_defined_cursor": stream.cursor_field.is_some(),
        "is_resumable": true,
    });
    if let Some(cursor) = stream.cursor_field {
        out["default_cursor_field"] = json!([cursor]);
    }
    if !stream.key_fields.is_empty() {
        let key: Vec<Value> = stream.key_fields.iter().map(|f| json!([f])).collect();
        out["source_defined_primary_key"] = Value::Array(key);
    }
    out
}

/// The RECORD message of `record`, emitted at `now_ms`. A record without its stream's
/// one-field primary key (`keys`, from the catalog) gets its stored key there: a destination
/// deduplicates and applies deletes by that field, and a delete row may carry nothing else.
pub(super) fn record(record: &StoredRecord, keys: &PrimaryKeys, now_ms: i64) -> Value {
    let mut data = crate::views::stored_json(&record.json);
    let written_at = iso8601(record.updated_at_ms);
    if let Value::Object(fields) = &mut data {
        if let Some(field) = keys.get(&record.stream)
            && !fields.contains_key(field)
        {
            fields.insert(field.clone(), json!(record.key));
        }
        fields.insert("_ab_cdc_updated_at".into(), json!(written_at));
        let deleted_at = record.deleted.then_some(written_at);
        fields.insert("_ab_cdc_deleted_at".into(), json!(deleted_at));
    }
    json!({
        "type": "RECORD",
        "record": {"stream": record.stream, "data": data, "emitted_at": now_ms},
    })
}

/// The STATE message after everything up to `cursor`: one GLOBAL state whose shared part is
/// the feed cursor (the feed is one sequence for all of an integration's streams).
pub(super) fn state(cursor: FeedCursor, streams: &[String]) -> Value {
    let stream_states: Vec<Value> = streams
        .iter()
        .map(|name| json!({"stream_descriptor": {"name": name}, "stream_state": {}}))
        .collect();
    json!({
        "type": "STATE",
        "state": {
            "type": "GLOBAL",
            "global": {
                "shared_state": {"sluice_cursor": cursor.to_string()},
                "stream_states": stream_states,
            },
        },
    })
}

/// Each stream's primary key field, for streams whose key is one field.
pub(super) type PrimaryKeys = std::collections::HashMap<String, String>;

/// The one-field primary keys a CATALOG message declares.
pub(super) fn primary_keys(catalog: &Value) -> PrimaryKeys {
    let mut keys = PrimaryKeys::new();
    for stream in catalog["catalog"]["streams"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = &stream["source_defined_primary_key"];
        if let (Some(name), Some([only])) =
            (stream["name"].as_str(), key.as_array().map(Vec::as_slice))
            && let Some([field]) = only.as_array().map(Vec::as_slice)
            && let Some(field) = field.as_str()
        {
            keys.insert(name.to_string(), field.to_string());
        }
    }
    keys
}

/// The names of the streams a CATALOG message lists.
pub(super) fn catalog_streams(catalog: &Value) -> Vec<String> {
    catalog["catalog"]["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn iso8601(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(deleted: bool) -> StoredRecord {
        StoredRecord {
            stream: "Case".into(),
            key: "500A".into(),
            version: 2,
            deleted,
            cursor: "2024-01-01T00:00:00Z".into(),
            json: br#"{"Id":"500A"}"#.to_vec(),
            seq: 7,
            updated_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn records_carry_airbyte_cdc_columns_and_state_the_cursor() {
        let keys = primary_keys(&json!({"catalog": {"streams": [
            {"name": "Case", "source_defined_primary_key": [["Id"]]},
            {"name": "Pair", "source_defined_primary_key": [["A"], ["B"]]},
        ]}}));
        assert_eq!(keys.len(), 1, "a key of two fields is not one field");
        let live = record(&stored(false), &keys, 5);
        assert_eq!(live["type"], "RECORD");
        assert_eq!(live["record"]["stream"], "Case");
        assert_eq!(live["record"]["emitted_at"], 5);
        assert_eq!(live["record"]["data"]["Id"], "500A");
        assert_eq!(
            live["record"]["data"]["_ab_cdc_updated_at"],
            "2023-11-14T22:13:20Z"
        );
        assert!(live["record"]["data"]["_ab_cdc_deleted_at"].is_null());
        let mut bare = stored(true);
        bare.json = b"{}".to_vec();
        let gone = record(&bare, &keys, 5);
        assert_eq!(
            gone["record"]["data"]["Id"], "500A",
            "the key joins a bare delete"
        );
        assert_eq!(
            gone["record"]["data"]["_ab_cdc_deleted_at"],
            "2023-11-14T22:13:20Z"
        );
        let st = state(FeedCursor(42), &["Case".into()]);
        assert_eq!(st["state"]["type"], "GLOBAL");
        assert_eq!(st["state"]["global"]["shared_state"]["sluice_cursor"], "42");
        assert_eq!(
            st["state"]["global"]["stream_states"][0]["stream_descriptor"]["name"],
            "Case"
        );
    }
}
