//! Record and replay of outbound requests (cassettes): a recording against the Salesforce
//! emulator replays the same pages with the emulator stopped, holds no token, answers repeated
//! requests in order, and names the nearest interaction for a request it does not hold.
//! Run: `cargo test --release --workspace --test engine_cassette`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice::engine::credentials::CredentialProvider;
use sluice::engine::outbound::cassette::{Cassette, Recorder, Tape};
use sluice::engine::outbound::{OutboundLimits, OutboundPolicy};
use sluice::engine::wit::types::{Failure, Page};
use sluice::engine::{CallContext, ConnectorEngine, EngineLimits, LoadedConnector};
use sluice_test_support::*;

/// An engine whose outbound requests go through `tape`, with the hostile test connector.
fn engine(tape: Tape) -> (Arc<ConnectorEngine>, Arc<LoadedConnector>) {
    let engine = ConnectorEngine::new(EngineLimits {
        outbound: OutboundLimits {
            tape,
            ..OutboundLimits::default()
        },
        ..EngineLimits::default()
    })
    .expect("engine");
    let connector = engine.load("hostile", hostile()).expect("loads");
    (engine, Arc::new(connector))
}

/// A call for an integration whose grant (and only approved origin) is `url`.
fn ctx(url: &str, credentials: Option<Arc<dyn CredentialProvider>>) -> CallContext {
    CallContext {
        integration: Some("taped".into()),
        run: Some("run-1".into()),
        policy: Arc::new(
            OutboundPolicy::for_integration(
                rules(&[], &[url], true),
                Vec::<String>::new(),
                Some(url),
            )
            .expect("approved"),
        ),
        credentials,
        stored_keys: None,
    }
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
    let json: serde_json::Value = response.json().await.expect("token JSON");
    json["access_token"]
        .as_str()
        .expect("an access token")
        .to_string()
}

/// Every page of the `sf-pager` stream (Case Ids in Id order), `size` rows a page.
async fn pages(
    engine: &ConnectorEngine,
    connector: &LoadedConnector,
    ctx: &CallContext,
    url: &str,
    size: u32,
) -> Result<Vec<(Vec<String>, Option<String>)>, Failure> {
    let session = session(settings("sf-pager", &[("url", url)]), url, true);
    let mut pages = Vec::new();
    let mut checkpoint = None;
    loop {
        let page: Page = engine
            .pull(
                connector,
                ctx,
                &session,
                &pull_request(checkpoint.clone(), size),
            )
            .await
            .expect("the call runs")?;
        let keys = page.rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
        checkpoint = page.checkpoint.clone();
        let last = keys.len() < size as usize;
        pages.push((keys, checkpoint.clone()));
        if last {
            return Ok(pages);
        }
    }
}

fn cassette_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).expect("cassette dir") {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_replays_the_same_pages_with_the_emulator_stopped_and_holds_no_token() {
    let dir = temp_dir("cassette-record");
    let cassette_dir = dir.path().join("cassette");
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let url = emu.url.clone();
    let token = emulator_token(&emu).await;
    let recorder = Arc::new(Recorder::create(&cassette_dir).expect("recorder"));
    let (recording, connector) = engine(Tape::Record(recorder.clone()));
    let live = pages(
        &recording,
        &connector,
        &ctx(&url, Some(FakeProvider::new(&token))),
        &url,
        7,
    )
    .await
    .expect("a live pull");
    assert!(live.len() > 2, "several pages: {live:?}");
    assert_eq!(recorder.recorded() as usize, live.len());
    assert!(recorder.failures().is_empty(), "{:?}", recorder.failures());

    let text = cassette_text(&cassette_dir);
    assert!(
        text.contains("SELECT"),
        "the files hold the requests: {text}"
    );
    assert!(!text.contains(&token), "a recorded file holds the token");
    assert!(!text.to_ascii_lowercase().contains("authorization"));

    emu.shutdown();
    let stopped = reqwest::Client::new()
        .get(format!("{url}/services/data"))
        .send()
        .await;
    assert!(stopped.is_err(), "the emulator still answers");

    let cassette = Arc::new(Cassette::load(&cassette_dir).expect("cassette loads"));
    let (replaying, connector) = engine(Tape::Replay(cassette.clone()));
    // No credentials: replay never asks for a token.
    let replayed = pages(&replaying, &connector, &ctx(&url, None), &url, 7)
        .await
        .expect("a replayed pull");
    assert_eq!(replayed, live);
    assert_eq!(cassette.unused(), 0);
    assert!(cassette.misses().is_empty(), "{:?}", cassette.misses());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_in_the_cassette_fails_and_names_the_nearest_recording() {
    let dir = temp_dir("cassette-miss");
    let cassette_dir = dir.path().join("cassette");
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let url = emu.url.clone();
    let token = emulator_token(&emu).await;
    let (recording, connector) = engine(Tape::Record(Arc::new(
        Recorder::create(&cassette_dir).expect("recorder"),
    )));
    let ctx = ctx(&url, Some(FakeProvider::new(&token)));
    pages(&recording, &connector, &ctx, &url, 50)
        .await
        .expect("a live pull");
    emu.shutdown();

    let cassette = Arc::new(Cassette::load(&cassette_dir).expect("cassette loads"));
    let (replaying, connector) = engine(Tape::Replay(cassette.clone()));
    // A page size the recording never asked for: the query's LIMIT differs.
    let failure = pages(&replaying, &connector, &ctx, &url, 40)
        .await
        .expect_err("an unrecorded request fails");
    let misses = cassette.misses();
    assert_eq!(misses.len(), 1, "{misses:?}");
    let miss = misses[0].to_string();
    assert!(
        miss.contains("LIMIT+40") || miss.contains("LIMIT%2040"),
        "{miss}"
    );
    assert!(miss.contains("nearest recorded: 0001-GET-"), "{miss}");
    assert!(miss.contains("query differs"), "{miss}");
    assert!(
        failure.message.contains("no recorded answer"),
        "the guest is told: {failure:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_requests_get_their_recorded_answers_in_order() {
    let dir = temp_dir("cassette-repeat");
    let cassette_dir = dir.path().join("cassette");
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let server = TestServer::start(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::new(200, format!("answer {n}"))
    })
    .await;
    let origin = server.url.clone();
    let url = format!("{origin}/same");
    let session = session(settings("fetch", &[("url", &url)]), &origin, true);
    let fetch = |engine: Arc<ConnectorEngine>, connector: Arc<LoadedConnector>| {
        let ctx = ctx(&origin, None);
        let session = session.clone();
        async move {
            engine
                .pull(&connector, &ctx, &session, &pull_request(None, 10))
                .await
                .expect("the call runs")
                .map(|page| String::from_utf8_lossy(&page.rows[0].json).into_owned())
        }
    };
    let (recording, connector) = engine(Tape::Record(Arc::new(
        Recorder::create(&cassette_dir).expect("recorder"),
    )));
    for n in 1..=3 {
        let body = fetch(recording.clone(), connector.clone()).await.unwrap();
        assert!(body.contains(&format!("answer {n}")), "{body}");
    }
    drop(server);

    let cassette = Arc::new(Cassette::load(&cassette_dir).expect("cassette loads"));
    let (replaying, connector) = engine(Tape::Replay(cassette.clone()));
    for n in 1..=3 {
        let body = fetch(replaying.clone(), connector.clone()).await.unwrap();
        assert!(body.contains(&format!("answer {n}")), "replay {n}: {body}");
    }
    let fourth = fetch(replaying.clone(), connector.clone()).await;
    assert!(fourth.is_err(), "a fourth request was never recorded");
    let miss = cassette.misses()[0].to_string();
    assert!(miss.contains("already given"), "{miss}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_keeps_the_policy_a_denied_request_is_not_answered() {
    // The cassette answers anything, but the integration may reach only another origin.
    let cassette = Arc::new(Cassette::answering_every_request(200, &[], "from the tape"));
    let (replaying, connector) = engine(Tape::Replay(cassette.clone()));
    let allowed = "http://127.0.0.1:9";
    let session = session(
        settings("fetch", &[("url", "http://127.0.0.2:9/x")]),
        allowed,
        true,
    );
    let result = replaying
        .pull(
            &connector,
            &ctx(allowed, None),
            &session,
            &pull_request(None, 10),
        )
        .await
        .expect("the call runs");
    let failure = result.expect_err("the request is denied");
    assert!(!failure.message.contains("from the tape"), "{failure:?}");
    assert_eq!(replaying.metrics().denials.load(Ordering::Relaxed), 1);
    let denials = replaying.take_denials();
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(denials[0].target, "http://127.0.0.2:9");
    assert!(replaying.take_denials().is_empty(), "taken once");

    // The same cassette answers the allowed origin, with no server there.
    let session = session_for(allowed);
    let page = replaying
        .pull(
            &connector,
            &ctx(allowed, None),
            &session,
            &pull_request(None, 10),
        )
        .await
        .expect("the call runs")
        .expect("answered from the tape");
    assert!(String::from_utf8_lossy(&page.rows[0].json).contains("from the tape"));
}

fn session_for(origin: &str) -> sluice::engine::wit::types::Session {
    session(
        settings("fetch", &[("url", &format!("{origin}/x"))]),
        origin,
        true,
    )
}
