//! The scheduler: pulls every active integration on its interval.
//!
//! - Each integration's first pull lands at a random point of its first interval, and every
//!   later one at its interval ± 10% jitter, so 500 integrations do not start at once.
//! - Where the schedule lives: on SQLite, in this process, which owns the data directory; on
//!   a shared PostgreSQL database, in the database's run leases, so that hosts sharing it
//!   pull each integration once per interval between them, and a host that dies leaves its
//!   integrations due for the others once their leases expire; whichever host notices first
//!   ends its unfinished runs as interrupted.
//! - Failures back off exponentially (30 s doubling, capped at 1 h, at least the interval).
//! - `rate-limited` pauses the integration for the connector's `retry-after` (or 15 min).
//! - One integration never has two runs at once ([`crate::app::App::claim_run`]); a global
//!   semaphore caps concurrent runs.
//! - A periodic token health check finds a dead refresh token before the next pull needs it.
//!   On a shared database its schedule is in the lease rows too, so hosts check each token
//!   once per period between them.
//! - Stop: no new runs start; runs in flight finish the pages in flight (one per stream), commit and end.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::app::{App, AppError, RunClaim};
use crate::engine::backoff::{Backoff, spread};
use crate::runner::{DEFAULT_RATE_LIMIT_PAUSE, PullOptions, RunStatus, RunSummary};
use crate::store::{Integration, IntegrationState, NextDue};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// At most this many runs at once.
    pub max_concurrent: usize,
    /// How often the scheduler looks for due work (on a shared database, on average: each
    /// wait is drawn from half to one and a half of it).
    pub tick: Duration,
    /// First backoff after a failure.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
    /// How often each integration's refresh token is checked.
    pub health_check_every: Duration,
    /// Rows per page.
    pub page_records: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 8,
            tick: Duration::from_secs(1),
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            health_check_every: Duration::from_secs(3600),
            page_records: 0,
        }
    }
}

/// Counters, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Runs started.
    pub runs_started: AtomicU64,
    /// Runs that ended `succeeded`.
    pub runs_succeeded: AtomicU64,
    /// Runs that failed or errored.
    pub runs_failed: AtomicU64,
    /// Runs refused because one of the same integration was going on (must stay 0).
    pub overlaps_refused: AtomicU64,
    /// Runs going on now.
    pub running: AtomicUsize,
    /// The most runs seen at once.
    pub max_running: AtomicUsize,
    /// Health checks made.
    pub health_checks: AtomicU64,
    /// Health checks skipped because a pull held the integration.
    pub health_checks_skipped: AtomicU64,
}

/// When this process next pulls an integration, on a store it owns alone.
#[derive(Debug)]
struct LocalDue {
    at: Instant,
    failures: u32,
}

/// The delay after `failures` consecutive failures.
pub fn backoff(config: &SchedulerConfig, interval: Duration, failures: u32) -> Duration {
    let backoff = Backoff {
        base: config.backoff_base,
        max: config.backoff_max,
    };
    backoff
        .ceiling(failures.saturating_sub(1))
        .max(interval.min(config.backoff_max))
}

/// One piece of due work.
enum Job {
    /// A pull; on a shared database its lease is claimed already.
    Pull {
        id: String,
        claim: Option<RunClaim>,
        failures: u32,
    },
    /// A token health check; on a shared database its lease is claimed already.
    HealthCheck { id: String, claim: Option<RunClaim> },
}

/// The scheduler's state, shared with the tasks it starts.
struct Scheduler {
    app: Arc<App>,
    config: SchedulerConfig,
    stats: Arc<SchedulerStats>,
    stop: watch::Receiver<bool>,
    semaphore: Arc<Semaphore>,
    /// On a store this process owns alone: when each integration is next due.
    local_due: Mutex<HashMap<String, LocalDue>>,
    /// When each integration's token is next checked.
    next_health: Mutex<HashMap<String, Instant>>,
    /// Integrations with a job going on in this process.
    in_flight: Mutex<HashSet<String>>,
    /// On a shared database, when the sweep of lapsed runs and the health-check claims are
    /// next due: they need not run at every tick, and each costs the database a statement.
    next_shared_chores: Mutex<Instant>,
}

/// Runs the scheduler until `stop` turns true, then waits for the runs in flight.
pub async fn run(
    app: Arc<App>,
    config: SchedulerConfig,
    stats: Arc<SchedulerStats>,
    mut stop: watch::Receiver<bool>,
) {
    let shared = app.store().is_shared();
    let scheduler = Arc::new(Scheduler {
        semaphore: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
        app,
        config,
        stats,
        stop: stop.clone(),
        local_due: Mutex::default(),
        next_health: Mutex::default(),
        in_flight: Mutex::default(),
        next_shared_chores: Mutex::new(Instant::now()),
    });
    let mut tasks = JoinSet::new();
    tracing::info!(
        max_concurrent = scheduler.config.max_concurrent,
        shared,
        "scheduler started"
    );
    loop {
        if *stop.borrow() {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let integrations = match scheduler.app.store().integrations() {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %e, "scheduler cannot list integrations");
                Vec::new()
            }
        };
        let jobs = if shared {
            let chores = scheduler.shared_chores_due();
            if chores {
                scheduler.close_lapsed_runs();
            }
            let mut jobs = scheduler.claimed_pulls();
            if chores {
                jobs.extend(scheduler.claimed_health_checks(jobs.len()));
            }
            jobs
        } else {
            let mut jobs = scheduler.due_pulls(&integrations);
            jobs.extend(scheduler.due_health_checks(&integrations));
            jobs
        };
        for job in jobs {
            let id = job.integration().to_string();
            // A shared database's claims were sized to the free permits, so only local work
            // finds none; it stays due for the next tick.
            let Some(permit) = scheduler.admit(&id) else {
                job.put_back();
                continue;
            };
            let scheduler = scheduler.clone();
            tasks.spawn(async move {
                let _permit = permit;
                match job {
                    Job::Pull {
                        id,
                        claim,
                        failures,
                    } => scheduler.pull(&id, claim, failures).await,
                    Job::HealthCheck { id, claim } => scheduler.health_check(&id, claim).await,
                }
                scheduler.lock_in_flight().remove(&id);
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(scheduler.next_tick(shared)) => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!(
        in_flight = tasks.len(),
        "scheduler stopping; waiting for runs in flight"
    );
    while tasks.join_next().await.is_some() {}
    tracing::info!("scheduler stopped");
}

impl Job {
    fn integration(&self) -> &str {
        match self {
            Job::Pull { id, .. } | Job::HealthCheck { id, .. } => id,
        }
    }

    /// Gives up a job that is not started: a claimed integration stays due as it was.
    fn put_back(self) {
        if let Job::Pull {
            claim: Some(claim), ..
        }
        | Job::HealthCheck {
            claim: Some(claim), ..
        } = self
        {
            claim.release(NextDue::Unchanged);
        }
    }
}

impl Scheduler {
    /// A run slot for a job on `id`, unless one is going on for it here or none is free.
    fn admit(&self, id: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let mut in_flight = self.lock_in_flight();
        if in_flight.contains(id) {
            return None;
        }
        let permit = self.semaphore.clone().try_acquire_owned().ok()?;
        in_flight.insert(id.to_string());
        Some(permit)
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// On a store this process owns alone: the active integrations whose time has come.
    fn due_pulls(&self, integrations: &[Integration]) -> Vec<Job> {
        let now = Instant::now();
        let mut due = self.local_due.lock().unwrap_or_else(|e| e.into_inner());
        forget_deleted(&mut due, integrations);
        let mut jobs = Vec::new();
        for i in integrations {
            let entry = due.entry(i.id.clone()).or_insert_with(|| LocalDue {
                at: now + interval(i).mul_f64(fastrand::f64()),
                failures: 0,
            });
            if i.state == IntegrationState::Active && i.paused_at_ms.is_none() && now >= entry.at {
                jobs.push(Job::Pull {
                    id: i.id.clone(),
                    claim: None,
                    failures: entry.failures,
                });
            }
        }
        jobs
    }

    /// How long to sleep before the next tick. Hosts sharing a database tick at a random
    /// point of `tick` ± 50%: with fixed ticks, the host whose phase falls first after the
    /// due times a finished run sets would claim nearly every run, turn after turn, and the
    /// others would idle.
    fn next_tick(&self, shared: bool) -> Duration {
        match shared {
            true => self.config.tick.mul_f64(0.5 + fastrand::f64()),
            false => self.config.tick,
        }
    }

    /// Whether the shared database's chores are due at this tick (at most once a second).
    fn shared_chores_due(&self) -> bool {
        let mut next = self
            .next_shared_chores
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now < *next {
            return false;
        }
        *next = now + SHARED_CHORES_EVERY;
        true
    }

    /// On a shared database: ends the runs of hosts that died or stalled past their lease,
    /// whichever host notices first.
    fn close_lapsed_runs(&self) {
        match self.app.store().close_runs_of_lapsed_leases() {
            Ok(0) => {}
            Ok(closed) => tracing::info!(closed, "closed runs whose host lost its lease"),
            Err(e) => tracing::warn!(error = %e, "cannot close runs whose lease lapsed"),
        }
    }

    /// On a shared database: as many due integrations as there are free run slots, claimed
    /// for this host.
    fn claimed_pulls(self: &Arc<Self>) -> Vec<Job> {
        let free = self.semaphore.available_permits();
        if free == 0 {
            return Vec::new();
        }
        self.app
            .claim_due(free)
            .into_iter()
            .map(|(claim, failures)| Job::Pull {
                id: claim.integration().to_string(),
                claim: Some(claim),
                failures,
            })
            .collect()
    }

    /// On a shared database: the integrations whose token is due for a check by the shared
    /// schedule, claimed for this host, as many as the run slots `taken` leaves free.
    fn claimed_health_checks(self: &Arc<Self>, taken: usize) -> Vec<Job> {
        let free = self.semaphore.available_permits().saturating_sub(taken);
        if free == 0 {
            return Vec::new();
        }
        self.app
            .claim_due_health_checks(self.config.health_check_every, free)
            .into_iter()
            .map(|claim| Job::HealthCheck {
                id: claim.integration().to_string(),
                claim: Some(claim),
            })
            .collect()
    }

    /// On a store this process owns alone: the active integrations whose token is due for a
    /// check.
    fn due_health_checks(&self, integrations: &[Integration]) -> Vec<Job> {
        let now = Instant::now();
        let mut next = self.next_health.lock().unwrap_or_else(|e| e.into_inner());
        forget_deleted(&mut next, integrations);
        let mut jobs = Vec::new();
        for i in integrations {
            let at = next
                .entry(i.id.clone())
                .or_insert_with(|| now + spread(self.config.health_check_every, 0.1));
            if i.state == IntegrationState::Active && now >= *at {
                jobs.push(Job::HealthCheck {
                    id: i.id.clone(),
                    claim: None,
                });
            }
        }
        jobs
    }

    /// Checks `id`'s refresh token, unless a pull holds it: a refresh can end the session a
    /// running pull pages through (its query locators die with it), and the run itself proves
    /// the token.
    async fn health_check(&self, id: &str, claim: Option<RunClaim>) {
        if let Some(claim) = claim.or_else(|| self.app.claim_run(id)) {
            self.stats.health_checks.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.app.tokens().health_check(id).await {
                tracing::warn!(integration = %id, error = %e, "token health check failed");
            }
            claim.release(NextDue::Unchanged);
        } else {
            self.stats
                .health_checks_skipped
                .fetch_add(1, Ordering::Relaxed);
        }
        if let Some(at) = self
            .next_health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            *at = Instant::now() + spread(self.config.health_check_every, 0.1);
        }
    }

    /// Pulls `id` under `claim` (claimed here when none), then schedules its next pull.
    async fn pull(&self, id: &str, claim: Option<RunClaim>, failures: u32) {
        let Ok(integration) = self.app.store().integration(id) else {
            return; // Deleted since it was found due; its lease went with it.
        };
        let claim = match claim {
            Some(claim) => Ok(claim),
            None => crate::runner::claim(&self.app, id),
        };
        let now_running = self.stats.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.stats
            .max_running
            .fetch_max(now_running, Ordering::SeqCst);
        self.stats.runs_started.fetch_add(1, Ordering::Relaxed);
        let (result, claim) = match claim {
            Ok(claim) => {
                let options = PullOptions {
                    full: false,
                    trigger: "schedule".into(),
                    page_records: self.config.page_records,
                    progress: None,
                    stop: Some(self.stop.clone()),
                };
                let result = crate::runner::run_claimed(&self.app, &claim, options).await;
                (result, Some(claim))
            }
            Err(e) => (Err(e), None),
        };
        self.stats.running.fetch_sub(1, Ordering::SeqCst);
        let next = self.next_due(id, &result, interval(&integration), failures);
        if let Some(claim) = claim {
            claim.release(next);
        }
        if let NextDue::After { delay, failures } = next {
            let mut due = self.local_due.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = due.get_mut(id) {
                entry.at = Instant::now() + delay;
                entry.failures = failures;
            }
        }
    }

    /// When `id` is next due after a pull that ended with `result`, its `failures_before`
    /// consecutive failures before it.
    fn next_due(
        &self,
        id: &str,
        result: &Result<RunSummary, AppError>,
        interval: Duration,
        failures_before: u32,
    ) -> NextDue {
        let fine = |delay| NextDue::After { delay, failures: 0 };
        match result {
            Ok(s) if s.status == RunStatus::Succeeded => {
                self.stats.runs_succeeded.fetch_add(1, Ordering::Relaxed);
                return fine(spread(interval, 0.1));
            }
            Ok(s) if s.status == RunStatus::RateLimited => {
                return fine(
                    s.retry_after_s
                        .map(|s| Duration::from_secs(u64::from(s)))
                        .unwrap_or(DEFAULT_RATE_LIMIT_PAUSE),
                );
            }
            // Stopped by this host's shutdown: due at once, for another host or the next start.
            Ok(s) if s.status == RunStatus::Interrupted => return fine(Duration::ZERO),
            Ok(_) => {}
            Err(AppError::AlreadyRunning(_)) => {
                self.stats.overlaps_refused.fetch_add(1, Ordering::Relaxed);
                return fine(interval);
            }
            // Paused since it was found due: not a failure.
            Err(AppError::Paused(_)) => return fine(interval),
            Err(e) => tracing::warn!(integration = %id, error = %e, "scheduled pull failed"),
        }
        self.stats.runs_failed.fetch_add(1, Ordering::Relaxed);
        let failures = failures_before + 1;
        let delay = spread(backoff(&self.config, interval, failures), 0.1);
        tracing::info!(integration = %id, failures, delay_s = delay.as_secs(), "backing off");
        NextDue::After { delay, failures }
    }
}

/// How often a host sharing a database sweeps lapsed runs and claims due health checks.
const SHARED_CHORES_EVERY: Duration = Duration::from_secs(1);

/// Drops the entries of integrations no longer in `integrations`.
fn forget_deleted<V>(entries: &mut HashMap<String, V>, integrations: &[Integration]) {
    let live: HashSet<&str> = integrations.iter().map(|i| i.id.as_str()).collect();
    entries.retain(|id, _| live.contains(id.as_str()));
}

/// `integration`'s pull interval.
fn interval(integration: &Integration) -> Duration {
    Duration::from_secs(integration.interval_s.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = SchedulerConfig::default();
        let i = Duration::from_secs(10);
        assert_eq!(backoff(&c, i, 1), Duration::from_secs(30));
        assert_eq!(backoff(&c, i, 2), Duration::from_secs(60));
        assert_eq!(backoff(&c, i, 3), Duration::from_secs(120));
        assert_eq!(backoff(&c, i, 30), Duration::from_secs(3600));
        // Never sooner than the interval itself.
        assert_eq!(
            backoff(&c, Duration::from_secs(900), 1),
            Duration::from_secs(900)
        );
    }
}
