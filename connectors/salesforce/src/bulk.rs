//! Bulk API 2.0 query jobs for large backfills, and their CSV results turned into the same
//! record JSON a REST query returns.
//!
//! A job is created when a window opens over more records than the `bulk-threshold` setting.
//! Its id and the `Sforce-Locator` of the next chunk live in the checkpoint, so a pull call
//! reads one chunk and a restart re-reads at most that chunk (locators are stable for the job's
//! life). Bulk refuses some objects and fields; the window then falls back to REST (`json`
//! fields are left out of the job and read through REST by Id instead). Anything
//! else Bulk cannot do (a failed job, expired results) also falls back to REST from the start
//! of the window: records already delivered are upserted again, never lost.

use serde::Deserialize;

use crate::client::Sf;
use crate::describe::Describe;
use crate::errors::SfError;
use sluice_connector_sdk::http::{Method, Request};

/// What a poll of a job said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Queued or running: ask again later.
    Running,
    /// Results can be read.
    Complete,
    /// Failed or aborted, with Salesforce's reason.
    Failed(String),
}

/// One record of a results chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRecord {
    /// The record as REST JSON.
    pub json: String,
    /// The typed values of the columns asked for with [`results`]'s `keep`.
    pub kept: serde_json::Map<String, serde_json::Value>,
}

/// Why a record of a chunk was not taken: the caller's own failure, handed back as is.
pub type SinkResult = Result<(), sluice_connector_sdk::model::Failure>;

/// Whether a create error means "Bulk cannot do this", so REST should do it instead.
pub fn is_refusal(e: &SfError) -> bool {
    e.preset.is_none() && matches!(e.status, 400 | 404 | 405 | 501)
}

/// Creates a query job (`queryAll` when `all`) and returns its id.
pub fn create(sf: &mut Sf, all: bool, soql: &str) -> Result<String, SfError> {
    let url = sf.data_url("/jobs/query");
    let body = serde_json::json!({
        "operation": if all { "queryAll" } else { "query" },
        "query": soql,
        "contentType": "CSV",
        "columnDelimiter": "COMMA",
        "lineEnding": "LF",
    });
    let resp = sf.json(Method::Post, &url, &body)?;
    #[derive(Deserialize)]
    struct Created {
        id: String,
    }
    serde_json::from_slice::<Created>(&resp.body)
        .map(|c| c.id)
        .map_err(|e| SfError::unreadable(resp.status, format!("bulk job create reply: {e}")))
}

/// Polls job `id`.
pub fn poll(sf: &mut Sf, id: &str) -> Result<JobState, SfError> {
    let url = sf.data_url(&format!("/jobs/query/{id}"));
    let resp = sf.get(&url, &[])?;
    #[derive(Deserialize)]
    struct Info {
        state: String,
        #[serde(rename = "errorMessage", default)]
        error: Option<String>,
    }
    let info: Info = serde_json::from_slice(&resp.body)
        .map_err(|e| SfError::unreadable(resp.status, format!("bulk job status: {e}")))?;
    Ok(match info.state.as_str() {
        "JobComplete" => JobState::Complete,
        "Failed" | "Aborted" => JobState::Failed(
            info.error
                .unwrap_or_else(|| format!("the job ended in state {}", info.state)),
        ),
        _ => JobState::Running,
    })
}

/// Reads the chunk of job `id` at `locator`, at most `max` records, handing each to `sink` as
/// REST record JSON as soon as its CSV row has arrived; returns the next chunk's locator (None
/// after the last chunk). The `keep` columns are also handed over as values, so callers need
/// not parse the JSON again.
///
/// A chunk of tens of thousands of rows is thus never held as CSV text next to the records
/// made of it. A failure of `sink` stops the read and comes back as the error's preset.
pub fn results(
    sf: &mut Sf,
    id: &str,
    locator: Option<&str>,
    max: usize,
    desc: &Describe,
    keep: &[&str],
    sink: &mut dyn FnMut(BulkRecord) -> SinkResult,
) -> Result<Option<String>, SfError> {
    let mut path = format!("/jobs/query/{id}/results?maxRecords={max}");
    if let Some(l) = locator {
        path.push_str("&locator=");
        path.push_str(&crate::soql::encode(l));
    }
    let url = sf.data_url(&path);
    let resp = sf.get_streamed(&url)?;
    let next = resp
        .header("sforce-locator")
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "null")
        .map(str::to_string);
    let status = resp.status;
    let mut sink_failure = None;
    let converted = for_each_record(resp.body, &desc.object, &sf.version, desc, keep, &mut |r| {
        sink(r).map_err(|f| {
            let message = f.message.clone();
            sink_failure = Some(f);
            message
        })
    });
    match (converted, sink_failure) {
        (Ok(()), _) => Ok(next),
        (Err(_), Some(f)) => Err(SfError {
            status,
            code: String::new(),
            message: f.message.clone(),
            preset: Some(f),
        }),
        (Err(e), None) => Err(SfError::unreadable(status, e)),
    }
}

/// Deletes job `id` (its results count against the org's Bulk storage); failures are only
/// logged because the job expires on its own after seven days.
pub fn delete(sf: &mut Sf, id: &str) {
    let url = sf.data_url(&format!("/jobs/query/{id}"));
    let mut req = Request::get(url);
    req.method = Method::Delete;
    if let Err(e) = sf.send(req) {
        let msg = format!("{}: {}", e.code, e.message);
        sf.log(
            sluice_connector_sdk::model::Level::Warn,
            "could not delete the bulk job",
            &[("job", id), ("error", &msg)],
        );
    }
}

/// How a CSV cell of a describe type becomes a JSON value.
#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Number,
    DateTime,
    /// A `junctionidlist`: Ids joined into one text (see `pull::junction_ids`).
    IdList,
    Text,
}

/// `anyType` stays text: the CSV cannot say whether `true` was a boolean, so REST's typed
/// values are stored as text too (see `pull::any_type`).
fn kind_of(ty: Option<&str>) -> Kind {
    match ty {
        Some("boolean") => Kind::Bool,
        Some("int" | "double" | "currency" | "percent" | "long") => Kind::Number,
        Some("datetime") => Kind::DateTime,
        Some(ty) if crate::pull::junction_ids::is_id_list(ty) => Kind::IdList,
        _ => Kind::Text,
    }
}

/// Turns Bulk 2.0 CSV (header row, every cell quoted, empty = null) into REST record JSON:
/// `attributes` first, then the columns in header (SELECT) order, typed by describe.
#[cfg(test)]
pub fn csv_to_json(
    csv_source: impl std::io::Read,
    object: &str,
    version: &str,
    desc: &Describe,
    keep: &[&str],
) -> Result<Vec<BulkRecord>, String> {
    let mut out = Vec::new();
    for_each_record(csv_source, object, version, desc, keep, &mut |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

/// Converts Bulk 2.0 CSV as [`csv_to_json`] does, reading `csv_source` row by row and handing
/// each record to `sink` at once; an error of `sink` stops the read and is returned.
pub fn for_each_record(
    csv_source: impl std::io::Read,
    object: &str,
    version: &str,
    desc: &Describe,
    keep: &[&str],
    sink: &mut dyn FnMut(BulkRecord) -> Result<(), String>,
) -> Result<(), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_source);
    let header = reader
        .byte_headers()
        .map_err(|e| format!("unreadable bulk CSV: {e}"))?
        .clone();
    // A job with no rows may answer with an empty body.
    if header.iter().all(|h| h.iter().all(u8::is_ascii_whitespace)) {
        return Ok(());
    }
    let mut columns = Vec::with_capacity(header.len());
    for name in header.iter() {
        let name = std::str::from_utf8(name)
            .map_err(|_| "a bulk CSV column name is not UTF-8".to_string())?;
        columns.push((
            json_string(name),
            name.to_string(),
            kind_of(desc.type_of(name)),
        ));
    }
    let id_col = columns
        .iter()
        .position(|(_, n, _)| n == "Id")
        .ok_or_else(|| format!("the bulk CSV for {object} has no Id column"))?;
    let url_prefix = format!(
        "{{\"attributes\":{{\"type\":{},\"url\":\"/services/data/v{version}/sobjects/{object}/",
        json_string(object)
    );
    let mut line = 1;
    let mut rec = csv::ByteRecord::new();
    while reader
        .read_byte_record(&mut rec)
        .map_err(|e| format!("unreadable bulk CSV: {e}"))?
    {
        line += 1;
        if rec.len() != columns.len() {
            return Err(format!(
                "bulk CSV line {line} has {} cells for {} columns",
                rec.len(),
                columns.len()
            ));
        }
        let cell = |i: usize| {
            std::str::from_utf8(&rec[i])
                .map_err(|_| format!("{object}.{} holds bytes that are not UTF-8", columns[i].1))
        };
        let mut json = String::with_capacity(url_prefix.len() + rec.as_slice().len() * 2);
        json.push_str(&url_prefix);
        json.push_str(cell(id_col)?);
        json.push_str("\"}");
        let mut kept = serde_json::Map::new();
        for (i, (name_json, name, kind)) in columns.iter().enumerate() {
            json.push(',');
            json.push_str(name_json);
            json.push(':');
            let start = json.len();
            push_value(&mut json, cell(i)?, *kind)
                .map_err(|why| format!("{object}.{name}: {why}"))?;
            if keep.contains(&name.as_str()) {
                let value = serde_json::from_str(&json[start..])
                    .map_err(|e| format!("{object}.{name}: {e}"))?;
                kept.insert(name.clone(), value);
            }
        }
        json.push('}');
        // A chunk holds tens of thousands of records until the page is returned: keep only
        // what each one needs.
        json.shrink_to_fit();
        sink(BulkRecord { json, kept })?;
    }
    Ok(())
}

fn push_value(json: &mut String, text: &str, kind: Kind) -> Result<(), String> {
    if text.is_empty() {
        json.push_str("null");
        return Ok(());
    }
    match kind {
        Kind::Bool => match text {
            "true" | "false" => json.push_str(text),
            _ => return Err(format!("`{text}` is not a boolean")),
        },
        Kind::Number => {
            // Salesforce's own number text is kept, so REST and Bulk rows match byte for byte.
            if serde_json::from_str::<serde_json::Number>(text).is_err() {
                return Err(format!("`{text}` is not a number"));
            }
            json.push_str(text);
        }
        Kind::DateTime => json.push_str(&json_string(&rest_datetime(text))),
        Kind::IdList => json.push_str(&crate::pull::junction_ids::from_bulk_text(text)?),
        Kind::Text => json.push_str(&json_string(text)),
    }
    Ok(())
}

/// Bulk may write UTC as `Z` or `+00:00`; REST writes `+0000`.
fn rest_datetime(text: &str) -> String {
    if let Some(base) = text.strip_suffix('Z') {
        format!("{base}+0000")
    } else if let Some(base) = text.strip_suffix("+00:00") {
        format!("{base}+0000")
    } else {
        text.to_string()
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::describe::Field;

    fn desc() -> Describe {
        let f = |n: &str, t: &str| Field {
            name: n.into(),
            ty: t.into(),
            calculated: false,
        };
        Describe {
            object: "Case".into(),
            fields: vec![
                f("Id", "id"),
                f("SystemModstamp", "datetime"),
                f("IsDeleted", "boolean"),
                f("Subject", "string"),
                f("Score__c", "double"),
                f("Count__c", "int"),
                f("Due__c", "date"),
            ],
            replicateable: true,
            last_modified: None,
        }
    }

    #[test]
    fn csv_becomes_rest_json() {
        let csv = "\"Id\",\"SystemModstamp\",\"IsDeleted\",\"Subject\",\"Score__c\",\"Count__c\",\"Due__c\"\n\
                   \"500A\",\"2024-01-02T03:04:05.000Z\",\"false\",\"Say \"\"hi\"\", then\nbye\",\"1.5\",\"7\",\"2024-01-02\"\n\
                   \"500B\",\"2024-01-02T03:04:06.000+0000\",\"true\",\"\",\"\",\"\",\"\"\n";
        let recs = csv_to_json(
            csv.as_bytes(),
            "Case",
            "62.0",
            &desc(),
            &["Id", "IsDeleted"],
        )
        .unwrap();
        assert_eq!(recs[1].kept["IsDeleted"], true);
        assert_eq!(recs[1].kept["Id"], "500B");
        assert_eq!(recs[0].kept.len(), 2);
        let rows: Vec<String> = recs.into_iter().map(|r| r.json).collect();
        assert_eq!(
            rows[0],
            r#"{"attributes":{"type":"Case","url":"/services/data/v62.0/sobjects/Case/500A"},"Id":"500A","SystemModstamp":"2024-01-02T03:04:05.000+0000","IsDeleted":false,"Subject":"Say \"hi\", then\nbye","Score__c":1.5,"Count__c":7,"Due__c":"2024-01-02"}"#
        );
        assert_eq!(
            rows[1],
            r#"{"attributes":{"type":"Case","url":"/services/data/v62.0/sobjects/Case/500B"},"Id":"500B","SystemModstamp":"2024-01-02T03:04:06.000+0000","IsDeleted":true,"Subject":null,"Score__c":null,"Count__c":null,"Due__c":null}"#
        );
    }

    #[test]
    fn bad_cells_name_the_field() {
        let csv = "\"Id\",\"Score__c\"\n\"500A\",\"n/a\"\n";
        let err = csv_to_json(csv.as_bytes(), "Case", "62.0", &desc(), &[]).unwrap_err();
        assert!(
            err.contains("Case.Score__c") && err.contains("n/a"),
            "{err}"
        );
        let no_id = "\"Subject\"\n\"x\"\n";
        assert!(
            csv_to_json(no_id.as_bytes(), "Case", "62.0", &desc(), &[])
                .unwrap_err()
                .contains("no Id column")
        );
        let ragged = "\"Id\",\"Subject\"\n\"500A\"\n";
        assert!(csv_to_json(ragged.as_bytes(), "Case", "62.0", &desc(), &[]).is_err());
    }

    #[test]
    fn id_lists_become_arrays_and_other_forms_name_the_field() {
        let mut d = desc();
        d.fields.push(Field {
            name: "TaskWhoIds".into(),
            ty: "junctionidlist".into(),
            calculated: false,
        });
        let csv = "\"Id\",\"TaskWhoIds\"\n\"00TA\",\"003000000000001AAA;003000000000002AAA\"\n\"00TB\",\"\"\n";
        let recs = csv_to_json(csv.as_bytes(), "Task", "62.0", &d, &[]).unwrap();
        assert!(
            recs[0]
                .json
                .ends_with(r#""TaskWhoIds":["003000000000001AAA","003000000000002AAA"]}"#),
            "{}",
            recs[0].json
        );
        assert!(recs[1].json.ends_with(r#""TaskWhoIds":null}"#));
        let comma = "\"Id\",\"TaskWhoIds\"\n\"00TA\",\"003000000000001AAA,003000000000002AAA\"\n";
        let err = csv_to_json(comma.as_bytes(), "Task", "62.0", &d, &[]).unwrap_err();
        assert!(err.contains("Task.TaskWhoIds"), "{err}");
    }

    #[test]
    fn empty_results_have_only_a_header() {
        let rows = csv_to_json(&b"\"Id\",\"Subject\"\n"[..], "Case", "62.0", &desc(), &[]).unwrap();
        assert!(rows.is_empty());
        assert!(
            csv_to_json(&b""[..], "Case", "62.0", &desc(), &[])
                .unwrap()
                .is_empty()
        );
    }
}
