//! When the outbound client sends a request again: bounded exponential backoff for transient
//! failures (5xx, 429, a manifest's `retry-statuses`, connections reset or closed before an
//! answer) of idempotent requests, honouring a short `Retry-After`.

use std::time::Duration;

use http::{Method, StatusCode};
use wasmtime_wasi_http::Error as HttpError;

use crate::backoff::Backoff;

/// Bounded exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The delay before the first retry (before jitter).
    pub base_delay: Duration,
    /// No delay exceeds this; a `Retry-After` beyond it is not waited for.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based): `base * 2^retry`, capped, with the
    /// upper half jittered ("equal jitter").
    pub fn delay(&self, retry: u32) -> Duration {
        Backoff {
            base: self.base_delay,
            max: self.max_delay,
        }
        .jittered(retry)
    }
}

/// Methods whose repetition has the effect of one request (RFC 9110 §9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}

/// 5xx and 429, for every provider; a manifest adds its own (`retry-statuses`).
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Connection resets and connections closed before a response.
pub(crate) fn is_transient_error(e: &HttpError) -> bool {
    use std::io::ErrorKind::*;
    match e {
        HttpError::Connect(io) => matches!(
            io.kind(),
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
        ),
        HttpError::ConnectionTerminated => true,
        HttpError::Hyper(h) => {
            h.is_incomplete_message()
                || h.is_closed()
                || std::error::Error::source(h)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| {
                        matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
                    })
        }
        _ => false,
    }
}

/// An HTTP/2 request the server refused before processing it: a stream beyond the last one a
/// GOAWAY accepted, or reset with `REFUSED_STREAM`. RFC 9113 §8.7 lets a client send it again,
/// whatever its method.
pub(crate) fn never_processed(e: &hyper::Error) -> bool {
    let Some(h2) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<h2::Error>()) else {
        return false;
    };
    h2.reason() == Some(h2::Reason::REFUSED_STREAM) || (h2.is_go_away() && h2.is_remote())
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
pub(crate) fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        let r = RetryPolicy::default();
        for n in 0..40 {
            let d = r.delay(n);
            assert!(d <= r.max_delay, "{d:?}");
            assert!(d >= r.base_delay.min(r.max_delay) / 2);
        }
    }
}
