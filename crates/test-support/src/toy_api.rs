//! A toy REST/JSON API behind an API key, on loopback: the API a connector made by
//! `sluice new connector --template rest-json` reads, for tests and first runs without a
//! network (its `settings.example.json` points at `http://127.0.0.1:8080`, where
//! `cargo run -p sluice-test-support --bin toy-api` serves it).
//!
//! Every call needs the key in `X-Api-Key` (else 401). `GET /v1/me` names the account;
//! `GET /v1/items?limit=N[&after=CURSOR]` lists items in id order with an opaque cursor
//! (`meta.after`, `meta.has_more`); `GET /v1/users?limit=N[&offset=K]` lists users with the
//! next page's link in `links.next`. `limit` is 1 to 100 (else 400), a cursor the API did not
//! issue is a 400, and anything else is a 404.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::server::{Received, Reply, TestServer};

/// The header that carries the key.
pub const KEY_HEADER: &str = "x-api-key";
/// The most records one page holds.
pub const MAX_LIMIT: usize = 100;

/// The API's records, which tests compare pulls against.
#[derive(Debug, Default)]
struct Records {
    items: Vec<Value>,
    users: Vec<Value>,
}

/// A running toy API; stops when dropped.
pub struct ToyApi {
    server: TestServer,
    records: Arc<Mutex<Records>>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The key every call must carry.
    pub key: String,
}

impl ToyApi {
    /// Serves `items` items and `users` users on a free loopback port, behind `key`.
    pub async fn start(key: &str, items: usize, users: usize) -> Self {
        Self::start_on(
            "127.0.0.1:0".parse().expect("an address"),
            key,
            items,
            users,
        )
        .await
    }

    /// Serves on `addr` (a loopback address).
    pub async fn start_on(addr: SocketAddr, key: &str, items: usize, users: usize) -> Self {
        let records = Arc::new(Mutex::new(Records::default()));
        let shared = records.clone();
        let expected = key.to_string();
        let server = TestServer::start_on(addr, move |request| {
            answer(&shared.lock().expect("records"), &expected, request)
        })
        .await;
        let api = Self {
            url: server.url.clone(),
            server,
            records,
            key: key.to_string(),
        };
        api.add_items(items);
        let mut r = api.records.lock().expect("records");
        r.users = (1..=users)
            .map(|i| json!({"id": i, "email": format!("user{i}@toy.test")}))
            .collect();
        drop(r);
        api
    }

    /// Adds `n` items after the existing ones (a later run reads only these).
    pub fn add_items(&self, n: usize) {
        let mut r = self.records.lock().expect("records");
        let start = r.items.len();
        for i in start + 1..=start + n {
            r.items.push(json!({
                "id": format!("item-{i:05}"),
                "name": format!("Item {i}"),
                "updated_at": format!("2024-01-01T00:{:02}:{:02}Z", (i / 60) % 60, i % 60),
            }));
        }
    }

    /// The items, in id order.
    pub fn items(&self) -> Vec<Value> {
        self.records.lock().expect("records").items.clone()
    }

    /// The users, in id order.
    pub fn users(&self) -> Vec<Value> {
        self.records.lock().expect("records").users.clone()
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.server.received()
    }
}

fn answer(records: &Records, key: &str, request: &Received) -> Reply {
    if request.header(KEY_HEADER) != Some(key) {
        return error(401, "invalid_api_key", "send a valid key in X-Api-Key");
    }
    let Ok(url) = url::Url::parse(&format!("http://toy.test{}", request.target)) else {
        return error(400, "bad_request", "unreadable request target");
    };
    let query = |name: &str| {
        url.query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    };
    let limit = match query("limit").map(|l| l.parse::<usize>()) {
        None => 25,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return error(400, "bad_limit", "limit must be 1 to 100"),
    };
    match (request.method.as_str(), url.path()) {
        ("GET", "/v1/me") => ok(&json!({"account": {"id": "toy-1", "name": "Toy Co"}})),
        ("GET", "/v1/items") => items_page(&records.items, limit, query("after")),
        ("GET", "/v1/users") => users_page(&records.users, limit, query("offset")),
        _ => error(404, "not_found", "no such resource"),
    }
}

fn items_page(items: &[Value], limit: usize, after: Option<String>) -> Reply {
    let after_id = match after.as_deref().map(decode_cursor) {
        None => None,
        Some(Some(id)) => Some(id),
        Some(None) => return error(400, "bad_cursor", "the cursor was not issued by this API"),
    };
    let rest: Vec<&Value> = items
        .iter()
        .filter(|v| {
            after_id
                .as_deref()
                .is_none_or(|a| v["id"].as_str() > Some(a))
        })
        .collect();
    let page: Vec<&Value> = rest.iter().take(limit).copied().collect();
    let last = page
        .last()
        .and_then(|v| v["id"].as_str())
        .map(encode_cursor)
        .or(after);
    ok(&json!({
        "data": page,
        "meta": {"after": last, "has_more": rest.len() > page.len()},
    }))
}

fn users_page(users: &[Value], limit: usize, offset: Option<String>) -> Reply {
    let Ok(offset) = offset.as_deref().unwrap_or("0").parse::<usize>() else {
        return error(400, "bad_offset", "offset must be a whole number");
    };
    let page: Vec<&Value> = users.iter().skip(offset).take(limit).collect();
    let next_offset = offset + page.len();
    let next = (next_offset < users.len() && !page.is_empty())
        .then(|| format!("/v1/users?limit={limit}&offset={next_offset}"));
    ok(&json!({"users": page, "links": {"next": next}}))
}

/// An opaque cursor: the id, hex-encoded behind a prefix.
fn encode_cursor(id: &str) -> String {
    let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    format!("c1.{hex}")
}

fn decode_cursor(cursor: &str) -> Option<String> {
    let hex = cursor.strip_prefix("c1.")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn ok(body: &Value) -> Reply {
    Reply::new(200, body.to_string()).header("content-type", "application/json")
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::new(
        status,
        json!({"error": code, "message": message}).to_string(),
    )
    .header("content-type", "application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(records: &Records, target: &str, key: Option<&str>) -> (u16, Value) {
        let request = Received {
            method: "GET".into(),
            target: target.into(),
            headers: key
                .map(|k| vec![(KEY_HEADER.to_string(), k.to_string())])
                .unwrap_or_default(),
            body: Vec::new(),
        };
        let reply = answer(records, "k", &request);
        (
            reply.status,
            serde_json::from_slice(&reply.body).unwrap_or_default(),
        )
    }

    fn records() -> Records {
        Records {
            items: (1..=5)
                .map(|i| json!({"id": format!("item-{i}")}))
                .collect(),
            users: (1..=3).map(|i| json!({"id": i})).collect(),
        }
    }

    #[test]
    fn every_call_needs_the_key() {
        let r = records();
        assert_eq!(get(&r, "/v1/me", None).0, 401);
        assert_eq!(get(&r, "/v1/me", Some("wrong")).0, 401);
        assert_eq!(get(&r, "/v1/me", Some("k")).0, 200);
        assert_eq!(get(&r, "/v1/nothing", Some("k")).0, 404);
        assert_eq!(get(&r, "/v1/items?limit=101", Some("k")).0, 400);
        assert_eq!(get(&r, "/v1/items?after=forged", Some("k")).0, 400);
    }

    #[test]
    fn items_page_by_cursor_and_users_by_next_link() {
        let r = records();
        let (_, first) = get(&r, "/v1/items?limit=2", Some("k"));
        assert_eq!(first["data"].as_array().unwrap().len(), 2);
        assert_eq!(first["meta"]["has_more"], true);
        let after = first["meta"]["after"].as_str().unwrap();
        let (_, rest) = get(&r, &format!("/v1/items?limit=10&after={after}"), Some("k"));
        let ids: Vec<&str> = rest["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["item-3", "item-4", "item-5"]);
        assert_eq!(rest["meta"]["has_more"], false);
        // Past the end, the cursor stays where it was.
        let end = rest["meta"]["after"].as_str().unwrap();
        let (_, empty) = get(&r, &format!("/v1/items?after={end}"), Some("k"));
        assert_eq!(empty["meta"]["after"], end);
        let (_, users) = get(&r, "/v1/users?limit=2", Some("k"));
        assert_eq!(users["links"]["next"], "/v1/users?limit=2&offset=2");
        let (_, last) = get(&r, "/v1/users?limit=2&offset=2", Some("k"));
        assert_eq!(last["links"]["next"], Value::Null);
    }
}
