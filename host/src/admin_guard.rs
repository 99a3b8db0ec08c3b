//! Which browser requests the admin API answers.
//!
//! Threat: a web page the operator visits talks to the admin API on loopback. A cross-origin
//! `fetch(url, {method: 'POST', mode: 'no-cors', body})` is a "simple request": the browser
//! sends it without asking the server first, so the page can install a connector or create an
//! integration without ever reading an answer. A DNS-rebinding page goes further: its own host
//! name resolves to 127.0.0.1, the browser treats the admin API as same-origin with the page,
//! and the page reads whatever the API returns.
//!
//! Rule:
//! - Every request must name this server in `Host`: a loopback name (`localhost`,
//!   `127.0.0.1`, `[::1]`) with the port it listens on, the address it listens on, or the
//!   public URL's host. Anything else is answered 421, before any handler runs.
//! - A state-changing request (any method but GET, HEAD and OPTIONS) is refused with 403 when
//!   the browser says it is cross-site or same-site (`Sec-Fetch-Site`), or when it carries an
//!   `Origin` that is not this server's own.
//! - POST, PUT and PATCH API routes take `Content-Type: application/json` (connector uploads:
//!   `application/wasm`), bodyless ones included; anything else is 415. Neither type is allowed
//!   in a simple request, so a browser must ask first (a CORS preflight), and this server
//!   never grants one.
//!
//! The admin token (see [`crate::admin_token`]) is the main lock; these rules keep a browser
//! from using the operator's position on loopback when the token is missing or leaked to it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why a guard could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The public URL does not parse or has no host.
    #[error(
        "--public-url {0:?} is not an http(s) URL with a host, e.g. https://sluice.example.com"
    )]
    BadPublicUrl(String),
}

/// The host names and origins this server answers to.
#[derive(Debug, Clone)]
pub struct RequestGuard {
    /// `(host, port)` pairs, hosts lower-case, IPv6 in brackets.
    hosts: BTreeSet<(String, u16)>,
    /// ASCII-serialized origins, e.g. `http://localhost:7070`.
    origins: BTreeSet<String>,
}

/// The content type a state-changing route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    /// `application/json`.
    Json,
    /// `application/wasm` (component uploads).
    Wasm,
}

impl BodyType {
    fn mime(self) -> &'static str {
        match self {
            BodyType::Json => "application/json",
            BodyType::Wasm => "application/wasm",
        }
    }
}

impl RequestGuard {
    /// The guard of a server bound to `listen` and reached by browsers at `public_url`.
    pub fn new(listen: SocketAddr, public_url: &str) -> Result<Self, GuardError> {
        let public =
            url::Url::parse(public_url).map_err(|_| GuardError::BadPublicUrl(public_url.into()))?;
        let public_host = public
            .host_str()
            .filter(|_| matches!(public.scheme(), "http" | "https"))
            .ok_or_else(|| GuardError::BadPublicUrl(public_url.into()))?;
        let public_port = public
            .port_or_known_default()
            .ok_or_else(|| GuardError::BadPublicUrl(public_url.into()))?;
        let mut guard = Self {
            hosts: BTreeSet::new(),
            origins: BTreeSet::new(),
        };
        let port = listen.port();
        for name in ["localhost", "127.0.0.1", "[::1]"] {
            guard.allow("http", name, port);
        }
        if !listen.ip().is_unspecified() {
            let ip = match listen {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            guard.allow("http", &ip, port);
        }
        guard.allow(public.scheme(), public_host, public_port);
        Ok(guard)
    }

    fn allow(&mut self, scheme: &str, host: &str, port: u16) {
        let host = host.to_ascii_lowercase();
        let default_port = if scheme == "https" { 443 } else { 80 };
        let origin = if port == default_port {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{port}")
        };
        self.origins.insert(origin);
        self.hosts.insert((host, port));
    }

    /// Whether `Host` (or the request target's authority) names this server.
    fn host_allowed(&self, req: &Request) -> bool {
        let named = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            });
        let Some(authority) = named
            .filter(|a| !a.contains('@'))
            .and_then(|a| a.parse::<axum::http::uri::Authority>().ok())
        else {
            return false;
        };
        let host = authority.host().to_ascii_lowercase();
        match authority.port_u16() {
            Some(port) => self.hosts.contains(&(host, port)),
            // No port: the scheme's default, which only a proxy in front can have used.
            None => [80, 443]
                .into_iter()
                .any(|port| self.hosts.contains(&(host.clone(), port))),
        }
    }

    /// Why a state-changing request is refused as cross-site, if it is.
    fn cross_site(&self, headers: &HeaderMap) -> Option<String> {
        let fetch_site = headers
            .get("sec-fetch-site")
            .map(|v| v.to_str().unwrap_or("invalid"));
        if let Some(site) = fetch_site.filter(|s| !matches!(*s, "same-origin" | "none")) {
            return Some(format!("the browser marks this request {site}"));
        }
        let origin = headers.get(header::ORIGIN)?;
        let own = origin
            .to_str()
            .ok()
            .and_then(|o| url::Url::parse(o).ok())
            .map(|u| u.origin().ascii_serialization())
            .is_some_and(|o| self.origins.contains(&o));
        (!own).then(|| "its Origin is not this server".to_string())
    }
}

fn refusal(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Middleware: 421 for a `Host` that does not name this server (DNS rebinding).
pub async fn check_host(
    State(guard): State<Arc<RequestGuard>>,
    req: Request,
    next: Next,
) -> Response {
    if !guard.host_allowed(&req) {
        return refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "this server does not answer for that host name: use localhost, 127.0.0.1 or the \
             configured --public-url"
                .into(),
        );
    }
    next.run(req).await
}

/// Middleware: 403 for a cross-site state-changing request.
pub async fn refuse_cross_site(
    State(guard): State<Arc<RequestGuard>>,
    req: Request,
    next: Next,
) -> Response {
    if changes_state(req.method())
        && let Some(why) = guard.cross_site(req.headers())
    {
        return refusal(
            StatusCode::FORBIDDEN,
            format!("cross-site request refused: {why}"),
        );
    }
    next.run(req).await
}

/// Middleware: 415 for a POST, PUT or PATCH whose `Content-Type` is not `expected`.
pub async fn require_body_type(expected: BodyType, req: Request, next: Next) -> Response {
    if takes_body(req.method()) && !has_content_type(req.headers(), expected.mime()) {
        return refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("this request needs Content-Type: {}", expected.mime()),
        );
    }
    next.run(req).await
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Methods a browser can send without a preflight carry a body (POST); PUT and PATCH are
/// held to the same rule so a route never depends on which of them it uses. DELETE needs a
/// preflight whatever its headers.
fn takes_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

fn has_content_type(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(mime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str) -> Request {
        Request::builder()
            .uri("/api/integrations")
            .header(header::HOST, host)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn hosts_are_loopback_names_at_our_port_or_the_public_host() {
        let guard = RequestGuard::new(
            "127.0.0.1:7070".parse().unwrap(),
            "https://sluice.example.com",
        )
        .unwrap();
        for ok in [
            "localhost:7070",
            "LOCALHOST:7070",
            "127.0.0.1:7070",
            "[::1]:7070",
            "sluice.example.com",
            "sluice.example.com:443",
        ] {
            assert!(guard.host_allowed(&request(ok)), "{ok}");
        }
        for bad in [
            "evil.example:7070",
            "localhost:7071",
            "localhost",
            "sluice.example.com:7070",
            "user@localhost:7070",
            "",
        ] {
            assert!(!guard.host_allowed(&request(bad)), "{bad}");
        }
    }

    #[test]
    fn origins_must_be_our_own() {
        let guard =
            RequestGuard::new("127.0.0.1:7070".parse().unwrap(), "http://localhost:7070").unwrap();
        let with = |name: &str, value: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
            guard.cross_site(&h)
        };
        assert!(guard.cross_site(&HeaderMap::new()).is_none());
        assert!(with("origin", "http://localhost:7070").is_none());
        assert!(with("origin", "http://127.0.0.1:7070").is_none());
        assert!(with("origin", "http://evil.example").is_some());
        assert!(with("origin", "http://localhost:3000").is_some());
        assert!(with("origin", "null").is_some());
        assert!(with("sec-fetch-site", "same-origin").is_none());
        assert!(with("sec-fetch-site", "none").is_none());
        assert!(with("sec-fetch-site", "cross-site").is_some());
        assert!(with("sec-fetch-site", "same-site").is_some());
    }

    #[test]
    fn content_types_match_on_their_essence() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, value.parse().unwrap());
            has_content_type(&h, "application/json")
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("text/plain"));
        assert!(!with("application/json-patch"));
        assert!(!has_content_type(&HeaderMap::new(), "application/json"));
    }
}
