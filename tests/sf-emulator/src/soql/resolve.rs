//! Validation of a parsed query against the schema, producing an executable [`Query`].

use std::sync::Arc;

use super::ast::*;
use super::error::{self, SoqlError};
use super::parser::parse_raw;
use super::value::{FieldType, MS_PER_DAY, civil_from_days, days_from_civil};
use super::{Catalog, ObjectSchema, ParseOptions};

/// A parsed, schema-validated query. Owns everything it needs (no borrow of the catalog),
/// so the server can keep it for query-more pages and bulk jobs.
#[derive(Debug, Clone)]
pub struct Query {
    pub(crate) object: String,
    pub(crate) count: bool,
    pub(crate) node: Node,
    pub(crate) filter: Option<Cond>,
    pub(crate) order: Vec<OrderKey>,
    pub(crate) limit: Option<u64>,
    pub(crate) offset: Option<u64>,
    pub(crate) paths: Vec<String>,
    pub(crate) columns: Vec<FieldRef>,
    pub(crate) deleted_idx: Option<usize>,
    /// `IsArchived` (activities): archived rows only show through `queryAll`.
    pub(crate) archived_idx: Option<usize>,
    pub(crate) has_compound: bool,
    pub(crate) has_subqueries: bool,
}

impl Query {
    /// Canonical object name, e.g. `Case`.
    pub fn object(&self) -> &str {
        &self.object
    }
    /// `SELECT COUNT() …`
    pub fn is_count(&self) -> bool {
        self.count
    }
    /// Selected field paths in SELECT order with canonical names (`Id`, `Account.Name`);
    /// child subqueries are not included. This is the Bulk CSV header.
    pub fn field_paths(&self) -> &[String] {
        &self.paths
    }
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }
    /// True if an address (compound) field is selected (Bulk API rejects these).
    pub fn has_compound_fields(&self) -> bool {
        self.has_compound
    }
    /// True if a child subquery is selected (Bulk API rejects these).
    pub fn has_subqueries(&self) -> bool {
        self.has_subqueries
    }
}

/// A record shape to render: the object's fields, nested parents and child subqueries.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub object: String,
    pub id_idx: Option<usize>,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub(crate) enum Item {
    Field {
        name: String,
        idx: usize,
        ty: FieldType,
    },
    Parent {
        name: String,
        fk_idx: usize,
        node: Node,
    },
    Child(Box<ChildQuery>),
}

#[derive(Debug, Clone)]
pub(crate) struct ChildQuery {
    pub name: String,
    pub object: String,
    pub fk_field: String,
    pub node: Node,
    pub filter: Option<Cond>,
    pub order: Vec<OrderKey>,
    pub limit: Option<u64>,
    pub deleted_idx: Option<usize>,
    /// `IsArchived` (activities): archived rows only show through `queryAll`.
    pub archived_idx: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Hop {
    /// Canonical relationship name, e.g. `Account`.
    pub rel: String,
    pub fk_idx: usize,
    pub target: String,
}

/// A (possibly dotted) field reference resolved to field indices.
#[derive(Debug, Clone)]
pub(crate) struct FieldRef {
    pub hops: Vec<Hop>,
    pub idx: usize,
    pub ty: FieldType,
    pub name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct OrderKey {
    pub field: FieldRef,
    pub desc: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Pred(FieldRef, Pred),
}

#[derive(Debug, Clone)]
pub(crate) enum Lit {
    Text(Arc<str>),
    Id(Arc<str>),
    Num(f64),
    Bool(bool),
    /// Date (days) or datetime (ms), matching the field type.
    Time(i64),
}

#[derive(Debug, Clone)]
pub(crate) enum Pred {
    /// `= null` (true) / `!= null` (false)
    IsNull(bool),
    Cmp(CmpOp, Lit),
    /// Date literal range `[lo, hi)` in field units (days or ms).
    Range(CmpOp, i64, i64),
    In {
        negated: bool,
        items: Vec<Lit>,
        has_null: bool,
    },
    Like(Vec<LikeTok>),
    Includes {
        excludes: bool,
        items: Vec<Arc<str>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LikeTok {
    Any,
    One,
    Ch(char),
}

fn field_index(o: &ObjectSchema, name: &str) -> Option<usize> {
    o.fields
        .iter()
        .position(|f| !f.hidden && f.name.eq_ignore_ascii_case(name))
}

pub(crate) fn parse_query(
    src: &str,
    catalog: &dyn Catalog,
    opts: &ParseOptions,
) -> Result<Query, SoqlError> {
    let raw = parse_raw(src)?;
    let r = Resolver {
        src,
        catalog,
        now_ms: opts.now_ms.unwrap_or_else(now_ms),
    };
    let obj = catalog
        .object(&raw.from)
        .filter(|o| o.queryable)
        .ok_or_else(|| error::invalid_type(src, raw.from_pos, &raw.from))?;

    let mut q = Query {
        object: obj.name.clone(),
        count: false,
        node: Node {
            object: obj.name.clone(),
            id_idx: field_index(obj, "Id"),
            items: Vec::new(),
        },
        filter: None,
        order: Vec::new(),
        limit: raw.limit.map(|l| l.0),
        offset: raw.offset.map(|l| l.0),
        paths: Vec::new(),
        columns: Vec::new(),
        deleted_idx: field_index(obj, "IsDeleted"),
        archived_idx: field_index(obj, "IsArchived"),
        has_compound: false,
        has_subqueries: false,
    };

    let n_items = raw.select.len();
    for item in &raw.select {
        match item {
            RawItem::Count(pos) => {
                if n_items > 1 {
                    return Err(error::at(
                        src,
                        *pos,
                        error::MALFORMED_QUERY,
                        "COUNT() and COUNT(fieldName) must be the only elements in the SELECT list",
                    ));
                }
                q.count = true;
            }
            RawItem::Path(path, pos) => {
                let f = r.resolve_path(obj, path, *pos)?;
                let (canon, dup) = add_to_tree(&mut q.node, obj, catalog, &f);
                if dup {
                    return Err(error::at(
                        src,
                        *pos,
                        error::MALFORMED_QUERY,
                        &format!("duplicate field selected: {canon}"),
                    ));
                }
                q.has_compound |= f.ty == FieldType::Address;
                q.paths.push(canon);
                q.columns.push(f);
            }
            RawItem::Fields(kind, pos) => {
                if *kind != FieldsKind::Standard && q.limit.is_none_or(|l| l > 200) {
                    return Err(error::at(
                        src,
                        *pos,
                        error::MALFORMED_QUERY,
                        "The SOQL FIELDS function must have a LIMIT of at most 200",
                    ));
                }
                for (idx, fs) in obj.fields.iter().enumerate() {
                    if fs.hidden {
                        continue;
                    }
                    let custom = fs.name.ends_with("__c");
                    let take = match kind {
                        FieldsKind::All => true,
                        FieldsKind::Standard => !custom,
                        FieldsKind::Custom => custom,
                    };
                    if !take {
                        continue;
                    }
                    let f = FieldRef {
                        hops: Vec::new(),
                        idx,
                        ty: fs.ty,
                        name: fs.name.clone(),
                    };
                    let (canon, dup) = add_to_tree(&mut q.node, obj, catalog, &f);
                    if !dup {
                        q.has_compound |= f.ty == FieldType::Address;
                        q.paths.push(canon);
                        q.columns.push(f);
                    }
                }
            }
            RawItem::Sub(sub, _) => {
                let cq = r.resolve_child(obj, sub)?;
                q.has_subqueries = true;
                q.node.items.push(Item::Child(Box::new(cq)));
            }
        }
    }

    if let Some(f) = &raw.filter {
        q.filter = Some(r.cond(obj, f)?);
    }
    q.order = r.order(obj, &raw.order)?;

    if let Some((off, _)) = raw.offset
        && off > 2000
    {
        return Err(SoqlError::new(
            error::NUMBER_OUTSIDE_VALID_RANGE,
            "Maximum SOQL offset allowed is 2000",
        ));
    }

    if opts.knowledge_publish_status_rule
        && obj.name.to_ascii_lowercase().ends_with("__kav")
        && !knowledge_filter_ok(q.filter.as_ref())
    {
        return Err(SoqlError::new(
            error::MALFORMED_QUERY,
            format!(
                "Implementation restriction: When querying or searching the {} object, you must filter using the following syntax: Id = [single ID], Id IN [list of IDs], or PublishStatus = [status]. In addition PublishStatus is only permitted in a top-level AND condition.",
                obj.name
            ),
        ));
    }
    Ok(q)
}

/// Knowledge `__kav`: a top-level AND conjunct must be `PublishStatus = 'x'`, or `Id`
/// (or `KnowledgeArticleId`) `=`/`IN`.
fn knowledge_filter_ok(filter: Option<&Cond>) -> bool {
    let conjuncts: &[Cond] = match filter {
        None => return false,
        Some(Cond::And(parts)) => parts,
        Some(c) => std::slice::from_ref(c),
    };
    conjuncts.iter().any(|c| match c {
        Cond::Pred(f, p) if f.hops.is_empty() => {
            let n = f.name.as_str();
            match p {
                Pred::Cmp(CmpOp::Eq, _) => {
                    n.eq_ignore_ascii_case("PublishStatus")
                        || n.eq_ignore_ascii_case("Id")
                        || n.eq_ignore_ascii_case("KnowledgeArticleId")
                }
                Pred::In {
                    negated: false,
                    items,
                    ..
                } => {
                    n.eq_ignore_ascii_case("Id")
                        || n.eq_ignore_ascii_case("KnowledgeArticleId")
                        || (n.eq_ignore_ascii_case("PublishStatus") && items.len() == 1)
                }
                _ => false,
            }
        }
        _ => false,
    })
}

/// Inserts a selected field into the render tree (grouping by relationship, in first-seen
/// order). Returns the canonical dotted path and whether it was already selected.
fn add_to_tree(
    root: &mut Node,
    base: &ObjectSchema,
    catalog: &dyn Catalog,
    f: &FieldRef,
) -> (String, bool) {
    let mut node = root;
    let _ = base;
    let mut canon = String::new();
    for h in &f.hops {
        let rel = h.rel.clone();
        let target = catalog.object(&h.target).expect("resolved target");
        canon.push_str(&rel);
        canon.push('.');
        let pos = node
            .items
            .iter()
            .position(|it| matches!(it, Item::Parent { name, .. } if *name == rel));
        let pos = match pos {
            Some(p) => p,
            None => {
                node.items.push(Item::Parent {
                    name: rel,
                    fk_idx: h.fk_idx,
                    node: Node {
                        object: target.name.clone(),
                        id_idx: field_index(target, "Id"),
                        items: Vec::new(),
                    },
                });
                node.items.len() - 1
            }
        };
        node = match &mut node.items[pos] {
            Item::Parent { node, .. } => node,
            _ => unreachable!(),
        };
    }
    canon.push_str(&f.name);
    let dup = node
        .items
        .iter()
        .any(|it| matches!(it, Item::Field { idx, .. } if *idx == f.idx));
    if !dup {
        node.items.push(Item::Field {
            name: f.name.clone(),
            idx: f.idx,
            ty: f.ty,
        });
    }
    (canon, dup)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Resolver<'a> {
    src: &'a str,
    catalog: &'a dyn Catalog,
    now_ms: i64,
}

impl Resolver<'_> {
    fn resolve_path(
        &self,
        base: &ObjectSchema,
        path: &str,
        pos: usize,
    ) -> Result<FieldRef, SoqlError> {
        let mut parts: Vec<&str> = path.split('.').collect();
        let field = parts.pop().unwrap_or("");
        let mut obj = base;
        let mut hops = Vec::new();
        for rel in parts {
            let pr = obj
                .parents
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(rel))
                .ok_or_else(|| error::bad_relationship(self.src, pos, rel))?;
            let fk_idx = field_index(obj, &pr.field)
                .ok_or_else(|| error::bad_relationship(self.src, pos, rel))?;
            let target = self
                .catalog
                .object(&pr.target)
                .ok_or_else(|| error::bad_relationship(self.src, pos, rel))?;
            hops.push(Hop {
                rel: pr.name.clone(),
                fk_idx,
                target: target.name.clone(),
            });
            obj = target;
        }
        let idx = field_index(obj, field)
            .ok_or_else(|| error::no_such_column(self.src, pos, field, &obj.name))?;
        let fs = &obj.fields[idx];
        Ok(FieldRef {
            hops,
            idx,
            ty: fs.ty,
            name: fs.name.clone(),
        })
    }

    /// Schema of the object a field reference ends on.
    fn end_object<'o>(&'o self, base: &'o ObjectSchema, f: &FieldRef) -> &'o ObjectSchema {
        match f.hops.last() {
            Some(h) => self.catalog.object(&h.target).unwrap_or(base),
            None => base,
        }
    }

    fn resolve_child(
        &self,
        parent: &ObjectSchema,
        sub: &RawQuery,
    ) -> Result<ChildQuery, SoqlError> {
        let cr = parent
            .children
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&sub.from))
            .ok_or_else(|| error::bad_child_relationship(self.src, sub.from_pos, &sub.from))?;
        let obj = self
            .catalog
            .object(&cr.object)
            .ok_or_else(|| error::bad_child_relationship(self.src, sub.from_pos, &sub.from))?;
        let mut node = Node {
            object: obj.name.clone(),
            id_idx: field_index(obj, "Id"),
            items: Vec::new(),
        };
        for item in &sub.select {
            match item {
                RawItem::Path(path, pos) => {
                    let f = self.resolve_path(obj, path, *pos)?;
                    let (canon, dup) = add_to_tree(&mut node, obj, self.catalog, &f);
                    if dup {
                        return Err(error::at(
                            self.src,
                            *pos,
                            error::MALFORMED_QUERY,
                            &format!("duplicate field selected: {canon}"),
                        ));
                    }
                }
                RawItem::Fields(_, pos) | RawItem::Count(pos) | RawItem::Sub(_, pos) => {
                    let tok = &self.src[*pos..];
                    let end = tok
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(tok.len())
                        .max(1);
                    return Err(error::unexpected(self.src, *pos, Some(&tok[..end])));
                }
            }
        }
        Ok(ChildQuery {
            name: cr.name.clone(),
            object: obj.name.clone(),
            fk_field: cr.field.clone(),
            node,
            filter: match &sub.filter {
                Some(f) => Some(self.cond(obj, f)?),
                None => None,
            },
            order: self.order(obj, &sub.order)?,
            limit: sub.limit.map(|l| l.0),
            deleted_idx: field_index(obj, "IsDeleted"),
            archived_idx: field_index(obj, "IsArchived"),
        })
    }

    fn order(&self, obj: &ObjectSchema, raw: &[RawOrder]) -> Result<Vec<OrderKey>, SoqlError> {
        raw.iter()
            .map(|o| {
                let f = self.resolve_path(obj, &o.path, o.pos)?;
                let end = self.end_object(obj, &f);
                let sortable = end.fields[f.idx].sortable && !unfilterable_type(f.ty);
                if !sortable {
                    return Err(error::at(
                        self.src,
                        o.pos,
                        error::INVALID_FIELD,
                        &format!("field '{}' can not be sorted in a query call", f.name),
                    ));
                }
                Ok(OrderKey {
                    field: f,
                    desc: o.desc,
                    // Salesforce: nulls first unless NULLS LAST, for both directions.
                    nulls_last: o.nulls_last.unwrap_or(false),
                })
            })
            .collect()
    }

    fn cond(&self, obj: &ObjectSchema, c: &RawCond) -> Result<Cond, SoqlError> {
        Ok(match c {
            RawCond::And(v) => Cond::And(
                v.iter()
                    .map(|c| self.cond(obj, c))
                    .collect::<Result<_, _>>()?,
            ),
            RawCond::Or(v) => Cond::Or(
                v.iter()
                    .map(|c| self.cond(obj, c))
                    .collect::<Result<_, _>>()?,
            ),
            RawCond::Not(c) => Cond::Not(Box::new(self.cond(obj, c)?)),
            RawCond::Cmp { path, pos, op, val } => {
                let f = self.filter_field(obj, path, *pos)?;
                let pred = match self.literal(&f, val)? {
                    Conv::Null => match op {
                        CmpOp::Eq => Pred::IsNull(true),
                        CmpOp::Ne => Pred::IsNull(false),
                        _ => {
                            return Err(error::at(
                                self.src,
                                val.pos,
                                error::MALFORMED_QUERY,
                                "invalid operator on null",
                            ));
                        }
                    },
                    Conv::Lit(l) => Pred::Cmp(*op, l),
                    Conv::Range(lo, hi) => Pred::Range(*op, lo, hi),
                };
                Cond::Pred(f, pred)
            }
            RawCond::Like { path, pos, val } => {
                let f = self.filter_field(obj, path, *pos)?;
                if !(f.ty.is_text() || f.ty.is_id()) {
                    return Err(error::at(
                        self.src,
                        *pos,
                        error::INVALID_QUERY_FILTER_OPERATOR,
                        &format!("invalid operator on field '{}'", f.name),
                    ));
                }
                let RawValKind::Str(_) = &val.kind else {
                    return Err(self.type_error(&f, val));
                };
                let raw = &self.src[val.pos + 1..val.end - 1];
                Cond::Pred(f, Pred::Like(compile_like(raw)))
            }
            RawCond::List {
                path,
                pos,
                op,
                vals,
            } => {
                let f = self.filter_field(obj, path, *pos)?;
                match op {
                    ListOp::In | ListOp::NotIn => {
                        let mut items = Vec::new();
                        let mut has_null = false;
                        for v in vals {
                            match self.literal(&f, v)? {
                                Conv::Null => has_null = true,
                                Conv::Lit(l) => items.push(l),
                                Conv::Range(..) => return Err(self.type_error(&f, v)),
                            }
                        }
                        Cond::Pred(
                            f,
                            Pred::In {
                                negated: *op == ListOp::NotIn,
                                items,
                                has_null,
                            },
                        )
                    }
                    ListOp::Includes | ListOp::Excludes => {
                        let mut items = Vec::new();
                        for v in vals {
                            match &v.kind {
                                RawValKind::Str(s) => items.push(Arc::from(s.as_str())),
                                _ => return Err(self.type_error(&f, v)),
                            }
                        }
                        Cond::Pred(
                            f,
                            Pred::Includes {
                                excludes: *op == ListOp::Excludes,
                                items,
                            },
                        )
                    }
                }
            }
        })
    }

    fn filter_field(
        &self,
        obj: &ObjectSchema,
        path: &str,
        pos: usize,
    ) -> Result<FieldRef, SoqlError> {
        let f = self.resolve_path(obj, path, pos)?;
        let end = self.end_object(obj, &f);
        if !end.fields[f.idx].filterable || unfilterable_type(f.ty) {
            return Err(error::at(
                self.src,
                pos,
                error::INVALID_FIELD,
                &format!("field '{}' can not be filtered in a query call", f.name),
            ));
        }
        Ok(f)
    }

    fn type_error(&self, f: &FieldRef, v: &RawVal) -> SoqlError {
        let quoted = f.ty.is_text() || f.ty.is_id();
        error::at(
            self.src,
            v.pos,
            error::INVALID_FIELD,
            &format!(
                "value of filter criterion for field '{}' must be of type {} and should {}be enclosed in quotes",
                f.name,
                f.ty.soql_type_word(),
                if quoted { "" } else { "not " }
            ),
        )
    }

    fn literal(&self, f: &FieldRef, v: &RawVal) -> Result<Conv, SoqlError> {
        use RawValKind as K;
        if v.kind == K::Null {
            return Ok(Conv::Null);
        }
        let ty = f.ty;
        let ok = match (&v.kind, ty) {
            (K::Str(s), t) if t.is_text() => Conv::Lit(Lit::Text(Arc::from(s.as_str()))),
            (K::Str(s), t) if t.is_id() => {
                if s.is_empty() {
                    Conv::Null
                } else if (s.len() == 15 || s.len() == 18)
                    && s.bytes().all(|c| c.is_ascii_alphanumeric())
                {
                    Conv::Lit(Lit::Id(Arc::from(s.as_str())))
                } else {
                    return Err(error::at(
                        self.src,
                        v.pos,
                        error::INVALID_QUERY_FILTER_OPERATOR,
                        &format!("invalid ID field: {s}"),
                    ));
                }
            }
            (K::Bool(b), FieldType::Boolean) => Conv::Lit(Lit::Bool(*b)),
            (K::Num(n), t) if t.is_number() => Conv::Lit(Lit::Num(*n)),
            (K::Date(d), FieldType::Date) => Conv::Lit(Lit::Time(*d as i64)),
            (K::DateTime(ms), FieldType::DateTime) => Conv::Lit(Lit::Time(*ms)),
            (K::DateLit(name, n), FieldType::Date | FieldType::DateTime) => {
                let (lo, hi) = date_literal_range(name, *n, self.now_ms)
                    .ok_or_else(|| self.type_error(f, v))?;
                if ty == FieldType::DateTime {
                    Conv::Range(lo * MS_PER_DAY, hi * MS_PER_DAY)
                } else {
                    Conv::Range(lo, hi)
                }
            }
            _ => return Err(self.type_error(f, v)),
        };
        Ok(ok)
    }
}

/// Types Salesforce never filters or sorts on, whatever the schema flags say.
fn unfilterable_type(ty: FieldType) -> bool {
    matches!(
        ty,
        FieldType::Address | FieldType::LongTextArea | FieldType::RichText
    )
}

enum Conv {
    Null,
    Lit(Lit),
    Range(i64, i64),
}

/// Day range `[lo, hi)` (days since epoch, UTC) of a relative date literal.
fn date_literal_range(name: &str, n: Option<i64>, now_ms: i64) -> Option<(i64, i64)> {
    let t = now_ms.div_euclid(MS_PER_DAY);
    let (y, m, _) = civil_from_days(t);
    let month_start = |k: i64| {
        let idx = y * 12 + (m as i64 - 1) + k;
        days_from_civil(idx.div_euclid(12), (idx.rem_euclid(12) + 1) as u32, 1)
    };
    let year_start = |k: i64| days_from_civil(y + k, 1, 1);
    let ws = t - (t + 4).rem_euclid(7); // weeks start on Sunday
    let n = n.unwrap_or(0).min(1_000_000);
    Some(match name {
        "TODAY" => (t, t + 1),
        "YESTERDAY" => (t - 1, t),
        "TOMORROW" => (t + 1, t + 2),
        "THIS_WEEK" => (ws, ws + 7),
        "LAST_WEEK" => (ws - 7, ws),
        "NEXT_WEEK" => (ws + 7, ws + 14),
        "THIS_MONTH" => (month_start(0), month_start(1)),
        "LAST_MONTH" => (month_start(-1), month_start(0)),
        "NEXT_MONTH" => (month_start(1), month_start(2)),
        "THIS_YEAR" => (year_start(0), year_start(1)),
        "LAST_YEAR" => (year_start(-1), year_start(0)),
        "NEXT_YEAR" => (year_start(1), year_start(2)),
        "LAST_90_DAYS" => (t - 90, t + 1),
        "NEXT_90_DAYS" => (t + 1, t + 91),
        "LAST_N_DAYS" => (t - n, t + 1),
        "NEXT_N_DAYS" => (t + 1, t + 1 + n),
        "N_DAYS_AGO" => (t - n, t - n + 1),
        "LAST_N_WEEKS" => (ws - 7 * n, ws),
        "NEXT_N_WEEKS" => (ws + 7, ws + 7 + 7 * n),
        "LAST_N_MONTHS" => (month_start(-n), month_start(0)),
        "NEXT_N_MONTHS" => (month_start(1), month_start(1 + n)),
        "LAST_N_YEARS" => (year_start(-n), year_start(0)),
        "NEXT_N_YEARS" => (year_start(1), year_start(1 + n)),
        _ => return None,
    })
}

/// LIKE pattern from the raw (still escaped) literal text: `%`/`_` are wildcards unless
/// escaped as `\%`/`\_`.
fn compile_like(raw: &str) -> Vec<LikeTok> {
    let mut out = Vec::new();
    let mut it = raw.chars();
    while let Some(c) = it.next() {
        match c {
            '%' => {
                if out.last() != Some(&LikeTok::Any) {
                    out.push(LikeTok::Any);
                }
            }
            '_' => out.push(LikeTok::One),
            '\\' => {
                let e = match it.next() {
                    Some('n') => '\n',
                    Some('r') => '\r',
                    Some('t') => '\t',
                    Some('b') => '\u{8}',
                    Some('f') => '\u{c}',
                    Some(other) => other,
                    None => '\\',
                };
                out.push(LikeTok::Ch(e));
            }
            c => out.push(LikeTok::Ch(c)),
        }
    }
    out
}
