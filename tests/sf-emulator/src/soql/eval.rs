//! Query execution: candidate rows, filtering, ordering, OFFSET/LIMIT.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::ast::CmpOp;
use super::error::SoqlError;
use super::resolve::{Cond, FieldRef, LikeTok, Lit, OrderKey, Pred, Query};
use super::value::{FieldType, Value};
use super::{ExecOptions, RowId, RowSource};

/// The rows a query matched, in output order (after OFFSET and LIMIT).
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    pub(crate) rows: Vec<RowId>,
    pub(crate) total: usize,
    pub(crate) include_deleted: bool,
}

impl ResultSet {
    /// `totalSize`: number of records (the count for `COUNT()` queries).
    pub fn total_size(&self) -> usize {
        self.total
    }
    /// Matching rows in order (empty for `COUNT()`).
    pub fn rows(&self) -> &[RowId] {
        &self.rows
    }
    /// Number of renderable records (`rows().len()`).
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Follows parent hops and reads the final field; a null/dangling lookup gives `Null`.
pub(crate) fn field_value(src: &dyn RowSource, object: &str, row: RowId, f: &FieldRef) -> Value {
    if f.hops.is_empty() {
        return src.get(object, row, f.idx);
    }
    let mut obj = object;
    let mut row = row;
    for h in &f.hops {
        match src.get(obj, row, h.fk_idx) {
            Value::Str(id) => match src.by_id(&h.target, &id) {
                Some(r) => {
                    row = r;
                    obj = &h.target;
                }
                None => return Value::Null,
            },
            _ => return Value::Null,
        }
    }
    src.get(obj, row, f.idx)
}

pub(crate) fn execute(
    q: &Query,
    src: &dyn RowSource,
    opts: ExecOptions<'_>,
) -> Result<ResultSet, SoqlError> {
    let obj = q.object.as_str();
    let (cands, presorted) = candidates(q, src);
    // Without a sort still to do, rows past OFFSET + LIMIT can't change the result.
    let cap = match q.limit {
        Some(l) if presorted || q.order.is_empty() || q.count => {
            (l as usize).saturating_add(q.offset.unwrap_or(0) as usize)
        }
        _ => usize::MAX,
    };
    let mut rows: Vec<RowId> = Vec::new();
    for &r in cands.iter() {
        if rows.len() >= cap {
            break;
        }
        if !opts.include_deleted
            && [q.deleted_idx, q.archived_idx]
                .into_iter()
                .flatten()
                .any(|i| matches!(src.get(obj, r, i), Value::Bool(true)))
        {
            continue;
        }
        if let Some(vis) = opts.visible
            && !vis(r)
        {
            continue;
        }
        if !src.visible(obj, r) {
            continue;
        }
        if let Some(c) = &q.filter
            && !eval_cond(c, src, obj, r)
        {
            continue;
        }
        rows.push(r);
    }
    drop(cands);
    if q.count {
        let mut n = rows.len();
        if let Some(l) = q.limit {
            n = n.min(l as usize);
        }
        return Ok(ResultSet {
            rows: Vec::new(),
            total: n,
            include_deleted: opts.include_deleted,
        });
    }
    if !presorted && !q.order.is_empty() {
        sort_rows(&mut rows, &q.order, src, obj);
    }
    let off = q.offset.unwrap_or(0) as usize;
    if off > 0 {
        rows.drain(..off.min(rows.len()));
    }
    if let Some(l) = q.limit {
        rows.truncate(l as usize);
    }
    Ok(ResultSet {
        total: rows.len(),
        rows,
        include_deleted: opts.include_deleted,
    })
}

/// Numeric-ish types for which a server index sorted "ascending, nulls first, ties by Id"
/// matches our ORDER BY semantics.
fn index_friendly(ty: FieldType) -> bool {
    matches!(
        ty,
        FieldType::DateTime
            | FieldType::Date
            | FieldType::Int
            | FieldType::Double
            | FieldType::Currency
            | FieldType::Percent
    )
}

/// Chooses the starting row list: a server-provided sorted index (narrowed by a range filter
/// on the same field) when it helps, else all rows.
fn candidates<'s>(q: &Query, src: &'s dyn RowSource) -> (Cow<'s, [RowId]>, bool) {
    let obj = q.object.as_str();
    // 0. `Id = '…'` / `Id IN (…)` with 18-char ids: direct lookups.
    if let Some(ids) = id_lookup(q) {
        let mut v: Vec<RowId> = ids.iter().filter_map(|id| src.by_id(obj, id)).collect();
        v.sort_unstable();
        v.dedup();
        return (Cow::Owned(v), false);
    }
    // 1. ORDER BY f [ASC] [NULLS FIRST] [, Id [ASC]] with an index on f.
    if !q.count
        && let Some(first) = q.order.first()
        && first.field.hops.is_empty()
        && !first.desc
        && !first.nulls_last
        && index_friendly(first.field.ty)
        && q.order[1..]
            .iter()
            .all(|k| k.field.hops.is_empty() && k.field.ty == FieldType::Id && !k.desc)
        && q.order.len() <= 2
        && let Some(idx) = src.sorted_rows(obj, first.field.idx)
    {
        return (narrow(q, src, idx, first.field.idx), true);
    }
    // 2. A range filter on an indexed field (output order unspecified or re-sorted after).
    if let Some(fidx) = range_field(q)
        && let Some(idx) = src.sorted_rows(obj, fidx)
    {
        let narrowed = narrow(q, src, idx, fidx);
        // The filter is applied afterwards, so a narrowed index is always a superset.
        let presorted = q.order.is_empty();
        return (narrowed, presorted);
    }
    (Cow::Owned(src.rows(obj)), false)
}

/// 18-char id literals of a top-level `Id =` / `Id IN` conjunct, if there is one.
fn id_lookup(q: &Query) -> Option<Vec<&str>> {
    top_conjuncts(q).iter().find_map(|c| {
        let Cond::Pred(f, p) = c else { return None };
        if !f.hops.is_empty() || f.ty != FieldType::Id {
            return None;
        }
        let lits: Vec<&Lit> = match p {
            Pred::Cmp(CmpOp::Eq, l) => vec![l],
            Pred::In {
                negated: false,
                items,
                ..
            } => items.iter().collect(),
            _ => return None,
        };
        lits.into_iter()
            .map(|l| match l {
                Lit::Id(s) if s.len() == 18 => Some(&**s),
                _ => None,
            })
            .collect()
    })
}

fn top_conjuncts(q: &Query) -> &[Cond] {
    match &q.filter {
        Some(Cond::And(v)) => v,
        Some(c) => std::slice::from_ref(c),
        None => &[],
    }
}

fn bound_of(c: &Cond) -> Option<(usize, CmpOp, f64)> {
    if let Cond::Pred(f, p) = c
        && f.hops.is_empty()
        && index_friendly(f.ty)
    {
        return match p {
            Pred::Cmp(op, Lit::Time(t)) => Some((f.idx, *op, *t as f64)),
            Pred::Cmp(op, Lit::Num(n)) => Some((f.idx, *op, *n)),
            _ => None,
        };
    }
    None
}

fn range_field(q: &Query) -> Option<usize> {
    top_conjuncts(q)
        .iter()
        .filter_map(bound_of)
        .find(|(_, op, _)| *op != CmpOp::Ne)
        .map(|(i, _, _)| i)
}

/// Narrows an index (ascending by `fidx`, nulls first) to the rows that can satisfy the
/// top-level range conjuncts on that field, using binary search.
fn narrow<'s>(
    q: &Query,
    src: &dyn RowSource,
    idx: Cow<'s, [RowId]>,
    fidx: usize,
) -> Cow<'s, [RowId]> {
    let obj = q.object.as_str();
    let key = |r: RowId| src.get(obj, r, fidx).num_key();
    let mut lo = 0usize;
    let mut hi = idx.len();
    for (fi, op, v) in top_conjuncts(q).iter().filter_map(bound_of) {
        if fi != fidx {
            continue;
        }
        let s = &idx[lo..hi];
        // Nulls sort first and never satisfy a comparison.
        let below = |r: &RowId, inclusive: bool| match key(*r) {
            None => true,
            Some(k) => k < v || (inclusive && k == v),
        };
        match op {
            CmpOp::Gt => lo += s.partition_point(|r| below(r, true)),
            CmpOp::Ge => lo += s.partition_point(|r| below(r, false)),
            CmpOp::Lt => hi = lo + s.partition_point(|r| below(r, false)),
            CmpOp::Le => hi = lo + s.partition_point(|r| below(r, true)),
            CmpOp::Eq => {
                let a = s.partition_point(|r| below(r, false));
                let b = s.partition_point(|r| below(r, true));
                hi = lo + b;
                lo += a;
            }
            CmpOp::Ne => {}
        }
        if lo >= hi {
            return Cow::Owned(Vec::new());
        }
    }
    match idx {
        Cow::Borrowed(s) => Cow::Borrowed(&s[lo..hi]),
        Cow::Owned(mut v) => {
            v.truncate(hi);
            v.drain(..lo);
            Cow::Owned(v)
        }
    }
}

pub(crate) fn sort_rows(rows: &mut Vec<RowId>, order: &[OrderKey], src: &dyn RowSource, obj: &str) {
    let k = order.len();
    if rows.len() < 2 || k == 0 {
        return;
    }
    let mut keys: Vec<Value> = Vec::with_capacity(rows.len() * k);
    for &r in rows.iter() {
        for o in order {
            keys.push(field_value(src, obj, r, &o.field));
        }
    }
    let mut perm: Vec<u32> = (0..rows.len() as u32).collect();
    perm.sort_by(|&a, &b| {
        let ka = &keys[a as usize * k..a as usize * k + k];
        let kb = &keys[b as usize * k..b as usize * k + k];
        for (i, o) in order.iter().enumerate() {
            let ord = match (ka[i].is_null(), kb[i].is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if o.nulls_last {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (false, true) => {
                    if o.nulls_last {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, false) => {
                    let c = cmp_values(&ka[i], &kb[i], o.field.ty);
                    if o.desc { c.reverse() } else { c }
                }
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
    let sorted: Vec<RowId> = perm.iter().map(|&p| rows[p as usize]).collect();
    *rows = sorted;
}

/// Ordering of two non-null values of one field: ids by byte order (Salesforce id order),
/// text case-insensitively (upper-cased), numbers/dates numerically, false < true.
pub(crate) fn cmp_values(a: &Value, b: &Value, ty: FieldType) -> Ordering {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => {
            if ty.is_id() {
                x.as_bytes().cmp(y.as_bytes())
            } else {
                cmp_ci(x, y)
            }
        }
        _ => match (a.num_key(), b.num_key()) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => Ordering::Equal,
        },
    }
}

pub(crate) fn cmp_ci(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        let (x, y) = (a.as_bytes(), b.as_bytes());
        for (p, q) in x.iter().zip(y) {
            let (p, q) = (p.to_ascii_uppercase(), q.to_ascii_uppercase());
            if p != q {
                return p.cmp(&q);
            }
        }
        return x.len().cmp(&y.len());
    }
    a.chars()
        .flat_map(char::to_uppercase)
        .cmp(b.chars().flat_map(char::to_uppercase))
}

pub(crate) fn eq_ci(a: &str, b: &str) -> bool {
    if a.len() == b.len() && a.eq_ignore_ascii_case(b) {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return false;
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// 15-char ids are case-sensitive; an 18-char id adds a checksum of the case. Compare the
/// first 15 chars exactly.
fn eq_id(v: &str, lit: &str) -> bool {
    let (v, l) = (v.as_bytes(), lit.as_bytes());
    if v.len() >= 15 && l.len() >= 15 {
        v[..15] == l[..15]
    } else {
        v == l
    }
}

fn apply(op: CmpOp, o: Ordering) -> bool {
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Ne => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
    }
}

fn lit_cmp(v: &Value, lit: &Lit, op: CmpOp) -> Option<Ordering> {
    Some(match (v, lit) {
        (Value::Str(s), Lit::Text(t)) => {
            if matches!(op, CmpOp::Eq | CmpOp::Ne) {
                if eq_ci(s, t) {
                    Ordering::Equal
                } else {
                    Ordering::Less
                }
            } else {
                cmp_ci(s, t)
            }
        }
        (Value::Str(s), Lit::Id(t)) => {
            if eq_id(s, t) {
                Ordering::Equal
            } else {
                s.as_bytes().cmp(t.as_bytes())
            }
        }
        (Value::Bool(b), Lit::Bool(l)) => b.cmp(l),
        (Value::Date(d), Lit::Time(t)) => (*d as i64).cmp(t),
        (Value::DateTime(ms), Lit::Time(t)) => ms.cmp(t),
        (v, Lit::Num(n)) => v.num_key()?.partial_cmp(n)?,
        _ => return None,
    })
}

fn lit_eq(v: &Value, lit: &Lit) -> bool {
    lit_cmp(v, lit, CmpOp::Eq) == Some(Ordering::Equal)
}

pub(crate) fn eval_cond(c: &Cond, src: &dyn RowSource, obj: &str, row: RowId) -> bool {
    match c {
        Cond::And(v) => v.iter().all(|c| eval_cond(c, src, obj, row)),
        Cond::Or(v) => v.iter().any(|c| eval_cond(c, src, obj, row)),
        Cond::Not(c) => !eval_cond(c, src, obj, row),
        Cond::Pred(f, p) => eval_pred(&field_value(src, obj, row, f), p),
    }
}

/// Two-valued logic as SOQL: a null field fails every comparison except `!=`, `NOT IN`
/// and `EXCLUDES`.
fn eval_pred(v: &Value, p: &Pred) -> bool {
    match p {
        Pred::IsNull(want) => v.is_null() == *want,
        Pred::Cmp(op, lit) => {
            if v.is_null() {
                return *op == CmpOp::Ne;
            }
            match lit_cmp(v, lit, *op) {
                Some(o) => apply(*op, o),
                None => *op == CmpOp::Ne,
            }
        }
        Pred::Range(op, lo, hi) => {
            let k = match v {
                Value::Date(d) => *d as i64,
                Value::DateTime(ms) => *ms,
                _ => return *op == CmpOp::Ne,
            };
            let inside = *lo <= k && k < *hi;
            match op {
                CmpOp::Eq => inside,
                CmpOp::Ne => !inside,
                CmpOp::Lt => k < *lo,
                CmpOp::Le => k < *hi,
                CmpOp::Gt => k >= *hi,
                CmpOp::Ge => k >= *lo,
            }
        }
        Pred::In {
            negated,
            items,
            has_null,
        } => {
            let found = if v.is_null() {
                *has_null
            } else {
                items.iter().any(|l| lit_eq(v, l))
            };
            found != *negated
        }
        Pred::Like(pat) => match v {
            Value::Str(s) => like_match(pat, s),
            _ => false,
        },
        Pred::Includes { excludes, items } => {
            // INCLUDES ('A;B', 'C'): the value holds both A and B, or holds C.
            let hit = match v {
                Value::Str(s) => items.iter().any(|item| {
                    item.split(';')
                        .all(|want| s.split(';').any(|have| eq_ci(have.trim(), want.trim())))
                }),
                _ => false,
            };
            hit != *excludes
        }
    }
}

fn ch_eq(a: char, b: char) -> bool {
    a == b || (a.to_lowercase().eq(b.to_lowercase()))
}

/// Case-insensitive LIKE with `%` (any run) and `_` (one char); iterative backtracking.
pub(crate) fn like_match(pat: &[LikeTok], s: &str) -> bool {
    if s.is_ascii() {
        like_impl(pat, s.as_bytes())
    } else {
        let chars: Vec<char> = s.chars().collect();
        like_impl(pat, &chars)
    }
}

fn like_impl<T: Copy + Into<char>>(pat: &[LikeTok], t: &[T]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match pat.get(pi) {
            Some(LikeTok::Any) => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some(LikeTok::One) => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some(LikeTok::Ch(c)) if ch_eq(*c, t[ti].into()) => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pat[pi..].iter().all(|p| *p == LikeTok::Any)
}
