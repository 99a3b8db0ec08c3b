//! A connector's only way out: an HTTP exchange through the host.
//!
//! A connector calls [`Host::send`]; inside the sandbox that is `wasi:http/outgoing-handler`,
//! natively it is whatever client the caller supplies (the fake host in unit tests, the
//! `native` feature's reqwest client in benchmarks). Neither path ever gives the connector a
//! credential: the host adds `Authorization` itself.

use crate::model::Level;

/// An HTTP method a connector uses.
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
        Self::new(Method::Get, url)
    }

    /// A request of `method` to `url` with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
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

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
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
        header_in(&self.headers, name)
    }
}

/// A response whose body is read as it arrives, so a large body (a Bulk results chunk) never
/// sits in memory whole next to what the connector makes of it.
pub struct StreamedResponse {
    /// The HTTP status.
    pub status: u16,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, read on demand.
    pub body: Box<dyn std::io::Read>,
}

impl StreamedResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Reads the rest of the body and returns the whole response.
    pub fn into_response(mut self) -> Result<Response, std::io::Error> {
        let mut body = Vec::new();
        self.body.read_to_end(&mut body)?;
        Ok(Response {
            status: self.status,
            headers: self.headers,
            body,
        })
    }
}

impl std::fmt::Debug for StreamedResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl From<Response> for StreamedResponse {
    fn from(r: Response) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: Box::new(std::io::Cursor::new(r.body)),
        }
    }
}

fn header_in<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
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

/// A request on its way: sent by [`Host::start`], its response read by [`InFlight::wait`].
///
/// Dropping it abandons the request (the sandbox's host cancels it); the provider may still
/// have counted it.
pub struct InFlight(Box<dyn FnOnce() -> Result<Response, TransportError>>);

impl InFlight {
    /// A request already answered (a host that cannot overlap requests answers at once).
    pub fn ready(result: Result<Response, TransportError>) -> Self {
        Self(Box::new(move || result))
    }

    /// A request whose answer `wait` blocks for.
    pub fn pending(wait: impl FnOnce() -> Result<Response, TransportError> + 'static) -> Self {
        Self(Box::new(wait))
    }

    /// Blocks until the whole response has arrived.
    pub fn wait(self) -> Result<Response, TransportError> {
        (self.0)()
    }
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

/// What a connector's logic needs from its surroundings: HTTP, logs, the host's stored keys
/// and a clock.
pub trait Host {
    /// Sends one request and reads the whole response.
    fn send(&mut self, request: Request) -> Result<Response, TransportError>;
    /// Sends one request and returns at once, so the connector can work on an earlier answer
    /// while this one travels. By default the request is answered before this returns.
    fn start(&mut self, request: Request) -> InFlight {
        InFlight::ready(self.send(request))
    }
    /// Sends one request and hands back its body unread, to be read as it arrives. By
    /// default the body is read whole first; the sandbox's host streams it.
    fn send_streamed(&mut self, request: Request) -> Result<StreamedResponse, TransportError> {
        self.send(request).map(StreamedResponse::from)
    }
    /// Writes a structured log line.
    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]);
    /// Keys the host stores as live for the stream being pulled, ascending, after `after`.
    fn stored_keys(&mut self, after: Option<&str>, limit: u32) -> Vec<String>;
    /// The local wall clock, UTC millis, when there is one.
    fn now_ms(&mut self) -> Option<i64> {
        None
    }
}

#[cfg(any(target_arch = "wasm32", feature = "native"))]
/// The wall clock in UTC millis, or None before 1970 or past i64 millis.
pub(crate) fn system_now_ms() -> Option<i64> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    i64::try_from(since.as_millis()).ok()
}
