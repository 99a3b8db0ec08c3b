//! `--dev-loop`: how long a connector developer waits between saving a file and seeing the
//! first page of the new version. `sluice dev` (the binary beside this one) runs the fixture
//! crate `tests/fixtures/dev-connector` against the in-process Zendesk emulator; each round
//! rewrites the field the fixture adds to every record and times, from the write, until a
//! row carrying the new value is printed. The rebuild is cargo's incremental release build of
//! the crate (its dependencies were built by the first run), so the figure is build, load,
//! configure, test and one page.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use zendesk_emulator::{Emulator, EmulatorConfig};

/// Edits timed.
const ROUNDS: usize = 5;
/// Longest wait for one line before the bench gives up (a cold first build included).
const PATIENCE: Duration = Duration::from_secs(1800);

/// Kills the `sluice dev` child when the bench ends, however it ends.
struct Dev {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    /// Reads lines until one `matches` it; returns it.
    fn until(&self, what: &str, matches: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .with_context(|| format!("sluice dev never printed {what}"))?;
            if line.starts_with("build failed") {
                bail!("the fixture did not build: {line}");
            }
            if matches(&line) {
                return Ok(line);
            }
        }
    }
}

/// Runs the rounds and returns the figures.
pub async fn run(json_only: bool) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().context("the bench's directory")?;
    let sluice = bin_dir.join("sluice");
    if !sluice.is_file() {
        bail!(
            "{} is missing; build it first: cargo build --release -p sluice",
            sluice.display()
        );
    }
    let fixture_target = bin_dir
        .parent()
        .context("the target directory")?
        .join("dev-fixture");
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    let token = mint_token(&emu).await?;
    let dir = sluice_test_support::temp_dir("bench-dev-loop");
    let krate = copy_fixture(dir.path())?;
    let settings = dir.path().join("settings.json");
    std::fs::write(
        &settings,
        json!({"values": {"base-url": emu.url}}).to_string(),
    )?;
    if !json_only {
        eprintln!("sluice dev on the fixture crate (the first build may take minutes)…");
    }
    let dev = spawn(
        &sluice,
        &krate,
        &settings,
        &emu.url,
        &token,
        &fixture_target,
    )?;
    dev.until("the first page", |l| l.contains("first-version"))?;
    dev.until("the watch", |l| l.starts_with("watching "))?;

    let mut measured = Vec::new();
    let mut reported = Vec::new();
    let mut marker = "first-version".to_string();
    for round in 1..=ROUNDS {
        let next = format!("bench-round-{round}");
        let source_path = krate.join("src/lib.rs");
        let source = std::fs::read_to_string(&source_path)?;
        let edited = source.replacen(&format!("\"{marker}\""), &format!("\"{next}\""), 1);
        let saved = Instant::now();
        std::fs::write(&source_path, edited)?;
        let seen = format!("\"dev_marker\":\"{next}\"");
        dev.until("the new version's row", |l| l.contains(&seen))?;
        measured.push(saved.elapsed());
        let own = dev.until("its own figure", |l| l.starts_with("edit to first page: "))?;
        reported.push(parse_seconds(&own));
        marker = next;
    }
    measured.sort();
    let secs = |d: Duration| crate::round(d.as_secs_f64(), 2);
    Ok(json!({
        "dev_rounds": ROUNDS,
        "dev_edit_to_first_page_s_p50": secs(measured[ROUNDS / 2]),
        "dev_edit_to_first_page_s_min": secs(measured[0]),
        "dev_edit_to_first_page_s_max": secs(measured[ROUNDS - 1]),
        "dev_reported_s": reported,
        "load_average_1m": load_average(),
    }))
}

/// Prints the figures as the bench's other tables.
pub fn print(f: &Value) {
    println!("| dev-loop figure | value | note |");
    println!("|---|---:|---|");
    println!(
        "| dev_edit_to_first_page_s_p50 | {} | save → first row of the new version printed, {} rounds |",
        f["dev_edit_to_first_page_s_p50"], f["dev_rounds"]
    );
    println!(
        "| dev_edit_to_first_page_s_min / max | {} / {} | |",
        f["dev_edit_to_first_page_s_min"], f["dev_edit_to_first_page_s_max"]
    );
    println!(
        "| dev_reported_s | {} | `sluice dev`'s own figure (from the change it saw) |",
        f["dev_reported_s"]
    );
    println!(
        "| load_average_1m | {} | the machine's load during the run |",
        f["load_average_1m"]
    );
}

fn spawn(
    sluice: &Path,
    krate: &Path,
    settings: &Path,
    emulator: &str,
    token: &str,
    fixture_target: &Path,
) -> anyhow::Result<Dev> {
    let mut child = Command::new(sluice)
        .arg("dev")
        .arg(krate)
        .args(["--emulator", emulator, "--pages", "1"])
        .arg("--settings")
        .arg(settings)
        .args(["--token-env", "BENCH_DEV_TOKEN"])
        .env("BENCH_DEV_TOKEN", token)
        .env("CARGO_TARGET_DIR", fixture_target)
        .env("CARGO_NET_OFFLINE", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting sluice dev")?;
    let stdout = child.stdout.take().context("sluice dev's stdout")?;
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Ok(Dev { child, lines })
}

/// The fixture copied to `dir/crate`, with the SDK's path made absolute and the workspace's
/// lock file (cargo then resolves offline).
fn copy_fixture(dir: &Path) -> anyhow::Result<PathBuf> {
    let workspace = sluice_test_support::workspace();
    let from = workspace.join("tests/fixtures/dev-connector");
    let to = dir.join("crate");
    std::fs::create_dir_all(to.join("src"))?;
    for file in ["manifest.json", "src/lib.rs"] {
        std::fs::copy(from.join(file), to.join(file))?;
    }
    let sdk = workspace.join("crates/sdk").display().to_string();
    let cargo_toml = std::fs::read_to_string(from.join("Cargo.toml"))?
        .replace("path = \"../../../crates/sdk\"", &format!("path = {sdk:?}"));
    std::fs::write(to.join("Cargo.toml"), cargo_toml)?;
    std::fs::copy(workspace.join("Cargo.lock"), to.join("Cargo.lock"))?;
    Ok(to)
}

async fn mint_token(emu: &Emulator) -> anyhow::Result<String> {
    let text = reqwest::Client::new()
        .post(format!("{}/__emulator/oauth/grant", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .header("content-type", "application/json")
        .body(json!({"scope": "read"}).to_string())
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let grant: Value = serde_json::from_str(&text)?;
    grant["access_token"]
        .as_str()
        .map(String::from)
        .context("the emulator's grant has no access_token")
}

fn parse_seconds(line: &str) -> f64 {
    line.trim_start_matches("edit to first page: ")
        .trim_end_matches(" s")
        .parse()
        .unwrap_or(f64::NAN)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
