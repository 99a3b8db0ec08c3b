//! The scheduler: pulls every active integration on its interval.
//!
//! - Each integration's first pull lands at a random point of its first interval, and every
//!   later one at its interval ± 10% jitter, so 500 integrations do not start at once.
//! - Failures back off exponentially (30 s doubling, capped at 1 h, at least the interval).
//! - `rate-limited` pauses the integration for the connector's `retry-after` (or 15 min).
//! - One integration never has two runs at once ([`crate::app::App::claim_run`]); a global
//!   semaphore caps concurrent runs.
//! - A periodic token health check finds a dead refresh token before the next pull needs it.
//! - Stop: no new runs start; runs in flight finish the pages in flight (one per stream), commit and end.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::app::App;
use crate::engine::backoff::{Backoff, spread};
use crate::runner::{DEFAULT_RATE_LIMIT_PAUSE, PullOptions, RunStatus};
use crate::store::IntegrationState;

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// At most this many runs at once.
    pub max_concurrent: usize,
    /// How often the scheduler looks for due work.
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

#[derive(Debug)]
struct Entry {
    next_due: Instant,
    next_health: Instant,
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

/// Runs the scheduler until `stop` turns true, then waits for the runs in flight.
pub async fn run(
    app: Arc<App>,
    config: SchedulerConfig,
    stats: Arc<SchedulerStats>,
    mut stop: watch::Receiver<bool>,
) {
    let semaphore = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
    let entries: Arc<Mutex<HashMap<String, Entry>>> = Arc::default();
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = JoinSet::new();
    tracing::info!(max_concurrent = config.max_concurrent, "scheduler started");
    loop {
        if *stop.borrow() {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let integrations = match app.store.integrations() {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %e, "scheduler cannot list integrations");
                Vec::new()
            }
        };
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut entries = entries.lock().unwrap_or_else(|e| e.into_inner());
            let live: HashSet<&str> = integrations.iter().map(|i| i.id.as_str()).collect();
            entries.retain(|id, _| live.contains(id.as_str()));
            for i in &integrations {
                let interval = Duration::from_secs(i.interval_s.max(1));
                let entry = entries.entry(i.id.clone()).or_insert_with(|| Entry {
                    next_due: now + interval.mul_f64(fastrand::f64()),
                    next_health: now + spread(config.health_check_every, 0.1),
                    failures: 0,
                });
                if i.state != IntegrationState::Active {
                    continue;
                }
                if now >= entry.next_due {
                    due.push((i.id.clone(), interval, false));
                } else if now >= entry.next_health {
                    due.push((i.id.clone(), interval, true));
                }
            }
        }
        for (id, interval, health_only) in due {
            if in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&id)
            {
                continue;
            }
            let Ok(permit) = semaphore.clone().try_acquire_owned() else {
                break; // At the global limit: the rest stay due for the next tick.
            };
            in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone());
            let (app, entries, in_flight, stats, config, stop) = (
                app.clone(),
                entries.clone(),
                in_flight.clone(),
                stats.clone(),
                config.clone(),
                stop.clone(),
            );
            tasks.spawn(async move {
                let _permit = permit;
                if health_only {
                    // A refresh can end the session a running pull pages through (its query
                    // locators die with it), and the run itself proves the token: skip.
                    if let Some(claim) = app.claim_run(&id) {
                        stats.health_checks.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = app.tokens.health_check(&id).await {
                            tracing::warn!(integration = %id, error = %e, "token health check failed");
                        }
                        drop(claim);
                    } else {
                        stats.health_checks_skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(entry) = entries.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&id) {
                        entry.next_health = Instant::now() + spread(config.health_check_every, 0.1);
                    }
                } else {
                    let now_running = stats.running.fetch_add(1, Ordering::SeqCst) + 1;
                    stats.max_running.fetch_max(now_running, Ordering::SeqCst);
                    stats.runs_started.fetch_add(1, Ordering::Relaxed);
                    let result = crate::runner::run_pull(
                        &app,
                        &id,
                        PullOptions {
                            full: false,
                            trigger: "schedule".into(),
                            page_records: config.page_records,
                            progress: None,
                            stop: Some(stop),
                        },
                    )
                    .await;
                    stats.running.fetch_sub(1, Ordering::SeqCst);
                    let next = match &result {
                        Ok(s) if s.status == RunStatus::Succeeded => {
                            stats.runs_succeeded.fetch_add(1, Ordering::Relaxed);
                            Ok(spread(interval, 0.1))
                        }
                        Ok(s) if s.status == RunStatus::RateLimited => Ok(s
                            .retry_after_s
                            .map(|s| Duration::from_secs(u64::from(s)))
                            .unwrap_or(DEFAULT_RATE_LIMIT_PAUSE)),
                        Ok(s) if s.status == RunStatus::Interrupted => Ok(Duration::ZERO),
                        Ok(_) => Err(()),
                        Err(crate::app::AppError::AlreadyRunning(_)) => {
                            stats.overlaps_refused.fetch_add(1, Ordering::Relaxed);
                            Ok(interval)
                        }
                        Err(e) => {
                            tracing::warn!(integration = %id, error = %e, "scheduled pull failed");
                            Err(())
                        }
                    };
                    let mut entries = entries.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(entry) = entries.get_mut(&id) {
                        match next {
                            Ok(delay) => {
                                entry.failures = 0;
                                entry.next_due = Instant::now() + delay;
                            }
                            Err(()) => {
                                stats.runs_failed.fetch_add(1, Ordering::Relaxed);
                                entry.failures += 1;
                                let delay = spread(backoff(&config, interval, entry.failures), 0.1);
                                tracing::info!(integration = %id, failures = entry.failures, delay_s = delay.as_secs(), "backing off");
                                entry.next_due = Instant::now() + delay;
                            }
                        }
                    }
                }
                in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(config.tick) => {}
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
