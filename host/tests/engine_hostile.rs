//! Hostile components are contained with a typed error, and the host and normal calls keep
//! working. Run: `cargo test --release -p sluice --test engine_hostile`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sluice::engine::metrics::EngineMetrics;
use sluice::engine::outbound::{OutboundLimits, OutboundPolicy, RetryPolicy};
use sluice::engine::wit::types::{Failure, Page};
use sluice::engine::{
    CallContext, ConnectorEngine, EngineError, EngineLimits, Limit, LoadedConnector,
};
use sluice_test_support::*;

const PAGE_CAP: usize = 1 << 20;
/// Body bytes one call's host side may buffer.
const BUFFER_BUDGET: usize = 4 << 20;
/// Bytes one guest-built header map may hold.
const HEADER_MAP_CAP: usize = 16 << 10;
/// Resources one call may hold.
const RESOURCE_CAP: usize = 1024;

fn limits() -> EngineLimits {
    EngineLimits {
        cpu_deadline: Duration::from_millis(1000),
        wall_timeout: Duration::from_secs(20),
        memory_bytes: 64 << 20,
        max_resources: RESOURCE_CAP,
        max_header_map_bytes: HEADER_MAP_CAP,
        max_concurrent_calls: 32,
        max_page_bytes: PAGE_CAP,
        outbound: OutboundLimits {
            max_response_bytes: 1 << 20,
            max_buffered_bytes: BUFFER_BUDGET,
            // Longer than the wall-clock timeout: a request left open stays open for the
            // whole call unless a test shortens it.
            request_body_timeout: Duration::from_secs(60),
            retry: RetryPolicy {
                max_retries: 2,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(50),
            },
            ..OutboundLimits::default()
        },
        ..EngineLimits::default()
    }
}

/// One engine and one loaded hostile connector, shared by the tests of this binary.
fn fixture() -> &'static (Arc<ConnectorEngine>, Arc<LoadedConnector>) {
    static FIXTURE: OnceLock<(Arc<ConnectorEngine>, Arc<LoadedConnector>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let engine = ConnectorEngine::new(limits()).expect("engine");
        let connector = engine
            .load("hostile", hostile())
            .expect("hostile component loads");
        (engine, Arc::new(connector))
    })
}

fn ctx(integration: &str, policy: OutboundPolicy) -> CallContext {
    CallContext {
        integration: Some(integration.into()),
        run: Some("run-1".into()),
        policy: Arc::new(policy),
        credentials: None,
        stored_keys: None,
    }
}

async fn pull(
    behaviour: &str,
    extra: &[(&str, &str)],
    policy: OutboundPolicy,
) -> Result<Result<Page, Failure>, EngineError> {
    let (engine, connector) = fixture();
    let session = session(
        settings(behaviour, extra),
        "https://instance.example",
        false,
    );
    engine
        .pull(
            connector,
            &ctx(behaviour, policy),
            &session,
            &pull_request(None, 100),
        )
        .await
}

/// A normal call on the same engine works.
async fn assert_healthy() {
    let page = pull("ok", &[], OutboundPolicy::deny_all())
        .await
        .expect("a normal call works after a hostile one")
        .expect("the ok behaviour returns a page");
    assert_eq!(page.rows.len(), 1);
}

fn assert_limit(result: Result<Result<Page, Failure>, EngineError>, expected: Limit) {
    match result {
        Err(EngineError::LimitExceeded {
            connector,
            call,
            limit,
            detail,
        }) => {
            assert_eq!(limit, expected, "{detail}");
            assert_eq!(call, "pull");
            assert!(connector.starts_with("hostile@"), "{connector}");
        }
        other => panic!("expected the {expected} to stop the call, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_hits_the_cpu_deadline_while_others_run() {
    let hostile = tokio::spawn(pull("loop", &[], OutboundPolicy::deny_all()));
    // A normal call runs while the hostile one spins.
    assert_healthy().await;
    assert_limit(hostile.await.unwrap(), Limit::Cpu);
    assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_http_does_not_count_as_cpu() {
    // The answer takes longer than the whole CPU deadline; only guest computation counts.
    let server =
        TestServer::start(|_| Reply::new(200, "late").after(Duration::from_millis(1500))).await;
    let policy = policy_for(&[&server.url], true);
    let page = pull("fetch", &[("url", &server.url)], policy)
        .await
        .expect("a call blocked on I/O is not interrupted")
        .expect("the fetch succeeds");
    assert!(String::from_utf8_lossy(&page.rows[0].json).contains("late"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_cap() {
    let result = pull("alloc", &[], OutboundPolicy::deny_all()).await;
    let message = result.as_ref().map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("memory cap"), "{message}");
    assert_limit(result, Limit::Memory);
    assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_host_is_denied() {
    let (engine, _) = fixture();
    let before = EngineMetrics::get(&engine.metrics().denials);
    let policy = policy_for(&["https://declared.example/"], false);
    let failure = pull("undeclared", &[], policy)
        .await
        .expect("the call itself succeeds")
        .expect_err("the request is refused");
    assert!(
        failure.message.contains("HttpRequestDenied"),
        "{}",
        failure.message
    );
    assert!(EngineMetrics::get(&engine.metrics().denials) > before);
    assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_metadata_addresses_are_denied() {
    let server = TestServer::start(|_| Reply::new(200, "should never be reached")).await;
    let port = server.port.to_string();
    let cases = [
        // Allow-listed literal addresses in private and link-local (metadata) ranges.
        ("10.0.0.1", "https://10.0.0.1/data".to_string()),
        (
            "169.254.169.254",
            "https://169.254.169.254/latest/meta-data/".to_string(),
        ),
        (
            "fd00:ec2::254",
            "https://[fd00:ec2::254]/latest/meta-data/".to_string(),
        ),
        // A loopback name without insecure loopback: refused by scheme, and by address.
        ("localhost", format!("http://localhost:{port}/")),
        ("localhost", format!("https://localhost:{port}/")),
        ("127.0.0.1", format!("https://127.0.0.1:{port}/")),
        // IPv4-translated (::ffff:0:0:0/96) and local-use NAT64 (64:ff9b:1::/48) addresses
        // of the metadata service.
        (
            "::ffff:0:a9fe:a9fe",
            "https://[::ffff:0:a9fe:a9fe]/latest/meta-data/".to_string(),
        ),
        (
            "64:ff9b:1::a9fe:a9fe",
            "https://[64:ff9b:1::a9fe:a9fe]/latest/meta-data/".to_string(),
        ),
    ];
    for (host, url) in cases {
        assert_eq!(origin(&url).host, host);
        let policy = policy_for(&[url.as_str()], false);
        let failure = pull("fetch", &[("url", &url)], policy)
            .await
            .expect("the call itself succeeds")
            .expect_err("the request is refused");
        assert!(
            failure.message.contains("DestinationIpProhibited")
                || failure.message.contains("HttpRequestDenied"),
            "{url}: {}",
            failure.message
        );
    }
    assert!(
        server.received().is_empty(),
        "a denied request reached the server"
    );
    assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_name_resolving_to_loopback_is_denied_even_with_insecure_loopback() {
    // This machine's own name resolves through the system resolver; on hosts where it maps
    // to a loopback or private address, the DNS check must refuse it.
    let Ok(name) = std::fs::read_to_string("/etc/hostname") else {
        eprintln!("no /etc/hostname; skipped");
        return;
    };
    let name = name.trim().to_ascii_lowercase();
    let Ok(addrs) = tokio::net::lookup_host((name.as_str(), 443)).await else {
        eprintln!("{name} does not resolve; skipped");
        return;
    };
    let addrs: Vec<_> = addrs.collect();
    let public = addrs
        .iter()
        .all(|a| sluice::engine::outbound::prohibited_range(a.ip()).is_none());
    if name == "localhost" || public || addrs.is_empty() {
        eprintln!("{name} resolves to {addrs:?}; skipped");
        return;
    }
    let policy = policy_for(&[&format!("https://{name}/")], true);
    let failure = pull("fetch", &[("url", &format!("https://{name}/"))], policy)
        .await
        .expect("the call itself succeeds")
        .expect_err("the request is refused");
    assert!(
        failure.message.contains("DestinationIpProhibited"),
        "{name} ({addrs:?}): {}",
        failure.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_environment_are_empty() {
    let page = pull("fs-env", &[], OutboundPolicy::deny_all())
        .await
        .expect("the call succeeds")
        .expect("the guest reports what it saw");
    let seen: Vec<String> = page
        .rows
        .iter()
        .map(|r| String::from_utf8_lossy(&r.json).into_owned())
        .collect();
    let text = seen.join("\n");
    assert!(text.contains("read_dir(/)=err"), "{text}");
    assert!(text.contains("read_dir(.)=err"), "{text}");
    assert!(text.contains("read(/etc/passwd)=err"), "{text}");
    assert!(text.contains("env=0"), "{text}");
    assert!(text.contains("HOME=None"), "{text}");
    assert!(text.contains("args=0"), "{text}");
    assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_mid_pull_is_a_typed_trap() {
    let server = TestServer::start(|_| Reply::new(200, "1\n2\n")).await;
    let policy = policy_for(&[&server.url], true);
    let result = pull("trap", &[("url", &server.url)], policy).await;
    match result {
        Err(EngineError::Trap {
            connector,
            call,
            detail,
        }) => {
            assert!(connector.starts_with("hostile@"));
            assert_eq!(call, "pull");
            assert!(!detail.is_empty());
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(
        server.received().len(),
        1,
        "the trap came after the request"
    );
    assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_page_hits_the_page_cap() {
    let size = (PAGE_CAP * 2).to_string();
    let result = pull("big-page", &[("size", &size)], OutboundPolicy::deny_all()).await;
    assert_limit(result, Limit::PageSize);
    // Just under the cap passes.
    let size = (PAGE_CAP / 2).to_string();
    let page = pull("big-page", &[("size", &size)], OutboundPolicy::deny_all())
        .await
        .unwrap()
        .unwrap();
    assert!(!page.rows.is_empty());
    assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_limit_hits_are_counted() {
    let (engine, _) = fixture();
    assert_healthy().await;
    let text = engine.metrics().render_prometheus();
    assert!(text.contains("sluice_connector_calls_total "), "{text}");
    assert!(EngineMetrics::get(&engine.metrics().calls) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_blocked_past_the_wall_clock_timeout_is_stopped() {
    let engine = ConnectorEngine::new(EngineLimits {
        wall_timeout: Duration::from_millis(300),
        ..limits()
    })
    .unwrap();
    let connector = engine.load("hostile", hostile()).unwrap();
    let server =
        TestServer::start(|_| Reply::new(200, "too late").after(Duration::from_secs(30))).await;
    let policy = policy_for(&[&server.url], true);
    let s = session(
        settings("fetch", &[("url", &server.url)]),
        "https://instance.example",
        false,
    );
    let result = engine
        .pull(&connector, &ctx("slow", policy), &s, &pull_request(None, 1))
        .await;
    assert_limit(result, Limit::WallClock);
    assert_healthy().await;
}

/// An engine with the tests' limits changed by `change`, and the hostile connector loaded in it.
fn engine_with(change: impl FnOnce(&mut EngineLimits)) -> (Arc<ConnectorEngine>, LoadedConnector) {
    let mut limits = limits();
    change(&mut limits);
    let engine = ConnectorEngine::new(limits).unwrap();
    let connector = engine.load("hostile", hostile()).unwrap();
    (engine, connector)
}

/// A policy that lets the guest reach the loopback server at `url` (its exact origin).
fn loopback(url: &str) -> OutboundPolicy {
    policy_for(&[url], true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_with_an_unfinished_request_hits_the_cpu_deadline() {
    // The guest opens a request, never finishes its body and computes. An open request is not
    // waiting: the CPU deadline (1 s) stops the call, not the wall-clock timeout (20 s).
    let server = TestServer::start(|_| Reply::new(200, "never asked")).await;
    let result = pull("stall-spin", &[("url", &server.url)], loopback(&server.url)).await;
    assert_limit(result, Limit::Cpu);
    assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_request_body_times_out() {
    // The guest waits for the response of a request whose body it never finishes: the request
    // fails once the body timeout passes, well inside the wall-clock timeout.
    let (engine, connector) = engine_with(|l| {
        l.outbound.request_body_timeout = Duration::from_millis(200);
    });
    let server = TestServer::start(|_| Reply::new(200, "never asked")).await;
    let s = session(
        settings("stall-wait", &[("url", &server.url)]),
        "https://instance.example",
        false,
    );
    let failure = engine
        .pull(
            &connector,
            &ctx("stall-wait", loopback(&server.url)),
            &s,
            &pull_request(None, 1),
        )
        .await
        .expect("the call ends on the request's failure, not on a limit")
        .expect_err("the request fails");
    assert!(
        failure.message.contains("ConnectionWriteTimeout"),
        "{}",
        failure.message
    );
    assert!(server.received().is_empty(), "an unfinished body was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_left_unread_count_against_the_host_buffer_budget() {
    let server = TestServer::start(|_| Reply::new(200, vec![b'r'; 512 << 10])).await;
    let url = server.url.as_str();
    // Four unread 512 KiB answers fit the 4 MiB budget.
    let page = pull("hoard", &[("url", url), ("count", "4")], loopback(url))
        .await
        .expect("within the budget")
        .expect("every response arrives");
    assert_eq!(String::from_utf8_lossy(&page.rows[0].json), "4");
    // Twenty would hold 10 MiB in the host for a guest that reads none of them.
    let before = server.received().len();
    let result = pull("hoard", &[("url", url), ("count", "20")], loopback(url)).await;
    let message = result.as_ref().map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("host buffer budget"), "{message}");
    assert_limit(result, Limit::HostBuffers);
    // Eight fit; the ninth is refused as it arrives, and the guest asks for no more.
    assert_eq!(server.received().len() - before, 9);
    assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_maps_and_live_resources_are_capped() {
    // One header map may hold 16 KiB: a 32 KiB value ends the call.
    let size = (2 * HEADER_MAP_CAP).to_string();
    let result = pull(
        "header-flood",
        &[("count", "1"), ("size", &size)],
        OutboundPolicy::deny_all(),
    )
    .await;
    assert_limit(result, Limit::HeaderMap);
    // Within the cap, a map is fine.
    let size = (HEADER_MAP_CAP / 2).to_string();
    pull(
        "header-flood",
        &[("count", "1"), ("size", &size)],
        OutboundPolicy::deny_all(),
    )
    .await
    .expect("a header map within the cap")
    .expect("the guest returns a page");
    // Small maps kept in bulk: the resource table is full long before the host holds much.
    let count = (5 * RESOURCE_CAP).to_string();
    let result = pull(
        "header-flood",
        &[("count", &count), ("size", "64")],
        OutboundPolicy::deny_all(),
    )
    .await;
    assert_limit(result, Limit::Resources);
    assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_logs_cannot_forge_host_lines_or_grow_without_bound() {
    let logs = captured_logs();
    pull(
        "log-forge",
        &[("size", "1048576")],
        OutboundPolicy::deny_all(),
    )
    .await
    .expect("the call succeeds")
    .expect("the guest returns a page");
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let carrying: Vec<&str> = text.lines().filter(|l| l.contains("forged")).collect();
    assert!(!carrying.is_empty(), "the guest's line was not logged");
    for line in carrying {
        // Each line with the guest's text is a host line about the guest: it cannot pose as
        // the runner, and it cannot move the terminal's cursor.
        assert!(line.contains("sluice::guest"), "forged host line: {line}");
        assert!(!line.contains('\u{1b}'), "raw escape sequence: {line:?}");
        assert!(line.len() < 16 << 10, "a {}-byte log line", line.len());
    }
}
