use serde_json::json;
use sluice_connector_sdk::http::TransportError;
use sluice_connector_sdk::model::FailureKind;

use super::{answer, host_at, pull, session};

fn failure_of(status: u16, headers: &[(&str, &str)]) -> sluice_connector_sdk::model::Failure {
    let mut host = host_at(1_767_225_600);
    host.on(
        "/incremental/tickets/",
        answer(
            status,
            headers,
            json!({"error": "X", "description": "said by Zendesk"}),
        ),
    );
    pull(&mut host, &session(&[]), "tickets", None, 10).unwrap_err()
}

#[test]
fn rate_limits_carry_retry_after() {
    let f = failure_of(429, &[("retry-after", "37")]);
    assert_eq!(
        (f.kind, f.retry_after_s),
        (FailureKind::RateLimited, Some(37))
    );
    let f = failure_of(503, &[("Retry-After", "5")]);
    assert_eq!(
        (f.kind, f.retry_after_s),
        (FailureKind::RateLimited, Some(5))
    );
    let f = failure_of(503, &[]);
    assert_eq!((f.kind, f.retry_after_s), (FailureKind::Unreachable, None));
}

#[test]
fn auth_failures_have_their_kinds_and_keep_zendesks_words() {
    let f = failure_of(401, &[]);
    assert_eq!(f.kind, FailureKind::ReauthorizationRequired);
    assert!(f.message.contains("said by Zendesk"), "{}", f.message);
    assert_eq!(failure_of(403, &[]).kind, FailureKind::PermissionDenied);
    assert_eq!(failure_of(502, &[]).kind, FailureKind::Unreachable);
    assert_eq!(failure_of(500, &[]).kind, FailureKind::Unknown);
    assert_eq!(failure_of(400, &[]).kind, FailureKind::Unknown);
}

#[test]
fn transport_failures_are_unreachable_and_denials_misconfigured() {
    let mut host = host_at(1_767_225_600);
    host.fail(
        "/incremental/",
        TransportError::Unreachable {
            target: "x".into(),
            detail: "refused".into(),
        },
    );
    host.fail("/incremental/", TransportError::Denied("x".into()));
    let s = session(&[]);
    assert_eq!(
        pull(&mut host, &s, "users", None, 10).unwrap_err().kind,
        FailureKind::Unreachable
    );
    assert_eq!(
        pull(&mut host, &s, "users", None, 10).unwrap_err().kind,
        FailureKind::Misconfigured
    );
}

#[test]
fn api_usage_comes_from_the_rate_limit_headers() {
    let mut host = host_at(1_767_225_600);
    host.on(
        "/incremental/users/",
        answer(
            200,
            &[("x-rate-limit", "700"), ("x-rate-limit-remaining", "650")],
            json!({"users": [], "after_cursor": "c", "end_of_stream": true}),
        ),
    );
    let page = pull(&mut host, &session(&[]), "users", None, 10).unwrap();
    let usage = page.api_usage.unwrap();
    assert_eq!((usage.used, usage.limit, page.api_calls), (50, 700, 1));
}
