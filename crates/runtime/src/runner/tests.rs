use super::*;
use crate::secrets::Cipher;
use crate::store::{IntegrationSettings, NewIntegration};

fn row(key: &str) -> Row {
    Row {
        key: key.into(),
        op: Operation::Upsert,
        cursor: "2024-01-01T00:00:00.000Z".into(),
        json: br#"{"big":"enough to take a moment"}"#.repeat(20),
    }
}

#[test]
fn a_merge_that_is_not_an_object_refuses_the_page() {
    let merge = |key: &str, json: &str| Row {
        key: key.into(),
        op: Operation::Merge,
        cursor: String::new(),
        json: json.as_bytes().to_vec(),
    };
    assert_eq!(malformed_row(&[row("a"), merge("b", r#"{"F":1}"#)]), None);
    let Some(RunBound::MalformedRow { key, detail }) =
        malformed_row(&[merge("b", r#"{"F":1}"#), merge("c", "[1]")])
    else {
        panic!("a merge of an array must be refused");
    };
    assert_eq!(key, "c");
    assert!(detail.contains("JSON object"), "{detail}");
    // An upsert's JSON is the provider's business; only merges are parsed.
    let odd_upsert = Row {
        json: b"not json".to_vec(),
        ..row("d")
    };
    assert_eq!(malformed_row(&[odd_upsert]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_commit_in_order_and_stored_keys_wait_for_the_page_in_flight() {
    let dir = tempfile::Builder::new()
        .prefix("sluice-runner-")
        .tempdir()
        .unwrap();
    let store = Arc::new(
        Store::open(
            &dir.path().join(crate::store::DB_FILE),
            Cipher::from_key(&[5u8; 32]),
        )
        .unwrap(),
    );
    let id = store
        .insert_integration(&NewIntegration {
            name: "a".into(),
            connector: "salesforce".into(),
            settings: IntegrationSettings::new("helpdesk", [("environment", "production")]),
            interval_s: 900,
            client_id: None,
            client_secret: None,
        })
        .unwrap()
        .id;
    let run = store.start_run(&id, "cli", false, "t").unwrap();
    let mut commits = PageCommits::new(store.clone(), &id, &run);
    let keys = commits.keys_after_commits(store.keys_of(&id));
    let page = |n: usize, checkpoint: &str| PageCommit {
        stream: "Case".into(),
        rows: (0..2000).map(|i| row(&format!("k{n}-{i:05}"))).collect(),
        checkpoint: Some(checkpoint.into()),
        status: CheckpointState::Partial,
        api_calls: 1,
        connector_version: 1,
    };
    assert!(commits.submit(page(1, "cp1"), 1).await.unwrap().is_none());
    // A read issued while page 1 may still be committing sees page 1.
    let read = keys.clone();
    let seen = tokio::task::spawn_blocking(move || {
        read.live_keys_after("Case", None, 1000).unwrap().len()
    })
    .await
    .unwrap();
    assert_eq!(seen, 1000);
    assert_eq!(commits.submit(page(2, "cp2"), 2).await.unwrap(), Some(1));
    assert_eq!(commits.wait().await.unwrap(), Some(2));
    assert_eq!(commits.wait().await.unwrap(), None);
    assert_eq!(
        store.checkpoint(&id, "Case").unwrap().as_deref(),
        Some("cp2")
    );
    assert_eq!(store.runs(&id, 1).unwrap()[0].records, 4000);
    let after = keys.live_keys_after("Case", Some("k1-01999"), 10).unwrap();
    assert_eq!(after.first().map(String::as_str), Some("k2-00000"));
}
