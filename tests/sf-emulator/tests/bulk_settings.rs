//! Bulk settings: the CSV datetime suffix (UNVERIFIED `+0000` vs `Z`) and objects Bulk
//! refuses with `INVALIDENTITY`.

mod common;

use common::*;
use serde_json::{Value, json};

/// Creates a job, polls it to completion and returns the CSV of its first chunk.
async fn run_job(emu: &sf_emulator::Emulator, tok: &str, soql: &str) -> String {
    let base = format!("{}/services/data/v62.0", emu.url);
    let job = json!({"operation": "query", "query": soql, "lineEnding": "CRLF"});
    let id = completed_bulk_job(emu, tok, job).await;
    let r = client()
        .get(format!("{base}/jobs/query/{id}/results?maxRecords=3"))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn bulk_datetime_suffix_setting() {
    let emu = start().await;
    let tok = token(&emu).await;
    let soql = "SELECT Id, CreatedDate FROM Case ORDER BY CreatedDate, Id";
    let csv = run_job(&emu, &tok, soql).await;
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[1].ends_with(".000+0000\""), "{csv}");

    let s = control(&emu, "settings", json!({"bulk_datetime_suffix": "Z"})).await;
    assert_eq!(s["bulk_datetime_suffix"], "Z");
    let csv = run_job(&emu, &tok, soql).await;
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4, "{csv}");
    for l in &lines[1..] {
        assert!(l.ends_with(".000Z\""), "{csv}");
        assert!(!l.contains("+0000"), "{csv}");
    }
    // Anything else is refused.
    let r = client()
        .post(format!("{}/__emulator/settings", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .json(&json!({"bulk_datetime_suffix": "+00:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn bulk_unsupported_objects_answer_invalidentity() {
    let emu = start().await;
    let tok = token(&emu).await;
    control(
        &emu,
        "settings",
        json!({"bulk_unsupported_objects": ["casehistory"]}),
    )
    .await;
    let r = client()
        .post(format!("{}/services/data/v62.0/jobs/query", emu.url))
        .bearer_auth(&tok)
        .json(&json!({"operation": "query", "query": "SELECT Id FROM CaseHistory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b[0]["errorCode"], "INVALIDENTITY", "{b}");
    assert_eq!(
        b[0]["message"],
        "Entity 'CaseHistory' is not supported by the Bulk API."
    );
    // Other objects still work.
    let csv = run_job(&emu, &tok, "SELECT Id FROM Case").await;
    assert!(csv.starts_with("\"Id\"\r\n"), "{csv}");
}
