//! PostgreSQL as the store's database, so that several hosts share one state.
//!
//! The store's interface is synchronous (SQLite answers in microseconds, and its callers are
//! both async tasks and plain threads), so this module makes PostgreSQL answer synchronously
//! too. Each connection's protocol task runs on a small runtime of this module's own, and a
//! caller waits for its query with a plain executor on its own thread. Waiting never needs
//! the caller's runtime, so it works from a tokio task, a blocking thread or a test alike;
//! `postgres`, the synchronous client, would instead start a runtime inside the caller's and
//! panic there.
//!
//! Connections are pooled: a caller takes an idle one (or opens one), and it goes back to
//! the pool when the caller is done, unless the server closed it.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::{AsyncMessage, Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;
use crate::engine::roots::ExtraRoots;

pub mod tls;
pub use tls::TlsMode;

/// At most this many idle connections are kept; more are closed when returned.
const MAX_IDLE: usize = 8;

/// The ordered schema migrations of a PostgreSQL store; `sluice_schema.version` records how
/// many were applied. Never edit a released one: add one.
pub const MIGRATIONS: &[&str] = &[include_str!("pg/schema_1.sql")];

/// Serialises migrations across hosts starting at once (`pg_advisory_xact_lock`'s key).
const MIGRATION_LOCK: i64 = 0x736c_7569_6365; // "sluice"

/// A PostgreSQL database: its address and a pool of connections to it.
pub struct Pg {
    config: Config,
    tls: MakeRustlsConnect,
    /// Runs the connections' protocol tasks; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: only where it points.
        f.debug_struct("Pg")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish()
    }
}

impl Pg {
    /// Connects to the database `url` names (`postgres://user@host:port/db`), with TLS as its
    /// `sslmode` says, verified against the web PKI and `roots`, and applies pending
    /// migrations.
    pub fn open(url: &str, roots: &ExtraRoots) -> Result<Self, StoreError> {
        let (url, mode) = tls::split_sslmode(url)?;
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
            StoreError::BadDatabaseUrl(format!("{e}; expected postgres://user@host:port/db"))
        })?;
        config.ssl_mode(mode.negotiation());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Corrupt(format!("cannot start the database runtime: {e}")))?;
        let pg = Self {
            config,
            tls: tls::connector(mode, roots),
            runtime: Some(runtime),
            idle: Mutex::new(Vec::new()),
        };
        pg.migrate()?;
        Ok(pg)
    }

    /// A connection for one caller, back in the pool when dropped.
    pub fn client(&self) -> Result<Pooled<'_>, StoreError> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        let client = match reused {
            Some(client) => client,
            None => self.connect()?,
        };
        Ok(Pooled {
            pg: self,
            client: Some(client),
        })
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let (config, tls) = (self.config.clone(), self.tls.clone());
        let runtime = self.runtime.as_ref().expect("open until dropped");
        let task = runtime.spawn(async move {
            let (client, connection) = config.connect(tls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "a database connection ended");
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        });
        match wait(task) {
            Ok(connected) => Ok(connected?),
            Err(e) => Err(StoreError::Corrupt(format!(
                "the database runtime failed: {e}"
            ))),
        }
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client()?;
        wait(async {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS sluice_schema (version BIGINT NOT NULL);
                 INSERT INTO sluice_schema (version)
                    SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM sluice_schema)",
            )
            .await?;
            let current: i64 = tx
                .query_one("SELECT version FROM sluice_schema", &[])
                .await?
                .get(0);
            let known = MIGRATIONS.len() as i64;
            if current > known {
                return Err(StoreError::Corrupt(format!(
                    "the database has schema version {current}, newer than this sluice \
                     ({known}); upgrade sluice"
                )));
            }
            for (version, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                tx.batch_execute(sql).await?;
                tracing::info!(version = version + 1, "applied database migration");
            }
            tx.execute("UPDATE sluice_schema SET version = $1", &[&known])
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The payloads of the notifications sent on `channel`, received by a connection of its
    /// own that LISTENs on it (not a pooled one: a pooled connection serves other callers and
    /// would miss them). Listening has begun when this returns; the receiver ends when that
    /// connection does, and the connection ends when a notification finds the receiver gone.
    pub fn listen(&self, channel: &'static str) -> Result<UnboundedReceiver<String>, StoreError> {
        let (config, tls) = (self.config.clone(), self.tls.clone());
        let runtime = self.runtime.as_ref().expect("open until dropped");
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let listening = runtime.spawn(async move {
            let (client, mut connection) = config.connect(tls).await?;
            let forwarding = tokio::spawn(async move {
                while let Some(message) =
                    std::future::poll_fn(|cx| connection.poll_message(cx)).await
                {
                    match message {
                        Ok(AsyncMessage::Notification(n)) => {
                            if sender.send(n.payload().to_string()).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, channel, "a listening connection ended");
                            return;
                        }
                    }
                }
            });
            client.batch_execute(&format!("LISTEN {channel}")).await?;
            // The client lives as long as the forwarding: dropping it would close the
            // connection.
            tokio::spawn(async move {
                let _ = forwarding.await;
                drop(client);
            });
            Ok::<_, tokio_postgres::Error>(())
        });
        match wait(listening) {
            Ok(listening) => listening?,
            Err(e) => {
                return Err(StoreError::Corrupt(format!(
                    "the database runtime failed: {e}"
                )));
            }
        }
        Ok(receiver)
    }

    /// The schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.client()?;
        let row = wait(client.query_one("SELECT version FROM sluice_schema", &[]))?;
        Ok(row.get(0))
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        // A store may be dropped inside an async task, where a runtime may not block.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A pooled connection, lent to one caller.
pub struct Pooled<'a> {
    pg: &'a Pg,
    client: Option<Client>,
}

impl Pooled<'_> {
    /// Closes the connection instead of returning it to the pool: the end of a session that
    /// holds a session lock, which the server releases with it.
    pub fn close(mut self) {
        drop(self.client.take());
    }
}

impl Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("held until dropped")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("held until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if client.is_closed() {
            return;
        }
        let mut idle = self.pg.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(client);
        }
    }
}

/// Waits on this thread for `future`, a query on a pooled connection: its connection's task
/// runs on the pool's runtime, so no runtime is needed here.
pub fn wait<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}
