//! The account's records (tickets, their comments, users) and their JSON as Zendesk's API
//! writes it.
//!
//! A ticket carries two clocks, as on Zendesk: `updated_at` moves with changes that make a
//! ticket event, `generated_timestamp` with every change, system updates included. The
//! incremental ticket export orders and filters by `generated_timestamp`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json, json};

use crate::clock::iso;

/// Ticket statuses, as Zendesk names them; `Deleted` only ever appears in exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    New,
    Open,
    Pending,
    Hold,
    Solved,
    Closed,
    Deleted,
}

impl Status {
    /// The statuses a write may set (deleting is its own operation).
    pub const WRITABLE: &[Status] = &[
        Status::New,
        Status::Open,
        Status::Pending,
        Status::Hold,
        Status::Solved,
        Status::Closed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Pending => "pending",
            Status::Hold => "hold",
            Status::Solved => "solved",
            Status::Closed => "closed",
            Status::Deleted => "deleted",
        }
    }

    fn parse_writable(text: &str) -> Option<Status> {
        Status::WRITABLE.iter().copied().find(|s| s.name() == text)
    }
}

/// Ticket priorities (`None` is JSON `null`).
pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];

/// User roles.
pub const ROLES: &[&str] = &["end-user", "agent", "admin"];

#[derive(Clone, Debug)]
pub struct Ticket {
    pub id: u64,
    pub subject: String,
    pub description: String,
    pub status: Status,
    pub priority: Option<String>,
    pub requester_id: u64,
    pub assignee_id: Option<u64>,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub generated_timestamp: i64,
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub role: String,
    /// False once deleted.
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug)]
pub struct Comment {
    pub id: u64,
    pub ticket_id: u64,
    pub author_id: u64,
    pub body: String,
    pub public: bool,
    pub created_at: i64,
}

/// Every record of the account.
#[derive(Debug, Default)]
pub struct Store {
    pub tickets: BTreeMap<u64, Ticket>,
    pub users: BTreeMap<u64, User>,
    /// Keyed by `(ticket_id, comment id)`: a ticket's comments are one range.
    pub comments: BTreeMap<(u64, u64), Comment>,
    /// Tickets in export order: `(generated_timestamp, id)`.
    pub ticket_order: BTreeSet<(i64, u64)>,
    /// Users in export order: `(updated_at, id)`.
    pub user_order: BTreeSet<(i64, u64)>,
    next_ticket_id: u64,
    next_user_id: u64,
    next_comment_id: u64,
}

/// Why a write was refused; the message names the field and the rule.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{stream} field {field:?}: {problem}")]
    Field {
        stream: &'static str,
        field: String,
        problem: String,
    },
    #[error("no {stream} with id {id}")]
    Missing { stream: &'static str, id: u64 },
    #[error("{0}")]
    Refused(String),
}

fn field_error(stream: &'static str, field: &str, problem: impl Into<String>) -> WriteError {
    WriteError::Field {
        stream,
        field: field.to_string(),
        problem: problem.into(),
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            next_ticket_id: 1,
            next_user_id: 360_000_001,
            next_comment_id: 900_000_001,
            ..Store::default()
        }
    }

    pub fn next_ticket_id(&mut self) -> u64 {
        let id = self.next_ticket_id;
        self.next_ticket_id += 1;
        id
    }

    pub fn next_user_id(&mut self) -> u64 {
        let id = self.next_user_id;
        self.next_user_id += 1;
        id
    }

    pub fn next_comment_id(&mut self) -> u64 {
        let id = self.next_comment_id;
        self.next_comment_id += 1;
        id
    }

    /// Stores `ticket` (new or changed), keeping the export order.
    pub fn put_ticket(&mut self, ticket: Ticket) {
        if let Some(old) = self.tickets.get(&ticket.id) {
            self.ticket_order.remove(&(old.generated_timestamp, old.id));
        }
        self.ticket_order
            .insert((ticket.generated_timestamp, ticket.id));
        self.tickets.insert(ticket.id, ticket);
    }

    /// Stores `user` (new or changed), keeping the export order.
    pub fn put_user(&mut self, user: User) {
        if let Some(old) = self.users.get(&user.id) {
            self.user_order.remove(&(old.updated_at, old.id));
        }
        self.user_order.insert((user.updated_at, user.id));
        self.users.insert(user.id, user);
    }

    /// The comments of one ticket, oldest first.
    pub fn comments_of(&self, ticket_id: u64) -> impl Iterator<Item = &Comment> {
        self.comments
            .range((ticket_id, 0)..=(ticket_id, u64::MAX))
            .map(|(_, c)| c)
    }

    fn require_user(&self, stream: &'static str, field: &str, id: u64) -> Result<(), WriteError> {
        match self.users.get(&id) {
            Some(_) => Ok(()),
            None => Err(field_error(stream, field, format!("no user with id {id}"))),
        }
    }

    /// Applies `fields` to `ticket` (validated against the users this store holds).
    pub fn apply_ticket_fields(
        &self,
        ticket: &mut Ticket,
        fields: &Map<String, Json>,
    ) -> Result<(), WriteError> {
        const S: &str = "tickets";
        for (name, value) in fields {
            match name.as_str() {
                "subject" => ticket.subject = text(S, name, value)?,
                "description" => ticket.description = text(S, name, value)?,
                "status" => {
                    let wanted = text(S, name, value)?;
                    ticket.status = Status::parse_writable(&wanted).ok_or_else(|| {
                        field_error(
                            S,
                            name,
                            "must be one of new, open, pending, hold, solved, closed (delete a ticket with the delete op)",
                        )
                    })?;
                }
                "priority" => {
                    ticket.priority = match value {
                        Json::Null => None,
                        Json::String(p) if PRIORITIES.contains(&p.as_str()) => Some(p.clone()),
                        _ => {
                            return Err(field_error(
                                S,
                                name,
                                "must be null or one of low, normal, high, urgent",
                            ));
                        }
                    }
                }
                "requester_id" => {
                    let id = id_value(S, name, value)?;
                    self.require_user(S, name, id)?;
                    ticket.requester_id = id;
                }
                "assignee_id" => {
                    ticket.assignee_id = match value {
                        Json::Null => None,
                        _ => {
                            let id = id_value(S, name, value)?;
                            self.require_user(S, name, id)?;
                            Some(id)
                        }
                    }
                }
                "tags" => ticket.tags = tags(S, name, value)?,
                other => {
                    return Err(field_error(
                        S,
                        other,
                        "unknown field (known: subject, description, status, priority, requester_id, assignee_id, tags)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies `fields` to `user`.
    pub fn apply_user_fields(
        &self,
        user: &mut User,
        fields: &Map<String, Json>,
    ) -> Result<(), WriteError> {
        const S: &str = "users";
        for (name, value) in fields {
            match name.as_str() {
                "name" => user.name = text(S, name, value)?,
                "email" => {
                    let email = text(S, name, value)?;
                    if !email.contains('@') {
                        return Err(field_error(S, name, "must be an email address"));
                    }
                    user.email = email;
                }
                "role" => {
                    let role = text(S, name, value)?;
                    if !ROLES.contains(&role.as_str()) {
                        return Err(field_error(S, name, "must be end-user, agent or admin"));
                    }
                    user.role = role;
                }
                other => {
                    return Err(field_error(
                        S,
                        other,
                        "unknown field (known: name, email, role)",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn text(stream: &'static str, field: &str, value: &Json) -> Result<String, WriteError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| field_error(stream, field, "must be a string"))
}

fn id_value(stream: &'static str, field: &str, value: &Json) -> Result<u64, WriteError> {
    value
        .as_u64()
        .ok_or_else(|| field_error(stream, field, "must be a positive integer id"))
}

fn tags(stream: &'static str, field: &str, value: &Json) -> Result<Vec<String>, WriteError> {
    let items = value
        .as_array()
        .ok_or_else(|| field_error(stream, field, "must be an array of strings"))?;
    items
        .iter()
        .map(|t| {
            t.as_str()
                .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace))
                .map(str::to_string)
                .ok_or_else(|| {
                    field_error(stream, field, "tags are non-empty strings without spaces")
                })
        })
        .collect()
}

/// A ticket's JSON, as the tickets API and the incremental export write it.
pub fn ticket_json(origin: &str, t: &Ticket) -> Json {
    json!({
        "url": format!("{origin}/api/v2/tickets/{}.json", t.id),
        "id": t.id,
        "external_id": null,
        "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": null}},
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
        "generated_timestamp": t.generated_timestamp,
        "type": null,
        "subject": t.subject,
        "raw_subject": t.subject,
        "description": t.description,
        "priority": t.priority,
        "status": t.status.name(),
        "recipient": null,
        "requester_id": t.requester_id,
        "submitter_id": t.requester_id,
        "assignee_id": t.assignee_id,
        "organization_id": null,
        "group_id": null,
        "tags": t.tags,
        "is_public": true,
    })
}

/// A user's JSON.
pub fn user_json(origin: &str, u: &User) -> Json {
    json!({
        "id": u.id,
        "url": format!("{origin}/api/v2/users/{}.json", u.id),
        "name": u.name,
        "email": u.email,
        "created_at": iso(u.created_at),
        "updated_at": iso(u.updated_at),
        "time_zone": "UTC",
        "locale": "en-US",
        "role": u.role,
        "active": u.active,
        "verified": true,
        "suspended": false,
    })
}

/// A comment's JSON, as `/api/v2/tickets/{id}/comments` writes it.
pub fn comment_json(c: &Comment) -> Json {
    json!({
        "id": c.id,
        "type": "Comment",
        "author_id": c.author_id,
        "body": c.body,
        "html_body": format!("<div class=\"zd-comment\" dir=\"auto\"><p dir=\"auto\">{}</p></div>", escape_html(&c.body)),
        "plain_body": c.body,
        "public": c.public,
        "attachments": [],
        "audit_id": c.id + 1,
        "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": null}},
        "created_at": iso(c.created_at),
    })
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
