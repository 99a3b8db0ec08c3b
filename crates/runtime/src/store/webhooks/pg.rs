//! The webhook tables' SQL for a PostgreSQL store: the same reads and writes as the SQLite
//! arm of each `Store` method in the parent module, in PostgreSQL's dialect. Text sort keys
//! are compared bytewise (`COLLATE "C"`), as SQLite compares them, whatever the database's
//! locale.

use tokio_postgres::Row;

use super::{DueDelivery, WebhookDelivery, WebhookEndpoint, WebhookEvent};
use crate::secrets::{Secret, SecretError};
use crate::store::pg::{self, Pg};
use crate::store::{DeliveryState, StoreError, WebhookEventType};

const SELECT_ENDPOINT: &str = "SELECT e.id, e.url, e.integration_id, e.created_at_ms,
        (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending'),
        (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'delivered'),
        (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'failed'),
        (SELECT d.last_error FROM webhook_deliveries d WHERE d.endpoint_id = e.id
            AND d.last_attempt_at_ms IS NOT NULL ORDER BY d.last_attempt_at_ms DESC LIMIT 1)
    FROM webhook_endpoints e";

fn endpoint_row(r: &Row) -> WebhookEndpoint {
    WebhookEndpoint {
        id: r.get(0),
        url: r.get(1),
        integration_id: r.get(2),
        created_at_ms: r.get(3),
        pending: r.get(4),
        delivered: r.get(5),
        failed: r.get(6),
        last_error: r.get(7),
    }
}

/// Inserts an endpoint; false (and nothing written) when `integration` names none.
pub(super) fn insert_endpoint(
    pg: &Pg,
    id: &str,
    url: &str,
    integration: Option<&str>,
    sealed: &[u8],
    now: i64,
) -> Result<bool, StoreError> {
    // One statement: the integration cannot go between the check and the insert.
    let inserted = pg::wait(pg.client()?.execute(
        "INSERT INTO webhook_endpoints (id, url, integration_id, secret, created_at_ms)
         SELECT $1::TEXT, $2::TEXT, $3::TEXT, $4::BYTEA, $5::BIGINT
         WHERE $3::TEXT IS NULL OR EXISTS (SELECT 1 FROM integrations WHERE id = $3)",
        &[&id, &url, &integration, &sealed, &now],
    ))?;
    Ok(inserted == 1)
}

/// One endpoint, if it exists.
pub(super) fn endpoint(pg: &Pg, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
    let row = pg::wait(
        pg.client()?
            .query_opt(&format!("{SELECT_ENDPOINT} WHERE e.id = $1"), &[&id]),
    )?;
    Ok(row.as_ref().map(endpoint_row))
}

/// Every endpoint, oldest first.
pub(super) fn endpoints(pg: &Pg) -> Result<Vec<WebhookEndpoint>, StoreError> {
    let rows = pg::wait(pg.client()?.query(
        &format!("{SELECT_ENDPOINT} ORDER BY e.created_at_ms, e.id COLLATE \"C\""),
        &[],
    ))?;
    Ok(rows.iter().map(endpoint_row).collect())
}

/// Deletes an endpoint (its deliveries cascade); how many went.
pub(super) fn delete_endpoint(pg: &Pg, id: &str) -> Result<u64, StoreError> {
    Ok(pg::wait(pg.client()?.execute(
        "DELETE FROM webhook_endpoints WHERE id = $1",
        &[&id],
    ))?)
}

/// The latest events, newest first (`seq` orders events written in the same millisecond).
pub(super) fn events(pg: &Pg, limit: i64) -> Result<Vec<WebhookEvent>, StoreError> {
    let rows = pg::wait(pg.client()?.query(
        "SELECT id, type, integration_id, created_at_ms, body FROM webhook_events
         ORDER BY created_at_ms DESC, seq DESC LIMIT $1",
        &[&limit],
    ))?;
    rows.iter()
        .map(|r| {
            Ok(WebhookEvent {
                id: r.get(0),
                event_type: WebhookEventType::parse(r.get(1))?,
                integration_id: r.get(2),
                created_at_ms: r.get(3),
                body: r.get(4),
            })
        })
        .collect()
}

/// The latest deliveries (of one endpoint, or all), newest event first.
pub(super) fn deliveries(
    pg: &Pg,
    endpoint: Option<&str>,
    limit: i64,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    let rows = pg::wait(pg.client()?.query(
        "SELECT d.event_id, v.type, d.endpoint_id, d.state, d.attempts, d.next_attempt_at_ms,
             d.last_attempt_at_ms, d.last_status, d.last_error, d.delivered_at_ms
         FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id
         WHERE $1::TEXT IS NULL OR d.endpoint_id = $1
         ORDER BY v.created_at_ms DESC, v.seq DESC, d.endpoint_id COLLATE \"C\" LIMIT $2",
        &[&endpoint, &limit],
    ))?;
    rows.iter().map(delivery_row).collect()
}

fn delivery_row(r: &Row) -> Result<WebhookDelivery, StoreError> {
    let state = DeliveryState::parse(r.get(3))?;
    Ok(WebhookDelivery {
        event_id: r.get(0),
        event_type: WebhookEventType::parse(r.get(1))?,
        endpoint_id: r.get(2),
        state,
        attempts: r.get(4),
        next_attempt_at_ms: (state == DeliveryState::Pending).then(|| r.get(5)),
        last_attempt_at_ms: r.get(6),
        last_status: r
            .get::<_, Option<i64>>(7)
            .map(|s| u16::try_from(s).map_err(|_| StoreError::Corrupt(format!("HTTP status {s}"))))
            .transpose()?,
        last_error: r.get(8),
        delivered_at_ms: r.get(9),
    })
}

/// Claims up to `limit` due deliveries (see `Store::claim_due_deliveries`). `FOR UPDATE SKIP
/// LOCKED`: a delivery another host is claiming at this moment is left to it, and one it has
/// claimed is no longer due, so no delivery is claimed twice. `open` opens an endpoint's
/// sealed secret; a delivery whose secret does not open is given up, naming why.
pub(super) fn claim_due(
    pg: &Pg,
    now: i64,
    lease_ms: i64,
    limit: i64,
    open: impl Fn(&str, &[u8]) -> Result<Secret, SecretError>,
) -> Result<Vec<DueDelivery>, StoreError> {
    let mut client = pg.client()?;
    pg::wait(async {
        let tx = client.transaction().await?;
        let due = tx
            .query(
                "SELECT d.event_id, d.endpoint_id, e.url, e.secret, v.body, d.attempts
                 FROM webhook_deliveries d
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id
                 JOIN webhook_events v ON v.id = d.event_id
                 WHERE d.state = 'pending' AND d.next_attempt_at_ms <= $1
                 ORDER BY d.next_attempt_at_ms, v.created_at_ms, v.seq LIMIT $2
                 FOR UPDATE OF d SKIP LOCKED",
                &[&now, &limit],
            )
            .await?;
        let mut claimed = Vec::with_capacity(due.len());
        for row in &due {
            let (event_id, endpoint_id): (String, String) = (row.get(0), row.get(1));
            tx.execute(
                "UPDATE webhook_deliveries SET next_attempt_at_ms = $3
                 WHERE event_id = $1 AND endpoint_id = $2",
                &[&event_id, &endpoint_id, &(now + lease_ms)],
            )
            .await?;
            let secret = match open(&endpoint_id, row.get::<_, &[u8]>(3)) {
                Ok(secret) => secret,
                // As on SQLite: no attempt can succeed, and the others must still go out.
                Err(e) => {
                    tx.execute(
                        "UPDATE webhook_deliveries SET state = $3, last_attempt_at_ms = $4,
                             last_error = $5
                         WHERE event_id = $1 AND endpoint_id = $2",
                        &[
                            &event_id,
                            &endpoint_id,
                            &DeliveryState::Failed.as_str(),
                            &now,
                            &format!("the endpoint's signing secret cannot be opened: {e}"),
                        ],
                    )
                    .await?;
                    continue;
                }
            };
            let attempts: i64 = row.get(5);
            claimed.push(DueDelivery {
                event_id,
                endpoint_id,
                url: row.get(2),
                secret,
                body: row.get(4),
                attempts: u32::try_from(attempts)
                    .map_err(|_| StoreError::Corrupt(format!("delivery attempts {attempts}")))?,
            });
        }
        tx.commit().await?;
        Ok(claimed)
    })
}

/// What one attempt leaves on its delivery.
pub(super) struct Attempt<'a> {
    /// The delivery's state after it.
    pub state: DeliveryState,
    /// When it was made (ms).
    pub at_ms: i64,
    /// The endpoint's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed; `None` when delivered.
    pub error: Option<&'a str>,
    /// The next attempt (ms), when one is planned.
    pub retry_at_ms: Option<i64>,
}

/// Records an attempt on the delivery of `event` to `endpoint`.
pub(super) fn record_attempt(
    pg: &Pg,
    event: &str,
    endpoint: &str,
    attempt: &Attempt<'_>,
) -> Result<(), StoreError> {
    let status = attempt.status.map(i64::from);
    let delivered_at = (attempt.state == DeliveryState::Delivered).then_some(attempt.at_ms);
    pg::wait(pg.client()?.execute(
        "UPDATE webhook_deliveries SET state = $3, attempts = attempts + 1,
             last_attempt_at_ms = $4, last_status = $5, last_error = $6,
             next_attempt_at_ms = COALESCE($7, next_attempt_at_ms),
             delivered_at_ms = COALESCE($8, delivered_at_ms)
         WHERE event_id = $1 AND endpoint_id = $2",
        &[
            &event,
            &endpoint,
            &attempt.state.as_str(),
            &attempt.at_ms,
            &status,
            &attempt.error,
            &attempt.retry_at_ms,
            &delivered_at,
        ],
    ))?;
    Ok(())
}

/// Deletes the settled events written before `before_ms`; how many went.
pub(super) fn prune_events(pg: &Pg, before_ms: i64) -> Result<u64, StoreError> {
    Ok(pg::wait(pg.client()?.execute(
        "DELETE FROM webhook_events
         WHERE created_at_ms < $1
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                           WHERE d.event_id = webhook_events.id AND d.state = $2)",
        &[&before_ms, &DeliveryState::Pending.as_str()],
    ))?)
}

/// Puts an endpoint's given-up deliveries back in line at `now`; how many.
pub(super) fn retry_failed(pg: &Pg, endpoint: &str, now: i64) -> Result<u64, StoreError> {
    Ok(pg::wait(pg.client()?.execute(
        "UPDATE webhook_deliveries SET state = $2, attempts = 0, next_attempt_at_ms = $3
         WHERE endpoint_id = $1 AND state = $4",
        &[
            &endpoint,
            &DeliveryState::Pending.as_str(),
            &now,
            &DeliveryState::Failed.as_str(),
        ],
    ))?)
}
