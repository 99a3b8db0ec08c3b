//! SOQL text, literals and URL encoding.
//!
//! Datetime literals are unquoted (`2024-01-02T03:04:05.000Z`); quoting them is an error in
//! Salesforce. `q` is percent-encoded completely, so a `+` can never decode as a space.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The longest URL Salesforce accepts (a longer one is answered with 414). The URL and the
/// request headers together must fit in the same number of bytes (else 431).
pub const MAX_URL: usize = 16_384;
/// Room left for the request headers (`Authorization` with a long token, `Sforce-Query-Options`,
/// `Accept-Encoding`, `User-Agent`) when a query URL is planned.
pub const HEADER_RESERVE: usize = 1_024;
/// The default budget of a query URL: what is left of [`MAX_URL`] after the headers.
pub const URL_BUDGET: usize = MAX_URL - HEADER_RESERVE;

/// Everything but RFC 3986 unreserved characters is encoded.
const Q: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query-string value: spaces as `%20`, `+` as `%2B`.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, Q).to_string()
}

/// A SOQL string literal, quoted, with backslash escapes.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A SOQL datetime literal (unquoted, UTC, milliseconds).
pub fn datetime_literal(millis: i64) -> String {
    crate::dt::format_soql(millis)
}

/// The URL of a query (`/query`, or `/queryAll` to include deleted and archived rows).
pub fn query_url(base: &str, version: &str, all: bool, soql: &str) -> String {
    format!(
        "{}/services/data/v{version}/{}?q={}",
        base.trim_end_matches('/'),
        if all { "queryAll" } else { "query" },
        encode(soql)
    )
}

/// Splits `fields` into chunks so that each chunk's query URL (built by `url_for`) is at most
/// `max` bytes and holds at most `max_fields` fields. `required` fields (Id, cursor, keys) lead
/// every chunk, so chunks merge by Id.
pub fn chunk_fields(
    required: &[String],
    fields: &[String],
    max: usize,
    max_fields: usize,
    url_for: &dyn Fn(&[String]) -> String,
) -> Vec<Vec<String>> {
    let mut chunks = Vec::new();
    let mut cur: Vec<String> = required.to_vec();
    let mut has_own = false;
    for f in fields.iter().filter(|f| !required.contains(f)) {
        cur.push(f.clone());
        if (url_for(&cur).len() > max || cur.len() > max_fields) && has_own {
            cur.pop();
            chunks.push(std::mem::replace(&mut cur, required.to_vec()));
            cur.push(f.clone());
        }
        has_own = true;
    }
    chunks.push(cur);
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_encoding() {
        assert_eq!(
            datetime_literal(1_704_164_645_000),
            "2024-01-02T03:04:05.000Z"
        );
        assert_eq!(
            string_literal("O'Brien \\ \"x\"\n"),
            r#"'O\'Brien \\ \"x\"\n'"#
        );
        assert_eq!(encode("a+b c:d,e'f"), "a%2Bb%20c%3Ad%2Ce%27f");
        let soql = "SELECT Id FROM Case WHERE SystemModstamp > 2024-01-02T03:04:05+00:00";
        let url = query_url("https://acme.my.salesforce.com/", "62.0", true, soql);
        assert_eq!(
            url,
            "https://acme.my.salesforce.com/services/data/v62.0/queryAll?q=SELECT%20Id%20FROM%20Case%20WHERE%20SystemModstamp%20%3E%202024-01-02T03%3A04%3A05%2B00%3A00"
        );
        assert!(!url.contains('+'));
    }

    #[test]
    fn chunks_respect_url_limit_and_repeat_required() {
        let required = vec!["Id".to_string(), "SystemModstamp".to_string()];
        let fields: Vec<String> = (0..2000)
            .map(|i| format!("Custom_Field_Number_{i}__c"))
            .collect();
        let url_for = |f: &[String]| {
            query_url(
                "https://acme.my.salesforce.com",
                "62.0",
                true,
                &format!("SELECT {} FROM Case", f.join(",")),
            )
        };
        let chunks = chunk_fields(&required, &fields, MAX_URL, usize::MAX, &url_for);
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(url_for(c).len() <= MAX_URL);
            assert_eq!(&c[..2], &required[..]);
        }
        let total: usize = chunks.iter().map(|c| c.len() - 2).sum();
        assert_eq!(total, 2000);
        let one = chunk_fields(&required, &fields[..3], MAX_URL, usize::MAX, &url_for);
        let by_count = chunk_fields(&required, &fields[..10], MAX_URL, 5, &url_for);
        assert_eq!(by_count.len(), 4, "three own fields per chunk of five");
        assert!(by_count.iter().all(|c| c.len() <= 5));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].len(), 5);
    }
}
