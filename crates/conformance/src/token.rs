//! The credentials a conformance run sends: one access token the caller already holds (from a
//! test account or an emulator), which the engine adds to requests itself.

use sluice_engine::credentials::{
    AUTHORIZATION, AccessToken, BoxFuture, Credential, CredentialError, CredentialProvider,
    HeaderName,
};

/// A fixed access token; it cannot be refreshed.
pub struct FixedToken(AccessToken);

impl FixedToken {
    /// A provider that always answers `token`.
    pub fn new(token: AccessToken) -> Self {
        Self(token)
    }
}

impl CredentialProvider for FixedToken {
    fn header(&self) -> &HeaderName {
        &AUTHORIZATION
    }

    fn credential(&self) -> BoxFuture<'_, Result<Credential, CredentialError>> {
        Box::pin(async move { Ok(Credential::bearer(&self.0)) })
    }

    fn refresh(&self, _: &Credential) -> BoxFuture<'_, Result<Credential, CredentialError>> {
        Box::pin(async {
            Err(CredentialError::ReauthorizationRequired(
                "the conformance run's token was refused and cannot be refreshed; give a fresh one"
                    .into(),
            ))
        })
    }
}
