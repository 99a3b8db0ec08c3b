//! The WAN profile: HTTPS with a CA made at start, round trips per connection and per
//! exchange (`rtt_ms`), and a rate cap on the bytes on the wire (`mbps`).
//!
//! Durations are only checked from below: the emulator's waits are sleeps, which never end
//! early, so "at least" holds on any machine, however loaded; nothing here asserts that
//! something was fast. That a kept-alive client paid its handshake once is checked by the
//! emulator's connection count, not by a clock.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sf_emulator::{Dataset, Emulator, EmulatorConfig, Settings};

const RTT: Duration = Duration::from_millis(100);

/// A client whose only trusted root is `pem`.
fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("PEM"))
        .build()
        .expect("client")
}

/// A client for `emu`: trusting its root when it serves HTTPS.
fn client_for(emu: &Emulator) -> reqwest::Client {
    match &emu.tls_root_pem {
        Some(pem) => trusting(pem),
        None => reqwest::Client::new(),
    }
}

async fn start(tls: bool, settings: Settings) -> Emulator {
    common::start_with(EmulatorConfig {
        tls,
        settings,
        dataset: Dataset::Demo,
        ..EmulatorConfig::default()
    })
    .await
}

async fn control(emu: &Emulator, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = client_for(emu)
        .request(method, format!("{}/__emulator/{path}", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .json(&body)
        .send()
        .await
        .expect("control call");
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert!(status.is_success(), "control {path}: {status} {v}");
    v
}

/// True when `err`, or an error it wraps, is rustls refusing the server's certificate.
fn is_certificate_error(err: &(dyn std::error::Error + 'static)) -> bool {
    if matches!(
        err.downcast_ref::<rustls::Error>(),
        Some(rustls::Error::InvalidCertificate(_))
    ) {
        return true;
    }
    // An io::Error's `source` skips the error it wraps, so look inside it too.
    let wrapped = err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| is_certificate_error(inner));
    wrapped || err.source().is_some_and(is_certificate_error)
}

/// The emulator's count of accepted connections, read in-process (a control call would open
/// one more).
fn connections(emu: &Emulator) -> u64 {
    emu.state.stats.lock().unwrap().connections
}

fn wire_bytes_sent(emu: &Emulator) -> u64 {
    emu.state.stats.lock().unwrap().wire_bytes_sent
}

#[tokio::test]
async fn https_is_trusted_with_the_emitted_root_and_refused_without_it() {
    let emu = start(true, Settings::default()).await;
    assert!(emu.url.starts_with("https://127.0.0.1:"), "{}", emu.url);
    assert!(emu.login_url.starts_with("https://"), "{}", emu.login_url);
    let pem = emu.tls_root_pem.clone().expect("a root with tls on");

    let ok = trusting(&pem)
        .get(format!("{}/services/data", emu.url))
        .send()
        .await
        .expect("https with the emitted root");
    assert_eq!(ok.status(), 200);

    // The public roots do not include a CA made a moment ago.
    let public = reqwest::Client::new()
        .get(format!("{}/services/data", emu.url))
        .send()
        .await
        .expect_err("a client without the root must refuse the certificate");
    assert!(
        is_certificate_error(&public),
        "not a certificate error: {public:?}"
    );

    // Another emulator's root does not vouch for this one.
    let other = start(true, Settings::default()).await;
    let foreign = trusting(other.tls_root_pem.as_ref().expect("root"))
        .get(format!("{}/services/data", emu.url))
        .send()
        .await
        .expect_err("a foreign root must not be accepted");
    assert!(
        is_certificate_error(&foreign),
        "not a certificate error: {foreign:?}"
    );

    // The certificate names `localhost` too.
    let port = emu.addr.port();
    let by_name = trusting(&pem)
        .get(format!("https://localhost:{port}/services/data"))
        .send()
        .await
        .expect("https to localhost with the emitted root");
    assert_eq!(by_name.status(), 200);
}

#[tokio::test]
async fn urls_handed_out_over_https_carry_its_origin() {
    let emu = start(true, Settings::default()).await;
    let client = client_for(&emu);
    let grant = control(&emu, reqwest::Method::POST, "oauth/grant", json!({})).await;
    assert_eq!(grant["instance_url"], emu.url.as_str());
    let id_url = grant["id"].as_str().expect("id");
    assert!(
        id_url.starts_with(&format!("{}/id/", emu.login_url)),
        "{id_url}"
    );
    let token = grant["access_token"].as_str().expect("token");

    let identity = client
        .get(id_url)
        .bearer_auth(token)
        .send()
        .await
        .expect("identity over https");
    assert_eq!(identity.status(), 200);

    // `nextRecordsUrl` is a path, as on Salesforce: it resolves against the https instance.
    let page: Value = client
        .get(format!(
            "{}/services/data/v62.0/query?q={}",
            emu.url,
            common::enc("SELECT Id FROM Case")
        ))
        .header("Sforce-Query-Options", "batchSize=200")
        .bearer_auth(token)
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    let next = page["nextRecordsUrl"].as_str().expect("a second page");
    assert!(next.starts_with("/services/data/v62.0/query/"), "{next}");
    let second = client
        .get(format!("{}{next}", grant["instance_url"].as_str().unwrap()))
        .bearer_auth(token)
        .send()
        .await
        .expect("next page over https");
    assert_eq!(second.status(), 200);

    let discovery: Value = client
        .get(format!(
            "{}/.well-known/openid-configuration",
            emu.login_url
        ))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    let token_endpoint = discovery["token_endpoint"].as_str().expect("endpoint");
    assert!(token_endpoint.starts_with("https://"), "{token_endpoint}");
}

#[test]
fn the_binary_writes_the_root_where_asked() {
    let dir = std::env::temp_dir().join(format!("sf-emulator-wan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_path = dir.join("root.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
        .args(["--dataset", "empty", "--listen", "127.0.0.1:0", "--tls"])
        .arg("--tls-cert-out")
        .arg(&cert_path)
        .args(["--rtt-ms", "1", "--mbps", "100"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sf-emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("ready line");
    let ready: Value = serde_json::from_str(&line).expect("JSON line");
    let pem = std::fs::read_to_string(&cert_path).expect("root written");
    assert_eq!(ready["tls_root_pem"], pem.as_str());
    assert_eq!(ready["tls_cert"], cert_path.display().to_string().as_str());
    let url = ready["url"].as_str().expect("url").to_string();
    assert!(url.starts_with("https://"), "{url}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, settings) = rt.block_on(async {
        let c = trusting(&pem);
        let status = c
            .get(format!("{url}/services/data"))
            .send()
            .await
            .expect("https with the written root")
            .status();
        let settings: Value = c
            .get(format!("{url}/__emulator/settings"))
            .header("X-Emulator-Key", ready["control_key"].as_str().unwrap())
            .send()
            .await
            .expect("settings")
            .json()
            .await
            .expect("json");
        (status, settings)
    });
    child.kill().expect("stop sf-emulator");
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status, 200);
    assert_eq!(settings["rtt_ms"], 1);
    assert_eq!(settings["mbps"], 100.0);
}

#[test]
fn the_binary_refuses_bad_wan_flags() {
    let bin = env!("CARGO_BIN_EXE_sf-emulator");
    for (args, named) in [
        (&["--tls-cert-out", "/nonexistent/root.pem"][..], "--tls"),
        (&["--mbps", "-3"][..], "--mbps"),
        (&["--mbps", "0.0000001"][..], "--mbps"),
        (&["--rtt-ms", "fast"][..], "--rtt-ms"),
    ] {
        let out = Command::new(bin)
            .args(["--dataset", "empty"])
            .args(args)
            .output()
            .expect("run sf-emulator");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn wan_settings_are_listed_changed_and_checked() {
    let emu = start(false, Settings::default()).await;
    let now = control(&emu, reqwest::Method::GET, "settings", json!({})).await;
    assert_eq!(now["rtt_ms"], 0);
    assert_eq!(now["mbps"], 0.0);
    let set = control(
        &emu,
        reqwest::Method::POST,
        "settings",
        json!({"rtt_ms": 5, "mbps": 2.5}),
    )
    .await;
    assert_eq!(set["rtt_ms"], 5);
    assert_eq!(set["mbps"], 2.5);

    // Negative, or so slow that one burst would take hours.
    for mbps in [json!(-1), json!(1e-7)] {
        let refused = reqwest::Client::new()
            .post(format!("{}/__emulator/settings", emu.url))
            .header("X-Emulator-Key", &emu.control_key)
            .json(&json!({ "mbps": mbps }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "mbps {mbps}");
        let why = refused.text().await.unwrap();
        assert!(why.contains("mbps"), "{why}");
        assert_eq!(
            emu.state.settings().mbps,
            2.5,
            "a refused patch changes nothing"
        );
    }
}

/// GETs the version list `n` times with `client`, each answer read to the end.
async fn versions(emu: &Emulator, client: &reqwest::Client, n: u32) {
    for _ in 0..n {
        let r = client
            .get(format!("{}/services/data", emu.url))
            .send()
            .await
            .expect("versions");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("body");
    }
}

#[tokio::test]
async fn a_kept_alive_connection_pays_the_handshakes_once() {
    let emu = start(true, Settings::default()).await;
    // Through the control API, as a benchmark would set it.
    let set = control(
        &emu,
        reqwest::Method::POST,
        "settings",
        json!({"rtt_ms": RTT.as_millis() as u64}),
    )
    .await;
    assert_eq!(set["rtt_ms"], RTT.as_millis() as u64);
    let client = client_for(&emu);
    let n = 4;
    let opened = connections(&emu);
    let began = Instant::now();
    versions(&emu, &client, n).await;
    let took = began.elapsed();
    assert_eq!(
        connections(&emu) - opened,
        1,
        "the client reused its connection"
    );
    // TCP and TLS 1.3 each take one round trip, once; then one per exchange.
    let at_least = RTT * (n + 2);
    assert!(
        took >= at_least,
        "{n} exchanges took {took:?} < {at_least:?}"
    );
}

#[tokio::test]
async fn fresh_connections_pay_the_handshakes_each_time() {
    for (tls, handshake_round_trips) in [(true, 2), (false, 1)] {
        let emu = start(
            tls,
            Settings {
                rtt_ms: RTT.as_millis() as u64,
                ..Settings::default()
            },
        )
        .await;
        let n = 3;
        let opened = connections(&emu);
        let began = Instant::now();
        for _ in 0..n {
            versions(&emu, &client_for(&emu), 1).await;
        }
        let took = began.elapsed();
        assert_eq!(connections(&emu) - opened, u64::from(n));
        let at_least = RTT * n * (1 + handshake_round_trips);
        assert!(
            took >= at_least,
            "tls {tls}: {n} connections took {took:?} < {at_least:?}"
        );
    }
}

/// Reads one page of up to 2,000 Cases with their long text; `gzip` asks for compression.
async fn big_page(emu: &Emulator, token: &str, gzip: bool) -> (Vec<u8>, Duration) {
    let mut request = reqwest::Client::new()
        .get(format!(
            "{}/services/data/v62.0/query?q={}",
            emu.url,
            common::enc("SELECT Id, Subject, Description, Status, CreatedDate FROM Case")
        ))
        .header("Sforce-Query-Options", "batchSize=2000")
        .bearer_auth(token);
    if gzip {
        request = request.header("Accept-Encoding", "gzip");
    }
    let began = Instant::now();
    let r = request.send().await.expect("query");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().contains_key("content-encoding"), gzip);
    let body = r.bytes().await.expect("body").to_vec();
    (body, began.elapsed())
}

#[tokio::test]
async fn responses_leave_no_faster_than_the_rate() {
    let mbps = 8.0;
    let emu = start(
        false,
        Settings {
            mbps,
            ..Settings::default()
        },
    )
    .await;
    let token = common::token(&emu).await;
    let (body, took) = big_page(&emu, &token, false).await;
    assert!(
        body.len() > 100_000,
        "a body too small to measure: {}",
        body.len()
    );
    let at_least = Duration::from_secs_f64(body.len() as f64 * 8.0 / (mbps * 1e6));
    assert!(
        took >= at_least,
        "{} bytes at {mbps} Mbps took {took:?} < {at_least:?}",
        body.len()
    );
}

#[tokio::test]
async fn the_cap_counts_bytes_on_the_wire_so_gzip_sends_fewer() {
    let mbps = 8.0;
    let emu = start(
        false,
        Settings {
            mbps,
            ..Settings::default()
        },
    )
    .await;
    let token = common::token(&emu).await;

    let before = wire_bytes_sent(&emu);
    let (plain, _) = big_page(&emu, &token, false).await;
    let plain_on_wire = wire_bytes_sent(&emu) - before;

    let before = wire_bytes_sent(&emu);
    let (zipped, took) = big_page(&emu, &token, true).await;
    let zipped_on_wire = wire_bytes_sent(&emu) - before;

    assert!(plain_on_wire >= plain.len() as u64);
    assert!(zipped_on_wire >= zipped.len() as u64);
    assert!(
        zipped_on_wire * 2 < plain_on_wire,
        "gzip sent {zipped_on_wire} bytes, plain {plain_on_wire}"
    );
    let at_least = Duration::from_secs_f64(zipped.len() as f64 * 8.0 / (mbps * 1e6));
    assert!(took >= at_least, "{took:?} < {at_least:?}");
}

/// Salesforce's 16,384-byte URL limit counts the scheme: `https://` is one byte more.
#[tokio::test]
async fn the_url_limit_counts_the_https_scheme() {
    let emu = start(true, Settings::default()).await;
    let client = client_for(&emu);
    let base = format!("{}/services/data/v62.0/query?q=", emu.url);
    let url_of = |len: usize| format!("{base}{}", "x".repeat(len - base.len()));
    let over = client.get(url_of(16_385)).send().await.expect("over");
    assert_eq!(over.status(), 414);
    // At the limit the URL fits, and the request's other headers do not.
    let at_limit = client.get(url_of(16_384)).send().await.expect("at");
    assert_eq!(at_limit.status(), 431);
}
