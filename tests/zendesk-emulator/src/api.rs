//! The routes: the Support API under `/api/v2/` (behind [`crate::gate`]), OAuth, and the
//! control API. List endpoints page with cursors (`page[size]`, `page[after]`,
//! `page[before]`; answers carry `meta` and `links`) or, without `page[…]`, with offsets
//! (`page`, `per_page`; answers carry `next_page`, `previous_page` and `count`).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};
use serde_json::{Value as Json, json};

use crate::auth::{Caller, Resource};
use crate::cursor;
use crate::data::{Status, comment_json, ticket_json, user_json};
use crate::state::Shared;
use crate::{control, export, gate, oauth, reply};

type S = State<Arc<Shared>>;

/// Every route of the emulator.
pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/api/v2/tickets", get(list_tickets))
        .route("/api/v2/tickets.json", get(list_tickets))
        .route("/api/v2/tickets/{id}", get(show_ticket))
        .route("/api/v2/tickets/{id}/comments", get(list_comments))
        .route("/api/v2/tickets/{id}/comments.json", get(list_comments))
        .route("/api/v2/users", get(list_users))
        .route("/api/v2/users.json", get(list_users))
        .route("/api/v2/users/{id}", get(show_user))
        .route("/api/v2/incremental/tickets/cursor", get(export::tickets))
        .route(
            "/api/v2/incremental/tickets/cursor.json",
            get(export::tickets),
        )
        .route("/api/v2/incremental/users/cursor", get(export::users))
        .route("/api/v2/incremental/users/cursor.json", get(export::users))
        .route("/api/v2/{*rest}", get(unknown_endpoint))
        .route_layer(middleware::from_fn_with_state(shared.clone(), gate::gate));
    Router::new()
        .merge(api)
        .route("/oauth/authorizations/new", get(oauth::authorize))
        .route("/oauth/authorizations", post(oauth::consent))
        .route("/oauth/tokens", post(oauth::tokens))
        .merge(control::router())
        .with_state(shared)
}

async fn unknown_endpoint() -> Response {
    reply::error(StatusCode::NOT_FOUND, "InvalidEndpoint", "Not found")
}

/// Query pairs, decoded.
pub fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `12` or `12.json` as an id.
fn path_id(segment: &str) -> Option<u64> {
    segment
        .strip_suffix(".json")
        .unwrap_or(segment)
        .parse()
        .ok()
}

/// A list endpoint's records: their ids in order, and how one is written.
struct Listing<'a> {
    path: &'a str,
    key: &'a str,
    ids: Vec<u64>,
    render: &'a dyn Fn(u64) -> Json,
}

/// A page of `listing`, cursor or offset style per the query. Only the page's records are
/// written, so walking a large account stays linear.
fn page(shared: &Shared, listing: Listing<'_>, query: &[(String, String)]) -> Response {
    let cursor_style = query.iter().any(|(k, _)| k.starts_with("page["));
    let result = if cursor_style {
        cursor_page(shared, listing, query)
    } else {
        offset_page(shared, listing, query)
    };
    match result {
        Ok(body) => reply::json(StatusCode::OK, &body),
        Err(r) => r,
    }
}

fn size_param(
    query: &[(String, String)],
    name: &str,
    default: u32,
    max: u32,
) -> Result<usize, Response> {
    match param(query, name) {
        None => Ok(default as usize),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n as usize),
            _ => Err(reply::bad_parameter(format!(
                "{name} must be a whole number from 1 to {max}, not {text:?}"
            ))),
        },
    }
}

fn list_cursor(query: &[(String, String)], name: &str) -> Result<Option<u64>, Response> {
    match param(query, name) {
        None => Ok(None),
        Some(text) => cursor::decode_list(text)
            .map(Some)
            .ok_or_else(|| reply::bad_parameter(format!("{name} is not a cursor this API issued"))),
    }
}

fn cursor_page(
    shared: &Shared,
    listing: Listing<'_>,
    query: &[(String, String)],
) -> Result<Json, Response> {
    let settings = shared.settings();
    let size = size_param(
        query,
        "page[size]",
        settings.default_page_size,
        settings.max_page_size,
    )?;
    let after = list_cursor(query, "page[after]")?;
    let before = list_cursor(query, "page[before]")?;
    let ids = listing.ids;
    let (chunk, has_more): (&[u64], bool) = match (after, before) {
        (_, Some(before)) => {
            let end = ids.partition_point(|id| *id < before);
            let start = end.saturating_sub(size);
            (&ids[start..end], start > 0)
        }
        (after, None) => {
            let start = after.map_or(0, |a| ids.partition_point(|id| *id <= a));
            let end = (start + size).min(ids.len());
            // Zendesk answers whether the page is full, not whether records follow it.
            let full = settings.has_more_on_full_last_page && end - start == size;
            (&ids[start..end], end < ids.len() || full)
        }
    };
    let after_cursor = chunk.last().map(|id| cursor::encode_list(*id));
    let before_cursor = chunk.first().map(|id| cursor::encode_list(*id));
    let link = |name: &str, c: &Option<String>| {
        c.as_ref().map(|c| {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("page[size]", &size.to_string())
                .append_pair(name, c)
                .finish();
            format!("{}{}?{query}", shared.origin, listing.path)
        })
    };
    Ok(json!({
        listing.key: chunk.iter().map(|id| (listing.render)(*id)).collect::<Vec<_>>(),
        "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
        "links": {"prev": link("page[before]", &before_cursor), "next": link("page[after]", &after_cursor)},
    }))
}

fn offset_page(
    shared: &Shared,
    listing: Listing<'_>,
    query: &[(String, String)],
) -> Result<Json, Response> {
    let settings = shared.settings();
    let per_page = size_param(
        query,
        "per_page",
        settings.default_page_size,
        settings.max_page_size,
    )?;
    let page = size_param(query, "page", 1, u32::MAX)?;
    let reach = page.saturating_mul(per_page);
    if reach > settings.max_offset_records as usize {
        return Err(reply::bad_parameter(format!(
            "offset pagination reaches only the first {} records (page={page}, per_page={per_page}); use cursor pagination (page[size]) to read further",
            settings.max_offset_records
        )));
    }
    let count = listing.ids.len();
    let start = (page - 1).saturating_mul(per_page).min(count);
    let end = (start + per_page).min(count);
    let chunk: Vec<Json> = listing.ids[start..end]
        .iter()
        .map(|id| (listing.render)(*id))
        .collect();
    let url = |n: usize| {
        format!(
            "{}{}?page={n}&per_page={per_page}",
            shared.origin, listing.path
        )
    };
    let next = (end < count).then(|| url(page + 1));
    let previous = (page > 1).then(|| url(page - 1));
    Ok(json!({listing.key: chunk, "next_page": next, "previous_page": previous, "count": count}))
}

fn require(caller: &Caller, resource: Resource) -> Result<(), Response> {
    match caller.may_read(resource) {
        true => Ok(()),
        false => Err(reply::missing_scope()),
    }
}

async fn list_tickets(
    State(shared): S,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = require(&caller, Resource::Tickets) {
        return r;
    }
    let store = shared.store.read().expect("store lock");
    let ids = store
        .tickets
        .values()
        .filter(|t| t.status != Status::Deleted)
        .map(|t| t.id)
        .collect();
    let render = |id: u64| ticket_json(&shared.origin, &store.tickets[&id]);
    let listing = Listing {
        path: "/api/v2/tickets.json",
        key: "tickets",
        ids,
        render: &render,
    };
    page(&shared, listing, &query_pairs(&raw))
}

async fn show_ticket(
    State(shared): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require(&caller, Resource::Tickets) {
        return r;
    }
    let store = shared.store.read().expect("store lock");
    match path_id(&id).and_then(|id| store.tickets.get(&id)) {
        Some(t) if t.status != Status::Deleted => reply::json(
            StatusCode::OK,
            &json!({"ticket": ticket_json(&shared.origin, t)}),
        ),
        _ => reply::not_found(),
    }
}

async fn list_comments(
    State(shared): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = require(&caller, Resource::Tickets) {
        return r;
    }
    let Some(ticket_id) = path_id(&id) else {
        return reply::not_found();
    };
    let store = shared.store.read().expect("store lock");
    match store.tickets.get(&ticket_id) {
        Some(t) if t.status != Status::Deleted => {}
        _ => return reply::not_found(),
    }
    let ids = store.comments_of(ticket_id).map(|c| c.id).collect();
    let render = |id: u64| comment_json(&store.comments[&(ticket_id, id)]);
    let path = format!("/api/v2/tickets/{ticket_id}/comments.json");
    let listing = Listing {
        path: &path,
        key: "comments",
        ids,
        render: &render,
    };
    page(&shared, listing, &query_pairs(&raw))
}

async fn list_users(
    State(shared): S,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = require(&caller, Resource::Users) {
        return r;
    }
    let store = shared.store.read().expect("store lock");
    let ids = store
        .users
        .values()
        .filter(|u| u.active)
        .map(|u| u.id)
        .collect();
    let render = |id: u64| user_json(&shared.origin, &store.users[&id]);
    let listing = Listing {
        path: "/api/v2/users.json",
        key: "users",
        ids,
        render: &render,
    };
    page(&shared, listing, &query_pairs(&raw))
}

async fn show_user(
    State(shared): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let me = matches!(id.as_str(), "me" | "me.json");
    if !me && let Err(r) = require(&caller, Resource::Users) {
        return r;
    }
    let wanted = if me {
        Some(caller.user_id)
    } else {
        path_id(&id)
    };
    let store = shared.store.read().expect("store lock");
    match wanted.and_then(|id| store.users.get(&id)) {
        Some(u) => reply::json(
            StatusCode::OK,
            &json!({"user": user_json(&shared.origin, u)}),
        ),
        None => reply::not_found(),
    }
}
