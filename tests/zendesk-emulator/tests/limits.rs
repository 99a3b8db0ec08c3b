//! Rate limits and injected faults, from a plain HTTP client.

mod common;

use common::start;
use reqwest::StatusCode;
use serde_json::{Value as Json, json};

#[tokio::test]
async fn the_export_limit_answers_429_with_retry_after_until_the_minute_is_over() {
    let ctx = start(3).await;
    // Frozen, so a slow machine does not carry a request into the next window.
    ctx.post_control("/__emulator/clock", json!({"freeze": true}))
        .await;
    let export = "/api/v2/incremental/tickets/cursor.json?start_time=0";
    for n in 0..10 {
        let response = ctx.get(export).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "request {n} of the 10 allowed"
        );
    }
    let refused = ctx.get(export).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        retry_after, 60,
        "the window opened at the first request, on a stopped clock"
    );
    assert_eq!(refused.headers()["x-rate-limit-remaining"], "0");
    let body: Json = refused.json().await.unwrap();
    assert!(
        body["error"].is_string() && body["description"].is_string(),
        "{body}"
    );
    // The account budget is not spent by the export's refusals: other endpoints still work.
    assert_eq!(
        ctx.get("/api/v2/tickets.json").await.status(),
        StatusCode::OK
    );
    // Waiting out Retry-After (here: moving the emulator's clock) opens a new window.
    ctx.advance(retry_after - 1).await;
    assert_eq!(
        ctx.get(export).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "one second early"
    );
    ctx.advance(1).await;
    assert_eq!(ctx.get(export).await.status(), StatusCode::OK);
    let (_, stats) = ctx
        .control(reqwest::Method::GET, "/__emulator/stats", json!({}))
        .await;
    assert_eq!(stats["rate_limited"], 2, "{stats}");
}

#[tokio::test]
async fn the_account_limit_covers_every_endpoint_and_reports_what_remains() {
    let ctx = start(3).await;
    ctx.post_control("/__emulator/settings", json!({"rate_limit_per_minute": 3}))
        .await;
    let first = ctx.get("/api/v2/tickets.json").await;
    assert_eq!(first.headers()["x-rate-limit"], "3");
    assert_eq!(first.headers()["x-rate-limit-remaining"], "2");
    ctx.get("/api/v2/users.json").await;
    ctx.get("/api/v2/users/me.json").await;
    let refused = ctx.get("/api/v2/tickets.json").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn injected_faults_answer_as_asked_then_stop() {
    let ctx = start(3).await;
    let added = ctx
        .post_control(
            "/__emulator/faults",
            json!({"faults": [
                {"path_prefix": "/api/v2/incremental/", "status": 503, "count": 1, "headers": {"Retry-After": "7"}},
                {"path_prefix": "/api/v2/tickets", "skip": 1, "status": 500, "body": {"error": "Boom"}},
            ]}),
        )
        .await;
    assert_eq!(added["faults"], 2);
    let unavailable = ctx
        .get("/api/v2/incremental/tickets/cursor.json?start_time=0")
        .await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.headers()["retry-after"], "7");
    assert_eq!(
        ctx.get("/api/v2/incremental/tickets/cursor.json?start_time=0")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        ctx.get("/api/v2/tickets.json").await.status(),
        StatusCode::OK,
        "skipped once"
    );
    let failed = ctx.get("/api/v2/tickets.json").await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        failed.json::<Json>().await.unwrap(),
        json!({"error": "Boom"})
    );
    assert_eq!(
        ctx.get("/api/v2/tickets.json").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_slow_fault_delays_the_answer_past_a_client_timeout() {
    let ctx = start(3).await;
    ctx.post_control(
        "/__emulator/faults",
        json!({"path_prefix": "/api/v2/users", "delay_ms": 3000}),
    )
    .await;
    let outcome = ctx
        .http
        .get(ctx.url("/api/v2/users.json"))
        .header("Authorization", ctx.token_auth())
        .timeout(std::time::Duration::from_millis(200))
        .send()
        .await;
    assert!(
        outcome.is_err_and(|e| e.is_timeout()),
        "the answer waits for the delay"
    );
}

#[tokio::test]
async fn stats_count_calls_by_endpoint() {
    let ctx = start(3).await;
    ctx.get("/api/v2/tickets/1.json").await;
    ctx.get("/api/v2/tickets/2.json").await;
    ctx.http
        .get(ctx.url("/api/v2/users.json"))
        .send()
        .await
        .unwrap();
    let (_, stats) = ctx
        .control(reqwest::Method::GET, "/__emulator/stats", json!({}))
        .await;
    assert_eq!(stats["api_calls"], 3);
    assert_eq!(stats["by_endpoint"]["GET /api/v2/tickets/{id}"], 2);
    assert_eq!(stats["unauthenticated"], 1);
}
