//! Shared helpers for the host's tests: the hostile guest component (built once per target
//! directory), a scripted loopback HTTP server, a fake credential provider, WIT values, and
//! (in [`runtime`]) an opened app and the OAuth connect flow against the emulator.
#![allow(dead_code)]

pub mod runtime;
pub mod served;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sluice::engine::credentials::{AccessToken, BoxFuture, CredentialError, CredentialProvider};
use sluice::engine::manifest::Manifest;
use sluice::engine::outbound::OutboundPolicy;
use sluice::engine::policy::{EgressRules, Origin};
use sluice::engine::wit::types::{
    Capability, Environment, Grant, HostContext, PullRequest, Session, Settings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `<workspace>/target`, found from the test binary's path (`target/release/deps/…`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<binary>")
        .to_path_buf()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the workspace")
        .to_path_buf()
}

/// Builds the hostile guest (`tests/hostile`) for wasm32-wasip2, once per process and under
/// a file lock across processes; `broken` builds the variant whose `configure` always traps.
fn build_hostile(broken: bool) -> Vec<u8> {
    let guests = target_dir().join("wasm-guests");
    std::fs::create_dir_all(&guests).expect("creating the guest target dir");
    let lock = std::fs::File::create(guests.join(".sluice-hostile.lock")).expect("lock file");
    lock.lock().expect("locking the guest build");
    let broken_switch = ("SLUICE_HOSTILE_BROKEN", broken.then_some("1"));
    let workspace = workspace();
    let guest = sluice_guest_build::Guest {
        workspace: &workspace,
        target_dir: &guests,
        package: "sluice-hostile",
        optimize_for_speed: false,
        env: vec![broken_switch],
    };
    let (_, path) = guest
        .build()
        .unwrap_or_else(|e| panic!("building tests/hostile: {e}"));
    let wasm = std::fs::read(path).expect("reading the hostile component");
    lock.unlock().ok();
    wasm
}

/// The hostile test component (behaviour chosen by the `behaviour` setting).
pub fn hostile() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| build_hostile(false))
}

/// The broken build of the hostile component: `configure` always traps.
pub fn hostile_broken() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        // Build the normal one first so the two builds never interleave in one process.
        let _ = hostile();
        build_hostile(true)
    })
}

/// `wasm` with a custom section appended: the same behaviour under a new sha256, i.e. a new
/// connector version.
pub fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0);
    leb(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

/// The origin (scheme, host, port) of `url`.
pub fn origin(url: &str) -> Origin {
    Origin::parse(url).expect("a test URL")
}

/// A manifest section's JSON declaring `hosts` and `methods` for credentialed requests.
pub fn manifest_json(hosts: &[&str], methods: &[&str]) -> Vec<u8> {
    serde_json::json!({"hosts": hosts, "credential-methods": methods})
        .to_string()
        .into_bytes()
}

/// Egress rules: a manifest with `hosts` patterns and every credentialed method, the origins
/// of `extra` URLs approved exactly, and insecure loopback on or off.
pub fn rules(hosts: &[&str], extra: &[&str], insecure_loopback: bool) -> EgressRules {
    let all = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let manifest = Manifest::from_json(&manifest_json(hosts, &all)).expect("a test manifest");
    let extra: Vec<Origin> = extra.iter().map(|u| origin(u)).collect();
    EgressRules::new(Arc::new(manifest), extra.into(), insecure_loopback)
}

/// A policy under which the connector declared the hosts of `urls`, each approved at its
/// exact origin; no instance URL (no credentials).
pub fn policy_for(urls: &[&str], insecure_loopback: bool) -> OutboundPolicy {
    let hosts: Vec<String> = urls.iter().map(|u| origin(u).host).collect();
    OutboundPolicy::for_integration(rules(&[], urls, insecure_loopback), hosts, None)
        .expect("the declared hosts are approved")
}

/// Settings that select `behaviour`, plus further `extra` pairs.
pub fn settings(behaviour: &str, extra: &[(&str, &str)]) -> Settings {
    let mut pairs = vec![("behaviour".to_string(), behaviour.to_string())];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings {
        capability: Capability::Crm,
        environment: Environment::Production,
        pull_by: None,
        domain: None,
        extra: pairs,
    }
}

/// Host facts for a call.
pub fn host_ctx(insecure_loopback: bool) -> HostContext {
    HostContext {
        allow_insecure_loopback: insecure_loopback,
        contract_version: "0.1.0".into(),
    }
}

/// A session with `settings` whose grant points at `instance_url`.
pub fn session(settings: Settings, instance_url: &str, insecure_loopback: bool) -> Session {
    Session {
        settings,
        host: host_ctx(insecure_loopback),
        grant: Grant {
            instance_url: instance_url.into(),
            identity_url: None,
            issued_at_ms: None,
            scopes: vec!["api".into()],
        },
    }
}

/// A pull request for the test stream.
pub fn pull_request(checkpoint: Option<String>, max_records: u32) -> PullRequest {
    PullRequest {
        stream: "Thing".into(),
        checkpoint,
        max_records,
    }
}

/// One request the test server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (read by `content-length`).
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How long to wait before answering.
    pub delay: Option<Duration>,
}

impl Reply {
    /// A response with `status` and `body`; status 0 closes the connection unanswered.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: None,
        }
    }

    /// Answers after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Received) -> Reply + Send + Sync;

/// A loopback HTTP/1.1 server that answers from a handler and records every request.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port.
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    in_flight: Arc<(AtomicUsize, AtomicUsize)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts serving with `handler` on the current runtime.
    pub async fn start(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = received.clone();
        let in_flight = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let gauge = in_flight.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let log = log.clone();
                let gauge = gauge.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or("").split(' ');
                    let method = first.next().unwrap_or("").to_string();
                    let target = first.next().unwrap_or("").to_string();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let length: usize = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = buf[head_end + 4..].to_vec();
                    while body.len() < length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => body.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request = Received {
                        method,
                        target,
                        headers,
                        body,
                    };
                    log.lock().unwrap().push(request.clone());
                    let now = gauge.0.fetch_add(1, Ordering::SeqCst) + 1;
                    gauge.1.fetch_max(now, Ordering::SeqCst);
                    let reply = handler(&request);
                    if let Some(delay) = reply.delay {
                        tokio::time::sleep(delay).await;
                    }
                    gauge.0.fetch_sub(1, Ordering::SeqCst);
                    if reply.status == 0 {
                        // Status 0: close the connection without an answer.
                        drop(socket);
                        return;
                    }
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (n, v) in &reply.headers {
                        out.push_str(&format!("{n}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    let _ = socket.write_all(out.as_bytes()).await;
                    let _ = socket.write_all(&reply.body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            received,
            in_flight,
            task,
        }
    }

    /// The most requests that were being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.1.load(Ordering::SeqCst)
    }

    /// The requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A credential provider that keeps its contract: refreshes are serialised, and a refresh
/// for a token that was already replaced returns the replacement without refreshing again.
pub struct FakeProvider {
    current: tokio::sync::Mutex<String>,
    /// Refreshes actually performed.
    pub refreshes: AtomicUsize,
    /// Whether a refresh must fail with `ReauthorizationRequired`.
    pub dead: bool,
}

impl FakeProvider {
    /// A provider whose current token is `token`.
    pub fn new(token: &str) -> Arc<Self> {
        Arc::new(Self {
            current: tokio::sync::Mutex::new(token.into()),
            refreshes: AtomicUsize::new(0),
            dead: false,
        })
    }

    /// A provider whose refresh token is dead.
    pub fn dead(token: &str) -> Arc<Self> {
        Arc::new(Self {
            current: tokio::sync::Mutex::new(token.into()),
            refreshes: AtomicUsize::new(0),
            dead: true,
        })
    }

    /// Refreshes performed.
    pub fn refresh_count(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }
}

impl CredentialProvider for FakeProvider {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, CredentialError>> {
        Box::pin(async move { Ok(AccessToken::new(self.current.lock().await.clone())) })
    }

    fn refresh(
        &self,
        rejected: &AccessToken,
    ) -> BoxFuture<'_, Result<AccessToken, CredentialError>> {
        let rejected = rejected.expose().to_string();
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if *current != rejected {
                return Ok(AccessToken::new(current.clone()));
            }
            if self.dead {
                return Err(CredentialError::ReauthorizationRequired(
                    "invalid_grant".into(),
                ));
            }
            // Slow enough that concurrent 401s pile up behind the lock.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
            *current = format!("fresh-token-{n}");
            Ok(AccessToken::new(current.clone()))
        })
    }
}

/// Log output captured from `tracing` (installed once per test binary as the global
/// subscriber).
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts keyed by string, for assertions.
pub fn tally<'a>(items: impl IntoIterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut map = HashMap::new();
    for item in items {
        *map.entry(item).or_insert(0) += 1;
    }
    map
}
