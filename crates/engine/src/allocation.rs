//! How instances get their memory: the pooling allocator, or memory per call when the
//! process runs under an address-space limit.

use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::EngineLimits;

/// Chooses how instances get their memory.
///
/// The pooling allocator reserves, up front, address space for every memory of every
/// concurrent call (by default 4 GiB each plus guards: about 2 TiB for 256 calls), which
/// fails outright under an address-space limit (`ulimit -v`). With such a limit the engine
/// allocates per call instead, reserving only the memory cap (plus a small guard) for each
/// memory: startup always works, and a call that does not fit in what the limit leaves fails
/// alone, with a clear instantiation error. Without guard regions wasmtime bounds-checks
/// explicitly, so guests run somewhat slower in that mode.
pub(crate) fn configure_allocation(
    config: &mut Config,
    limits: &EngineLimits,
    address_space: Option<u64>,
) {
    match address_space {
        None => {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(limits.max_concurrent_calls)
                .total_core_instances(limits.max_concurrent_calls * 8)
                .total_memories(limits.max_concurrent_calls * 2)
                .total_tables(limits.max_concurrent_calls * 8)
                .max_memory_size(limits.memory_bytes);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        Some(limit) => {
            const WASM_PAGE: u64 = 64 << 10;
            let reservation = (limits.memory_bytes as u64).div_ceil(WASM_PAGE) * WASM_PAGE;
            tracing::info!(
                address_space_limit = limit,
                memory_reservation = reservation,
                "address space is limited: allocating instances per call instead of from a pool"
            );
            config
                .allocation_strategy(InstanceAllocationStrategy::OnDemand)
                .memory_reservation(reservation)
                .memory_reservation_for_growth(0)
                .memory_guard_size(WASM_PAGE);
        }
    }
}

/// The process's address-space limit (`ulimit -v`), if one is set.
#[cfg(unix)]
#[allow(unsafe_code)] // One libc call; see the SAFETY comment.
pub(crate) fn address_space_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) };
    // `rlim_t` is `u64` on Linux but not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    let current = limit.rlim_cur as u64;
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(current)
}

/// The process's address-space limit; none known off Unix.
#[cfg(not(unix))]
pub(crate) fn address_space_limit() -> Option<u64> {
    None
}
