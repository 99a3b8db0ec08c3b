//! Answers in Zendesk's shapes: JSON with Zendesk's content type, and the error bodies
//! its API sends (each one's source is in the README).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

/// A JSON answer.
pub fn json(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// `{"error": code, "description": text}` with `status`: the shape of Zendesk's API errors.
pub fn error(status: StatusCode, code: &str, description: impl Into<String>) -> Response {
    json(
        status,
        &json!({"error": code, "description": description.into()}),
    )
}

/// 404 for an id the account does not have (or a deleted ticket).
pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "RecordNotFound", "Not found")
}

/// 401 for missing or wrong credentials (no token, a wrong API token, an unknown email).
pub fn cannot_authenticate() -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        &json!({"error": "Couldn't authenticate you"}),
    )
}

/// 401 for a bearer token that is unknown, expired or revoked.
pub fn invalid_token() -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        &json!({
            "error": "invalid_token",
            "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons."
        }),
    )
}

/// 403 for an OAuth token whose scopes do not cover the resource.
pub fn missing_scope() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        "You are missing the following required scopes: read",
    )
}

/// 400 for a malformed parameter, naming it.
pub fn bad_parameter(description: impl Into<String>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidPaginationParameter",
        description,
    )
}
