//! The connector's only way out: an HTTP exchange through the host.
//!
//! The logic calls [`Env::send`]; inside the sandbox that is `wasi:http/outgoing-handler`
//! (see `component.rs`), natively it is whatever client the host's benchmark supplies. Neither
//! path ever gives the connector a credential: the host adds `Authorization` itself.

use crate::model::Level;

/// An HTTP method the connector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// An outgoing request with an absolute URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute URL, already percent-encoded.
    pub url: String,
    /// Header names and values (never `Authorization`: the host owns it).
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A GET of `url` with no headers.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A response with its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The host's policy refused the destination.
    #[error("the host denied the request to {0}")]
    Denied(String),
    /// DNS, connection or TLS failure.
    #[error("could not reach {target}: {detail}")]
    Unreachable {
        /// The destination.
        target: String,
        /// What failed.
        detail: String,
    },
    /// The request timed out.
    #[error("request to {0} timed out")]
    Timeout(String),
    /// The response was larger than the host accepts (counted after decompression).
    #[error(
        "the response from {0} is larger than the host's response size cap (counted after \
         decompression)"
    )]
    ResponseTooLarge(String),
    /// Anything else the transport reported.
    #[error("HTTP transport error: {0}")]
    Other(String),
}

/// What the connector's logic needs from its surroundings.
pub trait Env {
    /// Sends one request and reads the whole response.
    fn send(&mut self, request: Request) -> Result<Response, TransportError>;
    /// Writes a structured log line.
    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]);
    /// Keys the host stores as live for the stream being pulled, ascending, after `after`.
    fn stored_keys(&mut self, after: Option<&str>, limit: u32) -> Vec<String>;
    /// The local wall clock, UTC millis, when there is one (ages of query locators).
    fn now_ms(&mut self) -> Option<i64> {
        None
    }
}
