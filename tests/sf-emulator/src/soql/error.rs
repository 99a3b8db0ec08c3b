//! Salesforce-shaped query errors.

use std::fmt;

/// A query error as Salesforce reports it. REST body: `[{"message":…,"errorCode":…}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlError {
    pub status: u16,
    pub error_code: &'static str,
    pub message: String,
}

pub const MALFORMED_QUERY: &str = "MALFORMED_QUERY";
pub const INVALID_FIELD: &str = "INVALID_FIELD";
pub const INVALID_TYPE: &str = "INVALID_TYPE";
pub const INVALID_QUERY_FILTER_OPERATOR: &str = "INVALID_QUERY_FILTER_OPERATOR";
pub const NUMBER_OUTSIDE_VALID_RANGE: &str = "NUMBER_OUTSIDE_VALID_RANGE";

impl SoqlError {
    pub fn new(error_code: &'static str, message: impl Into<String>) -> Self {
        SoqlError {
            status: 400,
            error_code,
            message: message.into(),
        }
    }

    /// The REST error body: `[{"message":"…","errorCode":"…"}]`.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(self.message.len() + 48);
        out.extend_from_slice(b"[{\"message\":");
        super::render::write_json_str(&mut out, &self.message);
        out.extend_from_slice(b",\"errorCode\":");
        super::render::write_json_str(&mut out, self.error_code);
        out.extend_from_slice(b"}]");
        String::from_utf8(out).expect("utf-8")
    }
}

impl fmt::Display for SoqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_code, self.message)
    }
}

impl std::error::Error for SoqlError {}

/// Row (1-based), 0-based char column, and the line's text for a byte offset.
fn locate(src: &str, pos: usize) -> (usize, usize, &str) {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let row = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[line_start..]
        .find('\n')
        .map_or(src.len(), |i| line_start + i);
    let line = src[line_start..line_end].trim_end_matches('\r');
    let col0 = src[line_start..pos].chars().count();
    (row, col0, line)
}

/// Chars of context Salesforce echoes before / after the caret. Inferred from recorded
/// live messages (e.g. `select Id, Company,Email,LastName,SF_date__c, ConvertedContactId from`
/// for an error at column 35): whole words starting at most 43 chars before the caret and
/// ending at most 38 chars after it.
const WINDOW_BEFORE: usize = 43;
const WINDOW_AFTER: usize = 38;

/// Builds `\n{fragment}\n{spaces}^\nERROR at Row:{row}:Column:{col}\n{text}`; the caret sits
/// under 0-based char `col - 1` of the row.
fn with_prefix(line: &str, row: usize, col: usize, text: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let p = col.saturating_sub(1);
    // Words: whitespace-separated runs, with punctuation as single-char words.
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if is_punct(c) {
            words.push((i, i + 1));
            i += 1;
        } else {
            let s = i;
            while i < chars.len() && !chars[i].is_whitespace() && !is_punct(chars[i]) {
                i += 1;
            }
            words.push((s, i));
        }
    }
    let keep: Vec<&(usize, usize)> = words
        .iter()
        .filter(|&&(s, e)| (s <= p && p < e) || (s + WINDOW_BEFORE >= p && e <= p + WINDOW_AFTER))
        .collect();
    let (fs, fe) = match (keep.first(), keep.last()) {
        (Some(a), Some(b)) => (a.0, b.1),
        _ => (p.min(chars.len()), p.min(chars.len())),
    };
    let frag: String = chars[fs..fe].iter().collect();
    let spaces = p.saturating_sub(fs);
    let mut m = String::with_capacity(frag.len() + spaces + text.len() + 40);
    m.push('\n');
    m.push_str(&frag);
    m.push('\n');
    m.extend(std::iter::repeat_n(' ', spaces));
    m.push_str("^\nERROR at Row:");
    m.push_str(&row.to_string());
    m.push_str(":Column:");
    m.push_str(&col.to_string());
    m.push('\n');
    m.push_str(text);
    m
}

fn is_punct(c: char) -> bool {
    matches!(c, ',' | '(' | ')' | '=' | '<' | '>' | '!')
}

/// A parser / validation error pointing at the token starting at byte `pos`
/// (`Column` is the 1-based column of that token).
pub(crate) fn at(src: &str, pos: usize, code: &'static str, text: &str) -> SoqlError {
    let (row, col0, line) = locate(src, pos);
    SoqlError::new(code, with_prefix(line, row, col0 + 1, text))
}

/// A lexer error at byte `pos`. Salesforce (ANTLR) reports the 0-based char position here,
/// both in `Column:` and in the `line R:C` text, e.g.
/// `ERROR at Row:1:Column:87\nline 1:87 no viable alternative at character ' '`.
pub(crate) fn lex_at(src: &str, pos: usize, what: &str) -> SoqlError {
    let shown = match src[pos.min(src.len())..].chars().next() {
        Some(c) => c.to_string(),
        None => "<EOF>".to_string(),
    };
    lex_msg(src, pos, &format!("{what} '{shown}'"))
}

/// A lexer error with custom text after the `line R:C ` position.
pub(crate) fn lex_msg(src: &str, pos: usize, rest: &str) -> SoqlError {
    let (row, col0, line) = locate(src, pos);
    let text = format!("line {row}:{col0} {rest}");
    SoqlError::new(MALFORMED_QUERY, with_prefix(line, row, col0, &text))
}

/// `unexpected token: 'X'` (or `unexpected token: <EOF>`) at byte `pos`.
pub(crate) fn unexpected(src: &str, pos: usize, token_text: Option<&str>) -> SoqlError {
    let text = match token_text {
        Some(t) => format!("unexpected token: '{t}'"),
        None => "unexpected token: <EOF>".to_string(),
    };
    at(src, pos, MALFORMED_QUERY, &text)
}

pub(crate) fn no_such_column(src: &str, pos: usize, field: &str, entity: &str) -> SoqlError {
    at(
        src,
        pos,
        INVALID_FIELD,
        &format!(
            "No such column '{field}' on entity '{entity}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

pub(crate) fn bad_relationship(src: &str, pos: usize, rel: &str) -> SoqlError {
    at(
        src,
        pos,
        INVALID_FIELD,
        &format!(
            "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

pub(crate) fn bad_child_relationship(src: &str, pos: usize, rel: &str) -> SoqlError {
    at(
        src,
        pos,
        INVALID_TYPE,
        &format!(
            "Didn't understand relationship '{rel}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

pub(crate) fn invalid_type(src: &str, pos: usize, object: &str) -> SoqlError {
    at(
        src,
        pos,
        INVALID_TYPE,
        &format!(
            "sObject type '{object}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_matches_recorded_live_message() {
        // Recorded: "\nselect Id, Company,Email,LastName,SF_date__c, ConvertedContactId from\n
        // (34 spaces)^\nERROR at Row:1:Column:35\nNo such column 'SF_date__c' on entity 'Lead'. …"
        let q = "select Id, Company,Email,LastName,SF_date__c, ConvertedContactId from Lead where LastModifiedDate > 2024-01-01T00:00:00Z";
        let e = no_such_column(q, 34, "SF_date__c", "Lead");
        assert_eq!(
            e.message,
            format!(
                "\nselect Id, Company,Email,LastName,SF_date__c, ConvertedContactId from\n{}^\nERROR at Row:1:Column:35\nNo such column 'SF_date__c' on entity 'Lead'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                " ".repeat(34)
            )
        );
        assert_eq!(e.status, 400);
        assert_eq!(e.error_code, "INVALID_FIELD");
    }

    #[test]
    fn lexer_error_matches_recorded_plus_as_space() {
        // Recorded (SalesforceSharp #4): "LastModifiedDate >= 2013-12-01T12:00:00 00:00\n
        // (38 spaces)^\nERROR at Row:1:Column:87\nline 1:87 no viable alternative at character ' '"
        let q = "SELECT id, name, description FROM Account WHERE LastModifiedDate >= 2013-12-01T12:00:00 00:00";
        let e = lex_at(q, 87, "no viable alternative at character");
        assert_eq!(
            e.message,
            format!(
                "\nLastModifiedDate >= 2013-12-01T12:00:00 00:00\n{}^\nERROR at Row:1:Column:87\nline 1:87 no viable alternative at character ' '",
                " ".repeat(38)
            )
        );
        assert_eq!(e.error_code, "MALFORMED_QUERY");
    }

    #[test]
    fn json_body() {
        let e = SoqlError::new(MALFORMED_QUERY, "a \"b\"\nc");
        assert_eq!(
            e.to_json(),
            r#"[{"message":"a \"b\"\nc","errorCode":"MALFORMED_QUERY"}]"#
        );
    }
}
