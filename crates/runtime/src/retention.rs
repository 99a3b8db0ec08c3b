//! Pruning what the store keeps only for a while, while `serve` runs: delete tombstones in
//! the change feed, and settled events in the webhook outbox.
//!
//! Threat: both grow the store without bound when kept forever; tombstones pruned early hide
//! deletes from feed consumers, and outbox events pruned early are never delivered.
//! Rule: a tombstone goes once it is older than the operator's retention
//! ([`crate::app::AppConfig::tombstone_retention`]), and the store then refuses cursors that
//! could have missed it (see [`crate::store::Store::prune_tombstones`]). An outbox event goes
//! once it is older than [`crate::app::AppConfig::webhook_retention`] and no delivery of it is
//! still pending (see [`crate::store::Store::prune_webhook_events`]).

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::store::{Store, StoreError};

/// How often the store is pruned at most: retention is counted in days, an hour late is
/// nothing.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What is pruned, each after its own retention.
#[derive(Debug, Clone, Copy)]
enum Kept {
    Tombstones,
    WebhookEvents,
}

impl Kept {
    fn retention(self, app: &App) -> Duration {
        match self {
            Kept::Tombstones => app.config().tombstone_retention,
            Kept::WebhookEvents => app.config().webhook_retention,
        }
    }

    fn prune(self, store: &Store, before_ms: i64) -> Result<usize, StoreError> {
        match self {
            Kept::Tombstones => store.prune_tombstones(before_ms),
            Kept::WebhookEvents => store.prune_webhook_events(before_ms),
        }
    }
}

/// Prunes what is past its retention now and then every [`PRUNE_EVERY`] (or the shortest
/// retention, when shorter) until `stop` turns true.
pub async fn prune_until_stopped(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let kinds = [Kept::Tombstones, Kept::WebhookEvents];
    let shortest = kinds
        .iter()
        .map(|k| k.retention(&app))
        .min()
        .unwrap_or(PRUNE_EVERY);
    let every = PRUNE_EVERY.min(shortest).max(Duration::from_secs(1));
    loop {
        for kind in kinds {
            prune_once(&app, kind).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn prune_once(app: &Arc<App>, kind: Kept) {
    let retention = kind.retention(app);
    let before_ms = crate::store::now_ms()
        .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let store = app.store().clone();
    match tokio::task::spawn_blocking(move || kind.prune(&store, before_ms)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, ?kind, "pruning failed; retrying later"),
        Err(e) => tracing::warn!(error = %e, ?kind, "the pruning task failed"),
    }
}
