//! `/sobjects/X/deleted` for the window: hard deletes included, within its retention.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Target, fail};
use crate::client::Sf;
use crate::cursor::Checkpoint;
use crate::model::{Failure, FailureKind, Level, Operation, Row};
use crate::{dt, errors, soql};

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
    if end - start < 60_000 {
        // The resource truncates to minutes; a shorter range is empty or rejected.
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
    }
    let d: Deleted = serde_json::from_slice(&resp.body).map_err(|e| {
        fail(
            FailureKind::Unknown,
            format!("unreadable deleted list: {e}"),
        )
    })?;
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
