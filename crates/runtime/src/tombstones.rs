//! Pruning delete tombstones after their retention, while `serve` runs.
//!
//! Threat: tombstones kept forever grow the store without bound; tombstones pruned early
//! hide deletes from feed consumers.
//! Rule: a tombstone goes once it is older than the operator's retention
//! ([`crate::app::AppConfig::tombstone_retention`]), and the store then refuses cursors that
//! could have missed it (see [`crate::store::Store::prune_tombstones`]).

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;

/// How often tombstones are pruned at most: retention is counted in days, an hour late is
/// nothing.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Prunes tombstones past the retention now and then every [`PRUNE_EVERY`] (or the retention,
/// when shorter) until `stop` turns true.
pub async fn prune_until_stopped(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let retention = app.config().tombstone_retention;
    let every = PRUNE_EVERY.min(retention).max(Duration::from_secs(1));
    loop {
        let before_ms = crate::store::now_ms()
            .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let store = app.store().clone();
        match tokio::task::spawn_blocking(move || store.prune_tombstones(before_ms)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "pruning delete tombstones failed; retrying later")
            }
            Err(e) => tracing::warn!(error = %e, "the tombstone pruning task failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
