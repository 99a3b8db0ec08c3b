//! Unit tests against the SDK's fake host: scripted API answers, no network.

use sluice_connector_sdk::fake::{self, FakeHost};
use sluice_connector_sdk::*;

use crate::{{type_name}} as C;

fn session() -> Session {
    fake::session(Settings::new("crm"), "https://api.example.com")
}

fn ok(body: &str) -> Response {
    Response {
        status: 200,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

fn pull(host: &mut FakeHost, checkpoint: Option<String>, max: u32) -> Result<Page, Failure> {
    let request = PullRequest {
        stream: "contacts".into(),
        checkpoint,
        max_records: max,
    };
    C::pull(host, &session(), &request)
}

#[test]
fn configure_declares_oauth_with_pkce_on_the_auth_server() {
    let configured = C::configure(&Settings::new("crm"), &HostContext::default()).unwrap();
    let CredentialPlan::OAuth2(plan) = configured.credentials else {
        panic!("an OAuth plan");
    };
    assert!(plan.pkce_required);
    assert_eq!(
        plan.authorize_url,
        "https://auth.example.com/oauth/authorize"
    );
    assert_eq!(plan.token_url, "https://auth.example.com/oauth/token");
    assert_eq!(
        configured.allowed_hosts,
        ["api.example.com", "auth.example.com"]
    );
    let bad = Settings::new("crm").with("auth-url", "ftp://auth.example.com");
    let errors = C::configure(&bad, &HostContext::default()).unwrap_err();
    assert_eq!(errors[0].field, "auth-url");
}

#[test]
fn contacts_follow_the_cursor_and_start_over_after_the_last_page() {
    let mut host = FakeHost::default();
    host.on(
        "/v1/contacts?limit=2",
        ok(r#"{"contacts":[{"id":"c1","updated_at":"2024-01-01T00:00:00Z"},{"id":"c2"}],"next_cursor":"k2"}"#),
    );
    let first = pull(&mut host, None, 2).unwrap();
    assert_eq!(first.status, StreamStatus::Partial);
    assert_eq!(first.rows.len(), 2);
    host.on(
        "/v1/contacts?cursor=k2&limit=1",
        ok(r#"{"contacts":[{"id":"c3"}],"next_cursor":null}"#),
    );
    let last = pull(&mut host, first.checkpoint.clone(), 1).unwrap();
    assert_eq!(
        (last.rows[0].key.as_str(), &last.status),
        ("c3", &StreamStatus::Complete)
    );
    host.on("/v1/contacts?limit=100", ok(r#"{"contacts":[]}"#));
    pull(&mut host, last.checkpoint.clone(), 1000).unwrap();
    assert!(host.routes.is_empty());
}

#[test]
fn a_cursor_that_does_not_move_is_an_error_not_a_loop() {
    let mut host = FakeHost::default();
    host.on(
        "/v1/contacts?limit=2",
        ok(r#"{"contacts":[{"id":"c1"}],"next_cursor":"k1"}"#),
    );
    let first = pull(&mut host, None, 2).unwrap();
    host.on(
        "cursor=k1",
        ok(r#"{"contacts":[{"id":"c1"}],"next_cursor":"k1"}"#),
    );
    let stuck = pull(&mut host, first.checkpoint.clone(), 2).unwrap_err();
    assert_eq!(stuck.kind, FailureKind::Unknown);
}

#[test]
fn a_token_rejected_after_the_hosts_refresh_needs_a_new_authorization() {
    let mut host = FakeHost::default();
    host.on(
        "/v1/me",
        Response {
            status: 401,
            headers: Vec::new(),
            body: Vec::new(),
        },
    );
    let report = C::test(&mut host, &session());
    assert_eq!(
        report.failure.unwrap().kind,
        FailureKind::ReauthorizationRequired
    );
}
