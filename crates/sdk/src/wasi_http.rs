//! The one `wasi:http/outgoing-handler` client of Sluice's guests.
//!
//! [`send`] sends exactly the request it is given and reads the whole response, and [`start`]
//! hands it over without waiting, for a guest that overlaps its work with the round trip; the
//! connector-facing [`crate::Host`] adds defaults on top (see `guest.rs`). [`exchange`] is the
//! layer below, for a guest that must build the `outgoing-request` itself (a test guest
//! probing the host's policy with an authority no URL parser would keep): it hands the request
//! over, writes the body and reads the response. The body is written after the request is
//! handed over, because it streams through a bounded buffer nobody drains before the request
//! is in flight.

use crate::http::{Method as HttpMethod, Request, Response, StreamedResponse, TransportError};
use crate::wit::wasi::http::types::{
    Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::wit::wasi::io::streams::StreamError;

/// The wasi:http error a request ended with, as the host reported it.
pub use crate::wit::wasi::http::types::ErrorCode;
/// The generated `wasi:http` and `wasi:io` bindings [`exchange`] works on.
pub use crate::wit::wasi::{http::outgoing_handler, http::types, io::streams};

/// Most bytes reserved up front from a `Content-Length` (a larger body still reads in full).
const MAX_PRESIZE: usize = 64 << 20;
/// Bytes asked for per read of a response body.
const READ_CHUNK: u64 = 1 << 20;
/// Most bytes one blocking write may carry (wasi:io's limit).
const WRITE_CHUNK: usize = 4096;

/// Sends `request` through the host's `wasi:http` with exactly its headers and reads the
/// whole response.
pub fn send(request: Request) -> Result<Response, ErrorCode> {
    exchange(outgoing_request(&request)?, request.body.as_deref())
}

/// Hands `request` to the host and returns without waiting: the host carries it while the
/// guest works, and [`Sent::read`] then waits for the whole response.
pub fn start(request: Request) -> Result<Sent, ErrorCode> {
    let pending = dispatch(outgoing_request(&request)?, request.body.as_deref())?;
    Ok(Sent(pending))
}

/// A request the host is carrying; dropping it cancels the request.
pub struct Sent(types::FutureIncomingResponse);

impl Sent {
    /// Waits for the response and reads its whole body.
    pub fn read(self) -> Result<Response, ErrorCode> {
        let (status, headers, body) = head(self.0)?;
        read_whole(status, headers, body)
    }
}

/// Sends `request` like [`send`] but hands the body back unread: a reader that pulls it from
/// the host as the caller consumes it.
pub fn send_streamed(request: Request) -> Result<StreamedResponse, ErrorCode> {
    let (status, headers, body) = hand_over(outgoing_request(&request)?, request.body.as_deref())?;
    let stream = body
        .stream()
        .map_err(|_| internal("response stream taken twice"))?;
    Ok(StreamedResponse {
        status,
        headers,
        body: Box::new(BodyReader {
            stream: Some(stream),
            body: Some(body),
        }),
    })
}

/// A response body read through `wasi:io` on demand.
struct BodyReader {
    // Dropped before `body`: a stream is a child of the body it was taken from.
    stream: Option<streams::InputStream>,
    body: Option<IncomingBody>,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(stream) = &self.stream else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(READ_CHUNK);
        match stream.blocking_read(want) {
            Ok(chunk) => {
                buf[..chunk.len()].copy_from_slice(&chunk);
                Ok(chunk.len())
            }
            Err(StreamError::Closed) => {
                self.stream = None;
                if let Some(body) = self.body.take() {
                    IncomingBody::finish(body);
                }
                Ok(0)
            }
            Err(StreamError::LastOperationFailed(e)) => {
                Err(std::io::Error::other(e.to_debug_string()))
            }
        }
    }
}

/// Hands `outgoing` to the host, writes `payload` as its body, and reads the whole response.
pub fn exchange(outgoing: OutgoingRequest, payload: Option<&[u8]>) -> Result<Response, ErrorCode> {
    let (status, headers, body) = hand_over(outgoing, payload)?;
    read_whole(status, headers, body)
}

/// Reads the whole of a response's `body`.
fn read_whole(
    status: u16,
    headers: Vec<(String, String)>,
    body: IncomingBody,
) -> Result<Response, ErrorCode> {
    // One allocation for the whole body when its length is known (pages are megabytes).
    let expected = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_PRESIZE);
    let stream = body
        .stream()
        .map_err(|_| internal("response stream taken twice"))?;
    let mut bytes = Vec::with_capacity(expected);
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(ErrorCode::InternalError(Some(e.to_debug_string())));
            }
        }
    }
    drop(stream);
    IncomingBody::finish(body);
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

/// A response's status, headers and unread body.
type Head = (u16, Vec<(String, String)>, IncomingBody);

/// Hands `outgoing` to the host, writes `payload` as its body, and waits for the response's
/// head.
fn hand_over(outgoing: OutgoingRequest, payload: Option<&[u8]>) -> Result<Head, ErrorCode> {
    head(dispatch(outgoing, payload)?)
}

/// Hands `outgoing` to the host and writes `payload` as its body; the response is pending.
fn dispatch(
    outgoing: OutgoingRequest,
    payload: Option<&[u8]>,
) -> Result<types::FutureIncomingResponse, ErrorCode> {
    let body = outgoing
        .body()
        .map_err(|_| internal("request body taken twice"))?;
    let pending = outgoing_handler::handle(outgoing, None)?;
    if let Some(bytes) = payload {
        let stream = body
            .write()
            .map_err(|_| internal("request body stream taken twice"))?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| internal(&format!("writing the request body: {e:?}")))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(body, None)?;
    Ok(pending)
}

/// Waits for the head of the response `pending` will produce.
fn head(pending: types::FutureIncomingResponse) -> Result<Head, ErrorCode> {
    let incoming = loop {
        match pending.get() {
            Some(result) => break result.map_err(|_| internal("response taken twice"))??,
            None => pending.subscribe().block(),
        }
    };
    let status = incoming.status();
    let headers: Vec<(String, String)> = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = incoming
        .consume()
        .map_err(|_| internal("response body taken twice"))?;
    Ok((status, headers, body))
}

/// The request's method, URL and headers as a wasi:http outgoing request.
fn outgoing_request(request: &Request) -> Result<OutgoingRequest, ErrorCode> {
    let url = url::Url::parse(&request.url).map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone().into_bytes()))
        .collect();
    let fields = Fields::from_list(&headers)
        .map_err(|e| ErrorCode::InternalError(Some(format!("bad header: {e:?}"))))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match request.method {
        HttpMethod::Get => Method::Get,
        HttpMethod::Post => Method::Post,
        HttpMethod::Patch => Method::Patch,
        HttpMethod::Delete => Method::Delete,
    };
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let authority = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(ErrorCode::HttpRequestUriInvalid),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let invalid = |_| ErrorCode::HttpRequestUriInvalid;
    outgoing
        .set_method(&method)
        .map_err(|_| ErrorCode::HttpRequestMethodInvalid)?;
    outgoing.set_scheme(Some(&scheme)).map_err(invalid)?;
    outgoing.set_authority(Some(&authority)).map_err(invalid)?;
    outgoing.set_path_with_query(Some(&path)).map_err(invalid)?;
    Ok(outgoing)
}

/// Where a wasi:http failure leaves the caller: the request to `target` produced no response.
pub fn transport_error(target: &str, code: ErrorCode) -> TransportError {
    let detail = format!("{code:?}");
    match code {
        ErrorCode::HttpRequestDenied => TransportError::Denied(target.to_string()),
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => TransportError::Unreachable {
            target: target.to_string(),
            detail,
        },
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => TransportError::Timeout(target.to_string()),
        ErrorCode::HttpResponseBodySize(_) => TransportError::ResponseTooLarge(target.to_string()),
        _ => TransportError::Other(detail),
    }
}

fn internal(what: &str) -> ErrorCode {
    ErrorCode::InternalError(Some(what.to_string()))
}
