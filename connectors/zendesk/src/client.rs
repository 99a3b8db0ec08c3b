//! Calls to the Zendesk API through the host, and the mapping of HTTP failures to the
//! contract's failure kinds.
//!
//! The host has already refreshed an OAuth token once before a 401 reaches here, so a 401 means
//! a person must sign in again. 429 and 503 carry `Retry-After` (Zendesk's usage-limit and
//! outage answers); the kind and the hint go to the host, which schedules the retry.

use serde_json::Value;
use sluice_connector_sdk::http::{Host, Request, Response, TransportError};
use sluice_connector_sdk::model::{ApiUsage, Failure, FailureKind};

/// A status the caller handles itself rather than failing the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Only 2xx succeeds.
    Success,
    /// 404 is an answer too (a record deleted since it was listed).
    OrNotFound,
    /// 422 is an answer too (an export `start_time` inside the last minute).
    OrTooRecent,
}

/// What a GET answered.
#[derive(Debug)]
pub enum Answer {
    /// A 2xx JSON body.
    Json(Value),
    /// 404, when the caller expects it.
    NotFound,
    /// 422, when the caller expects it.
    TooRecent,
}

/// The account's API, through the host.
pub struct Client<'h> {
    host: &'h mut dyn Host,
    base: String,
    /// Requests sent.
    pub calls: u32,
    /// The last `X-Rate-Limit` figures seen.
    pub usage: Option<ApiUsage>,
}

impl<'h> Client<'h> {
    /// A client for the API at `base` (an origin without a trailing slash).
    pub fn new(host: &'h mut dyn Host, base: String) -> Self {
        Self {
            host,
            base,
            calls: 0,
            usage: None,
        }
    }

    /// The API origin.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The host, for its stored keys.
    pub fn host(&mut self) -> &mut dyn Host {
        &mut *self.host
    }

    /// GETs `path_and_query` (starting with `/`) and reads its JSON; only 2xx succeeds.
    pub fn get_json(&mut self, path_and_query: &str) -> Result<Value, Failure> {
        match self.get(path_and_query, Expected::Success)? {
            Answer::Json(body) => Ok(body),
            Answer::NotFound | Answer::TooRecent => Err(Failure::new(
                FailureKind::Unknown,
                format!("GET {path_and_query} answered without a body"),
            )),
        }
    }

    /// GETs `path_and_query` (starting with `/`) and reads its JSON.
    pub fn get(&mut self, path_and_query: &str, expected: Expected) -> Result<Answer, Failure> {
        let url = format!("{}{path_and_query}", self.base);
        let request = Request::get(url.clone()).header("Accept", "application/json");
        self.calls += 1;
        let response = self
            .host
            .send(request)
            .map_err(|e| transport_failure(&url, e))?;
        if let Some(usage) = usage_of(&response) {
            self.usage = Some(usage);
        }
        match (response.status, expected) {
            (200..=299, _) => serde_json::from_slice(&response.body)
                .map(Answer::Json)
                .map_err(|e| {
                    Failure::new(
                        FailureKind::Unknown,
                        format!("GET {url} answered a body that is not JSON: {e}"),
                    )
                }),
            (404, Expected::OrNotFound) => Ok(Answer::NotFound),
            (422, Expected::OrTooRecent) => Ok(Answer::TooRecent),
            _ => Err(status_failure(&url, &response)),
        }
    }
}

/// The failure a non-success answer means.
pub fn status_failure(url: &str, response: &Response) -> Failure {
    let detail = error_detail(&response.body);
    let said = format!("GET {url} answered {}{detail}", response.status);
    let retry_after_s = response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u32>().ok());
    let (kind, advice) = match response.status {
        401 => (
            FailureKind::ReauthorizationRequired,
            "the credentials were refused; connect the integration again",
        ),
        403 => (
            FailureKind::PermissionDenied,
            "the user or token lacks a permission or the `read` scope",
        ),
        429 => (
            FailureKind::RateLimited,
            "Zendesk's request budget is spent",
        ),
        503 if retry_after_s.is_some() => (FailureKind::RateLimited, "Zendesk asks to retry later"),
        404 => (
            FailureKind::Misconfigured,
            "check the subdomain: the account has no such endpoint",
        ),
        500..=599 => (FailureKind::Unreachable, "Zendesk is failing; retry later"),
        _ => (FailureKind::Unknown, "an unexpected answer"),
    };
    Failure {
        kind,
        message: format!("{said}: {advice}"),
        retry_after_s: retry_after_s.filter(|_| kind == FailureKind::RateLimited),
    }
}

fn error_detail(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
    let parts: Vec<String> = [
        text("error"),
        text("description"),
        text("error_description"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(": "))
    }
}

fn transport_failure(url: &str, error: TransportError) -> Failure {
    let kind = match error {
        TransportError::Denied(_) => FailureKind::Misconfigured,
        TransportError::Unreachable { .. }
        | TransportError::Timeout(_)
        | TransportError::Other(_) => FailureKind::Unreachable,
        TransportError::ResponseTooLarge(_) => FailureKind::Unknown,
    };
    Failure::new(kind, format!("GET {url}: {error}"))
}

fn usage_of(response: &Response) -> Option<ApiUsage> {
    let number = |name: &str| response.header(name)?.trim().parse::<u64>().ok();
    let limit = number("x-rate-limit")?;
    let remaining = number("x-rate-limit-remaining")?;
    Some(ApiUsage {
        used: limit.saturating_sub(remaining),
        limit,
    })
}
