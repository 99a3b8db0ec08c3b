//! The `sluice` command line. The command names are a contract that scripts depend on; keep them.
//!
//! Errors print as one line on stderr with a non-zero exit; panics are caught by a hook that
//! prints one line too.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::{App, AppConfig, IntegrationInput, Validated};
use crate::duration::parse_duration;
use crate::oauth::Callback;
use crate::output::outln;
use crate::runner::{Progress, PullOptions, RunStatus, RunSummary};
use crate::store::{Integration, IntegrationState};
use crate::terminal::safe;
use crate::views::list_rows;

/// Sluice: run sandboxed data connectors for many tenants.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    /// Where state lives (database, key file, compile cache, plugins). Default:
    /// $XDG_DATA_HOME/sluice, else ~/.local/share/sluice.
    #[arg(long, global = true, env = "SLUICE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Allow plain-http calls to loopback addresses (the emulator, tests, demos); only to
    /// origins approved with --extra-origin.
    #[arg(long, global = true)]
    pub allow_insecure_loopback: bool,
    /// An origin (scheme://host:port) every connector may reach besides its manifest's hosts,
    /// e.g. the emulator's http://127.0.0.1:8080. Repeatable; exact scheme, host and port.
    #[arg(
        long = "extra-origin",
        global = true,
        env = "SLUICE_EXTRA_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN",
        value_parser = parse_origin
    )]
    pub extra_origins: Vec<crate::engine::policy::Origin>,
    /// Print machine-readable JSON (read commands).
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging (-v info, -vv debug, -vvv trace). Logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admin API, the OAuth callback, the scheduler and the plugin watcher.
    Serve(ServeArgs),
    /// Manage integrations.
    #[command(subcommand)]
    Integration(IntegrationCommand),
    /// Authorize an integration, or re-generate its token (data and checkpoints are kept).
    Connect(ConnectArgs),
    /// Test Connection: exits non-zero on failure, printing its kind and message.
    Test {
        /// The integration id.
        id: String,
    },
    /// Pull now.
    Pull {
        /// The integration id.
        id: String,
        /// Start every stream from the beginning (records are kept and updated in place).
        #[arg(long)]
        full: bool,
    },
    /// Export stored records.
    Records(RecordsArgs),
    /// Manage connector plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Start the bundled Salesforce emulator and show everything end to end.
    Demo(crate::demo::DemoArgs),
    /// Print the admin API token `serve` generated in the data directory (made now if absent).
    AdminToken,
}

/// `sluice serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the admin API and the OAuth callback.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: std::net::SocketAddr,
    /// Bearer token the admin API requires; mandatory when listening beyond loopback.
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The base URL browsers reach this server at, for the OAuth redirect URI
    /// (`<public-url>/oauth/callback`). Default: `http://localhost:<port>` on loopback,
    /// else `http://<listen>`.
    #[arg(long)]
    pub public_url: Option<String>,
    /// At most this many pulls at once.
    #[arg(long, default_value_t = 8)]
    pub max_concurrent_pulls: usize,
    /// Proactive token refresh age, between 1m and 24h, e.g. 90m.
    #[arg(long, value_parser = parse_refresh_age)]
    pub refresh_age: Option<Duration>,
    /// At most this many admin API connections open at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_connections: u16,
    /// Close an admin API connection that has not sent a complete request head in this time.
    #[arg(long, value_parser = parse_header_read_timeout, default_value = "10s")]
    pub header_read_timeout: Duration,
}

/// `sluice integration ...`.
#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// Add an integration; prints its id.
    Add(AddArgs),
    /// List integrations, newest first, with state, last run and token health.
    List,
    /// Show one integration.
    Show {
        /// The integration id.
        id: String,
    },
    /// Change an integration (validated like `add`; data and tokens are kept).
    Edit(EditArgs),
    /// Delete an integration with its tokens, records, checkpoints and runs.
    Delete {
        /// The integration id.
        id: String,
    },
}

/// `integration add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// helpdesk, crm or content-management.
    #[arg(long)]
    pub capability: String,
    /// production or sandbox.
    #[arg(long)]
    pub environment: String,
    /// The org's domain URL (My Domain, Lightning or instance URL).
    #[arg(long)]
    pub domain: Option<String>,
    /// created or updated.
    #[arg(long)]
    pub pull_by: Option<String>,
    /// The connected app's client id (default: SLUICE_CLIENT_ID).
    #[arg(long)]
    pub client_id: Option<String>,
    /// The connected app's client secret (default: SLUICE_CLIENT_SECRET).
    #[arg(long, env = "SLUICE_INTEGRATION_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Pull interval, e.g. 15m, 1h, 30s.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Connector setting NAME=VALUE (e.g. start-date=2024-01-01, objects=Case,CaseComment).
    #[arg(long = "set", value_parser = parse_pair, value_name = "NAME=VALUE")]
    pub extra: Vec<(String, String)>,
}

/// `integration edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The integration id.
    pub id: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// helpdesk, crm or content-management.
    #[arg(long)]
    pub capability: Option<String>,
    /// production or sandbox.
    #[arg(long)]
    pub environment: Option<String>,
    /// The org's domain URL ("" removes it).
    #[arg(long)]
    pub domain: Option<String>,
    /// created or updated ("" removes it).
    #[arg(long)]
    pub pull_by: Option<String>,
    /// The connected app's client id.
    #[arg(long)]
    pub client_id: Option<String>,
    /// The connected app's client secret.
    #[arg(long, env = "SLUICE_INTEGRATION_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Pull interval.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Connector setting NAME=VALUE ("NAME=" removes it).
    #[arg(long = "set", value_parser = parse_pair, value_name = "NAME=VALUE")]
    pub extra: Vec<(String, String)>,
}

/// `sluice connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The integration id.
    pub id: String,
    /// Print the authorize URL only; do not open a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Use the client-credentials grant instead (server-to-server; needs the My Domain).
    #[arg(long)]
    pub client_credentials: bool,
    /// Loopback port for the callback (0: any free port). Fix it when the connected app
    /// registers an exact callback URL.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// How long to wait for the browser.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
}

/// `sluice records`.
#[derive(Debug, Args)]
pub struct RecordsArgs {
    /// The integration id.
    pub id: String,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RecordFormat::Jsonl)]
    pub format: RecordFormat,
    /// Include delete tombstones.
    #[arg(long)]
    pub with_deleted: bool,
}

/// Record export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RecordFormat {
    /// One JSON object per line.
    Jsonl,
    /// One JSON array.
    Json,
}

/// `sluice plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install a component as a new version (validated, canaried, then published).
    Install {
        /// The `.wasm` component.
        file: PathBuf,
        /// The plugin name (default: the file's stem up to `@`).
        #[arg(long)]
        name: Option<String>,
        /// Approve the hosts and methods the component's manifest declares, even where they
        /// reach beyond the active version's (review them first: `install` prints them).
        #[arg(long)]
        approve_hosts: bool,
    },
    /// List plugin versions, which one is active, and since when.
    List,
    /// Make an installed version serve calls again: a rollback (or roll-forward) in one command.
    Activate {
        /// The plugin name, e.g. `salesforce`.
        name: String,
        /// The version number `plugin list` shows.
        version: u32,
    },
}

/// Parses an `--extra-origin`.
fn parse_origin(text: &str) -> Result<crate::engine::policy::Origin, String> {
    crate::engine::policy::parse_extra_origin(text).map_err(|e| e.to_string())
}

/// The bounds of `serve --refresh-age`: a token is refreshed before Salesforce's shortest
/// session timeout ends, and never on every call.
pub const REFRESH_AGE_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(24 * 3600);

fn parse_refresh_age(text: &str) -> Result<Duration, String> {
    let age = parse_duration(text)?;
    if !REFRESH_AGE_RANGE.contains(&age) {
        return Err(format!(
            "{text:?} is out of range: the refresh age must be between 1m and 24h"
        ));
    }
    Ok(age)
}

fn parse_header_read_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    if timeout.is_zero() || timeout > Duration::from_secs(600) {
        return Err(format!("{text:?} is out of range: use between 1ms and 10m"));
    }
    Ok(timeout)
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

/// The default data directory.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sluice");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/share/sluice");
    }
    PathBuf::from(".sluice")
}

/// Entry point of the binary: parses, runs, prints one error line on failure.
pub fn main() -> std::process::ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        eprintln!("error: internal error: {} (please report this)", safe(&msg));
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // One line, like every other error; `--help` has the rest.
            let text = e.render().to_string();
            let line = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("{} (see --help)", safe(&line));
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(cli.verbose, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // The reader has what it wanted (`| head`): stop quietly, as other Unix tools do.
        Err(e) if crate::output::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {}", safe(&line));
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8, format: LogFormat) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn config(cli: &Cli) -> AppConfig {
    let mut config = AppConfig::new(cli.data_dir.clone().unwrap_or_else(default_data_dir));
    config.allow_insecure_loopback = cli.allow_insecure_loopback;
    config.extra_origins = cli.extra_origins.clone();
    config
}

async fn open(cli: &Cli) -> anyhow::Result<Arc<App>> {
    Ok(App::open(config(cli)).await?)
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match &cli.command {
        Command::Serve(args) => {
            let mut config = config(&cli);
            if let Some(age) = args.refresh_age {
                config.refresh_age = age;
            }
            crate::serve::serve(config, args).await?;
        }
        Command::Demo(args) => crate::demo::run(&cli, args).await?,
        Command::AdminToken => {
            let data_dir = cli.data_dir.clone().unwrap_or_else(default_data_dir);
            outln!("{}", crate::admin_token::load_or_create(&data_dir)?)?;
        }
        Command::Integration(cmd) => {
            let app = open(&cli).await?;
            integration(&app, cmd, cli.json).await?;
        }
        Command::Connect(args) => {
            let app = open(&cli).await?;
            connect(&app, args, &mut |url| {
                eprintln!("Open this URL in a browser to authorize:\n\n  {url}\n");
            })
            .await?;
        }
        Command::Test { id } => {
            let app = open(&cli).await?;
            if !test(&app, id, cli.json).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Pull { id, full } => {
            let app = open(&cli).await?;
            let summary = pull(&app, id, *full, "cli", cli.json).await?;
            if summary.status != RunStatus::Succeeded {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Records(args) => {
            let app = open(&cli).await?;
            records(&app, args)?;
        }
        Command::Plugin(cmd) => {
            let app = open(&cli).await?;
            plugin(&app, cmd, cli.json).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn ago(ms: i64) -> String {
    let secs = (crate::store::now_ms() - ms).max(0) / 1000;
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

async fn integration(app: &Arc<App>, cmd: &IntegrationCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        IntegrationCommand::Add(a) => {
            let v = app
                .add_integration(IntegrationInput {
                    name: Some(a.name.clone()),
                    capability: Some(a.capability.clone()),
                    environment: Some(a.environment.clone()),
                    domain: a.domain.clone(),
                    pull_by: a.pull_by.clone(),
                    extra: a.extra.clone(),
                    interval: a.interval,
                    client_id: a.client_id.clone(),
                    client_secret: a.client_secret.clone(),
                })
                .await?;
            print_warnings(&v);
            if json {
                print_json(&v)?;
            } else {
                outln!("{}", v.integration.id)?;
            }
        }
        IntegrationCommand::List => {
            let rows = list_rows(app)?;
            if json {
                return print_json(&rows);
            }
            if rows.is_empty() {
                outln!("no integrations yet: add one with `sluice integration add`")?;
                return Ok(());
            }
            outln!(
                "{:<18} {:<20} {:<18} {:<22} {:<28} TOKEN",
                "ID",
                "NAME",
                "CAPABILITY",
                "STATE",
                "LAST RUN"
            )?;
            for r in rows {
                let i = &r.integration;
                let last = r.last_run.as_ref().map_or("never".to_string(), |run| {
                    format!("{} {}", run.status, ago(run.started_at_ms))
                });
                let token = r.token.as_ref().map_or("none".to_string(), |t| {
                    t.checked_at_ms.map_or(t.health.to_string(), |c| {
                        format!("{} (checked {})", t.health, ago(c))
                    })
                });
                outln!(
                    "{:<18} {:<20} {:<18} {:<22} {:<28} {}",
                    i.id,
                    truncate(&safe(&i.name), 20),
                    safe(&i.settings.capability),
                    i.state.as_str(),
                    safe(&last),
                    safe(&token)
                )?;
            }
        }
        IntegrationCommand::Show { id } => {
            let v = app.show_integration(id).await?;
            let runs = app.runs(id, 5)?;
            let checkpoints = app.store.checkpoints(id)?;
            let counts = app.store.record_counts(id)?;
            let token = app.store.token_health(id)?;
            if json {
                return print_json(&serde_json::json!({
                    "integration": v.integration, "warnings": v.warnings,
                    "normalized": v.normalized, "streams": v.streams, "runs": runs,
                    "checkpoints": checkpoints.iter().map(|(s, c, st)| serde_json::json!({"stream": s, "checkpoint": c, "status": st})).collect::<Vec<_>>(),
                    "records": counts, "token": token,
                }));
            }
            let i = &v.integration;
            outln!("id:           {}", i.id)?;
            outln!("name:         {}", safe(&i.name))?;
            outln!("plugin:       {}", safe(&i.plugin))?;
            outln!("state:        {}", i.state.as_str())?;
            if let Some(reason) = &i.state_reason {
                outln!("reason:       {}", safe(reason))?;
            }
            outln!("capability:   {}", safe(&i.settings.capability))?;
            outln!("environment:  {}", safe(&i.settings.environment))?;
            outln!(
                "pull-by:      {}",
                safe(i.settings.pull_by.as_deref().unwrap_or("-"))
            )?;
            outln!(
                "domain:       {}",
                safe(i.settings.domain.as_deref().unwrap_or("-"))
            )?;
            for (k, val) in &i.settings.extra {
                outln!("{:<13} {}", safe(&format!("{k}:")), safe(val))?;
            }
            outln!("interval:     {}s", i.interval_s)?;
            outln!(
                "client id:    {}",
                safe(i.client_id.as_deref().unwrap_or("(host default)"))
            )?;
            outln!(
                "token:        {}",
                safe(token.map_or("not connected", |t| t.health.as_str()))
            )?;
            outln!("streams:      {}", safe(&v.streams.join(", ")))?;
            for (k, val) in &v.normalized {
                outln!("normalized:   {} = {}", safe(k), safe(val))?;
            }
            for c in counts {
                outln!(
                    "records:      {} {} live, {} deleted",
                    safe(&c.stream),
                    c.live,
                    c.deleted
                )?;
            }
            for r in runs {
                outln!(
                    "run:          {} {} {} records, {} API calls, {}",
                    r.id,
                    safe(r.status.as_str()),
                    r.records,
                    r.api_calls,
                    ago(r.started_at_ms)
                )?;
            }
            print_warnings(&v);
        }
        IntegrationCommand::Edit(a) => {
            let v = app
                .edit_integration(
                    &a.id,
                    IntegrationInput {
                        name: a.name.clone(),
                        capability: a.capability.clone(),
                        environment: a.environment.clone(),
                        domain: a.domain.clone(),
                        pull_by: a.pull_by.clone(),
                        extra: a.extra.clone(),
                        interval: a.interval,
                        client_id: a.client_id.clone(),
                        client_secret: a.client_secret.clone(),
                    },
                )
                .await?;
            print_warnings(&v);
            if json {
                print_json(&v)?;
            } else {
                outln!("updated {}", v.integration.id)?;
            }
        }
        IntegrationCommand::Delete { id } => {
            app.delete_integration(id).await?;
            outln!("deleted {id}")?;
        }
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

fn print_warnings(v: &Validated) {
    for w in &v.warnings {
        eprintln!("warning: {}: {}", safe(&w.field), safe(&w.message));
    }
}

/// `sluice connect`: the loopback flow, or client credentials. `show_url` receives the
/// authorize URL (the CLI prints it; the demo follows it).
pub async fn connect(
    app: &Arc<App>,
    args: &ConnectArgs,
    show_url: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<Integration> {
    let before = app
        .store
        .integration(&args.id)
        .map_err(crate::app::AppError::from)?;
    if args.client_credentials {
        let i = app.connect_client_credentials(&args.id).await?;
        outln!("connected {} with the client-credentials grant", i.id)?;
        return Ok(i);
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let port = listener.local_addr()?.port();
    let redirect = format!("http://127.0.0.1:{port}/oauth/callback");
    let start = app.begin_authorization(&args.id, &redirect).await?;
    show_url(start.url.as_str());
    if !args.no_browser {
        open_browser(start.url.as_str());
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<CallbackMsg>(4);
    let router = axum::Router::new()
        .route("/oauth/callback", axum::routing::get(callback_handler))
        .with_state(CallbackListener {
            tx,
            state: start.state.as_str().into(),
        });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });
    let outcome = async {
        let (callback, reply) = tokio::time::timeout(args.timeout, rx.recv())
            .await
            .map_err(|_| {
                // Salesforce shows errors such as redirect_uri_mismatch on its own page
                // instead of redirecting, so a timeout is all the CLI sees of them.
                anyhow::anyhow!(
                    "no authorization within {:?}; if Salesforce showed an error such as \
                     redirect_uri_mismatch, register {redirect} as a callback URL of the \
                     connected app (use --port to fix the port), then run `sluice connect {}` again",
                    args.timeout,
                    args.id
                )
            })?
            .ok_or_else(|| anyhow::anyhow!("the callback listener stopped"))?;
        let result = app.complete_authorization(callback).await;
        let page = match &result {
            Ok(_) => (
                axum::http::StatusCode::OK,
                "Sluice: authorized. You can close this window.".to_string(),
            ),
            Err(e) => (
                axum::http::StatusCode::BAD_REQUEST,
                format!("Sluice: authorization failed: {e}"),
            ),
        };
        let _ = reply.send(page);
        Ok::<_, anyhow::Error>(result?)
    }
    .await;
    // Give the browser its page before the listener goes away.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    let integration = outcome?;
    let verb = if before.state == IntegrationState::PendingAuthorization {
        "authorized"
    } else {
        "re-generated the token of"
    };
    outln!(
        "{verb} integration {} ({})",
        integration.id,
        safe(&integration.name)
    )?;
    Ok(integration)
}

/// The page the browser gets back from the loopback listener.
type CallbackPage = (axum::http::StatusCode, String);
/// A callback of the flow in progress, and where its page goes.
type CallbackMsg = (Callback, tokio::sync::oneshot::Sender<CallbackPage>);

/// The loopback listener's state: where callbacks go and the `state` of the flow it waits for.
#[derive(Clone)]
struct CallbackListener {
    tx: tokio::sync::mpsc::Sender<CallbackMsg>,
    state: Arc<str>,
}

/// Passes on only a callback carrying this flow's `state`: any page or local process can send
/// a request to the loopback port, and a drive-by `?error=` must not end the flow.
async fn callback_handler(
    axum::extract::State(listener): axum::extract::State<CallbackListener>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> CallbackPage {
    let query = query.unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let callback = Callback::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let ours = callback_state(&callback).is_some_and(|state| {
        crate::admin::constant_time_eq(state.as_bytes(), listener.state.as_bytes())
    });
    if !ours {
        tracing::warn!("ignored a request to the OAuth callback without this flow's state");
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "Sluice: this request is not the answer to the authorization in progress; \
             it was ignored."
                .into(),
        );
    }
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    if listener.tx.send((callback, reply_tx)).await.is_err() {
        return (
            axum::http::StatusCode::GONE,
            "Sluice: this authorization is over.".into(),
        );
    }
    reply_rx.await.unwrap_or_else(|_| {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "Sluice: authorization did not finish.".into(),
        )
    })
}

fn callback_state(callback: &Callback) -> Option<&str> {
    match callback {
        Callback::Code { state, .. } => Some(state),
        Callback::Error { state, .. } => state.as_deref(),
        Callback::Malformed(_) => None,
    }
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let mut command = std::process::Command::new(opener);
    // The browser needs none of Sluice's settings, and some of them are secrets.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            command.env_remove(name);
        }
    }
    match command
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => eprintln!("(opened your browser; use --no-browser to skip)"),
        Err(_) => eprintln!("(could not open a browser; open the URL above yourself)"),
    }
}

async fn test(app: &Arc<App>, id: &str, json: bool) -> anyhow::Result<bool> {
    let report = app.test(id).await?;
    let kind = |k| crate::runner::kind_label(k);
    if json {
        print_json(&serde_json::json!({
            "ok": report.failure.is_none(),
            "failure": report.failure.as_ref().map(|f| serde_json::json!({"kind": kind(f.kind), "message": f.message, "retry_after_s": f.retry_after_s})),
            "org": report.org, "user": report.user,
            "api_usage": report.api_usage.map(|u| serde_json::json!({"used": u.used, "limit": u.limit})),
            "probes": report.probes.iter().map(|p| serde_json::json!({"name": p.name, "ok": p.failure.is_none(), "detail": p.detail, "failure": p.failure.as_ref().map(|f| serde_json::json!({"kind": kind(f.kind), "message": f.message}))})).collect::<Vec<_>>(),
        }))?;
    } else {
        for p in &report.probes {
            match &p.failure {
                None => outln!("ok    {:<24} {}", safe(&p.name), safe(&p.detail))?,
                // A probe that failed while the report passed is a warning.
                Some(f) if report.failure.is_none() => outln!(
                    "warn  {:<24} {}: {}",
                    safe(&p.name),
                    kind(f.kind),
                    safe(&f.message)
                )?,
                Some(f) => outln!(
                    "FAIL  {:<24} {}: {}",
                    safe(&p.name),
                    kind(f.kind),
                    safe(&f.message)
                )?,
            }
        }
        if let Some(org) = &report.org {
            outln!("org:  {}", safe(org))?;
        }
        if let Some(user) = &report.user {
            outln!("user: {}", safe(user))?;
        }
        if let Some(u) = report.api_usage {
            outln!("api usage: {}/{}", u.used, u.limit)?;
        }
    }
    match report.failure {
        None => {
            if !json {
                outln!("connection ok")?;
            }
            Ok(true)
        }
        Some(f) => {
            eprintln!("error: test failed: {}: {}", kind(f.kind), safe(&f.message));
            Ok(false)
        }
    }
}

/// `sluice pull`, with progress bars on a terminal and a summary at the end.
pub async fn pull(
    app: &Arc<App>,
    id: &str,
    full: bool,
    trigger: &str,
    json: bool,
) -> anyhow::Result<RunSummary> {
    let bars = (!json && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
    let progress: Option<crate::runner::ProgressFn> = bars.map(|multi| {
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {prefix:<16} {pos:>9} records  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let active: Mutex<std::collections::HashMap<String, indicatif::ProgressBar>> =
            Mutex::default();
        let f = move |p: &Progress| {
            let mut active = active.lock().unwrap_or_else(|e| e.into_inner());
            match p {
                Progress::Started { .. } => {}
                Progress::Page {
                    stream,
                    stream_total,
                    api_usage,
                    ..
                } => {
                    let bar = active.entry(stream.clone()).or_insert_with(|| {
                        let bar = multi.add(indicatif::ProgressBar::new_spinner());
                        bar.set_style(style.clone());
                        bar.set_prefix(safe(stream).into_owned());
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bar
                    });
                    bar.set_position(*stream_total);
                    if let Some((used, limit)) = api_usage {
                        bar.set_message(format!("API {used}/{limit}"));
                    }
                }
                Progress::StreamDone { outcome } => {
                    if let Some(bar) = active.remove(&outcome.stream) {
                        bar.finish_with_message(safe(outcome.status.as_str()).into_owned());
                    }
                }
            }
        };
        Arc::new(f) as crate::runner::ProgressFn
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Ctrl-C / SIGTERM: finish the page in flight, commit, stop.
    let signal_task = tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("stopping after the current page...");
        let _ = stop_tx.send(true);
    });
    let result = crate::runner::run_pull(
        app,
        id,
        PullOptions {
            full,
            trigger: trigger.into(),
            page_records: 0,
            progress,
            stop: Some(stop_rx),
        },
    )
    .await;
    signal_task.abort();
    let summary = result?;
    if json {
        print_json(&summary)?;
    } else {
        print_summary(&summary)?;
    }
    Ok(summary)
}

/// Prints a run summary.
pub fn print_summary(s: &RunSummary) -> std::io::Result<()> {
    outln!(
        "run {} {}: {} records, {} API calls in {:.1}s ({})",
        s.run_id,
        s.status.as_str(),
        s.records,
        s.api_calls,
        s.elapsed_ms as f64 / 1000.0,
        safe(&s.plugin_version)
    )?;
    for o in &s.streams {
        let why = o
            .failure
            .as_ref()
            .map(|f| format!(" — {}: {}", f.kind, f.message))
            .or_else(|| o.detail.as_ref().map(|d| format!(" — {d}")))
            .unwrap_or_default();
        outln!(
            "  {:<20} {:<12} {:>9} records {:>5} pages{}",
            safe(&o.stream),
            safe(o.status.as_str()),
            o.records,
            o.pages,
            safe(&why)
        )?;
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn records(app: &Arc<App>, args: &RecordsArgs) -> anyhow::Result<()> {
    app.store
        .integration(&args.id)
        .map_err(crate::app::AppError::from)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut first = true;
    if matches!(args.format, RecordFormat::Json) {
        out.write_all(b"[")?;
    }
    let mut io_err = None;
    app.store
        .for_each_record(&args.id, args.stream.as_deref(), args.with_deleted, |r| {
            let record: serde_json::Value = serde_json::from_slice(&r.json).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&r.json).into())
            });
            let line = serde_json::json!({
                "stream": r.stream, "key": r.key, "version": r.version,
                "deleted": r.deleted, "cursor": r.cursor, "record": record,
            });
            let res = match args.format {
                RecordFormat::Jsonl => writeln!(out, "{line}"),
                RecordFormat::Json => {
                    let sep = if first { "" } else { "," };
                    first = false;
                    write!(out, "{sep}\n{line}")
                }
            };
            if let Err(e) = res {
                io_err = Some(e);
            }
            Ok(())
        })?;
    if let Some(e) = io_err {
        // A closed pipe (`| head`) is not an error worth a message.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            bail!("writing records: {e}");
        }
        return Ok(());
    }
    if matches!(args.format, RecordFormat::Json) {
        out.write_all(b"\n]\n")?;
    }
    out.flush().or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok(())
}

async fn plugin(app: &Arc<App>, cmd: &PluginCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Install {
            file,
            name,
            approve_hosts,
        } => {
            let name = match name {
                Some(n) => n.clone(),
                None => crate::engine::registry::plugin_name_of(file).with_context(|| {
                    format!("{}: expected NAME.wasm (or pass --name)", file.display())
                })?,
            };
            let wasm = crate::engine::registry::read_component_file(
                file,
                crate::engine::registry::Symlinks::Follow,
            )?;
            let approval = if *approve_hosts {
                crate::engine::registry::HostApproval::Approved
            } else {
                crate::engine::registry::HostApproval::Covered
            };
            let report = app
                .registry
                .install_with_approval(&name, &wasm, true, approval)
                .await?;
            if json {
                print_json(&serde_json::json!({
                    "name": report.name, "version": report.version, "sha256": report.sha256,
                    "existing": report.existing, "canary_configured": report.canary_configured,
                    "canary_tested": report.canary_tested, "canary_pulled": report.canary_pulled,
                    "manifest": *report.manifest,
                }))?;
            } else {
                outln!(
                    "{} version {} active (sha256 {:.12}; canary: {} configured, {} tested, {} \
                     pulled)",
                    safe(&report.name),
                    report.version,
                    report.sha256,
                    report.canary_configured,
                    report.canary_tested,
                    report.canary_pulled
                )?;
                outln!("  may reach: {}", report.manifest)?;
            }
        }
        PluginCommand::Activate { name, version } => {
            app.registry.activate(name, *version)?;
            if json {
                print_json(
                    &serde_json::json!({ "name": name, "version": version, "active": true }),
                )?;
            } else {
                outln!(
                    "{} version {version} active; the next call runs on it",
                    safe(name)
                )?;
            }
        }
        PluginCommand::List => {
            let list = app.registry.list(None);
            if json {
                return print_json(
                    &list
                        .iter()
                        .map(|v| {
                            serde_json::json!({
                                "name": v.record.name, "version": v.record.version,
                                "sha256": v.record.sha256, "contract": v.record.contract,
                                "installed_at_ms": crate::store::to_ms(v.record.installed_at),
                                "active": v.active,
                                "active_since_ms": v.active_since.map(crate::store::to_ms),
                            })
                        })
                        .collect::<Vec<_>>(),
                );
            }
            outln!(
                "{:<14} {:>7} {:<14} {:<9} ACTIVE SINCE",
                "PLUGIN",
                "VERSION",
                "SHA256",
                "CONTRACT"
            )?;
            for v in list {
                let since = match (v.active, v.active_since) {
                    (true, Some(t)) => format!("yes    {}", ago(crate::store::to_ms(t))),
                    (true, None) => "yes".to_string(),
                    (false, _) => String::new(),
                };
                outln!(
                    "{:<14} {:>7} {:<14} {:<9} {}",
                    safe(&v.record.name),
                    v.record.version,
                    &v.record.sha256[..12.min(v.record.sha256.len())],
                    safe(&v.record.contract),
                    since
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_ages_are_bounded() {
        assert!(parse_refresh_age("9223372036854776s").is_err());
        assert!(parse_refresh_age("0s").is_err());
        assert_eq!(parse_refresh_age("90m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
