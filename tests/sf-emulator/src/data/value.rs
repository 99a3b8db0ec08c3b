//! The store's cell value.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::dt;
use crate::schema::Kind;

/// One stored cell. Strings are `Arc<str>` so picklist values and repeated names are
/// shared rather than copied per row.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(Arc<str>),
    /// Days since 1970-01-01.
    Date(i64),
    /// Milliseconds since the epoch, UTC.
    DateTime(i64),
}

impl Val {
    /// A string value.
    pub fn s(v: impl Into<Arc<str>>) -> Val {
        Val::Str(v.into())
    }

    /// The datetime in epoch ms, if this is one.
    pub fn as_datetime(&self) -> Option<i64> {
        match self {
            Val::DateTime(ms) => Some(*ms),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// REST JSON encoding (spec §2.6).
    pub fn to_json(&self) -> Json {
        match self {
            Val::Null => Json::Null,
            Val::Bool(b) => Json::Bool(*b),
            Val::Int(i) => Json::from(*i),
            Val::Num(f) => serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Val::Str(s) => Json::String(s.to_string()),
            Val::Date(d) => Json::String(dt::format_date(*d)),
            Val::DateTime(ms) => Json::String(dt::format_datetime(*ms)),
        }
    }

    /// The JSON value of a cell of field kind `kind`: [`Val::to_json`], except that a
    /// `junctionidlist` is an array of its Ids.
    pub fn to_json_of(&self, kind: Kind) -> Json {
        match (kind, self) {
            (Kind::JunctionIdList, Val::Str(s)) => {
                Json::Array(crate::soql::junction_ids(s).map(Json::from).collect())
            }
            _ => self.to_json(),
        }
    }

    /// Converts a JSON value from the control API into a cell of field kind `kind`.
    pub fn from_json(kind: Kind, v: &Json) -> Result<Val, String> {
        Ok(match (kind, v) {
            (_, Json::Null) => Val::Null,
            (Kind::JunctionIdList, Json::Array(items)) => id_list(items)?,
            (Kind::JunctionIdList, _) => return Err("a junctionidlist is an array of Ids".into()),
            (Kind::Boolean, Json::Bool(b)) => Val::Bool(*b),
            (Kind::Int, Json::Number(n)) => Val::Int(n.as_i64().ok_or("not an integer")?),
            (Kind::Double | Kind::Currency | Kind::Percent, Json::Number(n)) => {
                Val::Num(n.as_f64().ok_or("not a number")?)
            }
            (Kind::DateTime, Json::String(s)) => {
                Val::DateTime(dt::parse_datetime(s).ok_or("bad datetime")?)
            }
            (Kind::Date, Json::String(s)) => Val::Date(dt::parse_date(s).ok_or("bad date")?),
            (Kind::AnyType, Json::Bool(b)) => Val::Bool(*b),
            (Kind::AnyType, Json::Number(n)) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Num(n.as_f64().unwrap_or(0.0)),
            },
            (Kind::Address, _) => return Err("compound fields are derived".into()),
            (Kind::Boolean | Kind::Int | Kind::Double | Kind::Currency | Kind::Percent, _) => {
                return Err(format!("wrong JSON type for {kind:?}"));
            }
            (_, Json::String(s)) => Val::s(s.as_str()),
            _ => return Err(format!("wrong JSON type for {kind:?}")),
        })
    }
}

/// A `junctionidlist` cell from an array of Ids; an empty array is stored as null, which is
/// how the APIs report a record related to no one.
fn id_list(items: &[Json]) -> Result<Val, String> {
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str() {
            Some(id)
                if matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                ids.push(id)
            }
            _ => return Err(format!("{item} is not a 15- or 18-character Id")),
        }
    }
    if ids.is_empty() {
        return Ok(Val::Null);
    }
    Ok(Val::s(ids.join(&crate::soql::JUNCTION_JOIN.to_string())))
}
