//! Who is calling: an API token (Basic `{email}/token:{api_token}`) or an OAuth bearer
//! token, as Zendesk's API accepts them. Credentials in the query string or the body are
//! ignored, as on Zendesk; so is Basic with a password (password access is off, the
//! default for new accounts).

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::reply;
use crate::state::Shared;

/// What a caller may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Tickets,
    Users,
}

impl Resource {
    /// The narrow OAuth scope that grants reading it.
    fn read_scope(self) -> &'static str {
        match self {
            Resource::Tickets => "tickets:read",
            Resource::Users => "users:read",
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: u64,
    /// OAuth scopes; `None` for an API token, which acts with the user's full rights.
    pub scopes: Option<Vec<String>>,
}

impl Caller {
    /// `read` covers every resource; `tickets:read` and `users:read` one each.
    pub fn may_read(&self, resource: Resource) -> bool {
        match &self.scopes {
            None => true,
            Some(scopes) => scopes
                .iter()
                .any(|s| s == "read" || s == resource.read_scope()),
        }
    }
}

/// Authenticates the request from its `Authorization` header.
pub fn authenticate(state: &Shared, headers: &HeaderMap) -> Result<Caller, Response> {
    let header = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(reply::cannot_authenticate)?;
    let (scheme, value) = header
        .split_once(' ')
        .ok_or_else(reply::cannot_authenticate)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return bearer(state, value.trim());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        return api_token(state, value.trim());
    }
    Err(reply::cannot_authenticate())
}

fn api_token(state: &Shared, encoded: &str) -> Result<Caller, Response> {
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(reply::cannot_authenticate)?;
    let (user, secret) = decoded
        .split_once(':')
        .ok_or_else(reply::cannot_authenticate)?;
    let Some(email) = user.strip_suffix("/token") else {
        // `{email}:{password}`: password access is off.
        return Err(reply::cannot_authenticate());
    };
    let enabled = state.settings().api_tokens_enabled;
    if enabled && email.eq_ignore_ascii_case(&state.admin_email) && secret == state.api_token {
        Ok(Caller {
            user_id: state.admin_id,
            scopes: None,
        })
    } else {
        Err(reply::cannot_authenticate())
    }
}

fn bearer(state: &Shared, token: &str) -> Result<Caller, Response> {
    let now = state.clock.now();
    let grants = state.grants.lock().expect("grants lock");
    match grants.access.get(token) {
        Some(t) if !t.revoked && now < t.expires_at => Ok(Caller {
            user_id: state.admin_id,
            scopes: Some(t.scopes.clone()),
        }),
        _ => Err(reply::invalid_token()),
    }
}
