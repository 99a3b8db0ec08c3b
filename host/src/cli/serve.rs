//! `sluice serve`: the admin API with the OAuth callback, the scheduler, the connector
//! watcher and the webhook delivery worker, until SIGTERM or Ctrl-C; then runs in flight finish their pages in flight and commit.

use std::sync::Arc;

use anyhow::{Context, bail};

use super::ServeArgs;
use crate::admin::{AdminState, router};
use crate::app::{App, AppConfig};
use crate::http_server::ConnectionLimits;
use crate::scheduler::{SchedulerConfig, SchedulerStats};

/// Runs the server until a shutdown signal.
pub async fn serve(config: AppConfig, args: &ServeArgs) -> anyhow::Result<()> {
    if args.listen.ip().is_unspecified() && args.public_url.is_none() {
        bail!(
            "listening on {} needs --public-url with the host name clients use (e.g. \
             https://sluice.example.com): requests naming any other host are refused",
            args.listen
        );
    }
    let explicit_token = args.admin_token.clone().filter(|t| !t.is_empty());
    if !args.listen.ip().is_loopback() && explicit_token.is_none() {
        bail!(
            "refusing to serve the admin API on {} without an admin token: set SLUICE_ADMIN_TOKEN \
             (or --admin-token), or listen on loopback",
            args.listen
        );
    }
    let token_source = match &explicit_token {
        Some(_) => "as configured".to_string(),
        None => format!(
            "in {} (`sluice admin-token` prints it)",
            config
                .data_dir
                .join(crate::admin_token::TOKEN_FILE)
                .display()
        ),
    };
    let admin_token = match explicit_token {
        Some(token) => token,
        None => crate::admin_token::load_or_create(&config.data_dir)?,
    };
    let connectors_dir = crate::data_dir::connectors_dir(&config.data_dir).with_context(|| {
        format!(
            "cannot prepare {}",
            config.data_dir.join("connectors").display()
        )
    })?;
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
    let pruner = tokio::spawn(crate::retention::prune_until_stopped(
        app.clone(),
        stop_rx.clone(),
    ));
    // Events any process wrote to the outbox go out from here, at least once.
    let webhooks = tokio::spawn(crate::webhooks::run_worker(
        app.store().clone(),
        crate::webhooks::WebhookEgress::of(app.config()),
        crate::webhooks::DeliverySettings::default(),
        stop_rx.clone(),
    ));
    let _watcher =
        crate::engine::registry::watch_connectors_dir(app.registry().clone(), &connectors_dir)?;
    // `sluice connector install` / `activate` in another process reach this one within a
    // second: on a shared database as soon as its notification arrives, with a slower poll
    // behind it for notifications lost with their connection; in a data directory by polling.
    let activations = app.store().connector_activations()?;
    let poll = match activations {
        Some(_) => std::time::Duration::from_secs(15),
        None => std::time::Duration::from_secs(1),
    };
    let _versions =
        crate::engine::registry::follow_store(app.registry().clone(), poll, activations);
    // Connected apps register an exact callback URL; README tells users to register
    // `http://localhost:7070/oauth/callback` for the default address.
    let public_url = args.public_url.clone().unwrap_or_else(|| {
        if addr.ip().is_loopback() {
            format!("http://localhost:{}", addr.port())
        } else {
            format!("http://{addr}")
        }
    });
    let console_base = public_url.clone();
    let state = AdminState::new(
        app.clone(),
        stats,
        Some(admin_token.into()),
        addr,
        public_url,
    )?;
    // On this terminal only (never through the logs): whoever reads it is the operator. Before
    // the listening line, which tells a waiting script that both are printed.
    if let Some(code) = state.console.sign_in_code() {
        eprintln!(
            "console: {console_base}/login?code={code} (signs one browser in, once, within {} minutes; later: the admin token)",
            crate::console::SIGN_IN_CODE_LIFETIME.as_secs() / 60
        );
    }
    eprintln!(
        "sluice serving on http://{addr} (data: {}, connectors: {}; admin token: {token_source})",
        app.config().data_dir.display(),
        connectors_dir.display(),
    );
    let limits = ConnectionLimits {
        max_connections: usize::from(args.max_connections),
        header_read_timeout: args.header_read_timeout,
    };
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(crate::http_server::serve(
        listener,
        router(state),
        limits,
        async move {
            let _ = server_stop.wait_for(|s| *s).await;
        },
    ));
    super::shutdown_signal().await;
    eprintln!("shutting down: finishing the pages in flight...");
    let _ = stop_tx.send(true);
    let _ = scheduler.await;
    let _ = pruner.await;
    let _ = webhooks.await;
    let _ = server.await;
    eprintln!("stopped");
    Ok(())
}
