//! Record writes from the control API, at controlled times: what agents, end users and
//! Zendesk's own automations do to an account while a connector syncs it.
//!
//! A write's time (`at`) defaults to the emulator's clock and may not be earlier than the
//! record's last change: Zendesk's clocks only move forward, and a backdated change would
//! hide behind cursors no real account could have issued.

use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::clock::{iso, parse_iso};
use crate::data::{Comment, Status, Store, Ticket, User, WriteError};
use crate::state::Shared;

/// A stream of the account, as the control API names it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StreamName {
    Tickets,
    TicketComments,
    Users,
}

/// A time: Unix seconds or RFC 3339 text.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum At {
    Unix(i64),
    Text(String),
}

/// One write.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    Insert {
        stream: StreamName,
        /// The ticket a comment goes on.
        #[serde(default)]
        ticket_id: Option<u64>,
        #[serde(default)]
        fields: Map<String, Json>,
        #[serde(default)]
        at: Option<At>,
    },
    Update {
        stream: StreamName,
        id: u64,
        #[serde(default)]
        fields: Map<String, Json>,
        #[serde(default)]
        at: Option<At>,
        /// A system update (an automation, a side-conversation sync): the ticket's
        /// `generated_timestamp` moves, its `updated_at` does not.
        #[serde(default)]
        system_only: bool,
    },
    Delete {
        stream: StreamName,
        id: u64,
        #[serde(default)]
        at: Option<At>,
    },
}

fn resolve(at: &Option<At>, now: i64) -> Result<i64, WriteError> {
    match at {
        None => Ok(now),
        Some(At::Unix(s)) => Ok(*s),
        Some(At::Text(text)) => parse_iso(text).ok_or_else(|| {
            WriteError::Refused(format!(
                "at must be Unix seconds or an RFC 3339 time, not {text:?}"
            ))
        }),
    }
}

fn not_before(last: i64, at: i64) -> Result<(), WriteError> {
    match at < last {
        true => Err(WriteError::Refused(format!(
            "at {} is earlier than the record's last change ({}); Zendesk's clock only moves forward",
            iso(at),
            iso(last)
        ))),
        false => Ok(()),
    }
}

/// Applies `op`; the answer names the record and the time written.
pub fn apply(shared: &Shared, op: &Op) -> Result<Json, WriteError> {
    let now = shared.clock.now();
    let mut store = shared.store.write().expect("store lock");
    let admin = shared.admin_id;
    match op {
        Op::Insert {
            stream,
            ticket_id,
            fields,
            at,
        } => {
            let at = resolve(at, now)?;
            match stream {
                StreamName::Tickets => insert_ticket(&mut store, admin, fields, at),
                StreamName::TicketComments => {
                    let ticket_id = ticket_id.ok_or_else(|| {
                        WriteError::Refused("a ticket_comments insert needs ticket_id".into())
                    })?;
                    insert_comment(&mut store, admin, ticket_id, fields, at)
                }
                StreamName::Users => insert_user(&mut store, fields, at),
            }
        }
        Op::Update {
            stream,
            id,
            fields,
            at,
            system_only,
        } => {
            let at = resolve(at, now)?;
            match stream {
                StreamName::Tickets => update_ticket(&mut store, *id, fields, at, *system_only),
                StreamName::Users => update_user(&mut store, *id, fields, at),
                StreamName::TicketComments => Err(WriteError::Refused(
                    "comments cannot be changed once made (Zendesk only redacts them)".into(),
                )),
            }
        }
        Op::Delete { stream, id, at } => {
            let at = resolve(at, now)?;
            match stream {
                StreamName::Tickets => delete_ticket(&mut store, *id, at),
                StreamName::Users if *id == admin => Err(WriteError::Refused(
                    "the admin user cannot be deleted: the API token and OAuth grants act as it"
                        .into(),
                )),
                StreamName::Users => delete_user(&mut store, *id, at),
                StreamName::TicketComments => Err(WriteError::Refused(
                    "comments cannot be deleted (delete their ticket)".into(),
                )),
            }
        }
    }
}

fn written(id: u64, at: i64) -> Json {
    json!({"id": id, "at": at, "at_iso": iso(at)})
}

fn live_ticket(store: &Store, id: u64) -> Result<Ticket, WriteError> {
    match store.tickets.get(&id) {
        Some(t) if t.status != Status::Deleted => Ok(t.clone()),
        Some(_) => Err(WriteError::Refused(format!("ticket {id} is deleted"))),
        None => Err(WriteError::Missing {
            stream: "tickets",
            id,
        }),
    }
}

fn insert_ticket(
    store: &mut Store,
    admin: u64,
    fields: &Map<String, Json>,
    at: i64,
) -> Result<Json, WriteError> {
    let mut ticket = Ticket {
        id: 0,
        subject: "(no subject)".into(),
        description: String::new(),
        status: Status::New,
        priority: None,
        requester_id: admin,
        assignee_id: None,
        tags: Vec::new(),
        created_at: at,
        updated_at: at,
        generated_timestamp: at,
    };
    store.apply_ticket_fields(&mut ticket, fields)?;
    if ticket.description.is_empty() {
        ticket.description = ticket.subject.clone();
    }
    ticket.id = store.next_ticket_id();
    let comment_id = store.next_comment_id();
    store.comments.insert(
        (ticket.id, comment_id),
        Comment {
            id: comment_id,
            ticket_id: ticket.id,
            author_id: ticket.requester_id,
            body: ticket.description.clone(),
            public: true,
            created_at: at,
        },
    );
    let id = ticket.id;
    store.put_ticket(ticket);
    Ok(written(id, at))
}

fn insert_comment(
    store: &mut Store,
    admin: u64,
    ticket_id: u64,
    fields: &Map<String, Json>,
    at: i64,
) -> Result<Json, WriteError> {
    let mut ticket = live_ticket(store, ticket_id)?;
    not_before(ticket.generated_timestamp, at)?;
    let field = |name: &str, problem: &str| WriteError::Field {
        stream: "ticket_comments",
        field: name.to_string(),
        problem: problem.to_string(),
    };
    let (mut body, mut author, mut public) = (None, admin, true);
    for (name, value) in fields {
        match name.as_str() {
            "body" => {
                body = Some(
                    value
                        .as_str()
                        .ok_or_else(|| field(name, "must be a string"))?,
                )
            }
            "author_id" => {
                author = value
                    .as_u64()
                    .filter(|id| store.users.contains_key(id))
                    .ok_or_else(|| field(name, "must be the id of a user"))?
            }
            "public" => {
                public = value
                    .as_bool()
                    .ok_or_else(|| field(name, "must be true or false"))?
            }
            other => {
                return Err(field(
                    other,
                    "unknown field (known: body, author_id, public)",
                ));
            }
        }
    }
    let body = body
        .filter(|b| !b.is_empty())
        .ok_or_else(|| field("body", "is required and not empty"))?
        .to_string();
    let id = store.next_comment_id();
    store.comments.insert(
        (ticket_id, id),
        Comment {
            id,
            ticket_id,
            author_id: author,
            body,
            public,
            created_at: at,
        },
    );
    // A comment is a ticket update: both of the ticket's clocks move.
    ticket.updated_at = at;
    ticket.generated_timestamp = at;
    store.put_ticket(ticket);
    Ok(written(id, at))
}

fn update_ticket(
    store: &mut Store,
    id: u64,
    fields: &Map<String, Json>,
    at: i64,
    system_only: bool,
) -> Result<Json, WriteError> {
    let mut ticket = live_ticket(store, id)?;
    not_before(ticket.generated_timestamp, at)?;
    store.apply_ticket_fields(&mut ticket, fields)?;
    ticket.generated_timestamp = at;
    if !system_only {
        ticket.updated_at = at;
    }
    store.put_ticket(ticket);
    Ok(written(id, at))
}

fn delete_ticket(store: &mut Store, id: u64, at: i64) -> Result<Json, WriteError> {
    let mut ticket = live_ticket(store, id)?;
    not_before(ticket.generated_timestamp, at)?;
    ticket.status = Status::Deleted;
    ticket.updated_at = at;
    ticket.generated_timestamp = at;
    store.put_ticket(ticket);
    Ok(written(id, at))
}

fn insert_user(store: &mut Store, fields: &Map<String, Json>, at: i64) -> Result<Json, WriteError> {
    let mut user = User {
        id: 0,
        name: String::new(),
        email: String::new(),
        role: "end-user".into(),
        active: true,
        created_at: at,
        updated_at: at,
    };
    store.apply_user_fields(&mut user, fields)?;
    if user.name.is_empty() || user.email.is_empty() {
        return Err(WriteError::Refused(
            "a users insert needs fields name and email".into(),
        ));
    }
    user.id = store.next_user_id();
    let id = user.id;
    store.put_user(user);
    Ok(written(id, at))
}

fn live_user(store: &Store, id: u64) -> Result<User, WriteError> {
    match store.users.get(&id) {
        Some(u) if u.active => Ok(u.clone()),
        Some(_) => Err(WriteError::Refused(format!("user {id} is deleted"))),
        None => Err(WriteError::Missing {
            stream: "users",
            id,
        }),
    }
}

fn update_user(
    store: &mut Store,
    id: u64,
    fields: &Map<String, Json>,
    at: i64,
) -> Result<Json, WriteError> {
    let mut user = live_user(store, id)?;
    not_before(user.updated_at, at)?;
    store.apply_user_fields(&mut user, fields)?;
    user.updated_at = at;
    store.put_user(user);
    Ok(written(id, at))
}

fn delete_user(store: &mut Store, id: u64, at: i64) -> Result<Json, WriteError> {
    let mut user = live_user(store, id)?;
    not_before(user.updated_at, at)?;
    user.active = false;
    user.updated_at = at;
    store.put_user(user);
    Ok(written(id, at))
}
