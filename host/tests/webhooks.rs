//! Webhooks end to end: a receiver on loopback gets every event of a connect and a pull
//! exactly as stored in the outbox, with Standard Webhooks signatures that an independent
//! implementation (Python's `hmac`) verifies, even though it fails its first three requests;
//! URLs outside the egress rules are refused, and a delivery that cannot be made is visible.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use sf_emulator::{Emulator, EmulatorConfig};
use sluice::app::{App, AppConfig, AppError, IntegrationInput};
use sluice::engine::backoff::Backoff;
use sluice::store::{DeliveryState, WebhookEventType};
use sluice::webhooks::{DeliverySettings, WebhookEgress, deliver_due};
use sluice_test_support::runtime::{approve_emulator, connect, open_app, salesforce_settings};
use sluice_test_support::{TestDir, temp_dir};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    answered: u16,
}

/// A webhook receiver on loopback that answers 503 to its first `failures` requests.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(failures: usize) -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                async move {
                    let mut got = seen.lock().unwrap();
                    let status = if got.len() < failures {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::NO_CONTENT
                    };
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default()
                    };
                    got.push(Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body: String::from_utf8(body.to_vec()).unwrap(),
                        answered: status.as_u16(),
                    });
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, got }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig {
        auto_approve: true,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// An app whose connectors reach the emulator and whose webhooks may reach `receiver` (the
/// operator's extra origins, as `--extra-origin` gives them).
async fn app(tag: &str, emu: &Emulator, receiver: &str) -> (Arc<App>, TestDir) {
    let dir = temp_dir(tag);
    let mut config = AppConfig::new(dir.to_path_buf());
    approve_emulator(&mut config, &emu.url);
    approve_emulator(&mut config, receiver);
    config.host_client = Default::default();
    (open_app(config).await, dir)
}

fn input(emu: &Emulator) -> IntegrationInput {
    IntegrationInput {
        name: Some("Acme support".into()),
        capability: Some("helpdesk".into()),
        settings: salesforce_settings(&emu.url, &[]),
        client_id: Some(emu.client_id.clone()),
        client_secret: Some(emu.client_secret.clone()),
        ..IntegrationInput::default()
    }
}

/// Short waits so that the test does not sleep through the retries; the schedule is the
/// same code as in `serve`.
fn quick() -> DeliverySettings {
    DeliverySettings {
        backoff: Backoff {
            base: Duration::from_millis(2),
            max: Duration::from_millis(20),
        },
        max_attempts: 10,
        ..DeliverySettings::default()
    }
}

/// Runs the delivery worker's passes until nothing is pending.
async fn deliver_all(app: &Arc<App>, settings: &DeliverySettings) {
    let egress = WebhookEgress::of(app.config());
    for _ in 0..10_000 {
        deliver_due(app.store(), &egress, settings).await.unwrap();
        let pending: i64 = app
            .store()
            .webhook_endpoints()
            .unwrap()
            .iter()
            .map(|e| e.pending)
            .sum();
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("deliveries still pending");
}

/// Verifies each request's signature with Python's `hmac`, as the README's recipe does;
/// returns one verdict per request.
fn python_verifies(secret: &str, requests: &[Received]) -> Vec<bool> {
    const VERIFY: &str = r#"
import base64, hashlib, hmac, json, sys
cases = json.load(sys.stdin)
key = base64.b64decode(cases["secret"].removeprefix("whsec_"))
for r in cases["requests"]:
    signed = f'{r["id"]}.{r["timestamp"]}.{r["body"]}'.encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1)[1] for s in r["signature"].split(" ") if s.startswith("v1,")]
    print(any(hmac.compare_digest(expected, g) for g in given))
"#;
    let input = serde_json::json!({
        "secret": secret,
        "requests": requests.iter().map(|r| serde_json::json!({
            "id": r.id, "timestamp": r.timestamp, "signature": r.signature, "body": r.body,
        })).collect::<Vec<_>>(),
    });
    let mut child = std::process::Command::new("python3")
        .args(["-c", VERIFY])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l == "True")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_three_times_gets_every_event_as_stored_and_signed() {
    let emu = emulator().await;
    let receiver = Receiver::start(3).await;
    let (app, _dir) = app("hooks-e2e", &emu, &receiver.url).await;
    let (endpoint, secret) =
        sluice::webhooks::add_endpoint(&app, &format!("{}/hooks", receiver.url), None).unwrap();

    let added = app.add_integration(input(&emu)).await.unwrap();
    let id = added.integration.id.clone();
    connect(&app, &id).await;
    let summary = sluice::runner::run_pull(&app, &id, Default::default())
        .await
        .unwrap();
    deliver_all(&app, &quick()).await;

    // Every event written after the endpoint was added, and nothing else, reached the
    // receiver exactly as stored in the outbox. (Opening the app activated the bundled
    // connector before: that event predates the endpoint and is not sent to it.)
    let all = app.store().webhook_events(100).unwrap();
    let events: Vec<_> = all
        .iter()
        .filter(|e| e.created_at_ms >= endpoint.created_at_ms)
        .cloned()
        .collect();
    assert!(
        all.iter()
            .filter(|e| e.created_at_ms < endpoint.created_at_ms)
            .all(|e| e.event_type == WebhookEventType::ConnectorVersionActivated)
    );
    let types: std::collections::HashSet<_> = events.iter().map(|e| e.event_type).collect();
    assert!(
        types.contains(&WebhookEventType::IntegrationConnected),
        "{types:?}"
    );
    assert!(
        types.contains(&WebhookEventType::SyncCompleted),
        "{types:?}"
    );
    let got = receiver.got();
    let delivered: BTreeMap<&str, &Received> = got
        .iter()
        .filter(|r| r.answered == 204)
        .map(|r| (r.id.as_str(), r))
        .collect();
    assert_eq!(
        delivered.keys().copied().collect::<BTreeSet<_>>(),
        events
            .iter()
            .map(|e| e.id.as_str())
            .collect::<BTreeSet<_>>()
    );
    for event in &events {
        assert_eq!(
            delivered[event.id.as_str()].body,
            event.body,
            "{}",
            event.id
        );
    }
    assert_eq!(got.iter().filter(|r| r.answered == 503).count(), 3);

    // Every request, retries included, carries a signature Python's hmac verifies; a
    // tampered body does not verify.
    assert!(python_verifies(secret.expose(), &got).iter().all(|ok| *ok));
    let mut tampered = got[got.len() - 1].clone();
    tampered.body.push(' ');
    assert_eq!(python_verifies(secret.expose(), &[tampered]), [false]);

    // The sync event counts the records the run stored, per stream; never their contents.
    let completed = events
        .iter()
        .find(|e| e.event_type == WebhookEventType::SyncCompleted)
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&completed.body).unwrap();
    assert_eq!(body["type"], "sync.completed");
    assert_eq!(body["data"]["run_id"], summary.run_id.as_str());
    let stored = app.store().record_counts(&id).unwrap();
    for count in &stored {
        let stream = body["data"]["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == count.stream.as_str())
            .unwrap_or_else(|| panic!("no counts for {}", count.stream));
        assert_eq!(stream["added"], count.live, "{}", count.stream);
    }
    assert!(stored.iter().any(|c| c.live > 0));
    let mut keys = Vec::new();
    app.store()
        .for_each_record(&id, None, false, |r| {
            keys.push(r.key);
            Ok(())
        })
        .unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter()
            .all(|key| !completed.body.contains(key.as_str()))
    );

    // The deliveries say how they went: the first ones needed retries.
    let shown = app.store().webhook_endpoint(&endpoint.id).unwrap();
    assert_eq!(
        (shown.pending, shown.delivered, shown.failed),
        (0, events.len() as i64, 0)
    );
    let deliveries = app.store().webhook_deliveries(None, 100).unwrap();
    assert!(
        deliveries
            .iter()
            .all(|d| d.state == DeliveryState::Delivered)
    );
    assert_eq!(
        deliveries.iter().map(|d| d.attempts).sum::<i64>(),
        events.len() as i64 + 3
    );
}

#[tokio::test]
async fn urls_outside_the_egress_rules_are_refused_and_a_blocked_delivery_is_visible() {
    let emu = emulator().await;
    let receiver = Receiver::start(0).await;
    let (app, _dir) = app("hooks-egress", &emu, &receiver.url).await;
    for refused in [
        "https://10.0.0.8/hooks",
        "https://169.254.169.254/latest",
        "http://hooks.example.com/x",
        "https://[::1]:9443/x",
        // Loopback, but not an origin the operator approved.
        "http://127.0.0.1:1/hooks",
    ] {
        match sluice::webhooks::add_endpoint(&app, refused, None) {
            Err(AppError::Invalid(issues)) => assert_eq!(issues[0].field, "url", "{refused}"),
            other => panic!("{refused}: {other:?}"),
        }
    }
    assert!(app.store().webhook_endpoints().unwrap().is_empty());

    // A public-looking https name that resolves to loopback passes the URL check but every
    // attempt refuses to connect, and says why.
    let (endpoint, _) =
        sluice::webhooks::add_endpoint(&app, "https://localhost:9/hooks", None).unwrap();
    let added = app.add_integration(input(&emu)).await.unwrap();
    connect(&app, &added.integration.id).await;
    let settings = DeliverySettings {
        max_attempts: 1,
        ..quick()
    };
    deliver_all(&app, &settings).await;
    let shown = app.store().webhook_endpoint(&endpoint.id).unwrap();
    assert_eq!((shown.delivered, shown.failed), (0, 1));
    let error = shown.last_error.unwrap();
    assert!(error.contains("loopback"), "{error}");
    assert!(receiver.got().is_empty());
}

#[tokio::test]
async fn an_unknown_integration_or_endpoint_is_not_found() {
    let emu = emulator().await;
    let receiver = Receiver::start(0).await;
    let (app, _dir) = app("hooks-unknown", &emu, &receiver.url).await;
    let url = format!("{}/hooks", receiver.url);
    assert!(matches!(
        sluice::webhooks::add_endpoint(&app, &url, Some("int_nonexistent00")),
        Err(AppError::NotFound(_))
    ));
    assert!(matches!(
        app.store()
            .delete_webhook_endpoint("whk_nonexistent00")
            .map_err(AppError::from),
        Err(AppError::NotFound(_))
    ));
}

/// The command line: `webhooks add` refuses a private URL and prints the secret once; events
/// that CLI commands write (a connect, a pull) are delivered by `sluice serve`, signed; `list`
/// and `deliveries` show how they went; `remove` removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_endpoints_and_serve_delivers_what_cli_commands_wrote() {
    use support::binary::{connect_as_browser, serve, sluice_command};
    let emu = emulator().await;
    let receiver = Receiver::start(0).await;
    let dir = temp_dir("hooks-cli");
    let global = [
        "--allow-insecure-loopback",
        "--extra-origin",
        &emu.url,
        "--extra-origin",
        &receiver.url,
    ];
    let sluice = |args: &[&str]| {
        sluice_command(&dir)
            .args(global)
            .args(args)
            .output()
            .unwrap()
    };
    let refused = sluice(&["webhooks", "add", "https://192.168.1.20/hooks"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("192.168.1.20"), "{stderr}");

    let url = format!("{}/hooks", receiver.url);
    let added = sluice(&["--json", "webhooks", "add", &url]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let added: serde_json::Value = serde_json::from_slice(&added.stdout).unwrap();
    let secret = added["secret"].as_str().unwrap().to_string();
    let hook = added["endpoint"]["id"].as_str().unwrap().to_string();

    let out = sluice(&[
        "integration",
        "add",
        "--name",
        "Acme",
        "--capability",
        "helpdesk",
        "--set",
        "environment=production",
        "--set",
        &format!("domain={}", emu.url),
        "--set",
        "pull-by=updated",
        "--client-id",
        &emu.client_id,
        "--client-secret",
        &emu.client_secret,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        connect_as_browser(&dir, &global, &id)
            .await
            .status
            .success()
    );
    assert!(sluice(&["pull", &id]).status.success());
    // Written by the CLI, not sent yet: only `serve` delivers.
    assert!(receiver.got().is_empty());

    let server = serve(&dir, &global, &[], "");
    for _ in 0..600 {
        if receiver.got().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = receiver.got();
    // Sent at once, in no set order.
    let mut types: Vec<String> = got
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["type"].to_string())
        .collect();
    types.sort();
    assert_eq!(types, ["\"integration.connected\"", "\"sync.completed\""]);
    assert!(python_verifies(&secret, &got).iter().all(|ok| *ok));
    drop(server);

    let listed = sluice(&["--json", "webhooks", "list"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["delivered"], 2, "{listed}");
    assert!(!listed.to_string().contains(&secret));
    let table = String::from_utf8(sluice(&["webhooks", "deliveries", &hook]).stdout).unwrap();
    assert_eq!(table.matches("delivered").count(), 2, "{table}");
    assert!(sluice(&["webhooks", "remove", &hook]).status.success());
    let missing = sluice(&["webhooks", "remove", &hook]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains(&hook));
}
