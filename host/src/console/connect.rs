//! Connect and Re-generate Token: the authorization start the page's script opens in a popup
//! (or the whole page, when the popup is blocked), and the state the page polls.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::callback::RETURN_COOKIE;
use crate::admin::AdminState;
use crate::app::AppError;
use crate::oauth::OAuthError;

/// The form of `POST /integrations/{id}/authorize`.
#[derive(serde::Deserialize)]
pub(crate) struct AuthorizeForm {
    /// `redirect` when the popup was blocked and the whole page goes to the provider.
    #[serde(default)]
    mode: Option<String>,
}

/// `POST /integrations/{id}/authorize`: `{"authorize_url"}` to open.
pub(crate) async fn authorize(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<AuthorizeForm>,
) -> Response {
    let redirect = format!("{}/oauth/callback", s.public_url.trim_end_matches('/'));
    let start = match s.app.begin_authorization(&id, &redirect).await {
        Ok(start) => start,
        Err(e) => {
            let status = match &e {
                AppError::NotFound(_) => StatusCode::NOT_FOUND,
                AppError::OAuth(OAuthError::NoClient) => StatusCode::CONFLICT,
                AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::BAD_GATEWAY,
            };
            return (status, Json(json!({"error": e.to_string()}))).into_response();
        }
    };
    let mut resp = Json(json!({"authorize_url": start.url.to_string()})).into_response();
    if form.mode.as_deref() == Some("redirect") {
        // Lax: the provider's redirect back is a cross-site top-level navigation.
        let cookie =
            format!("{RETURN_COOKIE}=console; Path=/oauth; HttpOnly; SameSite=Lax; Max-Age=900");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// `GET /integrations/{id}/status`: the state and when the current token was obtained, so the
/// page sees a connect finish even when the popup cannot tell it.
pub(crate) async fn status(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    let integration = match s.app.store().integration(&id) {
        Ok(i) => i,
        Err(e) => {
            return (StatusCode::NOT_FOUND, Json(json!({"error": e.to_string()}))).into_response();
        }
    };
    let obtained = s
        .app
        .store()
        .token_health(&id)
        .ok()
        .flatten()
        .map(|t| t.obtained_at_ms);
    Json(json!({
        "state": integration.state.as_str(),
        "token_obtained_at_ms": obtained,
    }))
    .into_response()
}
