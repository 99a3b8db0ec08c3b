//! The control API under `/__emulator/`, authenticated by the control key (never by a
//! Salesforce token). Request and response shapes are documented in README.md.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::data::{RowState, SchemaError, Store, Table, Val};
use crate::schema::{self, CustomFieldSpec, FieldAccess};
use crate::state::{Fault, Shared};
use crate::{Settings, dt, ids, oauth};

type S = State<Arc<Shared>>;

/// Routes of the control API.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/__emulator/oauth/grant", post(grant))
        .route("/__emulator/tokens/expire", post(expire))
        .route("/__emulator/tokens/revoke", post(revoke))
        .route("/__emulator/settings", post(set_settings).get(get_settings))
        .route("/__emulator/records", post(records))
        .route("/__emulator/records/{object}", get(export))
        .route("/__emulator/schema/{object}/fields", post(add_fields))
        // Sync behaviours: fields that disappear while clients hold a describe.
        .route(
            "/__emulator/schema/{object}/fields/{name}",
            delete(delete_field),
        )
        .route(
            "/__emulator/schema/{object}/fields/{name}/visibility",
            post(set_field_visibility),
        )
        .route(
            "/__emulator/faults",
            post(add_faults).get(list_faults).delete(clear_faults),
        )
        .route("/__emulator/faults/release", post(release_faults))
        .route("/__emulator/cursors/invalidate", post(invalidate_cursors))
        .route("/__emulator/jobs/age", post(age_jobs))
        .route("/__emulator/connections/goaway", post(goaway))
        .route("/__emulator/stats", get(stats))
        .route(
            "/__emulator/rendezvous",
            post(arm_rendezvous)
                .get(get_rendezvous)
                .delete(disarm_rendezvous),
        )
        .route(
            "/__emulator/requests",
            get(list_requests).delete(clear_requests),
        )
}

fn reply(status: StatusCode, body: Json) -> Response {
    oauth::json_response(status, &body)
}

fn bad(msg: impl Into<String>) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({"error": msg.into()}))
}

/// Checks `Authorization: Bearer <key>` or `X-Emulator-Key: <key>`.
fn authorized(state: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let key = headers
        .get("x-emulator-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| oauth::bearer(headers));
    if key == Some(state.control_key.as_str()) {
        Ok(())
    } else {
        Err(reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "control key required (Authorization: Bearer <control_key> or X-Emulator-Key)"}),
        ))
    }
}

fn body_json(body: &Bytes) -> Result<Json, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

macro_rules! guard {
    ($state:expr, $headers:expr) => {
        if let Err(r) = authorized(&$state, &$headers) {
            return r;
        }
    };
}

async fn grant(State(state): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(state, headers);
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match oauth::grant_for_username(&state, body.get("username").and_then(Json::as_str)) {
        Ok(tokens) => reply(StatusCode::OK, tokens),
        Err(e) => bad(e),
    }
}

async fn expire(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let n = oauth::end_all(&state, false);
    reply(StatusCode::OK, json!({"expired": n}))
}

async fn revoke(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let n = oauth::end_all(&state, true);
    reply(StatusCode::OK, json!({"revoked": n}))
}

async fn get_settings(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    reply(
        StatusCode::OK,
        serde_json::to_value(state.settings()).unwrap_or_default(),
    )
}

async fn set_settings(State(state): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(state, headers);
    let patch = match body_json(&body) {
        Ok(Json::Object(m)) => m,
        Ok(_) => return bad("settings must be a JSON object"),
        Err(r) => return r,
    };
    let mut current = serde_json::to_value(state.settings()).unwrap_or_default();
    let obj = current
        .as_object_mut()
        .expect("settings serialise to an object");
    for (k, v) in patch {
        if !obj.contains_key(&k) {
            return bad(format!("unknown setting {k}"));
        }
        obj.insert(k, v);
    }
    match serde_json::from_value::<Settings>(current) {
        Ok(new) if !matches!(new.bulk_datetime_suffix.as_str(), "+0000" | "Z") => {
            bad("bulk_datetime_suffix must be \"+0000\" or \"Z\"")
        }
        Ok(new)
            if new.junction_id_separator.is_empty()
                || new
                    .junction_id_separator
                    .contains(|c: char| c.is_ascii_alphanumeric()) =>
        {
            bad("junction_id_separator must be non-empty text without letters or digits")
        }
        Ok(new) if !crate::wan::valid_mbps(new.mbps) => bad(format!(
            "mbps must be 0 (uncapped) or a rate of at least {} megabits per second",
            crate::wan::MIN_MBPS
        )),
        Ok(new) => {
            *state.settings.write().expect("settings lock") = new.clone();
            // The user's permissions are also data: `UserPermissionAccess` reports them.
            let mut store = state.store.write().expect("store lock");
            crate::access::sync_permissions(&mut store, &new, crate::dt::now_ms());
            drop(store);
            reply(
                StatusCode::OK,
                serde_json::to_value(new).unwrap_or_default(),
            )
        }
        Err(e) => bad(format!("invalid settings: {e}")),
    }
}

async fn stats(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let st = state.stats.lock().expect("stats lock").clone();
    let (active, refresh) = {
        let auth = state.auth.lock().expect("auth lock");
        (
            auth.access.values().filter(|t| !t.ended).count(),
            auth.refresh.values().filter(|t| !t.revoked).count(),
        )
    };
    let mut v = serde_json::to_value(st).unwrap_or_default();
    v["api_daily_limit"] = json!(state.settings().api_daily_limit);
    v["active_access_tokens"] = json!(active);
    v["active_refresh_tokens"] = json!(refresh);
    v["open_cursors"] = json!(state.cursors.lock().expect("cursors lock").len());
    reply(StatusCode::OK, v)
}

/// The kept request heads whose path starts with `?path_prefix=` (all without it).
async fn list_requests(State(state): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    guard!(state, headers);
    let prefix = q
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("path_prefix="))
        .map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let heads = state
        .requests
        .lock()
        .expect("requests lock")
        .matching(&prefix);
    reply(StatusCode::OK, json!({ "requests": heads }))
}

async fn clear_requests(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let n = state.requests.lock().expect("requests lock").clear();
    reply(StatusCode::OK, json!({ "cleared": n }))
}

async fn invalidate_cursors(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let mut c = state.cursors.lock().expect("cursors lock");
    let n = c.len();
    c.clear();
    reply(StatusCode::OK, json!({"invalidated": n}))
}

/// Moves Bulk jobs into the past by `{"ms": n}` (or `{"days": n}`), past the seven days
/// their results are kept.
/// Every open HTTP/2 connection sends GOAWAY (see `Shared::goaway`).
async fn goaway(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    state.goaway.notify_waiters();
    reply(StatusCode::OK, json!({}))
}

async fn age_jobs(State(state): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(state, headers);
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ms = match (body.get("ms"), body.get("days")) {
        (Some(ms), None) => ms.as_i64(),
        (None, Some(days)) => days.as_i64().and_then(|d| d.checked_mul(dt::DAY_MS)),
        _ => None,
    };
    let Some(ms) = ms.filter(|ms| *ms >= 0) else {
        return bad(r#"expected {"ms": n} or {"days": n}, n >= 0"#);
    };
    let aged = crate::bulk::age_jobs(&state, ms);
    reply(StatusCode::OK, json!({"aged": aged}))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FaultBody {
    Many { faults: Vec<FaultSpec> },
    One(Box<FaultSpec>),
}

/// A fault as posted: a [`Fault`] plus shorthands for Salesforce error bodies.
#[derive(Deserialize)]
struct FaultSpec {
    #[serde(flatten)]
    fault: Fault,
    #[serde(rename = "errorCode", default)]
    error_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

async fn add_faults(State(state): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(state, headers);
    let specs = match serde_json::from_slice::<FaultBody>(&body) {
        Ok(FaultBody::Many { faults }) => faults,
        Ok(FaultBody::One(f)) => vec![*f],
        Err(e) => return bad(format!("invalid fault: {e}")),
    };
    let releases_before = *state.fault_releases.borrow();
    let mut faults = state.faults.lock().expect("faults lock");
    for s in specs {
        let mut f = s.fault;
        f.releases_before = releases_before;
        if let Some(code) = s.error_code {
            let msg = s.message.unwrap_or_default();
            f.body = Some(json!([{"message": msg, "errorCode": code}]).to_string());
            f.status.get_or_insert(400);
        }
        faults.push(f);
    }
    reply(StatusCode::OK, json!({"faults": faults.len()}))
}

/// Lets every held request through (faults with `hold`), those already waiting and those
/// of faults added before now that arrive later.
async fn release_faults(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    state.fault_releases.send_modify(|n| *n += 1);
    reply(
        StatusCode::OK,
        json!({"releases": *state.fault_releases.borrow()}),
    )
}

async fn list_faults(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let f = state.faults.lock().expect("faults lock").clone();
    reply(StatusCode::OK, json!({"faults": f}))
}

async fn clear_faults(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    state.faults.lock().expect("faults lock").clear();
    reply(StatusCode::OK, json!({"faults": 0}))
}

// ---------------------------------------------------------------------------------
// Schema changes
// ---------------------------------------------------------------------------------

/// `POST /__emulator/schema/{object}/fields`: adds custom fields, as an admin does in
/// Setup while clients run. Body `{"fields":[spec, …]}`, `[spec, …]` or one spec, where a
/// spec is [`CustomFieldSpec`]. All fields are added or none.
async fn add_fields(
    State(state): S,
    headers: HeaderMap,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    guard!(state, headers);
    let unknown = || {
        reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("unknown object {object}")}),
        )
    };
    if state
        .store
        .read()
        .expect("store lock")
        .table(&object)
        .is_none()
    {
        return unknown();
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let specs = match body {
        Json::Object(mut m) if m.contains_key("fields") => m.remove("fields").unwrap_or_default(),
        Json::Object(m) if m.contains_key("name") => Json::Array(vec![Json::Object(m)]),
        other => other,
    };
    let Json::Array(specs) = specs else {
        return bad(r#"expected {"fields":[{"name":"X__c","type":"string"}, …]}"#);
    };
    let mut defs = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let label = spec
            .get("name")
            .and_then(Json::as_str)
            .map_or_else(|| format!("fields[{i}]"), |n| format!("field {n:?}"));
        let spec: CustomFieldSpec = match serde_json::from_value(spec) {
            Ok(s) => s,
            Err(e) => return bad(format!("{label}: {e}")),
        };
        match schema::custom_field(&spec) {
            Ok(f) => defs.push(f),
            Err(e) => return bad(e),
        }
    }
    let added = state.write_store().add_fields(&object, defs, dt::now_ms());
    match added {
        Ok(a) => reply(
            StatusCode::OK,
            json!({
                "object": a.object,
                "added": a.added,
                "fields": a.field_count,
                "lastModified": crate::rest::describe::http_date(a.modified_ms),
                "lastModifiedDate": dt::format_datetime(a.modified_ms),
            }),
        ),
        Err(SchemaError::UnknownObject(_)) => unknown(),
        Err(SchemaError::Invalid(e)) => bad(e),
    }
}

// ---------------------------------------------------------------------------------
// Fields deleted or hidden while clients run (sync behaviours)
// ---------------------------------------------------------------------------------

/// `DELETE /__emulator/schema/{object}/fields/{name}`: deletes a custom field, as an admin
/// does in Setup; queries naming it then answer 400 `INVALID_FIELD`.
async fn delete_field(
    State(state): S,
    headers: HeaderMap,
    Path((object, name)): Path<(String, String)>,
) -> Response {
    guard!(state, headers);
    change_field_access(&state, &object, &name, FieldAccess::Deleted)
}

/// `POST /__emulator/schema/{object}/fields/{name}/visibility` with `{"visible": bool}`:
/// field-level security for the integration user. Hiding does not move describe's
/// `Last-Modified`.
async fn set_field_visibility(
    State(state): S,
    headers: HeaderMap,
    Path((object, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    guard!(state, headers);
    let visible = match body_json(&body) {
        Ok(b) => b.get("visible").and_then(Json::as_bool),
        Err(r) => return r,
    };
    let Some(visible) = visible else {
        return bad(r#"expected {"visible": true|false}"#);
    };
    let access = if visible {
        FieldAccess::Visible
    } else {
        FieldAccess::Hidden
    };
    change_field_access(&state, &object, &name, access)
}

fn change_field_access(state: &Shared, object: &str, name: &str, access: FieldAccess) -> Response {
    let changed = state
        .write_store()
        .set_field_access(object, name, access, dt::now_ms());
    match changed {
        Ok((field, modified)) => reply(
            StatusCode::OK,
            json!({
                "object": object,
                "field": field,
                "access": format!("{access:?}").to_ascii_lowercase(),
                "lastModified": crate::rest::describe::http_date(modified),
            }),
        ),
        Err(SchemaError::UnknownObject(_)) => reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("unknown object {object}")}),
        ),
        Err(SchemaError::Invalid(e)) => bad(e),
    }
}

// ---------------------------------------------------------------------------------
// Ground truth export
// ---------------------------------------------------------------------------------

/// The JSON value of a row as the ground truth reports it (compound fields included).
pub fn row_json(table: &Table, values: &[Val]) -> Map<String, Json> {
    let def = &table.def;
    let mut m = Map::new();
    for (i, f) in def.fields.iter().enumerate() {
        if f.access == crate::schema::FieldAccess::Deleted {
            continue;
        }
        let v = if f.kind == crate::schema::Kind::Address {
            serde_json::from_str(&crate::rest::records::address_json(def, values, &f.name))
                .unwrap_or(Json::Null)
        } else {
            values[i].to_json_of(f.kind)
        };
        m.insert(f.name.to_string(), v);
    }
    m
}

async fn export(
    State(state): S,
    headers: HeaderMap,
    Path(object): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    guard!(state, headers);
    let params = oauth::parse_form(q.unwrap_or_default().as_bytes());
    let offset: usize = params
        .get("offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = params
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let state2 = state.clone();
    let body = tokio::task::spawn_blocking(move || {
        let store = state2.store.read().expect("store lock");
        let table = store.table(&object)?;
        let now = dt::now_ms();
        let rows: Vec<Json> = (0..table.len() as u32)
            .skip(offset)
            .take(limit)
            .filter_map(|n| {
                let row = table.row(n)?;
                let mut m = row_json(table, row.values());
                let st = table.state(n);
                m.insert("_deleted".into(), json!(table.is_deleted(n)));
                m.insert("_purged".into(), json!(st.is_some_and(|s| s.purged)));
                m.insert("_visible".into(), json!(table.visible(n, now)));
                let vis = st.map(|s| s.visible_at).filter(|&v| v > i64::MIN);
                m.insert("_visible_at".into(), json!(vis.map(dt::format_datetime)));
                // While a write is pending, the APIs serve the previous version.
                let prev = st
                    .filter(|s| s.pending(now))
                    .and_then(|s| s.previous.as_ref());
                m.insert("_pending".into(), json!(prev.is_some()));
                m.insert(
                    "_previous".into(),
                    prev.map_or(Json::Null, |p| {
                        let mut pm = row_json(table, &p.values);
                        pm.insert("_deleted".into(), json!(p.deleted_at.is_some()));
                        Json::Object(pm)
                    }),
                );
                Some(Json::Object(m))
            })
            .collect();
        Some(
            json!({"object": table.def.name, "totalSize": table.len(), "records": rows})
                .to_string(),
        )
    })
    .await
    .ok()
    .flatten();
    match body {
        Some(b) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
            .body(b.into())
            .expect("response"),
        None => reply(StatusCode::NOT_FOUND, json!({"error": "unknown object"})),
    }
}

// ---------------------------------------------------------------------------------
// Record writes
// ---------------------------------------------------------------------------------

/// One write operation.
#[derive(Deserialize, Debug)]
pub struct RecordOp {
    /// `insert`, `update`, `delete`, `undelete`, `purge`, `publish`, `archive` or
    /// `delete_article`.
    pub op: String,
    pub object: String,
    #[serde(default)]
    pub id: Option<String>,
    /// Several ids written with one timestamp (a mass update).
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub fields: Map<String, Json>,
    /// Explicit SystemModstamp (and LastModifiedDate unless `system_only`).
    #[serde(rename = "SystemModstamp", alias = "system_modstamp", default)]
    pub system_modstamp: Option<String>,
    /// Update SystemModstamp only, as automation does.
    #[serde(default)]
    pub system_only: bool,
    /// Hide the write from the APIs for this long (overrides `visibility_lag_ms`).
    #[serde(alias = "delay_ms", default)]
    pub visible_after_ms: Option<u64>,
    /// Knowledge language for `publish` (default `en_US`).
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OpsBody {
    Many { ops: Vec<RecordOp> },
    List(Vec<RecordOp>),
    One(RecordOp),
}

async fn records(State(state): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(state, headers);
    let ops = match serde_json::from_slice::<OpsBody>(&body) {
        Ok(OpsBody::Many { ops }) | Ok(OpsBody::List(ops)) => ops,
        Ok(OpsBody::One(op)) => vec![op],
        Err(e) => return bad(format!("invalid records body: {e}")),
    };
    let lag = state.settings().visibility_lag_ms;
    let mut results = Vec::new();
    let mut store = state.write_store();
    for op in ops {
        match apply(&mut store, &op, lag) {
            Ok(r) => results.push(r),
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": e, "applied": results}),
                );
            }
        }
    }
    reply(StatusCode::OK, json!({"results": results}))
}

/// Applies one operation; returns `{"id","SystemModstamp"}` of the rows it wrote.
pub fn apply(store: &mut Store, op: &RecordOp, lag_ms: u64) -> Result<Json, String> {
    let now = dt::now_ms();
    let ts = match &op.system_modstamp {
        Some(s) => dt::parse_datetime(s).ok_or_else(|| format!("bad SystemModstamp {s}"))?,
        None => now,
    };
    // Salesforce stores datetimes to the second.
    let ts = ts - ts.rem_euclid(1000);
    let visible_at = now + op.visible_after_ms.unwrap_or(lag_ms) as i64;
    let w = Write {
        ts,
        visible_at,
        now,
    };
    if op.op == "publish" {
        return publish(store, op, w);
    }
    if op.op == "delete_article" {
        return delete_article(store, op, w);
    }
    let table = store
        .table_mut(&op.object)
        .ok_or_else(|| format!("unknown object {}", op.object))?;
    if op.op == "insert" {
        return insert(table, op, w);
    }
    let mut ids: Vec<&str> = op.ids.iter().map(String::as_str).collect();
    ids.extend(op.id.as_deref());
    if ids.is_empty() {
        return Err(format!("{} needs id or ids", op.op));
    }
    let mut written = Vec::new();
    for id in ids {
        let n = table
            .row_of(id)
            .ok_or_else(|| format!("no {} {id}", table.def.name))?;
        match op.op.as_str() {
            "update" => update(table, n, op, w)?,
            "delete" => set_deleted(table, n, true, w)?,
            "undelete" => set_deleted(table, n, false, w)?,
            "archive" => archive(table, n, w)?,
            "recalc" => recalc(table, n, op, w)?,
            "purge" => {
                let st = table.state_mut(n).expect("row exists");
                st.purged = true;
                st.deleted_at.get_or_insert(ts);
            }
            other => return Err(format!("unknown op {other}")),
        }
        written.push(json!(ids::to18(id)));
    }
    Ok(json!({"ids": written, "SystemModstamp": dt::format_datetime(ts)}))
}

#[derive(Clone, Copy)]
struct Write {
    ts: i64,
    visible_at: i64,
    /// When the write happens (decides whether the old version stays served).
    now: i64,
}

/// Stores a new version of an existing row (the old one stays served until visible).
fn write_row(table: &mut Table, n: u32, w: Write, values: Vec<Val>, deleted_at: Option<i64>) {
    table
        .write_version(
            n,
            w.now,
            w.visible_at,
            values.into_boxed_slice(),
            deleted_at,
        )
        .expect("row exists");
}

fn set_fields(table: &Table, values: &mut [Val], fields: &Map<String, Json>) -> Result<(), String> {
    for (k, v) in fields {
        let i = table
            .def
            .field_index(k)
            .ok_or_else(|| format!("no field {k} on {}", table.def.name))?;
        if i == table.sys.id {
            return Err("Id cannot be written".into());
        }
        values[i] = Val::from_json(table.def.fields[i].kind, v).map_err(|e| format!("{k}: {e}"))?;
    }
    Ok(())
}

fn stamp(table: &Table, values: &mut [Val], ts: i64, system_only: bool) {
    let sys = table.sys;
    if let Some(i) = sys.modstamp {
        values[i] = Val::DateTime(ts);
    }
    if !system_only {
        if let Some(i) = sys.last_modified {
            values[i] = Val::DateTime(ts);
        }
        if let Some(i) = table.def.field_index("LastModifiedById") {
            values[i] = Val::s(oauth::user_id(0));
        }
    }
}

fn insert(table: &mut Table, op: &RecordOp, w: Write) -> Result<Json, String> {
    let n = table.len() as u32;
    let def = table.def.clone();
    let mut values = vec![Val::Null; def.fields.len()];
    values[table.sys.id] = Val::s(ids::make(def.key_prefix, n as u64));
    let set = |values: &mut Vec<Val>, name: &str, v: Val| {
        if let Some(i) = def.field_index(name) {
            values[i] = v;
        }
    };
    set(&mut values, "IsDeleted", Val::Bool(false));
    set(&mut values, "CreatedById", Val::s(oauth::user_id(0)));
    set(&mut values, "OwnerId", Val::s(oauth::user_id(0)));
    set(&mut values, "CreatedDate", Val::DateTime(w.ts));
    for f in &def.fields {
        if f.kind == crate::schema::Kind::Boolean {
            set(&mut values, &f.name, Val::Bool(false));
        }
    }
    if def.name == "Case" {
        set(&mut values, "CaseNumber", Val::s(format!("{:08}", n + 1)));
        set(&mut values, "Status", Val::s("New"));
    }
    if def.name == "Knowledge__kav" {
        set(
            &mut values,
            "KnowledgeArticleId",
            Val::s(ids::make("kA0", 1_000_000 + n as u64)),
        );
        set(
            &mut values,
            "ArticleNumber",
            Val::s(format!("{:09}", 1_000_000 + n)),
        );
        set(&mut values, "PublishStatus", Val::s("Draft"));
        set(&mut values, "Language", Val::s("en_US"));
        set(&mut values, "IsLatestVersion", Val::Bool(true));
        set(&mut values, "VersionNumber", Val::Int(1));
        set(&mut values, "IsMasterLanguage", Val::Bool(true));
        set(&mut values, "UrlName", Val::s(format!("article-{n}")));
    }
    set_fields(table, &mut values, &op.fields)?;
    // Derived name fields follow their parts unless given explicitly.
    if def.has("FirstName") && !op.fields.keys().any(|k| k.eq_ignore_ascii_case("Name")) {
        let part = |name: &str| {
            def.field_index(name)
                .and_then(|i| values[i].as_str().map(str::to_string))
        };
        let name = [part("FirstName"), part("LastName")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        set(&mut values, "Name", Val::s(name));
    }
    stamp(table, &mut values, w.ts, false);
    let id = values[table.sys.id].clone();
    table.push(RowState {
        values: values.into_boxed_slice(),
        visible_at: w.visible_at,
        purged: false,
        deleted_at: None,
        previous: None,
    });
    Ok(json!({"id": id.to_json(), "SystemModstamp": dt::format_datetime(w.ts)}))
}

fn update(table: &mut Table, n: u32, op: &RecordOp, w: Write) -> Result<(), String> {
    let mut values = table.row(n).expect("row exists").values().to_vec();
    set_fields(table, &mut values, &op.fields)?;
    stamp(table, &mut values, w.ts, op.system_only);
    let deleted_at = table.state(n).and_then(|s| s.deleted_at);
    write_row(table, n, w, values, deleted_at);
    Ok(())
}

/// A formula's inputs changed elsewhere (a parent record, the date, a rate): the values of
/// calculated fields change while no timestamp moves. Only calculated fields may be given.
fn recalc(table: &mut Table, n: u32, op: &RecordOp, w: Write) -> Result<(), String> {
    for k in op.fields.keys() {
        let calculated = table.def.field(k).is_some_and(|f| f.calculated);
        if !calculated {
            return Err(format!(
                "{k} is not a calculated field of {}; recalc changes formula fields only",
                table.def.name
            ));
        }
    }
    let mut values = table.row(n).expect("row exists").values().to_vec();
    set_fields(table, &mut values, &op.fields)?;
    let deleted_at = table.state(n).and_then(|s| s.deleted_at);
    write_row(table, n, w, values, deleted_at);
    Ok(())
}

/// Archives an activity as Salesforce's nightly job does: `IsArchived` turns true and the row
/// leaves `/query` (only `queryAll` returns it), with no timestamp moving.
fn archive(table: &mut Table, n: u32, w: Write) -> Result<(), String> {
    let ix = table
        .def
        .field_index("IsArchived")
        .ok_or_else(|| format!("{} records cannot be archived", table.def.name))?;
    let mut values = table.row(n).expect("row exists").values().to_vec();
    values[ix] = Val::Bool(true);
    let deleted_at = table.state(n).and_then(|s| s.deleted_at);
    write_row(table, n, w, values, deleted_at);
    Ok(())
}

fn set_deleted(table: &mut Table, n: u32, deleted: bool, w: Write) -> Result<(), String> {
    let sys = table.sys;
    let del_ix = sys
        .is_deleted
        .ok_or_else(|| format!("{} records cannot be deleted", table.def.name))?;
    let mut values = table.row(n).expect("row exists").values().to_vec();
    values[del_ix] = Val::Bool(deleted);
    stamp(table, &mut values, w.ts, false);
    write_row(table, n, w, values, deleted.then_some(w.ts));
    Ok(())
}

/// Deletes a Knowledge article: every version in every language goes at once, with no recycle
/// bin (`__kav` supports neither `queryAll` nor `/deleted`).
fn delete_article(store: &mut Store, op: &RecordOp, w: Write) -> Result<Json, String> {
    let table = store
        .table_mut(&op.object)
        .filter(|t| t.def.name.ends_with("__kav"))
        .ok_or("delete_article needs a __kav object")?;
    let art_ix = table
        .def
        .field_index("KnowledgeArticleId")
        .ok_or("no KnowledgeArticleId")?;
    let given = op
        .id
        .clone()
        .ok_or("delete_article needs id (article or version id)")?;
    let article = match table.row_of(&given) {
        Some(n) => table.row(n).expect("row").values()[art_ix].clone(),
        None => Val::s(ids::to18(&given)),
    };
    let versions: Vec<u32> = (0..table.len() as u32)
        .filter(|&n| table.state(n).is_none_or(|s| !s.purged))
        .filter(|&n| table.row(n).is_some_and(|r| r.values()[art_ix] == article))
        .collect();
    if versions.is_empty() {
        return Err(format!("no article {given}"));
    }
    let mut removed = Vec::new();
    for n in versions {
        removed.push(table.row(n).expect("row").values()[0].to_json());
        let st = table.state_mut(n).expect("row exists");
        st.purged = true;
        st.deleted_at.get_or_insert(w.ts);
    }
    Ok(
        json!({"KnowledgeArticleId": article.to_json(), "ids": removed,
        "SystemModstamp": dt::format_datetime(w.ts)}),
    )
}

/// Publishes a Knowledge article: the draft (or a new copy of the online version)
/// becomes Online under a version Id different from the old one, which is archived.
fn publish(store: &mut Store, op: &RecordOp, w: Write) -> Result<Json, String> {
    let table = store
        .table_mut(&op.object)
        .filter(|t| t.def.name.ends_with("__kav"))
        .ok_or("publish needs a __kav object")?;
    let def = table.def.clone();
    let ix = |name: &str| def.field_index(name).expect("knowledge field");
    let (art_ix, lang_ix, status_ix) = (
        ix("KnowledgeArticleId"),
        ix("Language"),
        ix("PublishStatus"),
    );
    let given = op
        .id
        .clone()
        .ok_or("publish needs id (article or version id)")?;
    let article = match table.row_of(&given) {
        Some(n) => table.row(n).expect("row").values()[art_ix].clone(),
        None => Val::s(ids::to18(&given)),
    };
    let lang = op.language.clone().unwrap_or_else(|| "en_US".into());
    let mut draft = None;
    let mut online = None;
    let mut latest: Option<(i64, u32)> = None;
    for n in 0..table.len() as u32 {
        if table.state(n).is_some_and(|s| s.purged) {
            continue;
        }
        let row = table.row(n).expect("row");
        let v = row.values();
        if v[art_ix] != article || v[lang_ix].as_str() != Some(lang.as_str()) {
            continue;
        }
        let ver = match v[ix("VersionNumber")] {
            Val::Int(i) => i,
            _ => 0,
        };
        if latest.is_none_or(|(best, _)| ver > best) {
            latest = Some((ver, n));
        }
        match v[status_ix].as_str() {
            Some("Draft") => draft = Some(n),
            Some("Online") => online = Some(n),
            _ => {}
        }
    }
    let (max_ver, latest_n) = latest.ok_or("no such article/language")?;
    if let Some(old) = online {
        let mut values = table.row(old).expect("row").values().to_vec();
        values[status_ix] = Val::s("Archived");
        values[ix("IsLatestVersion")] = Val::Bool(false);
        values[ix("ArchivedDate")] = Val::DateTime(w.ts);
        stamp(table, &mut values, w.ts, false);
        let deleted_at = table.state(old).and_then(|s| s.deleted_at);
        write_row(table, old, w, values, deleted_at);
    }
    let publish_values = |table: &Table, mut values: Vec<Val>| -> Result<Vec<Val>, String> {
        values[status_ix] = Val::s("Online");
        values[ix("IsLatestVersion")] = Val::Bool(true);
        values[ix("LastPublishedDate")] = Val::DateTime(w.ts);
        values[ix("ArchivedDate")] = Val::Null;
        if values[ix("FirstPublishedDate")].is_null() {
            values[ix("FirstPublishedDate")] = Val::DateTime(w.ts);
        }
        set_fields(table, &mut values, &op.fields)?;
        stamp(table, &mut values, w.ts, false);
        Ok(values)
    };
    let new_id = if let Some(d) = draft {
        let values = publish_values(table, table.row(d).expect("row").values().to_vec())?;
        let id = values[0].clone();
        let deleted_at = table.state(d).and_then(|s| s.deleted_at);
        write_row(table, d, w, values, deleted_at);
        id
    } else {
        let n = table.len() as u32;
        let mut values = table.row(latest_n).expect("row").values().to_vec();
        values[0] = Val::s(ids::make(def.key_prefix, n as u64));
        values[ix("VersionNumber")] = Val::Int(max_ver + 1);
        if let Some(c) = table.sys.created {
            values[c] = Val::DateTime(w.ts);
        }
        let values = publish_values(table, values)?;
        let id = values[0].clone();
        table.push(RowState {
            values: values.into_boxed_slice(),
            visible_at: w.visible_at,
            purged: false,
            deleted_at: None,
            previous: None,
        });
        id
    };
    Ok(
        json!({"id": new_id.to_json(), "KnowledgeArticleId": article.to_json(),
        "archived": online.map(|n| table.row(n).expect("row").values()[0].to_json()),
        "SystemModstamp": dt::format_datetime(w.ts)}),
    )
}

/// `POST /__emulator/rendezvous`: `{"objects":[…], "timeout_ms"?}`.
#[derive(Deserialize)]
struct RendezvousSpec {
    objects: Vec<String>,
    #[serde(default = "default_rendezvous_ms")]
    timeout_ms: u64,
}

fn default_rendezvous_ms() -> u64 {
    10_000
}

async fn arm_rendezvous(State(state): S, headers: HeaderMap, body: Bytes) -> Response {
    guard!(state, headers);
    let spec: RendezvousSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return bad(format!("invalid rendezvous: {e}")),
    };
    let timeout = std::time::Duration::from_millis(spec.timeout_ms);
    if spec.timeout_ms == 0 || timeout > crate::rendezvous::MAX_TIMEOUT {
        return bad(format!(
            "timeout_ms must be between 1 and {}",
            crate::rendezvous::MAX_TIMEOUT.as_millis()
        ));
    }
    let mut objects = std::collections::BTreeSet::new();
    {
        let store = state.store.read().expect("store lock");
        for name in &spec.objects {
            let Some(table) = store.table(name) else {
                return bad(format!("unknown object {name}"));
            };
            objects.insert(table.def.name.to_string());
        }
    }
    if objects.len() < 2 {
        return bad("a rendezvous needs at least two different objects");
    }
    let meeting = state.rendezvous.arm(objects, timeout);
    reply(
        StatusCode::OK,
        serde_json::to_value(meeting).unwrap_or_default(),
    )
}

async fn get_rendezvous(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let meeting = state.rendezvous.snapshot();
    reply(
        StatusCode::OK,
        serde_json::to_value(meeting).unwrap_or_default(),
    )
}

async fn disarm_rendezvous(State(state): S, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let meeting = state.rendezvous.disarm();
    reply(
        StatusCode::OK,
        serde_json::to_value(meeting).unwrap_or_default(),
    )
}
