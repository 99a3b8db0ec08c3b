//! Credentials of every kind end to end through the runtime, with a contract-0.2 connector
//! (`tests/creds-guest`) whose plan its settings choose, against a loopback test server: an
//! API key and basic credentials entered once, sealed at rest, sent to the connector's allowed
//! host; a 401 to a key marks the integration for re-authorization; a plan of another kind is
//! refused naming the plan's; `none` needs no connect; OAuth whose token response names no
//! instance URL works toward the allowed host; switching from OAuth to an API key revokes the
//! OAuth token at the provider (the Salesforce emulator), and a failed revocation keeps the
//! key and says so.
//! Run: `cargo test --release --workspace --test runtime_credentials`.

use std::path::Path;
use std::sync::Arc;

use sluice::app::{App, AppConfig, AppError, EnteredSecret, IntegrationInput, SupersededToken};
use sluice::engine::wit::types::FailureKind;
use sluice::runner::{PullOptions, RunStatus};
use sluice::secrets::Secret;
use sluice::store::{CredentialKind, IntegrationState};
use sluice_test_support::runtime::{approve_emulator, open_app, stats};
use sluice_test_support::*;

/// An app whose connectors may reach `server_url`, with the credentials test connector
/// installed; the directory lives as long as the guard.
async fn app(tag: &str, server_url: &str) -> (Arc<App>, TestDir) {
    app_reaching(tag, &[server_url]).await
}

/// [`app`], reaching every origin of `urls`.
async fn app_reaching(tag: &str, urls: &[&str]) -> (Arc<App>, TestDir) {
    let dir = temp_dir(tag);
    let mut config = AppConfig::new(dir.to_path_buf());
    for url in urls {
        approve_emulator(&mut config, url);
    }
    config.host_client = Default::default();
    let app = open_app(config).await;
    app.registry()
        .install("creds-guest", creds_guest(), false)
        .await
        .expect("the credentials test connector installs");
    (app, dir)
}

/// Adds an integration of the test connector with `settings`.
async fn add(app: &App, settings: &[(&str, &str)], client: Option<(&str, &str)>) -> String {
    let v = app
        .add_integration(IntegrationInput {
            connector: Some("creds-guest".into()),
            name: Some("creds".into()),
            capability: Some("crm".into()),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            client_id: client.map(|c| c.0.to_string()),
            client_secret: client.map(|c| c.1.to_string()),
            ..IntegrationInput::default()
        })
        .await
        .expect("the integration is valid");
    v.integration.id
}

fn api_key(key: &str) -> EnteredSecret {
    EnteredSecret::ApiKey {
        key: Secret::new(key),
    }
}

fn basic(user: &str, password: &str) -> EnteredSecret {
    EnteredSecret::Basic {
        username: user.into(),
        password: Secret::new(password),
    }
}

/// Whether any file under `dir` (the database, its WAL, the key file …) holds `needle`.
fn any_file_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            return any_file_contains(&path, needle);
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

async fn pull(app: &Arc<App>, id: &str) -> sluice::runner::RunSummary {
    sluice::runner::run_pull(app, id, PullOptions::default())
        .await
        .expect("the run starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_sealed_at_rest_and_sent_in_the_plans_header() {
    const KEY: &str = "sk-live-7f3a9c1e-never-in-clear";
    let server = TestServer::start(|r| match r.header("x-api-key") {
        Some(v) if v == format!("Token {KEY}") => Reply::new(200, "tickets"),
        _ => Reply::new(401, "no key"),
    })
    .await;
    let (app, dir) = app("creds-key", &server.url).await;
    let url = format!("{}/api/tickets", server.url);
    let id = add(
        &app,
        &[("kind", "api-key"), ("url", &url), ("prefix", "Token ")],
        None,
    )
    .await;
    assert_eq!(
        app.store().integration(&id).unwrap().state,
        IntegrationState::PendingAuthorization
    );

    // Basic credentials for a plan that asks for an API key: refused, naming the plan's kind.
    let wrong = app.connect_entered(&id, basic("u", "p")).await.unwrap_err();
    let AppError::Unsupported(message) = &wrong else {
        panic!("expected a refusal of the kind, got {wrong:?}");
    };
    assert!(message.contains("API key"), "{message}");
    // An empty key is a field error.
    let empty = app.connect_entered(&id, api_key(" ")).await.unwrap_err();
    assert!(matches!(empty, AppError::Invalid(_)), "{empty:?}");

    let connected = app.connect_entered(&id, api_key(KEY)).await.unwrap();
    assert_eq!(connected.integration.state, IntegrationState::Active);
    assert_eq!(connected.superseded_token, None, "it held no OAuth token");
    assert_eq!(
        app.store().credential_kind(&id).unwrap(),
        Some(CredentialKind::ApiKey)
    );
    let report = app.test(&id).await.unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    let summary = pull(&app, &id).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    for received in server.received() {
        assert_eq!(
            received.header("x-api-key"),
            Some(format!("Token {KEY}").as_str())
        );
        assert_eq!(received.header("authorization"), None);
    }

    // The view names the kind, never the value.
    let view = sluice::views::integration_view(&app, &id).await.unwrap();
    let shown = serde_json::to_string(&view).unwrap();
    assert!(shown.contains("\"credentials\":\"api-key\""), "{shown}");
    assert!(!shown.contains(KEY));
    // Sealed at rest: no file of the data directory holds the key.
    assert!(!any_file_contains(dir.path(), KEY.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_api_key_needs_reauthorization_without_a_loop() {
    let server = TestServer::start(|_| Reply::new(401, "{\"error\":\"bad key\"}")).await;
    let (app, _dir) = app("creds-401", &server.url).await;
    let url = format!("{}/api/tickets", server.url);
    let id = add(&app, &[("kind", "api-key"), ("url", &url)], None).await;
    app.connect_entered(&id, api_key("revoked")).await.unwrap();

    let report = app.test(&id).await.unwrap();
    let failure = report.failure.expect("the test fails");
    assert_eq!(failure.kind, FailureKind::ReauthorizationRequired);
    let integration = app.store().integration(&id).unwrap();
    assert_eq!(integration.state, IntegrationState::NeedsReauthorization);
    assert!(
        integration.state_reason.unwrap().contains("refused"),
        "the reason says the provider refused the key"
    );
    assert_eq!(server.received().len(), 1, "one request, no retry");

    // Until a person enters a key again, nothing more is sent.
    let again = app.test(&id).await.unwrap_err();
    assert!(matches!(again, AppError::NotConnected(_)), "{again:?}");
    assert_eq!(server.received().len(), 1);
    app.connect_entered(&id, api_key("renewed")).await.unwrap();
    assert_eq!(
        app.store().integration(&id).unwrap().state,
        IntegrationState::Active
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_work_and_another_account_is_refused() {
    const PASSWORD: &str = "pw-3b6e-never-in-clear";
    let server = TestServer::start(|_| Reply::new(200, "ok")).await;
    let (app, dir) = app("creds-basic", &server.url).await;
    let url = format!("{}/api/users", server.url);
    let id = add(&app, &[("kind", "basic"), ("url", &url)], None).await;
    app.connect_entered(&id, basic("agent@example.com", PASSWORD))
        .await
        .unwrap();
    let summary = pull(&app, &id).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("agent@example.com:{PASSWORD}"))
    );
    assert_eq!(
        server.received()[0].header("authorization"),
        Some(expected.as_str())
    );
    assert!(!any_file_contains(dir.path(), PASSWORD.as_bytes()));
    // The search does find what is stored in clear (the user name is not secret).
    assert!(any_file_contains(dir.path(), b"agent@example.com"));

    // The connector names accounts by user: another user is another account.
    let other = app
        .connect_entered(&id, basic("intruder@example.com", "x"))
        .await
        .unwrap_err();
    assert!(matches!(other, AppError::OtherAccount(_)), "{other:?}");
    let kept = app.store().entered(&id).unwrap().unwrap();
    assert_eq!(kept.username.as_deref(), Some("agent@example.com"));
    // The same user with a new password is fine.
    app.connect_entered(&id, basic("agent@example.com", "rotated"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_that_needs_no_credentials_is_active_at_once() {
    let server = TestServer::start(|_| Reply::new(200, "public")).await;
    let (app, _dir) = app("creds-none", &server.url).await;
    let url = format!("{}/public", server.url);
    let id = add(&app, &[("kind", "none"), ("url", &url)], None).await;
    assert_eq!(
        app.store().integration(&id).unwrap().state,
        IntegrationState::Active
    );
    let summary = pull(&app, &id).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    assert_eq!(server.received()[0].header("authorization"), None);
    let refused = app.connect_entered(&id, api_key("k")).await.unwrap_err();
    let AppError::Unsupported(message) = &refused else {
        panic!("{refused:?}");
    };
    assert!(message.contains("asks for no credentials"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_without_an_instance_url_sends_the_token_to_the_allowed_host() {
    let server = TestServer::start(|r| {
        if r.target.starts_with("/token") {
            return Reply::new(
                200,
                r#"{"access_token":"no-instance-token","token_type":"Bearer","expires_in":3600}"#,
            )
            .header("content-type", "application/json");
        }
        match r.header("authorization") {
            Some("Bearer no-instance-token") => Reply::new(200, "data"),
            _ => Reply::new(401, "no token"),
        }
    })
    .await;
    let (app, _dir) = app("creds-oauth", &server.url).await;
    let url = format!("{}/api/data", server.url);
    let token_url = format!("{}/token", server.url);
    let id = add(
        &app,
        &[("kind", "oauth"), ("url", &url), ("token-url", &token_url)],
        Some(("client-1", "client-secret-1")),
    )
    .await;
    app.connect_client_credentials(&id).await.unwrap();
    let tokens = app.store().tokens(&id).unwrap().unwrap();
    assert_eq!(tokens.instance_url, None);
    let summary = pull(&app, &id).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    let data: Vec<_> = server
        .received()
        .into_iter()
        .filter(|r| r.target.starts_with("/api/"))
        .collect();
    assert_eq!(
        data[0].header("authorization"),
        Some("Bearer no-instance-token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_stores_a_key_and_shows_only_its_kind() {
    use sluice::admin::{AdminState, router};
    const KEY: &str = "api-key-through-the-admin-api";
    let server = TestServer::start(|_| Reply::new(200, "ok")).await;
    let (app, _dir) = app("creds-admin", &server.url).await;
    let url = format!("{}/api", server.url);
    let id = add(&app, &[("kind", "api-key"), ("url", &url)], None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let stats = Arc::new(sluice::scheduler::SchedulerStats::default());
    let state =
        AdminState::new(app.clone(), stats, Some("admin".into()), addr, base.clone()).unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(format!("{base}/api/integrations/{id}/credentials"))
            .bearer_auth("admin")
            .json(&body)
            .send()
    };

    let wrong = post(serde_json::json!({"kind": "basic", "username": "u", "password": "p"}))
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 422);
    let text = wrong.text().await.unwrap();
    assert!(text.contains("API key"), "{text}");

    let stored = post(serde_json::json!({"kind": "api-key", "key": KEY}))
        .await
        .unwrap();
    assert_eq!(stored.status().as_u16(), 200);
    let text = stored.text().await.unwrap();
    assert!(text.contains("\"state\":\"active\""), "{text}");
    assert!(
        text.contains("\"superseded_token\":null"),
        "no OAuth token was replaced: {text}"
    );
    assert!(!text.contains(KEY));

    let shown = http
        .get(format!("{base}/api/integrations/{id}"))
        .bearer_auth("admin")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let view: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(view["credentials"], "api-key", "{shown}");
    assert!(!shown.contains(KEY));
    let report = app.test(&id).await.unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert_eq!(server.received()[0].header("x-api-key"), Some(KEY));
}

/// An integration of the test connector connected with the Salesforce emulator's
/// client-credentials grant, whose OAuth plan revokes at `revoke_url`; its id and the data URL
/// its connector GETs.
async fn oauth_at_emulator(
    app: &App,
    emu: &sf_emulator::Emulator,
    revoke_url: &str,
) -> (String, String) {
    let data_url = format!("{}/services/data/v62.0/sobjects", emu.url);
    let token_url = format!("{}/services/oauth2/token", emu.login_url);
    let id = add(
        app,
        &[
            ("kind", "oauth"),
            ("url", &data_url),
            ("token-url", &token_url),
            ("revoke-url", revoke_url),
        ],
        Some((&emu.client_id, &emu.client_secret)),
    )
    .await;
    app.connect_client_credentials(&id)
        .await
        .expect("connected");
    (id, data_url)
}

/// The status the emulator answers `url` with `token` as the bearer.
async fn status_with(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("the emulator answers")
        .status()
        .as_u16()
}

/// Edits the integration's plan to an API key.
async fn switch_plan_to_api_key(app: &App, id: &str) {
    app.edit_integration(
        id,
        IntegrationInput {
            settings: vec![("kind".into(), "api-key".into())],
            ..IntegrationInput::default()
        },
    )
    .await
    .expect("the plan is now an API key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_from_oauth_to_an_api_key_revokes_the_token_at_the_provider() {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig::default())
        .await
        .expect("the emulator starts");
    let (app, _dir) = app_reaching("creds-switch", &[&emu.url, &emu.login_url]).await;
    let revoke_url = format!("{}/services/oauth2/revoke", emu.login_url);
    let (id, data_url) = oauth_at_emulator(&app, &emu, &revoke_url).await;
    let old = app.store().tokens(&id).unwrap().expect("a token");
    let old = old.access.expose().to_string();
    assert_eq!(status_with(&data_url, &old).await, 200, "the token works");

    switch_plan_to_api_key(&app, &id).await;
    let connected = app
        .connect_entered(&id, api_key("the-new-key"))
        .await
        .unwrap();
    assert_eq!(connected.superseded_token, Some(SupersededToken::Revoked));
    assert_eq!(connected.integration.state, IntegrationState::Active);
    assert_eq!(
        app.store().credential_kind(&id).unwrap(),
        Some(CredentialKind::ApiKey)
    );
    assert!(app.store().tokens(&id).unwrap().is_none());
    let seen = stats(&emu).await;
    assert_eq!(seen["by_endpoint"]["oauth.revoke"], 1, "{seen}");
    assert_eq!(
        status_with(&data_url, &old).await,
        401,
        "the emulator refuses the revoked token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_revocation_keeps_the_new_key_and_says_so() {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig::default())
        .await
        .expect("the emulator starts");
    let down = TestServer::start(|_| Reply::new(503, "revocation is down")).await;
    let (app, _dir) =
        app_reaching("creds-switch-down", &[&emu.url, &emu.login_url, &down.url]).await;
    let logs = captured_logs();
    let (id, data_url) = oauth_at_emulator(&app, &emu, &format!("{}/revoke", down.url)).await;
    let old = app.store().tokens(&id).unwrap().expect("a token");
    let old = old.access.expose().to_string();

    switch_plan_to_api_key(&app, &id).await;
    let connected = app.connect_entered(&id, api_key("kept-key")).await.unwrap();
    match &connected.superseded_token {
        Some(SupersededToken::NotRevoked { reason }) => {
            assert!(reason.contains("503"), "{reason}");
            assert!(!reason.contains(&old));
        }
        other => panic!("expected a failed revocation, got {other:?}"),
    }
    assert_eq!(down.received().len(), 1, "the revocation was tried");
    assert_eq!(connected.integration.state, IntegrationState::Active);
    assert_eq!(
        app.store().credential_kind(&id).unwrap(),
        Some(CredentialKind::ApiKey),
        "the new key is stored"
    );
    assert_eq!(status_with(&data_url, &old).await, 200, "not revoked");
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = logged
        .lines()
        .find(|l| l.contains("could not revoke") && l.contains(&id))
        .unwrap_or_else(|| panic!("no log names the failed revocation of {id}:\n{logged}"));
    assert!(!logged.contains(&old), "the token is never logged: {line}");
}
