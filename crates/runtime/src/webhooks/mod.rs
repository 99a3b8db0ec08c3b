//! Webhooks: the platform hears what happened (an integration connected or needing a new
//! login, a sync completed or failed, a connector version activated) without polling.
//!
//! Threat: the receiver must be able to trust a request that claims to come from this host
//! (anyone can POST to a public URL), and an event must not be lost or invented: a crash
//! between a state change and its notification would silently drop it. The URL is the
//! operator's input but the host sends to it, so it is an egress like a connector's: a URL
//! naming (or resolving to) a private, loopback or link-local address would turn the host into
//! a way into its own network (the admin API, a cloud metadata service).
//!
//! Rule:
//! - Events are written by the store in the transaction of the state change they report (a
//!   transactional outbox, see the store's `webhooks` module); the delivery worker
//!   ([`delivery`]) sends each to each endpoint at least once, with growing waits between
//!   attempts, until a 2xx answer or the last attempt. The event id is the `webhook-id`
//!   header: receivers use it to drop repeats.
//! - Every request is signed following the Standard Webhooks specification ([`signature`]):
//!   HMAC-SHA256 with the endpoint's secret over `id.timestamp.body`.
//! - URLs follow the connectors' egress rules ([`egress`]): https to public addresses, or an
//!   origin the operator approved exactly (`--extra-origin`, the only way to reach loopback).
//!   The name is resolved and checked at every attempt, and the request goes to the checked
//!   addresses; redirects are not followed.
//! - Events carry counts and ids, never record contents.

pub mod delivery;
pub mod egress;
pub mod signature;

use std::sync::Arc;

use crate::app::{App, AppError};
use crate::secrets::Secret;
use crate::store::WebhookEndpoint;

pub use delivery::{DeliverySettings, deliver_due, run_worker};
pub use egress::WebhookEgress;

/// Adds an endpoint for `integration` (or host-wide) after checking `url` against the egress
/// rules; returns it with its signing secret, shown this once.
pub fn add_endpoint(
    app: &Arc<App>,
    url: &str,
    integration: Option<&str>,
) -> Result<(WebhookEndpoint, Secret), AppError> {
    WebhookEgress::of(app.config())
        .check_url(url)
        .map_err(|e| {
            AppError::Invalid(vec![crate::app::FieldIssue {
                field: "url".into(),
                message: e.to_string(),
            }])
        })?;
    let secret = signature::new_secret();
    let endpoint = app
        .store()
        .insert_webhook_endpoint(url, integration, &secret)?;
    tracing::info!(endpoint = %endpoint.id, url, integration, "webhook endpoint added");
    Ok((endpoint, secret))
}
