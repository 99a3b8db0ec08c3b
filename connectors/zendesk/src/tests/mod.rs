//! Unit tests against the SDK's fake host: scripted Zendesk answers, one module per concern.

mod comments;
mod connection;
mod export;
mod failures;
mod settings;

use sluice_connector_sdk::Connector;
use sluice_connector_sdk::fake::{self, FakeHost};
use sluice_connector_sdk::http::Response;
use sluice_connector_sdk::model::{Page, PullRequest, Session, Settings};

use crate::Zendesk;

/// The emulator-like origin the tests' sessions point at.
pub const BASE: &str = "http://127.0.0.1:7777";

/// A session for `extra` settings on the loopback test origin.
pub fn session(extra: &[(&str, &str)]) -> Session {
    let mut settings = Settings::new("helpdesk").with("subdomain", BASE);
    for (k, v) in extra {
        settings = settings.with(k, v);
    }
    fake::session(settings, BASE)
}

/// A 200 JSON answer.
pub fn ok(body: serde_json::Value) -> Response {
    answer(200, &[], body)
}

/// An answer with `status`, `headers` and a JSON body.
pub fn answer(status: u16, headers: &[(&str, &str)], body: serde_json::Value) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.to_string().into_bytes(),
    }
}

/// A fake host whose clock reads `now_s`.
pub fn host_at(now_s: i64) -> FakeHost {
    FakeHost {
        now: Some(now_s * 1000),
        ..FakeHost::default()
    }
}

/// Pulls one page of `stream`.
pub fn pull(
    host: &mut FakeHost,
    session: &Session,
    stream: &str,
    checkpoint: Option<&str>,
    max_records: u32,
) -> Result<Page, sluice_connector_sdk::model::Failure> {
    let request = PullRequest {
        stream: stream.into(),
        checkpoint: checkpoint.map(str::to_string),
        max_records,
    };
    Zendesk::pull(host, session, &request)
}

/// A ticket as the export writes it.
pub fn ticket(id: u64, generated: i64, status: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "generated_timestamp": generated, "status": status,
        "updated_at": "2026-01-01T00:00:00Z", "subject": format!("t{id}")})
}

/// The keys of a page's rows.
pub fn keys(page: &Page) -> Vec<String> {
    page.rows.iter().map(|r| r.key.clone()).collect()
}
