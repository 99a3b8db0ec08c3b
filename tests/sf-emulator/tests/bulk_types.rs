//! Field types Bulk API 2.0 treats apart: `json` fields cannot be selected in a Bulk query,
//! and `anyType` values are CSV text while REST answers them typed.

mod common;

use common::*;
use serde_json::{Value, json};

async fn create_job(emu: &sf_emulator::Emulator, tok: &str, soql: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{}/services/data/v62.0/jobs/query", emu.url))
        .bearer_auth(tok)
        .json(&json!({"operation": "query", "query": soql}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn json_fields_are_refused_by_bulk_and_read_by_rest() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    control(
        &emu,
        "schema/Case/fields",
        json!({"name": "Payload__c", "type": "json"}),
    )
    .await;
    let r = control(
        &emu,
        "records",
        json!({"op": "insert", "object": "Case", "fields": {"Subject": "s", "Payload__c": "{\"a\":[1,2]}"}}),
    )
    .await;
    let id = r["results"][0]["id"].as_str().unwrap().to_string();

    let (status, _, body) = get(&emu, &tok, "/sobjects/Case/describe").await;
    assert_eq!(status, 200);
    let describe: Value = serde_json::from_str(&body).unwrap();
    let field = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Payload__c")
        .unwrap();
    assert_eq!(field["type"], "json");
    assert_eq!(field["filterable"], false);

    let soql = enc("SELECT Id, Payload__c FROM Case");
    let (status, _, body) = get(&emu, &tok, &format!("/query?q={soql}")).await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["records"][0]["Id"], id.as_str());
    assert_eq!(page["records"][0]["Payload__c"], "{\"a\":[1,2]}");

    let (status, err) = create_job(&emu, &tok, "SELECT Id, Payload__c FROM Case").await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err[0]["errorCode"], "API_ERROR", "{err}");
    assert!(
        err[0]["message"].as_str().unwrap().contains("Payload__c"),
        "{err}"
    );
    let (status, job) = create_job(&emu, &tok, "SELECT Id, Subject FROM Case").await;
    assert_eq!(status, 200, "{job}");
}

#[tokio::test]
async fn any_type_values_are_typed_in_rest_and_text_in_bulk() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    let case = control(
        &emu,
        "records",
        json!({"op": "insert", "object": "Case", "fields": {"Subject": "s"}}),
    )
    .await["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    control(
        &emu,
        "records",
        json!({"op": "insert", "object": "CaseHistory", "fields": {
            "CaseId": case, "Field": "IsEscalated", "OldValue": false, "NewValue": 42}}),
    )
    .await;
    let soql = "SELECT OldValue, NewValue FROM CaseHistory";
    let (_, _, body) = get(&emu, &tok, &format!("/query?q={}", enc(soql))).await;
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["records"][0]["OldValue"], false);
    assert_eq!(page["records"][0]["NewValue"], 42);
    let id = completed_bulk_job(&emu, &tok, json!({"operation": "query", "query": soql})).await;
    let csv = client()
        .get(format!(
            "{}/services/data/v62.0/jobs/query/{id}/results",
            emu.url
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv, "\"OldValue\",\"NewValue\"\n\"false\",\"42\"\n");
}
