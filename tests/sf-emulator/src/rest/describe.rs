//! Describe global, basic object info and full describe (spec §2.9).

use std::time::{Duration, UNIX_EPOCH};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{Ctx, not_found_error};
use crate::oauth::json_response;
use crate::schema::{FieldDef, Kind, ObjectDef};

/// Objects the Bulk API refuses (none of ours, but describe must stay honest).
fn global_entry(def: &ObjectDef, base: &str) -> Json {
    let name = def.name;
    let writable = !matches!(name, "CaseHistory" | "UserPermissionAccess");
    json!({
        "activateable": false, "createable": writable, "custom": def.custom,
        "customSetting": false, "deletable": writable && name != "User",
        "deprecatedAndHidden": false, "feedEnabled": matches!(name, "Account" | "Case" | "Contact"),
        "hasSubtypes": false, "isSubtype": false, "keyPrefix": def.key_prefix,
        "label": def.label, "labelPlural": def.label_plural, "layoutable": writable,
        "mergeable": matches!(name, "Account" | "Contact" | "Lead" | "Case"),
        "mruEnabled": writable, "name": name, "queryable": true,
        "replicateable": def.replicateable, "retrieveable": true, "searchable": writable,
        "triggerable": writable, "undeletable": writable && name != "User",
        "updateable": writable,
        "urls": {
            "sobject": format!("{base}/sobjects/{name}"),
            "describe": format!("{base}/sobjects/{name}/describe"),
            "rowTemplate": format!("{base}/sobjects/{name}/{{ID}}"),
        },
    })
}

/// An HTTP date (`Last-Modified`), whole seconds.
pub fn http_date(ms: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// `If-Modified-Since` at or after the schema's Last-Modified (`modified_ms`) → 304.
fn not_modified(ctx: &Ctx, modified_ms: i64) -> bool {
    let Some(ims) = ctx
        .headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    let modified = UNIX_EPOCH + Duration::from_millis(modified_ms.max(0) as u64);
    // HTTP dates have whole seconds; compare at that precision.
    let secs = |t: std::time::SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    secs(modified) <= secs(ims)
}

/// The describe answer with `Last-Modified: modified_ms`, or 304 when the client's
/// `If-Modified-Since` is not older. Added fields move an object's (and the global)
/// value forward, always by at least one second.
fn with_last_modified(ctx: &Ctx, body: &Json, modified_ms: i64) -> Response {
    let date = http_date(modified_ms);
    if not_modified(ctx, modified_ms) {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&date) {
            resp.headers_mut().insert(header::LAST_MODIFIED, v);
        }
        return resp;
    }
    let mut resp = json_response(StatusCode::OK, body);
    if let Ok(v) = HeaderValue::from_str(&date) {
        resp.headers_mut().insert(header::LAST_MODIFIED, v);
    }
    resp
}

/// `GET /sobjects/`.
pub fn global(ctx: &Ctx) -> Response {
    let base = ctx.base();
    let store = ctx.state.store.read().expect("store lock");
    let settings = ctx.state.settings();
    let list: Vec<Json> = store
        .tables()
        .filter(|t| !crate::access::hidden(&settings, t.def.name))
        .map(|t| global_entry(&t.def, &base))
        .collect();
    let modified = store.schema_modified_ms();
    drop(store);
    let body = json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list});
    with_last_modified(ctx, &body, modified)
}

/// The object's definition and describe `Last-Modified`.
fn find_def(ctx: &Ctx, obj: &str) -> Option<(std::sync::Arc<ObjectDef>, i64)> {
    let store = ctx.state.store.read().expect("store lock");
    store
        .table(obj)
        .map(|t| (t.def.clone(), t.schema_modified_ms))
}

/// `GET /sobjects/{Obj}/`.
pub fn basic(ctx: &Ctx, obj: &str) -> Response {
    let Some((def, _)) = find_def(ctx, obj) else {
        return not_found_error();
    };
    let body = json!({"objectDescribe": global_entry(&def, &ctx.base()), "recentItems": []});
    json_response(StatusCode::OK, &body)
}

/// `GET /sobjects/{Obj}/describe/`.
pub fn object(ctx: &Ctx, obj: &str) -> Response {
    let Some((def, modified)) = find_def(ctx, obj) else {
        return not_found_error();
    };
    let mut body = global_entry(&def, &ctx.base());
    let fields: Vec<Json> = def
        .fields
        .iter()
        .filter(|f| f.visible())
        .map(field_json)
        .collect();
    let children: Vec<Json> = def
        .children
        .iter()
        .map(|c| {
            json!({"cascadeDelete": c.child_object != "Task", "childSObject": c.child_object,
                "deprecatedAndHidden": false, "field": c.field, "relationshipName": c.relationship_name,
                "restrictedDelete": false})
        })
        .collect();
    let m = body.as_object_mut().expect("object");
    m.insert("fields".into(), Json::Array(fields));
    m.insert("childRelationships".into(), Json::Array(children));
    m.insert(
        "recordTypeInfos".into(),
        json!([{"active": true, "available": true, "defaultRecordTypeMapping": true,
            "developerName": "Master", "master": true, "name": "Master",
            "recordTypeId": "012000000000000AAA"}]),
    );
    m.insert(
        "supportedScopes".into(),
        json!([{"label": "All", "name": "everything"}]),
    );
    m.insert("compactLayoutable".into(), Json::Bool(true));
    m.insert("searchLayoutable".into(), Json::Bool(true));
    with_last_modified(ctx, &body, modified)
}

fn field_json(f: &FieldDef) -> Json {
    let numeric = matches!(f.kind, Kind::Double | Kind::Currency | Kind::Percent);
    let name: &str = &f.name;
    let system = matches!(
        name,
        "Id" | "IsDeleted"
            | "CreatedById"
            | "CreatedDate"
            | "LastModifiedById"
            | "LastModifiedDate"
            | "SystemModstamp"
    );
    let updateable = !system
        && f.kind != Kind::Address
        && !matches!(name, "Name" | "CaseNumber" | "ArticleNumber");
    let long_text = f.kind == Kind::TextArea && f.length > 255;
    let sortable = !(matches!(
        f.kind,
        Kind::Address | Kind::AnyType | Kind::Json | Kind::JunctionIdList
    ) || long_text);
    // UNVERIFIED for `junctionidlist`: not filterable (a list has no single value to compare).
    let filterable =
        !matches!(f.kind, Kind::Address | Kind::Json | Kind::JunctionIdList) && !long_text;
    let picklist: Vec<Json> = f
        .picklist
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"active": true, "defaultValue": i == 0 && name == "Status", "label": v, "validFor": null, "value": v}))
        .collect();
    let length = if numeric
        || matches!(
            f.kind,
            Kind::Boolean | Kind::Int | Kind::Date | Kind::DateTime | Kind::Address
        ) {
        0
    } else {
        f.length
    };
    json!({
        "name": name, "label": f.label, "type": f.kind.describe_type(),
        "soapType": f.kind.soap_type(), "length": length,
        "byteLength": if length > 0 { length * 3 } else { 0 },
        "precision": if numeric { 18 } else { 0 }, "scale": if numeric { 2 } else { 0 },
        "digits": if f.kind == Kind::Int { 9 } else { 0 },
        "nillable": f.nillable, "createable": updateable, "updateable": updateable,
        "calculated": f.calculated, "custom": f.custom, "filterable": filterable,
        "sortable": sortable, "groupable": sortable && !numeric, "unique": false,
        "externalId": false, "idLookup": name == "Id", "nameField": name == "Name" || (name == "CaseNumber") || (name == "Title"),
        "autoNumber": matches!(name, "CaseNumber" | "ArticleNumber"),
        "defaultedOnCreate": system || f.kind == Kind::Boolean,
        "deprecatedAndHidden": false, "picklistValues": picklist,
        "referenceTo": f.reference_to, "relationshipName": f.relationship_name,
        "relationshipOrder": null, "compoundFieldName": f.compound_field_name,
        "htmlFormatted": f.html_formatted, "encrypted": false, "cascadeDelete": false,
        "restrictedPicklist": false, "polymorphicForeignKey": f.reference_to.len() > 1,
        "extraTypeInfo": if f.html_formatted { Json::from("richtextarea") } else if f.kind == Kind::TextArea && f.length > 255 { Json::from("plaintextarea") } else { Json::Null },
    })
}
