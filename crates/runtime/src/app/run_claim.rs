//! The one-run-at-a-time claim on an integration.
//!
//! Threat: two pulls of one integration at once (a scheduled one and "pull now", or two
//! processes or hosts), which would apply pages twice or move a checkpoint backwards.
//!
//! Rule: a pull runs only under a claim. In one process a set of claimed ids excludes a
//! second claim at once. Beyond the process:
//! - on SQLite, an OS file lock in the data directory, which the OS releases when the holder
//!   dies (SIGKILL included), so a crash never leaves an integration locked;
//! - on PostgreSQL, a run lease (`crate::store::Lease`), renewed by a heartbeat while the
//!   claim is held and given up when it drops. The run binds its id to the lease, and every
//!   page commit checks the binding, so a host that lost its lease (paused, partitioned)
//!   cannot write once another host took over. The lease row also holds the shared schedule:
//!   releasing a claim says when the integration is next due ([`NextDue`]).

use std::sync::Mutex as StdMutex;

use super::*;
use crate::locks::{LockDir, LockKind};
use crate::store::{Lease, LeaseError, NextDue};

/// How long a lease holds without a heartbeat unless configured ([`AppConfig::lease_ttl`]):
/// the time another host waits to take over an integration whose host died.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// Heartbeats per lease lifetime: enough that one slow renewal does not lose the lease.
const HEARTBEATS_PER_TTL: u32 = 3;

impl App {
    /// Claims the right to run a pull of `id`; `None` when one is already running, in this
    /// process or another one sharing the data directory or the database.
    pub fn claim_run(self: &Arc<Self>, id: &str) -> Option<RunClaim> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains(id) {
            return None;
        }
        let hold = if self.store.is_shared() {
            Hold::Lease(self.claim_lease(id)?)
        } else {
            Hold::File {
                _locked: self.lock_file(id)?,
            }
        };
        running.insert(id.to_string());
        Some(RunClaim::new(self, id, hold))
    }

    /// On a shared database, claims up to `limit` integrations that are due by the shared
    /// schedule and that no host runs, each with its consecutive failed pulls so far.
    pub(crate) fn claim_due(self: &Arc<Self>, limit: usize) -> Vec<(RunClaim, u32)> {
        let leases = self
            .store
            .claim_due_leases(&self.host_id, self.config.lease_ttl, limit)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot claim due integrations");
                Vec::new()
            });
        self.claims_of(leases)
    }

    /// On a shared database, claims up to `limit` integrations whose token health check is
    /// due by the shared schedule (one check per `every` between the hosts) and that no host
    /// runs.
    pub(crate) fn claim_due_health_checks(
        self: &Arc<Self>,
        every: Duration,
        limit: usize,
    ) -> Vec<RunClaim> {
        let leases = self
            .store
            .claim_due_health_checks(&self.host_id, self.config.lease_ttl, every, limit)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot claim due token health checks");
                Vec::new()
            });
        self.claims_of(leases)
            .into_iter()
            .map(|(claim, _)| claim)
            .collect()
    }

    /// Claims held under `leases`, heartbeats started; with each one's failed pulls so far.
    fn claims_of(self: &Arc<Self>, leases: Vec<Lease>) -> Vec<(RunClaim, u32)> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut claims = Vec::with_capacity(leases.len());
        for lease in leases {
            let id = lease.integration_id.clone();
            let failures = lease.failures;
            let held = HeldLease::new(self.store.clone(), lease, self.config.lease_ttl);
            if !running.insert(id.clone()) {
                // This process still runs it on a lease that expired meanwhile: the run's
                // next page commit fails, and the due time stays for whoever claims next.
                held.release(&id, NextDue::Unchanged);
                continue;
            }
            claims.push((RunClaim::new(self, &id, Hold::Lease(held)), failures));
        }
        claims
    }

    fn lock_file(&self, id: &str) -> Option<std::fs::File> {
        let file = LockDir::new(&self.config.data_dir)
            .open(id, LockKind::Run)
            .map_err(|e| tracing::warn!(integration = id, error = %e, "cannot open the run lock"))
            .ok()?;
        file.try_lock().ok()?;
        Some(file)
    }

    fn claim_lease(&self, id: &str) -> Option<HeldLease> {
        let lease = self
            .store
            .claim_lease(id, &self.host_id, self.config.lease_ttl)
            .map_err(|e| tracing::warn!(integration = id, error = %e, "cannot claim the run lease"))
            .ok()??;
        Some(HeldLease::new(
            self.store.clone(),
            lease,
            self.config.lease_ttl,
        ))
    }
}

/// Held while a pull of one integration runs; dropping it releases the integration, next due
/// one interval later (see [`RunClaim::release`] for another time).
pub struct RunClaim {
    app: Arc<App>,
    id: String,
    hold: Hold,
    next: NextDue,
}

/// What excludes other processes while a claim is held.
enum Hold {
    /// The data directory's run lock file, locked until dropped.
    File { _locked: std::fs::File },
    /// A run lease in the shared database.
    Lease(HeldLease),
}

impl RunClaim {
    fn new(app: &Arc<App>, id: &str, hold: Hold) -> Self {
        Self {
            app: app.clone(),
            id: id.to_string(),
            hold,
            next: NextDue::Interval,
        }
    }

    /// Releases the integration, next due as `next` says. On SQLite the schedule is the
    /// scheduler's own, and `next` is not kept.
    pub fn release(mut self, next: NextDue) {
        self.next = next;
    }

    /// The integration claimed.
    pub fn integration(&self) -> &str {
        &self.id
    }

    /// Records the start of a run under the claim; its id. Runs of the integration left
    /// `running` by a process that died end as interrupted, and a `full` run starts from no
    /// checkpoint. On PostgreSQL all of it happens only under the live lease, in the
    /// statement that binds the run to it, since only the run bound to a live lease may
    /// commit.
    pub fn start_run(
        &self,
        trigger: &str,
        full: bool,
        connector_version: &str,
    ) -> Result<String, AppError> {
        match &self.hold {
            Hold::File { .. } => {
                let store = &self.app.store;
                store.close_orphan_runs(&self.id)?;
                if full {
                    store.clear_checkpoints(&self.id)?;
                }
                Ok(store.start_run(&self.id, trigger, full, connector_version)?)
            }
            Hold::Lease(held) => held.start_run(trigger, full, connector_version),
        }
    }
}

impl Drop for RunClaim {
    fn drop(&mut self) {
        if let Hold::Lease(held) = &self.hold {
            held.release(&self.id, self.next);
        }
        self.app
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// A claimed lease and the heartbeat that keeps it alive.
struct HeldLease {
    lease: Arc<StdMutex<Lease>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    store: Arc<Store>,
}

impl HeldLease {
    fn new(store: Arc<Store>, lease: Lease, ttl: Duration) -> Self {
        let lease = Arc::new(StdMutex::new(lease));
        // A claim made outside a runtime (none today) would hold its lease unrenewed for
        // `ttl`, enough for a short hold.
        let heartbeat = tokio::runtime::Handle::try_current()
            .ok()
            .map(|rt| rt.spawn(heartbeat(store.clone(), lease.clone(), ttl)));
        Self {
            lease,
            heartbeat,
            store,
        }
    }

    fn start_run(
        &self,
        trigger: &str,
        full: bool,
        connector_version: &str,
    ) -> Result<String, AppError> {
        let lease = self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let started = self
            .store
            .start_leased_run(&lease, trigger, full, connector_version);
        started.map_err(|e| match e {
            LeaseError::Lost(_) => AppError::AlreadyRunning(lease.integration_id.clone()),
            LeaseError::Store(e) => e.into(),
        })
    }

    /// Gives the lease up, with the integration next due as `next` says.
    fn release(&self, id: &str, next: NextDue) {
        if let Some(beat) = &self.heartbeat {
            beat.abort();
        }
        let lease = self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Err(e) = self.store.release_lease(&lease, next) {
            tracing::warn!(integration = id, error = %e, "the run lease was not given up cleanly");
        }
    }
}

/// Renews `lease` for `ttl` [`HEARTBEATS_PER_TTL`] times per `ttl` until it is lost (the
/// page commits then fail and the run stops) or the claim drops.
async fn heartbeat(store: Arc<Store>, lease: Arc<StdMutex<Lease>>, ttl: Duration) {
    loop {
        tokio::time::sleep(ttl / HEARTBEATS_PER_TTL).await;
        let (store, lease) = (store.clone(), lease.clone());
        let renewed = tokio::task::spawn_blocking(move || {
            let mut current = lease.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let renewed = store.renew_lease(&mut current, ttl);
            if renewed.is_ok() {
                *lease.lock().unwrap_or_else(|e| e.into_inner()) = current.clone();
            }
            renewed.map_err(|e| (current.integration_id, e))
        })
        .await;
        match renewed {
            Ok(Ok(())) => {}
            Ok(Err((integration, e))) => {
                tracing::warn!(integration, error = %e, "the run lease was lost; the run stops at its next page");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the lease heartbeat failed");
                return;
            }
        }
    }
}

/// This process's lease owner name: the host's name, the process id and a random part, so
/// that a restarted process on the same host is another owner.
pub(crate) fn host_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}/{}/{}",
        std::process::id(),
        crate::secrets::random_token(4)
    )
}
