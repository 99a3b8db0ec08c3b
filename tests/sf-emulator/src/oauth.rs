//! OAuth 2.0 as Salesforce does it (spec §1): the authorize pages (login form, consent),
//! the token endpoint (authorization_code with PKCE, refresh_token with optional
//! rotation, client_credentials, password), revoke, introspect, userinfo and the
//! identity URL. Token responses never carry `expires_in`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use crate::dt;
use crate::ids;
use crate::state::{API_VERSION, Shared, TOKEN_CHARS};

/// Scopes granted when the request names none (the connected app's configuration).
const DEFAULT_SCOPE: &str = "api refresh_token id";

/// An access token (a Salesforce session).
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// Row number of the user in the User table.
    pub user: u32,
    pub client_id: String,
    pub scope: String,
    pub issued_at: i64,
    /// Ended by revoke, `/__emulator/tokens/expire` or rotation.
    pub ended: bool,
    /// The refresh token this session came from.
    pub refresh: Option<String>,
}

/// A refresh token.
#[derive(Clone, Debug)]
pub struct RefreshToken {
    pub user: u32,
    pub client_id: String,
    pub scope: String,
    pub revoked: bool,
    /// One approval: the token minted by a code grant and every token rotated from it.
    pub family: u64,
    /// Replaced by rotation (and so revoked); redeeming it again is a reuse.
    pub rotated: bool,
}

/// How a token response treats refresh tokens.
#[derive(Clone, Debug)]
pub enum RefreshMode {
    /// No refresh token (client credentials, JWT, password).
    None,
    /// A new approval: mint a refresh token in a new family.
    NewFamily,
    /// The session belongs to this existing refresh token, which is not echoed back.
    Existing(String),
    /// Rotation: mint the family's next refresh token.
    Rotate(u64),
}

/// The user number standing for the second org's only user.
pub const SECOND_ORG_USER: u32 = u32::MAX;

/// An authorization code awaiting redemption.
#[derive(Clone, Debug)]
pub struct AuthCode {
    pub user: u32,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub challenge: Option<String>,
    pub expires_at: i64,
}

/// A browser session created by the login form.
#[derive(Clone, Debug, Default)]
pub struct BrowserSession {
    pub user: u32,
    /// Client ids the user already approved (consent is not asked again).
    pub approved: HashSet<String>,
}

/// All OAuth state.
#[derive(Default)]
pub struct AuthState {
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
    pub codes: HashMap<String, AuthCode>,
    pub sessions: HashMap<String, BrowserSession>,
    /// The last approval (refresh-token family) number given out. Approvals are revoked
    /// oldest first, so their numbers must grow in the order they are granted.
    pub approvals: u64,
}

/// An OAuth error: `{"error","error_description"}` with a status (spec §1.4).
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    /// A 400 error.
    pub fn bad(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        json_response(self.status, &body)
    }
}

/// A JSON response with Salesforce's content type.
pub fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// The 401 every data API answers for a missing, unknown, ended or expired token.
pub fn invalid_session() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
    )
}

/// A validated session.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub user: u32,
}

/// Extracts `Authorization: Bearer …` (or the legacy `OAuth …`).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("OAuth "))
        .map(str::trim)
}

/// Checks the request's access token. The primary instance refuses the second org's
/// sessions, and every session of an inactive user or org.
pub fn authenticate(state: &Shared, headers: &HeaderMap) -> Result<Session, Response> {
    let token = bearer(headers).ok_or_else(invalid_session)?;
    let settings = state.settings();
    if settings.inactive_user || settings.inactive_org {
        return Err(invalid_session());
    }
    let timeout_ms = settings.session_timeout_s as i64 * 1000;
    let auth = state.auth.lock().expect("auth lock");
    match auth.access.get(token) {
        Some(t) if t.user == SECOND_ORG_USER => Err(invalid_session()),
        Some(t) if !t.ended && dt::now_ms() < t.issued_at + timeout_ms => Ok(Session {
            token: token.to_string(),
            user: t.user,
        }),
        _ => Err(invalid_session()),
    }
}

/// User id of a user row.
pub fn user_id(user: u32) -> String {
    ids::make("005", user as u64)
}

/// The org a user belongs to.
pub fn org_of(state: &Shared, user: u32) -> &str {
    if user == SECOND_ORG_USER {
        &state.second_org_id
    } else {
        &state.org_id
    }
}

/// The identity URL of a user: on the login host, as on real orgs, unless the setting
/// `identity_on_login_host` is off.
pub fn identity_url(state: &Shared, user: u32) -> String {
    let host = if state.settings().identity_on_login_host {
        &state.login_url
    } else {
        &state.base_url
    };
    format!("{host}/id/{}/{}", org_of(state, user), user_id(user))
}

/// Scopes that allow the identity service (the identity URL and userinfo).
fn allows_identity(scope: &str) -> bool {
    scope
        .split(' ')
        .any(|s| matches!(s, "id" | "openid" | "profile" | "full"))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Issues an access token (and a refresh token when `with_refresh`) and builds the
/// token response.
pub fn issue(
    state: &Shared,
    user: u32,
    scope: &str,
    refresh: RefreshMode,
    client_credentials: bool,
) -> Json {
    let now = dt::now_ms();
    let org15 = &org_of(state, user)[..15];
    let access = format!("{org15}!AQ{}", state.token(96, TOKEN_CHARS));
    let mut auth = state.auth.lock().expect("auth lock");
    let family = match refresh {
        RefreshMode::NewFamily => {
            let cap = state.settings().approvals_per_app.max(1) as usize;
            make_room_for_approval(&mut auth, user, &state.app.client_id, cap);
            auth.approvals += 1;
            Some(auth.approvals)
        }
        RefreshMode::Rotate(family) => Some(family),
        RefreshMode::None | RefreshMode::Existing(_) => None,
    };
    let (refresh_new, refresh_parent) = match (refresh, family) {
        (RefreshMode::Existing(existing), _) => (None, Some(existing)),
        (_, Some(family)) => {
            let rt = format!("5Aep861{}", state.token(80, TOKEN_CHARS));
            auth.refresh.insert(
                rt.clone(),
                RefreshToken {
                    user,
                    client_id: state.app.client_id.clone(),
                    scope: scope.to_string(),
                    revoked: false,
                    family,
                    rotated: false,
                },
            );
            (Some(rt.clone()), Some(rt))
        }
        _ => (None, None),
    };
    auth.access.insert(
        access.clone(),
        AccessToken {
            user,
            client_id: state.app.client_id.clone(),
            scope: scope.to_string(),
            issued_at: now,
            ended: false,
            refresh: refresh_parent,
        },
    );
    drop(auth);
    state.stats.lock().expect("stats lock").tokens_issued += 1;
    let id = identity_url(state, user);
    let issued_at = now.to_string();
    let sig = hmac_sha256(
        state.app.client_secret.as_bytes(),
        format!("{id}{issued_at}").as_bytes(),
    );
    let mut body = json!({
        "access_token": access,
        "signature": STANDARD.encode(sig),
        "scope": scope,
        "instance_url": state.base_url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    if let Some(rt) = refresh_new {
        body["refresh_token"] = Json::String(rt);
    }
    if scope.split(' ').any(|s| s == "openid") {
        body["id_token"] = Json::String(id_token(state, user, now));
    }
    if client_credentials {
        body["api_instance_url"] = Json::String(state.base_url.clone());
    }
    body
}

/// Revokes the oldest approvals of `user` for `client_id` until a new one fits under `cap`
/// (Salesforce keeps five per user and app).
fn make_room_for_approval(auth: &mut AuthState, user: u32, client_id: &str, cap: usize) {
    loop {
        let mut live: Vec<u64> = auth
            .refresh
            .values()
            .filter(|r| r.user == user && r.client_id == client_id && !r.revoked)
            .map(|r| r.family)
            .collect();
        live.sort_unstable();
        live.dedup();
        if live.len() < cap {
            return;
        }
        revoke_family(auth, live[0]);
    }
}

/// Revokes every refresh token of `family` and ends the sessions they issued.
fn revoke_family(auth: &mut AuthState, family: u64) {
    let mut tokens = Vec::new();
    for (token, r) in auth.refresh.iter_mut().filter(|(_, r)| r.family == family) {
        r.revoked = true;
        tokens.push(token.clone());
    }
    for t in auth.access.values_mut() {
        if t.refresh.as_ref().is_some_and(|r| tokens.contains(r)) {
            t.ended = true;
        }
    }
}

fn id_token(state: &Shared, user: u32, now: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"kid":"emulator","typ":"JWT","alg":"RS256"}"#);
    let claims = json!({
        "iss": state.base_url, "sub": identity_url(state, user), "aud": state.app.client_id,
        "iat": now / 1000, "exp": now / 1000 + 300,
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    // Not a real RS256 signature: the emulator publishes no keys.
    let sig = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{header}.{payload}")));
    format!("{header}.{payload}.{sig}")
}

fn wants_refresh(scope: &str) -> bool {
    scope
        .split(' ')
        .any(|s| s == "refresh_token" || s == "offline_access" || s == "full")
}

/// Parses a form-encoded body (or query string) into a map.
pub fn parse_form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// `client_id`/`client_secret` from the form or from HTTP Basic.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        });
    let id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()));
    let secret = form
        .get("client_secret")
        .cloned()
        .or_else(|| basic.map(|b| b.1));
    (id, secret)
}

fn check_client(
    state: &Shared,
    id: Option<&str>,
    secret: Option<&str>,
    secret_required: bool,
) -> Result<(), OAuthError> {
    match id {
        Some(id) if id == state.app.client_id => {}
        Some(_) => {
            return Err(OAuthError::bad(
                "invalid_client_id",
                "client identifier invalid",
            ));
        }
        None if secret_required => {
            return Err(OAuthError::bad(
                "invalid_client_id",
                "client identifier invalid",
            ));
        }
        None => {}
    }
    match secret {
        Some(s) if s == state.app.client_secret => Ok(()),
        None if !secret_required => Ok(()),
        _ => Err(OAuthError {
            status: StatusCode::from_u16(state.settings().invalid_client_status)
                .unwrap_or(StatusCode::BAD_REQUEST),
            error: "invalid_client",
            description: "invalid client credentials".into(),
        }),
    }
}

/// `POST /services/oauth2/token`.
pub async fn token(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    state.note("oauth.token");
    let form = parse_form(&body);
    match token_grant(&state, &headers, &form) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => {
            if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
                state.stats.lock().expect("stats lock").refresh_failures += 1;
            }
            e.into_response()
        }
    }
}

fn token_grant(
    state: &Shared,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Json, OAuthError> {
    let (cid, secret) = client_credentials(headers, form);
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    match grant {
        "authorization_code" => grant_code(state, form, cid.as_deref(), secret.as_deref()),
        "refresh_token" => grant_refresh(state, form, cid.as_deref(), secret.as_deref()),
        "client_credentials" => {
            check_client(state, cid.as_deref(), secret.as_deref(), true)?;
            Ok(issue(state, 0, "api", RefreshMode::None, true))
        }
        "password" => {
            check_client(state, cid.as_deref(), secret.as_deref(), true)?;
            let ok = form.get("username") == Some(&state.username)
                && form.get("password") == Some(&state.password);
            if !ok {
                return Err(OAuthError::bad("invalid_grant", "authentication failure"));
            }
            Ok(issue(
                state,
                0,
                DEFAULT_SCOPE.trim_end_matches(" id"),
                RefreshMode::None,
                false,
            ))
        }
        crate::jwt::GRANT_TYPE => {
            let assertion = form
                .get("assertion")
                .ok_or_else(|| OAuthError::bad("invalid_request", "missing assertion"))?;
            let user = crate::jwt::verify(state, assertion, |u| {
                if u.eq_ignore_ascii_case(&state.username) {
                    Some(0)
                } else {
                    find_user(state, u)
                }
            })?;
            // No refresh token in this flow (spec §1.8).
            Ok(issue(
                state,
                user,
                DEFAULT_SCOPE.trim_end_matches(" refresh_token id"),
                RefreshMode::None,
                false,
            ))
        }
        "" => Err(OAuthError::bad(
            "unsupported_grant_type",
            "grant type not supported",
        )),
        _ => Err(OAuthError::bad(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    }
}

fn grant_code(
    state: &Shared,
    form: &HashMap<String, String>,
    cid: Option<&str>,
    secret: Option<&str>,
) -> Result<Json, OAuthError> {
    let code_str = form
        .get("code")
        .ok_or_else(|| OAuthError::bad("invalid_request", "missing required code parameter"))?;
    // Codes are single use: any redemption attempt consumes it.
    let code = state
        .auth
        .lock()
        .expect("auth lock")
        .codes
        .remove(code_str)
        .ok_or_else(|| OAuthError::bad("invalid_grant", "invalid authorization code"))?;
    if dt::now_ms() > code.expires_at {
        return Err(OAuthError::bad(
            "invalid_grant",
            "expired authorization code",
        ));
    }
    // A PKCE client (desktop app) may omit the secret; otherwise it is required.
    check_client(state, cid, secret, code.challenge.is_none())?;
    if cid.is_some_and(|c| c != code.client_id) {
        return Err(OAuthError::bad(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    if form.get("redirect_uri") != Some(&code.redirect_uri) {
        return Err(OAuthError::bad(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ));
    }
    if let Some(challenge) = &code.challenge {
        let Some(verifier) = form.get("code_verifier") else {
            return Err(OAuthError::bad("invalid_grant", "invalid code verifier"));
        };
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            let err = if state.settings().pkce_mismatch_error == "invalid_grant" {
                "invalid_grant"
            } else {
                "invalid_request"
            };
            return Err(OAuthError::bad(err, "invalid code verifier"));
        }
    }
    check_active(state)?;
    let refresh = if wants_refresh(&code.scope) {
        RefreshMode::NewFamily
    } else {
        RefreshMode::None
    };
    Ok(issue(state, code.user, &code.scope, refresh, false))
}

fn grant_refresh(
    state: &Shared,
    form: &HashMap<String, String>,
    cid: Option<&str>,
    secret: Option<&str>,
) -> Result<Json, OAuthError> {
    check_client(state, cid, secret, false)?;
    let rt = form
        .get("refresh_token")
        .ok_or_else(|| OAuthError::bad("invalid_request", "missing refresh_token parameter"))?;
    let settings = state.settings();
    let expired = || OAuthError::bad("invalid_grant", "expired access/refresh token");
    // Checking and revoking happen under one lock, so of two concurrent redemptions of
    // a rotating token exactly one wins.
    let (user, scope, family) = {
        let mut auth = state.auth.lock().expect("auth lock");
        let entry = auth.refresh.get_mut(rt).ok_or_else(expired)?;
        if entry.rotated && settings.rotation_reuse_revokes_family {
            // A rotated token coming back means two parties hold the family: end it all.
            let family = entry.family;
            revoke_family(&mut auth, family);
            return Err(expired());
        }
        if entry.revoked {
            return Err(expired());
        }
        check_active(state)?;
        if settings.refresh_token_rotation {
            entry.revoked = true;
            entry.rotated = true;
        }
        let out = (entry.user, entry.scope.clone(), entry.family);
        if settings.refresh_token_rotation && settings.rotation_ends_old_sessions {
            for t in auth.access.values_mut() {
                if t.refresh.as_deref() == Some(rt.as_str()) {
                    t.ended = true;
                }
            }
        }
        out
    };
    state.stats.lock().expect("stats lock").tokens_refreshed += 1;
    let mode = if settings.refresh_token_rotation {
        RefreshMode::Rotate(family)
    } else {
        RefreshMode::Existing(rt.clone())
    };
    Ok(issue(state, user, &scope, mode, false))
}

/// A deactivated user or a locked org gets no tokens (its own `error` codes, spec §1.10).
fn check_active(state: &Shared) -> Result<(), OAuthError> {
    let settings = state.settings();
    if settings.inactive_org {
        return Err(OAuthError::bad(
            "inactive_org",
            "org is locked, closed, or suspended",
        ));
    }
    if settings.inactive_user {
        return Err(OAuthError::bad("inactive_user", "user is inactive"));
    }
    Ok(())
}

/// `POST|GET /services/oauth2/revoke`.
pub async fn revoke(
    State(state): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    state.note("oauth.revoke");
    let mut form = parse_form(&body);
    if let Some(q) = query {
        form.extend(parse_form(q.as_bytes()));
    }
    let Some(token) = form.get("token") else {
        return OAuthError::bad("unsupported_token_type", "Token type not supported")
            .into_response();
    };
    let mut auth = state.auth.lock().expect("auth lock");
    if let Some(t) = auth.access.get_mut(token) {
        t.ended = true;
    } else if let Some(r) = auth.refresh.get_mut(token) {
        r.revoked = true;
        for t in auth.access.values_mut() {
            if t.refresh.as_deref() == Some(token.as_str()) {
                t.ended = true;
            }
        }
    } else {
        return OAuthError::bad("invalid_token", "Token was invalid").into_response();
    }
    StatusCode::OK.into_response()
}

/// `POST /services/oauth2/introspect`.
pub async fn introspect(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    state.note("oauth.introspect");
    let form = parse_form(&body);
    let (cid, secret) = client_credentials(&headers, &form);
    if let Err(e) = check_client(&state, cid.as_deref(), secret.as_deref(), true) {
        return e.into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let timeout_s = state.settings().session_timeout_s as i64;
    let auth = state.auth.lock().expect("auth lock");
    let body = if let Some(t) = auth.access.get(&token) {
        let exp = t.issued_at / 1000 + timeout_s;
        if t.ended || dt::now_ms() / 1000 >= exp {
            json!({"active": false})
        } else {
            json!({"active": true, "scope": t.scope, "client_id": t.client_id,
                "username": username_of(&state, t.user), "sub": identity_url(&state, t.user),
                "token_type": "access_token", "exp": exp, "iat": t.issued_at / 1000,
                "nbf": t.issued_at / 1000})
        }
    } else if let Some(r) = auth.refresh.get(&token).filter(|r| !r.revoked) {
        json!({"active": true, "scope": r.scope, "client_id": r.client_id,
            "username": username_of(&state, r.user), "sub": identity_url(&state, r.user),
            "token_type": "refresh_token"})
    } else {
        json!({"active": false})
    };
    json_response(StatusCode::OK, &body)
}

fn username_of(state: &Shared, user: u32) -> String {
    if user == SECOND_ORG_USER {
        return SECOND_ORG_USERNAME.to_string();
    }
    let store = state.store.read().expect("store lock");
    store
        .table("User")
        .and_then(|t| {
            let ix = t.def.field_index("Username")?;
            t.row(user)
                .and_then(|r| r.values()[ix].as_str().map(str::to_string))
        })
        .unwrap_or_else(|| state.username.clone())
}

/// The username of the second org's user.
pub const SECOND_ORG_USERNAME: &str = "admin@second-org.sluice-emulator.example";

fn identity_json(state: &Shared, user: u32) -> Json {
    let base = &state.base_url;
    let org = org_of(state, user);
    let uid = user_id(user);
    let username = username_of(state, user);
    let url = |p: &str| format!("{base}/services/{p}");
    json!({
        "id": identity_url(state, user), "asserted_user": true, "user_id": uid,
        "organization_id": org, "username": username, "nick_name": "emulator",
        "display_name": "Integration User", "email": username, "email_verified": true,
        "first_name": "Integration", "last_name": "User", "timezone": "Etc/UTC",
        "active": true, "user_type": "STANDARD", "language": "en_US", "locale": "en_US",
        "utcOffset": 0, "is_app_installed": true,
        "urls": {
            "enterprise": url(&format!("Soap/c/{{version}}/{org}")),
            "partner": url(&format!("Soap/u/{{version}}/{org}")),
            "rest": url("data/v{version}/"),
            "sobjects": url("data/v{version}/sobjects/"),
            "search": url("data/v{version}/search/"),
            "query": url("data/v{version}/query/"),
            "recent": url("data/v{version}/recent/"),
            "profile": format!("{base}/{uid}"),
            "custom_domain": base,
        },
    })
}

/// The user of a live token the identity service accepts: a token without the `id`,
/// `openid`, `profile` or `full` scope is refused like a dead one.
fn identity_user(state: &Shared, headers: &HeaderMap) -> Result<u32, Response> {
    let token = bearer(headers).ok_or_else(bad_oauth_token)?;
    let settings = state.settings();
    let timeout_ms = settings.session_timeout_s as i64 * 1000;
    let auth = state.auth.lock().expect("auth lock");
    let t = auth
        .access
        .get(token)
        .filter(|t| !t.ended && dt::now_ms() < t.issued_at + timeout_ms)
        .filter(|_| !settings.inactive_user && !settings.inactive_org)
        .ok_or_else(bad_oauth_token)?;
    if !allows_identity(&t.scope) {
        return Err(bad_oauth_token());
    }
    Ok(t.user)
}

/// `GET /services/oauth2/userinfo`.
pub async fn userinfo(State(state): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    state.note("oauth.userinfo");
    let user = match identity_user(&state, &headers) {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let id = identity_json(&state, user);
    let body = json!({
        "sub": id["id"], "user_id": id["user_id"], "organization_id": id["organization_id"],
        "preferred_username": id["username"], "nickname": id["nick_name"],
        "name": id["display_name"], "email": id["email"], "email_verified": true,
        "given_name": id["first_name"], "family_name": id["last_name"], "zoneinfo": "Etc/UTC",
        "locale": "en_US", "language": "en_US", "urls": id["urls"], "active": true,
        "user_type": "STANDARD", "utcOffset": 0, "updated_at": "2024-01-01T00:00:00Z",
        "is_app_installed": true,
    });
    json_response(StatusCode::OK, &body)
}

fn bad_oauth_token() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain")],
        "Bad_OAuth_Token",
    )
        .into_response()
}

/// `GET /id/{orgId}/{userId}`: the identity URL.
pub async fn identity(
    State(state): State<Arc<Shared>>,
    Path((org, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    state.note("oauth.identity");
    let session_user = match identity_user(&state, &headers) {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    if !org.eq_ignore_ascii_case(org_of(&state, session_user))
        || ids::to18(&user) != user_id(session_user)
    {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    json_response(StatusCode::OK, &identity_json(&state, session_user))
}

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(State(state): State<Arc<Shared>>) -> Response {
    let b = &state.base_url;
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": b, "authorization_endpoint": format!("{b}/services/oauth2/authorize"),
            "token_endpoint": format!("{b}/services/oauth2/token"),
            "revocation_endpoint": format!("{b}/services/oauth2/revoke"),
            "userinfo_endpoint": format!("{b}/services/oauth2/userinfo"),
            "introspection_endpoint": format!("{b}/services/oauth2/introspect"),
            "scopes_supported": ["id", "api", "web", "full", "refresh_token", "offline_access", "openid", "profile", "email"],
            "response_types_supported": ["code", "token", "token id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "api_version": API_VERSION,
        }),
    )
}

// ---------------------------------------------------------------------------------
// Authorize pages
// ---------------------------------------------------------------------------------

/// A validated authorization request.
struct AuthzRequest {
    params: HashMap<String, String>,
    raw: String,
    redirect_uri: String,
}

impl AuthzRequest {
    fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

fn is_loopback_callback(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else {
        return false;
    };
    u.scheme() == "http"
        && match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

fn error_page(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Html(format!(
            "<!DOCTYPE html><html><head><title>OAuth Error</title></head><body>\
             <h1>OAuth Error</h1><p>error={}</p><p>{}</p></body></html>",
            esc(error),
            esc(description)
        )),
    )
        .into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Validates client and callback; errors that cannot be redirected are shown as pages.
fn validate_authz(state: &Shared, raw: &str) -> Result<AuthzRequest, Response> {
    let params = parse_form(raw.as_bytes());
    let client_ok = params.get("client_id") == Some(&state.app.client_id);
    if !client_ok {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    let Some(redirect_uri) = params.get("redirect_uri").cloned() else {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri_missing",
            "redirect_uri not provided",
        ));
    };
    let allowed = if state.app.callback_urls.is_empty() {
        is_loopback_callback(&redirect_uri)
    } else {
        state.app.callback_urls.contains(&redirect_uri)
    };
    if !allowed {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ));
    }
    Ok(AuthzRequest {
        params,
        raw: raw.to_string(),
        redirect_uri,
    })
}

fn redirect_with(req: &AuthzRequest, pairs: &[(&str, &str)]) -> Response {
    let mut url = url::Url::parse(&req.redirect_uri).expect("validated");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(s) = req.get("state") {
            q.append_pair("state", s);
        }
    }
    // Salesforce answers 302 Found.
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn redirect_error(req: &AuthzRequest, error: &str, description: &str) -> Response {
    redirect_with(req, &[("error", error), ("error_description", description)])
}

/// Problems that are redirected back to the client as `error=…`.
fn check_authz_params(req: &AuthzRequest) -> Result<(), Response> {
    if req.get("response_type") != Some("code") {
        return Err(redirect_error(
            req,
            "unsupported_response_type",
            "response type not supported",
        ));
    }
    if req
        .get("code_challenge_method")
        .is_some_and(|m| m != "S256")
    {
        return Err(redirect_error(
            req,
            "invalid_request",
            "invalid code challenge method",
        ));
    }
    Ok(())
}

fn issue_code_redirect(state: &Shared, req: &AuthzRequest, user: u32) -> Response {
    // Real codes are long base64 strings ending in "==", so clients must URL-decode.
    let code = format!(
        "aPrx{}==",
        state.token(
            60,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        )
    );
    let scope = req
        .get("scope")
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SCOPE.to_string());
    let lifetime = state.settings().auth_code_lifetime_s as i64 * 1000;
    state.auth.lock().expect("auth lock").codes.insert(
        code.clone(),
        AuthCode {
            user,
            client_id: state.app.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            scope,
            challenge: req.get("code_challenge").map(str::to_string),
            expires_at: dt::now_ms() + lifetime,
        },
    );
    redirect_with(req, &[("code", &code)])
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix("sid="))
        .map(str::to_string)
        .next()
}

fn page(title: &str, inner: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><div id=\"content\"><h1>{title}</h1>{inner}</div></body></html>"
    )
}

fn login_page(req: &AuthzRequest, error: Option<&str>) -> Response {
    let err = error
        .map(|e| format!("<div id=\"error\" class=\"loginError\">{}</div>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "{err}<form id=\"login_form\" name=\"login\" method=\"post\" action=\"/services/oauth2/authorize\">\
         <input type=\"hidden\" name=\"action\" value=\"login\">\
         <input type=\"hidden\" name=\"q\" value=\"{}\">\
         <label for=\"username\">Username</label><input id=\"username\" name=\"username\" type=\"email\">\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\">\
         <input id=\"Login\" type=\"submit\" value=\"Log In\"></form>",
        esc(&req.raw)
    );
    Html(page("Login | Salesforce", &body)).into_response()
}

fn consent_page(req: &AuthzRequest, cookie: Option<String>) -> Response {
    let scope = req.get("scope").unwrap_or(DEFAULT_SCOPE);
    let body = format!(
        "<p>Allow access? Sluice Emulator App is requesting: {}</p>\
         <form id=\"consent\" method=\"post\" action=\"/services/oauth2/authorize\">\
         <input type=\"hidden\" name=\"q\" value=\"{}\">\
         <button type=\"submit\" id=\"oaapprove\" name=\"action\" value=\"allow\">Allow</button>\
         <button type=\"submit\" id=\"oadeny\" name=\"action\" value=\"deny\">Deny</button></form>",
        esc(scope),
        esc(&req.raw)
    );
    let mut resp = Html(page("Allow Access?", &body)).into_response();
    if let Some(sid) = cookie {
        let v = format!("sid={sid}; Path=/; HttpOnly; SameSite=Lax");
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp
}

/// `GET /services/oauth2/authorize`.
pub async fn authorize_get(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    state.note("oauth.authorize");
    let raw = query.unwrap_or_default();
    let req = match validate_authz(&state, &raw) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = check_authz_params(&req) {
        return resp;
    }
    if state.settings().auto_approve {
        return issue_code_redirect(&state, &req, browser_user(&state));
    }
    let prompt = req.get("prompt").unwrap_or("").to_string();
    let force_login = prompt.split(' ').any(|p| p == "login");
    let force_consent = prompt.split(' ').any(|p| p == "consent");
    let session = session_cookie(&headers).and_then(|sid| {
        let auth = state.auth.lock().expect("auth lock");
        auth.sessions.get(&sid).cloned()
    });
    match session {
        Some(s) if !force_login => {
            if s.approved.contains(&state.app.client_id) && !force_consent {
                issue_code_redirect(&state, &req, s.user)
            } else {
                consent_page(&req, None)
            }
        }
        _ if req.get("immediate") == Some("true") => {
            redirect_error(&req, "immediate_unsuccessful", "immediate unsuccessful")
        }
        _ => login_page(&req, None),
    }
}

/// `POST /services/oauth2/authorize`: login form and consent form submissions.
pub async fn authorize_post(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = parse_form(&body);
    let raw = form.get("q").cloned().unwrap_or_default();
    let req = match validate_authz(&state, &raw) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(resp) = check_authz_params(&req) {
        return resp;
    }
    match form.get("action").map(String::as_str) {
        Some("login") => {
            let ok = form.get("username") == Some(&state.username)
                && form.get("password") == Some(&state.password);
            if !ok {
                return login_page(
                    &req,
                    Some(
                        "Please check your username and password. If you still can't log in, contact your Salesforce administrator.",
                    ),
                );
            }
            let sid = state.token(40, TOKEN_CHARS);
            let session = BrowserSession {
                user: browser_user(&state),
                ..BrowserSession::default()
            };
            state
                .auth
                .lock()
                .expect("auth lock")
                .sessions
                .insert(sid.clone(), session);
            consent_page(&req, Some(sid))
        }
        Some(action @ ("allow" | "deny")) => {
            let sid = session_cookie(&headers);
            let user = {
                let mut auth = state.auth.lock().expect("auth lock");
                let Some(s) = sid.as_ref().and_then(|sid| auth.sessions.get_mut(sid)) else {
                    drop(auth);
                    return login_page(&req, None);
                };
                if action == "allow" {
                    s.approved.insert(state.app.client_id.clone());
                }
                s.user
            };
            if action == "deny" {
                redirect_error(&req, "access_denied", "end-user denied authorization")
            } else {
                issue_code_redirect(&state, &req, user)
            }
        }
        _ => error_page(StatusCode::BAD_REQUEST, "invalid_request", "missing action"),
    }
}

/// The user a browser at the authorize pages is logged in as (setting `browser_org`).
fn browser_user(state: &Shared) -> u32 {
    match state.settings().browser_org {
        crate::OrgChoice::Primary => 0,
        crate::OrgChoice::Second => SECOND_ORG_USER,
    }
}

/// Grants tokens for a user without the browser (`POST /__emulator/oauth/grant`).
pub fn grant_for_username(state: &Shared, username: Option<&str>) -> Result<Json, String> {
    let user = match username {
        None => 0,
        Some(u) if u.eq_ignore_ascii_case(&state.username) => 0,
        Some(u) => find_user(state, u).ok_or_else(|| format!("no user {u}"))?,
    };
    Ok(issue(
        state,
        user,
        DEFAULT_SCOPE,
        RefreshMode::NewFamily,
        false,
    ))
}

fn find_user(state: &Shared, username: &str) -> Option<u32> {
    let store = state.store.read().expect("store lock");
    let t = store.table("User")?;
    let ix = t.def.field_index("Username")?;
    (0..t.len() as u32).find(|&n| {
        t.row(n).is_some_and(|r| {
            r.values()[ix]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(username))
        })
    })
}

/// Ends every access token (`POST /__emulator/tokens/expire`); with `refresh`, also
/// revokes every refresh token. Returns how many tokens were ended.
pub fn end_all(state: &Shared, refresh: bool) -> usize {
    let mut auth = state.auth.lock().expect("auth lock");
    let mut n = 0;
    for t in auth.access.values_mut().filter(|t| !t.ended) {
        t.ended = true;
        n += 1;
    }
    if refresh {
        for r in auth.refresh.values_mut().filter(|r| !r.revoked) {
            r.revoked = true;
            n += 1;
        }
    }
    n
}
