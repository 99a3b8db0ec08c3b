//! A scripted fake [`Env`] for unit tests: canned responses matched by method and URL
//! substring, consumed in order, with every request recorded.

use crate::http::{Env, Method, Request, Response, TransportError};
use crate::model::{Capability, Environment, Grant, HostContext, Level, PullBy, Session, Settings};

/// One scripted answer.
pub struct Route {
    pub method: Method,
    pub contains: String,
    pub reply: Result<Response, TransportError>,
}

/// The fake.
#[derive(Default)]
pub struct FakeEnv {
    pub routes: Vec<Route>,
    pub requests: Vec<Request>,
    pub logs: Vec<String>,
    /// Keys the fake host stores as live.
    pub stored: Vec<String>,
    /// The fake wall clock, UTC millis.
    pub now: Option<i64>,
}

pub const DATE: &str = "Tue, 02 Jan 2024 03:10:00 GMT";

pub fn resp(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: vec![
            ("date".into(), DATE.into()),
            ("sforce-limit-info".into(), "api-usage=10/1000".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

impl FakeEnv {
    pub fn on(&mut self, contains: &str, r: Response) -> &mut Self {
        self.routes.push(Route {
            method: Method::Get,
            contains: contains.into(),
            reply: Ok(r),
        });
        self
    }

    pub fn on_method(&mut self, method: Method, contains: &str, r: Response) -> &mut Self {
        self.routes.push(Route {
            method,
            contains: contains.into(),
            reply: Ok(r),
        });
        self
    }

    pub fn fail(&mut self, contains: &str, e: TransportError) -> &mut Self {
        self.routes.push(Route {
            method: Method::Get,
            contains: contains.into(),
            reply: Err(e),
        });
        self
    }

    pub fn urls(&self) -> Vec<String> {
        self.requests.iter().map(|r| r.url.clone()).collect()
    }
}

impl Env for FakeEnv {
    fn send(&mut self, request: Request) -> Result<Response, TransportError> {
        self.requests.push(request.clone());
        let i = self
            .routes
            .iter()
            .position(|r| r.method == request.method && request.url.contains(&r.contains))
            .unwrap_or_else(|| {
                panic!(
                    "no scripted response for {} {}",
                    request.method.as_str(),
                    request.url
                )
            });
        self.routes.remove(i).reply
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

    fn log(&mut self, _level: Level, message: &str, fields: &[(&str, &str)]) {
        self.logs.push(format!("{message} {fields:?}"));
    }

    fn now_ms(&mut self) -> Option<i64> {
        self.now
    }
}

pub fn session(cap: Capability, pull_by: Option<PullBy>, extra: &[(&str, &str)]) -> Session {
    Session {
        settings: Settings {
            capability: cap,
            environment: Environment::Production,
            pull_by,
            domain: Some("https://acme.my.salesforce.com".into()),
            extra: extra
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        },
        host: HostContext {
            allow_insecure_loopback: false,
            contract_version: "0.1.0".into(),
        },
        grant: Grant {
            instance_url: "https://acme.my.salesforce.com".into(),
            identity_url: Some(
                "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA".into(),
            ),
            issued_at_ms: None,
            scopes: vec!["api".into(), "refresh_token".into()],
        },
    }
}
