//! The interface between the engine and the runtime's credential store.
//!
//! Threat: a connector that holds a credential can leak it (logs, a hostile version, a request
//! to the wrong host), and a connector that can set the credential's header can send a value
//! of its choosing in the host's name. Rule: credentials never enter the sandbox. The engine's
//! outbound hook asks a [`CredentialProvider`] for the integration's [`Credential`] (a header
//! name and its secret value: `Authorization: Bearer` for OAuth, the connector's named header
//! with its prefix for an API key, `Authorization: Basic` for basic) and adds it itself, only
//! on requests to the policy's credential origins. The guest may never set that header. The
//! runtime implements the provider over its encrypted store: for OAuth it refreshes by age,
//! serialises refreshes per integration, persists rotated refresh tokens before use, and turns
//! `invalid_grant` into `needs-reauthorization`; a credential that cannot be refreshed (an API
//! key, basic) answers a 401 with `needs-reauthorization` at once, so nothing loops.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub use http::header::{AUTHORIZATION, HeaderName};

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

/// What the host adds to a credentialed request: one header and its secret value. Its
/// `Debug` shows the header's name, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    header: HeaderName,
    value: String,
}

impl Credential {
    /// `header: value`, the value already complete (prefix included).
    pub fn new(header: HeaderName, value: impl Into<String>) -> Self {
        Self {
            header,
            value: value.into(),
        }
    }

    /// `Authorization: Bearer <token>`, as OAuth 2.0 sends an access token.
    pub fn bearer(token: &AccessToken) -> Self {
        Self::new(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.expose()),
        )
    }

    /// The header that carries it.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The secret header value, for the request only.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}: <redacted>)", self.header)
    }
}

/// Headers no credential plan may name: they frame or route the request (a key put there
/// would break or redirect it), or the guest could see or set them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
    "cookie",
    "accept-encoding",
    "expect",
    "http2-settings",
];

/// The header a connector's API-key plan names, when a credential may go there: a valid header
/// name that neither frames nor routes the request. The error says why it is refused.
pub fn credential_header(name: &str) -> Result<HeaderName, String> {
    let header = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
    if RESERVED_HEADERS.contains(&header.as_str())
        || wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(&header)
    {
        return Err(format!(
            "header {header} frames or routes the request and cannot carry a credential"
        ));
    }
    Ok(header)
}

/// Why no usable credential could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The credential is dead (`invalid_grant`, a rejected API key) or absent: a person must
    /// connect again.
    #[error("re-authorization required: {0}")]
    ReauthorizationRequired(String),
    /// The token endpoint could not be reached or failed transiently.
    #[error("token endpoint unavailable: {0}")]
    Unavailable(String),
}

/// Supplies the credentials of one integration.
pub trait CredentialProvider: Send + Sync + 'static {
    /// The header the credential goes in; the guest may never set it.
    fn header(&self) -> &HeaderName;

    /// The current credential; an OAuth provider refreshes the token first when it is old.
    fn credential(&self) -> BoxFuture<'_, Result<Credential, CredentialError>>;

    /// `rejected` drew a 401. A refreshable credential is refreshed once and the one to retry
    /// with returned; when another request already replaced `rejected`, that replacement is
    /// returned without a second refresh, so concurrent 401s share one refresh. A credential
    /// that cannot be refreshed marks the integration for re-authorization and answers
    /// [`CredentialError::ReauthorizationRequired`].
    fn refresh(&self, rejected: &Credential) -> BoxFuture<'_, Result<Credential, CredentialError>>;
}
