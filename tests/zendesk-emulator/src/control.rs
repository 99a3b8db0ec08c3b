//! The control API under `/__emulator/`, authenticated by the control key (never by a
//! Zendesk credential). Request and response shapes are documented in README.md.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::api::{param, query_pairs};
use crate::data::{Status, comment_json, ticket_json, user_json};
use crate::ops::{self, Op};
use crate::state::{Fault, Shared, Stats};
use crate::{Settings, reply, seed};

type S = State<Arc<Shared>>;

/// Routes of the control API.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/__emulator/settings", get(get_settings).post(set_settings))
        .route("/__emulator/clock", get(get_clock).post(advance_clock))
        .route("/__emulator/seed", post(reseed))
        .route("/__emulator/records", post(records))
        .route("/__emulator/records/{stream}", get(ground_truth))
        .route(
            "/__emulator/faults",
            post(add_faults).get(list_faults).delete(clear_faults),
        )
        .route("/__emulator/oauth/grant", post(grant))
        .route("/__emulator/tokens/expire", post(expire_tokens))
        .route("/__emulator/tokens/revoke", post(revoke_tokens))
        .route("/__emulator/stats", get(stats).delete(reset_stats))
}

fn ok(body: Json) -> Response {
    reply::json(StatusCode::OK, &body)
}

fn bad(message: impl Into<String>) -> Response {
    reply::json(StatusCode::BAD_REQUEST, &json!({"error": message.into()}))
}

/// Checks `Authorization: Bearer <key>` or `X-Emulator-Key: <key>`.
fn authorized(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let key = headers
        .get("x-emulator-key")
        .and_then(|v| v.to_str().ok())
        .or(bearer);
    match key == Some(shared.control_key.as_str()) {
        true => Ok(()),
        false => Err(reply::json(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "control key required (Authorization: Bearer <control_key> or X-Emulator-Key)"}),
        )),
    }
}

macro_rules! guard {
    ($shared:expr, $headers:expr) => {
        if let Err(r) = authorized(&$shared, &$headers) {
            return r;
        }
    };
}

fn body_json(body: &Bytes) -> Result<Json, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

async fn get_settings(State(shared): S, headers: HeaderMap) -> Response {
    guard!(shared, headers);
    ok(serde_json::to_value(shared.settings()).unwrap_or_default())
}

async fn set_settings(State(shared): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(shared, headers);
    let patch = match body_json(&body) {
        Ok(Json::Object(m)) => m,
        Ok(_) => return bad("settings must be a JSON object"),
        Err(r) => return r,
    };
    let mut current = serde_json::to_value(shared.settings()).unwrap_or_default();
    let fields = current.as_object_mut().expect("settings are an object");
    for (name, value) in patch {
        if !fields.contains_key(&name) {
            return bad(format!("unknown setting {name}"));
        }
        fields.insert(name, value);
    }
    match serde_json::from_value::<Settings>(current) {
        Ok(new) if new.max_page_size == 0 || new.max_export_per_page == 0 => {
            bad("max_page_size and max_export_per_page must be at least 1")
        }
        Ok(new) if new.default_page_size == 0 || new.default_page_size > new.max_page_size => {
            bad("default_page_size must be from 1 to max_page_size")
        }
        Ok(new) if new.export_lag_s < 0 => bad("export_lag_s must not be negative"),
        Ok(new) => {
            *shared.settings.write().expect("settings lock") = new.clone();
            ok(serde_json::to_value(new).unwrap_or_default())
        }
        Err(e) => bad(format!("invalid settings: {e}")),
    }
}

async fn get_clock(State(shared): S, headers: HeaderMap) -> Response {
    guard!(shared, headers);
    let now = shared.clock.now();
    ok(json!({"now": now, "now_iso": crate::clock::iso(now)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    #[serde(default)]
    advance_s: i64,
    /// Stop (`true`) or restart (`false`) the clock before advancing it.
    #[serde(default)]
    freeze: Option<bool>,
}

async fn advance_clock(State(shared): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(shared, headers);
    let advance: Advance = match body_json(&body).map(serde_json::from_value) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return bad(format!(
                "expected {{\"advance_s\"?: seconds, \"freeze\"?: true|false}}: {e}"
            ));
        }
        Err(r) => return r,
    };
    if advance.advance_s < 0 {
        return bad("advance_s must not be negative: the clock only moves forward");
    }
    if let Some(frozen) = advance.freeze {
        shared.clock.freeze(frozen);
    }
    let now = shared.clock.advance(advance.advance_s);
    ok(
        json!({"now": now, "now_iso": crate::clock::iso(now), "frozen": advance.freeze.unwrap_or(false)}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reseed {
    scale: usize,
    #[serde(default = "default_seed")]
    seed: u64,
}

fn default_seed() -> u64 {
    42
}

async fn reseed(State(shared): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(shared, headers);
    let request: Reseed = match body_json(&body).map(serde_json::from_value) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return bad(format!(
                "expected {{\"scale\": tickets, \"seed\"?: n}}: {e}"
            ));
        }
        Err(r) => return r,
    };
    let now = shared.clock.now();
    // Seeding a large account is CPU work; keep it off the async workers.
    let store =
        tokio::task::spawn_blocking(move || seed::account(request.scale, request.seed, now)).await;
    let Ok(store) = store else {
        return bad("seeding failed");
    };
    let counts = json!({"tickets": store.tickets.len(), "users": store.users.len(), "ticket_comments": store.comments.len()});
    *shared.store.write().expect("store lock") = store;
    ok(counts)
}

/// One op, `[op, …]` or `{"ops": […]}`.
fn parse_ops(body: Json) -> Result<Vec<Json>, Response> {
    match body {
        Json::Array(ops) => Ok(ops),
        Json::Object(mut m) if m.contains_key("ops") => match m.remove("ops") {
            Some(Json::Array(ops)) => Ok(ops),
            _ => Err(bad("ops must be an array")),
        },
        op @ Json::Object(_) => Ok(vec![op]),
        _ => Err(bad("expected an op, an array of ops or {\"ops\": […]}")),
    }
}

async fn records(State(shared): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(shared, headers);
    let ops = match body_json(&body).and_then(parse_ops) {
        Ok(ops) => ops,
        Err(r) => return r,
    };
    let mut results = Vec::new();
    for (index, raw) in ops.into_iter().enumerate() {
        let outcome = serde_json::from_value::<Op>(raw)
            .map_err(|e| format!("op {index}: {e}"))
            .and_then(|op| ops::apply(&shared, &op).map_err(|e| format!("op {index}: {e}")));
        match outcome {
            Ok(result) => results.push(result),
            Err(error) => {
                return reply::json(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": error, "applied": results.len(), "results": results}),
                );
            }
        }
    }
    ok(json!({"results": results}))
}

/// `GET /__emulator/records/{stream}[?live=true]`: every record, in key order.
async fn ground_truth(
    State(shared): S,
    headers: HeaderMap,
    Path(stream): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    guard!(shared, headers);
    let live = param(&query_pairs(&raw), "live") == Some("true");
    let store = shared.store.read().expect("store lock");
    let deleted = |ticket_id: u64| {
        store
            .tickets
            .get(&ticket_id)
            .is_some_and(|t| t.status == Status::Deleted)
    };
    let records: Vec<Json> = match stream.as_str() {
        "tickets" => store
            .tickets
            .values()
            .filter(|t| !(live && t.status == Status::Deleted))
            .map(|t| ticket_json(&shared.origin, t))
            .collect(),
        "users" => store
            .users
            .values()
            .filter(|u| !live || u.active)
            .map(|u| user_json(&shared.origin, u))
            .collect(),
        "ticket_comments" => store
            .comments
            .values()
            .filter(|c| !(live && deleted(c.ticket_id)))
            .map(|c| {
                let mut row = comment_json(c);
                row["ticket_id"] = json!(c.ticket_id);
                row
            })
            .collect(),
        other => {
            return reply::json(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("unknown stream {other:?} (tickets, ticket_comments, users)")}),
            );
        }
    };
    ok(json!({"stream": stream, "total": records.len(), "records": records}))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FaultBody {
    Many { faults: Vec<Fault> },
    One(Fault),
}

async fn add_faults(State(shared): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(shared, headers);
    let parsed: FaultBody = match body_json(&body).map(serde_json::from_value) {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return bad(format!("invalid fault: {e}")),
        Err(r) => return r,
    };
    let new = match parsed {
        FaultBody::Many { faults } => faults,
        FaultBody::One(f) => vec![f],
    };
    if let Some(f) = new
        .iter()
        .find(|f| f.status.is_some_and(|s| !(100..=599).contains(&s)))
    {
        return bad(format!("fault status {:?} is not an HTTP status", f.status));
    }
    let mut faults = shared.faults.lock().expect("faults lock");
    faults.extend(new.into_iter().filter(|f| f.count > 0));
    ok(json!({"faults": faults.len()}))
}

async fn list_faults(State(shared): S, headers: HeaderMap) -> Response {
    guard!(shared, headers);
    let faults = shared.faults.lock().expect("faults lock").clone();
    ok(json!({"faults": faults}))
}

async fn clear_faults(State(shared): S, headers: HeaderMap) -> Response {
    guard!(shared, headers);
    shared.faults.lock().expect("faults lock").clear();
    ok(json!({"faults": 0}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    #[serde(default = "read_scope")]
    scope: String,
}

fn read_scope() -> String {
    "read".to_string()
}

async fn grant(State(shared): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(shared, headers);
    let request: GrantRequest = match body_json(&body).map(serde_json::from_value) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return bad(format!("expected {{\"scope\"?: \"read …\"}}: {e}")),
        Err(r) => return r,
    };
    let scopes: Vec<String> = request
        .scope
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if let Some(unknown) = scopes
        .iter()
        .find(|s| !crate::oauth::SCOPES.contains(&s.as_str()))
    {
        return bad(format!("unknown scope {unknown:?}"));
    }
    ok(crate::oauth::grant_directly(&shared, scopes))
}

async fn expire_tokens(State(shared): S, headers: HeaderMap) -> Response {
    guard!(shared, headers);
    let now = shared.clock.now();
    let n = shared
        .grants
        .lock()
        .expect("grants lock")
        .expire_access(now);
    ok(json!({"expired": n}))
}

async fn revoke_tokens(State(shared): S, headers: HeaderMap) -> Response {
    guard!(shared, headers);
    let n = shared.grants.lock().expect("grants lock").revoke_all();
    ok(json!({"revoked": n}))
}

async fn stats(State(shared): S, headers: HeaderMap) -> Response {
    guard!(shared, headers);
    let stats = shared.stats.lock().expect("stats lock").clone();
    ok(serde_json::to_value(stats).unwrap_or_default())
}

async fn reset_stats(State(shared): S, headers: HeaderMap) -> Response {
    guard!(shared, headers);
    *shared.stats.lock().expect("stats lock") = Stats::default();
    ok(json!({"reset": true}))
}
