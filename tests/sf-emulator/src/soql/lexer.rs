//! SOQL tokenizer. Datetime literals are single tokens: a datetime without a zone (e.g. a `+`
//! that arrived as a space) fails here, as in Salesforce's ANTLR lexer.

use super::error::{self, SoqlError};
use super::value::{DtScan, scan_date, scan_datetime};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tk {
    /// Identifier or dotted path (`Account.Owner.Name`); text is `src[start..end]`.
    Ident,
    /// Quoted string, unescaped. The raw text (for LIKE escapes) is `src[start+1..end-1]`.
    Str(String),
    /// Unquoted number; text is `src[start..end]`.
    Num(f64),
    Date(i32),
    DateTime(i64),
    /// `LAST_N_DAYS:30` style literal: upper-cased name and n.
    NDate(String, i64),
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LParen,
    RParen,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tk: Tk,
    pub start: usize,
    pub end: usize,
}

pub(crate) const N_DATE_LITERALS: &[&str] = &[
    "LAST_N_DAYS",
    "NEXT_N_DAYS",
    "N_DAYS_AGO",
    "LAST_N_WEEKS",
    "NEXT_N_WEEKS",
    "LAST_N_MONTHS",
    "NEXT_N_MONTHS",
    "LAST_N_YEARS",
    "NEXT_N_YEARS",
];

const NO_VIABLE: &str = "no viable alternative at character";

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}
fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, SoqlError> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let tk = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tk::LParen
            }
            b')' => {
                i += 1;
                Tk::RParen
            }
            b',' => {
                i += 1;
                Tk::Comma
            }
            b'=' => {
                i += 1;
                Tk::Eq
            }
            b'!' => {
                if b.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Tk::Ne
                } else {
                    return Err(error::lex_at(src, i + 1, NO_VIABLE));
                }
            }
            b'<' => match b.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tk::Le
                }
                Some(b'>') => {
                    i += 2;
                    Tk::Ne
                }
                _ => {
                    i += 1;
                    Tk::Lt
                }
            },
            b'>' => {
                if b.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Tk::Ge
                } else {
                    i += 1;
                    Tk::Gt
                }
            }
            b'\'' => {
                let (s, n) = lex_string(src, i)?;
                i = n;
                Tk::Str(s)
            }
            b'0'..=b'9' => {
                let (tk, n) = lex_number_or_date(src, i)?;
                i = n;
                tk
            }
            b'-' | b'+' if b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                let mut j = i + 1;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(|d| d.is_ascii_digit()) {
                    j += 1;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                let v: f64 = src[i..j].parse().unwrap_or(0.0);
                i = j;
                Tk::Num(v)
            }
            c if is_ident_start(c) => {
                i += 1;
                loop {
                    while i < b.len() && is_ident_char(b[i]) {
                        i += 1;
                    }
                    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(|&d| is_ident_start(d)) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                if b.get(i) == Some(&b':') {
                    let name = src[start..i].to_ascii_uppercase();
                    if !N_DATE_LITERALS.contains(&name.as_str()) {
                        return Err(error::lex_at(src, i, NO_VIABLE));
                    }
                    let ds = i + 1;
                    let mut j = ds;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    if j == ds {
                        return Err(error::lex_at(src, ds, NO_VIABLE));
                    }
                    let n: i64 = src[ds..j].parse().unwrap_or(i64::MAX);
                    i = j;
                    Tk::NDate(name, n)
                } else {
                    Tk::Ident
                }
            }
            _ => return Err(error::lex_at(src, i, NO_VIABLE)),
        };
        toks.push(Token { tk, start, end: i });
    }
    toks.push(Token {
        tk: Tk::Eof,
        start: b.len(),
        end: b.len(),
    });
    Ok(toks)
}

/// Strings: single quotes; escapes `\n \r \t \b \f \" \' \\` and (for LIKE) `\_ \%`.
fn lex_string(src: &str, start: usize) -> Result<(String, usize), SoqlError> {
    let b = src.as_bytes();
    let mut out = String::new();
    let mut i = start + 1;
    let mut run = i;
    loop {
        match b.get(i) {
            None => {
                return Err(error::lex_msg(
                    src,
                    src.len(),
                    "mismatched character '<EOF>' expecting '\''",
                ));
            }
            Some(b'\'') => {
                out.push_str(&src[run..i]);
                return Ok((out, i + 1));
            }
            Some(b'\\') => {
                out.push_str(&src[run..i]);
                let rep = match b.get(i + 1) {
                    Some(b'n') => '\n',
                    Some(b'r') => '\r',
                    Some(b't') => '\t',
                    Some(b'b') => '\u{8}',
                    Some(b'f') => '\u{c}',
                    Some(b'"') => '"',
                    Some(b'\'') => '\'',
                    Some(b'\\') => '\\',
                    Some(b'_') => '_',
                    Some(b'%') => '%',
                    _ => {
                        let end = src[i + 1..]
                            .chars()
                            .next()
                            .map_or(i + 1, |c| i + 1 + c.len_utf8());
                        let seq = &src[i..end];
                        let lit = &src[start
                            ..src[start + 1..]
                                .find('\'')
                                .map_or(src.len(), |k| start + 2 + k)];
                        return Err(error::at(
                            src,
                            start,
                            error::MALFORMED_QUERY,
                            &format!(
                                "Invalid string literal '{lit}'. Illegal character sequence '{seq}' in string literal."
                            ),
                        ));
                    }
                };
                out.push(rep);
                i += 2;
                run = i;
            }
            Some(_) => i += 1,
        }
    }
}

fn lex_number_or_date(src: &str, i: usize) -> Result<(Tk, usize), SoqlError> {
    let b = src.as_bytes();
    let rest = &b[i..];
    let date_shape = rest.len() >= 10
        && rest[..4].iter().all(u8::is_ascii_digit)
        && rest[4] == b'-'
        && rest[5..7].iter().all(u8::is_ascii_digit)
        && rest[7] == b'-'
        && rest[8..10].iter().all(u8::is_ascii_digit);
    if date_shape {
        if rest.get(10) == Some(&b'T') {
            return match scan_datetime(rest) {
                DtScan::Ok(ms, n) => Ok((Tk::DateTime(ms), i + n)),
                DtScan::BadAt(k) => Err(error::lex_at(src, i + k, NO_VIABLE)),
                DtScan::Invalid(n) => Err(error::at(
                    src,
                    i,
                    error::MALFORMED_QUERY,
                    &format!("Invalid datetime: {}", &src[i..i + n]),
                )),
            };
        }
        return match scan_date(rest) {
            Some((d, n)) => Ok((Tk::Date(d), i + n)),
            None => Err(error::at(
                src,
                i,
                error::MALFORMED_QUERY,
                &format!("Invalid date: {}", &src[i..i + 10]),
            )),
        };
    }
    let mut j = i;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(|d| d.is_ascii_digit()) {
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    let v: f64 = src[i..j].parse().unwrap_or(0.0);
    Ok((Tk::Num(v), j))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tk> {
        lex(s).unwrap().into_iter().map(|t| t.tk).collect()
    }

    #[test]
    fn tokens() {
        let t = kinds(
            "select Id,Account.Name from Case where x >= 2024-01-01T00:00:00Z and d = 2024-01-02 and n <> -1.5 and s != 'a\\'b' and LAST_N_DAYS:3",
        );
        assert_eq!(t[0], Tk::Ident);
        assert_eq!(t[2], Tk::Comma);
        assert!(t.contains(&Tk::DateTime(1_704_067_200_000)));
        assert!(t.contains(&Tk::Date(19_724)));
        assert!(t.contains(&Tk::Num(-1.5)));
        assert!(t.contains(&Tk::Str("a'b".into())));
        assert!(t.contains(&Tk::NDate("LAST_N_DAYS".into(), 3)));
        assert_eq!(t.iter().filter(|k| **k == Tk::Ne).count(), 2);
    }

    #[test]
    fn datetime_offsets() {
        let a = kinds("2024-01-01T05:30:00+05:30");
        let b = kinds("2024-01-01T00:00:00.000Z");
        let c = kinds("2024-01-01T00:00:00.000+0000");
        assert_eq!(a[0], Tk::DateTime(1_704_067_200_000));
        assert_eq!(a, b);
        assert_eq!(b, c);
    }

    #[test]
    fn double_quote_is_lexer_error() {
        let e = lex("SELECT Id FROM Case WHERE Subject = \"x\"").unwrap_err();
        assert_eq!(e.error_code, "MALFORMED_QUERY");
        assert!(
            e.message.ends_with(
                "ERROR at Row:1:Column:36\nline 1:36 no viable alternative at character '\"'"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn unterminated_string() {
        let e = lex("SELECT Id FROM Case WHERE Subject = 'x").unwrap_err();
        assert!(
            e.message
                .ends_with("line 1:38 mismatched character '<EOF>' expecting '''"),
            "{}",
            e.message
        );
    }
}
