//! State shared by every handler: the records, the settings, the clock, OAuth grants, rate
//! windows, pending faults and counters.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::data::Store;
use crate::oauth::Grants;
use crate::ratelimit::Limits;
use crate::{EmulatorConfig, Settings, seed};

/// The registered OAuth client.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    /// Zendesk calls it the client's "unique identifier".
    pub client_id: String,
    pub client_secret: String,
    /// Exact redirect URLs; empty means any loopback URL.
    pub redirect_urls: Vec<String>,
}

/// A fault to inject on matching API requests (see the README's control API).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    #[serde(default)]
    pub method: Option<String>,
    pub path_prefix: String,
    /// How many matching requests it answers (after `skip`).
    #[serde(default = "one")]
    pub count: u32,
    /// Matching requests to let through first.
    #[serde(default)]
    pub skip: u32,
    /// Status to answer with; without it the request is only delayed, then served.
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub delay_ms: u64,
}

fn one() -> u32 {
    1
}

/// Counters for `GET /__emulator/stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Requests under `/api/v2/`, answered or refused.
    pub api_calls: u64,
    pub by_endpoint: BTreeMap<String, u64>,
    /// Requests refused with 429 by the account or the export window.
    pub rate_limited: u64,
    pub unauthenticated: u64,
    pub faults_served: u64,
    pub tokens_issued: u64,
    pub tokens_refreshed: u64,
}

pub struct Shared {
    /// Origin standing for `https://{subdomain}.zendesk.com`.
    pub origin: String,
    pub store: RwLock<Store>,
    pub settings: RwLock<Settings>,
    pub clock: Clock,
    pub grants: Mutex<Grants>,
    pub limits: Mutex<Limits>,
    pub faults: Mutex<Vec<Fault>>,
    pub stats: Mutex<Stats>,
    pub admin_email: String,
    pub admin_id: u64,
    pub api_token: String,
    pub client: OAuthClient,
    pub control_key: String,
    secret_state: RandomState,
    secret_counter: AtomicU64,
}

impl Shared {
    pub fn new(config: &EmulatorConfig, origin: String) -> Shared {
        let clock = Clock::default();
        let store = seed::account(config.scale, config.seed, clock.now());
        let admin_id = store
            .users
            .values()
            .find(|u| u.email == seed::ADMIN_EMAIL)
            .map_or(0, |u| u.id);
        let mut shared = Shared {
            origin,
            store: RwLock::new(store),
            settings: RwLock::new(config.settings.clone()),
            clock,
            grants: Mutex::new(Grants::default()),
            limits: Mutex::new(Limits::default()),
            faults: Mutex::new(Vec::new()),
            stats: Mutex::new(Stats::default()),
            admin_email: seed::ADMIN_EMAIL.to_string(),
            admin_id,
            api_token: String::new(),
            client: OAuthClient {
                client_id: "sluice_zendesk".to_string(),
                client_secret: String::new(),
                redirect_urls: config.redirect_urls.clone(),
            },
            control_key: String::new(),
            secret_state: RandomState::new(),
            secret_counter: AtomicU64::new(0),
        };
        shared.api_token = shared.secret(40);
        shared.client.client_secret = shared.secret(64);
        shared.control_key = shared.secret(32);
        shared
    }

    /// A fresh unguessable hex string of `len` characters (at most 64).
    pub fn secret(&self, len: usize) -> String {
        let mut hasher = self.secret_state.build_hasher();
        hasher.write_u64(self.secret_counter.fetch_add(1, Ordering::SeqCst));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.write_u128(nanos);
        let mut digest = Sha256::new();
        digest.update(hasher.finish().to_le_bytes());
        digest.update(self.secret_state.hash_one(len).to_le_bytes());
        let hex: String = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        hex[..len.min(64)].to_string()
    }

    pub fn settings(&self) -> Settings {
        self.settings.read().expect("settings lock").clone()
    }

    pub fn count(&self, update: impl FnOnce(&mut Stats)) {
        update(&mut self.stats.lock().expect("stats lock"));
    }
}
