//! A hostile contract-0.2 guest's `describe` and `discover` answers have caps of their own: an
//! answer over one is refused with an error naming the cap and the answer's size, and an
//! answer under it passes. The guest is `tests/creds-guest` (its `discover-bytes` setting, and
//! a build whose `describe` answers a 2 MiB description).
//! Run: `cargo test --release --workspace --test engine_answer_caps`.

use std::sync::Arc;

use sluice::engine::outbound::OutboundPolicy;
use sluice::engine::wit::types::{Grant, Session, Settings};
use sluice::engine::{CallContext, ConnectorEngine, EngineError, EngineLimits, Limit};
use sluice_test_support::*;

/// The discover cap of the engine in these tests.
const DISCOVER_CAP: usize = 64 << 10;

fn ctx() -> CallContext {
    CallContext {
        integration: Some("caps".into()),
        policy: Arc::new(OutboundPolicy::deny_all()),
        ..CallContext::default()
    }
}

/// A session whose settings ask `discover` for a schema of `bytes` bytes.
fn discover_session(bytes: usize) -> Session {
    Session {
        settings: Settings {
            capability: "crm".into(),
            values: vec![
                ("url".into(), "https://api.example/data".into()),
                ("discover-bytes".into(), bytes.to_string()),
            ],
        },
        host: host_ctx(false),
        grant: Grant {
            instance_url: None,
            fields: Vec::new(),
            issued_at_ms: None,
            scopes: Vec::new(),
        },
    }
}

/// The limit and detail of a limit hit; panics on anything else.
fn limit_hit<T>(result: Result<T, EngineError>) -> (Limit, String, String) {
    match result {
        Err(e @ EngineError::LimitExceeded { .. }) => {
            let message = e.to_string();
            let EngineError::LimitExceeded { limit, detail, .. } = e else {
                unreachable!()
            };
            (limit, detail, message)
        }
        Err(other) => panic!("expected a limit hit, got {other}"),
        // The answer itself can be megabytes: not printed.
        Ok(_) => panic!("expected a limit hit, got an answer"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_describe_is_refused_naming_the_cap_and_its_size() {
    let engine = ConnectorEngine::new(EngineLimits::default()).expect("engine");
    let cap = engine.limits().max_describe_bytes;
    assert!(
        OVERSIZED_DESCRIBE_BYTES > cap,
        "the guest's answer must be over the cap"
    );
    let plain = engine.load("creds-guest", creds_guest()).expect("loads");
    let info = engine
        .describe(&plain, &ctx())
        .await
        .expect("a small describe passes");
    assert_eq!(info.name, "creds-guest");

    let hostile = engine
        .load("creds-guest", creds_guest_oversized_describe())
        .expect("loads");
    let (limit, detail, message) = limit_hit(engine.describe(&hostile, &ctx()).await);
    assert_eq!(limit, Limit::DescribeSize);
    assert!(detail.contains(&format!("cap {cap} bytes")), "{detail}");
    let size: usize = detail
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .expect("the detail names the answer's size");
    assert!(size >= OVERSIZED_DESCRIBE_BYTES, "{detail}");
    assert!(message.contains("describe answer cap"), "{message}");
    assert!(message.contains("`describe`"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_discover_is_refused_naming_the_cap_and_its_size() {
    let engine = ConnectorEngine::new(EngineLimits {
        max_discover_bytes: DISCOVER_CAP,
        ..EngineLimits::default()
    })
    .expect("engine");
    let connector = engine.load("creds-guest", creds_guest()).expect("loads");

    let under = engine
        .discover(&connector, &ctx(), &discover_session(DISCOVER_CAP - 64))
        .await
        .expect("no limit hit")
        .expect("no failure");
    assert_eq!(under[0].json_schema.len(), DISCOVER_CAP - 64);
    serde_json::from_str::<serde_json::Value>(&under[0].json_schema).expect("a JSON schema");

    let schema = 2 * DISCOVER_CAP;
    let result = engine
        .discover(&connector, &ctx(), &discover_session(schema))
        .await;
    let (limit, detail, message) = limit_hit(result);
    assert_eq!(limit, Limit::DiscoverSize);
    // The stream's name (`fetched`), its schema and its key field (`id`).
    let size = "fetched".len() + schema + "id".len();
    assert_eq!(
        detail,
        format!("the answer holds {size} bytes, cap {DISCOVER_CAP} bytes")
    );
    assert!(message.contains("discover answer cap"), "{message}");
}
