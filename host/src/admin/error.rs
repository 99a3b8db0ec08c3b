//! The admin API's error answers: one JSON body, and the status each failure maps to.

use super::*;

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
            AppError::NotConnected(m) | AppError::OtherAccount(m) => {
                (StatusCode::CONFLICT, json!({"error": m}))
            }
            AppError::Unsupported(m) => (StatusCode::UNPROCESSABLE_ENTITY, json!({"error": m})),
            AppError::Discover(_) => (StatusCode::BAD_GATEWAY, json!({"error": error.to_string()})),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": error.to_string()}),
            ),
            AppError::AlreadyRunning(_) | AppError::Paused(_) => {
                (StatusCode::CONFLICT, json!({"error": error.to_string()}))
            }
            AppError::BadCallback(m) => (StatusCode::BAD_REQUEST, json!({"error": m})),
            AppError::UnknownCursor(m) => (StatusCode::CONFLICT, json!({"error": m})),
            AppError::ResyncRequired(m) => (StatusCode::GONE, json!({"error": m})),
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
