//! The ticket-comments stream: the comments of every ticket the ticket export reports changed.
//!
//! Threat: comments have no export of their own, so a resume could lose or repeat them. Rule:
//! a comment is a ticket update, so every new comment moves its ticket in the ticket export.
//! The stream walks its own ticket-export cursor; each export page's ticket ids go into the
//! checkpoint as the pending list, with the export cursor past them, before any comment is
//! read. A page reads the pending tickets' comments in order (each ticket's comment list by its
//! own cursor, also kept in the checkpoint when a page ends inside a ticket) and drops a
//! ticket from the list only once its last comment is in the page. Since the host commits a
//! page's rows with its checkpoint, a resume starts exactly after the last comment committed:
//! nothing is lost or read twice. A ticket changed again later is visited again, and its
//! comments are upserted again under the same keys. A deleted ticket's stored comments are
//! deleted, found through the host's stored keys (`{ticket_id}/…`).

use serde_json::{Value, json};
use sluice_connector_sdk::model::{Failure, FailureKind, Operation, Page, Row, StreamStatus};

use crate::checkpoint::{self, Comments, PendingTicket};
use crate::client::{Answer, Client, Expected};
use crate::export::{self, Kind, Start};

/// The most tickets of one export page the checkpoint holds (keeps it small).
pub const MAX_PENDING: u32 = 100;
/// Zendesk's largest `page[size]` for a comment list.
pub const MAX_COMMENT_PAGE: u32 = 100;

/// What a page of this stream has gathered so far.
struct Progress {
    rows: Vec<Row>,
    max: usize,
}

impl Progress {
    fn room(&self) -> usize {
        self.max.saturating_sub(self.rows.len())
    }
}

/// The next page of the ticket-comments stream.
pub fn pull(
    client: &mut Client,
    checkpoint: Option<&str>,
    start_time: i64,
    max_records: u32,
    now_s: Option<i64>,
) -> Result<Page, Failure> {
    let mut state: Comments = checkpoint::parse(checkpoint)?;
    let mut end_of_stream = false;
    if state.pending.is_empty() {
        let from = match &state.cursor {
            Some(c) => Start::Cursor(c),
            None => Start::StartTime(start_time),
        };
        // The pending list, not the page, bounds what one export answer may hold: a small
        // max-records costs comment pages, not export requests (10 a minute on Zendesk).
        let Some(page) = export::fetch(client, Kind::Tickets, from, MAX_PENDING, now_s)? else {
            return Ok(export::unchanged(checkpoint, client));
        };
        state.pending = pending_of(&page.records)?;
        state.cursor = page.after_cursor.or(state.cursor);
        end_of_stream = page.end_of_stream;
    }
    let mut progress = Progress {
        rows: Vec::new(),
        max: max_records.max(1) as usize,
    };
    while progress.room() > 0 {
        let Some(ticket) = state.pending.first_mut() else {
            break;
        };
        let finished = if ticket.deleted {
            delete_comments(client, ticket, &mut progress)
        } else {
            read_comments(client, ticket, &mut progress)?
        };
        if finished {
            state.pending.remove(0);
        }
    }
    let status = if state.pending.is_empty() && end_of_stream {
        StreamStatus::Complete
    } else {
        StreamStatus::Partial
    };
    Ok(Page {
        rows: progress.rows,
        checkpoint: Some(checkpoint::write(&state)),
        status,
        api_usage: client.usage,
        api_calls: client.calls,
    })
}

fn pending_of(tickets: &[Value]) -> Result<Vec<PendingTicket>, Failure> {
    tickets
        .iter()
        .map(|t| {
            let id = t["id"].as_u64().ok_or_else(|| {
                Failure::new(
                    FailureKind::Unknown,
                    "a record of the tickets export has no numeric `id`",
                )
            })?;
            Ok(PendingTicket {
                id,
                deleted: Kind::Tickets.is_deleted(t),
                after: None,
            })
        })
        .collect()
}

/// Reads one page of `ticket`'s comments into `progress`; true when its list is done.
fn read_comments(
    client: &mut Client,
    ticket: &mut PendingTicket,
    progress: &mut Progress,
) -> Result<bool, Failure> {
    let size = (progress.room() as u32).min(MAX_COMMENT_PAGE);
    let mut path = format!(
        "/api/v2/tickets/{}/comments.json?page[size]={size}",
        ticket.id
    );
    if let Some(after) = &ticket.after {
        path.push_str(&format!("&page[after]={}", export::encode(after)));
    }
    let body = match client.get(&path, Expected::OrNotFound)? {
        Answer::Json(body) => body,
        // Deleted since the export listed it: its comments go with it.
        Answer::NotFound | Answer::TooRecent => {
            ticket.deleted = true;
            ticket.after = None;
            return Ok(false);
        }
    };
    let Some(comments) = body["comments"].as_array() else {
        return Err(Failure::new(
            FailureKind::Unknown,
            format!(
                "ticket {}'s comments answered without a `comments` list",
                ticket.id
            ),
        ));
    };
    for comment in comments {
        progress.rows.push(comment_row(ticket.id, comment)?);
    }
    let next = body["meta"]["after_cursor"].as_str();
    let has_more = body["meta"]["has_more"].as_bool().unwrap_or(false);
    match next {
        // An empty page after a full one is how Zendesk ends a list whose length is a
        // multiple of the page size.
        Some(cursor) if has_more && !comments.is_empty() => {
            ticket.after = Some(cursor.to_string());
            Ok(false)
        }
        _ => Ok(true),
    }
}

fn comment_row(ticket_id: u64, comment: &Value) -> Result<Row, Failure> {
    let id = comment["id"].as_u64().ok_or_else(|| {
        Failure::new(
            FailureKind::Unknown,
            format!("a comment of ticket {ticket_id} has no numeric `id`"),
        )
    })?;
    let mut record = comment.clone();
    if let Some(fields) = record.as_object_mut() {
        fields.insert("ticket_id".into(), json!(ticket_id));
    }
    Ok(Row {
        key: format!("{ticket_id}/{id}"),
        op: Operation::Upsert,
        cursor: comment["created_at"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        json: record.to_string().into_bytes(),
    })
}

/// Deletes a page of `ticket`'s stored comments; true when none is left.
fn delete_comments(
    client: &mut Client,
    ticket: &mut PendingTicket,
    progress: &mut Progress,
) -> bool {
    let prefix = format!("{}/", ticket.id);
    // `/` sorts before every digit, so the ticket's keys follow `{id}/` directly.
    let after = ticket.after.clone().unwrap_or_else(|| prefix.clone());
    let limit = progress.room().min(1000) as u32;
    let keys = client.host().stored_keys(Some(&after), limit);
    let fetched = keys.len();
    let mine: Vec<String> = keys
        .into_iter()
        .take_while(|k| k.starts_with(&prefix))
        .collect();
    let more = mine.len() == fetched && fetched == limit as usize;
    for key in &mine {
        let comment_id = key[prefix.len()..].parse::<u64>().ok();
        progress.rows.push(Row {
            key: key.clone(),
            op: Operation::Delete,
            cursor: String::new(),
            json: json!({"ticket_id": ticket.id, "id": comment_id, "ticket_status": "deleted"})
                .to_string()
                .into_bytes(),
        });
    }
    match (more, mine.last()) {
        (true, Some(last)) => {
            ticket.after = Some(last.clone());
            false
        }
        _ => true,
    }
}
