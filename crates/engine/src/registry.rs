//! Plugin versions and hot swap.
//!
//! Threat: a new plugin version — broken, built for another contract, or hostile — replaces a
//! working one and breaks every integration at once, leaks an integration's data while it is
//! being vetted, or a swap tears a running pull. Several processes (`serve`, CLI commands) share
//! one store and must agree on which bytes a version number names and which version serves.
//!
//! Rule: a version is published only after it passed, in order: (1) it is a valid component;
//! (2) it targets a contract version this host supports and links against the host
//! (`instantiate_pre`); (2b) its static manifest (see [`super::manifest`]) reaches no host or
//! credentialed method beyond the active version's, unless the operator approved it; (3) a
//! canary in scratch stores runs, for every integration using the
//! plugin, `configure` and, where the integration is connected, `test` and one bounded `pull`
//! page. The canary never holds credentials: its requests carry no token, so a version that is
//! about to be rejected has had no authenticated access. Failures that a missing token or the
//! provider explain (re-authorization, permission, unreachable, rate limit) are expected there;
//! traps, exceeded limits and failures that blame the version (misconfigured, unknown) reject
//! it with its reason, and the old one keeps serving.
//!
//! Version numbers are allocated by the [`VersionStore`] inside its own transaction, so two
//! processes never give one number to different bytes. Publication is one atomic pointer swap
//! ([`ArcSwapOption`]): a call holds the `Arc<LoadedPlugin>` it started with, so in-flight calls
//! finish on the old version and the next call (the next page, from the committed checkpoint)
//! runs on the new one. [`PluginRegistry::sync`] applies what other processes installed or
//! activated. Every version stays loaded, so rollback is one swap.
//!
//! Plugin names become file and URL path parts: only [`valid_plugin_name`]s are accepted.
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
use super::{CallContext, EngineError, LoadedPlugin, PluginEngine};

/// A stored plugin version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The plugin's name, e.g. `salesforce`.
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

/// A version as [`PluginRegistry::list`] shows it.
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
    /// Since when this version is the active one of its plugin; None if it is not active.
    pub active_since: Option<SystemTime>,
}

/// A version to store: everything but its number, which the store allocates.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    /// The plugin's name.
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
#[error("plugin version store: {0}")]
pub struct StoreError(pub String);

/// Durable plugin versions, shared by every process using the same store. The runtime
/// implements it on its database; [`MemoryVersionStore`] serves tests.
pub trait VersionStore: Send + Sync + 'static {
    /// Stores `new` as the next version of its plugin, numbering it inside the store's own
    /// transaction, unless the same bytes already are a version of that plugin (then that
    /// version is returned). A number already taken is an error, never an overwrite.
    fn add_version(&self, new: &NewVersion<'_>) -> Result<AddedVersion, StoreError>;
    /// Records that `version` of `name` is active since `since` (and no other version is).
    fn set_active(&self, name: &str, version: u32, since: SystemTime) -> Result<(), StoreError>;
    /// Every stored version without its bytes, by name and version.
    fn versions(&self) -> Result<Vec<StoredVersion>, StoreError>;
    /// The bytes of `version` of `name`, if stored.
    fn wasm(&self, name: &str, version: u32) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A [`VersionStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryVersionStore {
    versions: Mutex<Vec<(StoredVersion, Vec<u8>)>>,
}

impl VersionStore for MemoryVersionStore {
    fn add_version(&self, new: &NewVersion<'_>) -> Result<AddedVersion, StoreError> {
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

    fn set_active(&self, name: &str, version: u32, since: SystemTime) -> Result<(), StoreError> {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        for (v, _) in versions.iter_mut().filter(|(v, _)| v.record.name == name) {
            v.active_since = (v.record.version == version).then_some(since);
        }
        Ok(())
    }

    fn versions(&self) -> Result<Vec<StoredVersion>, StoreError> {
        let versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(versions.iter().map(|(v, _)| v.clone()).collect())
    }

    fn wasm(&self, name: &str, version: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(versions
            .iter()
            .find(|(v, _)| v.record.name == name && v.record.version == version)
            .map(|(_, wasm)| wasm.clone()))
    }
}

/// One integration a canary exercises.
#[derive(Clone)]
pub struct CanaryTarget {
    /// The integration's id.
    pub integration: String,
    /// Its settings.
    pub settings: Settings,
    /// The host facts its calls get.
    pub host: HostContext,
    /// Its grant, where it is connected; then `test` and one `pull` page run too, without
    /// its credentials.
    pub session: Option<CanarySession>,
}

/// The connection of a [`CanaryTarget`]: the non-secret grant only. The canary is never given
/// the integration's credentials.
#[derive(Clone)]
pub struct CanarySession {
    /// The non-secret grant.
    pub grant: Grant,
    /// The host's extra approved origins (the version's manifest supplies the rest).
    pub extra_origins: Arc<[Origin]>,
}

/// The integrations that use a plugin. The runtime implements it over its integrations table.
pub trait CanaryTargets: Send + Sync + 'static {
    /// The integrations that use plugin `name`.
    fn targets(&self, name: &str) -> BoxFuture<'_, Vec<CanaryTarget>>;
}

/// A [`CanaryTargets`] in memory.
#[derive(Default)]
pub struct StaticCanaryTargets {
    targets: Mutex<HashMap<String, Vec<CanaryTarget>>>,
}

impl StaticCanaryTargets {
    /// Adds an integration of plugin `name`.
    pub fn add(&self, name: &str, target: CanaryTarget) {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .push(target);
    }
}

impl CanaryTargets for StaticCanaryTargets {
    fn targets(&self, name: &str) -> BoxFuture<'_, Vec<CanaryTarget>> {
        let targets = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default();
        Box::pin(async move { targets })
    }
}

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
    #[error("plugin {plugin} ({sha256:.12}) rejected at {stage}: {reason}")]
    Rejected {
        /// The plugin's name.
        plugin: String,
        /// The sha256 of the rejected bytes.
        sha256: String,
        /// The failed check.
        stage: Stage,
        /// The integration the canary failed for, if any.
        integration: Option<String>,
        /// What went wrong.
        reason: String,
    },
    /// No plugin of that name is installed.
    #[error("no plugin named {0} is installed")]
    UnknownPlugin(String),
    /// The plugin has no such version.
    #[error("plugin {plugin} has no version {version}")]
    UnknownVersion {
        /// The plugin's name.
        plugin: String,
        /// The version asked for.
        version: u32,
    },
    /// A plugin name that is not a [`valid_plugin_name`].
    #[error(
        "{0:?} is not a valid plugin name: use 1 to 64 lower-case letters, digits, '-' or '_', \
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
    Store(#[from] StoreError),
    /// The version's manifest reaches beyond what the operator approved for the plugin.
    #[error(
        "plugin {plugin} ({sha256:.12}) asks for {widening} beyond the active version's \
         approved manifest ({approved}); review them and install again approving them \
         (`sluice plugin install --approve-hosts`)"
    )]
    NotApproved {
        /// The plugin's name.
        plugin: String,
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

/// What [`PluginRegistry::install`] did.
#[derive(Debug, Clone)]
pub struct InstallReport {
    /// The plugin's name.
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
    plugin: Arc<LoadedPlugin>,
    active_since: Option<SystemTime>,
}

#[derive(Default)]
struct Slot {
    active: ArcSwapOption<LoadedPlugin>,
    versions: Mutex<Vec<Entry>>,
}

impl Slot {
    /// The loaded `version`, if any.
    fn plugin(&self, version: u32) -> Option<Arc<LoadedPlugin>> {
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|e| e.record.version == version)
            .map(|e| e.plugin.clone())
    }

    /// Adds `entry`, keeping the versions in order.
    fn insert(&self, entry: Entry) {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        let at = versions.partition_point(|e| e.record.version < entry.record.version);
        versions.insert(at, entry);
    }
}

/// How many integrations each canary step ran for.
#[derive(Debug, Default)]
struct CanaryCounts {
    configured: usize,
    tested: usize,
    pulled: usize,
}

/// Records the canary's `pull` asks for: enough to run the connector's read path.
pub const CANARY_PULL_RECORDS: u32 = 1;

/// Whether a connector failure in the canary is the version's fault. Without credentials a
/// good version is expected to fail as unauthorized; an unreachable or throttling provider
/// says nothing about it either.
fn blames_the_version(kind: FailureKind) -> bool {
    match kind {
        FailureKind::ReauthorizationRequired
        | FailureKind::PermissionDenied
        | FailureKind::Unreachable
        | FailureKind::RateLimited => false,
        FailureKind::Misconfigured | FailureKind::Unknown => true,
    }
}

/// The installed plugins, their versions, and which one serves each plugin's calls.
pub struct PluginRegistry {
    engine: Arc<PluginEngine>,
    store: Arc<dyn VersionStore>,
    canary: Arc<dyn CanaryTargets>,
    plugins: RwLock<BTreeMap<String, Arc<Slot>>>,
    installs: tokio::sync::Mutex<()>,
    /// Held while [`PluginRegistry::sync`] compiles a version it found in the store.
    loading: tokio::sync::Mutex<()>,
    /// Held while the store's versions and the in-memory ones are brought in line (a new
    /// version added, a version published, another process's changes applied).
    publishing: Mutex<()>,
    /// Stored versions that do not load in this host, not to be retried at every sync.
    unloadable: Mutex<HashSet<(String, u32)>>,
}

impl PluginRegistry {
    /// An empty registry; call [`PluginRegistry::restore`] to load the stored versions.
    pub fn new(
        engine: Arc<PluginEngine>,
        store: Arc<dyn VersionStore>,
        canary: Arc<dyn CanaryTargets>,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            store,
            canary,
            plugins: RwLock::new(BTreeMap::new()),
            installs: tokio::sync::Mutex::new(()),
            loading: tokio::sync::Mutex::new(()),
            publishing: Mutex::new(()),
            unloadable: Mutex::new(HashSet::new()),
        })
    }

    /// The engine the registry loads into.
    pub fn engine(&self) -> &Arc<PluginEngine> {
        &self.engine
    }

    /// The version serving `name`'s calls now. Hold the `Arc` for the whole call.
    pub fn active(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.slot(name)?.active.load_full()
    }

    /// Every version of `name` (or of every plugin, when `None`), oldest first.
    pub fn list(&self, name: Option<&str>) -> Vec<VersionInfo> {
        let plugins = self.plugins.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (plugin, slot) in plugins.iter() {
            if name.is_some_and(|n| n != plugin) {
                continue;
            }
            let active = slot.active.load();
            let versions = slot.versions.lock().unwrap_or_else(|e| e.into_inner());
            for entry in versions.iter() {
                out.push(VersionInfo {
                    record: entry.record.clone(),
                    active: active
                        .as_ref()
                        .is_some_and(|a| Arc::ptr_eq(a, &entry.plugin)),
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
            let mut plugin = match result {
                Ok(plugin) => plugin,
                Err(e) => {
                    tracing::warn!(plugin = %record.name, version = record.version, error = %e, "stored plugin version does not load");
                    self.unloadable
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert((record.name.clone(), record.version));
                    continue;
                }
            };
            plugin.version = record.version;
            let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
            // A local install may have added it while this one compiled.
            if !self.is_loaded(&record.name, record.version) {
                self.slot_or_create(&record.name).insert(Entry {
                    record: record.clone(),
                    plugin: Arc::new(plugin),
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
            .is_some_and(|slot| slot.plugin(version).is_some())
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
            let plugin = {
                let mut versions = slot.versions.lock().unwrap_or_else(|e| e.into_inner());
                let Some(entry) = versions
                    .iter_mut()
                    .find(|e| e.record.version == record.version)
                else {
                    continue;
                };
                entry.active_since = version.active_since;
                entry.plugin.clone()
            };
            let serving = slot
                .active
                .load()
                .as_ref()
                .is_some_and(|a| Arc::ptr_eq(a, &plugin));
            if version.active_since.is_some() && !serving {
                slot.active.store(Some(plugin));
                tracing::info!(plugin = %record.name, version = record.version, "plugin version activated by another process");
            }
        }
    }

    /// Installs `wasm` as a new version of `name` and publishes it, after the checks in the
    /// module doc (the canary only when `canary` is true). Installing bytes that are already
    /// a version re-runs the checks and activates that version. A manifest that reaches
    /// beyond the active version's is refused: see [`PluginRegistry::install_with_approval`].
    pub async fn install(
        &self,
        name: &str,
        wasm: &[u8],
        canary: bool,
    ) -> Result<InstallReport, RegistryError> {
        self.install_with_approval(name, wasm, canary, HostApproval::Covered)
            .await
    }

    /// [`PluginRegistry::install`], with the operator's decision on the version's manifest.
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
                tracing::info!(plugin = name, version = report.version, sha256 = %report.sha256, existing = report.existing, "plugin version published");
            }
            Err(e) => {
                EngineMetrics::bump(&self.engine.metrics().rejected_installs);
                tracing::warn!(plugin = name, error = %e, "plugin version rejected");
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
        if !valid_plugin_name(name) {
            return Err(RegistryError::InvalidName(name.to_string()));
        }
        let engine = self.engine.clone();
        let (owned_name, bytes) = (name.to_string(), wasm.to_vec());
        // Compilation is CPU work: keep it off the async workers.
        let loaded =
            tokio::task::spawn_blocking(move || engine.load_with_outcome(&owned_name, &bytes))
                .await
                .map_err(|e| RegistryError::Io(format!("loading task failed: {e}")))?;
        let (plugin, cache) = loaded.map_err(|e| {
            let stage = match e {
                EngineError::InvalidComponent { .. } => Stage::Component,
                _ => Stage::Contract,
            };
            rejected(name, wasm, stage, None, e.to_string())
        })?;
        let sha256 = plugin.sha256.clone();
        // Before any of its code runs with a network: the canary's calls reach what the
        // manifest declares.
        self.check_approval(name, &plugin, approval)?;
        let manifest = plugin.manifest.clone();

        let counts = if canary {
            self.run_canary(name, &plugin, wasm).await?
        } else {
            CanaryCounts::default()
        };
        let (version, existing) = self.add_and_publish(name, wasm, plugin)?;
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
        plugin: &LoadedPlugin,
        approval: HostApproval,
    ) -> Result<(), RegistryError> {
        if approval == HostApproval::Approved {
            return Ok(());
        }
        let approved = self
            .active(name)
            .map(|active| (*active.manifest).clone())
            .unwrap_or_default();
        let widening = plugin.manifest.beyond(&approved);
        if widening.is_empty() {
            return Ok(());
        }
        Err(RegistryError::NotApproved {
            plugin: name.to_string(),
            sha256: plugin.sha256.clone(),
            widening: Box::new(widening),
            approved: Box::new(approved),
        })
    }

    /// Stores `plugin` (compiled from `wasm`) as a version, numbered by the store, and
    /// publishes it. Returns its number and whether the store already had these bytes.
    fn add_and_publish(
        &self,
        name: &str,
        wasm: &[u8],
        mut plugin: LoadedPlugin,
    ) -> Result<(u32, bool), RegistryError> {
        let now = SystemTime::now();
        let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let added = self.store.add_version(&NewVersion {
            name,
            sha256: &plugin.sha256,
            contract: plugin.contract,
            installed_at: now,
            wasm,
        })?;
        let slot = self.slot_or_create(name);
        let plugin = match slot.plugin(added.version) {
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
                        sha256: plugin.sha256.clone(),
                        contract: plugin.contract.to_string(),
                        installed_at: now,
                    });
                plugin.version = added.version;
                let plugin = Arc::new(plugin);
                slot.insert(Entry {
                    record,
                    plugin: plugin.clone(),
                    active_since: None,
                });
                plugin
            }
        };
        self.publish(name, &slot, added.version, plugin, now)?;
        Ok((added.version, added.existing))
    }

    /// Runs, for every integration of `name`: `configure`, and for connected ones `test` and
    /// one bounded `pull` page, all without credentials (see the module doc).
    async fn run_canary(
        &self,
        name: &str,
        plugin: &LoadedPlugin,
        wasm: &[u8],
    ) -> Result<CanaryCounts, RegistryError> {
        let targets = self.canary.targets(name).await;
        let mut counts = CanaryCounts::default();
        for target in targets {
            let fail = |stage, reason: String| {
                rejected(name, wasm, stage, Some(target.integration.clone()), reason)
            };
            let ctx = CallContext {
                integration: Some(target.integration.clone()),
                run: Some("canary".into()),
                policy: Arc::new(OutboundPolicy::deny_all()),
                credentials: None,
                stored_keys: None,
            };
            let configured = match self
                .engine
                .configure(plugin, &ctx, &target.settings, &target.host)
                .await
            {
                Ok(Ok(configured)) => configured,
                Ok(Err(errors)) => {
                    let reason = errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(fail(
                        Stage::CanaryConfigure,
                        format!("the integration's settings are refused: {reason}"),
                    ));
                }
                Err(e) => return Err(fail(Stage::CanaryConfigure, e.to_string())),
            };
            counts.configured += 1;
            let Some(session) = &target.session else {
                continue;
            };
            // The policy the integration's calls get, and no credentials: what leaves carries
            // no token.
            let rules = EgressRules::new(
                plugin.manifest.clone(),
                session.extra_origins.clone(),
                target.host.allow_insecure_loopback,
            );
            let policy = OutboundPolicy::for_integration(
                rules,
                &configured.allowed_hosts,
                Some(&session.grant.instance_url),
            )
            .map_err(|e| fail(Stage::CanaryConfigure, e.to_string()))?;
            let ctx = CallContext {
                policy: Arc::new(policy),
                credentials: None,
                ..ctx
            };
            let session = Session {
                settings: target.settings.clone(),
                host: target.host.clone(),
                grant: session.grant.clone(),
            };
            match self.engine.test(plugin, &ctx, &session).await {
                Ok(report) => {
                    if let Some(failure) = report.failure
                        && blames_the_version(failure.kind)
                    {
                        return Err(fail(
                            Stage::CanaryTest,
                            format!("{:?}: {}", failure.kind, failure.message),
                        ));
                    }
                }
                Err(e) => return Err(fail(Stage::CanaryTest, e.to_string())),
            }
            counts.tested += 1;
            let Some(stream) = configured.streams.first() else {
                continue;
            };
            let request = PullRequest {
                stream: stream.name.clone(),
                checkpoint: None,
                max_records: CANARY_PULL_RECORDS,
            };
            match self.engine.pull(plugin, &ctx, &session, &request).await {
                Ok(Ok(page)) if page.rows.len() > CANARY_PULL_RECORDS as usize => {
                    return Err(fail(
                        Stage::CanaryPull,
                        format!(
                            "a page of at most {CANARY_PULL_RECORDS} records was asked for and \
                             {} came back",
                            page.rows.len()
                        ),
                    ));
                }
                Ok(Ok(_)) => {}
                Ok(Err(failure)) if blames_the_version(failure.kind) => {
                    return Err(fail(
                        Stage::CanaryPull,
                        format!("{:?}: {}", failure.kind, failure.message),
                    ));
                }
                Ok(Err(failure)) => {
                    tracing::debug!(plugin = name, integration = %target.integration, kind = ?failure.kind, "canary pull failed as expected without credentials");
                }
                Err(e) => return Err(fail(Stage::CanaryPull, e.to_string())),
            }
            counts.pulled += 1;
        }
        Ok(counts)
    }

    /// Makes `version` of `name` serve calls again (rollback), without a canary.
    pub fn activate(&self, name: &str, version: u32) -> Result<(), RegistryError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| RegistryError::UnknownPlugin(name.to_string()))?;
        let plugin = slot
            .plugin(version)
            .ok_or_else(|| RegistryError::UnknownVersion {
                plugin: name.to_string(),
                version,
            })?;
        let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        self.publish(name, &slot, version, plugin, SystemTime::now())?;
        tracing::info!(plugin = name, version, "plugin version activated");
        Ok(())
    }

    /// Records `version` as active in the store, then swaps it in. Call with `publishing`
    /// held.
    fn publish(
        &self,
        name: &str,
        slot: &Slot,
        version: u32,
        plugin: Arc<LoadedPlugin>,
        now: SystemTime,
    ) -> Result<(), RegistryError> {
        let already = slot
            .active
            .load()
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(a, &plugin));
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
        slot.active.store(Some(plugin));
        Ok(())
    }

    fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn slot_or_create(&self, name: &str) -> Arc<Slot> {
        self.plugins
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
        plugin: name.to_string(),
        sha256: super::hex(&sha2::Sha256::digest(wasm)),
        stage,
        integration,
        reason,
    }
}

/// The plugin name of a dropped file: its stem up to an optional `@` (so `salesforce@2.wasm`
/// installs a version of `salesforce`).
pub fn plugin_name_of(path: &Path) -> Option<String> {
    if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let name = stem.split('@').next()?.trim();
    (!name.is_empty() && !name.starts_with('.')).then(|| name.to_string())
}

/// Watches a plugins directory while it lives; dropping it stops the watch.
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DirWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Installs every `.wasm` file in `dir` now and whenever one is written or dropped there
/// (with the canary), until the returned watcher is dropped. `serve` calls it. Files whose
/// bytes are already an installed version are skipped; rejections are logged.
pub fn watch_plugins_dir(
    registry: Arc<PluginRegistry>,
    dir: impl Into<PathBuf>,
) -> Result<DirWatcher, RegistryError> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let dir = dir.into();
    std::fs::create_dir_all(&dir)
        .map_err(|e| RegistryError::Io(format!("creating {}: {e}", dir.display())))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let sender = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_))
        {
            for path in event.paths {
                let _ = sender.send(path);
            }
        }
    })
    .map_err(|e| RegistryError::Io(format!("watching {}: {e}", dir.display())))?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| RegistryError::Io(format!("watching {}: {e}", dir.display())))?;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let _ = tx.send(entry.path());
        }
    }
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Let writers finish: gather events until the directory is quiet.
            let mut pending = vec![first];
            while let Ok(Some(path)) =
                tokio::time::timeout(Duration::from_millis(300), rx.recv()).await
            {
                pending.push(path);
            }
            pending.sort();
            pending.dedup();
            for path in pending {
                install_file(&registry, &path).await;
            }
        }
    });
    Ok(DirWatcher {
        _watcher: watcher,
        task,
    })
}

async fn install_file(registry: &PluginRegistry, path: &Path) {
    let Some(name) = plugin_name_of(path) else {
        return;
    };
    let owned = path.to_path_buf();
    // A symlink in the plugins directory is refused: whoever can drop one could point it at
    // a device or a FIFO, or at a file they do not own.
    let read = tokio::task::spawn_blocking(move || read_component_file(&owned, Symlinks::Refuse))
        .await
        .map_err(|e| RegistryError::Io(format!("reading task failed: {e}")));
    let wasm = match read.and_then(|r| r) {
        Ok(wasm) => wasm,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read dropped plugin");
            return;
        }
    };
    let sha = {
        use sha2::Digest;
        super::hex(&sha2::Sha256::digest(&wasm))
    };
    // Known bytes are skipped, so a restart's scan never undoes a rollback; re-activating an
    // old version is `activate`'s job.
    if registry
        .list(Some(&name))
        .iter()
        .any(|v| v.record.sha256 == sha)
    {
        tracing::debug!(file = %path.display(), plugin = %name, "dropped plugin already installed");
        return;
    }
    match registry.install(&name, &wasm, true).await {
        Ok(report) => {
            tracing::info!(file = %path.display(), plugin = %name, version = report.version, "installed dropped plugin")
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), plugin = %name, error = %e, "dropped plugin rejected")
        }
    }
}

/// Whether `name` may name a plugin: 1 to 64 of `a-z`, `0-9`, `-` and `_`, starting with a
/// letter or digit. Plugin names end up in file names, URL paths and terminal output.
pub fn valid_plugin_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 64
        && matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

/// The largest component file [`read_component_file`] reads.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// Whether [`read_component_file`] follows a symbolic link at the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Read the file a link points to (the CLI: the operator names the file).
    Follow,
    /// Refuse a link (the watched plugins directory).
    Refuse,
}

/// Reads a component file: a regular file of at most [`MAX_COMPONENT_BYTES`]. Devices, FIFOs
/// and sockets are refused (their reads never end or block), checked on the opened
/// descriptor so that the file cannot be swapped between the check and the read.
pub fn read_component_file(path: &Path, symlinks: Symlinks) -> Result<Vec<u8>, RegistryError> {
    use std::io::Read;
    let bad = |reason: String| RegistryError::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    if symlinks == Symlinks::Refuse
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(bad(
            "is a symbolic link; put the component file itself here".into(),
        ));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking, so that opening a FIFO does not wait for a writer; no effect on the
        // reads of a regular file.
        let mut flags = libc::O_NONBLOCK;
        if symlinks == Symlinks::Refuse {
            flags |= libc::O_NOFOLLOW;
        }
        options.custom_flags(flags);
    }
    let file = options
        .open(path)
        .map_err(|e| bad(format!("cannot open it: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("cannot inspect it: {e}")))?;
    if !meta.is_file() {
        return Err(bad(format!(
            "is {}, not a regular file; give the path of a .wasm component",
            file_kind(&meta)
        )));
    }
    let too_big = |size: u64| {
        bad(format!(
            "is {size} bytes or more; a component may have at most {MAX_COMPONENT_BYTES} bytes"
        ))
    };
    if meta.len() > MAX_COMPONENT_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut wasm = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut wasm)
        .map_err(|e| bad(format!("cannot read it: {e}")))?;
    // It may have grown since it was inspected.
    if wasm.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(too_big(wasm.len() as u64));
    }
    Ok(wasm)
}

/// What kind of file `meta` describes, for an error message.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// Applies other processes' installs and activations (see [`PluginRegistry::sync`]) while it
/// lives; dropping it stops.
pub struct StoreFollower {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StoreFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Syncs `registry` with its store every `every` until the returned follower is dropped.
/// `serve` runs one, so that `sluice plugin activate` or `install` in another process reaches
/// it even when no run is going on (runs also sync before every page).
pub fn follow_store(registry: Arc<PluginRegistry>, every: Duration) -> StoreFollower {
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = registry.sync().await {
                tracing::warn!(error = %e, "cannot read the plugin versions from the store");
            }
        }
    });
    StoreFollower { task }
}
