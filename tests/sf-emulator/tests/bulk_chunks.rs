//! Bulk results in large chunks: `maxRecords` well beyond REST's 2,000, the default chunk,
//! `Sforce-Locator` as an opaque token ending in the string `null`, the UNVERIFIED byte cap
//! per chunk, and the request heads the control API keeps.

mod common;

use common::*;
use serde_json::{Value, json};
use sf_emulator::{Dataset, EmulatorConfig, Settings};

const CASES: usize = 60_000;

async fn bench(settings: Settings) -> sf_emulator::Emulator {
    start_with(EmulatorConfig {
        dataset: Dataset::Bench,
        scale: CASES,
        settings,
        ..EmulatorConfig::default()
    })
    .await
}

/// One chunk: rows, `Sforce-NumberOfRecords`, `Sforce-Locator`, CSV body bytes after the header.
struct Chunk {
    ids: Vec<String>,
    count: usize,
    locator: String,
    body_bytes: usize,
}

async fn chunk(emu: &sf_emulator::Emulator, tok: &str, id: &str, query: &str) -> Chunk {
    let (status, headers, text) = get(emu, tok, &format!("/jobs/query/{id}/results{query}")).await;
    assert_eq!(status, 200, "{text}");
    let header_end = text.find('\n').unwrap() + 1;
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let ids = rd.records().map(|r| r.unwrap()[0].to_string()).collect();
    Chunk {
        ids,
        count: headers["sforce-numberofrecords"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap(),
        locator: headers["sforce-locator"].to_str().unwrap().to_string(),
        body_bytes: text.len() - header_end,
    }
}

async fn job(emu: &sf_emulator::Emulator, tok: &str) -> String {
    let soql = "SELECT Id, Subject, Description FROM Case";
    completed_bulk_job(emu, tok, json!({"operation": "queryAll", "query": soql})).await
}

/// Every row of job `id`, following locators from the start with `max_records`.
async fn all_ids(emu: &sf_emulator::Emulator, tok: &str, id: &str, max: usize) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    loop {
        let query = match chunks.last() {
            None => format!("?maxRecords={max}"),
            Some(c) if c.locator == "null" => return chunks,
            Some(c) => format!("?maxRecords={max}&locator={}", c.locator),
        };
        chunks.push(chunk(emu, tok, id, &query).await);
    }
}

#[tokio::test]
async fn max_records_far_beyond_rest_pages_and_the_default_chunk() {
    let emu = bench(Settings::default()).await;
    let tok = token(&emu).await;
    let id = job(&emu, &tok).await;

    let whole = chunk(&emu, &tok, &id, "?maxRecords=100000").await;
    assert_eq!((whole.ids.len(), whole.count), (CASES, CASES));
    assert_eq!(whole.locator, "null");

    // Without maxRecords the server picks (50,000 here); the locator is an opaque token.
    let first = chunk(&emu, &tok, &id, "").await;
    assert_eq!(first.count, 50_000);
    assert_eq!(first.ids[..], whole.ids[..50_000]);
    assert!(
        first.locator.bytes().all(|b| b.is_ascii_alphanumeric()) && first.locator != "null",
        "{}",
        first.locator
    );
    let rest = chunk(&emu, &tok, &id, &format!("?locator={}", first.locator)).await;
    assert_eq!(rest.ids[..], whole.ids[50_000..]);
    assert_eq!(rest.locator, "null");

    for bad in ["0", "-5", "many"] {
        let (status, _, text) = get(
            &emu,
            &tok,
            &format!("/jobs/query/{id}/results?maxRecords={bad}"),
        )
        .await;
        assert_eq!(status, 400, "maxRecords={bad}: {text}");
        assert!(text.contains("maxRecords"), "{text}");
    }
}

#[tokio::test]
async fn a_byte_cap_ends_chunks_early_and_locators_still_cover_every_row_once() {
    const CAP: usize = 200_000;
    let emu = bench(Settings::default()).await;
    let tok = token(&emu).await;
    let id = job(&emu, &tok).await;
    let uncapped: Vec<String> = all_ids(&emu, &tok, &id, 50_000)
        .await
        .into_iter()
        .flat_map(|c| c.ids)
        .collect();
    assert_eq!(uncapped.len(), CASES);

    control(&emu, "settings", json!({"bulk_max_chunk_bytes": CAP})).await;
    for frozen in [false, true] {
        if frozen {
            // A write after completion freezes the job's rows; chunks must not change.
            let op = json!({"op": "insert", "object": "Case", "fields": {"Subject": "later"}});
            control(&emu, "records", op).await;
        }
        let chunks = all_ids(&emu, &tok, &id, 50_000).await;
        assert!(chunks.len() > 2, "{} chunks", chunks.len());
        for c in &chunks {
            assert!(c.body_bytes <= CAP, "a chunk of {} bytes", c.body_bytes);
            assert_eq!(c.count, c.ids.len());
        }
        let capped: Vec<String> = chunks.into_iter().flat_map(|c| c.ids).collect();
        assert_eq!(capped, uncapped, "frozen: {frozen}");
    }
}

#[tokio::test]
async fn request_heads_are_kept_per_path_without_the_token() {
    let emu = start().await;
    let tok = token(&emu).await;
    let c = client();
    c.get(format!("{}/services/data/v62.0/limits", emu.url))
        .bearer_auth(&tok)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    get(&emu, &tok, "/sobjects/Case/describe").await;

    let list = |prefix: &'static str| {
        let c = c.clone();
        let emu = &emu;
        async move {
            let v: Value = c
                .get(format!(
                    "{}/__emulator/requests?path_prefix={prefix}",
                    emu.url
                ))
                .header("X-Emulator-Key", &emu.control_key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["requests"].as_array().unwrap().clone()
        }
    };
    let limits = list("/services/data/v62.0/limits").await;
    assert_eq!(limits.len(), 1, "{limits:?}");
    assert_eq!(limits[0]["method"], "GET");
    let headers = limits[0]["headers"].as_array().unwrap();
    let value = |name: &str| {
        headers
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_string())
    };
    assert_eq!(value("accept-encoding").as_deref(), Some("gzip"));
    assert_eq!(value("authorization").as_deref(), Some("(redacted)"));
    assert!(!limits[0].to_string().contains(&tok), "the token was kept");
    assert_eq!(list("/services/data/").await.len(), 2);

    let cleared: Value = c
        .delete(format!("{}/__emulator/requests", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["cleared"], 2);
    assert!(list("/services/data/").await.is_empty());
}
