//! Engine measurements (not a test: nothing here asserts a time).
//!
//! Run: `cargo bench -p sluice --bench engine` (release profile). Prints the cold compile time,
//! the cached load time, the fresh-instance-per-call overhead (p50/p99) and the time from
//! `install` to the first call on the new version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::engine::cache::CacheOutcome;
use sluice::engine::outbound::OutboundPolicy;
use sluice::engine::registry::{ConnectorRegistry, MemoryVersionStore, StaticCanaryTargets};
use sluice::engine::{CallContext, ConnectorEngine, EngineLimits};
use sluice_test_support::*;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i.min(samples.len() - 1)]
}

fn report(name: &str, samples: &mut [Duration]) {
    let p50 = percentile(samples, 0.50);
    let p99 = percentile(samples, 0.99);
    println!(
        "{name:<44} n={:<5} p50={:>10.3?} p99={:>10.3?}",
        samples.len(),
        p50,
        p99
    );
}

fn limits() -> EngineLimits {
    EngineLimits {
        max_concurrent_calls: 64,
        ..EngineLimits::default()
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let wasm = hostile();
    let scratch = target_dir()
        .join("engine-bench-scratch")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "engine benchmark (hostile test component, {} KiB; Salesforce component, {} KiB)",
        wasm.len() >> 10,
        sluice::SALESFORCE_COMPONENT.len() >> 10
    );

    // 1. Cold compile: no cache.
    let engine = ConnectorEngine::new(limits()).unwrap();
    for (name, bytes) in [
        ("hostile", wasm),
        ("salesforce", sluice::SALESFORCE_COMPONENT),
    ] {
        let mut samples = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            if engine.load(name, bytes).is_err() {
                println!("{name}: does not load; skipped");
                break;
            }
            samples.push(start.elapsed());
        }
        if !samples.is_empty() {
            report(&format!("cold compile + link ({name})"), &mut samples);
        }
    }

    // 2. Cached load: verified .cwasm + deserialize_file + instantiate_pre.
    let cached = ConnectorEngine::with_cache(limits(), Some(&scratch.join("cache"))).unwrap();
    let (_, first) = cached.load_with_outcome("hostile", wasm).unwrap();
    assert_eq!(first, CacheOutcome::Miss);
    let mut samples = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        let (_, outcome) = cached.load_with_outcome("hostile", wasm).unwrap();
        samples.push(start.elapsed());
        assert_eq!(outcome, CacheOutcome::Hit);
    }
    report("cached load (MAC check + deserialize_file)", &mut samples);

    // 3. Fresh store + instance per call: a trivial `pull`, end to end.
    let connector = engine.load("hostile", wasm).unwrap();
    let ctx = CallContext {
        policy: Arc::new(OutboundPolicy::deny_all()),
        ..CallContext::default()
    };
    let s = session(settings("ok", &[]), "https://x.example", false);
    let request = pull_request(None, 1);
    runtime.block_on(async {
        for _ in 0..200 {
            engine
                .pull(&connector, &ctx, &s, &request)
                .await
                .unwrap()
                .unwrap();
        }
        let mut samples = Vec::new();
        for _ in 0..5000 {
            let start = Instant::now();
            engine
                .pull(&connector, &ctx, &s, &request)
                .await
                .unwrap()
                .unwrap();
            samples.push(start.elapsed());
        }
        report("trivial pull, fresh instance per call", &mut samples);
    });

    // 4. Install (compile, contract check, canary with no integrations, publish) to the
    //    first call on the new version.
    runtime.block_on(async {
        for (label, cache) in [("uncached", None), ("cached", Some(scratch.join("cache2")))] {
            let engine = ConnectorEngine::with_cache(limits(), cache.as_deref()).unwrap();
            let registry = ConnectorRegistry::new(
                engine.clone(),
                Arc::new(MemoryVersionStore::default()),
                Arc::new(StaticCanaryTargets::default()),
            );
            let mut samples = Vec::new();
            for round in 0..6u32 {
                let version = with_custom_section(wasm, "bench-version", &round.to_le_bytes());
                if cache.is_some() {
                    // Warm the cache for these bytes; the measured install then hits it.
                    engine.load("hostile", &version).unwrap();
                }
                let start = Instant::now();
                let report = registry.install("hostile", &version, true).await.unwrap();
                let active = registry.active("hostile").unwrap();
                assert_eq!(active.version, report.version);
                engine
                    .pull(&active, &ctx, &s, &request)
                    .await
                    .unwrap()
                    .unwrap();
                samples.push(start.elapsed());
            }
            report(&format!("install -> first call ({label})"), &mut samples);
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
}
