//! Durable state: one SQLite database (WAL mode) under the data directory, the embedded
//! default, or one PostgreSQL database that several hosts share (`pg`).
//!
//! It holds integrations, their sealed tokens and client secrets, pending OAuth states,
//! checkpoints, runs, connector versions and records. Records are kept by (integration, stream,
//! key) as the latest version, with delete tombstones.
//!
//! Crash safety rests on one rule: [`Store::commit_page`] writes a page's records, its
//! checkpoint and the run's counters in one transaction. A crash before the commit leaves the
//! previous checkpoint, so the page is read again; a crash after it leaves the new one, so it
//! is not. Either way nothing is lost and nothing is applied twice.
//!
//! One module per table group: `integrations`, `tokens`, `oauth_states`, `records` (records,
//! checkpoints, page commits), `feed` (the change feed over the records), `runs`, `versions`
//! (connector versions) and `webhooks` (endpoints and the events' outbox); the states kept as
//! text are in `states`. Each method has a SQLite arm and a PostgreSQL arm (`match &self.db`);
//! `pg` connects to PostgreSQL and migrates it, `leases` and `refresh_lock` are what hosts
//! sharing PostgreSQL coordinate with. This module opens the database and migrates it.

mod entered;
mod feed;
mod integrations;
mod leases;
pub mod merge;
pub mod migrations;
mod oauth_states;
mod page_changes;
pub mod pg;
mod records;
mod refresh_lock;
mod runs;
mod states;
mod tokens;
mod versions;
mod webhooks;

pub use entered::EnteredCredentials;
pub use feed::{BadCursor, Change, DEFAULT_TOMBSTONE_RETENTION, FeedCursor, FeedPage};
pub use integrations::{Integration, IntegrationSettings, NewIntegration};
pub use leases::{Lease, LeaseError, LeaseLoss, NextDue};
pub use oauth_states::PendingAuth;
pub use records::{RecordsSnapshot, StoredRecord, StreamCount};
pub use refresh_lock::RefreshLock;
pub use runs::{RunPage, RunRecord};
pub use states::{
    CheckpointState, CredentialKind, DeliveryState, EnteredKind, IntegrationState, RunState,
    TokenHealthState, WebhookEventType,
};
pub use tokens::{GrantFlow, RefreshStored, TokenHealth, TokenSet};
pub use webhooks::{
    AttemptResult, DEFAULT_WEBHOOK_RETENTION, DueDelivery, WebhookDelivery, WebhookEndpoint,
    WebhookEvent,
};

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
    /// PostgreSQL failed. The message carries the error's causes (a TLS handshake's names
    /// the certificate problem), which tokio-postgres keeps out of its own message.
    #[error("database: {}", crate::error_text::with_causes(.0))]
    Pg(tokio_postgres::Error),
    /// The PostgreSQL URL given cannot be used.
    #[error("database URL: {0}")]
    BadDatabaseUrl(String),
    /// The PostgreSQL URL asks for an `sslmode` this host does not offer.
    #[error("database URL: {0}")]
    UnsupportedSslMode(String),
    /// This operation exists only for hosts sharing a PostgreSQL store.
    #[error("{0} needs a PostgreSQL store (--database postgres://…); a SQLite store is one host's")]
    OnlyOnPostgres(&'static str),
    /// A page commit's run no longer holds its integration's lease: another host may run it
    /// now, so the page was not written.
    #[error(
        "run {run} of integration {integration} lost its lease (expired or taken over by \
         another host); the page was not written and the run stops"
    )]
    LeaseLost {
        /// The integration.
        integration: String,
        /// The run that lost it.
        run: String,
    },
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
    /// No webhook endpoint has this id.
    #[error("no webhook endpoint with id {0}")]
    UnknownWebhook(String),
    /// A stored value is corrupt.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A feed cursor is older than the newest delete tombstone pruned after its retention:
    /// following the feed from it would miss deletes.
    #[error(
        "resync required: cursor {cursor} is older than the tombstone retention (deletes up to \
         {pruned_through} were pruned); take a snapshot (the records with their snapshot \
         cursor, or the changes from cursor 0) and follow the feed from that snapshot's cursor"
    )]
    ResyncRequired {
        /// The cursor given.
        cursor: i64,
        /// The newest sequence number of a pruned tombstone.
        pruned_through: i64,
    },
    /// A feed cursor is past the integration's latest change: it was not handed out by this
    /// integration's feed.
    #[error(
        "cursor {cursor} is ahead of the change feed of integration {integration} (its latest \
         change is {head}); use a cursor this integration's feed gave, or 0"
    )]
    CursorAhead {
        /// The integration.
        integration: String,
        /// The cursor given.
        cursor: i64,
        /// The feed's latest sequence number.
        head: i64,
    },
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Pg(e)
    }
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

/// The database.
pub struct Store {
    db: Db,
    cipher: Cipher,
}

/// Which database a [`Store`] keeps its state in.
enum Db {
    /// One SQLite file: the embedded default.
    Sqlite(Sqlite),
    /// One PostgreSQL database, shared by several hosts.
    Postgres(pg::Pg),
}

/// A SQLite database file and the store's two connections to it.
struct Sqlite {
    conn: Mutex<Connection>,
    /// [`Store::commit_page`]'s own connection. A page commit holds its connection for
    /// 10 ms or more; on the shared one it would queue every other caller behind it, among
    /// them the token lookup of the connector's request for the next page, which the runner
    /// pulls while this page commits. In WAL mode readers on `conn` meanwhile see the last
    /// committed state; another writer waits for SQLite's write lock (`busy_timeout`).
    pages: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.db {
            Db::Sqlite(db) => f.debug_struct("Store").field("path", &db.path).finish(),
            Db::Postgres(pg) => f.debug_struct("Store").field("postgres", pg).finish(),
        }
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
        let cipher = Self::prepare_dir(data_dir)?;
        Self::open(&data_dir.join(DB_FILE), cipher)
    }

    /// Opens the PostgreSQL database `url` names, with the key of the data directory
    /// (created when needed), which every host sharing the database must hold alike. With
    /// `sslmode=verify-full` the server's certificate must chain to the web PKI or `roots`.
    pub fn open_dir_postgres(
        data_dir: &Path,
        url: &str,
        roots: &crate::engine::roots::ExtraRoots,
    ) -> Result<Self, StoreError> {
        let cipher = Self::prepare_dir(data_dir)?;
        Self::open_postgres(url, cipher, roots)
    }

    /// Creates the data directory when needed, checks that it is writable, and loads (or
    /// makes) its key.
    fn prepare_dir(data_dir: &Path) -> Result<Cipher, StoreError> {
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
        Ok(Cipher::load_or_create(data_dir)?)
    }

    /// Whether several hosts may share this store (PostgreSQL): runs are then claimed with
    /// leases rather than the data directory's lock files.
    pub fn is_shared(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
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
            db: Db::Sqlite(Sqlite {
                conn: Mutex::new(conn),
                pages: Mutex::new(pages),
                path: path.to_path_buf(),
            }),
            cipher,
        })
    }

    /// Opens the PostgreSQL database `url` names with `cipher`, applying pending migrations;
    /// TLS as the URL's `sslmode` says (`store/pg/tls.rs`), verified against the web PKI and
    /// `roots`.
    pub fn open_postgres(
        url: &str,
        cipher: Cipher,
        roots: &crate::engine::roots::ExtraRoots,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            db: Db::Postgres(pg::Pg::open(url, roots)?),
            cipher,
        })
    }

    /// The database file; `None` for a PostgreSQL store.
    pub fn path(&self) -> Option<&Path> {
        match &self.db {
            Db::Sqlite(db) => Some(&db.path),
            Db::Postgres(_) => None,
        }
    }

    /// The cipher sealing this store's secrets.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    /// The SQLite connection, for tests of SQLite itself.
    #[cfg(test)]
    fn sqlite_conn(&self) -> MutexGuard<'_, Connection> {
        match &self.db {
            Db::Sqlite(db) => db.conn(),
            Db::Postgres(_) => panic!("a SQLite test opened a PostgreSQL store"),
        }
    }

    /// The page commits' SQLite connection, for tests of SQLite itself.
    #[cfg(test)]
    fn sqlite_pages(&self) -> MutexGuard<'_, Connection> {
        match &self.db {
            Db::Sqlite(db) => db.pages(),
            Db::Postgres(_) => panic!("a SQLite test opened a PostgreSQL store"),
        }
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        match &self.db {
            Db::Sqlite(db) => Ok(db
                .conn()
                .query_row("PRAGMA user_version", [], |r| r.get(0))?),
            Db::Postgres(pg) => pg.schema_version(),
        }
    }
}

impl Sqlite {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pages(&self) -> MutexGuard<'_, Connection> {
        self.pages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

const SELECT_INTEGRATION: &str = "SELECT id, name, connector, settings_json, interval_s, client_id,
    client_secret IS NOT NULL, state, state_reason, created_at_ms, updated_at_ms, paused_at_ms
    FROM integrations";

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
