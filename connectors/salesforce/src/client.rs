//! Calls to Salesforce through [`Host`]: base URL, headers, call counting, `Date` and the budget.

use crate::errors::{self, SfError};
use crate::limits;
use sluice_connector_sdk::http::{
    Host, InFlight, Method, Request, Response, StreamedResponse, TransportError,
};
use sluice_connector_sdk::model::{ApiUsage, Failure, FailureKind, Level, Session};

/// Where the session's data calls go: the grant's instance URL, which every Salesforce token
/// response names.
pub fn instance_url(session: &Session) -> Result<&str, Failure> {
    session.grant.instance_url.as_deref().ok_or_else(|| {
        Failure::new(
            FailureKind::Misconfigured,
            "the credentials name no instance URL, which every Salesforce token response \
             carries (`instance_url`): connect the integration again",
        )
    })
}

/// A Salesforce client for one connector call.
pub struct Sf<'a> {
    env: &'a mut dyn Host,
    /// The instance origin, without a trailing slash.
    pub base: String,
    /// The API version, e.g. `62.0`.
    pub version: String,
    /// Provider calls made.
    pub calls: u32,
    /// The last reported org API usage.
    pub usage: Option<ApiUsage>,
    /// The share of the daily limit this integration may use; None disables the guard.
    pub budget_percent: Option<u8>,
    /// The last server `Date` seen, UTC millis.
    pub server_time: Option<i64>,
    /// A GET started ahead of its turn by [`Sf::prefetch`], answered to the next [`Sf::get`]
    /// of the same request.
    ahead: Option<(Request, InFlight)>,
}

impl<'a> Sf<'a> {
    /// A client for `instance_url`.
    pub fn new(
        env: &'a mut dyn Host,
        instance_url: &str,
        version: &str,
        budget: Option<u8>,
    ) -> Self {
        Self {
            env,
            base: instance_url.trim_end_matches('/').to_string(),
            version: version.to_string(),
            calls: 0,
            usage: None,
            budget_percent: budget,
            server_time: None,
            ahead: None,
        }
    }

    /// `{base}/services/data/v{version}{path}`.
    pub fn data_url(&self, path: &str) -> String {
        format!("{}/services/data/v{}{}", self.base, self.version, path)
    }

    /// Makes `path_or_url` absolute (relative paths such as `nextRecordsUrl` go to the base).
    pub fn absolute(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base, path_or_url)
        }
    }

    /// Keys the host stores as live for the stream being pulled (no API call).
    pub fn stored_keys(&mut self, after: Option<&str>, limit: u32) -> Vec<String> {
        self.env.stored_keys(after, limit)
    }

    /// The local wall clock, UTC millis, when the environment has one (no API call).
    pub fn now_ms(&mut self) -> Option<i64> {
        self.env.now_ms()
    }

    /// Logs through the host.
    pub fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]) {
        self.env.log(level, message, fields);
    }

    /// Sends a request; 2xx and 304 are Ok, everything else is an [`SfError`]. Reading a
    /// response that puts usage over the budget fails with `rate-limited`.
    pub fn send(&mut self, req: Request) -> Result<Response, SfError> {
        let answer = match self.ahead.take() {
            Some((started, in_flight)) if started == req => in_flight.wait(),
            // Another request first: the early one waits for its turn, or is dropped with the
            // client, unread (it was counted when it started).
            ahead => {
                self.ahead = ahead;
                self.calls += 1;
                self.env.send(req)
            }
        };
        self.conclude(answer)
    }

    /// Starts the GET of `url` now, so that it travels while the caller works on the previous
    /// answer; the next [`Sf::get`] of the same URL and headers reads it. It counts as a call
    /// at once, used or not.
    pub fn prefetch(&mut self, url: &str, headers: &[(&str, String)]) {
        let req = get_request(self.absolute(url), headers);
        self.calls += 1;
        let in_flight = self.env.start(req.clone());
        self.ahead = Some((req, in_flight));
    }

    /// A response as [`Sf::send`] hands it back.
    fn conclude(&mut self, answer: Result<Response, TransportError>) -> Result<Response, SfError> {
        let resp = answer.map_err(|e| errors::transport(&e))?;
        self.observe(resp.status, &resp.headers)?;
        if (200..300).contains(&resp.status) || resp.status == 304 {
            Ok(resp)
        } else {
            Err(errors::parse(&resp))
        }
    }

    /// GET whose 2xx body is handed back unread, to be consumed as it arrives; anything else
    /// is read whole and becomes an [`SfError`], as with [`Sf::send`].
    pub fn get_streamed(&mut self, url: &str) -> Result<StreamedResponse, SfError> {
        self.calls += 1;
        let req = Request::get(self.absolute(url));
        let resp = self
            .env
            .send_streamed(req)
            .map_err(|e| errors::transport(&e))?;
        self.observe(resp.status, &resp.headers)?;
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        let status = resp.status;
        match resp.into_response() {
            Ok(whole) => Err(errors::parse(&whole)),
            Err(e) => Err(SfError::unreadable(status, format!("error body: {e}"))),
        }
    }

    /// Notes the server time and API usage a response reports; usage over the budget fails
    /// with `rate-limited`.
    fn observe(&mut self, status: u16, headers: &[(String, String)]) -> Result<(), SfError> {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if let Some(d) = header("date").and_then(crate::dt::parse_http_date) {
            self.server_time = Some(d);
        }
        let Some(h) = header("sforce-limit-info") else {
            return Ok(());
        };
        let info = limits::parse(h);
        if info.api.is_some() {
            self.usage = info.api;
        }
        if let Some(p) = self.budget_percent
            && let Err(f) = limits::check(&info, p)
        {
            return Err(SfError {
                status,
                code: "BUDGET".into(),
                message: f.message.clone(),
                preset: Some(f),
            });
        }
        Ok(())
    }

    /// GET with optional headers.
    pub fn get(&mut self, url: &str, headers: &[(&str, String)]) -> Result<Response, SfError> {
        self.send(get_request(self.absolute(url), headers))
    }

    /// A request with a JSON body.
    pub fn json(
        &mut self,
        method: Method,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<Response, SfError> {
        let req = Request {
            method,
            url: self.absolute(url),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body.to_string().into_bytes()),
        };
        self.send(req)
    }
}

/// A GET of `url` with `headers`.
fn get_request(url: String, headers: &[(&str, String)]) -> Request {
    headers
        .iter()
        .fold(Request::get(url), |req, (n, v)| req.header(*n, v.clone()))
}
