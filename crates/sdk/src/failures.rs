//! HTTP answers and transport errors mapped to the contract's failure kinds, the same way for
//! every connector, so that a platform can act on a failure without knowing the provider.
//!
//! The host has already refreshed OAuth tokens on a 401 and retried idempotent requests on
//! 429 and 5xx before an answer reaches the connector, so what arrives here is final for this
//! call:
//!
//! | Answer | Kind |
//! |---|---|
//! | 401 | `reauthorization-required` |
//! | 403 | `permission-denied` |
//! | 404 | `misconfigured` (a base URL, subdomain or account id that names nothing) |
//! | 429, or 503 with `Retry-After` | `rate-limited`, with `retry-after-s` from `Retry-After` (seconds or an HTTP date) or 60 s |
//! | 502, 503, 504 | `unreachable` (the provider or its gateway is down) |
//! | other 4xx and 5xx | `unknown` |
//! | DNS, connection, TLS, timeout | `unreachable` |
//! | the host's policy refused the destination | `misconfigured` |
//!
//! A provider with its own error codes (Salesforce's `REQUEST_LIMIT_EXCEEDED` on a 403) checks
//! those first and falls back to [`for_response`].

use crate::http::{Host, Request, Response, TransportError};
use crate::model::{Failure, FailureKind};

/// The pause a rate limit without a usable `Retry-After` asks for, in seconds.
pub const DEFAULT_RETRY_AFTER_S: u32 = 60;
/// Most characters of an error body quoted in a failure's message.
const EXCERPT_CHARS: usize = 200;

/// Sends `request` and returns its response when the status is 2xx or 3xx; otherwise the
/// failure the status maps to. `what` names what was being read, for the message (`tickets`).
pub fn send_checked(
    host: &mut dyn Host,
    request: Request,
    what: &str,
) -> Result<Response, Failure> {
    let target = request.url.clone();
    let now_ms = host.now_ms();
    let response = host.send(request).map_err(|e| for_transport(&e, &target))?;
    match for_response(&response, what, now_ms) {
        Some(failure) => Err(failure),
        None => Ok(response),
    }
}

/// The failure a response stands for, or None when its status is a success (below 400).
/// `now_ms` turns a `Retry-After` date into seconds when the response has no `Date` header.
pub fn for_response(response: &Response, what: &str, now_ms: Option<i64>) -> Option<Failure> {
    let status = response.status;
    if status < 400 {
        return None;
    }
    let detail = detail(response);
    let retry_after = retry_after_s(response, now_ms);
    let (kind, advice) = match status {
        401 => (
            FailureKind::ReauthorizationRequired,
            "the provider rejected the credentials; authorize the integration again or enter a \
             new key",
        ),
        403 => (
            FailureKind::PermissionDenied,
            "the account lacks a permission or the API is disabled for it",
        ),
        404 => (
            FailureKind::Misconfigured,
            "the provider knows no such resource; check the settings that name the account or \
             its address",
        ),
        429 => (
            FailureKind::RateLimited,
            "the provider is limiting requests; the pull resumes after the pause",
        ),
        503 if retry_after.is_some() => (
            FailureKind::RateLimited,
            "the provider asked for a pause; the pull resumes after it",
        ),
        502..=504 => (
            FailureKind::Unreachable,
            "the provider is unavailable; try again later",
        ),
        _ => (FailureKind::Unknown, "the provider refused the request"),
    };
    let message = format!("{what}: HTTP {status}{detail}: {advice}");
    let retry_after_s = match kind {
        FailureKind::RateLimited => Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER_S)),
        _ => None,
    };
    Some(Failure {
        kind,
        message,
        retry_after_s,
    })
}

/// The failure a request that produced no response stands for; `target` is its URL.
pub fn for_transport(error: &TransportError, target: &str) -> Failure {
    match error {
        TransportError::Unreachable { .. } | TransportError::Timeout(_) => Failure::new(
            FailureKind::Unreachable,
            format!("{error}; check the address settings and the network, then try again"),
        ),
        TransportError::Denied(_) => Failure::new(
            FailureKind::Misconfigured,
            format!(
                "the host refused the request to {target}: it is outside the hosts the \
                 connector declared or the operator approved"
            ),
        ),
        TransportError::ResponseTooLarge(_) | TransportError::Other(_) => {
            Failure::new(FailureKind::Unknown, error.to_string())
        }
    }
}

/// Seconds the response's `Retry-After` asks to wait: a number of seconds, or an HTTP date
/// taken against the response's own `Date` (the provider's clock), else `now_ms`. A date in
/// the past is 0; an unreadable value, or a date with no clock to compare it to, is None.
pub fn retry_after_s(response: &Response, now_ms: Option<i64>) -> Option<u32> {
    let value = response.header("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(u32::try_from(seconds).unwrap_or(u32::MAX));
    }
    let at = unix_ms(httpdate::parse_http_date(value).ok()?)?;
    let now = response
        .header("date")
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
        .and_then(unix_ms)
        .or(now_ms)?;
    let wait_ms = (at - now).max(0);
    // Round up: waiting a fraction of a second too little meets the limit again.
    let seconds = (wait_ms + 999) / 1000;
    Some(u32::try_from(seconds).unwrap_or(u32::MAX))
}

fn unix_ms(time: std::time::SystemTime) -> Option<i64> {
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

/// A short, tag-free excerpt of an error body (HTML error pages included), or nothing.
fn detail(response: &Response) -> String {
    let text = String::from_utf8_lossy(&response.body);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                plain.push(' ');
            }
            c if !in_tag && !c.is_control() => plain.push(c),
            _ if !in_tag => plain.push(' '),
            _ => {}
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    if words.is_empty() {
        return String::new();
    }
    let joined = words.join(" ");
    let excerpt: String = joined.chars().take(EXCERPT_CHARS).collect();
    format!(" ({excerpt})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeHost;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn kind_of(status: u16, headers: &[(&str, &str)]) -> Option<(FailureKind, Option<u32>)> {
        for_response(&answer(status, headers, ""), "tickets", None)
            .map(|f| (f.kind, f.retry_after_s))
    }

    #[test]
    fn statuses_map_to_the_contracts_kinds() {
        use FailureKind::*;
        assert_eq!(kind_of(200, &[]), None);
        assert_eq!(kind_of(304, &[]), None);
        assert_eq!(kind_of(401, &[]), Some((ReauthorizationRequired, None)));
        assert_eq!(kind_of(403, &[]), Some((PermissionDenied, None)));
        assert_eq!(kind_of(404, &[]), Some((Misconfigured, None)));
        assert_eq!(kind_of(429, &[]), Some((RateLimited, Some(60))));
        assert_eq!(
            kind_of(429, &[("Retry-After", "7")]),
            Some((RateLimited, Some(7)))
        );
        assert_eq!(
            kind_of(503, &[("retry-after", "120")]),
            Some((RateLimited, Some(120)))
        );
        assert_eq!(kind_of(503, &[]), Some((Unreachable, None)));
        assert_eq!(kind_of(502, &[]), Some((Unreachable, None)));
        assert_eq!(kind_of(500, &[]), Some((Unknown, None)));
        assert_eq!(kind_of(400, &[]), Some((Unknown, None)));
    }

    #[test]
    fn retry_after_dates_count_from_the_providers_clock() {
        let dated = answer(
            429,
            &[
                ("Date", "Wed, 21 Oct 2015 07:28:00 GMT"),
                ("Retry-After", "Wed, 21 Oct 2015 07:29:30 GMT"),
            ],
            "",
        );
        // The local clock is a day off; the provider's Date is the reference.
        let a_day_later = 1_445_412_480_000 + 86_400_000;
        assert_eq!(retry_after_s(&dated, Some(a_day_later)), Some(90));

        let undated = answer(429, &[("Retry-After", "Wed, 21 Oct 2015 07:29:30 GMT")], "");
        assert_eq!(retry_after_s(&undated, Some(1_445_412_480_000)), Some(90));
        assert_eq!(retry_after_s(&undated, Some(1_445_412_570_500)), Some(0));
        assert_eq!(
            retry_after_s(&undated, None),
            None,
            "no clock to compare with"
        );

        let garbage = answer(429, &[("Retry-After", "soon")], "");
        assert_eq!(retry_after_s(&garbage, Some(0)), None);
        let f = for_response(&garbage, "tickets", Some(0)).unwrap();
        assert_eq!(f.retry_after_s, Some(DEFAULT_RETRY_AFTER_S));
        let huge = answer(429, &[("Retry-After", "99999999999")], "");
        assert_eq!(retry_after_s(&huge, None), Some(u32::MAX));
    }

    #[test]
    fn messages_name_the_read_the_status_and_a_clean_excerpt() {
        let page = answer(
            503,
            &[],
            "<html><body><h1>Down for\nmaintenance</h1></body></html>",
        );
        let f = for_response(&page, "users", None).unwrap();
        assert_eq!(
            f.message,
            "users: HTTP 503 (Down for maintenance): the provider is unavailable; try again later"
        );
        let long = answer(400, &[], &"x".repeat(5000));
        let f = for_response(&long, "users", None).unwrap();
        assert!(f.message.len() < 400, "{}", f.message);
    }

    #[test]
    fn transport_errors_map_to_unreachable_or_misconfigured() {
        let dns = TransportError::Unreachable {
            target: "api.example.test".into(),
            detail: "DnsError".into(),
        };
        assert_eq!(
            for_transport(&dns, "https://api.example.test/x").kind,
            FailureKind::Unreachable
        );
        let timeout = TransportError::Timeout("https://api.example.test/x".into());
        assert_eq!(for_transport(&timeout, "").kind, FailureKind::Unreachable);
        let denied = TransportError::Denied("https://evil.test/".into());
        let f = for_transport(&denied, "https://evil.test/");
        assert_eq!(f.kind, FailureKind::Misconfigured);
        assert!(f.message.contains("https://evil.test/"), "{}", f.message);
    }

    #[test]
    fn send_checked_passes_successes_and_maps_the_rest() {
        let mut host = FakeHost {
            now: Some(1_445_412_480_000),
            ..FakeHost::default()
        };
        host.on("/ok", answer(200, &[], "{}"))
            .on(
                "/limited",
                answer(429, &[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")], ""),
            )
            .fail(
                "/gone",
                TransportError::Unreachable {
                    target: "x".into(),
                    detail: "refused".into(),
                },
            );
        let ok = send_checked(&mut host, Request::get("https://x.test/ok"), "t").unwrap();
        assert_eq!(ok.body, b"{}");
        let limited = send_checked(&mut host, Request::get("https://x.test/limited"), "t");
        let limited = limited.unwrap_err();
        assert_eq!(
            (limited.kind, limited.retry_after_s),
            (FailureKind::RateLimited, Some(30))
        );
        let gone = send_checked(&mut host, Request::get("https://x.test/gone"), "t");
        assert_eq!(gone.unwrap_err().kind, FailureKind::Unreachable);
    }
}
