//! Engine figures: cold compile, cached load, per-call overhead and install to first call.

use super::*;
use crate::bare_wasmtime::{Allocation, BareWasmtime};
use sluice_test_support::with_custom_section;

/// Instantiate samples: this many alternating batches of Sluice and of the two plain wasmtime
/// references.
const INSTANTIATE_BATCHES: usize = 10;
/// Calls per batch.
const INSTANTIATE_BATCH: usize = 500;

pub(crate) fn limits() -> EngineLimits {
    EngineLimits {
        max_concurrent_calls: 64,
        ..EngineLimits::default()
    }
}

pub(crate) fn wit_settings() -> wt::Settings {
    wt::Settings {
        capability: wt::Capability::Helpdesk,
        environment: wt::Environment::Production,
        pull_by: Some(wt::PullBy::UpdatedTime),
        domain: None,
        extra: vec![("objects".into(), "Case".into())],
    }
}

pub(crate) fn wit_host() -> wt::HostContext {
    wt::HostContext {
        allow_insecure_loopback: false,
        contract_version: sluice::engine::wit::VERSION.into(),
    }
}

/// Cold compile, cached load, fresh-instance call overhead and install -> first call, for the
/// Salesforce component (as in `host/benches/engine.rs`).
pub(crate) async fn engine_figures(out: &mut serde_json::Map<String, Value>) -> anyhow::Result<()> {
    let wasm = sluice::SALESFORCE_COMPONENT;
    let scratch = temp_dir("bench-engine");

    let engine = ConnectorEngine::new(limits())?;
    let mut samples = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        engine.load("salesforce", wasm)?;
        samples.push(start.elapsed());
    }
    out.insert(
        "cold_compile_ms".into(),
        json!(round(ms(percentile(&mut samples, 0.5)), 1)),
    );

    let cached = ConnectorEngine::with_cache(limits(), Some(&scratch.join("cache")))?;
    cached.load_with_outcome("salesforce", wasm)?;
    let mut samples = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        cached.load_with_outcome("salesforce", wasm)?;
        samples.push(start.elapsed());
    }
    out.insert(
        "cached_load_ms".into(),
        json!(round(ms(percentile(&mut samples, 0.5)), 3)),
    );

    // A fresh store + instance per call, with the cheapest export (`configure`, no I/O), next
    // to plain wasmtime doing the same; batches alternate so that both see the same machine.
    let connector = engine.load("salesforce", wasm)?;
    let ctx = CallContext {
        policy: Arc::new(OutboundPolicy::deny_all()),
        ..CallContext::default()
    };
    let (settings, host) = (wit_settings(), wit_host());
    let bare = BareWasmtime::new(wasm, Allocation::OnDemand)?;
    let pooled = BareWasmtime::new(wasm, Allocation::Pooling)?;
    for _ in 0..200 {
        let _ = engine.configure(&connector, &ctx, &settings, &host).await?;
        bare.instantiate_and_configure(&settings, &host).await?;
        pooled.instantiate_and_configure(&settings, &host).await?;
    }
    let mut samples = Vec::new();
    let (mut bare_samples, mut pooled_samples) = (Vec::new(), Vec::new());
    for _ in 0..INSTANTIATE_BATCHES {
        for _ in 0..INSTANTIATE_BATCH {
            let start = Instant::now();
            let _ = engine.configure(&connector, &ctx, &settings, &host).await?;
            samples.push(start.elapsed());
        }
        for (reference, samples) in [(&bare, &mut bare_samples), (&pooled, &mut pooled_samples)] {
            for _ in 0..INSTANTIATE_BATCH {
                let start = Instant::now();
                reference
                    .instantiate_and_configure(&settings, &host)
                    .await?;
                samples.push(start.elapsed());
            }
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p50 = us(percentile(&mut samples, 0.5));
    let p99 = us(percentile(&mut samples, 0.99));
    let bare_p50 = us(percentile(&mut bare_samples, 0.5));
    let pooled_p50 = us(percentile(&mut pooled_samples, 0.5));
    out.insert("instantiate_us_p50".into(), json!(round(p50, 1)));
    out.insert("instantiate_us_p99".into(), json!(round(p99, 1)));
    out.insert(
        "wasmtime_instantiate_us_p50".into(),
        json!(round(bare_p50, 1)),
    );
    out.insert(
        "instantiate_vs_wasmtime".into(),
        json!(round(p50 / bare_p50, 2)),
    );
    out.insert(
        "wasmtime_pooling_instantiate_us_p50".into(),
        json!(round(pooled_p50, 1)),
    );
    out.insert(
        "instantiate_vs_wasmtime_pooling".into(),
        json!(round(p50 / pooled_p50, 2)),
    );

    // `connector install` of new bytes (compile, contract check, canary, publish) to the first call
    // on the new version. New bytes miss any cache, as a real new version does.
    let swap_engine = ConnectorEngine::with_cache(limits(), Some(&scratch.join("swap-cache")))?;
    let registry = ConnectorRegistry::new(
        swap_engine.clone(),
        Arc::new(MemoryVersionStore::default()),
        Arc::new(StaticCanaryTargets::default()),
    );
    // The operator approves the first version's manifest, as `sluice connector install
    // --approve-hosts` does; the measured versions then stay within it.
    registry
        .install_with_approval("salesforce", wasm, false, HostApproval::Approved)
        .await?;
    let mut samples = Vec::new();
    for round_no in 0..3u32 {
        let version = with_custom_section(wasm, "bench-version", &round_no.to_le_bytes());
        let start = Instant::now();
        let report = registry.install("salesforce", &version, true).await?;
        let active = registry.active("salesforce").context("no active version")?;
        if active.version != report.version {
            bail!("the installed version is not the active one");
        }
        let _ = swap_engine
            .configure(&active, &ctx, &settings, &host)
            .await?;
        samples.push(start.elapsed());
    }
    out.insert(
        "swap_ms".into(),
        json!(round(ms(percentile(&mut samples, 0.5)), 1)),
    );
    Ok(())
}
