//! The admin API (JSON over HTTP, axum) for the platform: the CLI's operations under
//! `/api/integrations...` and `/api/plugins...`, the OAuth callback at `/oauth/callback`,
//! `/healthz`, `/metrics` (Prometheus text) and `/api/openapi.json`.
//!
//! Threat: anyone who can reach the port can read tenants' data or re-point integrations:
//! other local accounts, and web pages in the operator's browser.
//! Rule: every `/api` and `/metrics` request must carry the bearer admin token (compared in
//! constant time); `serve` always has one (see [`crate::admin_token`]). Before that, every
//! request passes [`crate::admin_guard`]: host names, cross-site and content-type checks.
//! `/healthz` and `/oauth/callback` need no token: the callback is protected by its
//! single-use `state`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::admin_guard::{BodyType, RequestGuard};
use crate::app::{App, AppError, IntegrationInput};
use crate::oauth::Callback;
use crate::runner::PullOptions;
use crate::scheduler::SchedulerStats;

/// The OpenAPI document, maintained by hand next to this file.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The runtime.
    pub app: Arc<App>,
    /// The scheduler's counters.
    pub stats: Arc<SchedulerStats>,
    /// The bearer token, if required.
    pub admin_token: Option<Arc<str>>,
    /// The external base URL of this server (for the OAuth redirect URI).
    pub public_url: String,
    /// The host names and origins this server answers to.
    pub guard: Arc<RequestGuard>,
}

impl AdminState {
    /// The state of a server bound to `listen`, reached by browsers at `public_url`.
    pub fn new(
        app: Arc<App>,
        stats: Arc<SchedulerStats>,
        admin_token: Option<Arc<str>>,
        listen: std::net::SocketAddr,
        public_url: String,
    ) -> Result<Self, crate::admin_guard::GuardError> {
        let guard = Arc::new(RequestGuard::new(listen, &public_url)?);
        Ok(Self {
            app,
            stats,
            admin_token,
            public_url,
            guard,
        })
    }
}

/// An [`AppError`] as the admin API answers it: each kind maps to one HTTP status.
#[derive(Debug)]
pub struct ApiError(AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        let (status, body) = match &error {
            AppError::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "invalid input", "fields": fields}),
            ),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, json!({"error": m})),
            AppError::NotConnected(m) | AppError::OtherOrg(m) => {
                (StatusCode::CONFLICT, json!({"error": m}))
            }
            AppError::Unsupported(m) => (StatusCode::UNPROCESSABLE_ENTITY, json!({"error": m})),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": error.to_string()}),
            ),
            AppError::AlreadyRunning(_) => {
                (StatusCode::CONFLICT, json!({"error": error.to_string()}))
            }
            AppError::BadCallback(m) => (StatusCode::BAD_REQUEST, json!({"error": m})),
            AppError::OAuth(e) => (
                StatusCode::BAD_GATEWAY,
                json!({"error": format!("authorization failed: {e}")}),
            ),
            AppError::Credential(e) => (StatusCode::CONFLICT, json!({"error": e.to_string()})),
            AppError::Egress(e) => (StatusCode::FORBIDDEN, json!({"error": e.to_string()})),
            AppError::Registry(e @ crate::engine::registry::RegistryError::NotApproved { .. }) => {
                (StatusCode::FORBIDDEN, json!({"error": e.to_string()}))
            }
            AppError::Registry(e) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": e.to_string()}),
            ),
            AppError::Engine(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            ),
            AppError::Store(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// The router.
pub fn router(state: AdminState) -> axum::Router {
    use axum::middleware::{from_fn, from_fn_with_state};
    let json_api = axum::Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/integrations", get(list).post(add))
        .route(
            "/api/integrations/{id}",
            get(show).patch(edit).delete(delete),
        )
        .route("/api/integrations/{id}/test", post(test))
        .route("/api/integrations/{id}/pull", post(pull))
        .route("/api/integrations/{id}/runs", get(runs))
        .route("/api/integrations/{id}/records", get(records))
        .route("/api/integrations/{id}/authorize", post(authorize))
        .route("/api/plugins", get(plugins))
        .route("/metrics", get(metrics))
        .route_layer(from_fn(|req: Request, next: Next| {
            crate::admin_guard::require_body_type(BodyType::Json, req, next)
        }));
    let uploads = axum::Router::new()
        .route("/api/plugins/{name}", post(install_plugin))
        .route_layer(from_fn(|req: Request, next: Next| {
            crate::admin_guard::require_body_type(BodyType::Wasm, req, next)
        }));
    let api = json_api
        .merge(uploads)
        .route_layer(from_fn_with_state(state.clone(), require_token));
    let guard = state.guard.clone();
    axum::Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/oauth/callback", get(oauth_callback))
        .merge(api)
        .with_state(state)
        .layer(from_fn_with_state(
            guard.clone(),
            crate::admin_guard::refuse_cross_site,
        ))
        .layer(from_fn_with_state(guard, crate::admin_guard::check_host))
}

async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    if let Some(expected) = &state.admin_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({"error": "admin token required (Authorization: Bearer ...)"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// Whether `a == b`, in time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn list(State(s): State<AdminState>) -> Result<Response, ApiError> {
    let rows = crate::views::list_rows(&s.app)?;
    Ok(Json(rows).into_response())
}

/// The body of `POST /api/integrations` and `PATCH /api/integrations/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct IntegrationBody {
    name: Option<String>,
    capability: Option<String>,
    environment: Option<String>,
    domain: Option<String>,
    pull_by: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// `15m`, `1h`, or seconds.
    interval: Option<serde_json::Value>,
    /// Connector-specific settings.
    #[serde(default)]
    settings: std::collections::BTreeMap<String, String>,
}

impl IntegrationBody {
    fn into_input(self) -> Result<IntegrationInput, AppError> {
        let interval = self.interval.as_ref().map(parse_interval).transpose()?;
        Ok(IntegrationInput {
            name: self.name,
            capability: self.capability,
            environment: self.environment,
            domain: self.domain,
            pull_by: self.pull_by,
            extra: self.settings.into_iter().collect(),
            interval,
            client_id: self.client_id,
            client_secret: self.client_secret,
        })
    }
}

/// `interval` as seconds (a whole number) or a duration text such as `15m`; anything else is a
/// field error, never a silent default.
fn parse_interval(value: &serde_json::Value) -> Result<std::time::Duration, AppError> {
    let invalid = |message: String| {
        AppError::Invalid(vec![crate::app::FieldIssue {
            field: "interval".into(),
            message,
        }])
    };
    match value {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| invalid(format!("{n} is not a whole number of seconds"))),
        serde_json::Value::String(s) => crate::duration::parse_duration(s).map_err(invalid),
        other => Err(invalid(format!(
            "{other} is not a duration: use seconds or a text such as \"15m\""
        ))),
    }
}

fn parse_body(body: &[u8]) -> Result<IntegrationBody, AppError> {
    serde_json::from_slice(body).map_err(|e| {
        AppError::Invalid(vec![crate::app::FieldIssue {
            field: "body".into(),
            message: e.to_string(),
        }])
    })
}

async fn add(State(s): State<AdminState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let body = parse_body(&body)?;
    let v = s.app.add_integration(body.into_input()?).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn show(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let v = crate::views::integration_view(&s.app, &id).await?;
    Ok(Json(v).into_response())
}

async fn edit(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body = parse_body(&body)?;
    let v = s.app.edit_integration(&id, body.into_input()?).await?;
    Ok(Json(v).into_response())
}

async fn delete(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    s.app.delete_integration(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn test(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let report = s.app.test(&id).await?;
    Ok(Json(crate::views::TestView::from(&report)).into_response())
}

#[derive(Debug, Deserialize)]
struct PullQuery {
    #[serde(default)]
    full: bool,
}

async fn pull(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    Query(q): Query<PullQuery>,
) -> Result<Response, ApiError> {
    // Claimed before answering, so a second request while a run is going on gets 409.
    let claim = crate::runner::claim(&s.app, &id)?;
    let app = s.app.clone();
    let run_id = id.clone();
    // The run is recorded; the caller follows it under /runs.
    tokio::spawn(async move {
        let opts = PullOptions {
            full: q.full,
            trigger: "api".into(),
            ..PullOptions::default()
        };
        if let Err(e) = crate::runner::run_claimed(&app, claim, opts).await {
            tracing::warn!(integration = %run_id, error = %e, "pull requested through the API failed");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "started", "integration": id})),
    )
        .into_response())
}

async fn runs(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    s.app.store().integration(&id)?;
    Ok(Json(s.app.runs(&id, 50)?).into_response())
}

#[derive(Debug, Deserialize)]
struct RecordsQuery {
    stream: Option<String>,
    #[serde(default)]
    with_deleted: bool,
    limit: Option<usize>,
    /// Keyset cursor: the `stream` and `key` of the last record of the previous page.
    after_stream: Option<String>,
    after_key: Option<String>,
}

async fn records(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    Query(q): Query<RecordsQuery>,
) -> Result<Response, ApiError> {
    s.app.store().integration(&id)?;
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let after = match (&q.after_stream, &q.after_key) {
        (Some(stream), Some(key)) => Some((stream.as_str(), key.as_str())),
        (None, None) => None,
        _ => {
            return Err(ApiError(AppError::Invalid(vec![crate::app::FieldIssue {
                field: "after_stream".into(),
                message:
                    "after_stream and after_key go together (the last record's stream and key)"
                        .into(),
            }])));
        }
    };
    let page =
        s.app
            .store()
            .records_page(&id, q.stream.as_deref(), q.with_deleted, after, limit)?;
    let out: Vec<_> = page
        .into_iter()
        .map(|r| {
            let record: serde_json::Value =
                serde_json::from_slice(&r.json).unwrap_or(serde_json::Value::Null);
            json!({"stream": r.stream, "key": r.key, "version": r.version, "deleted": r.deleted, "cursor": r.cursor, "record": record})
        })
        .collect();
    Ok(Json(out).into_response())
}

async fn authorize(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let redirect = format!("{}/oauth/callback", s.public_url.trim_end_matches('/'));
    let start = s.app.begin_authorization(&id, &redirect).await?;
    Ok(
        Json(json!({"authorize_url": start.url.as_str(), "redirect_uri": redirect}))
            .into_response(),
    )
}

async fn oauth_callback(State(s): State<AdminState>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let callback = Callback::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match s.app.complete_authorization(callback).await {
        Ok(i) => (
            StatusCode::OK,
            format!(
                "Sluice: integration {} is authorized. You can close this window.",
                i.id
            ),
        )
            .into_response(),
        Err(e) => {
            let status = match &e {
                AppError::BadCallback(_) | AppError::OAuth(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, format!("Sluice: authorization failed: {e}")).into_response()
        }
    }
}

async fn plugins(State(s): State<AdminState>) -> Response {
    let list: Vec<_> = s
        .app
        .registry()
        .list(None)
        .into_iter()
        .map(|v| {
            json!({"name": v.record.name, "version": v.record.version, "sha256": v.record.sha256,
                   "contract": v.record.contract, "active": v.active,
                   "installed_at_ms": crate::store::to_ms(v.record.installed_at)})
        })
        .collect();
    Json(list).into_response()
}

/// The query of a plugin install.
#[derive(Debug, Default, serde::Deserialize)]
struct InstallQuery {
    /// `true` approves the manifest's hosts and methods as they are (`--approve-hosts`).
    #[serde(default)]
    approve_hosts: bool,
}

async fn install_plugin(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    axum::extract::Query(query): axum::extract::Query<InstallQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let approval = if query.approve_hosts {
        crate::engine::registry::HostApproval::Approved
    } else {
        crate::engine::registry::HostApproval::Covered
    };
    let report = s
        .app
        .registry()
        .install_with_approval(&name, &body, true, approval)
        .await
        .map_err(AppError::from)?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"name": report.name, "version": report.version, "sha256": report.sha256,
                    "existing": report.existing, "canary_configured": report.canary_configured,
                    "canary_tested": report.canary_tested, "canary_pulled": report.canary_pulled,
                    "manifest": *report.manifest}),
        ),
    )
        .into_response())
}

async fn metrics(State(s): State<AdminState>) -> Response {
    use std::fmt::Write;
    let mut out = s.app.engine().metrics().render_prometheus();
    let st = &s.stats;
    let counters = [
        (
            "sluice_runs_started_total",
            "Scheduled pulls started.",
            st.runs_started.load(Ordering::Relaxed),
        ),
        (
            "sluice_runs_succeeded_total",
            "Scheduled pulls that succeeded.",
            st.runs_succeeded.load(Ordering::Relaxed),
        ),
        (
            "sluice_runs_failed_total",
            "Scheduled pulls that failed.",
            st.runs_failed.load(Ordering::Relaxed),
        ),
        (
            "sluice_token_health_checks_total",
            "Token health checks made.",
            st.health_checks.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP sluice_runs_running Pulls running now.\n# TYPE sluice_runs_running gauge\nsluice_runs_running {}",
        st.running.load(Ordering::Relaxed)
    );
    if let Ok(list) = s.app.store().integrations() {
        let _ = writeln!(
            out,
            "# HELP sluice_integrations Integrations by state.\n# TYPE sluice_integrations gauge"
        );
        for state in ["pending-authorization", "active", "needs-reauthorization"] {
            let n = list.iter().filter(|i| i.state.as_str() == state).count();
            let _ = writeln!(out, "sluice_integrations{{state=\"{state}\"}} {n}");
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
