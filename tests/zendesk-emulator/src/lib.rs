//! A Zendesk Support emulator for Sluice's tests.
//!
//! [`Emulator::start`] binds a loopback port and serves, on one origin standing for
//! `https://{subdomain}.zendesk.com`: tickets, ticket comments and users with cursor
//! pagination, the cursor-based incremental exports of tickets and users (with the
//! one-minute rule), API-token and OAuth 2.0 (authorization code with PKCE, refresh)
//! authentication, the account and incremental-export rate limits, and a control API under
//! `/__emulator/`. Each behaviour and its source is listed in this crate's README; facts the
//! documentation leaves open are [`Settings`].

// Handlers return early with a ready `Response` as the error; boxing it everywhere would
// only add noise on paths that are cold anyway.
#![allow(clippy::result_large_err)]
// A test double: its contract is the HTTP behaviour and the control API documented in
// README.md, with Zendesk's documentation as the source; its Rust items serve Sluice's own
// tests.
#![allow(missing_docs)]

pub mod api;
pub mod auth;
pub mod clock;
pub mod control;
pub mod cursor;
pub mod data;
pub mod export;
pub mod gate;
pub mod oauth;
pub mod ops;
pub mod ratelimit;
pub mod reply;
pub mod seed;
pub mod serve;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Run-time behaviour switches. Every field can also be changed through
/// `POST /__emulator/settings`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Requests per minute for the whole account (the plan limit; 700 is Enterprise).
    pub rate_limit_per_minute: u32,
    /// Requests per minute to the incremental export endpoints (10 without the High
    /// Volume add-on).
    pub incremental_rate_limit_per_minute: u32,
    /// Seconds an export holds back: `start_time` must be at least this far in the past, and
    /// records changed this recently are left for a later request.
    pub export_lag_s: i64,
    /// Default and largest `per_page` of a cursor-based incremental export.
    pub max_export_per_page: u32,
    /// Largest `page[size]` of a cursor-paginated list.
    pub max_page_size: u32,
    /// Page size of a list request that names none (`per_page` or `page[size]`).
    pub default_page_size: u32,
    /// A full cursor page says `has_more: true` even when it holds the last records; the
    /// next page is then empty with `has_more: false`.
    pub has_more_on_full_last_page: bool,
    /// Records offset pagination reaches; a page going past them is refused in favour of
    /// cursors.
    pub max_offset_records: u32,
    /// Access-token lifetime in seconds when the token request names no `expires_in`.
    pub access_token_lifetime_s: i64,
    /// Refresh-token lifetime in seconds when the token request names no
    /// `refresh_token_expires_in`.
    pub refresh_token_lifetime_s: i64,
    /// Authorization-code lifetime in seconds.
    pub auth_code_lifetime_s: i64,
    /// `/oauth/authorizations/new` redirects with a code at once, without the consent page.
    pub auto_approve: bool,
    /// API tokens authenticate. False models an account after API tokens were deactivated
    /// (Zendesk retires them on 30 April 2027): token requests get the 401 of bad credentials.
    pub api_tokens_enabled: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rate_limit_per_minute: 700,
            incremental_rate_limit_per_minute: 10,
            export_lag_s: 60,
            max_export_per_page: 1000,
            max_page_size: 100,
            default_page_size: 100,
            has_more_on_full_last_page: true,
            max_offset_records: 10_000,
            access_token_lifetime_s: 1_800,
            refresh_token_lifetime_s: 2_592_000,
            auth_code_lifetime_s: 120,
            auto_approve: false,
            api_tokens_enabled: true,
        }
    }
}

/// Everything needed to start an emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Tickets to seed (users and comments follow from it; see [`seed`]).
    pub scale: usize,
    pub seed: u64,
    pub settings: Settings,
    /// Serve HTTPS, with a certificate from a CA made at start ([`Emulator::tls_root_pem`]).
    pub tls: bool,
    /// Exact OAuth redirect URLs of the registered client. Empty means any loopback URL.
    pub redirect_urls: Vec<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            scale: 200,
            seed: 42,
            settings: Settings::default(),
            tls: false,
            redirect_urls: Vec::new(),
        }
    }
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    /// Origin, e.g. `http://127.0.0.1:PORT` (`https://…` with TLS): the account's
    /// `https://{subdomain}.zendesk.com`.
    pub url: String,
    pub addr: SocketAddr,
    /// The admin agent the API token and OAuth grants act as.
    pub email: String,
    /// API token of [`Emulator::email`] (Basic `{email}/token:{api_token}`).
    pub api_token: String,
    /// The registered OAuth client.
    pub client_id: String,
    pub client_secret: String,
    /// Key for `/__emulator/` (header `Authorization: Bearer` or `X-Emulator-Key`).
    pub control_key: String,
    /// With [`EmulatorConfig::tls`]: PEM of the CA a client must trust.
    pub tls_root_pem: Option<String>,
    /// Shared state, for in-process inspection.
    pub state: Arc<state::Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Seeds the data, binds, starts serving on the current tokio runtime and returns once
    /// the port accepts connections.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let tls = match config.tls {
            true => Some(tls::server(config.listen.ip())?),
            false => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let url = format!("{scheme}://{addr}");
        let shared = Arc::new(state::Shared::new(&config, url.clone()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = api::router(shared.clone());
        let task = tokio::spawn(serve::run(
            listener,
            app,
            tls.as_ref().map(|t| t.acceptor.clone()),
            rx,
        ));
        Ok(Emulator {
            url,
            addr,
            email: shared.admin_email.clone(),
            api_token: shared.api_token.clone(),
            client_id: shared.client.client_id.clone(),
            client_secret: shared.client.client_secret.clone(),
            control_key: shared.control_key.clone(),
            tls_root_pem: tls.map(|t| t.ca_pem),
            state: shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Stops serving (also done on drop).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}
