//! Cursor-based incremental exports of tickets and users.
//!
//! The first request names `start_time` (Unix seconds, at least a minute in the past), later
//! ones the `cursor` of the previous answer. Records come in the order they last changed
//! (tickets by `generated_timestamp`, users by `updated_at`, ties by id), at most
//! `per_page` at a time. Records changed within the last minute are left out of every
//! answer — they appear in a later request, after the cursor the client already holds. So
//! a client that resumes from `after_cursor` loses nothing, and one that restarts from the
//! time it made its last request loses what changed in the minute before it.
//! `end_of_stream` is true when the answer reached that one-minute horizon.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value as Json, json};

use crate::api::{param, query_pairs};
use crate::auth::{Caller, Resource};
use crate::cursor::{self, ExportPosition};
use crate::data::{Status, Store, ticket_json, user_json};
use crate::reply;
use crate::state::Shared;

/// What one export serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Tickets,
    Users,
}

impl Stream {
    fn key(self) -> &'static str {
        match self {
            Stream::Tickets => "tickets",
            Stream::Users => "users",
        }
    }

    fn resource(self) -> Resource {
        match self {
            Stream::Tickets => Resource::Tickets,
            Stream::Users => Resource::Users,
        }
    }

    fn order(self, store: &Store) -> &BTreeSet<(i64, u64)> {
        match self {
            Stream::Tickets => &store.ticket_order,
            Stream::Users => &store.user_order,
        }
    }

    /// The record's JSON, or `None` when the request excludes it.
    fn record(
        self,
        shared: &Shared,
        store: &Store,
        id: u64,
        exclude_deleted: bool,
    ) -> Option<Json> {
        match self {
            Stream::Tickets => {
                let t = store.tickets.get(&id)?;
                let skip = exclude_deleted && t.status == Status::Deleted;
                (!skip).then(|| ticket_json(&shared.origin, t))
            }
            Stream::Users => store.users.get(&id).map(|u| user_json(&shared.origin, u)),
        }
    }
}

/// `GET /api/v2/incremental/tickets/cursor.json`.
pub async fn tickets(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    export(&shared, &caller, Stream::Tickets, &query_pairs(&raw))
}

/// `GET /api/v2/incremental/users/cursor.json`.
pub async fn users(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    export(&shared, &caller, Stream::Users, &query_pairs(&raw))
}

fn invalid(description: impl Into<String>) -> Response {
    reply::error(StatusCode::BAD_REQUEST, "InvalidValue", description)
}

/// Where the request starts: after its cursor, or at its `start_time`.
fn start(
    shared: &Shared,
    query: &[(String, String)],
    lag_s: i64,
) -> Result<ExportPosition, Response> {
    if let Some(text) = param(query, "cursor") {
        return cursor::decode_export(text)
            .ok_or_else(|| invalid("cursor is not a cursor this export issued"));
    }
    let Some(text) = param(query, "start_time") else {
        return Err(invalid("start_time or cursor is required"));
    };
    let start_time: i64 = text
        .parse()
        .map_err(|_| invalid(format!("start_time must be Unix seconds, not {text:?}")))?;
    if start_time > shared.clock.now() - lag_s {
        return Err(reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "InvalidValue",
            "Too recent start_time. Use a start_time older than 1 minute",
        ));
    }
    // Id 0 sorts before every record: the first page starts at `start_time` inclusive.
    Ok(ExportPosition {
        ts: start_time,
        id: 0,
    })
}

fn export(
    shared: &Shared,
    caller: &Caller,
    stream: Stream,
    query: &[(String, String)],
) -> Response {
    if !caller.may_read(stream.resource()) {
        return reply::missing_scope();
    }
    let settings = shared.settings();
    let position = match start(shared, query, settings.export_lag_s) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let per_page = match param(query, "per_page") {
        None => settings.max_export_per_page as usize,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(settings.max_export_per_page as usize),
            _ => {
                return invalid(format!(
                    "per_page must be a positive whole number, not {text:?}"
                ));
            }
        },
    };
    let exclude_deleted = param(query, "exclude_deleted") == Some("true");
    let horizon = shared.clock.now() - settings.export_lag_s;
    let store = shared.store.read().expect("store lock");
    let mut eligible = stream
        .order(&store)
        .range((
            Bound::Excluded((position.ts, position.id)),
            Bound::Unbounded,
        ))
        .take_while(|(ts, _)| *ts <= horizon)
        .peekable();
    let mut records = Vec::new();
    let mut last = position;
    let mut scanned = 0;
    while scanned < per_page {
        let Some(&(ts, id)) = eligible.next() else {
            break;
        };
        scanned += 1;
        last = ExportPosition { ts, id };
        if let Some(record) = stream.record(shared, &store, id, exclude_deleted) {
            records.push(record);
        }
    }
    let end_of_stream = eligible.peek().is_none();
    drop(store);
    let after_cursor = cursor::encode_export(last);
    let path = format!("/api/v2/incremental/{}/cursor.json", stream.key());
    let after_url = format!(
        "{}{path}?{}",
        shared.origin,
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("cursor", &after_cursor)
            .finish()
    );
    reply::json(
        StatusCode::OK,
        &json!({
            stream.key(): records,
            "after_url": after_url,
            "after_cursor": after_cursor,
            "before_url": null,
            "before_cursor": null,
            "end_of_stream": end_of_stream,
        }),
    )
}
