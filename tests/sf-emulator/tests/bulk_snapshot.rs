//! Bulk API 2.0 results are a snapshot taken when the job completes and are kept seven days
//! ("Get Results for a Query Job"): writes after completion never show in any page, pages
//! re-read later are identical, and an aged job's results answer 404.

mod common;

use common::*;
use serde_json::json;

/// The results page of job `id` at `locator` (None: the first), and the next locator.
async fn page(
    emu: &sf_emulator::Emulator,
    tok: &str,
    id: &str,
    locator: Option<&str>,
) -> (u16, String, String) {
    let mut url = format!(
        "{}/services/data/v62.0/jobs/query/{id}/results?maxRecords=2",
        emu.url
    );
    if let Some(l) = locator {
        url.push_str(&format!("&locator={l}"));
    }
    let r = client().get(url).bearer_auth(tok).send().await.unwrap();
    let status = r.status().as_u16();
    let next = r
        .headers()
        .get("sforce-locator")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, next, r.text().await.unwrap())
}

async fn insert_cases(emu: &sf_emulator::Emulator, n: usize) -> Vec<String> {
    let ops: Vec<_> = (0..n)
        .map(|i| json!({"op": "insert", "object": "Case", "fields": {"Subject": format!("before {i}")}}))
        .collect();
    let r = control(emu, "records", json!({ "ops": ops })).await;
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn results_do_not_change_after_the_job_completes() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    let ids = insert_cases(&emu, 4).await;
    let soql = "SELECT Id, Subject FROM Case ORDER BY Id";
    let id = completed_bulk_job(&emu, &tok, json!({"operation": "query", "query": soql})).await;
    // Written after completion, before the first page is read.
    control(
        &emu,
        "records",
        json!({"op": "update", "object": "Case", "ids": [&ids[0]], "fields": {"Subject": "after"}}),
    )
    .await;
    let (status, next, first) = page(&emu, &tok, &id, None).await;
    assert_eq!(status, 200);
    assert!(
        first.contains("before 0") && !first.contains("after"),
        "{first}"
    );
    // Written between pages: a later page still shows the state at completion.
    control(
        &emu,
        "records",
        json!({"ops": [
            {"op": "update", "object": "Case", "ids": [&ids[3]], "fields": {"Subject": "after"}},
            {"op": "purge", "object": "Case", "id": &ids[2]},
            {"op": "insert", "object": "Case", "fields": {"Subject": "new"}},
        ]}),
    )
    .await;
    let (status, last_locator, second) = page(&emu, &tok, &id, Some(&next)).await;
    assert_eq!(status, 200);
    assert_eq!(last_locator, "null");
    assert!(
        second.contains("before 2") && second.contains("before 3") && !second.contains("after"),
        "{second}"
    );
    assert!(!second.contains("new"), "{second}");
    // Locators are stable: the first page again is unchanged.
    assert_eq!(page(&emu, &tok, &id, None).await.2, first);
    // A new job sees the writes.
    let id2 = completed_bulk_job(&emu, &tok, json!({"operation": "query", "query": soql})).await;
    let (_, next2, now_first) = page(&emu, &tok, &id2, None).await;
    let (_, _, now_second) = page(&emu, &tok, &id2, Some(&next2)).await;
    let all = format!("{now_first}{now_second}");
    assert!(
        all.contains("\"after\"") && all.contains("\"new\""),
        "{all}"
    );
    assert!(!all.contains("before 2"), "{all}");
}

#[tokio::test]
async fn results_are_kept_seven_days() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    insert_cases(&emu, 1).await;
    let soql = "SELECT Id, Subject FROM Case";
    let id = completed_bulk_job(&emu, &tok, json!({"operation": "query", "query": soql})).await;
    let aged = control(&emu, "jobs/age", json!({"days": 6})).await;
    assert_eq!(aged["aged"], 1);
    assert_eq!(page(&emu, &tok, &id, None).await.0, 200, "six days old");
    control(&emu, "jobs/age", json!({"days": 2})).await;
    let (status, _, body) = page(&emu, &tok, &id, None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("NOT_FOUND"), "{body}");
}
