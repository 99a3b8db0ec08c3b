//! Smoke tests: `sluice-bench --scale 20000 --json`, `--scale 20000 --bulk --json` and
//! `--scale 20000 --wan 20ms,200mbit --json` print one JSON object with every key, and the pulled record count equals the
//! emulator's Case count (the bench itself fails unless every pull stored exactly the emulator's
//! Case Ids). `--store-commits --json` prints every key of the store figures. No speed is
//! checked.

use std::process::Command;

const KEYS: [&str; 24] = [
    "records",
    "api_calls",
    "pull_wasm_records_per_s",
    "pull_native_records_per_s",
    "wasm_vs_native",
    "raw_fetch_records_per_s",
    "peak_rss_mb",
    "cold_compile_ms",
    "cached_load_ms",
    "instantiate_us_p50",
    "instantiate_us_p99",
    "wasmtime_instantiate_us_p50",
    "instantiate_vs_wasmtime",
    "wasmtime_pooling_instantiate_us_p50",
    "instantiate_vs_wasmtime_pooling",
    "swap_ms",
    "idle_rss_mb_10k_integrations",
    "bulk_records",
    "bulk_api_calls",
    "bulk_api_calls_target",
    "bulk_records_per_s",
    "bulk_rss_before_mb",
    "bulk_peak_rss_mb",
    "bulk_peak_rss_target_mb",
];

const WAN_KEYS: [&str; 16] = [
    "wan_rtt_ms",
    "wan_mbps",
    "records",
    "api_calls",
    "wan_pull_records_per_s",
    "wan_ceiling_records_per_s",
    "of_ceiling",
    "bytes_on_wire",
    "bytes_per_record",
    "connections",
    "compressed_responses",
    "plain_pull_records_per_s",
    "plain_bytes_on_wire",
    "plain_connections",
    "plain_compressed_responses",
    "speedup_vs_plain",
];

/// The WAN figures that are no numbers: the profile's slow-start switch and, per pull, where
/// a page's time went.
const WAN_DETAIL_KEYS: [&str; 3] = ["wan_slow_start", "breakdown", "plain_breakdown"];

/// Runs the bench with `args`, which must succeed and print one JSON object with exactly
/// `keys`, each a number, and `details`, whatever they are.
fn bench_json(
    args: &[&str],
    keys: &[&str],
    details: &[&str],
) -> serde_json::Map<String, serde_json::Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(args)
        .output()
        .expect("runs sluice-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "sluice-bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: serde_json::Value =
        serde_json::from_str(stdout.trim()).expect("stdout is exactly one JSON object");
    let object = value.as_object().expect("a JSON object").clone();
    let mut found: Vec<&str> = object.keys().map(String::as_str).collect();
    found.sort_unstable();
    let mut expected = [keys, details].concat();
    expected.sort_unstable();
    assert_eq!(found, expected, "exactly the documented keys");
    for key in keys {
        assert!(
            object[*key].is_number(),
            "{key} is a number: {}",
            object[*key]
        );
    }
    object
}

#[test]
fn smoke_scale_20000_json() {
    let object = bench_json(&["--scale", "20000", "--json"], &KEYS, &[]);
    // The bench dataset holds exactly `scale` Cases.
    assert_eq!(
        object["records"].as_u64(),
        Some(20_000),
        "records = emulator Cases"
    );
}

#[test]
fn smoke_bulk_scale_20000_json() {
    let object = bench_json(&["--scale", "20000", "--bulk", "--json"], &KEYS[17..], &[]);
    assert_eq!(object["bulk_records"].as_u64(), Some(20_000));
    // One chunk of 20,000 rows: far below the API-call target.
    assert!(object["bulk_api_calls"].as_u64() <= object["bulk_api_calls_target"].as_u64());
}

#[test]
fn smoke_wan_scale_20000_json() {
    let object = bench_json(
        &["--scale", "20000", "--wan", "20ms,200mbit", "--json"],
        &WAN_KEYS,
        &WAN_DETAIL_KEYS,
    );
    let n = |key: &str| object[key].as_u64().unwrap_or(0);
    assert_eq!(n("records"), 20_000, "records = emulator Cases");
    // What the two clients did on the wire, as the emulator counted it.
    assert_eq!(
        n("plain_connections"),
        n("api_calls"),
        "the plain pull opens a connection per call"
    );
    assert_eq!(
        n("plain_compressed_responses"),
        0,
        "the plain pull asks for no gzip"
    );
    assert!(
        n("connections") < n("api_calls"),
        "the default pull reuses connections"
    );
    assert!(
        n("compressed_responses") > 0,
        "the default pull asks for gzip"
    );
    assert_eq!(
        object["wan_slow_start"], true,
        "slow start is on by default"
    );
    // Every page's steps were timed: a connector call per page (up to five query batches of
    // 2,000, so at least one per 10,000 records) and a request per API call, the emulator's
    // answers, gzip and inflation only where the default pull asked for it.
    for (pull, gzip) in [("breakdown", true), ("plain_breakdown", false)] {
        let spans = &object[pull]["spans"];
        let count = |span: &str| spans[span]["count"].as_u64().unwrap_or(0);
        assert!(
            count("connector_call") > n("records") / 10_000,
            "{pull}: {spans}"
        );
        assert_eq!(count("outbound_request"), n("api_calls"), "{pull}: {spans}");
        assert!(
            count("emulator_answer") >= n("api_calls"),
            "{pull}: {spans}"
        );
        assert!(count("commit_page") > 0, "{pull}: {spans}");
        assert_eq!(count("emulator_gzip") > 0, gzip, "{pull}: {spans}");
        assert!(object[pull]["page_ms"].as_f64().unwrap_or(0.0) > 0.0);
    }
}

/// Page commits on both backends and run claims among 10,000 integrations on PostgreSQL
/// (a throwaway cluster from Debian's packages, as the store tests use).
#[test]
fn smoke_store_commits_json() {
    let keys = [
        "sqlite_insert_pages_per_s",
        "postgres_insert_pages_per_s",
        "postgres_vs_sqlite_insert",
        "sqlite_update_pages_per_s",
        "postgres_update_pages_per_s",
        "postgres_vs_sqlite_update",
        "claim_integrations",
        "roundtrip_p50_ms",
        "claim_backlog_p50_ms",
        "claim_idle_p50_ms",
        "claim_backlog_vs_roundtrip",
    ];
    let object = bench_json(&["--store-commits", "--json"], &keys, &[]);
    assert_eq!(object["claim_integrations"].as_u64(), Some(10_000));
}
