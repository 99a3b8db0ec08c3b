//! Describe results: which fields to select, and finding the org's `__kav` object.

use serde::{Deserialize, Serialize};

/// One field of a describe result, as much as the connector needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// API name.
    #[serde(rename = "n")]
    pub name: String,
    /// Describe `type` (`datetime`, `address`, `base64`, ...).
    #[serde(rename = "t")]
    pub ty: String,
    /// A formula field: its value changes without moving the record's cursor.
    #[serde(rename = "c", default, skip_serializing_if = "std::ops::Not::not")]
    pub calculated: bool,
}

/// The parts of an object's describe the connector uses; cached in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Describe {
    /// The object's API name.
    #[serde(rename = "o")]
    pub object: String,
    /// Selectable fields in describe order.
    #[serde(rename = "f")]
    pub fields: Vec<Field>,
    /// Whether getUpdated/getDeleted are supported.
    #[serde(rename = "r")]
    pub replicateable: bool,
    /// The describe's `Last-Modified`, replayed as `If-Modified-Since`.
    #[serde(rename = "lm", default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

#[derive(Deserialize)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    calculated: bool,
}

#[derive(Deserialize)]
struct RawDescribe {
    name: String,
    #[serde(default)]
    fields: Vec<RawField>,
    #[serde(default)]
    replicateable: bool,
}

/// Types never selected: compound parents (their components are selected instead, so REST and
/// Bulk read the same columns), base64 (REST gives only a URL, Bulk nothing) and complex values.
fn skipped(ty: &str) -> bool {
    matches!(ty, "address" | "location" | "base64" | "complexvalue")
}

/// Parses a full describe body.
pub fn parse(body: &[u8], last_modified: Option<String>) -> Result<Describe, String> {
    let raw: RawDescribe =
        serde_json::from_slice(body).map_err(|e| format!("unreadable describe: {e}"))?;
    Ok(Describe {
        object: raw.name,
        fields: raw
            .fields
            .into_iter()
            .filter(|f| !skipped(&f.ty))
            .map(|f| Field {
                name: f.name,
                ty: f.ty,
                calculated: f.calculated,
            })
            .collect(),
        replicateable: raw.replicateable,
        last_modified,
    })
}

impl Describe {
    /// Whether the object has `name`.
    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }

    /// The field's type.
    pub fn type_of(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.ty.as_str())
    }

    /// The formula fields, in describe order.
    pub fn calculated(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|f| f.calculated)
            .map(|f| f.name.as_str())
            .collect()
    }

    /// Field names to select, `Id` first, then `lead` (cursor, keys) in order, then the rest.
    pub fn select_list(&self, lead: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for l in std::iter::once("Id").chain(lead.iter().copied()) {
            if self.has(l) && !out.iter().any(|o| o == l) {
                out.push(l.to_string());
            }
        }
        for f in &self.fields {
            if !out.contains(&f.name) {
                out.push(f.name.clone());
            }
        }
        out
    }
}

/// Finds the org's knowledge article version object (`Knowledge__kav` unless renamed).
pub fn find_kav(global_body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(global_body).ok()?;
    let names: Vec<&str> = v
        .get("sobjects")?
        .as_array()?
        .iter()
        .filter(|o| o.get("queryable").and_then(|q| q.as_bool()).unwrap_or(true))
        .filter_map(|o| o.get("name")?.as_str())
        .filter(|n| n.ends_with("__kav"))
        .collect();
    names
        .iter()
        .find(|n| n.eq_ignore_ascii_case("Knowledge__kav"))
        .or_else(|| names.first())
        .map(|s| s.to_string())
}

/// Objects an org may not have at all: their streams are skipped, and Test Connection warns.
const OPTIONAL_OBJECTS: &[(&str, &str)] = &[(
    "EmailMessage",
    "it exists only when Email-to-Case or Enhanced Email is enabled",
)];

/// Whether the org may lack `object` without anything being wrong (EmailMessage; Knowledge
/// is found through describe global instead).
pub fn is_optional(object: &str) -> bool {
    OPTIONAL_OBJECTS
        .iter()
        .any(|(o, _)| o.eq_ignore_ascii_case(object))
}

/// Why an optional object may be missing.
pub fn optional_reason(object: &str) -> &'static str {
    OPTIONAL_OBJECTS
        .iter()
        .find(|(o, _)| o.eq_ignore_ascii_case(object))
        .map_or("the org does not have it", |(_, why)| why)
}

/// Whether a describe failed because the object does not exist for the user: absent from
/// the org or not readable, which Salesforce answers alike.
pub fn is_missing(e: &crate::errors::SfError) -> bool {
    e.status == 404 || e.is("NOT_FOUND") || e.is("INVALID_TYPE")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASE: &str = r#"{"name":"Case","replicateable":true,"fields":[
        {"name":"Id","type":"id"},{"name":"Subject","type":"string"},
        {"name":"SystemModstamp","type":"datetime"},{"name":"IsDeleted","type":"boolean"},
        {"name":"Address","type":"address"},{"name":"Street","type":"textarea"},
        {"name":"Photo","type":"base64"},{"name":"Count__c","type":"double"}]}"#;

    #[test]
    fn field_list_skips_compound_parents_and_base64() {
        let d = parse(
            CASE.as_bytes(),
            Some("Tue, 02 Jan 2024 03:04:05 GMT".into()),
        )
        .unwrap();
        assert_eq!(
            d.select_list(&["SystemModstamp"]),
            [
                "Id",
                "SystemModstamp",
                "Subject",
                "IsDeleted",
                "Street",
                "Count__c"
            ]
        );
        assert!(d.replicateable);
        assert_eq!(d.type_of("Count__c"), Some("double"));
        assert_eq!(
            d.last_modified.as_deref(),
            Some("Tue, 02 Jan 2024 03:04:05 GMT")
        );
    }

    #[test]
    fn finds_renamed_kav() {
        let g = br#"{"sobjects":[{"name":"Account","queryable":true},{"name":"FAQ__kav","queryable":true},{"name":"FAQ__ka","queryable":true}]}"#;
        assert_eq!(find_kav(g).as_deref(), Some("FAQ__kav"));
        let g = br#"{"sobjects":[{"name":"A__kav"},{"name":"Knowledge__kav"}]}"#;
        assert_eq!(find_kav(g).as_deref(), Some("Knowledge__kav"));
        assert_eq!(find_kav(br#"{"sobjects":[{"name":"Account"}]}"#), None);
    }
}
