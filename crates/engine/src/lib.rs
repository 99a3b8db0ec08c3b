//! The connector engine: loads connector components and runs each call in a fresh sandbox.
//!
//! One `wasmtime::Engine` (pooling allocator, epoch interruption) serves every connector. A loaded
//! connector keeps a pre-linked `InstancePre`; every call gets its own `Store` and instance, so a
//! trap or a leak in one call cannot reach the next, and a hot-swapped version simply serves the
//! next call.
//!
//! - [`EngineLimits`]: CPU deadline (the time the call's future is polled, checked on epochs:
//!   [`cpu`]), wall-clock timeout, memory cap summed over every linear memory
//!   ([`state::CallLimiter`]), live resources, header maps and buffered bodies ([`budget`]),
//!   page size cap, `describe` and `discover` answer caps ([`answer_size`]) and the outbound
//!   limits. Exceeding one gives
//!   [`EngineError::LimitExceeded`] naming the limit, the connector and the call.
//! - [`outbound`]: the wasi:http policy hook (allow-list, DNS checks, host-side credentials,
//!   refresh, retries, caps). [`credentials`]: the token-store interface.
//! - [`host_log`] and [`stored_keys`]: the `sluice:connector/host` import (guest logs, and the
//!   stored keys of the stream being pulled).
//! - [`cache`]: host-authenticated `.cwasm` compile cache. [`registry`]: versions, canary,
//!   atomic hot swap, rollback, the connectors-directory watcher. [`metrics`]: counters.

mod allocation;
pub mod answer_size;
pub mod backoff;
pub mod bindings;
pub mod budget;
pub mod cache;
mod calls;
pub mod contract;
pub mod cpu;
pub mod credentials;
mod error;
pub mod gzip;
pub mod host_log;
pub mod manifest;
pub mod metrics;
pub mod outbound;
pub mod policy;
pub mod pool;
pub mod registry;
pub mod resolver;
pub mod retry;
pub mod roots;
pub mod state;
pub mod stored_keys;

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, Store, UpdateDeadline};

use allocation::{address_space_limit, configure_allocation};
pub use bindings::latest as wit;
use budget::BufferBudget;
use cache::{CacheOutcome, CompileCache};
use credentials::CredentialProvider;
pub use error::{EngineError, Limit};
use host_log::GuestLog;
use metrics::EngineMetrics;
use outbound::{CallLabel, OutboundHooks, OutboundLimits, OutboundPolicy, OutboundShared};
use state::{CallState, HostImports};
use stored_keys::KeyAccess;
pub use stored_keys::KeySource;

/// How often the epoch ticker advances.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Ticks a guest runs before the engine checks its CPU budget and yields to the executor.
const SLICE_TICKS: u64 = 5;

/// Resource limits of each connector call.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// Guest CPU time one call may use before it is interrupted: the time the call ran
    /// (never the time it waited on a pollable), checked every 50 ms of guest execution.
    pub cpu_deadline: Duration,
    /// Wall-clock time one call may take, including time blocked in host calls (HTTP).
    pub wall_timeout: Duration,
    /// Linear memory one call may hold, summed over all its memories, in bytes.
    pub memory_bytes: usize,
    /// Resources (handles: requests, bodies, streams, header maps, pollables) one call may
    /// hold at once.
    pub max_resources: usize,
    /// Bytes one header map a guest builds may hold (roughly, in memory).
    pub max_header_map_bytes: usize,
    /// How many calls may be live at once across all connectors (pool size).
    pub max_concurrent_calls: u32,
    /// Largest page a `pull` may return: the bytes of its rows' keys, cursors and JSON. The
    /// default fits a bulk export's results chunk of 100,000 records of about 1 KiB.
    pub max_page_bytes: usize,
    /// Largest answer `describe` may give: the bytes of its strings (names, labels, help,
    /// options). A connector's description of itself is read before any integration exists.
    pub max_describe_bytes: usize,
    /// Largest answer `discover` may give: the bytes of its streams' names, schemas, keys and
    /// cursor fields. The default fits a few thousand objects' JSON Schemas.
    pub max_discover_bytes: usize,
    /// Outbound HTTP limits: body caps, per-integration concurrency, timeouts, retries.
    pub outbound: OutboundLimits,
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self {
            cpu_deadline: Duration::from_secs(10),
            wall_timeout: Duration::from_secs(300),
            memory_bytes: 256 << 20,
            max_resources: 1024,
            max_header_map_bytes: 16 << 10,
            max_concurrent_calls: 256,
            max_page_bytes: 128 << 20,
            max_describe_bytes: 1 << 20,
            max_discover_bytes: 64 << 20,
            outbound: OutboundLimits::default(),
        }
    }
}

/// A compiled, pre-linked connector version, ready to serve calls.
pub struct LoadedConnector {
    /// The connector's name, e.g. `salesforce`.
    pub name: String,
    /// The registry's version number (1, 2, ...); 0 for a connector loaded outside the registry.
    pub version: u32,
    /// A short name for logs and errors, e.g. `salesforce@3f2a9c1b`.
    pub label: String,
    /// The sha256 of the component bytes, hex.
    pub sha256: String,
    /// The contract version the component targets.
    pub contract: &'static str,
    /// What its `sluice:manifest` section declares (the registry publishes a version only
    /// once the operator approved it).
    pub manifest: Arc<manifest::Manifest>,
    pre: contract::Pre,
}

impl std::fmt::Debug for LoadedConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedConnector")
            .field("label", &self.label)
            .field("version", &self.version)
            .field("contract", &self.contract)
            .finish()
    }
}

/// Who a call is for, where it may send requests, and whose credentials it uses.
#[derive(Clone, Default)]
pub struct CallContext {
    /// The integration the call serves.
    pub integration: Option<String>,
    /// The run the call belongs to.
    pub run: Option<String>,
    /// The outbound policy of the call (see [`OutboundPolicy::for_integration`]).
    pub policy: Arc<OutboundPolicy>,
    /// The integration's token source. Requests to the policy's credential hosts get
    /// `Authorization: Bearer` from it; `None` sends no credentials.
    pub credentials: Option<Arc<dyn CredentialProvider>>,
    /// The integration's stored keys, answered to `stored-keys` during `pull`.
    pub stored_keys: Option<Arc<dyn KeySource>>,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("integration", &self.integration)
            .field("run", &self.run)
            .field("policy", &self.policy)
            .field("credentials", &self.credentials.is_some())
            .field("stored_keys", &self.stored_keys.is_some())
            .finish()
    }
}

/// The engine shared by all connectors.
pub struct ConnectorEngine {
    engine: Engine,
    linker: Linker<CallState>,
    limits: EngineLimits,
    metrics: Arc<EngineMetrics>,
    outbound: Arc<OutboundShared>,
    cache: Option<CompileCache>,
}

impl ConnectorEngine {
    /// An engine with the given limits and no compile cache, and a ticker thread that drives
    /// CPU deadlines.
    pub fn new(limits: EngineLimits) -> Result<Arc<Self>, EngineError> {
        Self::with_cache(limits, None)
    }

    /// Like [`ConnectorEngine::new`], with compiled components cached in `cache_dir`.
    pub fn with_cache(
        limits: EngineLimits,
        cache_dir: Option<&Path>,
    ) -> Result<Arc<Self>, EngineError> {
        let setup = |e: wasmtime::Error| EngineError::Setup(format!("{e:#}"));
        let mut config = Config::new();
        config.epoch_interruption(true);
        configure_allocation(&mut config, &limits, address_space_limit());
        let engine = Engine::new(&config).map_err(setup)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(setup)?;
        // Each contract version imports its own copy of the host interface.
        type Imports = wasmtime::component::HasSelf<HostImports>;
        bindings::v0_1::sluice::connector::host::add_to_linker::<_, Imports>(
            &mut linker,
            |state: &mut CallState| &mut state.host,
        )
        .map_err(setup)?;
        bindings::v0_2::sluice::connector::host::add_to_linker::<_, Imports>(
            &mut linker,
            |state: &mut CallState| &mut state.host,
        )
        .map_err(setup)?;
        let cache = cache_dir
            .map(CompileCache::open)
            .transpose()
            .map_err(|e| EngineError::Setup(e.to_string()))?;
        let metrics = Arc::new(EngineMetrics::default());
        let outbound = Arc::new(OutboundShared::new(
            limits.outbound.clone(),
            metrics.clone(),
        ));
        let this = Arc::new(Self {
            engine,
            linker,
            limits,
            metrics,
            outbound,
            cache,
        });
        spawn_epoch_ticker(Arc::downgrade(&this));
        Ok(this)
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &EngineLimits {
        &self.limits
    }

    /// The engine's counters.
    pub fn metrics(&self) -> &Arc<EngineMetrics> {
        &self.metrics
    }

    /// The outbound requests refused since the last call, oldest first (the latest 256).
    pub fn take_denials(&self) -> Vec<outbound::Denial> {
        self.outbound.take_denials()
    }

    /// Outbound connections kept for reuse now (an HTTP/2 one counting once).
    pub fn idle_connections(&self) -> usize {
        self.outbound.idle_connections()
    }

    /// The underlying wasmtime engine (benchmarks and the compile cache use it).
    pub fn wasmtime(&self) -> &Engine {
        &self.engine
    }

    /// The compile cache, if the engine has one.
    pub fn cache(&self) -> Option<&CompileCache> {
        self.cache.as_ref()
    }

    /// Compiles and checks a component: it must be a valid component, export a supported
    /// contract version, and link against this host.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<LoadedConnector, EngineError> {
        self.load_with_outcome(name, wasm)
            .map(|(connector, _)| connector)
    }

    /// [`ConnectorEngine::load`], also saying whether the compile cache served the component.
    pub fn load_with_outcome(
        &self,
        name: &str,
        wasm: &[u8],
    ) -> Result<(LoadedConnector, CacheOutcome), EngineError> {
        let sha256 = hex(&Sha256::digest(wasm));
        let label = format!("{name}@{}", &sha256[..12]);
        let invalid = |e: wasmtime::Error| EngineError::InvalidComponent {
            connector: label.clone(),
            detail: format!("{e:#}"),
        };
        // Reject core modules and garbage before they reach the compiler or the cache.
        if !wasmparser_is_component(wasm) {
            return Err(EngineError::InvalidComponent {
                connector: label.clone(),
                detail: "not a WebAssembly component (wrong magic or layer)".into(),
            });
        }
        let manifest =
            manifest::Manifest::of_component(wasm).map_err(|e| EngineError::InvalidComponent {
                connector: label.clone(),
                detail: e.to_string(),
            })?;
        let (component, outcome) = match &self.cache {
            Some(cache) => cache
                .load_or_compile_sha(&self.engine, wasm, &sha256)
                .map_err(invalid)?,
            None => (
                Component::new(&self.engine, wasm).map_err(invalid)?,
                CacheOutcome::Uncached("no cache configured".into()),
            ),
        };
        let contract = self.contract_of(&label, &component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(|pre| contract::Pre::new(contract, pre))
            .map_err(|e| EngineError::Link {
                connector: label.clone(),
                detail: format!("{e:#}"),
            })?;
        Ok((
            LoadedConnector {
                name: name.to_string(),
                version: 0,
                label,
                sha256,
                contract,
                manifest: Arc::new(manifest),
                pre,
            },
            outcome,
        ))
    }

    /// The contract version a component's exports target.
    fn contract_of(&self, label: &str, component: &Component) -> Result<&'static str, EngineError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
            .map(|(name, _)| name.to_string())
            .collect();
        if let Some(version) = contract::version_of(&exports) {
            return Ok(version);
        }
        Err(EngineError::UnsupportedContract {
            connector: label.to_string(),
            found: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
            supported: [bindings::v0_2::EXPORT, bindings::v0_1::EXPORT].join(" or "),
        })
    }

    /// A fresh store and instance for one call.
    async fn instantiate(
        &self,
        connector: &LoadedConnector,
        ctx: &CallContext,
        stream: Option<&str>,
    ) -> Result<(Store<CallState>, contract::Instance), EngineError> {
        let label = CallLabel {
            connector: connector.label.as_str().into(),
            integration: ctx.integration.as_deref().map(Into::into),
        };
        let hooks = OutboundHooks {
            policy: ctx.policy.clone(),
            label,
            credentials: ctx.credentials.clone(),
            shared: self.outbound.clone(),
            budget: BufferBudget::new(self.limits.outbound.max_buffered_bytes),
        };
        let log = GuestLog::new(
            connector.label.clone(),
            ctx.integration.clone(),
            ctx.run.clone(),
        );
        let host = HostImports {
            log,
            keys: KeyAccess::new(ctx.stored_keys.clone(), stream.map(String::from)),
        };
        let mut store = Store::new(&self.engine, CallState::new(hooks, host, &self.limits));
        store.limiter(|s| &mut s.limits);
        // The CPU deadline counts the time the call's future is polled (see `cpu`). Every
        // slice the guest yields to the executor, so a spinning guest cannot hold a worker
        // thread and the wall-clock timeout can always fire.
        let budget = self.limits.cpu_deadline;
        store.set_epoch_deadline(SLICE_TICKS);
        store.epoch_deadline_callback(move |mut ctx| {
            if ctx.data().cpu.used() >= budget {
                ctx.data_mut().cpu_exceeded = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(SLICE_TICKS))
        });
        EngineMetrics::bump(&self.metrics.calls);
        let cpu = store.data().cpu.clone();
        let instance = match cpu.meter(connector.pre.instantiate(&mut store)).await {
            Ok(instance) => instance,
            Err(e) => return Err(self.classify(connector, "instantiate", &store, e)),
        };
        Ok((store, instance))
    }
}

/// Whether `wasm` starts with the header of a component (not a core module).
fn wasmparser_is_component(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm[..4] == *b"\0asm" && wasm[6..8] == [1, 0]
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn spawn_epoch_ticker(engine: Weak<ConnectorEngine>) {
    std::thread::Builder::new()
        .name("sluice-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
