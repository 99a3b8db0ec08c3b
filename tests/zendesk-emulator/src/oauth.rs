//! Zendesk's OAuth 2.0: the authorization code grant (with PKCE) at
//! `/oauth/authorizations/new`, and `/oauth/tokens` for the authorization code and refresh
//! token grants.
//!
//! Threat: a stolen code or refresh token used by someone else. Rules, as Zendesk documents
//! them: a code is single-use, short-lived and bound to its client and redirect URL; with
//! PKCE it is redeemed only with the verifier of its S256 challenge; a refresh returns a new
//! access and refresh token and invalidates the previous pair, so a refresh token is
//! single-use too.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use crate::reply;
use crate::state::Shared;

/// Scopes a token may carry.
pub const SCOPES: &[&str] = &[
    "read",
    "write",
    "impersonate",
    "tickets:read",
    "tickets:write",
    "users:read",
    "users:write",
    "organizations:read",
    "organizations:write",
];

/// Bounds of a requested `expires_in` (exclusive), in seconds.
const ACCESS_LIFETIME_BOUNDS: (i64, i64) = (300, 172_800);
/// Bounds of a requested `refresh_token_expires_in` (inclusive), in seconds.
const REFRESH_LIFETIME_BOUNDS: (i64, i64) = (604_800, 7_776_000);

#[derive(Clone, Debug)]
pub struct Code {
    redirect_uri: String,
    scopes: Vec<String>,
    challenge: Option<String>,
    expires_at: i64,
    used: bool,
}

#[derive(Clone, Debug)]
pub struct AccessToken {
    pub scopes: Vec<String>,
    pub expires_at: i64,
    pub revoked: bool,
}

#[derive(Clone, Debug)]
pub struct RefreshToken {
    scopes: Vec<String>,
    expires_at: i64,
    revoked: bool,
    /// The access token issued with it (revoked by its use).
    access: String,
    /// Issued to a client that proved itself with PKCE rather than its secret.
    public: bool,
}

/// Every code and token issued.
#[derive(Debug, Default)]
pub struct Grants {
    codes: HashMap<String, Code>,
    pub access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
}

impl Grants {
    /// Ends every access token (refresh tokens still work); returns how many were live.
    pub fn expire_access(&mut self, now: i64) -> usize {
        let live = self.access.values_mut().filter(|t| t.expires_at > now);
        live.map(|t| t.expires_at = now).count()
    }

    /// Revokes every token; returns how many were live.
    pub fn revoke_all(&mut self) -> usize {
        let access = self.access.values_mut().filter(|t| !t.revoked);
        let a = access.map(|t| t.revoked = true).count();
        let refresh = self.refresh.values_mut().filter(|t| !t.revoked);
        a + refresh.map(|t| t.revoked = true).count()
    }
}

/// An OAuth error answer: `{"error", "error_description"}`.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    reply::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn invalid_client() -> Response {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
    )
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// Query of `/oauth/authorizations/new` (also the consent form's fields).
#[derive(Clone, Debug, Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// Only on the consent form: `allow` or `deny`.
    decision: Option<String>,
}

/// A redirect URL the client registered (or, with none registered, a loopback one).
fn redirect_allowed(shared: &Shared, uri: &str) -> bool {
    if !shared.client.redirect_urls.is_empty() {
        return shared.client.redirect_urls.iter().any(|u| u == uri);
    }
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    url.scheme() == "http"
        && matches!(
            url.host_str(),
            Some("127.0.0.1") | Some("localhost") | Some("[::1]")
        )
}

fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response(),
    };
    url.query_pairs_mut().extend_pairs(pairs);
    (
        StatusCode::FOUND,
        [(header::LOCATION, url.as_str().to_string())],
    )
        .into_response()
}

fn parse_scopes(scope: &str) -> Option<Vec<String>> {
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_string).collect();
    let known = scopes.iter().all(|s| SCOPES.contains(&s.as_str()));
    (known && !scopes.is_empty()).then_some(scopes)
}

/// `GET /oauth/authorizations/new`: the consent page, or a redirect with a code.
pub async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    let auto = shared.settings().auto_approve;
    decide(&shared, p, auto)
}

/// `POST /oauth/authorizations`: the consent page's Allow or Deny.
pub async fn consent(
    State(shared): State<Arc<Shared>>,
    Form(p): Form<AuthorizeParams>,
) -> Response {
    let allow = p.decision.as_deref() == Some("allow");
    if !allow {
        return match checked_redirect(&shared, &p) {
            Ok(uri) => redirect_with(&uri, &with_state(&p, &[("error", "access_denied")])),
            Err(r) => r,
        };
    }
    decide(&shared, p, true)
}

/// The redirect URL when the client and it are known; otherwise an error page (never a
/// redirect to an unregistered URL).
fn checked_redirect(shared: &Shared, p: &AuthorizeParams) -> Result<String, Response> {
    if p.client_id.as_deref() != Some(shared.client.client_id.as_str()) {
        return Err((
            StatusCode::BAD_REQUEST,
            Html("<h1>Invalid OAuth client</h1>"),
        )
            .into_response());
    }
    match p.redirect_uri.as_deref() {
        Some(uri) if redirect_allowed(shared, uri) => Ok(uri.to_string()),
        _ => Err((
            StatusCode::BAD_REQUEST,
            Html("<h1>Invalid redirect_uri: it is not registered for this OAuth client</h1>"),
        )
            .into_response()),
    }
}

fn with_state<'a>(p: &'a AuthorizeParams, pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut out = pairs.to_vec();
    if let Some(state) = p.state.as_deref() {
        out.push(("state", state));
    }
    out
}

fn decide(shared: &Shared, p: AuthorizeParams, approved: bool) -> Response {
    let uri = match checked_redirect(shared, &p) {
        Ok(uri) => uri,
        Err(r) => return r,
    };
    let refuse = |error: &str| redirect_with(&uri, &with_state(&p, &[("error", error)]));
    if p.response_type.as_deref() != Some("code") {
        return refuse("unsupported_response_type");
    }
    let Some(scopes) = p.scope.as_deref().and_then(parse_scopes) else {
        return refuse("invalid_scope");
    };
    let challenge = match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (None, None) => None,
        (Some(c), Some("S256")) if c.len() >= 43 => Some(c.to_string()),
        _ => return refuse("invalid_request"),
    };
    if !approved {
        return consent_page(&p);
    }
    let code = shared.secret(40);
    let lifetime = shared.settings().auth_code_lifetime_s;
    shared.grants.lock().expect("grants lock").codes.insert(
        code.clone(),
        Code {
            redirect_uri: uri.clone(),
            scopes,
            challenge,
            expires_at: shared.clock.now() + lifetime,
            used: false,
        },
    );
    redirect_with(&uri, &with_state(&p, &[("code", &code)]))
}

fn escape_attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn consent_page(p: &AuthorizeParams) -> Response {
    let fields = [
        ("response_type", &p.response_type),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", &p.state),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
    ];
    let hidden: String = fields
        .iter()
        .filter_map(|(name, value)| {
            value.as_deref().map(|v| {
                format!(
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                    escape_attr(v)
                )
            })
        })
        .collect();
    Html(format!(
        "<!doctype html><title>Allow access</title><h1>Allow access to your Zendesk account?</h1>\
         <form method=\"post\" action=\"/oauth/authorizations\">{hidden}\
         <button name=\"decision\" value=\"allow\">Allow</button>\
         <button name=\"decision\" value=\"deny\">Cancel</button></form>"
    ))
    .into_response()
}

/// Body of `POST /oauth/tokens` (JSON or form).
#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    refresh_token_expires_in: Option<i64>,
}

/// `POST /oauth/tokens`.
pub async fn tokens(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let parsed: Result<TokenRequest, String> = if is_json {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    } else {
        serde_urlencoded_form(&body)
    };
    let request = match parsed {
        Ok(r) => r,
        Err(e) => return invalid_request(&format!("unreadable token request: {e}")),
    };
    if request.client_id.as_deref() != Some(shared.client.client_id.as_str()) {
        return invalid_client();
    }
    if let Some(secret) = request.client_secret.as_deref()
        && secret != shared.client.client_secret
    {
        return invalid_client();
    }
    let lifetimes = match lifetimes(&shared, &request) {
        Ok(l) => l,
        Err(r) => return r,
    };
    match request.grant_type.as_deref() {
        Some("authorization_code") => redeem_code(&shared, &request, lifetimes),
        Some("refresh_token") => redeem_refresh(&shared, &request, lifetimes),
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        ),
        None => invalid_request("grant_type is required"),
    }
}

/// Reads a form body with the same field names as the JSON one.
fn serde_urlencoded_form(body: &[u8]) -> Result<TokenRequest, String> {
    let pairs: serde_json::Map<String, Json> = url::form_urlencoded::parse(body)
        .map(|(k, v)| {
            let value = match k.as_ref() {
                "expires_in" | "refresh_token_expires_in" => v
                    .parse::<i64>()
                    .map(Json::from)
                    .unwrap_or(Json::String(v.to_string())),
                _ => Json::String(v.to_string()),
            };
            (k.to_string(), value)
        })
        .collect();
    serde_json::from_value(Json::Object(pairs)).map_err(|e| e.to_string())
}

/// Access and refresh lifetimes: as requested when within Zendesk's bounds, else the
/// settings' defaults.
fn lifetimes(shared: &Shared, r: &TokenRequest) -> Result<(i64, i64), Response> {
    let settings = shared.settings();
    let access = r.expires_in.unwrap_or(settings.access_token_lifetime_s);
    let refresh = r
        .refresh_token_expires_in
        .unwrap_or(settings.refresh_token_lifetime_s);
    let (lo, hi) = ACCESS_LIFETIME_BOUNDS;
    if r.expires_in.is_some() && !(access > lo && access < hi) {
        return Err(invalid_request(
            "expires_in must be more than 300 and less than 172800 seconds",
        ));
    }
    let (lo, hi) = REFRESH_LIFETIME_BOUNDS;
    if r.refresh_token_expires_in.is_some() && !(lo..=hi).contains(&refresh) {
        return Err(invalid_request(
            "refresh_token_expires_in must be between 604800 and 7776000 seconds",
        ));
    }
    if refresh <= access {
        return Err(invalid_request(
            "expires_in must be less than refresh_token_expires_in",
        ));
    }
    Ok((access, refresh))
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn redeem_code(shared: &Shared, r: &TokenRequest, lifetimes: (i64, i64)) -> Response {
    let now = shared.clock.now();
    let mut grants = shared.grants.lock().expect("grants lock");
    let Some(code) = r.code.as_deref().and_then(|c| grants.codes.get_mut(c)) else {
        return invalid_grant(
            "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
        );
    };
    if code.used || code.expires_at <= now || r.redirect_uri.as_deref() != Some(&code.redirect_uri)
    {
        return invalid_grant(
            "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
        );
    }
    let public = match (&code.challenge, r.code_verifier.as_deref()) {
        (Some(challenge), Some(verifier)) if s256(verifier) == *challenge => {
            r.client_secret.is_none()
        }
        (Some(_), _) => {
            return invalid_grant(
                "The code_verifier does not match the code_challenge of the authorization request.",
            );
        }
        (None, _) if r.client_secret.is_none() => return invalid_client(),
        (None, _) => false,
    };
    code.used = true;
    let scopes = code.scopes.clone();
    let body = issue(shared, &mut grants, scopes, public, lifetimes, now);
    drop(grants);
    shared.count(|s| s.tokens_issued += 1);
    reply::json(StatusCode::OK, &body)
}

fn redeem_refresh(shared: &Shared, r: &TokenRequest, lifetimes: (i64, i64)) -> Response {
    let now = shared.clock.now();
    let mut grants = shared.grants.lock().expect("grants lock");
    let Some(old) = r
        .refresh_token
        .as_deref()
        .and_then(|t| grants.refresh.get_mut(t))
    else {
        return invalid_grant(
            "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
        );
    };
    if old.revoked || old.expires_at <= now {
        return invalid_grant(
            "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
        );
    }
    if !old.public && r.client_secret.is_none() {
        return invalid_client();
    }
    old.revoked = true;
    let (scopes, public, old_access) = (old.scopes.clone(), old.public, old.access.clone());
    if let Some(access) = grants.access.get_mut(&old_access) {
        access.revoked = true;
    }
    let body = issue(shared, &mut grants, scopes, public, lifetimes, now);
    drop(grants);
    shared.count(|s| s.tokens_refreshed += 1);
    reply::json(StatusCode::OK, &body)
}

fn issue(
    shared: &Shared,
    grants: &mut Grants,
    scopes: Vec<String>,
    public: bool,
    (access_s, refresh_s): (i64, i64),
    now: i64,
) -> Json {
    let access = shared.secret(64);
    let refresh = shared.secret(64);
    grants.access.insert(
        access.clone(),
        AccessToken {
            scopes: scopes.clone(),
            expires_at: now + access_s,
            revoked: false,
        },
    );
    grants.refresh.insert(
        refresh.clone(),
        RefreshToken {
            scopes: scopes.clone(),
            expires_at: now + refresh_s,
            revoked: false,
            access: access.clone(),
            public,
        },
    );
    json!({
        "access_token": access,
        "token_type": "bearer",
        "refresh_token": refresh,
        "scope": scopes.join(" "),
        "expires_in": access_s,
        "refresh_token_expires_in": refresh_s,
    })
}

/// Issues a token pair without the browser steps (the control API's shortcut).
pub fn grant_directly(shared: &Shared, scopes: Vec<String>) -> Json {
    let settings = shared.settings();
    let lifetimes = (
        settings.access_token_lifetime_s,
        settings.refresh_token_lifetime_s,
    );
    let now = shared.clock.now();
    let mut grants = shared.grants.lock().expect("grants lock");
    let body = issue(shared, &mut grants, scopes, false, lifetimes, now);
    drop(grants);
    shared.count(|s| s.tokens_issued += 1);
    body
}
