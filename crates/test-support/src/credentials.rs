//! A credential provider for engine tests that keeps the provider contract.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sluice::engine::credentials::{AccessToken, BoxFuture, CredentialError, CredentialProvider};

/// A credential provider that keeps its contract: refreshes are serialised, and a refresh
/// for a token that was already replaced returns the replacement without refreshing again.
pub struct FakeProvider {
    current: tokio::sync::Mutex<String>,
    /// Refreshes actually performed.
    pub refreshes: AtomicUsize,
    /// Whether a refresh must fail with `ReauthorizationRequired`.
    pub dead: bool,
}

impl FakeProvider {
    /// A provider whose current token is `token`.
    pub fn new(token: &str) -> Arc<Self> {
        Arc::new(Self {
            current: tokio::sync::Mutex::new(token.into()),
            refreshes: AtomicUsize::new(0),
            dead: false,
        })
    }

    /// A provider whose refresh token is dead.
    pub fn dead(token: &str) -> Arc<Self> {
        Arc::new(Self {
            current: tokio::sync::Mutex::new(token.into()),
            refreshes: AtomicUsize::new(0),
            dead: true,
        })
    }

    /// Refreshes performed.
    pub fn refresh_count(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }
}

impl CredentialProvider for FakeProvider {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, CredentialError>> {
        Box::pin(async move { Ok(AccessToken::new(self.current.lock().await.clone())) })
    }

    fn refresh(
        &self,
        rejected: &AccessToken,
    ) -> BoxFuture<'_, Result<AccessToken, CredentialError>> {
        let rejected = rejected.expose().to_string();
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if *current != rejected {
                return Ok(AccessToken::new(current.clone()));
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
            Ok(AccessToken::new(current.clone()))
        })
    }
}
