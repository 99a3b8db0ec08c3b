//! Connector versions: validation, canary (without credentials, with one bounded pull), atomic
//! publication, rollback, restore, the watched directory (regular files only), version numbers
//! shared by processes, and hot swaps that reach running runs and lose nothing.
//! Run: `cargo test --release -p sluice --test engine_registry`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::app::{App, AppConfig};
use sluice::engine::credentials::CredentialProvider;
use sluice::engine::outbound::OutboundPolicy;
use sluice::engine::registry::{
    CanarySession, CanaryTarget, ConnectorRegistry, HostApproval, MemoryVersionStore,
    RegistryError, Stage, StaticCanaryTargets, watch_connectors_dir,
};
use sluice::engine::wit::types::{Grant, Settings, StreamStatus};
use sluice::engine::{CallContext, ConnectorEngine, EngineLimits};
use sluice::runner::{Progress, ProgressFn, PullOptions, RunStatus, RunSummary, run_pull};
use sluice::store::RunPage;
use sluice_test_support::runtime::{add_hostile_integration, open_app};
use sluice_test_support::*;

/// A pager server: `GET /page?after=N&limit=L` answers the next L ids after N, up to `last`.
async fn pager(last: u64, delay: Duration) -> TestServer {
    TestServer::start(move |r| {
        let query = r.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let after = param("after").unwrap_or(0);
        let limit = param("limit").unwrap_or(10);
        let body: String = (after + 1..=(after + limit).min(last))
            .map(|id| format!("{id}\n"))
            .collect();
        Reply::new(200, body).after(delay)
    })
    .await
}

struct Fixture {
    registry: Arc<ConnectorRegistry>,
    store: Arc<MemoryVersionStore>,
    canary: Arc<StaticCanaryTargets>,
    server: TestServer,
}

async fn fixture(last: u64, delay: Duration) -> Fixture {
    let server = pager(last, delay).await;
    let engine = ConnectorEngine::new(EngineLimits {
        max_concurrent_calls: 32,
        ..EngineLimits::default()
    })
    .unwrap();
    let store = Arc::new(MemoryVersionStore::default());
    let canary = Arc::new(StaticCanaryTargets::default());
    canary.add(
        "hostile",
        CanaryTarget {
            integration: "acme".into(),
            settings: settings("pager", &[("url", &server.url), ("hosts", "127.0.0.1")]),
            host: host_ctx(true),
            session: Some(CanarySession {
                grant: Grant {
                    instance_url: Some(server.url.clone()),
                    fields: Vec::new(),
                    issued_at_ms: None,
                    scopes: Vec::new(),
                },
                extra_origins: vec![origin(&server.url)].into(),
            }),
        },
    );
    let registry = ConnectorRegistry::new(engine, store.clone(), canary.clone());
    Fixture {
        registry,
        store,
        canary,
        server,
    }
}

fn v2() -> Vec<u8> {
    with_custom_section(hostile(), "sluice-test-version", b"2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_reject_rollback_restore() {
    let f = fixture(10, Duration::ZERO).await;
    let r = &f.registry;
    assert!(r.active("hostile").is_none());

    let report = r
        .install("hostile", hostile(), true)
        .await
        .expect("v1 installs");
    assert_eq!((report.version, report.existing), (1, false));
    assert_eq!((report.canary_configured, report.canary_tested), (1, 1));
    assert_eq!(r.active("hostile").unwrap().version, 1);

    // A broken version (configure traps) is rejected by the canary; v1 keeps serving.
    match r.install("hostile", hostile_broken(), true).await {
        Err(RegistryError::Rejected {
            stage,
            integration,
            reason,
            ..
        }) => {
            assert_eq!(stage, Stage::CanaryConfigure);
            assert_eq!(integration.as_deref(), Some("acme"));
            assert!(reason.contains("trapped"), "{reason}");
        }
        other => panic!("expected a canary rejection, got {other:?}"),
    }
    assert_eq!(r.active("hostile").unwrap().version, 1);

    // Not a component at all.
    match r.install("hostile", b"\0asm\x01\0\0\0", true).await {
        Err(RegistryError::Rejected { stage, .. }) => assert_eq!(stage, Stage::Component),
        other => panic!("expected a component rejection, got {other:?}"),
    }

    let report = r
        .install("hostile", &v2(), true)
        .await
        .expect("v2 installs");
    assert_eq!(report.version, 2);
    assert_eq!(r.active("hostile").unwrap().version, 2);
    let list = r.list(Some("hostile"));
    assert_eq!(list.len(), 2, "rejected versions are not listed");
    assert!(list[1].active && !list[0].active);
    assert!(list[1].active_since.is_some());

    // Rollback is one call; unknown versions are refused.
    r.activate("hostile", 1).unwrap();
    assert_eq!(r.active("hostile").unwrap().version, 1);
    assert!(matches!(
        r.activate("hostile", 9),
        Err(RegistryError::UnknownVersion { version: 9, .. })
    ));
    assert!(matches!(
        r.activate("nope", 1),
        Err(RegistryError::UnknownConnector(_))
    ));

    // Installing known bytes re-activates that version without a new number.
    let report = r.install("hostile", &v2(), true).await.unwrap();
    assert_eq!((report.version, report.existing), (2, true));

    // A restarted host restores every version and the active one, from the store.
    let restored = ConnectorRegistry::new(r.engine().clone(), f.store.clone(), f.canary.clone());
    assert_eq!(restored.restore().await.unwrap(), 2);
    assert_eq!(restored.active("hostile").unwrap().version, 2);
    assert_eq!(restored.list(None).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_refusing_existing_settings_is_rejected() {
    let f = fixture(10, Duration::ZERO).await;
    f.registry
        .install("hostile", hostile(), true)
        .await
        .unwrap();
    f.canary.add(
        "hostile",
        CanaryTarget {
            integration: "refuser".into(),
            settings: settings("refuse", &[]),
            host: host_ctx(true),
            session: None,
        },
    );
    let err = f
        .registry
        .install("hostile", &v2(), true)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("canary configure") && text.contains("refuses"),
        "{text}"
    );
    assert_eq!(f.registry.active("hostile").unwrap().version, 1);
    // A failing `test` rejects too.
    let g = fixture(10, Duration::ZERO).await;
    g.canary.add(
        "hostile",
        CanaryTarget {
            integration: "failing-test".into(),
            settings: settings("fail-test", &[]),
            host: host_ctx(true),
            session: Some(CanarySession {
                grant: Grant {
                    instance_url: Some(g.server.url.clone()),
                    fields: Vec::new(),
                    issued_at_ms: None,
                    scopes: Vec::new(),
                },
                extra_origins: vec![origin(&g.server.url)].into(),
            }),
        },
    );
    match g.registry.install("hostile", hostile(), true).await {
        Err(RegistryError::Rejected { stage, .. }) => assert_eq!(stage, Stage::CanaryTest),
        other => panic!("expected a canary test rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_continuous_pulls_loses_nothing() {
    let f = fixture(1_000_000, Duration::from_millis(5)).await;
    let registry = f.registry.clone();
    registry.install("hostile", hostile(), true).await.unwrap();
    let _ = hostile_broken(); // built before the clock matters

    let pages_done = Arc::new(AtomicUsize::new(0));
    let swapped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let rejection = Arc::new(Mutex::new(None));

    let installer = {
        let (registry, pages_done, swapped, finished, rejection) = (
            registry.clone(),
            pages_done.clone(),
            swapped.clone(),
            finished.clone(),
            rejection.clone(),
        );
        tokio::spawn(async move {
            while pages_done.load(Ordering::SeqCst) < 5 {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let report = registry.install("hostile", &v2(), true).await.unwrap();
            assert_eq!(report.version, 2);
            swapped.store(true, Ordering::SeqCst);
            let err = registry
                .install("hostile", hostile_broken(), true)
                .await
                .unwrap_err();
            *rejection.lock().unwrap() = Some(err.to_string());
            finished.store(true, Ordering::SeqCst);
        })
    };

    let ctx = CallContext {
        integration: Some("acme".into()),
        run: Some("hot-swap".into()),
        policy: Arc::new(policy_for(&[&f.server.url], true)),
        credentials: Some(FakeProvider::new("t")),
        stored_keys: None,
    };
    let s = session(
        settings("pager", &[("url", &f.server.url)]),
        &f.server.url,
        true,
    );
    let mut checkpoint: Option<String> = None;
    let mut ids: Vec<u64> = Vec::new();
    let mut versions: Vec<u32> = Vec::new();
    let mut pages_after_finish = 0;
    loop {
        let swapped_before = swapped.load(Ordering::SeqCst);
        let connector = registry.active("hostile").expect("a version is active");
        let page = registry
            .engine()
            .pull(&connector, &ctx, &s, &pull_request(checkpoint.clone(), 3))
            .await
            .expect("no pull fails")
            .expect("no page fails");
        if swapped_before {
            assert_eq!(
                connector.version, 2,
                "a page after the swap ran on the old version"
            );
        }
        versions.push(connector.version);
        // "Commit" the page: rows and checkpoint together.
        ids.extend(page.rows.iter().map(|r| r.key.parse::<u64>().unwrap()));
        checkpoint = page.checkpoint.clone();
        assert!(matches!(page.status, StreamStatus::Partial));
        pages_done.fetch_add(1, Ordering::SeqCst);
        if finished.load(Ordering::SeqCst) {
            pages_after_finish += 1;
            if pages_after_finish >= 5 {
                break;
            }
        }
    }
    installer.await.unwrap();

    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected, "records lost, duplicated or out of order");
    assert_eq!(versions.first(), Some(&1));
    assert_eq!(versions.last(), Some(&2));
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");
    let rejection = rejection.lock().unwrap().clone().unwrap();
    assert!(rejection.contains("canary configure"), "{rejection}");
    assert_eq!(registry.active("hostile").unwrap().version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_files_are_installed_from_the_watched_directory() {
    let f = fixture(10, Duration::ZERO).await;
    let dir = target_dir()
        .join("engine-test-scratch")
        .join(format!("connectors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hostile.wasm"), hostile()).unwrap();
    let _watcher = watch_connectors_dir(f.registry.clone(), &dir).unwrap();
    wait_for(|| f.registry.active("hostile").is_some_and(|p| p.version == 1)).await;

    // Written under a temporary name, then renamed into place, as a deploy would.
    std::fs::write(dir.join("incoming.tmp"), v2()).unwrap();
    std::fs::rename(dir.join("incoming.tmp"), dir.join("hostile@2.wasm")).unwrap();
    wait_for(|| f.registry.active("hostile").is_some_and(|p| p.version == 2)).await;

    // A broken drop is rejected; v2 keeps serving.
    std::fs::write(dir.join("hostile@broken.wasm"), hostile_broken()).unwrap();
    let metrics = f.registry.engine().metrics().clone();
    wait_for(|| sluice::engine::metrics::EngineMetrics::get(&metrics.rejected_installs) >= 1).await;
    assert_eq!(f.registry.active("hostile").unwrap().version, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls `done` until it holds (or fails the test after a generous bound).
async fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..1200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached");
}

/// A password-grant access token from the emulator.
async fn emulator_token(emu: &sf_emulator::Emulator) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "password")
        .append_pair("client_id", &emu.client_id)
        .append_pair("client_secret", &emu.client_secret)
        .append_pair("username", &emu.username)
        .append_pair("password", &emu.password)
        .finish();
    let response = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", emu.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token request");
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "token: {status} {text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_while_pulling_from_the_emulator_loses_nothing() {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let token = emulator_token(&emu).await;
    let provider: Arc<dyn CredentialProvider> = FakeProvider::new(&token);
    let engine = ConnectorEngine::new(EngineLimits {
        max_concurrent_calls: 32,
        ..EngineLimits::default()
    })
    .unwrap();
    let canary = Arc::new(StaticCanaryTargets::default());
    let s = session(settings("sf-pager", &[("url", &emu.url)]), &emu.url, true);
    canary.add(
        "hostile",
        CanaryTarget {
            integration: "emu".into(),
            settings: s.settings.clone(),
            host: host_ctx(true),
            session: Some(CanarySession {
                grant: s.grant.clone(),
                extra_origins: vec![origin(&emu.url)].into(),
            }),
        },
    );
    let registry = ConnectorRegistry::new(
        engine.clone(),
        Arc::new(MemoryVersionStore::default()),
        canary,
    );
    registry.install("hostile", hostile(), true).await.unwrap();
    let _ = hostile_broken();
    let ctx = CallContext {
        integration: Some("emu".into()),
        run: Some("hot-swap".into()),
        policy: Arc::new(
            OutboundPolicy::for_integration(
                rules(&[], &[&emu.url], true),
                Vec::<String>::new(),
                Some(&emu.url),
            )
            .unwrap(),
        ),
        credentials: Some(provider),
        stored_keys: None,
    };

    // The reference: every Case Id, read in big pages by v1 with no swap.
    let connector = registry.active("hostile").unwrap();
    let mut reference = Vec::new();
    let mut checkpoint = None;
    loop {
        let page = engine
            .pull(
                &connector,
                &ctx,
                &s,
                &pull_request(checkpoint.clone(), 2000),
            )
            .await
            .unwrap()
            .unwrap();
        reference.extend(page.rows.iter().map(|r| r.key.clone()));
        checkpoint = page.checkpoint.clone();
        if matches!(page.status, StreamStatus::Complete) {
            break;
        }
    }
    assert!(
        reference.len() >= 100,
        "the emulator has Cases: {}",
        reference.len()
    );

    let pages_done = Arc::new(AtomicUsize::new(0));
    let swapped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let installer = {
        let (registry, pages_done, swapped, finished) = (
            registry.clone(),
            pages_done.clone(),
            swapped.clone(),
            finished.clone(),
        );
        tokio::spawn(async move {
            while pages_done.load(Ordering::SeqCst) < 5 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let report = registry.install("hostile", &v2(), true).await.unwrap();
            assert_eq!(report.version, 2);
            swapped.store(true, Ordering::SeqCst);
            let err = registry
                .install("hostile", hostile_broken(), true)
                .await
                .unwrap_err();
            finished.store(true, Ordering::SeqCst);
            err
        })
    };

    // Pull continuously: small pages, then (once caught up) incremental pulls from the last
    // committed checkpoint, until both installs are done.
    let mut checkpoint: Option<String> = None;
    let mut keys: Vec<String> = Vec::new();
    let mut versions: Vec<u32> = Vec::new();
    let mut after_finish = 0;
    loop {
        let swapped_before = swapped.load(Ordering::SeqCst);
        let connector = registry.active("hostile").unwrap();
        let page = engine
            .pull(&connector, &ctx, &s, &pull_request(checkpoint.clone(), 2))
            .await
            .expect("no pull fails")
            .expect("no page fails");
        if swapped_before {
            assert_eq!(
                connector.version, 2,
                "a page after the swap ran on the old version"
            );
        }
        versions.push(connector.version);
        keys.extend(page.rows.iter().map(|r| r.key.clone()));
        checkpoint = page.checkpoint.clone();
        pages_done.fetch_add(1, Ordering::SeqCst);
        let caught_up = matches!(page.status, StreamStatus::Complete);
        if finished.load(Ordering::SeqCst) && caught_up {
            after_finish += 1;
            if after_finish >= 3 {
                break;
            }
        }
        if caught_up && !finished.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let rejection = installer.await.unwrap();
    match rejection {
        RegistryError::Rejected { stage, reason, .. } => {
            assert_eq!(stage, Stage::CanaryConfigure);
            assert!(reason.contains("trapped"), "{reason}");
        }
        other => panic!("expected a canary rejection, got {other}"),
    }
    eprintln!(
        "{} pages ({} on v1, {} on v2), {} records",
        versions.len(),
        versions.iter().filter(|v| **v == 1).count(),
        versions.iter().filter(|v| **v == 2).count(),
        keys.len()
    );
    assert_eq!(
        keys, reference,
        "records lost, duplicated or reordered across the swap"
    );
    assert_eq!(versions.first(), Some(&1));
    assert_eq!(versions.last(), Some(&2));
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");
}

fn with_manifest(hosts: &[&str], methods: &[&str]) -> Vec<u8> {
    with_custom_section(hostile(), "sluice:manifest", &manifest_json(hosts, methods))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_reaches_further_needs_the_operators_approval() {
    let f = fixture(10, Duration::ZERO).await;
    let r = &f.registry;
    let v1 = with_manifest(&["*.salesforce.com"], &["GET"]);
    // Even a first version's hosts need approval: nothing was approved for the connector yet.
    match r.install("hostile", &v1, true).await {
        Err(RegistryError::NotApproved { widening, .. }) => {
            assert_eq!(widening.hosts.len(), 1);
        }
        other => panic!("expected an approval refusal, got {other:?}"),
    }
    assert!(r.active("hostile").is_none());
    r.install_with_approval("hostile", &v1, true, HostApproval::Approved)
        .await
        .expect("approved v1 installs");

    // A version adding an attacker's host, or DELETE with credentials, is refused.
    let wider = with_manifest(
        &["*.salesforce.com", "attacker.example"],
        &["GET", "DELETE"],
    );
    let err = r.install("hostile", &wider, true).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("attacker.example")
            && text.contains("DELETE")
            && text.contains("--approve-hosts"),
        "{text}"
    );
    assert_eq!(r.active("hostile").unwrap().version, 1);

    // Narrowing needs no approval.
    let narrower = with_manifest(&["login.salesforce.com"], &["GET"]);
    let report = r.install("hostile", &narrower, true).await.unwrap();
    assert_eq!(report.manifest.hosts.len(), 1);

    // The operator's approval lets the wider one in.
    r.install_with_approval("hostile", &wider, true, HostApproval::Approved)
        .await
        .expect("approved");
    assert!(
        r.active("hostile")
            .unwrap()
            .manifest
            .matches_host("attacker.example")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_refuses_a_version_that_declares_unapproved_hosts_in_configure() {
    let f = fixture(10, Duration::ZERO).await;
    f.canary.add(
        "hostile",
        CanaryTarget {
            integration: "exfiltrate".into(),
            settings: settings("ok", &[("hosts", "attacker.example")]),
            host: host_ctx(true),
            session: Some(CanarySession {
                grant: Grant {
                    instance_url: Some(f.server.url.clone()),
                    fields: Vec::new(),
                    issued_at_ms: None,
                    scopes: Vec::new(),
                },
                extra_origins: vec![origin(&f.server.url)].into(),
            }),
        },
    );
    match f.registry.install("hostile", hostile(), true).await {
        Err(RegistryError::Rejected { stage, reason, .. }) => {
            assert_eq!(stage, Stage::CanaryConfigure);
            assert!(reason.contains("attacker.example"), "{reason}");
        }
        other => panic!("expected a canary rejection, got {other:?}"),
    }
}

/// A canary target of the hostile connector, connected to `instance_url`.
fn connected_target(integration: &str, settings: Settings, instance_url: &str) -> CanaryTarget {
    CanaryTarget {
        integration: integration.into(),
        settings,
        host: host_ctx(true),
        session: Some(CanarySession {
            grant: Grant {
                instance_url: Some(instance_url.into()),
                fields: Vec::new(),
                issued_at_ms: None,
                scopes: vec!["api".into()],
            },
            extra_origins: vec![origin(instance_url)].into(),
        }),
    }
}

/// An empty registry in memory whose canary exercises `canary`.
fn registry_with(canary: Arc<StaticCanaryTargets>) -> Arc<ConnectorRegistry> {
    let engine = ConnectorEngine::new(EngineLimits::default()).unwrap();
    ConnectorRegistry::new(engine, Arc::new(MemoryVersionStore::default()), canary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_pulls_one_page_and_sends_no_credentials() {
    let server = TestServer::start(|_| Reply::new(200, "fine")).await;
    let canary = Arc::new(StaticCanaryTargets::default());
    // Both go to the grant's host, where a real run's requests carry the access token: one
    // in `test` (and `pull`), the other in `pull` only.
    let url = |path: &str| format!("{}{path}", server.url);
    canary.add(
        "hostile",
        connected_target(
            "tests",
            settings("fetch", &[("url", &url("/from-test"))]),
            &server.url,
        ),
    );
    canary.add(
        "hostile",
        connected_target(
            "pulls",
            settings("pull-fetch", &[("url", &url("/from-pull"))]),
            &server.url,
        ),
    );
    let registry = registry_with(canary);
    let report = registry
        .install("hostile", hostile(), true)
        .await
        .expect("a well-behaved version installs");
    assert_eq!(
        (
            report.canary_configured,
            report.canary_tested,
            report.canary_pulled
        ),
        (2, 2, 2)
    );
    let received = server.received();
    let targets: Vec<&str> = received.iter().map(|r| r.target.as_str()).collect();
    assert!(
        targets.contains(&"/from-test") && targets.contains(&"/from-pull"),
        "the canary ran test and pull: {targets:?}"
    );
    for request in &received {
        assert_eq!(
            request.header("authorization"),
            None,
            "the canary sent credentials with {}",
            request.target
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_misbehaves_only_in_pull_is_rejected() {
    let server = pager(10, Duration::ZERO).await;
    // `configure` and `test` succeed for both; `pull` traps, or answers more rows than asked.
    for behaviour in ["trap", "big-page"] {
        let canary = Arc::new(StaticCanaryTargets::default());
        canary.add(
            "hostile",
            connected_target(
                "acme",
                settings(behaviour, &[("size", "200000")]),
                &server.url,
            ),
        );
        let registry = registry_with(canary);
        match registry.install("hostile", hostile(), true).await {
            Err(RegistryError::Rejected {
                stage,
                integration,
                reason,
                ..
            }) => {
                assert_eq!(stage, Stage::CanaryPull, "{behaviour}: {reason}");
                assert_eq!(integration.as_deref(), Some("acme"));
                if behaviour == "trap" {
                    assert!(reason.contains("trapped"), "{reason}");
                }
            }
            other => panic!("{behaviour}: expected a canary pull rejection, got {other:?}"),
        }
        assert!(registry.active("hostile").is_none(), "{behaviour}");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watched_directory_takes_regular_files_only() {
    let f = fixture(10, Duration::ZERO).await;
    let dir = temp_dir("registry-connectors");
    let outside = temp_dir("registry-outside");
    let fifo = outside.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Should a read of the FIFO block, a writer that comes and goes ends it, so the test
    // fails rather than hangs.
    let _unblock = UnblockFifo(fifo.clone());
    std::fs::write(outside.join("real.wasm"), v2()).unwrap();
    // Links sort first: the watcher meets them before the regular file.
    std::os::unix::fs::symlink(&fifo, dir.join("afifo.wasm")).unwrap();
    std::os::unix::fs::symlink(outside.join("real.wasm"), dir.join("blinked.wasm")).unwrap();
    std::fs::write(dir.join("hostile.wasm"), hostile()).unwrap();
    let _watcher = watch_connectors_dir(f.registry.clone(), &dir).unwrap();
    wait_for(|| f.registry.active("hostile").is_some()).await;
    let names: Vec<String> = f
        .registry
        .list(None)
        .into_iter()
        .map(|v| v.record.name)
        .collect();
    assert_eq!(
        names,
        ["hostile"],
        "links in the connectors directory are not followed"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&outside);
}

/// Opens its FIFO for writing when dropped (from a thread of its own, which a missing reader
/// leaves waiting), so that a reader blocked on it sees the end.
struct UnblockFifo(std::path::PathBuf);

impl Drop for UnblockFifo {
    fn drop(&mut self) {
        let fifo = self.0.clone();
        std::thread::spawn(move || drop(std::fs::OpenOptions::new().write(true).open(fifo)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_connector_names_are_refused() {
    let registry = registry_with(Arc::new(StaticCanaryTargets::default()));
    for name in [
        "../../etc/x",
        "",
        "Hostile",
        "a b",
        "x/y",
        "-x",
        &"x".repeat(65),
    ] {
        match registry.install(name, hostile(), false).await {
            Err(RegistryError::InvalidName(got)) => assert_eq!(got, name),
            other => panic!("{name:?}: expected an invalid name, got {other:?}"),
        }
    }
    assert!(registry.list(None).is_empty());
    registry
        .install("hostile_2-b", hostile(), false)
        .await
        .unwrap();
}

/// An app's configuration whose connectors may reach the loopback server at `url` (its exact
/// origin).
fn app_config(dir: &std::path::Path, url: &str) -> AppConfig {
    let mut config = AppConfig::new(dir.to_path_buf());
    sluice_test_support::runtime::approve_emulator(&mut config, url);
    config
}

/// Pulls integration `id` of `app` from scratch in pages of 3 records; once the first page
/// has committed, `installer` (this app, or another one on the same data directory: another
/// process) installs `wasm` as a new version of the hostile connector while the run waits.
/// Returns the run and its pages.
async fn pull_installing_after_the_first_page(
    app: &Arc<App>,
    id: &str,
    installer: Arc<App>,
    wasm: Vec<u8>,
) -> (RunSummary, Vec<RunPage>, u32) {
    let installed = Arc::new(Mutex::new(None));
    let progress: ProgressFn = {
        let installed = installed.clone();
        Arc::new(move |p: &Progress| {
            if !matches!(p, Progress::Page { .. }) || installed.lock().unwrap().is_some() {
                return;
            }
            let (installer, wasm) = (installer.clone(), wasm.clone());
            let report = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async move {
                    installer.registry().install("hostile", &wasm, true).await
                })
            });
            *installed.lock().unwrap() = Some(report.expect("the new version installs").version);
        })
    };
    let (runner_app, runner_id) = (app.clone(), id.to_string());
    let summary = tokio::spawn(async move {
        let options = PullOptions {
            full: true,
            trigger: "test".into(),
            page_records: 3,
            progress: Some(progress),
            stop: None,
        };
        run_pull(&runner_app, &runner_id, options).await
    })
    .await
    .unwrap()
    .expect("the run completes");
    let pages = app.store().run_pages(&summary.run_id).unwrap();
    let version = installed.lock().unwrap().expect("a version was installed");
    (summary, pages, version)
}

fn page_versions(pages: &[RunPage]) -> Vec<u32> {
    pages.iter().map(|p| p.connector_version).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_published_mid_run_serves_the_next_pages() {
    let server = pager(30, Duration::ZERO).await;
    let dir = temp_dir("registry-mid-run");
    let app = open_app(app_config(&dir, &server.url)).await;
    app.registry()
        .install("hostile", hostile(), false)
        .await
        .unwrap();
    let id = add_hostile_integration(&app, "pager", &[("url", &server.url)], &server.url);
    // Another process on the same data directory, opened before either new version exists.
    let other = App::open(app_config(&dir, &server.url)).await.unwrap();

    // Published in this process.
    let (summary, pages, version) =
        pull_installing_after_the_first_page(&app, &id, app.clone(), v2()).await;
    assert_eq!(version, 2);
    assert_eq!(summary.status, RunStatus::Succeeded);
    assert_eq!(summary.records, 30);
    let versions = page_versions(&pages);
    assert_eq!(versions.first(), Some(&1), "{versions:?}");
    assert_eq!(
        versions.last(),
        Some(&2),
        "later pages ran on the old version: {versions:?}"
    );
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");

    // Published by the other process, which never saw version 2: the store numbers it 3,
    // and this process's run takes it over.
    let v3 = with_custom_section(hostile(), "sluice-test-version", b"3");
    let (summary, pages, version) =
        pull_installing_after_the_first_page(&app, &id, other.clone(), v3).await;
    assert_eq!(version, 3, "the other process reused a version number");
    assert_eq!(summary.records, 30);
    let versions = page_versions(&pages);
    assert_eq!(versions.first(), Some(&2), "{versions:?}");
    assert_eq!(
        versions.last(),
        Some(&3),
        "a version published by another process did not reach the run: {versions:?}"
    );
    assert_eq!(app.registry().active("hostile").unwrap().version, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_installing_at_once_get_their_own_version_numbers() {
    let dir = temp_dir("registry-numbers");
    let a = open_app(app_config(&dir, "http://127.0.0.1:9")).await;
    let b = App::open(app_config(&dir, "http://127.0.0.1:9"))
        .await
        .unwrap();
    let (x, y) = (
        with_custom_section(hostile(), "sluice-test-version", b"x"),
        with_custom_section(hostile(), "sluice-test-version", b"y"),
    );
    let (in_a, in_b) = tokio::join!(
        a.registry().install("hostile", &x, false),
        b.registry().install("hostile", &y, false)
    );
    let mut numbers = [in_a.unwrap().version, in_b.unwrap().version];
    numbers.sort();
    assert_eq!(numbers, [1, 2]);
    // Both are stored: a process opened now sees them.
    let c = App::open(app_config(&dir, "http://127.0.0.1:9"))
        .await
        .unwrap();
    let stored: Vec<(u32, String)> = c
        .registry()
        .list(Some("hostile"))
        .into_iter()
        .map(|v| (v.record.version, v.record.sha256))
        .collect();
    assert_eq!(stored.len(), 2, "a version was dropped: {stored:?}");
    assert_ne!(stored[0].1, stored[1].1);
    // Activating version 1 in one process reaches the others at their next sync.
    a.registry().sync().await.unwrap();
    a.registry().activate("hostile", 1).unwrap();
    b.registry().sync().await.unwrap();
    assert_eq!(b.registry().active("hostile").unwrap().version, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_version_passes_the_canary_without_credentials() {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let dir = temp_dir("registry-salesforce-canary");
    let app = open_app(app_config(&dir, &emu.url)).await;
    let id = app
        .add_integration(sluice::app::IntegrationInput {
            name: Some("canary".into()),
            capability: Some("helpdesk".into()),
            settings: sluice_test_support::runtime::salesforce_settings(&emu.url, &[]),
            client_id: Some(emu.client_id.clone()),
            client_secret: Some(emu.client_secret.clone()),
            ..sluice::app::IntegrationInput::default()
        })
        .await
        .unwrap()
        .integration
        .id;
    sluice_test_support::runtime::connect(&app, &id).await;
    // Without its token the emulator answers 401, as Salesforce does: expected, not a fault.
    let next = with_custom_section(sluice::SALESFORCE_COMPONENT, "sluice-test", b"next");
    let report = app
        .registry()
        .install("salesforce", &next, true)
        .await
        .expect("a good connector version passes the canary");
    assert_eq!(
        (
            report.canary_configured,
            report.canary_tested,
            report.canary_pulled
        ),
        (1, 1, 1)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
