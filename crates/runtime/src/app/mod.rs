//! The runtime's operations, shared by the CLI and the admin API: integrations (validated by
//! the connector's `configure`), Test Connection, OAuth connect, and the plumbing every
//! connector call needs (settings, session, outbound policy, credentials).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::engine::credentials::CredentialError;
use crate::engine::outbound::OutboundPolicy;
use crate::engine::policy::{EgressRules, Origin, PolicyError};
use crate::engine::registry::{
    CanarySession, CanaryTarget, CanaryTargets, ConnectorRegistry, HostApproval, RegistryError,
};
use crate::engine::wit::types::{
    Configured, ConnectorInfo, CredentialPlan, FieldError, HostContext, OauthPlan, Session,
    Settings, StreamSchema, TestReport,
};
use crate::engine::{CallContext, ConnectorEngine, EngineError, EngineLimits, LoadedConnector};
use crate::oauth::{AuthorizationStart, Callback, OAuth, OAuthError, RevocableToken};
use crate::store::{
    EnteredCredentials, EnteredKind, GrantFlow, Integration, IntegrationSettings, IntegrationState,
    NewIntegration, RunRecord, RunState, Store, StoreError, TokenSet, now_ms,
};
use crate::tokens::{HostClient, TokenService};

mod authorization;
mod canary;
mod error;
mod integrations;
mod run_claim;
mod runs;

pub use crate::grant::wit_grant;
pub use authorization::{EnteredConnection, EnteredSecret, SupersededToken};
use canary::StoreCanary;
use error::issue;
pub use error::{AppError, FieldIssue};
pub use integrations::{IntegrationInput, Validated, to_wit_settings};
pub use run_claim::{DEFAULT_LEASE_TTL, RunClaim};

/// The connector that serves integrations unless told otherwise.
pub const DEFAULT_CONNECTOR: &str = "salesforce";
/// How long a started authorization may take before its `state` expires.
pub const AUTHORIZATION_TTL: Duration = Duration::from_secs(15 * 60);
/// The default pull interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Whether plain http to loopback is allowed (the emulator).
    pub allow_insecure_loopback: bool,
    /// Origins the operator approves for every connector besides their manifests' hosts,
    /// exactly (scheme, host, port): the loopback emulator of tests and demos.
    pub extra_origins: Vec<Origin>,
    /// Proactive refresh age.
    pub refresh_age: Duration,
    /// The host-wide connected app.
    pub host_client: HostClient,
    /// Engine limits, and the outbound client's settings: `limits.outbound.extra_roots` are the
    /// operator's trusted roots, for connectors and the token client alike.
    pub limits: EngineLimits,
    /// Bounds of every pull run.
    pub runs: crate::runner::RunLimits,
    /// The connector the binary ships, installed as [`DEFAULT_CONNECTOR`] when its bytes are not
    /// a stored version yet (trusted like the binary itself); none for a bare runtime.
    pub bundled_connector: Option<&'static [u8]>,
    /// How long delete tombstones stay in the change feed before `serve` prunes them; a feed
    /// cursor older than a pruned tombstone must resync.
    pub tombstone_retention: Duration,
    /// How long settled webhook events (delivered, or given up) stay in the outbox before
    /// `serve` prunes them; an event still being delivered stays until it settles.
    pub webhook_retention: Duration,
    /// A PostgreSQL database shared with other hosts (`postgres://…`, sealed because it may
    /// hold a password); `None` keeps state in the data directory's SQLite file.
    pub database: Option<crate::secrets::Secret>,
    /// On a shared database: how long a run lease outlives its last heartbeat, the time other
    /// hosts wait to take over the integrations of a host that died or stalled.
    pub lease_ttl: Duration,
}

impl AppConfig {
    /// Defaults for `data_dir`, with the host app from `SLUICE_CLIENT_ID` /
    /// `SLUICE_CLIENT_SECRET`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            allow_insecure_loopback: false,
            extra_origins: Vec::new(),
            refresh_age: crate::tokens::DEFAULT_REFRESH_AGE,
            host_client: HostClient {
                client_id: std::env::var("SLUICE_CLIENT_ID")
                    .ok()
                    .filter(|s| !s.is_empty()),
                client_secret: std::env::var("SLUICE_CLIENT_SECRET")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .map(crate::secrets::Secret::new),
            },
            limits: EngineLimits::default(),
            runs: crate::runner::RunLimits::default(),
            bundled_connector: None,
            tombstone_retention: crate::store::DEFAULT_TOMBSTONE_RETENTION,
            webhook_retention: crate::store::DEFAULT_WEBHOOK_RETENTION,
            database: None,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

/// Everything the runtime holds.
pub struct App {
    pub(crate) config: AppConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) engine: Arc<ConnectorEngine>,
    pub(crate) registry: Arc<ConnectorRegistry>,
    pub(crate) tokens: Arc<TokenService>,
    /// One per connector call the engine's instance pool holds: a run's stream takes one for
    /// each page, so the streams of all runs together never ask for more instances.
    pub(crate) call_slots: tokio::sync::Semaphore,
    running: Mutex<HashSet<String>>,
    /// This process's name as a lease owner, unique among the hosts sharing a database.
    pub(crate) host_id: String,
    /// The runs going on in this process, as their progress reports them.
    pub(crate) board: crate::runner::RunBoard,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

/// Installs the connector the binary ships unless its bytes are a stored version already.
async fn install_bundled(registry: &ConnectorRegistry, wasm: &'static [u8]) {
    let sha = {
        use sha2::Digest;
        crate::engine::hex(&sha2::Sha256::digest(wasm))
    };
    let known = registry
        .list(Some(DEFAULT_CONNECTOR))
        .iter()
        .any(|v| v.record.sha256 == sha);
    if known {
        return;
    }
    // It ships with the binary, so it is trusted like the binary. Should it not load, an
    // installed version (if any) keeps serving.
    let installed = registry
        .install_with_approval(DEFAULT_CONNECTOR, wasm, false, HostApproval::Approved)
        .await;
    if let Err(e) = installed {
        // Not fatal: `sluice connector install` must stay usable to repair this.
        tracing::warn!(error = %e, "the bundled connector does not load");
    }
}

impl App {
    /// Its configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// The database.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The connector engine.
    pub fn engine(&self) -> &Arc<ConnectorEngine> {
        &self.engine
    }

    /// The pulls running in this process, as their progress reports them.
    pub fn run_board(&self) -> &crate::runner::RunBoard {
        &self.board
    }

    /// The connector versions.
    pub fn registry(&self) -> &Arc<ConnectorRegistry> {
        &self.registry
    }

    /// The token service.
    pub fn tokens(&self) -> &Arc<TokenService> {
        &self.tokens
    }
}

impl App {
    /// Opens the data directory, the database, the engine (with a compile cache in the data
    /// directory) and the connector registry; installs the embedded connector when its bytes are
    /// not yet a stored version.
    pub async fn open(config: AppConfig) -> Result<Arc<Self>, AppError> {
        let store = Arc::new(match &config.database {
            Some(url) => Store::open_dir_postgres(
                &config.data_dir,
                url.expose(),
                &config.limits.outbound.extra_roots,
            )?,
            None => Store::open_dir(&config.data_dir)?,
        });
        let engine = ConnectorEngine::with_cache(
            config.limits.clone(),
            Some(&crate::data_dir::cache_dir(&config.data_dir)),
        )?;
        let oauth = OAuth::new(
            config.allow_insecure_loopback,
            config.extra_origins.clone().into(),
        )?
        .with_extra_roots(config.limits.outbound.extra_roots.clone());
        let tokens = TokenService::new(
            store.clone(),
            oauth,
            config.host_client.clone(),
            config.refresh_age,
            Some(crate::locks::LockDir::new(&config.data_dir)),
        );
        let canary = Arc::new(StoreCanary {
            store: store.clone(),
            allow_insecure_loopback: config.allow_insecure_loopback,
            extra_origins: config.extra_origins.clone().into(),
        });
        let registry = ConnectorRegistry::new(engine.clone(), store.clone(), canary);
        registry.restore().await?;
        if let Some(wasm) = config.bundled_connector {
            install_bundled(&registry, wasm).await;
        }
        let call_slots = tokio::sync::Semaphore::new(config.limits.max_concurrent_calls as usize);
        Ok(Arc::new(Self {
            call_slots,
            config,
            store,
            engine,
            registry,
            tokens,
            running: Mutex::new(HashSet::new()),
            host_id: run_claim::host_id(),
            board: crate::runner::RunBoard::default(),
        }))
    }

    /// The host facts every call gets.
    pub fn host_context(&self) -> HostContext {
        HostContext {
            allow_insecure_loopback: self.config.allow_insecure_loopback,
            contract_version: crate::engine::wit::VERSION.into(),
        }
    }

    /// The egress rules of `connector`: its approved manifest and the host's settings.
    pub fn rules(&self, connector: &LoadedConnector) -> EgressRules {
        self.tokens.oauth().rules(connector.manifest.clone())
    }

    /// The active version of `connector`.
    pub fn connector(&self, connector: &str) -> Result<Arc<LoadedConnector>, AppError> {
        self.registry.active(connector).ok_or_else(|| {
            AppError::NotFound(format!("no connector named {connector} is installed"))
        })
    }
}
