//! Plugin versions: validation, canary, atomic publication, rollback, restore, the watched
//! directory, and a hot swap under continuous pulls that loses nothing.
//! Run: `cargo test --release -p sluice --test engine_registry`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::engine::credentials::CredentialProvider;
use sluice::engine::outbound::OutboundPolicy;
use sluice::engine::registry::{
    CanarySession, CanaryTarget, HostApproval, MemoryVersionStore, PluginRegistry, RegistryError,
    Stage, StaticCanaryTargets, watch_plugins_dir,
};
use sluice::engine::wit::types::{Grant, StreamStatus};
use sluice::engine::{CallContext, EngineLimits, PluginEngine};
use support::*;

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
    registry: Arc<PluginRegistry>,
    store: Arc<MemoryVersionStore>,
    canary: Arc<StaticCanaryTargets>,
    server: TestServer,
}

async fn fixture(last: u64, delay: Duration) -> Fixture {
    let server = pager(last, delay).await;
    let engine = PluginEngine::new(EngineLimits {
        max_concurrent_calls: 32,
        ..EngineLimits::default()
    })
    .unwrap();
    let store = Arc::new(MemoryVersionStore::default());
    let canary = Arc::new(StaticCanaryTargets::default());
    let provider: Arc<dyn CredentialProvider> = FakeProvider::new("t");
    canary.add(
        "hostile",
        CanaryTarget {
            integration: "acme".into(),
            settings: settings("pager", &[("url", &server.url), ("hosts", "127.0.0.1")]),
            host: host_ctx(true),
            session: Some(CanarySession {
                grant: Grant {
                    instance_url: server.url.clone(),
                    identity_url: None,
                    issued_at_ms: None,
                    scopes: Vec::new(),
                },
                credentials: provider,
                extra_origins: vec![origin(&server.url)].into(),
            }),
        },
    );
    let registry = PluginRegistry::new(engine, store.clone(), canary.clone());
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
        Err(RegistryError::UnknownPlugin(_))
    ));

    // Installing known bytes re-activates that version without a new number.
    let report = r.install("hostile", &v2(), true).await.unwrap();
    assert_eq!((report.version, report.existing), (2, true));

    // A restarted host restores every version and the active one, from the store.
    let restored = PluginRegistry::new(r.engine().clone(), f.store.clone(), f.canary.clone());
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
                    instance_url: g.server.url.clone(),
                    identity_url: None,
                    issued_at_ms: None,
                    scopes: Vec::new(),
                },
                credentials: FakeProvider::new("t"),
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
        let plugin = registry.active("hostile").expect("a version is active");
        let page = registry
            .engine()
            .pull(&plugin, &ctx, &s, &pull_request(checkpoint.clone(), 3))
            .await
            .expect("no pull fails")
            .expect("no page fails");
        if swapped_before {
            assert_eq!(
                plugin.version, 2,
                "a page after the swap ran on the old version"
            );
        }
        versions.push(plugin.version);
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
        .join(format!("plugins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hostile.wasm"), hostile()).unwrap();
    let _watcher = watch_plugins_dir(f.registry.clone(), &dir).unwrap();
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
    let engine = PluginEngine::new(EngineLimits {
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
                credentials: provider.clone(),
                extra_origins: vec![origin(&emu.url)].into(),
            }),
        },
    );
    let registry = PluginRegistry::new(
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
    let plugin = registry.active("hostile").unwrap();
    let mut reference = Vec::new();
    let mut checkpoint = None;
    loop {
        let page = engine
            .pull(&plugin, &ctx, &s, &pull_request(checkpoint.clone(), 2000))
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
        let plugin = registry.active("hostile").unwrap();
        let page = engine
            .pull(&plugin, &ctx, &s, &pull_request(checkpoint.clone(), 2))
            .await
            .expect("no pull fails")
            .expect("no page fails");
        if swapped_before {
            assert_eq!(
                plugin.version, 2,
                "a page after the swap ran on the old version"
            );
        }
        versions.push(plugin.version);
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
    // Even a first version's hosts need approval: nothing was approved for the plugin yet.
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
                    instance_url: f.server.url.clone(),
                    identity_url: None,
                    issued_at_ms: None,
                    scopes: Vec::new(),
                },
                credentials: FakeProvider::new("t"),
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
