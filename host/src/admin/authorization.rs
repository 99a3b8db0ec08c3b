//! Connecting an integration: the authorization start and the OAuth callback, or an API key
//! or basic credentials entered once.

use super::*;

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
pub(crate) async fn authorize(
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
pub(crate) struct CallbackQuery {
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
    responses((status = 200, description = "Authorized", content_type = "text/html", body = String),
        (status = 400, description = "No such state (stale, replayed or never issued), no code, or the provider refused", content_type = "text/html", body = String),
        (status = 500, description = "The store failed", content_type = "text/html", body = String)))]
pub(crate) async fn oauth_callback(
    State(s): State<AdminState>,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let callback = Callback::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let outcome = s.app.complete_authorization(callback).await;
    crate::console::callback_page(outcome, &headers, &s.public_url)
}

/// Credentials a person enters for an integration whose connector asks for them. The secret is
/// stored sealed and never shown again.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum CredentialsBody {
    /// An API key or token, sent in the header the connector's plan names.
    ApiKey {
        /// The key.
        key: String,
    },
    /// HTTP basic credentials.
    Basic {
        /// The user name.
        username: String,
        /// The password (or API token).
        password: String,
    },
}

impl From<CredentialsBody> for crate::app::EnteredSecret {
    fn from(body: CredentialsBody) -> Self {
        use crate::secrets::Secret;
        match body {
            CredentialsBody::ApiKey { key } => Self::ApiKey {
                key: Secret::new(key),
            },
            CredentialsBody::Basic { username, password } => Self::Basic {
                username,
                password: Secret::new(password),
            },
        }
    }
}

/// Stores an API key or basic credentials; the integration is then active, and an OAuth token
/// they replace is revoked at the provider.
#[utoipa::path(post, path = "/api/integrations/{id}/credentials", tag = "integrations", params(IntegrationId),
    request_body(content = CredentialsBody, content_type = "application/json"),
    responses((status = 200, description = "Stored; the integration is active. When it held an OAuth token, `superseded_token` says whether the provider revoked it (the credentials are stored either way)", body = crate::app::EnteredConnection),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 409, description = "The credentials belong to another account than the integration's", body = ErrorBody),
        (status = 413, description = "The body is over 2 MiB", body = ErrorBody),
        (status = 422, description = "Not the kind of credentials the connector's plan asks for (the message names it), an empty field, or a body that is not one of the kinds", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody)))]
pub(crate) async fn credentials(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    let body: CredentialsBody = parse_body(&body?)?;
    let connected = s.app.connect_entered(&id, body.into()).await?;
    Ok(Json(connected).into_response())
}
