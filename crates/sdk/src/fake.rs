//! A scripted [`Host`] for a connector's native unit tests: canned replies matched on method,
//! URL and body, each used once, with every request and log line recorded.
//!
//! A request no route answers panics with its method and URL, so a test cannot pass by
//! accident on a call it did not script.

use crate::http::{Host, InFlight, Method, Request, Response, TransportError};
use crate::model::{Grant, HostContext, Level, Session, Settings};

/// A session with `settings` whose grant points at `instance_url`, on a host that allows
/// plain-http loopback (a local test server).
pub fn session(settings: Settings, instance_url: &str) -> Session {
    Session {
        settings,
        host: HostContext {
            allow_insecure_loopback: true,
            contract_version: crate::CONTRACT_VERSION.into(),
        },
        grant: Grant {
            instance_url: Some(instance_url.into()),
            ..Grant::default()
        },
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Route {
    /// The method the request must have.
    pub method: Method,
    /// A substring the request's URL must contain.
    pub url_contains: String,
    /// A substring the request's body must contain, when set.
    pub body_contains: Option<String>,
    /// The reply: a response, or a transport failure.
    pub reply: Result<Response, TransportError>,
}

impl Route {
    fn matches(&self, request: &Request) -> bool {
        self.method == request.method
            && request.url.contains(&self.url_contains)
            && self.body_contains.as_ref().is_none_or(|needle| {
                request
                    .body
                    .as_deref()
                    .is_some_and(|body| String::from_utf8_lossy(body).contains(needle.as_str()))
            })
    }
}

/// The fake host. Routes are tried in the order scripted; the first match answers and is
/// removed.
#[derive(Debug, Default)]
pub struct FakeHost {
    /// Replies not used yet.
    pub routes: Vec<Route>,
    /// Every request sent, in order.
    pub requests: Vec<Request>,
    /// The indices in `requests` of those sent with [`Host::start`] (answered at once).
    pub started: Vec<usize>,
    /// Every log line, as `message [fields]`.
    pub logs: Vec<String>,
    /// Keys the fake host stores as live.
    pub stored: Vec<String>,
    /// The fake wall clock, UTC millis.
    pub now: Option<i64>,
}

impl FakeHost {
    /// Answers the next GET whose URL contains `url_contains` with `response`.
    pub fn on(&mut self, url_contains: &str, response: Response) -> &mut Self {
        self.on_method(Method::Get, url_contains, response)
    }

    /// Answers the next `method` request whose URL contains `url_contains` with `response`.
    pub fn on_method(
        &mut self,
        method: Method,
        url_contains: &str,
        response: Response,
    ) -> &mut Self {
        self.route(method, url_contains, None, Ok(response))
    }

    /// Answers the next `method` request whose URL contains `url_contains` and whose body
    /// contains `body_contains` with `response`.
    pub fn on_body(
        &mut self,
        method: Method,
        url_contains: &str,
        body_contains: &str,
        response: Response,
    ) -> &mut Self {
        self.route(method, url_contains, Some(body_contains), Ok(response))
    }

    /// Fails the next GET whose URL contains `url_contains` with `error`.
    pub fn fail(&mut self, url_contains: &str, error: TransportError) -> &mut Self {
        self.route(Method::Get, url_contains, None, Err(error))
    }

    fn route(
        &mut self,
        method: Method,
        url_contains: &str,
        body_contains: Option<&str>,
        reply: Result<Response, TransportError>,
    ) -> &mut Self {
        self.routes.push(Route {
            method,
            url_contains: url_contains.into(),
            body_contains: body_contains.map(str::to_string),
            reply,
        });
        self
    }

    /// The URLs requested, in order.
    pub fn urls(&self) -> Vec<String> {
        self.requests.iter().map(|r| r.url.clone()).collect()
    }
}

impl Host for FakeHost {
    fn send(&mut self, request: Request) -> Result<Response, TransportError> {
        self.requests.push(request.clone());
        let i = self
            .routes
            .iter()
            .position(|route| route.matches(&request))
            .unwrap_or_else(|| {
                panic!(
                    "no scripted response for {} {}",
                    request.method.as_str(),
                    request.url
                )
            });
        self.routes.remove(i).reply
    }

    fn start(&mut self, request: Request) -> InFlight {
        self.started.push(self.requests.len());
        InFlight::ready(self.send(request))
    }

    fn log(&mut self, _level: Level, message: &str, fields: &[(&str, &str)]) {
        self.logs.push(format!("{message} {fields:?}"));
    }

    fn stored_keys(&mut self, after: Option<&str>, limit: u32) -> Vec<String> {
        let mut keys: Vec<String> = self
            .stored
            .iter()
            .filter(|k| after.is_none_or(|a| k.as_str() > a))
            .cloned()
            .collect();
        keys.sort();
        keys.truncate(limit as usize);
        keys
    }

    fn now_ms(&mut self) -> Option<i64> {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_route_answers_once_and_only_its_method_url_and_body() {
        let mut host = FakeHost::default();
        host.on_body(Method::Post, "/jobs", "\"query\"", ok("created"))
            .on("/jobs", ok("listed"));
        let listed = host.send(Request::get("https://x.test/jobs")).unwrap();
        assert_eq!(listed.body, b"listed");
        let created = host
            .send(Request::new(Method::Post, "https://x.test/jobs").body(r#"{"query":1}"#))
            .unwrap();
        assert_eq!(created.body, b"created");
        assert!(host.routes.is_empty());
        assert_eq!(host.urls(), ["https://x.test/jobs", "https://x.test/jobs"]);
    }

    #[test]
    #[should_panic(expected = "no scripted response for POST https://x.test/jobs")]
    fn a_body_that_does_not_match_is_unscripted() {
        let mut host = FakeHost::default();
        host.on_body(Method::Post, "/jobs", "\"query\"", ok("created"));
        let _ = host.send(Request::new(Method::Post, "https://x.test/jobs").body("{}"));
    }

    #[test]
    fn stored_keys_are_ascending_after_the_cursor_and_capped() {
        let mut host = FakeHost {
            stored: vec!["c".into(), "a".into(), "b".into(), "d".into()],
            ..FakeHost::default()
        };
        assert_eq!(host.stored_keys(Some("a"), 2), ["b", "c"]);
        assert_eq!(host.stored_keys(None, 10), ["a", "b", "c", "d"]);
    }
}
