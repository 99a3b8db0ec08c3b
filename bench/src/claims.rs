//! `--store-commits` also measures run claims on PostgreSQL with 10,000 integrations: how long
//! a scheduler tick takes to claim its due integrations (`FOR UPDATE SKIP LOCKED`), next to
//! one bare round trip to the same database in the same run.
//!
//! Two states of the schedule: every integration due (a backlog: each claim takes 8 and gives
//! them back due an hour later) and none due (the common idle tick). Each claim is timed alone,
//! alternating with the round trip, so a machine slowing over the run favours neither.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice::store::{Lease, Store};
use sluice_test_support::PgCluster;
use sluice_test_support::stores::{Backend, TestStore};

/// Integrations in the database.
pub const INTEGRATIONS: usize = 10_000;
/// Integrations a tick claims at most: `serve`'s default concurrent pulls.
const PER_CLAIM: usize = 8;
/// Timed claims per state.
const SAMPLES: usize = 200;
/// The JSON keys, in output order.
pub const KEYS: [&str; 5] = [
    "claim_integrations",
    "roundtrip_p50_ms",
    "claim_backlog_p50_ms",
    "claim_idle_p50_ms",
    "claim_backlog_vs_roundtrip",
];

/// Measures claims in a new database of [`INTEGRATIONS`] active integrations.
pub fn run() -> anyhow::Result<Value> {
    let store = TestStore::new(Backend::Postgres, "bench-claims");
    let db = store.database_name().expect("a PostgreSQL store");
    let cluster = PgCluster::shared();
    // The insert trigger gives each its lease row, as `integration add` would.
    cluster.psql(
        db,
        &format!(
            "INSERT INTO integrations (id, name, connector, settings_json, interval_s, state, \
             created_at_ms, updated_at_ms) \
             SELECT 'int_' || n, 'tenant ' || n, 'salesforce', '{{}}', 900, 'active', 0, 0 \
             FROM generate_series(1, {INTEGRATIONS}) n; \
             UPDATE run_leases SET due_at_ms = 0; ANALYZE"
        ),
    );
    let release = sluice::store::NextDue::After {
        delay: Duration::from_secs(3600),
        failures: 0,
    };
    let mut roundtrip = Vec::new();
    let backlog = sample(&store, &mut roundtrip, |claimed| {
        anyhow::ensure!(claimed.len() == PER_CLAIM, "the backlog ran dry");
        for lease in claimed {
            store.release_lease(lease, release)?;
        }
        Ok(())
    })?;
    cluster.psql(
        db,
        "UPDATE run_leases SET due_at_ms = sluice_now_ms() + 3600000",
    );
    let idle = sample(&store, &mut roundtrip, |claimed| {
        anyhow::ensure!(claimed.is_empty(), "nothing is due");
        Ok(())
    })?;
    let (roundtrip, backlog, idle) = (p50_ms(roundtrip), p50_ms(backlog), p50_ms(idle));
    Ok(json!({
        "claim_integrations": INTEGRATIONS,
        "roundtrip_p50_ms": crate::round(roundtrip, 3),
        "claim_backlog_p50_ms": crate::round(backlog, 3),
        "claim_idle_p50_ms": crate::round(idle, 3),
        "claim_backlog_vs_roundtrip": crate::round(backlog / roundtrip, 1),
    }))
}

/// Times [`SAMPLES`] claims, each after a timed round trip (added to `roundtrip`); `check`
/// sees what each claim took.
fn sample(
    store: &Store,
    roundtrip: &mut Vec<Duration>,
    mut check: impl FnMut(&[Lease]) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    let mut claims = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        store.database_now_ms()?;
        roundtrip.push(started.elapsed());
        let started = Instant::now();
        let claimed = store.claim_due_leases("bench", Duration::from_secs(60), PER_CLAIM)?;
        claims.push(started.elapsed());
        check(&claimed)?;
    }
    Ok(claims)
}

fn p50_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

/// Prints the figures as a table.
pub fn print(figures: &Value) {
    println!(
        "Run claims on PostgreSQL ({INTEGRATIONS} integrations, up to {PER_CLAIM} per claim, \
         {SAMPLES} claims each)"
    );
    println!("| figure | value |");
    println!("|---|---:|");
    for key in KEYS {
        println!("| {key} | {} |", figures[key]);
    }
}
