//! REST JSON and Bulk 2.0 CSV rendering, written straight into a byte buffer.

use std::ops::Range;

use super::eval::{ResultSet, eval_cond, field_value, sort_rows};
use super::resolve::{ChildQuery, Item, Node, Query};
use super::value::{
    Address, FieldType, Value, write_date, write_datetime, write_double, write_int,
};
use super::{RowId, RowSource};

// 0 = no escape; b'u' = \u00XX; else the char after the backslash.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` as a JSON string (escapes `"`, `\` and control characters; UTF-8 passes through).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let e = ESCAPE[c as usize];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        if e == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 15) as usize]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

fn write_opt_str(out: &mut Vec<u8>, s: &Option<String>) {
    match s {
        Some(s) => write_json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_opt_f64(out: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(v) => write_double(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_address(out: &mut Vec<u8>, a: &Address) {
    if a.is_empty() {
        out.extend_from_slice(b"null");
        return;
    }
    out.extend_from_slice(b"{\"city\":");
    write_opt_str(out, &a.city);
    out.extend_from_slice(b",\"country\":");
    write_opt_str(out, &a.country);
    out.extend_from_slice(b",\"countryCode\":");
    write_opt_str(out, &a.country_code);
    out.extend_from_slice(b",\"geocodeAccuracy\":");
    write_opt_str(out, &a.geocode_accuracy);
    out.extend_from_slice(b",\"latitude\":");
    write_opt_f64(out, a.latitude);
    out.extend_from_slice(b",\"longitude\":");
    write_opt_f64(out, a.longitude);
    out.extend_from_slice(b",\"postalCode\":");
    write_opt_str(out, &a.postal_code);
    out.extend_from_slice(b",\"state\":");
    write_opt_str(out, &a.state);
    out.extend_from_slice(b",\"stateCode\":");
    write_opt_str(out, &a.state_code);
    out.extend_from_slice(b",\"street\":");
    write_opt_str(out, &a.street);
    out.push(b'}');
}

/// Unquoted text of a scalar (shared by JSON numbers and CSV cells).
fn write_scalar_text(out: &mut Vec<u8>, v: &Value, ty: FieldType) {
    match v {
        Value::Null | Value::Address(_) => {}
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => {
            if ty.is_floating() {
                write_double(out, *i as f64)
            } else {
                write_int(out, *i)
            }
        }
        Value::Double(d) => {
            if ty == FieldType::Int && d.fract() == 0.0 && d.abs() < 9.0e15 {
                write_int(out, *d as i64)
            } else {
                write_double(out, *d)
            }
        }
        Value::Str(s) => out.extend_from_slice(s.as_bytes()),
        Value::Date(d) => write_date(out, *d),
        Value::DateTime(ms) => {
            if ty == FieldType::Date {
                write_date(out, ms.div_euclid(super::value::MS_PER_DAY) as i32)
            } else {
                write_datetime(out, *ms)
            }
        }
    }
}

/// Appends one JSON value for a field of type `ty`.
pub fn write_json_value(out: &mut Vec<u8>, v: &Value, ty: FieldType) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Str(s) if ty == FieldType::JunctionIdList => write_json_id_list(out, s),
        Value::Str(s) => write_json_str(out, s),
        Value::Address(a) => write_address(out, a),
        Value::Date(_) | Value::DateTime(_) => {
            out.push(b'"');
            write_scalar_text(out, v, ty);
            out.push(b'"');
        }
        _ => write_scalar_text(out, v, ty),
    }
}

/// A stored `junctionidlist` value as REST writes it: a JSON array of Id strings.
pub fn write_json_id_list(out: &mut Vec<u8>, stored: &str) {
    out.push(b'[');
    for (i, id) in super::junction_ids(stored).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, id);
    }
    out.push(b']');
}

struct Ctx<'a> {
    src: &'a dyn RowSource,
    /// Reused buffers for a node's own field values (one per nesting level in use).
    pool: std::cell::RefCell<Vec<Vec<Value>>>,
    /// `/services/data/v62.0/sobjects/`
    url_prefix: Vec<u8>,
    include_deleted: bool,
}

/// Renders records `range` of `rs` as comma-separated REST JSON objects (no surrounding
/// brackets) appended to `out`. `api_version` is `"62.0"` or `"v62.0"`.
pub fn render_rows(
    q: &Query,
    rs: &ResultSet,
    range: Range<usize>,
    src: &dyn RowSource,
    api_version: &str,
    out: &mut Vec<u8>,
) {
    let rows = &rs.rows[range.start.min(rs.rows.len())..range.end.min(rs.rows.len())];
    let mut url_prefix = Vec::with_capacity(40);
    url_prefix.extend_from_slice(b"/services/data/");
    if !api_version.starts_with('v') {
        url_prefix.push(b'v');
    }
    url_prefix.extend_from_slice(api_version.as_bytes());
    url_prefix.extend_from_slice(b"/sobjects/");
    let ctx = Ctx {
        src,
        pool: Default::default(),
        url_prefix,
        include_deleted: rs.include_deleted,
    };
    out.reserve(rows.len() * 256);
    for (i, &r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        render_node(&ctx, &q.node, r, out);
    }
}

fn render_node(ctx: &Ctx<'_>, node: &Node, row: RowId, out: &mut Vec<u8>) {
    let obj = node.object.as_str();
    out.extend_from_slice(b"{\"attributes\":{\"type\":\"");
    out.extend_from_slice(obj.as_bytes());
    out.extend_from_slice(b"\",\"url\":\"");
    out.extend_from_slice(&ctx.url_prefix);
    out.extend_from_slice(obj.as_bytes());
    out.push(b'/');
    let id = node.id_idx.map(|i| ctx.src.get(obj, row, i));
    if let Some(Value::Str(id)) = &id {
        out.extend_from_slice(id.as_bytes());
    }
    out.extend_from_slice(b"\"}");
    // Read all of this row's own cells (fields and lookup keys) before visiting parents, so a
    // row source that materialises one row at a time does it once per row.
    let mut vals = ctx.pool.borrow_mut().pop().unwrap_or_default();
    vals.clear();
    for item in &node.items {
        match item {
            Item::Field { idx, .. } | Item::Parent { fk_idx: idx, .. } => {
                vals.push(ctx.src.get(obj, row, *idx))
            }
            Item::Child(_) => vals.push(Value::Null),
        }
    }
    for (item, v) in node.items.iter().zip(vals.iter()) {
        out.extend_from_slice(b",\"");
        match item {
            Item::Field { name, ty, .. } => {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":");
                write_json_value(out, v, *ty);
            }
            Item::Parent { name, node, .. } => {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":");
                let parent = match v {
                    Value::Str(pid) => ctx.src.by_id(&node.object, pid),
                    _ => None,
                };
                match parent {
                    Some(pr) => render_node(ctx, node, pr, out),
                    None => out.extend_from_slice(b"null"),
                }
            }
            Item::Child(cq) => {
                out.extend_from_slice(cq.name.as_bytes());
                out.extend_from_slice(b"\":");
                let kids = match &id {
                    Some(Value::Str(pid)) => child_rows(ctx, cq, pid),
                    _ => Vec::new(),
                };
                if kids.is_empty() {
                    out.extend_from_slice(b"null");
                } else {
                    out.extend_from_slice(b"{\"totalSize\":");
                    write_int(out, kids.len() as i64);
                    out.extend_from_slice(b",\"done\":true,\"records\":[");
                    for (i, &k) in kids.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        render_node(ctx, &cq.node, k, out);
                    }
                    out.extend_from_slice(b"]}");
                }
            }
        }
    }
    vals.clear();
    ctx.pool.borrow_mut().push(vals);
    out.push(b'}');
}

fn child_rows(ctx: &Ctx<'_>, cq: &ChildQuery, parent_id: &str) -> Vec<RowId> {
    let obj = cq.object.as_str();
    let mut rows = ctx.src.children(obj, &cq.fk_field, parent_id);
    rows.retain(|&r| {
        if !ctx.src.visible(obj, r) {
            return false;
        }
        if !ctx.include_deleted
            && [cq.deleted_idx, cq.archived_idx]
                .into_iter()
                .flatten()
                .any(|i| matches!(ctx.src.get(obj, r, i), Value::Bool(true)))
        {
            return false;
        }
        cq.filter
            .as_ref()
            .is_none_or(|c| eval_cond(c, ctx.src, obj, r))
    });
    sort_rows(&mut rows, &cq.order, ctx.src, obj);
    if let Some(l) = cq.limit {
        rows.truncate(l as usize);
    }
    rows
}

fn write_csv_cell(out: &mut Vec<u8>, v: &Value, ty: FieldType) {
    out.push(b'"');
    match v {
        Value::Str(s) => {
            let b = s.as_bytes();
            let mut start = 0;
            for (i, &c) in b.iter().enumerate() {
                if c == b'"' {
                    out.extend_from_slice(&b[start..=i]);
                    out.push(b'"');
                    start = i + 1;
                }
            }
            out.extend_from_slice(&b[start..]);
        }
        _ => write_scalar_text(out, v, ty),
    }
    out.push(b'"');
}

/// Bulk 2.0 CSV line ending, datetime style and `junctionidlist` separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions<'a> {
    /// `lineEnding: CRLF` (record terminators only; newlines inside values stay as stored).
    pub crlf: bool,
    /// Datetimes end in `Z` (`…05.000Z`) instead of `+0000` (spec §5.3, UNVERIFIED).
    pub datetime_z: bool,
    /// What joins the Ids of a `junctionidlist` cell (UNVERIFIED; `;` by default).
    pub junction_separator: &'a str,
}

impl Default for CsvOptions<'_> {
    fn default() -> Self {
        CsvOptions {
            crlf: false,
            datetime_z: false,
            junction_separator: ";",
        }
    }
}

fn end_line(out: &mut Vec<u8>, o: CsvOptions<'_>) {
    if o.crlf {
        out.push(b'\r');
    }
    out.push(b'\n');
}

/// Bulk 2.0 CSV header: `"Id","Subject","Account.Name"` + LF.
pub fn render_csv_header(q: &Query, out: &mut Vec<u8>) {
    render_csv_header_with(q, CsvOptions::default(), out)
}

/// [`render_csv_header`] with a line-ending choice.
pub fn render_csv_header_with(q: &Query, opts: CsvOptions<'_>, out: &mut Vec<u8>) {
    for (i, p) in q.paths.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_csv_cell(out, &Value::Str(p.as_str().into()), FieldType::String);
    }
    end_line(out, opts);
}

/// Bulk 2.0 CSV rows for records `range`: every cell quoted, null as `""`, LF line ends,
/// datetimes as in REST. Compound fields and subqueries are not rendered (Bulk rejects them).
pub fn render_csv_rows(
    q: &Query,
    rs: &ResultSet,
    range: Range<usize>,
    src: &dyn RowSource,
    out: &mut Vec<u8>,
) {
    render_csv_rows_with(q, rs, range, src, CsvOptions::default(), out)
}

/// [`render_csv_rows`] with line-ending and datetime options.
pub fn render_csv_rows_with(
    q: &Query,
    rs: &ResultSet,
    range: Range<usize>,
    src: &dyn RowSource,
    opts: CsvOptions<'_>,
    out: &mut Vec<u8>,
) {
    let rows = &rs.rows[range.start.min(rs.rows.len())..range.end.min(rs.rows.len())];
    let obj = q.object.as_str();
    let mut vals: Vec<Value> = Vec::with_capacity(q.columns.len());
    for &r in rows {
        // Own cells first, then parent paths (one row materialisation per row and object).
        vals.clear();
        for col in &q.columns {
            vals.push(if col.hops.is_empty() {
                src.get(obj, r, col.idx)
            } else {
                Value::Null
            });
        }
        for (col, v) in q.columns.iter().zip(vals.iter_mut()) {
            if !col.hops.is_empty() {
                *v = field_value(src, obj, r, col);
            }
        }
        for (i, (col, v)) in q.columns.iter().zip(vals.iter()).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if opts.datetime_z
                && col.ty != FieldType::Date
                && let Value::DateTime(ms) = v
            {
                out.push(b'"');
                write_datetime(out, *ms);
                out.truncate(out.len() - 5);
                out.extend_from_slice(b"Z\"");
                continue;
            }
            if col.ty == FieldType::JunctionIdList
                && let Value::Str(stored) = v
            {
                let joined: Vec<&str> = super::junction_ids(stored).collect();
                let text = Value::Str(joined.join(opts.junction_separator).into());
                write_csv_cell(out, &text, col.ty);
                continue;
            }
            write_csv_cell(out, v, col.ty);
        }
        end_line(out, opts);
    }
}
