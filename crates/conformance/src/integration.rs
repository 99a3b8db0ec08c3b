//! The integration a conformance run pulls: settings and the grant's non-secret facts, read
//! from one JSON file:
//!
//! ```json
//! {"capability": "helpdesk",
//!  "values": {"base-url": "https://acme.zendesk.com"},
//!  "grant": {"instance_url": "https://acme.my.salesforce.com", "id": "https://…/id/00D…/005…"}}
//! ```
//!
//! `grant` holds the token response's non-secret fields by name, as the host keeps them
//! (`instance_url`, `issued_at` in milliseconds, `scope`, and the provider's own such as
//! Salesforce's `id`); the access token itself comes from the environment, never from a file
//! or the command line.

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_engine::wit::types::{Grant, Settings};

/// Token-response fields that are secrets and never belong in the grant.
const SECRET_FIELDS: [&str; 3] = ["access_token", "refresh_token", "id_token"];

/// Why the integration file is refused.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// Not the JSON shape documented above.
    #[error(
        "the settings file is not valid: {0} (expected {{\"capability\", \"values\": {{…}}, \"grant\": {{…}}}})"
    )]
    Shape(#[from] serde_json::Error),
    /// A secret in the grant.
    #[error(
        "the settings file's grant holds {0}, a secret; give the access token through the environment (--token-env) and leave secrets out of files"
    )]
    SecretInGrant(String),
}

/// The settings and grant of the integration under test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// The capability the integration provides.
    pub capability: String,
    /// The connector's settings by name.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// The grant's non-secret token-response fields by name.
    #[serde(default)]
    pub grant: BTreeMap<String, String>,
}

impl Integration {
    /// Parses the file's JSON.
    pub fn from_json(text: &str) -> Result<Self, IntegrationError> {
        let integration: Integration = serde_json::from_str(text)?;
        if let Some(secret) = SECRET_FIELDS
            .iter()
            .find(|name| integration.grant.contains_key(**name))
        {
            return Err(IntegrationError::SecretInGrant(secret.to_string()));
        }
        Ok(integration)
    }

    /// The settings as the contract carries them.
    pub fn settings(&self) -> Settings {
        Settings {
            capability: self.capability.clone(),
            values: self
                .values
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        }
    }

    /// The grant as the contract carries it.
    pub fn grant(&self) -> Grant {
        Grant {
            instance_url: self.grant.get("instance_url").cloned(),
            fields: self
                .grant
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            issued_at_ms: self.grant.get("issued_at").and_then(|t| t.parse().ok()),
            scopes: self
                .grant
                .get("scope")
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        }
    }

    /// The grant's instance URL, the one origin that receives the access token.
    pub fn instance_url(&self) -> Option<&str> {
        self.grant.get("instance_url").map(String::as_str)
    }
}
