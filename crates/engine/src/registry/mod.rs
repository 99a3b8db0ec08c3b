//! Connector versions and hot swap.
//!
//! Threat: a new connector version — broken, built for another contract, or hostile — replaces a
//! working one and breaks every integration at once, leaks an integration's data while it is
//! being vetted, or a swap tears a running pull. Several processes (`serve`, CLI commands) share
//! one store and must agree on which bytes a version number names and which version serves.
//!
//! Rule: a version is published only after it passed, in order: (1) it is a valid component;
//! (2) it targets a contract version this host supports and links against the host
//! (`instantiate_pre`); (2b) its static manifest (see [`super::manifest`]) reaches no host or
//! credentialed method beyond the active version's, unless the operator approved it; (3) a
//! canary in scratch stores runs, for every integration using the
//! connector, `configure` and, where the integration is connected, `test` and one bounded `pull`
//! page. The canary never holds credentials: its requests carry no token, so a version that is
//! about to be rejected has had no authenticated access. Failures that a missing token or the
//! provider explain (re-authorization, permission, unreachable, rate limit) are expected there;
//! traps, exceeded limits and failures that blame the version (misconfigured, unknown) reject
//! it with its reason, and the old one keeps serving.
//!
//! Version numbers are allocated by the [`VersionStore`] inside its own transaction, so two
//! processes never give one number to different bytes. Publication is one atomic pointer swap
//! ([`ArcSwapOption`]): a call holds the `Arc<LoadedConnector>` it started with, so in-flight calls
//! finish on the old version and the next call (the next page, from the committed checkpoint)
//! runs on the new one. [`ConnectorRegistry::sync`] applies what other processes installed or
//! activated. Every version stays loaded, so rollback is one swap.
//!
//! Connector names become file and URL path parts: only [`valid_connector_name`]s are accepted.
//! Component files are read only when they are regular files, up to [`MAX_COMPONENT_BYTES`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;

use super::cache::CacheOutcome;
use super::credentials::BoxFuture;
use super::manifest::{Manifest, Widening};
use super::metrics::EngineMetrics;
use super::outbound::OutboundPolicy;
use super::policy::{EgressRules, Origin};
use super::wit::types::{FailureKind, Grant, HostContext, PullRequest, Session, Settings};
use super::{CallContext, ConnectorEngine, EngineError, LoadedConnector};

mod canary;
mod files;
mod versions;
mod watch;

use canary::CanaryCounts;
pub use canary::{
    CANARY_PULL_RECORDS, CanarySession, CanaryTarget, CanaryTargets, StaticCanaryTargets,
};
pub use files::{
    MAX_COMPONENT_BYTES, Symlinks, connector_name_of, read_component_file, valid_connector_name,
};
pub use versions::{
    AddedVersion, MemoryVersionStore, NewVersion, StoredVersion, VersionInfo, VersionRecord,
    VersionStore, VersionStoreError,
};
pub use watch::{DirWatcher, StoreFollower, follow_store, watch_connectors_dir};

/// The operator's decision on the hosts a new version's manifest declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostApproval {
    /// No new approval: the manifest must stay within the active version's.
    Covered,
    /// The operator reviewed the manifest and approves it as it is.
    Approved,
}

/// The check a rejected version failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not a valid component.
    Component,
    /// No supported contract version, or imports this host does not provide.
    Contract,
    /// `configure` of an integration failed.
    CanaryConfigure,
    /// `test` of an integration failed.
    CanaryTest,
    /// The bounded `pull` of an integration failed.
    CanaryPull,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Component => "component validation",
            Stage::Contract => "contract check",
            Stage::CanaryConfigure => "canary configure",
            Stage::CanaryTest => "canary test",
            Stage::CanaryPull => "canary pull",
        })
    }
}

/// Why the registry refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A new version failed a check; the active version (if any) keeps serving.
    #[error("connector {connector} ({sha256:.12}) rejected at {stage}: {reason}")]
    Rejected {
        /// The connector's name.
        connector: String,
        /// The sha256 of the rejected bytes.
        sha256: String,
        /// The failed check.
        stage: Stage,
        /// The integration the canary failed for, if any.
        integration: Option<String>,
        /// What went wrong.
        reason: String,
    },
    /// No connector of that name is installed.
    #[error("no connector named {0} is installed")]
    UnknownConnector(String),
    /// The connector has no such version.
    #[error("connector {connector} has no version {version}")]
    UnknownVersion {
        /// The connector's name.
        connector: String,
        /// The version asked for.
        version: u32,
    },
    /// A connector name that is not a [`valid_connector_name`].
    #[error(
        "{0:?} is not a valid connector name: use 1 to 64 lower-case letters, digits, '-' or '_', \
         starting with a letter or digit"
    )]
    InvalidName(String),
    /// A component file that is not a regular file, or is too big.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The version store failed.
    #[error(transparent)]
    Store(#[from] VersionStoreError),
    /// The version's manifest reaches beyond what the operator approved for the connector.
    #[error(
        "connector {connector} ({sha256:.12}) asks for {widening} beyond the active version's \
         approved manifest ({approved}); review them and install again approving them \
         (`sluice connector install --approve-hosts`)"
    )]
    NotApproved {
        /// The connector's name.
        connector: String,
        /// The sha256 of the refused bytes.
        sha256: String,
        /// What is new.
        widening: Box<Widening>,
        /// What the active version's manifest approves.
        approved: Box<Manifest>,
    },
    /// A file could not be read or watched.
    #[error("{0}")]
    Io(String),
}

/// What [`ConnectorRegistry::install`] did.
#[derive(Debug, Clone)]
pub struct InstallReport {
    /// The connector's name.
    pub name: String,
    /// The version now active.
    pub version: u32,
    /// The sha256 of the component.
    pub sha256: String,
    /// Whether these bytes were already a stored version (then no new version was made).
    pub existing: bool,
    /// Whether the compile cache served the component.
    pub cache: CacheOutcome,
    /// What the version may reach, as approved.
    pub manifest: Arc<Manifest>,
    /// Integrations the canary ran `configure` for.
    pub canary_configured: usize,
    /// Integrations the canary ran `test` for.
    pub canary_tested: usize,
    /// Integrations the canary pulled one page for.
    pub canary_pulled: usize,
    /// Time from the call to publication.
    pub elapsed: Duration,
}

struct Entry {
    record: VersionRecord,
    connector: Arc<LoadedConnector>,
    active_since: Option<SystemTime>,
}

#[derive(Default)]
struct Slot {
    active: ArcSwapOption<LoadedConnector>,
    versions: Mutex<Vec<Entry>>,
}

impl Slot {
    /// The loaded `version`, if any.
    fn connector(&self, version: u32) -> Option<Arc<LoadedConnector>> {
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|e| e.record.version == version)
            .map(|e| e.connector.clone())
    }

    /// Adds `entry`, keeping the versions in order.
    fn insert(&self, entry: Entry) {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        let at = versions.partition_point(|e| e.record.version < entry.record.version);
        versions.insert(at, entry);
    }
}

/// The installed connectors, their versions, and which one serves each connector's calls.
pub struct ConnectorRegistry {
    engine: Arc<ConnectorEngine>,
    store: Arc<dyn VersionStore>,
    canary: Arc<dyn CanaryTargets>,
    connectors: RwLock<BTreeMap<String, Arc<Slot>>>,
    installs: tokio::sync::Mutex<()>,
    /// Held while [`ConnectorRegistry::sync`] compiles a version it found in the store.
    loading: tokio::sync::Mutex<()>,
    /// Held while the store's versions and the in-memory ones are brought in line (a new
    /// version added, a version published, another process's changes applied).
    publishing: Mutex<()>,
    /// Stored versions that do not load in this host, not to be retried at every sync.
    unloadable: Mutex<HashSet<(String, u32)>>,
}

impl ConnectorRegistry {
    /// An empty registry; call [`ConnectorRegistry::restore`] to load the stored versions.
    pub fn new(
        engine: Arc<ConnectorEngine>,
        store: Arc<dyn VersionStore>,
        canary: Arc<dyn CanaryTargets>,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            store,
            canary,
            connectors: RwLock::new(BTreeMap::new()),
            installs: tokio::sync::Mutex::new(()),
            loading: tokio::sync::Mutex::new(()),
            publishing: Mutex::new(()),
            unloadable: Mutex::new(HashSet::new()),
        })
    }

    /// The engine the registry loads into.
    pub fn engine(&self) -> &Arc<ConnectorEngine> {
        &self.engine
    }

    /// The version serving `name`'s calls now. Hold the `Arc` for the whole call.
    pub fn active(&self, name: &str) -> Option<Arc<LoadedConnector>> {
        self.slot(name)?.active.load_full()
    }

    /// What `version` of `name` may reach, as approved when it was installed.
    pub fn manifest(&self, name: &str, version: u32) -> Option<Arc<Manifest>> {
        Some(self.slot(name)?.connector(version)?.manifest.clone())
    }

    /// Every version of `name` (or of every connector, when `None`), oldest first.
    pub fn list(&self, name: Option<&str>) -> Vec<VersionInfo> {
        let connectors = self.connectors.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (connector, slot) in connectors.iter() {
            if name.is_some_and(|n| n != connector) {
                continue;
            }
            let active = slot.active.load();
            let versions = slot.versions.lock().unwrap_or_else(|e| e.into_inner());
            for entry in versions.iter() {
                out.push(VersionInfo {
                    record: entry.record.clone(),
                    active: active
                        .as_ref()
                        .is_some_and(|a| Arc::ptr_eq(a, &entry.connector)),
                    active_since: entry.active_since,
                });
            }
        }
        out
    }

    /// Loads the stored versions and publishes the ones marked active, without a canary
    /// (they passed one when installed). Versions that no longer load are skipped with a
    /// warning. Returns how many versions were loaded.
    pub async fn restore(&self) -> Result<usize, RegistryError> {
        self.sync().await
    }

    /// Brings the registry in line with the store: loads the versions other processes
    /// installed (without a canary: they passed one there) and publishes the version the store
    /// marks active, so that another process's `install` or `activate` reaches this one. One
    /// query when nothing changed. Returns how many versions it loaded.
    pub async fn sync(&self) -> Result<usize, RegistryError> {
        let stored = self.store.versions()?;
        let mut loaded = 0;
        for version in &stored {
            let record = &version.record;
            if self.is_loaded(&record.name, record.version) || self.is_unloadable(record) {
                continue;
            }
            // Runs of many integrations sync at once: one of them compiles a new version.
            let _loading = self.loading.lock().await;
            if self.is_loaded(&record.name, record.version) {
                continue;
            }
            let Some(wasm) = self.store.wasm(&record.name, record.version)? else {
                continue;
            };
            let engine = self.engine.clone();
            let name = record.name.clone();
            let result = tokio::task::spawn_blocking(move || engine.load(&name, &wasm))
                .await
                .map_err(|e| RegistryError::Io(format!("loading task failed: {e}")))?;
            let mut connector = match result {
                Ok(connector) => connector,
                Err(e) => {
                    tracing::warn!(connector = %record.name, version = record.version, error = %e, "stored connector version does not load");
                    self.unloadable
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert((record.name.clone(), record.version));
                    continue;
                }
            };
            connector.version = record.version;
            let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
            // A local install may have added it while this one compiled.
            if !self.is_loaded(&record.name, record.version) {
                self.slot_or_create(&record.name).insert(Entry {
                    record: record.clone(),
                    connector: Arc::new(connector),
                    active_since: None,
                });
                loaded += 1;
            }
        }
        if loaded > 0 || self.active_differs(&stored) {
            let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
            // Read again under the lock: a local publish since the first read must stand.
            self.apply_active(&self.store.versions()?);
        }
        Ok(loaded)
    }

    fn is_loaded(&self, name: &str, version: u32) -> bool {
        self.slot(name)
            .is_some_and(|slot| slot.connector(version).is_some())
    }

    fn is_unloadable(&self, record: &VersionRecord) -> bool {
        self.unloadable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(record.name.clone(), record.version))
    }

    /// Whether the store marks another version active than the one serving here.
    fn active_differs(&self, stored: &[StoredVersion]) -> bool {
        stored
            .iter()
            .filter(|v| v.active_since.is_some())
            .any(|v| self.active(&v.record.name).map(|p| p.version) != Some(v.record.version))
    }

    /// Publishes the versions `stored` marks active. Call with `publishing` held.
    fn apply_active(&self, stored: &[StoredVersion]) {
        for version in stored {
            let record = &version.record;
            let Some(slot) = self.slot(&record.name) else {
                continue;
            };
            let connector = {
                let mut versions = slot.versions.lock().unwrap_or_else(|e| e.into_inner());
                let Some(entry) = versions
                    .iter_mut()
                    .find(|e| e.record.version == record.version)
                else {
                    continue;
                };
                entry.active_since = version.active_since;
                entry.connector.clone()
            };
            let serving = slot
                .active
                .load()
                .as_ref()
                .is_some_and(|a| Arc::ptr_eq(a, &connector));
            if version.active_since.is_some() && !serving {
                slot.active.store(Some(connector));
                tracing::info!(connector = %record.name, version = record.version, "connector version activated by another process");
            }
        }
    }

    /// Installs `wasm` as a new version of `name` and publishes it, after the checks in the
    /// module doc (the canary only when `canary` is true). Installing bytes that are already
    /// a version re-runs the checks and activates that version. A manifest that reaches
    /// beyond the active version's is refused: see [`ConnectorRegistry::install_with_approval`].
    pub async fn install(
        &self,
        name: &str,
        wasm: &[u8],
        canary: bool,
    ) -> Result<InstallReport, RegistryError> {
        self.install_with_approval(name, wasm, canary, HostApproval::Covered)
            .await
    }

    /// [`ConnectorRegistry::install`], with the operator's decision on the version's manifest.
    pub async fn install_with_approval(
        &self,
        name: &str,
        wasm: &[u8],
        canary: bool,
        approval: HostApproval,
    ) -> Result<InstallReport, RegistryError> {
        let started = Instant::now();
        let _guard = self.installs.lock().await;
        let result = self
            .install_locked(name, wasm, canary, approval, started)
            .await;
        match &result {
            Ok(report) => {
                EngineMetrics::bump(&self.engine.metrics().installs);
                tracing::info!(connector = name, version = report.version, sha256 = %report.sha256, existing = report.existing, "connector version published");
            }
            Err(e) => {
                EngineMetrics::bump(&self.engine.metrics().rejected_installs);
                tracing::warn!(connector = name, error = %e, "connector version rejected");
            }
        }
        result
    }

    async fn install_locked(
        &self,
        name: &str,
        wasm: &[u8],
        canary: bool,
        approval: HostApproval,
        started: Instant,
    ) -> Result<InstallReport, RegistryError> {
        if !valid_connector_name(name) {
            return Err(RegistryError::InvalidName(name.to_string()));
        }
        let engine = self.engine.clone();
        let (owned_name, bytes) = (name.to_string(), wasm.to_vec());
        // Compilation is CPU work: keep it off the async workers.
        let loaded =
            tokio::task::spawn_blocking(move || engine.load_with_outcome(&owned_name, &bytes))
                .await
                .map_err(|e| RegistryError::Io(format!("loading task failed: {e}")))?;
        let (connector, cache) = loaded.map_err(|e| {
            let stage = match e {
                EngineError::InvalidComponent { .. } => Stage::Component,
                _ => Stage::Contract,
            };
            rejected(name, wasm, stage, None, e.to_string())
        })?;
        let sha256 = connector.sha256.clone();
        // Before any of its code runs with a network: the canary's calls reach what the
        // manifest declares.
        self.check_approval(name, &connector, approval)?;
        let manifest = connector.manifest.clone();

        let counts = if canary {
            self.run_canary(name, &connector, wasm).await?
        } else {
            CanaryCounts::default()
        };
        let (version, existing) = self.add_and_publish(name, wasm, connector)?;
        Ok(InstallReport {
            name: name.to_string(),
            version,
            sha256,
            existing,
            cache,
            manifest,
            canary_configured: counts.configured,
            canary_tested: counts.tested,
            canary_pulled: counts.pulled,
            elapsed: started.elapsed(),
        })
    }

    /// Refuses a version whose manifest reaches beyond the active version's, unless the
    /// operator approved it.
    fn check_approval(
        &self,
        name: &str,
        connector: &LoadedConnector,
        approval: HostApproval,
    ) -> Result<(), RegistryError> {
        if approval == HostApproval::Approved {
            return Ok(());
        }
        let approved = self
            .active(name)
            .map(|active| (*active.manifest).clone())
            .unwrap_or_default();
        let widening = connector.manifest.beyond(&approved);
        if widening.is_empty() {
            return Ok(());
        }
        Err(RegistryError::NotApproved {
            connector: name.to_string(),
            sha256: connector.sha256.clone(),
            widening: Box::new(widening),
            approved: Box::new(approved),
        })
    }

    /// Stores `connector` (compiled from `wasm`) as a version, numbered by the store, and
    /// publishes it. Returns its number and whether the store already had these bytes.
    fn add_and_publish(
        &self,
        name: &str,
        wasm: &[u8],
        mut connector: LoadedConnector,
    ) -> Result<(u32, bool), RegistryError> {
        let now = SystemTime::now();
        let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let added = self.store.add_version(&NewVersion {
            name,
            sha256: &connector.sha256,
            contract: connector.contract,
            installed_at: now,
            wasm,
        })?;
        let slot = self.slot_or_create(name);
        let connector = match slot.connector(added.version) {
            Some(loaded) => loaded,
            None => {
                // New here; when another process stored these bytes first, keep its record.
                let record = self
                    .store
                    .versions()?
                    .into_iter()
                    .map(|v| v.record)
                    .find(|r| r.name == name && r.version == added.version)
                    .unwrap_or_else(|| VersionRecord {
                        name: name.to_string(),
                        version: added.version,
                        sha256: connector.sha256.clone(),
                        contract: connector.contract.to_string(),
                        installed_at: now,
                    });
                connector.version = added.version;
                let connector = Arc::new(connector);
                slot.insert(Entry {
                    record,
                    connector: connector.clone(),
                    active_since: None,
                });
                connector
            }
        };
        self.publish(name, &slot, added.version, connector, now)?;
        Ok((added.version, added.existing))
    }

    /// Makes `version` of `name` serve calls again (rollback), without a canary.
    pub fn activate(&self, name: &str, version: u32) -> Result<(), RegistryError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| RegistryError::UnknownConnector(name.to_string()))?;
        let connector = slot
            .connector(version)
            .ok_or_else(|| RegistryError::UnknownVersion {
                connector: name.to_string(),
                version,
            })?;
        let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        self.publish(name, &slot, version, connector, SystemTime::now())?;
        tracing::info!(connector = name, version, "connector version activated");
        Ok(())
    }

    /// Records `version` as active in the store, then swaps it in. Call with `publishing`
    /// held.
    fn publish(
        &self,
        name: &str,
        slot: &Slot,
        version: u32,
        connector: Arc<LoadedConnector>,
        now: SystemTime,
    ) -> Result<(), RegistryError> {
        let already = slot
            .active
            .load()
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(a, &connector));
        if already {
            return Ok(());
        }
        self.store.set_active(name, version, now)?;
        {
            let mut versions = slot.versions.lock().unwrap_or_else(|e| e.into_inner());
            for entry in versions.iter_mut() {
                entry.active_since = (entry.record.version == version).then_some(now);
            }
        }
        slot.active.store(Some(connector));
        Ok(())
    }

    fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        self.connectors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn slot_or_create(&self, name: &str) -> Arc<Slot> {
        self.connectors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

fn rejected(
    name: &str,
    wasm: &[u8],
    stage: Stage,
    integration: Option<String>,
    reason: String,
) -> RegistryError {
    use sha2::Digest;
    RegistryError::Rejected {
        connector: name.to_string(),
        sha256: super::hex(&sha2::Sha256::digest(wasm)),
        stage,
        integration,
        reason,
    }
}
