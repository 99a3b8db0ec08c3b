//! OAuth JWT bearer grant (spec §1.8): RS256 signature against the connected app's key
//! or certificate, iss/sub/aud/exp checks, §1.10 errors.

mod common;

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{RsaPrivateKey, rand_core::OsRng};
use serde_json::{Value, json};
use sf_emulator::{ConnectedApp, EmulatorConfig, jwt::GRANT_TYPE};

const CLIENT_ID: &str = "3MVG9JwtTestApp";

fn key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).expect("rsa key"))
}

fn public_pem(k: &RsaPrivateKey) -> String {
    k.to_public_key().to_public_key_pem(LineEnding::LF).unwrap()
}

fn sign(k: &RsaPrivateKey, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{h}.{p}");
    let sig = SigningKey::<Sha256>::new(k.clone()).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

async fn start(pem: Option<String>) -> sf_emulator::Emulator {
    start_with(EmulatorConfig {
        app: Some(ConnectedApp {
            client_id: CLIENT_ID.into(),
            client_secret: "secret".into(),
            jwt_public_key_pem: pem,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
}

fn claims(emu: &sf_emulator::Emulator, aud: &str, exp_offset_s: i64) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({"iss": CLIENT_ID, "sub": emu.username, "aud": aud, "exp": now + exp_offset_s})
}

async fn token_call(emu: &sf_emulator::Emulator, assertion: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{}/services/oauth2/token", emu.url))
        .form(&[("grant_type", GRANT_TYPE), ("assertion", assertion)])
        .send()
        .await
        .expect("token");
    let s = r.status().as_u16();
    (s, r.json().await.expect("json"))
}

async fn assert_refused(emu: &sf_emulator::Emulator, assertion: &str, error: &str, desc: &str) {
    let (s, b) = token_call(emu, assertion).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"], error, "{b}");
    assert_eq!(b["error_description"], desc, "{b}");
}

#[tokio::test]
async fn jwt_bearer_grant_issues_a_token_without_refresh() {
    let emu = start(Some(public_pem(key()))).await;
    for aud in ["https://login.salesforce.com", emu.url.as_str()] {
        let (s, b) = token_call(&emu, &sign(key(), &claims(&emu, aud, 180))).await;
        assert_eq!(s, 200, "{b}");
        assert!(b.get("refresh_token").is_none(), "{b}");
        assert!(b.get("expires_in").is_none(), "{b}");
        assert_eq!(b["instance_url"], emu.url.as_str());
        let tok = b["access_token"].as_str().unwrap();
        let (s, _, t) = get(&emu, tok, "/limits").await;
        assert_eq!(s, 200, "{t}");
    }
}

#[tokio::test]
async fn jwt_bearer_grant_errors() {
    let emu = start(Some(public_pem(key()))).await;
    let good = claims(&emu, "https://login.salesforce.com", 180);
    // Audience.
    let mut c = good.clone();
    c["aud"] = json!("https://evil.example.com");
    assert_refused(
        &emu,
        &sign(key(), &c),
        "invalid_grant",
        "Audience validation failed",
    )
    .await;
    // Expired.
    let c = claims(&emu, "https://login.salesforce.com", -10);
    assert_refused(
        &emu,
        &sign(key(), &c),
        "invalid_grant",
        "expired authorization code",
    )
    .await;
    // Unknown issuer.
    let mut c = good.clone();
    c["iss"] = json!("3MVG9SomeoneElse");
    assert_refused(
        &emu,
        &sign(key(), &c),
        "invalid_client_id",
        "client identifier invalid",
    )
    .await;
    // Unknown subject.
    let mut c = good.clone();
    c["sub"] = json!("nobody@example.com");
    assert_refused(
        &emu,
        &sign(key(), &c),
        "invalid_grant",
        "user hasn't approved this consumer",
    )
    .await;
    // Tampered payload: the signature no longer matches.
    let signed = sign(key(), &good);
    let mut parts: Vec<String> = signed.split('.').map(str::to_string).collect();
    let mut c = good.clone();
    c["exp"] = json!(c["exp"].as_i64().unwrap() + 3600);
    parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
    assert_refused(&emu, &parts.join("."), "invalid_grant", "invalid assertion").await;
    // Another algorithm.
    parts = signed.split('.').map(str::to_string).collect();
    parts[0] = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    assert_refused(&emu, &parts.join("."), "invalid_grant", "invalid assertion").await;
    // Garbage.
    assert_refused(&emu, "not-a-jwt", "invalid_grant", "invalid assertion").await;
    // A valid assertion still works after all that.
    let (s, b) = token_call(&emu, &sign(key(), &good)).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn jwt_bearer_refused_without_a_registered_key() {
    let emu = start(None).await;
    let c = claims(&emu, "https://login.salesforce.com", 180);
    assert_refused(&emu, &sign(key(), &c), "invalid_grant", "invalid assertion").await;
}

/// The connected app holds an X.509 certificate, as on Salesforce. The certificate is
/// made by the `openssl` command line tool; without it the test only logs a skip.
#[tokio::test]
async fn jwt_bearer_with_a_certificate() {
    let dir = tempfile::Builder::new()
        .prefix("sf-emu-jwt-")
        .tempdir()
        .unwrap();
    let (k, c) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=sluice-jwt-test", "-keyout"])
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: openssl not available ({made:?})");
        return;
    }
    let private = RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(&k).unwrap()).unwrap();
    let cert = std::fs::read_to_string(&c).unwrap();
    drop(dir);
    assert!(sf_emulator::jwt::parse_public_key(&cert).is_some());
    let emu = start(Some(cert)).await;
    let good = claims(&emu, "https://test.salesforce.com", 180);
    let (s, b) = token_call(&emu, &sign(&private, &good)).await;
    assert_eq!(s, 200, "{b}");
    // Signed by another key: refused.
    assert_refused(
        &emu,
        &sign(key(), &good),
        "invalid_grant",
        "invalid assertion",
    )
    .await;
}
