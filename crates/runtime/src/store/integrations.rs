//! Integrations: what the user set up, its state and its sealed client secret.

use super::*;
use std::collections::BTreeMap;

/// The settings of an integration, as the user gave them: the capability, and the connector's
/// declared settings by name (the contract's `settings`). The connector's `configure` says
/// which names exist and which values are valid; the store holds whatever it accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSettings {
    /// One of the connector's capabilities, e.g. `helpdesk`.
    pub capability: String,
    /// Every other setting, by its declared name, e.g. `domain`.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

impl IntegrationSettings {
    /// Settings of `capability` with `values` (empty values are left out).
    pub fn new<'a>(
        capability: impl Into<String>,
        values: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut settings = Self {
            capability: capability.into(),
            values: BTreeMap::new(),
        };
        for (name, value) in values {
            settings.set(name, value);
        }
        settings
    }

    /// The value of the setting `name`, when set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Sets `name` to `value`; an empty value removes the setting.
    pub fn set(&mut self, name: &str, value: &str) {
        match value.is_empty() {
            true => self.values.remove(name),
            false => self.values.insert(name.to_string(), value.to_string()),
        };
    }
}

/// An integration as stored (its client secret stays sealed).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Integration {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The connector that serves it, e.g. `salesforce`.
    pub connector: String,
    /// Its settings.
    pub settings: IntegrationSettings,
    /// Seconds between scheduled pulls.
    pub interval_s: u64,
    /// The connected app's client id, when set per integration.
    pub client_id: Option<String>,
    /// Whether a per-integration client secret is stored.
    pub has_client_secret: bool,
    /// Its lifecycle state.
    pub state: IntegrationState,
    /// Why it is in that state (e.g. the `invalid_grant` text).
    pub state_reason: Option<String>,
    /// When it was created (ms since the epoch).
    pub created_at_ms: i64,
    /// When it was last changed.
    pub updated_at_ms: i64,
    /// Since when its scheduled pulls are paused (ms since the epoch); `None`: not paused.
    pub paused_at_ms: Option<i64>,
}

/// What `integration add` stores.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    /// Display name.
    pub name: String,
    /// Connector name.
    pub connector: String,
    /// Settings (already validated by the connector's `configure`).
    pub settings: IntegrationSettings,
    /// Seconds between scheduled pulls.
    pub interval_s: u64,
    /// Per-integration client id.
    pub client_id: Option<String>,
    /// Per-integration client secret.
    pub client_secret: Option<Secret>,
}

impl Store {
    /// Stores a new integration and returns it.
    pub fn insert_integration(&self, new: &NewIntegration) -> Result<Integration, StoreError> {
        let id = new_id("int");
        let now = now_ms();
        let settings =
            serde_json::to_string(&new.settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let secret = new
            .client_secret
            .as_ref()
            .map(|s| self.cipher.seal_secret(&ctx_client_secret(&id), s));
        let state = IntegrationState::PendingAuthorization.as_str();
        let interval_s = new.interval_s as i64;
        match &self.db {
            Db::Sqlite(db) => {
                db.conn().execute(
                    "INSERT INTO integrations (id, seq, name, connector, settings_json, interval_s,
                         client_id, client_secret, state, state_reason, created_at_ms,
                         updated_at_ms)
                     VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM integrations), ?2, ?3, ?4,
                         ?5, ?6, ?7, ?8, NULL, ?9, ?9)",
                    params![
                        id,
                        new.name,
                        new.connector,
                        settings,
                        interval_s,
                        new.client_id,
                        secret,
                        state,
                        now
                    ],
                )?;
            }
            // `seq` is the BIGSERIAL's next value: rising like SQLite's MAX + 1, and unique
            // among hosts inserting at once.
            Db::Postgres(pg) => {
                pg::wait(pg.client()?.execute(
                    "INSERT INTO integrations (id, name, connector, settings_json, interval_s,
                         client_id, client_secret, state, state_reason, created_at_ms,
                         updated_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $9)",
                    &[
                        &id,
                        &new.name,
                        &new.connector,
                        &settings,
                        &interval_s,
                        &new.client_id,
                        &secret,
                        &state,
                        &now,
                    ],
                ))?;
            }
        }
        self.integration(&id)
    }

    /// The integration `id`.
    pub fn integration(&self, id: &str) -> Result<Integration, StoreError> {
        let found = match &self.db {
            Db::Sqlite(db) => db
                .conn()
                .query_row(
                    &format!("{SELECT_INTEGRATION} WHERE id = ?1"),
                    [id],
                    row_to_integration,
                )
                .optional()?,
            Db::Postgres(pg) => pg::wait(
                pg.client()?
                    .query_opt(&format!("{SELECT_INTEGRATION} WHERE id = $1"), &[&id]),
            )?
            .map(|r| pg_row_to_integration(&r)),
        };
        found.ok_or_else(|| StoreError::UnknownIntegration(id.to_string()))?
    }

    /// Every integration, newest first.
    pub fn integrations(&self) -> Result<Vec<Integration>, StoreError> {
        match &self.db {
            Db::Sqlite(db) => {
                let conn = db.conn();
                let mut stmt = conn.prepare(&format!("{SELECT_INTEGRATION} ORDER BY seq DESC"))?;
                let rows = stmt.query_map([], row_to_integration)?;
                rows.map(|r| r?).collect()
            }
            Db::Postgres(pg) => pg::wait(
                pg.client()?
                    .query(&format!("{SELECT_INTEGRATION} ORDER BY seq DESC"), &[]),
            )?
            .iter()
            .map(pg_row_to_integration)
            .collect(),
        }
    }

    /// Replaces an integration's editable fields. `client_secret`: `None` keeps the stored
    /// one, `Some(None)` removes it.
    pub fn update_integration(
        &self,
        id: &str,
        name: &str,
        settings: &IntegrationSettings,
        interval_s: u64,
        client_id: Option<&str>,
        client_secret: Option<Option<&Secret>>,
    ) -> Result<Integration, StoreError> {
        let settings =
            serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let interval_s = interval_s as i64;
        let now = now_ms();
        let sealed = client_secret
            .map(|secret| secret.map(|s| self.cipher.seal_secret(&ctx_client_secret(id), s)));
        let n = match &self.db {
            Db::Sqlite(db) => {
                let conn = db.conn();
                let n = conn.execute(
                    "UPDATE integrations SET name = ?2, settings_json = ?3, interval_s = ?4,
                         client_id = ?5, updated_at_ms = ?6 WHERE id = ?1",
                    params![id, name, settings, interval_s, client_id, now],
                )?;
                if let (1.., Some(sealed)) = (n, &sealed) {
                    conn.execute(
                        "UPDATE integrations SET client_secret = ?2 WHERE id = ?1",
                        params![id, sealed],
                    )?;
                }
                n
            }
            // One statement: the secret changes with the other fields or not at all.
            Db::Postgres(pg) => pg::wait(pg.client()?.execute(
                "UPDATE integrations SET name = $2, settings_json = $3, interval_s = $4,
                     client_id = $5, updated_at_ms = $6,
                     client_secret = CASE WHEN $7 THEN $8 ELSE client_secret END
                 WHERE id = $1",
                &[
                    &id,
                    &name,
                    &settings,
                    &interval_s,
                    &client_id,
                    &now,
                    &sealed.is_some(),
                    &sealed.flatten(),
                ],
            ))? as usize,
        };
        if n == 0 {
            return Err(StoreError::UnknownIntegration(id.to_string()));
        }
        self.integration(id)
    }

    /// Deletes an integration with everything it owns (tokens, records, checkpoints, runs).
    pub fn delete_integration(&self, id: &str) -> Result<(), StoreError> {
        let n = match &self.db {
            Db::Sqlite(db) => db
                .conn()
                .execute("DELETE FROM integrations WHERE id = ?1", [id])?,
            Db::Postgres(pg) => pg::wait(
                pg.client()?
                    .execute("DELETE FROM integrations WHERE id = $1", &[&id]),
            )? as usize,
        };
        if n == 0 {
            return Err(StoreError::UnknownIntegration(id.to_string()));
        }
        Ok(())
    }

    /// The per-integration client secret, opened.
    pub fn client_secret(&self, id: &str) -> Result<Option<Secret>, StoreError> {
        let sealed: Option<Option<Vec<u8>>> = match &self.db {
            Db::Sqlite(db) => db
                .conn()
                .query_row(
                    "SELECT client_secret FROM integrations WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?,
            Db::Postgres(pg) => pg::wait(pg.client()?.query_opt(
                "SELECT client_secret FROM integrations WHERE id = $1",
                &[&id],
            ))?
            .map(|r| r.get(0)),
        };
        sealed
            .ok_or_else(|| StoreError::UnknownIntegration(id.to_string()))?
            .map(|s| self.cipher.open_secret(&ctx_client_secret(id), &s))
            .transpose()
            .map_err(Into::into)
    }

    /// Pauses integration `id`'s pulls (keeping when it was first paused), or resumes them.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<Integration, StoreError> {
        let now = now_ms();
        let n = match &self.db {
            Db::Sqlite(db) => db.conn().execute(
                "UPDATE integrations SET updated_at_ms = ?3,
                     paused_at_ms = CASE WHEN ?2 THEN COALESCE(paused_at_ms, ?3) END
                 WHERE id = ?1",
                params![id, paused, now],
            )?,
            Db::Postgres(pg) => pg::wait(pg.client()?.execute(
                "UPDATE integrations SET updated_at_ms = $3,
                     paused_at_ms = CASE WHEN $2 THEN COALESCE(paused_at_ms, $3) END
                 WHERE id = $1",
                &[&id, &paused, &now],
            ))? as usize,
        };
        if n == 0 {
            return Err(StoreError::UnknownIntegration(id.to_string()));
        }
        self.integration(id)
    }

    /// Sets an integration's state and the reason for it.
    pub fn set_state(
        &self,
        id: &str,
        state: IntegrationState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let n = match &self.db {
            Db::Sqlite(db) => db.conn().execute(
                "UPDATE integrations SET state = ?2, state_reason = ?3, updated_at_ms = ?4
                 WHERE id = ?1",
                params![id, state.as_str(), reason, now],
            )?,
            Db::Postgres(pg) => pg::wait(pg.client()?.execute(
                "UPDATE integrations SET state = $2, state_reason = $3, updated_at_ms = $4
                 WHERE id = $1",
                &[&id, &state.as_str(), &reason, &now],
            ))? as usize,
        };
        if n == 0 {
            return Err(StoreError::UnknownIntegration(id.to_string()));
        }
        Ok(())
    }
}

fn row_to_integration(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Integration, StoreError>> {
    let settings: String = r.get(3)?;
    let state: String = r.get(7)?;
    let build = || -> Result<Integration, StoreError> {
        Ok(Integration {
            id: r.get(0)?,
            name: r.get(1)?,
            connector: r.get(2)?,
            settings: parse_settings(&settings)?,
            interval_s: r.get::<_, i64>(4)? as u64,
            client_id: r.get(5)?,
            has_client_secret: r.get(6)?,
            state: IntegrationState::parse(&state)?,
            state_reason: r.get(8)?,
            created_at_ms: r.get(9)?,
            updated_at_ms: r.get(10)?,
            paused_at_ms: r.get(11)?,
        })
    };
    Ok(build())
}

/// The same row as [`row_to_integration`] reads, from PostgreSQL.
fn pg_row_to_integration(r: &tokio_postgres::Row) -> Result<Integration, StoreError> {
    Ok(Integration {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        connector: r.try_get(2)?,
        settings: parse_settings(r.try_get(3)?)?,
        interval_s: r.try_get::<_, i64>(4)? as u64,
        client_id: r.try_get(5)?,
        has_client_secret: r.try_get(6)?,
        state: IntegrationState::parse(r.try_get(7)?)?,
        state_reason: r.try_get(8)?,
        created_at_ms: r.try_get(9)?,
        updated_at_ms: r.try_get(10)?,
        paused_at_ms: r.try_get(11)?,
    })
}

fn parse_settings(json: &str) -> Result<IntegrationSettings, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("settings: {e}")))
}

/// Marks integration `id` active inside a credential write's transaction `tx`, before the
/// credentials are written: an unknown integration is named as such, where the credential
/// insert's foreign key would fail with a constraint error.
pub(super) fn activate_sqlite(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let n = tx.execute(
        "UPDATE integrations SET state = ?3, state_reason = NULL, updated_at_ms = ?2
         WHERE id = ?1",
        params![id, now, IntegrationState::Active],
    )?;
    match n {
        0 => Err(StoreError::UnknownIntegration(id.to_string())),
        _ => Ok(()),
    }
}

/// [`activate_sqlite`] on PostgreSQL.
pub(super) async fn activate_pg(
    tx: &tokio_postgres::Transaction<'_>,
    id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let n = tx
        .execute(
            "UPDATE integrations SET state = $3, state_reason = NULL, updated_at_ms = $2
             WHERE id = $1",
            &[&id, &now, &IntegrationState::Active.as_str()],
        )
        .await?;
    match n {
        0 => Err(StoreError::UnknownIntegration(id.to_string())),
        _ => Ok(()),
    }
}
