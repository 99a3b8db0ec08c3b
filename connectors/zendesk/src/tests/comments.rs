use serde_json::{Value, json};
use sluice_connector_sdk::model::{Operation, StreamStatus};

use super::{answer, host_at, keys, ok, pull, session, ticket};

const NOW: i64 = 1_767_225_600;

fn comment(id: u64) -> Value {
    json!({"id": id, "body": format!("c{id}"), "created_at": "2025-12-01T00:00:00Z"})
}

fn comments(ids: &[u64], after: Option<&str>) -> sluice_connector_sdk::http::Response {
    ok(
        json!({"comments": ids.iter().map(|i| comment(*i)).collect::<Vec<_>>(),
        "meta": {"has_more": after.is_some(), "after_cursor": after}}),
    )
}

#[test]
fn comments_are_read_once_across_pages_that_end_inside_a_ticket() {
    let mut host = host_at(NOW);
    let s = session(&[]);
    host.on(
        "/incremental/tickets/cursor.json?start_time=0&per_page=100",
        ok(
            json!({"tickets": [ticket(1, 10, "open"), ticket(2, 11, "open")],
            "after_cursor": "e1", "end_of_stream": true}),
        ),
    );
    host.on(
        "/tickets/1/comments.json?page[size]=2",
        comments(&[101, 102], Some("a1")),
    );
    let p1 = pull(&mut host, &s, "ticket-comments", None, 2).unwrap();
    assert_eq!(keys(&p1), ["1/101", "1/102"]);
    assert_eq!(p1.status, StreamStatus::Partial);
    let row: Value = serde_json::from_slice(&p1.rows[0].json).unwrap();
    assert_eq!(
        (row["ticket_id"].as_u64(), row["id"].as_u64()),
        (Some(1), Some(101))
    );

    // The resume asks no export: the checkpoint holds the tickets still to visit.
    host.on(
        "/tickets/1/comments.json?page[size]=2&page[after]=a1",
        comments(&[103], None),
    );
    host.on(
        "/tickets/2/comments.json?page[size]=1",
        comments(&[201], Some("a2")),
    );
    let p2 = pull(
        &mut host,
        &s,
        "ticket-comments",
        p1.checkpoint.as_deref(),
        2,
    )
    .unwrap();
    assert_eq!(keys(&p2), ["1/103", "2/201"]);

    // A full last page says has_more; the empty page after it ends the ticket.
    host.on(
        "/tickets/2/comments.json?page[size]=2&page[after]=a2",
        comments(&[], None),
    );
    let p3 = pull(
        &mut host,
        &s,
        "ticket-comments",
        p2.checkpoint.as_deref(),
        2,
    )
    .unwrap();
    assert!(p3.rows.is_empty());
    assert_eq!(p3.checkpoint.as_deref(), Some(r#"{"cursor":"e1","v":1}"#));

    host.on(
        "/incremental/tickets/cursor.json?cursor=e1&per_page=100",
        ok(json!({"tickets": [], "after_cursor": "e1", "end_of_stream": true})),
    );
    let p4 = pull(
        &mut host,
        &s,
        "ticket-comments",
        p3.checkpoint.as_deref(),
        2,
    )
    .unwrap();
    assert_eq!((p4.rows.len(), &p4.status), (0, &StreamStatus::Complete));
    assert!(host.routes.is_empty());
}

#[test]
fn a_deleted_tickets_stored_comments_and_only_those_are_deleted() {
    let mut host = host_at(NOW);
    host.stored = ["1/5", "1/6", "10/7", "2/8"].map(String::from).to_vec();
    host.on(
        "/incremental/tickets/",
        ok(json!({"tickets": [ticket(1, 10, "deleted")], "after_cursor": "e", "end_of_stream": true})),
    );
    let page = pull(&mut host, &session(&[]), "ticket-comments", None, 100).unwrap();
    assert_eq!(keys(&page), ["1/5", "1/6"]);
    assert!(page.rows.iter().all(|r| r.op == Operation::Delete));
    assert_eq!(page.status, StreamStatus::Complete);
}

#[test]
fn deleting_many_comments_resumes_after_the_last_key_deleted() {
    let mut host = host_at(NOW);
    host.stored = ["1/5", "1/6", "1/7", "2/8"].map(String::from).to_vec();
    host.on(
        "/incremental/tickets/",
        ok(json!({"tickets": [ticket(1, 10, "deleted")], "after_cursor": "e", "end_of_stream": true})),
    );
    let s = session(&[]);
    let p1 = pull(&mut host, &s, "ticket-comments", None, 2).unwrap();
    assert_eq!(keys(&p1), ["1/5", "1/6"]);
    // The host has committed the deletes.
    host.stored
        .retain(|k| !k.starts_with("1/5") && !k.starts_with("1/6"));
    let p2 = pull(
        &mut host,
        &s,
        "ticket-comments",
        p1.checkpoint.as_deref(),
        2,
    )
    .unwrap();
    assert_eq!(keys(&p2), ["1/7"]);
}

#[test]
fn a_ticket_deleted_after_the_export_listed_it_loses_its_comments() {
    let mut host = host_at(NOW);
    host.stored = vec!["3/30".into()];
    host.on(
        "/incremental/tickets/",
        ok(json!({"tickets": [ticket(3, 10, "open")], "after_cursor": "e", "end_of_stream": true})),
    );
    host.on(
        "/tickets/3/comments.json",
        answer(
            404,
            &[],
            json!({"error": "RecordNotFound", "description": "Not found"}),
        ),
    );
    let page = pull(&mut host, &session(&[]), "ticket-comments", None, 100).unwrap();
    assert_eq!(keys(&page), ["3/30"]);
    assert_eq!(page.rows[0].op, Operation::Delete);
}
