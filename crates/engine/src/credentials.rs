//! The interface between the engine and the runtime's token store.
//!
//! Threat: a connector that holds a token can leak it (logs, a hostile version, a request to
//! the wrong host). Rule: tokens never enter the sandbox. The engine's outbound hook asks a
//! [`CredentialProvider`] for the integration's access token and adds `Authorization: Bearer`
//! itself, only on requests to the integration's Salesforce hosts. The runtime implements the
//! provider over its encrypted store: it refreshes by age, serialises refreshes per
//! integration, persists rotated refresh tokens before use, and turns `invalid_grant` into
//! `needs-reauthorization`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A boxed future, as trait objects need.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An OAuth access token. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Why no usable token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The refresh token is dead (`invalid_grant`) or absent: a person must log in again.
    #[error("re-authorization required: {0}")]
    ReauthorizationRequired(String),
    /// The token endpoint could not be reached or failed transiently.
    #[error("token endpoint unavailable: {0}")]
    Unavailable(String),
}

/// Supplies access tokens for one integration.
pub trait CredentialProvider: Send + Sync + 'static {
    /// The current access token; the provider refreshes it first when it is old.
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, CredentialError>>;

    /// `rejected` drew a 401. Refresh once and return the token to retry
    /// with; when another request already replaced `rejected`, return that replacement without
    /// a second refresh, so concurrent 401s share one refresh.
    fn refresh(
        &self,
        rejected: &AccessToken,
    ) -> BoxFuture<'_, Result<AccessToken, CredentialError>>;
}
