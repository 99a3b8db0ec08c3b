//! `sluice dev`: the connector developer's loop. It builds a connector crate for
//! wasm32-wasip2, loads it into an engine in this process, runs configure, test and a few
//! pages of pull, prints what happened, then watches the crate and on each change rebuilds,
//! hot-swaps the new version and runs again from the last checkpoints.
//!
//! Threat: the crate is the developer's, but the component is still a guest: it runs under
//! the same sandbox and egress policy as in production, so what works here works there. The
//! provider's token comes from an environment variable (never argv, which other local
//! accounts can read) and goes only to the instance origin, as the host's own would.

mod cycle;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use crate::engine::outbound::cassette::{Cassette, Recorder, Tape};
use crate::engine::policy::{Origin, parse_extra_origin};
use crate::engine::registry::{
    ConnectorRegistry, HostApproval, MemoryVersionStore, StaticCanaryTargets,
};
use crate::engine::{ConnectorEngine, EngineLimits, LoadedConnector};
use crate::output::outln;

use super::Cli;

/// The registry name the developer's connector is installed under.
const DEV_NAME: &str = "dev";

/// `sluice dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// The connector crate's directory (default: the current directory).
    pub crate_dir: Option<PathBuf>,
    /// A loopback emulator (http://127.0.0.1:PORT) standing for the provider: approved as an
    /// extra origin over plain http, and the origin the token goes to. With --replay, the
    /// origin the recording was made against (nothing is sent there).
    #[arg(long, value_name = "URL")]
    pub emulator: Option<String>,
    /// Answer every request from this cassette directory; nothing reaches the network.
    #[arg(long, value_name = "DIR", conflicts_with = "record")]
    pub replay: Option<PathBuf>,
    /// Record every request and its answer into this (new or empty) cassette directory.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// A JSON file: `{"capability": "helpdesk", "settings": {"name": "value", …}}`.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// The environment variable holding the provider's access token (never pass it in argv).
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// The origin the token goes to, when it is not the emulator's.
    #[arg(long, value_name = "URL")]
    pub instance_url: Option<String>,
    /// Pages of each stream to pull per run.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub pages: u32,
    /// Rows asked for per page.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_records: u32,
    /// Rows printed per page.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub show_rows: usize,
    /// Run once and exit (non-zero when the build, configure, test or a page failed),
    /// instead of watching the crate.
    #[arg(long)]
    pub once: bool,
}

/// The settings file's shape, the one `sluice conformance --settings` reads: the capability
/// (default: the connector's first), the settings by name, and the grant's non-secret fields.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    capability: Option<String>,
    #[serde(default)]
    values: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    grant: std::collections::BTreeMap<String, String>,
}

/// Runs `sluice dev`.
pub async fn run(cli: &Cli, args: &DevArgs) -> anyhow::Result<std::process::ExitCode> {
    let given = args.crate_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    if !given.join("Cargo.toml").is_file() {
        bail!(
            "{} has no Cargo.toml; give the connector crate's directory",
            given.display()
        );
    }
    // Absolute, as the paths the file watcher reports are.
    let crate_dir =
        std::fs::canonicalize(&given).with_context(|| format!("resolving {}", given.display()))?;
    let settings = read_settings(args.settings.as_deref())?;
    let emulator = args
        .emulator
        .as_deref()
        .map(|url| parse_extra_origin(url).with_context(|| format!("--emulator {url}")))
        .transpose()?;
    let instance = match (&args.instance_url, &emulator) {
        (Some(url), _) => Some(url.clone()),
        (None, _) if settings.grant.contains_key("instance_url") => {
            settings.grant.get("instance_url").cloned()
        }
        (None, Some(origin)) => Some(origin.to_string()),
        (None, None) => None,
    };
    let token = match &args.token_env {
        Some(var) => Some(std::env::var(var).with_context(|| {
            format!("--token-env {var}: the environment variable {var} is not set")
        })?),
        None => None,
    };
    let tape = tape(args)?;
    let mut extra_origins: Vec<Origin> = cli.extra_origins.clone();
    extra_origins.extend(emulator.clone());
    let mut limits = EngineLimits::default();
    limits.outbound.tape = tape.clone();
    limits.outbound.extra_roots = cli.ca_files.iter().fold(
        Default::default(),
        |all: crate::engine::roots::ExtraRoots, file| all.with(file),
    );
    let engine = ConnectorEngine::with_cache(limits, Some(&crate_dir.join("target/sluice-dev")))
        .context("starting the engine")?;
    let registry = ConnectorRegistry::new(
        engine,
        Arc::new(MemoryVersionStore::default()),
        Arc::new(StaticCanaryTargets::default()),
    );
    let dev = cycle::Dev {
        registry: registry.clone(),
        settings,
        extra_origins: extra_origins.into(),
        insecure_loopback: cli.allow_insecure_loopback || emulator.is_some(),
        instance_url: instance,
        secret: token.map(|t| (t, args.token_env.clone().unwrap_or_default())),
        tape,
        pages: args.pages.max(1),
        max_records: args.max_records.max(1),
        show_rows: args.show_rows,
    };
    let mut state = cycle::State::default();
    let started = Instant::now();
    let built = build_and_swap(&registry, &crate_dir).await;
    let ok = match built {
        Ok(connector) => dev.run(&connector, &mut state, ("start", started)).await?,
        Err(e) => {
            outln!("build failed: {e:#}")?;
            false
        }
    };
    if args.once {
        return Ok(if ok {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        });
    }
    watch::watch(&crate_dir, &registry, &dev, &mut state).await?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The cassette mode the flags ask for.
fn tape(args: &DevArgs) -> anyhow::Result<Tape> {
    Ok(match (&args.replay, &args.record) {
        (Some(dir), _) => Tape::Replay(Arc::new(Cassette::load(dir)?)),
        (None, Some(dir)) => Tape::Record(Arc::new(Recorder::create(dir)?)),
        (None, None) => Tape::Off,
    })
}

fn read_settings(path: Option<&Path>) -> anyhow::Result<SettingsFile> {
    let Some(path) = path else {
        return Ok(SettingsFile::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the settings file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "the settings file {} is not {{\"capability\": \"…\", \"values\": {{\"name\": \"value\"}}, \"grant\": {{…}}}}",
            path.display()
        )
    })
}

/// Builds the crate, appends its `manifest.json` (when it has one) as the component's
/// `sluice:manifest` section, and makes it the active version.
async fn build_and_swap(
    registry: &Arc<ConnectorRegistry>,
    crate_dir: &Path,
) -> anyhow::Result<Arc<LoadedConnector>> {
    let manifest = crate_dir.join("Cargo.toml");
    let (setup, wasm) =
        tokio::task::spawn_blocking(move || sluice_guest_build::build_crate(&manifest))
            .await
            .context("the build task")??;
    if let Some(line) = setup.message() {
        outln!("{line}")?;
    }
    let mut component =
        std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let egress = crate_dir.join("manifest.json");
    if egress.is_file() {
        let json =
            std::fs::read(&egress).with_context(|| format!("reading {}", egress.display()))?;
        sluice_guest_build::append_custom_section(&mut component, "sluice:manifest", &json);
    }
    // The developer is the operator here: the manifest they wrote is approved as it is.
    let report = registry
        .install_with_approval(DEV_NAME, &component, false, HostApproval::Approved)
        .await?;
    registry
        .active(DEV_NAME)
        .filter(|c| c.version == report.version)
        .context("the installed version is not active")
}
