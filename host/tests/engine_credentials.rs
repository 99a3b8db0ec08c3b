//! Credentials of every kind the contract names, added by the host: an API key in the
//! connector's named header, HTTP basic, and OAuth without an instance URL, sent only to the
//! exact hosts the connector declared (when no instance URL says otherwise), never settable
//! by the guest, and a 401 to a credential that cannot be refreshed ends in re-authorization
//! without a loop.
//! Run: `cargo test --release --workspace --test engine_credentials`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sluice::engine::credentials::{CredentialProvider, credential_header};
use sluice::engine::outbound::{OutboundLimits, OutboundPolicy, RetryPolicy};
use sluice::engine::wit::types::{Failure, Grant, Page, Session};
use sluice::engine::{CallContext, ConnectorEngine, EngineError, EngineLimits, LoadedConnector};
use sluice_test_support::*;

fn fixture() -> &'static (Arc<ConnectorEngine>, Arc<LoadedConnector>) {
    static FIXTURE: OnceLock<(Arc<ConnectorEngine>, Arc<LoadedConnector>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let limits = EngineLimits {
            cpu_deadline: Duration::from_secs(2),
            wall_timeout: Duration::from_secs(30),
            outbound: OutboundLimits {
                retry: RetryPolicy {
                    max_retries: 2,
                    base_delay: Duration::from_millis(5),
                    max_delay: Duration::from_millis(50),
                },
                ..OutboundLimits::default()
            },
            ..EngineLimits::default()
        };
        let engine = ConnectorEngine::new(limits).expect("engine");
        let connector = engine
            .load("hostile", hostile())
            .expect("hostile component loads");
        (engine, Arc::new(connector))
    })
}

/// A policy without an instance URL: the connector declares the hosts of `declared`; the
/// operator approved the origins of `approved` exactly.
fn declared_policy(approved: &[&str], declared: &[&str]) -> OutboundPolicy {
    let hosts: Vec<String> = declared.iter().map(|u| origin(u).host).collect();
    OutboundPolicy::for_integration(rules(&[], approved, true), hosts, None)
        .expect("the test's hosts are approved")
}

/// Pulls with `behaviour` (GETting `url`) under `policy` with `credentials`. The policy has no
/// instance URL; the grant the guest sees names one only because the hostile guest speaks
/// contract 0.1, which requires it (it decides nothing here).
async fn pull(
    behaviour: &str,
    extra: &[(&str, &str)],
    policy: OutboundPolicy,
    credentials: Arc<dyn CredentialProvider>,
) -> Result<Result<Page, Failure>, EngineError> {
    let (engine, connector) = fixture();
    let ctx = CallContext {
        integration: Some("creds".into()),
        run: Some("run-1".into()),
        policy: Arc::new(policy),
        credentials: Some(credentials),
        stored_keys: None,
    };
    let session = Session {
        settings: settings(behaviour, extra),
        host: host_ctx(true),
        grant: Grant {
            instance_url: Some("https://unused.example".into()),
            fields: Vec::new(),
            issued_at_ms: None,
            scopes: Vec::new(),
        },
    };
    engine
        .pull(connector, &ctx, &session, &pull_request(None, 10))
        .await
}

/// The `fetch` behaviour's status and body.
fn fetched(result: Result<Result<Page, Failure>, EngineError>) -> (u16, String) {
    let page = result.expect("call succeeds").expect("fetch succeeds");
    let json: serde_json::Value = serde_json::from_slice(&page.rows[0].json).unwrap();
    (
        json["status"].as_u64().unwrap() as u16,
        json["body"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_goes_in_the_named_header_to_the_declared_host_only() {
    let declared = TestServer::start(|_| Reply::new(200, "data")).await;
    let other = TestServer::start(|_| Reply::new(200, "other")).await;
    // `localhost` at `declared`'s port is the connector's host; `other` is approved by the
    // operator for every connector but not declared by this one.
    let key_url = format!("http://localhost:{}/api", declared.port);
    let other_url = format!("{}/api", other.url);
    let policy = || declared_policy(&[&key_url, &other.url], &[&key_url]);
    let provider = FakeProvider::api_key("X-Api-Key", "Token ", "k-4711-secret");

    let (status, body) =
        fetched(pull("fetch", &[("url", &key_url)], policy(), provider.clone()).await);
    assert_eq!((status, body.as_str()), (200, "data"));
    let received = declared.received();
    assert_eq!(received[0].header("x-api-key"), Some("Token k-4711-secret"));
    assert_eq!(received[0].header("authorization"), None);

    let denied = pull("fetch", &[("url", &other_url)], policy(), provider).await;
    assert!(
        matches!(denied, Ok(Err(_))),
        "an undeclared host is refused: {denied:?}"
    );
    assert!(
        other.received().is_empty(),
        "nothing reached the other host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_instance_url_an_oauth_token_goes_to_the_declared_hosts() {
    let server = TestServer::start(|_| Reply::new(200, "data")).await;
    let url = format!("{}/api/v2/tickets", server.url);
    let provider = FakeProvider::new("zd-oauth-token");
    let (status, _) = fetched(
        pull(
            "fetch",
            &[("url", &url)],
            declared_policy(&[&server.url], &[&server.url]),
            provider,
        )
        .await,
    );
    assert_eq!(status, 200);
    assert_eq!(
        server.received()[0].header("authorization"),
        Some("Bearer zd-oauth-token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_arrive_encoded() {
    let server = TestServer::start(|_| Reply::new(200, "data")).await;
    let url = format!("{}/api", server.url);
    let provider = FakeProvider::basic("agent@example.com/token", "pa:ss");
    let (status, _) = fetched(
        pull(
            "fetch",
            &[("url", &url)],
            declared_policy(&[&server.url], &[&server.url]),
            provider,
        )
        .await,
    );
    assert_eq!(status, 200);
    // base64("agent@example.com/token:pa:ss")
    assert_eq!(
        server.received()[0].header("authorization"),
        Some("Basic YWdlbnRAZXhhbXBsZS5jb20vdG9rZW46cGE6c3M=")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_to_an_api_key_asks_for_reauthorization_once_and_never_loops() {
    let server = TestServer::start(|_| Reply::new(401, "{\"error\":\"bad key\"}")).await;
    let url = format!("{}/api", server.url);
    let provider = FakeProvider::api_key("X-Api-Key", "", "revoked-key");
    let (status, _) = fetched(
        pull(
            "fetch",
            &[("url", &url)],
            declared_policy(&[&server.url], &[&server.url]),
            provider.clone(),
        )
        .await,
    );
    assert_eq!(status, 401, "the guest sees the provider's 401");
    assert_eq!(server.received().len(), 1, "no retry with the same key");
    assert_eq!(
        provider.rejection_count(),
        1,
        "re-authorization asked for once"
    );
    assert_eq!(provider.refresh_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_does_not_carry_the_key_elsewhere() {
    let elsewhere = TestServer::start(|_| Reply::new(200, "elsewhere")).await;
    let target = format!("{}/collect", elsewhere.url);
    let location = target.clone();
    let server =
        TestServer::start(move |_| Reply::new(302, "").header("location", &location)).await;
    let url = format!("{}/api", server.url);
    let provider = FakeProvider::api_key("X-Api-Key", "", "k-redirect");
    let (status, _) = fetched(
        pull(
            "fetch",
            &[("url", &url)],
            declared_policy(&[&server.url, &elsewhere.url], &[&server.url]),
            provider,
        )
        .await,
    );
    assert_eq!(status, 302, "the host follows no redirect itself");
    assert_eq!(server.received()[0].header("x-api-key"), Some("k-redirect"));
    assert!(elsewhere.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_cannot_set_or_see_the_key_header() {
    let logs = captured_logs();
    const KEY: &str = "k-spy-0815-secret";
    let server = TestServer::start(|_| Reply::new(200, "ok")).await;
    let url = format!("{}/api", server.url);
    let provider = FakeProvider::api_key("X-Api-Key", "", KEY);
    let page = pull(
        "header-spy",
        &[("url", &url), ("set-header", "x-api-key")],
        declared_policy(&[&server.url], &[&server.url]),
        provider,
    )
    .await
    .expect("call succeeds")
    .expect("spy succeeds");
    assert_eq!(server.received()[0].header("x-api-key"), Some(KEY));
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = logs
        .lines()
        .find(|l| l.contains("spy: setting credential header"))
        .unwrap_or_else(|| panic!("the spy ran: {logs}"));
    assert!(line.contains("Forbidden"), "{line}");
    assert!(!logs.contains(KEY), "a log line carries the key");
    for row in &page.rows {
        assert!(!String::from_utf8_lossy(&row.json).contains(KEY));
    }
}

#[test]
fn headers_that_frame_or_route_a_request_cannot_carry_a_key() {
    for refused in [
        "Host",
        "Content-Length",
        "transfer-encoding",
        "Cookie",
        "bad header",
    ] {
        assert!(credential_header(refused).is_err(), "{refused}");
    }
    for accepted in ["Authorization", "X-Api-Key", "x-zendesk-token"] {
        assert!(credential_header(accepted).is_ok(), "{accepted}");
    }
}
