//! `sluice webhooks ...`: the endpoints events go to, and how their deliveries stand.
//! Events are written whatever process makes the change (a `sluice pull` too); `sluice serve`
//! delivers them.

use super::*;

use crate::app::AppError;

/// `sluice webhooks ...`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add an endpoint; prints its id and its signing secret (shown this once).
    Add {
        /// Where events are POSTed: https to a public host, or an origin approved with
        /// --extra-origin.
        url: String,
        /// Only this integration's events (default: every integration's and the host's).
        #[arg(long, value_name = "ID")]
        integration: Option<String>,
    },
    /// List endpoints with their delivery counts and last error.
    List,
    /// Remove an endpoint and its deliveries.
    Remove {
        /// The endpoint id.
        id: String,
    },
    /// The latest deliveries (of one endpoint, or all): state, attempts, last answer.
    Deliveries {
        /// The endpoint id.
        id: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Put an endpoint's given-up deliveries back in line.
    Retry {
        /// The endpoint id.
        id: String,
    },
}

pub(super) fn webhooks(app: &Arc<App>, cmd: &WebhooksCommand, json: bool) -> anyhow::Result<()> {
    let store = app.store();
    match cmd {
        WebhooksCommand::Add { url, integration } => {
            let (endpoint, secret) =
                crate::webhooks::add_endpoint(app, url, integration.as_deref())?;
            if json {
                return print_json(&serde_json::json!({
                    "endpoint": endpoint,
                    "secret": secret.expose(),
                }));
            }
            outln!("{}", endpoint.id)?;
            outln!(
                "signing secret (shown once; verifies webhook-signature): {}",
                secret.expose()
            )?;
        }
        WebhooksCommand::List => list(&store.webhook_endpoints()?, json)?,
        WebhooksCommand::Remove { id } => {
            store.delete_webhook_endpoint(id).map_err(AppError::from)?;
            if !json {
                outln!("removed {id}")?;
            }
        }
        WebhooksCommand::Deliveries { id, limit } => {
            let rows = store
                .webhook_deliveries(id.as_deref(), *limit)
                .map_err(AppError::from)?;
            deliveries(&rows, json)?;
        }
        WebhooksCommand::Retry { id } => {
            let n = store.retry_failed_deliveries(id).map_err(AppError::from)?;
            if json {
                return print_json(&serde_json::json!({ "requeued": n }));
            }
            outln!("{n} deliveries back in line")?;
        }
    }
    Ok(())
}

fn list(rows: &[crate::store::WebhookEndpoint], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        outln!("no webhook endpoints: add one with `sluice webhooks add URL`")?;
        return Ok(());
    }
    outln!(
        "{:<17} {:<18} {:>7} {:>9} {:>6}  {:<40} LAST ERROR",
        "ID",
        "FOR",
        "PENDING",
        "DELIVERED",
        "FAILED",
        "URL"
    )?;
    for e in rows {
        outln!(
            "{:<17} {:<18} {:>7} {:>9} {:>6}  {:<40} {}",
            e.id,
            e.integration_id.as_deref().unwrap_or("every integration"),
            e.pending,
            e.delivered,
            e.failed,
            safe(&e.url),
            safe(e.last_error.as_deref().unwrap_or("-"))
        )?;
    }
    Ok(())
}

fn deliveries(rows: &[crate::store::WebhookDelivery], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        outln!("no deliveries yet")?;
        return Ok(());
    }
    outln!(
        "{:<28} {:<34} {:<17} {:<10} {:>8} {:>6}  LAST ERROR",
        "EVENT",
        "TYPE",
        "ENDPOINT",
        "STATE",
        "ATTEMPTS",
        "STATUS"
    )?;
    for d in rows {
        outln!(
            "{:<28} {:<34} {:<17} {:<10} {:>8} {:>6}  {}",
            d.event_id,
            d.event_type,
            d.endpoint_id,
            d.state,
            d.attempts,
            d.last_status.map_or("-".into(), |s| s.to_string()),
            safe(d.last_error.as_deref().unwrap_or("-"))
        )?;
    }
    Ok(())
}
