//! The grant a connector sees, made from the provider fields kept with its tokens.
//!
//! The contract's grant carries the instance URL (`instance_url`, where data calls go and,
//! when the provider names one, the only origin that receives the access token; without it the
//! token goes to the connector's allowed hosts), the time
//! the token was issued (`issued_at`, milliseconds as text) and every other non-secret field of
//! the token response by name. The OAuth client already dropped the secret ones.

use crate::engine::wit::types::Grant as WitGrant;
use crate::oauth::ProviderFields;
use crate::store::{EnteredCredentials, TokenSet};

/// The provider field that names the instance (the grant's `instance-url`).
pub const INSTANCE_URL: &str = "instance_url";
/// The provider field that says when the token was issued (the grant's `issued-at-ms`).
pub const ISSUED_AT: &str = "issued_at";

/// The instance URL a token response names, if any (Zendesk's names none).
pub fn instance_url(fields: &ProviderFields) -> Option<&str> {
    fields.get(INSTANCE_URL).map(String::as_str)
}

/// The non-secret grant the connector sees.
pub fn wit_grant(tokens: &TokenSet) -> WitGrant {
    WitGrant {
        // The one the OAuth client checked when the tokens were stored.
        instance_url: tokens.instance_url.clone(),
        ..grant_of(&tokens.provider_fields, &tokens.scopes)
    }
}

/// The grant of credentials a person entered: no instance URL, no token-response fields but
/// the basic user name (`username`, not secret, so a connector can tell accounts apart), and
/// the time they were stored.
pub fn entered_grant(entered: &EnteredCredentials) -> WitGrant {
    WitGrant {
        instance_url: None,
        fields: entered
            .username
            .iter()
            .map(|user| (USERNAME.to_string(), user.clone()))
            .collect(),
        issued_at_ms: u64::try_from(entered.stored_at_ms).ok(),
        scopes: Vec::new(),
    }
}

/// The grant field that carries the user name of basic credentials.
pub const USERNAME: &str = "username";

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
