//! Hosts sharing one PostgreSQL database (`--database`), against the emulator: a pull stores
//! its records there and nothing in the data directory, a second host cannot pull an
//! integration the first one is pulling, and a host whose lease was taken over while it was
//! stalled commits no further page while the new holder pulls everything. Hosts running
//! their schedulers share one schedule.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice::app::{App, AppConfig, AppError, IntegrationInput};
use sluice::engine::registry::follow_store;
use sluice::runner::{PullOptions, RunStatus};
use sluice::scheduler::{SchedulerConfig, SchedulerStats};
use sluice::secrets::{KEY_FILE, Secret};
use sluice::store::DB_FILE;
use support::binary::sluice_command;
use support::dirs::{TestDir, temp_dir};
use support::guests::with_custom_section;
use support::runtime::{
    add_connected, approve_emulator, connected_crm, control, crm_input, live_truth, open_app,
};
use support::{PgCluster, PgDatabase};

const OBJECTS: [&str; 2] = ["Account", "Contact"];

fn full(page_records: u32) -> PullOptions {
    PullOptions {
        full: true,
        page_records,
        ..PullOptions::default()
    }
}

/// The first host: a connected CRM integration whose state is in a new database.
async fn first_host(tag: &str) -> (sf_emulator::Emulator, Arc<App>, TestDir, String, PgDatabase) {
    let db = PgCluster::shared().create_database();
    let url = db.url.clone();
    let (emu, app, dir, id) = connected_crm(tag, &OBJECTS, |config| {
        config.database = Some(Secret::new(url));
        config.runs.parallel_streams = 1;
    })
    .await;
    (emu, app, dir, id, db)
}

/// Another host on the same database, holding the first host's key as every host must.
async fn second_host(
    first_dir: &Path,
    db: &PgDatabase,
    emu: &sf_emulator::Emulator,
) -> (Arc<App>, TestDir) {
    let dir = temp_dir("pg-second-host");
    std::fs::copy(first_dir.join(KEY_FILE), dir.join(KEY_FILE)).unwrap();
    let mut config = AppConfig::new(dir.to_path_buf());
    approve_emulator(&mut config, &emu.url);
    config.host_client = Default::default();
    config.database = Some(Secret::new(db.url.clone()));
    (open_app(config).await, dir)
}

/// The live keys `app` stores for `object`.
fn stored_keys(app: &App, id: &str, object: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    app.store()
        .for_each_record(id, Some(object), false, |r| {
            keys.insert(r.key);
            Ok(())
        })
        .unwrap();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_on_postgres_stores_every_record_there() {
    let (emu, app, dir, id, db) = first_host("pg-pull").await;
    let summary = sluice::runner::run_pull(&app, &id, full(40)).await.unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    for object in OBJECTS {
        assert_eq!(
            stored_keys(&app, &id, object),
            live_truth(&emu, object).await,
            "{object}"
        );
    }
    let in_database = PgCluster::shared().psql(&db.name, "SELECT count(*) FROM records");
    assert!(
        in_database.trim().parse::<u64>().unwrap() > 0,
        "{in_database}"
    );
    assert!(
        !dir.join(DB_FILE).exists(),
        "no SQLite file beside a PostgreSQL store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_cannot_pull_what_the_first_is_pulling() {
    let (emu, first, first_dir, id, db) = first_host("pg-exclusive").await;
    let (second, _dir) = second_host(&first_dir, &db, &emu).await;
    let held = sluice::runner::claim(&first, &id).unwrap();
    let refused = sluice::runner::run_pull(&second, &id, full(40)).await;
    assert!(
        matches!(refused, Err(AppError::AlreadyRunning(_))),
        "{refused:?}"
    );
    drop(held);
    let summary = sluice::runner::run_pull(&second, &id, full(40))
        .await
        .unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    for object in OBJECTS {
        assert_eq!(
            stored_keys(&first, &id, object),
            live_truth(&emu, object).await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_lease_was_taken_over_commits_no_further_page() {
    let (emu, first, first_dir, id, db) = first_host("pg-fenced").await;
    let (second, _dir) = second_host(&first_dir, &db, &emu).await;
    let psql = |sql: &str| PgCluster::shared().psql(&db.name, sql);

    // The first host's pull stalls on an API call past its first pages, as a paused or
    // partitioned host would, until the emulator releases it.
    control(
        &emu,
        "POST",
        "faults",
        Some(json!({"path_prefix": "/services/data/", "skip": 4, "hold": true})),
    )
    .await;
    let stalled = {
        let (first, id) = (first.clone(), id.clone());
        tokio::spawn(async move { sluice::runner::run_pull(&first, &id, full(40)).await })
    };
    let bound = format!("SELECT run_id IS NOT NULL FROM run_leases WHERE integration_id = '{id}'");
    let deadline = Instant::now() + Duration::from_secs(60);
    while psql(&bound).trim() != "t" {
        assert!(
            Instant::now() < deadline,
            "the first host's run never bound its lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pages = format!(
        "SELECT count(*) FROM run_pages p JOIN runs r ON r.id = p.run_id \
         WHERE r.integration_id = '{id}'"
    );

    // Its lease runs out meanwhile and the second host takes over. A page commit in flight
    // holds the lease row, so the claim waits for it: counted from here, no page may follow.
    psql(&format!(
        "UPDATE run_leases SET expires_at_ms = 0 WHERE integration_id = '{id}'"
    ));
    let takeover = sluice::runner::claim(&second, &id).expect("the expired lease is claimed");
    let pages_before = psql(&pages);
    control(&emu, "POST", "faults/release", None).await;

    let outcome = stalled.await.unwrap();
    let lost = match &outcome {
        Err(e) => e.to_string(),
        Ok(summary) => format!("{summary:?}"),
    };
    assert!(
        lost.contains("lost its lease"),
        "the stalled run stops: {lost}"
    );
    let pages_after = psql(&pages);
    assert_eq!(
        pages_after, pages_before,
        "no page of the stalled run after the takeover"
    );

    let summary = sluice::runner::run_claimed(&second, &takeover, full(40))
        .await
        .unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    for object in OBJECTS {
        assert_eq!(
            stored_keys(&second, &id, object),
            live_truth(&emu, object).await
        );
    }
}

/// Three hosts run their schedulers on one database: between them they pull each integration
/// once per interval (each host keeping its own timers would pull it three times), never two
/// runs of one integration at once, and each host takes a share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_sharing_a_schedule_pull_each_integration_once_per_interval() {
    let (emu, first, first_dir, first_id, db) = first_host("pg-schedule").await;
    let interval = Duration::from_secs(3);
    // Made with the default interval; the shorter one brings its first pull in.
    PgCluster::shared().psql(
        &db.name,
        &format!("UPDATE integrations SET interval_s = 3 WHERE id = '{first_id}'"),
    );
    let mut ids = vec![first_id];
    // Five in all: Salesforce keeps one user's last five approvals of an app.
    for tenant in 1..5 {
        let input = IntegrationInput {
            interval: Some(interval),
            ..crm_input(&emu, &format!("tenant {tenant}"), &["Account"])
        };
        let id = add_connected(&first, input).await;
        ids.push(id);
    }
    let (second, _second_dir) = second_host(&first_dir, &db, &emu).await;
    let (third, _third_dir) = second_host(&first_dir, &db, &emu).await;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let health_check_every = Duration::from_secs(4);
    let mut schedulers = Vec::new();
    for host in [&first, &second, &third] {
        let stats = Arc::new(SchedulerStats::default());
        let config = SchedulerConfig {
            max_concurrent: 4,
            tick: Duration::from_millis(100),
            health_check_every,
            ..SchedulerConfig::default()
        };
        let task = tokio::spawn(sluice::scheduler::run(
            host.clone(),
            config,
            stats.clone(),
            stopped.clone(),
        ));
        schedulers.push((task, stats));
    }
    let window = Duration::from_secs(18);
    tokio::time::sleep(window).await;
    stop.send(true).unwrap();
    let mut started_per_host = Vec::new();
    let mut token_checks = 0;
    for (task, stats) in schedulers {
        task.await.unwrap();
        assert_eq!(stats.overlaps_refused.load(Ordering::SeqCst), 0);
        started_per_host.push(stats.runs_started.load(Ordering::SeqCst));
        token_checks += stats.health_checks.load(Ordering::SeqCst);
    }
    // Each token once per period between the hosts, not once per period on each host.
    let checks_each = window.as_secs_f64() / (health_check_every.as_secs_f64() * 0.9);
    let most_checks = ids.len() as u64 * (checks_each.ceil() as u64 + 1);
    println!("runs started per host {started_per_host:?}, {token_checks} token checks");
    assert!(
        (1..=most_checks).contains(&token_checks),
        "{token_checks} token checks by 3 hosts (at most {most_checks})"
    );

    let most = (window.as_secs_f64() / (interval.as_secs_f64() * 0.9)).ceil() as usize + 1;
    for id in &ids {
        let mut runs = first.store().runs(id, 1000).unwrap();
        runs.sort_by_key(|r| r.started_at_ms);
        for pair in runs.windows(2) {
            let end = pair[0].ended_at_ms.expect("every run ended");
            assert!(end <= pair[1].started_at_ms, "overlapping runs of {id}");
        }
        assert!(
            (2..=most).contains(&runs.len()),
            "{id}: {} runs in {window:?} at an interval of {interval:?} (at most {most}); \
             per host {started_per_host:?}; {:?}",
            runs.len(),
            runs.iter()
                .map(|r| (r.status, r.error.as_deref()))
                .collect::<Vec<_>>()
        );
    }
    assert!(
        started_per_host.iter().all(|&n| n > 0),
        "every host takes a share: {started_per_host:?}"
    );
    let held = PgCluster::shared().psql(
        &db.name,
        "SELECT count(*) FROM run_leases WHERE owner IS NOT NULL",
    );
    assert_eq!(held.trim(), "0", "a stopped scheduler gives its leases up");
}

/// A version installed and activated on one host is served by another as soon as the
/// database's notification arrives: its store poll is an hour, so only the notification can
/// bring the version within the test's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_activated_on_one_host_is_served_by_another_at_once() {
    let (emu, first, first_dir, _id, db) = first_host("pg-versions").await;
    let (second, _dir) = second_host(&first_dir, &db, &emu).await;
    let activations = second.store().connector_activations().unwrap();
    assert!(activations.is_some(), "PostgreSQL notifies activations");
    let _following = follow_store(
        second.registry().clone(),
        Duration::from_secs(3600),
        activations,
    );
    // The follower's first sync runs at once: let it pass before the install.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = second.registry().active("salesforce").unwrap().version;
    let newer = with_custom_section(sluice::SALESFORCE_COMPONENT, "sluice-test-version", b"2");
    let installed = first
        .registry()
        .install("salesforce", &newer, false)
        .await
        .unwrap();
    assert!(installed.version > before, "{installed:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while second.registry().active("salesforce").unwrap().version != installed.version {
        assert!(
            Instant::now() < deadline,
            "the second host still serves version {before}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_cli_keeps_its_state_in_the_database_it_is_given() {
    let db = PgCluster::shared().create_database();
    let dir = temp_dir("pg-cli");
    let out = sluice_command(&dir)
        .args(["--database", &db.url, "integration", "list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = PgCluster::shared().psql(&db.name, "SELECT version FROM sluice_schema");
    assert_eq!(
        version.trim(),
        sluice::store::pg::MIGRATIONS.len().to_string()
    );
    assert!(
        !dir.join(DB_FILE).exists(),
        "no SQLite file beside a PostgreSQL store"
    );

    let out = sluice_command(&dir)
        .args(["--database", "mysql://db/sluice", "integration", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("postgres://user@host:port/db"), "{said}");
}
