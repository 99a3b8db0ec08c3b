//! Webhook endpoints and the outbox of events to deliver to them.
//!
//! The events themselves are written by triggers (SQLite's migration 9; on PostgreSQL, the
//! PL/pgSQL triggers at the end of `pg/schema_1.sql`) inside the transaction of the
//! state change they report: an integration's state, a run's end, a connector version's
//! activation. Whatever path makes the change, the event commits or rolls back with it, and
//! each event gets one delivery row per endpoint it goes to. This module reads them, and
//! records what each delivery attempt got.

use super::*;

mod pg;

/// How long settled events stay in the outbox by default: 30 days, as long as delete
/// tombstones stay in the change feed, so a run's `sync.completed` outlives nothing it names.
pub const DEFAULT_WEBHOOK_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// One configured webhook endpoint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The integration whose events it gets; none: every integration's, and the host's.
    pub integration_id: Option<String>,
    /// When it was added (ms).
    pub created_at_ms: i64,
    /// Deliveries not made yet.
    pub pending: i64,
    /// Deliveries made.
    pub delivered: i64,
    /// Deliveries given up.
    pub failed: i64,
    /// The last failed attempt's error, if the last attempt failed.
    pub last_error: Option<String>,
}

/// One event in the outbox.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookEvent {
    /// Its id: the `webhook-id` header, the receiver's idempotency key.
    pub id: String,
    /// What it reports.
    #[serde(rename = "type")]
    pub event_type: WebhookEventType,
    /// The integration, if it is about one.
    pub integration_id: Option<String>,
    /// When it was written (ms).
    pub created_at_ms: i64,
    /// The body every delivery sends, exactly.
    pub body: String,
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    /// The event.
    pub event_id: String,
    /// Its type.
    pub event_type: WebhookEventType,
    /// The endpoint.
    pub endpoint_id: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: i64,
    /// The next attempt (ms), while pending.
    pub next_attempt_at_ms: Option<i64>,
    /// The last attempt (ms).
    pub last_attempt_at_ms: Option<i64>,
    /// The HTTP status of the last answer, if any.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was delivered (ms).
    pub delivered_at_ms: Option<i64>,
}

/// A delivery due now, with what sending it needs.
#[derive(Debug)]
pub struct DueDelivery {
    /// The event id.
    pub event_id: String,
    /// The endpoint id.
    pub endpoint_id: String,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's signing secret (`whsec_...`).
    pub secret: Secret,
    /// The body to send.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// How one attempt went.
#[derive(Debug)]
pub enum AttemptResult {
    /// Answered 2xx.
    Delivered {
        /// The status.
        status: u16,
    },
    /// Failed; tried again at `retry_at_ms`, or given up when `None`.
    Failed {
        /// The status, if the endpoint answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// The next attempt (ms), if any.
        retry_at_ms: Option<i64>,
    },
}

fn ctx_webhook_secret(endpoint: &str) -> String {
    format!("webhook-secret/{endpoint}")
}

const SELECT_ENDPOINT: &str = "SELECT e.id, e.url, e.integration_id, e.created_at_ms,
        (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending'),
        (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'delivered'),
        (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'failed'),
        (SELECT d.last_error FROM webhook_deliveries d WHERE d.endpoint_id = e.id
            AND d.last_attempt_at_ms IS NOT NULL ORDER BY d.last_attempt_at_ms DESC LIMIT 1)
    FROM webhook_endpoints e";

fn endpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: r.get(0)?,
        url: r.get(1)?,
        integration_id: r.get(2)?,
        created_at_ms: r.get(3)?,
        pending: r.get(4)?,
        delivered: r.get(5)?,
        failed: r.get(6)?,
        last_error: r.get(7)?,
    })
}

impl Store {
    /// Adds an endpoint (for `integration`, or host-wide) with signing secret `secret`, sealed.
    /// The caller has checked `url`.
    pub fn insert_webhook_endpoint(
        &self,
        url: &str,
        integration: Option<&str>,
        secret: &Secret,
    ) -> Result<WebhookEndpoint, StoreError> {
        let id = new_id("whk");
        let sealed = self.cipher.seal_secret(&ctx_webhook_secret(&id), secret);
        match &self.db {
            Db::Sqlite(db) => {
                if let Some(id) = integration {
                    self.integration(id)?;
                }
                db.conn().execute(
                    "INSERT INTO webhook_endpoints (id, url, integration_id, secret, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, url, integration, sealed, now_ms()],
                )?;
            }
            Db::Postgres(db) => {
                if !pg::insert_endpoint(db, &id, url, integration, &sealed, now_ms())? {
                    let unknown = integration.unwrap_or_default().to_string();
                    return Err(StoreError::UnknownIntegration(unknown));
                }
            }
        }
        self.webhook_endpoint(&id)
    }

    /// One endpoint.
    pub fn webhook_endpoint(&self, id: &str) -> Result<WebhookEndpoint, StoreError> {
        let found = match &self.db {
            Db::Sqlite(db) => db
                .conn()
                .query_row(
                    &format!("{SELECT_ENDPOINT} WHERE e.id = ?1"),
                    [id],
                    endpoint_row,
                )
                .optional()?,
            Db::Postgres(db) => pg::endpoint(db, id)?,
        };
        found.ok_or_else(|| StoreError::UnknownWebhook(id.to_string()))
    }

    /// Every endpoint, oldest first.
    pub fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return pg::endpoints(db),
        };
        let conn = db.conn();
        let mut stmt =
            conn.prepare(&format!("{SELECT_ENDPOINT} ORDER BY e.created_at_ms, e.id"))?;
        let rows = stmt.query_map([], endpoint_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes an endpoint and its deliveries (the events stay in the outbox).
    pub fn delete_webhook_endpoint(&self, id: &str) -> Result<(), StoreError> {
        let n = match &self.db {
            Db::Sqlite(db) => db
                .conn()
                .execute("DELETE FROM webhook_endpoints WHERE id = ?1", [id])?,
            Db::Postgres(db) => pg::delete_endpoint(db, id)? as usize,
        };
        if n == 0 {
            return Err(StoreError::UnknownWebhook(id.to_string()));
        }
        Ok(())
    }

    /// The latest events in the outbox, newest first.
    pub fn webhook_events(&self, limit: usize) -> Result<Vec<WebhookEvent>, StoreError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return pg::events(db, limit as i64),
        };
        let conn = db.conn();
        let mut stmt = conn.prepare(
            "SELECT id, type, integration_id, created_at_ms, body FROM webhook_events
             ORDER BY created_at_ms DESC, rowid DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(WebhookEvent {
                id: r.get(0)?,
                event_type: r.get(1)?,
                integration_id: r.get(2)?,
                created_at_ms: r.get(3)?,
                body: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The latest deliveries (of one endpoint, or all), newest event first.
    pub fn webhook_deliveries(
        &self,
        endpoint: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        if let Some(id) = endpoint {
            self.webhook_endpoint(id)?;
        }
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return pg::deliveries(db, endpoint, limit as i64),
        };
        let conn = db.conn();
        let mut stmt = conn.prepare(
            "SELECT d.event_id, v.type, d.endpoint_id, d.state, d.attempts, d.next_attempt_at_ms,
                 d.last_attempt_at_ms, d.last_status, d.last_error, d.delivered_at_ms
             FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id
             WHERE ?1 IS NULL OR d.endpoint_id = ?1
             ORDER BY v.created_at_ms DESC, v.rowid DESC, d.endpoint_id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![endpoint, limit as i64], |r| {
            let state: DeliveryState = r.get(3)?;
            Ok(WebhookDelivery {
                event_id: r.get(0)?,
                event_type: r.get(1)?,
                endpoint_id: r.get(2)?,
                state,
                attempts: r.get(4)?,
                next_attempt_at_ms: (state == DeliveryState::Pending)
                    .then(|| r.get(5))
                    .transpose()?,
                last_attempt_at_ms: r.get(6)?,
                last_status: r.get(7)?,
                last_error: r.get(8)?,
                delivered_at_ms: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Takes up to `limit` deliveries due at `now`, oldest event first, and moves their next
    /// attempt to `now + lease_ms`: a process that dies while sending leaves them to be sent
    /// again after the lease (at least once), and a second process does not take them
    /// meanwhile.
    pub fn claim_due_deliveries(
        &self,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => {
                return pg::claim_due(db, now, lease_ms, limit as i64, |endpoint, sealed| {
                    self.cipher
                        .open_secret(&ctx_webhook_secret(endpoint), sealed)
                });
            }
        };
        let mut conn = db.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let due: Vec<(String, String, String, Vec<u8>, String, u32)> = {
            let mut stmt = tx.prepare(
                "SELECT d.event_id, d.endpoint_id, e.url, e.secret, v.body, d.attempts
                 FROM webhook_deliveries d
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id
                 JOIN webhook_events v ON v.id = d.event_id
                 WHERE d.state = 'pending' AND d.next_attempt_at_ms <= ?1
                 ORDER BY d.next_attempt_at_ms, v.created_at_ms, v.rowid LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let mut claimed = Vec::with_capacity(due.len());
        for (event_id, endpoint_id, url, sealed, body, attempts) in due {
            tx.execute(
                "UPDATE webhook_deliveries SET next_attempt_at_ms = ?3
                 WHERE event_id = ?1 AND endpoint_id = ?2",
                params![event_id, endpoint_id, now + lease_ms],
            )?;
            let secret = match self
                .cipher
                .open_secret(&ctx_webhook_secret(&endpoint_id), &sealed)
            {
                Ok(secret) => secret,
                // Another key sealed it (a data directory restored without its key file):
                // no attempt can succeed, and the other deliveries must still go out.
                Err(e) => {
                    tx.execute(
                        "UPDATE webhook_deliveries SET state = ?3, last_attempt_at_ms = ?4,
                             last_error = ?5
                         WHERE event_id = ?1 AND endpoint_id = ?2",
                        params![
                            event_id,
                            endpoint_id,
                            DeliveryState::Failed,
                            now,
                            format!("the endpoint's signing secret cannot be opened: {e}")
                        ],
                    )?;
                    continue;
                }
            };
            claimed.push(DueDelivery {
                event_id,
                endpoint_id,
                url,
                secret,
                body,
                attempts,
            });
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Records how an attempt to deliver `event` to `endpoint` went.
    pub fn record_delivery_attempt(
        &self,
        event: &str,
        endpoint: &str,
        result: &AttemptResult,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => {
                return pg::record_attempt(db, event, endpoint, &attempt_of(result, now));
            }
        };
        let conn = db.conn();
        match result {
            AttemptResult::Delivered { status } => conn.execute(
                "UPDATE webhook_deliveries SET state = ?3, attempts = attempts + 1,
                     last_attempt_at_ms = ?4, last_status = ?5, last_error = NULL,
                     delivered_at_ms = ?4
                 WHERE event_id = ?1 AND endpoint_id = ?2",
                params![event, endpoint, DeliveryState::Delivered, now, status],
            )?,
            AttemptResult::Failed {
                status,
                error,
                retry_at_ms,
            } => conn.execute(
                "UPDATE webhook_deliveries SET state = ?3, attempts = attempts + 1,
                     last_attempt_at_ms = ?4, last_status = ?5, last_error = ?6,
                     next_attempt_at_ms = COALESCE(?7, next_attempt_at_ms)
                 WHERE event_id = ?1 AND endpoint_id = ?2",
                params![
                    event,
                    endpoint,
                    if retry_at_ms.is_some() {
                        DeliveryState::Pending
                    } else {
                        DeliveryState::Failed
                    },
                    now,
                    status,
                    error,
                    retry_at_ms
                ],
            )?,
        };
        Ok(())
    }

    /// Deletes the events written before `before_ms` whose every delivery is settled
    /// (delivered, or given up), with their deliveries; returns how many events went. An event
    /// still pending anywhere stays, however old: the outbox never drops what it owes.
    pub fn prune_webhook_events(&self, before_ms: i64) -> Result<usize, StoreError> {
        let pruned = match &self.db {
            Db::Sqlite(db) => db.conn().execute(
                "DELETE FROM webhook_events
                 WHERE created_at_ms < ?1
                   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                                   WHERE d.event_id = webhook_events.id AND d.state = ?2)",
                params![before_ms, DeliveryState::Pending],
            )?,
            Db::Postgres(db) => pg::prune_events(db, before_ms)? as usize,
        };
        if pruned > 0 {
            tracing::info!(pruned, "pruned settled webhook events past their retention");
        }
        Ok(pruned)
    }

    /// Puts an endpoint's given-up deliveries back in line, due now; returns how many.
    pub fn retry_failed_deliveries(&self, endpoint: &str) -> Result<usize, StoreError> {
        self.webhook_endpoint(endpoint)?;
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return Ok(pg::retry_failed(db, endpoint, now_ms())? as usize),
        };
        Ok(db.conn().execute(
            "UPDATE webhook_deliveries SET state = ?2, attempts = 0, next_attempt_at_ms = ?3
             WHERE endpoint_id = ?1 AND state = ?4",
            params![
                endpoint,
                DeliveryState::Pending,
                now_ms(),
                DeliveryState::Failed
            ],
        )?)
    }
}

/// What `result`, an attempt made at `now`, leaves on its delivery.
fn attempt_of(result: &AttemptResult, now: i64) -> pg::Attempt<'_> {
    match result {
        AttemptResult::Delivered { status } => pg::Attempt {
            state: DeliveryState::Delivered,
            at_ms: now,
            status: Some(*status),
            error: None,
            retry_at_ms: None,
        },
        AttemptResult::Failed {
            status,
            error,
            retry_at_ms,
        } => pg::Attempt {
            state: if retry_at_ms.is_some() {
                DeliveryState::Pending
            } else {
                DeliveryState::Failed
            },
            at_ms: now,
            status: *status,
            error: Some(error),
            retry_at_ms: *retry_at_ms,
        },
    }
}
