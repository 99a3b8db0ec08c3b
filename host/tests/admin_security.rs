//! The admin API of a real `sluice serve` against the requests a hostile web page, a
//! DNS-rebinding page or a slow client sends: every request here is raw HTTP on loopback, with
//! the exact headers a browser would put on it.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use sluice_test_support::served::Served;
use sluice_test_support::temp_dir;
use support::binary::{serve, sluice_command};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn connector_versions(server: &Served, token: &str) -> Vec<u64> {
    let list = server.get_json("/api/connectors", token);
    let mut versions: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"] == "salesforce")
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    versions.sort();
    versions
}

const INTEGRATION: &str = r#"{"name":"Acme","capability":"helpdesk","settings":{"environment":"production","domain":"https://acme.my.salesforce.com","pull-by":"updated"}}"#;

/// The live attack: a page's `fetch(…/api/connectors/salesforce, {method: 'POST', mode:
/// 'no-cors', body: wasm})` arrives as `Content-Type: text/plain` with the page's `Origin`.
#[test]
fn a_web_page_cannot_install_a_connector_or_add_an_integration() {
    let dir = temp_dir("websec");
    let server = serve(&dir, &[], &[], "");
    let token = server.generated_token();
    let auth = bearer(&token);
    let host = server.host();
    let own_origin = format!("http://localhost:{}", server.addr.port());

    // The generated token: private, and what the CLI prints.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let printed = sluice_command(&dir).arg("admin-token").output().unwrap();
    assert!(printed.status.success());
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), token);

    let wasm = sluice_test_support::with_custom_section(
        sluice::SALESFORCE_COMPONENT,
        "sluice-test",
        b"web",
    );
    let upload = "/api/connectors/salesforce";
    // Exactly what the browser sends for the no-cors fetch.
    let (status, body) = server.send(
        "POST",
        upload,
        &host,
        &[
            ("Content-Type", "text/plain;charset=UTF-8"),
            ("Origin", "http://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Mode", "no-cors"),
        ],
        &wasm,
    );
    assert_eq!(status, 403, "{body}");
    // An older browser sends no Sec-Fetch-* and may omit Origin: the token still stops it.
    let (status, body) = server.send(
        "POST",
        upload,
        &host,
        &[("Content-Type", "text/plain")],
        &wasm,
    );
    assert_eq!(status, 401, "{body}");
    // Each rule holds on its own, even with the token.
    let (status, body) = server.send(
        "POST",
        upload,
        &host,
        &[("Content-Type", "text/plain"), ("Authorization", &auth)],
        &wasm,
    );
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("application/wasm"), "{body}");
    let (status, body) = server.send(
        "POST",
        upload,
        &host,
        &[
            ("Content-Type", "application/wasm"),
            ("Authorization", &auth),
            ("Origin", "http://evil.example"),
        ],
        &wasm,
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.send(
        "POST",
        upload,
        &host,
        &[
            ("Content-Type", "application/wasm"),
            ("Authorization", &auth),
            ("Sec-Fetch-Site", "same-site"),
        ],
        &wasm,
    );
    assert_eq!(status, 403, "{body}");
    // The same shapes create no integration either, and a bodyless POST needs JSON too.
    let (status, body) = server.send(
        "POST",
        "/api/integrations",
        &host,
        &[("Content-Type", "text/plain"), ("Authorization", &auth)],
        INTEGRATION.as_bytes(),
    );
    assert_eq!(status, 415, "{body}");
    let (status, body) = server.send(
        "POST",
        "/api/integrations",
        &host,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("Origin", "http://evil.example"),
        ],
        INTEGRATION.as_bytes(),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.send(
        "POST",
        "/api/integrations/int_x/pull",
        &host,
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(status, 415, "{body}");
    assert_eq!(
        connector_versions(&server, &token),
        [1],
        "nothing installed"
    );
    assert_eq!(
        server.get_json("/api/integrations", &token),
        serde_json::json!([])
    );

    // The operator's own requests (the CLI, or a console served from this origin) work.
    let (status, body) = server.send(
        "POST",
        "/api/integrations",
        &host,
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Authorization", &auth),
            ("Origin", &own_origin),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        INTEGRATION.as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.send(
        "POST",
        upload,
        &host,
        &[
            ("Content-Type", "application/wasm"),
            ("Authorization", &auth),
            ("Origin", &own_origin),
        ],
        &wasm,
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(connector_versions(&server, &token), [1, 2]);
}

/// A rebinding page's requests name its own host: refused before any handler, token or not.
/// The operator's explicit token setting keeps working and no token file is made for it.
#[test]
fn dns_rebinding_hosts_are_refused_and_an_explicit_token_still_works() {
    let dir = temp_dir("rebind");
    let server = serve(
        &dir,
        &["--public-url", "https://sluice.example.com"],
        &[("SLUICE_ADMIN_TOKEN", "operator-chosen-token")],
        "",
    );
    assert!(!dir.join("admin.token").exists());
    let auth = bearer("operator-chosen-token");
    let port = server.addr.port();
    for host in [
        format!("evil.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        "sluice.example.com:8443".to_string(),
        format!("user@127.0.0.1:{port}"),
    ] {
        for path in ["/api/integrations", "/healthz"] {
            let (status, body) = server.send("GET", path, &host, &[("Authorization", &auth)], b"");
            assert_eq!(status, 421, "{host}{path}: {body}");
        }
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "sluice.example.com".to_string(),
    ] {
        let (status, body) = server.send(
            "GET",
            "/api/integrations",
            &host,
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(status, 200, "{host}: {body}");
    }
    let (status, _) = server.send("GET", "/api/integrations", &server.host(), &[], b"");
    assert_eq!(status, 401);
    let (status, _) = server.send(
        "GET",
        "/api/integrations",
        &server.host(),
        &[("Authorization", "Bearer wrong")],
        b"",
    );
    assert_eq!(status, 401);
}

/// Connections that never finish their request head are closed, and cannot use up the
/// server's descriptors: `/healthz` answers under `ulimit -n` with more of them open than the
/// limit allows.
#[cfg(unix)]
#[test]
fn half_open_connections_do_not_make_the_server_unreachable() {
    let dir = temp_dir("slowloris");
    let server = serve(
        &dir,
        &["--header-read-timeout", "1s", "--max-connections", "8"],
        &[],
        "ulimit -n 96 &&",
    );
    // Far more half-open connections than the descriptor limit: the kernel queues them.
    let mut held = Vec::new();
    for _ in 0..150 {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        std::io::Write::write_all(&mut stream, b"GET /healthz HTTP/1.1\r\nHost: 127").unwrap();
        held.push(stream);
    }
    // The server closes a connection that stalls in its head. The read timeout only bounds
    // a broken server; it is not a speed assertion.
    let first = &mut held[0];
    first
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = first.read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "a stalled connection stays open: {closed:?}"
    );
    let (status, body) = server.send("GET", "/healthz", &server.host(), &[], b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ok"), "{body}");
}

/// `/records?limit=` reads `limit` rows (a row past the page that cannot be read does not
/// matter), pages by key, and a bad `interval` is a 422 naming the field.
#[test]
fn records_pages_are_bounded_and_bad_intervals_are_refused() {
    let dir = temp_dir("records");
    let server = serve(&dir, &[], &[], "");
    let token = server.generated_token();
    let auth = bearer(&token);
    let post = |body: &str| {
        server.send(
            "POST",
            "/api/integrations",
            &server.host(),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            body.as_bytes(),
        )
    };
    for interval in [
        r#""soon""#,
        r#""213503982334602d""#,
        r#""0s""#,
        "-5",
        "1.5",
        "true",
        r#""8d""#,
    ] {
        let body = INTEGRATION.replacen('{', &format!(r#"{{"interval":{interval},"#), 1);
        let (status, answer) = post(&body);
        assert_eq!(status, 422, "{interval}: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(
            answer["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["field"] == "interval"),
            "{interval}: {answer}"
        );
    }
    assert_eq!(
        server.get_json("/api/integrations", &token),
        serde_json::json!([])
    );
    let (status, created) = post(&INTEGRATION.replacen('{', r#"{"interval":"2h","#, 1));
    assert_eq!(status, 201, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["integration"]["interval_s"], 7200);
    let id = created["integration"]["id"].as_str().unwrap().to_string();

    // Three readable records, then one whose version column no reader can decode.
    let db = rusqlite::Connection::open(dir.join("sluice.db")).unwrap();
    db.busy_timeout(Duration::from_secs(30)).unwrap();
    for (key, version) in [
        ("001", "1"),
        ("002", "1"),
        ("003", "1"),
        ("004", "not-a-number"),
    ] {
        db.execute(
            "INSERT INTO records (integration_id, stream, key, version, deleted, cursor, json,
                 run_id, updated_at_ms)
             VALUES (?1, 'Case', ?2, ?3, 0, '2024-01-01T00:00:00Z', ?4, NULL, 0)",
            rusqlite::params![
                id,
                key,
                version,
                format!(r#"{{"Id":"{key}"}}"#).into_bytes()
            ],
        )
        .unwrap();
    }
    drop(db);
    let page = server.get_json(&format!("/api/integrations/{id}/records?limit=2"), &token);
    let keys: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["001", "002"]);
    let next = server.get_json(
        &format!("/api/integrations/{id}/records?limit=1&after_stream=Case&after_key=002"),
        &token,
    );
    assert_eq!(next[0]["key"], "003");
    assert_eq!(next[0]["record"]["Id"], "003");
    assert_eq!(next.as_array().unwrap().len(), 1);
}
