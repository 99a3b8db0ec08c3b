//! Engine counters: calls, traps, limit hits, outbound requests, denials, token refreshes and
//! retries.
//!
//! Plain atomics, cheap enough to bump on every call and every outbound request. The admin API
//! exposes them through [`EngineMetrics::render_prometheus`].

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by one [`super::ConnectorEngine`] and every call it runs.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// Connector calls started (configure, authorize, test, pull).
    pub calls: AtomicU64,
    /// Calls that ended in a guest trap (limit hits excluded).
    pub traps: AtomicU64,
    /// Calls stopped by a resource limit (CPU, wall clock, memory, page size, live resources,
    /// host buffers).
    pub limit_hits: AtomicU64,
    /// Outbound requests sent (each retry counts).
    pub outbound_requests: AtomicU64,
    /// Outbound requests refused by the policy.
    pub denials: AtomicU64,
    /// Token refreshes the engine asked the credential provider for.
    pub refreshes: AtomicU64,
    /// Outbound requests retried after a transient failure.
    pub retries: AtomicU64,
    /// Connector versions published by the registry.
    pub installs: AtomicU64,
    /// Connector versions the registry rejected.
    pub rejected_installs: AtomicU64,
}

impl EngineMetrics {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value of `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The counters in the Prometheus text exposition format.
    pub fn render_prometheus(&self) -> String {
        let rows: [(&str, &str, &AtomicU64); 9] = [
            (
                "sluice_connector_calls_total",
                "Connector calls started.",
                &self.calls,
            ),
            (
                "sluice_connector_traps_total",
                "Connector calls that trapped.",
                &self.traps,
            ),
            (
                "sluice_connector_limit_hits_total",
                "Connector calls stopped by a resource limit.",
                &self.limit_hits,
            ),
            (
                "sluice_outbound_requests_total",
                "Outbound HTTP requests sent by connectors, retries included.",
                &self.outbound_requests,
            ),
            (
                "sluice_outbound_denials_total",
                "Outbound HTTP requests refused by the policy.",
                &self.denials,
            ),
            (
                "sluice_token_refreshes_total",
                "Access-token refreshes after a 401.",
                &self.refreshes,
            ),
            (
                "sluice_outbound_retries_total",
                "Outbound HTTP requests retried after a transient failure.",
                &self.retries,
            ),
            (
                "sluice_connector_installs_total",
                "Connector versions published.",
                &self.installs,
            ),
            (
                "sluice_connector_rejected_installs_total",
                "Connector versions rejected by validation or canary.",
                &self.rejected_installs,
            ),
        ];
        let mut out = String::new();
        for (name, help, counter) in rows {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", Self::get(counter));
        }
        out
    }
}
