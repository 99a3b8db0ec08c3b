//! Helpers shared by the emulator's tests: a started emulator and a plain HTTP client
//! holding the account's API token.

#![allow(dead_code)]

use base64::Engine as _;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value as Json, json};
use zendesk_emulator::{Emulator, EmulatorConfig};

pub struct Ctx {
    pub emu: Emulator,
    pub http: Client,
}

pub async fn start(scale: usize) -> Ctx {
    start_with(EmulatorConfig {
        scale,
        ..EmulatorConfig::default()
    })
    .await
}

pub async fn start_with(config: EmulatorConfig) -> Ctx {
    let emu = Emulator::start(config).await.expect("emulator starts");
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Ctx { emu, http }
}

impl Ctx {
    /// `Basic base64({email}/token:{api_token})`.
    pub fn token_auth(&self) -> String {
        basic(&format!("{}/token", self.emu.email), &self.emu.api_token)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.url)
    }

    /// GET with the API token; any status.
    pub async fn get(&self, path_or_url: &str) -> Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            self.url(path_or_url)
        };
        self.http
            .get(url)
            .header("Authorization", self.token_auth())
            .send()
            .await
            .expect("request")
    }

    /// GET with the API token, expecting 200, as JSON.
    pub async fn get_ok(&self, path_or_url: &str) -> Json {
        let response = self.get(path_or_url).await;
        let status = response.status();
        let body: Json = response.json().await.expect("json body");
        assert_eq!(status, StatusCode::OK, "GET {path_or_url}: {body}");
        body
    }

    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Json,
    ) -> (StatusCode, Json) {
        let response = self
            .http
            .request(method, self.url(path))
            .header("X-Emulator-Key", &self.emu.control_key)
            .json(&body)
            .send()
            .await
            .expect("control request");
        let status = response.status();
        (status, response.json().await.expect("control json"))
    }

    pub async fn post_control(&self, path: &str, body: Json) -> Json {
        let (status, answer) = self.control(reqwest::Method::POST, path, body).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {answer}");
        answer
    }

    pub async fn ops(&self, ops: Json) -> Json {
        self.post_control("/__emulator/records", ops).await
    }

    pub async fn now(&self) -> i64 {
        let (_, body) = self
            .control(reqwest::Method::GET, "/__emulator/clock", json!({}))
            .await;
        body["now"].as_i64().expect("now")
    }

    pub async fn advance(&self, seconds: i64) -> i64 {
        self.post_control("/__emulator/clock", json!({"advance_s": seconds}))
            .await["now"]
            .as_i64()
            .expect("now")
    }

    pub async fn ground_truth(&self, stream: &str, query: &str) -> Vec<Json> {
        let (status, body) = self
            .control(
                reqwest::Method::GET,
                &format!("/__emulator/records/{stream}{query}"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["records"].as_array().expect("records").clone()
    }

    /// Walks a cursor export from `start` (`start_time=…` or `cursor=…`) to
    /// `end_of_stream`, with `extra` parameters on every request (`after_url` carries only
    /// the cursor). Waits out each 429 as a client must, by moving the emulator's clock by
    /// its `Retry-After`. Returns the records and the last `after_cursor`.
    pub async fn walk_export(&self, stream: &str, start: &str, extra: &str) -> (Vec<Json>, String) {
        let mut url = self.url(&format!(
            "/api/v2/incremental/{stream}/cursor.json?{start}&{extra}"
        ));
        let mut records = Vec::new();
        loop {
            let response = self.get(&url).await;
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                let wait: i64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                self.advance(wait).await;
                continue;
            }
            assert_eq!(response.status(), StatusCode::OK, "GET {url}");
            let page: Json = response.json().await.expect("json");
            records.extend(page[stream].as_array().expect("records").iter().cloned());
            let cursor = page["after_cursor"]
                .as_str()
                .expect("after_cursor")
                .to_string();
            if page["end_of_stream"] == json!(true) {
                return (records, cursor);
            }
            url = format!("{}&{extra}", page["after_url"].as_str().expect("after_url"));
        }
    }
}

pub fn basic(user: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

/// The latest version of each record by id, in id order (what a store keyed by id holds
/// after applying an export in order).
pub fn latest_by_id(records: &[Json]) -> Vec<Json> {
    let mut by_id = std::collections::BTreeMap::new();
    for r in records {
        by_id.insert(r["id"].as_u64().expect("id"), r.clone());
    }
    by_id.into_values().collect()
}
