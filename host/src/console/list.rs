//! The integrations list, with Test Connection, Edit, Pull now, Pause or Resume, and Delete on
//! each row.

use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::page::{Shell, render, when};
use super::security::CsrfToken;
use crate::admin::AdminState;
use crate::app::AppError;
use crate::engine::wit::types::{FailureKind, TestReport};
use crate::store::{IntegrationState, TokenHealthState};
use crate::views::{ListRow, TestView};

/// One row as the list shows it.
pub(crate) struct Row {
    id: String,
    name: String,
    connector: String,
    capability: String,
    state: &'static str,
    state_class: &'static str,
    last_run: String,
    token: &'static str,
    just_connected: bool,
    paused: bool,
}

impl Row {
    fn from(row: &ListRow, connected: Option<&str>) -> Self {
        let i = &row.integration;
        let paused = i.paused_at_ms.is_some();
        let (state, state_class) = match paused {
            true => ("Paused", "paused"),
            false => state_words(i.state),
        };
        Self {
            id: i.id.clone(),
            name: i.name.clone(),
            connector: i.connector.clone(),
            capability: i.settings.capability.clone(),
            state,
            state_class,
            last_run: row
                .last_run
                .as_ref()
                .map(|r| {
                    format!(
                        "{} · {} · {} records",
                        when(r.started_at_ms),
                        r.status,
                        r.records
                    )
                })
                .unwrap_or_else(|| "never".into()),
            token: token_words(row.token.as_ref().map(|t| t.health)),
            just_connected: connected == Some(i.id.as_str()),
            paused,
        }
    }
}

/// A state in words, and the class that adds an icon beside them.
pub(crate) fn state_words(state: IntegrationState) -> (&'static str, &'static str) {
    match state {
        IntegrationState::PendingAuthorization => ("Not connected yet", "warn"),
        IntegrationState::Active => ("Active", "ok"),
        IntegrationState::NeedsReauthorization => ("Needs re-authorization", "bad"),
    }
}

fn token_words(health: Option<TokenHealthState>) -> &'static str {
    match health {
        None => "No token",
        Some(TokenHealthState::Ok) => "Token OK",
        Some(TokenHealthState::Dead) => "Token dead",
        Some(TokenHealthState::Unchecked) => "Token not checked yet",
        Some(TokenHealthState::Unreachable) => "Provider unreachable at last check",
    }
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<Row>,
    notice: Option<String>,
}

/// What the list page's query may say.
#[derive(serde::Deserialize, Default)]
pub(crate) struct ListQuery {
    /// The integration that was just connected.
    connected: Option<String>,
    /// The name of the integration that was just deleted.
    deleted: Option<String>,
    /// The integration whose pull just started.
    pulling: Option<String>,
    /// The integration just paused.
    paused: Option<String>,
    /// The integration just resumed.
    resumed: Option<String>,
}

/// `GET /`: the integrations, newest first.
pub(crate) async fn page(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<ListQuery>,
) -> Response {
    let listed = match crate::views::list_rows(&s.app) {
        Ok(rows) => rows,
        Err(e) => return failure(&e),
    };
    let rows: Vec<Row> = listed
        .iter()
        .map(|r| Row::from(r, q.connected.as_deref()))
        .collect();
    let name_of = |id: &str| rows.iter().find(|r| r.id == id).map(|r| r.name.clone());
    let notice = if let Some(id) = &q.connected {
        name_of(id).map(|n| format!("Connected: {n} is authorized and ready."))
    } else if let Some(name) = &q.deleted {
        Some(format!("Deleted {name} with its records and tokens."))
    } else if let Some(id) = &q.pulling {
        name_of(id).map(|n| format!("Pull started for {n}: the last run column follows it."))
    } else if let Some(id) = &q.paused {
        name_of(id).map(|n| {
            format!("Paused {n}: no pulls until you resume it. Its data and token are kept.")
        })
    } else if let Some(id) = &q.resumed {
        name_of(id).map(|n| format!("Resumed {n}: it pulls on its schedule again."))
    } else {
        None
    };
    render(&ListPage {
        shell: Shell::new("Integrations", csrf),
        rows,
        notice,
    })
}

/// A store or runtime failure as a page.
pub(crate) fn failure(e: &AppError) -> Response {
    let status = match e {
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::AlreadyRunning(_) | AppError::Paused(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, format!("Sluice could not do that: {e}")).into_response()
}

/// What Test Connection found, in words.
pub(crate) struct TestResult {
    ok: bool,
    headline: String,
    detail: Option<String>,
    probes: Vec<(bool, String, String)>,
    needs_reauthorization: bool,
    id: String,
}

impl TestResult {
    fn of(
        id: &str,
        outcome: Result<TestReport, AppError>,
        state: Option<IntegrationState>,
    ) -> Self {
        let reauthorize = |r: &TestReport| {
            r.failure.as_ref().map(|f| f.kind) == Some(FailureKind::ReauthorizationRequired)
        };
        let needs_reauthorization = state == Some(IntegrationState::NeedsReauthorization)
            || outcome.as_ref().is_ok_and(reauthorize);
        let outcome = outcome.map(|r| TestView::from(&r));
        match outcome {
            Ok(v) => Self {
                ok: v.ok,
                headline: match (&v.failure, v.ok) {
                    (_, true) => format!(
                        "Connection OK{}",
                        v.user
                            .as_deref()
                            .map(|u| format!(" as {u}"))
                            .unwrap_or_default()
                    ),
                    (_, false) if needs_reauthorization => "Re-authorization required".into(),
                    (Some(f), false) => format!("Connection failed ({})", f.kind),
                    (None, false) => "Connection failed".into(),
                },
                detail: v.failure.as_ref().map(|f| f.message.clone()),
                probes: v
                    .probes
                    .iter()
                    .map(|p| (p.ok, p.name.clone(), p.detail.clone()))
                    .collect(),
                needs_reauthorization,
                id: id.into(),
            },
            Err(e) => Self {
                ok: false,
                headline: match (&e, needs_reauthorization) {
                    (_, true) => "Re-authorization required".into(),
                    (AppError::NotConnected(_), false) => "Not connected yet".into(),
                    _ => "Connection failed".into(),
                },
                detail: Some(e.to_string()),
                probes: Vec::new(),
                needs_reauthorization: needs_reauthorization
                    || matches!(e, AppError::NotConnected(_)),
                id: id.into(),
            },
        }
    }
}

#[derive(Template)]
#[template(path = "test_result.html")]
struct TestFragment {
    result: TestResult,
}

#[derive(Template)]
#[template(path = "test_page.html")]
struct TestPage {
    shell: Shell,
    result: TestResult,
}

/// `POST /integrations/{id}/test`: Test Connection; a fragment for the page's script, a whole
/// page without it.
pub(crate) async fn test(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let outcome = s.app.test(&id).await;
    if let Err(AppError::NotFound(_)) = &outcome {
        return StatusCode::NOT_FOUND.into_response();
    }
    let state = s.app.store().integration(&id).ok().map(|i| i.state);
    let result = TestResult::of(&id, outcome, state);
    match headers.contains_key("x-sluice-fragment") {
        true => render(&TestFragment { result }),
        false => render(&TestPage {
            shell: Shell::new("Test Connection", csrf),
            result,
        }),
    }
}

/// `POST /integrations/{id}/delete` (the page asks for confirmation first).
pub(crate) async fn delete(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    let name = match s.app.store().integration(&id) {
        Ok(i) => i.name,
        Err(e) => return failure(&e.into()),
    };
    match s.app.delete_integration(&id).await {
        Ok(()) => Redirect::to(&format!("/?deleted={}", urlencode(&name))).into_response(),
        Err(e) => failure(&e),
    }
}

/// `POST /integrations/{id}/pull`: starts a pull in the background.
pub(crate) async fn pull(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    let claim = match crate::runner::claim(&s.app, &id) {
        Ok(c) => c,
        Err(e) => return failure(&e),
    };
    let app = s.app.clone();
    let run_id = id.clone();
    tokio::spawn(async move {
        let opts = crate::runner::PullOptions {
            trigger: "console".into(),
            ..crate::runner::PullOptions::default()
        };
        if let Err(e) = crate::runner::run_claimed(&app, &claim, opts).await {
            tracing::warn!(integration = %run_id, error = %e, "pull started from the console failed");
        }
    });
    Redirect::to(&format!("/?pulling={}", urlencode(&id))).into_response()
}

/// `POST /integrations/{id}/pause`: no pulls until it is resumed.
pub(crate) async fn pause(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    set_paused(&s, &id, true)
}

/// `POST /integrations/{id}/resume`.
pub(crate) async fn resume(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    set_paused(&s, &id, false)
}

fn set_paused(s: &AdminState, id: &str, paused: bool) -> Response {
    let said = if paused { "paused" } else { "resumed" };
    match s.app.set_paused(id, paused) {
        Ok(_) => Redirect::to(&format!("/?{said}={}", urlencode(id))).into_response(),
        Err(e) => failure(&e),
    }
}

/// `text` as a query value.
pub(crate) fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
