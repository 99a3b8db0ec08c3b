//! A Salesforce emulator for Sluice's tests.
//!
//! [`Emulator::start`] binds a loopback port and serves OAuth 2.0, the REST API (query,
//! describe, limits, getUpdated/getDeleted, records), Bulk API 2.0 query jobs and a
//! control API under `/__emulator/`, all on one origin, over http or (with
//! [`EmulatorConfig::tls`]) https, at loopback speed or with the network costs of the
//! [`wan`] profile. The behaviour follows Salesforce's published documentation (each
//! real-org behaviour, with its source, is listed in this crate's README); facts the
//! documentation leaves open are
//! [`Settings`].

// Handlers return early with a ready `Response` as the error; boxing it everywhere would
// only add noise on paths that are cold anyway.
#![allow(clippy::result_large_err)]
// A test double: its contract is the HTTP behaviour and the control API documented in
// README.md, with Salesforce's documentation as the source; its Rust items serve Sluice's
// own tests.
#![allow(missing_docs)]

pub mod access;
pub mod bulk;
pub mod compress;
pub mod control;
pub mod data;
pub mod dt;
pub mod ids;
pub mod jwt;
pub mod oauth;
pub mod rendezvous;
pub mod requests;
pub mod rest;
pub mod schema;
pub mod serve;
pub mod slow_start;
pub mod soql;
pub mod state;
pub mod tls;
pub mod wan;

use std::net::SocketAddr;
use std::sync::Arc;

pub use data::generate::Dataset;
use serde::{Deserialize, Serialize};

/// Run-time behaviour switches. Every field can also be changed through
/// `POST /__emulator/settings`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Each refresh returns a new refresh token and invalidates the one used.
    pub refresh_token_rotation: bool,
    /// Access-token (session) lifetime in seconds, from issue.
    pub session_timeout_s: u64,
    /// `DailyApiRequests` maximum; calls beyond it answer 403 `REQUEST_LIMIT_EXCEEDED`.
    pub api_daily_limit: u64,
    /// Upper bound of a query page (`Sforce-Query-Options: batchSize` is clamped to it).
    pub max_batch_size: u32,
    /// Delay between a write's SystemModstamp and the moment queries see the row.
    pub visibility_lag_ms: u64,
    /// `/authorize` redirects with a code at once, without login or consent pages.
    pub auto_approve: bool,
    /// UNVERIFIED: Knowledge__kav queries must filter on one PublishStatus (or Id).
    pub knowledge_requires_publish_status: bool,
    /// UNVERIFIED: HTTP status for `invalid_client` (wrong client secret): 400 or 401.
    pub invalid_client_status: u16,
    /// UNVERIFIED: `error` code for a PKCE verifier mismatch (`invalid_request` per the
    /// docs; live servers have answered `invalid_grant`).
    pub pkce_mismatch_error: String,
    /// UNVERIFIED: authorization code lifetime in seconds (2 or 15 minutes are reported).
    pub auth_code_lifetime_s: u64,
    /// UNVERIFIED: with rotation on, a refresh also ends the sessions of the old token.
    pub rotation_ends_old_sessions: bool,
    /// UNVERIFIED: HTTP status of `INVALID_QUERY_LOCATOR`.
    pub invalid_locator_status: u16,
    /// Number of status polls a bulk job spends in `UploadComplete`/`InProgress`.
    pub bulk_polls_to_complete: u32,
    /// UNVERIFIED: default `maxRecords` of a Bulk results chunk.
    pub bulk_default_max_records: u64,
    /// UNVERIFIED: most CSV bytes (after the header) of one Bulk results chunk; a chunk ends
    /// early, at a row boundary, rather than exceed it (0: no byte cap). Salesforce says only
    /// that `maxRecords` "is still subject to the size limits".
    pub bulk_max_chunk_bytes: u64,
    /// UNVERIFIED: `DELETE` of a non-terminal bulk job is refused.
    pub bulk_delete_requires_terminal: bool,
    /// UNVERIFIED: suffix of datetimes in Bulk CSV results: `+0000` (as REST) or `Z`.
    pub bulk_datetime_suffix: String,
    /// UNVERIFIED: what joins the Ids of a `junctionidlist` value (Task's `TaskWhoIds`) in
    /// Bulk CSV results. Non-empty, without letters or digits (Ids are made of those).
    pub junction_id_separator: String,
    /// Objects Bulk API 2.0 refuses: creating a query job on one answers 400
    /// `INVALIDENTITY` "Entity 'X' is not supported by the Bulk API." (case-insensitive).
    pub bulk_unsupported_objects: Vec<String>,
    /// `aud` values the JWT bearer grant accepts besides the emulator's own origin.
    pub jwt_audiences: Vec<String>,
    /// The token response's `id` names the login host ([`Emulator::login_url`]), as on real
    /// orgs even with a My Domain; false puts it on the instance (the old emulator).
    pub identity_on_login_host: bool,
    /// The integration user has "View Setup and Configuration"; without it `/limits`
    /// answers 403 `INSUFFICIENT_ACCESS`.
    pub view_setup_permission: bool,
    /// Objects the org does not have (EmailMessage without Email-to-Case or Enhanced Email,
    /// Knowledge when not enabled): absent from describe global, 404 `NOT_FOUND` on
    /// `/sobjects/{name}/…`, `INVALID_TYPE` in SOQL and Bulk.
    pub absent_objects: Vec<String>,
    /// Objects the integration user cannot read: answered exactly like absent ones, as
    /// Salesforce does.
    pub unreadable_objects: Vec<String>,
    /// Approvals (refresh-token families) one user may hold for one connected app; the
    /// next approval revokes the oldest.
    pub approvals_per_app: u32,
    /// With rotation on, redeeming a refresh token that was already rotated revokes every
    /// token of its family (and their sessions).
    pub rotation_reuse_revokes_family: bool,
    /// The org the browser is logged into at the authorize pages (`primary` or `second`).
    pub browser_org: OrgChoice,
    /// The user is deactivated: the token endpoint answers `inactive_user` and sessions end.
    pub inactive_user: bool,
    /// The org is locked, closed or suspended: the token endpoint answers `inactive_org`.
    pub inactive_org: bool,

    // --- Query cursors and data that changes without a trace (sync behaviours) ---
    /// A query locator answers 401 `INVALID_SESSION_ID` once the session that opened it has
    /// ended (expiry, revocation, rotation), whatever token the request carries.
    pub locators_bound_to_session: bool,
    /// UNVERIFIED (documented before API v56): a locator unused this long is dropped
    /// (`INVALID_QUERY_LOCATOR`); 0 keeps locators until their query is read to the end.
    pub locator_idle_timeout_s: u64,
    /// UNVERIFIED (documented before API v56): most open locators per user; opening one more
    /// drops that user's oldest. 0 means no cap.
    pub max_open_locators_per_user: u32,
    /// The integration user has "View Archived Articles": queries on `__kav` return
    /// `PublishStatus = 'Archived'` versions. Without it they return none.
    pub knowledge_archived_visible: bool,
    /// How far back `/deleted` reports deletes (`earliestDateAvailable` = now minus this,
    /// in whole minutes). About 15 days; a log that overflowed was purged sooner.
    pub delete_log_retention_s: u64,
    /// A query selecting more formula (calculated) fields than this answers 400
    /// `QUERY_TOO_COMPLICATED`, as formula-heavy objects do when every field is selected.
    /// UNVERIFIED threshold (Salesforce's limit is on the compiled SQL, not a count); 0 = off.
    pub max_formula_fields_per_query: u32,

    // --- The WAN profile (see the `wan` module) ---
    /// Round-trip time in ms each new connection pays per handshake round trip and each
    /// request/response exchange pays once; 0 = loopback speed.
    pub rtt_ms: u64,
    /// Rate in megabits per second at which each connection's response bytes (on the wire,
    /// after gzip and TLS) leave; 0 = uncapped.
    pub mbps: f64,
    /// With TLS, offer HTTP/2 by ALPN (besides HTTP/1.1), as Salesforce's front end does;
    /// off offers only `http/1.1`. Read when a connection opens.
    pub http2: bool,
    /// With a round trip set, each connection's sending side goes through TCP slow start
    /// (see [`slow_start`]); off, a connection sends at the full rate from its first byte.
    pub slow_start: bool,
}

/// One of the emulator's two orgs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgChoice {
    /// The org with the dataset and the instance at [`Emulator::url`].
    #[default]
    Primary,
    /// A second org with its own id and user and no data: only its login and identity are
    /// served; the primary instance refuses its sessions.
    Second,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            refresh_token_rotation: false,
            session_timeout_s: 7200,
            api_daily_limit: 100_000,
            max_batch_size: 2000,
            visibility_lag_ms: 0,
            auto_approve: false,
            knowledge_requires_publish_status: true,
            invalid_client_status: 400,
            pkce_mismatch_error: "invalid_request".into(),
            auth_code_lifetime_s: 900,
            rotation_ends_old_sessions: false,
            invalid_locator_status: 400,
            bulk_polls_to_complete: 2,
            bulk_default_max_records: 50_000,
            bulk_max_chunk_bytes: 0,
            bulk_delete_requires_terminal: true,
            bulk_datetime_suffix: "+0000".into(),
            junction_id_separator: ";".into(),
            bulk_unsupported_objects: Vec::new(),
            jwt_audiences: vec![
                "https://login.salesforce.com".into(),
                "https://test.salesforce.com".into(),
            ],
            identity_on_login_host: true,
            view_setup_permission: true,
            absent_objects: Vec::new(),
            unreadable_objects: Vec::new(),
            approvals_per_app: 5,
            rotation_reuse_revokes_family: true,
            browser_org: OrgChoice::Primary,
            inactive_user: false,
            inactive_org: false,
            locators_bound_to_session: true,
            locator_idle_timeout_s: 0,
            max_open_locators_per_user: 0,
            knowledge_archived_visible: true,
            delete_log_retention_s: 15 * 86_400,
            max_formula_fields_per_query: 0,
            rtt_ms: 0,
            mbps: 0.0,
            http2: true,
            slow_start: true,
        }
    }
}

/// A connected app: who may ask for tokens, and where codes may be sent.
#[derive(Clone, Debug, Default)]
pub struct ConnectedApp {
    pub client_id: String,
    pub client_secret: String,
    /// Exact callback URLs. Empty means: any loopback URL (`http://127.0.0.1:*/…`,
    /// `http://localhost:*/…`, `http://[::1]:*/…`), like a desktop app's loopback
    /// registration.
    pub callback_urls: Vec<String>,
    /// PEM the JWT bearer grant verifies RS256 assertions with: an X.509 `CERTIFICATE`
    /// (what Salesforce stores), a `PUBLIC KEY` or an `RSA PUBLIC KEY`. `None` refuses
    /// every assertion (`invalid_grant`).
    pub jwt_public_key_pem: Option<String>,
}

/// Everything needed to start an emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    pub dataset: Dataset,
    /// Number of Cases for [`Dataset::Bench`].
    pub scale: usize,
    pub seed: u64,
    /// Shorthand for `settings.auto_approve`.
    pub auto_approve: bool,
    pub settings: Settings,
    /// Client id/secret; `None` generates a secret and uses the default client id.
    pub app: Option<ConnectedApp>,
    pub username: String,
    pub password: String,
    /// Fixed end of the generated time span (epoch ms); default: midnight UTC today.
    pub anchor_ms: Option<i64>,
    /// Serve HTTPS on both origins, with a certificate from a CA made at start
    /// ([`Emulator::tls_root_pem`]).
    pub tls: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            dataset: Dataset::Demo,
            scale: 100_000,
            seed: 42,
            auto_approve: false,
            settings: Settings::default(),
            app: None,
            username: "admin@sluice-emulator.example".into(),
            password: "emulator-password-1".into(),
            anchor_ms: None,
            tls: false,
        }
    }
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    /// Origin, e.g. `http://127.0.0.1:PORT`, or `https://…` with [`EmulatorConfig::tls`]
    /// (also the token response's `instance_url`).
    pub url: String,
    pub addr: SocketAddr,
    /// A second loopback origin standing for `login.salesforce.com`: it serves OAuth and the
    /// identity URLs the token responses name.
    pub login_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
    /// Key for `/__emulator/` (header `Authorization: Bearer` or `X-Emulator-Key`).
    pub control_key: String,
    /// With [`EmulatorConfig::tls`]: PEM of the CA that signed the emulator's certificate,
    /// the root a client must trust to reach [`Emulator::url`] and [`Emulator::login_url`].
    pub tls_root_pem: Option<String>,
    /// Shared state, for in-process inspection.
    pub state: Arc<state::Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Generates the dataset, binds, starts serving on the current tokio runtime and
    /// returns once the port accepts connections.
    pub async fn start(mut config: EmulatorConfig) -> anyhow::Result<Emulator> {
        config.settings.auto_approve |= config.auto_approve;
        let tls = match config.tls {
            true => Some(tls::server(config.listen.ip())?),
            false => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let url = format!("{scheme}://{addr}");
        let login_listener =
            tokio::net::TcpListener::bind(SocketAddr::new(config.listen.ip(), 0)).await?;
        let login_url = format!("{scheme}://{}", login_listener.local_addr()?);
        // Generation of big datasets is CPU work; keep it off the async workers.
        let shared = {
            let (url, login_url) = (url.clone(), login_url.clone());
            tokio::task::spawn_blocking(move || state::Shared::new(config, url, login_url)).await?
        };
        let shared = Arc::new(shared);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve::both(
            listener,
            rest::router(shared.clone()),
            login_listener,
            rest::login_router(shared.clone()),
            serve::Transport {
                state: shared.clone(),
                tls: tls.clone(),
            },
            rx,
        ));
        Ok(Emulator {
            url,
            addr,
            login_url,
            client_id: shared.app.client_id.clone(),
            client_secret: shared.app.client_secret.clone(),
            username: shared.username.clone(),
            password: shared.password.clone(),
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

    /// Waits until the server task ends (it ends only after [`Emulator::shutdown`] or a
    /// fatal error); used by the binary.
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
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
