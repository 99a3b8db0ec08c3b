//! The thin binding between the `sluice:connector` WIT world and the connector's logic.
//!
//! It converts between the generated WIT types and [`crate::model`], and implements
//! [`crate::http::Env`] over `wasi:http/outgoing-handler` and the host's log import. It adds
//! no behaviour of its own: every decision lives in the plain-Rust modules.

wit_bindgen::generate!({
    path: "../../crates/sdk/wit",
    world: "sluice:connector/connector",
    generate_all,
});

use crate::http::{Env, Method as HttpMethod, Request, Response, TransportError};
use crate::model as m;
use exports::sluice::connector::plugin::Guest;
use sluice::connector::types as w;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::StreamError;

struct Component;

export!(Component);

impl Guest for Component {
    fn configure(
        settings: w::Settings,
        host: w::HostContext,
    ) -> Result<w::Configured, Vec<w::FieldError>> {
        crate::connector::configure(&settings.into(), &host.into())
            .map(Into::into)
            .map_err(field_errors)
    }

    fn authorize(
        settings: w::Settings,
        host: w::HostContext,
    ) -> Result<w::OauthPlan, Vec<w::FieldError>> {
        crate::connector::authorize(&settings.into(), &host.into())
            .map(Into::into)
            .map_err(field_errors)
    }

    fn test(session: w::Session) -> w::TestReport {
        crate::connector::test(&mut WasiEnv, &session.into()).into()
    }

    fn pull(session: w::Session, request: w::PullRequest) -> Result<w::Page, w::Failure> {
        crate::connector::pull(&mut WasiEnv, &session.into(), &request.into())
            .map(Into::into)
            .map_err(Into::into)
    }
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

/// [`Env`] inside the sandbox: `wasi:http` for requests, the host imports for logs and keys.
struct WasiEnv;

impl Env for WasiEnv {
    fn send(&mut self, request: Request) -> Result<Response, TransportError> {
        let target = request.url.clone();
        send(request).map_err(|code| transport_error(&target, code))
    }

    fn log(&mut self, level: m::Level, message: &str, fields: &[(&str, &str)]) {
        use sluice::connector::host::{Level, log};
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
        sluice::connector::host::stored_keys(after, limit)
    }

    fn now_ms(&mut self) -> Option<i64> {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        i64::try_from(since.as_millis()).ok()
    }
}

/// Where a wasi:http failure leaves the caller: the request never produced a response.
fn transport_error(target: &str, code: ErrorCode) -> TransportError {
    let detail = format!("{code:?}");
    match code {
        ErrorCode::HttpRequestDenied => TransportError::Denied(target.to_string()),
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => TransportError::Unreachable {
            target: target.to_string(),
            detail,
        },
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => TransportError::Timeout(target.to_string()),
        ErrorCode::HttpResponseBodySize(_) => TransportError::ResponseTooLarge(target.to_string()),
        _ => TransportError::Other(detail),
    }
}

fn send(request: Request) -> Result<Response, ErrorCode> {
    let url = url::Url::parse(&request.url).map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    let mut headers: Vec<(String, Vec<u8>)> = request
        .headers
        .into_iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.into_bytes()))
        .collect();
    // Salesforce compresses REST and Bulk results on request (several times smaller); the
    // host inflates them within its response cap, so the connector reads plain bytes.
    if !headers.iter().any(|(n, _)| n == "accept-encoding") {
        headers.push(("accept-encoding".into(), b"gzip".to_vec()));
    }
    let fields = Fields::from_list(&headers)
        .map_err(|e| ErrorCode::InternalError(Some(format!("bad header: {e:?}"))))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match request.method {
        HttpMethod::Get => Method::Get,
        HttpMethod::Post => Method::Post,
        HttpMethod::Patch => Method::Patch,
        HttpMethod::Delete => Method::Delete,
    };
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let authority = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(ErrorCode::HttpRequestUriInvalid),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let invalid = |_| ErrorCode::HttpRequestUriInvalid;
    outgoing
        .set_method(&method)
        .map_err(|_| ErrorCode::HttpRequestMethodInvalid)?;
    outgoing.set_scheme(Some(&scheme)).map_err(invalid)?;
    outgoing.set_authority(Some(&authority)).map_err(invalid)?;
    outgoing.set_path_with_query(Some(&path)).map_err(invalid)?;

    let body = outgoing
        .body()
        .map_err(|_| internal("request body taken twice"))?;
    // Hand the request over before writing: the body is streamed through a bounded buffer
    // that nobody drains until the request is in flight.
    let pending = outgoing_handler::handle(outgoing, None)?;
    if let Some(bytes) = request.body {
        let stream = body
            .write()
            .map_err(|_| internal("request body stream taken twice"))?;
        // wasi:io limits one blocking write to 4 KiB.
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| internal(&format!("writing the request body: {e:?}")))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(body, None)?;

    let incoming = loop {
        match pending.get() {
            Some(result) => break result.map_err(|_| internal("response taken twice"))??,
            None => pending.subscribe().block(),
        }
    };
    let status = incoming.status();
    let headers: Vec<(String, String)> = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    // One allocation for the whole body when its length is known (pages are megabytes).
    let expected = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_PRESIZE);
    let body = incoming
        .consume()
        .map_err(|_| internal("response body taken twice"))?;
    let stream = body
        .stream()
        .map_err(|_| internal("response stream taken twice"))?;
    let mut bytes = Vec::with_capacity(expected);
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(ErrorCode::InternalError(Some(e.to_debug_string())));
            }
        }
    }
    drop(stream);
    IncomingBody::finish(body);
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

/// Most bytes reserved up front from a `Content-Length` (a larger body still reads in full).
const MAX_PRESIZE: usize = 64 << 20;
/// Bytes asked for per read of a response body.
const READ_CHUNK: u64 = 1 << 20;

fn internal(what: &str) -> ErrorCode {
    ErrorCode::InternalError(Some(what.to_string()))
}

// ---- conversions: WIT -> model ----

impl From<w::Capability> for m::Capability {
    fn from(c: w::Capability) -> Self {
        match c {
            w::Capability::Helpdesk => m::Capability::Helpdesk,
            w::Capability::Crm => m::Capability::Crm,
            w::Capability::ContentManagement => m::Capability::ContentManagement,
            w::Capability::Other(s) => m::Capability::Other(s),
        }
    }
}

impl From<w::Settings> for m::Settings {
    fn from(s: w::Settings) -> Self {
        m::Settings {
            capability: s.capability.into(),
            environment: match s.environment {
                w::Environment::Production => m::Environment::Production,
                w::Environment::Sandbox => m::Environment::Sandbox,
            },
            pull_by: s.pull_by.map(|p| match p {
                w::PullBy::CreatedTime => m::PullBy::CreatedTime,
                w::PullBy::UpdatedTime => m::PullBy::UpdatedTime,
            }),
            domain: s.domain,
            extra: s.extra,
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
                identity_url: s.grant.identity_url,
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

impl From<m::Configured> for w::Configured {
    fn from(c: m::Configured) -> Self {
        w::Configured {
            allowed_hosts: c.allowed_hosts,
            oauth: c.oauth.into(),
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
