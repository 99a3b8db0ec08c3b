//! The heads of recent data-API requests, kept for the control API
//! (`GET /__emulator/requests`), so a test can check what a client really sent: the headers
//! of its Bulk results requests, say, which no answer reveals.
//!
//! Only the last [`KEPT`] requests under `/services/data/` are kept, and the value of
//! `Authorization` is never stored (it is a live access token).

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

use crate::state::Shared;

/// How many request heads are kept; older ones are dropped first.
pub const KEPT: usize = 2_000;

/// What a request's head said.
#[derive(Debug, Clone, Serialize)]
pub struct RequestHead {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path and query, as sent.
    pub path: String,
    /// Header names (lower-case) and values; `authorization` reads `(redacted)`.
    pub headers: Vec<(String, String)>,
}

/// The recent request heads, oldest first.
#[derive(Default)]
pub struct RequestLog {
    heads: VecDeque<RequestHead>,
}

impl RequestLog {
    fn push(&mut self, head: RequestHead) {
        if self.heads.len() == KEPT {
            self.heads.pop_front();
        }
        self.heads.push_back(head);
    }

    /// The kept heads whose path starts with `prefix`, oldest first.
    pub fn matching(&self, prefix: &str) -> Vec<RequestHead> {
        self.heads
            .iter()
            .filter(|h| h.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Forgets every kept head; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.heads.len();
        self.heads.clear();
        n
    }
}

/// Keeps the head of every request under `/services/data/` before it is answered.
pub async fn record(State(state): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path_and_query().map_or("", |p| p.as_str());
    if path.starts_with("/services/data/") {
        let headers = req
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = if name == header::AUTHORIZATION {
                    "(redacted)".to_string()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_string(), value)
            })
            .collect();
        let head = RequestHead {
            method: req.method().to_string(),
            path: path.to_string(),
            headers,
        };
        state.requests.lock().expect("requests lock").push(head);
    }
    next.run(req).await
}
