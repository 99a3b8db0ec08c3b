//! The REST query of a pass: one page per step, resumed by `(cursor, Id)` position.
//!
//! A query locator (`nextRecordsUrl`) is only a shortcut. It belongs to the session that
//! opened it, expires when idle and can be dropped for a newer one, so any failure of a locator
//! (a 401 the host's refresh did not cure included) re-queries from the last delivered
//! `(cursor, Id)`, and a locator older than a run's pace is not followed at all.

use super::chunks::{self, Merged};
use super::{
    Head, QueryPage, ReadError, Target, conditions, fail, keep_seen, lead_fields, read_all,
    read_rec, row_of,
};
use super::{any_type, junction_ids};
use crate::client::Sf;
use crate::cursor::{Checkpoint, Pass, Pos, Window};
use crate::describe::Describe;
use crate::errors::SfError;
use crate::{dt, errors, soql};
use sluice_connector_sdk::model::{Failure, FailureKind, Level, Operation, Row};

/// A locator older than this, by the connector's clock, is not followed: pages of one run
/// follow each other within seconds, so an older one comes from an earlier run whose session
/// may have ended.
const LOCATOR_MAX_AGE_MS: i64 = 60_000;

/// The window's locator when it may still be followed; None means query afresh.
fn fresh_locator(sf: &mut Sf, win: &Window) -> Option<String> {
    let next = win.next.clone()?;
    match (win.next_at, sf.now_ms()) {
        (Some(at), Some(now)) if !(at..=at + LOCATOR_MAX_AGE_MS).contains(&now) => None,
        _ => Some(next),
    }
}

/// The SOQL of the current query of `pass`, selecting `fields`.
fn build_query(t: &Target, fields: &[String], pass: Pass, win: &Window) -> String {
    let c = t.cursor;
    format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {c} ASC, Id ASC",
        fields.join(", "),
        t.object,
        conditions(t, pass, win, true).join(" AND ")
    )
}

/// The header that asks for query batches of `batch` rows.
fn batch_header(batch: usize) -> [(&'static str, String); 1] {
    [("Sforce-Query-Options", format!("batchSize={batch}"))]
}

/// Reads one page of the current query and appends at most `room` rows. With `ahead`, a page
/// that leaves room for a whole batch more has its `nextRecordsUrl` requested before its
/// records are read, so the next step finds that answer on its way or arrived.
pub(super) fn step(
    sf: &mut Sf,
    t: &Target,
    desc: &Describe,
    pass: Pass,
    cp: &mut Checkpoint,
    (room, ahead): (usize, bool),
    rows: &mut Vec<Row>,
) -> Result<(), Failure> {
    let win = cp.win.as_ref().expect("window").clone();
    let all = t.all();
    let lead = lead_fields(t);
    let budget = cp.url_budget.map_or(soql::URL_BUDGET, |b| b as usize);
    let max_fields = cp.max_fields.map_or(usize::MAX, |m| m as usize);
    let chunks = chunks::plan(sf, t, desc, &lead, budget, max_fields);
    let batch = if pass == Pass::Archived || chunks.is_some() {
        200
    } else {
        room.clamp(200, super::REST_BATCH)
    };
    let batch_hdr = batch_header(batch);
    let (resp, from_locator) = match fresh_locator(sf, &win) {
        Some(next) => (sf.get(&next, &batch_hdr), true),
        None => {
            let fields = match &chunks {
                Some(c) => c[0].clone(),
                None => desc.select_list(&lead),
            };
            let q = build_query(t, &fields, pass, &win);
            let url = soql::query_url(&sf.base, &sf.version, all, &q);
            if url.len() > soql::MAX_URL {
                return Err(fail(
                    FailureKind::Unknown,
                    format!(
                        "the query of {} is longer than Salesforce accepts ({} bytes > {})",
                        t.object,
                        url.len(),
                        soql::MAX_URL
                    ),
                ));
            }
            (sf.get(&url, &batch_hdr), false)
        }
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) if from_locator && super::locator_refused(&e) => {
            // The locator is only a hint: re-query from the last delivered (cursor, Id). A
            // failure that is not the locator's comes back from the fresh query.
            let w = cp.win.as_mut().expect("window");
            (w.next, w.next_at) = (None, None);
            let status = e.status.to_string();
            sf.log(
                Level::Info,
                "query locator failed; re-querying from the position",
                &[
                    ("object", &t.object),
                    ("status", &status),
                    ("code", &e.code),
                ],
            );
            return Ok(());
        }
        Err(e) if e.is("INVALID_FIELD") => return super::redescribe(sf, t, cp, &e),
        Err(e) if super::too_long(&e) => return shrink_budget(sf, t, cp, budget, &e),
        Err(e) if e.is("QUERY_TOO_COMPLICATED") => {
            return fewer_fields(sf, t, cp, desc.select_list(&lead).len());
        }
        Err(e) if e.is("QUERY_TIMEOUT") => {
            let w = cp.win.as_mut().expect("window");
            if w.shrink(t.n.start_millis.unwrap_or(0)) {
                let up = dt::format_soql(w.upper());
                sf.log(
                    Level::Info,
                    "query timed out; shrinking the window",
                    &[("object", &t.object), ("upper", &up)],
                );
                return Ok(());
            }
            return Err(fail(
                FailureKind::Unknown,
                format!(
                    "{}: the query timed out even for a one-second window",
                    t.object
                ),
            ));
        }
        Err(e) => return Err(errors::classify(&e, Some(&t.object))),
    };
    let page: QueryPage = serde_json::from_slice(&resp.body).map_err(|e| {
        fail(
            FailureKind::Unknown,
            format!("unreadable query page for {}: {e}", t.object),
        )
    })?;
    // When this page leaves room for a whole batch more, the next step asks for a full batch
    // of `next` (`room.clamp` above): the very request started here, so it reads this answer.
    if let Some(next) = page.next.as_deref().filter(|_| !page.done)
        && ahead
        && chunks.is_none()
        && pass != Pass::Archived
        && room >= page.records.len() + super::REST_BATCH
    {
        sf.prefetch(next, &batch_header(super::REST_BATCH));
    }
    // (record JSON, parsed record, hard-deleted while its chunks were read)
    let mut parsed = Vec::with_capacity(page.records.len());
    for raw in &page.records {
        let v = Head::parse(raw.get())
            .map_err(|e| fail(FailureKind::Unknown, format!("unreadable record: {e}")))?;
        parsed.push((raw.get().to_string(), v, false));
    }
    if let Some(chunks) = &chunks {
        let driving = parsed
            .iter()
            .map(|(json, v, _)| (json.clone(), v.id.clone().unwrap_or_default()))
            .collect();
        let merged = match chunks::complete(sf, t, chunks, driving) {
            Ok(m) => m,
            // The page is dropped: the position is unchanged, so the next step reads it again.
            Err(ReadError::Refused { error, .. }) if error.is("INVALID_FIELD") => {
                return super::redescribe(sf, t, cp, &error);
            }
            Err(ReadError::Refused { error, .. }) if super::too_long(&error) => {
                return shrink_budget(sf, t, cp, budget, &error);
            }
            Err(ReadError::Refused { error, .. }) if error.is("QUERY_TOO_COMPLICATED") => {
                return fewer_fields(sf, t, cp, desc.select_list(&lead).len());
            }
            Err(e) => return Err(e.into()),
        };
        for (p, m) in parsed.iter_mut().zip(merged) {
            match m {
                Merged::Full(json) => p.0 = json,
                Merged::Gone(json) => (p.0, p.2) = (json, true),
            }
        }
    }
    // Archived knowledge versions delete their key only if no version is online any more.
    let online = if pass == Pass::Archived && !parsed.is_empty() {
        online_keys(sf, t, &parsed.iter().map(|(_, v, _)| v).collect::<Vec<_>>())?
    } else {
        Vec::new()
    };
    let any_type = any_type::fields(desc);
    let id_lists = junction_ids::fields(desc);
    let mut consumed_all = true;
    let mut last_pos = None;
    let mut pending_seen = Vec::new();
    let limit = rows.len() + room;
    for (json, v, gone) in parsed {
        if rows.len() >= limit {
            consumed_all = false;
            break;
        }
        let rec = read_rec(t, &v)?;
        last_pos = Some(Pos {
            c: rec.c,
            id: rec.id.clone(),
        });
        if cp.was_seen(rec.c, &rec.id) {
            continue;
        }
        let json = any_type::text_form(json, &any_type)
            .and_then(|json| junction_ids::stored_form(json, &id_lists))
            .map_err(|e| fail(FailureKind::Unknown, format!("{}: {e}", t.object)))?;
        let Some(mut row) = row_of(t, pass, &v, &rec, json.into_bytes(), &online)? else {
            continue;
        };
        if gone {
            row.op = Operation::Delete;
        }
        rows.push(row);
        if keep_seen(t, cp, &win, rec.c) {
            pending_seen.push((rec.c, rec.id));
        }
    }
    let w = cp.win.as_mut().expect("window");
    if last_pos.is_some() {
        w.pos = last_pos;
    }
    if consumed_all {
        if page.done || page.next.is_none() {
            w.finish_query();
        } else {
            w.next = page.next.clone();
            w.next_at = sf.now_ms();
        }
    } else {
        // Stopped mid-page: the locator would skip the rest, so resume from the position.
        (w.next, w.next_at) = (None, None);
    }
    for (c, id) in pending_seen {
        cp.remember(c, &id);
    }
    Ok(())
}

/// The smallest query URL budget tried before giving up.
const MIN_URL_BUDGET: usize = 4_096;

/// Salesforce refused a request as too long (414 for the URL, 431 for the URL and headers
/// together): plan the query again with a quarter less room and re-read from the position.
fn shrink_budget(
    sf: &mut Sf,
    t: &Target,
    cp: &mut Checkpoint,
    budget: usize,
    e: &SfError,
) -> Result<(), Failure> {
    let smaller = budget * 3 / 4;
    if smaller < MIN_URL_BUDGET {
        return Err(fail(
            FailureKind::Unknown,
            format!(
                "{}: Salesforce refuses the request as too long (HTTP {}) even with a {budget}-byte \
                 query URL; the request headers alone are too large",
                t.object, e.status
            ),
        ));
    }
    let status = e.status.to_string();
    let shown = smaller.to_string();
    sf.log(
        Level::Info,
        "request too long; planning smaller field chunks",
        &[
            ("object", &t.object),
            ("status", &status),
            ("budget", &shown),
        ],
    );
    cp.url_budget = u32::try_from(smaller).ok();
    let w = cp.win.as_mut().expect("window");
    (w.next, w.next_at) = (None, None);
    Ok(())
}

/// Salesforce found the query too complicated (formula-heavy objects with every field
/// selected): halve the fields per query, so the chunk machinery splits the select list.
fn fewer_fields(
    sf: &mut Sf,
    t: &Target,
    cp: &mut Checkpoint,
    selected: usize,
) -> Result<(), Failure> {
    let current = cp.max_fields.map_or(selected, |m| m as usize);
    let fewer = current / 2;
    // Id, the cursor and the keys lead every chunk; below that nothing is left to split.
    if fewer <= lead_fields(t).len() + 1 {
        return Err(fail(
            FailureKind::Unknown,
            format!(
                "{}: Salesforce finds the query too complicated even with {current} fields per \
                 query (QUERY_TOO_COMPLICATED)",
                t.object
            ),
        ));
    }
    let shown = fewer.to_string();
    sf.log(
        Level::Info,
        "query too complicated; splitting the fields into smaller chunks",
        &[("object", &t.object), ("max_fields", &shown)],
    );
    cp.max_fields = u32::try_from(fewer).ok();
    let w = cp.win.as_mut().expect("window");
    (w.next, w.next_at) = (None, None);
    Ok(())
}

/// Keys (`KnowledgeArticleId/Language`) among `recs` that still have an online version.
fn online_keys(sf: &mut Sf, t: &Target, recs: &[&Head]) -> Result<Vec<String>, Failure> {
    let mut ids: Vec<String> = recs
        .iter()
        .filter_map(|v| v.article.as_deref().map(soql::string_literal))
        .collect();
    ids.sort();
    ids.dedup();
    let mut keys = Vec::new();
    for chunk in ids.chunks(200) {
        let q = format!(
            "SELECT Id, KnowledgeArticleId, Language FROM {} WHERE PublishStatus = 'Online' AND KnowledgeArticleId IN ({})",
            t.object,
            chunk.join(", ")
        );
        read_all(sf, t, false, &q, |raw| {
            let v = Head::parse(raw.get())
                .map_err(|e| fail(FailureKind::Unknown, format!("unreadable record: {e}")))?;
            keys.extend(t.key_of(&v));
            Ok(())
        })?;
    }
    Ok(keys)
}
