//! Field types Bulk API 2.0 treats apart: `json` fields cannot be selected in a Bulk query,
//! `anyType` values are CSV text while REST answers them typed, and `junctionidlist` values
//! are joined text while REST answers a JSON array of Ids.

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

async fn bulk_csv(emu: &sf_emulator::Emulator, tok: &str, soql: &str) -> String {
    let id = completed_bulk_job(emu, tok, json!({"operation": "query", "query": soql})).await;
    client()
        .get(format!(
            "{}/services/data/v62.0/jobs/query/{id}/results",
            emu.url
        ))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn insert(emu: &sf_emulator::Emulator, object: &str, fields: Value) -> String {
    control(
        emu,
        "records",
        json!({"op": "insert", "object": object, "fields": fields}),
    )
    .await["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn junction_id_lists_are_arrays_in_rest_and_joined_text_in_bulk() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    let ann = insert(&emu, "Contact", json!({"LastName": "Ann"})).await;
    let bob = insert(&emu, "Contact", json!({"LastName": "Bob"})).await;
    let shared = insert(
        &emu,
        "Task",
        json!({"Subject": "a", "WhoId": ann, "TaskWhoIds": [ann, bob]}),
    )
    .await;
    let alone = insert(&emu, "Task", json!({"Subject": "b"})).await;

    let (_, _, body) = get(&emu, &tok, "/sobjects/Task/describe").await;
    let describe: Value = serde_json::from_str(&body).unwrap();
    let field = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "TaskWhoIds")
        .unwrap();
    assert_eq!(field["type"], "junctionidlist");
    assert_eq!(field["soapType"], "urn:JunctionIdListNames");
    assert_eq!(field["filterable"], false);
    assert_eq!(field["sortable"], false);

    let soql = "SELECT Id, TaskWhoIds FROM Task ORDER BY Subject";
    let (_, _, body) = get(&emu, &tok, &format!("/query?q={}", enc(soql))).await;
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["records"][0]["TaskWhoIds"], json!([ann, bob]));
    assert_eq!(page["records"][1]["TaskWhoIds"], Value::Null);
    let (_, _, body) = get(&emu, &tok, &format!("/sobjects/Task/{shared}")).await;
    let record: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(record["TaskWhoIds"], json!([ann, bob]));
    let truth = truth(&emu, "Task").await;
    let row = truth.iter().find(|r| r["Id"] == shared.as_str()).unwrap();
    assert_eq!(row["TaskWhoIds"], json!([ann, bob]));

    let soql = "SELECT Id, TaskWhoIds FROM Task";
    let csv = bulk_csv(&emu, &tok, soql).await;
    assert!(
        csv.contains(&format!("\"{shared}\",\"{ann};{bob}\"\n")),
        "{csv}"
    );
    assert!(csv.contains(&format!("\"{alone}\",\"\"\n")), "{csv}");

    let s = control(&emu, "settings", json!({"junction_id_separator": ","})).await;
    assert_eq!(s["junction_id_separator"], ",");
    let csv = bulk_csv(&emu, &tok, soql).await;
    assert!(
        csv.contains(&format!("\"{shared}\",\"{ann},{bob}\"\n")),
        "{csv}"
    );

    let filter = enc("SELECT Id FROM Task WHERE TaskWhoIds = null");
    let (status, _, body) = get(&emu, &tok, &format!("/query?q={filter}")).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn junction_id_separators_with_id_characters_are_refused() {
    let emu = start_empty().await;
    for bad in ["", "x", "0"] {
        let r = client()
            .post(format!("{}/__emulator/settings", emu.url))
            .header("X-Emulator-Key", &emu.control_key)
            .json(&json!({"junction_id_separator": bad}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "separator {bad:?}");
    }
    let r = client()
        .post(format!("{}/__emulator/records", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .json(&json!({"op": "insert", "object": "Task", "fields": {"TaskWhoIds": ["not an id"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn demo_tasks_relate_to_several_people_led_by_their_who_id() {
    let emu = start().await;
    let tasks = truth(&emu, "Task").await;
    let mut shared = 0;
    for t in &tasks {
        match (&t["WhoId"], &t["TaskWhoIds"]) {
            (Value::Null, ids) => assert_eq!(ids, &Value::Null, "{t}"),
            (who, Value::Array(ids)) => {
                assert_eq!(&ids[0], who, "{t}");
                shared += usize::from(ids.len() > 1);
            }
            _ => panic!("a task with a WhoId and no TaskWhoIds: {t}"),
        }
    }
    assert!(shared > 10, "only {shared} tasks relate to several people");
}
