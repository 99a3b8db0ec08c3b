//! Shared server state: the store, settings, OAuth tokens, counters, faults, cursors
//! and bulk jobs. Locks are std locks and are never held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::data::Store;
use crate::data::generate::{self, Counts, GenCtx};
use crate::dt::{self, DAY_MS};
use crate::{ConnectedApp, EmulatorConfig, Settings, ids, oauth};

/// Default consumer key of the emulator's connected app (real keys start `3MVG9`).
pub const DEFAULT_CLIENT_ID: &str = "3MVG9SluiceEmulatorDefaultConnectedApp.LoopbackDesktopClient";
/// Newest API version served.
pub const API_VERSION: &str = "62.0";

/// A programmed answer for upcoming requests.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Fault {
    /// HTTP method to match (`*` or absent: any).
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix to match (e.g. `/services/data/v62.0/query`).
    #[serde(default)]
    pub path_prefix: String,
    /// How many matching requests it applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// Status to answer; absent with `delay_ms` means "delay, then serve normally".
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// Wait this long before answering.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Number of matching requests to let through before the fault fires.
    #[serde(default)]
    pub skip: u32,
    /// Response headers the fault sets (e.g. `Retry-After`, `Sforce-Limit-Info`,
    /// `Content-Encoding`); they win over the emulator's own.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body as base64, for bytes that are not text (a gzip body); wins over `body`.
    #[serde(default)]
    pub body_base64: Option<String>,
    /// Hold the request until `POST /__emulator/faults/release` (after the fault was
    /// added), then answer as the fault says: a test can stop a client mid-way for as long
    /// as it needs, without guessing a delay.
    #[serde(default)]
    pub hold: bool,
    /// The release count when the fault was added: a release made since lets it through,
    /// even one made before the request arrived.
    #[serde(skip)]
    pub releases_before: u64,
}

fn one() -> u32 {
    1
}

/// Counters reported by `GET /__emulator/stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// API calls counted against `DailyApiRequests`.
    pub api_calls: u64,
    /// Calls per endpoint label (e.g. `query`, `queryMore`, `describe`).
    pub by_endpoint: BTreeMap<String, u64>,
    pub tokens_issued: u64,
    pub tokens_refreshed: u64,
    pub refresh_failures: u64,
    pub bulk_jobs_created: u64,
    /// Answers sent gzip-compressed (the request accepted gzip).
    pub compressed_responses: u64,
    /// TCP connections accepted on either origin (a client reusing connections opens few).
    pub connections: u64,
    /// Of those, connections that negotiated HTTP/2 by ALPN.
    pub http2_connections: u64,
    /// Requests served as HTTP/2 streams (all HTTP/2 connections together).
    pub http2_streams: u64,
    /// HTTP/2 connections that sent GOAWAY (`POST /__emulator/connections/goaway`).
    pub http2_goaways: u64,
    /// Bytes written to clients on the wire (HTTP heads and bodies, after gzip and TLS).
    pub wire_bytes_sent: u64,
}

/// All state of one emulator instance.
pub struct Shared {
    /// Origin, e.g. `http://127.0.0.1:1234` (`https://` when serving TLS): every absolute URL
    /// the emulator hands out starts with it or with `login_url`.
    pub base_url: String,
    /// Origin of the login host, e.g. `http://127.0.0.1:1235`.
    pub login_url: String,
    pub org_id: String,
    /// Id of the second org (setting `browser_org`).
    pub second_org_id: String,
    pub app: ConnectedApp,
    pub username: String,
    pub password: String,
    pub control_key: String,
    pub settings: RwLock<Settings>,
    /// The records and the schema (`Store::schemas`, describe `Last-Modified`), which
    /// the control API can extend at run time.
    pub store: RwLock<Store>,
    pub auth: Mutex<oauth::AuthState>,
    pub stats: Mutex<Stats>,
    /// Fired by the control API: every open HTTP/2 connection sends GOAWAY and closes once
    /// its streams are answered, as a front end does when it recycles connections.
    pub goaway: tokio::sync::Notify,
    pub faults: Mutex<Vec<Fault>>,
    /// How many times held faults were released (`POST /__emulator/faults/release`).
    pub fault_releases: tokio::sync::watch::Sender<u64>,
    /// Queries held until queries on other objects arrive (`/__emulator/rendezvous`).
    pub rendezvous: crate::rendezvous::Rendezvous,
    pub cursors: Mutex<HashMap<String, crate::rest::query::Cursor>>,
    pub jobs: Mutex<HashMap<String, crate::bulk::Job>>,
    /// The heads of recent data-API requests (`GET /__emulator/requests`).
    pub requests: Mutex<crate::requests::RequestLog>,
    /// End of the generated time span.
    pub anchor_ms: i64,
    seq: AtomicU64,
}

impl Shared {
    /// Generates the dataset and the credentials.
    pub fn new(config: EmulatorConfig, base_url: String, login_url: String) -> Shared {
        let now = dt::now_ms();
        let anchor = config.anchor_ms.unwrap_or(now - now.rem_euclid(DAY_MS));
        let ctx = GenCtx {
            seed: config.seed,
            counts: Counts::of(config.dataset, config.scale),
            anchor,
            admin_username: config.username.clone(),
        };
        let mut store = generate::build(ctx);
        crate::access::sync_permissions(&mut store, &config.settings, now);
        // Describe results were last modified well before the data began.
        store.set_schema_modified(anchor - 30 * DAY_MS);
        let salt = now as u64 ^ (std::process::id() as u64) << 32;
        let app = config.app.unwrap_or_else(|| ConnectedApp {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: random_token(salt ^ 1, 40, HEX),
            callback_urls: Vec::new(),
            jwt_public_key_pem: None,
        });
        Shared {
            base_url,
            login_url,
            org_id: ids::make("00D", 1_000 + config.seed % 1000),
            second_org_id: ids::make("00D", 2_000 + config.seed % 1000),
            app,
            username: config.username,
            password: config.password,
            control_key: random_token(salt ^ 2, 32, HEX),
            settings: RwLock::new(config.settings),
            store: RwLock::new(store),
            auth: Mutex::new(oauth::AuthState::default()),
            stats: Mutex::new(Stats::default()),
            goaway: tokio::sync::Notify::new(),
            faults: Mutex::new(Vec::new()),
            fault_releases: tokio::sync::watch::Sender::new(0),
            rendezvous: Default::default(),
            cursors: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            requests: Mutex::new(crate::requests::RequestLog::default()),
            anchor_ms: anchor,
            seq: AtomicU64::new(salt),
        }
    }

    /// The store for writing. Completed Bulk jobs freeze their results first: a job's
    /// results are a snapshot of the moment it completed.
    pub fn write_store(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        crate::bulk::freeze_completed(self);
        self.store.write().expect("store lock")
    }

    /// A snapshot of the settings.
    pub fn settings(&self) -> Settings {
        self.settings.read().expect("settings lock").clone()
    }

    /// A fresh unique random string from `alphabet`.
    pub fn token(&self, len: usize, alphabet: &[u8]) -> String {
        let s = self.seq.fetch_add(0x9E37_79B9, Ordering::Relaxed);
        random_token(s ^ dt::now_ms() as u64, len, alphabet)
    }

    /// Next number in a per-process sequence (locators, job ids).
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) & 0xFF_FFFF_FFFF
    }

    /// Record one call for `GET /__emulator/stats` without counting it as an API call.
    pub fn note(&self, label: &str) {
        let mut st = self.stats.lock().expect("stats lock");
        *st.by_endpoint.entry(label.to_string()).or_default() += 1;
    }

    /// Count one API call; returns `(used, max)` after counting.
    pub fn count_api_call(&self, label: &str) -> (u64, u64) {
        let max = self.settings.read().expect("settings lock").api_daily_limit;
        let mut st = self.stats.lock().expect("stats lock");
        st.api_calls += 1;
        *st.by_endpoint.entry(label.to_string()).or_default() += 1;
        (st.api_calls, max)
    }

    /// `(used, max)` without counting.
    pub fn api_usage(&self) -> (u64, u64) {
        let max = self.settings.read().expect("settings lock").api_daily_limit;
        (self.stats.lock().expect("stats lock").api_calls, max)
    }

    /// Takes the first fault matching the request, if any, honouring `skip`/`count`.
    pub fn take_fault(&self, method: &str, path: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().expect("faults lock");
        let pos = faults.iter().position(|f| {
            path.starts_with(&f.path_prefix)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m == "*" || m.eq_ignore_ascii_case(method))
        })?;
        let f = &mut faults[pos];
        if f.skip > 0 {
            f.skip -= 1;
            return None;
        }
        let out = f.clone();
        f.count = f.count.saturating_sub(1);
        if f.count == 0 {
            faults.remove(pos);
        }
        Some(out)
    }

    /// Visibility lag for writes made now.
    pub fn visibility_lag(&self) -> Duration {
        Duration::from_millis(
            self.settings
                .read()
                .expect("settings lock")
                .visibility_lag_ms,
        )
    }
}

/// Lower-case hex digits.
pub const HEX: &[u8] = b"0123456789abcdef";
/// Characters of opaque tokens.
pub const TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";

/// A pseudo-random string; not cryptographic, which is fine for a test double.
pub fn random_token(seed: u64, len: usize, alphabet: &[u8]) -> String {
    let mut r = generate::Rng::for_row(seed, 99, (seed >> 7) as u32);
    (0..len)
        .map(|_| alphabet[r.below(alphabet.len() as u64) as usize] as char)
        .collect()
}
