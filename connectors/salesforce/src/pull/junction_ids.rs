//! One stored form for `junctionidlist` values, whichever API read the record.
//!
//! A describe `junctionidlist` field (Task's `TaskWhoIds`, Event's `EventWhoIds`) lists the
//! Ids of the records an activity relates to. REST writes it as a JSON array of Id strings;
//! Bulk API 2.0 results are CSV, so the Ids come as one text. The stored form is the JSON
//! array: it loses nothing either API says, and it is unambiguous, since an Id is made of
//! letters and digits and never contains the separator that joins the Bulk text. A record
//! related to no one is stored as `null`: Bulk writes an empty cell for both an empty list
//! and null, so REST's `[]` becomes `null` too.
//!
//! How Bulk joins the Ids is not documented; public client code treats the text like a
//! multi-select picklist, joined by `;`. Text that is not `;`-joined 15- or 18-character Ids
//! is refused with the field's name, so an org writing another form fails the stream
//! instead of storing a value the REST path would never store.

use super::chunks::rewrite_members;
use crate::describe::Describe;

/// What joins the Ids of a `junctionidlist` value in Bulk CSV results.
const BULK_SEPARATOR: char = ';';

/// Whether describe type `ty` is a list of Ids.
pub(crate) fn is_id_list(ty: &str) -> bool {
    ty.eq_ignore_ascii_case("junctionidlist")
}

/// The object's `junctionidlist` fields.
pub(super) fn fields(desc: &Describe) -> Vec<String> {
    desc.fields
        .iter()
        .filter(|f| is_id_list(&f.ty))
        .map(|f| f.name.clone())
        .collect()
}

/// The stored JSON of a non-empty Bulk `junctionidlist` cell: the array of its Ids.
pub(crate) fn from_bulk_text(text: &str) -> Result<String, String> {
    let ids: Vec<&str> = text.split(BULK_SEPARATOR).collect();
    if !ids.iter().all(|id| is_id(id)) {
        return Err(format!(
            "`{text}` is not a list of record Ids joined by `{BULK_SEPARATOR}`; \
             this org writes the field in a form the connector does not read"
        ));
    }
    Ok(serde_json::to_string(&ids).expect("strings serialise"))
}

fn is_id(s: &str) -> bool {
    matches!(s.len(), 15 | 18) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `json` with the `fields` members in the stored form: arrays of Id strings, `null` for an
/// empty list. Other members, and their order, are kept as they are.
pub(super) fn stored_form(json: String, fields: &[String]) -> Result<String, String> {
    if fields.is_empty() {
        return Ok(json);
    }
    rewrite_members(&json, |name, raw| {
        if fields.iter().any(|f| f == name) {
            id_list(name, raw).map(Some)
        } else {
            Ok(None)
        }
    })
}

/// One REST `junctionidlist` value in the stored form.
fn id_list(name: &str, raw: &str) -> Result<String, String> {
    let ids: Option<Vec<String>> =
        serde_json::from_str(raw).map_err(|_| format!("{name} is not a list of Ids: {raw}"))?;
    Ok(match ids {
        Some(ids) if !ids.is_empty() => serde_json::to_string(&ids).expect("strings serialise"),
        _ => "null".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::{from_bulk_text, stored_form};

    fn who() -> Vec<String> {
        vec!["TaskWhoIds".into()]
    }

    #[test]
    fn bulk_text_becomes_the_array_rest_gives() {
        let bulk = from_bulk_text("003000000000001AAA;003000000000002").unwrap();
        let rest = r#"{"Id":"00TA","TaskWhoIds":[ "003000000000001AAA", "003000000000002" ]}"#;
        assert_eq!(
            stored_form(rest.into(), &who()).unwrap(),
            format!(r#"{{"Id":"00TA","TaskWhoIds":{bulk}}}"#)
        );
        assert_eq!(bulk, r#"["003000000000001AAA","003000000000002"]"#);
    }

    #[test]
    fn an_empty_list_is_stored_as_null() {
        let rest = r#"{"Id":"00TA","TaskWhoIds":[],"WhoId":null}"#;
        assert_eq!(
            stored_form(rest.into(), &who()).unwrap(),
            r#"{"Id":"00TA","TaskWhoIds":null,"WhoId":null}"#
        );
        let none = r#"{"Id":"00TA","TaskWhoIds":null}"#;
        assert_eq!(stored_form(none.into(), &who()).unwrap(), none);
        assert_eq!(stored_form(none.into(), &[]).unwrap(), none);
    }

    #[test]
    fn other_forms_are_refused() {
        for text in [
            "003000000000001AAA,003000000000002AAA",
            "003000000000001AAA; 003000000000002AAA",
            "003000000000001AAA;",
            "not an id",
        ] {
            let err = from_bulk_text(text).unwrap_err();
            assert!(err.contains(text), "{err}");
        }
        let err = stored_form(r#"{"TaskWhoIds":"003000000000001AAA"}"#.into(), &who()).unwrap_err();
        assert!(err.contains("TaskWhoIds"), "{err}");
    }
}
