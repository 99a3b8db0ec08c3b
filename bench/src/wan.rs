//! `sluice-bench --wan 50ms,100mbit`: the sandboxed pull against the emulator served over TLS
//! with a round-trip time and a bandwidth, next to the ceiling that network allows: the bytes
//! the emulator sent at that bandwidth plus one round trip per API call.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sluice::app::{App, AppConfig};
use sluice::engine::roots::ExtraRoots;
use sluice::runner::{PullOptions, RunStatus};

/// A network between the host and the provider.
#[derive(Debug, Clone, Copy)]
pub struct WanProfile {
    /// Round-trip time.
    pub rtt: Duration,
    /// Bandwidth, megabits per second.
    pub mbps: f64,
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
        Ok(Self { rtt, mbps })
    }
}

/// Pulls `scale` Cases through the sandbox over `profile` and returns the figures.
pub async fn run(profile: WanProfile, scale: usize, quiet: bool) -> anyhow::Result<Value> {
    let settings = sf_emulator::Settings {
        rtt_ms: profile.rtt.as_millis() as u64,
        mbps: profile.mbps,
        ..sf_emulator::Settings::default()
    };
    super::note(
        quiet,
        &format!(
            "starting the emulator over TLS ({} ms RTT, {} Mbit/s, {scale} Cases)...",
            settings.rtt_ms, settings.mbps
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
    let root = emulator
        .tls_root_pem
        .clone()
        .context("the emulator's root")?;
    let control = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes())?)
        .build()?;

    let data_dir = sluice_test_support::temp_dir("bench-wan");
    let mut config = AppConfig::new(data_dir.to_path_buf());
    // As the operator would: the emulator's exact origin, loopback, and its root (--ca-file).
    sluice_test_support::runtime::approve_emulator(&mut config, &emulator.url);
    config.limits.outbound.extra_roots =
        ExtraRoots::from_pem(root.as_bytes()).map_err(anyhow::Error::msg)?;
    config.bundled_connector = Some(sluice::SALESFORCE_COMPONENT);
    let app = App::open(config).await?;
    let id = app
        // REST query pages, as the main bench pulls: one round trip per page.
        .add_integration(super::case_integration("bench wan", &emulator))
        .await?
        .integration
        .id;
    super::authorize(&app, &emulator, &control, &id).await?;

    super::note(quiet, "pulling Case through the sandboxed component...");
    let before = emulator.state.stats.lock().expect("stats").clone();
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
    let after = emulator.state.stats.lock().expect("stats").clone();
    if summary.status != RunStatus::Succeeded {
        bail!("the pull ended {:?}: {:?}", summary.status, summary.streams);
    }
    let records = summary.records;
    let api_calls = after.api_calls - before.api_calls;
    let connections = after.connections - before.connections;
    let wire_bytes = after.wire_bytes_sent - before.wire_bytes_sent;
    // What the network allows: every byte at the bandwidth, plus one round trip per call.
    let transfer_s = wire_bytes as f64 * 8.0 / (profile.mbps * 1e6);
    let ceiling_s = transfer_s + api_calls as f64 * profile.rtt.as_secs_f64();
    let figures = json!({
        "wan_rtt_ms": profile.rtt.as_millis() as u64,
        "wan_mbps": profile.mbps,
        "records": records,
        "api_calls": api_calls,
        "connections": connections,
        "wire_bytes": wire_bytes,
        "bytes_per_record": super::round(wire_bytes as f64 / records.max(1) as f64, 1),
        "seconds": super::round(seconds, 2),
        "records_per_s": super::round(records as f64 / seconds, 0),
        "ceiling_seconds": super::round(ceiling_s, 2),
        "ceiling_records_per_s": super::round(records as f64 / ceiling_s.max(1e-9), 0),
        "of_ceiling_pct": super::round(100.0 * ceiling_s / seconds, 1),
    });
    drop(app);
    drop(data_dir);
    Ok(figures)
}

/// The figures as a table.
pub fn print(f: &Value) {
    println!(
        "WAN pull ({} ms RTT, {} Mbit/s, TLS)",
        f["wan_rtt_ms"], f["wan_mbps"]
    );
    for (label, key) in [
        ("records", "records"),
        ("seconds", "seconds"),
        ("records/s", "records_per_s"),
        ("ceiling records/s", "ceiling_records_per_s"),
        ("% of ceiling", "of_ceiling_pct"),
        ("API calls", "api_calls"),
        ("connections opened", "connections"),
        ("wire bytes", "wire_bytes"),
        ("wire bytes/record", "bytes_per_record"),
    ] {
        println!("  {label:<20} {}", f[key]);
    }
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
