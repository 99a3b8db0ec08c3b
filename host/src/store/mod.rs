//! Durable state: one SQLite database (WAL mode) under the data directory.
//!
//! It holds integrations, their sealed tokens and client secrets, pending OAuth states,
//! checkpoints, runs, plugin versions and records. Records are kept by (integration, stream,
//! key) as the latest version, with delete tombstones.
//!
//! Crash safety rests on one rule: [`Store::commit_page`] writes a page's records, its
//! checkpoint and the run's counters in one transaction. A crash before the commit leaves the
//! previous checkpoint, so the page is read again; a crash after it leaves the new one, so it
//! is not. Either way nothing is lost and nothing is applied twice.

pub mod merge;
pub mod migrations;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::engine::manifest::Manifest;
use crate::engine::wit::types::{Operation, Row};
use crate::secrets::{Cipher, Secret, SecretError};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "sluice.db";

/// The SQLite page size of a new database, in bytes (see [`Store::open`]).
pub const DB_PAGE_SIZE: u32 = 16 * 1024;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The data directory is unusable.
    #[error("data directory {path}: {detail}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// A sealed value could not be opened.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// No integration has this id.
    #[error("no integration with id {0}")]
    UnknownIntegration(String),
    /// A stored value is corrupt.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// A time as milliseconds since the Unix epoch.
pub fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds since the Unix epoch as a time.
pub fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// The lifecycle state of an integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntegrationState {
    /// Created; no credentials yet (`sluice connect` gives it some).
    PendingAuthorization,
    /// Has credentials; pulls run.
    Active,
    /// The refresh token is dead; pulls stop until a person re-connects.
    NeedsReauthorization,
}

impl IntegrationState {
    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingAuthorization => "pending-authorization",
            Self::Active => "active",
            Self::NeedsReauthorization => "needs-reauthorization",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending-authorization" => Self::PendingAuthorization,
            "active" => Self::Active,
            "needs-reauthorization" => Self::NeedsReauthorization,
            other => return Err(StoreError::Corrupt(format!("integration state {other:?}"))),
        })
    }
}

/// The settings of an integration, as the user gave them (the connector's `settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationSettings {
    /// `helpdesk`, `crm` or `content-management`.
    pub capability: String,
    /// `production` or `sandbox`.
    pub environment: String,
    /// `created` or `updated`.
    pub pull_by: Option<String>,
    /// The org's domain URL.
    pub domain: Option<String>,
    /// Connector-specific settings.
    #[serde(default)]
    pub extra: Vec<(String, String)>,
}

/// An integration as stored (its client secret stays sealed).
#[derive(Debug, Clone, Serialize)]
pub struct Integration {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The plugin that serves it, e.g. `salesforce`.
    pub plugin: String,
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
}

/// What `integration add` stores.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    /// Display name.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// Settings (already validated by the connector's `configure`).
    pub settings: IntegrationSettings,
    /// Seconds between scheduled pulls.
    pub interval_s: u64,
    /// Per-integration client id.
    pub client_id: Option<String>,
    /// Per-integration client secret.
    pub client_secret: Option<Secret>,
}

/// Which grant produced a token set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantFlow {
    /// Authorization code (+ PKCE): has a refresh token.
    AuthorizationCode,
    /// Client credentials: no refresh token; a new grant replaces an old token.
    ClientCredentials,
}

impl GrantFlow {
    fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization-code",
            Self::ClientCredentials => "client-credentials",
        }
    }
    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "authorization-code" => Ok(Self::AuthorizationCode),
            "client-credentials" => Ok(Self::ClientCredentials),
            other => Err(StoreError::Corrupt(format!("grant flow {other:?}"))),
        }
    }
}

/// An integration's tokens and grant, opened.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The grant that produced them.
    pub flow: GrantFlow,
    /// The access token.
    pub access: Secret,
    /// The refresh token, if any.
    pub refresh: Option<Secret>,
    /// Where refreshes go.
    pub token_url: String,
    /// Salesforce's `instance_url`.
    pub instance_url: String,
    /// Salesforce's `id` (identity URL).
    pub identity_url: Option<String>,
    /// Salesforce's `issued_at`.
    pub issued_at_ms: Option<i64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When this host received the access token.
    pub obtained_at_ms: i64,
    /// Bumped by every new access token; lets concurrent refreshers see a replacement.
    pub generation: i64,
}

/// The health of an integration's refresh token, as the last check found it.
#[derive(Debug, Clone, Serialize)]
pub struct TokenHealth {
    /// `ok`, `dead`, `unchecked` or `unreachable`.
    pub health: String,
    /// When it was last checked.
    pub checked_at_ms: Option<i64>,
    /// When the current access token was obtained.
    pub obtained_at_ms: i64,
}

/// A pending authorization: what the OAuth callback needs to finish it.
#[derive(Debug)]
pub struct PendingAuth {
    /// The integration being authorized.
    pub integration_id: String,
    /// The PKCE verifier.
    pub verifier: Secret,
    /// The redirect URI used in the authorize request.
    pub redirect_uri: String,
    /// The token endpoint of the plan the flow started with (None for a flow started by an
    /// older version, which cannot be finished).
    pub token_url: Option<String>,
    /// When the flow started.
    pub created_at_ms: i64,
}

/// One run, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Its id.
    pub id: String,
    /// The integration.
    pub integration_id: String,
    /// `cli`, `schedule`, `api`, `demo`.
    pub trigger: String,
    /// Whether checkpoints were reset first.
    pub full: bool,
    /// The plugin version that served it (label).
    pub plugin_version: String,
    /// Start (ms).
    pub started_at_ms: i64,
    /// End (ms), if finished.
    pub ended_at_ms: Option<i64>,
    /// `running`, `succeeded`, `partial`, `failed`, `interrupted`.
    pub status: String,
    /// Records committed.
    pub records: i64,
    /// Provider API calls used.
    pub api_calls: i64,
    /// Per-stream status.
    pub streams: serde_json::Value,
    /// The failure, if any.
    pub error: Option<String>,
}

/// One committed page of a run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunPage {
    /// Its place in the run, from 1.
    pub seq: u32,
    /// The stream.
    pub stream: String,
    /// Rows in the page.
    pub rows: u64,
    /// The number of the plugin version that served it.
    pub plugin_version: u32,
    /// When it committed (ms).
    pub committed_at_ms: i64,
}

/// One stored record.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRecord {
    /// The stream.
    pub stream: String,
    /// The record's key.
    pub key: String,
    /// How many times it was written.
    pub version: i64,
    /// Whether it is a delete tombstone.
    pub deleted: bool,
    /// Its cursor value.
    pub cursor: String,
    /// Its JSON.
    pub json: Vec<u8>,
}

/// Per-stream counts of stored records.
#[derive(Debug, Clone, Serialize)]
pub struct StreamCount {
    /// The stream.
    pub stream: String,
    /// Live records.
    pub live: i64,
    /// Tombstones.
    pub deleted: i64,
}

/// The database.
pub struct Store {
    conn: Mutex<Connection>,
    /// [`Store::commit_page`]'s own connection. A page commit holds its connection for
    /// 10 ms or more; on the shared one it would queue every other caller behind it, among
    /// them the token lookup of the connector's request for the next page, which the runner
    /// pulls while this page commits. In WAL mode readers on `conn` meanwhile see the last
    /// committed state; another writer waits for SQLite's write lock (`busy_timeout`).
    pages: Mutex<Connection>,
    cipher: Cipher,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn ctx_client_secret(id: &str) -> String {
    format!("client-secret/{id}")
}
fn ctx_access(id: &str) -> String {
    format!("access-token/{id}")
}
fn ctx_refresh(id: &str) -> String {
    format!("refresh-token/{id}")
}
fn ctx_verifier(state: &str) -> String {
    format!("pkce-verifier/{state}")
}

impl Store {
    /// Opens (creating when needed) the data directory, its key and its database.
    pub fn open_dir(data_dir: &Path) -> Result<Self, StoreError> {
        let dir_err = |e: std::io::Error| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            detail: e.to_string(),
        };
        crate::private_fs::create_private_dir(data_dir).map_err(dir_err)?;
        // Probe writability up front: a read-only directory must fail before anything else.
        // A name of its own: concurrent opens must not remove each other's probe.
        let probe = data_dir.join(format!(".write-probe-{}", crate::secrets::random_token(6)));
        std::fs::write(&probe, b"").map_err(dir_err)?;
        let _ = std::fs::remove_file(&probe);
        let cipher = Cipher::load_or_create(data_dir)?;
        Self::open(&data_dir.join(DB_FILE), cipher)
    }

    /// Opens the database at `path` with `cipher`, applying pending migrations.
    pub fn open(path: &Path, cipher: Cipher) -> Result<Self, StoreError> {
        make_private(path)?;
        let conn = retry_busy(|| {
            let mut conn = connect(path)?;
            migrate(&mut conn)?;
            Ok(conn)
        })?;
        let pages = retry_busy(|| connect(path))?;
        Ok(Self {
            conn: Mutex::new(conn),
            pages: Mutex::new(pages),
            cipher,
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cipher sealing this store's secrets.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    // ---- integrations ----

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
        let conn = self.conn();
        conn.execute(
            "INSERT INTO integrations (id, seq, name, plugin, settings_json, interval_s, client_id,
                 client_secret, state, state_reason, created_at_ms, updated_at_ms)
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM integrations), ?2, ?3, ?4, ?5, ?6,
                 ?7, ?8, NULL, ?9, ?9)",
            params![
                id,
                new.name,
                new.plugin,
                settings,
                new.interval_s as i64,
                new.client_id,
                secret,
                IntegrationState::PendingAuthorization.as_str(),
                now
            ],
        )?;
        drop(conn);
        self.integration(&id)
    }

    /// The integration `id`.
    pub fn integration(&self, id: &str) -> Result<Integration, StoreError> {
        self.conn()
            .query_row(
                &format!("{SELECT_INTEGRATION} WHERE id = ?1"),
                [id],
                row_to_integration,
            )
            .optional()?
            .ok_or_else(|| StoreError::UnknownIntegration(id.to_string()))?
    }

    /// Every integration, newest first.
    pub fn integrations(&self) -> Result<Vec<Integration>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("{SELECT_INTEGRATION} ORDER BY seq DESC"))?;
        let rows = stmt.query_map([], row_to_integration)?;
        rows.map(|r| r?).collect()
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
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE integrations SET name = ?2, settings_json = ?3, interval_s = ?4,
                 client_id = ?5, updated_at_ms = ?6 WHERE id = ?1",
            params![id, name, settings, interval_s as i64, client_id, now_ms()],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownIntegration(id.to_string()));
        }
        if let Some(secret) = client_secret {
            let sealed = secret.map(|s| self.cipher.seal_secret(&ctx_client_secret(id), s));
            conn.execute(
                "UPDATE integrations SET client_secret = ?2 WHERE id = ?1",
                params![id, sealed],
            )?;
        }
        drop(conn);
        self.integration(id)
    }

    /// Deletes an integration with everything it owns (tokens, records, checkpoints, runs).
    pub fn delete_integration(&self, id: &str) -> Result<(), StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM integrations WHERE id = ?1", [id])?;
        if n == 0 {
            return Err(StoreError::UnknownIntegration(id.to_string()));
        }
        Ok(())
    }

    /// The per-integration client secret, opened.
    pub fn client_secret(&self, id: &str) -> Result<Option<Secret>, StoreError> {
        let sealed: Option<Vec<u8>> = self
            .conn()
            .query_row(
                "SELECT client_secret FROM integrations WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::UnknownIntegration(id.to_string()))?;
        sealed
            .map(|s| self.cipher.open_secret(&ctx_client_secret(id), &s))
            .transpose()
            .map_err(Into::into)
    }

    /// Sets an integration's state and the reason for it.
    pub fn set_state(
        &self,
        id: &str,
        state: IntegrationState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE integrations SET state = ?2, state_reason = ?3, updated_at_ms = ?4 WHERE id = ?1",
            params![id, state.as_str(), reason, now_ms()],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownIntegration(id.to_string()));
        }
        Ok(())
    }

    // ---- tokens ----

    /// Stores a fresh grant (connect, re-generate) and marks the integration active, in one
    /// transaction.
    pub fn put_grant(&self, id: &str, tokens: &TokenSet) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO tokens (integration_id, flow, access_token, refresh_token, token_url,
                 instance_url, identity_url, issued_at_ms, scopes, obtained_at_ms, generation,
                 health, health_checked_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1, 'ok', ?10)
             ON CONFLICT(integration_id) DO UPDATE SET flow = excluded.flow,
                 access_token = excluded.access_token, refresh_token = excluded.refresh_token,
                 token_url = excluded.token_url, instance_url = excluded.instance_url,
                 identity_url = excluded.identity_url, issued_at_ms = excluded.issued_at_ms,
                 scopes = excluded.scopes, obtained_at_ms = excluded.obtained_at_ms,
                 generation = tokens.generation + 1, health = 'ok',
                 health_checked_ms = excluded.obtained_at_ms",
            params![
                id,
                tokens.flow.as_str(),
                self.cipher.seal_secret(&ctx_access(id), &tokens.access),
                tokens
                    .refresh
                    .as_ref()
                    .map(|r| self.cipher.seal_secret(&ctx_refresh(id), r)),
                tokens.token_url,
                tokens.instance_url,
                tokens.identity_url,
                tokens.issued_at_ms,
                tokens.scopes.join(" "),
                tokens.obtained_at_ms,
            ],
        )?;
        let n = tx.execute(
            "UPDATE integrations SET state = 'active', state_reason = NULL, updated_at_ms = ?2
             WHERE id = ?1",
            params![id, now_ms()],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownIntegration(id.to_string()));
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores the result of a refresh: the new access token and, when the provider rotated
    /// it, the new refresh token, in one statement — so a rotated refresh token is durable
    /// before the access token that came with it is handed to anyone.
    pub fn put_refreshed(
        &self,
        id: &str,
        access: &Secret,
        rotated_refresh: Option<&Secret>,
        instance_url: Option<&str>,
        issued_at_ms: Option<i64>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let conn = self.conn();
        let generation: Option<i64> = conn
            .query_row(
                "UPDATE tokens SET access_token = ?2,
                     refresh_token = COALESCE(?3, refresh_token),
                     instance_url = COALESCE(?4, instance_url),
                     issued_at_ms = ?5, obtained_at_ms = ?6, generation = generation + 1,
                     health = 'ok', health_checked_ms = ?6
                 WHERE integration_id = ?1 RETURNING generation",
                params![
                    id,
                    self.cipher.seal_secret(&ctx_access(id), access),
                    rotated_refresh.map(|r| self.cipher.seal_secret(&ctx_refresh(id), r)),
                    instance_url,
                    issued_at_ms,
                    now
                ],
                |r| r.get(0),
            )
            .optional()?;
        generation.ok_or_else(|| StoreError::UnknownIntegration(id.to_string()))
    }

    /// The integration's tokens, opened; `None` before the first connect.
    pub fn tokens(&self, id: &str) -> Result<Option<TokenSet>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT flow, access_token, refresh_token, token_url, instance_url, identity_url,
                     issued_at_ms, scopes, obtained_at_ms, generation
                 FROM tokens WHERE integration_id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, i64>(8)?,
                        r.get::<_, i64>(9)?,
                    ))
                },
            )
            .optional()?;
        let Some((
            flow,
            access,
            refresh,
            token_url,
            instance_url,
            identity_url,
            issued,
            scopes,
            obtained,
            generation,
        )) = row
        else {
            return Ok(None);
        };
        Ok(Some(TokenSet {
            flow: GrantFlow::parse(&flow)?,
            access: self.cipher.open_secret(&ctx_access(id), &access)?,
            refresh: refresh
                .map(|r| self.cipher.open_secret(&ctx_refresh(id), &r))
                .transpose()?,
            token_url,
            instance_url,
            identity_url,
            issued_at_ms: issued,
            scopes: scopes.split_whitespace().map(String::from).collect(),
            obtained_at_ms: obtained,
            generation,
        }))
    }

    /// Records the outcome of a token health check.
    pub fn set_token_health(&self, id: &str, health: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE tokens SET health = ?2, health_checked_ms = ?3 WHERE integration_id = ?1",
            params![id, health, now_ms()],
        )?;
        Ok(())
    }

    /// The token health of an integration; `None` before the first connect.
    pub fn token_health(&self, id: &str) -> Result<Option<TokenHealth>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT COALESCE(health, 'unchecked'), health_checked_ms, obtained_at_ms
                 FROM tokens WHERE integration_id = ?1",
                [id],
                |r| {
                    Ok(TokenHealth {
                        health: r.get(0)?,
                        checked_at_ms: r.get(1)?,
                        obtained_at_ms: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    // ---- OAuth states ----

    /// Remembers a pending authorization under its `state`.
    pub fn put_oauth_state(
        &self,
        state: &str,
        integration_id: &str,
        verifier: &Secret,
        redirect_uri: &str,
        token_url: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO oauth_states (state, integration_id, verifier, redirect_uri, created_at_ms,
                 token_url)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                state,
                integration_id,
                self.cipher.seal_secret(&ctx_verifier(state), verifier),
                redirect_uri,
                now_ms(),
                token_url
            ],
        )?;
        Ok(())
    }

    /// Takes (and deletes: a state is single-use) the pending authorization of `state`.
    /// States older than `max_age` are deleted and not returned.
    pub fn take_oauth_state(
        &self,
        state: &str,
        max_age: Duration,
    ) -> Result<Option<PendingAuth>, StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM oauth_states WHERE created_at_ms < ?1",
            [now_ms() - max_age.as_millis() as i64],
        )?;
        let row = conn
            .query_row(
                "DELETE FROM oauth_states WHERE state = ?1
                 RETURNING integration_id, verifier, redirect_uri, created_at_ms, token_url",
                [state],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()?;
        drop(conn);
        let Some((integration_id, verifier, redirect_uri, created_at_ms, token_url)) = row else {
            return Ok(None);
        };
        Ok(Some(PendingAuth {
            integration_id,
            verifier: self.cipher.open_secret(&ctx_verifier(state), &verifier)?,
            redirect_uri,
            token_url,
            created_at_ms,
        }))
    }

    // ---- checkpoints, pages, records ----

    /// The committed checkpoint of a stream.
    pub fn checkpoint(&self, id: &str, stream: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT checkpoint FROM checkpoints WHERE integration_id = ?1 AND stream = ?2",
                [id, stream],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Every stream's checkpoint and status.
    pub fn checkpoints(
        &self,
        id: &str,
    ) -> Result<Vec<(String, Option<String>, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT stream, checkpoint, status FROM checkpoints WHERE integration_id = ?1
             ORDER BY stream",
        )?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets every checkpoint of an integration (a full pull); records are kept.
    pub fn clear_checkpoints(&self, id: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM checkpoints WHERE integration_id = ?1", [id])?;
        Ok(())
    }

    /// Commits one page: its rows (latest version per key, tombstones for deletes), the
    /// stream's new checkpoint and status, and the run's counters, in ONE transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_page(
        &self,
        id: &str,
        stream: &str,
        run_id: &str,
        rows: &[Row],
        checkpoint: Option<&str>,
        status: &str,
        api_calls: u32,
    ) -> Result<(), StoreError> {
        self.commit_page_inner(
            id, stream, run_id, rows, checkpoint, status, api_calls, None,
        )
    }

    /// [`Store::commit_page`], recording in the same transaction that `plugin_version`
    /// served the page (see [`Store::run_pages`]).
    #[allow(clippy::too_many_arguments)]
    pub fn commit_page_served_by(
        &self,
        id: &str,
        stream: &str,
        run_id: &str,
        rows: &[Row],
        checkpoint: Option<&str>,
        status: &str,
        api_calls: u32,
        plugin_version: u32,
    ) -> Result<(), StoreError> {
        self.commit_page_inner(
            id,
            stream,
            run_id,
            rows,
            checkpoint,
            status,
            api_calls,
            Some(plugin_version),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_page_inner(
        &self,
        id: &str,
        stream: &str,
        run_id: &str,
        rows: &[Row],
        checkpoint: Option<&str>,
        status: &str,
        api_calls: u32,
        plugin_version: Option<u32>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut conn = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        // IMMEDIATE: take the write lock up front (waiting on `busy_timeout` if another
        // connection holds it) rather than upgrading a read snapshot halfway.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO records (integration_id, stream, key, version, deleted, cursor, json,
                     run_id, updated_at_ms)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(integration_id, stream, key) DO UPDATE SET
                     version = records.version + 1, deleted = excluded.deleted,
                     cursor = excluded.cursor, json = excluded.json, run_id = excluded.run_id,
                     updated_at_ms = excluded.updated_at_ms",
            )?;
            // In row order: a page may upsert a record and merge into it after.
            for row in rows {
                let deleted = match row.op {
                    Operation::Upsert => false,
                    Operation::Delete => true,
                    Operation::Merge => {
                        merge_row(&tx, id, stream, run_id, row, now)?;
                        continue;
                    }
                };
                upsert.execute(params![
                    id, stream, row.key, deleted, row.cursor, row.json, run_id, now
                ])?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO checkpoints (integration_id, stream, checkpoint, status, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(integration_id, stream) DO UPDATE SET checkpoint = excluded.checkpoint,
                 status = excluded.status, updated_at_ms = excluded.updated_at_ms",
        )?
        .execute(params![id, stream, checkpoint, status, now])?;
        tx.prepare_cached(
            "UPDATE runs SET records = records + ?2, api_calls = api_calls + ?3 WHERE id = ?1",
        )?
        .execute(params![run_id, rows.len() as i64, api_calls])?;
        if let Some(version) = plugin_version {
            tx.prepare_cached(
                "INSERT INTO run_pages (run_id, seq, stream, rows, plugin_version, committed_at_ms)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM run_pages WHERE run_id = ?1),
                     ?2, ?3, ?4, ?5)",
            )?
            .execute(params![run_id, stream, rows.len() as i64, version, now])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Calls `f` for every stored record of an integration (optionally one stream), in
    /// (stream, key) order. Tombstones are included only when `with_deleted`.
    pub fn for_each_record(
        &self,
        id: &str,
        stream: Option<&str>,
        with_deleted: bool,
        mut f: impl FnMut(StoredRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT stream, key, version, deleted, cursor, json FROM records
             WHERE integration_id = ?1 AND (?2 IS NULL OR stream = ?2) AND (?3 OR deleted = 0)
             ORDER BY stream, key",
        )?;
        let mut rows = stmt.query(params![id, stream, with_deleted])?;
        while let Some(r) = rows.next()? {
            f(StoredRecord {
                stream: r.get(0)?,
                key: r.get(1)?,
                version: r.get(2)?,
                deleted: r.get(3)?,
                cursor: r.get(4)?,
                json: r.get(5)?,
            })?;
        }
        Ok(())
    }

    /// At most `limit` stored records of an integration (optionally one stream) after the
    /// `(stream, key)` position `after`, in (stream, key) order: one bounded read of the
    /// primary key index, so a small page never scans the table while holding the connection.
    /// Tombstones are included only when `with_deleted`.
    pub fn records_page(
        &self,
        id: &str,
        stream: Option<&str>,
        with_deleted: bool,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let (after_stream, after_key) = after.unzip();
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT stream, key, version, deleted, cursor, json FROM records
             WHERE integration_id = ?1 AND (?2 IS NULL OR stream = ?2) AND (?3 OR deleted = 0)
               AND (?4 IS NULL OR (stream, key) > (?4, ?5))
             ORDER BY stream, key LIMIT ?6",
        )?;
        let rows = stmt.query_map(
            params![
                id,
                stream,
                with_deleted,
                after_stream,
                after_key,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok(StoredRecord {
                    stream: r.get(0)?,
                    key: r.get(1)?,
                    version: r.get(2)?,
                    deleted: r.get(3)?,
                    cursor: r.get(4)?,
                    json: r.get(5)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Live keys of one stream, ascending, greater than `after`, at most `limit`.
    pub fn live_keys_after(
        &self,
        id: &str,
        stream: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key FROM records
             WHERE integration_id = ?1 AND stream = ?2 AND key > ?3 AND deleted = 0
             ORDER BY key LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![id, stream, after.unwrap_or(""), limit as i64],
            |r| r.get(0),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored keys of integration `id`, as the engine answers them to its connector.
    pub fn keys_of(self: &Arc<Self>, id: &str) -> Arc<dyn crate::engine::KeySource> {
        Arc::new(IntegrationKeys {
            store: self.clone(),
            integration: id.to_string(),
        })
    }

    /// Live and deleted record counts per stream.
    pub fn record_counts(&self, id: &str) -> Result<Vec<StreamCount>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT stream, SUM(deleted = 0), SUM(deleted = 1) FROM records
             WHERE integration_id = ?1 GROUP BY stream ORDER BY stream",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(StreamCount {
                stream: r.get(0)?,
                live: r.get(1)?,
                deleted: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- runs ----

    /// Records the start of a run and returns its id.
    pub fn start_run(
        &self,
        id: &str,
        trigger: &str,
        full: bool,
        plugin_version: &str,
    ) -> Result<String, StoreError> {
        let run_id = new_id("run");
        self.conn().execute(
            "INSERT INTO runs (id, integration_id, trigger, full, plugin_version, started_at_ms,
                 status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
            params![run_id, id, trigger, full, plugin_version, now_ms()],
        )?;
        Ok(run_id)
    }

    /// Records the end of a run.
    pub fn finish_run(
        &self,
        run_id: &str,
        status: &str,
        streams: &serde_json::Value,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE runs SET ended_at_ms = ?2, status = ?3, streams_json = ?4, error = ?5
             WHERE id = ?1",
            params![run_id, now_ms(), status, streams.to_string(), error],
        )?;
        Ok(())
    }

    /// Marks runs left `running` by a crashed process as `interrupted`. Call it only while
    /// holding the integration's run claim, so that no run of it is going on.
    pub fn close_orphan_runs(&self, id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE runs SET status = 'interrupted', ended_at_ms = COALESCE(ended_at_ms, ?2),
                 error = COALESCE(error, 'the process running it ended before the run finished')
             WHERE integration_id = ?1 AND status = 'running'",
            params![id, now_ms()],
        )?;
        Ok(())
    }

    /// The latest runs of an integration, newest first.
    pub fn runs(&self, id: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, integration_id, trigger, full, plugin_version, started_at_ms, ended_at_ms,
                 status, records, api_calls, streams_json, error
             FROM runs WHERE integration_id = ?1 ORDER BY started_at_ms DESC, rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![id, limit as i64], |r| {
            let streams: String = r.get(10)?;
            Ok(RunRecord {
                id: r.get(0)?,
                integration_id: r.get(1)?,
                trigger: r.get(2)?,
                full: r.get(3)?,
                plugin_version: r.get(4)?,
                started_at_ms: r.get(5)?,
                ended_at_ms: r.get(6)?,
                status: r.get(7)?,
                records: r.get(8)?,
                api_calls: r.get(9)?,
                streams: serde_json::from_str(&streams).unwrap_or(serde_json::Value::Null),
                error: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The committed pages of a run, in order, with the plugin version that served each.
    pub fn run_pages(&self, run_id: &str) -> Result<Vec<RunPage>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, stream, rows, plugin_version, committed_at_ms FROM run_pages
             WHERE run_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok(RunPage {
                seq: r.get(0)?,
                stream: r.get(1)?,
                rows: r.get(2)?,
                plugin_version: r.get(3)?,
                committed_at_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- plugin versions (the engine's VersionStore) ----

    fn add_version_row(
        &self,
        new: &crate::engine::registry::NewVersion<'_>,
    ) -> Result<crate::engine::registry::AddedVersion, StoreError> {
        use crate::engine::registry::AddedVersion;
        let mut conn = self.conn();
        // IMMEDIATE: the number is read and taken under the write lock, so two processes
        // installing at once get two numbers.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<u32> = tx
            .query_row(
                "SELECT version FROM plugin_versions WHERE name = ?1 AND sha256 = ?2",
                params![new.name, new.sha256],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(version) = existing {
            return Ok(AddedVersion {
                version,
                existing: true,
            });
        }
        let version: u32 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM plugin_versions WHERE name = ?1",
            [new.name],
            |r| r.get(0),
        )?;
        // A plain INSERT: a number already taken fails here rather than dropping these bytes.
        tx.execute(
            "INSERT INTO plugin_versions (name, version, sha256, contract,
                 installed_at_ms, active_since_ms, wasm, manifest_json)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7)",
            params![
                new.name,
                version,
                new.sha256,
                new.contract,
                to_ms(new.installed_at),
                new.wasm,
                manifest_of(new.wasm)?.to_json()
            ],
        )?;
        tx.commit()?;
        Ok(AddedVersion {
            version,
            existing: false,
        })
    }

    /// The manifest of the active version of plugin `name`, as approved at its install; the
    /// empty manifest (nothing reachable) when no version is active.
    pub fn active_manifest(&self, name: &str) -> Result<Manifest, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT manifest_json, wasm FROM plugin_versions
                 WHERE name = ?1 AND active_since_ms IS NOT NULL",
                [name],
                |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?;
        match row {
            None => Ok(Manifest::default()),
            Some((Some(json), _)) => Manifest::from_json(json.as_bytes())
                .map_err(|e| StoreError::Corrupt(format!("stored plugin manifest: {e}"))),
            // Stored before manifests were recorded: the bytes still carry it.
            Some((None, wasm)) => manifest_of(&wasm),
        }
    }

    fn set_active_row(
        &self,
        name: &str,
        version: u32,
        since: SystemTime,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE plugin_versions SET active_since_ms = NULL WHERE name = ?1",
            [name],
        )?;
        tx.execute(
            "UPDATE plugin_versions SET active_since_ms = ?3 WHERE name = ?1 AND version = ?2",
            params![name, version, to_ms(since)],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn version_rows(&self) -> Result<Vec<crate::engine::registry::StoredVersion>, StoreError> {
        use crate::engine::registry::{StoredVersion, VersionRecord};
        let conn = self.conn();
        // Without the bytes: this runs before every page of every run.
        let mut stmt = conn.prepare_cached(
            "SELECT name, version, sha256, contract, installed_at_ms, active_since_ms
             FROM plugin_versions ORDER BY name, version",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredVersion {
                record: VersionRecord {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    sha256: r.get(2)?,
                    contract: r.get(3)?,
                    installed_at: from_ms(r.get(4)?),
                },
                active_since: r.get::<_, Option<i64>>(5)?.map(from_ms),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn version_wasm(&self, name: &str, version: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT wasm FROM plugin_versions WHERE name = ?1 AND version = ?2",
                params![name, version],
                |r| r.get(0),
            )
            .optional()?)
    }
}

impl crate::engine::registry::VersionStore for Store {
    fn add_version(
        &self,
        new: &crate::engine::registry::NewVersion<'_>,
    ) -> Result<crate::engine::registry::AddedVersion, crate::engine::registry::StoreError> {
        self.add_version_row(new)
            .map_err(|e| crate::engine::registry::StoreError(e.to_string()))
    }

    fn set_active(
        &self,
        name: &str,
        version: u32,
        since: SystemTime,
    ) -> Result<(), crate::engine::registry::StoreError> {
        self.set_active_row(name, version, since)
            .map_err(|e| crate::engine::registry::StoreError(e.to_string()))
    }

    fn versions(
        &self,
    ) -> Result<Vec<crate::engine::registry::StoredVersion>, crate::engine::registry::StoreError>
    {
        self.version_rows()
            .map_err(|e| crate::engine::registry::StoreError(e.to_string()))
    }

    fn wasm(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<Vec<u8>>, crate::engine::registry::StoreError> {
        self.version_wasm(name, version)
            .map_err(|e| crate::engine::registry::StoreError(e.to_string()))
    }
}

const SELECT_INTEGRATION: &str = "SELECT id, name, plugin, settings_json, interval_s, client_id,
    client_secret IS NOT NULL, state, state_reason, created_at_ms, updated_at_ms FROM integrations";

/// Applies one merge row inside a page's transaction (see [`merge`]).
fn merge_row(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    stream: &str,
    run_id: &str,
    row: &Row,
    now: i64,
) -> Result<(), StoreError> {
    let patch = merge::fields(&row.json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let stored: Option<Vec<u8>> = tx
        .prepare_cached(
            "SELECT json FROM records
             WHERE integration_id = ?1 AND stream = ?2 AND key = ?3 AND deleted = 0",
        )?
        .query_row(params![id, stream, row.key], |r| r.get(0))
        .optional()?;
    let Some(stored) = stored else {
        return Ok(());
    };
    match merge::apply(&stored, &patch) {
        merge::Merged::Changed(json) => {
            tx.prepare_cached(
                "UPDATE records SET version = version + 1, json = ?4, run_id = ?5,
                     updated_at_ms = ?6
                 WHERE integration_id = ?1 AND stream = ?2 AND key = ?3",
            )?
            .execute(params![id, stream, row.key, json, run_id, now])?;
        }
        merge::Merged::Unchanged => {}
        merge::Merged::NotAnObject => {
            tracing::warn!(integration = id, stream, key = %row.key, "a merge row was left alone: the stored record is not a JSON object");
        }
    }
    Ok(())
}

fn row_to_integration(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Integration, StoreError>> {
    let settings: String = r.get(3)?;
    let state: String = r.get(7)?;
    let build = || -> Result<Integration, StoreError> {
        Ok(Integration {
            id: r.get(0)?,
            name: r.get(1)?,
            plugin: r.get(2)?,
            settings: serde_json::from_str(&settings)
                .map_err(|e| StoreError::Corrupt(format!("settings: {e}")))?,
            interval_s: r.get::<_, i64>(4)? as u64,
            client_id: r.get(5)?,
            has_client_secret: r.get(6)?,
            state: IntegrationState::parse(&state)?,
            state_reason: r.get(8)?,
            created_at_ms: r.get(9)?,
            updated_at_ms: r.get(10)?,
        })
    };
    Ok(build())
}

/// A connection to the database at `path`, set up as every connection of a [`Store`] is.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    // First: switching a new database to WAL takes a lock that a concurrent first open may
    // hold for a moment.
    conn.busy_timeout(Duration::from_secs(10))?;
    // Before WAL and before the first table: only a new database takes a page size (an
    // existing one keeps its own; both work). Record JSON is ~1 KB; with 4 KiB pages a
    // WITHOUT ROWID row keeps at most ~1 KB in the B-tree and spills the rest to an
    // overflow page of its own, so half the rows cost 5 KiB or more. 16 KiB pages keep
    // rows up to ~4 KB inline: the records table is 2.2x smaller and a page commit writes
    // 2-3x less (measured on the bench dataset).
    conn.pragma_update(None, "page_size", DB_PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Durability rule. WAL with synchronous=NORMAL does not fsync at each commit, only at
    // checkpoints. A process crash (kill -9, panic) loses nothing: a committed
    // transaction is in the WAL file, which the OS keeps. A power loss or OS crash may
    // drop the last few commits, but never corrupts the database and never splits a
    // transaction. That is safe because of [`Store::commit_page`]'s rule: a page's
    // records and its checkpoint are one transaction, so whatever survives is a
    // consistent prefix of the run, the stored checkpoint names exactly the pages that
    // survived, and the next run resumes from it. Pages lost with the last commits are
    // pulled again (nothing lost); none is applied twice (nothing duplicated).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(conn)
}

/// Runs `open` again while SQLite answers busy, a bounded number of times. Some of the
/// locks a new database's first opens take (switching it to WAL needs an exclusive lock
/// while holding a shared one) are refused at once rather than waited for by the busy
/// handler, so several processes opening one new data directory can see `SQLITE_BUSY`;
/// opening and migrating are idempotent, so starting over is safe.
fn retry_busy<T>(mut open: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    const ATTEMPTS: u32 = 50;
    let mut attempt = 1;
    loop {
        match open() {
            Err(StoreError::Db(e))
                if attempt < ATTEMPTS
                    && e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) =>
            {
                std::thread::sleep(Duration::from_millis(10 * u64::from(attempt.min(20))));
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let known = migrations::MIGRATIONS.len() as i64;
    loop {
        // IMMEDIATE, and the version read inside: of several processes opening a new data
        // directory at once, one applies each migration and the others see it applied.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if current > known {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {current}, newer than this sluice ({known}); \
                 upgrade sluice"
            )));
        }
        let Some(sql) = migrations::MIGRATIONS.get(current as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
        tracing::info!(version = current + 1, "applied database migration");
    }
}

/// A new random id with a readable prefix, e.g. `int_3q9...`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", crate::secrets::random_token(9))
}

/// Creates `dir` (and parents), private to the user where the platform allows.
/// Creates the database file 0600 before SQLite opens it, and tightens an existing one with
/// its WAL and shared-memory files: SQLite gives those the database file's mode.
fn make_private(db: &Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::DataDir {
        path: db.to_path_buf(),
        detail: e.to_string(),
    };
    crate::private_fs::open_private_file(db).map_err(io)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = db.as_os_str().to_owned();
        side.push(suffix);
        crate::private_fs::tighten(Path::new(&side), 0o600).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// One integration's stored keys, for the `stored-keys` host import.
struct IntegrationKeys {
    store: Arc<Store>,
    integration: String,
}

impl crate::engine::KeySource for IntegrationKeys {
    fn live_keys_after(
        &self,
        stream: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, String> {
        self.store
            .live_keys_after(&self.integration, stream, after, limit)
            .map_err(|e| e.to_string())
    }
}

fn manifest_of(wasm: &[u8]) -> Result<Manifest, StoreError> {
    Manifest::of_component(wasm)
        .map_err(|e| StoreError::Corrupt(format!("stored plugin manifest: {e}")))
}
