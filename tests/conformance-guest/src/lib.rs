//! A small contract-0.2 connector for `sluice conformance`'s own tests: it pulls Zendesk's
//! users list (`/api/v2/users`) with the host's bearer token, one stream `users` keyed by `id`.
//!
//! The build-time variable `SLUICE_CONFORMANCE_VARIANT` chooses a build, so that each broken
//! one can show that exactly the check naming its fault fails:
//!
//! | variant | behaviour |
//! |---|---|
//! | `correct` (or unset) | cursor pagination; the checkpoint is the provider's `after_cursor` |
//! | `bad-key` | a row's key is `user-{id}`, which does not match its key field `id` |
//! | `skip-checkpoint` | offset pagination; the checkpoint is a page number that means other records once the page size changes, so a resumed stream skips records |
//! | `wrong-failure-kind` | a refused token (401) is reported as `unknown`, not `reauthorization-required` |
//! | `stray-egress` | every page also sends a request to a host it never declared (the host denies it; the page goes on) |
//! | `skip-moves-checkpoint` | a refused request (403) skips the stream but moves its checkpoint past everything |
//!
//! Settings: `base-url` (the account's `https://{subdomain}.zendesk.com`, or a loopback
//! emulator when the host allows insecure loopback) and `page-size` (1 to 100, default 100).

mod pages;
mod settings;

use sluice_connector_sdk::*;

/// The build variant (see the crate's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Behaves as the contract says.
    Correct,
    /// Keys that do not match the key field.
    BadKey,
    /// Page-number checkpoints that skip records when resumed under another page size.
    SkipCheckpoint,
    /// A 401 reported as `unknown`.
    WrongFailureKind,
    /// A request to an undeclared host on every page.
    StrayEgress,
    /// A stream skipped on a 403 with its checkpoint moved on.
    SkipMovesCheckpoint,
}

/// The variant this build was made as.
pub fn variant() -> Variant {
    match option_env!("SLUICE_CONFORMANCE_VARIANT") {
        Some("bad-key") => Variant::BadKey,
        Some("skip-checkpoint") => Variant::SkipCheckpoint,
        Some("wrong-failure-kind") => Variant::WrongFailureKind,
        Some("stray-egress") => Variant::StrayEgress,
        Some("skip-moves-checkpoint") => Variant::SkipMovesCheckpoint,
        _ => Variant::Correct,
    }
}

/// The one stream.
pub const USERS: &str = "users";

/// The connector.
pub struct UsersConnector;

impl Connector for UsersConnector {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: "conformance-guest".into(),
            title: "Conformance test guest".into(),
            version: "0.1.0".into(),
            description: "Zendesk users, for the conformance checker's tests.".into(),
            documentation_url: None,
            capabilities: vec![CapabilityInfo {
                name: settings::CAPABILITY.into(),
                label: "Helpdesk".into(),
            }],
            settings: settings::declared(),
            credential_kinds: vec![CredentialKind::OAuth2AuthorizationCode],
        }
    }

    fn configure(
        settings: &Settings,
        context: &HostContext,
    ) -> Result<Configured, Vec<FieldError>> {
        let valid = settings::validate(settings, context)?;
        let host = valid.base.host_str().unwrap_or_default().to_string();
        let base = valid.base_text();
        Ok(Configured {
            allowed_hosts: vec![host],
            credentials: CredentialPlan::OAuth2(OAuthPlan {
                authorize_url: format!("{base}/oauth/authorizations/new"),
                token_url: format!("{base}/oauth/tokens"),
                revoke_url: None,
                scopes: vec!["read".into()],
                pkce_required: true,
                extra_authorize_params: Vec::new(),
                client_credentials_supported: false,
            }),
            streams: vec![StreamInfo {
                name: USERS.into(),
                key_fields: vec!["id".into()],
                cursor_field: Some("updated_at".into()),
                emits_deletes: false,
            }],
            warnings: Vec::new(),
            normalized: valid.normalized(),
        })
    }

    fn test(host: &mut dyn Host, session: &Session) -> TestReport {
        let probe = match pages::first_user(host, session) {
            Ok(detail) => Probe {
                name: USERS.into(),
                failure: None,
                detail,
            },
            Err(failure) => Probe {
                name: USERS.into(),
                failure: Some(failure),
                detail: String::new(),
            },
        };
        TestReport {
            failure: probe.failure.clone(),
            probes: vec![probe],
            ..TestReport::default()
        }
    }

    fn account(_: &mut dyn Host, session: &Session) -> Result<AccountInfo, Failure> {
        let base = session
            .settings
            .value(settings::BASE_URL)
            .unwrap_or_default();
        Ok(AccountInfo {
            id: base.to_string(),
            label: base.to_string(),
        })
    }

    fn discover(_: &mut dyn Host, _: &Session) -> Result<Vec<StreamSchema>, Failure> {
        Ok(vec![StreamSchema {
            name: USERS.into(),
            json_schema: r#"{"type":"object","properties":{"id":{"type":"integer"}}}"#.into(),
            key_fields: vec!["id".into()],
            cursor_field: Some("updated_at".into()),
        }])
    }

    fn pull(
        host: &mut dyn Host,
        session: &Session,
        request: &PullRequest,
    ) -> Result<Page, Failure> {
        if request.stream != USERS {
            return Err(Failure::new(
                FailureKind::Misconfigured,
                format!(
                    "no stream named {:?}; this connector has {USERS}",
                    request.stream
                ),
            ));
        }
        match variant() {
            Variant::SkipCheckpoint => pages::by_offset(host, session, request),
            _ => pages::by_cursor(host, session, request),
        }
    }
}

export_connector!(UsersConnector);
