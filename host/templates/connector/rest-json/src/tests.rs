//! Unit tests against the SDK's fake host: scripted API answers, no network.

use sluice_connector_sdk::fake::{self, FakeHost};
use sluice_connector_sdk::*;

use crate::{{type_name}} as C;

const BASE: &str = "https://api.example.com";

fn session() -> Session {
    fake::session(Settings::new("records"), BASE)
}

fn ok(body: &str) -> Response {
    Response {
        status: 200,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

fn pull(
    host: &mut FakeHost,
    stream: &str,
    checkpoint: Option<String>,
    max: u32,
) -> Result<Page, Failure> {
    let request = PullRequest {
        stream: stream.into(),
        checkpoint,
        max_records: max,
    };
    C::pull(host, &session(), &request)
}

fn keys(page: &Page) -> Vec<&str> {
    page.rows.iter().map(|r| r.key.as_str()).collect()
}

#[test]
fn describe_declares_every_setting_configure_checks() {
    let info = C::describe();
    let names: Vec<&str> = info.settings.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["base-url", "page-size"]);
    let host = HostContext::default();
    let configured = C::configure(&Settings::new("records"), &host).unwrap();
    assert_eq!(configured.allowed_hosts, ["api.example.com"]);
    assert!(matches!(configured.credentials, CredentialPlan::ApiKey(_)));
    let bad = Settings::new("records")
        .with("base-url", "http://api.example.com")
        .with("page-size", "0")
        .with("colour", "blue");
    let errors = C::configure(&bad, &host).unwrap_err();
    let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort();
    assert_eq!(fields, ["base-url", "colour", "page-size"]);
    // Plain http only to loopback, and only when the host allows it.
    let local = Settings::new("records").with("base-url", "http://127.0.0.1:8080/");
    assert!(C::configure(&local, &host).is_err());
    let loopback = HostContext {
        allow_insecure_loopback: true,
        ..HostContext::default()
    };
    let configured = C::configure(&local, &loopback).unwrap();
    assert_eq!(configured.allowed_hosts, ["127.0.0.1"]);
    assert!(
        configured
            .normalized
            .contains(&("base-url".into(), "http://127.0.0.1:8080".into()))
    );
}

#[test]
fn items_resume_after_the_last_cursor() {
    let mut host = FakeHost::default();
    host.on(
        "/v1/items?limit=2",
        ok(r#"{"data":[{"id":"a","updated_at":"2024-01-01T00:00:00Z"},{"id":"b"}],"meta":{"after":"c2","has_more":true}}"#),
    );
    let first = pull(&mut host, "items", None, 2).unwrap();
    assert_eq!(
        (keys(&first), &first.status),
        (vec!["a", "b"], &StreamStatus::Partial)
    );
    assert_eq!(first.rows[0].cursor, "2024-01-01T00:00:00Z");

    host.on(
        "/v1/items?limit=2&after=c2",
        ok(r#"{"data":[{"id":"c"}],"meta":{"after":"c3","has_more":false}}"#),
    );
    let second = pull(&mut host, "items", first.checkpoint.clone(), 2).unwrap();
    assert_eq!(
        (keys(&second), &second.status),
        (vec!["c"], &StreamStatus::Complete)
    );

    // The next run asks only for what came after.
    host.on(
        "/v1/items?limit=2&after=c3",
        ok(r#"{"data":[],"meta":{"after":"c3","has_more":false}}"#),
    );
    let later = pull(&mut host, "items", second.checkpoint.clone(), 2).unwrap();
    assert!(later.rows.is_empty());
    assert!(host.routes.is_empty());
}

#[test]
fn users_follow_the_next_link_with_this_calls_limit() {
    let mut host = FakeHost::default();
    host.on(
        "/v1/users?limit=100",
        ok(r#"{"users":[{"id":1},{"id":2}],"links":{"next":"/v1/users?limit=100&offset=2"}}"#),
    );
    let first = pull(&mut host, "users", None, 1000).unwrap();
    assert_eq!(
        (keys(&first), &first.status),
        (vec!["1", "2"], &StreamStatus::Partial)
    );
    host.on(
        "/v1/users?offset=2&limit=1",
        ok(r#"{"users":[{"id":3}],"links":{"next":null}}"#),
    );
    let last = pull(&mut host, "users", first.checkpoint.clone(), 1).unwrap();
    assert_eq!(
        (keys(&last), &last.status),
        (vec!["3"], &StreamStatus::Complete)
    );
    // A finished read starts over on the next run.
    host.on("/v1/users?limit=100", ok(r#"{"users":[],"links":{}}"#));
    pull(&mut host, "users", last.checkpoint.clone(), 1000).unwrap();
    assert!(host.routes.is_empty());
}

#[test]
fn api_failures_map_to_the_contracts_kinds() {
    let mut host = FakeHost::default();
    host.on(
        "/v1/items",
        Response {
            status: 401,
            headers: Vec::new(),
            body: b"{}".to_vec(),
        },
    );
    assert_eq!(
        pull(&mut host, "items", None, 10).unwrap_err().kind,
        FailureKind::ReauthorizationRequired
    );
    host.on(
        "/v1/items",
        Response {
            status: 429,
            headers: vec![("retry-after".into(), "30".into())],
            body: Vec::new(),
        },
    );
    let limited = pull(&mut host, "items", None, 10).unwrap_err();
    assert_eq!(
        (limited.kind, limited.retry_after_s),
        (FailureKind::RateLimited, Some(30))
    );
    let newer = pull(&mut host, "items", Some(r#"{"v":99}"#.into()), 10).unwrap_err();
    assert!(newer.message.contains("version 99"), "{}", newer.message);
}

#[test]
fn test_connection_reports_the_account_or_the_failure() {
    let mut host = FakeHost::default();
    host.on(
        "/v1/me",
        ok(r#"{"account":{"id":"acct-1","name":"Toy Co"}}"#),
    );
    let report = C::test(&mut host, &session());
    assert_eq!(
        (report.failure, report.org.as_deref()),
        (None, Some("Toy Co"))
    );
    host.on(
        "/v1/me",
        Response {
            status: 403,
            headers: Vec::new(),
            body: Vec::new(),
        },
    );
    let report = C::test(&mut host, &session());
    assert_eq!(report.failure.unwrap().kind, FailureKind::PermissionDenied);
}
