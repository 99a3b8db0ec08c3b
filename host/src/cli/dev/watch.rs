//! Watching the crate: every change to its sources rebuilds, hot-swaps and runs again. A
//! build that fails leaves the previous version active.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use notify::{EventKind, RecursiveMode, Watcher};

use crate::engine::registry::ConnectorRegistry;
use crate::output::outln;

use super::cycle::{Dev, State};
use super::{DEV_NAME, build_and_swap};

/// How long the crate must be quiet after a change before it is built (editors write a file
/// in several steps).
const QUIET: Duration = Duration::from_millis(150);

/// Rebuilds and runs on every change until Ctrl-C.
pub async fn watch(
    crate_dir: &Path,
    registry: &Arc<ConnectorRegistry>,
    dev: &Dev,
    state: &mut State,
) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let root = crate_dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            )
            && event.paths.iter().any(|p| is_source(&root, p))
        {
            let _ = tx.send(Instant::now());
        }
    })
    .context("starting the file watcher")?;
    let src = crate_dir.join("src");
    watcher
        .watch(&src, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", src.display()))?;
    // The crate's own files (Cargo.toml, manifest.json, build.rs), not its target directory.
    watcher
        .watch(crate_dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", crate_dir.display()))?;
    outln!(
        "watching {} (Ctrl-C to stop)",
        crate_dir.join("src").display()
    )?;
    loop {
        let first = tokio::select! {
            seen = rx.recv() => match seen {
                Some(at) => at,
                None => return Ok(()),
            },
            _ = super::super::shutdown_signal() => return Ok(()),
        };
        while let Ok(Some(_)) = tokio::time::timeout(QUIET, rx.recv()).await {}
        outln!("change seen; rebuilding")?;
        match build_and_swap(registry, crate_dir).await {
            Ok(connector) => {
                dev.run(&connector, state, ("edit", first)).await?;
            }
            Err(e) => {
                let serving = registry
                    .active(DEV_NAME)
                    .map(|c| format!("version {} keeps serving", c.version))
                    .unwrap_or_else(|| "no version is serving yet".into());
                outln!("build failed: {e:#}; {serving}")?;
            }
        }
    }
}

/// Whether a change to `path` can change the component.
fn is_source(root: &Path, path: &Path) -> bool {
    let relative: PathBuf = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    let mut parts = relative.components();
    let Some(first) = parts.next() else {
        return false;
    };
    let first = first.as_os_str().to_string_lossy();
    if first == "src" {
        let name = relative
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return !name.starts_with('.') && !name.ends_with('~');
    }
    matches!(
        first.as_ref(),
        "Cargo.toml" | "manifest.json" | "build.rs" | "wit"
    )
}
