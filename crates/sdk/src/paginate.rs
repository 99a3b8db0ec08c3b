//! Where a list API's next page is: a URL in the body, an opaque cursor, an offset, or an
//! RFC 8288 `Link: <…>; rel="next"` header.
//!
//! Every paginator answers the same question, the next page's absolute URL or none, so a
//! connector stores that URL (or the cursor) in its checkpoint whatever the API's style. A
//! provider that hands back the page it was just asked for would make a pull loop forever;
//! [`Paginator::next`] refuses that as an error.
//!
//! Link headers are parsed here rather than with a crate: the common Link-header crate splits
//! on every comma (a URL such as `?fields=a,b` breaks) and drops the space between several
//! relation types (`rel="next last"`).

use crate::http::Response;
use crate::model::{Failure, FailureKind};

/// Why the next page could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The body has a value at the pointer, but not a string (or, for `has_more`, a boolean).
    #[error("the response's `{pointer}` is not a {expected}")]
    WrongType {
        /// The JSON pointer.
        pointer: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// A URL the provider sent (or the request's own) could not be read.
    #[error("the provider sent an unreadable next-page URL `{url}`: {reason}")]
    BadUrl {
        /// The URL as sent.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `Link` header does not follow RFC 8288.
    #[error("the response's Link header is malformed: {0}")]
    BadLinkHeader(String),
    /// The next page is the page just read.
    #[error("the provider sent the page just read as the next one ({0}); stopping to avoid a loop")]
    Repeats(String),
}

impl From<PageError> for Failure {
    fn from(e: PageError) -> Self {
        Failure::new(FailureKind::Unknown, e.to_string())
    }
}

/// How a list API says where its next page is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paginator {
    /// The body holds the next page's URL (absolute or relative) at a JSON pointer such as
    /// `/next_page` or `/links/next`; null, empty or missing means the last page.
    NextUrl {
        /// JSON pointer of the URL.
        pointer: String,
    },
    /// The body holds an opaque cursor, sent back in the query parameter `param`; an empty or
    /// missing cursor, or `false` at the `has_more` pointer, means the last page.
    Cursor {
        /// JSON pointer of the cursor.
        pointer: String,
        /// JSON pointer of a boolean "more pages follow", if the API has one.
        has_more: Option<String>,
        /// The query parameter that carries the cursor.
        param: String,
    },
    /// `param` counts records to skip; a page with fewer than `limit` rows is the last.
    Offset {
        /// The query parameter that carries the offset.
        param: String,
        /// The page size the request asked for.
        limit: u64,
    },
    /// The response's `Link` header names the next page with `rel="next"`.
    LinkHeader,
}

impl Paginator {
    /// The absolute URL of the page after `current_url`, whose response is `response` (its
    /// body parsed as `body`) with `rows` records; None after the last page.
    pub fn next(
        &self,
        current_url: &str,
        response: &Response,
        body: &serde_json::Value,
        rows: usize,
    ) -> Result<Option<String>, PageError> {
        let next = match self {
            Paginator::NextUrl { pointer } => next_url(current_url, body, pointer)?,
            Paginator::Cursor {
                pointer,
                has_more,
                param,
            } => match cursor(body, pointer, has_more.as_deref())? {
                Some(c) => Some(with_query(current_url, param, &c)?),
                None => None,
            },
            Paginator::Offset { param, limit } => {
                let current = query_value(current_url, param)?
                    .map(|v| v.parse::<u64>().unwrap_or(0))
                    .unwrap_or(0);
                match next_offset(current, *limit, rows) {
                    Some(o) => Some(with_query(current_url, param, &o.to_string())?),
                    None => None,
                }
            }
            Paginator::LinkHeader => link_next(current_url, response)?,
        };
        match next {
            Some(url) if same_url(&url, current_url) => Err(PageError::Repeats(url)),
            other => Ok(other),
        }
    }
}

/// The next page's URL at `pointer` in `body`, resolved against `current_url`.
pub fn next_url(
    current_url: &str,
    body: &serde_json::Value,
    pointer: &str,
) -> Result<Option<String>, PageError> {
    match string_at(body, pointer)? {
        Some(url) => resolve(current_url, &url).map(Some),
        None => Ok(None),
    }
}

/// The cursor at `pointer` in `body`, unless the page is the last one.
pub fn cursor(
    body: &serde_json::Value,
    pointer: &str,
    has_more: Option<&str>,
) -> Result<Option<String>, PageError> {
    if let Some(flag) = has_more {
        match body.pointer(flag) {
            Some(serde_json::Value::Bool(false)) => return Ok(None),
            Some(serde_json::Value::Bool(true)) | None | Some(serde_json::Value::Null) => {}
            Some(_) => {
                return Err(PageError::WrongType {
                    pointer: flag.to_string(),
                    expected: "boolean",
                });
            }
        }
    }
    string_at(body, pointer)
}

/// The offset after a page of `rows` records read at `offset` with page size `limit`; None
/// when the page was short (the last one).
pub fn next_offset(offset: u64, limit: u64, rows: usize) -> Option<u64> {
    let rows = rows as u64;
    (limit > 0 && rows >= limit).then(|| offset.saturating_add(rows))
}

/// The `rel="next"` target of the response's `Link` headers, resolved against `current_url`.
pub fn link_next(current_url: &str, response: &Response) -> Result<Option<String>, PageError> {
    for (name, value) in &response.headers {
        if !name.eq_ignore_ascii_case("link") {
            continue;
        }
        if let Some(link) = parse_link_header(value)?
            .into_iter()
            .find(|l| l.has_rel("next"))
        {
            return resolve(current_url, &link.target).map(Some);
        }
    }
    Ok(None)
}

/// One link of a `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The target as written (a URI reference).
    pub target: String,
    /// The parameters in order, names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Link {
    /// Whether the link's relation types (the first `rel` parameter) include `rel`.
    pub fn has_rel(&self, rel: &str) -> bool {
        self.params
            .iter()
            .find(|(n, _)| n == "rel")
            .is_some_and(|(_, v)| v.split_whitespace().any(|r| r.eq_ignore_ascii_case(rel)))
    }
}

/// Parses a `Link` header value (RFC 8288 section 3): `<target>; name=token; name="quoted"`,
/// links separated by commas.
pub fn parse_link_header(value: &str) -> Result<Vec<Link>, PageError> {
    let mut links = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return Ok(links);
        }
        let Some(after) = rest.strip_prefix('<') else {
            return Err(PageError::BadLinkHeader(format!(
                "expected `<` at `{}`",
                excerpt(rest)
            )));
        };
        let end = after
            .find('>')
            .ok_or_else(|| PageError::BadLinkHeader("a target has no closing `>`".into()))?;
        let target = after[..end].trim().to_string();
        let (params, remaining) = link_params(&after[end + 1..])?;
        links.push(Link { target, params });
        rest = remaining;
    }
}

/// A link's parameters as name/value pairs.
type Params = Vec<(String, String)>;

/// The `;`-separated parameters of one link, and what follows the link.
fn link_params(mut rest: &str) -> Result<(Params, &str), PageError> {
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(after) = rest.strip_prefix(';') else {
            if rest.is_empty() || rest.starts_with(',') {
                return Ok((params, rest));
            }
            return Err(PageError::BadLinkHeader(format!(
                "expected `;` or `,` at `{}`",
                excerpt(rest)
            )));
        };
        let after = after.trim_start();
        let name_end = after
            .find(|c: char| c == '=' || c == ';' || c == ',' || c.is_whitespace())
            .unwrap_or(after.len());
        let name = after[..name_end].to_ascii_lowercase();
        if name.is_empty() {
            return Err(PageError::BadLinkHeader("a parameter has no name".into()));
        }
        rest = after[name_end..].trim_start();
        let value = match rest.strip_prefix('=') {
            Some(v) => {
                let (value, remaining) = param_value(v.trim_start())?;
                rest = remaining;
                value
            }
            None => String::new(),
        };
        params.push((name, value));
    }
}

/// A token or a quoted string (with `\` escapes), and what follows it.
fn param_value(rest: &str) -> Result<(String, &str), PageError> {
    let Some(quoted) = rest.strip_prefix('"') else {
        let end = rest
            .find(|c: char| c == ';' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        return Ok((rest[..end].to_string(), &rest[end..]));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            '"' => return Ok((value, &quoted[i + 1..])),
            c => value.push(c),
        }
    }
    Err(PageError::BadLinkHeader(
        "a quoted value has no closing `\"`".into(),
    ))
}

/// `url` with the query parameter `name` set to `value` (replacing any earlier value).
pub fn with_query(url: &str, name: &str, value: &str) -> Result<String, PageError> {
    let mut parsed = parse(url)?;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(n, _)| n != name)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
    Ok(parsed.into())
}

fn query_value(url: &str, name: &str) -> Result<Option<String>, PageError> {
    Ok(parse(url)?
        .query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned()))
}

fn string_at(body: &serde_json::Value, pointer: &str) -> Result<Option<String>, PageError> {
    match body.pointer(pointer) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(PageError::WrongType {
            pointer: pointer.to_string(),
            expected: "string",
        }),
    }
}

fn resolve(base: &str, reference: &str) -> Result<String, PageError> {
    parse(base)?
        .join(reference)
        .map(String::from)
        .map_err(|e| PageError::BadUrl {
            url: reference.to_string(),
            reason: e.to_string(),
        })
}

fn parse(url: &str) -> Result<url::Url, PageError> {
    url::Url::parse(url).map_err(|e| PageError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// Whether two URLs name the same page: equal but for the order of their query parameters
/// (a cursor set again moves to the end of the query).
fn same_url(a: &str, b: &str) -> bool {
    let page = |text: &str| {
        url::Url::parse(text).ok().map(|mut url| {
            let mut pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            pairs.sort();
            url.set_query(None);
            (url, pairs)
        })
    };
    match (page(a), page(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeHost;
    use crate::http::{Host, Request};
    use serde_json::json;

    fn response(headers: &[(&str, &str)]) -> Response {
        Response {
            status: 200,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    const PAGE: &str = "https://api.example.test/v1/items?limit=2";

    #[test]
    fn next_url_in_the_body_resolves_relative_urls_and_ends_on_null() {
        let p = Paginator::NextUrl {
            pointer: "/links/next".into(),
        };
        let none = response(&[]);
        let rel = json!({"links": {"next": "/v1/items?page=2"}});
        assert_eq!(
            p.next(PAGE, &none, &rel, 2).unwrap().as_deref(),
            Some("https://api.example.test/v1/items?page=2")
        );
        for last in [
            json!({"links": {"next": null}}),
            json!({"links": {}}),
            json!({"links": {"next": ""}}),
        ] {
            assert_eq!(p.next(PAGE, &none, &last, 2).unwrap(), None);
        }
        let wrong = json!({"links": {"next": 3}});
        assert!(matches!(
            p.next(PAGE, &none, &wrong, 2),
            Err(PageError::WrongType { .. })
        ));
        let same = json!({"links": {"next": PAGE}});
        assert!(matches!(
            p.next(PAGE, &none, &same, 2),
            Err(PageError::Repeats(_))
        ));
    }

    #[test]
    fn a_cursor_goes_into_its_parameter_until_has_more_is_false() {
        let p = Paginator::Cursor {
            pointer: "/meta/after".into(),
            has_more: Some("/meta/has_more".into()),
            param: "page[after]".into(),
        };
        let none = response(&[]);
        let more = json!({"meta": {"after": "xY z+/=", "has_more": true}});
        let next = p.next(PAGE, &none, &more, 2).unwrap().unwrap();
        assert_eq!(
            next,
            "https://api.example.test/v1/items?limit=2&page%5Bafter%5D=xY+z%2B%2F%3D"
        );
        assert_eq!(
            query_value(&next, "page[after]").unwrap().as_deref(),
            Some("xY z+/=")
        );
        // A second page replaces the cursor instead of adding another one.
        let again = json!({"meta": {"after": "c2", "has_more": true}});
        let third = p.next(&next, &none, &again, 2).unwrap().unwrap();
        assert_eq!(
            third,
            "https://api.example.test/v1/items?limit=2&page%5Bafter%5D=c2"
        );
        let done = json!({"meta": {"after": "c3", "has_more": false}});
        assert_eq!(p.next(&third, &none, &done, 2).unwrap(), None);
        let stuck = json!({"meta": {"after": "c2", "has_more": true}});
        assert!(matches!(
            p.next(&third, &none, &stuck, 2),
            Err(PageError::Repeats(_))
        ));
        // The same page with its parameters in another order is still the same page.
        let reordered = "https://api.example.test/v1/items?page%5Bafter%5D=c2&limit=2";
        assert!(matches!(
            p.next(reordered, &none, &stuck, 2),
            Err(PageError::Repeats(_))
        ));
    }

    #[test]
    fn offsets_advance_by_the_rows_read_until_a_short_page() {
        let p = Paginator::Offset {
            param: "offset".into(),
            limit: 2,
        };
        let none = response(&[]);
        let body = json!({});
        let second = p.next(PAGE, &none, &body, 2).unwrap().unwrap();
        assert_eq!(second, "https://api.example.test/v1/items?limit=2&offset=2");
        let third = p.next(&second, &none, &body, 2).unwrap().unwrap();
        assert_eq!(third, "https://api.example.test/v1/items?limit=2&offset=4");
        assert_eq!(p.next(&third, &none, &body, 1).unwrap(), None);
        assert_eq!(next_offset(0, 0, 0), None);
        assert_eq!(next_offset(u64::MAX, 2, 2), Some(u64::MAX));
    }

    #[test]
    fn link_headers_follow_rfc_8288() {
        let links = parse_link_header(
            r#"<https://api.example.test/items?fields=a,b&page=2>; rel="next last"; title="a; \"b\", c", </items?page=1>;rel=prev"#,
        )
        .unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(
            links[0].target,
            "https://api.example.test/items?fields=a,b&page=2"
        );
        assert!(links[0].has_rel("next") && links[0].has_rel("LAST"));
        assert_eq!(links[0].params[1], ("title".into(), r#"a; "b", c"#.into()));
        assert!(links[1].has_rel("prev") && !links[1].has_rel("next"));

        let p = Paginator::LinkHeader;
        let body = json!({});
        let two_headers = response(&[
            ("link", r#"</items?page=1>; rel="prev""#),
            ("Link", r#"</items?page=3>; rel="next""#),
        ]);
        assert_eq!(
            p.next(PAGE, &two_headers, &body, 2).unwrap().as_deref(),
            Some("https://api.example.test/items?page=3")
        );
        assert_eq!(p.next(PAGE, &response(&[]), &body, 2).unwrap(), None);
        for bad in [
            "https://x.test/; rel=next",
            "<https://x.test/; rel=next",
            r#"<a>; rel="next"#,
            "<a> junk",
        ] {
            assert!(
                matches!(parse_link_header(bad), Err(PageError::BadLinkHeader(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn paginating_a_fake_api_reads_every_page_once() {
        let mut host = FakeHost::default();
        let page = |body: &str, link: Option<&str>| Response {
            status: 200,
            headers: link
                .map(|l| vec![("link".to_string(), l.to_string())])
                .unwrap_or_default(),
            body: body.as_bytes().to_vec(),
        };
        host.on("page=3", page("[5]", None))
            .on("page=2", page("[3,4]", Some("<?page=3>; rel=next")))
            .on("/items", page("[1,2]", Some("<?page=2>; rel=next")));
        let mut url = Some("https://api.example.test/items".to_string());
        let mut seen = Vec::new();
        while let Some(current) = url.take() {
            let response = host.send(Request::get(current.clone())).unwrap();
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            let rows = body.as_array().unwrap();
            seen.extend(rows.iter().map(|v| v.as_u64().unwrap()));
            url = Paginator::LinkHeader
                .next(&current, &response, &body, rows.len())
                .unwrap();
        }
        assert_eq!(seen, [1, 2, 3, 4, 5]);
        assert!(host.routes.is_empty());
    }
}
