//! The `bulk` figures: a Bulk API 2.0 backfill of `--scale` Cases through the sandboxed
//! connector and the host's runner, with the connector's default chunk size (50,000 rows, one
//! API call and one committed page each).
//!
//! Targets: at most `ceil(N / 50,000) + 10` API calls, and a peak RSS of at most 300 MB. The
//! peak is the host's own: the backfill runs in a child process (`--bulk-child`) against an
//! emulator that stays in this one, as Salesforce's data and its rendering of result chunks
//! are on Salesforce's machines and not in the host's memory.

use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sluice::app::{App, AppConfig, IntegrationInput};
use sluice::runner::{PullOptions, RunStatus};
use sluice_test_support::runtime::approve_emulator;
use sluice_test_support::temp_dir;

use super::{PROVIDER_ENV, Provider};

/// The connector's default rows per Bulk results chunk (`bulk-chunk-records`).
const CHUNK: u64 = 50_000;
/// The most peak RSS the backfill may take, in MB.
const PEAK_RSS_TARGET_MB: f64 = 300.0;

/// The figures' keys, in output order.
pub const KEYS: [&str; 7] = [
    "bulk_records",
    "bulk_api_calls",
    "bulk_api_calls_target",
    "bulk_records_per_s",
    "bulk_rss_before_mb",
    "bulk_peak_rss_mb",
    "bulk_peak_rss_target_mb",
];

/// Starts an emulator holding `scale` Cases, runs [`backfill`] against it in a child process
/// and returns the figures, the API calls as the emulator counted them.
pub async fn run(scale: usize, quiet: bool) -> anyhow::Result<Value> {
    super::note(
        quiet,
        &format!("bulk: starting the emulator (bench dataset, {scale} Cases)..."),
    );
    let emulator = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        dataset: sf_emulator::Dataset::Bench,
        scale,
        auto_approve: true,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .context("starting the emulator")?;
    let stats = || emulator.state.stats.lock().expect("stats").clone();
    super::note(
        quiet,
        "bulk: backfilling Case through a Bulk API 2.0 job (child process)...",
    );
    let before = stats();
    let child = in_child(Provider::of(&emulator)).await?;
    let after = stats();
    if after.bulk_jobs_created - before.bulk_jobs_created != 1 {
        bail!(
            "the backfill created {} Bulk jobs, not one: it did not go through Bulk",
            after.bulk_jobs_created - before.bulk_jobs_created
        );
    }
    let number = |k: &str| {
        child[k]
            .as_f64()
            .with_context(|| format!("the bulk child printed no {k}: {child}"))
    };
    let (records, seconds) = (number("records")? as u64, number("seconds")?);
    let (rss_before, peak) = (number("rss_before_mb")?, number("peak_rss_mb")?);
    if records != scale as u64 {
        bail!("the backfill committed {records} records; the emulator holds {scale} Cases");
    }
    let api_calls = after.api_calls - before.api_calls;
    super::note(
        quiet,
        &format!(
            "  {records} records, {api_calls} API calls in {seconds:.1} s, peak RSS {peak:.0} MiB"
        ),
    );
    Ok(json!({
        "bulk_records": records,
        "bulk_api_calls": api_calls,
        "bulk_api_calls_target": records.div_ceil(CHUNK) + 10,
        "bulk_records_per_s": (records as f64 / seconds).round() as u64,
        "bulk_rss_before_mb": super::round(rss_before, 1),
        "bulk_peak_rss_mb": super::round(peak, 1),
        "bulk_peak_rss_target_mb": PEAK_RSS_TARGET_MB,
    }))
}

/// Runs `sluice-bench --bulk-child` against `provider` and returns what it printed. The child
/// is waited for on a blocking thread, so this runtime goes on serving the emulator.
async fn in_child(provider: Provider) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let provider = serde_json::to_string(&provider)?;
    let child = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .arg("--bulk-child")
            .env(PROVIDER_ENV, provider)
            .output()
    })
    .await?
    .context("running the bulk child")?;
    if !child.status.success() {
        bail!(
            "the bulk child failed: {}",
            String::from_utf8_lossy(&child.stderr)
        );
    }
    serde_json::from_slice(&child.stdout).context("the bulk child's output")
}

/// The backfill itself, in the process whose peak RSS is measured: a full pull of Case from
/// `provider`. Returns the committed records, the seconds, and the RSS before and the peak
/// during the backfill (MiB).
pub async fn backfill(provider: &Provider) -> anyhow::Result<Value> {
    let control = reqwest::Client::new();
    let data_dir = temp_dir("bench-bulk");
    let mut config = AppConfig::new(data_dir.to_path_buf());
    approve_emulator(&mut config, &provider.url);
    config.bundled_connector = Some(sluice::SALESFORCE_COMPONENT);
    let app = App::open(config).await?;
    let id = app
        .add_integration(integration(provider))
        .await?
        .integration
        .id;
    super::authorize(&app, provider, &control, &id).await?;

    // Reset the high-water mark so that VmHWM is the peak of this backfill (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = super::proc_status_mb("VmRSS:");
    let started = Instant::now();
    let summary = sluice::runner::run_pull(
        &app,
        &id,
        PullOptions {
            full: true,
            trigger: "bench".into(),
            ..PullOptions::default()
        },
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = super::proc_status_mb("VmHWM:");
    if summary.status != RunStatus::Succeeded {
        bail!(
            "the bulk backfill ended {:?}: {:?}",
            summary.status,
            summary.streams
        );
    }
    drop(app);
    drop(data_dir);
    Ok(json!({
        "records": summary.records,
        "seconds": seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak,
    }))
}

/// A Helpdesk integration pulling Case with the connector's Bulk defaults, except that any
/// backfill over 1,000 records goes through Bulk (so that small `--scale` smoke runs do too).
fn integration(emulator: &Provider) -> IntegrationInput {
    let mut input = super::case_integration("bench bulk", emulator);
    // A later pair of the same name wins.
    input
        .settings
        .push(("bulk-threshold".into(), "1000".into()));
    input
}

/// The figures as a table, each next to its target.
pub fn print(f: &Value) {
    let n = |k: &str| f[k].as_f64().unwrap_or(f64::NAN);
    let met = |ok: bool| if ok { "yes" } else { "NO" };
    println!("| bulk figure | value | target | met |");
    println!("|---|---:|---|---|");
    println!("| bulk_records | {} | | |", f["bulk_records"]);
    println!(
        "| bulk_api_calls | {} | <= ceil(N / 50,000) + 10 = {} | {} |",
        f["bulk_api_calls"],
        f["bulk_api_calls_target"],
        met(n("bulk_api_calls") <= n("bulk_api_calls_target"))
    );
    println!("| bulk_records_per_s | {} | | |", f["bulk_records_per_s"]);
    println!(
        "| bulk_rss_before_mb | {} | (the host's process, before the backfill) | |",
        f["bulk_rss_before_mb"]
    );
    println!(
        "| bulk_peak_rss_mb | {} | <= {} | {} |",
        f["bulk_peak_rss_mb"],
        f["bulk_peak_rss_target_mb"],
        met(n("bulk_peak_rss_mb") <= n("bulk_peak_rss_target_mb"))
    );
}
