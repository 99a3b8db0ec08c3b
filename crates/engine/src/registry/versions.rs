//! The version store the registry publishes through, and an in-memory one for tests.

use super::*;

/// A stored connector version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The connector's name, e.g. `salesforce`.
    pub name: String,
    /// The version number, 1 for the first install of `name`.
    pub version: u32,
    /// The sha256 of the component bytes, hex.
    pub sha256: String,
    /// The contract version the component targets.
    pub contract: String,
    /// When the version was installed.
    pub installed_at: SystemTime,
}

/// A version as [`ConnectorRegistry::list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The stored record.
    pub record: VersionRecord,
    /// Whether this version serves calls now.
    pub active: bool,
    /// When this version last became active (None if it never was).
    pub active_since: Option<SystemTime>,
}

/// A version as a [`VersionStore`] lists it (without its bytes).
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// The record.
    pub record: VersionRecord,
    /// Since when this version is the active one of its connector; None if it is not active.
    pub active_since: Option<SystemTime>,
}

/// A version to store: everything but its number, which the store allocates.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    /// The connector's name.
    pub name: &'a str,
    /// The sha256 of `wasm`, hex.
    pub sha256: &'a str,
    /// The contract version the component targets.
    pub contract: &'a str,
    /// When it is installed.
    pub installed_at: SystemTime,
    /// The component bytes.
    pub wasm: &'a [u8],
}

/// What [`VersionStore::add_version`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddedVersion {
    /// The version number the bytes have in the store.
    pub version: u32,
    /// Whether these bytes already were that version (nothing was written).
    pub existing: bool,
}

/// Why the version store failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("connector version store: {0}")]
pub struct VersionStoreError(pub String);

/// Durable connector versions, shared by every process using the same store. The runtime
/// implements it on its database; [`MemoryVersionStore`] serves tests.
pub trait VersionStore: Send + Sync + 'static {
    /// Stores `new` as the next version of its connector, numbering it inside the store's own
    /// transaction, unless the same bytes already are a version of that connector (then that
    /// version is returned). A number already taken is an error, never an overwrite.
    fn add_version(&self, new: &NewVersion<'_>) -> Result<AddedVersion, VersionStoreError>;
    /// Records that `version` of `name` is active since `since` (and no other version is).
    fn set_active(
        &self,
        name: &str,
        version: u32,
        since: SystemTime,
    ) -> Result<(), VersionStoreError>;
    /// Every stored version without its bytes, by name and version.
    fn versions(&self) -> Result<Vec<StoredVersion>, VersionStoreError>;
    /// The bytes of `version` of `name`, if stored.
    fn wasm(&self, name: &str, version: u32) -> Result<Option<Vec<u8>>, VersionStoreError>;
}

/// A [`VersionStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryVersionStore {
    versions: Mutex<Vec<(StoredVersion, Vec<u8>)>>,
}

impl VersionStore for MemoryVersionStore {
    fn add_version(&self, new: &NewVersion<'_>) -> Result<AddedVersion, VersionStoreError> {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        let same_name = || versions.iter().filter(|(v, _)| v.record.name == new.name);
        if let Some((v, _)) = same_name().find(|(v, _)| v.record.sha256 == new.sha256) {
            return Ok(AddedVersion {
                version: v.record.version,
                existing: true,
            });
        }
        let version = same_name()
            .map(|(v, _)| v.record.version)
            .max()
            .unwrap_or(0)
            + 1;
        versions.push((
            StoredVersion {
                record: VersionRecord {
                    name: new.name.to_string(),
                    version,
                    sha256: new.sha256.to_string(),
                    contract: new.contract.to_string(),
                    installed_at: new.installed_at,
                },
                active_since: None,
            },
            new.wasm.to_vec(),
        ));
        Ok(AddedVersion {
            version,
            existing: false,
        })
    }

    fn set_active(
        &self,
        name: &str,
        version: u32,
        since: SystemTime,
    ) -> Result<(), VersionStoreError> {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        for (v, _) in versions.iter_mut().filter(|(v, _)| v.record.name == name) {
            v.active_since = (v.record.version == version).then_some(since);
        }
        Ok(())
    }

    fn versions(&self) -> Result<Vec<StoredVersion>, VersionStoreError> {
        let versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(versions.iter().map(|(v, _)| v.clone()).collect())
    }

    fn wasm(&self, name: &str, version: u32) -> Result<Option<Vec<u8>>, VersionStoreError> {
        let versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(versions
            .iter()
            .find(|(v, _)| v.record.name == name && v.record.version == version)
            .map(|(_, wasm)| wasm.clone()))
    }
}
