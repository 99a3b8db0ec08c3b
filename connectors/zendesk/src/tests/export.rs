use serde_json::json;
use sluice_connector_sdk::fake::FakeHost;
use sluice_connector_sdk::model::{FailureKind, Operation, StreamStatus};

use super::{answer, host_at, keys, ok, pull, session, ticket};

const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

#[test]
fn the_first_page_starts_at_start_date_and_later_ones_follow_the_cursor() {
    let mut host = host_at(NOW);
    host.on(
        "/api/v2/incremental/tickets/cursor.json?start_time=1704067200&per_page=2",
        ok(
            json!({"tickets": [ticket(1, 100, "open"), ticket(2, 100, "solved")],
            "after_cursor": "MTAwLjA=||2|", "end_of_stream": false}),
        ),
    );
    let s = session(&[("start-date", "2024-01-01")]);
    let first = pull(&mut host, &s, "tickets", None, 2).unwrap();
    assert_eq!(keys(&first), ["1", "2"]);
    assert_eq!(first.status, StreamStatus::Partial);
    let checkpoint = first.checkpoint.clone().unwrap();
    assert_eq!(checkpoint, r#"{"cursor":"MTAwLjA=||2|","v":1}"#);
    assert_eq!(first.rows[0].cursor, "100");

    host.on(
        "/api/v2/incremental/tickets/cursor.json?cursor=MTAwLjA%3D%7C%7C2%7C&per_page=2",
        ok(json!({"tickets": [ticket(3, 101, "open")], "after_cursor": "c3", "end_of_stream": true})),
    );
    let second = pull(&mut host, &s, "tickets", Some(&checkpoint), 2).unwrap();
    assert_eq!(keys(&second), ["3"]);
    assert_eq!(second.status, StreamStatus::Complete);
    assert_eq!(
        second.checkpoint.as_deref(),
        Some(r#"{"cursor":"c3","v":1}"#)
    );
    assert!(host.routes.is_empty());
}

#[test]
fn deleted_tickets_and_inactive_users_are_deletes() {
    let mut host = host_at(NOW);
    host.on(
        "/incremental/tickets/cursor.json",
        ok(
            json!({"tickets": [ticket(1, 5, "deleted"), ticket(2, 6, "open")],
            "after_cursor": "c", "end_of_stream": true}),
        ),
    );
    host.on(
        "/incremental/users/cursor.json",
        ok(
            json!({"users": [{"id": 9, "active": false, "updated_at": "2026-01-01T00:00:00Z"},
            {"id": 10, "active": true, "updated_at": "2026-01-01T00:00:01Z"}],
            "after_cursor": "u", "end_of_stream": true}),
        ),
    );
    let s = session(&[]);
    let tickets = pull(&mut host, &s, "tickets", None, 100).unwrap();
    let ops: Vec<Operation> = tickets.rows.iter().map(|r| r.op).collect();
    assert_eq!(ops, [Operation::Delete, Operation::Upsert]);
    let users = pull(&mut host, &s, "users", None, 100).unwrap();
    let ops: Vec<Operation> = users.rows.iter().map(|r| r.op).collect();
    assert_eq!(ops, [Operation::Delete, Operation::Upsert]);
    assert_eq!(users.rows[1].cursor, "2026-01-01T00:00:01Z");
}

#[test]
fn a_start_time_inside_the_last_minute_is_never_asked() {
    // The start date is today's midnight and the clock reads 30 s past it.
    let mut host = host_at(NOW + 30);
    let s = session(&[("start-date", "2026-01-01")]);
    let page = pull(&mut host, &s, "tickets", None, 100).unwrap();
    assert!(host.requests.is_empty(), "{:?}", host.urls());
    assert_eq!(
        (page.rows.len(), page.checkpoint, page.status),
        (0, None, StreamStatus::Complete)
    );
    // A minute later it is asked.
    let mut host = host_at(NOW + 61);
    host.on(
        "start_time=1767225600",
        ok(json!({"tickets": [], "after_cursor": "c", "end_of_stream": true})),
    );
    pull(&mut host, &s, "tickets", None, 100).unwrap();
    assert!(host.routes.is_empty());
}

#[test]
fn without_a_clock_zendesks_too_recent_answer_keeps_the_checkpoint() {
    let mut host = FakeHost::default();
    host.on(
        "start_time=",
        answer(
            422,
            &[],
            json!({"error": "InvalidValue",
            "description": "Too recent start_time. Use a start_time older than 1 minute"}),
        ),
    );
    let page = pull(&mut host, &session(&[]), "users", None, 100).unwrap();
    assert_eq!(
        (page.rows.len(), page.checkpoint, page.status),
        (0, None, StreamStatus::Complete)
    );
}

#[test]
fn per_page_is_clamped_to_zendesks_limit_the_setting_and_max_records() {
    let mut host = host_at(NOW);
    let empty = || ok(json!({"tickets": [], "after_cursor": "c", "end_of_stream": true}));
    host.on("per_page=1000", empty())
        .on("per_page=250", empty());
    host.on("per_page=1", empty());
    pull(&mut host, &session(&[]), "tickets", None, 50_000).unwrap();
    pull(
        &mut host,
        &session(&[("page-size", "250")]),
        "tickets",
        None,
        50_000,
    )
    .unwrap();
    pull(&mut host, &session(&[]), "tickets", None, 0).unwrap();
    let urls = host.urls();
    assert!(urls[0].ends_with("per_page=1000"), "{urls:?}");
    assert!(urls[1].ends_with("per_page=250"), "{urls:?}");
    assert!(urls[2].ends_with("per_page=1"), "{urls:?}");
}

#[test]
fn a_checkpoint_of_a_newer_version_is_refused_by_name() {
    let mut host = host_at(NOW);
    let s = session(&[]);
    let newer = pull(
        &mut host,
        &s,
        "tickets",
        Some(r#"{"v":2,"cursor":"x"}"#),
        10,
    )
    .unwrap_err();
    assert!(newer.message.contains("version 2"), "{}", newer.message);
    let garbage = pull(&mut host, &s, "tickets", Some("12345"), 10).unwrap_err();
    assert!(
        garbage.message.contains("checkpoint"),
        "{}",
        garbage.message
    );
    assert!(host.requests.is_empty());
}

#[test]
fn an_unknown_stream_is_misconfigured() {
    let mut host = host_at(NOW);
    let e = pull(&mut host, &session(&[]), "organizations", None, 10).unwrap_err();
    assert_eq!(e.kind, FailureKind::Misconfigured);
    assert!(e.message.contains("organizations"));
}
