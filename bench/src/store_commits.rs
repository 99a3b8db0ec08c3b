//! `--store-commits`: page commits per second on SQLite and on PostgreSQL, for the same pages,
//! measured in one run and printed as a ratio.
//!
//! Each backend gets a new store (`TestStore`: a SQLite file in a temporary directory, or a
//! new database on the test-support PostgreSQL cluster on loopback) and commits the same
//! pages of full-size records twice: first as inserts, then as updates of the same keys,
//! which read the previous versions. The backends alternate passes, so a machine slowing
//! over the run favours neither.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use sluice::engine::wit::types::{Operation, Row};
use sluice::store::{CheckpointState, IntegrationSettings, NewIntegration};
use sluice_test_support::stores::{Backend, TestStore};

/// Records per page: the runner's largest page.
const RECORDS_PER_PAGE: usize = 2_000;
/// Pages per pass.
const PAGES: usize = 20;
/// The JSON keys, in output order.
pub const KEYS: [&str; 6] = [
    "sqlite_insert_pages_per_s",
    "postgres_insert_pages_per_s",
    "postgres_vs_sqlite_insert",
    "sqlite_update_pages_per_s",
    "postgres_update_pages_per_s",
    "postgres_vs_sqlite_update",
];

/// One backend's store, integration and run.
struct Target {
    store: TestStore,
    id: String,
    run: String,
}

impl Target {
    fn new(backend: Backend) -> anyhow::Result<Self> {
        let store = TestStore::new(backend, "bench-commits");
        let id = store
            .insert_integration(&NewIntegration {
                name: "bench".into(),
                connector: "salesforce".into(),
                settings: IntegrationSettings::new("helpdesk", [("environment", "production")]),
                interval_s: 900,
                client_id: None,
                client_secret: None,
            })?
            .id;
        let run = if backend == Backend::Postgres {
            // Page commits on PostgreSQL are fenced by the run's lease.
            let lease = store
                .claim_lease(&id, "bench", Duration::from_secs(3600))?
                .context("the new integration's lease is free")?;
            store.start_leased_run(&lease, "cli", false, "bench")?
        } else {
            store.start_run(&id, "cli", false, "bench")?
        };
        Ok(Self { store, id, run })
    }

    /// Commits every page of pass `pass`; the time it took.
    fn commit_pass(&self, pass: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        for p in 0..PAGES {
            let rows = page(p, pass);
            let checkpoint = format!("{pass}-{p}");
            self.store.commit_page_served_by(
                &self.id,
                "Case",
                &self.run,
                &rows,
                Some(&checkpoint),
                CheckpointState::Partial,
                1,
                1,
            )?;
        }
        Ok(started.elapsed())
    }
}

/// Page `p` of pass `pass`: the same keys in every pass, records of about 1 KB.
fn page(p: usize, pass: usize) -> Vec<Row> {
    (0..RECORDS_PER_PAGE)
        .map(|r| {
            let key = format!("500{p:06}{r:06}");
            let record = json!({
                "Id": key,
                "Subject": format!("Case {r} of page {p}, pass {pass}"),
                "Description": "x".repeat(900),
                "Status": "New",
                "Pass": pass,
            });
            Row {
                key,
                op: Operation::Upsert,
                cursor: format!("2024-01-01T00:00:{:02}.000Z", pass),
                json: record.to_string().into_bytes(),
            }
        })
        .collect()
}

fn per_s(d: Duration) -> f64 {
    PAGES as f64 / d.as_secs_f64()
}

/// Measures both backends, each pass on SQLite then on PostgreSQL.
pub fn run() -> anyhow::Result<Value> {
    let sqlite = Target::new(Backend::Sqlite)?;
    let postgres = Target::new(Backend::Postgres)?;
    let mut figures = json!({});
    for (pass, name) in ["insert", "update"].into_iter().enumerate() {
        let on_sqlite = per_s(sqlite.commit_pass(pass)?);
        let on_postgres = per_s(postgres.commit_pass(pass)?);
        figures[format!("sqlite_{name}_pages_per_s")] = json!(crate::round(on_sqlite, 1));
        figures[format!("postgres_{name}_pages_per_s")] = json!(crate::round(on_postgres, 1));
        figures[format!("postgres_vs_sqlite_{name}")] =
            json!(crate::round(on_postgres / on_sqlite, 2));
    }
    Ok(figures)
}

/// Prints the figures as a table.
pub fn print(figures: &Value) {
    println!("Page commits ({PAGES} pages of {RECORDS_PER_PAGE} records of ~1 KB, one stream)");
    println!("| figure | value |");
    println!("|---|---:|");
    for key in KEYS {
        println!("| {key} | {} |", figures[key]);
    }
}
