//! Smoke test: `sluice-bench --scale 20000 --json` prints one JSON object with every key, and
//! the pulled record count equals the emulator's Case count. No speed is checked.

use std::process::Command;

const KEYS: [&str; 12] = [
    "records",
    "api_calls",
    "pull_wasm_records_per_s",
    "pull_native_records_per_s",
    "raw_fetch_records_per_s",
    "peak_rss_mb",
    "cold_compile_ms",
    "cached_load_ms",
    "instantiate_us_p50",
    "instantiate_us_p99",
    "swap_ms",
    "idle_rss_mb_10k_integrations",
];

#[test]
fn smoke_scale_20000_json() {
    let scale = 20_000u64;
    let output = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(["--scale", &scale.to_string(), "--json"])
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
    let object = value.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "exactly the issue's keys");
    for key in KEYS {
        assert!(
            object[key].is_number(),
            "{key} is a number: {}",
            object[key]
        );
    }
    // The bench dataset holds exactly `scale` Cases.
    assert_eq!(
        object["records"].as_u64(),
        Some(scale),
        "records = emulator Cases"
    );
}
