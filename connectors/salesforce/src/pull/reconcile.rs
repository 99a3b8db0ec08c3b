//! Id reconciliation: hard deletes that no change feed reports any more.
//!
//! `/sobjects/X/deleted` keeps about 15 days and a purged record never shows in `queryAll`, so
//! a stream read less often than that, or a delete the log dropped, would leave a record that
//! no longer exists. Every `reconcile-every` (weekly by default), and whenever the last window
//! ended longer ago than the delete log keeps, the keys the host stores are checked against
//! Salesforce by Id, 200 per call; a key Salesforce no longer returns becomes a delete row.
//! An error never produces a delete: the stream fails and its checkpoint stays. The check reads
//! through `queryAll`: `/query` hides archived activities, which are live records.
//!
//! Knowledge has no delete log and no `queryAll`, and deleting an article removes every
//! version at once, so its stored keys (`KnowledgeArticleId/Language`) are checked against the
//! published versions: a key with no online version any more becomes a delete.

use std::collections::HashSet;

use super::{Head, Target, fail, read_all};
use crate::client::Sf;
use crate::cursor::Checkpoint;
use crate::{dt, soql};
use sluice_connector_sdk::model::{Failure, FailureKind, Level, Operation, Row};

/// Keys checked per call (200 Ids keep the URL near 6 KB).
const KEYS_PER_CHECK: usize = 200;

/// Whether the window that opens at `server` should end with a reconciliation.
pub(super) fn due(t: &Target, cp: &mut Checkpoint, server: i64, retention_ms: i64) -> bool {
    let Some(every) = t.n.reconcile_minutes else {
        return false;
    };
    if !t.knowledge && !t.n.emits_deletes(&t.stream) {
        return false;
    }
    let Some(last) = cp.reconciled else {
        // The first window reads everything there is; the clock starts now.
        cp.reconciled = Some(server);
        return false;
    };
    let gap = cp.mark.lo.is_some_and(|lo| server - lo >= retention_ms);
    gap || server - last >= i64::from(every) * 60_000
}

/// Checks the next stored keys; appends a delete row for each one Salesforce lacks.
pub(super) fn step(
    sf: &mut Sf,
    t: &Target,
    cp: &mut Checkpoint,
    room: usize,
    rows: &mut Vec<Row>,
) -> Result<(), Failure> {
    let after = cp.win.as_ref().and_then(|w| w.checked_to.clone());
    let limit = room.clamp(1, KEYS_PER_CHECK);
    let keys = sf.stored_keys(after.as_deref(), limit as u32);
    if t.knowledge {
        let online = online_article_keys(sf, t, &keys)?;
        let article_key = |k: &str| k.split_once('/').is_some_and(|(a, _)| is_record_id(a));
        for key in keys
            .iter()
            .filter(|k| article_key(k) && !online.contains(k.as_str()))
        {
            rows.push(article_delete(sf, key));
        }
        advance(sf, cp, &keys, limit);
        return Ok(());
    }
    let ids: Vec<&String> = keys.iter().filter(|k| is_record_id(k)).collect();
    if ids.len() < keys.len() {
        sf.log(
            Level::Warn,
            "stored keys that are not record Ids were left alone",
            &[("object", &t.object)],
        );
    }
    let flagged = cp.desc.as_ref().is_some_and(|d| d.has("IsDeleted"));
    let live = if ids.is_empty() {
        HashSet::new()
    } else {
        live_ids(sf, t, &ids, flagged)?
    };
    let stamp = sf.server_time.map(dt::format_soql).unwrap_or_default();
    for id in ids.iter().filter(|id| !live.contains(id.as_str())) {
        let json = serde_json::json!({
            "Id": id,
            "deletedBy": "reconciliation: Salesforce no longer returns this record",
        });
        rows.push(Row {
            key: id.to_string(),
            op: Operation::Delete,
            cursor: stamp.clone(),
            json: json.to_string().into_bytes(),
        });
    }
    advance(sf, cp, &keys, limit);
    Ok(())
}

/// Moves past the checked `keys`; the pass ends when fewer than `limit` came back.
fn advance(sf: &Sf, cp: &mut Checkpoint, keys: &[String], limit: usize) {
    let w = cp.win.as_mut().expect("window");
    if keys.len() < limit {
        w.finish_query();
        cp.reconciled = Some(sf.server_time.unwrap_or(w.hi));
    } else {
        w.checked_to = keys.last().cloned();
    }
}

/// The delete row of a Knowledge key with no published version left.
fn article_delete(sf: &Sf, key: &str) -> Row {
    let (article, language) = key.split_once('/').unwrap_or((key, ""));
    let json = serde_json::json!({
        "KnowledgeArticleId": article,
        "Language": language,
        "deletedBy": "reconciliation: the article has no published version any more",
    });
    Row {
        key: key.to_string(),
        op: Operation::Delete,
        cursor: sf.server_time.map(dt::format_soql).unwrap_or_default(),
        json: json.to_string().into_bytes(),
    }
}

/// The keys among `keys` (`KnowledgeArticleId/Language`) that have an online version.
fn online_article_keys(
    sf: &mut Sf,
    t: &Target,
    keys: &[String],
) -> Result<HashSet<String>, Failure> {
    let mut articles: Vec<String> = keys
        .iter()
        .filter_map(|k| k.split_once('/'))
        .map(|(a, _)| a)
        .filter(|a| is_record_id(a))
        .map(soql::string_literal)
        .collect();
    articles.sort();
    articles.dedup();
    let mut online = HashSet::new();
    if articles.is_empty() {
        return Ok(online);
    }
    let q = format!(
        "SELECT Id, KnowledgeArticleId, Language FROM {} WHERE PublishStatus = 'Online' AND \
         KnowledgeArticleId IN ({})",
        t.object,
        articles.join(", ")
    );
    read_all(sf, t, false, &q, |raw| {
        let head = Head::parse(raw.get())
            .map_err(|e| fail(FailureKind::Unknown, format!("unreadable record: {e}")))?;
        online.extend(t.key_of(&head));
        Ok(())
    })?;
    Ok(online)
}

/// The Ids among `ids` that Salesforce still holds outside the recycle bin (`queryAll`, so
/// archived rows count as live; `flagged`: the object has `IsDeleted`).
fn live_ids(
    sf: &mut Sf,
    t: &Target,
    ids: &[&String],
    flagged: bool,
) -> Result<HashSet<String>, Failure> {
    let list: Vec<String> = ids.iter().map(|id| soql::string_literal(id)).collect();
    let q = format!(
        "SELECT Id{} FROM {} WHERE Id IN ({})",
        if flagged { ", IsDeleted" } else { "" },
        t.object,
        list.join(", ")
    );
    let mut live = HashSet::new();
    read_all(sf, t, true, &q, |raw| {
        // An unreadable record must fail the check, never read as "not live".
        let head = Head::parse(raw.get())
            .map_err(|e| fail(FailureKind::Unknown, format!("unreadable record: {e}")))?;
        if !head.is_deleted {
            live.extend(head.id);
        }
        Ok(())
    })?;
    Ok(live)
}

/// A 15- or 18-character Salesforce record Id.
fn is_record_id(key: &str) -> bool {
    matches!(key.len(), 15 | 18) && key.bytes().all(|b| b.is_ascii_alphanumeric())
}
