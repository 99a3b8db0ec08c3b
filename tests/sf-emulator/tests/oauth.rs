//! OAuth flows: login form, consent, session cookie, prompt=login, Deny, PKCE, refresh
//! rotation, client credentials, revoke, introspect, identity.

mod common;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CALLBACK: &str = "http://127.0.0.1:53682/callback";

fn authorize_url(emu: &sf_emulator::Emulator, extra: &str) -> String {
    format!(
        "{}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&state=xyz&scope={}{extra}",
        emu.url,
        emu.client_id,
        enc(CALLBACK),
        enc("api refresh_token")
    )
}

fn location_params(r: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(r.status(), 302, "expected a redirect");
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(loc.starts_with(CALLBACK), "{loc}");
    url::Url::parse(loc)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn q_field(html: &str) -> String {
    let start = html.find("name=\"q\" value=\"").expect("hidden q") + 16;
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

async fn token_call(emu: &sf_emulator::Emulator, form: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .post(format!("{}/services/oauth2/token", emu.url))
        .form(form)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

/// Runs the browser flow: login form, consent (Allow/Deny). Returns the redirect params
/// and the session cookie.
async fn browser(
    emu: &sf_emulator::Emulator,
    extra: &str,
    cookie: Option<&str>,
    allow: bool,
) -> (HashMap<String, String>, String) {
    let c = client();
    let mut req = c.get(authorize_url(emu, extra));
    if let Some(k) = cookie {
        req = req.header("Cookie", k);
    }
    let r = req.send().await.unwrap();
    if r.status() == 302 {
        return (location_params(&r), cookie.unwrap_or_default().to_string());
    }
    let html = r.text().await.unwrap();
    let (html, cookie) = if html.contains("login_form") {
        let q = q_field(&html);
        let r = c
            .post(format!("{}/services/oauth2/authorize", emu.url))
            .form(&[
                ("action", "login"),
                ("q", &q),
                ("username", &emu.username),
                ("password", &emu.password),
            ])
            .send()
            .await
            .unwrap();
        let set = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        (r.text().await.unwrap(), set)
    } else {
        (html, cookie.unwrap().to_string())
    };
    assert!(html.contains("Allow") && html.contains("Deny"), "{html}");
    let q = q_field(&html);
    let r = c
        .post(format!("{}/services/oauth2/authorize", emu.url))
        .header("Cookie", &cookie)
        .form(&[("action", if allow { "allow" } else { "deny" }), ("q", &q)])
        .send()
        .await
        .unwrap();
    (location_params(&r), cookie)
}

#[tokio::test]
async fn web_server_flow_with_pkce_and_sessions() {
    let emu = start_empty().await;
    let verifier = "a-very-long-code-verifier-0123456789-abcdefghijklmnop";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let extra = format!("&code_challenge={challenge}&code_challenge_method=S256");
    // Wrong password shows the form again.
    let html = client()
        .get(authorize_url(&emu, &extra))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<form") && html.contains("password"));
    let r = client()
        .post(format!("{}/services/oauth2/authorize", emu.url))
        .form(&[
            ("action", "login"),
            ("q", &q_field(&html)),
            ("username", &emu.username),
            ("password", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("check your username and password")
    );

    let (params, cookie) = browser(&emu, &extra, None, true).await;
    assert_eq!(params["state"], "xyz");
    let code = params["code"].clone();
    assert!(code.ends_with("=="));
    // PKCE mismatch fails (and consumes the code).
    let (s, v) = token_call(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &emu.client_id),
            ("client_secret", &emu.client_secret),
            ("redirect_uri", CALLBACK),
            ("code_verifier", "wrong"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"], "invalid_request");
    let (s, v) = token_call(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &emu.client_id),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "codes are single use"
    );

    // Second authorization in the same browser: no login form, no consent.
    let (params, _) = browser(&emu, &extra, Some(&cookie), true).await;
    let (s, tokens) = token_call(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("client_id", &emu.client_id),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(s, 200, "{tokens}");
    assert!(tokens.get("expires_in").is_none());
    assert!(tokens["issued_at"].is_string());
    assert_eq!(tokens["instance_url"], emu.url.as_str());
    assert!(tokens["refresh_token"].is_string());
    assert!(
        tokens["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/id/00D", emu.login_url)),
        "the identity URL is on the login host, as on real orgs"
    );
    // Missing verifier when a challenge was sent.
    let (params, _) = browser(&emu, &extra, Some(&cookie), true).await;
    let (s, v) = token_call(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("client_id", &emu.client_id),
            ("client_secret", &emu.client_secret),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));

    // prompt=login forces the form; Deny → access_denied.
    let html = client()
        .get(authorize_url(&emu, "&prompt=login"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("login_form"));
    let (params, _) = browser(&emu, "&prompt=consent", Some(&cookie), false).await;
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "xyz");

    // Identity URL and userinfo: refused without the `id` (or openid/profile/full) scope.
    let tok = tokens["access_token"].as_str().unwrap();
    let id_url = tokens["id"].as_str().unwrap();
    let refused = client().get(id_url).bearer_auth(tok).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let refused = client()
        .get(format!("{}/services/oauth2/userinfo", emu.login_url))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let with_id = grant(&emu).await;
    assert_eq!(with_id["scope"], "api refresh_token id");
    let tok = with_id["access_token"].as_str().unwrap();
    let id: Value = client()
        .get(with_id["id"].as_str().unwrap())
        .bearer_auth(tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(id["urls"]["rest"].as_str().unwrap().contains("{version}"));
    let ui = client()
        .get(format!("{}/services/oauth2/userinfo", emu.login_url))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
}

#[tokio::test]
async fn authorize_validation_and_auto_approve() {
    let emu = start_empty().await;
    // Unknown client and foreign callback are error pages, not redirects.
    let r = client()
        .get(format!(
            "{}/services/oauth2/authorize?response_type=code&client_id=nope&redirect_uri={}",
            emu.url,
            enc(CALLBACK)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_client_id"));
    let r = client()
        .get(format!(
            "{}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}",
            emu.url,
            emu.client_id,
            enc("https://evil.example/cb")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("redirect_uri_mismatch"));
    // localhost on any port is a valid loopback callback.
    let r = client()
        .get(format!(
            "{}/services/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}",
            emu.url,
            emu.client_id,
            enc("http://localhost:9999/cb")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // auto_approve redirects at once.
    control(&emu, "settings", json!({"auto_approve": true})).await;
    let r = client().get(authorize_url(&emu, "")).send().await.unwrap();
    let p = location_params(&r);
    let (s, v) = token_call(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &p["code"]),
            ("client_id", &emu.client_id),
            ("client_secret", &emu.client_secret),
            ("redirect_uri", "http://127.0.0.1:1/other"),
        ],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("redirect_uri_mismatch"))
    );
    // Token endpoint errors.
    let (s, v) = token_call(&emu, &[("grant_type", "magic")]).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (s, v) = token_call(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &emu.client_id),
            ("client_secret", "bad"),
        ],
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_client")));
    let (s, v) = token_call(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "bad"),
            ("client_secret", "bad"),
        ],
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_client_id")));
    let (s, v) = token_call(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &emu.client_id),
            ("client_secret", &emu.client_secret),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert!(v.get("refresh_token").is_none() && v.get("expires_in").is_none());
}

#[tokio::test]
async fn refresh_rotation_revoke_introspect_and_timeout() {
    let emu = start_empty().await;
    let g = grant(&emu).await;
    let rt = g["refresh_token"].as_str().unwrap().to_string();
    let refresh = |t: String| {
        let emu_url = emu.url.clone();
        let cid = emu.client_id.clone();
        let secret = emu.client_secret.clone();
        async move {
            let r = client()
                .post(format!("{emu_url}/services/oauth2/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &t),
                    ("client_id", &cid),
                    ("client_secret", &secret),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Without rotation: no new refresh token, the old one keeps working.
    let (s, v) = refresh(rt.clone()).await;
    assert_eq!(s, 200);
    assert!(v.get("refresh_token").is_none());
    assert_eq!(refresh(rt.clone()).await.0, 200);
    // With rotation: a new token each time, the old one dies; concurrent use → one fails.
    control(&emu, "settings", json!({"refresh_token_rotation": true})).await;
    let (s, v) = refresh(rt.clone()).await;
    assert_eq!(s, 200);
    let rt2 = v["refresh_token"].as_str().unwrap().to_string();
    let (s, v) = refresh(rt.clone()).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(v["error_description"], "expired access/refresh token");
    // Redeeming the rotated token again was a reuse: the whole family is revoked.
    let (s, v) = refresh(rt2.clone()).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    let rt2 = grant(&emu).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (a, b) = tokio::join!(refresh(rt2.clone()), refresh(rt2.clone()));
    let oks = [a.0, b.0].iter().filter(|s| **s == 200).count();
    assert_eq!(
        oks, 1,
        "exactly one concurrent redemption wins: {a:?} {b:?}"
    );
    let failed = if a.0 == 200 { &b.1 } else { &a.1 };
    assert_eq!(failed["error"], "invalid_grant");
    // Session timeout.
    control(
        &emu,
        "settings",
        json!({"session_timeout_s": 1, "refresh_token_rotation": false}),
    )
    .await;
    let tok = token(&emu).await;
    assert_eq!(get(&emu, &tok, "/limits").await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, _, t) = get(&emu, &tok, "/limits").await;
    assert_eq!(s, 401, "{t}");
    control(&emu, "settings", json!({"session_timeout_s": 7200})).await;
    // Introspect and revoke.
    let g = grant(&emu).await;
    let (tok, rt) = (
        g["access_token"].as_str().unwrap(),
        g["refresh_token"].as_str().unwrap(),
    );
    let intro = |t: String| {
        let (u, c, s) = (
            emu.url.clone(),
            emu.client_id.clone(),
            emu.client_secret.clone(),
        );
        async move {
            client()
                .post(format!("{u}/services/oauth2/introspect"))
                .form(&[
                    ("token", t.as_str()),
                    ("client_id", &c),
                    ("client_secret", &s),
                ])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(intro(tok.to_string()).await["active"], true);
    let r = client()
        .post(format!("{}/services/oauth2/revoke", emu.url))
        .form(&[("token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        intro(tok.to_string()).await["active"],
        false,
        "revoking a refresh token ends its sessions"
    );
    let r = client()
        .post(format!("{}/services/oauth2/revoke", emu.url))
        .form(&[("token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");
    // tokens/revoke kills refresh tokens too.
    let g = grant(&emu).await;
    control(&emu, "tokens/revoke", json!({})).await;
    let (s, v) = refresh(g["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    let stats: Value = client()
        .get(format!("{}/__emulator/stats", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["tokens_refreshed"].as_u64().unwrap() >= 4);
}

/// Refreshes `rt` at the token endpoint.
async fn refresh_with(emu: &sf_emulator::Emulator, rt: &str) -> (u16, Value) {
    token_call(
        emu,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &emu.client_id),
            ("client_secret", &emu.client_secret),
        ],
    )
    .await
}

fn refresh_token_of(g: &Value) -> String {
    g["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_sixth_approval_revokes_the_oldest() {
    let emu = start_empty().await;
    let mut approvals = Vec::new();
    for _ in 0..5 {
        approvals.push(grant(&emu).await);
    }
    for g in &approvals {
        assert_eq!(refresh_with(&emu, &refresh_token_of(g)).await.0, 200);
    }
    let oldest_session = approvals[0]["access_token"].as_str().unwrap().to_string();
    approvals.push(grant(&emu).await);
    let (s, v) = refresh_with(&emu, &refresh_token_of(&approvals[0])).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(get(&emu, &oldest_session, "/limits").await.0, 401);
    for g in &approvals[1..] {
        assert_eq!(refresh_with(&emu, &refresh_token_of(g)).await.0, 200);
    }
    // The cap is a setting.
    control(&emu, "settings", json!({"approvals_per_app": 10})).await;
    let kept = grant(&emu).await;
    assert_eq!(
        refresh_with(&emu, &refresh_token_of(&approvals[1])).await.0,
        200
    );
    assert_eq!(refresh_with(&emu, &refresh_token_of(&kept)).await.0, 200);
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_its_family_only() {
    let emu = start_empty().await;
    control(&emu, "settings", json!({"refresh_token_rotation": true})).await;
    let other = grant(&emu).await;
    let g = grant(&emu).await;
    let (s, v) = refresh_with(&emu, &refresh_token_of(&g)).await;
    assert_eq!(s, 200);
    let (rt2, session2) = (
        refresh_token_of(&v),
        v["access_token"].as_str().unwrap().to_string(),
    );
    assert_eq!(get(&emu, &session2, "/limits").await.0, 200);
    // The rotated token comes back: the family (rt2 and its session) is revoked.
    let (s, v) = refresh_with(&emu, &refresh_token_of(&g)).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(refresh_with(&emu, &rt2).await.0, 400);
    assert_eq!(get(&emu, &session2, "/limits").await.0, 401);
    // Another approval of the same user is untouched.
    assert_eq!(refresh_with(&emu, &refresh_token_of(&other)).await.0, 200);
    // Without reuse detection, a rotated token is only refused.
    control(
        &emu,
        "settings",
        json!({"rotation_reuse_revokes_family": false}),
    )
    .await;
    let g = grant(&emu).await;
    let rt2 = refresh_token_of(&refresh_with(&emu, &refresh_token_of(&g)).await.1);
    assert_eq!(refresh_with(&emu, &refresh_token_of(&g)).await.0, 400);
    assert_eq!(refresh_with(&emu, &rt2).await.0, 200);
}

#[tokio::test]
async fn inactive_user_and_org_have_their_own_errors() {
    let emu = start_empty().await;
    let g = grant(&emu).await;
    let rt = refresh_token_of(&g);
    let tok = g["access_token"].as_str().unwrap().to_string();
    for (setting, error, description) in [
        ("inactive_user", "inactive_user", "user is inactive"),
        (
            "inactive_org",
            "inactive_org",
            "org is locked, closed, or suspended",
        ),
    ] {
        control(&emu, "settings", json!({setting: true})).await;
        let (s, v) = refresh_with(&emu, &rt).await;
        assert_eq!((s, v["error"].as_str()), (400, Some(error)), "{v}");
        assert_eq!(v["error_description"], description);
        assert_eq!(get(&emu, &tok, "/limits").await.0, 401);
        control(&emu, "settings", json!({setting: false})).await;
    }
    assert_eq!(refresh_with(&emu, &rt).await.0, 200);
}

#[tokio::test]
async fn the_second_org_logs_in_with_its_own_ids_and_no_data_access() {
    let emu = start_with(sf_emulator::EmulatorConfig {
        auto_approve: true,
        ..Default::default()
    })
    .await;
    control(&emu, "settings", json!({"browser_org": "second"})).await;
    let (verifier, challenge) = (
        "v".repeat(50),
        URL_SAFE_NO_PAD.encode(Sha256::digest("v".repeat(50))),
    );
    let r = client()
        .get(authorize_url(
            &emu,
            &format!("&code_challenge={challenge}&code_challenge_method=S256"),
        ))
        .send()
        .await
        .unwrap();
    let params = location_params(&r);
    let (s, tokens) = token_call(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("client_id", &emu.client_id),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(s, 200, "{tokens}");
    let id = tokens["id"].as_str().unwrap();
    let first = grant(&emu).await;
    let first_org = first["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .nth(1)
        .unwrap()
        .to_string();
    let org = id.rsplit('/').nth(1).unwrap();
    assert!(
        org.starts_with("00D") && org != first_org,
        "{id} vs {first_org}"
    );
    // The primary org's instance refuses the other org's session.
    let tok = tokens["access_token"].as_str().unwrap();
    assert_eq!(get(&emu, tok, "/limits").await.0, 401);
}
