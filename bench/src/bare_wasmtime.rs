//! The reference for `instantiate_us_p50`: the same component instantiated and called by plain
//! wasmtime, with nothing of Sluice around it.
//!
//! A default `wasmtime::Config` (no epoch interruption, no limits; instances allocated on
//! demand, or from wasmtime's default pooling allocator for [`Allocation::Pooling`]), a
//! `Linker` with WASI and wasi:http as their crates provide them and the connector's `host`
//! interface doing nothing (`configure` calls none of them), one `instantiate_pre`; then per call a fresh
//! `Store` with a fresh WASI context, an instance and a call of the same export Sluice's figure
//! calls (`configure`, with the same arguments).

use sluice::engine::wit::sluice::connector::host;
use sluice::engine::wit::types as wt;
use sluice::engine::wit::{Connector, ConnectorPre};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView, default_hooks};

/// What a plain embedder keeps per store.
struct BareState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    host: NoHost,
}

/// The connector's `host` interface doing nothing: logs are dropped, nothing is stored.
struct NoHost;

impl host::Host for NoHost {
    fn log(
        &mut self,
        _level: host::Level,
        _message: String,
        _fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        Ok(())
    }

    fn stored_keys(
        &mut self,
        _after: Option<String>,
        _limit: u32,
    ) -> wasmtime::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for BareState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: default_hooks(),
        }
    }
}

/// How the plain engine allocates instances.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Allocation {
    /// wasmtime's default: memory mapped per instance.
    OnDemand,
    /// wasmtime's pooling allocator with its default slot sizes, as Sluice's engine uses it.
    Pooling,
}

/// Pool slots of the pooling reference: plenty for one call at a time, and little address
/// space to reserve.
const POOL_SLOTS: u32 = 16;

/// The component compiled and linked by plain wasmtime, ready to instantiate.
pub(crate) struct BareWasmtime {
    engine: Engine,
    pre: ConnectorPre<BareState>,
}

impl BareWasmtime {
    /// Compiles `wasm` with a default engine (but for `allocation`) and links it once.
    pub(crate) fn new(wasm: &[u8], allocation: Allocation) -> anyhow::Result<Self> {
        let mut config = Config::new();
        if let Allocation::Pooling = allocation {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(POOL_SLOTS)
                .total_core_instances(POOL_SLOTS * 8)
                .total_memories(POOL_SLOTS * 2)
                .total_tables(POOL_SLOTS * 8);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).map_err(error)?;
        let component = Component::new(&engine, wasm).map_err(error)?;
        let mut linker = Linker::<BareState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(error)?;
        host::add_to_linker::<_, HasSelf<NoHost>>(&mut linker, |state: &mut BareState| {
            &mut state.host
        })
        .map_err(error)?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(ConnectorPre::new)
            .map_err(error)?;
        Ok(Self { engine, pre })
    }

    /// One fresh store and instance, and one `configure` call on it.
    pub(crate) async fn instantiate_and_configure(
        &self,
        settings: &wt::Settings,
        host: &wt::HostContext,
    ) -> anyhow::Result<()> {
        let state = BareState {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            host: NoHost,
        };
        let mut store = Store::new(&self.engine, state);
        let instance: Connector = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(error)?;
        let configured = instance
            .sluice_connector_plugin()
            .call_configure(&mut store, settings, host)
            .await
            .map_err(error)?;
        configured.map_err(|errors| anyhow::anyhow!("bare configure refused: {errors:?}"))?;
        Ok(())
    }
}

/// wasmtime's error, with its causes, as the bench's.
fn error(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("bare wasmtime: {e:#}")
}
