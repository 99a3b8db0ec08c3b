//! `discover`: each configured stream's JSON Schema, built from the object's describe, with
//! its key and cursor fields. The schema types each field as the REST API returns it (JSON
//! numbers for numeric types, ISO 8601 text for dates), and allows `null` for every field but
//! the key, since Salesforce sends `null` for any empty field.

use crate::client::{self, Sf};
use crate::describe::{self, Describe};
use crate::errors;
use crate::settings::{self, KNOWLEDGE_STREAM, Purpose};
use serde_json::{Map, Value, json};
use sluice_connector_sdk::http::Host;
use sluice_connector_sdk::model::{Failure, FailureKind, Session, StreamSchema};

/// The schemas of the configured streams. An optional object the org lacks is left out, as
/// `pull` skips it.
pub fn discover(env: &mut dyn Host, session: &Session) -> Result<Vec<StreamSchema>, Failure> {
    let n = settings::validate(&session.settings, &session.host, Purpose::Run).map_err(|es| {
        let text: Vec<String> = es
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        Failure::new(FailureKind::Misconfigured, text.join("; "))
    })?;
    let instance = client::instance_url(session)?;
    let mut sf = Sf::new(env, instance, &n.api_version, None);
    let mut out = Vec::new();
    for stream in n.streams() {
        let object = match stream.name.as_str() {
            KNOWLEDGE_STREAM => match crate::pull::find_kav(&mut sf)? {
                Some(kav) => kav,
                None => continue,
            },
            name => name.to_string(),
        };
        let url = sf.data_url(&format!("/sobjects/{object}/describe/"));
        let desc = match sf.get(&url, &[]) {
            Ok(resp) => describe::parse(&resp.body, None)
                .map_err(|e| Failure::new(FailureKind::Unknown, e))?,
            Err(e) if describe::is_missing(&e) && describe::is_optional(&object) => continue,
            Err(e) => return Err(errors::classify(&e, Some(&object))),
        };
        out.push(StreamSchema {
            json_schema: schema(&desc, &stream.key_fields).to_string(),
            name: stream.name,
            key_fields: stream.key_fields,
            cursor_field: stream.cursor_field,
        });
    }
    Ok(out)
}

/// The JSON Schema of an object's records.
pub fn schema(desc: &Describe, keys: &[String]) -> Value {
    let mut properties = Map::new();
    properties.insert("attributes".into(), json!({"type": "object"}));
    for field in &desc.fields {
        let mut ty = field_type(&field.ty);
        if !keys.contains(&field.name)
            && let Some(Value::String(t)) = ty.get("type").cloned()
        {
            ty["type"] = json!([t, "null"]);
        }
        properties.insert(field.name.clone(), ty);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": desc.object,
        "type": "object",
        "properties": properties,
        "required": keys,
    })
}

/// A describe type as JSON Schema.
fn field_type(ty: &str) -> Value {
    match ty {
        "boolean" => json!({"type": "boolean"}),
        "int" | "long" => json!({"type": "integer"}),
        "double" | "currency" | "percent" => json!({"type": "number"}),
        "date" => json!({"type": "string", "format": "date"}),
        "datetime" => json!({"type": "string", "format": "date-time"}),
        "time" => json!({"type": "string", "format": "time"}),
        "email" => json!({"type": "string", "format": "email"}),
        "url" => json!({"type": "string", "format": "uri"}),
        // id, reference, string, textarea, picklist, multipicklist, phone, combobox and the
        // rest: text.
        _ => json!({"type": "string"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_typed_as_rest_returns_them_and_only_keys_are_required() {
        let body = br#"{"name":"Case","replicateable":true,"fields":[
            {"name":"Id","type":"id"},{"name":"IsClosed","type":"boolean"},
            {"name":"Amount__c","type":"currency"},{"name":"ClosedDate","type":"datetime"},
            {"name":"Subject","type":"string"},{"name":"Address","type":"address"}]}"#;
        let desc = describe::parse(body, None).unwrap();
        let s = schema(&desc, &["Id".to_string()]);
        assert_eq!(s["properties"]["Id"], json!({"type": "string"}));
        assert_eq!(
            s["properties"]["IsClosed"],
            json!({"type": ["boolean", "null"]})
        );
        assert_eq!(
            s["properties"]["Amount__c"]["type"],
            json!(["number", "null"])
        );
        assert_eq!(s["properties"]["ClosedDate"]["format"], "date-time");
        // Compound fields are not selected, so they are not in the schema either.
        assert!(s["properties"].get("Address").is_none());
        assert_eq!(s["required"], json!(["Id"]));
    }
}
