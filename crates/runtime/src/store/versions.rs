//! Connector versions: the engine's `VersionStore`, in the same database.

use super::*;

impl Store {
    fn add_version_row(
        &self,
        new: &crate::engine::registry::NewVersion<'_>,
    ) -> Result<crate::engine::registry::AddedVersion, StoreError> {
        use crate::engine::registry::AddedVersion;
        let mut conn = self.conn("add_version_row")?;
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
        let row = self
            .conn("active_manifest")?
            .query_row(
                "SELECT manifest_json, wasm FROM connector_versions
                 WHERE name = ?1 AND active_since_ms IS NOT NULL",
                [name],
                |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?;
        match row {
            None => Ok(Manifest::default()),
            Some((Some(json), _)) => Manifest::from_json(json.as_bytes())
                .map_err(|e| StoreError::Corrupt(format!("stored connector manifest: {e}"))),
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
        let mut conn = self.conn("set_active_row")?;
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
        let conn = self.conn("version_rows")?;
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
        Ok(self
            .conn("version_wasm")?
            .query_row(
                "SELECT wasm FROM connector_versions WHERE name = ?1 AND version = ?2",
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
