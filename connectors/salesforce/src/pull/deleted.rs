//! `/sobjects/X/deleted` for the window: hard deletes included, within its retention.
//!
//! The log can be purged earlier than its usual retention: when its `earliestDateAvailable`
//! is later than the window's start, deletes may be missing from it, so the window ends with
//! an Id reconciliation (unless reconciliation is turned off). The range must span more than
//! a minute.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Target, fail};
use crate::client::Sf;
use crate::cursor::{Checkpoint, Pass};
use crate::{dt, errors, soql};
use sluice_connector_sdk::model::{Failure, FailureKind, Level, Operation, Row};

/// Delete rows from `/sobjects/X/deleted` for the window (hard deletes included).
pub(super) fn step(
    sf: &mut Sf,
    t: &Target,
    cp: &mut Checkpoint,
    room: usize,
    rows: &mut Vec<Row>,
) -> Result<(), Failure> {
    let win = cp.win.as_ref().expect("window").clone();
    let start = win.from.unwrap_or(win.hi) / 60_000 * 60_000;
    let end = win.hi;
    if end - start <= 60_000 {
        // The resource needs more than a minute; the next window's overlap covers this one.
        cp.win.as_mut().expect("window").finish_query();
        return Ok(());
    }
    let url = sf.data_url(&format!(
        "/sobjects/{}/deleted/?start={}&end={}",
        t.object,
        soql::encode(&dt::format_soql(start)),
        soql::encode(&dt::format_soql(end))
    ));
    let resp = match sf.get(&url, &[]) {
        Ok(r) => r,
        Err(e) if e.preset.is_some() || e.status == 401 || e.status == 403 => {
            return Err(errors::classify(&e, Some(&t.object)));
        }
        Err(e) => {
            // queryAll still reports soft deletes; log and move on rather than stall the stream.
            let msg = format!("{}: {}", e.code, e.message);
            sf.log(
                Level::Warn,
                "getDeleted failed",
                &[("object", &t.object), ("error", &msg)],
            );
            cp.win.as_mut().expect("window").finish_query();
            return Ok(());
        }
    };
    #[derive(Deserialize)]
    struct Deleted<'a> {
        #[serde(rename = "deletedRecords", borrow, default)]
        records: Vec<&'a RawValue>,
        #[serde(rename = "earliestDateAvailable", default)]
        earliest: Option<String>,
    }
    let d: Deleted = serde_json::from_slice(&resp.body).map_err(|e| {
        fail(
            FailureKind::Unknown,
            format!("unreadable deleted list: {e}"),
        )
    })?;
    let earliest = d.earliest.as_deref().and_then(dt::parse_millis);
    if earliest.is_some_and(|e| e > start) && t.n.reconcile_minutes.is_some() {
        let w = cp.win.as_mut().expect("window");
        if !w.passes.contains(&Pass::Reconcile) {
            let at = earliest.map(dt::format_soql).unwrap_or_default();
            sf.log(
                Level::Warn,
                "the delete log was purged after the window's start; reconciling Ids",
                &[("object", &t.object), ("earliestDateAvailable", &at)],
            );
            w.passes.push(Pass::Reconcile);
        }
    }
    let w = cp.win.as_mut().expect("window");
    let todo = d.records.len().saturating_sub(w.del_done);
    for raw in d.records.iter().skip(w.del_done).take(room) {
        let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap_or_default();
        let id = v.get("id").and_then(|x| x.as_str()).unwrap_or_default();
        let date = v
            .get("deletedDate")
            .and_then(|x| x.as_str())
            .unwrap_or_default();
        rows.push(Row {
            key: id.to_string(),
            op: Operation::Delete,
            cursor: date.to_string(),
            json: raw.get().as_bytes().to_vec(),
        });
    }
    if todo <= room {
        w.finish_query();
    } else {
        w.del_done += room;
    }
    Ok(())
}
