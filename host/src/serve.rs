//! `sluice serve`: the admin API with the OAuth callback, the scheduler and the plugin
//! watcher, until SIGTERM or Ctrl-C; then runs in flight finish their page and commit.

use std::sync::Arc;

use anyhow::{Context, bail};

use crate::admin::{AdminState, router};
use crate::app::{App, AppConfig};
use crate::cli::ServeArgs;
use crate::scheduler::{SchedulerConfig, SchedulerStats};

/// Runs the server until a shutdown signal.
pub async fn serve(config: AppConfig, args: &ServeArgs) -> anyhow::Result<()> {
    let admin_token = args.admin_token.clone().filter(|t| !t.is_empty());
    if !args.listen.ip().is_loopback() && admin_token.is_none() {
        bail!(
            "refusing to serve the admin API on {} without an admin token: set SLUICE_ADMIN_TOKEN \
             (or --admin-token), or listen on loopback",
            args.listen
        );
    }
    let plugins_dir = config.data_dir.join("plugins");
    let app = App::open(config).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(SchedulerStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(crate::scheduler::run(
        app.clone(),
        SchedulerConfig {
            max_concurrent: args.max_concurrent_pulls,
            ..SchedulerConfig::default()
        },
        stats.clone(),
        stop_rx.clone(),
    ));
    let _watcher = crate::engine::registry::watch_plugins_dir(app.registry.clone(), &plugins_dir)?;
    // `sluice plugin install` / `activate` in another process reach this one within a second.
    let _versions = crate::engine::registry::follow_store(
        app.registry.clone(),
        std::time::Duration::from_secs(1),
    );
    let state = AdminState {
        app: app.clone(),
        stats,
        admin_token: admin_token.map(Into::into),
        // Connected apps register an exact callback URL; README tells users to register
        // `http://localhost:7070/oauth/callback` for the default address.
        public_url: args.public_url.clone().unwrap_or_else(|| {
            if addr.ip().is_loopback() {
                format!("http://localhost:{}", addr.port())
            } else {
                format!("http://{addr}")
            }
        }),
    };
    eprintln!(
        "sluice serving on http://{addr} (data: {}, plugins: {})",
        app.config.data_dir.display(),
        plugins_dir.display()
    );
    let mut server_stop = stop_rx.clone();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        let _ = server_stop.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });
    crate::cli::shutdown_signal().await;
    eprintln!("shutting down: finishing the pages in flight...");
    let _ = stop_tx.send(true);
    let _ = scheduler.await;
    let _ = server.await;
    eprintln!("stopped");
    Ok(())
}
