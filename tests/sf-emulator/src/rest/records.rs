//! Single record reads and getUpdated / getDeleted (spec §2.8, §2.10).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Ctx, api_error, not_found_error};
use crate::data::{Table, Val};
use crate::dt;
use crate::oauth::json_response;
use crate::schema::{Kind, ObjectDef};

/// Appends a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("string"));
}

fn push_val(out: &mut String, v: &Val) {
    match v {
        Val::Null => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) => out.push_str(&i.to_string()),
        Val::Num(f) if f.is_finite() => {
            let s = f.to_string();
            out.push_str(&s);
            if !s.contains(['.', 'e', 'E']) {
                out.push_str(".0");
            }
        }
        Val::Num(_) => out.push_str("null"),
        Val::Str(s) => push_json_str(out, s),
        Val::Date(d) => push_json_str(out, &dt::format_date(*d)),
        Val::DateTime(ms) => push_json_str(out, &dt::format_datetime(*ms)),
    }
}

/// The compound address value `{city,country,geocodeAccuracy,latitude,longitude,
/// postalCode,state,street}` or `null` when every component is null.
pub fn address_json(def: &ObjectDef, values: &[Val], compound: &str) -> String {
    let mut parts: Vec<(&str, &Val)> = Vec::new();
    for (i, f) in def.fields.iter().enumerate() {
        if f.compound_field_name == Some(compound) {
            let prefix_len = compound.len() - "Address".len();
            let suffix = &f.name[prefix_len..];
            let key = match suffix {
                "Street" => "street",
                "City" => "city",
                "State" => "state",
                "PostalCode" => "postalCode",
                "Country" => "country",
                "Latitude" => "latitude",
                "Longitude" => "longitude",
                _ => "geocodeAccuracy",
            };
            parts.push((key, &values[i]));
        }
    }
    if parts.iter().all(|(_, v)| v.is_null()) {
        return "null".into();
    }
    parts.sort_by_key(|(k, _)| *k);
    let mut out = String::from("{");
    for (n, (k, v)) in parts.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"{k}\":"));
        push_val(&mut out, v);
    }
    out.push('}');
    out
}

/// Renders one record with `attributes` first and the chosen fields in order.
pub fn record_json(def: &ObjectDef, values: &[Val], fields: &[usize], base: &str) -> String {
    let id = values[0].as_str().unwrap_or("");
    let mut out = String::with_capacity(256);
    out.push_str("{\"attributes\":{\"type\":");
    push_json_str(&mut out, def.name);
    out.push_str(",\"url\":");
    push_json_str(&mut out, &format!("{base}/sobjects/{}/{id}", def.name));
    out.push('}');
    for &i in fields {
        let f = &def.fields[i];
        out.push(',');
        push_json_str(&mut out, &f.name);
        out.push(':');
        if f.kind == Kind::Address {
            out.push_str(&address_json(def, values, &f.name));
        } else if f.kind == Kind::JunctionIdList {
            out.push_str(&values[i].to_json_of(f.kind).to_string());
        } else {
            push_val(&mut out, &values[i]);
        }
    }
    out.push('}');
    out
}

fn json_text(body: String) -> Response {
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "application/json;charset=UTF-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /sobjects/{Obj}/{id}[?fields=A,B]`.
pub fn get(ctx: &Ctx, obj: &str, id: &str) -> Response {
    let store = ctx.state.store.read().expect("store lock");
    let Some(table) = store.table(obj) else {
        return not_found_error();
    };
    let def = &table.def;
    let fields: Vec<usize> = match ctx.param("fields") {
        Some(list) => {
            let mut out = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match def.api_field_index(name) {
                    Some(i) => out.push(i),
                    None => {
                        return api_error(
                            400,
                            "INVALID_FIELD",
                            &format!(
                                "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                                def.name
                            ),
                        );
                    }
                }
            }
            out
        }
        None => (0..def.fields.len())
            .filter(|&i| def.fields[i].visible())
            .collect(),
    };
    let now = dt::now_ms();
    let Some(n) = table
        .row_of(id)
        .filter(|&n| table.visible(n, now) && !table.is_deleted_at(n, now))
    else {
        return not_found_error();
    };
    let row = table.view(n, now).expect("visible row exists");
    json_text(record_json(def, row.values(), &fields, &ctx.base()))
}

/// Truncates to the minute, as getUpdated/getDeleted do.
fn to_minute(ms: i64) -> i64 {
    ms - ms.rem_euclid(60_000)
}

struct Window {
    start: i64,
    end: i64,
}

fn window(ctx: &Ctx, table: &Table, max_days: i64) -> Result<Window, Response> {
    if !table.def.replicateable {
        return Err(api_error(
            400,
            "INVALID_TYPE",
            &format!(
                "sObject type '{}' does not support replication",
                table.def.name
            ),
        ));
    }
    let parse = |name: &str| {
        let raw = ctx.param(name).ok_or_else(|| {
            api_error(
                400,
                "MISSING_ARGUMENT",
                &format!("Missing required parameter: {name}"),
            )
        })?;
        dt::parse_datetime(&raw).ok_or_else(|| {
            api_error(
                400,
                "INVALID_DATE_FORMAT",
                &format!("{name}: invalid date format: {raw}"),
            )
        })
    };
    let (start_raw, end_raw) = (parse("start")?, parse("end")?);
    let (start, end) = (to_minute(start_raw), to_minute(end_raw));
    let now = dt::now_ms();
    if end_raw - start_raw <= 60_000 {
        return Err(api_error(
            400,
            "INVALID_REPLICATION_DATE",
            "startDate must chronologically precede endDate by more than one minute",
        ));
    }
    if start < to_minute(now) - max_days * dt::DAY_MS {
        return Err(api_error(
            400,
            "INVALID_REPLICATION_DATE",
            &format!("startDate cannot be more than {max_days} days ago"),
        ));
    }
    Ok(Window { start, end })
}

/// `GET /sobjects/{Obj}/updated/?start&end`.
pub fn updated(ctx: &Ctx, obj: &str) -> Response {
    let store = ctx.state.store.read().expect("store lock");
    let Some(table) = store.table(obj) else {
        return not_found_error();
    };
    let w = match window(ctx, table, 30) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let now = dt::now_ms();
    // Rows written but not yet visible hold latestDateCovered back, so a client that
    // resumes from it never skips them.
    let mut covered = to_minute(now).min(w.end);
    let order = table.ordered();
    let mut ids = Vec::new();
    let from = order.partition_point(|&n| table.cursor_of(n) < w.start);
    for &n in &order[from..] {
        let ms = table.cursor_of(n);
        if ms >= w.end {
            break;
        }
        if table.state(n).is_some_and(|s| s.purged) || table.is_deleted(n) {
            continue;
        }
        if !table.current_visible(n, now) {
            covered = covered.min(to_minute(ms));
            continue;
        }
        if let Some(id) = table
            .row(n)
            .and_then(|r| r.values()[0].as_str().map(str::to_string))
        {
            ids.push((ms, id));
        }
    }
    ids.retain(|(ms, _)| *ms < covered);
    if ids.len() > 600_000 {
        return api_error(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. Please narrow the date range",
        );
    }
    let ids: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();
    json_response(
        StatusCode::OK,
        &json!({"ids": ids, "latestDateCovered": dt::format_datetime(covered)}),
    )
}

/// `GET /sobjects/{Obj}/deleted/?start&end`.
pub fn deleted(ctx: &Ctx, obj: &str) -> Response {
    let store = ctx.state.store.read().expect("store lock");
    let Some(table) = store.table(obj) else {
        return not_found_error();
    };
    let w = match window(ctx, table, 15) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let now = dt::now_ms();
    let covered = to_minute(now).min(w.end);
    // The log keeps about 15 days, less when it overflows (`delete_log_retention_s`).
    let retention_ms = ctx.state.settings().delete_log_retention_s as i64 * 1000;
    let earliest = to_minute(now - retention_ms);
    let mut out: Vec<(i64, String)> = Vec::new();
    for n in 0..table.len() as u32 {
        let Some(state) = table.state(n) else {
            continue;
        };
        // Purged rows stay in the delete log; only the recycle bin forgets them.
        // The version served now: a pending (un)delete does not count yet.
        let served = state.visible_at <= now || state.previous.is_some();
        let Some(at) = state.deleted_at_at(now) else {
            continue;
        };
        if at >= w.start
            && at >= earliest
            && at < covered
            && served
            && let Some(id) = state.values[0].as_str()
        {
            out.push((at, id.to_string()));
        }
    }
    out.sort();
    let recs: Vec<_> = out
        .into_iter()
        .map(|(at, id)| json!({"id": id, "deletedDate": dt::format_datetime(at)}))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"deletedRecords": recs, "earliestDateAvailable": dt::format_datetime(earliest),
            "latestDateCovered": dt::format_datetime(covered)}),
    )
}
