//! The three streams: names, keys, cursor fields and JSON Schemas.
//!
//! The schemas list the fields Zendesk's API reference documents for each record and that
//! the connector relies on; Zendesk adds fields over time, so every schema allows more.

use serde_json::{Value, json};
use sluice_connector_sdk::model::{StreamInfo, StreamSchema};

/// The tickets stream.
pub const TICKETS: &str = "tickets";
/// The ticket-comments stream.
pub const TICKET_COMMENTS: &str = "ticket-comments";
/// The users stream.
pub const USERS: &str = "users";

/// One stream's static description.
struct Stream {
    name: &'static str,
    keys: &'static [&'static str],
    cursor: &'static str,
    emits_deletes: bool,
}

/// Pull order: tickets first, so a comment's ticket is usually stored before it.
const STREAMS: [Stream; 3] = [
    Stream {
        name: TICKETS,
        keys: &["id"],
        cursor: "generated_timestamp",
        emits_deletes: true,
    },
    Stream {
        name: TICKET_COMMENTS,
        keys: &["ticket_id", "id"],
        cursor: "created_at",
        emits_deletes: true,
    },
    Stream {
        name: USERS,
        keys: &["id"],
        cursor: "updated_at",
        emits_deletes: true,
    },
];

/// What `configure` says about the streams.
pub fn infos() -> Vec<StreamInfo> {
    STREAMS
        .iter()
        .map(|s| StreamInfo {
            name: s.name.into(),
            key_fields: s.keys.iter().map(|k| (*k).into()).collect(),
            cursor_field: Some(s.cursor.into()),
            emits_deletes: s.emits_deletes,
        })
        .collect()
}

/// What `discover` says about the streams.
pub fn schemas() -> Vec<StreamSchema> {
    STREAMS
        .iter()
        .map(|s| StreamSchema {
            name: s.name.into(),
            json_schema: schema_of(s.name).to_string(),
            key_fields: s.keys.iter().map(|k| (*k).into()).collect(),
            cursor_field: Some(s.cursor.into()),
        })
        .collect()
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": true,
    })
}

fn schema_of(stream: &str) -> Value {
    let id = json!({"type": "integer"});
    let opt_id = json!({"type": ["integer", "null"]});
    let time = json!({"type": "string", "format": "date-time"});
    let text = json!({"type": ["string", "null"]});
    match stream {
        TICKETS => object(
            &["id", "generated_timestamp", "updated_at", "status"],
            json!({
                "id": id, "url": text, "external_id": text, "created_at": time,
                "updated_at": time, "generated_timestamp": id, "type": text,
                "subject": text, "raw_subject": text, "description": text, "priority": text,
                "status": {"type": "string", "enum": ["new", "open", "pending", "hold",
                    "solved", "closed", "deleted"]},
                "requester_id": opt_id, "submitter_id": opt_id, "assignee_id": opt_id,
                "organization_id": opt_id, "group_id": opt_id,
                "tags": {"type": "array", "items": {"type": "string"}},
                "is_public": {"type": "boolean"}, "via": {"type": "object"},
            }),
        ),
        TICKET_COMMENTS => object(
            &["ticket_id", "id", "created_at"],
            json!({
                "ticket_id": id, "id": id, "type": text, "author_id": opt_id,
                "body": text, "html_body": text, "plain_body": text,
                "public": {"type": "boolean"}, "attachments": {"type": "array"},
                "audit_id": opt_id, "via": {"type": "object"}, "created_at": time,
            }),
        ),
        _ => object(
            &["id", "updated_at", "active"],
            json!({
                "id": id, "url": text, "name": text, "email": text, "created_at": time,
                "updated_at": time, "time_zone": text, "locale": text,
                "role": {"type": "string"}, "active": {"type": "boolean"},
                "verified": {"type": "boolean"}, "suspended": {"type": "boolean"},
            }),
        ),
    }
}
