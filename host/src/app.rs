//! The runtime's operations, shared by the CLI and the admin API: integrations (validated by
//! the connector's `configure`), Test Connection, OAuth connect, and the plumbing every
//! plugin call needs (settings, session, outbound policy, credentials).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::engine::credentials::CredentialError;
use crate::engine::outbound::OutboundPolicy;
use crate::engine::policy::{EgressRules, Origin, PolicyError};
use crate::engine::registry::{
    CanarySession, CanaryTarget, CanaryTargets, HostApproval, PluginRegistry, RegistryError,
};
use crate::engine::wit::types::{
    Capability, Configured, Environment, FieldError, HostContext, OauthPlan, PullBy, Session,
    Settings, TestReport,
};
use crate::engine::{CallContext, EngineError, EngineLimits, LoadedPlugin, PluginEngine};
use crate::oauth::{AuthorizationStart, Callback, OAuth, OAuthError, RevocableToken};
use crate::store::{
    GrantFlow, Integration, IntegrationSettings, IntegrationState, NewIntegration, RunRecord,
    Store, StoreError, TokenSet, now_ms,
};
use crate::tokens::{HostApp, TokenService};

/// The plugin that serves integrations unless told otherwise.
pub const DEFAULT_PLUGIN: &str = "salesforce";
/// How long a started authorization may take before its `state` expires.
pub const AUTHORIZATION_TTL: Duration = Duration::from_secs(15 * 60);
/// The default pull interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// One problem with one input field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldIssue {
    /// The field, e.g. `domain`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl From<FieldError> for FieldIssue {
    fn from(e: FieldError) -> Self {
        Self {
            field: e.field,
            message: e.message,
        }
    }
}

/// Why an operation failed; each variant maps to one exit message and one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is invalid (HTTP 422).
    #[error("invalid input: {}", issues(.0))]
    Invalid(Vec<FieldIssue>),
    /// No such integration or plugin (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The operation does not fit the current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// A pull of this integration is already running (HTTP 409).
    #[error("a pull of integration {0} is already running")]
    AlreadyRunning(String),
    /// A bad or stale OAuth callback (HTTP 400).
    #[error("{0}")]
    BadCallback(String),
    /// OAuth failed; carries the provider's error text.
    #[error("authorization failed: {0}")]
    OAuth(#[from] OAuthError),
    /// Credentials are unusable.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The plugin engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The plugin registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A destination is outside what the operator approved for the connector (HTTP 403).
    #[error(transparent)]
    Egress(#[from] PolicyError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownIntegration(_) => AppError::NotFound(e.to_string()),
            other => AppError::Store(other),
        }
    }
}

fn issues(list: &[FieldIssue]) -> String {
    list.iter()
        .map(|i| format!("{}: {}", i.field, i.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn issue(field: &str, message: impl Into<String>) -> FieldIssue {
    FieldIssue {
        field: field.into(),
        message: message.into(),
    }
}

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
    pub host_app: HostApp,
    /// Engine limits.
    pub limits: EngineLimits,
    /// Bounds of every pull run.
    pub runs: crate::runner::RunLimits,
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
            host_app: HostApp {
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
        }
    }
}

/// Everything the runtime holds.
pub struct App {
    /// Its configuration.
    pub config: AppConfig,
    /// The database.
    pub store: Arc<Store>,
    /// The plugin engine.
    pub engine: Arc<PluginEngine>,
    /// The plugin versions.
    pub registry: Arc<PluginRegistry>,
    /// The token store.
    pub tokens: Arc<TokenService>,
    running: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

/// The integration-side input of `add` and `edit`.
#[derive(Debug, Clone, Default)]
pub struct IntegrationInput {
    /// Display name.
    pub name: Option<String>,
    /// Capability.
    pub capability: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Domain URL.
    pub domain: Option<String>,
    /// `created` or `updated`.
    pub pull_by: Option<String>,
    /// Connector-specific settings.
    pub extra: Vec<(String, String)>,
    /// Pull interval.
    pub interval: Option<Duration>,
    /// Per-integration client id.
    pub client_id: Option<String>,
    /// Per-integration client secret.
    pub client_secret: Option<String>,
}

/// An integration with what the connector says about it.
#[derive(Debug, Clone, Serialize)]
pub struct Validated {
    /// The stored integration.
    pub integration: Integration,
    /// Warnings from `configure`.
    pub warnings: Vec<FieldIssue>,
    /// The settings in normal form.
    pub normalized: Vec<(String, String)>,
    /// The streams it will pull.
    pub streams: Vec<String>,
}

impl App {
    /// Opens the data directory, the database, the engine (with a compile cache in the data
    /// directory) and the plugin registry; installs the embedded connector when its bytes are
    /// not yet a stored version.
    pub async fn open(config: AppConfig) -> Result<Arc<Self>, AppError> {
        let store = Arc::new(Store::open_dir(&config.data_dir)?);
        let engine =
            PluginEngine::with_cache(config.limits.clone(), Some(&config.data_dir.join("cache")))?;
        let oauth = OAuth::new(
            config.allow_insecure_loopback,
            config.extra_origins.clone().into(),
        )?;
        let tokens = TokenService::new(
            store.clone(),
            oauth,
            config.host_app.clone(),
            config.refresh_age,
            Some(config.data_dir.join("locks")),
        );
        let canary = Arc::new(StoreCanary {
            store: store.clone(),
            allow_insecure_loopback: config.allow_insecure_loopback,
            extra_origins: config.extra_origins.clone().into(),
        });
        let registry = PluginRegistry::new(engine.clone(), store.clone(), canary);
        registry.restore().await?;
        let embedded_sha = {
            use sha2::Digest;
            crate::engine::hex(&sha2::Sha256::digest(crate::SALESFORCE_COMPONENT))
        };
        let known = registry
            .list(Some(DEFAULT_PLUGIN))
            .iter()
            .any(|v| v.record.sha256 == embedded_sha);
        if !known {
            // The embedded connector ships with this binary: it is trusted like the binary.
            // Should it not load, an installed version (if any) keeps serving.
            if let Err(e) = registry
                .install_with_approval(
                    DEFAULT_PLUGIN,
                    crate::SALESFORCE_COMPONENT,
                    false,
                    HostApproval::Approved,
                )
                .await
            {
                // Not fatal: `sluice plugin install` must stay usable to repair this.
                tracing::warn!(error = %e, "the embedded connector does not load");
            }
        }
        Ok(Arc::new(Self {
            config,
            store,
            engine,
            registry,
            tokens,
            running: Mutex::new(HashSet::new()),
        }))
    }

    /// The host facts every call gets.
    pub fn host_context(&self) -> HostContext {
        HostContext {
            allow_insecure_loopback: self.config.allow_insecure_loopback,
            contract_version: crate::engine::wit::VERSION.into(),
        }
    }

    /// The egress rules of `plugin`: its approved manifest and the host's settings.
    pub fn rules(&self, plugin: &LoadedPlugin) -> EgressRules {
        self.tokens.oauth().rules(plugin.manifest.clone())
    }

    /// The active version of `plugin`.
    pub fn plugin(&self, plugin: &str) -> Result<Arc<LoadedPlugin>, AppError> {
        self.registry
            .active(plugin)
            .ok_or_else(|| AppError::NotFound(format!("no plugin named {plugin} is installed")))
    }

    /// Calls `configure` for stored settings; field errors become [`AppError::Invalid`].
    pub async fn configure(
        &self,
        integration_id: Option<&str>,
        plugin: &LoadedPlugin,
        settings: &IntegrationSettings,
    ) -> Result<Configured, AppError> {
        let wit = to_wit_settings(settings).map_err(AppError::Invalid)?;
        let ctx = CallContext {
            integration: integration_id.map(String::from),
            policy: Arc::new(OutboundPolicy::deny_all()),
            ..CallContext::default()
        };
        self.engine
            .configure(plugin, &ctx, &wit, &self.host_context())
            .await?
            .map_err(|errors| AppError::Invalid(errors.into_iter().map(Into::into).collect()))
    }

    /// Validates and stores a new integration. Nothing is stored when anything is invalid.
    pub async fn add_integration(&self, input: IntegrationInput) -> Result<Validated, AppError> {
        let mut problems = Vec::new();
        let name = input.name.clone().unwrap_or_default();
        if name.trim().is_empty() {
            problems.push(issue("name", "a name is required"));
        }
        let capability = input.capability.clone().unwrap_or_default();
        if capability.is_empty() {
            problems.push(issue(
                "capability",
                "required: helpdesk, crm or content-management",
            ));
        }
        let environment = input.environment.clone().unwrap_or_default();
        if environment.is_empty() {
            problems.push(issue("environment", "required: production or sandbox"));
        }
        let interval = input.interval.unwrap_or(DEFAULT_INTERVAL);
        problems.extend(check_interval(interval));
        if input.client_secret.is_some() && input.client_id.is_none() {
            problems.push(issue(
                "client-secret",
                "a client secret needs its client id (--client-id)",
            ));
        }
        let settings = IntegrationSettings {
            capability,
            environment,
            pull_by: input.pull_by.clone(),
            domain: input.domain.clone(),
            extra: input.extra.clone(),
        };
        let plugin = self.plugin(DEFAULT_PLUGIN)?;
        let configured = match self.configure(None, &plugin, &settings).await {
            Ok(c) => Some(c),
            Err(AppError::Invalid(more)) => {
                problems.extend(more);
                None
            }
            Err(other) => return Err(other),
        };
        let Some(configured) = configured.filter(|_| problems.is_empty()) else {
            dedup(&mut problems);
            return Err(AppError::Invalid(problems));
        };
        let integration = self.store.insert_integration(&NewIntegration {
            name: name.trim().to_string(),
            plugin: DEFAULT_PLUGIN.into(),
            settings,
            interval_s: interval.as_secs(),
            client_id: input.client_id,
            client_secret: input.client_secret.map(crate::secrets::Secret::new),
        })?;
        tracing::info!(integration = %integration.id, "integration added");
        Ok(validated(integration, configured))
    }

    /// Changes an integration; fields left `None` keep their value. Validated by
    /// `configure` first; nothing changes when anything is invalid. Data, checkpoints and
    /// tokens are kept.
    pub async fn edit_integration(
        &self,
        id: &str,
        input: IntegrationInput,
    ) -> Result<Validated, AppError> {
        let current = self.store.integration(id)?;
        let mut problems = Vec::new();
        let name = input.name.clone().unwrap_or(current.name.clone());
        if name.trim().is_empty() {
            problems.push(issue("name", "a name is required"));
        }
        let interval = input
            .interval
            .unwrap_or(Duration::from_secs(current.interval_s));
        problems.extend(check_interval(interval));
        let mut settings = current.settings.clone();
        if let Some(v) = input.capability {
            settings.capability = v;
        }
        if let Some(v) = input.environment {
            settings.environment = v;
        }
        if let Some(v) = input.pull_by {
            settings.pull_by = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = input.domain {
            settings.domain = (!v.is_empty()).then_some(v);
        }
        for (k, v) in input.extra {
            settings.extra.retain(|(name, _)| *name != k);
            if !v.is_empty() {
                settings.extra.push((k, v));
            }
        }
        let client_id = input.client_id.or(current.client_id.clone());
        if input.client_secret.is_some() && client_id.is_none() {
            problems.push(issue(
                "client-secret",
                "a client secret needs its client id (--client-id)",
            ));
        }
        let plugin = self.plugin(&current.plugin)?;
        let configured = match self.configure(Some(id), &plugin, &settings).await {
            Ok(c) => Some(c),
            Err(AppError::Invalid(more)) => {
                problems.extend(more);
                None
            }
            Err(other) => return Err(other),
        };
        let Some(configured) = configured.filter(|_| problems.is_empty()) else {
            dedup(&mut problems);
            return Err(AppError::Invalid(problems));
        };
        let secret = input.client_secret.map(crate::secrets::Secret::new);
        let integration = self.store.update_integration(
            id,
            name.trim(),
            &settings,
            interval.as_secs(),
            client_id.as_deref(),
            secret.as_ref().map(Some),
        )?;
        tracing::info!(integration = id, "integration edited");
        Ok(validated(integration, configured))
    }

    /// Deletes an integration with its tokens, records, checkpoints and runs, then revokes
    /// its refresh token at the provider (Salesforce keeps only five approvals per user and
    /// app, so an orphaned one would end another integration's). A failed revocation is
    /// logged; the deletion stands.
    pub async fn delete_integration(&self, id: &str) -> Result<(), AppError> {
        let revocation = match self.store.tokens(id)? {
            Some(tokens) => self.revocation(id, &tokens).await,
            None => None,
        };
        self.store.delete_integration(id)?;
        let _ = std::fs::remove_file(
            self.config
                .data_dir
                .join("locks")
                .join(format!("{id}.lock")),
        );
        tracing::info!(integration = id, "integration deleted");
        if let Some(revocation) = revocation {
            revocation.run(self, id).await;
        }
        Ok(())
    }

    /// What revoking `tokens` needs: the plan's revoke URL and the app. `None` (logged) when
    /// the plan has no revoke URL or cannot be had.
    async fn revocation(&self, id: &str, tokens: &TokenSet) -> Option<Revocation> {
        let (plan, rules) = match self.plan(id).await {
            Ok(planned) => planned,
            Err(e) => {
                tracing::warn!(integration = id, error = %e, "cannot revoke the tokens: no OAuth plan");
                return None;
            }
        };
        let Some(url) = plan.revoke_url else {
            tracing::warn!(
                integration = id,
                "the OAuth plan has no revoke URL: the tokens stay valid at the provider"
            );
            return None;
        };
        let app = self
            .tokens
            .app_for(id)
            .map_err(|e| tracing::warn!(integration = id, error = %e, "cannot revoke the tokens"))
            .ok()?;
        let token = match &tokens.refresh {
            Some(refresh) => RevocableToken::Refresh(refresh.clone()),
            None => RevocableToken::Access(tokens.access.clone()),
        };
        Some(Revocation {
            url,
            app,
            token,
            rules,
        })
    }

    /// The integration with what `configure` says about it now.
    pub async fn show_integration(&self, id: &str) -> Result<Validated, AppError> {
        let integration = self.store.integration(id)?;
        let plugin = self.plugin(&integration.plugin)?;
        let configured = self
            .configure(Some(id), &plugin, &integration.settings)
            .await?;
        Ok(validated(integration, configured))
    }

    /// What a call that talks to the provider needs: the plugin, the session and the call
    /// context with the outbound policy and the integration's credentials.
    pub async fn session(
        &self,
        id: &str,
        run: Option<&str>,
    ) -> Result<(Arc<LoadedPlugin>, Session, CallContext, Configured), AppError> {
        let integration = self.store.integration(id)?;
        match integration.state {
            IntegrationState::PendingAuthorization => {
                return Err(AppError::Conflict(format!(
                    "integration {id} is not connected yet: run `sluice connect {id}`"
                )));
            }
            IntegrationState::NeedsReauthorization => {
                return Err(AppError::Conflict(format!(
                    "integration {id} needs re-authorization ({}): run `sluice connect {id}`",
                    integration
                        .state_reason
                        .as_deref()
                        .unwrap_or("no reason recorded")
                )));
            }
            IntegrationState::Active => {}
        }
        let tokens = self.store.tokens(id)?.ok_or_else(|| {
            AppError::Conflict(format!(
                "integration {id} has no tokens: run `sluice connect {id}`"
            ))
        })?;
        let plugin = self.plugin(&integration.plugin)?;
        let configured = self
            .configure(Some(id), &plugin, &integration.settings)
            .await?;
        let settings = to_wit_settings(&integration.settings).map_err(AppError::Invalid)?;
        let session = Session {
            settings,
            host: self.host_context(),
            grant: grant_of(&tokens),
        };
        let ctx = CallContext {
            integration: Some(id.to_string()),
            run: run.map(String::from),
            policy: Arc::new(OutboundPolicy::for_integration(
                self.rules(&plugin),
                &configured.allowed_hosts,
                Some(&tokens.instance_url),
            )?),
            credentials: Some(self.tokens.provider(id)),
            stored_keys: Some(self.store.keys_of(id)),
        };
        Ok((plugin, session, ctx, configured))
    }

    /// Test Connection.
    pub async fn test(&self, id: &str) -> Result<TestReport, AppError> {
        let (plugin, session, ctx, _) = self.session(id, Some("test")).await?;
        let report = self.engine.test(&plugin, &ctx, &session).await?;
        Ok(report)
    }

    /// The OAuth plan of an integration, with the egress rules its endpoints must meet.
    pub async fn plan(&self, id: &str) -> Result<(OauthPlan, EgressRules), AppError> {
        let integration = self.store.integration(id)?;
        let plugin = self.plugin(&integration.plugin)?;
        let plan = self
            .configure(Some(id), &plugin, &integration.settings)
            .await?
            .oauth;
        Ok((plan, self.rules(&plugin)))
    }

    /// The egress rules of the plugin an integration uses now.
    fn rules_of(&self, id: &str) -> Result<EgressRules, AppError> {
        let integration = self.store.integration(id)?;
        let plugin = self.plugin(&integration.plugin)?;
        Ok(self.rules(&plugin))
    }

    /// Starts the authorization-code flow: stores the single-use `state` (tied to the
    /// integration) with its sealed PKCE verifier and returns the authorize URL.
    pub async fn begin_authorization(
        &self,
        id: &str,
        redirect_uri: &str,
    ) -> Result<AuthorizationStart, AppError> {
        let (plan, rules) = self.plan(id).await?;
        let app = self.tokens.app_for(id)?;
        let start = self
            .tokens
            .oauth()
            .start_authorization(&plan, &app, redirect_uri, &rules)?;
        // The plan is bound to the state here: the callback uses this token endpoint and does
        // not ask the connector again.
        self.store.put_oauth_state(
            &start.state,
            id,
            &start.verifier,
            redirect_uri,
            &plan.token_url,
        )?;
        tracing::info!(integration = id, "authorization started");
        Ok(start)
    }

    /// Finishes an authorization from its callback: checks the state (single-use, not
    /// expired), exchanges the code with the PKCE verifier and stores the grant. The
    /// integration's records and checkpoints are kept (re-generate token).
    pub async fn complete_authorization(
        &self,
        callback: Callback,
    ) -> Result<Integration, AppError> {
        let (code, state) = match callback {
            Callback::Code { code, state } => (code, state),
            Callback::Error {
                error,
                description,
                state,
            } => {
                if let Some(state) = state {
                    // Burn the state: the flow is over.
                    let _ = self.store.take_oauth_state(&state, AUTHORIZATION_TTL);
                }
                return Err(OAuthError::Provider { error, description }.into());
            }
            Callback::Malformed(why) => return Err(AppError::BadCallback(why)),
        };
        let pending = self
            .store
            .take_oauth_state(&state, AUTHORIZATION_TTL)?
            .ok_or_else(|| {
                AppError::BadCallback(
                    "unknown, used or expired OAuth state: start again with `sluice connect`"
                        .into(),
                )
            })?;
        let id = pending.integration_id.clone();
        let token_url = pending.token_url.clone().ok_or_else(|| {
            AppError::BadCallback(
                "this authorization was started by an older Sluice: start again with `sluice connect`"
                    .into(),
            )
        })?;
        let rules = self.rules_of(&id)?;
        let app = self.tokens.app_for(&id)?;
        let grant = self
            .tokens
            .oauth()
            .exchange_code(
                &token_url,
                &app,
                &pending.redirect_uri,
                &code,
                &pending.verifier,
                &rules,
            )
            .await?;
        self.replace_grant(&id, GrantFlow::AuthorizationCode, &token_url, grant)
            .await?;
        tracing::info!(integration = %id, "integration authorized");
        Ok(self.store.integration(&id)?)
    }

    /// Stores a new grant in place of the integration's current one: refused when it belongs
    /// to another org than the one first connected (the new grant is then revoked), and the
    /// superseded refresh token is revoked once the new grant is stored.
    async fn replace_grant(
        &self,
        id: &str,
        flow: GrantFlow,
        token_url: &str,
        grant: crate::oauth::Grant,
    ) -> Result<(), AppError> {
        let previous = self.store.tokens(id)?;
        if let Some(previous) = &previous
            && let Some(message) = other_org(id, previous, &grant)
        {
            let unwanted = TokenSet {
                access: grant.access.clone(),
                refresh: grant.refresh.clone(),
                ..previous.clone()
            };
            if let Some(revocation) = self.revocation(id, &unwanted).await {
                revocation.run(self, id).await;
            }
            return Err(AppError::Conflict(message));
        }
        let kept = |old: &crate::secrets::Secret, new: &Option<crate::secrets::Secret>| {
            new.as_ref().is_some_and(|n| n.expose() == old.expose())
        };
        let superseded = previous.filter(|p| match &p.refresh {
            Some(old) => !kept(old, &grant.refresh),
            None => !kept(&p.access, &Some(grant.access.clone())),
        });
        self.store_grant(id, flow, token_url, grant)?;
        if let Some(previous) = superseded
            && let Some(revocation) = self.revocation(id, &previous).await
        {
            revocation.run(self, id).await;
        }
        Ok(())
    }

    /// Connects with the client-credentials grant (server-to-server).
    pub async fn connect_client_credentials(&self, id: &str) -> Result<Integration, AppError> {
        let (plan, rules) = self.plan(id).await?;
        if !plan.client_credentials_supported {
            return Err(AppError::Conflict(
                "this connector's plan does not support the client-credentials grant for these \
                 settings (Salesforce needs the org's My Domain as --domain)"
                    .into(),
            ));
        }
        let app = self.tokens.app_for(id)?;
        let grant = self
            .tokens
            .oauth()
            .client_credentials(&plan.token_url, &app, &rules)
            .await?;
        self.replace_grant(id, GrantFlow::ClientCredentials, &plan.token_url, grant)
            .await?;
        tracing::info!(
            integration = id,
            "integration connected with client credentials"
        );
        Ok(self.store.integration(id)?)
    }

    fn store_grant(
        &self,
        id: &str,
        flow: GrantFlow,
        token_url: &str,
        grant: crate::oauth::Grant,
    ) -> Result<(), AppError> {
        // The OAuth client already held the instance URL, which decides where the token is
        // sent, to the connector's approved rules.
        let instance_url = grant.instance_url.clone().ok_or_else(|| {
            OAuthError::BadResponse("the token response has no instance_url".into())
        })?;
        if flow == GrantFlow::AuthorizationCode && grant.refresh.is_none() {
            tracing::warn!(
                integration = id,
                "no refresh token granted; the integration will need re-authorization when the session ends"
            );
        }
        let tokens = TokenSet {
            flow,
            access: grant.access,
            refresh: grant.refresh,
            token_url: token_url.to_string(),
            instance_url,
            identity_url: grant.identity_url,
            issued_at_ms: grant.issued_at_ms,
            scopes: grant.scopes,
            obtained_at_ms: now_ms(),
            generation: 0,
        };
        self.store.put_grant(id, &tokens)?;
        Ok(())
    }

    /// Claims the right to run a pull of `id`; `None` when one is already running, in this
    /// process or another one sharing the data directory (`sluice pull` next to `serve`).
    /// The cross-process part is an OS file lock, which the OS releases when the holder dies
    /// (SIGKILL included), so a crash never leaves an integration locked.
    pub fn claim_run(self: &Arc<Self>, id: &str) -> Option<RunClaim> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains(id) {
            return None;
        }
        let dir = self.config.data_dir.join("locks");
        let file = crate::private_fs::create_private_dir(&dir)
            .and_then(|_| crate::private_fs::open_private_file(&dir.join(format!("{id}.lock"))))
            .map_err(|e| tracing::warn!(integration = id, error = %e, "cannot open the run lock"))
            .ok()?;
        if file.try_lock().is_err() {
            return None;
        }
        running.insert(id.to_string());
        Some(RunClaim {
            app: self.clone(),
            id: id.to_string(),
            _lock: file,
        })
    }
}

/// A token to revoke and where.
struct Revocation {
    url: String,
    app: crate::oauth::AppCredentials,
    token: RevocableToken,
    /// The approved endpoints: the revoke URL is held to them like the token URL.
    rules: EgressRules,
}

impl Revocation {
    /// Revokes; a failure is logged (the token then lives until it expires or a person
    /// revokes it in the provider's settings).
    async fn run(self, app: &App, id: &str) {
        match app
            .tokens
            .oauth()
            .revoke(&self.url, &self.app, &self.token, &self.rules)
            .await
        {
            Ok(()) => tracing::info!(integration = id, "superseded token revoked"),
            Err(e) => {
                tracing::warn!(integration = id, error = %e, "could not revoke a superseded token")
            }
        }
    }
}

/// The refusal of a grant from another org than the one `previous` belongs to, if it is one.
fn other_org(id: &str, previous: &TokenSet, grant: &crate::oauth::Grant) -> Option<String> {
    let org_of = |url: Option<&str>| url.and_then(crate::oauth::org_of_identity_url);
    let first = org_of(previous.identity_url.as_deref())?;
    let now = org_of(grant.identity_url.as_deref())?;
    (first != now).then(|| {
        format!(
            "this authorization is for Salesforce org {now}, but integration {id} belongs to org \
             {first}: log in to org {first} (or set the integration's domain to that org's My \
             Domain) and authorize again. Nothing was changed, and the new grant was revoked"
        )
    })
}

impl App {
    /// The latest runs of `id`, newest first. A run still marked `running` whose process is
    /// gone (killed before it could record its end: nobody holds the integration's run claim)
    /// is recorded as interrupted first.
    pub fn runs(self: &Arc<Self>, id: &str, limit: usize) -> Result<Vec<RunRecord>, AppError> {
        let runs = self.store.runs(id, limit)?;
        if !runs.iter().any(|r| r.status == "running") {
            return Ok(runs);
        }
        // Holding the claim, no run of `id` can be going on, here or in another process.
        let Some(_claim) = self.claim_run(id) else {
            return Ok(runs);
        };
        self.store.close_orphan_runs(id)?;
        tracing::info!(
            integration = id,
            "runs whose process ended are recorded as interrupted"
        );
        Ok(self.store.runs(id, limit)?)
    }
}

/// Held while a pull of one integration runs; dropping it releases the integration.
pub struct RunClaim {
    app: Arc<App>,
    id: String,
    _lock: std::fs::File,
}

impl RunClaim {
    /// The integration claimed.
    pub fn integration(&self) -> &str {
        &self.id
    }
}

impl Drop for RunClaim {
    fn drop(&mut self) {
        self.app
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

fn dedup(problems: &mut Vec<FieldIssue>) {
    let mut seen = HashSet::new();
    problems.retain(|p| seen.insert((p.field.clone(), p.message.clone())));
}

fn check_interval(interval: Duration) -> Option<FieldIssue> {
    (interval < Duration::from_secs(1) || interval > Duration::from_secs(7 * 24 * 3600))
        .then(|| issue("interval", "must be between 1s and 7d, e.g. 15m"))
}

fn validated(integration: Integration, configured: Configured) -> Validated {
    Validated {
        integration,
        warnings: configured
            .warnings
            .into_iter()
            .map(|w| FieldIssue {
                field: w.field,
                message: w.message,
            })
            .collect(),
        normalized: configured.normalized,
        streams: configured.streams.into_iter().map(|s| s.name).collect(),
    }
}

/// The non-secret grant the connector sees.
pub fn grant_of(tokens: &TokenSet) -> crate::engine::wit::types::Grant {
    crate::engine::wit::types::Grant {
        instance_url: tokens.instance_url.clone(),
        identity_url: tokens.identity_url.clone(),
        issued_at_ms: tokens.issued_at_ms.map(|ms| ms.max(0) as u64),
        scopes: tokens.scopes.clone(),
    }
}

/// Stored settings as the connector's `settings`. Values the WIT types cannot carry are
/// field errors here; everything else is the connector's to judge.
pub fn to_wit_settings(s: &IntegrationSettings) -> Result<Settings, Vec<FieldIssue>> {
    let mut problems = Vec::new();
    let capability = match s.capability.as_str() {
        "helpdesk" => Capability::Helpdesk,
        "crm" => Capability::Crm,
        "content-management" => Capability::ContentManagement,
        other => Capability::Other(other.to_string()),
    };
    let environment = match s.environment.as_str() {
        "production" => Some(Environment::Production),
        "sandbox" => Some(Environment::Sandbox),
        other => {
            problems.push(issue(
                "environment",
                format!("{other:?} is not an environment: use production or sandbox"),
            ));
            None
        }
    };
    let pull_by = match s.pull_by.as_deref() {
        None => None,
        Some("created" | "created-time") => Some(PullBy::CreatedTime),
        Some("updated" | "updated-time") => Some(PullBy::UpdatedTime),
        Some(other) => {
            problems.push(issue(
                "pull-by",
                format!("{other:?} is not a pull-by: use created or updated"),
            ));
            None
        }
    };
    match environment {
        Some(environment) if problems.is_empty() => Ok(Settings {
            capability,
            environment,
            pull_by,
            domain: s.domain.clone(),
            extra: s.extra.clone(),
        }),
        _ => Err(problems),
    }
}

/// [`CanaryTargets`] over the integrations table: every integration of a plugin, with its
/// non-secret grant when it has tokens and is active (never its credentials).
struct StoreCanary {
    store: Arc<Store>,
    allow_insecure_loopback: bool,
    extra_origins: Arc<[Origin]>,
}

impl CanaryTargets for StoreCanary {
    fn targets(&self, name: &str) -> crate::engine::credentials::BoxFuture<'_, Vec<CanaryTarget>> {
        let name = name.to_string();
        Box::pin(async move {
            let Ok(integrations) = self.store.integrations() else {
                return Vec::new();
            };
            let host = HostContext {
                allow_insecure_loopback: self.allow_insecure_loopback,
                contract_version: crate::engine::wit::VERSION.into(),
            };
            integrations
                .into_iter()
                .filter(|i| i.plugin == name)
                .filter_map(|i| {
                    let settings = to_wit_settings(&i.settings).ok()?;
                    let session = match (i.state, self.store.tokens(&i.id)) {
                        (IntegrationState::Active, Ok(Some(tokens))) => Some(CanarySession {
                            grant: grant_of(&tokens),
                            extra_origins: self.extra_origins.clone(),
                        }),
                        _ => None,
                    };
                    Some(CanaryTarget {
                        integration: i.id,
                        settings,
                        host: host.clone(),
                        session,
                    })
                })
                .collect()
        })
    }
}
