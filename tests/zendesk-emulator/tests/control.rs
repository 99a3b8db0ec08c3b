//! The control API: its key, its checks on input, seeding, and HTTPS.

mod common;

use common::{start, start_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value as Json, json};
use zendesk_emulator::EmulatorConfig;

#[tokio::test]
async fn the_control_api_needs_its_key_and_refuses_zendesk_credentials() {
    let ctx = start(3).await;
    let response = ctx
        .http
        .get(ctx.url("/__emulator/stats"))
        .header("Authorization", ctx.token_auth())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = ctx
        .http
        .get(ctx.url("/__emulator/stats"))
        .bearer_auth(&ctx.emu.control_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_record_ops_are_refused_naming_the_problem_and_earlier_ops_stay_applied() {
    let ctx = start(3).await;
    let ticket = ctx.ground_truth("tickets", "?live=true").await[0]["id"]
        .as_u64()
        .unwrap();
    let cases = [
        (
            json!({"op": "update", "stream": "tickets", "id": ticket, "fields": {"colour": "red"}}),
            "colour",
        ),
        (
            json!({"op": "update", "stream": "tickets", "id": ticket, "fields": {"status": "deleted"}}),
            "status",
        ),
        (
            json!({"op": "update", "stream": "tickets", "id": ticket, "fields": {"assignee_id": 5}}),
            "assignee_id",
        ),
        (
            json!({"op": "update", "stream": "tickets", "id": 999_999}),
            "999999",
        ),
        (
            json!({"op": "insert", "stream": "ticket_comments", "ticket_id": ticket, "fields": {}}),
            "body",
        ),
        (
            json!({"op": "insert", "stream": "users", "fields": {"name": "x", "email": "nope"}}),
            "email",
        ),
        (json!({"op": "upsert", "stream": "tickets"}), "upsert"),
        (
            json!({"op": "insert", "stream": "tickets", "sideways": true}),
            "sideways",
        ),
        (
            json!({"op": "update", "stream": "tickets", "id": ticket, "at": 0}),
            "earlier",
        ),
        (
            json!({"op": "update", "stream": "tickets", "id": ticket, "at": "last tuesday"}),
            "RFC 3339",
        ),
    ];
    for (op, named) in cases {
        let (status, body) = ctx
            .control(
                Method::POST,
                "/__emulator/records",
                json!([{"op": "insert", "stream": "tickets", "fields": {"subject": "ok"}}, op]),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{op}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(named), "{op}: {error}");
        assert_eq!(body["applied"], 1, "the op before the bad one is applied");
    }
}

#[tokio::test]
async fn settings_refuse_unknown_names_and_bad_values() {
    let ctx = start(3).await;
    for (patch, named) in [
        (json!({"rate_limit": 5}), "rate_limit"),
        (json!({"max_page_size": 0}), "max_page_size"),
        (json!({"default_page_size": 500}), "default_page_size"),
        (json!({"export_lag_s": "soon"}), "invalid settings"),
    ] {
        let (status, body) = ctx
            .control(Method::POST, "/__emulator/settings", patch.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{patch}");
        assert!(
            body["error"].as_str().unwrap().contains(named),
            "{patch}: {body}"
        );
    }
    let body = ctx
        .post_control(
            "/__emulator/settings",
            json!({"max_page_size": 2, "default_page_size": 2}),
        )
        .await;
    assert_eq!(body["max_page_size"], 2);
    let page = ctx.get_ok("/api/v2/users.json?page[size]=2").await;
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn reseeding_replaces_the_account_at_a_new_scale_keeping_credentials() {
    let ctx = start(3).await;
    let counts = ctx
        .post_control("/__emulator/seed", json!({"scale": 250, "seed": 7}))
        .await;
    assert_eq!(counts["tickets"], 250);
    assert_eq!(ctx.ground_truth("tickets", "").await.len(), 250);
    let me = ctx.get_ok("/api/v2/users/me.json").await;
    assert_eq!(me["user"]["email"], ctx.emu.email.as_str());
}

#[tokio::test]
async fn a_large_account_exports_and_lists_completely() {
    let ctx = start(20_000).await;
    let (records, _) = ctx
        .walk_export("tickets", "start_time=0", "per_page=1000")
        .await;
    let truth = ctx.ground_truth("tickets", "").await;
    assert_eq!(truth.len(), 20_000);
    assert_eq!(common::latest_by_id(&records), truth);
    // A cursor page deep into the list.
    let mut url = ctx.url("/api/v2/users.json?page[size]=100");
    let mut users = 0;
    loop {
        let page = ctx.get_ok(&url).await;
        users += page["users"].as_array().unwrap().len();
        if page["meta"]["has_more"] == json!(false) {
            break;
        }
        url = page["links"]["next"].as_str().unwrap().to_string();
    }
    assert_eq!(users, ctx.ground_truth("users", "?live=true").await.len());
}

#[tokio::test]
async fn the_ground_truth_lists_comments_with_their_ticket_in_key_order() {
    let ctx = start(20).await;
    let comments = ctx.ground_truth("ticket_comments", "").await;
    let keys: Vec<(u64, u64)> = comments
        .iter()
        .map(|c| (c["ticket_id"].as_u64().unwrap(), c["id"].as_u64().unwrap()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let (status, body) = ctx
        .control(Method::GET, "/__emulator/records/organizations", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("organizations"));
}

#[tokio::test]
async fn https_serves_to_a_client_trusting_the_emulators_root_only() {
    let ctx = start_with(EmulatorConfig {
        scale: 3,
        tls: true,
        ..EmulatorConfig::default()
    })
    .await;
    assert!(ctx.emu.url.starts_with("https://"));
    let pem = ctx.emu.tls_root_pem.clone().expect("root");
    let trusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = trusting
        .get(ctx.url("/api/v2/incremental/tickets/cursor.json?start_time=0"))
        .header("Authorization", ctx.token_auth())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Json = response.json().await.unwrap();
    assert!(body["after_url"].as_str().unwrap().starts_with("https://"));
    let stranger = ctx.http.get(ctx.url("/api/v2/users/me.json")).send().await;
    assert!(
        stranger.is_err(),
        "an untrusted certificate fails the handshake"
    );
}
