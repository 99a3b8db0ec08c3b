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
//!   cannot write once another host took over.

use std::sync::Mutex as StdMutex;

use super::*;
use crate::locks::{LockDir, LockKind};
use crate::store::{Lease, LeaseError};

/// How long a lease holds without a heartbeat: the time another host waits to take over an
/// integration whose host died.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// How often a held lease is renewed: well within [`LEASE_TTL`], so that one slow renewal
/// does not lose it.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

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
        Some(RunClaim {
            app: self.clone(),
            id: id.to_string(),
            hold,
        })
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
            .claim_lease(id, &self.host_id, LEASE_TTL)
            .map_err(|e| tracing::warn!(integration = id, error = %e, "cannot claim the run lease"))
            .ok()??;
        Some(HeldLease::new(self.store.clone(), lease))
    }
}

/// Held while a pull of one integration runs; dropping it releases the integration.
pub struct RunClaim {
    app: Arc<App>,
    id: String,
    hold: Hold,
}

/// What excludes other processes while a claim is held.
enum Hold {
    /// The data directory's run lock file, locked until dropped.
    File { _locked: std::fs::File },
    /// A run lease in the shared database.
    Lease(HeldLease),
}

impl RunClaim {
    /// The integration claimed.
    pub fn integration(&self) -> &str {
        &self.id
    }

    /// Binds run `run_id` to the claim, so that its page commits are admitted: on
    /// PostgreSQL only the run bound to a live lease may commit.
    pub fn bind(&self, run_id: &str) -> Result<(), AppError> {
        match &self.hold {
            Hold::File { .. } => Ok(()),
            Hold::Lease(held) => held.bind(run_id),
        }
    }
}

impl Drop for RunClaim {
    fn drop(&mut self) {
        if let Hold::Lease(held) = &self.hold {
            held.release(&self.app.store, &self.id);
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
    fn new(store: Arc<Store>, lease: Lease) -> Self {
        let lease = Arc::new(StdMutex::new(lease));
        // A claim made outside a runtime (none today) would hold its lease unrenewed for
        // `LEASE_TTL`, enough for a short hold.
        let heartbeat = tokio::runtime::Handle::try_current()
            .ok()
            .map(|rt| rt.spawn(heartbeat(store.clone(), lease.clone())));
        Self {
            lease,
            heartbeat,
            store,
        }
    }

    fn bind(&self, run_id: &str) -> Result<(), AppError> {
        let lease = self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.store.bind_run(&lease, run_id).map_err(|e| match e {
            LeaseError::Lost(_) => AppError::AlreadyRunning(lease.integration_id.clone()),
            LeaseError::Store(e) => e.into(),
        })
    }

    /// Gives the lease up, next due one interval from now on the database's clock.
    fn release(&self, store: &Store, id: &str) {
        if let Some(beat) = &self.heartbeat {
            beat.abort();
        }
        let lease = self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let next_due = store.integration(id).and_then(|integration| {
            Ok(store.database_now_ms()? + integration.interval_s as i64 * 1000)
        });
        let released = next_due
            .map_err(LeaseError::from)
            .and_then(|due| store.release_lease(&lease, due));
        if let Err(e) = released {
            tracing::warn!(integration = id, error = %e, "the run lease was not given up cleanly");
        }
    }
}

/// Renews `lease` every [`HEARTBEAT_EVERY`] until it is lost (the page commits then fail
/// and the run stops) or the claim drops.
async fn heartbeat(store: Arc<Store>, lease: Arc<StdMutex<Lease>>) {
    loop {
        tokio::time::sleep(HEARTBEAT_EVERY).await;
        let (store, lease) = (store.clone(), lease.clone());
        let renewed = tokio::task::spawn_blocking(move || {
            let mut current = lease.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let renewed = store.renew_lease(&mut current, LEASE_TTL);
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
