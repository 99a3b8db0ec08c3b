//! The cursor-based incremental exports, from a plain HTTP client.

mod common;

use common::{latest_by_id, start};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};

fn ids(records: &[Json]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect()
}

#[tokio::test]
async fn walking_the_ticket_export_to_end_of_stream_matches_ground_truth_exactly() {
    let ctx = start(300).await;
    // Small pages, so page boundaries fall inside runs of tickets sharing a second.
    let (records, _) = ctx
        .walk_export("tickets", "start_time=0", "per_page=7")
        .await;
    let truth = ctx.ground_truth("tickets", "").await;
    assert_eq!(records.len(), truth.len(), "each ticket exactly once");
    assert_eq!(latest_by_id(&records), truth);
    let deleted = truth.iter().filter(|t| t["status"] == "deleted").count();
    assert!(
        deleted > 0,
        "the seed deletes some tickets, and the export shows them"
    );
    // Ordered by (generated_timestamp, id).
    let order: Vec<(i64, u64)> = records
        .iter()
        .map(|r| {
            (
                r["generated_timestamp"].as_i64().unwrap(),
                r["id"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    let shared_seconds = order.windows(2).filter(|w| w[0].0 == w[1].0).count();
    assert!(
        shared_seconds > 0,
        "some tickets share a generated_timestamp"
    );
}

#[tokio::test]
async fn walking_the_user_export_matches_ground_truth_and_shows_deleted_users_inactive() {
    let ctx = start(80).await;
    let user = ctx.ground_truth("users", "").await[3]["id"]
        .as_u64()
        .unwrap();
    ctx.ops(json!({"op": "delete", "stream": "users", "id": user}))
        .await;
    ctx.advance(61).await;
    let (records, _) = ctx.walk_export("users", "start_time=0", "per_page=6").await;
    let truth = ctx.ground_truth("users", "").await;
    assert_eq!(records.len(), truth.len());
    assert_eq!(latest_by_id(&records), truth);
    let gone = records
        .iter()
        .find(|u| u["id"] == user)
        .expect("deleted user exported");
    assert_eq!(gone["active"], false);
}

#[tokio::test]
async fn a_change_in_the_last_minute_appears_only_later_after_the_cursor() {
    let ctx = start(40).await;
    // Frozen, so the changes below stay inside the held-back minute however slow the machine.
    ctx.post_control("/__emulator/clock", json!({"freeze": true}))
        .await;
    let (first, cursor) = ctx
        .walk_export("tickets", "start_time=0", "per_page=1000")
        .await;
    let walked_at = ctx.now().await;
    // An agent's reply lands 30 s before the walk ends its last request: inside the minute
    // the export holds back.
    let recent = first[0]["id"].as_u64().unwrap();
    ctx.ops(json!([
        {"op": "update", "stream": "tickets", "id": recent, "fields": {"status": "solved"}, "at": walked_at - 30},
        {"op": "insert", "stream": "tickets", "fields": {"subject": "new one"}, "at": walked_at - 10},
    ]))
    .await;
    // Asked again at once, the cursor has nothing new: both changes are under a minute old.
    let (again, _) = ctx
        .walk_export("tickets", &format!("cursor={cursor}"), "per_page=1000")
        .await;
    assert!(again.is_empty(), "held back: {again:?}");

    ctx.advance(61).await;
    let (later, _) = ctx
        .walk_export("tickets", &format!("cursor={cursor}"), "per_page=1000")
        .await;
    let later_ids = ids(&later);
    assert!(
        later_ids.contains(&recent),
        "the update appears once past the minute"
    );
    assert_eq!(later.len(), 2, "{later_ids:?}");
    assert_eq!(later[0]["status"], "solved");

    // A client that ignores the rule and restarts from the time of its last walk misses both.
    let naive = format!("start_time={walked_at}");
    let (naive_records, _) = ctx.walk_export("tickets", &naive, "per_page=1000").await;
    assert!(
        naive_records.is_empty(),
        "restarting at the walk's time loses them"
    );

    // The cursor-following client ends with exactly the ground truth.
    let mut all = first;
    all.extend(later);
    assert_eq!(latest_by_id(&all), ctx.ground_truth("tickets", "").await);
}

#[tokio::test]
async fn start_time_within_the_last_minute_is_refused_with_422() {
    let ctx = start(5).await;
    let now = ctx.now().await;
    let response = ctx
        .get(&format!(
            "/api/v2/incremental/tickets/cursor.json?start_time={}",
            now - 30
        ))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Json = response.json().await.unwrap();
    assert_eq!(body["error"], "InvalidValue");
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .starts_with("Too recent start_time")
    );
    let ok = ctx
        .get(&format!(
            "/api/v2/incremental/tickets/cursor.json?start_time={}",
            now - 60
        ))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn export_parameters_are_checked() {
    let ctx = start(5).await;
    for (query, status) in [
        ("", StatusCode::BAD_REQUEST),
        ("start_time=yesterday", StatusCode::BAD_REQUEST),
        ("cursor=bm90IGEgY3Vyc29y", StatusCode::BAD_REQUEST),
        ("start_time=0&per_page=0", StatusCode::BAD_REQUEST),
    ] {
        let response = ctx
            .get(&format!("/api/v2/incremental/tickets/cursor.json?{query}"))
            .await;
        assert_eq!(response.status(), status, "{query}");
        let body: Json = response.json().await.unwrap();
        assert_eq!(body["error"], "InvalidValue", "{query}: {body}");
    }
    // per_page above the limit is clamped to 1000.
    let body = ctx
        .get_ok("/api/v2/incremental/users/cursor.json?start_time=0&per_page=5000")
        .await;
    assert_eq!(body["end_of_stream"], true);
}

#[tokio::test]
async fn exclude_deleted_leaves_deleted_tickets_out_and_still_moves_the_cursor() {
    let ctx = start(10).await;
    let now = ctx.now().await;
    let (all, _) = ctx
        .walk_export("tickets", "start_time=0", "per_page=1000")
        .await;
    let victim = all.iter().find(|t| t["status"] != "deleted").unwrap()["id"]
        .as_u64()
        .unwrap();
    ctx.ops(json!({"op": "delete", "stream": "tickets", "id": victim, "at": now - 120}))
        .await;
    let (kept, _) = ctx
        .walk_export("tickets", "start_time=0", "per_page=3&exclude_deleted=true")
        .await;
    assert!(kept.iter().all(|t| t["status"] != "deleted"));
    assert!(!ids(&kept).contains(&victim));
    let (with_deleted, _) = ctx
        .walk_export("tickets", "start_time=0", "per_page=3")
        .await;
    let shown = with_deleted.iter().find(|t| t["id"] == victim).unwrap();
    assert_eq!(shown["status"], "deleted");
    // A deleted ticket is gone from the tickets API.
    let response = ctx.get(&format!("/api/v2/tickets/{victim}.json")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.json::<Json>().await.unwrap(),
        json!({"error": "RecordNotFound", "description": "Not found"})
    );
}

#[tokio::test]
async fn a_system_update_moves_generated_timestamp_but_not_updated_at() {
    let ctx = start(10).await;
    let now = ctx.now().await;
    let id = ctx.ground_truth("tickets", "?live=true").await[0]["id"]
        .as_u64()
        .unwrap();
    let before = ctx.get_ok(&format!("/api/v2/tickets/{id}.json")).await["ticket"].clone();
    ctx.ops(json!({"op": "update", "stream": "tickets", "id": id, "system_only": true, "at": now - 100}))
        .await;
    let (records, _) = ctx
        .walk_export(
            "tickets",
            &format!("start_time={}", now - 200),
            "per_page=1000",
        )
        .await;
    assert_eq!(ids(&records), vec![id]);
    assert_eq!(records[0]["updated_at"], before["updated_at"]);
    assert_eq!(records[0]["generated_timestamp"], now - 100);
    assert!(
        zendesk_emulator::clock::parse_iso(records[0]["updated_at"].as_str().unwrap()).unwrap()
            < now - 200,
        "a ticket can come with an updated_at earlier than start_time"
    );
}
