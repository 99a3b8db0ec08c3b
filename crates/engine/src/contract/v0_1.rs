//! Contract 0.1 seen through the newest contract's types.
//!
//! A 0.1 component takes typed Salesforce-shaped settings (capability, environment, pull-by,
//! domain), returns an OAuth plan from `configure`, needs an instance URL in every grant and has
//! no `describe`, `account` or `discover`. These conversions keep such components running: the
//! typed settings travel as the values of the same names, a grant without an instance URL is
//! refused with a failure a person can act on, and the calls 0.1 lacks are answered from what
//! 0.1 does say (its settings are the contract's own; its account is the organisation in the
//! identity URL, the only account 0.1 grants can name).

use crate::bindings::latest::types as new;
use crate::bindings::v0_1::types as old;

/// The settings a 0.1 contract types, with the values it accepts.
pub(crate) const ENVIRONMENT: &str = "environment";
pub(crate) const PULL_BY: &str = "pull-by";
pub(crate) const DOMAIN: &str = "domain";
/// The provider field 0.1 calls `identity-url` (an OpenID-style identity URL such as
/// Salesforce's `id`, `https://login.example/id/{organisation}/{user}`).
pub(crate) const IDENTITY_FIELD: &str = "id";

/// A field error for `field`.
fn field_error(field: &str, message: String) -> new::FieldError {
    new::FieldError {
        field: field.into(),
        message,
    }
}

/// The typed settings of 0.1; every problem names its field.
pub(crate) fn settings(s: &new::Settings) -> Result<old::Settings, Vec<new::FieldError>> {
    let mut problems = Vec::new();
    let capability = match s.capability.as_str() {
        "helpdesk" => old::Capability::Helpdesk,
        "crm" => old::Capability::Crm,
        "content-management" => old::Capability::ContentManagement,
        other => old::Capability::Other(other.to_string()),
    };
    let value = |name: &str| {
        s.values
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let environment = match value(ENVIRONMENT).as_deref() {
        Some("production") => Some(old::Environment::Production),
        Some("sandbox") => Some(old::Environment::Sandbox),
        Some(other) => {
            problems.push(field_error(
                ENVIRONMENT,
                format!("{other:?} is not an environment: use production or sandbox"),
            ));
            None
        }
        None => {
            problems.push(field_error(
                ENVIRONMENT,
                "required: production or sandbox".into(),
            ));
            None
        }
    };
    let pull_by = match value(PULL_BY).as_deref() {
        None => None,
        Some("created" | "created-time") => Some(old::PullBy::CreatedTime),
        Some("updated" | "updated-time") => Some(old::PullBy::UpdatedTime),
        Some(other) => {
            problems.push(field_error(
                PULL_BY,
                format!("{other:?} is not a pull-by: use created or updated"),
            ));
            None
        }
    };
    let extra = s
        .values
        .iter()
        .filter(|(n, _)| ![ENVIRONMENT, PULL_BY, DOMAIN].contains(&n.as_str()))
        .cloned()
        .collect();
    match environment {
        Some(environment) if problems.is_empty() => Ok(old::Settings {
            capability,
            environment,
            pull_by,
            domain: value(DOMAIN),
            extra,
        }),
        _ => Err(problems),
    }
}

/// The host context, naming the contract the component is called through.
pub(crate) fn host_context(h: &new::HostContext) -> old::HostContext {
    old::HostContext {
        allow_insecure_loopback: h.allow_insecure_loopback,
        contract_version: crate::bindings::v0_1::VERSION.into(),
    }
}

/// A 0.1 grant: its instance URL is required.
pub(crate) fn grant(g: &new::Grant) -> Result<old::Grant, new::Failure> {
    let instance_url = g.instance_url.clone().ok_or_else(|| new::Failure {
        kind: new::FailureKind::Misconfigured,
        message: "the credentials name no instance URL, which a sluice:connector@0.1 connector \
                  needs to know where to send data calls: connect the integration again, or \
                  install a 0.2 version of the connector"
            .into(),
        retry_after_s: None,
    })?;
    Ok(old::Grant {
        instance_url,
        identity_url: grant_field(g, IDENTITY_FIELD),
        issued_at_ms: g.issued_at_ms,
        scopes: g.scopes.clone(),
    })
}

/// The value of the grant field `name`.
fn grant_field(g: &new::Grant, name: &str) -> Option<String> {
    g.fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// A 0.1 session, or the failure that a 0.1 connector cannot run on these settings or grant.
pub(crate) fn session(s: &new::Session) -> Result<old::Session, new::Failure> {
    let settings = settings(&s.settings).map_err(|errors| new::Failure {
        kind: new::FailureKind::Misconfigured,
        message: errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        retry_after_s: None,
    })?;
    Ok(old::Session {
        settings,
        host: host_context(&s.host),
        grant: grant(&s.grant)?,
    })
}

/// The account of a 0.1 grant: the organisation in its identity URL.
pub(crate) fn account(s: &new::Session) -> Result<new::AccountInfo, new::Failure> {
    let unknown = |why: &str| new::Failure {
        kind: new::FailureKind::Misconfigured,
        message: format!("the credentials do not name their organisation: {why}"),
        retry_after_s: None,
    };
    let url = grant_field(&s.grant, IDENTITY_FIELD)
        .ok_or_else(|| unknown("the token response had no identity URL (`id`)"))?;
    let organisation = identity_organisation(&url)
        .ok_or_else(|| unknown("the identity URL is not `…/id/{organisation}/{user}`"))?;
    Ok(new::AccountInfo {
        id: organisation.clone(),
        label: organisation,
    })
}

/// The organisation of a Salesforce identity URL `…/id/{orgId}/{userId}`, as its
/// 15-character id (the 18-character form only adds a checksum suffix).
fn identity_organisation(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let _user = segments.next()?;
    let organisation = segments.next()?;
    let shaped = organisation.starts_with("00D") && matches!(organisation.len(), 15 | 18);
    (segments.next()? == "id" && shaped).then(|| organisation[..15].to_string())
}

/// A request, unchanged but for its type.
pub(crate) fn pull_request(r: &new::PullRequest) -> old::PullRequest {
    old::PullRequest {
        stream: r.stream.clone(),
        checkpoint: r.checkpoint.clone(),
        max_records: r.max_records,
    }
}

/// What a 0.1 `configure` said, in the newest types.
pub(crate) fn configured(c: old::Configured) -> new::Configured {
    new::Configured {
        allowed_hosts: c.allowed_hosts,
        credentials: new::CredentialPlan::Oauth2(oauth_plan(c.oauth)),
        streams: c
            .streams
            .into_iter()
            .map(|s| new::StreamInfo {
                name: s.name,
                key_fields: s.key_fields,
                cursor_field: Some(s.cursor_field),
                emits_deletes: s.emits_deletes,
            })
            .collect(),
        warnings: c
            .warnings
            .into_iter()
            .map(|w| new::FieldWarning {
                field: w.field,
                message: w.message,
            })
            .collect(),
        normalized: c.normalized,
    }
}

fn oauth_plan(p: old::OauthPlan) -> new::OauthPlan {
    new::OauthPlan {
        authorize_url: p.authorize_url,
        token_url: p.token_url,
        revoke_url: p.revoke_url,
        scopes: p.scopes,
        pkce_required: p.pkce_required,
        extra_authorize_params: p.extra_authorize_params,
        client_credentials_supported: p.client_credentials_supported,
    }
}

/// Field errors in the newest types.
pub(crate) fn field_errors(errors: Vec<old::FieldError>) -> Vec<new::FieldError> {
    errors
        .into_iter()
        .map(|e| new::FieldError {
            field: e.field,
            message: e.message,
        })
        .collect()
}

/// A failure in the newest types.
pub(crate) fn failure(f: old::Failure) -> new::Failure {
    new::Failure {
        kind: failure_kind(f.kind),
        message: f.message,
        retry_after_s: f.retry_after_s,
    }
}

fn failure_kind(k: old::FailureKind) -> new::FailureKind {
    match k {
        old::FailureKind::ReauthorizationRequired => new::FailureKind::ReauthorizationRequired,
        old::FailureKind::PermissionDenied => new::FailureKind::PermissionDenied,
        old::FailureKind::Unreachable => new::FailureKind::Unreachable,
        old::FailureKind::Misconfigured => new::FailureKind::Misconfigured,
        old::FailureKind::RateLimited => new::FailureKind::RateLimited,
        old::FailureKind::Unknown => new::FailureKind::Unknown,
    }
}

fn api_usage(u: old::ApiUsage) -> new::ApiUsage {
    new::ApiUsage {
        used: u.used,
        limit: u.limit,
    }
}

/// A test report in the newest types.
pub(crate) fn test_report(r: old::TestReport) -> new::TestReport {
    new::TestReport {
        failure: r.failure.map(failure),
        org: r.org,
        user: r.user,
        api_usage: r.api_usage.map(api_usage),
        probes: r
            .probes
            .into_iter()
            .map(|p| new::Probe {
                name: p.name,
                failure: p.failure.map(failure),
                detail: p.detail,
            })
            .collect(),
    }
}

/// A page in the newest types.
pub(crate) fn page(p: old::Page) -> new::Page {
    new::Page {
        rows: p
            .rows
            .into_iter()
            .map(|r| new::Row {
                key: r.key,
                op: match r.op {
                    old::Operation::Upsert => new::Operation::Upsert,
                    old::Operation::Delete => new::Operation::Delete,
                    old::Operation::Merge => new::Operation::Merge,
                },
                cursor: r.cursor,
                json: r.json,
            })
            .collect(),
        checkpoint: p.checkpoint,
        status: match p.status {
            old::StreamStatus::Partial => new::StreamStatus::Partial,
            old::StreamStatus::Complete => new::StreamStatus::Complete,
            old::StreamStatus::Skipped(why) => new::StreamStatus::Skipped(why),
        },
        api_usage: p.api_usage.map(api_usage),
        api_calls: p.api_calls,
    }
}

/// What 0.1 itself says a connector takes: its typed settings, and OAuth 2.0.
pub(crate) fn describe(name: &str) -> new::ConnectorInfo {
    use new::{CapabilityInfo, ChoiceOption, RequiredFor, Setting, SettingKind};
    let choice = |options: &[(&str, &str)]| {
        SettingKind::Choice(
            options
                .iter()
                .map(|(value, label)| ChoiceOption {
                    value: (*value).into(),
                    label: (*label).into(),
                })
                .collect(),
        )
    };
    let setting = |name: &str, label: &str, help: &str, kind, required, order| Setting {
        name: name.into(),
        label: label.into(),
        help: help.into(),
        kind,
        required,
        default: None,
        group: "authentication".into(),
        order,
    };
    new::ConnectorInfo {
        name: name.into(),
        title: name.into(),
        version: String::new(),
        description: "A sluice:connector@0.1 component: it declares no settings of its own; these \
                      are the settings contract 0.1 types, and any others are its own."
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
        settings: vec![
            setting(
                ENVIRONMENT,
                "Environment",
                "Production or sandbox.",
                choice(&[("production", "Production"), ("sandbox", "Sandbox")]),
                RequiredFor::All,
                1,
            ),
            setting(
                PULL_BY,
                "Pull Record By",
                "Which timestamp incremental pulls follow.",
                choice(&[("created", "Created Time"), ("updated", "Updated Time")]),
                RequiredFor::None,
                2,
            ),
            setting(
                DOMAIN,
                "Domain URL",
                "The account's domain URL.",
                SettingKind::Url,
                RequiredFor::None,
                3,
            ),
        ],
        credential_kinds: vec![
            new::CredentialKind::Oauth2AuthorizationCode,
            new::CredentialKind::Oauth2ClientCredentials,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_organisation_is_the_identity_urls_second_last_segment() {
        let org = |u: &str| identity_organisation(u);
        let short = Some("00Dxx0000001gER".to_string());
        assert_eq!(
            org("https://login.salesforce.com/id/00Dxx0000001gEREAY/005xx000001SwiUAAS"),
            short
        );
        assert_eq!(
            org("https://login.example/id/00Dxx0000001gER/005x?version=1"),
            short
        );
        assert_eq!(org("https://login.example/00Dxx0000001gER/005x"), None);
        assert_eq!(org("https://login.example/id/ORG/USER"), None);
        assert_eq!(org("not a url"), None);
    }

    #[test]
    fn typed_settings_need_an_environment_and_name_each_bad_field() {
        let s = |values: &[(&str, &str)]| new::Settings {
            capability: "helpdesk".into(),
            values: values
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
        };
        let fields = |r: Result<old::Settings, Vec<new::FieldError>>| -> Vec<String> {
            r.unwrap_err().into_iter().map(|e| e.field).collect()
        };
        assert_eq!(fields(settings(&s(&[]))), ["environment"]);
        assert_eq!(
            fields(settings(&s(&[("environment", "prod"), ("pull-by", "x")]))),
            ["environment", "pull-by"]
        );
        let ok = settings(&s(&[
            ("environment", "sandbox"),
            ("pull-by", "updated"),
            ("domain", "https://acme.example"),
            ("objects", "Case"),
        ]))
        .unwrap();
        assert_eq!(ok.environment, old::Environment::Sandbox);
        assert_eq!(ok.pull_by, Some(old::PullBy::UpdatedTime));
        assert_eq!(ok.domain.as_deref(), Some("https://acme.example"));
        assert_eq!(ok.extra, vec![("objects".to_string(), "Case".to_string())]);
    }
}
