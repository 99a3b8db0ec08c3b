//! `/api/webhooks...`: webhook endpoints, their deliveries, and putting given-up deliveries
//! back in line.

use super::*;

use crate::store::{WebhookDelivery, WebhookEndpoint};

/// The body of `POST /api/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Where events are POSTed: https to a public host, or an origin the operator approved
    /// (`--extra-origin`).
    #[schema(min_length = 1)]
    url: String,
    /// Only this integration's events; without it, every integration's and the host's.
    integration_id: Option<String>,
}

/// An added endpoint, with its signing secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedWebhook {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// The signing secret (`whsec_...`) that verifies its requests' `webhook-signature`.
    pub secret: String,
}

/// What a retry put back in line.
#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    /// Given-up deliveries now pending again.
    pub requeued: usize,
}

/// A webhook endpoint's id.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct WebhookId {
    /// The id `POST /api/webhooks` gave it.
    #[param(pattern = "^whk_[A-Za-z0-9_-]{12}$")]
    id: String,
}

/// The deliveries a listing shows.
pub(crate) const LISTED_DELIVERIES: usize = 100;

/// Every webhook endpoint, with its delivery counts and last error.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    responses((status = 200, description = "The endpoints, oldest first", body = Vec<WebhookEndpoint>),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn webhooks(State(s): State<AdminState>) -> Result<Response, ApiError> {
    Ok(Json(s.app.store().webhook_endpoints().map_err(AppError::from)?).into_response())
}

/// Adds an endpoint; the answer carries its signing secret, shown only here.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks",
    request_body(content = WebhookBody, content_type = "application/json"),
    responses((status = 201, description = "Added", body = AddedWebhook),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 413, description = "The body is over 2 MiB", body = ErrorBody),
        (status = 422, description = "The URL is not allowed (egress rules) or the body is invalid", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn add_webhook(
    State(s): State<AdminState>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: WebhookBody = parse_body(&body?)?;
    let (endpoint, secret) =
        crate::webhooks::add_endpoint(&s.app, &body.url, body.integration_id.as_deref())?;
    let added = AddedWebhook {
        endpoint,
        secret: secret.expose().to_string(),
    };
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

/// Removes an endpoint and its deliveries.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", params(WebhookId),
    responses((status = 204, description = "Removed"),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn remove_webhook(
    State(s): State<AdminState>,
    id: Result<Path<WebhookId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(WebhookId { id }) = id?;
    s.app
        .store()
        .delete_webhook_endpoint(&id)
        .map_err(AppError::from)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An endpoint's latest deliveries: state, attempts, last status and error.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks", params(WebhookId),
    responses((status = 200, description = "At most 100 deliveries, newest event first", body = Vec<WebhookDelivery>),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn webhook_deliveries(
    State(s): State<AdminState>,
    id: Result<Path<WebhookId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(WebhookId { id }) = id?;
    let deliveries = s
        .app
        .store()
        .webhook_deliveries(Some(&id), LISTED_DELIVERIES)
        .map_err(AppError::from)?;
    Ok(Json(deliveries).into_response())
}

/// Puts an endpoint's given-up deliveries back in line, due now.
#[utoipa::path(post, path = "/api/webhooks/{id}/retry", tag = "webhooks", params(WebhookId),
    responses((status = 200, description = "Put back in line", body = Requeued),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn retry_webhook(
    State(s): State<AdminState>,
    id: Result<Path<WebhookId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(WebhookId { id }) = id?;
    let requeued = s
        .app
        .store()
        .retry_failed_deliveries(&id)
        .map_err(AppError::from)?;
    Ok(Json(Requeued { requeued }).into_response())
}
