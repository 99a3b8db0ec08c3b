//! Recursive-descent SOQL parser (syntax only; see `resolve` for schema checks).

use super::ast::*;
use super::error::{self, SoqlError};
use super::lexer::{Tk, Token, lex};

pub(crate) const DATE_LITERALS: &[&str] = &[
    "TODAY",
    "YESTERDAY",
    "TOMORROW",
    "LAST_WEEK",
    "THIS_WEEK",
    "NEXT_WEEK",
    "LAST_MONTH",
    "THIS_MONTH",
    "NEXT_MONTH",
    "LAST_90_DAYS",
    "NEXT_90_DAYS",
    "THIS_YEAR",
    "LAST_YEAR",
    "NEXT_YEAR",
];

pub(crate) fn parse_raw(src: &str) -> Result<RawQuery, SoqlError> {
    let toks = lex(src)?;
    let mut p = Parser { src, toks, i: 0 };
    let q = p.query(true)?;
    let t = p.peek();
    if t.tk != Tk::Eof {
        return Err(p.unexpected_at(p.i));
    }
    Ok(q)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.i]
    }
    fn peek_at(&self, k: usize) -> &Token {
        &self.toks[(self.i + k).min(self.toks.len() - 1)]
    }
    fn text(&self, t: &Token) -> &str {
        &self.src[t.start..t.end]
    }
    fn is_kw_at(&self, k: usize, kw: &str) -> bool {
        let t = self.peek_at(k);
        t.tk == Tk::Ident && self.text(t).eq_ignore_ascii_case(kw)
    }
    fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }
    fn unexpected_at(&self, idx: usize) -> SoqlError {
        let t = &self.toks[idx];
        if t.tk == Tk::Eof {
            error::unexpected(self.src, t.start, None)
        } else {
            error::unexpected(self.src, t.start, Some(self.text(t)))
        }
    }
    fn unexpected(&self) -> SoqlError {
        self.unexpected_at(self.i)
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.is_kw(kw) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }
    fn expect(&mut self, tk: Tk) -> Result<(), SoqlError> {
        if self.peek().tk == tk {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }
    fn ident(&mut self) -> Result<(String, usize), SoqlError> {
        let t = self.peek();
        if t.tk == Tk::Ident {
            let r = (self.text(t).to_string(), t.start);
            self.i += 1;
            Ok(r)
        } else {
            Err(self.unexpected())
        }
    }

    fn query(&mut self, top: bool) -> Result<RawQuery, SoqlError> {
        self.expect_kw("SELECT")?;
        let mut select = Vec::new();
        loop {
            select.push(self.select_item(top)?);
            if self.peek().tk == Tk::Comma {
                self.i += 1;
            } else {
                break;
            }
        }
        self.expect_kw("FROM")?;
        let (from, from_pos) = self.ident()?;
        let mut q = RawQuery {
            select,
            from,
            from_pos,
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: None,
        };
        if self.is_kw("WHERE") {
            self.i += 1;
            q.filter = Some(self.cond()?);
        }
        if self.is_kw("ORDER") {
            self.i += 1;
            self.expect_kw("BY")?;
            loop {
                let (path, pos) = self.ident()?;
                let mut o = RawOrder {
                    path,
                    pos,
                    desc: false,
                    nulls_last: None,
                };
                if self.is_kw("ASC") {
                    self.i += 1;
                } else if self.is_kw("DESC") {
                    self.i += 1;
                    o.desc = true;
                }
                if self.is_kw("NULLS") {
                    self.i += 1;
                    if self.is_kw("FIRST") {
                        o.nulls_last = Some(false);
                    } else if self.is_kw("LAST") {
                        o.nulls_last = Some(true);
                    } else {
                        return Err(self.unexpected());
                    }
                    self.i += 1;
                }
                q.order.push(o);
                if self.peek().tk == Tk::Comma {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }
        if self.is_kw("LIMIT") {
            self.i += 1;
            q.limit = Some(self.unsigned()?);
        }
        if self.is_kw("OFFSET") {
            self.i += 1;
            q.offset = Some(self.unsigned()?);
        }
        Ok(q)
    }

    fn unsigned(&mut self) -> Result<(u64, usize), SoqlError> {
        let t = self.peek();
        if let Tk::Num(v) = t.tk {
            let text = self.text(t);
            if text.bytes().all(|c| c.is_ascii_digit()) {
                let pos = t.start;
                self.i += 1;
                return Ok((v as u64, pos));
            }
        }
        Err(self.unexpected())
    }

    fn select_item(&mut self, top: bool) -> Result<RawItem, SoqlError> {
        let t = self.peek().clone();
        match t.tk {
            Tk::LParen if top => {
                self.i += 1;
                let sub = self.query(false)?;
                self.expect(Tk::RParen)?;
                Ok(RawItem::Sub(Box::new(sub), t.start))
            }
            Tk::Ident if self.peek_at(1).tk == Tk::LParen => {
                let name = self.text(&t).to_ascii_uppercase();
                match name.as_str() {
                    "COUNT" => {
                        self.i += 2;
                        self.expect(Tk::RParen)?;
                        Ok(RawItem::Count(t.start))
                    }
                    "FIELDS" => {
                        self.i += 2;
                        let kind = if self.is_kw("ALL") {
                            FieldsKind::All
                        } else if self.is_kw("STANDARD") {
                            FieldsKind::Standard
                        } else if self.is_kw("CUSTOM") {
                            FieldsKind::Custom
                        } else {
                            return Err(self.unexpected());
                        };
                        self.i += 1;
                        self.expect(Tk::RParen)?;
                        Ok(RawItem::Fields(kind, t.start))
                    }
                    _ => Err(self.unexpected_at(self.i + 1)),
                }
            }
            Tk::Ident => {
                self.i += 1;
                Ok(RawItem::Path(self.text(&t).to_string(), t.start))
            }
            _ => Err(self.unexpected()),
        }
    }

    /// Salesforce requires parentheses when mixing AND and OR at one level.
    fn cond(&mut self) -> Result<RawCond, SoqlError> {
        let first = self.unary()?;
        if self.is_kw("AND") || self.is_kw("OR") {
            let is_and = self.is_kw("AND");
            let mut parts = vec![first];
            while self.is_kw("AND") || self.is_kw("OR") {
                if self.is_kw("AND") != is_and {
                    return Err(self.unexpected());
                }
                self.i += 1;
                parts.push(self.unary()?);
            }
            return Ok(if is_and {
                RawCond::And(parts)
            } else {
                RawCond::Or(parts)
            });
        }
        Ok(first)
    }

    fn unary(&mut self) -> Result<RawCond, SoqlError> {
        if self.is_kw("NOT") {
            self.i += 1;
            return Ok(RawCond::Not(Box::new(self.unary()?)));
        }
        if self.peek().tk == Tk::LParen {
            self.i += 1;
            let c = self.cond()?;
            self.expect(Tk::RParen)?;
            return Ok(c);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<RawCond, SoqlError> {
        let (path, pos) = self.ident()?;
        let op = match self.peek().tk {
            Tk::Eq => Some(CmpOp::Eq),
            Tk::Ne => Some(CmpOp::Ne),
            Tk::Lt => Some(CmpOp::Lt),
            Tk::Le => Some(CmpOp::Le),
            Tk::Gt => Some(CmpOp::Gt),
            Tk::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.i += 1;
            let val = self.value()?;
            return Ok(RawCond::Cmp { path, pos, op, val });
        }
        if self.is_kw("LIKE") {
            self.i += 1;
            let val = self.value()?;
            return Ok(RawCond::Like { path, pos, val });
        }
        let lop = if self.is_kw("IN") {
            self.i += 1;
            ListOp::In
        } else if self.is_kw("NOT") && self.is_kw_at(1, "IN") {
            self.i += 2;
            ListOp::NotIn
        } else if self.is_kw("INCLUDES") {
            self.i += 1;
            ListOp::Includes
        } else if self.is_kw("EXCLUDES") {
            self.i += 1;
            ListOp::Excludes
        } else {
            return Err(self.unexpected());
        };
        self.expect(Tk::LParen)?;
        let mut vals = Vec::new();
        loop {
            vals.push(self.value()?);
            if self.peek().tk == Tk::Comma {
                self.i += 1;
            } else {
                break;
            }
        }
        self.expect(Tk::RParen)?;
        Ok(RawCond::List {
            path,
            pos,
            op: lop,
            vals,
        })
    }

    fn value(&mut self) -> Result<RawVal, SoqlError> {
        let t = self.peek().clone();
        let kind = match &t.tk {
            Tk::Str(s) => RawValKind::Str(s.clone()),
            Tk::Num(v) => RawValKind::Num(*v),
            Tk::Date(d) => RawValKind::Date(*d),
            Tk::DateTime(ms) => RawValKind::DateTime(*ms),
            Tk::NDate(name, n) => RawValKind::DateLit(name.clone(), Some(*n)),
            Tk::Ident => {
                let up = self.text(&t).to_ascii_uppercase();
                match up.as_str() {
                    "NULL" => RawValKind::Null,
                    "TRUE" => RawValKind::Bool(true),
                    "FALSE" => RawValKind::Bool(false),
                    u if DATE_LITERALS.contains(&u) => RawValKind::DateLit(up, None),
                    _ => return Err(self.unexpected()),
                }
            }
            _ => return Err(self.unexpected()),
        };
        self.i += 1;
        Ok(RawVal {
            kind,
            pos: t.start,
            end: t.end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_grammar() {
        let q = parse_raw(
            "select Id, Account.Name, (SELECT Id FROM CaseComments WHERE IsPublished = true ORDER BY CreatedDate DESC LIMIT 5), FIELDS(STANDARD) \
             from Case where (Status = 'New' or Status IN ('a','b')) and not Priority like 'H%' and Subject NOT IN ('x') \
             order by SystemModstamp asc nulls last, Id desc limit 10 offset 20",
        )
        .unwrap();
        assert_eq!(q.select.len(), 4);
        assert!(matches!(&q.select[1], RawItem::Path(p, 11) if p == "Account.Name"));
        assert!(
            matches!(&q.select[2], RawItem::Sub(s, _) if s.from == "CaseComments" && s.limit.map(|l| l.0) == Some(5))
        );
        assert!(matches!(
            q.select[3],
            RawItem::Fields(FieldsKind::Standard, _)
        ));
        assert_eq!(q.from, "Case");
        let Some(RawCond::And(parts)) = &q.filter else {
            panic!("{:?}", q.filter)
        };
        assert_eq!(parts.len(), 3);
        assert!(matches!(&parts[0], RawCond::Or(o) if o.len() == 2));
        assert!(matches!(&parts[1], RawCond::Not(_)));
        assert!(
            matches!(&parts[2], RawCond::List { op: ListOp::NotIn, vals, .. } if vals.len() == 1)
        );
        assert_eq!(q.order.len(), 2);
        assert_eq!(q.order[0].nulls_last, Some(true));
        assert!(q.order[1].desc);
        assert_eq!(q.limit.map(|l| l.0), Some(10));
        assert_eq!(q.offset.map(|l| l.0), Some(20));
    }

    #[test]
    fn count_and_keywords_case_insensitive() {
        let q = parse_raw("SeLeCt CoUnT() FrOm case").unwrap();
        assert!(matches!(q.select[0], RawItem::Count(7)));
    }

    #[test]
    fn mixing_and_or_needs_parens() {
        let e = parse_raw("SELECT Id FROM Case WHERE A = 1 AND B = 2 OR C = 3").unwrap_err();
        assert!(
            e.message
                .ends_with("ERROR at Row:1:Column:43\nunexpected token: 'OR'"),
            "{}",
            e.message
        );
    }

    #[test]
    fn form_typo() {
        let e = parse_raw("SELECT Id FORM Account").unwrap_err();
        assert_eq!(e.error_code, "MALFORMED_QUERY");
        assert_eq!(
            e.message,
            "\nSELECT Id FORM Account\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'FORM'"
        );
    }

    #[test]
    fn eof() {
        let e = parse_raw("SELECT Id FROM").unwrap_err();
        assert!(
            e.message
                .ends_with("ERROR at Row:1:Column:15\nunexpected token: <EOF>"),
            "{}",
            e.message
        );
    }
}
