//! Visibility lag on updates (the old version is served until the new one is visible)
//! and on child-subquery rows.

mod common;

use std::borrow::Cow;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sf_emulator::soql::{
    self, Catalog, ChildRel, ExecOptions, FieldSchema, FieldType, ObjectSchema, RowId, RowSource,
};

fn body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn insert(emu: &sf_emulator::Emulator, object: &str, fields: Value) -> String {
    let r = control(
        emu,
        "records",
        json!({"op": "insert", "object": object, "fields": fields, "visible_after_ms": 0}),
    )
    .await;
    r["results"][0]["id"].as_str().expect("id").to_string()
}

async fn query(emu: &sf_emulator::Emulator, tok: &str, soql: &str) -> Value {
    let (s, _, t) = get(emu, tok, &format!("/query?q={}", enc(soql))).await;
    assert_eq!(s, 200, "{t}");
    body(&t)
}

#[tokio::test]
async fn delayed_update_serves_the_old_version_until_visible() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    let id = insert(&emu, "Case", json!({"Subject": "old subject"})).await;
    let before = query(
        &emu,
        &tok,
        &format!("SELECT SystemModstamp FROM Case WHERE Id = '{id}'"),
    )
    .await;
    let old_stamp = before["records"][0]["SystemModstamp"]
        .as_str()
        .unwrap()
        .to_string();
    // Stamps are whole seconds: the update must land in a later second.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = control(
        &emu,
        "records",
        json!({"op": "update", "object": "Case", "id": id, "fields": {"Subject": "new subject"},
               "visible_after_ms": 1500}),
    )
    .await;
    let new_stamp = r["results"][0]["SystemModstamp"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(old_stamp, new_stamp);

    // Queries see the old version, filters match the old values.
    let all = query(&emu, &tok, "SELECT Id, Subject, SystemModstamp FROM Case").await;
    assert_eq!(all["totalSize"], 1, "{all}");
    assert_eq!(all["records"][0]["Subject"], "old subject");
    assert_eq!(all["records"][0]["SystemModstamp"], old_stamp.as_str());
    let q = query(
        &emu,
        &tok,
        "SELECT Id FROM Case WHERE Subject = 'new subject'",
    )
    .await;
    assert_eq!(q["totalSize"], 0);
    // The cursor-index path (range + ORDER BY SystemModstamp) sees the old stamp too.
    let q = query(
        &emu,
        &tok,
        "SELECT Id, SystemModstamp FROM Case WHERE SystemModstamp > 2000-01-01T00:00:00Z ORDER BY SystemModstamp, Id",
    )
    .await;
    assert_eq!(q["records"][0]["SystemModstamp"], old_stamp.as_str(), "{q}");
    // Single-record read.
    let (s, _, t) = get(&emu, &tok, &format!("/sobjects/Case/{id}")).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(body(&t)["Subject"], "old subject");
    // Ground truth: the newest version, marked pending, with the served one beside it.
    let rows = truth(&emu, "Case").await;
    let row = rows.iter().find(|r| r["Id"] == id.as_str()).unwrap();
    assert_eq!(row["Subject"], "new subject");
    assert_eq!(row["_pending"], true);
    assert_eq!(row["_visible"], true);
    assert_eq!(row["_previous"]["Subject"], "old subject");

    // A second delayed update stacks on the newest version; the served one stays.
    control(
        &emu,
        "records",
        json!({"op": "update", "object": "Case", "id": id, "fields": {"Status": "Closed"},
               "visible_after_ms": 1500}),
    )
    .await;
    let q = query(&emu, &tok, "SELECT Subject, Status FROM Case").await;
    assert_eq!(q["records"][0]["Subject"], "old subject");
    assert_eq!(q["records"][0]["Status"], "New");

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let q = query(&emu, &tok, "SELECT Subject, Status FROM Case").await;
    assert_eq!(q["records"][0]["Subject"], "new subject");
    assert_eq!(q["records"][0]["Status"], "Closed");
    let (_, _, t) = get(&emu, &tok, &format!("/sobjects/Case/{id}")).await;
    assert_eq!(body(&t)["Subject"], "new subject");
    let rows = truth(&emu, "Case").await;
    let row = rows.iter().find(|r| r["Id"] == id.as_str()).unwrap();
    assert_eq!(row["_pending"], false);
    assert_eq!(row["_previous"], Value::Null);
}

#[tokio::test]
async fn delayed_delete_keeps_the_row_queryable_until_visible() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    let id = insert(&emu, "Case", json!({"Subject": "to delete"})).await;
    control(
        &emu,
        "records",
        json!({"op": "delete", "object": "Case", "id": id, "visible_after_ms": 1500}),
    )
    .await;
    let q = query(&emu, &tok, "SELECT Id FROM Case").await;
    assert_eq!(q["totalSize"], 1);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let q = query(&emu, &tok, "SELECT Id FROM Case").await;
    assert_eq!(q["totalSize"], 0);
    // A pending undelete: still in the recycle bin (queryAll) until visible.
    control(
        &emu,
        "records",
        json!({"op": "undelete", "object": "Case", "id": id, "visible_after_ms": 1500}),
    )
    .await;
    let (_, _, t) = get(
        &emu,
        &tok,
        &format!("/queryAll?q={}", enc("SELECT Id, IsDeleted FROM Case")),
    )
    .await;
    assert_eq!(body(&t)["records"][0]["IsDeleted"], true, "{t}");
    // Ground truth: newest version undeleted, the served one still deleted.
    let rows = truth(&emu, "Case").await;
    let row = rows.iter().find(|r| r["Id"] == id.as_str()).unwrap();
    assert_eq!(row["_pending"], true);
    assert_eq!(row["_deleted"], false);
    assert_eq!(row["_previous"]["_deleted"], true);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let q = query(&emu, &tok, "SELECT Id FROM Case").await;
    assert_eq!(q["totalSize"], 1);
}

#[tokio::test]
async fn child_subqueries_hide_rows_not_yet_visible() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    let case = insert(&emu, "Case", json!({"Subject": "parent"})).await;
    let first = insert(
        &emu,
        "CaseComment",
        json!({"ParentId": case, "CommentBody": "first"}),
    )
    .await;
    // A pending update of a visible child: the old version stays nested.
    control(
        &emu,
        "records",
        json!({"op": "update", "object": "CaseComment", "id": first,
               "fields": {"CommentBody": "edited"}, "visible_after_ms": 1500}),
    )
    .await;
    let r = control(
        &emu,
        "records",
        json!({"op": "insert", "object": "CaseComment",
               "fields": {"ParentId": case, "CommentBody": "late"}, "visible_after_ms": 1500}),
    )
    .await;
    assert!(r["results"][0]["id"].is_string());
    let soql = "SELECT Id, (SELECT CommentBody FROM CaseComments ORDER BY CreatedDate) FROM Case";
    let q = query(&emu, &tok, soql).await;
    let kids = &q["records"][0]["CaseComments"];
    assert_eq!(kids["totalSize"], 1, "{q}");
    assert_eq!(kids["records"][0]["CommentBody"], "first");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let q = query(&emu, &tok, soql).await;
    assert_eq!(q["records"][0]["CaseComments"]["totalSize"], 2, "{q}");
    assert_eq!(
        q["records"][0]["CaseComments"]["records"][0]["CommentBody"],
        "edited"
    );
}

// --- The engine itself: `RowSource::visible` filters child rows. ---

struct Cat(Vec<ObjectSchema>);

impl Catalog for Cat {
    fn object(&self, name: &str) -> Option<&ObjectSchema> {
        self.0.iter().find(|o| o.name.eq_ignore_ascii_case(name))
    }
}

fn field(name: &str, ty: FieldType) -> FieldSchema {
    FieldSchema {
        name: name.into(),
        ty,
        nillable: true,
        filterable: true,
        sortable: true,
        hidden: false,
    }
}

/// One parent `P0` with kids `K0` (visible) and `K1` (hidden).
struct Src;

impl RowSource for Src {
    fn get(&self, object: &str, row: RowId, idx: usize) -> soql::Value {
        let s = match (object, idx) {
            ("Parent", 0) => "P0".to_string(),
            ("Parent", _) => "parent".to_string(),
            ("Kid", 0) => format!("K{row}"),
            ("Kid", 1) => "P0".to_string(),
            _ => format!("kid {row}"),
        };
        soql::Value::Str(s.into())
    }
    fn by_id(&self, _: &str, _: &str) -> Option<RowId> {
        None
    }
    fn rows(&self, object: &str) -> Vec<RowId> {
        if object == "Parent" {
            vec![0]
        } else {
            vec![0, 1]
        }
    }
    fn children(&self, _: &str, _: &str, _: &str) -> Vec<RowId> {
        vec![0, 1]
    }
    fn sorted_rows(&self, _: &str, _: usize) -> Option<Cow<'_, [RowId]>> {
        None
    }
    fn visible(&self, object: &str, row: RowId) -> bool {
        !(object == "Kid" && row == 1)
    }
}

#[test]
fn engine_drops_invisible_child_rows() {
    let cat = Cat(vec![
        ObjectSchema {
            name: "Parent".into(),
            fields: vec![field("Id", FieldType::Id), field("Name", FieldType::String)],
            parents: vec![],
            children: vec![ChildRel {
                name: "Kids".into(),
                object: "Kid".into(),
                field: "ParentId".into(),
            }],
            queryable: true,
        },
        ObjectSchema {
            name: "Kid".into(),
            fields: vec![
                field("Id", FieldType::Id),
                field("ParentId", FieldType::Reference),
                field("Name", FieldType::String),
            ],
            parents: vec![],
            children: vec![],
            queryable: true,
        },
    ]);
    let q = soql::parse("SELECT Id, (SELECT Id, Name FROM Kids) FROM Parent", &cat).unwrap();
    let rs = soql::execute(&q, &Src, ExecOptions::default()).unwrap();
    assert_eq!(rs.total_size(), 1);
    let mut out = Vec::new();
    soql::render_rows(&q, &rs, 0..rs.len(), &Src, "62.0", &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["Kids"]["totalSize"], 1, "{v}");
    assert_eq!(v["Kids"]["records"][0]["Id"], "K0");
}
