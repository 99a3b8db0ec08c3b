//! What every `/api/v2/` request passes before its handler: counting, injected faults,
//! authentication, then the rate limits (account, and the incremental export's own).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth;
use crate::ratelimit::Decision;
use crate::reply;
use crate::state::{Fault, Shared};

/// Path prefix of the endpoints under the stricter export limit.
pub const INCREMENTAL_PREFIX: &str = "/api/v2/incremental/";

/// The endpoint's label in the stats: the path with ids as `{id}` and no `.json`.
pub fn label(method: &str, path: &str) -> String {
    let path = path.strip_suffix(".json").unwrap_or(path);
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| {
            let bare = s.strip_suffix(".json").unwrap_or(s);
            if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else {
                s
            }
        })
        .collect();
    format!("{method} {}", segments.join("/"))
}

/// The middleware.
pub async fn gate(State(shared): State<Arc<Shared>>, mut request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    shared.count(|s| {
        s.api_calls += 1;
        *s.by_endpoint.entry(label(&method, &path)).or_default() += 1;
    });
    let fault = take_fault(&shared, &method, &path);
    if let Some(f) = &fault {
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
        }
        if let Some(status) = f.status {
            shared.count(|s| s.faults_served += 1);
            return with_headers(fault_answer(status, f), &f.headers);
        }
    }
    let caller = match auth::authenticate(&shared, request.headers()) {
        Ok(c) => c,
        Err(refusal) => {
            shared.count(|s| s.unauthenticated += 1);
            return refusal;
        }
    };
    let (limit, remaining) = match take_budget(&shared, &path) {
        Ok(budget) => budget,
        Err(refusal) => {
            shared.count(|s| s.rate_limited += 1);
            return refusal;
        }
    };
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("x-rate-limit", HeaderValue::from(limit));
    headers.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    match fault {
        Some(f) => with_headers(response, &f.headers),
        None => response,
    }
}

/// The first pending fault matching the request, used up by one.
fn take_fault(shared: &Shared, method: &str, path: &str) -> Option<Fault> {
    let mut faults = shared.faults.lock().expect("faults lock");
    let index = faults.iter().position(|f| {
        path.starts_with(&f.path_prefix)
            && f.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    })?;
    let fault = &mut faults[index];
    if fault.skip > 0 {
        fault.skip -= 1;
        return None;
    }
    fault.count = fault.count.saturating_sub(1);
    let taken = fault.clone();
    if fault.count == 0 {
        faults.remove(index);
    }
    Some(taken)
}

fn fault_answer(status: u16, fault: &Fault) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match &fault.body {
        Some(body) => reply::json(status, body),
        None => reply::error(
            status,
            "InternalError",
            "injected by the emulator's fault control",
        ),
    }
}

fn with_headers(
    mut response: Response,
    headers: &std::collections::BTreeMap<String, String>,
) -> Response {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}

/// Takes one request from the account budget (and the export budget for export paths);
/// returns the account's limit and what remains, or the 429.
fn take_budget(shared: &Shared, path: &str) -> Result<(u32, u32), Response> {
    let settings = shared.settings();
    let now = shared.clock.now();
    let mut limits = shared.limits.lock().expect("limits lock");
    let (limit, remaining) = match limits.account.take(now, settings.rate_limit_per_minute) {
        Decision::Allowed { limit, remaining } => (limit, remaining),
        Decision::Limited {
            limit,
            retry_after_s,
        } => return Err(too_many(limit, retry_after_s)),
    };
    if path.starts_with(INCREMENTAL_PREFIX) {
        let export_limit = settings.incremental_rate_limit_per_minute;
        if let Decision::Limited {
            limit,
            retry_after_s,
        } = limits.incremental.take(now, export_limit)
        {
            limits.account.give_back();
            return Err(too_many(limit, retry_after_s));
        }
    }
    Ok((limit, remaining))
}

fn too_many(limit: u32, retry_after_s: i64) -> Response {
    let mut response = reply::error(
        StatusCode::TOO_MANY_REQUESTS,
        "APIRateLimitExceeded",
        "Number of allowed API requests per minute exceeded",
    );
    let headers = response.headers_mut();
    headers.insert("retry-after", HeaderValue::from(retry_after_s));
    headers.insert("x-rate-limit", HeaderValue::from(limit));
    headers.insert("x-rate-limit-remaining", HeaderValue::from(0));
    response
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn labels_hide_ids() {
        assert_eq!(
            label("GET", "/api/v2/tickets/12/comments.json"),
            "GET /api/v2/tickets/{id}/comments"
        );
        assert_eq!(
            label("GET", "/api/v2/tickets/12.json"),
            "GET /api/v2/tickets/{id}"
        );
    }
}
