//! Following what changes outside this process: the connectors directory and the version store.

use super::*;
use tokio::sync::mpsc::UnboundedReceiver;

/// Watches a connectors directory while it lives; dropping it stops the watch.
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DirWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Installs every `.wasm` file in `dir` now and whenever one is written or dropped there
/// (with the canary), until the returned watcher is dropped. `serve` calls it. Files whose
/// bytes are already an installed version are skipped; rejections are logged.
pub fn watch_connectors_dir(
    registry: Arc<ConnectorRegistry>,
    dir: impl Into<PathBuf>,
) -> Result<DirWatcher, RegistryError> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let dir = dir.into();
    std::fs::create_dir_all(&dir)
        .map_err(|e| RegistryError::Io(format!("creating {}: {e}", dir.display())))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let sender = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_))
        {
            for path in event.paths {
                let _ = sender.send(path);
            }
        }
    })
    .map_err(|e| RegistryError::Io(format!("watching {}: {e}", dir.display())))?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| RegistryError::Io(format!("watching {}: {e}", dir.display())))?;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let _ = tx.send(entry.path());
        }
    }
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Let writers finish: gather events until the directory is quiet.
            let mut pending = vec![first];
            while let Ok(Some(path)) =
                tokio::time::timeout(Duration::from_millis(300), rx.recv()).await
            {
                pending.push(path);
            }
            pending.sort();
            pending.dedup();
            for path in pending {
                install_file(&registry, &path).await;
            }
        }
    });
    Ok(DirWatcher {
        _watcher: watcher,
        task,
    })
}

pub(super) async fn install_file(registry: &ConnectorRegistry, path: &Path) {
    let Some(name) = connector_name_of(path) else {
        return;
    };
    let owned = path.to_path_buf();
    // A symlink in the connectors directory is refused: whoever can drop one could point it at
    // a device or a FIFO, or at a file they do not own.
    let read = tokio::task::spawn_blocking(move || read_component_file(&owned, Symlinks::Refuse))
        .await
        .map_err(|e| RegistryError::Io(format!("reading task failed: {e}")));
    let wasm = match read.and_then(|r| r) {
        Ok(wasm) => wasm,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read dropped connector");
            return;
        }
    };
    let sha = {
        use sha2::Digest;
        crate::hex(&sha2::Sha256::digest(&wasm))
    };
    // Known bytes are skipped, so a restart's scan never undoes a rollback; re-activating an
    // old version is `activate`'s job.
    if registry
        .list(Some(&name))
        .iter()
        .any(|v| v.record.sha256 == sha)
    {
        tracing::debug!(file = %path.display(), connector = %name, "dropped connector already installed");
        return;
    }
    match registry.install(&name, &wasm, true).await {
        Ok(report) => {
            tracing::info!(file = %path.display(), connector = %name, version = report.version, "installed dropped connector")
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), connector = %name, error = %e, "dropped connector rejected")
        }
    }
}

/// Applies other processes' installs and activations (see [`ConnectorRegistry::sync`]) while it
/// lives; dropping it stops.
pub struct StoreFollower {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StoreFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Syncs `registry` with its store every `every`, and at once on each item of `activations`,
/// until the returned follower is dropped. `serve` runs one, so that `sluice connector
/// activate` or `install` in another process or on another host reaches it even when no run
/// is going on (runs also sync before every page). With `activations` (a shared database's
/// notifications) the poll is only a safety net, for notifications lost with their connection.
pub fn follow_store(
    registry: Arc<ConnectorRegistry>,
    every: Duration,
    mut activations: Option<UnboundedReceiver<String>>,
) -> StoreFollower {
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                heard = next_activation(&mut activations) => match heard {
                    Some(name) => tracing::info!(connector = %name, "another host activated a version"),
                    None => {
                        tracing::warn!(every_s = every.as_secs(), "activation notifications ended; polling the store only");
                        activations = None;
                        continue;
                    }
                },
            }
            if let Err(e) = registry.sync().await {
                tracing::warn!(error = %e, "cannot read the connector versions from the store");
            }
        }
    });
    StoreFollower { task }
}

/// The next activation heard; pending forever without a channel, `None` once it closed.
async fn next_activation(activations: &mut Option<UnboundedReceiver<String>>) -> Option<String> {
    match activations {
        Some(channel) => channel.recv().await,
        None => std::future::pending().await,
    }
}
