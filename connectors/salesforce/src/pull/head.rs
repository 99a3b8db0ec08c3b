//! The few fields of a record the pull algorithm reads, taken from its JSON without building
//! the whole record: Ids, the cursor, the delete flag and the knowledge keys. Everything else
//! passes through as the bytes Salesforce sent, so a page costs one scan, not a tree per record.

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// The fields of one record that decide its row.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Head {
    /// `Id`.
    pub id: Option<String>,
    /// `SystemModstamp`, as written.
    pub system_modstamp: Option<String>,
    /// `CreatedDate`, as written.
    pub created_date: Option<String>,
    /// `IsDeleted`.
    pub is_deleted: bool,
    /// `KnowledgeArticleId`.
    pub article: Option<String>,
    /// `Language`.
    pub language: Option<String>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum Field {
    Id,
    SystemModstamp,
    CreatedDate,
    IsDeleted,
    KnowledgeArticleId,
    Language,
    #[serde(other)]
    Other,
}

impl Head {
    /// Reads the head of a record's JSON object.
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(json);
        (&mut de).deserialize_map(HeadVisitor)
    }

    /// The head of a record already held as a map of values.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Self {
        let s = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Self {
            id: s("Id"),
            system_modstamp: s("SystemModstamp"),
            created_date: s("CreatedDate"),
            is_deleted: map
                .get("IsDeleted")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            article: s("KnowledgeArticleId"),
            language: s("Language"),
        }
    }

    /// The value of cursor field `field` (`SystemModstamp` or `CreatedDate`).
    pub fn cursor(&self, field: &str) -> Option<&str> {
        match field {
            "SystemModstamp" => self.system_modstamp.as_deref(),
            "CreatedDate" => self.created_date.as_deref(),
            _ => None,
        }
    }
}

struct HeadVisitor;

impl<'de> Visitor<'de> for HeadVisitor {
    type Value = Head;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head::default();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Id => head.id = map.next_value()?,
                Field::SystemModstamp => head.system_modstamp = map.next_value()?,
                Field::CreatedDate => head.created_date = map.next_value()?,
                Field::IsDeleted => {
                    head.is_deleted = map.next_value::<Option<bool>>()?.unwrap_or(false)
                }
                Field::KnowledgeArticleId => head.article = map.next_value()?,
                Field::Language => head.language = map.next_value()?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_the_head_and_skips_nested_values() {
        let json = r#"{"attributes":{"type":"Case","url":"/x"},"Id":"500A","Owner":{"Id":"005B","Name":"x"},"Subject":"a \"b\"","IsDeleted":true,"SystemModstamp":"2024-01-02T03:04:05.000+0000","CreatedDate":null,"Amount":1.5}"#;
        let h = Head::parse(json).unwrap();
        assert_eq!(
            h.id.as_deref(),
            Some("500A"),
            "the nested Owner.Id is not the record's"
        );
        assert!(h.is_deleted);
        assert_eq!(
            h.cursor("SystemModstamp"),
            Some("2024-01-02T03:04:05.000+0000")
        );
        assert_eq!(h.cursor("CreatedDate"), None);
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(Head::from_map(v.as_object().unwrap()), h);
        assert!(Head::parse("[1]").is_err());
    }
}
