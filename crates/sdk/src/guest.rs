//! The binding between the `sluice:connector` WIT world and a [`Connector`]: conversions
//! between the generated types and [`crate::model`], and [`WasiHost`], the [`Host`] inside the
//! sandbox. `export_connector!` calls the functions here; they add no behaviour of their own.

use crate::http::{Host, InFlight, Request, Response, StreamedResponse, TransportError};
use crate::model as m;
use crate::wit::sluice::connector::types as w;
use crate::{Connector, wasi_http};

/// `describe` of `C`, over the generated types.
pub fn describe<C: Connector>() -> w::ConnectorInfo {
    C::describe().into()
}

/// `configure` of `C`, over the generated types.
pub fn configure<C: Connector>(
    settings: w::Settings,
    context: w::HostContext,
) -> Result<w::Configured, Vec<w::FieldError>> {
    C::configure(&settings.into(), &context.into())
        .map(Into::into)
        .map_err(field_errors)
}

/// `test` of `C`, over the generated types.
pub fn test<C: Connector>(session: w::Session) -> w::TestReport {
    C::test(&mut WasiHost, &session.into()).into()
}

/// `account` of `C`, over the generated types.
pub fn account<C: Connector>(session: w::Session) -> Result<w::AccountInfo, w::Failure> {
    C::account(&mut WasiHost, &session.into())
        .map(|a| w::AccountInfo {
            id: a.id,
            label: a.label,
        })
        .map_err(Into::into)
}

/// `discover` of `C`, over the generated types.
pub fn discover<C: Connector>(session: w::Session) -> Result<Vec<w::StreamSchema>, w::Failure> {
    C::discover(&mut WasiHost, &session.into())
        .map(|streams| {
            streams
                .into_iter()
                .map(|s| w::StreamSchema {
                    name: s.name,
                    json_schema: s.json_schema,
                    key_fields: s.key_fields,
                    cursor_field: s.cursor_field,
                })
                .collect()
        })
        .map_err(Into::into)
}

/// `pull` of `C`, over the generated types.
pub fn pull<C: Connector>(
    session: w::Session,
    request: w::PullRequest,
) -> Result<w::Page, w::Failure> {
    C::pull(&mut WasiHost, &session.into(), &request.into())
        .map(Into::into)
        .map_err(Into::into)
}

fn field_errors(errors: Vec<m::FieldError>) -> Vec<w::FieldError> {
    errors
        .into_iter()
        .map(|e| w::FieldError {
            field: e.field,
            message: e.message,
        })
        .collect()
}

/// [`Host`] inside the sandbox: `wasi:http` for requests, the host imports for logs and keys.
pub struct WasiHost;

/// Providers compress on request (Salesforce's pages shrink several times); the host inflates
/// within its response cap, so the connector still reads plain bytes.
fn ask_for_gzip(request: &mut Request) {
    if !request
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("accept-encoding"))
    {
        request
            .headers
            .push(("accept-encoding".into(), "gzip".into()));
    }
}

impl Host for WasiHost {
    fn send(&mut self, request: Request) -> Result<Response, TransportError> {
        self.start(request).wait()
    }

    fn start(&mut self, mut request: Request) -> InFlight {
        ask_for_gzip(&mut request);
        let target = request.url.clone();
        match wasi_http::start(request) {
            Ok(sent) => InFlight::pending(move || {
                sent.read()
                    .map_err(|code| wasi_http::transport_error(&target, code))
            }),
            Err(code) => InFlight::ready(Err(wasi_http::transport_error(&target, code))),
        }
    }

    fn send_streamed(&mut self, mut request: Request) -> Result<StreamedResponse, TransportError> {
        ask_for_gzip(&mut request);
        let target = request.url.clone();
        wasi_http::send_streamed(request).map_err(|code| wasi_http::transport_error(&target, code))
    }

    fn log(&mut self, level: m::Level, message: &str, fields: &[(&str, &str)]) {
        use crate::wit::sluice::connector::host::{Level, log};
        let level = match level {
            m::Level::Trace => Level::Trace,
            m::Level::Debug => Level::Debug,
            m::Level::Info => Level::Info,
            m::Level::Warn => Level::Warn,
            m::Level::Error => Level::Error,
        };
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        log(level, message, &fields);
    }

    fn stored_keys(&mut self, after: Option<&str>, limit: u32) -> Vec<String> {
        crate::wit::sluice::connector::host::stored_keys(after, limit)
    }

    fn now_ms(&mut self) -> Option<i64> {
        crate::http::system_now_ms()
    }
}

// ---- conversions: WIT -> model ----

impl From<w::Settings> for m::Settings {
    fn from(s: w::Settings) -> Self {
        m::Settings {
            capability: s.capability,
            values: s.values,
        }
    }
}

impl From<w::HostContext> for m::HostContext {
    fn from(h: w::HostContext) -> Self {
        m::HostContext {
            allow_insecure_loopback: h.allow_insecure_loopback,
            contract_version: h.contract_version,
        }
    }
}

impl From<w::Session> for m::Session {
    fn from(s: w::Session) -> Self {
        m::Session {
            settings: s.settings.into(),
            host: s.host.into(),
            grant: m::Grant {
                instance_url: s.grant.instance_url,
                fields: s.grant.fields,
                issued_at_ms: s.grant.issued_at_ms,
                scopes: s.grant.scopes,
            },
        }
    }
}

impl From<w::PullRequest> for m::PullRequest {
    fn from(r: w::PullRequest) -> Self {
        m::PullRequest {
            stream: r.stream,
            checkpoint: r.checkpoint,
            max_records: r.max_records,
        }
    }
}

// ---- conversions: model -> WIT ----

impl From<m::OAuthPlan> for w::OauthPlan {
    fn from(p: m::OAuthPlan) -> Self {
        w::OauthPlan {
            authorize_url: p.authorize_url,
            token_url: p.token_url,
            revoke_url: p.revoke_url,
            scopes: p.scopes,
            pkce_required: p.pkce_required,
            extra_authorize_params: p.extra_authorize_params,
            client_credentials_supported: p.client_credentials_supported,
        }
    }
}

impl From<m::CredentialPlan> for w::CredentialPlan {
    fn from(p: m::CredentialPlan) -> Self {
        match p {
            m::CredentialPlan::OAuth2(plan) => w::CredentialPlan::Oauth2(plan.into()),
            m::CredentialPlan::ApiKey(k) => w::CredentialPlan::ApiKey(w::ApiKeyPlan {
                header: k.header,
                prefix: k.prefix,
                label: k.label,
                help: k.help,
            }),
            m::CredentialPlan::Basic(b) => w::CredentialPlan::Basic(w::BasicPlan {
                username_label: b.username_label,
                password_label: b.password_label,
                help: b.help,
            }),
            m::CredentialPlan::None => w::CredentialPlan::None,
        }
    }
}

impl From<m::Configured> for w::Configured {
    fn from(c: m::Configured) -> Self {
        w::Configured {
            allowed_hosts: c.allowed_hosts,
            credentials: c.credentials.into(),
            streams: c
                .streams
                .into_iter()
                .map(|s| w::StreamInfo {
                    name: s.name,
                    key_fields: s.key_fields,
                    cursor_field: s.cursor_field,
                    emits_deletes: s.emits_deletes,
                })
                .collect(),
            warnings: c
                .warnings
                .into_iter()
                .map(|w| w::FieldWarning {
                    field: w.field,
                    message: w.message,
                })
                .collect(),
            normalized: c.normalized,
        }
    }
}

impl From<m::ConnectorInfo> for w::ConnectorInfo {
    fn from(i: m::ConnectorInfo) -> Self {
        w::ConnectorInfo {
            name: i.name,
            title: i.title,
            version: i.version,
            description: i.description,
            documentation_url: i.documentation_url,
            capabilities: i
                .capabilities
                .into_iter()
                .map(|c| w::CapabilityInfo {
                    name: c.name,
                    label: c.label,
                })
                .collect(),
            settings: i.settings.into_iter().map(setting).collect(),
            credential_kinds: i
                .credential_kinds
                .into_iter()
                .map(|k| match k {
                    m::CredentialKind::OAuth2AuthorizationCode => {
                        w::CredentialKind::Oauth2AuthorizationCode
                    }
                    m::CredentialKind::OAuth2ClientCredentials => {
                        w::CredentialKind::Oauth2ClientCredentials
                    }
                    m::CredentialKind::ApiKey => w::CredentialKind::ApiKey,
                    m::CredentialKind::Basic => w::CredentialKind::Basic,
                    m::CredentialKind::None => w::CredentialKind::None,
                })
                .collect(),
        }
    }
}

fn setting(s: m::Setting) -> w::Setting {
    w::Setting {
        name: s.name,
        label: s.label,
        help: s.help,
        kind: match s.kind {
            m::SettingKind::Text => w::SettingKind::Text,
            m::SettingKind::Url => w::SettingKind::Url,
            m::SettingKind::Choice(options) => w::SettingKind::Choice(
                options
                    .into_iter()
                    .map(|o| w::ChoiceOption {
                        value: o.value,
                        label: o.label,
                    })
                    .collect(),
            ),
            m::SettingKind::Boolean => w::SettingKind::Boolean,
            m::SettingKind::Integer => w::SettingKind::Integer,
            m::SettingKind::Duration => w::SettingKind::Duration,
            m::SettingKind::Date => w::SettingKind::Date,
            m::SettingKind::Secret => w::SettingKind::Secret,
        },
        required: match s.required {
            m::RequiredFor::None => w::RequiredFor::None,
            m::RequiredFor::All => w::RequiredFor::All,
            m::RequiredFor::Capabilities(names) => w::RequiredFor::Capabilities(names),
        },
        default: s.default,
        group: s.group,
        order: s.order,
    }
}

impl From<m::Failure> for w::Failure {
    fn from(f: m::Failure) -> Self {
        w::Failure {
            kind: match f.kind {
                m::FailureKind::ReauthorizationRequired => w::FailureKind::ReauthorizationRequired,
                m::FailureKind::PermissionDenied => w::FailureKind::PermissionDenied,
                m::FailureKind::Unreachable => w::FailureKind::Unreachable,
                m::FailureKind::Misconfigured => w::FailureKind::Misconfigured,
                m::FailureKind::RateLimited => w::FailureKind::RateLimited,
                m::FailureKind::Unknown => w::FailureKind::Unknown,
            },
            message: f.message,
            retry_after_s: f.retry_after_s,
        }
    }
}

fn usage(u: m::ApiUsage) -> w::ApiUsage {
    w::ApiUsage {
        used: u.used,
        limit: u.limit,
    }
}

impl From<m::TestReport> for w::TestReport {
    fn from(r: m::TestReport) -> Self {
        w::TestReport {
            failure: r.failure.map(Into::into),
            org: r.org,
            user: r.user,
            api_usage: r.api_usage.map(usage),
            probes: r
                .probes
                .into_iter()
                .map(|p| w::Probe {
                    name: p.name,
                    failure: p.failure.map(Into::into),
                    detail: p.detail,
                })
                .collect(),
        }
    }
}

impl From<m::Page> for w::Page {
    fn from(p: m::Page) -> Self {
        w::Page {
            rows: p
                .rows
                .into_iter()
                .map(|r| w::Row {
                    key: r.key,
                    op: match r.op {
                        m::Operation::Upsert => w::Operation::Upsert,
                        m::Operation::Delete => w::Operation::Delete,
                        m::Operation::Merge => w::Operation::Merge,
                    },
                    cursor: r.cursor,
                    json: r.json,
                })
                .collect(),
            checkpoint: p.checkpoint,
            status: match p.status {
                m::StreamStatus::Partial => w::StreamStatus::Partial,
                m::StreamStatus::Complete => w::StreamStatus::Complete,
                m::StreamStatus::Skipped(reason) => w::StreamStatus::Skipped(reason),
            },
            api_usage: p.api_usage.map(usage),
            api_calls: p.api_calls,
        }
    }
}
