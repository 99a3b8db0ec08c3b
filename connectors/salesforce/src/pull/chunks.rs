//! Objects too wide for one query URL (16,384 bytes, headers included), or with too many
//! formula fields for one query (`QUERY_TOO_COMPLICATED`): field chunks merged by Id.
//!
//! The first chunk drives the query (window, keyset position, order); every chunk leads with
//! Id, the cursor and the keys. For each page of the driving query the other chunks are read
//! by `Id IN (...)`, and their fields are appended to the driving record's JSON in select
//! order. A record missing from a chunk is read again by its Id alone; if it is still missing
//! it was hard-deleted in between, and the row becomes a delete, never a silent drop. A record
//! changed between two chunk reads carries a newer cursor, so the next window reads it again.

use std::collections::HashMap;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{ReadError, Target, fail, read_all};
use crate::client::Sf;
use crate::describe::Describe;
use crate::soql;
use sluice_connector_sdk::model::FailureKind;

/// A record's members in document order, values as Salesforce wrote them.
type Members = Vec<(String, Box<RawValue>)>;
/// Records of one chunk read, by Id.
type ById = HashMap<String, Members>;

/// Ids per `Id IN (...)` read; the chunk plan leaves room for this many in the URL.
pub(super) const IDS_PER_READ: usize = 200;

/// The select list split into chunks when one query URL cannot hold it; None when it fits.
pub(super) fn plan(
    sf: &Sf,
    t: &Target,
    desc: &Describe,
    lead: &[&str],
    budget: usize,
    max_fields: usize,
) -> Option<Vec<Vec<String>>> {
    let fields = desc.select_list(lead);
    let url_for = |f: &[String]| {
        // The longest query a chunk is used in: an Id list of IDS_PER_READ 18-char Ids.
        let ids = vec!["'000000000000000AAA'"; IDS_PER_READ].join(", ");
        soql::query_url(
            &sf.base,
            &sf.version,
            t.all(),
            &format!(
                "SELECT {} FROM {} WHERE Id IN ({ids})",
                f.join(", "),
                t.object
            ),
        )
    };
    if url_for(&fields).len() <= budget && fields.len() <= max_fields {
        return None;
    }
    let required: Vec<String> = fields
        .iter()
        .take_while(|f| *f == "Id" || lead.contains(&f.as_str()))
        .cloned()
        .collect();
    Some(soql::chunk_fields(
        &required, &fields, budget, max_fields, &url_for,
    ))
}

/// A driving record completed with the other chunks' fields, or found hard-deleted.
pub(super) enum Merged {
    /// The whole record's JSON.
    Full(String),
    /// No chunk read could find it any more: it was hard-deleted while being read.
    Gone(String),
}

/// Completes each driving record (`(json, Id)`) with the fields of `chunks[1..]`.
pub(super) fn complete(
    sf: &mut Sf,
    t: &Target,
    chunks: &[Vec<String>],
    driving: Vec<(String, String)>,
) -> Result<Vec<Merged>, ReadError> {
    let ids: Vec<&str> = driving.iter().map(|(_, id)| id.as_str()).collect();
    let mut extra: Vec<ById> = Vec::new();
    for chunk in &chunks[1..] {
        let mut found = read_by_id(sf, t, chunk, &ids)?;
        let missing: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !found.contains_key(*id))
            .collect();
        for id in missing {
            // Once more on its own: an IN read can miss a row that was being written.
            found.extend(read_by_id(sf, t, chunk, &[id])?);
        }
        extra.push(found);
    }
    let mut out = Vec::with_capacity(driving.len());
    for (json, id) in driving {
        let mut parts = Vec::new();
        let mut gone = false;
        for (found, chunk) in extra.iter_mut().zip(&chunks[1..]) {
            match found.remove(&id) {
                Some(fields) => parts.push((fields, chunk)),
                None => gone = true,
            }
        }
        if gone {
            out.push(Merged::Gone(json));
            continue;
        }
        let trimmed = json.trim_end();
        let mut merged = trimmed.strip_suffix('}').unwrap_or(trimmed).to_string();
        for (fields, chunk) in parts {
            for (name, value) in fields {
                // Id, the cursor and the keys lead every chunk; the driving record has them.
                if name == "attributes" || chunks[0].contains(&name) || !chunk.contains(&name) {
                    continue;
                }
                merged.push(',');
                merged.push_str(&serde_json::to_string(&name).expect("a string serialises"));
                merged.push(':');
                merged.push_str(value.get());
            }
        }
        merged.push('}');
        out.push(Merged::Full(merged));
    }
    Ok(out)
}

/// Reads `fields` of the records `ids`: Id → fields in the order Salesforce sent them.
fn read_by_id(sf: &mut Sf, t: &Target, fields: &[String], ids: &[&str]) -> Result<ById, ReadError> {
    let mut out = HashMap::new();
    for group in ids.chunks(IDS_PER_READ) {
        let list: Vec<String> = group.iter().map(|id| soql::string_literal(id)).collect();
        let q = format!(
            "SELECT {} FROM {} WHERE Id IN ({})",
            fields.join(", "),
            t.object,
            list.join(", ")
        );
        read_all(sf, t, t.all(), &q, |raw| {
            let rec = ordered_fields(raw.get())
                .map_err(|e| fail(FailureKind::Unknown, format!("unreadable record: {e}")))?;
            let id = rec
                .iter()
                .find(|(n, _)| n == "Id")
                .and_then(|(_, v)| serde_json::from_str::<String>(v.get()).ok());
            if let Some(id) = id {
                out.insert(id, rec);
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// A JSON object's members in document order, values kept as Salesforce wrote them.
pub(super) fn ordered_fields(json: &str) -> Result<Members, serde_json::Error> {
    struct InOrder;
    impl<'de> Visitor<'de> for InOrder {
        type Value = Members;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    (&mut de).deserialize_map(InOrder)
}

/// `json` (an object) with each member for which `replace(name, raw value)` gives new raw JSON
/// replaced by it; the other members, their text and their order stay as they are.
pub(super) fn rewrite_members(
    json: &str,
    mut replace: impl FnMut(&str, &str) -> Result<Option<String>, String>,
) -> Result<String, String> {
    let members = ordered_fields(json).map_err(|e| format!("unreadable record: {e}"))?;
    let mut out = String::with_capacity(json.len() + 16);
    out.push('{');
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(name).expect("a string serialises"));
        out.push(':');
        match replace(name, value.get())? {
            Some(new) => out.push_str(&new),
            None => out.push_str(value.get()),
        }
    }
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::ordered_fields;

    #[test]
    fn members_keep_document_order_and_text() {
        let m = ordered_fields(r#"{"b":1.50,"a":{"x":[1]},"c":null}"#).unwrap();
        let got: Vec<(String, &str)> = m.iter().map(|(k, v)| (k.clone(), v.get())).collect();
        assert_eq!(
            got,
            vec![
                ("b".to_string(), "1.50"),
                ("a".to_string(), r#"{"x":[1]}"#),
                ("c".to_string(), "null")
            ]
        );
    }
}
