//! `/query` and `/queryAll` with paging through query locators (spec §2.5).

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Ctx, api_error};
use crate::data::source::StoreSource;
use crate::dt;
use crate::ids;
use crate::soql::{self, ExecOptions, ParseOptions, Query, ResultSet, SoqlError};

/// An open query cursor (what a `nextRecordsUrl` locator points at).
pub struct Cursor {
    pub query: Arc<Query>,
    pub rows: Arc<ResultSet>,
    pub created_ms: i64,
}

/// Renders a SOQL error as the REST error array.
pub fn soql_error(e: &SoqlError) -> Response {
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        e.to_json(),
    )
        .into_response()
}

/// Page size: `Sforce-Query-Options: batchSize=N` clamped to 200..2000, then capped by
/// the `max_batch_size` setting.
fn batch_size(ctx: &Ctx) -> usize {
    let max = ctx.state.settings().max_batch_size.max(1) as usize;
    let asked = ctx
        .headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
                .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        });
    asked.map_or(2000, |n| n.clamp(200, 2000)).min(max)
}

/// Parses and runs a query against the store as it is now.
pub fn run(
    state: &crate::state::Shared,
    soql_text: &str,
    include_deleted: bool,
) -> Result<(Query, ResultSet), SoqlError> {
    let opts = ParseOptions {
        knowledge_publish_status_rule: state.settings().knowledge_requires_publish_status,
        now_ms: None,
    };
    // Parsed under the store lock, so the query runs against the schema it was checked
    // against (fields can be added at run time).
    let store = state.store.read().expect("store lock");
    let settings = state.settings();
    let catalog = crate::access::VisibleCatalog {
        inner: &store.schemas,
        settings: &settings,
    };
    let query = soql::parse_with(soql_text, &catalog, &opts)?;
    let now = dt::now_ms();
    let src = StoreSource::new(&store, now);
    // Visibility (lag, purges, pending versions) is decided by `StoreSource::visible`,
    // for the top level and for child subqueries alike.
    let rs = soql::execute(
        &query,
        &src,
        ExecOptions {
            include_deleted,
            visible: None,
        },
    )?;
    Ok((query, rs))
}

/// `GET /query?q=` and `/queryAll?q=`.
pub fn query(ctx: &Ctx, include_deleted: bool) -> Response {
    let Some(q) = ctx.param("q") else {
        return api_error(400, "MALFORMED_QUERY", "A query string has to be specified");
    };
    let (query, rs) = match run(&ctx.state, &q, include_deleted) {
        Ok(r) => r,
        Err(e) => return soql_error(&e),
    };
    let size = batch_size(ctx);
    let (query, rs) = (Arc::new(query), Arc::new(rs));
    let locator = (rs.len() > size).then(|| {
        let id = ids::make("01g", ctx.state.next_seq());
        ctx.state.cursors.lock().expect("cursors lock").insert(
            id.clone(),
            Cursor {
                query: query.clone(),
                rows: rs.clone(),
                created_ms: dt::now_ms(),
            },
        );
        id
    });
    page(ctx, &query, &rs, 0, size, locator.as_deref())
}

/// `GET /query/{locator}-{offset}` (also under `/queryAll/`).
pub fn more(ctx: &Ctx, locator: &str) -> Response {
    let invalid = || {
        let status = ctx.state.settings().invalid_locator_status;
        api_error(status, "INVALID_QUERY_LOCATOR", "invalid query locator")
    };
    let Some((id, offset)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    let cursor = {
        let cursors = ctx.state.cursors.lock().expect("cursors lock");
        match cursors.get(id) {
            Some(c) if offset <= c.rows.len() => (c.query.clone(), c.rows.clone()),
            _ => return invalid(),
        }
    };
    let size = batch_size(ctx);
    let (query, rs) = cursor;
    let resp = page(ctx, &query, &rs, offset, size, Some(id));
    if offset + size >= rs.len() {
        // Finished cursors are released, as Salesforce does.
        ctx.state.cursors.lock().expect("cursors lock").remove(id);
    }
    resp
}

fn page(
    ctx: &Ctx,
    query: &Query,
    rs: &ResultSet,
    offset: usize,
    size: usize,
    locator: Option<&str>,
) -> Response {
    let end = (offset + size).min(rs.len());
    let done = end >= rs.len();
    let mut out = Vec::with_capacity(64 + (end - offset) * 400);
    out.extend_from_slice(b"{\"totalSize\":");
    out.extend_from_slice(rs.total_size().to_string().as_bytes());
    out.extend_from_slice(if done {
        b",\"done\":true"
    } else {
        b",\"done\":false"
    });
    if let (false, Some(loc)) = (done, locator) {
        // Relative, and `/query/` even for queryAll.
        let next = format!(",\"nextRecordsUrl\":\"{}/query/{loc}-{end}\"", ctx.base());
        out.extend_from_slice(next.as_bytes());
    }
    out.extend_from_slice(b",\"records\":[");
    {
        let store = ctx.state.store.read().expect("store lock");
        let src = StoreSource::new(&store, dt::now_ms());
        soql::render_rows(query, rs, offset..end, &src, &ctx.version, &mut out);
    }
    out.extend_from_slice(b"]}");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        out,
    )
        .into_response()
}
