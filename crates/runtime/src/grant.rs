//! The grant a connector sees, made from the provider fields kept with its tokens.
//!
//! Contract 0.1 passes on three provider fields of the token response, by the names an
//! OpenID-style provider such as Salesforce uses: `instance_url` becomes `instance-url` (where
//! data calls go, and the only origin that receives the access token, so a 0.1 grant without
//! it is refused), `id` becomes `identity-url`, and `issued_at` (milliseconds, as text)
//! becomes `issued-at-ms`. Other provider fields are kept with the tokens; 0.1 has no place
//! for them.

use crate::engine::wit::types::Grant as WitGrant;
use crate::oauth::{OAuthError, ProviderFields};
use crate::store::TokenSet;

/// The provider field that names the instance (contract 0.1's `instance-url`).
pub const INSTANCE_URL: &str = "instance_url";
/// The provider field that names the identity URL (contract 0.1's `identity-url`).
pub const IDENTITY_URL: &str = "id";
/// The provider field that says when the token was issued (contract 0.1's `issued-at-ms`).
pub const ISSUED_AT: &str = "issued_at";

/// The instance URL a token response names; contract 0.1 cannot work without one.
pub fn instance_url(fields: &ProviderFields) -> Result<&str, OAuthError> {
    fields.get(INSTANCE_URL).map(String::as_str).ok_or_else(|| {
        OAuthError::BadResponse(format!(
            "the token response has no {INSTANCE_URL}, which a sluice:connector@0.1 connector \
             needs to know where to send data calls"
        ))
    })
}

/// The non-secret grant the connector sees.
pub fn wit_grant(tokens: &TokenSet) -> WitGrant {
    let field = |name: &str| tokens.provider_fields.get(name).cloned();
    WitGrant {
        instance_url: tokens.instance_url.clone(),
        identity_url: field(IDENTITY_URL),
        issued_at_ms: field(ISSUED_AT).and_then(|text| text.parse().ok()),
        scopes: tokens.scopes.clone(),
    }
}
