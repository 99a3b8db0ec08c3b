//! The state of one store: one connector call, created fresh and dropped when the call ends.
//!
//! Threat: a guest exhausts the host's memory, either with one huge linear memory or with many
//! small ones (a component can hold several core instances, each with its own memory), or with
//! host-side resources (handles, header maps, buffered bodies), or reads the host's files and
//! environment. Rule: the store's [`CallLimiter`] sums every linear memory and table of the
//! store against the connector's cap and records which limit was hit, so the engine reports a
//! typed error without matching trap strings; the resource table and header maps are capped
//! and buffered bodies counted (see [`super::budget`]); the WASI context has no preopened
//! directories, no environment, no arguments, no stdio and no sockets.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::EngineLimits;
use super::bindings::latest::sluice::connector::host::{Host, Level};
use super::bindings::v0_1::sluice::connector::host as host_v0_1;
use super::budget::BufferBudget;
use super::cpu::CpuClock;
use super::host_log::GuestLog;
use super::outbound::OutboundHooks;
use super::stored_keys::KeyAccess;

/// Most table elements one store may hold, summed over its tables.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Most core instances, tables or memories one store may create.
const MAX_STORE_OBJECTS: usize = 1000;

/// The error a store's limiter raises; the engine downcasts it to name the limit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} would grow to {requested} bytes, over the cap of {cap} bytes")]
pub struct GrowthDenied {
    /// `linear memory` or `table`.
    pub what: &'static str,
    /// The total the store would have held.
    pub requested: usize,
    /// The cap.
    pub cap: usize,
}

/// A [`ResourceLimiter`] that caps the sum of all linear memories of a store.
#[derive(Debug)]
pub struct CallLimiter {
    memory_cap: usize,
    memory_total: usize,
    table_total: usize,
    /// The first growth this limiter refused, if any.
    pub hit: Option<GrowthDenied>,
}

impl CallLimiter {
    /// A limiter allowing `memory_cap` bytes of linear memory in total.
    pub fn new(memory_cap: usize) -> Self {
        Self {
            memory_cap,
            memory_total: 0,
            table_total: 0,
            hit: None,
        }
    }

    /// Bytes of linear memory the store holds now.
    pub fn memory_total(&self) -> usize {
        self.memory_total
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_total - current.min(self.memory_total) + desired;
        if total > self.memory_cap {
            let denied = GrowthDenied {
                what: "linear memory",
                requested: total,
                cap: self.memory_cap,
            };
            self.hit.get_or_insert(denied.clone());
            // An error (rather than `Ok(false)`) traps at once with a typed cause, instead of
            // leaving the guest's allocator to abort with an anonymous `unreachable`.
            return Err(wasmtime::Error::new(denied));
        }
        self.memory_total = total;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_total - current.min(self.table_total) + desired;
        if total > MAX_TABLE_ELEMENTS {
            let denied = GrowthDenied {
                what: "table",
                requested: total * size_of::<usize>(),
                cap: MAX_TABLE_ELEMENTS * size_of::<usize>(),
            };
            self.hit.get_or_insert(denied.clone());
            return Err(wasmtime::Error::new(denied));
        }
        self.table_total = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_STORE_OBJECTS
    }

    fn tables(&self) -> usize {
        MAX_STORE_OBJECTS
    }

    fn memories(&self) -> usize {
        MAX_STORE_OBJECTS
    }
}

/// Everything a guest can reach during one call.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    /// The `sluice:connector/host` import.
    pub host: HostImports,
    /// Memory and table limits of this store.
    pub limits: CallLimiter,
    /// Time the call's future spent running (its CPU time).
    pub cpu: Arc<CpuClock>,
    /// Body bytes the host buffers for the call (shared with the hooks).
    pub budget: Arc<BufferBudget>,
    /// Set when the CPU deadline interrupted the call.
    pub cpu_exceeded: bool,
}

impl CallState {
    /// A sandboxed state: no preopened directories, no environment, no arguments, no sockets,
    /// no stdio. The only way out is wasi:http through `hooks`. Memory, live resources and
    /// header maps are capped by `limits`.
    pub fn new(hooks: OutboundHooks, host: HostImports, limits: &EngineLimits) -> Self {
        let wasi = WasiCtx::builder().build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(limits.max_header_map_bytes);
        let budget = hooks.budget.clone();
        Self {
            wasi,
            table,
            http,
            hooks,
            host,
            limits: CallLimiter::new(limits.memory_bytes),
            cpu: Arc::default(),
            budget,
            cpu_exceeded: false,
        }
    }
}

/// The host interface a guest imports: its log sink and its view of the stored keys.
pub struct HostImports {
    /// Where the guest's log lines go.
    pub log: GuestLog,
    /// What `stored-keys` may read.
    pub keys: KeyAccess,
}

impl Host for HostImports {
    fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.log.write(level, message, fields);
        Ok(())
    }

    fn stored_keys(&mut self, after: Option<String>, limit: u32) -> wasmtime::Result<Vec<String>> {
        self.keys.keys(after.as_deref(), limit)
    }
}

/// A 0.1 component's host imports: the same services, with 0.1's copy of the level enum.
impl host_v0_1::Host for HostImports {
    fn log(
        &mut self,
        level: host_v0_1::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let level = match level {
            host_v0_1::Level::Trace => Level::Trace,
            host_v0_1::Level::Debug => Level::Debug,
            host_v0_1::Level::Info => Level::Info,
            host_v0_1::Level::Warn => Level::Warn,
            host_v0_1::Level::Error => Level::Error,
        };
        Host::log(self, level, message, fields)
    }

    fn stored_keys(&mut self, after: Option<String>, limit: u32) -> wasmtime::Result<Vec<String>> {
        Host::stored_keys(self, after, limit)
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_every_memory_of_the_store() {
        let mut limiter = CallLimiter::new(64 << 20);
        // Two memories of 40 MiB each: the second growth crosses the sum.
        assert!(limiter.memory_growing(0, 40 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 40 << 20, None).is_err());
        let hit = limiter.hit.clone().expect("recorded");
        assert_eq!((hit.requested, hit.cap), (80 << 20, 64 << 20));
        // Growing an existing memory counts only the difference.
        assert!(limiter.memory_growing(40 << 20, 60 << 20, None).unwrap());
        assert_eq!(limiter.memory_total(), 60 << 20);
    }
}
