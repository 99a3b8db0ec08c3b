//! The token store: access tokens for the engine, refreshed safely.
//!
//! Salesforce gives no `expires_in`, so a token is refreshed proactively once it is older than
//! the configured age (default: three quarters of a 2-hour session), and reactively when the
//! engine reports a 401. Rules:
//! - Refreshes of one integration are serialised (a tokio mutex per integration, an OS file
//!   lock among processes sharing the data directory, and the store's refresh lock among
//!   hosts sharing a PostgreSQL database); a caller that waited finds the replacement another
//!   caller got and does not refresh again. With refresh-token rotation two concurrent
//!   refreshes would burn each other's token.
//! - The refresh result is stored (rotated refresh token and new access token in one
//!   statement) before the access token is returned to anyone: a crash right after the
//!   provider rotated cannot leave the database with a dead refresh token.
//! - A final refusal (`invalid_grant`, `inactive_user`, `inactive_org`, a bad client) marks
//!   the integration `needs-reauthorization` with the provider's text; later calls fail at
//!   once without another token request (no retry loop).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::credentials::{
    AccessToken, BoxFuture, Credential, CredentialError, CredentialProvider,
};
use crate::engine::policy::EgressRules;
use crate::locks::{LockDir, LockKind};
use crate::oauth::{OAuth, OAuthClient, OAuthError};
use crate::secrets::Secret;
use crate::store::{
    GrantFlow, IntegrationState, RefreshStored, Store, StoreError, TokenHealthState, TokenSet,
    now_ms,
};
use http::header::{AUTHORIZATION, HeaderName};

/// Default proactive refresh age: three quarters of Salesforce's default 2-hour session.
pub const DEFAULT_REFRESH_AGE: Duration = Duration::from_secs(90 * 60);

/// The host-wide OAuth client (a Salesforce connected app), used by integrations without
/// their own client id.
#[derive(Debug, Clone, Default)]
pub struct HostClient {
    /// `SLUICE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `SLUICE_CLIENT_SECRET`.
    pub client_secret: Option<Secret>,
}

/// Access tokens for every integration, over the encrypted store.
pub struct TokenService {
    store: Arc<Store>,
    oauth: OAuth,
    host_client: HostClient,
    refresh_age: Duration,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    lock_dir: Option<LockDir>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("refresh_age", &self.refresh_age)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> CredentialError {
    CredentialError::Unavailable(e.to_string())
}

impl TokenService {
    /// A token service refreshing tokens older than `refresh_age`.
    /// `lock_dir` (the data directory's) extends the per-integration serialisation
    /// to every process sharing the data directory (`sluice pull` beside `sluice serve`).
    pub fn new(
        store: Arc<Store>,
        oauth: OAuth,
        host_client: HostClient,
        refresh_age: Duration,
        lock_dir: Option<LockDir>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            oauth,
            host_client,
            refresh_age,
            locks: Mutex::new(HashMap::new()),
            lock_dir,
        })
    }

    /// An OS file lock on the integration's token, held across processes; the OS releases it
    /// if the holder dies. `None` (no cross-process exclusion) when it cannot be had.
    async fn os_lock(&self, integration_id: &str) -> Option<std::fs::File> {
        let dir = self.lock_dir.clone()?;
        let id = integration_id.to_string();
        let locked = tokio::task::spawn_blocking(move || {
            let file = dir.open(&id, LockKind::Token)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .ok()?;
        locked
            .map_err(|e| tracing::warn!(integration = integration_id, error = %e, "cannot take the token lock"))
            .ok()
    }

    /// The OAuth client.
    pub fn oauth(&self) -> &OAuth {
        &self.oauth
    }

    /// The connected app an integration uses: its own client id (and secret), else the host's.
    pub fn client_for(&self, integration_id: &str) -> Result<OAuthClient, OAuthError> {
        let integration = self
            .store
            .integration(integration_id)
            .map_err(|e| OAuthError::BadResponse(e.to_string()))?;
        if let Some(client_id) = integration.client_id {
            let client_secret = self
                .store
                .client_secret(integration_id)
                .map_err(|e| OAuthError::BadResponse(e.to_string()))?;
            return Ok(OAuthClient {
                client_id,
                client_secret,
            });
        }
        match &self.host_client.client_id {
            Some(client_id) => Ok(OAuthClient {
                client_id: client_id.clone(),
                client_secret: self.host_client.client_secret.clone(),
            }),
            None => Err(OAuthError::NoClient),
        }
    }

    /// The engine-facing provider of one integration.
    pub fn provider(self: &Arc<Self>, integration_id: &str) -> Arc<dyn CredentialProvider> {
        Arc::new(IntegrationCredentials {
            service: self.clone(),
            integration_id: integration_id.to_string(),
        })
    }

    /// Drops what the service keeps for a deleted integration.
    pub fn forget(&self, integration_id: &str) {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(integration_id);
    }

    fn lock_for(&self, integration_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(integration_id.to_string())
            .or_default()
            .clone()
    }

    fn load(&self, integration_id: &str) -> Result<TokenSet, CredentialError> {
        let integration = self
            .store
            .integration(integration_id)
            .map_err(|e| match e {
                StoreError::UnknownIntegration(_) => {
                    CredentialError::ReauthorizationRequired(e.to_string())
                }
                other => unavailable(other),
            })?;
        if integration.state == IntegrationState::NeedsReauthorization {
            return Err(CredentialError::ReauthorizationRequired(
                integration
                    .state_reason
                    .unwrap_or_else(|| "the integration needs re-authorization".into()),
            ));
        }
        self.store
            .tokens(integration_id)
            .map_err(unavailable)?
            .ok_or_else(|| {
                CredentialError::ReauthorizationRequired(format!(
                    "integration {integration_id} is not connected yet: run `sluice connect {integration_id}`"
                ))
            })
    }

    fn is_old(&self, tokens: &TokenSet) -> bool {
        now_ms().saturating_sub(tokens.obtained_at_ms)
            >= i64::try_from(self.refresh_age.as_millis()).unwrap_or(i64::MAX)
    }

    /// The current access token, refreshed first when it is older than the refresh age.
    pub async fn access_token(&self, integration_id: &str) -> Result<AccessToken, CredentialError> {
        let tokens = self.load(integration_id)?;
        if !self.is_old(&tokens) {
            return Ok(AccessToken::new(tokens.access.expose()));
        }
        self.refresh_serialised(integration_id, None).await
    }

    /// Refreshes unless another caller already replaced `rejected` (or, when `rejected` is
    /// `None`, unless the token is no longer old). Serialised per integration.
    pub async fn refresh_serialised(
        &self,
        integration_id: &str,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, CredentialError> {
        let lock = self.lock_for(integration_id);
        let _guard = lock.lock().await;
        let _os_guard = self.os_lock(integration_id).await;
        let _db_guard = self
            .store
            .lock_refresh(integration_id)
            .await
            .map_err(unavailable)?;
        let tokens = self.load(integration_id)?;
        let replaced = match rejected {
            Some(rejected) => rejected.expose() != tokens.access.expose(),
            None => !self.is_old(&tokens),
        };
        if replaced {
            return Ok(AccessToken::new(tokens.access.expose()));
        }
        self.refresh_locked(integration_id, &tokens).await
    }

    /// Runs the grant and stores its result; the caller holds the integration's lock.
    async fn refresh_locked(
        &self,
        integration_id: &str,
        tokens: &TokenSet,
    ) -> Result<AccessToken, CredentialError> {
        let app = self
            .client_for(integration_id)
            .map_err(|e| CredentialError::ReauthorizationRequired(e.to_string()))?;
        let rules = self.rules_for(integration_id)?;
        let result = match (tokens.flow, &tokens.refresh) {
            (GrantFlow::ClientCredentials, _) => {
                self.oauth
                    .client_credentials(&tokens.token_url, &app, &rules)
                    .await
            }
            (GrantFlow::AuthorizationCode, Some(refresh)) => {
                self.oauth
                    .refresh(&tokens.token_url, &app, refresh, &rules)
                    .await
            }
            (GrantFlow::AuthorizationCode, None) => {
                let reason =
                    "the grant has no refresh token (was the refresh_token scope granted?)";
                self.mark_dead(integration_id, reason)?;
                return Err(CredentialError::ReauthorizationRequired(reason.into()));
            }
        };
        match result {
            Ok(grant) => {
                // Durable first: the rotated refresh token and the access token land together
                // before anyone can use the new access token.
                let stored = self
                    .store
                    .put_refreshed(
                        integration_id,
                        tokens.generation,
                        &grant.access,
                        grant.refresh.as_ref(),
                        &grant.fields,
                    )
                    .map_err(unavailable)?;
                if let RefreshStored::Superseded(_) = stored {
                    // Another host refreshed, or a person connected again, meanwhile: the
                    // stored tokens are the current ones.
                    tracing::info!(integration = integration_id, "tokens replaced meanwhile");
                    return Ok(AccessToken::new(self.load(integration_id)?.access.expose()));
                }
                tracing::info!(
                    integration = integration_id,
                    rotated = grant.refresh.is_some(),
                    "access token refreshed"
                );
                Ok(AccessToken::new(grant.access.expose()))
            }
            Err(e) if e.is_final() => {
                let reason = format!("token refresh refused: {e}");
                self.mark_dead(integration_id, &reason)?;
                Err(CredentialError::ReauthorizationRequired(reason))
            }
            Err(e) => {
                let _ = self
                    .store
                    .set_token_health(integration_id, TokenHealthState::Unreachable);
                tracing::warn!(integration = integration_id, error = %e, "token refresh failed");
                Err(unavailable(e))
            }
        }
    }

    /// The egress rules of the integration's connector as approved (the active version's
    /// manifest): the token endpoint and every refreshed `instance_url` are held to them.
    fn rules_for(&self, integration_id: &str) -> Result<EgressRules, CredentialError> {
        let connector = self
            .store
            .integration(integration_id)
            .map_err(unavailable)?
            .connector;
        let manifest = self
            .store
            .active_manifest(&connector)
            .map_err(unavailable)?;
        Ok(self.oauth.rules(Arc::new(manifest)))
    }

    /// Marks the integration `needs-reauthorization` with `reason`, and its token dead.
    pub(crate) fn mark_dead(
        &self,
        integration_id: &str,
        reason: &str,
    ) -> Result<(), CredentialError> {
        tracing::warn!(
            integration = integration_id,
            reason,
            "integration needs re-authorization"
        );
        self.store
            .set_state(
                integration_id,
                IntegrationState::NeedsReauthorization,
                Some(reason),
            )
            .map_err(unavailable)?;
        let _ = self
            .store
            .set_token_health(integration_id, TokenHealthState::Dead);
        Ok(())
    }

    /// Health check: proves the refresh token still works by using it (a refresh). Finds a
    /// revoked token before the next pull needs it. Integrations already marked
    /// `needs-reauthorization` are not asked about again.
    pub async fn health_check(&self, integration_id: &str) -> Result<(), CredentialError> {
        let entered = self.store.entered(integration_id).map_err(unavailable)?;
        if entered.is_some() {
            // An API key or basic credentials: nothing to refresh; a 401 tells.
            return Ok(());
        }
        let lock = self.lock_for(integration_id);
        let _guard = lock.lock().await;
        let _os_guard = self.os_lock(integration_id).await;
        let _db_guard = self
            .store
            .lock_refresh(integration_id)
            .await
            .map_err(unavailable)?;
        let tokens = self.load(integration_id)?;
        self.refresh_locked(integration_id, &tokens)
            .await
            .map(|_| ())
    }
}

/// One integration's [`CredentialProvider`].
pub struct IntegrationCredentials {
    service: Arc<TokenService>,
    integration_id: String,
}

impl CredentialProvider for IntegrationCredentials {
    fn header(&self) -> &HeaderName {
        &AUTHORIZATION
    }

    fn credential(&self) -> BoxFuture<'_, Result<Credential, CredentialError>> {
        Box::pin(async move {
            let token = self.service.access_token(&self.integration_id).await?;
            Ok(Credential::bearer(&token))
        })
    }

    fn refresh(&self, rejected: &Credential) -> BoxFuture<'_, Result<Credential, CredentialError>> {
        let rejected = rejected
            .expose()
            .strip_prefix("Bearer ")
            .map(AccessToken::new);
        Box::pin(async move {
            let token = self
                .service
                .refresh_serialised(&self.integration_id, rejected.as_ref())
                .await?;
            Ok(Credential::bearer(&token))
        })
    }
}
