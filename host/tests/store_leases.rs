//! Run leases on PostgreSQL: hosts claiming at once claim each due integration once, a
//! lease that expired is taken over with the next generation, and its old holder is refused.

use std::collections::HashMap;
use std::time::Duration;

use sluice::store::{Lease, LeaseError, LeaseLoss, NextDue, Store, StoreError};
use sluice_test_support::PgCluster;
use sluice_test_support::stores::{Backend, TestStore};

const TTL: Duration = Duration::from_secs(60);

fn postgres() -> TestStore {
    TestStore::new(Backend::Postgres, "leases")
}

fn sql(store: &TestStore, sql: &str) -> String {
    PgCluster::shared().psql(store.database_name().unwrap(), sql)
}

/// `n` integrations in `state`, all due now.
fn integrations(store: &TestStore, n: usize, state: &str) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("int_{state}_{i}")).collect();
    for id in &ids {
        sql(
            store,
            &format!(
                "INSERT INTO integrations (id, name, connector, settings_json, interval_s, \
                 state, created_at_ms, updated_at_ms) \
                 VALUES ('{id}', '{id}', 'salesforce', '{{\"capability\": \"crm\"}}', 900, \
                 '{state}', 0, 0)"
            ),
        );
    }
    sql(store, "UPDATE run_leases SET due_at_ms = 0");
    ids
}

fn expire(store: &TestStore, id: &str) {
    sql(
        store,
        &format!("UPDATE run_leases SET expires_at_ms = 0 WHERE integration_id = '{id}'"),
    );
}

/// What `hosts` claim, each on a thread of its own at once, as `host-N`, until a claim gets
/// nothing.
fn claim_all_at_once(
    hosts: &[Store],
    claim: impl Fn(&Store, &str) -> Vec<Lease> + Sync,
) -> Vec<Lease> {
    let claim = &claim;
    std::thread::scope(|s| {
        let claiming: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(h, host)| {
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let got = claim(host, &format!("host-{h}"));
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got);
                    }
                })
            })
            .collect();
        claiming
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    })
}

#[test]
fn hosts_claiming_at_once_claim_each_due_integration_once() {
    let store = postgres();
    let ids = integrations(&store, 200, "active");
    integrations(&store, 5, "needs-reauthorization");
    let hosts: Vec<Store> = (0..4).map(|_| store.reopen()).collect();
    let claimed = claim_all_at_once(&hosts, |host, owner| {
        host.claim_due_leases(owner, TTL, 7).unwrap()
    });
    let mut times: HashMap<&str, usize> = HashMap::new();
    for lease in &claimed {
        *times.entry(lease.integration_id.as_str()).or_default() += 1;
        assert_eq!(lease.generation, 1, "{lease:?}");
    }
    assert_eq!(
        times.len(),
        ids.len(),
        "every active integration is claimed"
    );
    assert!(times.values().all(|&n| n == 1), "none twice: {times:?}");
    let owners: std::collections::HashSet<_> = claimed.iter().map(|l| &l.owner).collect();
    assert!(owners.len() > 1, "the work is shared: {owners:?}");
}

#[test]
fn a_live_lease_is_not_claimed_again_until_released() {
    let store = postgres();
    let id = &integrations(&store, 1, "active")[0];
    let other = store.reopen();
    let lease = store.claim_lease(id, "host-a", TTL).unwrap().expect("free");
    assert_eq!(other.claim_lease(id, "host-b", TTL).unwrap(), None);
    assert!(
        other
            .claim_due_leases("host-b", TTL, 10)
            .unwrap()
            .is_empty()
    );

    let later = NextDue::After {
        delay: Duration::from_secs(3600),
        failures: 0,
    };
    store.release_lease(&lease, later).unwrap();
    assert!(
        other
            .claim_due_leases("host-b", TTL, 10)
            .unwrap()
            .is_empty(),
        "not due before the time its release set"
    );
    let taken = other
        .claim_lease(id, "host-b", TTL)
        .unwrap()
        .expect("released");
    assert_eq!(taken.generation, lease.generation + 1);
}

/// The lease row of `id`: when it is due (ms from now, on the database's clock) and its
/// failure count.
fn due_and_failures(store: &TestStore, id: &str) -> (i64, u32) {
    let row = sql(
        store,
        &format!(
            "SELECT due_at_ms - sluice_now_ms(), failures FROM run_leases \
             WHERE integration_id = '{id}'"
        ),
    );
    let (due, failures) = row.trim().split_once('|').expect("one row");
    (due.parse().unwrap(), failures.parse().unwrap())
}

#[test]
fn a_release_sets_when_the_integration_is_next_due_and_its_failure_count() {
    let store = postgres();
    let id = &integrations(&store, 1, "active")[0];
    let lease = store.claim_due_leases("host-a", TTL, 10).unwrap().remove(0);
    assert_eq!(lease.failures, 0);
    let failed = NextDue::After {
        delay: Duration::ZERO,
        failures: 3,
    };
    store.release_lease(&lease, failed).unwrap();
    let again = store.claim_due_leases("host-b", TTL, 10).unwrap();
    assert_eq!(again.len(), 1, "due at once");
    assert_eq!(
        again[0].failures, 3,
        "the backoff step travels with the lease"
    );

    // A pull someone asked for: due one interval (900 s) later, the failures kept.
    store.release_lease(&again[0], NextDue::Interval).unwrap();
    let (due, failures) = due_and_failures(&store, id);
    assert!((899_000..=900_000).contains(&due), "{due}");
    assert_eq!(failures, 3);

    // A hold that was no pull (a token health check) leaves the schedule as it was.
    let held = store.claim_lease(id, "host-c", TTL).unwrap().unwrap();
    store.release_lease(&held, NextDue::Unchanged).unwrap();
    let (due_after, _) = due_and_failures(&store, id);
    assert!(
        due_after <= due && due_after > due - 60_000,
        "{due} then {due_after}"
    );

    // A shorter interval brings the due time into the new interval.
    sql(
        &store,
        &format!("UPDATE integrations SET interval_s = 10 WHERE id = '{id}'"),
    );
    let (due, _) = due_and_failures(&store, id);
    assert!(due <= 10_000, "{due}");
}

#[test]
fn an_expired_lease_is_taken_over_and_its_old_holder_is_refused() {
    let store = postgres();
    let id = &integrations(&store, 1, "active")[0];
    let other = store.reopen();
    let mut stale = store.claim_lease(id, "host-a", TTL).unwrap().unwrap();
    store.start_leased_run(&stale, "cli", false, "1").unwrap();

    expire(&store, id);
    assert!(
        matches!(
            store.renew_lease(&mut stale.clone(), TTL),
            Err(LeaseError::Lost(LeaseLoss::Expired))
        ),
        "an expired lease is not renewed, even when nobody took it yet"
    );
    let fresh = other.claim_due_leases("host-b", TTL, 10).unwrap();
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].generation, stale.generation + 1);
    assert_eq!(fresh[0].owner, "host-b");

    for refused in [
        store.renew_lease(&mut stale, TTL),
        store
            .start_leased_run(&stale, "cli", false, "1")
            .map(|_| ()),
        store.release_lease(&stale, NextDue::Unchanged),
    ] {
        assert!(
            matches!(refused, Err(LeaseError::Lost(LeaseLoss::TakenOver))),
            "{refused:?}"
        );
    }
    let mut held = fresh[0].clone();
    other.renew_lease(&mut held, TTL).unwrap();
    let run_b = other.start_leased_run(&held, "cli", false, "1").unwrap();
    assert_eq!(
        sql(
            &store,
            &format!("SELECT owner, run_id FROM run_leases WHERE integration_id = '{id}'")
        ),
        format!("host-b|{run_b}\n"),
        "the old holder's refused requests changed nothing"
    );
}

/// The status of run `run_id`.
fn run_status(store: &TestStore, run_id: &str) -> String {
    sql(
        store,
        &format!("SELECT status FROM runs WHERE id = '{run_id}'"),
    )
    .trim()
    .to_string()
}

#[test]
fn runs_whose_lease_lapsed_end_as_interrupted_and_live_ones_go_on() {
    let store = postgres();
    let ids = integrations(&store, 3, "active");
    let start = |id: &str, host: &str| {
        let lease = store.claim_lease(id, host, TTL).unwrap().unwrap();
        store
            .start_leased_run(&lease, "schedule", false, "1")
            .unwrap()
    };
    let expired = start(&ids[0], "host-a");
    expire(&store, &ids[0]);
    let live = start(&ids[1], "host-a");
    let taken = start(&ids[2], "host-a");
    expire(&store, &ids[2]);
    // Claimed by host B, whose run has not started yet.
    let successor = store.claim_lease(&ids[2], "host-b", TTL).unwrap().unwrap();

    assert_eq!(store.close_runs_of_lapsed_leases().unwrap(), 2);
    assert_eq!(run_status(&store, &expired), "interrupted");
    assert_eq!(run_status(&store, &taken), "interrupted");
    assert_eq!(run_status(&store, &live), "running");
    let successor = store
        .start_leased_run(&successor, "schedule", false, "1")
        .unwrap();
    assert_eq!(run_status(&store, &successor), "running");
    let ended = sql(
        &store,
        &format!("SELECT ended_at_ms IS NOT NULL, error FROM runs WHERE id = '{expired}'"),
    );
    assert!(
        ended.starts_with("t|the host running it stopped renewing its lease"),
        "{ended}"
    );
    assert_eq!(
        store.close_runs_of_lapsed_leases().unwrap(),
        0,
        "closed once"
    );
}

#[test]
fn a_run_starts_under_a_live_lease_only_and_names_its_host_and_generation() {
    let store = postgres();
    let id = &integrations(&store, 1, "active")[0];
    let lease = store.claim_lease(id, "host-a", TTL).unwrap().unwrap();
    let run = store
        .start_leased_run(&lease, "schedule", false, "1")
        .unwrap();
    assert_eq!(
        sql(
            &store,
            &format!("SELECT host, lease_generation, status FROM runs WHERE id = '{run}'")
        ),
        format!("host-a|{}|running\n", lease.generation)
    );
    expire(&store, id);
    let refused = store.start_leased_run(&lease, "schedule", false, "1");
    assert!(
        matches!(refused, Err(LeaseError::Lost(LeaseLoss::Expired))),
        "{refused:?}"
    );
    assert_eq!(
        sql(
            &store,
            &format!("SELECT count(*) FROM runs WHERE integration_id = '{id}'")
        ),
        "1\n",
        "a refused start leaves no run behind"
    );
}

#[test]
fn a_full_start_under_a_lapsed_lease_neither_ends_nor_resets_the_new_holders_run() {
    let store = postgres();
    let id = &integrations(&store, 1, "active")[0];
    let stalled = store.claim_lease(id, "host-a", TTL).unwrap().unwrap();
    expire(&store, id);
    let holder = store.claim_lease(id, "host-b", TTL).unwrap().unwrap();
    let live = store
        .start_leased_run(&holder, "schedule", false, "1")
        .unwrap();
    sql(
        &store,
        &format!(
            "INSERT INTO checkpoints (integration_id, stream, checkpoint, status, updated_at_ms) \
             VALUES ('{id}', 'Case', 'page-7', 'partial', 0)"
        ),
    );
    // Host A wakes from its stall and starts the full run it claimed.
    let refused = store.start_leased_run(&stalled, "schedule", true, "1");
    assert!(
        matches!(refused, Err(LeaseError::Lost(LeaseLoss::TakenOver))),
        "{refused:?}"
    );
    assert_eq!(
        sql(
            &store,
            &format!("SELECT status FROM runs WHERE id = '{live}'")
        ),
        "running\n",
        "the new holder's run goes on"
    );
    assert_eq!(
        sql(
            &store,
            &format!("SELECT checkpoint FROM checkpoints WHERE integration_id = '{id}'")
        ),
        "page-7\n",
        "the new holder's checkpoint is kept"
    );

    // The holder's own next full run ends what it left running and starts from nothing.
    let next = store.start_leased_run(&holder, "cli", true, "1").unwrap();
    assert_eq!(
        sql(
            &store,
            &format!(
                "SELECT status FROM runs WHERE integration_id = '{id}' ORDER BY id = '{next}'"
            )
        ),
        "interrupted\nrunning\n"
    );
    assert_eq!(
        sql(
            &store,
            &format!("SELECT count(*) FROM checkpoints WHERE integration_id = '{id}'")
        ),
        "0\n"
    );
}

#[test]
fn a_paused_integration_is_not_claimed_until_resumed() {
    let store = postgres();
    let id = &integrations(&store, 1, "active")[0];
    store.set_paused(id, true).unwrap();
    assert!(
        store
            .claim_due_leases("host-a", TTL, 10)
            .unwrap()
            .is_empty()
    );
    store.set_paused(id, false).unwrap();
    let claimed = store.claim_due_leases("host-a", TTL, 10).unwrap();
    assert_eq!(claimed.len(), 1, "due while paused, claimed once resumed");
}

#[test]
fn hosts_check_each_token_once_per_period_between_them() {
    let store = postgres();
    let ids = integrations(&store, 12, "active");
    integrations(&store, 3, "needs-reauthorization");
    let hosts: Vec<Store> = (0..3).map(|_| store.reopen()).collect();
    let every = Duration::from_secs(3600);
    let claim =
        |host: &Store, name: &str| host.claim_due_health_checks(name, TTL, every, 5).unwrap();

    // Seen for the first time: each first check lands within a period, none at once.
    assert!(claim(&hosts[0], "host-0").is_empty());
    let first = sql(
        &store,
        "SELECT count(*) FROM run_leases \
         WHERE health_due_at_ms BETWEEN sluice_now_ms() - 1000 AND sluice_now_ms() + 3600000",
    );
    assert_eq!(first, "15\n");

    sql(&store, "UPDATE run_leases SET health_due_at_ms = 0");
    let claimed = claim_all_at_once(&hosts, claim);
    let mut checked: Vec<&str> = claimed.iter().map(|l| l.integration_id.as_str()).collect();
    checked.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(checked, expected, "each active token once, by one host");
    let soonest = sql(
        &store,
        "SELECT min(health_due_at_ms) - sluice_now_ms() FROM run_leases l \
         JOIN integrations i ON i.id = l.integration_id WHERE i.state = 'active'",
    );
    let soonest: i64 = soonest.trim().parse().unwrap();
    assert!(
        soonest > 3_000_000,
        "the next checks are about a period away: {soonest} ms"
    );

    // A check that comes due while a pull holds the lease waits for it.
    for lease in &claimed {
        store.release_lease(lease, NextDue::Unchanged).unwrap();
    }
    let pulling = store.claim_lease(&ids[0], "host-0", TTL).unwrap().unwrap();
    sql(&store, "UPDATE run_leases SET health_due_at_ms = 0");
    let waiting: Vec<String> = claim(&hosts[1], "host-1")
        .into_iter()
        .chain(claim(&hosts[1], "host-1"))
        .chain(claim(&hosts[1], "host-1"))
        .map(|l| l.integration_id)
        .collect();
    assert_eq!(waiting.len(), ids.len() - 1);
    assert!(!waiting.contains(&pulling.integration_id), "{waiting:?}");
}

#[test]
fn a_deleted_integration_takes_its_lease_with_it() {
    let store = postgres();
    let id = &integrations(&store, 1, "active")[0];
    let lease = store.claim_lease(id, "host-a", TTL).unwrap().unwrap();
    sql(
        &store,
        &format!("DELETE FROM integrations WHERE id = '{id}'"),
    );
    assert!(matches!(
        store.release_lease(&lease, NextDue::Unchanged),
        Err(LeaseError::Lost(LeaseLoss::TakenOver))
    ));
    assert_eq!(sql(&store, "SELECT count(*) FROM run_leases"), "0\n");
}

#[test]
fn a_sqlite_store_has_no_leases_and_says_why() {
    let store = TestStore::new(Backend::Sqlite, "leases");
    let err = store.claim_lease("int_x", "host-a", TTL).unwrap_err();
    assert!(matches!(err, StoreError::OnlyOnPostgres(_)), "{err}");
    assert!(err.to_string().contains("--database postgres://"), "{err}");
}
