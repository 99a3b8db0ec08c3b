//! The main pass of a large window through a Bulk API 2.0 job.
//!
//! A window is worth a job when it is a backfill (no durable bound yet, or a catch-up over more
//! than a day) and a `COUNT()` of it exceeds the `bulk-threshold` setting. The job reads the
//! same fields and range as the REST query would, without the keyset position or ordering:
//! it is read whole, chunk by chunk, and the window's bound only moves when it is done.
//!
//! Bulk cannot select fields of describe type `json`: the job selects the rest, and each chunk's
//! records are completed with their `json` fields read through REST by Id, as the field chunks
//! of wide objects are. A record gone by then was hard-deleted and becomes a delete; one
//! changed by then carries a newer cursor than the window, so the next window reads it again.

use super::chunks::{self, Merged};
use super::{Head, ReadError, Target, conditions, fail, keep_seen, lead_fields, read_rec, row_of};
use crate::bulk::{self, JobState};
use crate::client::Sf;
use crate::cursor::{BulkJob, Checkpoint, Pass, Window};
use crate::describe::Describe;
use crate::{errors, soql};
use sluice_connector_sdk::model::{Failure, FailureKind, Level, Operation, Row};

/// Windows reaching back further than this are counted to see whether Bulk pays off.
const CATCH_UP_MS: i64 = 86_400_000;

/// What a step left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Keep reading.
    Go,
    /// The job is still running; ask again later.
    Wait,
}

/// Whether the window is a backfill that Bulk might read.
pub(super) fn worth_trying(t: &Target, lo: Option<i64>, win: &Window) -> bool {
    let catch_up = match (lo, win.from) {
        (None, _) | (_, None) => true,
        (Some(_), Some(from)) => win.hi - from > CATCH_UP_MS,
    };
    !t.knowledge && t.n.bulk_threshold > 0 && catch_up
}

/// Counts the window and, when it is over the threshold, creates the job. None means REST.
pub(super) fn start(
    sf: &mut Sf,
    t: &Target,
    desc: &Describe,
    win: &Window,
) -> Result<Option<BulkJob>, Failure> {
    let conds = conditions(t, Pass::Main, win, false).join(" AND ");
    let count = format!("SELECT COUNT() FROM {} WHERE {conds}", t.object);
    let url = soql::query_url(&sf.base, &sf.version, t.all(), &count);
    let total = match sf.get(&url, &[]) {
        Ok(r) => serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v.get("totalSize")?.as_u64()),
        // Too many rows to count in time is itself the answer.
        Err(e) if e.is("QUERY_TIMEOUT") => Some(u64::MAX),
        Err(e) if bulk::is_refusal(&e) => None,
        Err(e) => return Err(errors::classify(&e, Some(&t.object))),
    };
    let Some(total) = total.filter(|&n| n > t.n.bulk_threshold) else {
        return Ok(None);
    };
    let select = bulk_fields(t, desc).join(", ");
    let query = format!("SELECT {select} FROM {} WHERE {conds}", t.object);
    match bulk::create(sf, t.all(), &query) {
        Ok(id) => {
            let n = if total == u64::MAX {
                "more than can be counted".to_string()
            } else {
                total.to_string()
            };
            sf.log(
                Level::Info,
                "backfill through a Bulk API 2.0 job",
                &[("object", &t.object), ("records", &n), ("job", &id)],
            );
            Ok(Some(BulkJob {
                id,
                ready: false,
                locator: None,
            }))
        }
        Err(e) if bulk::is_refusal(&e) => {
            let why = format!("{}: {}", e.code, e.message);
            sf.log(
                Level::Warn,
                "Bulk API 2.0 refused the backfill; reading it through REST",
                &[("object", &t.object), ("reason", &why)],
            );
            Ok(None)
        }
        Err(e) => Err(errors::classify(&e, Some(&t.object))),
    }
}

/// Whether Bulk API 2.0 can select a field of describe type `ty`.
fn bulk_selectable(ty: &str) -> bool {
    !ty.eq_ignore_ascii_case("json")
}

/// The fields the job selects: the REST select list without what Bulk cannot select.
fn bulk_fields(t: &Target, desc: &Describe) -> Vec<String> {
    desc.select_list(&lead_fields(t))
        .into_iter()
        .filter(|f| desc.type_of(f).is_none_or(bulk_selectable))
        .collect()
}

/// The field chunks of a Bulk record: what the job read, then `Id` and the fields read by
/// REST; None when the job read every field.
fn rest_chunks(t: &Target, desc: &Describe) -> Option<Vec<Vec<String>>> {
    let by_rest: Vec<String> = std::iter::once("Id".to_string())
        .chain(
            desc.fields
                .iter()
                .filter(|f| !bulk_selectable(&f.ty))
                .map(|f| f.name.clone()),
        )
        .collect();
    (by_rest.len() > 1).then(|| vec![bulk_fields(t, desc), by_rest])
}

/// Polls the job or reads its next chunk into `rows` (at most `room`).
pub(super) fn step(
    sf: &mut Sf,
    t: &Target,
    cp: &mut Checkpoint,
    room: usize,
    rows: &mut Vec<Row>,
) -> Result<Step, Failure> {
    let win = cp.win.clone().expect("window");
    let mut job = win.bulk.clone().expect("bulk job");
    if !job.ready {
        match bulk::poll(sf, &job.id) {
            Ok(JobState::Running) => return Ok(Step::Wait),
            Ok(JobState::Complete) => job.ready = true,
            Ok(JobState::Failed(why)) => return Ok(fall_back(sf, t, cp, &job, &why)),
            Err(e) if e.status == 404 => {
                return Ok(fall_back(sf, t, cp, &job, "the job no longer exists"));
            }
            Err(e) => return Err(errors::classify(&e, Some(&t.object))),
        }
    }
    let desc = cp
        .desc
        .clone()
        .ok_or_else(|| fail(FailureKind::Unknown, "no describe"))?;
    let keep: Vec<&str> = std::iter::once("Id").chain(lead_fields(t)).collect();
    // Records with fields Bulk cannot select wait for their REST reads; the others become
    // rows as their CSV rows arrive.
    let plan = rest_chunks(t, &desc);
    let mut held = Vec::new();
    let mut pending_seen = Vec::new();
    let first_row = rows.len();
    let mut sink = |record: bulk::BulkRecord| match plan {
        Some(_) => {
            held.push(record);
            Ok(())
        }
        None => accept(t, cp, &win, record, false, rows, &mut pending_seen),
    };
    let read = bulk::results(
        sf,
        &job.id,
        job.locator.as_deref(),
        room,
        &desc,
        &keep,
        &mut sink,
    );
    let next = match read {
        Ok(next) => next,
        // Results expire after seven days, and a job can be deleted by an admin.
        Err(e) if e.preset.is_none() && matches!(e.status, 400 | 404 | 409 | 412) => {
            rows.truncate(first_row);
            let why = format!("{}: {}", e.code, e.message);
            return Ok(fall_back(sf, t, cp, &job, &why));
        }
        Err(e) => return Err(errors::classify(&e, Some(&t.object))),
    };
    if let Some(plan) = plan.filter(|_| !held.is_empty()) {
        let records = match complete(sf, t, &plan, held) {
            Ok(r) => r,
            // A by-Id read refused (a `json` field deleted meanwhile, say): REST reads the
            // window.
            Err(ReadError::Refused { error, .. }) => {
                rows.truncate(first_row);
                let why = format!("{}: {}", error.code, error.message);
                return Ok(fall_back(sf, t, cp, &job, &why));
            }
            Err(ReadError::Failed(f)) => return Err(f),
        };
        for (record, gone) in records {
            accept(t, cp, &win, record, gone, rows, &mut pending_seen)?;
        }
    }
    for (c, id) in pending_seen {
        cp.remember(c, &id);
    }
    let w = cp.win.as_mut().expect("window");
    match next {
        Some(next) => {
            job.locator = Some(next);
            w.bulk = Some(job);
        }
        None => {
            w.bulk = None;
            w.finish_query();
            bulk::delete(sf, &job.id);
        }
    }
    Ok(Step::Go)
}

/// Turns one record of the chunk into a row (a delete when it was `gone` before its REST
/// fields could be read), unless the window already delivered it; notes it in `seen` when the
/// checkpoint must remember it.
fn accept(
    t: &Target,
    cp: &Checkpoint,
    win: &Window,
    record: bulk::BulkRecord,
    gone: bool,
    rows: &mut Vec<Row>,
    seen: &mut Vec<(i64, String)>,
) -> Result<(), Failure> {
    // Only Id, the cursor and the keys are read, and the converter kept them as values.
    let v = Head::from_map(&record.kept);
    let rec = read_rec(t, &v)?;
    if cp.was_seen(rec.c, &rec.id) {
        return Ok(());
    }
    if let Some(mut row) = row_of(t, Pass::Main, &v, &rec, record.json.into_bytes(), &[])? {
        if gone {
            row.op = Operation::Delete;
        }
        rows.push(row);
    }
    if keep_seen(t, cp, win, rec.c) {
        seen.push((rec.c, rec.id));
    }
    Ok(())
}

/// The chunk's records completed with the fields Bulk cannot select (`plan`), each with
/// whether it was hard-deleted before they could be read.
fn complete(
    sf: &mut Sf,
    t: &Target,
    plan: &[Vec<String>],
    mut records: Vec<bulk::BulkRecord>,
) -> Result<Vec<(bulk::BulkRecord, bool)>, ReadError> {
    let driving = records
        .iter_mut()
        .map(|r| {
            let id = r
                .kept
                .get("Id")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            (std::mem::take(&mut r.json), id.to_string())
        })
        .collect();
    let merged = chunks::complete(sf, t, plan, driving)?;
    Ok(records
        .into_iter()
        .zip(merged)
        .map(|(mut r, m)| match m {
            Merged::Full(json) => {
                r.json = json;
                (r, false)
            }
            Merged::Gone(json) => {
                r.json = json;
                (r, true)
            }
        })
        .collect())
}

/// Drops the job and lets REST read the pass from the start of the window.
fn fall_back(sf: &mut Sf, t: &Target, cp: &mut Checkpoint, job: &BulkJob, why: &str) -> Step {
    sf.log(
        Level::Warn,
        "the Bulk API 2.0 job cannot be read; reading the window through REST",
        &[("object", &t.object), ("job", &job.id), ("reason", why)],
    );
    let w = cp.win.as_mut().expect("window");
    w.bulk = None;
    w.pos = None;
    w.next = None;
    bulk::delete(sf, &job.id);
    Step::Go
}
