//! Syntax tree as parsed, before validation against the schema. Positions are byte offsets.

#[derive(Debug, Clone)]
pub(crate) struct RawQuery {
    pub select: Vec<RawItem>,
    pub from: String,
    pub from_pos: usize,
    pub filter: Option<RawCond>,
    pub order: Vec<RawOrder>,
    pub limit: Option<(u64, usize)>,
    pub offset: Option<(u64, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldsKind {
    All,
    Standard,
    Custom,
}

#[derive(Debug, Clone)]
pub(crate) enum RawItem {
    Path(String, usize),
    Count(usize),
    Fields(FieldsKind, usize),
    Sub(Box<RawQuery>, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListOp {
    In,
    NotIn,
    Includes,
    Excludes,
}

#[derive(Debug, Clone)]
pub(crate) enum RawCond {
    And(Vec<RawCond>),
    Or(Vec<RawCond>),
    Not(Box<RawCond>),
    Cmp {
        path: String,
        pos: usize,
        op: CmpOp,
        val: RawVal,
    },
    Like {
        path: String,
        pos: usize,
        val: RawVal,
    },
    List {
        path: String,
        pos: usize,
        op: ListOp,
        vals: Vec<RawVal>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct RawVal {
    pub kind: RawValKind,
    pub pos: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValKind {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Date(i32),
    DateTime(i64),
    /// `TODAY`, `LAST_N_DAYS:n`, … (upper-cased name, n if any)
    DateLit(String, Option<i64>),
}

#[derive(Debug, Clone)]
pub(crate) struct RawOrder {
    pub path: String,
    pub pos: usize,
    pub desc: bool,
    pub nulls_last: Option<bool>,
}
