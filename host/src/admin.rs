//! The admin API (JSON over HTTP, axum) for the platform: the CLI's operations under
//! `/api/integrations...` and `/api/connectors...`, the OAuth callback at `/oauth/callback`,
//! `/healthz`, `/metrics` (Prometheus text) and `/api/openapi.json` (generated from the
//! handlers' annotations and the view types, see [`crate::openapi`]).
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
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::admin_guard::{BodyType, RequestGuard};
use crate::app::{App, AppError, IntegrationInput};
use crate::oauth::Callback;
use crate::runner::PullOptions;
use crate::scheduler::SchedulerStats;
use crate::views::{IntegrationView, ListRow, RecordView, TestView};

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

/// The body of every error answer of the admin API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what to do.
    pub error: String,
    /// For invalid input (422): each field's problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<crate::app::FieldIssue>>,
}

/// Why the admin API refuses a request: an [`AppError`] (each kind maps to one HTTP status),
/// or a request axum could not read (a malformed path or query, a body over the limit).
#[derive(Debug)]
pub enum ApiError {
    /// The runtime refused or failed.
    App(AppError),
    /// The request itself is unreadable; the status comes from axum's rejection.
    Request(StatusCode, String),
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::App(e.into())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::Request(e.status(), e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        Self::Request(e.status(), e.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        Self::Request(e.status(), e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self {
            ApiError::App(error) => error,
            ApiError::Request(status, message) => {
                return (status, Json(json!({ "error": message }))).into_response();
            }
        };
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
            // Not the provider's failure: the integration lacks what OAuth needs.
            AppError::OAuth(crate::oauth::OAuthError::NoClient) => {
                (StatusCode::CONFLICT, json!({"error": error.to_string()}))
            }
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

/// The largest component upload: the registry's own limit.
const COMPONENT_BODY_LIMIT: usize = crate::engine::registry::MAX_COMPONENT_BYTES as usize;

/// The router.
pub fn router(state: AdminState) -> axum::Router {
    use axum::middleware::{from_fn, from_fn_with_state};
    let api = axum::Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/integrations", json_only(get(list).post(add)))
        .route(
            "/api/integrations/{id}",
            json_only(get(show).patch(edit).delete(delete)),
        )
        .route("/api/integrations/{id}/test", json_only(post(test)))
        .route("/api/integrations/{id}/pull", json_only(post(pull)))
        .route("/api/integrations/{id}/runs", get(runs))
        .route("/api/integrations/{id}/records", get(records))
        .route(
            "/api/integrations/{id}/authorize",
            json_only(post(authorize)),
        )
        .route("/api/connectors", get(connectors))
        .route(
            "/api/connectors/{name}",
            post(install_connector)
                .route_layer(from_fn(|req: Request, next: Next| {
                    crate::admin_guard::require_body_type(BodyType::Wasm, req, next)
                }))
                // A component may be as large as the CLI installs, not axum's default 2 MiB.
                .layer(axum::extract::DefaultBodyLimit::max(COMPONENT_BODY_LIMIT)),
        )
        .route("/metrics", get(metrics))
        .route_layer(from_fn_with_state(state.clone(), require_token));
    let guard = state.guard.clone();
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/oauth/callback", get(oauth_callback))
        .merge(api)
        .with_state(state)
        .layer(from_fn_with_state(
            guard.clone(),
            crate::admin_guard::refuse_cross_site,
        ))
        .layer(from_fn_with_state(guard, crate::admin_guard::check_host))
}

/// The routes of `methods` take `Content-Type: application/json`. Applied to the methods
/// themselves, not the path, so a method the path lacks is 405, not 415.
fn json_only(methods: MethodRouter<AdminState>) -> MethodRouter<AdminState> {
    methods.route_layer(axum::middleware::from_fn(|req: Request, next: Next| {
        crate::admin_guard::require_body_type(BodyType::Json, req, next)
    }))
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

/// The answer of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the server answers.
    pub status: HealthStatus,
}

/// What `/healthz` reports.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The server answers.
    Ok,
}

/// Whether the server answers; needs no token.
#[utoipa::path(get, path = "/healthz", tag = "server", security(()),
    responses((status = 200, description = "The server answers", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "server",
    responses((status = 200, description = "The OpenAPI document of this API",
        content_type = "application/json", body = Object)))]
async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
}

/// Every integration with its latest run and token health.
#[utoipa::path(get, path = "/api/integrations", tag = "integrations",
    responses((status = 200, description = "The integrations, newest first", body = Vec<ListRow>),
        (status = 500, description = "The store failed", body = ErrorBody)))]
async fn list(State(s): State<AdminState>) -> Result<Response, ApiError> {
    let rows = crate::views::list_rows(&s.app)?;
    Ok(Json(rows).into_response())
}

/// The body of `POST /api/integrations` and `PATCH /api/integrations/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct IntegrationBody {
    /// Its display name (required to add).
    #[schema(min_length = 1, pattern = r"\S")]
    name: Option<String>,
    /// What it pulls (required to add).
    #[schema(value_type = Option<Capability>)]
    capability: Option<String>,
    /// Which login the org uses (required to add).
    #[schema(value_type = Option<Environment>)]
    environment: Option<String>,
    /// The org's My Domain URL, e.g. `https://acme.my.salesforce.com`.
    domain: Option<String>,
    /// Which timestamp pulls follow.
    #[schema(value_type = Option<PullBy>)]
    pull_by: Option<String>,
    /// The connected app's client id for this integration.
    client_id: Option<String>,
    /// Its client secret (stored encrypted, never shown); needs `client_id`.
    client_secret: Option<String>,
    /// Time between scheduled pulls, 1s to 7d: seconds, or a text such as `15m`.
    #[schema(schema_with = interval_schema)]
    interval: Option<serde_json::Value>,
    /// Connector-specific settings.
    #[serde(default)]
    settings: std::collections::BTreeMap<String, String>,
}

// The enums below document the values the runtime and the connector accept; the body keeps
// plain text so that any other value gets the connector's per-field error, not serde's.

/// The capabilities an integration can pull.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
enum Capability {
    Helpdesk,
    Crm,
    ContentManagement,
}

/// The org's environment.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum Environment {
    Production,
    Sandbox,
}

/// The timestamp pulls follow.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum PullBy {
    Created,
    Updated,
}

/// The texts of 1s to 7d: each unit's numbers in that range, leading zeros allowed.
const INTERVAL_TEXT: &str = concat!(
    "^0*(",
    "([1-9][0-9]{3,7}|[1-5][0-9]{8}|60[0-3][0-9]{6}|604[0-7][0-9]{5}|604800000)ms",
    "|([1-9][0-9]{0,4}|[1-5][0-9]{5}|60[0-3][0-9]{3}|604[0-7][0-9]{2}|604800)s?",
    "|([1-9][0-9]{0,3}|100[0-7][0-9]|10080)m",
    "|([1-9][0-9]?|1[0-5][0-9]|16[0-8])h",
    "|[1-7]d",
    ")$"
);

/// `interval`: whole seconds from 1 to 7 days, or digits and a unit (`ms`, `s`, `m`, `h`,
/// `d`); the runtime refuses anything shorter than 1s or longer than 7d.
fn interval_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(7 * 24 * 3600)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(INTERVAL_TEXT)),
        )
        // `null`, like a missing field: the default (add) or the current value (edit).
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "Time between scheduled pulls, 1s to 7d: seconds, or a text such as `15m`",
        ))
        .build()
        .into()
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
        // JSON has one number type: `60.0` is the whole number 60, as JSON Schema's
        // `integer` says.
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| whole_seconds(n.as_f64()?))
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| invalid(format!("{n} is not a whole number of seconds"))),
        serde_json::Value::String(s) => crate::duration::parse_duration(s).map_err(invalid),
        other => Err(invalid(format!(
            "{other} is not a duration: use seconds or a text such as \"15m\""
        ))),
    }
}

/// `f` as a whole number of seconds, if it is one that fits.
fn whole_seconds(f: f64) -> Option<u64> {
    // `u64::MAX as f64` rounds up to 2^64, which does not fit: compare strictly.
    (f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64).then_some(f as u64)
}

fn parse_body(body: &[u8]) -> Result<IntegrationBody, AppError> {
    serde_json::from_slice(body).map_err(|e| {
        AppError::Invalid(vec![crate::app::FieldIssue {
            field: "body".into(),
            message: e.to_string(),
        }])
    })
}

/// An integration's id.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct IntegrationId {
    /// The id `POST /api/integrations` gave it.
    #[param(pattern = "^int_[A-Za-z0-9_-]{12}$")]
    id: String,
}

/// Validates and stores a new integration; nothing is stored when anything is invalid.
#[utoipa::path(post, path = "/api/integrations", tag = "integrations",
    request_body(content = IntegrationBody, content_type = "application/json"),
    responses((status = 201, description = "Added, pending authorization", body = crate::app::Validated),
        (status = 403, description = "The connector asks for hosts the operator has not approved", body = ErrorBody),
        (status = 413, description = "The body is over 2 MiB", body = ErrorBody),
        (status = 422, description = "Invalid input, per field (the connector validates its settings)", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody)))]
async fn add(
    State(s): State<AdminState>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = parse_body(&body?)?;
    let v = s.app.add_integration(body.into_input()?).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// An integration with its settings, streams, latest runs, checkpoints and record counts.
#[utoipa::path(get, path = "/api/integrations/{id}", tag = "integrations", params(IntegrationId),
    responses((status = 200, description = "The integration", body = IntegrationView),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody)))]
async fn show(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    let v = crate::views::integration_view(&s.app, &id).await?;
    Ok(Json(v).into_response())
}

/// Changes an integration; fields left out keep their value.
#[utoipa::path(patch, path = "/api/integrations/{id}", tag = "integrations", params(IntegrationId),
    request_body(content = IntegrationBody, content_type = "application/json"),
    responses((status = 200, description = "Changed", body = crate::app::Validated),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "The connector asks for hosts the operator has not approved", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 413, description = "The body is over 2 MiB", body = ErrorBody),
        (status = 422, description = "Invalid input, per field", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody)))]
async fn edit(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    let body = parse_body(&body?)?;
    let v = s.app.edit_integration(&id, body.into_input()?).await?;
    Ok(Json(v).into_response())
}

/// Deletes an integration with its records and tokens (the refresh token is revoked).
#[utoipa::path(delete, path = "/api/integrations/{id}", tag = "integrations", params(IntegrationId),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
async fn delete(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    s.app.delete_integration(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Test Connection: identity, limits and one probe per object.
#[utoipa::path(post, path = "/api/integrations/{id}/test", tag = "integrations", params(IntegrationId),
    responses((status = 200, description = "The report; `ok` says whether the connection works", body = TestView),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 409, description = "Not authorized yet, or the credentials are unusable", body = ErrorBody),
        (status = 422, description = "The stored settings are no longer valid", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody),
        (status = 502, description = "The provider refused or failed the token refresh", body = ErrorBody)))]
async fn test(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    let report = s.app.test(&id).await?;
    Ok(Json(TestView::from(&report)).into_response())
}

/// The query of `POST /api/integrations/{id}/pull`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PullQuery {
    /// Reset the checkpoints first and pull everything.
    #[serde(default)]
    full: bool,
}

/// The answer of a pull that started.
#[derive(Debug, Serialize, ToSchema)]
pub struct PullStarted {
    /// Always `started`.
    pub status: PullStatus,
    /// The integration.
    pub integration: String,
}

/// Where a requested pull stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PullStatus {
    /// The run began; follow it under `/runs`.
    Started,
}

/// Starts a pull; the run is recorded and shows under `/runs`.
#[utoipa::path(post, path = "/api/integrations/{id}/pull", tag = "integrations",
    params(IntegrationId, PullQuery),
    responses((status = 202, description = "The run started", body = PullStarted),
        (status = 400, description = "The path or the query is malformed", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 409, description = "A run of this integration is already going on", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
async fn pull(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
    q: Result<Query<PullQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(IntegrationId { id }), Query(q)) = (id?, q?);
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
        Json(PullStarted {
            status: PullStatus::Started,
            integration: id,
        }),
    )
        .into_response())
}

/// Runs the API lists.
const LISTED_RUNS: usize = 50;

/// The latest runs of an integration, newest first.
#[utoipa::path(get, path = "/api/integrations/{id}/runs", tag = "integrations", params(IntegrationId),
    responses((status = 200, description = "At most 50 runs, newest first", body = Vec<crate::store::RunRecord>),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
async fn runs(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    s.app.store().integration(&id)?;
    Ok(Json(s.app.runs(&id, LISTED_RUNS)?).into_response())
}

/// The largest page of `GET /records`.
const MAX_RECORDS_PAGE: usize = 10_000;

/// The query of `GET /api/integrations/{id}/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RecordsQuery {
    /// Only this stream.
    stream: Option<String>,
    /// Include tombstones of deleted records.
    #[serde(default)]
    with_deleted: bool,
    /// Records per page.
    #[param(minimum = 0, maximum = 10000, default = 1000)]
    limit: Option<usize>,
    /// Keyset cursor: the `stream` of the last record of the previous page. Records after
    /// (`after_stream`, `after_key`) follow; a missing half is the empty text, so
    /// `after_stream` alone starts at that stream.
    after_stream: Option<String>,
    /// Keyset cursor: the `key` of the last record of the previous page.
    after_key: Option<String>,
}

/// A page of stored records, ordered by stream and key.
#[utoipa::path(get, path = "/api/integrations/{id}/records", tag = "integrations",
    params(IntegrationId, RecordsQuery),
    responses((status = 200, description = "At most `limit` records", body = Vec<RecordView>),
        (status = 400, description = "The path or the query is malformed", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 422, description = "`limit` is over 10000", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
async fn records(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
    q: Result<Query<RecordsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(IntegrationId { id }), Query(q)) = (id?, q?);
    s.app.store().integration(&id)?;
    let limit = q.limit.unwrap_or(1000);
    if limit > MAX_RECORDS_PAGE {
        return Err(invalid_query(
            "limit",
            format!("{limit} is over the largest page, {MAX_RECORDS_PAGE}"),
        ));
    }
    // A missing half of the cursor is the empty text, which sorts first: `after_stream`
    // alone starts at that stream.
    let after = match (&q.after_stream, &q.after_key) {
        (None, None) => None,
        (stream, key) => Some((
            stream.as_deref().unwrap_or(""),
            key.as_deref().unwrap_or(""),
        )),
    };
    let page =
        s.app
            .store()
            .records_page(&id, q.stream.as_deref(), q.with_deleted, after, limit)?;
    let out: Vec<RecordView> = page.into_iter().map(RecordView::from).collect();
    Ok(Json(out).into_response())
}

fn invalid_query(field: &str, message: String) -> ApiError {
    ApiError::App(AppError::Invalid(vec![crate::app::FieldIssue {
        field: field.into(),
        message,
    }]))
}

/// Where to send the user to authorize an integration.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizeStart {
    /// The provider's authorize URL, with a single-use `state`.
    pub authorize_url: String,
    /// Where the provider sends the browser back (`/oauth/callback`).
    pub redirect_uri: String,
}

/// Begins OAuth: the URL to open in the user's browser.
#[utoipa::path(post, path = "/api/integrations/{id}/authorize", tag = "integrations", params(IntegrationId),
    responses((status = 200, description = "Open `authorize_url` in a browser", body = AuthorizeStart),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 409, description = "No OAuth client id: neither the integration nor the host has one", body = ErrorBody),
        (status = 422, description = "The stored settings are no longer valid", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody),
        (status = 502, description = "The connector's OAuth endpoint is refused (not https)", body = ErrorBody)))]
async fn authorize(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    let redirect = format!("{}/oauth/callback", s.public_url.trim_end_matches('/'));
    let start = s.app.begin_authorization(&id, &redirect).await?;
    Ok(Json(AuthorizeStart {
        authorize_url: start.url.to_string(),
        redirect_uri: redirect,
    })
    .into_response())
}

/// The query the provider sends the browser back with.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
// Documents the query; the handler reads it raw, as `Callback::from_query` takes pairs.
#[allow(dead_code)]
struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The single-use state of `POST /authorize`.
    state: Option<String>,
    /// The provider's error code, e.g. `access_denied`.
    error: Option<String>,
    /// The provider's explanation.
    error_description: Option<String>,
}

/// Where the provider sends the browser back; needs no token (the single-use `state` is
/// the lock). Answers a plain-text page.
#[utoipa::path(get, path = "/oauth/callback", tag = "server", security(()), params(CallbackQuery),
    responses((status = 200, description = "Authorized", content_type = "text/plain", body = String),
        (status = 400, description = "No such state (stale, replayed or never issued), no code, or the provider refused", content_type = "text/plain", body = String),
        (status = 500, description = "The store failed", content_type = "text/plain", body = String)))]
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

/// One installed version of a connector.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorVersion {
    /// The connector's name.
    pub name: String,
    /// Its version number.
    pub version: u32,
    /// The sha256 of the component.
    pub sha256: String,
    /// The WIT contract it implements.
    pub contract: String,
    /// Whether this version serves its integrations.
    pub active: bool,
    /// When it was installed (ms since the epoch).
    pub installed_at_ms: i64,
}

/// Every installed version of every connector.
#[utoipa::path(get, path = "/api/connectors", tag = "connectors",
    responses((status = 200, description = "The versions", body = Vec<ConnectorVersion>)))]
async fn connectors(State(s): State<AdminState>) -> Response {
    let list: Vec<_> = s
        .app
        .registry()
        .list(None)
        .into_iter()
        .map(|v| ConnectorVersion {
            installed_at_ms: crate::store::to_ms(v.record.installed_at),
            name: v.record.name,
            version: v.record.version,
            sha256: v.record.sha256,
            contract: v.record.contract,
            active: v.active,
        })
        .collect();
    Json(list).into_response()
}

/// The query of a connector install.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct InstallQuery {
    /// `true` approves the manifest's hosts and methods as they are (`--approve-hosts`).
    #[serde(default)]
    approve_hosts: bool,
}

/// A connector's name.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ConnectorName {
    /// 1 to 64 of `a-z 0-9 - _`, starting with a letter or digit.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: String,
}

/// What an install did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Installed {
    /// The connector's name.
    pub name: String,
    /// The version now active.
    pub version: u32,
    /// The sha256 of the component.
    pub sha256: String,
    /// Whether these bytes were already a stored version.
    pub existing: bool,
    /// Integrations the canary ran `configure` for.
    pub canary_configured: usize,
    /// Integrations the canary ran `test` for.
    pub canary_tested: usize,
    /// Integrations the canary pulled one page for.
    pub canary_pulled: usize,
    /// What the version may reach, as approved: `hosts` and `credential-methods`.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
}

/// Installs a component as the newest version of connector `name` and activates it, after a
/// canary against the existing integrations.
#[utoipa::path(post, path = "/api/connectors/{name}", tag = "connectors",
    params(ConnectorName, InstallQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm",
        description = "The component (WASI 0.2) with its `sluice:manifest` section"),
    responses((status = 201, description = "Installed and active", body = Installed),
        (status = 400, description = "The path or the query is malformed", body = ErrorBody),
        (status = 403, description = "The manifest reaches further than the active version; approve with `approve_hosts=true`", body = ErrorBody),
        (status = 413, description = "The body is over 64 MiB", body = ErrorBody),
        (status = 422, description = "Not a valid component, manifest or name, or the canary rejected it", body = ErrorBody),
        (status = 500, description = "The engine or the store failed", body = ErrorBody)))]
async fn install_connector(
    State(s): State<AdminState>,
    name: Result<Path<ConnectorName>, PathRejection>,
    query: Result<Query<InstallQuery>, QueryRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (Path(ConnectorName { name }), Query(query), body) = (name?, query?, body?);
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
    let manifest = serde_json::to_value(&*report.manifest)
        .map_err(|e| AppError::Internal(format!("the manifest does not serialize: {e}")))?;
    Ok((
        StatusCode::CREATED,
        Json(Installed {
            name: report.name,
            version: report.version,
            sha256: report.sha256,
            existing: report.existing,
            canary_configured: report.canary_configured,
            canary_tested: report.canary_tested,
            canary_pulled: report.canary_pulled,
            manifest,
        }),
    )
        .into_response())
}

/// Prometheus counters and gauges of the engine, the scheduler and the integrations.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Prometheus text format 0.0.4",
        content_type = "text/plain", body = String)))]
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
