//! Calls to the Zendesk API through the host. HTTP failures map to the contract's kinds by the
//! SDK's common rules (`failures`): 401 → reauthorization, 403 → permission, 429 and 503 with
//! `Retry-After` (Zendesk's usage-limit and outage answers) → rate-limited with the pause.

use serde_json::Value;
use sluice_connector_sdk::failures;
use sluice_connector_sdk::http::{Host, Request, Response};
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
        let now_ms = self.host.now_ms();
        let response = self
            .host
            .send(request)
            .map_err(|e| failures::for_transport(&e, &url))?;
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
            _ => Err(
                failures::for_response(&response, &format!("GET {url}"), now_ms).unwrap_or_else(
                    || {
                        Failure::new(
                            FailureKind::Unknown,
                            format!("GET {url} answered {}", response.status),
                        )
                    },
                ),
            ),
        }
    }
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
