//! The web console: server-rendered pages at `/` for setting up integrations in a browser.
//!
//! Threat: the console acts with the operator's full authority from inside a browser, where
//! every other open page can send it requests (cross-site form posts, DNS rebinding) and any
//! script that runs in its origin can read what it shows.
//! Rule:
//! - Every request passes the admin API's guard first (host names, cross-site refusal): the
//!   console is mounted inside [`crate::admin::router`].
//! - Every page but the sign-in page needs a session cookie (HttpOnly, SameSite=Strict),
//!   opened by the admin token or once by the sign-in link `serve` prints ([`security`]),
//!   also on loopback, where every account of the machine can connect.
//! - Every state-changing form carries a CSRF token that must equal the browser's own CSRF
//!   cookie ([`security`]).
//! - Pages run only the console's own script files: the Content-Security-Policy allows no
//!   inline script, no other origin, and no framing.
//! - A stored secret is never rendered: a stored client secret shows as "set". The one secret
//!   a page shows is a new webhook endpoint's signing secret, once, on the answer to the form
//!   that added it (as the CLI and the API answer it), which the receiver needs.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::admin::AdminState;

mod callback;
mod connect;
mod connectors;
mod detail;
mod form;
mod list;
mod page;
mod progress;
mod security;
mod webhooks;

pub(crate) use callback::callback_page;
pub use security::{ConsoleAccess, SIGN_IN_CODE_LIFETIME};

/// The policy every console page is served with.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The console's routes; the caller adds the guard layers.
pub fn router(state: AdminState) -> axum::Router<AdminState> {
    use axum::middleware::from_fn_with_state;
    let pages = axum::Router::new()
        .route("/", get(list::page))
        .route("/integrations/new", get(form::new_page).post(form::create))
        .route(
            "/integrations/{id}/edit",
            get(form::edit_page).post(form::update),
        )
        .route("/integrations/{id}", get(detail::page))
        .route("/integrations/{id}/progress", get(progress::part))
        .route("/integrations/{id}/test", post(list::test))
        .route("/integrations/{id}/delete", post(list::delete))
        .route("/integrations/{id}/pull", post(list::pull))
        .route("/integrations/{id}/pause", post(list::pause))
        .route("/integrations/{id}/resume", post(list::resume))
        .route("/integrations/{id}/authorize", post(connect::authorize))
        .route("/integrations/{id}/status", get(connect::status))
        .route("/connectors", get(connectors::page))
        .route(
            "/connectors/upload",
            post(connectors::upload)
                // A component may be as large as the admin API installs.
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::admin::COMPONENT_BODY_LIMIT,
                )),
        )
        .route("/connectors/approve", post(connectors::approve))
        .route(
            "/connectors/{name}/activate",
            get(connectors::confirm_activate).post(connectors::activate),
        )
        .route("/webhooks", get(webhooks::page).post(webhooks::add))
        .route(
            "/webhooks/{id}/remove",
            get(webhooks::confirm_remove).post(webhooks::remove),
        )
        .route("/webhooks/{id}/retry", post(webhooks::retry))
        .route("/logout", post(security::logout))
        .route_layer(from_fn_with_state(state.clone(), security::require_session));
    axum::Router::new()
        .route("/login", get(security::login_page).post(security::login))
        .route("/console/static/{file}", get(static_file))
        .merge(pages)
        .layer(axum::middleware::from_fn(security::ensure_csrf_cookie))
        .layer(from_fn_with_state(
            state.clone(),
            security::to_public_origin,
        ))
        .layer(axum::middleware::from_fn(with_headers))
}

/// Adds the CSP and the other headers every console answer carries.
async fn with_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The console's script and style files, compiled into the binary.
async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, mime) = match file.as_str() {
        "console.js" => (
            include_str!("../../console/static/console.js"),
            "text/javascript",
        ),
        "callback.js" => (
            include_str!("../../console/static/callback.js"),
            "text/javascript",
        ),
        "progress.js" => (
            include_str!("../../console/static/progress.js"),
            "text/javascript",
        ),
        "console.css" => (include_str!("../../console/static/console.css"), "text/css"),
        _ => return axum::http::StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, mime)], body).into_response()
}
