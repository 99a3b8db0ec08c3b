//! What the runtime's operations answer when they fail, for every front end to map.

use super::*;

/// One problem with one input field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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
    /// No such integration or connector (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The integration has no usable credentials: a person must connect it (HTTP 409).
    #[error("{0}")]
    NotConnected(String),
    /// A grant belongs to another account than the integration's current one (HTTP 409).
    #[error("{0}")]
    OtherAccount(String),
    /// The connector could not describe the integration's streams (HTTP 502).
    #[error("the connector could not describe the streams: {0}")]
    Discover(String),
    /// The connector does not support what was asked for these settings (HTTP 422).
    #[error("{0}")]
    Unsupported(String),
    /// The host itself failed, not the request (HTTP 500).
    #[error("internal error: {0}")]
    Internal(String),
    /// A pull of this integration is already running (HTTP 409).
    #[error("a pull of integration {0} is already running")]
    AlreadyRunning(String),
    /// The integration's pulls are paused (HTTP 409).
    #[error(
        "integration {0} is paused: resume it first (`sluice integration resume {0}`, or Resume in the console)"
    )]
    Paused(String),
    /// A bad or stale OAuth callback (HTTP 400).
    #[error("{0}")]
    BadCallback(String),
    /// OAuth failed; carries the provider's error text.
    #[error("authorization failed: {0}")]
    OAuth(#[from] OAuthError),
    /// Credentials are unusable.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The connector engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The connector registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A destination is outside what the operator approved for the connector (HTTP 403).
    #[error(transparent)]
    Egress(#[from] PolicyError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// A change-feed cursor is older than the tombstone retention: the consumer must take a
    /// snapshot and follow the feed from it (HTTP 410).
    #[error("{0}")]
    ResyncRequired(String),
    /// A well-formed change-feed cursor this feed never handed out: past its latest change
    /// (HTTP 409).
    #[error("{0}")]
    UnknownCursor(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownIntegration(_) | StoreError::UnknownWebhook(_) => {
                AppError::NotFound(e.to_string())
            }
            StoreError::ResyncRequired { .. } => AppError::ResyncRequired(e.to_string()),
            StoreError::CursorAhead { .. } => AppError::UnknownCursor(e.to_string()),
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

pub(super) fn issue(field: &str, message: impl Into<String>) -> FieldIssue {
    FieldIssue {
        field: field.into(),
        message: message.into(),
    }
}
