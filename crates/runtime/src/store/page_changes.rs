//! What a page did to its stream's live records (added, updated, deleted), counted inside the
//! page's transaction and added to the run's `run_changes` row, which the run's end event
//! reports. One lookup of the page's known keys replaces a per-row trigger: counting costs one
//! statement per page on the commit path, not one per row.

use std::collections::HashMap;

use rusqlite::{Transaction, params};

use super::StoreError;

/// The counts of one page, and the state of each key the page touched.
pub(super) struct PageChanges {
    /// Each touched key: `true` when it is a tombstone now. Absent: never stored.
    known: HashMap<String, bool>,
    added: i64,
    updated: i64,
    deleted: i64,
}

impl PageChanges {
    /// Reads, in one statement, which of `keys` are stored in `stream` and whether as tombstones.
    pub(super) fn begin<'k>(
        tx: &Transaction<'_>,
        id: &str,
        stream: &str,
        keys: impl Iterator<Item = &'k str>,
    ) -> Result<Self, StoreError> {
        let keys: Vec<&str> = keys.collect();
        let mut known = HashMap::with_capacity(keys.len());
        if !keys.is_empty() {
            let list =
                serde_json::to_string(&keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut stmt = tx.prepare_cached(
                "SELECT key, deleted FROM records
                 WHERE integration_id = ?1 AND stream = ?2
                   AND key IN (SELECT value FROM json_each(?3))",
            )?;
            let mut rows = stmt.query(params![id, stream, list])?;
            while let Some(row) = rows.next()? {
                known.insert(row.get::<_, String>(0)?, row.get::<_, bool>(1)?);
            }
        }
        Ok(Self {
            known,
            added: 0,
            updated: 0,
            deleted: 0,
        })
    }

    /// The counts of a page whose touched keys are `known` (`true`: stored as a tombstone),
    /// read by the caller in one statement.
    pub(super) fn from_known(known: HashMap<String, bool>) -> Self {
        Self {
            known,
            added: 0,
            updated: 0,
            deleted: 0,
        }
    }

    /// Counts an upsert (`deleted == false`) or a delete of `key`, in page order.
    pub(super) fn write(&mut self, key: &str, deleted: bool) {
        let before = match self.known.get_mut(key) {
            Some(state) => Some(std::mem::replace(state, deleted)),
            None => {
                self.known.insert(key.to_owned(), deleted);
                None
            }
        };
        match (before, deleted) {
            // A new live key, or a tombstone brought back.
            (None | Some(true), false) => self.added += 1,
            (Some(false), false) => self.updated += 1,
            (Some(false), true) => self.deleted += 1,
            // A delete of a key never stored or already deleted removes nothing.
            (None | Some(true), true) => {}
        }
    }

    /// Counts a merge that changed the stored live record of a key.
    pub(super) fn merged(&mut self) {
        self.updated += 1;
    }

    /// Adds the page's counts to the run's row for the stream.
    pub(super) fn store(
        self,
        tx: &Transaction<'_>,
        run_id: &str,
        id: &str,
        stream: &str,
    ) -> Result<(), StoreError> {
        if self.added == 0 && self.updated == 0 && self.deleted == 0 {
            return Ok(());
        }
        tx.prepare_cached(
            "INSERT INTO run_changes (run_id, integration_id, stream, added, updated, deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (run_id, stream) DO UPDATE SET added = added + excluded.added,
                 updated = updated + excluded.updated, deleted = deleted + excluded.deleted",
        )?
        .execute(params![
            run_id,
            id,
            stream,
            self.added,
            self.updated,
            self.deleted
        ])?;
        Ok(())
    }

    /// [`PageChanges::store`] on PostgreSQL.
    pub(super) async fn pg_store(
        self,
        tx: &tokio_postgres::Transaction<'_>,
        run_id: &str,
        id: &str,
        stream: &str,
    ) -> Result<(), StoreError> {
        if self.added == 0 && self.updated == 0 && self.deleted == 0 {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO run_changes (run_id, integration_id, stream, added, updated, deleted)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (run_id, stream) DO UPDATE SET
                 added = run_changes.added + excluded.added,
                 updated = run_changes.updated + excluded.updated,
                 deleted = run_changes.deleted + excluded.deleted",
            &[
                &run_id,
                &id,
                &stream,
                &self.added,
                &self.updated,
                &self.deleted,
            ],
        )
        .await?;
        Ok(())
    }
}
