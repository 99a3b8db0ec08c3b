//! OAuth 2.0: authorization code with PKCE, refresh, bearer tokens and scopes.

mod common;

use base64::Engine as _;
use common::{Ctx, start, start_with};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use zendesk_emulator::{EmulatorConfig, Settings};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-long-enough-code-verifier-for-pkce-0123456789-abcdefghij";

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn auto_approving() -> Ctx {
    start_with(EmulatorConfig {
        scale: 5,
        settings: Settings {
            auto_approve: true,
            ..Settings::default()
        },
        ..EmulatorConfig::default()
    })
    .await
}

/// Runs the browser step; returns the redirect's query pairs.
async fn authorize(ctx: &Ctx, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut url = url::Url::parse(&ctx.url("/oauth/authorizations/new")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &ctx.emu.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "xyz")
        .extend_pairs(extra);
    let response = ctx.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(REDIRECT), "{location}");
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn token_request(ctx: &Ctx, body: Json) -> (StatusCode, Json) {
    let response = ctx
        .http
        .post(ctx.url("/oauth/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn pkce_code(ctx: &Ctx, scope: &str) -> String {
    let challenge = challenge(VERIFIER);
    let pairs = authorize(
        ctx,
        &[
            ("scope", scope),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(value(&pairs, "state"), Some("xyz"));
    value(&pairs, "code").expect("code").to_string()
}

async fn bearer_get(ctx: &Ctx, token: &str, path: &str) -> (StatusCode, Json) {
    let response = ctx
        .http
        .get(ctx.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn pkce_code_grant_gives_a_bearer_token_that_reads_the_api() {
    let ctx = auto_approving().await;
    let code = pkce_code(&ctx, "read").await;
    let redeem = json!({"grant_type": "authorization_code", "code": code, "client_id": ctx.emu.client_id,
        "redirect_uri": REDIRECT, "code_verifier": VERIFIER, "scope": "read"});
    let (status, tokens) = token_request(&ctx, redeem.clone()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["scope"], "read");
    assert_eq!(
        tokens["expires_in"], 1800,
        "30 minutes when the request names none"
    );
    let access = tokens["access_token"].as_str().unwrap();
    let (status, body) = bearer_get(&ctx, access, "/api/v2/tickets.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A code is single-use.
    let (status, again) = token_request(&ctx, redeem).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["error"], "invalid_grant");
}

#[tokio::test]
async fn a_wrong_verifier_a_wrong_redirect_or_an_expired_code_is_invalid_grant() {
    let ctx = auto_approving().await;
    let cases = [
        (
            "code_verifier",
            json!("not-the-verifier-not-the-verifier-not-the-verifier"),
        ),
        ("redirect_uri", json!("http://127.0.0.1:9/elsewhere")),
    ];
    for (field, wrong) in cases {
        let code = pkce_code(&ctx, "read").await;
        let mut body = json!({"grant_type": "authorization_code", "code": code, "client_id": ctx.emu.client_id,
            "redirect_uri": REDIRECT, "code_verifier": VERIFIER});
        body[field] = wrong;
        let (status, answer) = token_request(&ctx, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(answer["error"], "invalid_grant", "{field}");
    }
    let code = pkce_code(&ctx, "read").await;
    ctx.advance(121).await;
    let (status, answer) = token_request(
        &ctx,
        json!({"grant_type": "authorization_code", "code": code,
        "client_id": ctx.emu.client_id, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_grant", "codes live 120 s");
}

#[tokio::test]
async fn without_pkce_the_client_secret_is_required() {
    let ctx = auto_approving().await;
    let pairs = authorize(&ctx, &[("scope", "read")]).await;
    let code = value(&pairs, "code").unwrap().to_string();
    let body = json!({"grant_type": "authorization_code", "code": code, "client_id": ctx.emu.client_id, "redirect_uri": REDIRECT});
    let (status, answer) = token_request(&ctx, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "invalid_client");
    let mut with_secret = body;
    with_secret["client_secret"] = json!(ctx.emu.client_secret);
    let (status, answer) = token_request(&ctx, with_secret).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn a_refresh_replaces_both_tokens_and_invalidates_the_old_pair() {
    let ctx = auto_approving().await;
    let code = pkce_code(&ctx, "read").await;
    let (_, first) = token_request(
        &ctx,
        json!({"grant_type": "authorization_code", "code": code,
        "client_id": ctx.emu.client_id, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}),
    )
    .await;
    let refresh = json!({"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": ctx.emu.client_id});
    let (status, second) = token_request(&ctx, refresh.clone()).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let (status, body) = bearer_get(
        &ctx,
        first["access_token"].as_str().unwrap(),
        "/api/v2/tickets.json",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");
    let (status, _) = bearer_get(
        &ctx,
        second["access_token"].as_str().unwrap(),
        "/api/v2/tickets.json",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, reused) = token_request(&ctx, refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reused["error"], "invalid_grant");
}

#[tokio::test]
async fn an_expired_access_token_is_refused_and_a_refresh_recovers() {
    let ctx = start(3).await;
    let tokens = ctx
        .post_control("/__emulator/oauth/grant", json!({"scope": "read"}))
        .await;
    let expired = ctx
        .post_control("/__emulator/tokens/expire", json!({}))
        .await;
    assert_eq!(expired["expired"], 1);
    let (status, body) = bearer_get(
        &ctx,
        tokens["access_token"].as_str().unwrap(),
        "/api/v2/users/me.json",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");
    // A token from the control grant belongs to a confidential client: refresh with the secret.
    let (status, fresh) = token_request(
        &ctx,
        json!({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": ctx.emu.client_id, "client_secret": ctx.emu.client_secret}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let (status, _) = bearer_get(
        &ctx,
        fresh["access_token"].as_str().unwrap(),
        "/api/v2/users/me.json",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn scopes_limit_what_a_token_reads() {
    let ctx = start(3).await;
    let tickets_only = ctx
        .post_control("/__emulator/oauth/grant", json!({"scope": "tickets:read"}))
        .await;
    let token = tickets_only["access_token"].as_str().unwrap();
    let (status, _) = bearer_get(
        &ctx,
        token,
        "/api/v2/incremental/tickets/cursor.json?start_time=0",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = bearer_get(
        &ctx,
        token,
        "/api/v2/incremental/users/cursor.json?start_time=0",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "Forbidden");
}

#[tokio::test]
async fn the_consent_page_posts_back_and_deny_redirects_with_access_denied() {
    let ctx = start(3).await;
    let mut url = url::Url::parse(&ctx.url("/oauth/authorizations/new")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &ctx.emu.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "read")
        .append_pair("state", "s1");
    let page = ctx.http.get(url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("action=\"/oauth/authorizations\""));
    let form = [
        ("response_type", "code"),
        ("client_id", ctx.emu.client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "read"),
        ("state", "s1"),
    ];
    for (decision, expect) in [("deny", "error=access_denied"), ("allow", "code=")] {
        let mut fields = form.to_vec();
        fields.push(("decision", decision));
        let response = ctx
            .http
            .post(ctx.url("/oauth/authorizations"))
            .form(&fields)
            .send()
            .await
            .unwrap();
        let location = response.headers()["location"].to_str().unwrap().to_string();
        assert!(
            location.contains(expect) && location.contains("state=s1"),
            "{location}"
        );
    }
}

#[tokio::test]
async fn an_unregistered_redirect_or_client_gets_an_error_page_not_a_redirect() {
    let ctx = auto_approving().await;
    for (client, redirect) in [
        (ctx.emu.client_id.as_str(), "https://attacker.example/cb"),
        ("someone_else", REDIRECT),
    ] {
        let mut url = url::Url::parse(&ctx.url("/oauth/authorizations/new")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", "read");
        let response = ctx.http.get(url).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{client} {redirect}"
        );
        assert!(response.headers().get("location").is_none());
    }
    let pairs = authorize(&ctx, &[("scope", "everything")]).await;
    assert_eq!(value(&pairs, "error"), Some("invalid_scope"));
}
