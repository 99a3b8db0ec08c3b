//! What the connector declares about itself: capabilities, settings and credential kinds.
//!
//! The setup flow's rules are data here: Helpdesk and CRM need an environment, a domain and
//! "Pull Record By"; Content Management needs only the environment and the domain.
//! [`super::validate`] enforces the same rules and names these settings in every error.

use super::{
    DEFAULT_API_VERSION, DEFAULT_BUDGET_PERCENT, DEFAULT_BULK_CHUNK_RECORDS,
    DEFAULT_BULK_THRESHOLD, DEFAULT_LAG_SECONDS, DEFAULT_OVERLAP_SECONDS, MAX_BULK_CHUNK_RECORDS,
};
use sluice_connector_sdk::model::{
    CapabilityInfo, ChoiceOption, ConnectorInfo, CredentialKind, RequiredFor, Setting, SettingKind,
};

/// The setting that says which org login to use.
pub const ENVIRONMENT: &str = "environment";
/// The setting that says which timestamp pulls follow.
pub const PULL_BY: &str = "pull-by";
/// The setting that names the org's domain.
pub const DOMAIN: &str = "domain";

/// The connector as a platform shows it.
pub fn describe() -> ConnectorInfo {
    ConnectorInfo {
        name: "salesforce".into(),
        title: "Salesforce".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Pulls Salesforce records incrementally through the REST and Bulk 2.0 APIs: \
                      cases and their comments, emails and history (Helpdesk); accounts, \
                      contacts, leads, opportunities, users and tasks (CRM); and published \
                      Knowledge articles (Content Management)."
            .into(),
        documentation_url: None,
        capabilities: [
            ("helpdesk", "Helpdesk"),
            ("crm", "CRM"),
            ("content-management", "Content Management"),
        ]
        .into_iter()
        .map(|(name, label)| CapabilityInfo {
            name: name.into(),
            label: label.into(),
        })
        .collect(),
        settings: settings(),
        credential_kinds: vec![
            CredentialKind::OAuth2AuthorizationCode,
            CredentialKind::OAuth2ClientCredentials,
        ],
    }
}

/// A setting in `group` at position `order`.
fn setting(
    (group, order): (&str, u32),
    name: &str,
    label: &str,
    kind: SettingKind,
    required: RequiredFor,
    default: Option<String>,
    help: &str,
) -> Setting {
    Setting {
        name: name.into(),
        label: label.into(),
        help: help.into(),
        kind,
        required,
        default,
        group: group.into(),
        order,
    }
}

fn choice(options: &[(&str, &str)]) -> SettingKind {
    SettingKind::Choice(
        options
            .iter()
            .map(|(value, label)| ChoiceOption {
                value: (*value).into(),
                label: (*label).into(),
            })
            .collect(),
    )
}

fn only(capabilities: &[&str]) -> RequiredFor {
    RequiredFor::Capabilities(capabilities.iter().map(|c| (*c).into()).collect())
}

fn settings() -> Vec<Setting> {
    let auth = |order| ("authentication", order);
    let advanced = |order| ("advanced", order);
    vec![
        setting(
            auth(1),
            ENVIRONMENT,
            "Environment",
            choice(&[("production", "Production"), ("sandbox", "Sandbox")]),
            RequiredFor::All,
            None,
            "Production (or Developer Edition) org, or a sandbox.",
        ),
        setting(
            auth(2),
            PULL_BY,
            "Pull Record By",
            choice(&[("created", "Created Time"), ("updated", "Updated Time")]),
            only(&["helpdesk", "crm"]),
            None,
            "Updated Time pulls new and changed records and deletions; Created Time pulls new \
             records only.",
        ),
        setting(
            auth(3),
            DOMAIN,
            "Salesforce domain URL",
            SettingKind::Url,
            RequiredFor::All,
            None,
            "The org's My Domain URL (Setup → My Domain), e.g. https://acme.my.salesforce.com.",
        ),
        setting(
            advanced(1),
            "objects",
            "Objects",
            SettingKind::Text,
            RequiredFor::None,
            None,
            "A comma-separated subset of the capability's objects, in pull order (Helpdesk: \
             Case, CaseComment, EmailMessage, CaseHistory; CRM: Account, Contact, Lead, \
             Opportunity, User, Task). Default: all of them.",
        ),
        setting(
            advanced(2),
            "start-date",
            "Start date",
            SettingKind::Date,
            RequiredFor::None,
            None,
            "Pull records from this date on (YYYY-MM-DD or an RFC 3339 time). Default: all \
             history.",
        ),
        setting(
            advanced(3),
            "api-budget-percent",
            "API budget (%)",
            SettingKind::Integer,
            RequiredFor::None,
            Some(DEFAULT_BUDGET_PERCENT.to_string()),
            "The share of the org's daily API limit pulls may use, 1 to 100.",
        ),
        setting(
            advanced(4),
            "bulk-threshold",
            "Bulk threshold",
            SettingKind::Integer,
            RequiredFor::None,
            Some(DEFAULT_BULK_THRESHOLD.to_string()),
            "Backfills of more records than this use one Bulk API 2.0 job; 0 turns Bulk off.",
        ),
        setting(
            advanced(5),
            "bulk-chunk-records",
            "Bulk chunk size",
            SettingKind::Integer,
            RequiredFor::None,
            Some(DEFAULT_BULK_CHUNK_RECORDS.to_string()),
            &format!(
                "Records read from a Bulk job per API call and stored as one page, 1 to \
                 {MAX_BULK_CHUNK_RECORDS}."
            ),
        ),
        setting(
            advanced(6),
            "reconcile-every",
            "Reconcile every",
            SettingKind::Duration,
            RequiredFor::None,
            Some("7d".into()),
            "How often the ids of each object are compared with the stored ones to find \
             deletions the recycle bin no longer reports (e.g. 12h, 7d, or off).",
        ),
        setting(
            advanced(7),
            "formula-refresh",
            "Formula refresh",
            SettingKind::Duration,
            RequiredFor::None,
            Some("off".into()),
            "How often formula fields, which change without a timestamp, are read again \
             (e.g. 6h, 1d, or off). Helpdesk and CRM only.",
        ),
        setting(
            advanced(8),
            "lag-seconds",
            "Lag (seconds)",
            SettingKind::Integer,
            RequiredFor::None,
            Some(DEFAULT_LAG_SECONDS.to_string()),
            "How far behind the server's clock each pull stops, so records still being \
             committed are not skipped.",
        ),
        setting(
            advanced(9),
            "overlap-seconds",
            "Overlap (seconds)",
            SettingKind::Integer,
            RequiredFor::None,
            Some(DEFAULT_OVERLAP_SECONDS.to_string()),
            "How much of the previous window each pull reads again.",
        ),
        setting(
            advanced(10),
            "api-version",
            "API version",
            SettingKind::Text,
            RequiredFor::None,
            Some(DEFAULT_API_VERSION.into()),
            "The REST API version, e.g. 62.0.",
        ),
        setting(
            advanced(11),
            "language",
            "Language",
            SettingKind::Text,
            RequiredFor::None,
            None,
            "Content Management only: the article language to pull, e.g. en_US. Default: \
             every language.",
        ),
    ]
}
