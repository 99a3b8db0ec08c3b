//! Acceptance (scale-out): three `sluice serve --database` hosts share one PostgreSQL database
//! and many integrations against the emulator for minutes, while the emulator's records change,
//! hosts are SIGKILLed at random and restarted, and one host is SIGSTOPped for longer than its
//! lease, then continued. Afterwards, from the database:
//! - no integration ever had two runs at once (run rows: each run ended before the next began,
//!   each under a later lease generation);
//! - no page was committed without the lease (commit generations: no page of a run follows a
//!   page of a later generation of its integration);
//! - every integration was pulled again within its interval plus the lease time;
//! - every integration's stored records equal the emulator's.
//!
//! Size: `SLUICE_CHAOS_INTEGRATIONS` (default 200), `SLUICE_CHAOS_SECONDS` of chaos (default
//! 180) and at least `SLUICE_CHAOS_KILLS` SIGKILLs (default 20).

#![cfg(unix)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice::app::{AppConfig, IntegrationInput};
use sluice::secrets::{KEY_FILE, Secret};
use sluice::store::RunState;
use support::binary::sluice_command;
use support::dirs::{TestDir, temp_dir};
use support::runtime::{add_connected, approve_emulator, control, crm_input, open_app};
use support::served::Served;
use support::{PgCluster, PgDatabase};

const INTERVAL: Duration = Duration::from_secs(30);
const LEASE_TTL: Duration = Duration::from_secs(6);
/// Claim ticks, process start and a page in flight: the schedule's slack beyond the lease.
const SLACK: Duration = Duration::from_secs(8);
const HOSTS: usize = 3;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    sluice::store::now_ms()
}

/// One host: its data directory (holding the shared key) and, while it runs, its process.
struct Host {
    dir: TestDir,
    served: Option<Served>,
}

fn start_host(dir: &Path, database_url: &str, emulator_url: &str) -> Served {
    let mut cmd = sluice_command(dir);
    cmd.args(["--database", database_url, "--allow-insecure-loopback"])
        .args(["--extra-origin", emulator_url])
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--lease-ttl", &format!("{}s", LEASE_TTL.as_secs())])
        .args(["--max-concurrent-pulls", "8"]);
    Served::spawn(cmd, dir)
}

/// Inserts, updates and deletes a few Accounts, stamped now as Salesforce stamps a change.
async fn change_accounts(emu: &sf_emulator::Emulator, round: usize) {
    let live: Vec<String> = support::runtime::live_truth(emu, "Account")
        .await
        .into_iter()
        .collect();
    let pick = |n: usize| live[(round * 7 + n * 13) % live.len()].clone();
    let ops = json!([
        {"op": "insert", "object": "Account", "fields": {"Name": format!("chaos {round} a")}},
        {"op": "insert", "object": "Account", "fields": {"Name": format!("chaos {round} b")}},
        {"op": "update", "object": "Account", "ids": [pick(0), pick(1)],
            "fields": {"Description": format!("round {round}")}},
        {"op": "delete", "object": "Account", "id": pick(2)},
    ]);
    control(emu, "POST", "records", Some(ops)).await;
}

/// The emulator's live Accounts: Id to SystemModstamp.
async fn account_truth(emu: &sf_emulator::Emulator) -> BTreeMap<String, String> {
    support::runtime::live_records(emu, "Account")
        .await
        .into_iter()
        .map(|(id, r)| (id, r["SystemModstamp"].as_str().unwrap().to_string()))
        .collect()
}

/// A run as its row holds it, with its page commit times.
#[derive(Debug)]
struct RunRow {
    id: String,
    started: i64,
    ended: Option<i64>,
    status: RunState,
    generation: Option<i64>,
    commits: Vec<i64>,
}

impl RunRow {
    /// When it last did something: its end when it ended by itself; its last page (or its
    /// start) when its host died or stalled and another host closed it.
    fn last_activity(&self) -> i64 {
        match (self.status, self.ended) {
            (RunState::Interrupted, _) | (_, None) => {
                self.commits.iter().copied().max().unwrap_or(self.started)
            }
            (_, Some(ended)) => ended,
        }
    }
}

/// Every integration's runs in the order they started, with their commits.
fn runs_by_integration(db: &PgDatabase) -> BTreeMap<String, Vec<RunRow>> {
    let cluster = PgCluster::shared();
    let mut commits: HashMap<String, Vec<i64>> = HashMap::new();
    for line in cluster
        .psql(&db.name, "SELECT run_id, committed_at_ms FROM run_pages")
        .lines()
    {
        let (run, at) = line.split_once('|').unwrap();
        commits
            .entry(run.to_string())
            .or_default()
            .push(at.parse().unwrap());
    }
    let mut runs: BTreeMap<String, Vec<RunRow>> = BTreeMap::new();
    let rows = cluster.psql(
        &db.name,
        "SELECT integration_id, id, started_at_ms, coalesce(ended_at_ms::text, ''), status, \
         coalesce(lease_generation::text, '') FROM runs \
         ORDER BY integration_id, started_at_ms, started_order",
    );
    for line in rows.lines() {
        let f: Vec<&str> = line.split('|').collect();
        runs.entry(f[0].to_string()).or_default().push(RunRow {
            id: f[1].to_string(),
            started: f[2].parse().unwrap(),
            ended: f[3].parse().ok(),
            status: RunState::parse(f[4]).unwrap(),
            generation: f[5].parse().ok(),
            commits: commits.remove(f[1]).unwrap_or_default(),
        });
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_killed_and_stalled_at_random_pull_each_integration_once_and_lose_nothing() {
    let integrations = env_or("SLUICE_CHAOS_INTEGRATIONS", 200) as usize;
    let chaos = Duration::from_secs(env_or("SLUICE_CHAOS_SECONDS", 180));
    let min_kills = env_or("SLUICE_CHAOS_KILLS", 20) as usize;
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        // The tenants stand for different users of one org.
        settings: sf_emulator::Settings {
            approvals_per_app: u32::MAX,
            api_daily_limit: u64::MAX / 2,
            ..sf_emulator::Settings::default()
        },
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let db = PgCluster::shared().create_database();

    // The integrations, made and connected through the runtime on the shared database.
    let setup_dir = temp_dir("pg-chaos-setup");
    let mut config = AppConfig::new(setup_dir.to_path_buf());
    approve_emulator(&mut config, &emu.url);
    config.host_client = Default::default();
    config.database = Some(Secret::new(db.url.clone()));
    let app = open_app(config).await;
    let mut ids = Vec::new();
    for tenant in 0..integrations {
        let input = IntegrationInput {
            interval: Some(INTERVAL),
            ..crm_input(&emu, &format!("tenant {tenant}"), &["Account"])
        };
        ids.push(add_connected(&app, input).await);
    }

    let mut hosts: Vec<Host> = (0..HOSTS)
        .map(|n| {
            let dir = temp_dir(&format!("pg-chaos-host{n}"));
            std::fs::copy(setup_dir.join(KEY_FILE), dir.join(KEY_FILE)).unwrap();
            Host { dir, served: None }
        })
        .collect();
    for host in &mut hosts {
        let (dir, db, url) = (host.dir.to_path_buf(), db.url.clone(), emu.url.clone());
        let served = tokio::task::spawn_blocking(move || start_host(&dir, &db, &url))
            .await
            .unwrap();
        host.served = Some(served);
    }
    let hosts_started = now_ms();

    // Chaos: a SIGKILL every few seconds, the host restarted a moment later; one stall past
    // the lease a third of the way in; changes to the records in the first half.
    let started = Instant::now();
    let stall_at = chaos / 3;
    let mut stalled = false;
    let mut kills = 0;
    let mut round = 0;
    let mut last_change_ms = 0;
    let mut last_kill = Instant::now();
    let kill_every_ms = (chaos.as_millis() as u64 / (min_kills as u64 + 4)).max(500);
    while started.elapsed() < chaos || kills < min_kills {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(
            kill_every_ms / 2..kill_every_ms * 3 / 2,
        )))
        .await;
        if started.elapsed() < chaos / 2 && round < 6 {
            change_accounts(&emu, round).await;
            last_change_ms = now_ms();
            round += 1;
        }
        if !stalled && started.elapsed() >= stall_at {
            stalled = true;
            hosts[0].served.as_ref().unwrap().signal("STOP");
            // Hosts 1 and 2 go on meanwhile, and are killed as before.
            let resume_at = Instant::now() + LEASE_TTL * 2 + Duration::from_secs(1);
            while Instant::now() < resume_at {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(
                    kill_every_ms / 2..kill_every_ms,
                )))
                .await;
                let victim = 1 + fastrand::usize(..HOSTS - 1);
                kill_and_restart(&mut hosts[victim], &db, &emu.url).await;
                kills += 1;
                last_kill = Instant::now();
            }
            hosts[0].served.as_ref().unwrap().signal("CONT");
            continue;
        }
        let victim = fastrand::usize(..HOSTS);
        kill_and_restart(&mut hosts[victim], &db, &emu.url).await;
        kills += 1;
        last_kill = Instant::now();
    }
    let chaos_took = started.elapsed();

    // Quiet: every integration pulls again after the last change is readable (a pull reads up
    // to a minute behind the server's clock), and every run a killed host left behind was
    // taken over (the next run of its integration closes it), so that the hosts' graceful
    // stop ends every run. Until the last killed host's leases expire, its runs look alive.
    let leases_of_the_dead_expire = last_kill + LEASE_TTL + Duration::from_secs(1);
    let readable_after = last_change_ms + 61_000;
    let settle_by = Instant::now() + INTERVAL * 3 + Duration::from_secs(90);
    let count = |sql: &str| -> usize {
        PgCluster::shared()
            .psql(&db.name, sql)
            .trim()
            .parse()
            .unwrap()
    };
    loop {
        let caught_up = count(&format!(
            "SELECT count(DISTINCT integration_id) FROM runs \
             WHERE status = 'succeeded' AND started_at_ms > {readable_after}"
        ));
        let left_behind = count(
            "SELECT count(*) FROM runs r WHERE r.status = 'running' AND NOT EXISTS \
             (SELECT 1 FROM run_leases l \
              WHERE l.run_id = r.id AND l.expires_at_ms >= sluice_now_ms())",
        );
        if caught_up == integrations
            && left_behind == 0
            && Instant::now() >= leases_of_the_dead_expire
        {
            break;
        }
        assert!(
            Instant::now() < settle_by,
            "after the chaos {caught_up} of {integrations} integrations pulled the last \
             changes, and {left_behind} runs of dead hosts were not taken over"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // A graceful stop: each host ends its runs in flight after their page in flight.
    let serving: Vec<Served> = hosts.iter_mut().map(|h| h.served.take().unwrap()).collect();
    for served in &serving {
        served.signal("TERM");
    }
    for served in serving {
        let status = tokio::task::spawn_blocking(move || served.wait(Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(
            status.is_some_and(|s| s.success()),
            "a host stops within a minute of SIGTERM, cleanly: {status:?}"
        );
    }

    let runs = runs_by_integration(&db);
    let total_runs: usize = runs.values().map(Vec::len).sum();
    println!(
        "{integrations} integrations on {HOSTS} hosts: {kills} SIGKILLs and one SIGSTOP in \
         {:.0} s of chaos, {round} rounds of changes, {total_runs} runs",
        chaos_took.as_secs_f64()
    );
    assert!(kills >= min_kills, "{kills} kills");
    assert_eq!(runs.len(), integrations, "every integration ran");
    let most_gap = (INTERVAL.mul_f64(1.1) + LEASE_TTL + SLACK).as_millis() as i64;
    for (id, runs) in &runs {
        for run in runs {
            assert!(run.ended.is_some(), "{id}: run {} never ended", run.id);
            assert!(
                run.generation.is_some(),
                "{id}: run {} ran under no lease",
                run.id
            );
        }
        for pair in runs.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            assert!(
                before.ended.unwrap() <= after.started,
                "{id}: runs {} and {} overlap",
                before.id,
                after.id
            );
            assert!(
                before.generation < after.generation,
                "{id}: run {} does not hold a later lease than run {}",
                after.id,
                before.id
            );
            // A later generation's first page never precedes an earlier one's last.
            if let (Some(last), Some(first)) =
                (before.commits.iter().max(), after.commits.iter().min())
            {
                assert!(
                    last <= first,
                    "{id}: run {} committed a page after run {} held the lease",
                    before.id,
                    after.id
                );
            }
            let gap = after.started - before.last_activity();
            assert!(
                gap <= most_gap,
                "{id}: {gap} ms between run {} and run {} (at most {most_gap})",
                before.id,
                after.id
            );
        }
        let first_wait = runs[0].started - hosts_started;
        assert!(
            first_wait <= (INTERVAL + LEASE_TTL + SLACK).as_millis() as i64,
            "{id}: first pulled {first_wait} ms after the hosts started"
        );
    }

    let truth = account_truth(&emu).await;
    for id in &ids {
        let mut stored = BTreeMap::new();
        app.store()
            .for_each_record(id, Some("Account"), false, |r| {
                let json: Value = serde_json::from_slice(&r.json).unwrap();
                stored.insert(r.key, json["SystemModstamp"].as_str().unwrap().to_string());
                Ok(())
            })
            .unwrap();
        assert!(
            stored == truth,
            "{id}: {} stored Accounts, {} live in the org",
            stored.len(),
            truth.len()
        );
    }
}

/// SIGKILLs `host` and starts it again a moment later.
async fn kill_and_restart(host: &mut Host, db: &PgDatabase, emulator_url: &str) {
    if let Some(served) = host.served.take() {
        served.signal("KILL");
        tokio::task::spawn_blocking(move || drop(served))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(fastrand::u64(100..1500))).await;
    let (dir, db, url) = (
        host.dir.to_path_buf(),
        db.url.clone(),
        emulator_url.to_string(),
    );
    host.served = Some(
        tokio::task::spawn_blocking(move || start_host(&dir, &db, &url))
            .await
            .unwrap(),
    );
}
