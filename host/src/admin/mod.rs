//! The admin API (JSON over HTTP, axum) for the platform: the CLI's operations under
//! `/api/integrations...`, `/api/connectors...` and `/api/webhooks...`, the OAuth callback at `/oauth/callback`,
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
use crate::views::{ChangesView, IntegrationView, ListRow, RecordView, TestView};

mod authorization;
mod connectors;
mod error;
mod integrations;
mod webhooks;

pub(crate) use authorization::*;
pub(crate) use connectors::*;
pub use error::{ApiError, ErrorBody};
pub(crate) use integrations::*;
pub(crate) use webhooks::*;

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
    /// Who may use the web console.
    pub console: Arc<crate::console::ConsoleAccess>,
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
            console: Arc::new(crate::console::ConsoleAccess::default()),
        })
    }
}

/// The largest component upload: the registry's own limit.
pub(crate) const COMPONENT_BODY_LIMIT: usize =
    crate::engine::registry::MAX_COMPONENT_BYTES as usize;

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
        .route("/api/integrations/{id}/pause", json_only(post(pause)))
        .route("/api/integrations/{id}/resume", json_only(post(resume)))
        .route("/api/integrations/{id}/runs", get(runs))
        .route("/api/integrations/{id}/records", get(records))
        .route("/api/integrations/{id}/changes", get(changes))
        .route("/api/integrations/{id}/streams", get(streams))
        .route(
            "/api/integrations/{id}/authorize",
            json_only(post(authorize)),
        )
        .route(
            "/api/integrations/{id}/credentials",
            json_only(post(credentials)),
        )
        .route("/api/webhooks", json_only(get(webhooks).post(add_webhook)))
        .route("/api/webhooks/{id}", axum::routing::delete(remove_webhook))
        .route("/api/webhooks/{id}/deliveries", get(webhook_deliveries))
        .route("/api/webhooks/{id}/retry", json_only(post(retry_webhook)))
        .route("/api/connectors", get(connectors))
        .route("/api/connectors/{name}/about", get(about_connector))
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
        .merge(crate::console::router(state.clone()))
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
        use crate::store::IntegrationState as S;
        for state in [S::PendingAuthorization, S::Active, S::NeedsReauthorization] {
            let n = list.iter().filter(|i| i.state == state).count();
            let label = state.as_str();
            let _ = writeln!(out, "sluice_integrations{{state=\"{label}\"}} {n}");
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
