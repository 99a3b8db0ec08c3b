//! Zendesk's cursor-based incremental exports, and the tickets and users streams on them.
//!
//! Threat: a record changed while a pull runs is easy to lose. Zendesk leaves out of every
//! answer what changed in the minute before the request and refuses a `start_time` inside that
//! minute; a client that restarts from the time of its last request loses what changed in the
//! minute before it. Rule: the first request of a stream uses `start_time` (never one inside the
//! last minute), every later one the `after_cursor` the previous answer gave, and the checkpoint
//! is exactly that cursor, which Zendesk places after the last record it returned and before
//! anything it held back. A page ends `complete` when Zendesk says `end_of_stream`.

use serde_json::Value;
use sluice_connector_sdk::model::{Failure, FailureKind, Operation, Page, Row, StreamStatus};

use crate::checkpoint::{self, Export};
use crate::client::{Answer, Client, Expected};

/// How old a `start_time` must be, in seconds (the one-minute rule).
pub const EXPORT_LAG_S: i64 = 60;

/// One of the two exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/api/v2/incremental/tickets/cursor.json`: deleted tickets come with status `deleted`.
    Tickets,
    /// `/api/v2/incremental/users/cursor.json`: deleted users come with `active: false`.
    Users,
}

impl Kind {
    /// The array the answer holds the records in (and the path segment).
    pub fn key(self) -> &'static str {
        match self {
            Kind::Tickets => "tickets",
            Kind::Users => "users",
        }
    }

    /// Whether `record` is a deletion.
    pub fn is_deleted(self, record: &Value) -> bool {
        match self {
            Kind::Tickets => record["status"] == "deleted",
            Kind::Users => record["active"] == false,
        }
    }

    /// The record's cursor value: the field the export orders by.
    fn cursor_of(self, record: &Value) -> String {
        match self {
            Kind::Tickets => record["generated_timestamp"].to_string(),
            Kind::Users => record["updated_at"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// Where an export request starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start<'a> {
    /// The first request: changes at or after this Unix time.
    StartTime(i64),
    /// A later request: after the previous answer's cursor.
    Cursor(&'a str),
}

/// One export answer.
#[derive(Debug)]
pub struct ExportPage {
    /// The records, in the order they last changed.
    pub records: Vec<Value>,
    /// The cursor after them.
    pub after_cursor: Option<String>,
    /// Whether the answer reached the one-minute horizon.
    pub end_of_stream: bool,
}

/// Reads one export page, or `None` when the start time is still inside the last minute.
pub fn fetch(
    client: &mut Client,
    kind: Kind,
    from: Start,
    per_page: u32,
    now_s: Option<i64>,
) -> Result<Option<ExportPage>, Failure> {
    let position = match from {
        Start::StartTime(t) if now_s.is_some_and(|now| t > now - EXPORT_LAG_S) => return Ok(None),
        Start::StartTime(t) => format!("start_time={t}"),
        Start::Cursor(c) => format!("cursor={}", encode(c)),
    };
    let path = format!(
        "/api/v2/incremental/{}/cursor.json?{position}&per_page={per_page}",
        kind.key()
    );
    // Without a clock, Zendesk's 422 for a too recent start time says the same thing.
    let body = match client.get(&path, Expected::OrTooRecent)? {
        Answer::Json(body) => body,
        Answer::TooRecent | Answer::NotFound => return Ok(None),
    };
    let records = match body.get(kind.key()) {
        Some(Value::Array(records)) => records.clone(),
        _ => {
            return Err(Failure::new(
                FailureKind::Unknown,
                format!(
                    "the {} export answered without a `{}` list",
                    kind.key(),
                    kind.key()
                ),
            ));
        }
    };
    Ok(Some(ExportPage {
        records,
        after_cursor: body["after_cursor"].as_str().map(str::to_string),
        end_of_stream: body["end_of_stream"].as_bool().unwrap_or(false),
    }))
}

/// Percent-encodes a cursor for a query string.
pub fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The next page of the tickets or users stream.
pub fn pull(
    client: &mut Client,
    kind: Kind,
    checkpoint: Option<&str>,
    start_time: i64,
    per_page: u32,
    now_s: Option<i64>,
) -> Result<Page, Failure> {
    let state: Export = checkpoint::parse(checkpoint)?;
    let from = match &state.cursor {
        Some(c) => Start::Cursor(c),
        None => Start::StartTime(start_time),
    };
    let Some(page) = fetch(client, kind, from, per_page, now_s)? else {
        // Nothing is old enough to be exported yet.
        return Ok(unchanged(checkpoint, client));
    };
    let rows = page
        .records
        .iter()
        .map(|record| row_of(kind, record))
        .collect::<Result<Vec<_>, _>>()?;
    let next = Export {
        cursor: page.after_cursor.or(state.cursor),
    };
    Ok(Page {
        rows,
        checkpoint: Some(checkpoint::write(&next)),
        status: if page.end_of_stream {
            StreamStatus::Complete
        } else {
            StreamStatus::Partial
        },
        api_usage: client.usage,
        api_calls: client.calls,
    })
}

/// A complete page with no rows that keeps `checkpoint`.
pub fn unchanged(checkpoint: Option<&str>, client: &Client) -> Page {
    Page {
        rows: Vec::new(),
        checkpoint: checkpoint.map(str::to_string),
        status: StreamStatus::Complete,
        api_usage: client.usage,
        api_calls: client.calls,
    }
}

fn row_of(kind: Kind, record: &Value) -> Result<Row, Failure> {
    let id = record["id"].as_u64().ok_or_else(|| {
        Failure::new(
            FailureKind::Unknown,
            format!("a record of the {} export has no numeric `id`", kind.key()),
        )
    })?;
    Ok(Row {
        key: id.to_string(),
        op: if kind.is_deleted(record) {
            Operation::Delete
        } else {
            Operation::Upsert
        },
        cursor: kind.cursor_of(record),
        json: record.to_string().into_bytes(),
    })
}
