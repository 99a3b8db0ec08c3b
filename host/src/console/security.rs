//! The console's locks: the login session and the CSRF token of every form.
//!
//! Threat: whoever can open a page of the console acts with the operator's full authority.
//! On loopback that is not only the operator: every other account and process on the machine
//! reaches 127.0.0.1 too, and the admin token (readable by the operator alone) is what keeps
//! them from the JSON API. A page on another site can also make the operator's browser send
//! forms here.
//! Rule:
//! - Every page but the sign-in page needs a session cookie (HttpOnly, SameSite=Strict),
//!   wherever `serve` listens. A session is opened by typing the admin token, or once by the
//!   sign-in link `serve` prints on its own terminal: a random code, good for one use within
//!   [`SIGN_IN_CODE_LIFETIME`].
//! - Every POST carries a CSRF token equal to the browser's own CSRF cookie. A file upload
//!   (`multipart/form-data`) is accepted only at the paths in [`UPLOAD_PATHS`], whose handler
//!   reads the CSRF field first, before any file ([`csrf_field_first`]); a multipart body
//!   anywhere else is refused unread.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// The paths whose form uploads a file: their handlers check the CSRF field themselves,
/// after the session check and under the upload's own size cap.
const UPLOAD_PATHS: &[&str] = &["/connectors/upload"];
/// The longest CSRF field read from an upload.
const CSRF_FIELD_LIMIT: usize = 256;

/// How long the printed sign-in link works, if nobody used it.
pub const SIGN_IN_CODE_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Who may use the console.
#[derive(Debug)]
pub struct ConsoleAccess {
    /// The sign-in link's code and when it was made, until it is used.
    sign_in_code: Mutex<Option<(String, Instant)>>,
    /// The live session ids.
    sessions: Mutex<HashSet<String>>,
    /// Uploaded components waiting for the operator's approval of their hosts.
    pub(crate) uploads: super::connectors::PendingUploads,
}

impl Default for ConsoleAccess {
    fn default() -> Self {
        Self {
            sign_in_code: Mutex::new(Some((crate::secrets::random_token(32), Instant::now()))),
            sessions: Mutex::new(HashSet::new()),
            uploads: Default::default(),
        }
    }
}

impl ConsoleAccess {
    /// The code of the sign-in link `serve` prints, while it has not been used.
    pub fn sign_in_code(&self) -> Option<String> {
        let code = self.sign_in_code.lock().expect("sign-in code lock");
        code.as_ref().map(|(c, _)| c.clone())
    }

    /// Whether `given` is the unused, unexpired sign-in code; it works once.
    fn redeem(&self, given: &str) -> bool {
        let mut code = self.sign_in_code.lock().expect("sign-in code lock");
        let valid = code.as_ref().is_some_and(|(c, made)| {
            made.elapsed() < SIGN_IN_CODE_LIFETIME
                && constant_time_eq(given.as_bytes(), c.as_bytes())
        });
        if valid {
            *code = None;
        }
        valid
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
    let upload = is_multipart(req.headers());
    if req.method() == Method::POST && upload && !UPLOAD_PATHS.contains(&req.uri().path()) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this form takes no file: send it url-encoded",
        )
            .into_response();
    }
    if req.method() == Method::POST && !upload {
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

/// Whether the request's body is `multipart/form-data`.
fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// Reads an upload's first field, which must be the CSRF field equal to `token`; the form
/// puts it first so nothing else is read from a forged post.
pub(crate) async fn csrf_field_first(
    form: &mut axum::extract::Multipart,
    token: &CsrfToken,
) -> Result<(), Response> {
    let refused = || {
        (
            StatusCode::FORBIDDEN,
            "this upload is stale or came from another site (its CSRF token is missing or \
             does not match): reload the page and try again",
        )
            .into_response()
    };
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        (
            e.status(),
            format!("the upload could not be read: {}", e.body_text()),
        )
            .into_response()
    };
    let mut field = match form.next_field().await.map_err(unreadable)? {
        Some(f) if f.name() == Some(CSRF_FIELD) => f,
        _ => return Err(refused()),
    };
    let mut given = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
        given.extend_from_slice(&chunk);
        if given.len() > CSRF_FIELD_LIMIT {
            return Err(refused());
        }
    }
    if !constant_time_eq(&given, token.0.as_bytes()) {
        return Err(refused());
    }
    Ok(())
}

/// Middleware: pages need a login session.
pub(crate) async fn require_session(
    State(s): State<AdminState>,
    req: Request,
    next: Next,
) -> Response {
    let access = &s.console;
    let signed_in = cookie(req.headers(), SESSION_COOKIE).is_some_and(|id| access.has_session(id));
    if !signed_in {
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

/// Sends a page asked for at a loopback address (`127.0.0.1:7070`) to the same page on the
/// public URL when that names `localhost` on the same port (the default): the OAuth callback,
/// the popup's message to its opener and the session cookie all belong to that origin, so a
/// setup begun at the address would stop at the callback. Other requests pass.
pub(crate) async fn to_public_origin(
    State(s): State<AdminState>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(req.method(), &Method::GET | &Method::HEAD)
        && let Some(there) = public_twin(req.headers(), &s.public_url)
    {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        return Redirect::to(&format!("{there}{path}")).into_response();
    }
    next.run(req).await
}

/// The public URL's origin, when `headers`' `Host` is a loopback address with the port of a
/// public URL on `localhost`.
fn public_twin(headers: &HeaderMap, public_url: &str) -> Option<String> {
    let public = url::Url::parse(public_url).ok()?;
    if public.host_str() != Some("localhost") {
        return None;
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let asked = url::Url::parse(&format!("http://{host}")).ok()?;
    let loopback = match asked.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(_) => false,
    };
    (loopback && asked.port_or_known_default() == public.port_or_known_default())
        .then(|| public.origin().ascii_serialization())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    shell: Shell,
    error: Option<String>,
}

/// The query of `GET /login`: the printed sign-in link's code, if it was followed.
#[derive(serde::Deserialize)]
pub(crate) struct SignInLink {
    code: Option<String>,
}

/// `GET /login`: the sign-in form, or a session when the printed link's code is good.
pub(crate) async fn login_page(
    State(s): State<AdminState>,
    axum::Extension(csrf): axum::Extension<CsrfToken>,
    axum::extract::Query(link): axum::extract::Query<SignInLink>,
) -> Response {
    let Some(code) = link.code else {
        return render(&LoginPage {
            shell: Shell::new("Sign in", csrf),
            error: None,
        });
    };
    if s.console.redeem(&code) {
        return open_session(&s);
    }
    let page = LoginPage {
        shell: Shell::new("Sign in", csrf),
        error: Some(
            "That sign-in link was used already, has expired or is not this server's. \
             Sign in with the admin token: `sluice admin-token` prints it."
                .into(),
        ),
    };
    (StatusCode::UNAUTHORIZED, render(&page)).into_response()
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
    open_session(&s)
}

/// A new session: its cookie, and a redirect to the integrations list.
fn open_session(s: &AdminState) -> Response {
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
