//! On the wire: header names in Salesforce's case, read through a case-sensitive map as
//! some widely used clients do; gzip on request for REST and Bulk results; faults that set
//! response headers; a held request that waits for its release.

mod common;

use std::collections::HashMap;
use std::io::Read;

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A raw response: status, headers in a case-sensitive map (names exactly as sent), body.
struct Raw {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

async fn raw_get(emu: &sf_emulator::Emulator, path: &str, extra: &[(&str, &str)]) -> Raw {
    let addr = emu.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let mut body = bytes[split + 4..].to_vec();
    if headers.get("Transfer-Encoding").map(String::as_str) == Some("chunked") {
        body = dechunk(&body);
    }
    Raw {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn header_names_come_in_salesforces_case() {
    let emu = start().await;
    let tok = token(&emu).await;
    let auth = format!("Bearer {tok}");
    let r = raw_get(
        &emu,
        "/services/data/v62.0/limits",
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200);
    for name in ["Content-Type", "Sforce-Limit-Info", "Date"] {
        assert!(
            r.headers.contains_key(name),
            "{name} in {:?}",
            r.headers.keys()
        );
    }
    assert!(!r.headers.contains_key("content-type"));
    let job = completed_bulk_job(
        &emu,
        &tok,
        json!({"operation": "query", "query": "SELECT Id FROM Account"}),
    )
    .await;
    let r = raw_get(
        &emu,
        &format!("/services/data/v62.0/jobs/query/{job}/results?maxRecords=5"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200);
    for name in ["Sforce-Locator", "Sforce-NumberOfRecords", "Content-Type"] {
        assert!(
            r.headers.contains_key(name),
            "{name} in {:?}",
            r.headers.keys()
        );
    }
}

#[tokio::test]
async fn rest_and_bulk_results_are_gzipped_on_request() {
    let emu = start().await;
    let tok = token(&emu).await;
    let auth = format!("Bearer {tok}");
    let path = format!(
        "/services/data/v62.0/query?q={}",
        enc("SELECT Id, Subject FROM Case LIMIT 50")
    );
    let plain = raw_get(&emu, &path, &[("Authorization", &auth)]).await;
    assert!(!plain.headers.contains_key("Content-Encoding"));
    let zipped = raw_get(
        &emu,
        &path,
        &[
            ("Authorization", &auth),
            ("Accept-Encoding", "gzip, deflate"),
        ],
    )
    .await;
    assert_eq!(zipped.headers["Content-Encoding"], "gzip");
    let a: Value = serde_json::from_slice(&plain.body).unwrap();
    let b: Value = serde_json::from_slice(&gunzip(&zipped.body)).unwrap();
    assert_eq!(a, b);
    let refused = raw_get(
        &emu,
        &path,
        &[("Authorization", &auth), ("Accept-Encoding", "gzip;q=0")],
    )
    .await;
    assert!(!refused.headers.contains_key("Content-Encoding"));

    // A 304 has no body to compress.
    let describe = "/services/data/v62.0/sobjects/Case/describe/";
    let first = raw_get(&emu, describe, &[("Authorization", &auth)]).await;
    let since = first.headers["Last-Modified"].clone();
    let not_modified = raw_get(
        &emu,
        describe,
        &[
            ("Authorization", &auth),
            ("Accept-Encoding", "gzip"),
            ("If-Modified-Since", &since),
        ],
    )
    .await;
    assert_eq!(not_modified.status, 304);
    assert!(!not_modified.headers.contains_key("Content-Encoding"));
    assert!(not_modified.body.is_empty());

    let job = completed_bulk_job(
        &emu,
        &tok,
        json!({"operation": "query", "query": "SELECT Id FROM Case"}),
    )
    .await;
    let path = format!("/services/data/v62.0/jobs/query/{job}/results?maxRecords=100");
    let plain = raw_get(&emu, &path, &[("Authorization", &auth)]).await;
    let zipped = raw_get(
        &emu,
        &path,
        &[("Authorization", &auth), ("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(zipped.headers["Content-Encoding"], "gzip");
    assert_eq!(gunzip(&zipped.body), plain.body);
}

#[tokio::test]
async fn faults_set_response_headers() {
    let emu = start().await;
    let tok = token(&emu).await;
    let auth = format!("Bearer {tok}");
    control(
        &emu,
        "faults",
        json!({"faults": [
            {"path_prefix": "/services/data/v62.0/limits", "status": 503, "body": "busy",
             "content_type": "text/plain", "headers": {"Retry-After": "7"}},
            {"path_prefix": "/services/data/v62.0/limits", "status": 200, "body": "{}",
             "headers": {"Sforce-Limit-Info": "api-usage=10/100; per-app-api-usage=9/10(appName=Sluice)"}},
            {"path_prefix": "/services/data/v62.0/limits", "status": 200,
             "body_base64": "H4sIAAAAAAACA6tWSkksSVSyUlDKz1aqBQALz1YMDgAAAA==",
             "headers": {"Content-Encoding": "gzip"}},
        ]}),
    )
    .await;
    let path = "/services/data/v62.0/limits";
    let r = raw_get(&emu, path, &[("Authorization", &auth)]).await;
    assert_eq!((r.status, r.headers["Retry-After"].as_str()), (503, "7"));
    let r = raw_get(&emu, path, &[("Authorization", &auth)]).await;
    assert_eq!(
        r.headers["Sforce-Limit-Info"],
        "api-usage=10/100; per-app-api-usage=9/10(appName=Sluice)"
    );
    let r = raw_get(
        &emu,
        path,
        &[("Authorization", &auth), ("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(r.headers["Content-Encoding"], "gzip");
    assert_eq!(gunzip(&r.body), br#"{"data": "ok"}"#);
}

#[tokio::test]
async fn timestamps_are_stored_to_the_second() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    let r = control(
        &emu,
        "records",
        json!({"op": "insert", "object": "Case", "fields": {"Subject": "ms"},
               "SystemModstamp": "2024-01-01T00:00:00.700Z"}),
    )
    .await;
    assert_eq!(
        r["results"][0]["SystemModstamp"],
        "2024-01-01T00:00:00.000+0000"
    );
    let count = |soql: &'static str| {
        let (emu, tok) = (&emu, &tok);
        async move {
            let (s, _, body) = get(emu, tok, &format!("/query?q={}", enc(soql))).await;
            assert_eq!(s, 200, "{body}");
            serde_json::from_str::<Value>(&body).unwrap()["totalSize"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT Id FROM Case WHERE SystemModstamp = 2024-01-01T00:00:00Z").await,
        1
    );
    assert_eq!(
        truth(&emu, "Case").await[0]["SystemModstamp"],
        "2024-01-01T00:00:00.000+0000"
    );
    // Writes without an explicit stamp are whole seconds too.
    let r = control(
        &emu,
        "records",
        json!({"op": "insert", "object": "Case", "fields": {"Subject": "now"}}),
    )
    .await;
    assert!(
        r["results"][0]["SystemModstamp"]
            .as_str()
            .unwrap()
            .ends_with(".000+0000")
    );
}

#[tokio::test]
async fn a_held_request_waits_for_the_release() {
    let emu = start().await;
    let auth = format!("Bearer {}", token(&emu).await);
    let path = "/services/data/v62.0/limits";
    control(
        &emu,
        "faults",
        json!({"path_prefix": path, "hold": true, "status": 503, "body": "held"}),
    )
    .await;
    let held = {
        let (emu_url, auth) = (emu.url.clone(), auth.clone());
        tokio::spawn(async move {
            client()
                .get(format!("{emu_url}{path}"))
                .header("Authorization", auth)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    // Its fault was taken (the list is empty) but it gets no answer until the release.
    for _ in 0..100 {
        let listed = control_get(&emu, "faults").await;
        if listed["faults"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !held.is_finished(),
        "a held request was answered before the release"
    );
    control(&emu, "faults/release", json!({})).await;
    assert_eq!(held.await.unwrap(), 503);

    // A release made before the held request arrives lets it through too.
    control(&emu, "faults", json!({"path_prefix": path, "hold": true})).await;
    control(&emu, "faults/release", json!({})).await;
    let r = raw_get(&emu, path, &[("Authorization", &auth)]).await;
    assert_eq!(r.status, 200);
}
