//! The delivery worker: sends due deliveries from the outbox, signed, and records each
//! attempt. At least once: a delivery is marked delivered only after a 2xx answer, and one
//! whose process died mid-send is sent again once its lease runs out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::egress::WebhookEgress;
use super::signature::{self, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::engine::backoff::Backoff;
use crate::store::{AttemptResult, DueDelivery, Store, StoreError, now_ms};

/// How the worker sends.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The waits between attempts of one delivery (jittered).
    pub backoff: Backoff,
    /// Attempts before a delivery is given up (`failed`, visible, retried on request).
    pub max_attempts: u32,
    /// The most one attempt may take, name resolution included.
    pub timeout: Duration,
    /// How long a taken delivery is left to its worker before another may send it again;
    /// longer than `timeout`.
    pub lease: Duration,
    /// Deliveries sent at once.
    pub batch: usize,
    /// The wait between looks at the outbox when nothing is due.
    pub poll: Duration,
}

impl Default for DeliverySettings {
    /// From 5 s, doubling to at most an hour between attempts, 12 attempts: a receiver down
    /// for about five hours still gets every event.
    fn default() -> Self {
        Self {
            backoff: Backoff {
                base: Duration::from_secs(5),
                max: Duration::from_secs(3600),
            },
            max_attempts: 12,
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(120),
            batch: 16,
            poll: Duration::from_secs(1),
        }
    }
}

/// Sends the deliveries due now (at most `settings.batch`, at once) and records how each
/// went; returns how many were attempted.
pub async fn deliver_due(
    store: &Arc<Store>,
    egress: &WebhookEgress,
    settings: &DeliverySettings,
) -> Result<usize, StoreError> {
    let claimed = {
        let store = store.clone();
        let (lease, batch) = (settings.lease.as_millis() as i64, settings.batch);
        tokio::task::spawn_blocking(move || store.claim_due_deliveries(now_ms(), lease, batch))
            .await
            .map_err(|e| StoreError::Corrupt(format!("the outbox read failed: {e}")))??
    };
    let count = claimed.len();
    let mut sends = JoinSet::new();
    for delivery in claimed {
        let (egress, settings) = (egress.clone(), settings.clone());
        sends.spawn(async move {
            let result = attempt(&egress, &settings, &delivery).await;
            (delivery, result)
        });
    }
    while let Some(joined) = sends.join_next().await {
        let Ok((delivery, result)) = joined else {
            // A panicked send leaves its delivery leased: it is sent again after the lease.
            continue;
        };
        log_attempt(&delivery, &result);
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store.record_delivery_attempt(&delivery.event_id, &delivery.endpoint_id, &result)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("recording a delivery failed: {e}")))??;
    }
    Ok(count)
}

/// Runs [`deliver_due`] until `stop` turns true.
pub async fn run_worker(
    store: Arc<Store>,
    egress: WebhookEgress,
    settings: DeliverySettings,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let busy = match deliver_due(&store, &egress, &settings).await {
            Ok(sent) => sent == settings.batch,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the webhook outbox");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}

/// One attempt: sign, resolve and check, POST; a 2xx answer delivers.
async fn attempt(
    egress: &WebhookEgress,
    settings: &DeliverySettings,
    delivery: &DueDelivery,
) -> AttemptResult {
    let failed = |status: Option<u16>, error: String| AttemptResult::Failed {
        status,
        error,
        retry_at_ms: retry_at(settings, delivery.attempts),
    };
    let timestamp = now_ms() / 1000;
    let signed = signature::sign(
        &delivery.secret,
        &delivery.event_id,
        timestamp,
        delivery.body.as_bytes(),
    );
    let signature = match signed {
        Ok(s) => s,
        Err(e) => return failed(None, e.to_string()),
    };
    let client = match egress.client_for(&delivery.url, settings.timeout).await {
        Ok(c) => c,
        Err(e) => return failed(None, e.to_string()),
    };
    let sent = client
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, "sluice-webhooks")
        .header(ID_HEADER, &delivery.event_id)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(delivery.body.clone())
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => AttemptResult::Delivered {
            status: answer.status().as_u16(),
        },
        Ok(answer) => failed(
            Some(answer.status().as_u16()),
            format!(
                "the endpoint answered {} (a 2xx answer delivers; redirects are not followed)",
                answer.status()
            ),
        ),
        Err(e) => failed(None, crate::error_text::with_causes(&e)),
    }
}

/// The time of the next attempt after `attempts` earlier ones and this failed one, or none
/// when that was the last.
fn retry_at(settings: &DeliverySettings, attempts: u32) -> Option<i64> {
    (attempts + 1 < settings.max_attempts)
        .then(|| now_ms() + settings.backoff.jittered(attempts).as_millis() as i64)
}

fn log_attempt(delivery: &DueDelivery, result: &AttemptResult) {
    match result {
        AttemptResult::Delivered { status } => tracing::info!(
            event = %delivery.event_id, endpoint = %delivery.endpoint_id, status,
            "webhook delivered"
        ),
        AttemptResult::Failed {
            error, retry_at_ms, ..
        } => tracing::warn!(
            event = %delivery.event_id, endpoint = %delivery.endpoint_id, error = %error,
            attempt = delivery.attempts + 1, gave_up = retry_at_ms.is_none(),
            "webhook delivery failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_attempt_schedules_no_retry() {
        let settings = DeliverySettings {
            max_attempts: 3,
            ..DeliverySettings::default()
        };
        assert!(retry_at(&settings, 0).is_some());
        assert!(retry_at(&settings, 1).is_some());
        assert!(retry_at(&settings, 2).is_none());
    }
}
