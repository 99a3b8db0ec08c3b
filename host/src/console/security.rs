//! The console's locks: the login session (beyond loopback) and the CSRF token of every form.

use std::collections::HashSet;
use std::sync::Mutex;

use askama::Template;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::page::{Shell, render};
use crate::admin::{AdminState, constant_time_eq};

/// The cookie holding the browser's CSRF token.
const CSRF_COOKIE: &str = "sluice_csrf";
/// The cookie holding a login session.
const SESSION_COOKIE: &str = "sluice_session";
/// The form field every state-changing form carries.
const CSRF_FIELD: &str = "csrf";
/// The largest form the console accepts.
const FORM_LIMIT: usize = 64 * 1024;

/// Who may use the console.
#[derive(Debug, Default)]
pub struct ConsoleAccess {
    /// Whether pages need a login session (the server listens beyond loopback).
    login_required: bool,
    /// The live session ids.
    sessions: Mutex<HashSet<String>>,
}

impl ConsoleAccess {
    /// The access rule of a server listening on `listen`.
    pub fn for_listen(listen: std::net::SocketAddr) -> Self {
        Self {
            login_required: !listen.ip().is_loopback(),
            sessions: Mutex::new(HashSet::new()),
        }
    }

    fn has_session(&self, id: &str) -> bool {
        self.sessions.lock().expect("sessions lock").contains(id)
    }
}

/// The request's CSRF token (the cookie's, or the one set with this answer).
#[derive(Debug, Clone)]
pub(crate) struct CsrfToken(pub(crate) String);

/// The value of cookie `name` in `headers`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Middleware: gives every browser a CSRF cookie, and refuses a POST whose form's `csrf`
/// field does not equal it.
pub(crate) async fn ensure_csrf_cookie(req: Request, next: Next) -> Response {
    let existing = cookie(req.headers(), CSRF_COOKIE)
        .filter(|t| t.len() >= 32)
        .map(String::from);
    let (mut req, token, fresh) = match existing {
        Some(t) => (req, t, false),
        None => (req, crate::secrets::random_token(32), true),
    };
    if req.method() == Method::POST {
        req = match checked_form(req, &token).await {
            Ok(req) => req,
            Err(resp) => return resp,
        };
    }
    req.extensions_mut().insert(CsrfToken(token.clone()));
    let mut resp = next.run(req).await;
    if fresh {
        let v = format!("{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The request again, once its form's CSRF field matched `token`.
async fn checked_form(req: Request, token: &str) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "the form is over 64 KiB").into_response())?;
    let given = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return Err((
            StatusCode::FORBIDDEN,
            "this form is stale or came from another site (its CSRF token does not match): \
             reload the page and try again",
        )
            .into_response());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Middleware: beyond loopback, pages need a login session.
pub(crate) async fn require_session(
    State(s): State<AdminState>,
    req: Request,
    next: Next,
) -> Response {
    let access = &s.console;
    let signed_in = cookie(req.headers(), SESSION_COOKIE).is_some_and(|id| access.has_session(id));
    if access.login_required && !signed_in {
        return match req.method() {
            &Method::GET | &Method::HEAD => Redirect::to("/login").into_response(),
            _ => (
                StatusCode::UNAUTHORIZED,
                "sign in first: open /login and enter the admin token",
            )
                .into_response(),
        };
    }
    next.run(req).await
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    shell: Shell,
    error: Option<String>,
}

/// `GET /login`.
pub(crate) async fn login_page(axum::Extension(csrf): axum::Extension<CsrfToken>) -> Response {
    render(&LoginPage {
        shell: Shell::new("Sign in", csrf),
        error: None,
    })
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

/// `POST /login`: the admin token opens a session.
pub(crate) async fn login(
    State(s): State<AdminState>,
    axum::Extension(csrf): axum::Extension<CsrfToken>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let matches = s
        .admin_token
        .as_deref()
        .is_some_and(|t| constant_time_eq(form.token.trim().as_bytes(), t.as_bytes()));
    if !matches {
        let page = LoginPage {
            shell: Shell::new("Sign in", csrf),
            error: Some("That is not the admin token. `sluice admin-token` prints it.".into()),
        };
        return (StatusCode::UNAUTHORIZED, render(&page)).into_response();
    }
    let id = crate::secrets::random_token(32);
    s.console
        .sessions
        .lock()
        .expect("sessions lock")
        .insert(id.clone());
    let secure = if s.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /logout`: ends the session.
pub(crate) async fn logout(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        s.console.sessions.lock().expect("sessions lock").remove(id);
    }
    let mut resp = Redirect::to("/login").into_response();
    let v = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&v) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
