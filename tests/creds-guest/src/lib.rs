//! A contract-0.2 test connector for the host's credential tests. Its settings choose:
//!
//! | setting | meaning |
//! |---|---|
//! | `kind` | the credential plan: `api-key`, `basic`, `oauth` (client credentials at `token-url`, no instance URL) or `none` |
//! | `url` | the one URL `test` and `pull` GET; its host is the only allowed host |
//! | `header`, `prefix` | the API-key plan's header (default `X-Api-Key`) and prefix |
//! | `token-url` | the OAuth plan's token endpoint |
//! | `revoke-url` | the OAuth plan's revocation endpoint (none when not given) |
//! | `discover-bytes` | `discover` answers one stream whose JSON Schema holds this many bytes |
//!
//! Built with `SLUICE_CREDS_GUEST_DESCRIBE_BYTES=N` in the environment, `describe` answers a
//! description of `N` bytes (the host's describe cap is tested with it).
//!
//! `test` GETs `url` and fails `reauthorization-required` on a 401; `pull` GETs `url` and
//! returns one row with the status and body; `account` is the basic user name the grant
//! carries (`username`), else `single`.

use sluice_connector_sdk::{
    AccountInfo, ApiKeyPlan, BasicPlan, CapabilityInfo, Configured, Connector, ConnectorInfo,
    CredentialKind, CredentialPlan, Failure, FailureKind, FieldError, Host, HostContext, OAuthPlan,
    Operation, Page, PullRequest, Request, RequiredFor, Row, Session, Setting, SettingKind,
    Settings, StreamInfo, StreamSchema, StreamStatus, TestReport,
};

/// The test connector.
pub struct CredsGuest;

sluice_connector_sdk::export_connector!(CredsGuest);

fn value<'a>(settings: &'a Settings, name: &str) -> Option<&'a str> {
    settings
        .values
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The host of an absolute `http(s)://host[:port]/...` URL.
fn host_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((host, _port)) => host,
        None => authority,
    };
    (!host.is_empty()).then_some(host)
}

fn plan(settings: &Settings) -> Result<CredentialPlan, FieldError> {
    let kind = value(settings, "kind").unwrap_or("none");
    Ok(match kind {
        "api-key" => CredentialPlan::ApiKey(ApiKeyPlan {
            header: value(settings, "header").unwrap_or("X-Api-Key").into(),
            prefix: value(settings, "prefix").unwrap_or("").into(),
            label: "API key".into(),
            help: "Any key; the test server checks it.".into(),
        }),
        "basic" => CredentialPlan::Basic(BasicPlan {
            username_label: "User".into(),
            password_label: "Password".into(),
            help: "Any user and password.".into(),
        }),
        "oauth" => {
            let token_url = value(settings, "token-url").unwrap_or_default().to_string();
            CredentialPlan::OAuth2(OAuthPlan {
                authorize_url: token_url.replace("/token", "/authorize"),
                token_url,
                revoke_url: value(settings, "revoke-url").map(String::from),
                scopes: vec!["read".into()],
                pkce_required: true,
                extra_authorize_params: Vec::new(),
                client_credentials_supported: true,
            })
        }
        "none" => CredentialPlan::None,
        other => {
            return Err(FieldError {
                field: "kind".into(),
                message: format!("{other:?} is not api-key, basic, oauth or none"),
            });
        }
    })
}

fn get(host: &mut dyn Host, session: &Session) -> Result<(u16, String), Failure> {
    let url = value(&session.settings, "url").unwrap_or_default();
    let response = host
        .send(Request::get(url))
        .map_err(|e| Failure::new(FailureKind::Unreachable, format!("{e:?}")))?;
    Ok((
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    ))
}

fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if (c as u32) < 0x20 => vec![' '],
            c => vec![c],
        })
        .collect()
}

/// The settings the module's table lists.
fn declared() -> Vec<Setting> {
    let setting = |name: &str, kind: SettingKind, required: RequiredFor, order: u32| Setting {
        name: name.into(),
        label: name.into(),
        help: format!("See the crate's documentation for `{name}`."),
        kind,
        required,
        default: None,
        group: "basic".into(),
        order,
    };
    vec![
        setting("kind", SettingKind::Text, RequiredFor::None, 0),
        setting("url", SettingKind::Url, RequiredFor::All, 1),
        setting("header", SettingKind::Text, RequiredFor::None, 2),
        setting("prefix", SettingKind::Text, RequiredFor::None, 3),
        setting("token-url", SettingKind::Url, RequiredFor::None, 4),
        setting("revoke-url", SettingKind::Url, RequiredFor::None, 5),
        setting("discover-bytes", SettingKind::Integer, RequiredFor::None, 6),
    ]
}

/// The description: one sentence, or as many bytes as the build asked for.
fn description() -> String {
    let sentence = "Sends one GET with whatever credentials its settings ask for.";
    match option_env!("SLUICE_CREDS_GUEST_DESCRIBE_BYTES").and_then(|n| n.parse().ok()) {
        Some(bytes) => sentence.chars().cycle().take(bytes).collect(),
        None => sentence.into(),
    }
}

/// A valid JSON Schema of `bytes` bytes (at least the bytes of its fixed parts), its
/// description padded out.
fn padded_schema(bytes: usize) -> String {
    let head = r#"{"type":"object","description":""#;
    let tail = r#""}"#;
    let pad = bytes.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

impl Connector for CredsGuest {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: "creds-guest".into(),
            title: "Credentials test connector".into(),
            version: "0.1.0".into(),
            description: description(),
            documentation_url: None,
            capabilities: vec![CapabilityInfo {
                name: "crm".into(),
                label: "CRM".into(),
            }],
            settings: declared(),
            credential_kinds: vec![
                CredentialKind::ApiKey,
                CredentialKind::Basic,
                CredentialKind::OAuth2ClientCredentials,
                CredentialKind::None,
            ],
        }
    }

    fn configure(
        settings: &Settings,
        _context: &HostContext,
    ) -> Result<Configured, Vec<FieldError>> {
        let url = value(settings, "url").unwrap_or_default();
        let Some(host) = host_of(url) else {
            return Err(vec![FieldError {
                field: "url".into(),
                message: format!("{url:?} is not an absolute http(s) URL"),
            }]);
        };
        Ok(Configured {
            allowed_hosts: vec![host.to_string()],
            credentials: plan(settings).map_err(|e| vec![e])?,
            streams: vec![StreamInfo {
                name: "fetched".into(),
                key_fields: vec!["id".into()],
                cursor_field: None,
                emits_deletes: false,
            }],
            warnings: Vec::new(),
            normalized: Vec::new(),
        })
    }

    fn test(host: &mut dyn Host, session: &Session) -> TestReport {
        let failure = match get(host, session) {
            Ok((200, _)) => None,
            Ok((401, body)) => Some(Failure::new(
                FailureKind::ReauthorizationRequired,
                format!("401: {body}"),
            )),
            Ok((status, body)) => Some(Failure::new(
                FailureKind::Unknown,
                format!("{status}: {body}"),
            )),
            Err(failure) => Some(failure),
        };
        TestReport {
            failure,
            org: None,
            user: None,
            api_usage: None,
            probes: Vec::new(),
        }
    }

    fn account(_host: &mut dyn Host, session: &Session) -> Result<AccountInfo, Failure> {
        let id = session.grant.field("username").unwrap_or("single");
        Ok(AccountInfo {
            id: id.into(),
            label: id.into(),
        })
    }

    fn discover(_host: &mut dyn Host, session: &Session) -> Result<Vec<StreamSchema>, Failure> {
        let Some(bytes) = value(&session.settings, "discover-bytes") else {
            return Ok(Vec::new());
        };
        let bytes: usize = bytes.parse().unwrap_or_default();
        Ok(vec![StreamSchema {
            name: "fetched".into(),
            json_schema: padded_schema(bytes),
            key_fields: vec!["id".into()],
            cursor_field: None,
        }])
    }

    fn pull(
        host: &mut dyn Host,
        session: &Session,
        _request: &PullRequest,
    ) -> Result<Page, Failure> {
        let (status, body) = get(host, session)?;
        if status == 401 {
            return Err(Failure::new(
                FailureKind::ReauthorizationRequired,
                format!("401: {body}"),
            ));
        }
        let json = format!(
            "{{\"id\":\"1\",\"status\":{status},\"body\":\"{}\"}}",
            escape(&body)
        );
        Ok(Page {
            rows: vec![Row {
                key: "1".into(),
                op: Operation::Upsert,
                cursor: String::new(),
                json: json.into_bytes(),
            }],
            checkpoint: Some("done".into()),
            status: StreamStatus::Complete,
            api_usage: None,
            api_calls: 1,
        })
    }
}
