//! A credential provider for engine tests that keeps the provider contract.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderName};
use sluice::engine::credentials::{
    AccessToken, BoxFuture, Credential, CredentialError, CredentialProvider,
};

/// What the fake provider hands out.
#[derive(Debug, Clone)]
enum Kind {
    /// OAuth: `Authorization: Bearer <token>`, refreshed on a 401.
    Bearer,
    /// A fixed header value (API key, basic) that cannot be refreshed.
    Fixed { header: HeaderName, prefix: String },
}

/// A credential provider that keeps its contract: refreshes are serialised, a refresh for a
/// credential that was already replaced returns the replacement without refreshing again, and
/// a credential that cannot be refreshed answers a 401 with re-authorization required.
pub struct FakeProvider {
    kind: Kind,
    current: tokio::sync::Mutex<String>,
    /// Refreshes actually performed.
    pub refreshes: AtomicUsize,
    /// Rejections of a credential that cannot be refreshed (each marks re-authorization).
    pub rejections: AtomicUsize,
    /// Whether a refresh must fail with `ReauthorizationRequired`.
    pub dead: bool,
}

impl FakeProvider {
    fn with(kind: Kind, secret: &str, dead: bool) -> Arc<Self> {
        Arc::new(Self {
            kind,
            current: tokio::sync::Mutex::new(secret.into()),
            refreshes: AtomicUsize::new(0),
            rejections: AtomicUsize::new(0),
            dead,
        })
    }

    /// An OAuth provider whose current token is `token`.
    pub fn new(token: &str) -> Arc<Self> {
        Self::with(Kind::Bearer, token, false)
    }

    /// An OAuth provider whose refresh token is dead.
    pub fn dead(token: &str) -> Arc<Self> {
        Self::with(Kind::Bearer, token, true)
    }

    /// An API key sent as `header: {prefix}{key}`.
    pub fn api_key(header: &str, prefix: &str, key: &str) -> Arc<Self> {
        let kind = Kind::Fixed {
            header: HeaderName::from_bytes(header.as_bytes()).expect("a header name"),
            prefix: prefix.into(),
        };
        Self::with(kind, key, false)
    }

    /// HTTP basic credentials: `Authorization: Basic base64(user:password)`.
    pub fn basic(user: &str, password: &str) -> Arc<Self> {
        use base64::Engine as _;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let kind = Kind::Fixed {
            header: AUTHORIZATION,
            prefix: "Basic ".into(),
        };
        Self::with(kind, &encoded, false)
    }

    /// Refreshes performed.
    pub fn refresh_count(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// Rejections of a credential that cannot be refreshed.
    pub fn rejection_count(&self) -> usize {
        self.rejections.load(Ordering::SeqCst)
    }

    fn credential_of(&self, secret: &str) -> Credential {
        match &self.kind {
            Kind::Bearer => Credential::bearer(&AccessToken::new(secret)),
            Kind::Fixed { header, prefix } => {
                Credential::new(header.clone(), format!("{prefix}{secret}"))
            }
        }
    }
}

impl CredentialProvider for FakeProvider {
    fn header(&self) -> &HeaderName {
        match &self.kind {
            Kind::Bearer => &AUTHORIZATION,
            Kind::Fixed { header, .. } => header,
        }
    }

    fn credential(&self) -> BoxFuture<'_, Result<Credential, CredentialError>> {
        Box::pin(async move { Ok(self.credential_of(&self.current.lock().await)) })
    }

    fn refresh(&self, rejected: &Credential) -> BoxFuture<'_, Result<Credential, CredentialError>> {
        let rejected = rejected.clone();
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if self.credential_of(&current) != rejected {
                return Ok(self.credential_of(&current));
            }
            if let Kind::Fixed { .. } = self.kind {
                self.rejections.fetch_add(1, Ordering::SeqCst);
                return Err(CredentialError::ReauthorizationRequired(
                    "the provider refused the key".into(),
                ));
            }
            if self.dead {
                return Err(CredentialError::ReauthorizationRequired(
                    "invalid_grant".into(),
                ));
            }
            // Slow enough that concurrent 401s pile up behind the lock.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
            *current = format!("fresh-token-{n}");
            Ok(self.credential_of(&current))
        })
    }
}
