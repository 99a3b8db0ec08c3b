//! Serving throughput: pages of 2,000 Cases from the bench dataset, server and client on
//! ONE core (a current-thread runtime). Prints records/s.
//!
//! `cargo bench -p sf-emulator --bench query_pages -- [CASES]`

use std::time::Instant;

use serde_json::Value;
use sf_emulator::{Dataset, Emulator, EmulatorConfig, oauth};

fn main() {
    let cases: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let t0 = Instant::now();
        let emu = Emulator::start(EmulatorConfig {
            dataset: Dataset::Bench,
            scale: cases,
            ..Default::default()
        })
        .await
        .expect("start");
        println!("startup with {cases} cases: {:.2?}", t0.elapsed());
        let tok = oauth::grant_for_username(&emu.state, None).expect("grant")["access_token"]
            .as_str()
            .expect("token")
            .to_string();
        let client = reqwest::Client::new();
        let soql = "SELECT Id, CaseNumber, Subject, Status, Priority, Origin, IsClosed, OwnerId, AccountId, ContactId, CreatedDate, LastModifiedDate, SystemModstamp, IsDeleted FROM Case WHERE SystemModstamp >= 2000-01-01T00:00:00Z ORDER BY SystemModstamp, Id";
        let q: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        let mut url = format!("{}/services/data/v62.0/queryAll?q={q}", emu.url);
        let (mut records, mut pages, mut bytes) = (0usize, 0usize, 0usize);
        let t = Instant::now();
        loop {
            let body = client.get(&url).bearer_auth(&tok).send().await.expect("get").bytes().await.expect("body");
            bytes += body.len();
            let v: Value = serde_json::from_slice(&body).expect("json");
            records += v["records"].as_array().expect("records").len();
            pages += 1;
            match v.get("nextRecordsUrl").and_then(Value::as_str) {
                Some(next) => url = format!("{}{next}", emu.url),
                None => break,
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{records} records in {pages} pages, {:.1} MB, {secs:.2} s: {:.0} records/s (one core, client JSON parsing included)",
            bytes as f64 / 1e6,
            records as f64 / secs
        );
    });
}
