//! A query rendezvous (`/__emulator/rendezvous`): SOQL queries on a set of objects are held
//! until a query on every object of the set has arrived, so a client passes only when it
//! queries those objects at the same time. It proves concurrency without measuring time:
//! a client that queries one object after another waits for a query that never comes, and
//! its held query fails once the timeout passes.
//!
//! Only the first request of a query is held (`/query?q=` and `/queryAll?q=`, whose `FROM`
//! names the object), never a `nextRecordsUrl` follow-up. Once every object has arrived the
//! rendezvous is met and lets everything through; a timeout calls it off (later queries pass)
//! and answers the held query 400 `REQUEST_RUNNING_TOO_LONG`, Salesforce's code for a request
//! stopped for running too long.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use tokio::sync::watch;

use crate::state::Shared;

/// The longest a held query may wait.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// A rendezvous and what it has seen, as `GET /__emulator/rendezvous` shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Meeting {
    /// Whether queries on `objects` are held now.
    pub armed: bool,
    /// The objects that must all be queried (describe names).
    pub objects: BTreeSet<String>,
    /// Those queried so far.
    pub arrived: BTreeSet<String>,
    /// Whether every object arrived (the held queries were released).
    pub met: bool,
    /// Held queries answered with an error because the timeout passed.
    pub timed_out: u64,
    /// How long a query is held, in milliseconds.
    pub timeout_ms: u64,
}

/// The emulator's rendezvous; held queries watch it change.
#[derive(Debug)]
pub struct Rendezvous {
    meeting: watch::Sender<Meeting>,
}

impl Default for Rendezvous {
    fn default() -> Self {
        Self {
            meeting: watch::Sender::new(Meeting::default()),
        }
    }
}

/// What a query on an object gets from the rendezvous.
enum Admission {
    /// Served now.
    Pass,
    /// Held until the meeting is met or called off, at most this long.
    Hold(Duration),
}

impl Rendezvous {
    /// Arms a rendezvous of `objects` (describe names, at least two), replacing any other.
    pub fn arm(&self, objects: BTreeSet<String>, timeout: Duration) -> Meeting {
        let meeting = Meeting {
            armed: true,
            objects,
            timeout_ms: timeout.as_millis() as u64,
            ..Meeting::default()
        };
        self.meeting.send_replace(meeting.clone());
        meeting
    }

    /// Calls the rendezvous off: nothing is held any more.
    pub fn disarm(&self) -> Meeting {
        self.meeting.send_modify(|m| m.armed = false);
        self.snapshot()
    }

    /// The rendezvous as it stands.
    pub fn snapshot(&self) -> Meeting {
        self.meeting.borrow().clone()
    }

    /// Notes that a query on `object` arrived; meets the rendezvous when it was the last
    /// one missing.
    fn arrive(&self, object: &str) -> Admission {
        let mut admission = Admission::Pass;
        self.meeting.send_if_modified(|m| {
            let Some(name) = m.objects.iter().find(|o| o.eq_ignore_ascii_case(object)) else {
                return false;
            };
            if !m.armed || m.met {
                return false;
            }
            m.arrived.insert(name.clone());
            m.met = m.arrived.len() == m.objects.len();
            if !m.met {
                admission = Admission::Hold(Duration::from_millis(m.timeout_ms));
            }
            true
        });
        admission
    }

    /// Waits until the rendezvous is met or called off; false when `timeout` passed first,
    /// which calls it off.
    async fn wait(&self, timeout: Duration) -> bool {
        let mut changes = self.meeting.subscribe();
        let released = changes.wait_for(|m| m.met || !m.armed);
        if matches!(tokio::time::timeout(timeout, released).await, Ok(Ok(_))) {
            return true;
        }
        self.meeting.send_modify(|m| {
            m.armed = false;
            m.timed_out += 1;
        });
        false
    }
}

/// Holds a query on an object of an armed rendezvous (see the module doc).
pub async fn hold(State(state): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Some(object) = queried_object(&req) else {
        return next.run(req).await;
    };
    if let Admission::Hold(timeout) = state.rendezvous.arrive(&object)
        && !state.rendezvous.wait(timeout).await
    {
        return crate::rest::api_error(
            400,
            "REQUEST_RUNNING_TOO_LONG",
            "Your request was running for too long, and has been stopped.",
        );
    }
    next.run(req).await
}

/// The object a query request names in its top-level `FROM`, if `req` opens a query.
fn queried_object(req: &Request) -> Option<String> {
    let path = req.uri().path().trim_end_matches('/');
    let opens_query = path.starts_with("/services/data/v")
        && (path.ends_with("/query") || path.ends_with("/queryAll"));
    if !opens_query {
        return None;
    }
    let query = req.uri().query()?;
    let soql = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.into_owned())?;
    from_object(&soql)
}

/// The identifier after the `FROM` outside parentheses and string literals.
pub fn from_object(soql: &str) -> Option<String> {
    let mut depth = 0i32;
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = soql.chars();
    let flush = |word: &mut String, words: &mut Vec<String>| {
        if !word.is_empty() {
            words.push(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                flush(&mut word, &mut words);
                // Skip the literal, escapes included.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => drop(chars.next()),
                        '\'' => break,
                        _ => {}
                    }
                }
            }
            '(' => {
                flush(&mut word, &mut words);
                depth += 1;
            }
            ')' => {
                flush(&mut word, &mut words);
                depth -= 1;
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                if depth == 0 {
                    word.push(c);
                }
            }
            _ => flush(&mut word, &mut words),
        }
    }
    flush(&mut word, &mut words);
    let at = words.iter().position(|w| w.eq_ignore_ascii_case("from"))?;
    words.get(at + 1).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_is_the_top_level_from_not_a_subquery_or_a_literal() {
        assert_eq!(
            from_object("SELECT Id FROM Account WHERE Name = 'x'").as_deref(),
            Some("Account")
        );
        assert_eq!(
            from_object(
                "SELECT Id, (SELECT Id FROM Contacts) FROM Account WHERE Name = 'a from b\\' (c'"
            )
            .as_deref(),
            Some("Account")
        );
        assert_eq!(
            from_object("select count() from case").as_deref(),
            Some("case")
        );
        assert_eq!(from_object("SELECT Id"), None);
    }
}
