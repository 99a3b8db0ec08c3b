//! The admin API's OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! annotations and the `ToSchema` derives of the views and request types, so that a field
//! added to a view appears in the document.
//!
//! What the annotations cannot say is added here from the router's own structure: the bearer
//! token every `/api` and `/metrics` route requires, and the refusals of the layers in front
//! of the handlers (401 without the token, 403 cross-site, 415 wrong `Content-Type`, 421 a
//! foreign `Host`). Answers are shaped exactly as the views serialize: every field is
//! present (`null` when absent), and no other field appears.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::admin::ErrorBody;

/// The document's derive: every route and the schemas they reach.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice admin API",
        description = "Operations of the Sluice runtime for a platform. Every `/api` and \
            `/metrics` request needs `Authorization: Bearer <admin token>`, on loopback too \
            (`--admin-token`, or the token `sluice serve` generates in `<data dir>/admin.token`; \
            `sluice admin-token` prints it). Requests whose `Host` does not name the server get \
            421. POST, PATCH and DELETE requests marked cross-site or same-site by \
            `Sec-Fetch-Site`, or whose `Origin` is not the server's, get 403. POST and PATCH \
            need `Content-Type: application/json` (`application/wasm` for connector uploads), \
            bodyless ones included, else 415."
    ),
    paths(
        crate::admin::healthz,
        crate::admin::openapi,
        crate::admin::metrics,
        crate::admin::oauth_callback,
        crate::admin::list,
        crate::admin::add,
        crate::admin::show,
        crate::admin::edit,
        crate::admin::delete,
        crate::admin::test,
        crate::admin::pull,
        crate::admin::pause,
        crate::admin::resume,
        crate::admin::runs,
        crate::admin::records,
        crate::admin::changes,
        crate::admin::streams,
        crate::admin::authorize,
        crate::admin::credentials,
        crate::admin::connectors,
        crate::admin::install_connector,
        crate::admin::about_connector,
        crate::admin::webhooks,
        crate::admin::add_webhook,
        crate::admin::remove_webhook,
        crate::admin::webhook_deliveries,
        crate::admin::retry_webhook,
    ),
    components(schemas(ErrorBody)),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Request bodies: their optional fields stay optional.
const REQUEST_SCHEMAS: &[&str] = &["IntegrationBody", "WebhookBody"];

/// The document as served, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
        complete(&mut doc);
        doc.to_string()
    })
}

/// Adds what the annotations cannot say (see the module's doc).
fn complete(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The admin token: `--admin-token`, `SLUICE_ADMIN_TOKEN`, or \
                `<data dir>/admin.token` (`sluice admin-token` prints it)"
        }
    });
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        let snapshot = schemas.clone();
        for (name, schema) in schemas.iter_mut() {
            merge_all_of(schema, &snapshot);
            close(schema, !REQUEST_SCHEMAS.contains(&name.as_str()));
        }
    }
    add_new_integration_body(doc);
    // A component travels as its bytes.
    doc["paths"]["/api/connectors/{name}"]["post"]["requestBody"]["content"]["application/wasm"]
        ["schema"] = json!({"type": "string", "format": "binary"});
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                add_layer_refusals(path, method, operation);
                if method == "post" && operation.get("requestBody").is_none() {
                    operation["requestBody"] = json!({
                        "description": "No body is read; the `Content-Type` is what a web page \
                            cannot send without a CORS preflight",
                        "required": true,
                        "content": {"application/json": {"schema": {}}}
                    });
                }
            }
        }
    }
}

/// The fields `POST /api/integrations` needs; `PATCH` takes the same body with every field
/// optional. The runtime refuses a missing one per field (422); the document says so up front.
const NEW_INTEGRATION_REQUIRES: &[&str] = &["name", "capability"];

/// `NewIntegrationBody`: `IntegrationBody` with [`NEW_INTEGRATION_REQUIRES`] present and not
/// null, used by `POST /api/integrations`.
fn add_new_integration_body(doc: &mut Value) {
    let mut body = doc["components"]["schemas"]["IntegrationBody"].clone();
    for name in NEW_INTEGRATION_REQUIRES {
        let field = &mut body["properties"][*name];
        if let Some(variants) = field.get("oneOf").and_then(Value::as_array) {
            let not_null: Vec<Value> = variants
                .iter()
                .filter(|v| v["type"] != "null")
                .cloned()
                .collect();
            if let [only] = not_null.as_slice() {
                *field = only.clone();
            }
        } else if field["type"].is_array() {
            field["type"] = Value::String("string".into());
        }
    }
    body["required"] = json!(NEW_INTEGRATION_REQUIRES);
    body["description"] = json!("The body of `POST /api/integrations`.");
    doc["components"]["schemas"]["NewIntegrationBody"] = body;
    doc["paths"]["/api/integrations"]["post"]["requestBody"]["content"]["application/json"]["schema"] =
        json!({"$ref": "#/components/schemas/NewIntegrationBody"});
}

/// A schema made of `allOf` parts (serde's `flatten`) becomes one object, so that it can be
/// closed: `additionalProperties` does not see properties declared in sibling parts.
fn merge_all_of(schema: &mut Value, schemas: &Map<String, Value>) {
    let Some(parts) = schema.get("allOf").and_then(Value::as_array).cloned() else {
        return;
    };
    let mut properties = Map::new();
    let mut required = Vec::new();
    for part in parts {
        let part = match part.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                schemas.get(name).cloned().unwrap_or(Value::Null)
            }
            None => part,
        };
        if let Some(own) = part.get("properties").and_then(Value::as_object) {
            properties.extend(own.clone());
        }
        if let Some(own) = part.get("required").and_then(Value::as_array) {
            required.extend(own.iter().cloned());
        }
    }
    let description = schema.get("description").cloned();
    *schema = json!({"type": "object", "properties": properties, "required": required});
    if let Some(description) = description {
        schema["description"] = description;
    }
}

/// No property beyond the declared ones; in answers, every declared one is present.
fn close(schema: &mut Value, all_required: bool) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let names: Vec<Value> = properties.keys().cloned().map(Value::String).collect();
    let is_error_body = properties.contains_key("fields") && properties.contains_key("error");
    schema["additionalProperties"] = Value::Bool(false);
    if all_required && !is_error_body {
        schema["required"] = Value::Array(names);
    }
}

/// The refusals of the layers in front of the handler of `method path` (see
/// [`crate::admin::router`] and [`crate::admin_guard`]).
fn add_layer_refusals(path: &str, method: &str, operation: &mut Value) {
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let needs_token = path.starts_with("/api") || path == "/metrics";
    let changes_state = !matches!(method, "get" | "head" | "options");
    let takes_body = matches!(method, "post" | "put" | "patch");
    let mut refusals = vec![(
        "421",
        "`Host` does not name this server (a loopback name with its port, or the public URL's host)",
    )];
    if needs_token {
        refusals.push(("401", "No or a wrong admin token"));
    }
    if changes_state {
        refusals.push((
            "403",
            "Cross-site: `Sec-Fetch-Site` is cross-site or same-site, or `Origin` is not this server",
        ));
    }
    if takes_body {
        refusals.push(("415", "`Content-Type` is not the one this route takes"));
    }
    for (status, description) in refusals {
        let entry = responses.entry(status).or_insert_with(|| {
            json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            })
        });
        // A handler's own answer with this status keeps its words; the layer's reason joins.
        if entry["description"].as_str() != Some(description) {
            let joined = format!(
                "{}; or: {description}",
                entry["description"].as_str().unwrap_or("")
            );
            entry["description"] = Value::String(joined);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_declares_its_layers_refusals_and_views_are_closed() {
        let doc: Value = serde_json::from_str(document()).unwrap();
        let add = &doc["paths"]["/api/integrations"]["post"]["responses"];
        for status in ["201", "401", "403", "415", "421", "422"] {
            assert!(
                add[status].is_object(),
                "POST /api/integrations lacks {status}"
            );
        }
        let health = &doc["paths"]["/healthz"]["get"];
        assert!(health["responses"]["401"].is_null());
        assert_eq!(health["security"], json!([{}]));
        let row = &doc["components"]["schemas"]["ListRow"];
        assert_eq!(row["additionalProperties"], false);
        for field in ["id", "state", "last_run", "token"] {
            assert!(
                row["required"].as_array().unwrap().contains(&json!(field)),
                "ListRow: {field} {row}"
            );
        }
    }
}
