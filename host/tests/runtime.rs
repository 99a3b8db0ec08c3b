//! The runtime against the Salesforce emulator: integrations validated by the connector,
//! the OAuth authorization-code flow with PKCE and a single-use state, refresh with rotation
//! under concurrency, revocation, re-generation keeping data, and no secret in clear in the
//! database.

use std::time::Duration;

use sf_emulator::{Emulator, EmulatorConfig};
use sluice::app::{AppConfig, AppError, IntegrationInput};
use sluice::engine::credentials::{AccessToken, Credential, CredentialError};
use sluice::engine::wit::types::{Operation, Row};
use sluice::oauth::Callback;
use sluice::store::IntegrationState;
use sluice_test_support::runtime::{
    REDIRECT, approve, approve_emulator, callback_of, connect, emulator_app, open_app,
};
use sluice_test_support::temp_dir;

async fn emulator(auto_approve: bool) -> Emulator {
    Emulator::start(EmulatorConfig {
        auto_approve,
        dataset: sf_emulator::Dataset::Empty,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

fn input(emu: &Emulator) -> IntegrationInput {
    IntegrationInput {
        name: Some("Acme support".into()),
        capability: Some("helpdesk".into()),
        settings: sluice_test_support::runtime::salesforce_settings(&emu.url, &[]),
        client_id: Some(emu.client_id.clone()),
        client_secret: Some(emu.client_secret.clone()),
        ..IntegrationInput::default()
    }
}

/// `input` with the setting `name` set to `value` (empty: removed).
fn with(mut input: IntegrationInput, name: &str, value: &str) -> IntegrationInput {
    input.settings.push((name.into(), value.into()));
    input
}

#[tokio::test]
async fn bad_input_is_a_field_error_and_changes_nothing() {
    let emu = emulator(true).await;
    let (app, _dir) = emulator_app("bad", &emu.url).await;
    let cases: Vec<(IntegrationInput, &str)> = vec![
        (
            IntegrationInput {
                name: Some(" ".into()),
                ..input(&emu)
            },
            "name",
        ),
        (with(input(&emu), "environment", "prod"), "environment"),
        (with(input(&emu), "pull-by", "sideways"), "pull-by"),
        (with(input(&emu), "pull-by", ""), "pull-by"),
        (
            IntegrationInput {
                capability: Some("billing".into()),
                ..input(&emu)
            },
            "capability",
        ),
        (with(input(&emu), "domain", "ftp://acme.example"), "domain"),
        (with(input(&emu), "colour", "blue"), "colour"),
        (
            IntegrationInput {
                interval: Some(Duration::ZERO),
                ..input(&emu)
            },
            "interval",
        ),
    ];
    for (bad, field) in cases {
        match app.add_integration(bad).await {
            Err(AppError::Invalid(issues)) => assert!(
                issues.iter().any(|i| i.field == field),
                "expected a {field} error, got {issues:?}"
            ),
            other => panic!("expected a field error on {field}, got {other:?}"),
        }
    }
    assert!(app.store().integrations().unwrap().is_empty());
    assert!(matches!(
        app.show_integration("int_unknown").await,
        Err(AppError::NotFound(_))
    ));
    // A valid one, then a bad edit that must leave it as it was.
    let v = app.add_integration(input(&emu)).await.unwrap();
    let before = app.store().integration(&v.integration.id).unwrap();
    let bad_edit = IntegrationInput {
        settings: vec![("environment".into(), "staging".into())],
        name: Some("renamed".into()),
        ..IntegrationInput::default()
    };
    assert!(matches!(
        app.edit_integration(&v.integration.id, bad_edit).await,
        Err(AppError::Invalid(_))
    ));
    let after = app.store().integration(&v.integration.id).unwrap();
    assert_eq!((after.name, after.settings), (before.name, before.settings));
}

#[tokio::test]
async fn connect_refresh_rotation_revocation_and_regeneration() {
    let emu = emulator(true).await;
    let (app, _dir) = emulator_app("oauth", &emu.url).await;
    let id = app
        .add_integration(input(&emu))
        .await
        .unwrap()
        .integration
        .id;
    assert_eq!(
        app.store().integration(&id).unwrap().state,
        IntegrationState::PendingAuthorization
    );

    // Authorization code + PKCE S256 + state.
    let start = app.begin_authorization(&id, REDIRECT).await.unwrap();
    let q: std::collections::HashMap<_, _> = start.url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], REDIRECT);
    let callback = approve(start.url.as_str()).await;
    let replay = callback.clone();
    let integration = app.complete_authorization(callback).await.unwrap();
    assert_eq!(integration.state, IntegrationState::Active);
    let tokens = app.store().tokens(&id).unwrap().expect("tokens stored");
    assert_eq!(tokens.instance_url.as_deref(), Some(emu.url.as_str()));
    assert!(tokens.refresh.is_some());

    // The state is single-use; a callback without a code is refused; neither changes state.
    assert!(matches!(
        app.complete_authorization(replay).await,
        Err(AppError::BadCallback(_))
    ));
    assert!(matches!(
        app.complete_authorization(Callback::from_query([("state", "x")]))
            .await,
        Err(AppError::BadCallback(_))
    ));
    assert_eq!(
        app.store().tokens(&id).unwrap().unwrap().generation,
        tokens.generation
    );

    // Some data and a checkpoint, to see them survive re-generation.
    let run = app
        .store()
        .start_run(&id, "test", false, "salesforce@test")
        .unwrap();
    let row = Row {
        key: "500000000000001AAA".into(),
        op: Operation::Upsert,
        cursor: "2024-01-01T00:00:00.000Z".into(),
        json: br#"{"Id":"500000000000001AAA"}"#.to_vec(),
    };
    app.store()
        .commit_page(
            &id,
            "Case",
            &run,
            &[row],
            Some("cp-1"),
            sluice::store::CheckpointState::Partial,
            1,
        )
        .unwrap();

    // Rotation on: concurrent 401s share one refresh, and rotated tokens keep working.
    let settings = reqwest::Client::new()
        .post(format!("{}/__emulator/settings", emu.url))
        .bearer_auth(&emu.control_key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(r#"{"refresh_token_rotation": true}"#)
        .send()
        .await
        .unwrap();
    assert!(settings.status().is_success());
    let provider = app.tokens().provider(&id);
    let rejected = Credential::bearer(&AccessToken::new(tokens.access.expose()));
    let refreshed_before = emu.state.stats.lock().unwrap().tokens_refreshed;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (provider, rejected) = (provider.clone(), rejected.clone());
        tasks.push(tokio::spawn(
            async move { provider.refresh(&rejected).await },
        ));
    }
    let mut fresh = Vec::new();
    for t in tasks {
        fresh.push(t.await.unwrap().expect("refresh succeeds"));
    }
    assert!(
        fresh.windows(2).all(|w| w[0] == w[1]),
        "all callers got one token"
    );
    assert_ne!(fresh[0], rejected);
    let stats = emu.state.stats.lock().unwrap().clone();
    assert_eq!(
        stats.tokens_refreshed - refreshed_before,
        1,
        "one refresh for 8 callers"
    );
    for _ in 0..3 {
        let current = provider.credential().await.unwrap();
        provider
            .refresh(&current)
            .await
            .expect("rotated refresh tokens keep working");
    }
    assert_eq!(emu.state.stats.lock().unwrap().refresh_failures, 0);

    // Revoked: needs-reauthorization after one token request, then no more requests.
    let revoked = reqwest::Client::new()
        .post(format!("{}/__emulator/tokens/revoke", emu.url))
        .bearer_auth(&emu.control_key)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    let current = app.store().tokens(&id).unwrap().unwrap().access;
    let failures_before = emu.state.stats.lock().unwrap().refresh_failures;
    let err = provider
        .refresh(&Credential::bearer(&AccessToken::new(current.expose())))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialError::ReauthorizationRequired(_)),
        "{err:?}"
    );
    let i = app.store().integration(&id).unwrap();
    assert_eq!(i.state, IntegrationState::NeedsReauthorization);
    assert!(i.state_reason.unwrap().contains("invalid_grant"));
    assert!(provider.credential().await.is_err());
    assert!(app.tokens().health_check(&id).await.is_err());
    assert_eq!(
        emu.state.stats.lock().unwrap().refresh_failures - failures_before,
        1,
        "exactly one token request after the revocation"
    );
    assert!(matches!(
        app.test(&id).await,
        Err(AppError::NotConnected(_))
    ));

    // Re-generate: same integration, data and checkpoint kept.
    connect(&app, &id).await;
    assert_eq!(
        app.store().integration(&id).unwrap().state,
        IntegrationState::Active
    );
    assert_eq!(
        app.store().checkpoint(&id, "Case").unwrap().as_deref(),
        Some("cp-1")
    );
    assert_eq!(app.store().record_counts(&id).unwrap()[0].live, 1);
    app.tokens().health_check(&id).await.expect("healthy again");

    // No token or client secret in clear in the database files.
    let secrets = {
        let t = app.store().tokens(&id).unwrap().unwrap();
        vec![
            t.access.expose().to_string(),
            t.refresh.unwrap().expose().to_string(),
            emu.client_secret.clone(),
            tokens.access.expose().to_string(),
        ]
    };
    let dir = app.config().data_dir.clone();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.file_name().unwrap() != "secret.key" {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    for s in secrets {
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "a secret is in clear in the data directory"
        );
    }
}

#[tokio::test]
async fn access_denied_reports_the_providers_error_and_burns_the_state() {
    let emu = emulator(false).await;
    let (app, _dir) = emulator_app("denied", &emu.url).await;
    let id = app
        .add_integration(input(&emu))
        .await
        .unwrap()
        .integration
        .id;
    let start = app.begin_authorization(&id, REDIRECT).await.unwrap();
    let raw = start.url.query().unwrap().to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = format!("{}/services/oauth2/authorize", emu.url);
    let login = client
        .post(&authorize)
        .form(&[
            ("q", raw.as_str()),
            ("action", "login"),
            ("username", emu.username.as_str()),
            ("password", emu.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let deny = client
        .post(&authorize)
        .header(reqwest::header::COOKIE, cookie)
        .form(&[("q", raw.as_str()), ("action", "deny")])
        .send()
        .await
        .unwrap();
    let callback = callback_of(deny.headers());
    let err = app.complete_authorization(callback).await.unwrap_err();
    assert!(err.to_string().contains("access_denied"), "{err}");
    assert_eq!(
        app.store().integration(&id).unwrap().state,
        IntegrationState::PendingAuthorization
    );
    // The state was burnt: a code for it would now be refused.
    assert!(matches!(
        app.complete_authorization(Callback::Code {
            code: "x".into(),
            state: start.state
        })
        .await,
        Err(AppError::BadCallback(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_pulls_survive_rotation_and_short_sessions() {
    let emu = Emulator::start(EmulatorConfig {
        auto_approve: true,
        dataset: sf_emulator::Dataset::Bench,
        scale: 20_000,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = temp_dir("rotation");
    let mut config = AppConfig::new(dir.to_path_buf());
    approve_emulator(&mut config, &emu.url);
    // Refresh proactively after 250 ms, and sessions die after 2 s. The refresh age sits well
    // below the pulls' length (about a second since pages commit while the next is pulled),
    // so refreshes happen during the pulls however fast the machine is.
    config.refresh_age = Duration::from_millis(250);
    let app = open_app(config).await;
    let settings = reqwest::Client::new()
        .post(format!("{}/__emulator/settings", emu.url))
        .bearer_auth(&emu.control_key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(r#"{"refresh_token_rotation": true, "session_timeout_s": 2}"#)
        .send()
        .await
        .unwrap();
    assert!(settings.status().is_success());
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = app
            .add_integration(with(input(&emu), "objects", "Case"))
            .await
            .unwrap()
            .integration
            .id;
        connect(&app, &id).await;
        ids.push(id);
    }
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            sluice::runner::run_pull(
                &app,
                &id,
                sluice::runner::PullOptions {
                    page_records: 200,
                    ..Default::default()
                },
            )
            .await
        }));
    }
    for t in tasks {
        let summary = t.await.unwrap().expect("pull runs");
        assert_eq!(
            summary.status,
            sluice::runner::RunStatus::Succeeded,
            "{summary:?}"
        );
    }
    let stats = emu.state.stats.lock().unwrap().clone();
    assert_eq!(stats.refresh_failures, 0, "no invalid_grant");
    assert!(
        stats.tokens_refreshed > 0,
        "tokens were refreshed during the pulls"
    );
    let counts: Vec<i64> = ids
        .iter()
        .map(|id| app.store().record_counts(id).unwrap()[0].live)
        .collect();
    assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");
    for id in &ids {
        assert_eq!(
            app.store().integration(id).unwrap().state,
            IntegrationState::Active
        );
    }
    println!(
        "4 parallel pulls of {} Cases each, {} refreshes, 0 failures",
        counts[0], stats.tokens_refreshed
    );
}

#[tokio::test]
async fn client_credentials_connect_and_renew() {
    let emu = emulator(true).await;
    let (app, _dir) = emulator_app("cc", &emu.url).await;
    let id = app
        .add_integration(input(&emu))
        .await
        .unwrap()
        .integration
        .id;
    let integration = app.connect_client_credentials(&id).await.unwrap();
    assert_eq!(integration.state, IntegrationState::Active);
    let tokens = app.store().tokens(&id).unwrap().unwrap();
    assert!(
        tokens.refresh.is_none(),
        "client credentials issue no refresh token"
    );
    // A 401 renews with a new client-credentials grant.
    let provider = app.tokens().provider(&id);
    let renewed = provider
        .refresh(&Credential::bearer(&AccessToken::new(
            tokens.access.expose(),
        )))
        .await
        .unwrap();
    assert_ne!(renewed.expose(), tokens.access.expose());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_the_pull_after_one_token_request() {
    let emu = Emulator::start(EmulatorConfig {
        auto_approve: true,
        dataset: sf_emulator::Dataset::Demo,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let (app, _dir) = emulator_app("revoked-pull", &emu.url).await;
    let id = app
        .add_integration(input(&emu))
        .await
        .unwrap()
        .integration
        .id;
    connect(&app, &id).await;
    let first = sluice::runner::run_pull(&app, &id, Default::default())
        .await
        .unwrap();
    assert_eq!(
        first.status,
        sluice::runner::RunStatus::Succeeded,
        "{first:?}"
    );
    assert!(first.records > 0);
    let control = |path: &str| {
        reqwest::Client::new()
            .post(format!("{}/__emulator/{path}", emu.url))
            .bearer_auth(&emu.control_key)
            .send()
    };
    assert!(
        control("tokens/revoke")
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let failures_before = emu.state.stats.lock().unwrap().refresh_failures;
    let second = sluice::runner::run_pull(&app, &id, Default::default())
        .await
        .unwrap();
    assert_eq!(
        second.status,
        sluice::runner::RunStatus::NeedsReauthorization,
        "{second:?}"
    );
    let i = app.store().integration(&id).unwrap();
    assert_eq!(i.state, IntegrationState::NeedsReauthorization);
    assert_eq!(
        emu.state.stats.lock().unwrap().refresh_failures - failures_before,
        1
    );
    // Pulls stop until a person re-connects; then the data and checkpoints are still there.
    assert!(matches!(
        sluice::runner::run_pull(&app, &id, Default::default()).await,
        Err(AppError::NotConnected(_))
    ));
    let kept = app.store().record_counts(&id).unwrap();
    connect(&app, &id).await;
    assert_eq!(app.store().record_counts(&id).unwrap().len(), kept.len());
    let third = sluice::runner::run_pull(&app, &id, Default::default())
        .await
        .unwrap();
    assert_eq!(
        third.status,
        sluice::runner::RunStatus::Succeeded,
        "{third:?}"
    );
}

/// Several connectors serve side by side: each integration is pinned to the connector it
/// chose, an unknown one is a field error naming the installed ones, and an integration
/// keeps its connector.
#[tokio::test]
async fn integrations_choose_their_connector() {
    let emu = Emulator::start(EmulatorConfig {
        auto_approve: true,
        dataset: sf_emulator::Dataset::Demo,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let (app, _dir) = emulator_app("choose", &emu.url).await;
    app.registry()
        .install_with_approval(
            "salesforce-next",
            sluice::SALESFORCE_COMPONENT,
            false,
            sluice::engine::registry::HostApproval::Approved,
        )
        .await
        .unwrap();

    let unknown = IntegrationInput {
        connector: Some("zendesk".into()),
        ..input(&emu)
    };
    match app.add_integration(unknown).await {
        Err(AppError::Invalid(issues)) => {
            let issue = issues.iter().find(|i| i.field == "connector").unwrap();
            assert!(
                issue.message.contains("\"zendesk\"")
                    && issue.message.contains("salesforce, salesforce-next"),
                "{issue:?}"
            );
        }
        other => panic!("expected a field error on connector, got {other:?}"),
    }
    assert!(app.store().integrations().unwrap().is_empty());

    let mut ids = Vec::new();
    for connector in [None, Some("salesforce-next")] {
        let v = app
            .add_integration(IntegrationInput {
                connector: connector.map(String::from),
                ..input(&emu)
            })
            .await
            .unwrap();
        let want = connector.unwrap_or(sluice::app::DEFAULT_CONNECTOR);
        assert_eq!(v.integration.connector, want);
        connect(&app, &v.integration.id).await;
        let run = sluice::runner::run_pull(&app, &v.integration.id, Default::default())
            .await
            .unwrap();
        assert_eq!(run.status, sluice::runner::RunStatus::Succeeded, "{run:?}");
        assert!(
            run.connector_version.starts_with(&format!("{want}@")),
            "{want} served by {}",
            run.connector_version
        );
        ids.push(v.integration.id);
    }

    let moved = IntegrationInput {
        connector: Some("salesforce-next".into()),
        ..IntegrationInput::default()
    };
    match app.edit_integration(&ids[0], moved).await {
        Err(AppError::Invalid(issues)) => {
            assert!(issues.iter().any(|i| i.field == "connector"), "{issues:?}")
        }
        other => panic!("expected a field error on connector, got {other:?}"),
    }
    let kept = app.store().integration(&ids[0]).unwrap();
    assert_eq!(kept.connector, sluice::app::DEFAULT_CONNECTOR);
}
