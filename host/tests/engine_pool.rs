//! The outbound client's kept connections and the operator's trusted roots: a pull reuses one
//! connection (HTTP/2 when the server offers it by ALPN, else HTTP/1.1), concurrent requests
//! share one HTTP/2 connection, integrations never share one, a kept connection never reaches
//! an address the policy refuses, a connection the server closed is replaced, the idle cap
//! holds, an untrusted certificate and a bad `--ca-file` fail clearly.
//! Run: `cargo test --release --workspace --test engine_pool`.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::engine::credentials::CredentialProvider;
use sluice::engine::outbound::{OutboundLimits, OutboundPolicy, RetryPolicy};
use sluice::engine::pool::PoolLimits;
use sluice::engine::resolver::{Lookup, Resolve, Resolver};
use sluice::engine::roots::ExtraRoots;
use sluice::engine::wit::types::{Failure, Page};
use sluice::engine::{CallContext, ConnectorEngine, EngineError, EngineLimits, LoadedConnector};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An engine trusting `roots`, with `pool` bounds, and the hostile test connector loaded.
fn engine(roots: ExtraRoots, pool: PoolLimits) -> (Arc<ConnectorEngine>, Arc<LoadedConnector>) {
    engine_resolving(roots, pool, Resolver::default())
}

/// As [`engine`], looking names up with `resolver`.
fn engine_resolving(
    roots: ExtraRoots,
    pool: PoolLimits,
    resolver: Resolver,
) -> (Arc<ConnectorEngine>, Arc<LoadedConnector>) {
    let limits = EngineLimits {
        wall_timeout: Duration::from_secs(30),
        outbound: OutboundLimits {
            retry: RetryPolicy {
                max_retries: 3,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(50),
            },
            pool,
            extra_roots: roots,
            resolver,
            ..OutboundLimits::default()
        },
        ..EngineLimits::default()
    };
    let engine = ConnectorEngine::new(limits).expect("engine");
    let connector = engine.load("hostile", hostile()).expect("hostile loads");
    (engine, Arc::new(connector))
}

/// One pull of `behaviour` for `integration`, reaching `url`; the operator approved the
/// origin of `url` exactly and loopback (as `--extra-origin` with `--allow-insecure-loopback`
/// does for the emulator) and nothing else.
async fn pull(
    (engine, connector): &(Arc<ConnectorEngine>, Arc<LoadedConnector>),
    integration: &str,
    behaviour: &str,
    url: &str,
    checkpoint: Option<String>,
    credentials: Option<Arc<dyn CredentialProvider>>,
) -> Result<Result<Page, Failure>, EngineError> {
    let policy =
        OutboundPolicy::for_integration(rules(&[], &[url], true), Vec::<String>::new(), Some(url))
            .expect("the origin is approved");
    let ctx = CallContext {
        integration: Some(integration.into()),
        run: Some("run-1".into()),
        policy: Arc::new(policy),
        credentials,
        stored_keys: None,
    };
    let session = session(settings(behaviour, &[("url", url)]), url, true);
    engine
        .pull(connector, &ctx, &session, &pull_request(checkpoint, 10))
        .await
}

/// The `fetch` behaviour's status, or the guest's failure message.
fn fetched(result: Result<Result<Page, Failure>, EngineError>) -> Result<u16, String> {
    let page = result.expect("the call runs").map_err(|f| f.message)?;
    let json: serde_json::Value = serde_json::from_slice(&page.rows[0].json).unwrap();
    Ok(json["status"].as_u64().unwrap() as u16)
}

async fn tls_emulator() -> (sf_emulator::Emulator, ExtraRoots, reqwest::Client) {
    tls_emulator_with(sf_emulator::Settings::default()).await
}

async fn tls_emulator_with(
    settings: sf_emulator::Settings,
) -> (sf_emulator::Emulator, ExtraRoots, reqwest::Client) {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        tls: true,
        settings,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let pem = emu.tls_root_pem.clone().expect("a TLS emulator has a root");
    let roots = ExtraRoots::from_pem(pem.as_bytes()).expect("the emulator's root parses");
    (emu, roots, control_client(&pem))
}

fn control_client(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn control(
    emu: &sf_emulator::Emulator,
    client: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
) -> serde_json::Value {
    let response = client
        .request(method, format!("{}/__emulator/{path}", emu.url))
        .bearer_auth(&emu.control_key)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// TCP connections the emulator accepted, not counting the one this question opens.
async fn emulator_connections(emu: &sf_emulator::Emulator) -> u64 {
    let pem = emu.tls_root_pem.clone().unwrap();
    // A client of its own: one new connection, counted in the answer.
    let stats = control(emu, &control_client(&pem), reqwest::Method::GET, "stats").await;
    stats["connections"].as_u64().unwrap() - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_of_many_pages_over_https_opens_one_connection() {
    let (emu, roots, client) = tls_emulator().await;
    let grant = control(&emu, &client, reqwest::Method::POST, "oauth/grant").await;
    let token = grant["access_token"].as_str().unwrap();
    let provider: Arc<dyn CredentialProvider> = FakeProvider::new(token);
    let engine = engine(roots, PoolLimits::default());
    let before = emulator_connections(&emu).await;
    let stats_before = control(&emu, &client, reqwest::Method::GET, "stats").await;

    const PAGES: usize = 5;
    let mut checkpoint = None;
    let mut ids = HashSet::new();
    for _ in 0..PAGES {
        let page = pull(
            &engine,
            "acme",
            "sf-pager",
            &emu.url,
            checkpoint.clone(),
            Some(provider.clone()),
        )
        .await
        .expect("the call runs")
        .expect("the page is read");
        assert_eq!(page.rows.len(), 10);
        ids.extend(page.rows.iter().map(|r| r.key.clone()));
        checkpoint = page.checkpoint;
    }
    assert_eq!(ids.len(), PAGES * 10, "every page brought new rows");

    let stats_after = control(&emu, &client, reqwest::Method::GET, "stats").await;
    let calls = |s: &serde_json::Value| s["api_calls"].as_u64().unwrap();
    assert_eq!(
        calls(&stats_after) - calls(&stats_before),
        PAGES as u64,
        "{stats_after}"
    );
    let opened = emulator_connections(&emu).await - before - 1;
    assert_eq!(
        opened, 1,
        "{PAGES} requests of one integration share one connection"
    );
    let http2 = |s: &serde_json::Value, what: &str| s[what].as_u64().unwrap();
    assert_eq!(
        http2(&stats_after, "http2_connections") - http2(&stats_before, "http2_connections"),
        1,
        "the server offered h2: {stats_after}"
    );
    assert_eq!(
        http2(&stats_after, "http2_streams") - http2(&stats_before, "http2_streams"),
        PAGES as u64,
        "each page was one stream of that connection: {stats_after}"
    );
}

/// Counters of the emulator, read in process (no connection of its own).
fn emulator_stats(emu: &sf_emulator::Emulator) -> sf_emulator::state::Stats {
    emu.state.stats.lock().unwrap().clone()
}

/// `n` concurrent pulls of the `fetch` behaviour, alternating between `integrations`.
async fn fetch_concurrently(
    engine: &(Arc<ConnectorEngine>, Arc<LoadedConnector>),
    integrations: &[&str],
    url: &str,
    n: usize,
) -> Vec<Result<u16, String>> {
    let mut pulls = tokio::task::JoinSet::new();
    for i in 0..n {
        let (engine, who, url) = (
            (engine.0.clone(), engine.1.clone()),
            integrations[i % integrations.len()].to_string(),
            url.to_string(),
        );
        pulls.spawn(async move { fetched(pull(&engine, &who, "fetch", &url, None, None).await) });
    }
    pulls.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_of_one_integration_share_one_http2_connection() {
    // Each answer waits a round trip, so that the requests overlap on the connection.
    let (emu, roots, _client) = tls_emulator_with(sf_emulator::Settings {
        rtt_ms: 100,
        ..sf_emulator::Settings::default()
    })
    .await;
    let engine = engine(roots, PoolLimits::default());
    let url = format!("{}/services/data", emu.url);
    let before = emulator_stats(&emu);
    const REQUESTS: usize = 6;
    let statuses = fetch_concurrently(&engine, &["acme"], &url, REQUESTS).await;
    assert!(statuses.iter().all(|s| *s == Ok(200)), "{statuses:?}");
    let after = emulator_stats(&emu);
    assert_eq!(
        after.connections - before.connections,
        1,
        "{REQUESTS} concurrent requests opened one connection"
    );
    assert_eq!(after.http2_connections - before.http2_connections, 1);
    assert_eq!(after.http2_streams - before.http2_streams, REQUESTS as u64);
    assert_eq!(engine.0.metrics().retries.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_integrations_get_two_http2_connections() {
    let (emu, roots, _client) = tls_emulator().await;
    let engine = engine(roots, PoolLimits::default());
    let url = format!("{}/services/data", emu.url);
    let before = emulator_stats(&emu);
    for _round in 0..3 {
        let statuses = fetch_concurrently(&engine, &["alpha", "beta"], &url, 4).await;
        assert!(statuses.iter().all(|s| *s == Ok(200)), "{statuses:?}");
    }
    let after = emulator_stats(&emu);
    assert_eq!(
        after.connections - before.connections,
        2,
        "one shared connection per integration"
    );
    assert_eq!(after.http2_connections - before.http2_connections, 2);
    assert_eq!(after.http2_streams - before.http2_streams, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_h2_on_offer_the_client_falls_back_to_http1_keep_alive() {
    let (emu, roots, _client) = tls_emulator_with(sf_emulator::Settings {
        http2: false,
        ..sf_emulator::Settings::default()
    })
    .await;
    let engine = engine(roots, PoolLimits::default());
    let url = format!("{}/services/data", emu.url);
    let before = emulator_stats(&emu);
    for _ in 0..4 {
        assert_eq!(
            fetched(pull(&engine, "acme", "fetch", &url, None, None).await),
            Ok(200)
        );
    }
    let after = emulator_stats(&emu);
    assert_eq!(after.http2_connections - before.http2_connections, 0);
    assert_eq!(after.http2_streams - before.http2_streams, 0);
    assert_eq!(
        after.connections - before.connections,
        1,
        "HTTP/1.1 keep-alive carried the 4 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_http2_connection_never_reaches_an_address_the_policy_refuses() {
    let (emu, roots, _client) = tls_emulator().await;
    let engine = engine(roots, PoolLimits::default());
    let url = format!("{}/services/data", emu.url);
    assert_eq!(
        fetched(pull(&engine, "acme", "fetch", &url, None, None).await),
        Ok(200)
    );
    assert_eq!(
        engine.0.idle_connections(),
        1,
        "the HTTP/2 connection is kept"
    );
    let before = emulator_stats(&emu);

    // The operator withdrew loopback: the same origin's address is now refused, and the kept
    // connection to it must not carry the request.
    let policy =
        OutboundPolicy::for_integration(rules(&[], &[&url], false), Vec::<String>::new(), None)
            .expect("the origin is still approved by name");
    let ctx = CallContext {
        integration: Some("acme".into()),
        run: Some("run-1".into()),
        policy: Arc::new(policy),
        credentials: None,
        stored_keys: None,
    };
    let session = session(settings("fetch", &[("url", &url)]), &url, false);
    let refused = fetched(
        engine
            .0
            .pull(&engine.1, &ctx, &session, &pull_request(None, 10))
            .await,
    )
    .expect_err("loopback is refused without the operator's approval");
    assert!(refused.contains("HttpRequestDenied"), "{refused}");
    let after = emulator_stats(&emu);
    assert_eq!(
        after.http2_streams, before.http2_streams,
        "no stream was sent"
    );
    assert_eq!(after.connections, before.connections);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_host_does_not_trust_fails_clearly() {
    let logs = captured_logs();
    let (emu, _roots, _client) = tls_emulator().await;
    let engine = engine(ExtraRoots::default(), PoolLimits::default());
    let url = format!("{}/services/data", emu.url);
    let failure = fetched(pull(&engine, "acme", "fetch", &url, None, None).await)
        .expect_err("an untrusted certificate is refused");
    assert!(failure.contains("TlsCertificateError"), "{failure}");
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        logs.contains("TLS certificate is not trusted") && logs.contains("--ca-file"),
        "{logs}"
    );
}

/// What a [`KeepAlive`] server does with the requests of one connection.
#[derive(Clone, Copy)]
enum Closing {
    /// Answers every request and keeps the connection open.
    Never,
    /// Answers the first request, then closes the connection.
    AfterFirstAnswer,
    /// Answers the first request, then reads the next one and closes without answering (the
    /// server's idle timeout firing as the request arrives).
    OnSecondRequest,
}

/// A loopback HTTP/1.1 server that keeps connections alive (or not, per [`Closing`]) and
/// records which connection served which request target.
struct KeepAlive {
    url: String,
    served: Arc<Mutex<Vec<(usize, String)>>>,
    accepted: Arc<Mutex<usize>>,
}

impl KeepAlive {
    async fn start(closing: Closing) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(0));
        let (log, count) = (served.clone(), accepted.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let id = {
                    let mut n = count.lock().unwrap();
                    *n += 1;
                    *n
                };
                tokio::spawn(serve_connection(stream, id, closing, log.clone()));
            }
        });
        Self {
            url,
            served,
            accepted,
        }
    }

    fn connections(&self) -> usize {
        *self.accepted.lock().unwrap()
    }

    /// The request targets each connection answered.
    fn by_connection(&self) -> HashMap<usize, Vec<String>> {
        let mut map: HashMap<usize, Vec<String>> = HashMap::new();
        for (id, target) in self.served.lock().unwrap().iter() {
            map.entry(*id).or_default().push(target.clone());
        }
        map
    }
}

async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    id: usize,
    closing: Closing,
    served: Arc<Mutex<Vec<(usize, String)>>>,
) {
    let mut buffer = Vec::new();
    for answered in 0.. {
        let Some(target) = read_request_head(&mut stream, &mut buffer).await else {
            return;
        };
        match (closing, answered) {
            (Closing::AfterFirstAnswer, 1..) | (Closing::OnSecondRequest, 1..) => return,
            _ => {}
        }
        served.lock().unwrap().push((id, target));
        let body = "ok";
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        if let (Closing::AfterFirstAnswer, 0) = (closing, answered) {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// The target of the next request (a GET without a body), or `None` when the client closed.
async fn read_request_head(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<String> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
            buffer.drain(..end + 4);
            return head.split(' ').nth(1).map(str::to_string);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The server's origin approved for plain http on loopback, as `--extra-origin` with
/// `--allow-insecure-loopback` does.
async fn fetch_plain(
    engine: &(Arc<ConnectorEngine>, Arc<LoadedConnector>),
    integration: &str,
    url: &str,
) -> Result<u16, String> {
    let (e, connector) = engine;
    let instance = origin(url).to_string();
    let policy = OutboundPolicy::for_integration(
        rules(&[], &[url], true),
        Vec::<String>::new(),
        Some(&instance),
    )
    .expect("the origin is approved");
    let ctx = CallContext {
        integration: Some(integration.into()),
        run: Some("run-1".into()),
        policy: Arc::new(policy),
        credentials: None,
        stored_keys: None,
    };
    let session = session(settings("fetch", &[("url", url)]), &instance, true);
    fetched(
        e.pull(connector, &ctx, &session, &pull_request(None, 10))
            .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_integrations_never_share_a_connection() {
    let server = KeepAlive::start(Closing::Never).await;
    let engine = engine(ExtraRoots::default(), PoolLimits::default());
    for round in 0..3 {
        for who in ["alpha", "beta"] {
            let url = format!("{}/data?who={who}&round={round}", server.url);
            assert_eq!(fetch_plain(&engine, who, &url).await, Ok(200));
        }
    }
    assert_eq!(
        server.connections(),
        2,
        "one kept connection per integration"
    );
    for (connection, targets) in server.by_connection() {
        let owners: HashSet<&str> = targets
            .iter()
            .map(|t| {
                if t.contains("who=alpha") {
                    "alpha"
                } else {
                    "beta"
                }
            })
            .collect();
        assert_eq!(
            owners.len(),
            1,
            "connection {connection} carried {targets:?}"
        );
        assert_eq!(targets.len(), 3, "connection {connection} was reused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_the_server_closed_is_replaced() {
    for closing in [Closing::AfterFirstAnswer, Closing::OnSecondRequest] {
        let server = KeepAlive::start(closing).await;
        let engine = engine(ExtraRoots::default(), PoolLimits::default());
        const REQUESTS: usize = 4;
        for n in 0..REQUESTS {
            let url = format!("{}/data?n={n}", server.url);
            assert_eq!(fetch_plain(&engine, "alpha", &url).await, Ok(200));
        }
        assert_eq!(server.connections(), REQUESTS);
        let retries = engine.0.metrics().retries.load(Ordering::Relaxed);
        assert_eq!(retries, 0, "a stale connection is not a provider failure");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_cap_holds() {
    let server = KeepAlive::start(Closing::Never).await;
    let engine = engine(
        ExtraRoots::default(),
        PoolLimits {
            max_idle_total: 1,
            ..PoolLimits::default()
        },
    );
    // alpha reuses its connection, which is dropped when beta's is kept: alpha's third request
    // opens a new one.
    for who in ["alpha", "alpha", "beta", "alpha"] {
        let url = format!("{}/data?who={who}", server.url);
        assert_eq!(fetch_plain(&engine, who, &url).await, Ok(200));
    }
    assert_eq!(server.connections(), 3);

    let server = KeepAlive::start(Closing::Never).await;
    let engine = self::engine(
        ExtraRoots::default(),
        PoolLimits {
            max_idle_per_key: 0,
            ..PoolLimits::default()
        },
    );
    for n in 0..3 {
        let url = format!("{}/data?n={n}", server.url);
        assert_eq!(fetch_plain(&engine, "alpha", &url).await, Ok(200));
    }
    assert_eq!(
        server.connections(),
        3,
        "no connection is kept at a cap of 0"
    );
}

#[test]
fn a_bad_ca_file_is_a_one_line_error_naming_it() {
    let dir = temp_dir("ca-file");
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not-a-cert.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let missing = dir.join("missing.pem");
    for (path, reason) in [
        (&not_pem, "is not a PEM certificate bundle"),
        (&missing, "cannot read CA file"),
    ] {
        let output = binary::sluice_command(&dir.join("data"))
            .arg("--ca-file")
            .arg(path)
            .args(["integration", "list"])
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains(&path.display().to_string()) && first.contains(reason),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An app whose operator approved the TLS emulator's origin (loopback) and, unless `trusted` is
/// false, trusts its root (`--ca-file`), with a helpdesk integration of the emulator's org.
async fn app_for_tls_emulator(
    emu: &sf_emulator::Emulator,
    trusted: bool,
) -> (Arc<sluice::app::App>, String, TestDir) {
    let dir = temp_dir("pool-app");
    let mut config = sluice::app::AppConfig::new(dir.to_path_buf());
    runtime::approve_emulator(&mut config, &emu.url);
    config.host_client = Default::default();
    if trusted {
        let pem = emu.tls_root_pem.clone().unwrap();
        config.limits.outbound.extra_roots = ExtraRoots::from_pem(pem.as_bytes()).unwrap();
    }
    let app = runtime::open_app(config).await;
    let id = app
        .add_integration(sluice::app::IntegrationInput {
            name: Some("Acme support".into()),
            capability: Some("helpdesk".into()),
            settings: sluice_test_support::runtime::salesforce_settings(&emu.url, &[]),
            client_id: Some(emu.client_id.clone()),
            client_secret: Some(emu.client_secret.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .integration
        .id;
    (app, id, dir)
}

/// The authorization up to the callback, through a browser that trusts the emulator's root.
async fn authorize(
    app: &sluice::app::App,
    id: &str,
    emu: &sf_emulator::Emulator,
) -> sluice::oauth::Callback {
    let start = app
        .begin_authorization(id, runtime::REDIRECT)
        .await
        .unwrap();
    let pem = emu.tls_root_pem.clone().unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = browser.get(start.url.as_str()).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    runtime::callback_of(response.headers())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_salesforce_connector_pulls_over_https_on_one_connection_and_the_token_client_trusts_the_ca()
 {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        tls: true,
        auto_approve: true,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");

    // Without the operator's root, the token request fails on the certificate.
    let (app, id, dir) = app_for_tls_emulator(&emu, false).await;
    let callback = authorize(&app, &id, &emu).await;
    let err = app.complete_authorization(callback).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);

    let (app, id, dir) = app_for_tls_emulator(&emu, true).await;
    let callback = authorize(&app, &id, &emu).await;
    app.complete_authorization(callback)
        .await
        .expect("the token request trusts the operator's root");

    let before = emu.state.stats.lock().unwrap().clone();
    let summary = sluice::runner::run_pull(
        &app,
        &id,
        sluice::runner::PullOptions {
            page_records: 200,
            ..Default::default()
        },
    )
    .await
    .expect("pull runs");
    assert_eq!(
        summary.status,
        sluice::runner::RunStatus::Succeeded,
        "{summary:?}"
    );
    let after = emu.state.stats.lock().unwrap().clone();
    let calls = after.api_calls - before.api_calls;
    let opened = after.connections - before.connections;
    assert!(calls >= 10, "the pull made {calls} API calls");
    assert_eq!(opened, 1, "{calls} API calls opened {opened} connections");
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A name server whose answer the test changes, as a provider re-pointing its name does.
#[derive(Clone, Default)]
struct MovingName(Arc<Mutex<Vec<std::net::SocketAddr>>>);

impl MovingName {
    fn answer(&self, addrs: &[std::net::SocketAddr]) {
        *self.0.lock().unwrap() = addrs.to_vec();
    }
}

impl Resolve for MovingName {
    fn lookup<'a>(&'a self, _host: &'a str, _port: u16) -> Lookup<'a> {
        let addrs = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(addrs) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_http2_connection_is_not_used_once_the_name_resolves_elsewhere() {
    let (emu, roots, _client) = tls_emulator().await;
    let port = emu.addr.port();
    let dns = MovingName::default();
    let engine = engine_resolving(roots, PoolLimits::default(), Resolver::new(dns.clone()));
    // The certificate names `localhost`; the test's name server decides where it is.
    let url = format!("https://localhost:{port}/services/data");
    let at = |ip: [u8; 4]| std::net::SocketAddr::from((ip, port));

    dns.answer(&[at([127, 0, 0, 1])]);
    assert_eq!(
        fetched(pull(&engine, "acme", "fetch", &url, None, None).await),
        Ok(200)
    );
    let kept = emulator_stats(&emu);
    assert_eq!(kept.http2_connections, 1);
    assert_eq!(engine.0.idle_connections(), 1);

    // The name moved to another approved address, where nothing listens: the request goes
    // there, not over the connection kept at the old one.
    dns.answer(&[at([127, 0, 0, 2])]);
    let moved = fetched(pull(&engine, "acme", "fetch", &url, None, None).await)
        .expect_err("nothing listens at the new address");
    assert!(moved.contains("ConnectionRefused"), "{moved}");

    // The name moved into a private range: refused, and the kept connection stays unused.
    dns.answer(&[at([10, 0, 0, 1])]);
    let refused = fetched(pull(&engine, "acme", "fetch", &url, None, None).await)
        .expect_err("a private address is refused");
    assert!(refused.contains("DestinationIpProhibited"), "{refused}");
    let after = emulator_stats(&emu);
    assert_eq!(
        after.http2_streams, kept.http2_streams,
        "no stream reached the old address"
    );

    // Back at the kept address, the kept connection carries the request again.
    dns.answer(&[at([127, 0, 0, 1])]);
    assert_eq!(
        fetched(pull(&engine, "acme", "fetch", &url, None, None).await),
        Ok(200)
    );
    let back = emulator_stats(&emu);
    assert_eq!(back.connections, kept.connections);
    assert_eq!(back.http2_streams, kept.http2_streams + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_ended_by_goaway_is_replaced() {
    let (emu, roots, client) = tls_emulator().await;
    let engine = engine(roots, PoolLimits::default());
    let url = format!("{}/services/data", emu.url);
    assert_eq!(
        fetched(pull(&engine, "acme", "fetch", &url, None, None).await),
        Ok(200)
    );
    let before = emulator_stats(&emu);
    control(&emu, &client, reqwest::Method::POST, "connections/goaway").await;

    // Whether the GOAWAY reached the client before the next request or races with it, the
    // request goes out on a new connection.
    for _ in 0..3 {
        assert_eq!(
            fetched(pull(&engine, "acme", "fetch", &url, None, None).await),
            Ok(200)
        );
    }
    let after = emulator_stats(&emu);
    assert_eq!(after.http2_goaways, 1, "the kept connection was told");
    assert_eq!(after.http2_connections - before.http2_connections, 1);
    assert_eq!(after.http2_streams - before.http2_streams, 3);
    let retries = engine.0.metrics().retries.load(Ordering::Relaxed);
    assert_eq!(
        retries, 0,
        "a recycled connection is not a provider failure"
    );
}
