//! The query rendezvous: queries on a set of objects pass only when every object of the set is
//! queried at the same time; a lone query fails once the timeout passes.

mod common;

use serde_json::{Value, json};
use sf_emulator::Emulator;

async fn rendezvous(emu: &Emulator, method: reqwest::Method, body: Option<Value>) -> (u16, Value) {
    let mut req = common::client()
        .request(method, format!("{}/__emulator/rendezvous", emu.url))
        .header("X-Emulator-Key", &emu.control_key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.expect("control call");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

async fn arm(emu: &Emulator, objects: &[&str], timeout_ms: u64) {
    let body = json!({"objects": objects, "timeout_ms": timeout_ms});
    let (status, meeting) = rendezvous(emu, reqwest::Method::POST, Some(body)).await;
    assert_eq!(status, 200, "{meeting}");
    assert_eq!(meeting["armed"], true);
}

async fn query(emu: &Emulator, tok: &str, object: &str) -> (u16, String) {
    let soql = common::enc(&format!("SELECT Id FROM {object}"));
    let (status, _, body) = common::get(emu, tok, &format!("/query?q={soql}")).await;
    (status, body)
}

#[tokio::test]
async fn queries_on_every_object_at_once_are_released_together() {
    let emu = common::start().await;
    let tok = common::token(&emu).await;
    arm(&emu, &["Account", "contact"], 30_000).await;
    let (account, contact) =
        tokio::join!(query(&emu, &tok, "Account"), query(&emu, &tok, "Contact"));
    assert_eq!(account.0, 200, "{}", account.1);
    assert_eq!(contact.0, 200, "{}", contact.1);
    let (_, meeting) = rendezvous(&emu, reqwest::Method::GET, None).await;
    assert_eq!(meeting["met"], true, "{meeting}");
    assert_eq!(meeting["arrived"], json!(["Account", "Contact"]));
    assert_eq!(meeting["timed_out"], 0);
}

#[tokio::test]
async fn a_lone_query_fails_at_the_timeout_and_calls_the_rendezvous_off() {
    let emu = common::start().await;
    let tok = common::token(&emu).await;
    arm(&emu, &["Account", "Contact"], 200).await;
    let (status, body) = query(&emu, &tok, "Account").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("REQUEST_RUNNING_TOO_LONG"), "{body}");
    let (_, meeting) = rendezvous(&emu, reqwest::Method::GET, None).await;
    assert_eq!(meeting["armed"], false, "{meeting}");
    assert_eq!(meeting["met"], false);
    assert_eq!(meeting["timed_out"], 1);
    // Called off: later queries pass.
    assert_eq!(query(&emu, &tok, "Contact").await.0, 200);
}

#[tokio::test]
async fn other_objects_and_cursor_pages_are_never_held() {
    let emu = common::start().await;
    let tok = common::token(&emu).await;
    let (status, _, first) = common::client()
        .get(format!(
            "{}/services/data/v62.0/query?q={}",
            emu.url,
            common::enc("SELECT Id FROM Case")
        ))
        .bearer_auth(&tok)
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .map(|r| (r.status().as_u16(), (), r))
        .expect("query");
    assert_eq!(status, 200);
    let first: Value = first.json().await.expect("json");
    let next = first["nextRecordsUrl"].as_str().expect("a second page");
    // A long timeout: a held request would make this test hang, not pass.
    arm(&emu, &["Case", "Account"], 120_000).await;
    assert_eq!(query(&emu, &tok, "Contact").await.0, 200);
    let (status, _, body) = common::get(&emu, &tok, next).await;
    assert_eq!(status, 200, "{body}");
    let (_, meeting) = rendezvous(&emu, reqwest::Method::GET, None).await;
    assert_eq!(meeting["arrived"], json!([]), "{meeting}");
    let (_, meeting) = rendezvous(&emu, reqwest::Method::DELETE, None).await;
    assert_eq!(meeting["armed"], false);
    assert_eq!(query(&emu, &tok, "Case").await.0, 200);
}

#[tokio::test]
async fn a_rendezvous_needs_two_known_objects_and_a_bounded_timeout() {
    let emu = common::start().await;
    for (body, names) in [
        (
            json!({"objects": ["Account", "Nope__c"]}),
            "unknown object Nope__c",
        ),
        (json!({"objects": ["Account", "account"]}), "at least two"),
        (
            json!({"objects": ["Account", "Case"], "timeout_ms": 0}),
            "timeout_ms",
        ),
        (
            json!({"objects": ["Account", "Case"], "timeout_ms": 999_999}),
            "timeout_ms",
        ),
    ] {
        let (status, answer) = rendezvous(&emu, reqwest::Method::POST, Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(names), "{error}");
    }
    let (status, _) = common::client()
        .get(format!("{}/__emulator/rendezvous", emu.url))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .expect("get");
    assert_eq!(status, 401, "the control key is required");
}
