//! Credentials a person enters once (an API key, basic), handed to the engine as a header.
//!
//! Threat: a key sent in the wrong header or to the wrong host leaks; a key the provider
//! rejects, if retried or "refreshed", either loops or locks the account. Rule: the header is
//! the connector's plan's (checked by [`credential_header`]; never one that frames or routes
//! the request), the value is built here from the sealed secret, and a 401 to it cannot be
//! cured by the host: the integration is marked `needs-reauthorization` at once, with the
//! reason, and later requests fail without reaching the provider until a person connects
//! again.

use std::sync::Arc;

use base64::Engine as _;
use http::header::{AUTHORIZATION, HeaderName};

use crate::engine::credentials::{
    BoxFuture, Credential, CredentialError, CredentialProvider, credential_header,
};
use crate::engine::wit::types::CredentialPlan;
use crate::store::{EnteredCredentials, EnteredKind, IntegrationState, Store};
use crate::tokens::TokenService;

/// Why entered credentials cannot be used with a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnteredError {
    /// The plan asks for another kind of credentials.
    #[error("the connector asks for {wanted} credentials for this integration, not {given}")]
    OtherKind {
        /// What the plan asks for.
        wanted: &'static str,
        /// What was given.
        given: &'static str,
    },
    /// The plan names a header no credential may go in.
    #[error("the connector's credential plan is unusable: {0}")]
    BadHeader(String),
}

/// What a person calls a plan's kind of credentials.
pub fn plan_kind(plan: &CredentialPlan) -> &'static str {
    match plan {
        CredentialPlan::Oauth2(_) => "OAuth 2.0",
        CredentialPlan::ApiKey(_) => "API key",
        CredentialPlan::Basic(_) => "HTTP basic",
        CredentialPlan::None => "no",
    }
}

/// What a person calls an entered kind.
pub fn entered_kind(kind: EnteredKind) -> &'static str {
    match kind {
        EnteredKind::ApiKey => "API key",
        EnteredKind::Basic => "HTTP basic",
    }
}

/// The header and value `entered` is sent as under `plan`.
pub fn credential_for(
    plan: &CredentialPlan,
    entered: &EnteredCredentials,
) -> Result<Credential, EnteredError> {
    let other = || EnteredError::OtherKind {
        wanted: plan_kind(plan),
        given: entered_kind(entered.kind),
    };
    match (plan, entered.kind) {
        (CredentialPlan::ApiKey(key_plan), EnteredKind::ApiKey) => {
            let header = credential_header(&key_plan.header).map_err(EnteredError::BadHeader)?;
            let value = format!("{}{}", key_plan.prefix, entered.secret.expose());
            Ok(Credential::new(header, value))
        }
        (CredentialPlan::Basic(_), EnteredKind::Basic) => {
            let user = entered.username.as_deref().unwrap_or_default();
            let pair = format!("{user}:{}", entered.secret.expose());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            Ok(Credential::new(AUTHORIZATION, format!("Basic {encoded}")))
        }
        _ => Err(other()),
    }
}

/// One integration's entered credentials as a [`CredentialProvider`].
pub struct EnteredProvider {
    store: Arc<Store>,
    tokens: Arc<TokenService>,
    integration_id: String,
    plan: CredentialPlan,
    header: HeaderName,
}

impl EnteredProvider {
    /// The provider of `integration_id` under `plan`; refused when the plan's header is.
    pub fn new(
        store: Arc<Store>,
        tokens: Arc<TokenService>,
        integration_id: &str,
        plan: CredentialPlan,
    ) -> Result<Arc<Self>, EnteredError> {
        let header = match &plan {
            CredentialPlan::ApiKey(key_plan) => {
                credential_header(&key_plan.header).map_err(EnteredError::BadHeader)?
            }
            _ => AUTHORIZATION,
        };
        Ok(Arc::new(Self {
            store,
            tokens,
            integration_id: integration_id.to_string(),
            plan,
            header,
        }))
    }

    fn current(&self) -> Result<Credential, CredentialError> {
        let unavailable = |e: &dyn std::fmt::Display| CredentialError::Unavailable(e.to_string());
        let integration = self
            .store
            .integration(&self.integration_id)
            .map_err(|e| unavailable(&e))?;
        if integration.state == IntegrationState::NeedsReauthorization {
            return Err(CredentialError::ReauthorizationRequired(
                integration
                    .state_reason
                    .unwrap_or_else(|| "the integration needs re-authorization".into()),
            ));
        }
        let entered = self
            .store
            .entered(&self.integration_id)
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| {
                CredentialError::ReauthorizationRequired(format!(
                    "integration {} holds no {} credentials: run `sluice connect {}`",
                    self.integration_id,
                    plan_kind(&self.plan),
                    self.integration_id
                ))
            })?;
        credential_for(&self.plan, &entered)
            .map_err(|e| CredentialError::ReauthorizationRequired(e.to_string()))
    }
}

impl CredentialProvider for EnteredProvider {
    fn header(&self) -> &HeaderName {
        &self.header
    }

    fn credential(&self) -> BoxFuture<'_, Result<Credential, CredentialError>> {
        Box::pin(async move { self.current() })
    }

    fn refresh(&self, rejected: &Credential) -> BoxFuture<'_, Result<Credential, CredentialError>> {
        let rejected = rejected.clone();
        Box::pin(async move {
            let current = self.current()?;
            if current != rejected {
                // A person entered new credentials meanwhile.
                return Ok(current);
            }
            let reason = format!(
                "the provider refused the {} credentials (HTTP 401); enter valid ones with \
                 `sluice connect {}`",
                plan_kind(&self.plan),
                self.integration_id
            );
            self.tokens.mark_dead(&self.integration_id, &reason)?;
            Err(CredentialError::ReauthorizationRequired(reason))
        })
    }
}
