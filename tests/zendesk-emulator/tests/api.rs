//! Authentication and the list endpoints, from a plain HTTP client.

mod common;

use common::{basic, start};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};

#[tokio::test]
async fn the_api_token_authenticates_and_bad_credentials_get_zendesks_401() {
    let ctx = start(5).await;
    let me = ctx.get_ok("/api/v2/users/me.json").await;
    assert_eq!(me["user"]["email"], ctx.emu.email.as_str());
    assert_eq!(me["user"]["role"], "admin");

    let email = &ctx.emu.email;
    let wrong = [
        None,
        Some(basic(&format!("{email}/token"), "not-the-token")),
        Some(basic("someone@else.example/token", &ctx.emu.api_token)),
        // `{email}:{secret}` is password authentication, which is off.
        Some(basic(email, &ctx.emu.api_token)),
        Some(format!("Token {}", ctx.emu.api_token)),
    ];
    for header in wrong {
        let mut request = ctx.http.get(ctx.url("/api/v2/tickets.json"));
        if let Some(h) = &header {
            request = request.header("Authorization", h);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        let body: Json = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "Couldn't authenticate you"}),
            "{header:?}"
        );
    }
    // After API tokens are deactivated, the same token is refused like a wrong one.
    ctx.post_control("/__emulator/settings", json!({"api_tokens_enabled": false}))
        .await;
    let refused = ctx.get("/api/v2/users/me.json").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    ctx.post_control("/__emulator/settings", json!({"api_tokens_enabled": true}))
        .await;
    // Credentials in the query string are not processed.
    let response = ctx
        .http
        .get(ctx.url(&format!(
            "/api/v2/tickets.json?api_token={}",
            ctx.emu.api_token
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// Follows `links.next` while `meta.has_more`; returns every item.
async fn walk_cursor(ctx: &common::Ctx, first: &str, key: &str) -> Vec<Json> {
    let mut items = Vec::new();
    let mut url = first.to_string();
    loop {
        let page = ctx.get_ok(&url).await;
        items.extend(page[key].as_array().unwrap().iter().cloned());
        if page["meta"]["has_more"] != json!(true) {
            return items;
        }
        url = page["links"]["next"]
            .as_str()
            .expect("links.next")
            .to_string();
    }
}

#[tokio::test]
async fn cursor_pagination_walks_tickets_users_and_comments_as_ground_truth() {
    let ctx = start(60).await;
    let tickets = walk_cursor(&ctx, "/api/v2/tickets.json?page[size]=7", "tickets").await;
    assert_eq!(tickets, ctx.ground_truth("tickets", "?live=true").await);
    let users = walk_cursor(&ctx, "/api/v2/users.json?page[size]=4", "users").await;
    assert_eq!(users, ctx.ground_truth("users", "?live=true").await);

    let comments_truth = ctx.ground_truth("ticket_comments", "?live=true").await;
    let mut comments = Vec::new();
    for ticket in &tickets {
        let id = ticket["id"].as_u64().unwrap();
        let url = format!("/api/v2/tickets/{id}/comments.json?page[size]=1");
        for mut c in walk_cursor(&ctx, &url, "comments").await {
            c["ticket_id"] = json!(id);
            comments.push(c);
        }
    }
    assert_eq!(comments, comments_truth);
    assert!(
        comments.len() > tickets.len(),
        "some tickets have several comments"
    );
    // The first comment is the ticket's description.
    let first = &comments[0];
    let ticket = tickets
        .iter()
        .find(|t| t["id"] == first["ticket_id"])
        .unwrap();
    assert_eq!(ticket["description"], first["body"]);
}

#[tokio::test]
async fn the_last_cursor_pages_has_more_and_next_link_lead_to_an_empty_page() {
    let ctx = start(5).await;
    let page = ctx.get_ok("/api/v2/tickets.json?page[size]=100").await;
    assert_eq!(page["meta"]["has_more"], false);
    let next = page["links"]["next"].as_str().unwrap().to_string();
    let after = ctx.get_ok(&next).await;
    assert_eq!(after["tickets"], json!([]));
    assert_eq!(after["meta"]["has_more"], false);
    assert_eq!(after["links"]["next"], Json::Null);
    // A full last page still says has_more, as Zendesk's does; the next page is empty.
    let count = page["tickets"].as_array().unwrap().len();
    let full = ctx
        .get_ok(&format!("/api/v2/tickets.json?page[size]={count}"))
        .await;
    assert_eq!(full["meta"]["has_more"], true);
    let empty = ctx.get_ok(full["links"]["next"].as_str().unwrap()).await;
    assert_eq!(empty["tickets"], json!([]));
    assert_eq!(empty["meta"]["has_more"], false);
    ctx.post_control(
        "/__emulator/settings",
        json!({"has_more_on_full_last_page": false}),
    )
    .await;
    let exact = ctx
        .get_ok(&format!("/api/v2/tickets.json?page[size]={count}"))
        .await;
    assert_eq!(exact["meta"]["has_more"], false);
    // Going back from the second page of a two-page walk gives the first page.
    let one = ctx.get_ok("/api/v2/tickets.json?page[size]=2").await;
    let two = ctx.get_ok(one["links"]["next"].as_str().unwrap()).await;
    let back = ctx.get_ok(two["links"]["prev"].as_str().unwrap()).await;
    assert_eq!(back["tickets"], one["tickets"]);
}

#[tokio::test]
async fn bad_page_parameters_are_refused_naming_the_parameter() {
    let ctx = start(5).await;
    for query in [
        "page[size]=101",
        "page[size]=0",
        "page[size]=x",
        "page[size]=5&page[after]=junk",
    ] {
        let response = ctx.get(&format!("/api/v2/tickets.json?{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Json = response.json().await.unwrap();
        let named = if query.contains("after") {
            "page[after]"
        } else {
            "page[size]"
        };
        assert!(
            body["description"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn offset_pagination_counts_and_links_pages() {
    let ctx = start(12).await;
    let first = ctx.get_ok("/api/v2/tickets.json?per_page=5").await;
    let count = first["count"].as_u64().unwrap() as usize;
    assert_eq!(count, ctx.ground_truth("tickets", "?live=true").await.len());
    assert_eq!(first["previous_page"], Json::Null);
    let mut seen = first["tickets"].as_array().unwrap().len();
    let mut next = first["next_page"].clone();
    while let Some(url) = next.as_str() {
        let page = ctx.get_ok(url).await;
        seen += page["tickets"].as_array().unwrap().len();
        next = page["next_page"].clone();
    }
    assert_eq!(seen, count);
    // Offset pagination reaches the first 10,000 records (100 pages of 100); cursors go
    // further.
    let within = ctx.get("/api/v2/tickets.json?page=101&per_page=1").await;
    assert_eq!(within.status(), StatusCode::OK);
    let response = ctx.get("/api/v2/tickets.json?page=101&per_page=100").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Json = response.json().await.unwrap();
    assert!(
        body["description"].as_str().unwrap().contains("page[size]"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_records_and_endpoints_are_404() {
    let ctx = start(3).await;
    for path in [
        "/api/v2/tickets/999999.json",
        "/api/v2/users/5.json",
        "/api/v2/tickets/999999/comments.json",
    ] {
        let response = ctx.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            response.json::<Json>().await.unwrap()["error"],
            "RecordNotFound"
        );
    }
    let response = ctx.get("/api/v2/nothing_here.json").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.json::<Json>().await.unwrap()["error"],
        "InvalidEndpoint"
    );
}

#[tokio::test]
async fn a_comment_moves_both_clocks_of_its_ticket() {
    let ctx = start(3).await;
    let now = ctx.now().await;
    let id = ctx.ground_truth("tickets", "?live=true").await[0]["id"]
        .as_u64()
        .unwrap();
    let added = ctx
        .ops(json!({"op": "insert", "stream": "ticket_comments", "ticket_id": id, "fields": {"body": "We are on it", "public": false}, "at": now - 5}))
        .await;
    let comment_id = added["results"][0]["id"].as_u64().unwrap();
    let comments = ctx
        .get_ok(&format!("/api/v2/tickets/{id}/comments.json"))
        .await;
    let last = comments["comments"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["id"], comment_id);
    assert_eq!(last["public"], false);
    let ticket = ctx.get_ok(&format!("/api/v2/tickets/{id}.json")).await["ticket"].clone();
    assert_eq!(ticket["generated_timestamp"], now - 5);
    assert_eq!(
        zendesk_emulator::clock::parse_iso(ticket["updated_at"].as_str().unwrap()),
        Some(now - 5)
    );
}
