//! The grant a connector sees, made from the provider fields kept with its tokens.
//!
//! The contract's grant carries the instance URL (`instance_url`, where data calls go and the
//! only origin that receives the access token besides the connector's allowed hosts), the time
//! the token was issued (`issued_at`, milliseconds as text) and every other non-secret field of
//! the token response by name. The OAuth client already dropped the secret ones.

use crate::engine::wit::types::Grant as WitGrant;
use crate::oauth::{OAuthError, ProviderFields};
use crate::store::TokenSet;

/// The provider field that names the instance (the grant's `instance-url`).
pub const INSTANCE_URL: &str = "instance_url";
/// The provider field that says when the token was issued (the grant's `issued-at-ms`).
pub const ISSUED_AT: &str = "issued_at";

/// The instance URL a token response names; the host needs one to know where to send the token.
pub fn instance_url(fields: &ProviderFields) -> Result<&str, OAuthError> {
    fields.get(INSTANCE_URL).map(String::as_str).ok_or_else(|| {
        OAuthError::BadResponse(format!(
            "the token response has no {INSTANCE_URL}, so the host cannot tell where data calls \
             go"
        ))
    })
}

/// The non-secret grant the connector sees.
pub fn wit_grant(tokens: &TokenSet) -> WitGrant {
    WitGrant {
        // The one the OAuth client checked when the tokens were stored.
        instance_url: Some(tokens.instance_url.clone()),
        ..grant_of(&tokens.provider_fields, &tokens.scopes)
    }
}

/// The non-secret grant of a token response's fields.
pub fn grant_of(fields: &ProviderFields, scopes: &[String]) -> WitGrant {
    WitGrant {
        instance_url: fields.get(INSTANCE_URL).cloned(),
        issued_at_ms: fields.get(ISSUED_AT).and_then(|text| text.parse().ok()),
        fields: fields
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        scopes: scopes.to_vec(),
    }
}
