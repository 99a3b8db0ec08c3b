//! Plugin versions and hot swap.
//!
//! Threat: a new plugin version — broken, built for another contract, or hostile — replaces a
//! working one and breaks every integration at once, or a swap tears a running pull. Rule: a
//! version is published only after it passed, in order: (1) it is a valid component; (2) it
//! targets a contract version this host supports and links against the host
//! (`instantiate_pre`); (2b) its static manifest (see [`super::manifest`]) reaches no host or
//! credentialed method beyond the active version's, unless the operator approved it; (3) a
//! canary in scratch stores runs `configure` for every integration using the plugin and,
//! where credentials exist, `test`. Any failure rejects the version with
//! its reason and the old one keeps serving. Publication is one atomic pointer swap
//! ([`ArcSwapOption`]): a call holds the `Arc<LoadedPlugin>` it started with, so in-flight
//! calls finish on the old version and the next call (the next page, from the committed
//! checkpoint) runs on the new one. Every version stays loaded, so rollback is one swap.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;

use super::cache::CacheOutcome;
use super::credentials::{BoxFuture, CredentialProvider};
use super::manifest::{Manifest, Widening};
use super::metrics::EngineMetrics;
use super::outbound::OutboundPolicy;
use super::policy::{EgressRules, Origin};
use super::wit::types::{Grant, HostContext, Session, Settings};
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

/// A version as a [`VersionStore`] returns it at start-up.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// The record.
    pub record: VersionRecord,
    /// The component bytes.
    pub wasm: Vec<u8>,
    /// Since when this version is the active one of its plugin; None if it is not active.
    pub active_since: Option<SystemTime>,
}

/// Why the version store failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin version store: {0}")]
pub struct StoreError(pub String);

/// Durable plugin versions. The runtime implements it on its database; [`MemoryVersionStore`]
/// serves tests.
pub trait VersionStore: Send + Sync + 'static {
    /// Saves a new version and its bytes (idempotent for the same name and version).
    fn put_version(&self, record: &VersionRecord, wasm: &[u8]) -> Result<(), StoreError>;
    /// Records that `version` of `name` is active since `since` (and no other version is).
    fn set_active(&self, name: &str, version: u32, since: SystemTime) -> Result<(), StoreError>;
    /// Every stored version, for [`PluginRegistry::restore`].
    fn load_all(&self) -> Result<Vec<StoredVersion>, StoreError>;
}

/// A [`VersionStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryVersionStore {
    versions: Mutex<Vec<StoredVersion>>,
}

impl VersionStore for MemoryVersionStore {
    fn put_version(&self, record: &VersionRecord, wasm: &[u8]) -> Result<(), StoreError> {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        if !versions
            .iter()
            .any(|v| v.record.name == record.name && v.record.version == record.version)
        {
            versions.push(StoredVersion {
                record: record.clone(),
                wasm: wasm.to_vec(),
                active_since: None,
            });
        }
        Ok(())
    }

    fn set_active(&self, name: &str, version: u32, since: SystemTime) -> Result<(), StoreError> {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        for v in versions.iter_mut().filter(|v| v.record.name == name) {
            v.active_since = (v.record.version == version).then_some(since);
        }
        Ok(())
    }

    fn load_all(&self) -> Result<Vec<StoredVersion>, StoreError> {
        Ok(self
            .versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
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
    /// Its grant and token source, where it has credentials; then `test` runs too.
    pub session: Option<CanarySession>,
}

/// The credentials of a [`CanaryTarget`].
#[derive(Clone)]
pub struct CanarySession {
    /// The non-secret grant.
    pub grant: Grant,
    /// The integration's token source.
    pub credentials: Arc<dyn CredentialProvider>,
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
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Component => "component validation",
            Stage::Contract => "contract check",
            Stage::CanaryConfigure => "canary configure",
            Stage::CanaryTest => "canary test",
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
    /// The version store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// The installed plugins, their versions, and which one serves each plugin's calls.
pub struct PluginRegistry {
    engine: Arc<PluginEngine>,
    store: Arc<dyn VersionStore>,
    canary: Arc<dyn CanaryTargets>,
    plugins: RwLock<BTreeMap<String, Arc<Slot>>>,
    installs: tokio::sync::Mutex<()>,
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
        let _guard = self.installs.lock().await;
        let stored = self.store.load_all()?;
        let mut loaded = 0;
        for version in stored {
            let record = version.record.clone();
            let engine = self.engine.clone();
            let name = record.name.clone();
            let result = tokio::task::spawn_blocking(move || engine.load(&name, &version.wasm))
                .await
                .map_err(|e| RegistryError::Io(format!("loading task failed: {e}")))?;
            let mut plugin = match result {
                Ok(plugin) => plugin,
                Err(e) => {
                    tracing::warn!(plugin = %record.name, version = record.version, error = %e, "stored plugin version no longer loads");
                    continue;
                }
            };
            plugin.version = record.version;
            let plugin = Arc::new(plugin);
            let slot = self.slot_or_create(&record.name);
            if version.active_since.is_some() {
                slot.active.store(Some(plugin.clone()));
            }
            slot.versions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Entry {
                    record,
                    plugin,
                    active_since: version.active_since,
                });
            loaded += 1;
        }
        Ok(loaded)
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
        let engine = self.engine.clone();
        let (owned_name, bytes) = (name.to_string(), wasm.to_vec());
        // Compilation is CPU work: keep it off the async workers.
        let loaded =
            tokio::task::spawn_blocking(move || engine.load_with_outcome(&owned_name, &bytes))
                .await
                .map_err(|e| RegistryError::Io(format!("loading task failed: {e}")))?;
        let (mut plugin, cache) = loaded.map_err(|e| {
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

        let (canary_configured, canary_tested) = if canary {
            self.run_canary(name, &plugin, wasm).await?
        } else {
            (0, 0)
        };

        let slot = self.slot_or_create(name);
        let now = SystemTime::now();
        let (version, existing, plugin) = {
            let versions = slot.versions.lock().unwrap_or_else(|e| e.into_inner());
            match versions.iter().find(|e| e.record.sha256 == sha256) {
                Some(entry) => (entry.record.version, true, entry.plugin.clone()),
                None => {
                    let version = versions.iter().map(|e| e.record.version).max().unwrap_or(0) + 1;
                    plugin.version = version;
                    (version, false, Arc::new(plugin))
                }
            }
        };
        if !existing {
            let record = VersionRecord {
                name: name.to_string(),
                version,
                sha256: sha256.clone(),
                contract: plugin.contract.to_string(),
                installed_at: now,
            };
            self.store.put_version(&record, wasm)?;
            slot.versions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Entry {
                    record,
                    plugin: plugin.clone(),
                    active_since: None,
                });
        }
        self.publish(name, &slot, version, plugin, now)?;
        Ok(InstallReport {
            name: name.to_string(),
            version,
            sha256,
            existing,
            cache,
            manifest,
            canary_configured,
            canary_tested,
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

    /// Runs `configure` (and `test` where credentials exist) for every integration of `name`.
    async fn run_canary(
        &self,
        name: &str,
        plugin: &LoadedPlugin,
        wasm: &[u8],
    ) -> Result<(usize, usize), RegistryError> {
        let targets = self.canary.targets(name).await;
        let (mut configured_count, mut tested) = (0, 0);
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
            configured_count += 1;
            let Some(session) = &target.session else {
                continue;
            };
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
                credentials: Some(session.credentials.clone()),
                ..ctx
            };
            let session = Session {
                settings: target.settings.clone(),
                host: target.host.clone(),
                grant: session.grant.clone(),
            };
            match self.engine.test(plugin, &ctx, &session).await {
                Ok(report) => {
                    if let Some(failure) = report.failure {
                        return Err(fail(
                            Stage::CanaryTest,
                            format!("{:?}: {}", failure.kind, failure.message),
                        ));
                    }
                }
                Err(e) => return Err(fail(Stage::CanaryTest, e.to_string())),
            }
            tested += 1;
        }
        Ok((configured_count, tested))
    }

    /// Makes `version` of `name` serve calls again (rollback), without a canary.
    pub fn activate(&self, name: &str, version: u32) -> Result<(), RegistryError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| RegistryError::UnknownPlugin(name.to_string()))?;
        let plugin = slot
            .versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|e| e.record.version == version)
            .map(|e| e.plugin.clone())
            .ok_or_else(|| RegistryError::UnknownVersion {
                plugin: name.to_string(),
                version,
            })?;
        self.publish(name, &slot, version, plugin, SystemTime::now())?;
        tracing::info!(plugin = name, version, "plugin version activated");
        Ok(())
    }

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
            if let Some(entry) = versions.iter_mut().find(|e| e.record.version == version) {
                entry.active_since = Some(now);
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
    let wasm = match tokio::fs::read(path).await {
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
