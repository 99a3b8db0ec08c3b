//! Connector versions: the engine's `VersionStore`, in the same database.

use super::*;

/// `pg_advisory_xact_lock`'s first key for a connector's versions (the second is its name's
/// hash): numbering and activating a connector's versions take turns across hosts, as SQLite's
/// write lock makes them.
const VERSIONS_LOCK: i32 = 0x7665_7273; // "vers"

/// The channel the activation trigger notifies (schema_1.sql), with the connector's name.
const ACTIVATIONS_CHANNEL: &str = "sluice_connector_activated";

/// A stored version number as the engine counts them.
fn version_number(stored: i64) -> Result<u32, StoreError> {
    u32::try_from(stored)
        .map_err(|_| StoreError::Corrupt(format!("connector version number {stored}")))
}

impl Store {
    fn add_version_row(
        &self,
        new: &crate::engine::registry::NewVersion<'_>,
    ) -> Result<crate::engine::registry::AddedVersion, StoreError> {
        use crate::engine::registry::AddedVersion;
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(pg) => return add_version_pg(pg, new),
        };
        let mut conn = db.conn();
        // IMMEDIATE: the number is read and taken under the write lock, so two processes
        // installing at once get two numbers.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<u32> = tx
            .query_row(
                "SELECT version FROM connector_versions WHERE name = ?1 AND sha256 = ?2",
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
            "SELECT COALESCE(MAX(version), 0) + 1 FROM connector_versions WHERE name = ?1",
            [new.name],
            |r| r.get(0),
        )?;
        // A plain INSERT: a number already taken fails here rather than dropping these bytes.
        tx.execute(
            "INSERT INTO connector_versions (name, version, sha256, contract,
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

    /// The manifest of the active version of connector `name`, as approved at its install; the
    /// empty manifest (nothing reachable) when no version is active.
    pub fn active_manifest(&self, name: &str) -> Result<Manifest, StoreError> {
        let row = match &self.db {
            Db::Sqlite(db) => db
                .conn()
                .query_row(
                    "SELECT manifest_json, wasm FROM connector_versions
                     WHERE name = ?1 AND active_since_ms IS NOT NULL",
                    [name],
                    |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Vec<u8>>(1)?)),
                )
                .optional()?,
            Db::Postgres(pg) => pg::wait(pg.client()?.query_opt(
                "SELECT manifest_json, wasm FROM connector_versions
                 WHERE name = $1 AND active_since_ms IS NOT NULL",
                &[&name],
            ))?
            .map(|r| (r.get(0), r.get(1))),
        };
        match row {
            None => Ok(Manifest::default()),
            Some((Some(json), _)) => Manifest::from_json(json.as_bytes())
                .map_err(|e| StoreError::Corrupt(format!("stored connector manifest: {e}"))),
            // Stored before manifests were recorded: the bytes still carry it.
            Some((None, wasm)) => manifest_of(&wasm),
        }
    }

    /// The names of connectors whose active version changes from now on, one item per
    /// activation, whichever host made it (PostgreSQL's `sluice_connector_activated`
    /// notifications). `None` on SQLite, which has no notifications: poll the versions there.
    pub fn connector_activations(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<String>>, StoreError> {
        match &self.db {
            Db::Sqlite(_) => Ok(None),
            Db::Postgres(pg) => Ok(Some(pg.listen(ACTIVATIONS_CHANNEL)?)),
        }
    }

    fn set_active_row(
        &self,
        name: &str,
        version: u32,
        since: SystemTime,
    ) -> Result<(), StoreError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(pg) => return set_active_pg(pg, name, version, to_ms(since)),
        };
        let mut conn = db.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The others only: re-activating the active version is no change (and reports no
        // `connector.version_activated` event).
        tx.execute(
            "UPDATE connector_versions SET active_since_ms = NULL WHERE name = ?1 AND version != ?2",
            params![name, version],
        )?;
        tx.execute(
            "UPDATE connector_versions SET active_since_ms = ?3 WHERE name = ?1 AND version = ?2",
            params![name, version, to_ms(since)],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn version_rows(&self) -> Result<Vec<crate::engine::registry::StoredVersion>, StoreError> {
        use crate::engine::registry::{StoredVersion, VersionRecord};
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(pg) => return version_rows_pg(pg),
        };
        let conn = db.conn();
        // Without the bytes: this runs before every page of every run.
        let mut stmt = conn.prepare_cached(
            "SELECT name, version, sha256, contract, installed_at_ms, active_since_ms
             FROM connector_versions ORDER BY name, version",
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
        Ok(match &self.db {
            Db::Sqlite(db) => db
                .conn()
                .query_row(
                    "SELECT wasm FROM connector_versions WHERE name = ?1 AND version = ?2",
                    params![name, version],
                    |r| r.get(0),
                )
                .optional()?,
            Db::Postgres(pg) => pg::wait(pg.client()?.query_opt(
                "SELECT wasm FROM connector_versions WHERE name = $1 AND version = $2",
                &[&name, &i64::from(version)],
            ))?
            .map(|r| r.get(0)),
        })
    }
}

impl crate::engine::registry::VersionStore for Store {
    fn add_version(
        &self,
        new: &crate::engine::registry::NewVersion<'_>,
    ) -> Result<crate::engine::registry::AddedVersion, crate::engine::registry::VersionStoreError>
    {
        self.add_version_row(new)
            .map_err(|e| crate::engine::registry::VersionStoreError(e.to_string()))
    }

    fn set_active(
        &self,
        name: &str,
        version: u32,
        since: SystemTime,
    ) -> Result<(), crate::engine::registry::VersionStoreError> {
        self.set_active_row(name, version, since)
            .map_err(|e| crate::engine::registry::VersionStoreError(e.to_string()))
    }

    fn versions(
        &self,
    ) -> Result<
        Vec<crate::engine::registry::StoredVersion>,
        crate::engine::registry::VersionStoreError,
    > {
        self.version_rows()
            .map_err(|e| crate::engine::registry::VersionStoreError(e.to_string()))
    }

    fn wasm(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<Vec<u8>>, crate::engine::registry::VersionStoreError> {
        self.version_wasm(name, version)
            .map_err(|e| crate::engine::registry::VersionStoreError(e.to_string()))
    }
}

fn manifest_of(wasm: &[u8]) -> Result<Manifest, StoreError> {
    Manifest::of_component(wasm)
        .map_err(|e| StoreError::Corrupt(format!("stored connector manifest: {e}")))
}

/// [`Store::add_version_row`] on PostgreSQL: numbered under the connector's lock.
fn add_version_pg(
    pg: &pg::Pg,
    new: &crate::engine::registry::NewVersion<'_>,
) -> Result<crate::engine::registry::AddedVersion, StoreError> {
    use crate::engine::registry::AddedVersion;
    let manifest = manifest_of(new.wasm)?.to_json();
    let installed_at = to_ms(new.installed_at);
    let mut client = pg.client()?;
    pg::wait(async {
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&VERSIONS_LOCK, &new.name],
        )
        .await?;
        let existing = tx
            .query_opt(
                "SELECT version FROM connector_versions WHERE name = $1 AND sha256 = $2",
                &[&new.name, &new.sha256],
            )
            .await?;
        if let Some(row) = existing {
            return Ok(AddedVersion {
                version: version_number(row.get(0))?,
                existing: true,
            });
        }
        let next: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM connector_versions WHERE name = $1",
                &[&new.name],
            )
            .await?
            .get(0);
        // A plain INSERT, as on SQLite: a number already taken fails rather than overwrites.
        tx.execute(
            "INSERT INTO connector_versions (name, version, sha256, contract,
                 installed_at_ms, active_since_ms, wasm, manifest_json)
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)",
            &[
                &new.name,
                &next,
                &new.sha256,
                &new.contract,
                &installed_at,
                &new.wasm,
                &manifest,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(AddedVersion {
            version: version_number(next)?,
            existing: false,
        })
    })
}

/// [`Store::set_active_row`] on PostgreSQL. Under the connector's lock: two hosts activating
/// two versions at once would otherwise each lock one row and wait for the other's.
fn set_active_pg(pg: &pg::Pg, name: &str, version: u32, since_ms: i64) -> Result<(), StoreError> {
    let version = i64::from(version);
    let mut client = pg.client()?;
    pg::wait(async {
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&VERSIONS_LOCK, &name],
        )
        .await?;
        // The others only, as on SQLite: re-activating the active version is no change.
        tx.execute(
            "UPDATE connector_versions SET active_since_ms = NULL
             WHERE name = $1 AND version != $2 AND active_since_ms IS NOT NULL",
            &[&name, &version],
        )
        .await?;
        tx.execute(
            "UPDATE connector_versions SET active_since_ms = $3 WHERE name = $1 AND version = $2",
            &[&name, &version, &since_ms],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
}

/// [`Store::version_rows`] on PostgreSQL.
fn version_rows_pg(pg: &pg::Pg) -> Result<Vec<crate::engine::registry::StoredVersion>, StoreError> {
    use crate::engine::registry::{StoredVersion, VersionRecord};
    let rows = pg::wait(pg.client()?.query(
        "SELECT name, version, sha256, contract, installed_at_ms, active_since_ms
         FROM connector_versions ORDER BY name COLLATE \"C\", version",
        &[],
    ))?;
    rows.iter()
        .map(|r| {
            Ok(StoredVersion {
                record: VersionRecord {
                    name: r.get(0),
                    version: version_number(r.get(1))?,
                    sha256: r.get(2),
                    contract: r.get(3),
                    installed_at: from_ms(r.get(4)),
                },
                active_since: r.get::<_, Option<i64>>(5).map(from_ms),
            })
        })
        .collect()
}
