//! SOQL engine of the Salesforce emulator: parse + validate against a schema, execute over
//! rows the server stores its own way, and render REST JSON / Bulk 2.0 CSV byte-exactly.
//!
//! ```text
//! // The server implements:
//! trait Catalog   { fn object(&self, name: &str) -> Option<&ObjectSchema>; }   // case-insensitive
//! trait RowSource {
//!     fn get(&self, object: &str, row: RowId, field_index: usize) -> Value;    // object = canonical name
//!     fn by_id(&self, object: &str, id: &str) -> Option<RowId>;                // 18-char id
//!     fn rows(&self, object: &str) -> Vec<RowId>;                              // incl. soft-deleted
//!     fn children(&self, child_object: &str, fk_field: &str, parent_id: &str) -> Vec<RowId>;
//!     fn sorted_rows(&self, object: &str, field_index: usize)                 // optional index
//!         -> Option<Cow<'_, [RowId]>> { None }
//!     fn visible(&self, object: &str, row: RowId) -> bool { true }            // lag; also children
//! }
//! // The engine offers:
//! parse(soql, &dyn Catalog) -> Result<Query, SoqlError>
//! parse_with(soql, &dyn Catalog, &ParseOptions) -> Result<Query, SoqlError>
//! Query::{object, is_count, field_paths, limit, offset, has_compound_fields, has_subqueries}
//! execute(&Query, &dyn RowSource, ExecOptions) -> Result<ResultSet, SoqlError>
//! ResultSet::{total_size, rows, len, is_empty}
//! render_rows(&Query, &ResultSet, Range<usize>, &dyn RowSource, api_version, &mut Vec<u8>)
//!     // comma-separated record objects, no brackets: wrap in `"records":[ … ]`
//! render_csv_header(&Query, &mut Vec<u8>); render_csv_rows(&Query, &ResultSet, Range, &dyn RowSource, &mut Vec<u8>)
//! render_csv_header_with / render_csv_rows_with(…, CsvOptions { crlf, datetime_z }, …)
//! SoqlError { status, error_code, message }.to_json() -> `[{"message":…,"errorCode":…}]`
//! value::{parse_datetime, format_datetime, parse_date, format_date, write_double} helpers
//! ```
//!
//! Semantics follow Salesforce's SOQL and SOSL Reference: keywords, object and
//! field names case-insensitive (output uses schema casing); string `=` case-insensitive;
//! two-valued null logic (`!=`/`NOT IN` match nulls); ORDER BY nulls first unless `NULLS LAST`
//! (both directions); unquoted date/datetime literals only; `/query` hides `IsDeleted = true`
//! rows unless `ExecOptions::include_deleted`; child subqueries render `null` when empty.
//!
//! Errors carry Salesforce's prefix `\n{fragment}\n{spaces}^\nERROR at Row:R:Column:C\n{text}`:
//! C is the 1-based column of the offending token (lexer errors, e.g. a `+` decoded as a space,
//! use ANTLR's 0-based position, as recorded live); the fragment is the words of that row within
//! 43 chars before / 38 after the caret (inferred from recorded messages).
//!
//! Performance: top-level `Id = '…'`/`Id IN (…)` use `by_id`; without a pending sort the scan
//! stops at OFFSET + LIMIT; `sorted_rows` (ascending by the field, nulls first, ties by Id) lets
//! `WHERE f > X AND f <= Y ORDER BY f, Id` run as two binary searches plus a scan of the
//! window, with no sort. Without it the engine scans `rows()` and sorts row ids by extracted
//! keys. Rendering writes straight into the output buffer.

mod ast;
pub mod error;
mod eval;
mod lexer;
mod parser;
pub mod render;
mod resolve;
pub mod value;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

pub use error::SoqlError;
pub use eval::ResultSet;
pub use render::{
    CsvOptions, render_csv_header, render_csv_header_with, render_csv_rows, render_csv_rows_with,
    render_rows,
};
pub use resolve::Query;
pub use value::{Address, FieldType, JUNCTION_JOIN, Value, junction_ids};

/// Index of a row inside one object's table (the server's choice).
pub type RowId = u32;

/// Describe-level schema of one object.
#[derive(Debug, Clone)]
pub struct ObjectSchema {
    /// Canonical API name, e.g. `Case`.
    pub name: String,
    pub fields: Vec<FieldSchema>,
    pub parents: Vec<ParentRel>,
    pub children: Vec<ChildRel>,
    pub queryable: bool,
}

#[derive(Debug, Clone)]
pub struct FieldSchema {
    pub name: String,
    pub ty: FieldType,
    pub nillable: bool,
    pub filterable: bool,
    pub sortable: bool,
    /// Deleted or hidden from the user: SOQL cannot name it (its slot keeps row positions).
    pub hidden: bool,
}

/// Lookup to a parent: `Case.Account` via `AccountId` to `Account`.
#[derive(Debug, Clone)]
pub struct ParentRel {
    pub name: String,
    pub field: String,
    pub target: String,
}

/// Child relationship: `Case.CaseComments` = `CaseComment` rows whose `ParentId` is the case.
#[derive(Debug, Clone)]
pub struct ChildRel {
    pub name: String,
    pub object: String,
    pub field: String,
}

/// Schema lookup, implemented by the server.
pub trait Catalog {
    /// Case-insensitive lookup of an object by API name.
    fn object(&self, name: &str) -> Option<&ObjectSchema>;
}

/// Row access, implemented by the server. `object` is always the canonical name.
pub trait RowSource {
    /// Cell value; `field_index` indexes `ObjectSchema::fields`.
    fn get(&self, object: &str, row: RowId, field_index: usize) -> Value;
    /// Row with this (18-char) Id, including soft-deleted rows.
    fn by_id(&self, object: &str, id: &str) -> Option<RowId>;
    /// All rows, including soft-deleted ones (the engine filters `IsDeleted`).
    fn rows(&self, object: &str) -> Vec<RowId>;
    /// Rows of `child_object` whose `fk_field` equals `parent_id`.
    fn children(&self, child_object: &str, fk_field: &str, parent_id: &str) -> Vec<RowId>;
    /// Optional index: all rows ascending by `field_index`, nulls first, ties by Id (byte
    /// order). Only asked for date/datetime/number fields. Return `None` if not indexed.
    fn sorted_rows(&self, _object: &str, _field_index: usize) -> Option<Cow<'_, [RowId]>> {
        None
    }
    /// Whether a row is visible at all (e.g. not yet committed under a visibility lag).
    /// The engine drops invisible rows from the top level and from child subqueries.
    fn visible(&self, _object: &str, _row: RowId) -> bool {
        true
    }
}

/// Options for [`parse_with`].
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// Knowledge `__kav` objects need a top-level `PublishStatus = '…'` (or `Id =`/`Id IN`)
    /// filter, else `MALFORMED_QUERY` "Implementation restriction: …". Default true.
    pub knowledge_publish_status_rule: bool,
    /// "Now" for relative date literals (`TODAY`, `LAST_N_DAYS:n`); default: system clock.
    pub now_ms: Option<i64>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            knowledge_publish_status_rule: true,
            now_ms: None,
        }
    }
}

/// Options for [`execute`].
#[derive(Clone, Copy, Default)]
pub struct ExecOptions<'a> {
    /// `queryAll`: keep rows with `IsDeleted = true` (also in child subqueries).
    pub include_deleted: bool,
    /// Extra filter of the top-level object's rows (e.g. visibility lag); `None` = all
    /// rows visible. [`RowSource::visible`] filters both the top level and child-subquery
    /// rows (children are rendered later, page by page, so the source decides there).
    pub visible: Option<&'a dyn Fn(RowId) -> bool>,
}

/// Parses and validates `soql` with default options.
pub fn parse(soql: &str, catalog: &dyn Catalog) -> Result<Query, SoqlError> {
    resolve::parse_query(soql, catalog, &ParseOptions::default())
}

/// Parses and validates `soql`.
pub fn parse_with(
    soql: &str,
    catalog: &dyn Catalog,
    opts: &ParseOptions,
) -> Result<Query, SoqlError> {
    resolve::parse_query(soql, catalog, opts)
}

/// Filters, sorts and applies OFFSET/LIMIT. For `COUNT()` only `total_size` is set.
pub fn execute(
    q: &Query,
    src: &dyn RowSource,
    opts: ExecOptions<'_>,
) -> Result<ResultSet, SoqlError> {
    eval::execute(q, src, opts)
}
