//! A Bulk API 2.0 query job end to end; its CSV, read by the `csv` crate, matches the
//! REST query values.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn bulk_job_end_to_end_matches_rest() {
    let emu = start().await;
    let tok = token(&emu).await;
    let soql = "SELECT Id, CaseNumber, Subject, Description, Status, IsClosed, Account.Name, CreatedDate, SystemModstamp FROM Case WHERE IsClosed = false ORDER BY SystemModstamp, Id";
    let base = format!("{}/services/data/v62.0", emu.url);
    let c = client();
    let job: Value = c
        .post(format!("{base}/jobs/query"))
        .bearer_auth(&tok)
        .json(&json!({"operation": "query", "query": soql}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "UploadComplete");
    assert!(job["id"].as_str().unwrap().starts_with("750"));
    let id = job["id"].as_str().unwrap().to_string();
    // Results before completion are refused.
    let r = c
        .get(format!("{base}/jobs/query/{id}/results"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let mut state = String::new();
    for _ in 0..10 {
        let j: Value = c
            .get(format!("{base}/jobs/query/{id}"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        state = j["state"].as_str().unwrap().to_string();
        if state == "JobComplete" {
            assert_eq!(j["jobType"], "V2Query");
            break;
        }
    }
    assert_eq!(state, "JobComplete");
    // Other API version → 409.
    let r = c
        .get(format!(
            "{}/services/data/v61.0/jobs/query/{id}/results",
            emu.url
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // Read every chunk.
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String>;
    let mut locator: Option<String> = None;
    let mut chunks = 0;
    loop {
        let url = match &locator {
            Some(l) => format!("{base}/jobs/query/{id}/results?maxRecords=250&locator={l}"),
            None => format!("{base}/jobs/query/{id}/results?maxRecords=250"),
        };
        let r = c.get(url).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/csv");
        let n: usize = r.headers()["sforce-numberofrecords"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let next = r.headers()["sforce-locator"].to_str().unwrap().to_string();
        let text = r.text().await.unwrap();
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        header = rd.headers().unwrap().iter().map(str::to_string).collect();
        let before = rows.len();
        for rec in rd.records() {
            rows.push(rec.unwrap().iter().map(str::to_string).collect());
        }
        assert_eq!(rows.len() - before, n);
        chunks += 1;
        if next == "null" {
            break;
        }
        locator = Some(next);
    }
    assert!(chunks > 1);
    assert_eq!(
        header,
        [
            "Id",
            "CaseNumber",
            "Subject",
            "Description",
            "Status",
            "IsClosed",
            "Account.Name",
            "CreatedDate",
            "SystemModstamp"
        ]
    );
    // The same query over REST.
    let mut rest: Vec<Value> = Vec::new();
    let mut path = format!("/services/data/v62.0/query?q={}", enc(soql));
    loop {
        let (_, _, t) = get(&emu, &tok, &path).await;
        let v: Value = serde_json::from_str(&t).unwrap();
        rest.extend(v["records"].as_array().unwrap().iter().cloned());
        match v.get("nextRecordsUrl") {
            Some(n) => path = n.as_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(rows.len(), rest.len());
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (csv_row, rec) in rows.iter().zip(&rest) {
        for (i, col) in header.iter().enumerate() {
            let want = match col.split_once('.') {
                Some((rel, f)) => rec[rel].get(f).map(text).unwrap_or_default(),
                None => text(&rec[col.as_str()]),
            };
            assert_eq!(csv_row[i], want, "column {col}");
        }
    }
    // Delete after download; non-terminal jobs must be aborted first.
    let r = c
        .delete(format!("{base}/jobs/query/{id}"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let j: Value = c
        .post(format!("{base}/jobs/query"))
        .bearer_auth(&tok)
        .json(&json!({"operation": "queryAll", "query": "SELECT Id FROM Account"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id2 = j["id"].as_str().unwrap();
    let r = c
        .delete(format!("{base}/jobs/query/{id2}"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let a: Value = c
        .patch(format!("{base}/jobs/query/{id2}"))
        .bearer_auth(&tok)
        .json(&json!({"state": "Aborted"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["state"], "Aborted");
    // Compound fields are refused.
    let r = c
        .post(format!("{base}/jobs/query"))
        .bearer_auth(&tok)
        .json(&json!({"operation": "query", "query": "SELECT Id, BillingAddress FROM Account"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
