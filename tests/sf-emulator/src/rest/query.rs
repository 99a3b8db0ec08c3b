//! `/query` and `/queryAll` with paging through query locators (spec §2.5).
//!
//! A locator belongs to the session that opened it: once that session ends, the locator
//! answers 401 `INVALID_SESSION_ID` even to a fresh token of the same user, so a client must
//! re-issue its query. Idle locators and a per-user cap on open locators are settings.

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
    /// The access token (session) that opened the cursor.
    pub session: String,
    /// The user row that opened it.
    pub user: u32,
    /// When a page of it was last served.
    pub used_ms: i64,
}

/// Why a locator cannot be served.
enum LocatorRefusal {
    /// Unknown, finished, idle too long, dropped for a newer one, or another user's.
    Invalid,
    /// The session that opened it has ended.
    SessionEnded,
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
    let formula_cap = state.settings().max_formula_fields_per_query as usize;
    if formula_cap > 0 && formula_columns(&store, &query) > formula_cap {
        return Err(SoqlError::new(
            "QUERY_TOO_COMPLICATED",
            "Query is either selecting too many fields or the filter conditions are too \
             complicated.",
        ));
    }
    let knowledge = query.object.ends_with("__kav");
    if knowledge && include_deleted {
        // Article versions have no recycle bin: a deleted article is gone at once.
        return Err(SoqlError::new(
            "INVALID_TYPE_FOR_OPERATION",
            format!("entity type {} does not support queryAll", query.object),
        ));
    }
    let now = dt::now_ms();
    let src = StoreSource::new(&store, now);
    let hide_archived = knowledge && !state.settings().knowledge_archived_visible;
    let status_ix = store
        .table(&query.object)
        .and_then(|t| t.def.field_index("PublishStatus"));
    let not_archived = |r: soql::RowId| match status_ix {
        Some(i) => !matches!(soql::RowSource::get(&src, &query.object, r, i),
            soql::Value::Str(ref s) if s.eq_ignore_ascii_case("Archived")),
        None => true,
    };
    // Visibility (lag, purges, pending versions) is decided by `StoreSource::visible`,
    // for the top level and for child subqueries alike; archived article versions need the
    // "View Archived Articles" permission.
    let rs = soql::execute(
        &query,
        &src,
        ExecOptions {
            include_deleted,
            visible: hide_archived.then_some(&not_archived as &dyn Fn(soql::RowId) -> bool),
        },
    )?;
    Ok((query, rs))
}

/// How many formula (calculated) fields of the queried object `query` selects.
fn formula_columns(store: &crate::data::Store, query: &Query) -> usize {
    let Some(table) = store.table(&query.object) else {
        return 0;
    };
    query
        .columns
        .iter()
        .filter(|c| c.hops.is_empty() && table.def.fields.get(c.idx).is_some_and(|f| f.calculated))
        .count()
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
    let locator = (rs.len() > size).then(|| open_cursor(ctx, &query, &rs));
    page(ctx, &query, &rs, 0, size, locator.as_deref())
}

/// Registers a cursor for the rest of `rs`, dropping the user's oldest over the cap.
fn open_cursor(ctx: &Ctx, query: &Arc<Query>, rs: &Arc<ResultSet>) -> String {
    let id = ids::make("01g", ctx.state.next_seq());
    let cap = ctx.state.settings().max_open_locators_per_user as usize;
    let now = dt::now_ms();
    let mut cursors = ctx.state.cursors.lock().expect("cursors lock");
    if cap > 0 {
        let mut own: Vec<(i64, String)> = cursors
            .iter()
            .filter(|(_, c)| c.user == ctx.session.user)
            .map(|(k, c)| (c.created_ms, k.clone()))
            .collect();
        own.sort();
        let excess = (own.len() + 1).saturating_sub(cap);
        for (_, k) in own.into_iter().take(excess) {
            cursors.remove(&k);
        }
    }
    cursors.insert(
        id.clone(),
        Cursor {
            query: query.clone(),
            rows: rs.clone(),
            created_ms: now,
            session: ctx.session.token.clone(),
            user: ctx.session.user,
            used_ms: now,
        },
    );
    id
}

/// Whether the session `token` has ended (ended explicitly, or past the session timeout).
fn session_ended(state: &crate::state::Shared, token: &str) -> bool {
    let timeout_ms = state.settings().session_timeout_s as i64 * 1000;
    let auth = state.auth.lock().expect("auth lock");
    auth.access
        .get(token)
        .is_none_or(|t| t.ended || dt::now_ms() >= t.issued_at + timeout_ms)
}

/// The cursor `id` if this request may read it at `offset`; marks it used.
fn take_cursor(
    ctx: &Ctx,
    id: &str,
    offset: usize,
) -> Result<(Arc<Query>, Arc<ResultSet>), LocatorRefusal> {
    let settings = ctx.state.settings();
    let (owner, user) = {
        let cursors = ctx.state.cursors.lock().expect("cursors lock");
        let c = cursors.get(id).ok_or(LocatorRefusal::Invalid)?;
        (c.session.clone(), c.user)
    };
    if settings.locators_bound_to_session && session_ended(&ctx.state, &owner) {
        return Err(LocatorRefusal::SessionEnded);
    }
    let now = dt::now_ms();
    let idle_ms = settings.locator_idle_timeout_s as i64 * 1000;
    let mut cursors = ctx.state.cursors.lock().expect("cursors lock");
    let c = cursors.get_mut(id).ok_or(LocatorRefusal::Invalid)?;
    if idle_ms > 0 && now - c.used_ms > idle_ms {
        cursors.remove(id);
        return Err(LocatorRefusal::Invalid);
    }
    if user != ctx.session.user || offset > c.rows.len() {
        return Err(LocatorRefusal::Invalid);
    }
    c.used_ms = now;
    Ok((c.query.clone(), c.rows.clone()))
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
    let (query, rs) = match take_cursor(ctx, id, offset) {
        Ok(c) => c,
        Err(LocatorRefusal::Invalid) => return invalid(),
        Err(LocatorRefusal::SessionEnded) => return crate::oauth::invalid_session(),
    };
    let size = batch_size(ctx);
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
