//! HTTP routing and the REST API under `/services/data/`.

pub mod describe;
pub mod query;
pub mod records;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value as Json, json};

use crate::oauth::{self, Session, json_response};
use crate::state::{API_VERSION, Shared};
use crate::{access, bulk, compress, control};

/// Oldest API version served (older ones are retired: 410).
const MIN_VERSION: u32 = 31;

/// Builds the whole application: OAuth, REST, Bulk, control API.
pub fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .route("/services/data/{ver}", any(data_api))
        .route("/services/data/{ver}/", any(data_api))
        .route("/services/data/{ver}/{*rest}", any(data_api))
        .route(
            "/services/oauth2/authorize",
            get(oauth::authorize_get).post(oauth::authorize_post),
        )
        .route("/services/oauth2/token", post(oauth::token))
        .route(
            "/services/oauth2/revoke",
            post(oauth::revoke).get(oauth::revoke),
        )
        .route("/services/oauth2/introspect", post(oauth::introspect))
        .route(
            "/services/oauth2/userinfo",
            get(oauth::userinfo).post(oauth::userinfo),
        )
        .route("/id/{org}/{user}", get(oauth::identity))
        .route("/.well-known/openid-configuration", get(oauth::discovery))
        .merge(control::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::rendezvous::hold,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), inject_faults))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            compress::gzip,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), uri_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::requests::record,
        ))
        .with_state(state)
}

/// The login host (`login.salesforce.com` on real orgs): OAuth and the identity URLs.
pub fn login_router(state: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/services/oauth2/authorize",
            get(oauth::authorize_get).post(oauth::authorize_post),
        )
        .route("/services/oauth2/token", post(oauth::token))
        .route(
            "/services/oauth2/revoke",
            post(oauth::revoke).get(oauth::revoke),
        )
        .route("/services/oauth2/introspect", post(oauth::introspect))
        .route(
            "/services/oauth2/userinfo",
            get(oauth::userinfo).post(oauth::userinfo),
        )
        .route("/id/{org}/{user}", get(oauth::identity))
        .route("/.well-known/openid-configuration", get(oauth::discovery))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), inject_faults))
        .with_state(state)
}

/// The longest URL Salesforce accepts, scheme and host included (spec §3: longer is 414).
/// The same budget holds for the URL and the request headers together (longer is 431).
pub const MAX_URL_BYTES: usize = 16_384;

/// Bytes the request's header lines take (`Name: value` plus the line break).
fn header_bytes(headers: &HeaderMap) -> usize {
    // The host is already counted in the URL.
    headers
        .iter()
        .filter(|(name, _)| *name != header::HOST)
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum()
}

/// Answers 414 for URLs over [`MAX_URL_BYTES`], and 431 when the URL and the headers together
/// exceed it, as Salesforce's front end does, before any API call is counted.
async fn uri_limit(State(state): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .map_or(0, |h| h.as_bytes().len());
    let path = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    // Clients' URLs carry the scheme the emulator serves (`http://` or `https://`).
    let scheme = state.base_url.find("://").map_or(0, |at| at + "://".len());
    if scheme + host + path > MAX_URL_BYTES {
        return (
            StatusCode::URI_TOO_LONG,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>414 Request-URI Too Long</h1></body></html>",
        )
            .into_response();
    }
    if scheme + host + path + header_bytes(req.headers()) > MAX_URL_BYTES {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>431 Request Header Fields Too Large</h1></body></html>",
        )
            .into_response();
    }
    next.run(req).await
}

/// A REST error: `[{"message","errorCode"}]` with a status (spec §3.1).
pub fn api_error(status: u16, code: &str, message: &str) -> Response {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        &json!([{"message": message, "errorCode": code}]),
    )
}

/// 404 `NOT_FOUND`.
pub fn not_found_error() -> Response {
    api_error(404, "NOT_FOUND", "The requested resource does not exist")
}

async fn not_found() -> Response {
    not_found_error()
}

/// Answers programmed faults (`POST /__emulator/faults`) before normal handling.
async fn inject_faults(State(state): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__emulator") {
        return next.run(req).await;
    }
    let Some(fault) = state.take_fault(req.method().as_str(), &path) else {
        return next.run(req).await;
    };
    if fault.hold {
        let mut releases = state.fault_releases.subscribe();
        let _ = releases.wait_for(|n| *n > fault.releases_before).await;
    }
    if let Some(ms) = fault.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let Some(status) = fault.status else {
        // No status: served normally, with the fault's headers on top.
        let mut resp = next.run(req).await;
        set_headers(&mut resp, &fault.headers);
        return resp;
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ctype = fault
        .content_type
        .unwrap_or_else(|| "application/json;charset=UTF-8".into());
    let body = match fault.body_base64.as_deref().map(|b| STANDARD.decode(b)) {
        Some(Ok(bytes)) => Body::from(bytes),
        Some(Err(_)) => return StatusCode::BAD_REQUEST.into_response(),
        None => Body::from(fault.body.unwrap_or_default()),
    };
    let mut resp = (status, body).into_response();
    if let Ok(v) = HeaderValue::from_str(&ctype) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    set_headers(&mut resp, &fault.headers);
    if path.starts_with("/services/data/v") {
        add_limit_header(&state, &mut resp);
    }
    resp
}

/// Sets a fault's headers on a response, replacing the emulator's own.
fn set_headers(resp: &mut Response, headers: &std::collections::BTreeMap<String, String>) {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
}

/// Adds `Sforce-Limit-Info` unless the response (a fault) already set its own.
fn add_limit_header(state: &Shared, resp: &mut Response) {
    if resp.headers().contains_key("sforce-limit-info") {
        return;
    }
    let (used, max) = state.api_usage();
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        resp.headers_mut().insert("Sforce-Limit-Info", v);
    }
}

/// `GET /services/data/`: no auth, no limit header, not counted.
async fn versions(State(state): State<Arc<Shared>>) -> Response {
    state.note("versions");
    let list: Vec<Json> = (MIN_VERSION..=62)
        .map(|v| {
            json!({"label": release_label(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")})
        })
        .collect();
    json_response(StatusCode::OK, &Json::Array(list))
}

fn release_label(v: u32) -> String {
    // v20 was Winter '11; three releases a year.
    let k = v - 20;
    let season = ["Winter", "Spring", "Summer"][(k % 3) as usize];
    format!("{season} '{:02}", 11 + k / 3)
}

/// A parsed, authenticated request under `/services/data/v{ver}/`.
pub struct Ctx {
    pub state: Arc<Shared>,
    pub version: String,
    pub method: Method,
    pub segments: Vec<String>,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub session: Session,
}

impl Ctx {
    /// A query-string parameter (form-decoded: `+` becomes a space, as on Salesforce).
    pub fn param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// `/services/data/v{ver}`.
    pub fn base(&self) -> String {
        format!("/services/data/v{}", self.version)
    }
}

fn parse_version(seg: &str) -> Option<(String, u32)> {
    let v = seg.strip_prefix('v')?;
    let (major, minor) = v.split_once('.')?;
    let m: u32 = major.parse().ok()?;
    (minor == "0").then(|| (v.to_string(), m))
}

/// Everything under `/services/data/v{ver}`: auth, limit counting, dispatch.
async fn data_api(
    State(state): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let mut segs: Vec<String> = path
        .trim_start_matches("/services/data/")
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    if segs.last().is_some_and(String::is_empty) {
        segs.pop();
    }
    let Some((version, major)) = segs.first().and_then(|s| parse_version(s)) else {
        return not_found_error();
    };
    if major > 62 {
        return not_found_error();
    }
    if major < MIN_VERSION {
        return api_error(
            410,
            "API_VERSION_RETIRED",
            &format!("Version v{version} of the API is retired"),
        );
    }
    let session = match oauth::authenticate(&state, &headers) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    segs.remove(0);
    let label = endpoint_label(&method, &segs);
    let (used, max) = state.count_api_call(&label);
    let mut resp = if used > max {
        api_error(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    } else {
        let ctx = Ctx {
            state: state.clone(),
            version,
            method,
            segments: segs,
            query: uri.query().map(str::to_string),
            headers,
            body,
            session,
        };
        // Query execution and bulk result rendering are CPU work over big tables.
        tokio::task::spawn_blocking(move || {
            tracing::debug_span!("emulator_query").in_scope(|| dispatch(&ctx))
        })
        .await
        .unwrap_or_else(|_| api_error(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred."))
    };
    add_limit_header(&state, &mut resp);
    resp
}

/// Label under which `/__emulator/stats` counts a call.
fn endpoint_label(method: &Method, segs: &[String]) -> String {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        [] => "resources".into(),
        ["query" | "queryAll", _] => "queryMore".into(),
        [q @ ("query" | "queryAll")] => (*q).into(),
        ["sobjects"] => "describeGlobal".into(),
        ["sobjects", _, "describe"] => "describe".into(),
        ["sobjects", _, op @ ("updated" | "deleted")] => (*op).into(),
        ["sobjects", _] => "sobject".into(),
        ["sobjects", _, _, ..] => "record".into(),
        ["jobs", "query"] if method == Method::POST => "bulk.create".into(),
        ["jobs", "query", _, "results"] => "bulk.results".into(),
        ["jobs", "query", ..] => format!("bulk.{}", method.as_str().to_ascii_lowercase()),
        [first, ..] => (*first).to_string(),
    }
}

fn method_not_allowed(method: &Method, allowed: &str) -> Response {
    api_error(
        405,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
    )
}

fn dispatch(ctx: &Ctx) -> Response {
    let segs: Vec<&str> = ctx.segments.iter().map(String::as_str).collect();
    let get = ctx.method == Method::GET || ctx.method == Method::HEAD;
    let settings = ctx.state.settings();
    match segs.as_slice() {
        ["sobjects", obj, ..] if access::hidden(&settings, obj) => not_found_error(),
        ["jobs", "query", rest @ ..] => bulk::dispatch(ctx, rest),
        _ if !get => method_not_allowed(&ctx.method, "GET,HEAD"),
        ["limits"] if !settings.view_setup_permission => access::limits_refused(),
        [] => resources(ctx),
        ["limits"] => limits(ctx),
        ["sobjects"] => describe::global(ctx),
        ["sobjects", obj] => describe::basic(ctx, obj),
        ["sobjects", obj, "describe"] => describe::object(ctx, obj),
        ["sobjects", obj, "updated"] => records::updated(ctx, obj),
        ["sobjects", obj, "deleted"] => records::deleted(ctx, obj),
        ["sobjects", obj, id] => records::get(ctx, obj, id),
        ["query" | "queryAll"] => query::query(ctx, segs[0] == "queryAll"),
        ["query" | "queryAll", locator] => query::more(ctx, locator),
        _ => not_found_error(),
    }
}

fn resources(ctx: &Ctx) -> Response {
    let b = ctx.base();
    let mut m = serde_json::Map::new();
    for k in [
        "tooling",
        "metadata",
        "eclair",
        "folders",
        "jobs",
        "query",
        "queryAll",
        "sobjects",
        "search",
        "recent",
        "limits",
        "composite",
        "analytics",
        "theme",
        "tabs",
        "chatter",
        "quickActions",
        "appMenu",
        "knowledgeManagement",
        "support",
    ] {
        m.insert(k.into(), Json::String(format!("{b}/{k}")));
    }
    m.insert(
        "identity".into(),
        Json::String(oauth::identity_url(&ctx.state, ctx.session.user)),
    );
    json_response(StatusCode::OK, &Json::Object(m))
}

fn limits(ctx: &Ctx) -> Response {
    let (used, max) = ctx.state.api_usage();
    let jobs = ctx
        .state
        .stats
        .lock()
        .expect("stats lock")
        .bulk_jobs_created;
    let lim = |max: u64, used: u64| json!({"Max": max, "Remaining": max.saturating_sub(used)});
    let body = json!({
        "ConcurrentAsyncGetReportInstances": lim(200, 0),
        "ConcurrentSyncReportRuns": lim(20, 0),
        "DailyApiRequests": lim(max, used),
        "DailyAsyncApexExecutions": lim(250_000, 0),
        "DailyBulkApiBatches": lim(15_000, 0),
        "DailyBulkV2QueryFileStorageMB": lim(976_562, 0),
        "DailyBulkV2QueryJobs": lim(10_000, jobs),
        "DataStorageMB": lim(1024, 0),
        "FileStorageMB": lim(2048, 0),
        "HourlyODataCallout": lim(10_000, 0),
        "SingleEmail": lim(5000, 0),
    });
    json_response(StatusCode::OK, &body)
}

/// API version string of the newest served version.
pub fn latest_version() -> &'static str {
    API_VERSION
}
