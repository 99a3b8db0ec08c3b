//! Who decides where a connector's traffic and the host's credentials go: a hostile connector
//! (the `tests/hostile` guest, installed as the connector integrations use) names an attacker's
//! host in `configure` and its own OAuth endpoints; the host refuses whatever the operator did
//! not approve, binds the OAuth plan to the state, and checks refreshed instance URLs.
//! Run: `cargo test --release -p sluice --test egress`.

use std::sync::Arc;

use sf_emulator::{Emulator, EmulatorConfig};
use sluice::app::{App, AppConfig, AppError, IntegrationInput};
use sluice::engine::policy::PolicyError;
use sluice::engine::registry::HostApproval;
use sluice::oauth::OAuthError;
use sluice_test_support::runtime::{REDIRECT, approve, approve_emulator, grant};
use sluice_test_support::{Reply, TestDir, TestServer, hostile, temp_dir};

async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig {
        auto_approve: true,
        dataset: sf_emulator::Dataset::Empty,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// An app whose connectors may reach the `approved` loopback URLs' origins, with the hostile
/// guest installed (and approved, with an empty manifest) as the connector integrations use; its
/// data directory lives as long as the returned guard.
async fn hostile_app(tag: &str, approved: &[&str]) -> (Arc<App>, TestDir) {
    let dir = temp_dir(&format!("egress-{tag}"));
    let mut config = AppConfig::new(dir.to_path_buf());
    for url in approved {
        approve_emulator(&mut config, url);
    }
    config.host_client = Default::default();
    config.bundled_connector = Some(sluice::SALESFORCE_COMPONENT);
    let app = App::open(config).await.expect("app opens");
    app.registry()
        .install_with_approval("salesforce", hostile(), false, HostApproval::Approved)
        .await
        .expect("the hostile guest installs");
    (app, dir)
}

/// Adds an integration of the hostile guest with the emulator's client and `extra` settings.
async fn add(app: &App, emu: &Emulator, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("behaviour".to_string(), "fetch".to_string()),
        (
            "authorize-url".to_string(),
            format!("{}/services/oauth2/authorize", emu.url),
        ),
        (
            "token-url".to_string(),
            format!("{}/services/oauth2/token", emu.url),
        ),
    ];
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    app.add_integration(IntegrationInput {
        name: Some("hostile".into()),
        capability: Some("crm".into()),
        settings: [("environment".to_string(), "production".to_string())]
            .into_iter()
            .chain(pairs)
            .collect(),
        client_id: Some(emu.client_id.clone()),
        client_secret: Some(emu.client_secret.clone()),
        ..IntegrationInput::default()
    })
    .await
    .expect("the integration is added")
    .integration
    .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_cannot_declare_an_attackers_host_in_configure() {
    let emu = emulator().await;
    let attacker = TestServer::start(|_| Reply::new(200, "thanks")).await;
    let (app, _dir) = hostile_app("declare", &[&emu.url]).await;
    // `localhost` is the attacker's name for the same machine: never approved.
    let steal = format!("http://localhost:{}/steal", attacker.port);
    let id = add(&app, &emu, &[("hosts", "localhost"), ("url", &steal)]).await;
    sluice_test_support::runtime::connect(&app, &id).await;

    let err = app
        .test(&id)
        .await
        .expect_err("the attacker's host is refused");
    match &err {
        AppError::Egress(PolicyError::HostNotApproved { host, .. }) => {
            assert_eq!(host, "localhost")
        }
        other => panic!("expected a refused host, got {other:?}"),
    }
    assert!(err.to_string().contains("localhost"), "{err}");
    assert!(
        attacker.received().is_empty(),
        "the attacker was reached: {:?}",
        attacker.received()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_endpoints_outside_the_approved_origins_are_refused() {
    let emu = emulator().await;
    let attacker = TestServer::start(|_| Reply::new(200, "{}")).await;
    let (app, _dir) = hostile_app("endpoints", &[&emu.url]).await;
    for (setting, url) in [
        ("token-url", format!("{}/token", attacker.url)),
        ("token-url", "https://169.254.169.254/token".to_string()),
        (
            "authorize-url",
            format!("http://localhost:{}/authorize", attacker.port),
        ),
        ("revoke-url", format!("{}/revoke", attacker.url)),
    ] {
        let id = add(&app, &emu, &[(setting, &url)]).await;
        match app.begin_authorization(&id, REDIRECT).await {
            Err(AppError::OAuth(OAuthError::Endpoint { url: refused, .. })) => {
                assert_eq!(refused, url)
            }
            other => panic!("{setting}={url}: expected a refused endpoint, got {other:?}"),
        }
    }
    assert!(attacker.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_is_bound_to_the_state_at_begin() {
    let emu = emulator().await;
    // A second approved origin (say, a second emulator) that the connector switches to
    // between the start of the flow and its callback.
    let other = TestServer::start(|_| Reply::new(400, "{\"error\":\"invalid_grant\"}")).await;
    let (app, _dir) = hostile_app("bound", &[&emu.url, &other.url]).await;
    let id = add(&app, &emu, &[]).await;
    let start = app.begin_authorization(&id, REDIRECT).await.unwrap();
    app.edit_integration(
        &id,
        IntegrationInput {
            settings: vec![("token-url".into(), format!("{}/token", other.url))],
            ..IntegrationInput::default()
        },
    )
    .await
    .unwrap();
    let callback = approve(start.url.as_str()).await;
    app.complete_authorization(callback)
        .await
        .expect("the code is exchanged at the endpoint the flow started with");
    assert!(
        other.received().is_empty(),
        "the code and verifier went to the endpoint the connector named later"
    );
    let tokens = app.store().tokens(&id).unwrap().unwrap();
    assert_eq!(
        tokens.token_url,
        format!("{}/services/oauth2/token", emu.url)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_instance_url_is_checked_like_the_first() {
    // The provider: every refresh answers with an instance URL on another local port.
    let elsewhere = TestServer::start(|_| Reply::new(200, "admin")).await;
    let moved = format!("http://127.0.0.1:{}", elsewhere.port);
    let provider = TestServer::start(move |_| {
        Reply::new(
            200,
            serde_json::json!({
                "access_token": "access-2", "token_type": "Bearer",
                "instance_url": moved, "refresh_token": "refresh-2",
            })
            .to_string(),
        )
        .header("content-type", "application/json")
    })
    .await;
    let emu = emulator().await;
    let (app, _dir) = hostile_app("refresh", &[&provider.url]).await;
    let id = add(&app, &emu, &[]).await;
    app.store()
        .put_grant(
            &id,
            &grant(
                "access-1",
                Some("refresh-1"),
                &format!("{}/token", provider.url),
                &provider.url,
            ),
        )
        .unwrap();

    assert!(app.tokens().health_check(&id).await.is_err());
    assert_eq!(provider.received().len(), 1, "the refresh was asked for");
    let tokens = app.store().tokens(&id).unwrap().unwrap();
    assert_eq!(
        tokens.instance_url.as_deref(),
        Some(provider.url.as_str()),
        "the new instance URL is refused"
    );
    assert_eq!(
        tokens.access.expose(),
        "access-1",
        "nothing of the refused grant is kept"
    );
}
