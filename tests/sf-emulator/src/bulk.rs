//! Bulk API 2.0 query jobs (spec §5): create, poll (UploadComplete → InProgress →
//! JobComplete), CSV results in chunks with `Sforce-Locator`, abort and delete.
//!
//! Results are a snapshot taken when the job completes and kept seven days (Bulk API 2.0
//! "Get Results for a Query Job"). Rows are rendered lazily, as of the completion time, until
//! the first write after it: every store write first freezes the completed jobs' remaining
//! rows ([`freeze_completed`]), so later commits never leak into a job's pages.

use std::sync::Arc;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde_json::{Value as Json, json};

use crate::data::source::StoreSource;
use crate::oauth::json_response;
use crate::rest::query::{run, soql_error};
use crate::rest::{Ctx, api_error, not_found_error};
use crate::soql::{self, Query, ResultSet};
use crate::{dt, ids, oauth};

/// One query job.
pub struct Job {
    pub id: String,
    pub operation: String,
    pub object: String,
    pub soql: String,
    pub query: Arc<Query>,
    pub created_ms: i64,
    pub modstamp_ms: i64,
    pub state: &'static str,
    pub polls: u32,
    pub api_version: String,
    pub crlf: bool,
    pub created_by: String,
    pub results: Option<Arc<ResultSet>>,
    /// When the job reached JobComplete (its results' snapshot time).
    pub completed_ms: Option<i64>,
    /// The CSV rows rendered as of `completed_ms`, once a write has followed completion.
    pub frozen: Option<Arc<Frozen>>,
    pub error: Option<String>,
}

/// A completed job's rows rendered once: row `i` is `bytes[ends[i-1]..ends[i]]`.
pub struct Frozen {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Frozen {
    /// How many rows from `range.start` fit in `cap` bytes, at least one, at most the range.
    fn rows_within(&self, range: std::ops::Range<usize>, cap: usize) -> usize {
        let start = if range.start == 0 {
            0
        } else {
            self.ends[range.start - 1]
        };
        let fit = self.ends[range.clone()].partition_point(|&end| end - start <= cap);
        fit.max(1).min(range.len())
    }

    fn rows(&self, range: std::ops::Range<usize>) -> &[u8] {
        let start = if range.start == 0 {
            0
        } else {
            self.ends[range.start - 1]
        };
        let end = if range.end == 0 {
            0
        } else {
            self.ends[range.end - 1]
        };
        &self.bytes[start..end]
    }
}

/// How long Salesforce keeps a completed job's results.
pub const RESULTS_KEPT_MS: i64 = 7 * dt::DAY_MS;

fn csv_options(settings: &crate::Settings, crlf: bool) -> soql::CsvOptions<'_> {
    soql::CsvOptions {
        crlf,
        datetime_z: settings.bulk_datetime_suffix == "Z",
        junction_separator: &settings.junction_id_separator,
    }
}

/// Renders every completed, not yet frozen job's rows as of its completion, so the store
/// can change without changing them. Call it before taking the store's write lock.
pub fn freeze_completed(state: &crate::state::Shared) {
    let settings = state.settings();
    let mut jobs = state.jobs.lock().expect("jobs lock");
    let store = state.store.read().expect("store lock");
    for job in jobs.values_mut() {
        let (Some(rs), Some(at), None) = (&job.results, job.completed_ms, &job.frozen) else {
            continue;
        };
        let src = StoreSource::new(&store, at);
        let opts = csv_options(&settings, job.crlf);
        let mut frozen = Frozen {
            bytes: Vec::new(),
            ends: Vec::with_capacity(rs.len()),
        };
        for i in 0..rs.len() {
            soql::render_csv_rows_with(&job.query, rs, i..i + 1, &src, opts, &mut frozen.bytes);
            frozen.ends.push(frozen.bytes.len());
        }
        job.frozen = Some(Arc::new(frozen));
    }
}

/// Moves every job's times `ms` into the past (a clock jump for the seven-day expiry).
pub fn age_jobs(state: &crate::state::Shared, ms: i64) -> usize {
    let mut jobs = state.jobs.lock().expect("jobs lock");
    for job in jobs.values_mut() {
        job.created_ms -= ms;
        job.modstamp_ms -= ms;
        if let Some(at) = job.completed_ms.as_mut() {
            *at -= ms;
        }
    }
    jobs.len()
}

impl Job {
    fn terminal(&self) -> bool {
        matches!(self.state, "JobComplete" | "Failed" | "Aborted")
    }

    fn json(&self, detailed: bool) -> Json {
        let mut v = json!({
            "id": self.id, "operation": self.operation, "object": self.object,
            "createdById": self.created_by, "createdDate": dt::format_datetime(self.created_ms),
            "systemModstamp": dt::format_datetime(self.modstamp_ms), "state": self.state,
            "concurrencyMode": "Parallel", "contentType": "CSV",
            "apiVersion": self.api_version.parse::<f64>().unwrap_or(62.0),
            "lineEnding": if self.crlf { "CRLF" } else { "LF" }, "columnDelimiter": "COMMA",
        });
        if detailed {
            v["jobType"] = json!("V2Query");
            v["numberRecordsProcessed"] = json!(self.results.as_ref().map_or(0, |r| r.len()));
            v["retries"] = json!(0);
            v["totalProcessingTime"] = json!(if self.terminal() { 42 } else { 0 });
            if let Some(e) = &self.error {
                v["errorMessage"] = json!(e);
            }
        }
        v
    }
}

/// Routes `/jobs/query[/{id}[/results]]`.
pub fn dispatch(ctx: &Ctx, rest: &[&str]) -> Response {
    match (rest, &ctx.method) {
        ([], &Method::POST) => create(ctx),
        ([], &Method::GET) => list(ctx),
        ([id], &Method::GET) => poll(ctx, id),
        ([id], &Method::PATCH) => abort(ctx, id),
        ([id], &Method::DELETE) => delete(ctx, id),
        ([id, "results"], &Method::GET) => results(ctx, id),
        ([] | [_] | [_, "results"], m) => api_error(
            405,
            "METHOD_NOT_ALLOWED",
            &format!("HTTP Method '{m}' not allowed. Allowed are GET,PATCH,DELETE,POST"),
        ),
        _ => not_found_error(),
    }
}

fn create(ctx: &Ctx) -> Response {
    let Ok(body) = serde_json::from_slice::<Json>(&ctx.body) else {
        return api_error(
            400,
            "JSON_PARSER_ERROR",
            "Unable to parse the request body as JSON",
        );
    };
    let s = |k: &str| body.get(k).and_then(Json::as_str);
    let operation = s("operation").unwrap_or("");
    if operation != "query" && operation != "queryAll" {
        return api_error(
            400,
            "INVALIDJOB",
            &format!("Invalid operation: {operation}"),
        );
    }
    let Some(soql_text) = s("query") else {
        return api_error(400, "INVALIDJOB", "The query field is required");
    };
    if s("contentType").is_some_and(|c| c != "CSV") {
        return api_error(400, "INVALIDJOB", "contentType must be CSV");
    }
    if s("columnDelimiter").is_some_and(|c| c != "COMMA") {
        return api_error(
            400,
            "INVALIDJOB",
            "Only the COMMA columnDelimiter is emulated",
        );
    }
    let crlf = match s("lineEnding") {
        None | Some("LF") => false,
        Some("CRLF") => true,
        Some(other) => {
            return api_error(400, "INVALIDJOB", &format!("Invalid lineEnding: {other}"));
        }
    };
    let opts = soql::ParseOptions {
        knowledge_publish_status_rule: ctx.state.settings().knowledge_requires_publish_status,
        now_ms: None,
    };
    let (parsed, json_field) = {
        let store = ctx.state.store.read().expect("store lock");
        let settings = ctx.state.settings();
        let catalog = crate::access::VisibleCatalog {
            inner: &store.schemas,
            settings: &settings,
        };
        let parsed = soql::parse_with(soql_text, &catalog, &opts);
        let json_field = parsed.as_ref().ok().and_then(|q| json_column(&store, q));
        (parsed, json_field)
    };
    let query = match parsed {
        Ok(q) => q,
        Err(e) => return soql_error(&e),
    };
    if let Some(field) = json_field {
        return api_error(
            400,
            "API_ERROR",
            &format!(
                "FeatureNotEnabled: field {}.{field} of type json is not supported by the Bulk API",
                query.object()
            ),
        );
    }
    let refused = ctx.state.settings().bulk_unsupported_objects;
    if refused
        .iter()
        .any(|o| o.eq_ignore_ascii_case(query.object()))
    {
        return api_error(
            400,
            "INVALIDENTITY",
            &format!(
                "Entity '{}' is not supported by the Bulk API.",
                query.object()
            ),
        );
    }
    if let Some(msg) = unsupported(&query, soql_text) {
        return api_error(400, "API_ERROR", msg);
    }
    let now = dt::now_ms();
    let job = Job {
        id: ids::make("750", ctx.state.next_seq()),
        operation: operation.into(),
        object: query.object().to_string(),
        soql: soql_text.into(),
        query: Arc::new(query),
        created_ms: now,
        modstamp_ms: now,
        state: "UploadComplete",
        polls: 0,
        api_version: ctx.version.clone(),
        crlf,
        created_by: oauth::user_id(ctx.session.user),
        results: None,
        completed_ms: None,
        frozen: None,
        error: None,
    };
    let body = job.json(false);
    ctx.state
        .stats
        .lock()
        .expect("stats lock")
        .bulk_jobs_created += 1;
    ctx.state
        .jobs
        .lock()
        .expect("jobs lock")
        .insert(job.id.clone(), job);
    json_response(StatusCode::OK, &body)
}

/// The first selected field of the queried object whose describe type is `json`: Bulk API 2.0
/// does not support such fields.
fn json_column(store: &crate::data::Store, q: &Query) -> Option<String> {
    let def = &store.table(q.object())?.def;
    q.columns
        .iter()
        .filter(|c| c.hops.is_empty())
        .find(|c| {
            def.fields
                .get(c.idx)
                .is_some_and(|f| f.kind == crate::schema::Kind::Json)
        })
        .map(|c| c.name.clone())
}

/// SOQL that Bulk 2.0 refuses (spec §5.1).
fn unsupported(q: &Query, text: &str) -> Option<&'static str> {
    if q.has_compound_fields() {
        return Some("Selecting compound data not supported in Bulk Query");
    }
    if q.has_subqueries() {
        return Some("Parent-to-child relationship queries are not supported in Bulk Query");
    }
    if q.is_count() {
        return Some("Aggregate queries are not supported in Bulk Query");
    }
    if q.offset().is_some() {
        return Some("OFFSET is not supported in Bulk Query");
    }
    let upper = text.to_ascii_uppercase();
    if upper.contains("FIELDS(") || upper.contains("FIELDS (") {
        return Some("FIELDS() is not supported in Bulk Query");
    }
    None
}

fn list(ctx: &Ctx) -> Response {
    let jobs = ctx.state.jobs.lock().expect("jobs lock");
    let mut records: Vec<(i64, Json)> = jobs
        .values()
        .map(|j| (j.created_ms, j.json(false)))
        .collect();
    records.sort_by_key(|(t, _)| *t);
    let records: Vec<Json> = records.into_iter().map(|(_, j)| j).collect();
    json_response(
        StatusCode::OK,
        &json!({"done": true, "records": records, "nextRecordsUrl": null}),
    )
}

/// Each poll advances the job; it completes after `bulk_polls_to_complete` polls.
fn poll(ctx: &Ctx, id: &str) -> Response {
    let needed = ctx.state.settings().bulk_polls_to_complete;
    let (query, include_deleted, soql_text) = {
        let mut jobs = ctx.state.jobs.lock().expect("jobs lock");
        let Some(job) = jobs.get_mut(&ids::to18(id)) else {
            return not_found_error();
        };
        if job.terminal() {
            return json_response(StatusCode::OK, &job.json(true));
        }
        job.polls += 1;
        if job.polls < needed {
            job.state = "InProgress";
            job.modstamp_ms = dt::now_ms();
            return json_response(StatusCode::OK, &job.json(true));
        }
        (
            job.query.clone(),
            job.operation == "queryAll",
            job.soql.clone(),
        )
    };
    // Runs outside the jobs lock: big queries take a while.
    let outcome = run(&ctx.state, &soql_text, include_deleted);
    drop(query);
    let mut jobs = ctx.state.jobs.lock().expect("jobs lock");
    let Some(job) = jobs.get_mut(&ids::to18(id)) else {
        return not_found_error();
    };
    if !job.terminal() {
        match outcome {
            Ok((_, rs)) => {
                job.results = Some(Arc::new(rs));
                job.completed_ms = Some(dt::now_ms());
                job.state = "JobComplete";
            }
            Err(e) => {
                job.error = Some(e.message);
                job.state = "Failed";
            }
        }
        job.modstamp_ms = dt::now_ms();
    }
    json_response(StatusCode::OK, &job.json(true))
}

fn abort(ctx: &Ctx, id: &str) -> Response {
    let body: Json = serde_json::from_slice(&ctx.body).unwrap_or(Json::Null);
    if body.get("state").and_then(Json::as_str) != Some("Aborted") {
        return api_error(
            400,
            "INVALIDJOBSTATE",
            "Only state Aborted can be set on a query job",
        );
    }
    let mut jobs = ctx.state.jobs.lock().expect("jobs lock");
    let Some(job) = jobs.get_mut(&ids::to18(id)) else {
        return not_found_error();
    };
    if job.terminal() {
        return api_error(
            400,
            "INVALIDJOBSTATE",
            &format!("Aborting already {} Job not allowed", job.state),
        );
    }
    job.state = "Aborted";
    job.modstamp_ms = dt::now_ms();
    json_response(StatusCode::OK, &job.json(false))
}

fn delete(ctx: &Ctx, id: &str) -> Response {
    let strict = ctx.state.settings().bulk_delete_requires_terminal;
    let mut jobs = ctx.state.jobs.lock().expect("jobs lock");
    let key = ids::to18(id);
    let Some(job) = jobs.get(&key) else {
        return not_found_error();
    };
    if strict && !job.terminal() {
        return api_error(
            400,
            "INVALIDJOBSTATE",
            "Deleting a job that is not in a terminal state is not allowed; abort it first",
        );
    }
    jobs.remove(&key);
    StatusCode::NO_CONTENT.into_response()
}

fn results(ctx: &Ctx, id: &str) -> Response {
    let (query, rs, crlf, completed_ms, frozen) = {
        let jobs = ctx.state.jobs.lock().expect("jobs lock");
        let Some(job) = jobs.get(&ids::to18(id)) else {
            return not_found_error();
        };
        if job
            .completed_ms
            .is_some_and(|at| dt::now_ms() - at > RESULTS_KEPT_MS)
        {
            return not_found_error();
        }
        if job.api_version != ctx.version {
            return api_error(
                409,
                "INVALIDJOBSTATE",
                &format!(
                    "Results must be requested with API version {}, the version the job was created with",
                    job.api_version
                ),
            );
        }
        match (&job.results, job.state) {
            (Some(rs), "JobComplete") => (
                job.query.clone(),
                rs.clone(),
                job.crlf,
                job.completed_ms.unwrap_or_else(dt::now_ms),
                job.frozen.clone(),
            ),
            _ => {
                let current = match job.state {
                    "InProgress" => "IN_PROGRESS",
                    "UploadComplete" => "UPLOAD_COMPLETE",
                    "Aborted" => "ABORTED",
                    _ => "FAILED",
                };
                return api_error(
                    412,
                    "JOB_NOT_COMPLETE",
                    &format!(
                        "can only download query results of successfully completed bulk job with status: JOB_COMPLETE. Current status: {current}"
                    ),
                );
            }
        }
    };
    let offset = match ctx
        .param("locator")
        .filter(|l| !l.is_empty() && l != "null")
    {
        None => 0,
        Some(loc) => match decode_locator(&loc) {
            Some(o) if o <= rs.len() => o,
            _ => return api_error(400, "INVALID_LOCATOR", "Invalid locator"),
        },
    };
    let settings = ctx.state.settings();
    let max = match ctx.param("maxRecords") {
        None => settings.bulk_default_max_records as usize,
        Some(m) => match m.parse::<usize>() {
            Ok(m) if m > 0 => m,
            _ => {
                return api_error(
                    400,
                    "API_ERROR",
                    &format!("maxRecords must be a positive integer, not {m:?}"),
                );
            }
        },
    };
    let cap = match settings.bulk_max_chunk_bytes {
        0 => usize::MAX,
        b => usize::try_from(b).unwrap_or(usize::MAX),
    };
    let mut end = (offset + max).min(rs.len());
    let mut out = Vec::with_capacity(128 + (end - offset) * 200);
    let opts = csv_options(&settings, crlf);
    soql::render_csv_header_with(&query, opts, &mut out);
    let header_len = out.len();
    if let Some(frozen) = frozen {
        end = offset + frozen.rows_within(offset..end, cap);
        out.extend_from_slice(frozen.rows(offset..end));
    } else {
        // Nothing was written since completion: the store as of then is the snapshot.
        let store = ctx.state.store.read().expect("store lock");
        let src = StoreSource::new(&store, completed_ms);
        if cap == usize::MAX {
            soql::render_csv_rows_with(&query, &rs, offset..end, &src, opts, &mut out);
        } else {
            // Row by row, so the chunk ends at the first row past the byte cap.
            for i in offset..end {
                let before = out.len();
                soql::render_csv_rows_with(&query, &rs, i..i + 1, &src, opts, &mut out);
                if i > offset && out.len() - header_len > cap {
                    out.truncate(before);
                    end = i;
                    break;
                }
            }
        }
    }
    let next = if end < rs.len() {
        STANDARD_NO_PAD.encode(end.to_string())
    } else {
        "null".into()
    };
    let mut resp = (StatusCode::OK, out).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    if let Ok(v) = HeaderValue::from_str(&next) {
        h.insert("Sforce-Locator", v);
    }
    h.insert("Sforce-NumberOfRecords", HeaderValue::from(end - offset));
    resp
}

fn decode_locator(loc: &str) -> Option<usize> {
    let bytes = STANDARD_NO_PAD.decode(loc.trim_end_matches('=')).ok()?;
    String::from_utf8(bytes).ok()?.parse().ok()
}
