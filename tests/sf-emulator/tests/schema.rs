//! Run-time schema changes: `POST /__emulator/schema/{object}/fields` adds custom fields
//! as an admin does in Setup; describe, `Last-Modified`, SOQL, Bulk CSV, record writes and
//! the ground truth follow.

mod common;

use common::*;
use serde_json::{Value, json};
use sf_emulator::{Dataset, EmulatorConfig};

/// Calls the schema route; returns status and JSON body.
async fn add_fields(emu: &sf_emulator::Emulator, object: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}/__emulator/schema/{object}/fields", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .json(&body)
        .send()
        .await
        .expect("schema call");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

/// GET with `If-Modified-Since`; returns status, `Last-Modified` and body.
async fn get_ims(
    emu: &sf_emulator::Emulator,
    tok: &str,
    path: &str,
    ims: &str,
) -> (u16, String, String) {
    let r = client()
        .get(format!("{}/services/data/v62.0{path}", emu.url))
        .bearer_auth(tok)
        .header("If-Modified-Since", ims)
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    let lm = r.headers()["last-modified"].to_str().unwrap().to_string();
    (status, lm, r.text().await.unwrap())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn http_secs(date: &str) -> u64 {
    httpdate::parse_http_date(date)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn query(emu: &sf_emulator::Emulator, tok: &str, soql: &str) -> (u16, Value) {
    let (s, _, t) = get(emu, tok, &format!("/query?q={}", enc(soql))).await;
    (s, json_of(&t))
}

#[tokio::test]
async fn added_fields_are_described_and_bump_last_modified() {
    let emu = start().await;
    let tok = token(&emu).await;
    let (s, h, t) = get(&emu, &tok, "/sobjects/Case/describe/").await;
    assert_eq!(s, 200);
    let old_lm = h["last-modified"].to_str().unwrap().to_string();
    let old_count = json_of(&t)["fields"].as_array().unwrap().len();
    let (_, h, _) = get(&emu, &tok, "/sobjects/").await;
    let old_global = h["last-modified"].to_str().unwrap().to_string();

    let (s, v) = add_fields(
        &emu,
        "case",
        json!({"fields": [
            {"name": "Score__c", "type": "double"},
            {"name": "Region__c", "type": "string", "length": 80},
            {"name": "Notes__c", "type": "textarea", "length": 5000},
            {"name": "Seats__c", "type": "int"},
            {"name": "Vip__c", "type": "boolean"},
            {"name": "Renewal__c", "type": "date"},
            {"name": "Escalated_At__c", "type": "datetime", "label": "Escalated At"},
            {"name": "Tier__c", "type": "picklist", "values": ["Gold", "Silver"]},
            {"name": "Mood__c", "type": "picklist"},
            {"name": "Refund__c", "type": "currency"},
            {"name": "Discount__c", "type": "percent"},
        ]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "Case");
    assert_eq!(v["fields"], old_count as u64 + 11);
    assert_eq!(v["added"].as_array().unwrap().len(), 11);
    let new_lm = v["lastModified"].as_str().unwrap().to_string();
    assert!(http_secs(&new_lm) > http_secs(&old_lm));

    // The old Last-Modified is stale now: 200 with the new fields and the new date.
    let (s, lm, t) = get_ims(&emu, &tok, "/sobjects/Case/describe/", &old_lm).await;
    assert_eq!(s, 200);
    assert_eq!(lm, new_lm);
    let d = json_of(&t);
    let fields = d["fields"].as_array().unwrap();
    assert_eq!(fields.len(), old_count + 11);
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} described"))
            .clone()
    };
    let score = field("Score__c");
    assert_eq!(score["type"], "double");
    assert_eq!(score["soapType"], "xsd:double");
    assert_eq!(score["label"], "Score");
    assert_eq!(score["custom"], true);
    assert_eq!(score["nillable"], true);
    assert_eq!(score["createable"], true);
    assert_eq!(score["updateable"], true);
    assert_eq!(score["filterable"], true);
    assert_eq!(score["precision"], 18);
    let region = field("Region__c");
    assert_eq!(region["type"], "string");
    assert_eq!(region["soapType"], "xsd:string");
    assert_eq!(region["length"], 80);
    let notes = field("Notes__c");
    assert_eq!(notes["type"], "textarea");
    assert_eq!(notes["extraTypeInfo"], "plaintextarea");
    assert_eq!(notes["filterable"], false);
    assert_eq!(field("Seats__c")["soapType"], "xsd:int");
    let vip = field("Vip__c");
    assert_eq!(vip["type"], "boolean");
    assert_eq!(vip["nillable"], false);
    assert_eq!(vip["defaultedOnCreate"], true);
    assert_eq!(field("Renewal__c")["soapType"], "xsd:date");
    let esc = field("Escalated_At__c");
    assert_eq!(esc["soapType"], "xsd:dateTime");
    assert_eq!(esc["label"], "Escalated At");
    let tier = field("Tier__c");
    assert_eq!(tier["type"], "picklist");
    let values: Vec<&str> = tier["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["Gold", "Silver"]);
    assert_eq!(field("Mood__c")["picklistValues"], json!([]));
    assert_eq!(field("Refund__c")["type"], "currency");
    assert_eq!(field("Discount__c")["type"], "percent");
    // Existing custom fields are described the same way (Knowledge's Body__c).
    let (_, _, t) = get(&emu, &tok, "/sobjects/Knowledge__kav/describe/").await;
    let kav = json_of(&t);
    let body = kav["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Body__c")
        .unwrap()
        .clone();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&body), keys(&score));

    // With the new value: 304.
    let (s, lm, _) = get_ims(&emu, &tok, "/sobjects/Case/describe/", &new_lm).await;
    assert_eq!((s, lm.as_str()), (304, new_lm.as_str()));
    // Describe global moved too; other objects did not change.
    let (s, lm, _) = get_ims(&emu, &tok, "/sobjects/", &old_global).await;
    assert_eq!((s, lm.as_str()), (200, new_lm.as_str()));
    let (s, _, _) = get_ims(&emu, &tok, "/sobjects/", &new_lm).await;
    assert_eq!(s, 304);
    let (s, lm, _) = get_ims(&emu, &tok, "/sobjects/Account/describe/", &old_lm).await;
    assert_eq!((s, lm.as_str()), (304, old_lm.as_str()));

    // Two changes within one second still give strictly increasing dates.
    let mut last = http_secs(&new_lm);
    for (object, name) in [("Case", "Extra_One__c"), ("Account", "Extra_Two__c")] {
        let (s, v) = add_fields(
            &emu,
            object,
            json!({"fields": [{"name": name, "type": "string"}]}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let lm = v["lastModified"].as_str().unwrap().to_string();
        assert!(http_secs(&lm) > last, "{lm} after {last}");
        last = http_secs(&lm);
        let (s, _, _) = get_ims(
            &emu,
            &tok,
            &format!("/sobjects/{object}/describe/"),
            &new_lm,
        )
        .await;
        assert_eq!(s, 200);
        let (s, got, _) = get_ims(&emu, &tok, &format!("/sobjects/{object}/describe/"), &lm).await;
        assert_eq!((s, got.as_str()), (304, lm.as_str()));
    }
}

#[tokio::test]
async fn added_fields_flow_through_queries_writes_and_ground_truth() {
    let emu = start().await;
    let tok = token(&emu).await;
    // Before the field exists, selecting it is INVALID_FIELD.
    let (s, v) = query(&emu, &tok, "SELECT Id, Score__c FROM Case").await;
    assert_eq!(s, 400);
    assert_eq!(v[0]["errorCode"], "INVALID_FIELD");
    // A cursor opened before the change keeps serving its pages.
    let r = client()
        .get(format!(
            "{}/services/data/v62.0/query?q={}",
            emu.url,
            enc("SELECT Id, Subject FROM Case ORDER BY Id")
        ))
        .bearer_auth(&tok)
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap();
    let first: Value = r.json().await.unwrap();
    let next = first["nextRecordsUrl"].as_str().unwrap().to_string();

    let (s, v) = add_fields(
        &emu,
        "Case",
        json!({"fields": [
            {"name": "Score__c", "type": "double"},
            {"name": "Region__c", "type": "string", "length": 80},
            {"name": "Vip__c", "type": "boolean"},
            {"name": "Renewal__c", "type": "date"},
        ]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    let (s, _, t) = get(&emu, &tok, &next).await;
    assert_eq!(s, 200);
    let page2 = json_of(&t);
    let total = first["totalSize"].as_u64().unwrap() as usize;
    assert_eq!(page2["records"].as_array().unwrap().len(), total - 200);
    assert!(page2["records"][0].get("Score__c").is_none());

    // Existing rows: null (a checkbox reads false, as Salesforce backfills its default).
    let (s, v) = query(
        &emu,
        &tok,
        "SELECT Id, score__c, Region__c, Vip__c, Renewal__c FROM Case ORDER BY Id LIMIT 5",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let recs = v["records"].as_array().unwrap();
    assert_eq!(recs.len(), 5);
    for r in recs {
        assert_eq!(r["Score__c"], Value::Null, "schema casing, null: {r}");
        assert_eq!(r["Region__c"], Value::Null);
        assert_eq!(r["Vip__c"], false);
        assert_eq!(r["Renewal__c"], Value::Null);
    }
    let old_id = recs[0]["Id"].as_str().unwrap().to_string();

    // Insert and update with values.
    let ins = control(
        &emu,
        "records",
        json!({"op": "insert", "object": "Case", "fields": {"Subject": "new", "Score__c": 4.5, "Region__c": "EMEA", "Vip__c": true, "Renewal__c": "2030-01-31"}}),
    )
    .await;
    let new_id = ins["results"][0]["id"].as_str().unwrap().to_string();
    control(
        &emu,
        "records",
        json!({"op": "update", "object": "Case", "id": old_id, "fields": {"Score__c": 7, "Region__c": "APAC"}}),
    )
    .await;
    let (s, v) = query(
        &emu,
        &tok,
        &format!(
            "SELECT Id, Score__c, Region__c, Vip__c, Renewal__c FROM Case WHERE Id IN ('{old_id}', '{new_id}') ORDER BY Id"
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let recs = v["records"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    let by_id = |id: &str| recs.iter().find(|r| r["Id"] == id).unwrap().clone();
    let old = by_id(&old_id);
    assert_eq!(old["Score__c"], 7.0);
    assert_eq!(old["Region__c"], "APAC");
    assert_eq!(old["Vip__c"], false);
    let new = by_id(&new_id);
    assert_eq!(new["Score__c"], 4.5);
    assert_eq!(new["Region__c"], "EMEA");
    assert_eq!(new["Vip__c"], true);
    assert_eq!(new["Renewal__c"], "2030-01-31");
    // Filters on the new field, queryAll, single-record reads.
    let (s, v) = query(&emu, &tok, "SELECT Id FROM Case WHERE Region__c = 'emea'").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totalSize"], 1);
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!(
            "/queryAll?q={}",
            enc("SELECT Id, Score__c FROM Case WHERE Score__c != null")
        ),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(json_of(&t)["totalSize"], 2);
    let (s, _, t) = get(
        &emu,
        &tok,
        &format!("/sobjects/Case/{new_id}?fields=Id,Score__c,Region__c"),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(json_of(&t)["Region__c"], "EMEA");

    // Ground truth has the new fields on every row.
    let truth = truth(&emu, "Case").await;
    assert!(truth.iter().all(|r| r.get("Score__c").is_some()));
    let t_old = truth.iter().find(|r| r["Id"] == old_id.as_str()).unwrap();
    assert_eq!(t_old["Score__c"], 7.0);
    let t_other = truth.iter().find(|r| r["Id"] != old_id.as_str()).unwrap();
    assert_eq!(t_other["Score__c"], Value::Null);

    // Bulk 2.0 CSV: the column is there, empty for old rows.
    let base = format!("{}/services/data/v62.0", emu.url);
    let c = client();
    let soql = format!(
        "SELECT Id, Score__c, Region__c FROM Case WHERE Id IN ('{old_id}', '{new_id}', '{}') ORDER BY Id",
        t_other["Id"].as_str().unwrap()
    );
    let id = completed_bulk_job(&emu, &tok, json!({"operation": "query", "query": soql})).await;
    let text = c
        .get(format!("{base}/jobs/query/{id}/results"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header, ["Id", "Score__c", "Region__c"]);
    let rows: Vec<Vec<String>> = rd
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    let row = |id: &str| rows.iter().find(|r| r[0] == id).unwrap().clone();
    assert_eq!(row(&old_id)[1..], ["7.0", "APAC"]);
    assert_eq!(row(&new_id)[1..], ["4.5", "EMEA"]);
    assert_eq!(row(t_other["Id"].as_str().unwrap())[1..], ["", ""]);
}

#[tokio::test]
async fn generated_rows_of_the_bench_dataset_read_null() {
    let emu = start_with(EmulatorConfig {
        dataset: Dataset::Bench,
        scale: 5_000,
        ..Default::default()
    })
    .await;
    let tok = token(&emu).await;
    let (s, v) = add_fields(
        &emu,
        "Case",
        json!({"fields": [{"name": "Score__c", "type": "double"}, {"name": "Vip__c", "type": "boolean"}]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = query(
        &emu,
        &tok,
        "SELECT Id, Subject, Score__c, Vip__c FROM Case ORDER BY SystemModstamp, Id LIMIT 300",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let recs = v["records"].as_array().unwrap();
    assert_eq!(recs.len(), 300);
    assert!(
        recs.iter()
            .all(|r| r["Score__c"].is_null() && r["Vip__c"] == false)
    );
    assert!(recs.iter().any(|r| r["Subject"].is_string()));
    // A pristine row written after the change keeps its generated values and the new one.
    let id = recs[10]["Id"].as_str().unwrap().to_string();
    let subject = recs[10]["Subject"].clone();
    control(
        &emu,
        "records",
        json!({"op": "update", "object": "Case", "id": id, "fields": {"Score__c": 1.25}}),
    )
    .await;
    let (s, v) = query(
        &emu,
        &tok,
        &format!("SELECT Subject, Score__c, Vip__c FROM Case WHERE Id = '{id}'"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["records"][0]["Score__c"], 1.25);
    assert_eq!(v["records"][0]["Subject"], subject);
    assert_eq!(v["records"][0]["Vip__c"], false);
    // Ground truth export of generated rows.
    let r = client()
        .get(format!("{}/__emulator/records/Case?limit=3", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    for rec in v["records"].as_array().unwrap() {
        assert_eq!(rec["Score__c"], Value::Null);
        assert_eq!(rec["Vip__c"], false);
    }
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let emu = start().await;
    let tok = token(&emu).await;
    let (_, h, t) = get(&emu, &tok, "/sobjects/Case/describe/").await;
    let lm = h["last-modified"].to_str().unwrap().to_string();
    let count = json_of(&t)["fields"].as_array().unwrap().len();

    let cases: &[(Value, &str)] = &[
        (
            json!({"name": "Score", "type": "double"}),
            "must end in __c",
        ),
        (
            json!({"name": "1Score__c", "type": "double"}),
            "begin with a letter",
        ),
        (
            json!({"name": "__c", "type": "double"}),
            "begin with a letter",
        ),
        (
            json!({"name": "Sco re__c", "type": "double"}),
            "letters, digits and underscores",
        ),
        (
            json!({"name": "Sco__re__c", "type": "double"}),
            "consecutive underscores",
        ),
        (
            json!({"name": "Score___c", "type": "double"}),
            "consecutive underscores",
        ),
        (
            json!({"name": "Score__c", "type": "blob"}),
            "unsupported type",
        ),
        (
            json!({"name": "Score__c", "type": "string", "length": 300}),
            "1..=255",
        ),
        (
            json!({"name": "Score__c", "type": "double", "length": 3}),
            "length applies",
        ),
        (
            json!({"name": "Score__c", "type": "double", "values": ["a"]}),
            "picklist",
        ),
        (
            json!({"name": "Score__c", "type": "double", "colour": "red"}),
            "unknown field",
        ),
        (json!({"type": "double"}), "missing field `name`"),
    ];
    for (spec, want) in cases {
        let (s, v) = add_fields(&emu, "Case", json!({"fields": [spec]})).await;
        assert_eq!(s, 400, "{spec}: {v}");
        let err = v["error"].as_str().unwrap();
        assert!(err.contains(want), "{spec}: {err}");
        if let Some(name) = spec.get("name").and_then(Value::as_str) {
            assert!(err.contains(name), "names the field: {err}");
        }
    }
    // Not a fields list.
    let (s, v) = add_fields(&emu, "Case", json!({"field": "x"})).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = add_fields(&emu, "Case", json!({"fields": []})).await;
    assert_eq!(s, 400, "{v}");

    // Duplicates: an existing field (case-insensitive), twice in one request; the valid
    // field of a refused request is not added either.
    let (s, v) = add_fields(
        &emu,
        "Knowledge__kav",
        json!({"fields": [{"name": "body__C", "type": "string"}]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("already has a field named Body__c"),
        "{v}"
    );
    let (s, v) = add_fields(
        &emu,
        "Case",
        json!({"fields": [{"name": "Good__c", "type": "int"}, {"name": "Twice__c", "type": "int"}, {"name": "TWICE__c", "type": "int"}]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("TWICE__c"), "{v}");
    let (s, v) = add_fields(
        &emu,
        "Case",
        json!({"fields": [{"name": "Good__c", "type": "int"}]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = add_fields(
        &emu,
        "Case",
        json!({"fields": [{"name": "GOOD__c", "type": "string"}]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("Good__c"), "{v}");

    // Unknown object.
    let (s, v) = add_fields(
        &emu,
        "Nope__c",
        json!({"fields": [{"name": "X__c", "type": "int"}]}),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("Nope__c"), "{v}");

    // An unknown object is reported before the body is looked at.
    let (s, v) = add_fields(&emu, "Nope__c", json!({"fields": [{"name": "bad"}]})).await;
    assert_eq!(s, 404, "{v}");

    // No control key, a Salesforce token, a wrong key.
    let url = format!("{}/__emulator/schema/Case/fields", emu.url);
    let body = json!({"fields": [{"name": "Sneaky__c", "type": "int"}]});
    let r = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .post(&url)
        .bearer_auth(&tok)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .post(&url)
        .header("X-Emulator-Key", "wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Only Good__c was added.
    let (s, _, t) = get(&emu, &tok, "/sobjects/Case/describe/").await;
    assert_eq!(s, 200);
    let names: Vec<String> = json_of(&t)["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), count + 1);
    assert_eq!(names.last().unwrap(), "Good__c");
    let (s, v) = query(&emu, &tok, "SELECT Sneaky__c FROM Case").await;
    assert_eq!(s, 400);
    assert_eq!(v[0]["errorCode"], "INVALID_FIELD");
    let (s, _, _) = get_ims(&emu, &tok, "/sobjects/Case/describe/", &lm).await;
    assert_eq!(s, 200);
}
