//! Pull tests against scripted Salesforce responses.

use crate::cursor::{Checkpoint, Watermark};
use crate::pull::pull;
use crate::settings::{Cap, PullBy};
use crate::testenv::{FakeHost, resp, session};
use sluice_connector_sdk::http::TransportError;
use sluice_connector_sdk::model::{FailureKind, Operation, PullRequest, StreamStatus};

const CASE_DESCRIBE: &str = r#"{"name":"Case","replicateable":true,"fields":[{"name":"Id","type":"id"},{"name":"Subject","type":"string"},{"name":"IsDeleted","type":"boolean"},{"name":"SystemModstamp","type":"datetime"},{"name":"CreatedDate","type":"datetime"}]}"#;
const T: &str = "2024-01-02T03:00:00.000+0000";
const UPDATED: &str = r#"{"ids":[],"latestDateCovered":"2024-01-02T03:08:00.000+0000"}"#;

fn id(i: usize) -> String {
    format!("500{i:015}")
}

fn rec(i: usize, ts: &str, deleted: bool) -> String {
    format!(
        r#"{{"attributes":{{"type":"Case","url":"/services/data/v62.0/sobjects/Case/{0}"}},"Id":"{0}","Subject":"s {i}","IsDeleted":{deleted},"SystemModstamp":"{ts}"}}"#,
        id(i)
    )
}

fn page(recs: &[String], next: Option<&str>) -> String {
    match next {
        Some(n) => format!(
            r#"{{"totalSize":5000,"done":false,"nextRecordsUrl":"{n}","records":[{}]}}"#,
            recs.join(",")
        ),
        None => format!(
            r#"{{"totalSize":5000,"done":true,"records":[{}]}}"#,
            recs.join(",")
        ),
    }
}

fn req(cp: Option<String>, max: u32) -> PullRequest {
    PullRequest {
        stream: "Case".into(),
        checkpoint: cp,
        max_records: max,
    }
}

/// Helpdesk by updated time, REST only: these tests script every REST call, and a window
/// without a bound would otherwise be counted first to see whether Bulk pays off.
fn helpdesk() -> sluice_connector_sdk::model::Session {
    session(
        Cap::Helpdesk,
        Some(PullBy::UpdatedTime),
        &[("bulk-threshold", "0")],
    )
}

/// 5,000 Cases share one SystemModstamp; pages of 2,000; the locator dies mid-group.
#[test]
fn tie_group_spans_pages_without_loss_or_duplicates() {
    let s = session(
        Cap::Helpdesk,
        Some(PullBy::UpdatedTime),
        &[("overlap-seconds", "600"), ("bulk-threshold", "0")],
    );
    let recs: Vec<String> = (0..5000).map(|i| rec(i, T, false)).collect();
    let mut env = FakeHost::default();
    env.on("/sobjects/Case/describe/", resp(200, CASE_DESCRIBE))
        .on("/sobjects/Case/updated/", resp(200, UPDATED))
        .on(
            "/queryAll?q=",
            resp(
                200,
                &page(&recs[..2000], Some("/services/data/v62.0/query/01gA-2000")),
            ),
        );
    let p1 = pull(&mut env, &s, &req(None, 2000)).unwrap();
    assert_eq!(p1.rows.len(), 2000);
    assert_eq!(p1.status, StreamStatus::Partial);
    assert_eq!(p1.api_calls, 3);
    let cp1 = Checkpoint::parse(p1.checkpoint.as_deref()).unwrap();
    // Inside the tie group: no durable bound yet, only a position.
    assert_eq!(cp1.mark.lo, None);
    let w = cp1.win.as_ref().unwrap();
    assert_eq!(w.pos.as_ref().unwrap().id, id(1999));
    assert_eq!(
        w.next.as_deref(),
        Some("/services/data/v62.0/query/01gA-2000")
    );
    // The first query is ordered by (cursor, Id) and bounded by latestDateCovered.
    let q = &env.urls()[2];
    assert!(
        q.contains("ORDER%20BY%20SystemModstamp%20ASC%2C%20Id%20ASC"),
        "{q}"
    );
    assert!(
        q.contains("SystemModstamp%20%3C%3D%202024-01-02T03%3A08%3A00.000Z"),
        "{q}"
    );
    assert!(env.requests[0].headers.is_empty());

    // Call 2: the locator is invalid; re-query from the (cursor, Id) position.
    let mut env = FakeHost::default();
    env.on(
        "/query/01gA-2000",
        resp(
            400,
            r#"[{"message":"invalid query locator","errorCode":"INVALID_QUERY_LOCATOR"}]"#,
        ),
    )
    .on(
        "/queryAll?q=",
        resp(
            200,
            &page(
                &recs[2000..4000],
                Some("/services/data/v62.0/query/01gB-2000"),
            ),
        ),
    );
    let p2 = pull(&mut env, &s, &req(p1.checkpoint.clone(), 2000)).unwrap();
    assert_eq!(p2.rows.len(), 2000);
    assert_eq!(p2.api_calls, 2);
    let q = &env.urls()[1];
    let keyset = format!(
        "(SystemModstamp > 2024-01-02T03:00:00.000Z OR (SystemModstamp = 2024-01-02T03:00:00.000Z AND Id > '{}'))",
        id(1999)
    );
    assert!(q.contains(&crate::soql::encode(&keyset)), "{q}");
    let cp2 = Checkpoint::parse(p2.checkpoint.as_deref()).unwrap();
    assert_eq!(cp2.mark.lo, None);

    // Call 3: the last page completes the window; now lo moves to hi.
    let mut env = FakeHost::default();
    env.on("/query/01gB-2000", resp(200, &page(&recs[4000..], None)));
    let p3 = pull(&mut env, &s, &req(p2.checkpoint.clone(), 2000)).unwrap();
    assert_eq!(p3.rows.len(), 1000);
    assert_eq!(p3.status, StreamStatus::Complete);
    let cp3 = Checkpoint::parse(p3.checkpoint.as_deref()).unwrap();
    assert_eq!(cp3.mark.lo, crate::dt::parse_millis("2024-01-02T03:08:00Z"));
    assert!(cp3.win.is_none());

    let mut keys: Vec<String> = [p1, p2, p3]
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.key.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 5000);
    // All 5,000 are inside the next overlap (600 s below 03:08), so they are remembered.
    assert_eq!(cp3.mark.seen.values().map(Vec::len).sum::<usize>(), 5000);
}

#[test]
fn rows_carry_the_bytes_salesforce_sent() {
    let s = helpdesk();
    let body = r#"{"totalSize":1,"done":true,"records":[ {"attributes":{"type":"Case"},"Id":"500000000000000001", "Subject":"caf\u00e9 +1","IsDeleted":false,"SystemModstamp":"2024-01-02T03:00:00.000+0000"} ]}"#;
    let mut env = FakeHost::default();
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/updated/", resp(200, UPDATED))
        .on("/queryAll?q=", resp(200, body));
    let p = pull(&mut env, &s, &req(None, 100)).unwrap();
    assert_eq!(p.rows.len(), 1);
    let r = &p.rows[0];
    assert_eq!(
        String::from_utf8(r.json.clone()).unwrap(),
        r#"{"attributes":{"type":"Case"},"Id":"500000000000000001", "Subject":"caf\u00e9 +1","IsDeleted":false,"SystemModstamp":"2024-01-02T03:00:00.000+0000"}"#
    );
    assert_eq!(r.key, "500000000000000001");
    assert_eq!(r.cursor, "2024-01-02T03:00:00.000+0000");
    assert_eq!(p.status, StreamStatus::Complete);
}

/// A second run re-reads the overlap: known pairs are dropped, a late commit is delivered,
/// soft deletes and `/deleted` become delete rows, and the cached describe is revalidated.
#[test]
fn overlap_dedupe_and_deletes() {
    let s = helpdesk();
    let mut cp = Checkpoint::default();
    let lo = crate::dt::parse_millis("2024-01-02T03:00:00Z").unwrap();
    cp.mark.lo = Some(lo);
    cp.remember(lo, &id(1));
    cp.desc = Some(
        crate::describe::parse(
            CASE_DESCRIBE.as_bytes(),
            Some("Mon, 01 Jan 2024 00:00:00 GMT".into()),
        )
        .unwrap(),
    );
    let late = "2024-01-02T02:59:59.000+0000";
    let recs = [
        rec(1, T, false),    // delivered last run: dropped
        rec(2, late, false), // committed late, inside the overlap: delivered
        rec(3, "2024-01-02T03:05:00.000+0000", true),
        rec(4, "2024-01-02T03:06:00.000+0000", false),
    ];
    // Serve them in (cursor, Id) order like Salesforce would.
    let ordered = [
        recs[1].clone(),
        recs[0].clone(),
        recs[2].clone(),
        recs[3].clone(),
    ];
    let mut env = FakeHost::default();
    env.on("/describe/", resp(304, ""))
        .on("/updated/", resp(200, UPDATED))
        .on("/queryAll?q=", resp(200, &page(&ordered, None)))
        .on(
            "/sobjects/Case/deleted/",
            resp(
                200,
                r#"{"deletedRecords":[{"id":"500000000000000009","deletedDate":"2024-01-02T03:01:00.000+0000"}],"earliestDateAvailable":"2023-12-20T00:00:00.000+0000","latestDateCovered":"2024-01-02T03:08:00.000+0000"}"#,
            ),
        );
    let p = pull(&mut env, &s, &req(Some(cp.to_json()), 2000)).unwrap();
    assert_eq!(
        env.requests[0].headers,
        vec![(
            "If-Modified-Since".to_string(),
            "Mon, 01 Jan 2024 00:00:00 GMT".to_string()
        )]
    );
    let got: Vec<(String, Operation)> = p.rows.iter().map(|r| (r.key.clone(), r.op)).collect();
    assert_eq!(
        got,
        vec![
            (id(2), Operation::Upsert),
            (id(3), Operation::Delete),
            (id(4), Operation::Upsert),
            ("500000000000000009".to_string(), Operation::Delete),
        ]
    );
    // The overlap (300 s) starts below lo.
    let q = &env.urls()[2];
    assert!(
        q.contains(&crate::soql::encode(
            "SystemModstamp > 2024-01-02T02:55:00.000Z"
        )),
        "{q}"
    );
    let d = &env.urls()[3];
    assert!(
        d.contains("start=2024-01-02T02%3A55%3A00.000Z&end=2024-01-02T03%3A08%3A00.000Z"),
        "{d}"
    );
    assert_eq!(p.status, StreamStatus::Complete);
    assert_eq!(p.api_calls, 4);
    let cp2 = Checkpoint::parse(p.checkpoint.as_deref()).unwrap();
    assert_eq!(cp2.mark.lo, crate::dt::parse_millis("2024-01-02T03:08:00Z"));
    // 03:00 is below the next overlap (03:08 - 300 s), so it is pruned; 03:06 is kept.
    assert!(!cp2.was_seen(crate::dt::parse_millis(T).unwrap(), &id(1)));
    assert!(cp2.was_seen(
        crate::dt::parse_millis("2024-01-02T03:06:00Z").unwrap(),
        &id(4)
    ));
    assert_eq!(cp2.desc, cp.desc);
}

#[test]
fn query_timeout_shrinks_the_window() {
    let s = session(
        Cap::Helpdesk,
        Some(PullBy::UpdatedTime),
        &[("start-date", "2024-01-01"), ("bulk-threshold", "0")],
    );
    let mut env = FakeHost::default();
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/updated/", resp(200, UPDATED))
        .on(
            "/queryAll?q=",
            resp(400, r#"[{"message":"Your query request was running for too long.","errorCode":"QUERY_TIMEOUT"}]"#),
        )
        .on("/queryAll?q=", resp(200, &page(&[rec(1, "2024-01-01T10:00:00.000+0000", false)], None)))
        .on("/queryAll?q=", resp(200, &page(&[rec(2, "2024-01-02T00:00:00.000+0000", false)], None)));
    let p = pull(&mut env, &s, &req(None, 2000)).unwrap();
    // (start, hi] = (2024-01-01T00:00, 2024-01-02T03:08] halved.
    let q = &env.urls()[3];
    assert!(
        q.contains(&crate::soql::encode(
            "SystemModstamp <= 2024-01-01T13:33:59.999Z"
        )),
        "{q}"
    );
    // The next sub-window starts where the first ended and runs to hi.
    let q = &env.urls()[4];
    let want =
        "SystemModstamp > 2024-01-01T13:33:59.999Z AND SystemModstamp <= 2024-01-02T03:08:00.000Z";
    assert!(q.contains(&crate::soql::encode(want)), "{q}");
    assert_eq!(p.rows.len(), 2);
    assert_eq!(p.status, StreamStatus::Complete);
    let cp = Checkpoint::parse(p.checkpoint.as_deref()).unwrap();
    assert_eq!(cp.mark.lo, crate::dt::parse_millis("2024-01-02T03:08:00Z"));
}

#[test]
fn budget_guard_stops_without_advancing() {
    let s = session(
        Cap::Helpdesk,
        Some(PullBy::UpdatedTime),
        &[("api-budget-percent", "50")],
    );
    let mut over = resp(200, CASE_DESCRIBE);
    over.headers[1].1 = "api-usage=400/1000; per-app-api-usage=130/250(appName=sluice)".into();
    let mut env = FakeHost::default();
    env.on("/describe/", over);
    let f = pull(&mut env, &s, &req(Some(r#"{"v":1,"lo":5}"#.into()), 2000)).unwrap_err();
    assert_eq!(f.kind, FailureKind::RateLimited);
    assert!(f.message.contains("sluice"), "{}", f.message);
    assert_eq!(env.requests.len(), 1);
}

#[test]
fn limit_exceeded_and_reauth_and_unreachable() {
    let s = helpdesk();
    let mut env = FakeHost::default();
    env.on(
        "/describe/",
        resp(
            403,
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        ),
    );
    assert_eq!(
        pull(&mut env, &s, &req(None, 10)).unwrap_err().kind,
        FailureKind::RateLimited
    );
    let mut env = FakeHost::default();
    env.on(
        "/describe/",
        resp(
            401,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        ),
    );
    assert_eq!(
        pull(&mut env, &s, &req(None, 10)).unwrap_err().kind,
        FailureKind::ReauthorizationRequired
    );
    let mut env = FakeHost::default();
    env.fail(
        "/describe/",
        TransportError::Unreachable {
            target: "x".into(),
            detail: "dns".into(),
        },
    );
    assert_eq!(
        pull(&mut env, &s, &req(None, 10)).unwrap_err().kind,
        FailureKind::Unreachable
    );
}

#[test]
fn missing_object_is_skipped_and_keeps_checkpoint() {
    let s = helpdesk();
    let mut env = FakeHost::default();
    env.on(
        "/describe/",
        resp(
            404,
            r#"[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]"#,
        ),
    );
    let cp = Some(r#"{"v":1,"lo":5}"#.to_string());
    let p = pull(
        &mut env,
        &s,
        &PullRequest {
            stream: "EmailMessage".into(),
            checkpoint: cp.clone(),
            max_records: 10,
        },
    )
    .unwrap();
    assert!(
        matches!(p.status, StreamStatus::Skipped(ref r)
            if r.contains("EmailMessage") && r.contains("Email-to-Case")),
        "{:?}",
        p.status
    );
    assert_eq!(p.checkpoint, cp);
}

/// A required object the user cannot see fails its stream, naming the object and the
/// access to grant; it is never skipped as if the org lacked it.
#[test]
fn missing_required_object_fails_permission_denied() {
    let s = helpdesk();
    for (object, answer) in [
        (
            "Case",
            (
                404,
                r#"[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]"#,
            ),
        ),
        (
            "CaseHistory",
            (
                400,
                r#"[{"errorCode":"INVALID_TYPE","message":"sObject type 'CaseHistory' is not supported."}]"#,
            ),
        ),
    ] {
        let mut env = FakeHost::default();
        env.on("/describe/", resp(answer.0, answer.1));
        let f = pull(
            &mut env,
            &s,
            &PullRequest {
                stream: object.into(),
                checkpoint: None,
                max_records: 10,
            },
        )
        .unwrap_err();
        assert_eq!(f.kind, FailureKind::PermissionDenied, "{object}: {f:?}");
        assert!(
            f.message.contains(object) && f.message.contains("grant Read access"),
            "{object}: {}",
            f.message
        );
    }
}

#[test]
fn created_time_uses_query_and_created_date_without_deletes() {
    let s = session(Cap::Helpdesk, Some(PullBy::CreatedTime), &[]);
    let mut env = FakeHost::default();
    // latestDateCovered bounds the window in created-time mode too.
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/sobjects/Case/updated/", resp(200, UPDATED))
        .on(
            "/query?q=",
            resp(200, r#"{"totalSize":0,"done":true,"records":[]}"#),
        );
    let p = pull(
        &mut env,
        &s,
        &req(Some(r#"{"v":1,"lo":1704164400000}"#.into()), 10),
    )
    .unwrap();
    let q = &env.urls()[2];
    assert!(q.contains("ORDER%20BY%20CreatedDate%20ASC"), "{q}");
    assert!(
        q.contains("CreatedDate%20%3C%3D%202024-01-02T03%3A08%3A00.000Z"),
        "{q}"
    );
    assert_eq!(p.status, StreamStatus::Complete);
    assert_eq!(p.api_calls, 3);
}

const KAV_DESCRIBE: &str = r#"{"name":"FAQ__kav","replicateable":false,"fields":[{"name":"Id","type":"id"},{"name":"KnowledgeArticleId","type":"reference"},{"name":"Language","type":"picklist"},{"name":"PublishStatus","type":"picklist"},{"name":"Title","type":"string"},{"name":"Answer__c","type":"textarea"},{"name":"SystemModstamp","type":"datetime"}]}"#;

fn kav(id: &str, ka: &str, status: &str, ts: &str) -> String {
    format!(
        r#"{{"attributes":{{"type":"FAQ__kav"}},"Id":"{id}","KnowledgeArticleId":"{ka}","Language":"en_US","PublishStatus":"{status}","Title":"t","Answer__c":"<p>a</p>","SystemModstamp":"{ts}"}}"#
    )
}

#[test]
fn knowledge_archive_and_republish() {
    let s = session(Cap::Content, None, &[]);
    let mut env = FakeHost::default();
    env.on("/sobjects/", resp(200, r#"{"sobjects":[{"name":"Account","queryable":true},{"name":"FAQ__kav","queryable":true}]}"#))
        .on("/sobjects/FAQ__kav/describe/", resp(200, KAV_DESCRIBE))
        // Archived: A was republished (still online), B was archived for good.
        .on("PublishStatus%20%3D%20%27Archived%27", resp(200, &format!(
            r#"{{"totalSize":2,"done":true,"records":[{},{}]}}"#,
            kav("ka0A1", "kA0A", "Archived", T),
            kav("ka0B1", "kA0B", "Archived", T)
        )))
        .on("KnowledgeArticleId%20IN", resp(200, r#"{"totalSize":1,"done":true,"records":[{"attributes":{"type":"FAQ__kav"},"Id":"ka0A2","KnowledgeArticleId":"kA0A","Language":"en_US"}]}"#))
        .on("PublishStatus%20%3D%20%27Online%27", resp(200, &format!(
            r#"{{"totalSize":1,"done":true,"records":[{}]}}"#,
            kav("ka0A2", "kA0A", "Online", "2024-01-02T03:01:00.000+0000")
        )));
    let p = pull(
        &mut env,
        &s,
        &PullRequest {
            stream: "Knowledge".into(),
            checkpoint: None,
            max_records: 100,
        },
    )
    .unwrap();
    let got: Vec<(String, Operation)> = p.rows.iter().map(|r| (r.key.clone(), r.op)).collect();
    assert_eq!(
        got,
        vec![
            ("kA0B/en_US".to_string(), Operation::Delete),
            ("kA0A/en_US".to_string(), Operation::Upsert)
        ]
    );
    assert_eq!(p.status, StreamStatus::Complete);
    assert!(env.urls().iter().all(|u| !u.contains("/queryAll")));
}

#[test]
fn small_pages_resume_by_position() {
    let s = helpdesk();
    let recs: Vec<String> = (0..5).map(|i| rec(i, T, false)).collect();
    let mut env = FakeHost::default();
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/updated/", resp(200, UPDATED))
        .on("/queryAll?q=", resp(200, &page(&recs, None)));
    let p = pull(&mut env, &s, &req(None, 3)).unwrap();
    assert_eq!(p.rows.len(), 3);
    assert_eq!(p.status, StreamStatus::Partial);
    let cp = Checkpoint::parse(p.checkpoint.as_deref()).unwrap();
    let w = cp.win.unwrap();
    assert_eq!(w.pos.unwrap().id, id(2));
    assert_eq!(w.next, None);
}

const COUNT_BIG: &str = r#"{"totalSize":120000,"done":true,"records":[]}"#;

fn csv_chunk(range: std::ops::Range<usize>, locator: &str) -> sluice_connector_sdk::http::Response {
    // The columns in `rec`'s order, so a converted row can be compared with it byte for byte.
    let mut body = String::from("\"Id\",\"Subject\",\"IsDeleted\",\"SystemModstamp\"\n");
    for i in range {
        body.push_str(&format!("\"{}\",\"s {i}\",\"false\",\"{T}\"\n", id(i)));
    }
    let mut r = resp(200, &body);
    r.headers.push(("sforce-locator".into(), locator.into()));
    r
}

/// A backfill over the threshold goes through one Bulk job: create, poll until complete, read
/// chunk by chunk via the locator in the checkpoint, delete; rows equal the REST shape.
#[test]
fn large_backfill_reads_a_bulk_job_chunk_by_chunk() {
    use sluice_connector_sdk::http::Method;
    let s = session(Cap::Helpdesk, Some(PullBy::UpdatedTime), &[]);
    let mut env = FakeHost::default();
    env.on("/sobjects/Case/describe/", resp(200, CASE_DESCRIBE))
        .on("/sobjects/Case/updated/", resp(200, UPDATED))
        .on("/queryAll?q=SELECT%20COUNT%28%29", resp(200, COUNT_BIG))
        .on_method(
            Method::Post,
            "/jobs/query",
            resp(200, r#"{"id":"750J","state":"UploadComplete"}"#),
        )
        .on(
            "/jobs/query/750J",
            resp(200, r#"{"id":"750J","state":"InProgress"}"#),
        );
    let p1 = pull(&mut env, &s, &req(None, 2000)).unwrap();
    assert_eq!(
        (p1.rows.len(), p1.status.clone()),
        (0, StreamStatus::Partial)
    );
    let create = &env.requests[3];
    let body: serde_json::Value = serde_json::from_slice(create.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["operation"], "queryAll");
    let soql = body["query"].as_str().unwrap();
    assert!(soql.starts_with("SELECT Id, SystemModstamp, IsDeleted, Subject, CreatedDate FROM Case WHERE SystemModstamp <= "), "{soql}");
    assert!(!soql.contains("ORDER BY"), "{soql}");

    let mut env = FakeHost::default();
    env.on(
        "/jobs/query/750J",
        resp(200, r#"{"id":"750J","state":"JobComplete"}"#),
    )
    .on(
        "/jobs/query/750J/results?maxRecords=2000",
        csv_chunk(0..2000, "MjAwMA"),
    );
    let p2 = pull(&mut env, &s, &req(p1.checkpoint.clone(), 2000)).unwrap();
    assert_eq!(p2.rows.len(), 2000);
    assert_eq!(p2.status, StreamStatus::Partial);
    assert_eq!(
        String::from_utf8(p2.rows[0].json.clone()).unwrap(),
        rec(0, T, false)
    );
    let cp2 = Checkpoint::parse(p2.checkpoint.as_deref()).unwrap();
    assert_eq!(
        cp2.win
            .as_ref()
            .unwrap()
            .bulk
            .as_ref()
            .unwrap()
            .locator
            .as_deref(),
        Some("MjAwMA")
    );

    // A restart re-reads from the stored locator; the last chunk ends the window.
    let mut env = FakeHost::default();
    env.on(
        "results?maxRecords=2000&locator=MjAwMA",
        csv_chunk(2000..2500, "null"),
    )
    .on_method(Method::Delete, "/jobs/query/750J", resp(204, ""));
    let p3 = pull(&mut env, &s, &req(p2.checkpoint.clone(), 2000)).unwrap();
    assert_eq!(p3.rows.len(), 500);
    assert_eq!(p3.status, StreamStatus::Complete);
    let cp3 = Checkpoint::parse(p3.checkpoint.as_deref()).unwrap();
    assert_eq!(cp3.mark.lo, crate::dt::parse_millis("2024-01-02T03:08:00Z"));
    assert_eq!(env.requests.last().unwrap().method, Method::Delete);
}

/// The host accepts pages of 100,000 rows: a Bulk chunk asks for `bulk-chunk-records` rows
/// and fills one page alone (the next chunk waits for the next call), while REST pages stay
/// at Salesforce's 2,000.
#[test]
fn bulk_chunks_use_the_setting_and_the_host_cap() {
    use sluice_connector_sdk::http::Method;
    let s = session(
        Cap::Helpdesk,
        Some(PullBy::UpdatedTime),
        &[("bulk-chunk-records", "3000")],
    );
    let mut env = FakeHost::default();
    env.on("/sobjects/Case/describe/", resp(200, CASE_DESCRIBE))
        .on("/sobjects/Case/updated/", resp(200, UPDATED))
        .on("/queryAll?q=SELECT%20COUNT%28%29", resp(200, COUNT_BIG))
        .on_method(
            Method::Post,
            "/jobs/query",
            resp(200, r#"{"id":"750J","state":"UploadComplete"}"#),
        )
        .on(
            "/jobs/query/750J",
            resp(200, r#"{"id":"750J","state":"JobComplete"}"#),
        )
        .on(
            "/jobs/query/750J/results?maxRecords=3000",
            csv_chunk(0..3000, "MzAwMA"),
        );
    let p = pull(&mut env, &s, &req(None, 100_000)).unwrap();
    assert_eq!((p.rows.len(), p.status), (3000, StreamStatus::Partial));
    assert_eq!(
        String::from_utf8(p.rows[2999].json.clone()).unwrap(),
        rec(2999, T, false)
    );
    assert!(
        !env.urls().iter().any(|u| u.contains("locator=")),
        "a second chunk was read into the same page: {:?}",
        env.urls()
    );

    // A host asking for fewer rows than the setting caps the chunk.
    let mut env = FakeHost::default();
    env.on(
        "/jobs/query/750J/results?maxRecords=500&locator=MzAwMA",
        csv_chunk(3000..3500, "null"),
    )
    .on_method(Method::Delete, "/jobs/query/750J", resp(204, ""));
    let p2 = pull(&mut env, &s, &req(p.checkpoint.clone(), 500)).unwrap();
    assert_eq!(p2.rows.len(), 500);
}

/// Scripts the batches of the locator `01gA` at offsets `offsets` of `recs`, each answer
/// once, so a batch asked for twice finds no answer.
fn script_batches(env: &mut FakeHost, recs: &[String], offsets: std::ops::Range<usize>) {
    for start in offsets.step_by(2000) {
        let end = (start + 2000).min(recs.len());
        let next = (end < recs.len()).then(|| format!("/services/data/v62.0/query/01gA-{end}"));
        env.on(
            &format!("/query/01gA-{start}"),
            resp(200, &page(&recs[start..end], next.as_deref())),
        );
    }
}

/// A host that opens a window whose query answers with the first batch of `recs` and the
/// locator `01gA`.
fn window_opened_on(recs: &[String]) -> FakeHost {
    let mut env = FakeHost::default();
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/updated/", resp(200, UPDATED))
        .on(
            "/queryAll?q=",
            resp(
                200,
                &page(&recs[..2000], Some("/services/data/v62.0/query/01gA-2000")),
            ),
        );
    env
}

/// A REST page holds up to five query batches; each batch after the first was asked for
/// before the one ahead of it was read, exactly once, and only when the page has room for it.
#[test]
fn rest_pages_take_several_batches_each_asked_for_ahead_once() {
    let recs: Vec<String> = (0..13_000).map(|i| rec(i, T, false)).collect();
    let mut env = window_opened_on(&recs);
    script_batches(&mut env, &recs, 2000..10_000);
    let p1 = pull(&mut env, &helpdesk(), &req(None, 100_000)).unwrap();
    assert_eq!(
        (p1.rows.len(), &p1.status),
        (10_000, &StreamStatus::Partial)
    );
    // describe, updated, the query and four locators: nothing asked for that was not read.
    assert_eq!(p1.api_calls, 7);
    assert_eq!(env.requests.len(), 7);
    assert_eq!(
        env.started,
        [3, 4, 5, 6],
        "the locators are asked for ahead"
    );
    assert!(
        env.requests[3..]
            .iter()
            .all(|r| r.headers == [("Sforce-Query-Options".into(), "batchSize=2000".into())]),
        "{:?}",
        env.requests
    );
    let cp = Checkpoint::parse(p1.checkpoint.as_deref()).unwrap();
    let w = cp.win.as_ref().unwrap();
    assert_eq!(w.pos.as_ref().unwrap().id, id(9999));
    assert_eq!(
        w.next.as_deref(),
        Some("/services/data/v62.0/query/01gA-10000")
    );

    // The rest: the locator, then the last batch asked for ahead; the window completes.
    let mut env = FakeHost::default();
    script_batches(&mut env, &recs, 10_000..13_000);
    let p2 = pull(&mut env, &helpdesk(), &req(p1.checkpoint.clone(), 100_000)).unwrap();
    assert_eq!((p2.rows.len(), &p2.status), (3000, &StreamStatus::Complete));
    assert_eq!(p2.api_calls, 2);
    assert_eq!(env.started, [1]);
    assert_eq!(env.started, [1]);
    let mut keys: Vec<String> = [&p1, &p2]
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.key.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 13_000);

    // A host taking 4,000 rows gets two batches, and the third is not asked for.
    let mut env = window_opened_on(&recs);
    script_batches(&mut env, &recs, 2000..4000);
    let p = pull(&mut env, &helpdesk(), &req(None, 4000)).unwrap();
    assert_eq!((p.rows.len(), p.api_calls), (4000, 4));
    assert_eq!(env.started, [3]);
    assert!(
        !env.urls().iter().any(|u| u.contains("01gA-4000")),
        "{:?}",
        env.urls()
    );
}

/// Bulk refusing the object (INVALIDENTITY), or a small count, leaves the window to REST.
#[test]
fn bulk_refusal_and_small_backfills_use_rest() {
    use sluice_connector_sdk::http::Method;
    let s = session(Cap::Helpdesk, Some(PullBy::UpdatedTime), &[]);
    let mut env = FakeHost::default();
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/updated/", resp(200, UPDATED))
        .on("/queryAll?q=SELECT%20COUNT%28%29", resp(200, COUNT_BIG))
        .on_method(
            Method::Post,
            "/jobs/query",
            resp(
                400,
                r#"[{"errorCode":"INVALIDENTITY","message":"Entity 'Case' is not supported by the Bulk API."}]"#,
            ),
        )
        .on("/queryAll?q=SELECT%20Id", resp(200, &page(&[rec(1, T, false)], None)));
    let p = pull(&mut env, &s, &req(None, 2000)).unwrap();
    assert_eq!((p.rows.len(), p.status), (1, StreamStatus::Complete));
    assert!(
        env.logs.iter().any(|l| l.contains("INVALIDENTITY")),
        "{:?}",
        env.logs
    );

    let mut env = FakeHost::default();
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/updated/", resp(200, UPDATED))
        .on(
            "/queryAll?q=SELECT%20COUNT%28%29",
            resp(200, r#"{"totalSize":3,"done":true,"records":[]}"#),
        )
        .on(
            "/queryAll?q=SELECT%20Id",
            resp(200, &page(&[rec(1, T, false)], None)),
        );
    let p = pull(&mut env, &s, &req(None, 2000)).unwrap();
    assert_eq!((p.rows.len(), p.status), (1, StreamStatus::Complete));
    assert!(env.requests.iter().all(|r| r.method == Method::Get));
}

/// A job that fails falls back to REST from the start of the window.
#[test]
fn failed_bulk_job_falls_back_to_rest() {
    use sluice_connector_sdk::http::Method;
    let s = session(Cap::Helpdesk, Some(PullBy::UpdatedTime), &[]);
    let mut env = FakeHost::default();
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/updated/", resp(200, UPDATED))
        .on("/queryAll?q=SELECT%20COUNT%28%29", resp(200, COUNT_BIG))
        .on_method(Method::Post, "/jobs/query", resp(200, r#"{"id":"750F"}"#))
        .on(
            "/jobs/query/750F",
            resp(
                200,
                r#"{"id":"750F","state":"Failed","errorMessage":"boom"}"#,
            ),
        )
        .on_method(Method::Delete, "/jobs/query/750F", resp(204, ""))
        .on(
            "/queryAll?q=SELECT%20Id",
            resp(200, &page(&[rec(1, T, false)], None)),
        );
    let p = pull(&mut env, &s, &req(None, 2000)).unwrap();
    assert_eq!((p.rows.len(), p.status), (1, StreamStatus::Complete));
    assert!(
        env.logs.iter().any(|l| l.contains("boom")),
        "{:?}",
        env.logs
    );
}

/// An object too wide for one URL is read in field chunks merged by Id; a record that no
/// chunk read can find any more (hard-deleted meanwhile) becomes a delete, not a drop.
#[test]
fn wide_objects_are_read_in_field_chunks_merged_by_id() {
    let wide: Vec<String> = (0..500)
        .map(|i| format!("Field_With_A_Long_Name_Number_{i:03}__c"))
        .collect();
    let mut fields = vec![
        r#"{"name":"Id","type":"id"}"#.to_string(),
        r#"{"name":"IsDeleted","type":"boolean"}"#.to_string(),
        r#"{"name":"SystemModstamp","type":"datetime"}"#.to_string(),
    ];
    fields.extend(
        wide.iter()
            .map(|f| format!(r#"{{"name":"{f}","type":"string"}}"#)),
    );
    let describe = format!(
        r#"{{"name":"Case","replicateable":true,"fields":[{}]}}"#,
        fields.join(",")
    );
    let head = |i: usize| {
        format!(
            r#"{{"attributes":{{"type":"Case","url":"/services/data/v62.0/sobjects/Case/{0}"}},"Id":"{0}","SystemModstamp":"{T}","IsDeleted":false"#,
            id(i)
        )
    };
    // Which fields the driving query selected decides what each chunk read must return.
    let s = helpdesk();
    let mut probe = FakeHost::default();
    probe
        .on("/describe/", resp(200, &describe))
        .on("/updated/", resp(200, UPDATED))
        .on("/queryAll?q=SELECT%20Id", resp(200, &page(&[], None)));
    pull(&mut probe, &s, &req(None, 2000)).unwrap();
    let driving_url = probe.urls()[2].clone();
    assert!(driving_url.len() <= crate::soql::MAX_URL);
    let in_driving: Vec<&String> = wide
        .iter()
        .filter(|f| driving_url.contains(f.as_str()))
        .collect();
    assert!(!in_driving.is_empty() && in_driving.len() < wide.len());
    let rest: Vec<&String> = wide.iter().filter(|f| !in_driving.contains(f)).collect();

    let driving_rec = |i: usize| {
        let mut r = head(i);
        for f in &in_driving {
            r.push_str(&format!(r#","{f}":"{i}""#));
        }
        r.push('}');
        r
    };
    let mut chunk_rec = head(0);
    for f in &rest {
        chunk_rec.push_str(&format!(r#","{f}":"late {f}""#));
    }
    chunk_rec.push('}');
    let mut env = FakeHost::default();
    env.on("/describe/", resp(200, &describe))
        .on("/updated/", resp(200, UPDATED))
        .on(
            "/queryAll?q=SELECT%20Id",
            resp(200, &page(&[driving_rec(0), driving_rec(1)], None)),
        );
    // Each further chunk: the IN read finds record 0 only, the single re-read of 1 finds none.
    let mut chunk_reads = 0;
    let mut left = rest.len();
    while left > 0 {
        env.on(
            "Id%20IN%20%28",
            resp(200, &page(&[chunk_rec.clone()], None)),
        )
        .on("Id%20IN%20%28", resp(200, &page(&[], None)));
        chunk_reads += 1;
        left = left.saturating_sub(in_driving.len().min(left));
    }
    let p = pull(&mut env, &s, &req(None, 2000)).unwrap();
    assert_eq!(p.rows.len(), 2);
    let merged: serde_json::Value = serde_json::from_slice(&p.rows[0].json).unwrap();
    for f in &wide {
        assert!(
            merged.get(f.as_str()).is_some(),
            "{f} missing from the merged row"
        );
    }
    assert_eq!(merged[rest[0].as_str()], format!("late {}", rest[0]));
    assert_eq!(merged[in_driving[0].as_str()], "0");
    assert_eq!(p.rows[0].op, Operation::Upsert);
    assert_eq!(
        p.rows[1].op,
        Operation::Delete,
        "gone while its chunks were read"
    );
    for url in env.urls() {
        assert!(url.len() <= crate::soql::MAX_URL, "{} bytes", url.len());
    }
    assert!(chunk_reads >= 1);
    assert!(env.routes.is_empty(), "every scripted chunk read was used");
}

/// A due reconciliation checks the stored keys by Id, in pages no larger than the room left,
/// and deletes the ones Salesforce no longer returns; then it is not due again for a while.
#[test]
fn reconciliation_deletes_stored_keys_salesforce_no_longer_has() {
    let s = helpdesk();
    let lo = crate::dt::parse_millis("2024-01-02T03:00:00Z").unwrap();
    let cp = Checkpoint {
        mark: Watermark {
            lo: Some(lo),
            ..Watermark::default()
        },
        reconciled: crate::dt::parse_millis("2023-12-20T00:00:00Z"),
        ..Default::default()
    };
    let stored: Vec<String> = (0..5).map(id).collect();
    let live = |ids: &[usize]| {
        let recs: Vec<String> = ids
            .iter()
            .map(|&i| format!(r#"{{"attributes":{{"type":"Case"}},"Id":"{}"}}"#, id(i)))
            .collect();
        page(&recs, None)
    };
    let mut env = FakeHost {
        stored: stored.clone(),
        ..Default::default()
    };
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/updated/", resp(200, UPDATED))
        .on("/queryAll?q=SELECT%20Id", resp(200, &page(&[], None)))
        .on("/deleted/", resp(200, r#"{"deletedRecords":[]}"#));
    for ids in [&[0][..], &[2], &[3], &[4]] {
        env.on(
            // queryAll: `/query` hides archived activities, which are live.
            "/queryAll?q=SELECT%20Id%2C%20IsDeleted%20FROM%20Case%20WHERE%20Id%20IN",
            resp(200, &live(ids)),
        );
    }
    let p = pull(&mut env, &s, &req(Some(cp.to_json()), 2)).unwrap();
    assert_eq!(p.status, StreamStatus::Complete);
    let deleted: Vec<(String, Operation)> = p.rows.iter().map(|r| (r.key.clone(), r.op)).collect();
    assert_eq!(deleted, vec![(id(1), Operation::Delete)]);
    let first_check = env
        .urls()
        .into_iter()
        .find(|u| u.contains("WHERE%20Id%20IN"))
        .unwrap();
    assert!(first_check.contains(&id(0)) && first_check.contains(&id(1)));
    assert!(
        !first_check.contains(&id(2)),
        "two keys fit the room of two"
    );
    assert!(env.routes.is_empty());
    let cp2 = Checkpoint::parse(p.checkpoint.as_deref()).unwrap();
    assert_eq!(
        cp2.reconciled,
        crate::dt::parse_millis("2024-01-02T03:10:00Z")
    );

    // Not due again right away: the next window has no reconcile pass.
    let mut env = FakeHost {
        stored,
        ..Default::default()
    };
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/updated/", resp(200, UPDATED))
        .on("/queryAll?q=SELECT%20Id", resp(200, &page(&[], None)))
        .on("/deleted/", resp(200, r#"{"deletedRecords":[]}"#));
    let cp3 = Checkpoint {
        mark: Watermark {
            lo: Some(lo - 600_000),
            ..cp2.mark.clone()
        },
        ..cp2
    };
    let p3 = pull(&mut env, &s, &req(Some(cp3.to_json()), 2000)).unwrap();
    assert_eq!(p3.status, StreamStatus::Complete);
    assert!(env.urls().iter().all(|u| !u.contains("WHERE%20Id%20IN")));
}

/// A failing reconcile query fails the stream without deleting anything.
#[test]
fn reconciliation_errors_delete_nothing() {
    let s = helpdesk();
    let cp = Checkpoint {
        mark: Watermark {
            lo: crate::dt::parse_millis("2024-01-02T03:00:00Z"),
            ..Watermark::default()
        },
        reconciled: Some(0),
        ..Default::default()
    };
    let mut env = FakeHost {
        stored: vec![id(1)],
        ..Default::default()
    };
    env.on("/describe/", resp(200, CASE_DESCRIBE))
        .on("/updated/", resp(200, UPDATED))
        .on("/queryAll?q=SELECT%20Id", resp(200, &page(&[], None)))
        .on("/deleted/", resp(200, r#"{"deletedRecords":[]}"#))
        .on(
            "WHERE%20Id%20IN",
            resp(
                403,
                r#"[{"errorCode":"INSUFFICIENT_ACCESS","message":"no access"}]"#,
            ),
        );
    let err = pull(&mut env, &s, &req(Some(cp.to_json()), 2000)).unwrap_err();
    assert_eq!(err.kind, FailureKind::PermissionDenied, "{err:?}");
}

/// A checkpoint holding a locator: the first page of 2,000 tied Cases, read at `at` by the
/// connector's clock.
fn checkpoint_with_locator(at: Option<i64>) -> (String, Vec<String>) {
    let recs: Vec<String> = (0..4000).map(|i| rec(i, T, false)).collect();
    let mut env = FakeHost {
        now: at,
        ..FakeHost::default()
    };
    env.on("/sobjects/Case/describe/", resp(200, CASE_DESCRIBE))
        .on("/sobjects/Case/updated/", resp(200, UPDATED))
        .on(
            "/queryAll?q=",
            resp(
                200,
                &page(&recs[..2000], Some("/services/data/v62.0/query/01gA-2000")),
            ),
        );
    let p = pull(&mut env, &helpdesk(), &req(None, 2000)).unwrap();
    (p.checkpoint.unwrap(), recs)
}

/// A locator whose session ended answers 401 even after the host's refresh: the connector
/// re-queries from its position instead of asking for a new authorization.
#[test]
fn a_locator_that_answers_401_is_replaced_by_a_fresh_query() {
    let (cp, recs) = checkpoint_with_locator(Some(1_000_000));
    let mut env = FakeHost {
        now: Some(1_000_500),
        ..FakeHost::default()
    };
    env.on(
        "/query/01gA-2000",
        resp(
            401,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        ),
    )
    .on("/queryAll?q=", resp(200, &page(&recs[2000..], None)));
    let p = pull(&mut env, &helpdesk(), &req(Some(cp), 2000)).unwrap();
    assert_eq!(p.rows.len(), 2000);
    assert_eq!(p.rows[0].key, id(2000));
    assert_eq!(p.api_calls, 2);
}

/// A locator older than a run's pace is never followed: it belongs to an earlier run.
#[test]
fn an_old_locator_is_not_followed() {
    let (cp, recs) = checkpoint_with_locator(Some(1_000_000));
    let mut env = FakeHost {
        now: Some(1_000_000 + 10 * 60_000),
        ..FakeHost::default()
    };
    env.on("/queryAll?q=", resp(200, &page(&recs[2000..], None)));
    let p = pull(&mut env, &helpdesk(), &req(Some(cp.clone()), 2000)).unwrap();
    assert_eq!(p.rows.len(), 2000);
    assert!(
        env.urls().iter().all(|u| !u.contains("01gA")),
        "{:?}",
        env.urls()
    );
    // A fresh one is followed.
    let mut env = FakeHost {
        now: Some(1_000_000 + 1000),
        ..FakeHost::default()
    };
    env.on("/query/01gA-2000", resp(200, &page(&recs[2000..], None)));
    let p = pull(&mut env, &helpdesk(), &req(Some(cp), 2000)).unwrap();
    assert_eq!(p.rows.len(), 2000);
}

/// `INVALID_FIELD` on a cached describe: describe again without `If-Modified-Since` and read
/// the window from its start; a second refusal on the fresh describe fails the stream.
#[test]
fn invalid_field_describes_again_and_rereads_the_window() {
    let invalid =
        r#"[{"message":"No such column 'Subject' on entity 'Case'.","errorCode":"INVALID_FIELD"}]"#;
    let no_subject = r#"{"name":"Case","replicateable":true,"fields":[{"name":"Id","type":"id"},{"name":"IsDeleted","type":"boolean"},{"name":"SystemModstamp","type":"datetime"},{"name":"CreatedDate","type":"datetime"}]}"#;
    let mut env = FakeHost::default();
    let mut described = resp(200, CASE_DESCRIBE);
    described.headers.push((
        "last-modified".into(),
        "Mon, 01 Jan 2024 00:00:00 GMT".into(),
    ));
    env.on("/sobjects/Case/describe/", described)
        .on("/sobjects/Case/updated/", resp(200, UPDATED))
        .on("/queryAll?q=", resp(400, invalid))
        .on("/sobjects/Case/describe/", resp(200, no_subject))
        .on("/sobjects/Case/updated/", resp(200, UPDATED))
        .on("/queryAll?q=", resp(200, &page(&[rec(1, T, false)], None)))
        .on(
            "/sobjects/Case/deleted/",
            resp(200, r#"{"deletedRecords":[]}"#),
        );
    let p = pull(&mut env, &helpdesk(), &req(None, 2000)).unwrap();
    assert_eq!(p.rows.len(), 1);
    let describes: Vec<_> = env
        .requests
        .iter()
        .filter(|r| r.url.contains("/describe/"))
        .collect();
    assert_eq!(describes.len(), 2);
    assert!(
        describes[1].headers.is_empty(),
        "no If-Modified-Since: {:?}",
        describes[1].headers
    );
    let fresh = &env.urls()[env.urls().len() - 1];
    assert!(!fresh.contains("Subject"), "{fresh}");

    // Refused again on a fresh describe: a failure, not a loop.
    let mut env = FakeHost::default();
    env.on("/sobjects/Case/describe/", resp(200, CASE_DESCRIBE))
        .on("/sobjects/Case/updated/", resp(200, UPDATED))
        .on("/queryAll?q=", resp(400, invalid))
        .on("/sobjects/Case/describe/", resp(200, CASE_DESCRIBE))
        .on("/sobjects/Case/updated/", resp(200, UPDATED))
        .on("/queryAll?q=", resp(400, invalid));
    let f = pull(&mut env, &helpdesk(), &req(None, 2000)).unwrap_err();
    assert_eq!(f.kind, FailureKind::Unknown);
}
