//! One bounded page of one stream: the incremental algorithm of `peers-and-sync.md` §3.
//!
//! A call either continues the window in the checkpoint or opens a new one: re-describe (with
//! `If-Modified-Since`), take `hi` from the server's `Date` minus the lag, capped by
//! `latestDateCovered`, and read `(lo - overlap, hi]` ordered by `(cursor, Id)`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::client::Sf;
use crate::cursor::{Checkpoint, Pass, Pos, Window};
use crate::describe::{self, Describe};
use crate::errors;
use crate::model::{
    Failure, FailureKind, Level, Operation, Page, PullBy, PullRequest, Row, Session, StreamStatus,
};
use crate::settings::{self, Cap, Normalized, Purpose};
use crate::soql;
use crate::{dt, http::Env};

/// Most provider calls one pull call makes before returning what it has.
const MAX_CALLS_PER_PAGE: u32 = 12;
/// `/deleted` keeps about 15 days; stay inside it.
const DELETED_RETENTION_MS: i64 = 14 * 86_400_000;
/// `/updated` accepts a start at most 30 days back; the cap needs only a short range.
const UPDATED_PROBE_MS: i64 = 10 * 60_000;
/// Objects whose `/updated` and `/deleted` resources are used.
const REPLICATED: &[&str] = &[
    "Case",
    "CaseComment",
    "EmailMessage",
    "Account",
    "Contact",
    "Lead",
    "Opportunity",
    "User",
    "Task",
];

#[derive(Deserialize)]
struct QueryPage<'a> {
    #[serde(default)]
    done: bool,
    #[serde(rename = "nextRecordsUrl", default)]
    next: Option<String>,
    #[serde(borrow, default)]
    records: Vec<&'a RawValue>,
}

/// What the current stream reads.
struct Target<'n> {
    n: &'n Normalized,
    stream: String,
    object: String,
    cursor: &'static str,
    knowledge: bool,
}

impl Target<'_> {
    fn key_of(&self, rec: &serde_json::Value) -> Option<String> {
        let s = |k: &str| rec.get(k).and_then(|v| v.as_str()).map(str::to_string);
        if self.knowledge {
            Some(format!("{}/{}", s("KnowledgeArticleId")?, s("Language")?))
        } else {
            s("Id")
        }
    }
}

fn fail(kind: FailureKind, msg: impl Into<String>) -> Failure {
    Failure::new(kind, msg)
}

/// Reads the next page of `request.stream`.
pub fn pull(env: &mut dyn Env, session: &Session, request: &PullRequest) -> Result<Page, Failure> {
    let n =
        settings::validate(&session.settings, &session.host, Purpose::Configure).map_err(|es| {
            let list: Vec<String> = es
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            fail(FailureKind::Misconfigured, list.join("; "))
        })?;
    if !n.objects.iter().any(|o| o == &request.stream) {
        return Err(fail(
            FailureKind::Misconfigured,
            format!(
                "stream `{}` is not configured; streams: {}",
                request.stream,
                n.objects.join(", ")
            ),
        ));
    }
    let mut cp = Checkpoint::parse(request.checkpoint.as_deref())
        .map_err(|e| fail(FailureKind::Unknown, e))?;
    let mut sf = Sf::new(
        env,
        &session.grant.instance_url,
        &n.api_version,
        Some(n.budget_percent),
    );
    let max = request.max_records.clamp(1, 2000) as usize;
    let res = run(&mut sf, &n, &request.stream, &mut cp, max);
    let api_calls = sf.calls;
    let api_usage = sf.usage;
    match res {
        Ok(Outcome::Rows(rows, status)) => Ok(Page {
            rows,
            checkpoint: Some(cp.to_json()),
            status,
            api_usage,
            api_calls,
        }),
        Ok(Outcome::Skipped(reason)) => {
            sf.log(
                Level::Warn,
                "stream skipped",
                &[("stream", &request.stream), ("reason", &reason)],
            );
            Ok(Page {
                rows: Vec::new(),
                checkpoint: request.checkpoint.clone(),
                status: StreamStatus::Skipped(reason),
                api_usage,
                api_calls,
            })
        }
        Err(f) => Err(f),
    }
}

enum Outcome {
    Rows(Vec<Row>, StreamStatus),
    Skipped(String),
}

fn run(
    sf: &mut Sf,
    n: &Normalized,
    stream: &str,
    cp: &mut Checkpoint,
    max: usize,
) -> Result<Outcome, Failure> {
    let knowledge = n.cap == Cap::Content;
    let mut t = Target {
        n,
        stream: stream.to_string(),
        object: stream.to_string(),
        cursor: n.cursor_field(stream),
        knowledge,
    };
    if knowledge {
        t.object = match cp.desc.as_ref().map(|d| d.object.clone()) {
            Some(o) if cp.win.is_some() => o,
            _ => match find_kav(sf)? {
                Some(o) => o,
                None => {
                    return Ok(Outcome::Skipped(
                        "Knowledge is not enabled in this org: no __kav object is visible to \
                         the user"
                            .into(),
                    ));
                }
            },
        };
    }
    if cp.win.is_none() {
        match open_window(sf, &t, cp)? {
            Some(skip) => return Ok(Outcome::Skipped(skip)),
            None if cp.win.is_none() => {
                return Ok(Outcome::Rows(Vec::new(), StreamStatus::Complete));
            }
            None => {}
        }
    }
    let desc = cp
        .desc
        .clone()
        .ok_or_else(|| fail(FailureKind::Unknown, "no describe"))?;
    let mut rows = Vec::new();
    let start_calls = sf.calls;
    loop {
        let Some(win) = cp.win.as_ref() else {
            return Ok(Outcome::Rows(rows, StreamStatus::Complete));
        };
        let Some(pass) = win.passes.first().copied() else {
            let hi = win.hi;
            cp.complete_window(hi, i64::from(n.overlap_seconds) * 1000);
            return Ok(Outcome::Rows(rows, StreamStatus::Complete));
        };
        if rows.len() >= max || sf.calls - start_calls >= MAX_CALLS_PER_PAGE {
            return Ok(Outcome::Rows(rows, StreamStatus::Partial));
        }
        let room = max - rows.len();
        if pass == Pass::Deleted {
            deleted_step(sf, &t, cp, room, &mut rows)?;
        } else {
            query_step(sf, &t, &desc, pass, cp, room, &mut rows)?;
        }
    }
}

fn find_kav(sf: &mut Sf) -> Result<Option<String>, Failure> {
    let url = sf.data_url("/sobjects/");
    let resp = sf
        .get(&url, &[])
        .map_err(|e| errors::classify(&e, Some("Knowledge")))?;
    Ok(describe::find_kav(&resp.body))
}

/// Re-describes, bounds the window by server time and stores it in `cp.win`. Returns a skip
/// reason when the object does not exist; leaves `cp.win` empty when there is nothing new.
fn open_window(sf: &mut Sf, t: &Target, cp: &mut Checkpoint) -> Result<Option<String>, Failure> {
    let url = sf.data_url(&format!("/sobjects/{}/describe/", t.object));
    let mut headers = Vec::new();
    let cached = cp.desc.clone().filter(|d| d.object == t.object);
    if let Some(lm) = cached.as_ref().and_then(|d| d.last_modified.clone()) {
        headers.push(("If-Modified-Since", lm));
    }
    let resp = match sf.get(&url, &headers) {
        Ok(r) => r,
        Err(e) if e.status == 404 || e.is("NOT_FOUND") || e.is("INVALID_TYPE") => {
            return Ok(Some(format!(
                "{} does not exist in this org or is not visible to the user ({})",
                t.object, e.message
            )));
        }
        Err(e) => return Err(errors::classify(&e, Some(&t.object))),
    };
    let desc = match (resp.status, cached) {
        (304, Some(d)) => d,
        _ => describe::parse(&resp.body, resp.header("last-modified").map(str::to_string))
            .map_err(|e| fail(FailureKind::Unknown, e))?,
    };
    if !desc.has(t.cursor) || !desc.has("Id") {
        return Ok(Some(format!(
            "{} has no {} field to pull by",
            t.object, t.cursor
        )));
    }
    let server = sf.server_time.ok_or_else(|| {
        fail(
            FailureKind::Unknown,
            "Salesforce sent no Date header, so the window cannot be bounded by server time",
        )
    })?;
    let mut hi = server - i64::from(t.n.lag_seconds) * 1000;
    let replicated = desc.replicateable && REPLICATED.contains(&t.object.as_str());
    if replicated && t.n.pull_by == PullBy::UpdatedTime {
        // latestDateCovered accounts for long-running transactions that commit late.
        let start = dt::format_soql((server - UPDATED_PROBE_MS) / 60_000 * 60_000);
        let url = sf.data_url(&format!(
            "/sobjects/{}/updated/?start={}&end={}",
            t.object,
            soql::encode(&start),
            soql::encode(&dt::format_soql(server))
        ));
        match sf.get(&url, &[]) {
            Ok(r) => {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                if let Some(ldc) = v
                    .get("latestDateCovered")
                    .and_then(|x| x.as_str())
                    .and_then(dt::parse_millis)
                {
                    hi = hi.min(ldc);
                }
            }
            Err(e) if e.preset.is_some() || e.status == 401 || e.is("REQUEST_LIMIT_EXCEEDED") => {
                return Err(errors::classify(&e, Some(&t.object)));
            }
            Err(e) => {
                let msg = e.message.clone();
                sf.log(
                    Level::Warn,
                    "getUpdated failed; using the lag only",
                    &[("object", &t.object), ("error", &msg)],
                );
            }
        }
    }
    cp.desc = Some(desc.clone());
    let start = t.n.start_millis.map(|s| s - 1);
    let from = match cp.lo {
        Some(lo) => Some(lo - i64::from(t.n.overlap_seconds) * 1000),
        None => start,
    }
    .map(|f| f.max(start.unwrap_or(i64::MIN)));
    if cp.lo.is_some_and(|lo| hi <= lo) {
        return Ok(None);
    }
    let mut passes = if t.knowledge {
        vec![Pass::Archived, Pass::Online]
    } else {
        vec![Pass::Main]
    };
    if t.n.emits_deletes(&t.stream)
        && !t.knowledge
        && replicated
        && cp.lo.is_some_and(|lo| server - lo < DELETED_RETENTION_MS)
    {
        passes.push(Pass::Deleted);
    }
    cp.win = Some(Window {
        from,
        hi,
        passes,
        done_to: None,
        upper: None,
        pos: None,
        next: None,
        del_done: 0,
    });
    Ok(None)
}

/// The SOQL of the current query of `pass`.
fn build_query(t: &Target, desc: &Describe, pass: Pass, win: &Window) -> String {
    let c = t.cursor;
    let lead: Vec<&str> = if t.knowledge {
        vec![c, "KnowledgeArticleId", "Language", "PublishStatus"]
    } else if t.n.pull_by == PullBy::UpdatedTime {
        vec![c, "IsDeleted"]
    } else {
        vec![c]
    };
    let fields = desc.select_list(&lead);
    let mut conds = Vec::new();
    match pass {
        Pass::Archived => conds.push("PublishStatus = 'Archived'".to_string()),
        Pass::Online => conds.push("PublishStatus = 'Online'".to_string()),
        _ => {}
    }
    if let Some(lang) = &t.n.language {
        conds.push(format!("Language = {}", soql::string_literal(lang)));
    }
    if let Some(l) = win.lower() {
        conds.push(format!("{c} > {}", soql::datetime_literal(l)));
    }
    conds.push(format!("{c} <= {}", soql::datetime_literal(win.upper())));
    if let Some(p) = &win.pos {
        let lit = soql::datetime_literal(p.c);
        conds.push(format!(
            "({c} > {lit} OR ({c} = {lit} AND Id > {}))",
            soql::string_literal(&p.id)
        ));
    }
    format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {c} ASC, Id ASC",
        fields.join(", "),
        t.object,
        conds.join(" AND ")
    )
}

/// Reads one page of the current query and appends at most `room` rows.
fn query_step(
    sf: &mut Sf,
    t: &Target,
    desc: &Describe,
    pass: Pass,
    cp: &mut Checkpoint,
    room: usize,
    rows: &mut Vec<Row>,
) -> Result<(), Failure> {
    let win = cp.win.as_ref().expect("window").clone();
    let all = t.n.pull_by == PullBy::UpdatedTime && !t.knowledge;
    let batch = if pass == Pass::Archived {
        200
    } else {
        room.clamp(200, 2000)
    };
    let batch_hdr = [("Sforce-Query-Options", format!("batchSize={batch}"))];
    let (resp, from_locator) = match &win.next {
        Some(next) => (sf.get(next, &batch_hdr), true),
        None => {
            let q = build_query(t, desc, pass, &win);
            let url = soql::query_url(&sf.base, &sf.version, all, &q);
            if url.len() > soql::MAX_URL {
                // Field chunking merged by Id is not implemented yet; fail loudly, never drop.
                return Err(fail(
                    FailureKind::Unknown,
                    format!(
                        "{} has too many fields for one query URL ({} bytes > {})",
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
        Err(e) if from_locator && (e.is("INVALID_QUERY_LOCATOR") || e.status == 404) => {
            // The locator is only a hint: re-query from the last delivered (cursor, Id).
            let w = cp.win.as_mut().expect("window");
            w.next = None;
            sf.log(
                Level::Info,
                "query locator invalid; re-querying from the position",
                &[("object", &t.object)],
            );
            return Ok(());
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
    let mut parsed = Vec::with_capacity(page.records.len());
    for raw in &page.records {
        let v: serde_json::Value = serde_json::from_str(raw.get())
            .map_err(|e| fail(FailureKind::Unknown, format!("unreadable record: {e}")))?;
        parsed.push((raw, v));
    }
    // Archived knowledge versions delete their key only if no version is online any more.
    let online = if pass == Pass::Archived && !parsed.is_empty() {
        online_keys(sf, t, &parsed.iter().map(|(_, v)| v).collect::<Vec<_>>())?
    } else {
        Vec::new()
    };
    let overlap_floor = win.hi - i64::from(t.n.overlap_seconds) * 1000;
    let w = cp.win.as_mut().expect("window");
    let mut consumed_all = true;
    let mut pending_seen = Vec::new();
    let limit = rows.len() + room;
    for (raw, v) in &parsed {
        if rows.len() >= limit {
            consumed_all = false;
            break;
        }
        let id = v
            .get("Id")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string();
        let cursor_raw = v
            .get(t.cursor)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string();
        let Some(c) = dt::parse_millis(&cursor_raw) else {
            return Err(fail(
                FailureKind::Unknown,
                format!(
                    "{} {id} has an unreadable {}: `{cursor_raw}`",
                    t.object, t.cursor
                ),
            ));
        };
        w.pos = Some(Pos { c, id: id.clone() });
        if cp.seen.get(&c).is_some_and(|ids| ids.contains(&id)) {
            continue;
        }
        let Some(key) = t.key_of(v) else {
            return Err(fail(
                FailureKind::Unknown,
                format!("{} record without key fields", t.object),
            ));
        };
        let deleted = v
            .get("IsDeleted")
            .and_then(|x| x.as_bool())
            .unwrap_or(false);
        let op = match pass {
            Pass::Archived if online.contains(&key) => continue,
            Pass::Archived => Operation::Delete,
            _ if deleted => Operation::Delete,
            _ => Operation::Upsert,
        };
        rows.push(Row {
            key,
            op,
            cursor: cursor_raw,
            json: raw.get().as_bytes().to_vec(),
        });
        if c > overlap_floor || cp.lo.is_some_and(|lo| c <= lo) {
            pending_seen.push((c, id));
        }
    }
    let w = cp.win.as_mut().expect("window");
    if consumed_all {
        if page.done || page.next.is_none() {
            w.finish_query();
        } else {
            w.next = page.next.clone();
        }
    } else {
        // Stopped mid-page: the locator would skip the rest, so resume from the position.
        w.next = None;
    }
    for (c, id) in pending_seen {
        cp.remember(c, &id);
    }
    Ok(())
}

/// Keys (`KnowledgeArticleId/Language`) among `recs` that still have an online version.
fn online_keys(
    sf: &mut Sf,
    t: &Target,
    recs: &[&serde_json::Value],
) -> Result<Vec<String>, Failure> {
    let mut ids: Vec<String> = recs
        .iter()
        .filter_map(|v| {
            v.get("KnowledgeArticleId")?
                .as_str()
                .map(soql::string_literal)
        })
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
        let url = soql::query_url(&sf.base, &sf.version, false, &q);
        let mut next = Some(url);
        while let Some(u) = next.take() {
            let resp = sf
                .get(&u, &[])
                .map_err(|e| errors::classify(&e, Some(&t.object)))?;
            let page: QueryPage = serde_json::from_slice(&resp.body)
                .map_err(|e| fail(FailureKind::Unknown, format!("unreadable query page: {e}")))?;
            for raw in page.records {
                let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap_or_default();
                if let Some(k) = t.key_of(&v) {
                    keys.push(k);
                }
            }
            if !page.done {
                next = page.next;
            }
        }
    }
    Ok(keys)
}

/// Delete rows from `/sobjects/X/deleted` for the window (hard deletes included).
fn deleted_step(
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
