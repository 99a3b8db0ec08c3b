//! `sluice materialize`: keeps a PostgreSQL table per stream up to date from an
//! integration's change feed (the `sluice-materialize` crate), once or following it.

use super::*;
use sluice_materialize::{Materializer, Options, Progress, StoreFeed};

/// `sluice materialize`.
#[derive(Debug, Args)]
pub struct MaterializeArgs {
    /// The integration id.
    pub id: String,
    /// The destination database, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE. No TLS:
    /// loopback hosts and Unix sockets, or any host with sslmode=disable.
    #[arg(
        long,
        env = "SLUICE_MATERIALIZE_TO",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub to: String,
    /// The schema the tables go to (created if missing); one integration per schema.
    #[arg(long, default_value = sluice_materialize::DEFAULT_SCHEMA)]
    pub schema: String,
    /// Changes per batch: one feed page, applied in one transaction with the cursor.
    #[arg(long, default_value_t = sluice_materialize::DEFAULT_BATCH, value_parser = parse_batch)]
    pub batch: usize,
    /// Keep following the feed after catching up, until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub follow: bool,
    /// How long to wait between catch-ups with --follow.
    #[arg(long, value_parser = parse_duration, default_value = "10s", requires = "follow")]
    pub interval: Duration,
    /// When the destination's cursor is older than the feed's expired delete tombstones,
    /// reload a snapshot (rows it lacks are marked deleted) instead of failing.
    #[arg(long)]
    pub resync: bool,
}

fn parse_batch(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not a batch size from 1 to 100000")),
    }
}

pub(super) async fn materialize(
    app: &Arc<App>,
    args: &MaterializeArgs,
    json: bool,
) -> anyhow::Result<()> {
    app.store()
        .integration(&args.id)
        .map_err(crate::app::AppError::from)?;
    let options = Options {
        schema: args.schema.clone(),
        batch: args.batch,
        resync: args.resync,
    };
    let roots = &app.config().limits.outbound.extra_roots;
    let mut materializer = Materializer::connect(&args.to, roots, &args.id, options).await?;
    let feed = StoreFeed {
        store: app.store(),
        integration: &args.id,
    };
    loop {
        let progress = materializer.catch_up(&feed).await?;
        report(&progress, &args.schema, json)?;
        if !args.follow {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = shutdown_signal() => return Ok(()),
        }
    }
}

fn report(progress: &Progress, schema: &str, json: bool) -> anyhow::Result<()> {
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "schema": schema,
                "batches": progress.batches,
                "changes": progress.changes,
                "rows_written": progress.rows_written,
                "resynced": progress.resynced,
                "cursor": progress.cursor.0,
            })
        )?;
    } else {
        let resynced = if progress.resynced {
            " after reloading a snapshot"
        } else {
            ""
        };
        outln!(
            "materialized {} changes into schema {} in {} batches{resynced}; cursor {}",
            progress.changes,
            safe(schema),
            progress.batches,
            progress.cursor
        )?;
    }
    Ok(())
}
