//! Salesforce behaviours that break incremental sync: query locators bound to their session,
//! idle and capped locators, archived activities, fields deleted or hidden, Knowledge article
//! deletion and the archived-versions permission.

mod common;

use common::*;
use serde_json::{Value, json};

fn body(t: &str) -> Value {
    serde_json::from_str(t).unwrap_or_else(|e| panic!("{e}: {t}"))
}

async fn settings(emu: &sf_emulator::Emulator, s: Value) {
    control(emu, "settings", s).await;
}

/// `/query` of `soql` with 200-row pages; returns the first page.
async fn first_page(emu: &sf_emulator::Emulator, tok: &str, endpoint: &str, soql: &str) -> Value {
    let r = client()
        .get(format!(
            "{}/services/data/v62.0/{endpoint}?q={}",
            emu.url,
            enc(soql)
        ))
        .bearer_auth(tok)
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn next_page(emu: &sf_emulator::Emulator, tok: &str, page: &Value) -> (u16, String) {
    let next = page["nextRecordsUrl"].as_str().expect("a next page");
    let (status, _, text) = get(emu, tok, next).await;
    (status, text)
}

const CASES: &str = "SELECT Id FROM Case ORDER BY SystemModstamp, Id";

#[tokio::test]
async fn a_locator_dies_with_its_session_and_a_new_token_does_not_revive_it() {
    let emu = start().await;
    let (a, b) = (token(&emu).await, token(&emu).await);
    let page = first_page(&emu, &a, "query", CASES).await;
    // Another live session of the same user may follow it.
    let (status, _) = next_page(&emu, &b, &page).await;
    assert_eq!(status, 200);
    let page = first_page(&emu, &a, "query", CASES).await;
    let r = client()
        .post(format!("{}/services/oauth2/revoke", emu.url))
        .form(&[("token", a.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, text) = next_page(&emu, &b, &page).await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(body(&text)[0]["errorCode"], "INVALID_SESSION_ID");
    // The new session still queries.
    let again = first_page(&emu, &b, "query", CASES).await;
    assert!(again["records"].as_array().unwrap().len() == 200);
    // Unbound, as the setting allows, the locator outlives its session.
    settings(&emu, json!({"locators_bound_to_session": false})).await;
    let (status, text) = next_page(&emu, &b, &page).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn idle_locators_expire_and_the_oldest_is_dropped_over_the_cap() {
    let emu = start().await;
    let tok = token(&emu).await;
    settings(&emu, json!({"max_open_locators_per_user": 2})).await;
    let first = first_page(&emu, &tok, "query", CASES).await;
    let second = first_page(&emu, &tok, "query", CASES).await;
    let third = first_page(&emu, &tok, "queryAll", CASES).await;
    let (status, text) = next_page(&emu, &tok, &first).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(body(&text)[0]["errorCode"], "INVALID_QUERY_LOCATOR");
    assert_eq!(next_page(&emu, &tok, &second).await.0, 200);
    assert_eq!(next_page(&emu, &tok, &third).await.0, 200);

    settings(
        &emu,
        json!({"max_open_locators_per_user": 0, "locator_idle_timeout_s": 1}),
    )
    .await;
    let page = first_page(&emu, &tok, "query", CASES).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, text) = next_page(&emu, &tok, &page).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(body(&text)[0]["errorCode"], "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn archived_tasks_leave_query_but_not_query_all() {
    let emu = start().await;
    let tok = token(&emu).await;
    let task = truth(&emu, "Task")
        .await
        .into_iter()
        .find(|t| t["IsDeleted"] == false)
        .unwrap();
    let id = task["Id"].as_str().unwrap().to_string();
    let r = control(
        &emu,
        "records",
        json!({"op": "archive", "object": "Task", "id": id}),
    )
    .await;
    assert!(r["results"][0]["ids"].is_array(), "{r}");
    let soql = format!("SELECT Id, IsArchived, SystemModstamp FROM Task WHERE Id = '{id}'");
    let (_, _, t) = get(&emu, &tok, &format!("/query?q={}", enc(&soql))).await;
    assert_eq!(body(&t)["totalSize"], 0, "{t}");
    let (_, _, t) = get(&emu, &tok, &format!("/queryAll?q={}", enc(&soql))).await;
    let v = body(&t);
    assert_eq!(v["totalSize"], 1, "{t}");
    assert_eq!(v["records"][0]["IsArchived"], true);
    assert_eq!(
        v["records"][0]["SystemModstamp"], task["SystemModstamp"],
        "archiving moves no timestamp"
    );
    let bad = client()
        .post(format!("{}/__emulator/records", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .json(&json!({"op": "archive", "object": "Case", "id": "500000000000001AAA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn deleted_and_hidden_fields_are_invalid_fields() {
    let emu = start().await;
    let tok = token(&emu).await;
    let soql = |f: &str| {
        format!(
            "/query?q={}",
            enc(&format!("SELECT Id, {f} FROM Case LIMIT 1"))
        )
    };
    control(
        &emu,
        "schema/Case/fields",
        json!({"fields": [{"name": "Gone__c", "type": "string"}]}),
    )
    .await;
    let (_, head, _) = get(&emu, &tok, "/sobjects/Case/describe/").await;
    let before = head["last-modified"].to_str().unwrap().to_string();
    let key = ("X-Emulator-Key", emu.control_key.clone());
    let r = client()
        .delete(format!("{}/__emulator/schema/Case/fields/Gone__c", emu.url))
        .header(key.0, &key.1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, text) = get(&emu, &tok, &soql("Gone__c")).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(body(&text)[0]["errorCode"], "INVALID_FIELD");
    let (_, head, text) = get(&emu, &tok, "/sobjects/Case/describe/").await;
    assert!(!text.contains("Gone__c"));
    assert_ne!(head["last-modified"].to_str().unwrap(), before);
    assert!(truth(&emu, "Case").await[0].get("Gone__c").is_none());

    // Field-level security: hidden from the user, describe's Last-Modified unchanged.
    let (_, head, _) = get(&emu, &tok, "/sobjects/Case/describe/").await;
    let before = head["last-modified"].to_str().unwrap().to_string();
    let r = client()
        .post(format!(
            "{}/__emulator/schema/Case/fields/Priority/visibility",
            emu.url
        ))
        .header(key.0, &key.1)
        .json(&json!({"visible": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, text) = get(&emu, &tok, &soql("Priority")).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(body(&text)[0]["errorCode"], "INVALID_FIELD");
    let (_, head, text) = get(&emu, &tok, "/sobjects/Case/describe/").await;
    assert!(!text.contains("\"Priority\""));
    assert_eq!(head["last-modified"].to_str().unwrap(), before);
    // Standard fields cannot be deleted, Id cannot be hidden.
    let r = client()
        .delete(format!("{}/__emulator/schema/Case/fields/Subject", emu.url))
        .header(key.0, &key.1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .post(format!(
            "{}/__emulator/schema/Case/fields/Id/visibility",
            emu.url
        ))
        .header(key.0, &key.1)
        .json(&json!({"visible": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn deleting_an_article_removes_every_version_and_archived_versions_need_a_permission() {
    let emu = start().await;
    let tok = token(&emu).await;
    let versions = |status: &str| {
        format!(
            "/query?q={}",
            enc(&format!(
                "SELECT Id, KnowledgeArticleId FROM Knowledge__kav WHERE PublishStatus = '{status}'"
            ))
        )
    };
    let (_, _, t) = get(&emu, &tok, &versions("Archived")).await;
    let archived = body(&t)["totalSize"].as_u64().unwrap();
    assert!(archived > 0, "the demo data has archived versions");
    settings(&emu, json!({"knowledge_archived_visible": false})).await;
    let (_, _, t) = get(&emu, &tok, &versions("Archived")).await;
    assert_eq!(body(&t)["totalSize"], 0, "no View Archived Articles");
    settings(&emu, json!({"knowledge_archived_visible": true})).await;

    let (_, _, t) = get(&emu, &tok, &versions("Archived")).await;
    let article = body(&t)["records"][0]["KnowledgeArticleId"]
        .as_str()
        .unwrap()
        .to_string();
    let r = control(
        &emu,
        "records",
        json!({"op": "delete_article", "object": "Knowledge__kav", "id": article}),
    )
    .await;
    assert!(r["results"][0]["ids"].as_array().unwrap().len() >= 2, "{r}");
    let all = format!(
        "/query?q={}",
        enc(&format!(
            "SELECT Id FROM Knowledge__kav WHERE KnowledgeArticleId = '{article}' AND PublishStatus = 'Online'"
        ))
    );
    let (_, _, t) = get(&emu, &tok, &all).await;
    assert_eq!(body(&t)["totalSize"], 0);
    let q_all = all.replacen("/query?", "/queryAll?", 1);
    let (status, _, t) = get(&emu, &tok, &q_all).await;
    assert_eq!(status, 400, "{t}");
    assert_eq!(body(&t)[0]["errorCode"], "INVALID_TYPE_FOR_OPERATION");
}

#[tokio::test]
async fn the_delete_log_needs_more_than_a_minute_and_can_be_purged_early() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    let ins = control(
        &emu,
        "records",
        json!({"op": "insert", "object": "Case", "fields": {"Subject": "x"}}),
    )
    .await;
    let id = ins["results"][0]["id"].as_str().unwrap().to_string();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let now = time::OffsetDateTime::now_utc();
    // Deleted ten minutes ago: inside the minutes the log already covers.
    let when = fmt(now - time::Duration::minutes(10));
    control(
        &emu,
        "records",
        json!({"op": "purge", "object": "Case", "id": id, "SystemModstamp": when}),
    )
    .await;
    let deleted = |start: time::OffsetDateTime, end: time::OffsetDateTime| {
        format!(
            "/sobjects/Case/deleted/?start={}&end={}",
            enc(&fmt(start)),
            enc(&fmt(end))
        )
    };
    let minute = time::Duration::minutes(1);
    let (s, _, t) = get(&emu, &tok, &deleted(now - minute, now)).await;
    assert_eq!(s, 400, "{t}");
    assert_eq!(body(&t)[0]["errorCode"], "INVALID_REPLICATION_DATE");
    let range = deleted(now - time::Duration::hours(1), now + 2 * minute);
    let (s, _, t) = get(&emu, &tok, &range).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(body(&t)["deletedRecords"].as_array().unwrap().len(), 1);
    // An overflowing log: earliestDateAvailable moves up and older deletes are gone from it.
    settings(&emu, json!({"delete_log_retention_s": 0})).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (_, _, t) = get(&emu, &tok, &range).await;
    let d = body(&t);
    assert_eq!(d["deletedRecords"].as_array().unwrap().len(), 0, "{t}");
    let earliest = time::OffsetDateTime::parse(
        &d["earliestDateAvailable"]
            .as_str()
            .unwrap()
            .replace("+0000", "Z"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(earliest > now - time::Duration::hours(1), "{t}");
}

#[tokio::test]
async fn formula_fields_change_without_a_timestamp_and_can_make_a_query_too_complicated() {
    let emu = start().await;
    let tok = token(&emu).await;
    control(
        &emu,
        "schema/Case/fields",
        json!({"fields": [
            {"name": "Age_Days__c", "type": "double", "calculated": true},
            {"name": "Tier__c", "type": "string", "calculated": true},
            {"name": "Plain__c", "type": "string"}
        ]}),
    )
    .await;
    let (_, _, d) = get(&emu, &tok, "/sobjects/Case/describe/").await;
    let d = body(&d);
    let field = |n: &str| {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(field("Age_Days__c")["calculated"], true);
    assert_eq!(field("Plain__c")["calculated"], false);
    let case = truth(&emu, "Case").await.into_iter().next().unwrap();
    let id = case["Id"].as_str().unwrap().to_string();
    control(
        &emu,
        "records",
        json!({"op": "recalc", "object": "Case", "ids": [&id], "fields": {"Age_Days__c": 42.0}}),
    )
    .await;
    let soql = format!("SELECT Age_Days__c, SystemModstamp FROM Case WHERE Id = '{id}'");
    let (_, _, t) = get(&emu, &tok, &format!("/queryAll?q={}", enc(&soql))).await;
    let v = body(&t);
    assert_eq!(v["records"][0]["Age_Days__c"], 42.0);
    assert_eq!(v["records"][0]["SystemModstamp"], case["SystemModstamp"]);
    let bad = client()
        .post(format!("{}/__emulator/records", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .json(&json!({"op": "recalc", "object": "Case", "ids": [&id], "fields": {"Plain__c": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "only formula fields recalculate");

    settings(&emu, json!({"max_formula_fields_per_query": 1})).await;
    let both = enc("SELECT Id, Age_Days__c, Tier__c FROM Case LIMIT 1");
    let (s, _, t) = get(&emu, &tok, &format!("/query?q={both}")).await;
    assert_eq!(s, 400, "{t}");
    assert_eq!(body(&t)[0]["errorCode"], "QUERY_TOO_COMPLICATED");
    let one = enc("SELECT Id, Age_Days__c, Plain__c FROM Case LIMIT 1");
    let (s, _, t) = get(&emu, &tok, &format!("/query?q={one}")).await;
    assert_eq!(s, 200, "{t}");
}
