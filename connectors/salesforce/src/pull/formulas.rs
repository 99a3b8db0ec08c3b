//! Formula refresh: formula (`calculated`) fields change their values without moving the
//! record's `SystemModstamp`, so no incremental read ever sees the change.
//!
//! Every `formula-refresh` interval a window ends with a pass that reads only `Id` and the
//! formula fields of every record, in Id order (keyset, `Id > last`), and emits a merge row
//! per record: the host replaces those fields in the stored record and leaves the rest, so
//! nothing else is read again and a record whose values did not move stays as it was. Objects
//! with more formula fields than one query may select (`QUERY_TOO_COMPLICATED`) read them in
//! chunks over the same Id range, merged into one row per record.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{ReadError, Target, fail, read_all};
use crate::client::Sf;
use crate::cursor::Checkpoint;
use crate::describe::Describe;
use crate::soql;
use sluice_connector_sdk::model::{Failure, FailureKind, Level, Operation, Row};

/// Whether the window that opens at `server` should end with a formula refresh.
pub(super) fn due(t: &Target, cp: &mut Checkpoint, server: i64) -> bool {
    let Some(every) = t.n.formula_refresh_minutes else {
        return false;
    };
    let has_formulas = cp.desc.as_ref().is_some_and(|d| !d.calculated().is_empty());
    if t.knowledge || !has_formulas {
        return false;
    }
    let Some(last) = cp.formulas_refreshed else {
        // The first window reads whole records, formula values included; the clock starts now.
        cp.formulas_refreshed = Some(server);
        return false;
    };
    server - last >= i64::from(every) * 60_000
}

/// Reads the formula fields of the next records after the pass's position; appends one merge
/// row per record, at most `room`.
pub(super) fn step(
    sf: &mut Sf,
    t: &Target,
    desc: &Describe,
    cp: &mut Checkpoint,
    room: usize,
    rows: &mut Vec<Row>,
) -> Result<(), Failure> {
    let formulas = desc.calculated();
    let per_query = cp.max_formulas.map_or(formulas.len(), |m| m as usize);
    let chunks: Vec<&[&str]> = formulas.chunks(per_query.max(1)).collect();
    let after = cp.win.as_ref().and_then(|w| w.checked_to.clone());
    let limit = room.clamp(1, 2000);
    let mut by_id: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut last: Option<String> = None;
    for (i, fields) in chunks.iter().enumerate() {
        // The first chunk fixes the Id range of this step; the others read the same range.
        let range = match (last.as_deref(), i) {
            (_, 0) => Range::First { limit },
            (Some(last), _) => Range::UpTo(last),
            (None, _) => break,
        };
        let q = query(t, fields, after.as_deref(), &range);
        let read = read_all(sf, t, t.activity, &q, |raw| {
            let Ok(Value::Object(mut rec)) = serde_json::from_str::<Value>(raw.get()) else {
                return Err(fail(
                    FailureKind::Unknown,
                    format!("unreadable {} record in the formula refresh", t.object),
                ));
            };
            let Some(Value::String(id)) = rec.remove("Id") else {
                return Err(fail(
                    FailureKind::Unknown,
                    format!("{} record without Id in the formula refresh", t.object),
                ));
            };
            rec.remove("attributes");
            match (i, by_id.get_mut(&id)) {
                (0, _) => {
                    by_id.insert(id, rec);
                }
                // A record created after the first chunk was read waits for the next refresh.
                (_, Some(values)) => values.extend(rec),
                (_, None) => {}
            }
            Ok(())
        });
        match read {
            Ok(()) => {}
            Err(ReadError::Refused { error, .. }) if error.is("INVALID_FIELD") => {
                return super::redescribe(sf, t, cp, &error);
            }
            Err(ReadError::Refused { error, .. }) if error.is("QUERY_TOO_COMPLICATED") => {
                return fewer_formulas(sf, t, cp, fields.len());
            }
            Err(e) => return Err(e.into()),
        }
        if i == 0 {
            last = by_id.keys().next_back().cloned();
        }
    }
    let read = by_id.len();
    for (id, values) in by_id {
        rows.push(Row {
            key: id,
            op: Operation::Merge,
            cursor: String::new(),
            json: Value::Object(values).to_string().into_bytes(),
        });
    }
    let w = cp.win.as_mut().expect("window");
    if read < limit {
        w.finish_query();
        cp.formulas_refreshed = Some(sf.server_time.unwrap_or(w.hi));
    } else {
        w.checked_to = last;
    }
    Ok(())
}

/// Salesforce found a formula query too complicated: halve the formula fields per query and
/// read the same records again. One formula field per query is the floor.
fn fewer_formulas(
    sf: &mut Sf,
    t: &Target,
    cp: &mut Checkpoint,
    selected: usize,
) -> Result<(), Failure> {
    if selected <= 1 {
        return Err(fail(
            FailureKind::Unknown,
            format!(
                "{}: Salesforce finds even a query of one formula field too complicated \
                 (QUERY_TOO_COMPLICATED); turn formula-refresh off for this integration",
                t.object
            ),
        ));
    }
    let fewer = selected / 2;
    let shown = fewer.to_string();
    sf.log(
        Level::Info,
        "formula query too complicated; reading fewer formula fields per query",
        &[("object", &t.object), ("max_formulas", &shown)],
    );
    cp.max_formulas = u32::try_from(fewer).ok();
    Ok(())
}

/// The Id range one chunk query reads, above the pass's position.
enum Range<'a> {
    /// The next `limit` Ids.
    First { limit: usize },
    /// Up to and including the last Id the first chunk read.
    UpTo(&'a str),
}

fn query(t: &Target, fields: &[&str], after: Option<&str>, range: &Range) -> String {
    let mut conds = Vec::new();
    if let Some(after) = after {
        conds.push(format!("Id > {}", soql::string_literal(after)));
    }
    if let Range::UpTo(last) = range {
        conds.push(format!("Id <= {}", soql::string_literal(last)));
    }
    if t.activity {
        // `queryAll` only for archived activities: the recycle bin stays out.
        conds.push("IsDeleted = false".into());
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let limit = match range {
        Range::First { limit } => format!(" LIMIT {limit}"),
        Range::UpTo(_) => String::new(),
    };
    format!(
        "SELECT Id, {} FROM {}{filter} ORDER BY Id ASC{limit}",
        fields.join(", "),
        t.object
    )
}
