//! `sluice-bench [--scale N] [--json] [--wan RTT,BANDWIDTH [--no-slow-start] | --bulk | --dev-loop | --store-commits]`: how fast Sluice pulls, what the sandbox costs and how
//! it scales, measured in one run against the in-process Salesforce emulator (`bench` dataset).
//!
//! Pulls (each into the same SQLite store, each a fresh integration so every row is an insert):
//! - wasm: the host's real runner (`sluice::runner::run_pull`) driving the sandboxed component;
//! - native: the same connector logic (`Salesforce::pull`) with a native [`Host`], driven
//!   by the same checkpoint/commit steps the runner takes (`Store::checkpoint` once per stream,
//!   then the runner's `PageCommits` pipeline over `Store::commit_page`);
//! - raw: a plain HTTP client fetching and parsing the connector's query pages.
//!
//! Engine figures reuse `host/benches/engine.rs`. The idle-memory figure runs in a child
//! process (`--idle-child DIR`) so that the emulator's data does not count. The Bulk backfill
//! (`bulk.rs`, alone with `--bulk`) runs in a child process too (`--bulk-child`), for a peak
//! RSS of the host's own.
//! `--dev-loop` times `sluice dev`'s edit-to-first-page cycle instead (`dev_loop.rs`).
//! `--store-commits` compares page commits on SQLite and PostgreSQL (`store_commits.rs`), and
//! times run claims among 10,000 integrations on PostgreSQL (`claims.rs`).

mod bare_wasmtime;
mod bulk;
mod claims;
mod dev_loop;
mod engine_figures;
mod native;
mod pulls;
mod spans;
mod store_commits;
mod truth;
mod wan;

use engine_figures::engine_figures;
use native::native_pull;
use pulls::{Pulls, median};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sluice::app::{App, AppConfig, IntegrationInput};
use sluice::engine::outbound::OutboundPolicy;
use sluice::engine::registry::{
    ConnectorRegistry, HostApproval, MemoryVersionStore, StaticCanaryTargets,
};
use sluice::engine::wit::types as wt;
use sluice::engine::{CallContext, ConnectorEngine, EngineLimits};
use sluice::runner::{DEFAULT_PAGE_RECORDS, PageCommit, PageCommits, PullOptions, RunStatus};
use sluice::secrets::Secret;
use sluice::store::{CheckpointState, GrantFlow, RunState, TokenSet};
use sluice_connector_sdk::Connector;
use sluice_connector_sdk::http::{Host, InFlight, Request, Response, TransportError};
use sluice_connector_sdk::model as pm;
use sluice_connector_sdk::native::NativeHost;
use sluice_salesforce::Salesforce;
use sluice_test_support::runtime::approve_emulator;
use sluice_test_support::temp_dir;

/// The JSON keys, in output order.
const KEYS: [&str; 17] = [
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
];

/// Wasm and native pulls alternate, this many of each (wasm first in odd rounds, native first
/// in even ones, so that a store growing or a machine slowing over the run favours neither);
/// the figures are medians, `wasm_vs_native` the median of each round's ratio.
const PULL_ROUNDS: usize = 3;

const IDLE_INTEGRATIONS: usize = 10_000;

struct Args {
    scale: usize,
    json: bool,
    idle_child: Option<PathBuf>,
    wan: Option<wan::WanProfile>,
    /// Only the Bulk backfill's figures (`bulk.rs`).
    bulk: bool,
    /// The Bulk backfill itself, against the emulator `SLUICE_BENCH_PROVIDER` names (the
    /// process `--bulk` measures).
    bulk_child: bool,
    /// Only `sluice dev`'s edit-to-first-page time (`dev_loop.rs`).
    dev_loop: bool,
    /// `--no-slow-start`: the WAN profile without TCP slow start, for comparison.
    no_slow_start: bool,
    /// Only the page commits of SQLite and PostgreSQL (`store_commits.rs`).
    store_commits: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        scale: 1_000_000,
        json: false,
        idle_child: None,
        wan: None,
        bulk: false,
        bulk_child: false,
        dev_loop: false,
        no_slow_start: false,
        store_commits: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scale" => {
                let v = it.next().context("--scale needs a value")?;
                args.scale = v.replace(['_', ','], "").parse().context("--scale N")?;
            }
            "--json" => args.json = true,
            "--bulk" => args.bulk = true,
            "--bulk-child" => args.bulk_child = true,
            "--dev-loop" => args.dev_loop = true,
            "--store-commits" => args.store_commits = true,
            "--no-slow-start" => args.no_slow_start = true,
            "--wan" => {
                args.wan = Some(wan::WanProfile::parse(
                    &it.next().context("--wan RTT,BANDWIDTH")?,
                )?)
            }
            "--idle-child" => args.idle_child = Some(it.next().context("--idle-child DIR")?.into()),
            "-h" | "--help" => {
                println!(
                    "usage: sluice-bench [--scale N] [--json] [--wan RTT,BANDWIDTH [--no-slow-start] | --bulk | --dev-loop | --store-commits]"
                );
                std::process::exit(0);
            }
            other => bail!(
                "unknown argument {other:?} (usage: sluice-bench [--scale N] [--json] [--wan RTT,BANDWIDTH [--no-slow-start] | --bulk | --dev-loop | --store-commits])"
            ),
        }
    }
    Ok(args)
}

/// A `kB` field of /proc/self/status, in MiB.
fn proc_status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i.min(samples.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn main() -> anyhow::Result<()> {
    // As the `sluice` binary does: large buffers go back to the system when freed.
    sluice::heap::return_large_buffers();
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some(dir) = &args.idle_child {
        let mb = runtime.block_on(idle_child(dir))?;
        println!("{mb}");
        return Ok(());
    }
    if let Some(mut profile) = args.wan {
        profile.slow_start = !args.no_slow_start;
        let figures = runtime.block_on(wan::run(profile, args.scale, args.json))?;
        match args.json {
            true => println!("{}", serde_json::to_string(&figures)?),
            false => wan::print(&figures),
        }
        return Ok(());
    }
    if args.dev_loop {
        let figures = runtime.block_on(dev_loop::run(args.json))?;
        match args.json {
            true => println!("{}", serde_json::to_string(&figures)?),
            false => dev_loop::print(&figures),
        }
        return Ok(());
    }
    if args.store_commits {
        let (commits, claims) = (store_commits::run()?, claims::run()?);
        match args.json {
            true => {
                let mut figures = commits;
                figures
                    .as_object_mut()
                    .expect("an object")
                    .extend(claims.as_object().expect("an object").clone());
                println!("{}", serde_json::to_string(&figures)?)
            }
            false => {
                store_commits::print(&commits);
                println!();
                claims::print(&claims);
            }
        }
        return Ok(());
    }
    if args.bulk_child {
        let figures = runtime.block_on(bulk::backfill(&Provider::from_env()?))?;
        println!("{}", serde_json::to_string(&figures)?);
        return Ok(());
    }
    if args.bulk {
        let figures = runtime.block_on(bulk::run(args.scale, args.json))?;
        match args.json {
            true => println!("{}", serde_json::to_string(&figures)?),
            false => bulk::print(&figures),
        }
        return Ok(());
    }
    let started = Instant::now();
    let mut figures = runtime.block_on(run(&args))?;
    let bulk_figures = runtime.block_on(bulk::run(args.scale, args.json))?;
    if args.json {
        for k in bulk::KEYS {
            figures[k] = bulk_figures[k].clone();
        }
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        print_table(&figures, args.scale, started.elapsed());
        println!();
        bulk::print(&bulk_figures);
    }
    Ok(())
}

fn note(json: bool, msg: &str) {
    if !json {
        eprintln!("{msg}");
    }
}

async fn run(args: &Args) -> anyhow::Result<Value> {
    let quiet = args.json;
    let mut out = serde_json::Map::new();

    note(
        quiet,
        &format!(
            "starting the emulator (bench dataset, {} Cases)...",
            args.scale
        ),
    );
    let emulator = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        dataset: sf_emulator::Dataset::Bench,
        scale: args.scale,
        auto_approve: true,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .context("starting the emulator")?;
    let control = reqwest::Client::new();
    let (control_ref, emulator_ref) = (&control, &emulator);
    // One GET on the emulator's control API, authenticated by its key, parsed as JSON.
    let control_get = |path: &'static str| async move {
        let bytes = control_ref
            .get(format!("{}{path}", emulator_ref.url))
            .bearer_auth(&emulator_ref.control_key)
            .send()
            .await?
            .bytes()
            .await?;
        anyhow::Ok(serde_json::from_slice::<Value>(&bytes)?)
    };
    let case_count = control_get("/__emulator/records/Case?limit=1").await?["totalSize"]
        .as_u64()
        .context("the emulator's Case count")?;

    let data_dir = temp_dir("bench-pull");
    let mut config = AppConfig::new(data_dir.to_path_buf());
    // The emulator speaks plain http on loopback: approve exactly its origin.
    approve_emulator(&mut config, &emulator.url);
    // The native and raw pulls' client asks for no compression, so neither does the
    // sandboxed pull: all three read the same bytes, and the ratios measure the sandbox, not
    // gzip's CPU on a link where it saves nothing. The WAN figures measure compression.
    config.limits.outbound.accept_gzip = false;
    config.bundled_connector = Some(sluice::SALESFORCE_COMPONENT);
    let app = App::open(config).await?;
    let pulls = Pulls {
        app: &app,
        emulator: &emulator,
        control: &control,
        truth: std::sync::OnceLock::new(),
        quiet,
    };

    // 1-2. The pull through the sandbox by the host's runner, and the same logic natively
    // through the same store calls, alternating.
    let (mut wasm_rates, mut native_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut first_wasm = None;
    let mut first_native = None;
    for round in 1..=PULL_ROUNDS {
        let (wasm, native) = match round % 2 == 1 {
            true => {
                let wasm = pulls.wasm(round).await?;
                (wasm, pulls.native(round).await?)
            }
            false => {
                let native = pulls.native(round).await?;
                (pulls.wasm(round).await?, native)
            }
        };
        if native.records != wasm.records {
            bail!(
                "round {round}: the native pull committed {} records, the wasm pull {}",
                native.records,
                wasm.records
            );
        }
        wasm_rates.push(wasm.records_per_s());
        native_rates.push(native.records_per_s());
        ratios.push(wasm.records_per_s() / native.records_per_s());
        note(
            quiet,
            &format!(
                "  round {round}: wasm/native {:.2}",
                ratios.last().copied().unwrap_or(f64::NAN)
            ),
        );
        first_wasm.get_or_insert(wasm);
        first_native.get_or_insert(native);
    }
    let (wasm, native) = (
        first_wasm.context("no wasm pull")?,
        first_native.context("no native pull")?,
    );
    let records = wasm.records;
    if records != case_count {
        bail!("the wasm pull committed {records} records; the emulator holds {case_count} Cases");
    }
    out.insert("records".into(), json!(records));
    out.insert("api_calls".into(), json!(wasm.api_calls));
    out.insert("peak_rss_mb".into(), json!(round(wasm.peak_rss_mb, 1)));
    out.insert(
        "pull_wasm_records_per_s".into(),
        json!(median(&mut wasm_rates).round() as u64),
    );
    out.insert(
        "pull_native_records_per_s".into(),
        json!(median(&mut native_rates).round() as u64),
    );
    out.insert(
        "wasm_vs_native".into(),
        json!(round(median(&mut ratios), 2)),
    );
    let native_id = native.integration;
    let first_query = native.first_query;

    // 3. Raw fetch of the connector's query pages.
    note(
        quiet,
        "fetching the same query pages with a plain client...",
    );
    let token = app
        .store()
        .tokens(&native_id)?
        .context("tokens")?
        .access
        .expose()
        .to_string();
    let first_query = first_query.context("the connector made no /query call")?;
    let (raw_records, raw_s) = raw_fetch(&emulator.url, &first_query, &token).await?;
    if raw_records != records {
        bail!(
            "the raw fetch of {first_query} read {raw_records} records, the pulls {records}: \
             it no longer replays the connector's data requests"
        );
    }
    out.insert(
        "raw_fetch_records_per_s".into(),
        json!((raw_records as f64 / raw_s).round() as u64),
    );
    note(quiet, &format!("  {raw_records} records in {raw_s:.1} s"));
    drop(app);
    drop(data_dir);

    // 4. Engine figures.
    note(
        quiet,
        "engine: cold compile, cached load, instantiate, swap...",
    );
    engine_figures(&mut out).await?;

    // 5. Idle memory with 10,000 scheduled integrations, in a child process.
    note(
        quiet,
        &format!("idle host with {IDLE_INTEGRATIONS} integrations (child process)..."),
    );
    let idle_dir = temp_dir("bench-idle");
    let child = std::process::Command::new(std::env::current_exe()?)
        .arg("--idle-child")
        .arg(&idle_dir)
        .output()
        .context("running the idle child")?;
    drop(idle_dir);
    if !child.status.success() {
        bail!(
            "the idle child failed: {}",
            String::from_utf8_lossy(&child.stderr)
        );
    }
    let idle: f64 = String::from_utf8_lossy(&child.stdout)
        .trim()
        .parse()
        .context("the idle child's output")?;
    out.insert("idle_rss_mb_10k_integrations".into(), json!(round(idle, 1)));

    let mut ordered = serde_json::Map::new();
    for k in KEYS {
        ordered.insert(k.into(), out.remove(k).context(k)?);
    }
    Ok(Value::Object(ordered))
}

/// Connects `id` with a token from the emulator's control API (`/__emulator/oauth/grant`, the
/// token response a completed OAuth flow gets), stored as `connect` stores it.
async fn authorize(
    app: &Arc<App>,
    emulator: &Provider,
    control: &reqwest::Client,
    id: &str,
) -> anyhow::Result<()> {
    let grant: Value = serde_json::from_slice(
        &control
            .post(format!("{}/__emulator/oauth/grant", emulator.url))
            .bearer_auth(&emulator.control_key)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?,
    )?;
    let text = |k: &str| grant[k].as_str().map(String::from);
    let (plan, _rules) = app.plan(id).await?;
    let tokens = TokenSet {
        flow: GrantFlow::AuthorizationCode,
        access: Secret::new(text("access_token").context("no access_token")?),
        refresh: text("refresh_token").map(Secret::new),
        token_url: plan.token_url.clone(),
        revoke_url: plan.revoke_url.clone(),
        instance_url: Some(text("instance_url").context("no instance_url")?),
        provider_fields: ["id", "issued_at"]
            .into_iter()
            .filter_map(|name| Some((name.to_string(), text(name)?)))
            .collect(),
        scopes: text("scope")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect(),
        obtained_at_ms: sluice::store::now_ms(),
        generation: 0,
    };
    app.store().put_grant(id, &tokens)?;
    Ok(())
}

/// Fetches `first` and every `nextRecordsUrl` after it, parsing each page.
async fn raw_fetch(origin: &str, first: &str, token: &str) -> anyhow::Result<(u64, f64)> {
    let client = reqwest::Client::new();
    let start = Instant::now();
    let mut url = first.to_string();
    let mut records = 0u64;
    loop {
        let response = client.get(&url).bearer_auth(token).send().await?;
        if !response.status().is_success() {
            bail!("raw fetch of {url}: HTTP {}", response.status());
        }
        let body = response.bytes().await?;
        let page: Value = serde_json::from_slice(&body)?;
        records += page["records"].as_array().map_or(0, |r| r.len()) as u64;
        match page["nextRecordsUrl"].as_str() {
            Some(next) if page["done"] != json!(true) => url = format!("{origin}{next}"),
            _ => break,
        }
    }
    Ok((records, start.elapsed().as_secs_f64()))
}

/// The child: one host (store, engine, registry, scheduler) with 10,000 integrations, idle
/// between runs. Prints VmRSS in MiB.
async fn idle_child(dir: &Path) -> anyhow::Result<f64> {
    let mut config = AppConfig::new(dir.to_path_buf());
    config.bundled_connector = Some(sluice::SALESFORCE_COMPONENT);
    let app = App::open(config).await?;
    for i in 0..IDLE_INTEGRATIONS {
        app.add_integration(IntegrationInput {
            name: Some(format!("idle {i}")),
            capability: Some("helpdesk".into()),
            settings: sluice_test_support::runtime::salesforce_settings(
                &format!("https://org{i}.my.salesforce.com"),
                &[],
            ),
            interval: Some(Duration::from_secs(3600)),
            ..IntegrationInput::default()
        })
        .await?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(sluice::scheduler::run(
        app.clone(),
        sluice::scheduler::SchedulerConfig {
            tick: Duration::from_millis(200),
            ..Default::default()
        },
        Arc::default(),
        stop_rx,
    ));
    // Several scheduler ticks over the full list, then measure while idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = proc_status_mb("VmRSS:");
    let _ = stop_tx.send(true);
    let _ = scheduler.await;
    Ok(rss)
}

fn print_table(f: &Value, scale: usize, elapsed: Duration) {
    let n = |k: &str| f[k].as_f64().unwrap_or(f64::NAN);
    let records = n("records");
    type Check = (&'static str, String, String, Option<bool>);
    // A figure with no target, and one with an upper bound: the bound is written once and
    // serves both the table text and the check.
    let info = |k: &'static str| -> Check { (k, format!("{}", f[k]), String::new(), None) };
    let at_most = |k: &'static str, limit: f64| -> Check {
        (
            k,
            format!("{}", f[k]),
            format!("<= {limit}"),
            Some(n(k) <= limit),
        )
    };
    let at_least = |k: &'static str, limit: f64| -> Check {
        (
            k,
            format!("{}", f[k]),
            format!(">= {limit}"),
            Some(n(k) >= limit),
        )
    };
    let wasm_vs_raw = n("pull_wasm_records_per_s") / n("raw_fetch_records_per_s");
    let checks: Vec<Check> = vec![
        (
            "records",
            format!("{}", f["records"]),
            format!("emulator: {scale} Cases"),
            None,
        ),
        at_most("api_calls", (records / 2000.0).ceil() + 10.0),
        info("pull_wasm_records_per_s"),
        info("pull_native_records_per_s"),
        at_least("wasm_vs_native", 0.85),
        (
            "raw_fetch_records_per_s",
            format!("{}", f["raw_fetch_records_per_s"]),
            format!("wasm >= 0.5 x raw (x{wasm_vs_raw:.2})"),
            Some(wasm_vs_raw >= 0.5),
        ),
        at_most("peak_rss_mb", 300.0),
        info("cold_compile_ms"),
        at_most("cached_load_ms", 2.0),
        info("instantiate_us_p50"),
        info("instantiate_us_p99"),
        info("wasmtime_instantiate_us_p50"),
        at_most("instantiate_vs_wasmtime", 2.0),
        info("wasmtime_pooling_instantiate_us_p50"),
        info("instantiate_vs_wasmtime_pooling"),
        at_most("swap_ms", 1000.0),
        at_most("idle_rss_mb_10k_integrations", 500.0),
    ];
    println!("| figure | value | target | met |");
    println!("|---|---:|---|---|");
    for (k, v, target, ok) in checks {
        let met = match ok {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!("| {k} | {v} | {target} | {met} |");
    }
    println!("\n(total {:.0} s)", elapsed.as_secs_f64());
}

/// A Helpdesk integration named `name` that pulls Case from `emulator` over REST query pages.
///
/// Bulk is off: the targets compare the pulls over the same REST query pages (`/query` +
/// `nextRecordsUrl`), which is what the raw fetch replays. With the default threshold a
/// 1M-Case backfill goes through a Bulk API 2.0 job, which the raw fetch does not model.
pub(crate) fn case_integration(name: &str, emulator: &Provider) -> IntegrationInput {
    IntegrationInput {
        name: Some(name.into()),
        capability: Some("helpdesk".into()),
        settings: sluice_test_support::runtime::salesforce_settings(
            &emulator.url,
            &[("objects", "Case"), ("bulk-threshold", "0")],
        ),
        client_id: Some(emulator.client_id.clone()),
        client_secret: Some(emulator.client_secret.clone()),
        ..IntegrationInput::default()
    }
}

/// What a pull needs to reach an emulator, whether it runs in this process or another's.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Provider {
    /// The emulator's origin.
    pub url: String,
    /// The key of its control API.
    pub control_key: String,
    /// Its connected app's client id.
    pub client_id: String,
    /// Its connected app's client secret.
    pub client_secret: String,
}

/// The environment variable a child process reads its [`Provider`] from (not an argument, so
/// that the keys do not show in `ps`).
const PROVIDER_ENV: &str = "SLUICE_BENCH_PROVIDER";

impl Provider {
    /// How to reach `emulator`.
    pub fn of(emulator: &sf_emulator::Emulator) -> Self {
        Self {
            url: emulator.url.clone(),
            control_key: emulator.control_key.clone(),
            client_id: emulator.client_id.clone(),
            client_secret: emulator.client_secret.clone(),
        }
    }

    /// The provider a parent process handed over in [`PROVIDER_ENV`].
    fn from_env() -> anyhow::Result<Self> {
        let text = std::env::var(PROVIDER_ENV).with_context(|| {
            format!("{PROVIDER_ENV} is not set: run `sluice-bench --bulk`, which sets it")
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{PROVIDER_ENV} is not a provider's JSON"))
    }
}
