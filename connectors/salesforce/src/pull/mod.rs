//! One bounded page of one stream: the incremental sync algorithm.
//!
//! A call either continues the window in the checkpoint or opens a new one: re-describe (with
//! `If-Modified-Since`), take `hi` from the server's `Date` minus the lag, capped by
//! `latestDateCovered`, and read `(lo - overlap, hi]` ordered by `(cursor, Id)`.
//!
//! - `query`: the REST query of a pass, page by page.
//! - `any_type`: REST's typed `anyType` values stored as the text Bulk gives.
//! - `junction_ids`: `junctionidlist` values stored as arrays of Ids, Bulk's joined text split.
//! - `chunks`: field chunks merged by Id, for objects too wide for one query URL.
//! - `backfill`: a Bulk API 2.0 job instead, for windows over the `bulk-threshold`.
//! - `deleted`: `/sobjects/X/deleted` for the window.
//! - `reconcile`: stored keys checked by Id, for hard deletes the delete log forgot.
//! - `formulas`: formula fields read again on a schedule, as merge rows.

mod any_type;
mod backfill;
mod chunks;
mod deleted;
mod formulas;
mod head;
pub(crate) mod junction_ids;
mod query;
mod reconcile;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::client::Sf;
use crate::cursor::{Checkpoint, Pass, Window};
use crate::describe;
use crate::dt;
use crate::errors::{self, SfError};
use crate::settings::{self, Cap, Normalized, PullBy, Purpose};
use crate::soql;
use sluice_connector_sdk::http::Host;
use sluice_connector_sdk::model::{
    Failure, FailureKind, Level, Operation, Page, PullRequest, Row, Session, StreamStatus,
};
use sluice_connector_sdk::window::WindowRules;

use backfill::Step;
use head::Head;

/// Most provider calls one pull call makes before returning what it has.
const MAX_CALLS_PER_PAGE: u32 = 12;
/// The most rows one REST query batch holds (Salesforce's batch size), whatever the host
/// would accept.
const REST_BATCH: usize = 2000;
/// The most rows one page holds outside Bulk: a few query batches, so that the batches after
/// the first are asked for while the one before is read (see `query::step`).
const REST_PAGE: usize = 5 * REST_BATCH;
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

/// Objects without `/updated` whose rows commit in their parent's transaction: the parent's
/// `latestDateCovered` bounds their windows too, so a late commit is not passed by.
const PARENT_OF: &[(&str, &str)] = &[("CaseHistory", "Case")];

/// Activities: Salesforce archives closed ones after a year, and `/query` hides archived
/// rows, so only `queryAll` reads them all.
const ACTIVITIES: &[&str] = &["Task", "Event"];

/// What the current stream reads.
struct Target<'n> {
    n: &'n Normalized,
    stream: String,
    object: String,
    cursor: &'static str,
    knowledge: bool,
    /// An activity object (archived rows are visible to `queryAll` only).
    activity: bool,
}

impl Target<'_> {
    /// Whether the main query and its by-Id reads use `queryAll`: in updated-time mode (with
    /// `IsDeleted`), and always for activities (archived rows are live records).
    fn all(&self) -> bool {
        !self.knowledge && (self.n.pull_by == PullBy::UpdatedTime || self.activity)
    }

    /// The stream's key of a record: its Id, or `KnowledgeArticleId/Language`.
    fn key_of(&self, rec: &Head) -> Option<String> {
        if self.knowledge {
            Some(format!(
                "{}/{}",
                rec.article.as_ref()?,
                rec.language.as_ref()?
            ))
        } else {
            rec.id.clone()
        }
    }
}

fn fail(kind: FailureKind, msg: impl Into<String>) -> Failure {
    Failure::new(kind, msg)
}

/// Reads the next page of `request.stream`.
pub fn pull(env: &mut dyn Host, session: &Session, request: &PullRequest) -> Result<Page, Failure> {
    let n = settings::validate(&session.settings, &session.host, Purpose::Run).map_err(|es| {
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
    let instance = crate::client::instance_url(session)?;
    let mut sf = Sf::new(env, instance, &n.api_version, Some(n.budget_percent));
    let max = request.max_records.max(1) as usize;
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
        activity: ACTIVITIES.contains(&stream),
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
    let mut rows = Vec::new();
    let start_calls = sf.calls;
    loop {
        // Taken afresh each step: a step can describe the object again.
        let desc = cp
            .desc
            .clone()
            .ok_or_else(|| fail(FailureKind::Unknown, "no describe"))?;
        let Some(win) = cp.win.as_ref() else {
            return Ok(Outcome::Rows(rows, StreamStatus::Complete));
        };
        let Some(pass) = win.passes.first().copied() else {
            let hi = win.hi;
            cp.complete_window(hi, i64::from(n.overlap_seconds) * 1000);
            return Ok(Outcome::Rows(rows, StreamStatus::Complete));
        };
        // A Bulk chunk is one API call and one page: never two chunks in one page, nor a
        // chunk after rows of another step.
        let bulk = pass == Pass::Main && win.bulk.is_some();
        let page_max = if bulk {
            max.min(n.bulk_chunk_records as usize)
        } else {
            max.min(REST_PAGE)
        };
        if rows.len() >= page_max
            || (bulk && !rows.is_empty())
            || sf.calls - start_calls >= MAX_CALLS_PER_PAGE
        {
            return Ok(Outcome::Rows(rows, StreamStatus::Partial));
        }
        let room = page_max - rows.len();
        if pass == Pass::Deleted {
            deleted::step(sf, &t, cp, room, &mut rows)?;
        } else if pass == Pass::Reconcile {
            reconcile::step(sf, &t, cp, room, &mut rows)?;
        } else if pass == Pass::Formulas {
            formulas::step(sf, &t, &desc, cp, room, &mut rows)?;
        } else if bulk {
            if backfill::step(sf, &t, cp, room, &mut rows)? == Step::Wait {
                // The job is still running: hand back what there is; the host calls again.
                return Ok(Outcome::Rows(rows, StreamStatus::Partial));
            }
        } else {
            // Room for this step's call and one started ahead of its turn.
            let ahead = sf.calls - start_calls + 2 < MAX_CALLS_PER_PAGE;
            query::step(sf, &t, &desc, pass, cp, (room, ahead), &mut rows)?;
        }
    }
}

/// Times a side read starts over after its query locator failed.
const SIDE_READ_RESTARTS: u32 = 2;

/// Why a side read failed.
enum ReadError {
    /// Salesforce refused a request; the caller may act on the answer.
    Refused {
        /// Salesforce's answer.
        error: SfError,
        /// The object being read.
        object: String,
    },
    /// Anything else, already classified.
    Failed(Failure),
}

impl From<ReadError> for Failure {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Refused { error, object } => errors::classify(&error, Some(&object)),
            ReadError::Failed(f) => f,
        }
    }
}

impl From<Failure> for ReadError {
    fn from(f: Failure) -> Self {
        ReadError::Failed(f)
    }
}

/// Whether a failed locator request was the locator's own refusal (expired, dropped, its
/// session ended: 400, 401, 404, ...), not a limit or an outage that a fresh query would meet
/// as well.
fn locator_refused(e: &SfError) -> bool {
    let limited = e.is("REQUEST_LIMIT_EXCEEDED") || e.is("RATE_LIMIT_EXCEEDED");
    e.preset.is_none() && !limited && !matches!(e.status, 420 | 429 | 500..=599)
}

/// Whether Salesforce refused a request for its length: the URL (414), or the URL and the
/// headers together (431).
fn too_long(e: &SfError) -> bool {
    matches!(e.status, 414 | 431)
}

/// Runs `soql` (`queryAll` when `all`) to the last page, passing every record to `each`.
/// For small side reads (by Id, knowledge keys), not for the window's main query. A failed
/// locator starts the read over, so `each` must tolerate seeing a record twice.
fn read_all(
    sf: &mut Sf,
    t: &Target,
    all: bool,
    soql: &str,
    mut each: impl FnMut(&RawValue) -> Result<(), Failure>,
) -> Result<(), ReadError> {
    let first = soql::query_url(&sf.base, &sf.version, all, soql);
    let mut next = Some(first.clone());
    let mut restarts = 0;
    while let Some(url) = next.take() {
        let resp = match sf.get(&url, &[]) {
            Ok(r) => r,
            Err(e) if url != first && restarts < SIDE_READ_RESTARTS && locator_refused(&e) => {
                restarts += 1;
                let status = e.status.to_string();
                sf.log(
                    Level::Info,
                    "query locator failed; reading again from the start",
                    &[
                        ("object", &t.object),
                        ("status", &status),
                        ("code", &e.code),
                    ],
                );
                next = Some(first.clone());
                continue;
            }
            Err(error) => {
                return Err(ReadError::Refused {
                    error,
                    object: t.object.clone(),
                });
            }
        };
        let page: QueryPage = serde_json::from_slice(&resp.body).map_err(|e| {
            fail(
                FailureKind::Unknown,
                format!("unreadable query page for {}: {e}", t.object),
            )
        })?;
        for raw in page.records {
            each(raw)?;
        }
        if !page.done {
            next = page.next;
        }
    }
    Ok(())
}

/// The parts of a record the algorithm reads.
struct Rec {
    /// Cursor value, UTC millis.
    c: i64,
    /// Record Id.
    id: String,
    /// The cursor as Salesforce wrote it.
    cursor_raw: String,
}

fn read_rec(t: &Target, v: &Head) -> Result<Rec, Failure> {
    let id = v.id.clone().unwrap_or_default();
    let cursor_raw = v.cursor(t.cursor).unwrap_or_default().to_string();
    let Some(c) = dt::parse_millis(&cursor_raw) else {
        return Err(fail(
            FailureKind::Unknown,
            format!(
                "{} {id} has an unreadable {}: `{cursor_raw}`",
                t.object, t.cursor
            ),
        ));
    };
    Ok(Rec { c, id, cursor_raw })
}

/// The row of a record read by `pass`; None when an archived knowledge version's key is still
/// online (that key is not deleted).
fn row_of(
    t: &Target,
    pass: Pass,
    v: &Head,
    rec: &Rec,
    json: Vec<u8>,
    online: &[String],
) -> Result<Option<Row>, Failure> {
    let Some(key) = t.key_of(v) else {
        return Err(fail(
            FailureKind::Unknown,
            format!("{} record without key fields", t.object),
        ));
    };
    let deleted = v.is_deleted;
    let op = match pass {
        Pass::Archived if online.contains(&key) => return Ok(None),
        Pass::Archived => Operation::Delete,
        _ if deleted => Operation::Delete,
        _ => Operation::Upsert,
    };
    Ok(Some(Row {
        key,
        op,
        cursor: rec.cursor_raw.clone(),
        json,
    }))
}

/// Whether a delivered `(cursor, Id)` must be remembered to drop it from the next overlap.
fn keep_seen(t: &Target, cp: &Checkpoint, win: &Window, c: i64) -> bool {
    cp.mark
        .must_remember(win.hi, i64::from(t.n.overlap_seconds) * 1000, c)
}

/// The WHERE conditions of `pass` over the current query's range; `pos` adds the keyset
/// resume position.
fn conditions(t: &Target, pass: Pass, win: &Window, pos: bool) -> Vec<String> {
    let c = t.cursor;
    let mut conds = Vec::new();
    match pass {
        Pass::Archived => conds.push("PublishStatus = 'Archived'".to_string()),
        Pass::Online => conds.push("PublishStatus = 'Online'".to_string()),
        _ => {}
    }
    if let Some(lang) = &t.n.language {
        conds.push(format!("Language = {}", soql::string_literal(lang)));
    }
    if t.all() && t.n.pull_by != PullBy::UpdatedTime {
        // `queryAll` only for archived activities: the recycle bin stays out.
        conds.push("IsDeleted = false".to_string());
    }
    if let Some(l) = win.lower() {
        conds.push(format!("{c} > {}", soql::datetime_literal(l)));
    }
    conds.push(format!("{c} <= {}", soql::datetime_literal(win.upper())));
    if let Some(p) = win.pos.as_ref().filter(|_| pos) {
        let lit = soql::datetime_literal(p.c);
        conds.push(format!(
            "({c} > {lit} OR ({c} = {lit} AND Id > {}))",
            soql::string_literal(&p.id)
        ));
    }
    conds
}

/// The fields every query of the stream leads with: Id, the cursor, and the keys.
fn lead_fields(t: &Target) -> Vec<&'static str> {
    let c = t.cursor;
    if t.knowledge {
        vec![c, "KnowledgeArticleId", "Language", "PublishStatus"]
    } else if t.n.pull_by == PullBy::UpdatedTime {
        vec![c, "IsDeleted"]
    } else {
        vec![c]
    }
}

/// The org's `__kav` object, from the global describe.
pub(crate) fn find_kav(sf: &mut Sf) -> Result<Option<String>, Failure> {
    let url = sf.data_url("/sobjects/");
    let resp = sf
        .get(&url, &[])
        .map_err(|e| errors::classify(&e, Some("Knowledge")))?;
    Ok(describe::find_kav(&resp.body))
}

/// A field the cached describe lists is refused (`INVALID_FIELD`: deleted, or hidden from the
/// user by field-level security, which does not move the describe's `Last-Modified`): describe
/// again without `If-Modified-Since` and read the window again from its start. A field refused
/// again on that fresh describe fails the stream instead of looping.
fn redescribe(sf: &mut Sf, t: &Target, cp: &mut Checkpoint, e: &SfError) -> Result<(), Failure> {
    if cp.win.as_ref().is_some_and(|w| w.redescribed) {
        return Err(fail(
            FailureKind::Unknown,
            format!(
                "{}: Salesforce refuses a field its own describe lists ({}: {}); check the \
                 integration user's field-level security",
                t.object, e.code, e.message
            ),
        ));
    }
    sf.log(
        Level::Warn,
        "a field is gone or hidden; describing again and re-reading the window",
        &[("object", &t.object), ("error", &e.message)],
    );
    if let Some(d) = cp.desc.as_mut() {
        d.last_modified = None;
    }
    cp.win = None;
    if let Some(skip) = open_window(sf, t, cp)? {
        return Err(fail(FailureKind::Unknown, skip));
    }
    if let Some(w) = cp.win.as_mut() {
        w.redescribed = true;
    }
    Ok(())
}

/// Re-describes, bounds the window by server time and stores it in `cp.win`. Returns a skip
/// reason when an optional object does not exist; leaves `cp.win` empty when there is
/// nothing new.
fn open_window(sf: &mut Sf, t: &Target, cp: &mut Checkpoint) -> Result<Option<String>, Failure> {
    let url = sf.data_url(&format!("/sobjects/{}/describe/", t.object));
    let mut headers = Vec::new();
    let cached = cp.desc.clone().filter(|d| d.object == t.object);
    if let Some(lm) = cached.as_ref().and_then(|d| d.last_modified.clone()) {
        headers.push(("If-Modified-Since", lm));
    }
    let resp = match sf.get(&url, &headers) {
        Ok(r) => r,
        // An optional object the org may lack is skipped; a required one the user cannot
        // see fails the stream, naming the object and the access to grant, as Test
        // Connection does: Salesforce answers "absent" and "not readable" alike.
        Err(e) if describe::is_missing(&e) && describe::is_optional(&t.object) => {
            return Ok(Some(format!(
                "{} is unavailable: {}, or the user cannot read it ({})",
                t.object,
                describe::optional_reason(&t.object),
                e.message
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
    let rules = WindowRules {
        lag_ms: i64::from(t.n.lag_seconds) * 1000,
        overlap_ms: i64::from(t.n.overlap_seconds) * 1000,
        start_ms: t.n.start_millis,
    };
    let mut covered = None;
    let replicated = desc.replicateable && REPLICATED.contains(&t.object.as_str());
    let parent = PARENT_OF
        .iter()
        .find(|(child, _)| *child == t.object)
        .map(|(_, parent)| *parent);
    // latestDateCovered accounts for long-running transactions that commit late, in either
    // pull mode; an object without `/updated` takes its parent's.
    let probe = if replicated {
        Some(t.object.as_str())
    } else {
        parent
    };
    if let Some(probe) = probe {
        let start = dt::format_soql((server - UPDATED_PROBE_MS) / 60_000 * 60_000);
        let url = sf.data_url(&format!(
            "/sobjects/{}/updated/?start={}&end={}",
            probe,
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
                    covered = Some(ldc);
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
    let Some(bounds) = cp.mark.open(&rules, rules.upper(server, covered)) else {
        return Ok(None);
    };
    let (from, hi) = (bounds.from, bounds.hi);
    let mut passes = if t.knowledge {
        vec![Pass::Archived, Pass::Online]
    } else {
        vec![Pass::Main]
    };
    if t.n.emits_deletes(&t.stream)
        && !t.knowledge
        && replicated
        && cp
            .mark
            .lo
            .is_some_and(|lo| server - lo < DELETED_RETENTION_MS)
    {
        passes.push(Pass::Deleted);
    }
    if reconcile::due(t, cp, server, DELETED_RETENTION_MS) {
        passes.push(Pass::Reconcile);
    }
    if formulas::due(t, cp, server) {
        passes.push(Pass::Formulas);
    }
    let mut win = Window {
        from,
        hi,
        passes,
        done_to: None,
        upper: None,
        pos: None,
        next: None,
        next_at: None,
        del_done: 0,
        checked_to: None,
        bulk: None,
        redescribed: false,
    };
    if backfill::worth_trying(t, cp.mark.lo, &win) {
        win.bulk = backfill::start(sf, t, &desc, &win)?;
    }
    cp.win = Some(win);
    Ok(None)
}
