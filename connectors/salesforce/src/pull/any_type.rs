//! One stored form for `anyType` values, whichever API read the record.
//!
//! A describe `anyType` field (CaseHistory's `OldValue`/`NewValue`, for example) holds a
//! value whose type varies per record. REST writes it typed (`true`, `42`, `"Closed"`);
//! Bulk API 2.0 writes every value as CSV text (`"true"`, `"42"`), and text cannot be typed
//! back, since the string `"true"` is as valid a value as the boolean. So the stored form is
//! the text: REST's numbers and booleans become JSON strings of the same text, and a record
//! read by REST is stored exactly as the same record read through Bulk.

use super::chunks::{ordered_fields, rewrite_members};
use crate::describe::Describe;

/// The object's `anyType` fields.
pub(super) fn fields(desc: &Describe) -> Vec<String> {
    desc.fields
        .iter()
        .filter(|f| f.ty.eq_ignore_ascii_case("anyType"))
        .map(|f| f.name.clone())
        .collect()
}

/// `json` with the `fields` members that are numbers or booleans turned into strings of
/// their text; other members, and their order, are kept as they are.
pub(super) fn text_form(json: String, fields: &[String]) -> Result<String, String> {
    if fields.is_empty() {
        return Ok(json);
    }
    let members = ordered_fields(&json).map_err(|e| format!("unreadable record: {e}"))?;
    let typed = |name: &str, raw: &str| {
        fields.iter().any(|f| f == name) && !matches!(raw.as_bytes().first(), Some(b'"' | b'n'))
    };
    if !members.iter().any(|(n, v)| typed(n, v.get())) {
        return Ok(json);
    }
    rewrite_members(&json, |name, raw| match raw.as_bytes().first() {
        Some(b'[' | b'{') if typed(name, raw) => {
            Err(format!("{name} holds a list or an object: {raw}"))
        }
        _ if typed(name, raw) => Ok(Some(
            serde_json::to_string(raw).expect("a string serialises"),
        )),
        _ => Ok(None),
    })
}

#[cfg(test)]
mod tests {
    use super::text_form;

    fn any() -> Vec<String> {
        vec!["OldValue".into(), "NewValue".into()]
    }

    #[test]
    fn numbers_and_booleans_become_their_text() {
        let rest = r#"{"attributes":{"type":"CaseHistory"},"Id":"017A","OldValue":false,"NewValue":3.50,"Field":"X"}"#;
        assert_eq!(
            text_form(rest.into(), &any()).unwrap(),
            r#"{"attributes":{"type":"CaseHistory"},"Id":"017A","OldValue":"false","NewValue":"3.50","Field":"X"}"#
        );
    }

    #[test]
    fn strings_nulls_and_other_fields_are_untouched() {
        let rest = r#"{"Id":"017A","OldValue":"true","NewValue":null,"Count":7}"#;
        assert_eq!(text_form(rest.into(), &any()).unwrap(), rest);
        assert_eq!(text_form(rest.into(), &[]).unwrap(), rest);
    }

    #[test]
    fn a_list_is_refused_by_name() {
        let err = text_form(r#"{"OldValue":[1]}"#.into(), &any()).unwrap_err();
        assert!(err.contains("OldValue"), "{err}");
    }
}
