//! `sluice-bench --wan 50ms,100mbit`: the sandboxed pull against the emulator served over TLS
//! with a round-trip time and a bandwidth, next to the ceiling that network allows (the bytes
//! the emulator sent at that bandwidth plus one round trip per API call), and the same pull
//! again with the outbound client's connection reuse and gzip off, for the speed-up they give.
//! Both pulls must store exactly the emulator's Case Ids, or the run fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sluice::app::{App, AppConfig};
use sluice::engine::roots::ExtraRoots;
use sluice::runner::{PullOptions, RunStatus};

use crate::round;
use crate::spans::{SpanTimes, Totals};

/// A network between the host and the provider.
#[derive(Debug, Clone, Copy)]
pub struct WanProfile {
    /// Round-trip time.
    pub rtt: Duration,
    /// Bandwidth, megabits per second.
    pub mbps: f64,
    /// Whether new and idle connections go through TCP slow start (the emulator's
    /// `slow_start`).
    pub slow_start: bool,
}

impl WanProfile {
    /// `RTT,BANDWIDTH`, e.g. `50ms,100mbit` (RTT in `ms` or `s`, bandwidth in `kbit`, `mbit`
    /// or `gbit`).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let usage = || format!("--wan {text:?}: expected RTT,BANDWIDTH such as 50ms,100mbit");
        let (rtt, rate) = text.split_once(',').with_context(usage)?;
        let rtt = rtt.trim().to_ascii_lowercase();
        let rtt = match (rtt.strip_suffix("ms"), rtt.strip_suffix('s')) {
            (Some(ms), _) => Duration::from_millis(ms.parse().with_context(usage)?),
            (None, Some(s)) => Duration::from_secs_f64(s.parse().with_context(usage)?),
            _ => bail!(usage()),
        };
        let rate = rate.trim().to_ascii_lowercase();
        let (number, scale) = [("kbit", 0.001), ("mbit", 1.0), ("gbit", 1000.0)]
            .into_iter()
            .find_map(|(unit, scale)| Some((rate.strip_suffix(unit)?.to_string(), scale)))
            .with_context(usage)?;
        let mbps = number.parse::<f64>().with_context(usage)? * scale;
        if mbps.is_nan() || mbps < 0.001 || mbps.is_infinite() {
            bail!("--wan {text:?}: the bandwidth must be at least 1kbit");
        }
        Ok(Self {
            rtt,
            mbps,
            slow_start: true,
        })
    }
}

/// How the host's outbound client talks to the provider in one pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// The defaults: kept connections, gzip asked for.
    Default,
    /// A connection per request and no gzip, for the comparison.
    Plain,
}

/// One pull over the profile, as the emulator saw it.
struct WanPull {
    records: u64,
    seconds: f64,
    api_calls: u64,
    connections: u64,
    bytes_on_wire: u64,
    compressed: u64,
    /// The timed spans that closed during the pull.
    spans: BTreeMap<&'static str, Totals>,
}

impl WanPull {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

/// The emulator over TLS with the profile's costs, and what the pulls need to reach it.
struct WanEmulator {
    emulator: sf_emulator::Emulator,
    root_pem: String,
    control: reqwest::Client,
    truth: std::collections::BTreeSet<String>,
    spans: SpanTimes,
}

/// Pulls `scale` Cases through the sandbox over `profile` twice, with the outbound client's
/// defaults and then with connection reuse and gzip off, and returns the figures.
pub async fn run(profile: WanProfile, scale: usize, quiet: bool) -> anyhow::Result<Value> {
    let settings = sf_emulator::Settings {
        rtt_ms: profile.rtt.as_millis() as u64,
        mbps: profile.mbps,
        slow_start: profile.slow_start,
        ..sf_emulator::Settings::default()
    };
    super::note(
        quiet,
        &format!(
            "starting the emulator over TLS ({} ms RTT, {} Mbit/s, slow start {}, {scale} Cases)...",
            settings.rtt_ms, settings.mbps, settings.slow_start
        ),
    );
    let emulator = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        dataset: sf_emulator::Dataset::Bench,
        scale,
        auto_approve: true,
        settings,
        tls: true,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .context("starting the emulator")?;
    let root_pem = emulator
        .tls_root_pem
        .clone()
        .context("the emulator's root")?;
    let control = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes())?)
        .build()?;
    let truth = super::truth::emulator_case_ids(&emulator)?;
    let wan = WanEmulator {
        emulator,
        root_pem,
        control,
        truth,
        spans: SpanTimes::install()?,
    };

    super::note(quiet, "pulling Case through the sandboxed component...");
    let fast = pull(&wan, Client::Default).await?;
    super::note(
        quiet,
        &format!(
            "  {} records in {:.1} s over {} connections",
            fast.records, fast.seconds, fast.connections
        ),
    );
    super::note(
        quiet,
        "pulling again with a connection per request and no gzip...",
    );
    let plain = pull(&wan, Client::Plain).await?;
    super::note(
        quiet,
        &format!(
            "  {} records in {:.1} s over {} connections",
            plain.records, plain.seconds, plain.connections
        ),
    );
    if plain.records != fast.records {
        bail!(
            "the plain pull committed {} records, the default one {}",
            plain.records,
            fast.records
        );
    }

    // What the network allows: every byte at the bandwidth, plus one round trip per call.
    let transfer_s = fast.bytes_on_wire as f64 * 8.0 / (profile.mbps * 1e6);
    let ceiling_s = transfer_s + fast.api_calls as f64 * profile.rtt.as_secs_f64();
    let ceiling_rate = fast.records as f64 / ceiling_s.max(1e-9);

    Ok(json!({
        "wan_rtt_ms": profile.rtt.as_millis() as u64,
        "wan_mbps": profile.mbps,
        "wan_slow_start": profile.slow_start,
        "records": fast.records,
        "api_calls": fast.api_calls,
        "wan_pull_records_per_s": round(fast.records_per_s(), 0),
        "wan_ceiling_records_per_s": round(ceiling_rate, 0),
        "of_ceiling": round(fast.records_per_s() / ceiling_rate, 2),
        "bytes_on_wire": fast.bytes_on_wire,
        "bytes_per_record": round(fast.bytes_on_wire as f64 / fast.records.max(1) as f64, 1),
        "connections": fast.connections,
        "compressed_responses": fast.compressed,
        "plain_pull_records_per_s": round(plain.records_per_s(), 0),
        "plain_bytes_on_wire": plain.bytes_on_wire,
        "plain_connections": plain.connections,
        "plain_compressed_responses": plain.compressed,
        "speedup_vs_plain": round(fast.records_per_s() / plain.records_per_s(), 2),
        "breakdown": breakdown(&fast, profile),
        "plain_breakdown": breakdown(&plain, profile),
    }))
}

/// One full Case pull into a new host with `client`'s outbound settings, checked against the
/// emulator's Case Ids.
async fn pull(wan: &WanEmulator, client: Client) -> anyhow::Result<WanPull> {
    let emulator = &wan.emulator;
    let data_dir = sluice_test_support::temp_dir("bench-wan");
    let mut config = AppConfig::new(data_dir.to_path_buf());
    // As the operator would: the emulator's exact origin, loopback, and its root (--ca-file).
    sluice_test_support::runtime::approve_emulator(&mut config, &emulator.url);
    config.limits.outbound.extra_roots =
        ExtraRoots::from_pem(wan.root_pem.as_bytes()).map_err(anyhow::Error::msg)?;
    let on = client == Client::Default;
    config.limits.outbound.reuse_connections = on;
    config.limits.outbound.accept_gzip = on;
    config.bundled_connector = Some(sluice::SALESFORCE_COMPONENT);
    let app = App::open(config).await?;
    let id = app
        // REST query pages, as the main bench pulls: one round trip per page.
        .add_integration(super::case_integration(
            "bench wan",
            &super::Provider::of(emulator),
        ))
        .await?
        .integration
        .id;
    super::authorize(&app, &super::Provider::of(emulator), &wan.control, &id).await?;

    let stats = || emulator.state.stats.lock().expect("stats").clone();
    let before = stats();
    let spans_before = wan.spans.snapshot();
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
    let after = stats();
    let spans = SpanTimes::since(&spans_before, &wan.spans.snapshot());
    if summary.status != RunStatus::Succeeded {
        bail!(
            "the {client:?} pull ended {:?}: {:?}",
            summary.status,
            summary.streams
        );
    }
    super::truth::check_stored_cases(&app, &id, &wan.truth)?;
    Ok(WanPull {
        records: summary.records,
        seconds,
        api_calls: after.api_calls - before.api_calls,
        connections: after.connections - before.connections,
        bytes_on_wire: after.wire_bytes_sent - before.wire_bytes_sent,
        compressed: after.compressed_responses - before.compressed_responses,
        spans,
    })
}

/// Where one page's time went, in milliseconds per page (page = API call): each timed span's
/// wall and busy time, averaged over the pull's calls, next to what the network alone costs.
fn breakdown(pull: &WanPull, profile: WanProfile) -> Value {
    let pages = pull.api_calls.max(1) as f64;
    let per_page = |d: Duration| round(d.as_secs_f64() * 1e3 / pages, 2);
    let mut spans = serde_json::Map::new();
    for (name, totals) in &pull.spans {
        spans.insert(
            name.to_string(),
            json!({
                "count": totals.count,
                "wall_ms_per_page": per_page(totals.wall),
                "busy_ms_per_page": per_page(totals.busy),
            }),
        );
    }
    let wire_ms = pull.bytes_on_wire as f64 * 8.0 / (profile.mbps * 1e6) * 1e3 / pages;
    json!({
        "page_ms": round(pull.seconds * 1e3 / pages, 2),
        "network_ms": round(profile.rtt.as_secs_f64() * 1e3 + wire_ms, 2),
        "rate_ms": round(wire_ms, 2),
        "spans": spans,
    })
}

/// The breakdown as a table: per page, each span's wall and busy milliseconds.
fn print_breakdown(title: &str, b: &Value) {
    println!();
    println!(
        "{title}: {} ms a page; the network alone {} ms (1 RTT + {} ms at the rate)",
        b["page_ms"], b["network_ms"], b["rate_ms"]
    );
    println!("| span | count | wall ms/page | busy ms/page |");
    println!("|---|---:|---:|---:|");
    if let Some(spans) = b["spans"].as_object() {
        for name in crate::spans::TIMED {
            if let Some(s) = spans.get(*name) {
                println!(
                    "| {name} | {} | {} | {} |",
                    s["count"], s["wall_ms_per_page"], s["busy_ms_per_page"]
                );
            }
        }
    }
}

/// The figures as a table, each next to its target.
pub fn print(f: &Value) {
    let n = |k: &str| f[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "WAN pull ({} ms RTT, {} Mbit/s, TLS, slow start {})",
        f["wan_rtt_ms"], f["wan_mbps"], f["wan_slow_start"]
    );
    let rows: [(&str, Option<bool>, &str); 16] = [
        ("records", None, "= emulator Cases"),
        ("api_calls", None, ""),
        ("wan_pull_records_per_s", None, ""),
        (
            "wan_ceiling_records_per_s",
            None,
            "bytes on wire at the bandwidth + 1 RTT per call",
        ),
        ("of_ceiling", Some(n("of_ceiling") >= 0.8), ">= 0.8"),
        ("bytes_on_wire", None, ""),
        ("bytes_per_record", None, ""),
        ("connections", None, ""),
        ("compressed_responses", None, ""),
        (
            "plain_pull_records_per_s",
            None,
            "a connection per request, no gzip",
        ),
        ("plain_bytes_on_wire", None, ""),
        ("plain_connections", None, ""),
        ("plain_compressed_responses", None, ""),
        (
            "speedup_vs_plain",
            Some(n("speedup_vs_plain") >= 5.0),
            ">= 5",
        ),
        ("wan_rtt_ms", None, ""),
        ("wan_mbps", None, ""),
    ];
    println!("| figure | value | target | met |");
    println!("|---|---:|---|---|");
    for (key, met, target) in rows {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!("| {key} | {} | {target} | {met} |", f[key]);
    }
    print_breakdown("Default pull", &f["breakdown"]);
    print_breakdown("Plain pull", &f["plain_breakdown"]);
}

#[cfg(test)]
mod tests {
    use super::WanProfile;
    use std::time::Duration;

    #[test]
    fn profiles_parse_and_bad_ones_are_named() {
        let p = WanProfile::parse("50ms,100mbit").unwrap();
        assert_eq!((p.rtt, p.mbps), (Duration::from_millis(50), 100.0));
        let p = WanProfile::parse("0.2s,1gbit").unwrap();
        assert_eq!((p.rtt, p.mbps), (Duration::from_millis(200), 1000.0));
        for bad in ["50ms", "50,100mbit", "50ms,fast", "50ms,0mbit"] {
            let e = WanProfile::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
