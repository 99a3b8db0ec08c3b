//! Host-side credentials, token refresh, retries and outbound caps.
//! Run: `cargo test --release -p sluice --test engine_outbound`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sluice::engine::credentials::CredentialProvider;
use sluice::engine::manifest::Manifest;
use sluice::engine::metrics::EngineMetrics;
use sluice::engine::outbound::{OutboundLimits, OutboundPolicy, RetryPolicy};
use sluice::engine::policy::EgressRules;
use sluice::engine::wit::types::{Failure, Page};
use sluice::engine::{CallContext, ConnectorEngine, EngineError, EngineLimits, LoadedConnector};
use sluice_test_support::*;

const RESPONSE_CAP: usize = 64 << 10;
const PER_INTEGRATION: usize = 2;

fn fixture() -> &'static (Arc<ConnectorEngine>, Arc<LoadedConnector>) {
    static FIXTURE: OnceLock<(Arc<ConnectorEngine>, Arc<LoadedConnector>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let limits = EngineLimits {
            cpu_deadline: Duration::from_secs(2),
            wall_timeout: Duration::from_secs(30),
            max_concurrent_calls: 32,
            outbound: OutboundLimits {
                max_response_bytes: RESPONSE_CAP,
                max_concurrent_per_integration: PER_INTEGRATION,
                retry: RetryPolicy {
                    max_retries: 3,
                    base_delay: Duration::from_millis(5),
                    max_delay: Duration::from_millis(100),
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

/// Pulls with `behaviour` for `integration`, whose grant points at `instance_url`. The
/// connector declares the hosts of the `declared` URLs; the operator approved their origins
/// and the instance's exactly.
async fn pull(
    integration: &str,
    behaviour: &str,
    url: &str,
    instance_url: &str,
    declared: &[&str],
    credentials: Option<Arc<dyn CredentialProvider>>,
) -> Result<Result<Page, Failure>, EngineError> {
    let mut approved = declared.to_vec();
    approved.push(instance_url);
    let hosts: Vec<String> = declared.iter().map(|u| origin(u).host).collect();
    let policy =
        OutboundPolicy::for_integration(rules(&[], &approved, true), hosts, Some(instance_url))
            .expect("the test's hosts are approved");
    pull_with(
        integration,
        behaviour,
        url,
        instance_url,
        policy,
        credentials,
    )
    .await
}

/// Pulls with `behaviour` under `policy`.
async fn pull_with(
    integration: &str,
    behaviour: &str,
    url: &str,
    instance_url: &str,
    policy: OutboundPolicy,
    credentials: Option<Arc<dyn CredentialProvider>>,
) -> Result<Result<Page, Failure>, EngineError> {
    let (engine, connector) = fixture();
    let ctx = CallContext {
        integration: Some(integration.into()),
        run: Some("run-1".into()),
        policy: Arc::new(policy),
        credentials,
        stored_keys: None,
    };
    let session = session(settings(behaviour, &[("url", url)]), instance_url, true);
    engine
        .pull(connector, &ctx, &session, &pull_request(None, 10))
        .await
}

/// The `fetch` behaviour's row: `{"status":N,"body":"..."}`.
fn fetched(result: Result<Result<Page, Failure>, EngineError>) -> (u16, String) {
    let page = result.expect("call succeeds").expect("fetch succeeds");
    let json: serde_json::Value = serde_json::from_slice(&page.rows[0].json).unwrap();
    (
        json["status"].as_u64().unwrap() as u16,
        json["body"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_never_sees_the_token() {
    let logs = captured_logs();
    const TOKEN: &str = "00Dsecret!token.value-4711";
    let server =
        TestServer::start(|_| Reply::new(200, "{\"ok\":true}").header("x-server", "test")).await;
    let provider: Arc<dyn CredentialProvider> = FakeProvider::new(TOKEN);
    let url = format!("{}/services/data", server.url);
    let page = pull("spy", "header-spy", &url, &server.url, &[], Some(provider))
        .await
        .expect("call succeeds")
        .expect("spy succeeds");

    // The host did add the credential on the wire...
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // ...but nothing the guest saw or logged contains it.
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logs.contains("spy: response header"), "the spy ran: {logs}");
    assert!(logs.contains("spy: request header"), "the spy ran: {logs}");
    assert!(
        logs.contains("Forbidden"),
        "setting Authorization is forbidden: {logs}"
    );
    assert!(!logs.contains(TOKEN), "a log line carries the token");
    for row in &page.rows {
        assert!(!String::from_utf8_lossy(&row.json).contains(TOKEN));
    }
    assert!(
        page.rows
            .iter()
            .any(|r| String::from_utf8_lossy(&r.json).contains("x-server")),
        "the spy saw the response headers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_only_to_the_instance_host() {
    let server = TestServer::start(|_| Reply::new(200, "plain")).await;
    let provider: Arc<dyn CredentialProvider> = FakeProvider::new("t0");
    // `localhost` is declared by the connector, but only the instance host gets the token.
    let url = format!("http://localhost:{}/other", server.port);
    let (status, _) = fetched(
        pull(
            "other-host",
            "fetch",
            &url,
            &server.url,
            &[&url],
            Some(provider),
        )
        .await,
    );
    assert_eq!(status, 200);
    assert_eq!(server.received()[0].header("authorization"), None);
}

// Any provider's 401 to a request that carried the token refreshes it, whatever the body says:
// the host knows OAuth, not one provider's error format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_in_any_format_refreshes_once() {
    let server = TestServer::start(|r| match r.header("authorization") {
        Some("Bearer stale") => Reply::new(401, ""),
        Some(_) => Reply::new(200, "fresh data"),
        None => Reply::new(400, "no auth"),
    })
    .await;
    let provider = FakeProvider::new("stale");
    let dyn_provider: Arc<dyn CredentialProvider> = provider.clone();
    let url = format!("{}/data", server.url);
    let (status, body) = fetched(
        pull(
            "any-401",
            "fetch",
            &url,
            &server.url,
            &[],
            Some(dyn_provider),
        )
        .await,
    );
    assert_eq!((status, body.as_str()), (200, "fresh data"));
    assert_eq!(provider.refresh_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_share_one_refresh_and_retry_once() {
    let server = TestServer::start(|r| match r.header("authorization") {
        Some("Bearer stale") => Reply::new(
            401,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        ),
        Some(_) => Reply::new(200, "fresh data"),
        None => Reply::new(400, "no auth"),
    })
    .await;
    let provider = FakeProvider::new("stale");
    let before = EngineMetrics::get(&fixture().0.metrics().refreshes);
    let url = format!("{}/data", server.url);
    let mut calls = Vec::new();
    for i in 0..4 {
        let provider: Arc<dyn CredentialProvider> = provider.clone();
        let url = url.clone();
        let instance = server.url.clone();
        calls.push(tokio::spawn(async move {
            pull(
                &format!("refresh-{i}"),
                "fetch",
                &url,
                &instance,
                &[],
                Some(provider),
            )
            .await
        }));
    }
    for call in calls {
        let (status, body) = fetched(call.await.unwrap());
        assert_eq!((status, body.as_str()), (200, "fresh data"));
    }
    assert_eq!(
        provider.refresh_count(),
        1,
        "concurrent 401s share one refresh"
    );
    assert!(EngineMetrics::get(&fixture().0.metrics().refreshes) > before);
    let stale = server
        .received()
        .iter()
        .filter(|r| r.header("authorization") == Some("Bearer stale"))
        .count();
    assert!(stale <= 4, "each request retried at most once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_refresh_token_returns_the_original_401() {
    let server = TestServer::start(|_| {
        Reply::new(
            401,
            r#"[{"errorCode":"INVALID_SESSION_ID","message":"expired"}]"#,
        )
    })
    .await;
    let provider = FakeProvider::dead("stale");
    let dyn_provider: Arc<dyn CredentialProvider> = provider.clone();
    let url = format!("{}/data", server.url);
    let (status, body) =
        fetched(pull("dead", "fetch", &url, &server.url, &[], Some(dyn_provider)).await);
    assert_eq!(status, 401);
    assert!(body.contains("INVALID_SESSION_ID"));
    assert_eq!(server.received().len(), 1, "no retry without a fresh token");
    assert_eq!(provider.refresh_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_of_gets_are_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let server = TestServer::start(move |_| match counter.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::new(503, "busy"),
        1 => Reply::new(429, "slow down").header("retry-after", "0"),
        2 => Reply::new(420, "enhance your calm"),
        _ => Reply::new(200, "finally"),
    })
    .await;
    let before = EngineMetrics::get(&fixture().0.metrics().retries);
    let url = format!("{}/data", server.url);
    let policy = retrying_policy(&server.url, r#"{"retry-statuses":[420]}"#);
    let (status, body) =
        fetched(pull_with("retry", "fetch", &url, &server.url, policy, None).await);
    assert_eq!((status, body.as_str()), (200, "finally"));
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert!(EngineMetrics::get(&fixture().0.metrics().retries) >= before + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_retried_only_when_the_manifest_lists_it() {
    let server = TestServer::start(|_| Reply::new(420, "enhance your calm")).await;
    let url = format!("{}/data", server.url);
    let policy = retrying_policy(&server.url, "{}");
    let (status, _) = fetched(pull_with("no-420", "fetch", &url, &server.url, policy, None).await);
    assert_eq!(
        status, 420,
        "a provider's own status is final unless declared"
    );
    assert_eq!(server.received().len(), 1);
}

/// A policy for `instance_url` under a manifest given as JSON (no hosts of its own).
fn retrying_policy(instance_url: &str, manifest: &str) -> OutboundPolicy {
    let manifest = Manifest::from_json(manifest.as_bytes()).expect("a test manifest");
    let rules = EgressRules::new(Arc::new(manifest), vec![origin(instance_url)].into(), true);
    OutboundPolicy::for_integration(rules, Vec::<String>::new(), Some(instance_url))
        .expect("the instance origin is approved")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_without_an_answer_are_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let server = TestServer::start(move |_| match counter.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::new(0, ""),
        _ => Reply::new(200, "after reset"),
    })
    .await;
    let url = format!("{}/data", server.url);
    let (status, body) = fetched(pull("reset", "fetch", &url, &server.url, &[], None).await);
    assert_eq!((status, body.as_str()), (200, "after reset"));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded() {
    let server = TestServer::start(|_| Reply::new(502, "bad gateway")).await;
    let url = format!("{}/data", server.url);
    let (status, _) = fetched(pull("bounded", "fetch", &url, &server.url, &[], None).await);
    assert_eq!(status, 502, "the last answer reaches the guest");
    assert_eq!(server.received().len(), 4, "one attempt and three retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retry_after_is_not_waited_for() {
    let server =
        TestServer::start(|_| Reply::new(429, "later").header("retry-after", "3600")).await;
    let url = format!("{}/data", server.url);
    let (status, _) = fetched(pull("later", "fetch", &url, &server.url, &[], None).await);
    assert_eq!(status, 429);
    assert_eq!(server.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_responses_are_refused() {
    let server = TestServer::start(|_| Reply::new(200, vec![b'x'; RESPONSE_CAP * 2])).await;
    let url = format!("{}/huge", server.url);
    let failure = pull("huge", "fetch", &url, &server.url, &[], None)
        .await
        .expect("call succeeds")
        .expect_err("the response is refused");
    assert!(
        failure.message.contains("HttpResponseBodySize"),
        "{}",
        failure.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_capped_per_integration() {
    let server =
        TestServer::start(|_| Reply::new(200, "slow").after(Duration::from_millis(150))).await;
    let url = format!("{}/slow", server.url);
    let mut calls = Vec::new();
    for _ in 0..6 {
        let url = url.clone();
        let instance = server.url.clone();
        calls.push(tokio::spawn(async move {
            pull("capped", "fetch", &url, &instance, &[], None).await
        }));
    }
    for call in calls {
        assert_eq!(fetched(call.await.unwrap()).0, 200);
    }
    assert_eq!(server.received().len(), 6);
    assert!(
        server.max_in_flight() <= PER_INTEGRATION,
        "{} requests in flight for one integration",
        server.max_in_flight()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_are_logged_with_connector_integration_and_target() {
    let logs = captured_logs();
    let failure = pull(
        "denied-integration",
        "fetch",
        "https://not-declared.example:8443/x",
        "https://instance.example",
        &[],
        None,
    )
    .await
    .unwrap()
    .expect_err("denied");
    assert!(failure.message.contains("HttpRequestDenied"));
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = logs
        .lines()
        .find(|l| l.contains("outbound request denied") && l.contains("denied-integration"))
        .unwrap_or_else(|| panic!("no denial line in {logs}"));
    assert!(line.contains("connector=hostile@"), "{line}");
    assert!(line.contains("https://not-declared.example:8443"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_request_bodies_arrive_whole_and_posts_are_not_retried() {
    let server = TestServer::start(|r| {
        if r.body.len() == 20_000 && r.body.iter().all(|b| *b == b'a') {
            Reply::new(503, "whole body, but busy")
        } else {
            Reply::new(400, format!("got {} bytes", r.body.len()))
        }
    })
    .await;
    let (engine, connector) = fixture();
    let ctx = CallContext {
        integration: Some("post".into()),
        policy: Arc::new(
            OutboundPolicy::for_integration(
                rules(&[], &[&server.url], true),
                Vec::<String>::new(),
                Some(&server.url),
            )
            .unwrap(),
        ),
        ..CallContext::default()
    };
    let url = format!("{}/jobs", server.url);
    let s = session(
        settings("post", &[("url", &url), ("size", "20000")]),
        &server.url,
        true,
    );
    let (status, body) = fetched(
        engine
            .pull(connector, &ctx, &s, &pull_request(None, 1))
            .await,
    );
    assert_eq!((status, body.as_str()), (503, "whole body, but busy"));
    let received = server.received();
    assert_eq!(received.len(), 1, "a POST is not retried");
    assert_eq!(received[0].method, "POST");
}

/// A provider with no usable token at all.
struct NoToken(sluice::engine::credentials::CredentialError);

impl CredentialProvider for NoToken {
    fn header(&self) -> &sluice::engine::credentials::HeaderName {
        &sluice::engine::credentials::AUTHORIZATION
    }

    fn credential(
        &self,
    ) -> sluice::engine::credentials::BoxFuture<
        '_,
        Result<
            sluice::engine::credentials::Credential,
            sluice::engine::credentials::CredentialError,
        >,
    > {
        let e = self.0.clone();
        Box::pin(async move { Err(e) })
    }

    fn refresh(
        &self,
        _rejected: &sluice::engine::credentials::Credential,
    ) -> sluice::engine::credentials::BoxFuture<
        '_,
        Result<
            sluice::engine::credentials::Credential,
            sluice::engine::credentials::CredentialError,
        >,
    > {
        let e = self.0.clone();
        Box::pin(async move { Err(e) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_nothing_is_sent() {
    use sluice::engine::credentials::CredentialError;
    let server = TestServer::start(|_| Reply::new(200, "should not be reached")).await;
    let url = format!("{}/data", server.url);
    // A dead grant: the guest gets the provider's 401, so it reports re-authorization.
    let dead: Arc<dyn CredentialProvider> = Arc::new(NoToken(
        CredentialError::ReauthorizationRequired("invalid_grant".into()),
    ));
    let (status, body) =
        fetched(pull("no-token", "fetch", &url, &server.url, &[], Some(dead)).await);
    assert_eq!(status, 401);
    assert!(body.contains("reauthorization_required"), "{body}");
    // A token endpoint that is down: a transport error.
    let down: Arc<dyn CredentialProvider> =
        Arc::new(NoToken(CredentialError::Unavailable("timeout".into())));
    let failure = pull("no-token", "fetch", &url, &server.url, &[], Some(down))
        .await
        .unwrap()
        .expect_err("no request without a token");
    assert!(
        failure
            .message
            .contains("could not obtain the integration's credentials"),
        "{}",
        failure.message
    );
    assert!(server.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_loopback_reach_only_the_exact_instance_origin() {
    // The instance (the emulator) and another local service, such as the admin API, share
    // the loopback host; only the instance's port was approved.
    let instance = TestServer::start(|_| Reply::new(200, "instance")).await;
    let admin = TestServer::start(|_| Reply::new(201, "installed")).await;
    let provider: Arc<dyn CredentialProvider> = FakeProvider::new("t-ports");
    let url = format!("{}/api/plugins/evil", admin.url);
    let failure = pull(
        "ports",
        "fetch",
        &url,
        &instance.url,
        &[&instance.url],
        Some(provider),
    )
    .await
    .unwrap()
    .expect_err("another local port is refused");
    assert!(
        failure.message.contains("HttpRequestDenied"),
        "{}",
        failure.message
    );
    assert!(admin.received().is_empty(), "the other port was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentialed_method_the_manifest_does_not_declare_is_refused() {
    let server = TestServer::start(|_| Reply::new(204, "")).await;
    let provider: Arc<dyn CredentialProvider> = FakeProvider::new("t-methods");
    let read_only = Manifest::from_json(&manifest_json(&[], &["GET"])).unwrap();
    let rules = EgressRules::new(Arc::new(read_only), vec![origin(&server.url)].into(), true);
    let policy =
        OutboundPolicy::for_integration(rules, Vec::<String>::new(), Some(&server.url)).unwrap();
    let url = format!("{}/jobs", server.url);
    let denials = EngineMetrics::get(&fixture().0.metrics().denials);
    // The guest streams its body after handing the request over, so it may meet the refusal
    // as a closed body stream rather than as the response's error.
    pull_with("methods", "post", &url, &server.url, policy, Some(provider))
        .await
        .unwrap()
        .expect_err("POST with credentials is not declared");
    assert!(server.received().is_empty(), "the request was sent");
    assert!(EngineMetrics::get(&fixture().0.metrics().denials) > denials);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_with_userinfo_is_refused() {
    let server = TestServer::start(|_| Reply::new(200, "reached")).await;
    let url = format!("http://user:pw@127.0.0.1:{}/data", server.port);
    let failure = pull("userinfo", "fetch", &url, &server.url, &[], None)
        .await
        .unwrap()
        .expect_err("userinfo is refused");
    assert!(
        failure.message.contains("HttpRequestDenied"),
        "{}",
        failure.message
    );
    assert!(server.received().is_empty(), "the request was sent");
}
