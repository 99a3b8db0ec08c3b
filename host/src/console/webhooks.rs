//! The Webhooks page: the endpoints events go to, host-wide or for one integration, with their
//! delivery counts and last error; adding one (its signing secret shown this once), removing
//! one after a confirmation, and putting given-up deliveries back in line.
//!
//! The same operations as `sluice webhooks …` and `/api/webhooks`, through the same runtime
//! calls: a URL is checked against the webhook egress rules before it is stored.

use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::list::{failure, urlencode};
use super::page::{Shell, render, when};
use super::security::CsrfToken;
use crate::admin::AdminState;
use crate::app::AppError;
use crate::store::WebhookEndpoint;

/// One endpoint as the page shows it.
pub(crate) struct EndpointRow {
    id: String,
    url: String,
    scope: String,
    added: String,
    pending: i64,
    delivered: i64,
    failed: i64,
    last_error: Option<String>,
}

/// An integration an endpoint may be limited to.
pub(crate) struct ScopeChoice {
    id: String,
    name: String,
}

/// What the add form holds: its values and its error, if it was refused.
#[derive(Default)]
pub(crate) struct AddForm {
    url: String,
    integration: String,
    url_error: Option<String>,
    integration_error: Option<String>,
}

impl AddForm {
    /// The refused fields as the error summary lists them: `(#field, message)`.
    fn errors(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        if let Some(e) = &self.url_error {
            errors.push(("#webhook-url", format!("Endpoint URL: {e}")));
        }
        if let Some(e) = &self.integration_error {
            errors.push(("#webhook-integration", format!("Events of: {e}")));
        }
        errors
    }
}

/// An endpoint just added: where it points and its signing secret.
pub(crate) struct Added {
    url: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    shell: Shell,
    endpoints: Vec<EndpointRow>,
    choices: Vec<ScopeChoice>,
    form: AddForm,
    errors: Vec<(&'static str, String)>,
    added: Option<Added>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "webhook_remove.html")]
struct RemovePage {
    shell: Shell,
    endpoint: EndpointRow,
}

/// The query of the page: what was just done.
#[derive(serde::Deserialize, Default)]
pub(crate) struct DoneQuery {
    removed: Option<String>,
    requeued: Option<usize>,
}

/// The add form as posted.
#[derive(serde::Deserialize)]
pub(crate) struct AddFields {
    url: String,
    #[serde(default)]
    integration: String,
}

/// `GET /webhooks`.
pub(crate) async fn page(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let notice = match (q.removed, q.requeued) {
        (Some(url), _) => Some(format!(
            "The endpoint {url} is removed, with its deliveries."
        )),
        (None, Some(0)) => Some("No given-up delivery to put back in line.".to_string()),
        (None, Some(n)) => Some(format!(
            "{n} given-up deliveries are back in line; they go out within seconds."
        )),
        (None, None) => None,
    };
    show(&s, csrf, AddForm::default(), None, notice, StatusCode::OK)
}

/// `POST /webhooks`: adds an endpoint and shows its signing secret, or the form's errors.
pub(crate) async fn add(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    axum::Form(fields): axum::Form<AddFields>,
) -> Response {
    let url = fields.url.trim().to_string();
    let integration = Some(fields.integration.as_str()).filter(|i| !i.is_empty());
    let mut form = AddForm {
        url: url.clone(),
        integration: fields.integration.clone(),
        ..AddForm::default()
    };
    if url.is_empty() {
        form.url_error = Some("enter the URL events are POSTed to".into());
        return show(&s, csrf, form, None, None, StatusCode::UNPROCESSABLE_ENTITY);
    }
    match crate::webhooks::add_endpoint(&s.app, &url, integration) {
        Ok((endpoint, secret)) => {
            let added = Added {
                url: endpoint.url,
                secret: secret.expose().to_string(),
            };
            show(
                &s,
                csrf,
                AddForm::default(),
                Some(added),
                None,
                StatusCode::OK,
            )
        }
        Err(AppError::Invalid(issues)) => {
            let said = issues.into_iter().map(|i| i.message).collect::<Vec<_>>();
            form.url_error = Some(said.join("; "));
            show(&s, csrf, form, None, None, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(AppError::NotFound(e)) => {
            form.integration_error = Some(e);
            show(&s, csrf, form, None, None, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => failure(&e),
    }
}

/// `GET /webhooks/{id}/remove`: what removing the endpoint does, and the button to do it.
pub(crate) async fn confirm_remove(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
) -> Response {
    let names = integration_names(&s);
    match s.app.store().webhook_endpoint(&id) {
        Ok(endpoint) => render(&RemovePage {
            shell: Shell::new("Remove a webhook endpoint", csrf),
            endpoint: row(endpoint, &names),
        }),
        Err(e) => failure(&e.into()),
    }
}

/// `POST /webhooks/{id}/remove`.
pub(crate) async fn remove(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    let store = s.app.store();
    let removed = store
        .webhook_endpoint(&id)
        .and_then(|endpoint| store.delete_webhook_endpoint(&id).map(|()| endpoint.url));
    match removed {
        Ok(url) => Redirect::to(&format!("/webhooks?removed={}", urlencode(&url))).into_response(),
        Err(e) => failure(&e.into()),
    }
}

/// `POST /webhooks/{id}/retry`: puts the endpoint's given-up deliveries back in line.
pub(crate) async fn retry(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    match s.app.store().retry_failed_deliveries(&id) {
        Ok(n) => Redirect::to(&format!("/webhooks?requeued={n}")).into_response(),
        Err(e) => failure(&e.into()),
    }
}

/// The page with `form` (and its errors), the endpoint just `added`, or a `notice`.
fn show(
    s: &AdminState,
    csrf: CsrfToken,
    form: AddForm,
    added: Option<Added>,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let names = integration_names(s);
    let endpoints = match s.app.store().webhook_endpoints() {
        Ok(endpoints) => endpoints.into_iter().map(|e| row(e, &names)).collect(),
        Err(e) => return failure(&e.into()),
    };
    let choices = names
        .into_iter()
        .map(|(id, name)| ScopeChoice { id, name })
        .collect();
    let page = WebhooksPage {
        shell: Shell::new("Webhooks", csrf),
        endpoints,
        choices,
        errors: form.errors(),
        form,
        added,
        notice,
    };
    (status, render(&page)).into_response()
}

/// Every integration's id and name, newest first; none when the store fails (the page then
/// offers host-wide endpoints only).
fn integration_names(s: &AdminState) -> Vec<(String, String)> {
    s.app
        .store()
        .integrations()
        .map(|all| all.into_iter().map(|i| (i.id, i.name)).collect())
        .unwrap_or_default()
}

fn row(e: WebhookEndpoint, names: &[(String, String)]) -> EndpointRow {
    let scope = match &e.integration_id {
        None => "every integration, and the host".to_string(),
        Some(id) => match names.iter().find(|(known, _)| known == id) {
            Some((_, name)) => format!("{name} ({id})"),
            None => id.clone(),
        },
    };
    EndpointRow {
        added: when(e.created_at_ms),
        id: e.id,
        url: e.url,
        scope,
        pending: e.pending,
        delivered: e.delivered,
        failed: e.failed,
        last_error: e.last_error,
    }
}
