//! REST API behaviour: paging rules, error shapes, limits, describe, getUpdated/Deleted,
//! records and consistency effects driven through the control API.

mod common;

use common::*;
use serde_json::{Value, json};

fn body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn assert_error(status: u16, text: &str, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{text}");
    let v = body(text);
    let arr = v.as_array().expect("error bodies are arrays");
    assert_eq!(arr[0]["errorCode"], code, "{text}");
    assert!(arr[0]["message"].is_string());
}

#[tokio::test]
async fn paging_rules() {
    let emu = start().await;
    let tok = token(&emu).await;
    let truth = truth(&emu, "Case").await;
    let live = truth.iter().filter(|r| r["IsDeleted"] == false).count();
    let all = truth.len();
    for (endpoint, expected) in [("query", live), ("queryAll/", all)] {
        let soql = enc("SELECT Id, SystemModstamp FROM Case ORDER BY SystemModstamp, Id");
        let mut path = format!("/{endpoint}?q={soql}");
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let r = client()
                .get(if path.starts_with("/services") {
                    format!("{}{path}", emu.url)
                } else {
                    format!("{}/services/data/v62.0{path}", emu.url)
                })
                .bearer_auth(&tok)
                .header("Sforce-Query-Options", "batchSize=300")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let limit = r.headers()["sforce-limit-info"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(limit.starts_with("api-usage="), "{limit}");
            let v: Value = r.json().await.unwrap();
            pages += 1;
            assert_eq!(v["totalSize"], expected as u64, "totalSize on every page");
            let recs = v["records"].as_array().unwrap();
            assert!(recs.len() <= 300);
            seen.extend(recs.iter().map(|r| r["Id"].as_str().unwrap().to_string()));
            if v["done"] == true {
                assert!(
                    v.get("nextRecordsUrl").is_none(),
                    "last page has no nextRecordsUrl key"
                );
                break;
            }
            let next = v["nextRecordsUrl"].as_str().unwrap();
            assert!(next.starts_with("/services/data/v62.0/query/01g"), "{next}");
            assert!(next.ends_with(&format!("-{}", seen.len())), "{next}");
            path = next.to_string();
        }
        assert_eq!(seen.len(), expected);
        assert!(pages > 2);
    }
    // batchSize is clamped to at least 200.
    let r = client()
        .get(format!(
            "{}/services/data/v62.0/query?q={}",
            emu.url,
            enc("SELECT Id FROM Case")
        ))
        .bearer_auth(&tok)
        .header("Sforce-Query-Options", "batchSize=5")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 200);
    // Default page is 2,000 and an empty result is done with no records.
    let (_, _, t) = get(
        &emu,
        &tok,
        &format!(
            "/query?q={}",
            enc("SELECT Id FROM Case WHERE Subject = 'no such subject'")
        ),
    )
    .await;
    assert_eq!(
        body(&t),
        json!({"totalSize": 0, "done": true, "records": []})
    );
}

#[tokio::test]
async fn error_shapes() {
    let emu = start().await;
    let tok = token(&emu).await;
    // 401 INVALID_SESSION_ID
    let (s, _, t) = get(&emu, "bogus", "/limits").await;
    assert_error(s, &t, 401, "INVALID_SESSION_ID");
    assert_eq!(body(&t)[0]["message"], "Session expired or invalid");
    // 400 MALFORMED_QUERY, INVALID_FIELD (Row:Column), INVALID_TYPE
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!("/query?q={}", enc("SELECT Id FORM Case")),
    )
    .await;
    assert_error(s, &t, 400, "MALFORMED_QUERY");
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!("/query?q={}", enc("SELECT Id, Foo__c FROM Case")),
    )
    .await;
    assert_error(s, &t, 400, "INVALID_FIELD");
    assert!(
        body(&t)[0]["message"]
            .as_str()
            .unwrap()
            .contains("ERROR at Row:1:Column:")
    );
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!("/query?q={}", enc("SELECT Id FROM Nope")),
    )
    .await;
    assert_error(s, &t, 400, "INVALID_TYPE");
    assert!(
        body(&t)[0]["message"]
            .as_str()
            .unwrap()
            .contains("sObject type 'Nope' is not supported")
    );
    // Quoted datetime literal.
    let q = enc("SELECT Id FROM Case WHERE SystemModstamp > '2024-01-01T00:00:00Z'");
    let (s, _, t) = get(&emu, &tok, &format!("/query?q={q}")).await;
    assert_error(s, &t, 400, "INVALID_FIELD");
    // An unencoded '+' decodes to a space → MALFORMED_QUERY.
    let raw = "SELECT+Id+FROM+Case+WHERE+SystemModstamp+>+2024-01-01T00:00:00+00:00";
    let (s, _, t) = get(&emu, &tok, &format!("/query?q={raw}")).await;
    assert_error(s, &t, 400, "MALFORMED_QUERY");
    // Knowledge PublishStatus rule.
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!("/query?q={}", enc("SELECT Id FROM Knowledge__kav")),
    )
    .await;
    assert_error(s, &t, 400, "MALFORMED_QUERY");
    // 404 NOT_FOUND
    let (s, _, t) = get(&emu, &tok, "/sobjects/Nope/describe").await;
    assert_error(s, &t, 404, "NOT_FOUND");
    let (s, _, t) = get(&emu, &tok, "/sobjects/Case/500000000000000AAA").await;
    assert_error(s, &t, 404, "NOT_FOUND");
    // 400 INVALID_QUERY_LOCATOR
    let (s, _, t) = get(&emu, &tok, "/query/01g5e0000000000AAA-2000").await;
    assert_error(s, &t, 400, "INVALID_QUERY_LOCATOR");
    // 403 REQUEST_LIMIT_EXCEEDED once the daily limit is used up.
    control(&emu, "settings", json!({"api_daily_limit": 3})).await;
    let mut last = (0, String::new());
    for _ in 0..5 {
        let (s, h, t) = get(&emu, &tok, "/limits").await;
        assert!(h.contains_key("sforce-limit-info"));
        last = (s, t);
    }
    assert_error(last.0, &last.1, 403, "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(body(&last.1)[0]["message"], "TotalRequests Limit exceeded.");
    control(&emu, "settings", json!({"api_daily_limit": 100000})).await;
    // Faults: 503 HTML, QUERY_TIMEOUT, 500 UNKNOWN_EXCEPTION.
    control(&emu, "faults", json!({"method": "GET", "path_prefix": "/services/data/v62.0/query", "status": 503,
        "body": "<html><body>We are down for maintenance</body></html>", "content_type": "text/html"})).await;
    let (s, h, t) = get(
        &emu,
        &tok,
        &format!("/query?q={}", enc("SELECT Id FROM Case")),
    )
    .await;
    assert_eq!(s, 503);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(t.contains("maintenance"));
    control(&emu, "faults", json!({"faults": [
        {"path_prefix": "/services/data/v62.0/query", "errorCode": "QUERY_TIMEOUT", "message": "Your query request was running for too long."},
        {"path_prefix": "/services/data/v62.0/limits", "status": 500, "errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred."}
    ]})).await;
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!("/query?q={}", enc("SELECT Id FROM Case")),
    )
    .await;
    assert_error(s, &t, 400, "QUERY_TIMEOUT");
    let (s, _, t) = get(&emu, &tok, "/limits").await;
    assert_error(s, &t, 500, "UNKNOWN_EXCEPTION");
    // Faults are consumed.
    let (s, _, _) = get(&emu, &tok, "/limits").await;
    assert_eq!(s, 200);
    // 405 and 410.
    let r = client()
        .post(format!("{}/services/data/v62.0/limits", emu.url))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let (s, _, _) = get(&emu, &tok, "/services/data/v20.0/limits").await;
    assert_eq!(s, 410);
}

#[tokio::test]
async fn versions_resources_limits_describe() {
    let emu = start().await;
    let tok = token(&emu).await;
    let r = client()
        .get(format!("{}/services/data/", emu.url))
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("sforce-limit-info"));
    let v: Value = r.json().await.unwrap();
    let last = v.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"})
    );
    let (s, _, t) = get(&emu, &tok, "/").await;
    assert_eq!(s, 200);
    assert_eq!(body(&t)["query"], "/services/data/v62.0/query");
    // Limits reflect the real counter.
    let (_, h, t) = get(&emu, &tok, "/limits").await;
    let used: u64 = h["sforce-limit-info"]
        .to_str()
        .unwrap()
        .trim_start_matches("api-usage=")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let l = body(&t);
    assert_eq!(l["DailyApiRequests"]["Max"], 100000);
    assert_eq!(l["DailyApiRequests"]["Remaining"], 100000 - used);
    // Describe global and per object, with 304.
    let (s, h, t) = get(&emu, &tok, "/sobjects/").await;
    assert_eq!(s, 200);
    let lm = h["last-modified"].to_str().unwrap().to_string();
    let names: Vec<String> = body(&t)["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    for n in [
        "Case",
        "CaseComment",
        "EmailMessage",
        "CaseHistory",
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "User",
        "Task",
        "Knowledge__kav",
    ] {
        assert!(names.contains(&n.to_string()), "{n}");
    }
    let r = client()
        .get(format!(
            "{}/services/data/v62.0/sobjects/Case/describe/",
            emu.url
        ))
        .bearer_auth(&tok)
        .header("If-Modified-Since", &lm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let (s, _, t) = get(&emu, &tok, "/sobjects/Account/describe").await;
    assert_eq!(s, 200);
    let d = body(&t);
    assert_eq!(d["keyPrefix"], "001");
    let billing_city = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "BillingCity")
        .unwrap();
    assert_eq!(billing_city["compoundFieldName"], "BillingAddress");
    // Describe matches the data: every exported field is described.
    let truth = truth(&emu, "Account").await;
    let described: Vec<&str> = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for k in truth[0]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.starts_with('_'))
    {
        assert!(described.contains(&k.as_str()), "{k}");
    }
}

#[tokio::test]
async fn records_updated_deleted_and_consistency() {
    let emu = start().await;
    let tok = token(&emu).await;
    let cases = truth(&emu, "Case").await;
    let id = cases.iter().find(|c| c["IsDeleted"] == false).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    // Single record read with fields.
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!("/sobjects/Case/{id}?fields=Id,Subject"),
    )
    .await;
    assert_eq!(s, 200);
    let rec = body(&t);
    assert_eq!(rec["Id"], id.as_str());
    assert_eq!(rec["attributes"]["type"], "Case");
    // A mass update: many rows share one SystemModstamp; system-only keeps LastModifiedDate.
    let before = cases
        .iter()
        .find(|c| c["Id"] == id.as_str())
        .unwrap()
        .clone();
    let ids: Vec<String> = cases
        .iter()
        .filter(|c| c["IsDeleted"] == false)
        .take(5)
        .map(|c| c["Id"].as_str().unwrap().to_string())
        .collect();
    let r = control(
        &emu,
        "records",
        json!({"op": "update", "object": "Case", "ids": ids, "fields": {}, "system_only": true}),
    )
    .await;
    let stamp = r["results"][0]["SystemModstamp"]
        .as_str()
        .unwrap()
        .to_string();
    let after = truth(&emu, "Case")
        .await
        .into_iter()
        .find(|c| c["Id"] == id.as_str())
        .unwrap();
    assert_eq!(after["SystemModstamp"], stamp.as_str());
    assert_eq!(after["LastModifiedDate"], before["LastModifiedDate"]);
    let q = enc(&format!(
        "SELECT Id FROM Case WHERE SystemModstamp = {}",
        stamp.replace("+0000", "Z")
    ));
    let (_, _, t) = get(&emu, &tok, &format!("/query?q={q}")).await;
    assert_eq!(body(&t)["totalSize"], 5);
    // Visibility lag: an insert is hidden until its visible-at time.
    let r = control(&emu, "records", json!({"op": "insert", "object": "Case", "fields": {"Subject": "late ✓"}, "visible_after_ms": 1500})).await;
    let new_id = r["results"][0]["id"].as_str().unwrap().to_string();
    let q = enc("SELECT Id FROM Case WHERE Subject = 'late ✓'");
    let (_, _, t) = get(&emu, &tok, &format!("/query?q={q}")).await;
    assert_eq!(body(&t)["totalSize"], 0);
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let (_, _, t) = get(&emu, &tok, &format!("/query?q={q}")).await;
    assert_eq!(body(&t)["records"][0]["Id"], new_id.as_str());
    // Soft delete: hidden from /query, shown by /queryAll and /deleted; purge hides it.
    control(
        &emu,
        "records",
        json!({"op": "delete", "object": "Case", "id": new_id}),
    )
    .await;
    let (_, _, t) = get(&emu, &tok, &format!("/query?q={q}")).await;
    assert_eq!(body(&t)["totalSize"], 0);
    let (_, _, t) = get(
        &emu,
        &tok,
        &format!(
            "/queryAll?q={}",
            enc("SELECT Id, IsDeleted FROM Case WHERE Subject = 'late ✓'")
        ),
    )
    .await;
    assert_eq!(body(&t)["records"][0]["IsDeleted"], true);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let now = time::OffsetDateTime::now_utc();
    let start = (now - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let end = (now + time::Duration::minutes(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!(
            "/sobjects/Case/deleted/?start={}&end={}",
            enc(&start),
            enc(&end)
        ),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let d = body(&t);
    assert!(
        d["latestDateCovered"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000")
    );
    assert!(d["earliestDateAvailable"].is_string());
    let _ = d["deletedRecords"].as_array().unwrap();
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!(
            "/sobjects/Case/updated/?start={}&end={}",
            enc(&start),
            enc(&end)
        ),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert!(body(&t)["ids"].is_array());
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!(
            "/sobjects/Case/updated/?start={}&end={}",
            enc(&end),
            enc(&start)
        ),
    )
    .await;
    assert_error(s, &t, 400, "INVALID_REPLICATION_DATE");
    control(
        &emu,
        "records",
        json!({"op": "purge", "object": "Case", "id": new_id}),
    )
    .await;
    let (_, _, t) = get(
        &emu,
        &tok,
        &format!(
            "/queryAll?q={}",
            enc("SELECT Id FROM Case WHERE Subject = 'late ✓'")
        ),
    )
    .await;
    assert_eq!(body(&t)["totalSize"], 0);
    let truth_rows = truth(&emu, "Case").await;
    assert!(
        truth_rows
            .iter()
            .any(|c| c["Id"] == new_id.as_str() && c["_purged"] == true)
    );
}

#[tokio::test]
async fn knowledge_publish_creates_new_version() {
    let emu = start().await;
    let tok = token(&emu).await;
    let q = enc(
        "SELECT Id, KnowledgeArticleId FROM Knowledge__kav WHERE PublishStatus = 'Online' AND Language = 'en_US' ORDER BY SystemModstamp, Id",
    );
    let (_, _, t) = get(&emu, &tok, &format!("/query?q={q}")).await;
    let v = body(&t);
    let first = &v["records"][0];
    let (old_id, article) = (
        first["Id"].as_str().unwrap().to_string(),
        first["KnowledgeArticleId"].as_str().unwrap().to_string(),
    );
    let r = control(&emu, "records", json!({"op": "publish", "object": "Knowledge__kav", "id": article, "fields": {"Title": "Updated title"}})).await;
    let new_id = r["results"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    let q = enc(&format!(
        "SELECT Id, PublishStatus, IsLatestVersion FROM Knowledge__kav WHERE KnowledgeArticleId = '{article}' AND PublishStatus = 'Online' AND Language = 'en_US'"
    ));
    let (_, _, t) = get(&emu, &tok, &format!("/query?q={q}")).await;
    let v = body(&t);
    assert_eq!(v["totalSize"], 1);
    assert_eq!(v["records"][0]["Id"], new_id.as_str());
    let (_, _, t) = get(
        &emu,
        &tok,
        &format!(
            "/query?q={}",
            enc(&format!(
                "SELECT PublishStatus FROM Knowledge__kav WHERE Id = '{old_id}'"
            ))
        ),
    )
    .await;
    assert_eq!(body(&t)["records"][0]["PublishStatus"], "Archived");
}

#[tokio::test]
async fn control_api_requires_its_key() {
    let emu = start_empty().await;
    let r = client()
        .post(format!("{}/__emulator/tokens/expire", emu.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let tok = token(&emu).await;
    let r = client()
        .post(format!("{}/__emulator/tokens/expire", emu.url))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a Salesforce token is not a control key");
    let stats: Value = client()
        .get(format!("{}/__emulator/stats", emu.url))
        .bearer_auth(&emu.control_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["tokens_issued"], 1);
    // Expire ends the token.
    control(&emu, "tokens/expire", json!({})).await;
    let (s, _, _) = get(&emu, &tok, "/limits").await;
    assert_eq!(s, 401);
    // Empty dataset: only the integration user.
    let users = truth(&emu, "User").await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["Username"], emu.username.as_str());
}

/// URLs longer than 16,384 bytes get 414 from the front end, without counting an API call;
/// a URL that fits but does not leave room for the headers within the same 16,384 bytes gets
/// 431.
#[tokio::test]
async fn overlong_urls_get_414() {
    let emu = start().await;
    let tok = token(&emu).await;
    let base = format!("{}/services/data/v62.0/query?q=", emu.url);
    let fits = |extra: usize| {
        let pad = format!(
            "SELECT Id FROM Case WHERE Subject != '{}'",
            "x".repeat(extra)
        );
        format!("{base}{}", enc(&pad))
    };
    let short = fits(100);
    let overhead = short.len() - 100;
    // Authorization and Accept fit in 400 bytes.
    let with_headers = fits(16_384 - 400 - overhead);
    let r = client()
        .get(&with_headers)
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "URL and headers within the limit are accepted"
    );
    let at_limit = fits(16_384 - overhead);
    assert_eq!(at_limit.len(), 16_384);
    let r = client()
        .get(&at_limit)
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431, "the URL fits, the headers do not");
    let r = client()
        .get(&short)
        .bearer_auth(&tok)
        .header("X-Pad", "p".repeat(16_384))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431, "a short URL with huge headers");
    let over = fits(16_385 - overhead);
    let r = client().get(&over).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), 414);
}
