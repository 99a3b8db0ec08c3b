//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::{Value, json};
use sf_emulator::{Dataset, Emulator, EmulatorConfig};

/// Starts an emulator with the demo dataset.
pub async fn start() -> Emulator {
    start_with(EmulatorConfig::default()).await
}

/// Starts an emulator with a config.
pub async fn start_with(cfg: EmulatorConfig) -> Emulator {
    Emulator::start(cfg).await.expect("emulator starts")
}

/// Starts an emulator with the empty dataset.
pub async fn start_empty() -> Emulator {
    start_with(EmulatorConfig {
        dataset: Dataset::Empty,
        ..Default::default()
    })
    .await
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// POSTs to the control API.
pub async fn control(emu: &Emulator, path: &str, body: Value) -> Value {
    let r = client()
        .post(format!("{}/__emulator/{path}", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .json(&body)
        .send()
        .await
        .expect("control call");
    assert!(r.status().is_success(), "control {path}: {}", r.status());
    r.json().await.expect("json")
}

/// GETs from the control API.
pub async fn control_get(emu: &Emulator, path: &str) -> Value {
    let r = client()
        .get(format!("{}/__emulator/{path}", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .send()
        .await
        .expect("control call");
    assert!(r.status().is_success(), "control {path}: {}", r.status());
    r.json().await.expect("json")
}

/// A full token response from the control API.
pub async fn grant(emu: &Emulator) -> Value {
    control(emu, "oauth/grant", json!({})).await
}

/// An access token.
pub async fn token(emu: &Emulator) -> String {
    grant(emu).await["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// Ground truth rows of an object.
pub async fn truth(emu: &Emulator, object: &str) -> Vec<Value> {
    let r = client()
        .get(format!("{}/__emulator/records/{object}", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .send()
        .await
        .expect("export");
    let v: Value = r.json().await.expect("json");
    v["records"].as_array().expect("records").clone()
}

/// GET under `/services/data/v62.0`, returning status, headers and body text.
pub async fn get(
    emu: &Emulator,
    tok: &str,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let url = if path.starts_with("/services") {
        format!("{}{path}", emu.url)
    } else {
        format!("{}/services/data/v62.0{path}", emu.url)
    };
    let r = client()
        .get(url)
        .bearer_auth(tok)
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.expect("text"))
}

/// Percent-encodes a SOQL string for `q=` (`+` → `%2B`).
pub fn enc(soql: &str) -> String {
    url::form_urlencoded::byte_serialize(soql.as_bytes()).collect()
}

/// Creates a Bulk 2.0 query job from `job` (the create body) and polls it until
/// `JobComplete`; returns its id.
pub async fn completed_bulk_job(emu: &Emulator, tok: &str, job: Value) -> String {
    let base = format!("{}/services/data/v62.0", emu.url);
    let c = client();
    let job: Value = c
        .post(format!("{base}/jobs/query"))
        .bearer_auth(tok)
        .json(&job)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().expect("job id").to_string();
    for _ in 0..10 {
        let j: Value = c
            .get(format!("{base}/jobs/query/{id}"))
            .bearer_auth(tok)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if j["state"] == "JobComplete" {
            return id;
        }
    }
    panic!("bulk job {id} did not complete in 10 polls");
}
