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

use crate::app::{App, AppConfig, IntegrationInput};
use crate::duration::parse_duration;
use crate::oauth::Callback;
use crate::output::outln;
use crate::runner::{Progress, PullOptions, RunStatus, RunSummary};
use crate::store::{Integration, IntegrationState};
use crate::terminal::safe;
use crate::views::list_rows;

mod airbyte;
mod changes;
mod conformance;
mod connect;
mod connector;
pub mod demo;
pub mod dev;
mod integration;
mod materialize;
pub mod new;
mod pull;
mod records;
pub mod serve;
mod test_connection;
mod webhooks;

pub use connect::connect;
use connector::connector;
use integration::integration;
pub use pull::{print_summary, pull};
use records::records;
use test_connection::test;

/// Sluice: run sandboxed data connectors for many tenants.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    /// Where state lives (database, key file, compile cache, connectors). Default:
    /// $XDG_DATA_HOME/sluice, else ~/.local/share/sluice.
    #[arg(long, global = true, env = "SLUICE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep state in this PostgreSQL database (postgres://user@host:port/db) instead of the
    /// data directory's SQLite file, so that several hosts share it. Every host must hold the
    /// same key (the data directory's secret.key, or SLUICE_SECRET_KEY).
    #[arg(
        long,
        global = true,
        env = "SLUICE_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL",
        value_parser = parse_database_url
    )]
    pub database: Option<crate::secrets::Secret>,
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
    /// A PEM file of CA certificates to trust besides the public web PKI roots, for connectors'
    /// requests and token requests (e.g. a TLS-intercepting proxy's CA, or a test server's).
    /// Repeatable. It never approves an origin: that stays --extra-origin's and manifests'.
    #[arg(
        long = "ca-file",
        global = true,
        env = "SLUICE_CA_FILE",
        value_name = "PATH",
        value_parser = parse_ca_file
    )]
    pub ca_files: Vec<crate::engine::roots::ExtraRoots>,
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
    /// Run the admin API, the OAuth callback, the scheduler and the connector watcher.
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
    /// Each stream's JSON Schema, key and cursor fields, as the connector describes them.
    Discover {
        /// The integration id.
        id: String,
    },
    /// Pull now: the integration's streams, up to --parallel-streams at once, each committing
    /// its pages in order with its checkpoint.
    Pull {
        /// The integration id.
        id: String,
        /// Start every stream from the beginning (records are kept and updated in place).
        #[arg(long)]
        full: bool,
        /// Streams pulled at once (1: one after another). A stream that fails alone does not
        /// stop the others; Ctrl-C, a rate limit or a lost authorization stops them all.
        #[arg(long, value_name = "K", default_value_t = crate::runner::DEFAULT_PARALLEL_STREAMS, value_parser = parse_parallel_streams)]
        parallel_streams: usize,
    },
    /// Export stored records.
    Records(RecordsArgs),
    /// The change feed: every change after a cursor, in commit order, each key at most once.
    Changes(ChangesArgs),
    /// Install, list and activate connector versions (`plugin` is the old name of this command).
    #[command(subcommand, alias = "plugin")]
    Connector(ConnectorCommand),
    /// Start the bundled Salesforce emulator and show everything end to end.
    Demo(demo::DemoArgs),
    /// Print the admin API token `serve` generated in the data directory (made now if absent).
    AdminToken,
    /// Build a connector crate, run it against an emulator or a cassette, and rebuild,
    /// hot-swap and run again on every change.
    Dev(dev::DevArgs),
    /// Start a new connector crate from a template (works offline).
    #[command(subcommand)]
    New(new::NewCommand),
    /// Check a connector component against the generic conformance checks (exits non-zero
    /// when one fails).
    Conformance(conformance::ConformanceArgs),
    /// Webhook endpoints: add, list, remove; their deliveries and retries.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Keep a PostgreSQL table per stream up to date from the change feed, each change
    /// applied exactly once (soft deletes in `_sluice_deleted`).
    Materialize(materialize::MaterializeArgs),
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
    /// At most this many pulls (runs of different integrations) at once.
    #[arg(long, default_value_t = 8)]
    pub max_concurrent_pulls: usize,
    /// Streams of one integration pulled at once within a run (1: one after another). All
    /// runs' streams together stay within the engine's concurrent calls.
    #[arg(long, value_name = "K", default_value_t = crate::runner::DEFAULT_PARALLEL_STREAMS, value_parser = parse_parallel_streams)]
    pub parallel_streams: usize,
    /// Proactive token refresh age, between 1m and 24h, e.g. 90m.
    #[arg(long, value_parser = parse_refresh_age)]
    pub refresh_age: Option<Duration>,
    /// At most this many admin API connections open at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_connections: u16,
    /// Close an admin API connection that has not sent a complete request head in this time.
    #[arg(long, value_parser = parse_header_read_timeout, default_value = "10s")]
    pub header_read_timeout: Duration,
    /// How long delete tombstones stay in the change feed, e.g. 30d. A feed cursor older than
    /// a pruned tombstone is refused with "resync required".
    #[arg(long, value_parser = parse_retention, default_value = "30d")]
    pub tombstone_retention: Duration,
    /// How long delivered (or given-up) webhook events stay in the outbox, e.g. 30d. An event
    /// still being delivered stays until it settles.
    #[arg(long, value_parser = parse_retention, default_value = "30d")]
    pub webhook_retention: Duration,
    /// With --database: how long a host's hold on a run outlives its last heartbeat, between
    /// 3s and 10m, e.g. 30s. The time other hosts wait to take over the integrations of a host
    /// that died or stalled; heartbeats go out three times within it.
    #[arg(long, value_parser = parse_lease_ttl, default_value = "30s")]
    pub lease_ttl: Duration,
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
    /// Pause its pulls: the schedule skips it and `pull` is refused until `resume` (a run
    /// going on finishes; tokens are still refreshed).
    Pause {
        /// The integration id.
        id: String,
    },
    /// Resume its pulls; one that came due meanwhile runs soon.
    Resume {
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
    /// The installed connector that serves it (`sluice connector list`).
    #[arg(long, default_value = crate::app::DEFAULT_CONNECTOR)]
    pub connector: String,
    /// One of the connector's capabilities (Salesforce: helpdesk, crm or content-management).
    #[arg(long)]
    pub capability: String,
    /// The connected app's client id (default: SLUICE_CLIENT_ID).
    #[arg(long)]
    pub client_id: Option<String>,
    /// The connected app's client secret (default: SLUICE_CLIENT_SECRET).
    #[arg(long, env = "SLUICE_INTEGRATION_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Pull interval, e.g. 15m, 1h, 30s.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// A setting the connector declares, NAME=VALUE; repeatable. `sluice connector about
    /// NAME` lists them (Salesforce: environment=production, domain=acme.my.salesforce.com,
    /// pull-by=updated).
    #[arg(long = "set", value_parser = parse_pair, value_name = "NAME=VALUE")]
    pub settings: Vec<(String, String)>,
}

/// `integration edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The integration id.
    pub id: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// One of the connector's capabilities.
    #[arg(long)]
    pub capability: Option<String>,
    /// The connected app's client id.
    #[arg(long)]
    pub client_id: Option<String>,
    /// The connected app's client secret.
    #[arg(long, env = "SLUICE_INTEGRATION_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Pull interval.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// A setting the connector declares, NAME=VALUE; repeatable ("NAME=" removes it).
    #[arg(long = "set", value_parser = parse_pair, value_name = "NAME=VALUE")]
    pub settings: Vec<(String, String)>,
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
    /// Store an API key instead, when the connector asks for one. The key is read from stdin
    /// (or the variable --from-env names), never from the command line.
    #[arg(long, conflicts_with_all = ["client_credentials", "basic"])]
    pub api_key: bool,
    /// Store HTTP basic credentials for user USER instead, when the connector asks for them.
    /// The password is read from stdin (or the variable --from-env names).
    #[arg(long, value_name = "USER", conflicts_with = "client_credentials")]
    pub basic: Option<String>,
    /// Read the API key or password from this environment variable instead of stdin.
    #[arg(long, value_name = "VAR")]
    pub from_env: Option<String>,
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
    /// Airbyte protocol messages, one per line: CATALOG, RECORDs, then a STATE holding the
    /// change-feed cursor of the snapshot (`changes --after` follows on from it).
    Airbyte,
}

/// `sluice changes`.
#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// The integration id.
    pub id: String,
    /// The cursor of the last change read (a change's `seq`, a previous run's "next cursor",
    /// or a snapshot's). 0: the whole compacted feed.
    #[arg(long, default_value = "0", value_name = "CURSOR")]
    pub after: String,
    /// Only this stream's changes.
    #[arg(long)]
    pub stream: Option<String>,
    /// Output format; the cursor to resume from is printed on stderr as "next cursor: N"
    /// (Airbyte: in its STATE messages).
    #[arg(long, value_enum, default_value_t = ChangeFormat::Jsonl)]
    pub format: ChangeFormat,
}

/// Change feed formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ChangeFormat {
    /// One change per line.
    Jsonl,
    /// Airbyte protocol messages, one per line: CATALOG, RECORDs, and a STATE after each page.
    Airbyte,
}

/// `sluice connector ...`.
#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Install a component as a new version (validated, canaried, then published).
    Install {
        /// The `.wasm` component.
        file: PathBuf,
        /// The connector name (default: the file's stem up to `@`).
        #[arg(long)]
        name: Option<String>,
        /// Approve the hosts and methods the component's manifest declares, even where they
        /// reach beyond the active version's (review them first: `install` prints them).
        #[arg(long)]
        approve_hosts: bool,
        /// A manifest JSON file (a connector crate's `manifest.json`) to attach to the
        /// component as its `sluice:manifest` section first; refused if it carries one.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
    /// List connector versions, which one is active, and since when.
    List,
    /// What a connector declares (`describe`): an installed connector's name, or a `.wasm` file.
    About {
        /// An installed connector's name, or the path of a component.
        target: String,
        /// `markdown` (documentation with a settings table), `json-schema` (a schema of the
        /// settings) or `json` (the declaration itself).
        #[arg(long, value_enum, default_value_t = AboutFormat::Markdown)]
        format: AboutFormat,
    },
    /// Make an installed version serve calls again: a rollback (or roll-forward) in one command.
    Activate {
        /// The connector name, e.g. `salesforce`.
        name: String,
        /// The version number `connector list` shows.
        version: u32,
    },
}

/// How `connector about` prints a declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AboutFormat {
    /// Documentation with a settings table.
    Markdown,
    /// A JSON Schema of the settings.
    JsonSchema,
    /// The declaration as JSON.
    Json,
}

/// Parses an `--extra-origin`.
fn parse_origin(text: &str) -> Result<crate::engine::policy::Origin, String> {
    crate::engine::policy::parse_extra_origin(text).map_err(|e| e.to_string())
}

fn parse_ca_file(path: &str) -> Result<crate::engine::roots::ExtraRoots, String> {
    crate::engine::roots::ExtraRoots::from_pem_file(std::path::Path::new(path))
        .map_err(|e| e.to_string())
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

fn parse_retention(text: &str) -> Result<Duration, String> {
    let retention = parse_duration(text)?;
    if retention.is_zero() {
        return Err(format!(
            "{text:?} is out of range: keep them for 1s or more (30d by default)"
        ));
    }
    Ok(retention)
}

fn parse_lease_ttl(text: &str) -> Result<Duration, String> {
    let ttl = parse_duration(text)?;
    if ttl < Duration::from_secs(3) || ttl > Duration::from_secs(600) {
        return Err(format!("{text:?} is out of range: use between 3s and 10m"));
    }
    Ok(ttl)
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
    crate::heap::return_large_buffers();
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

/// Streams pulled at once: 1 to 64.
fn parse_parallel_streams(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{s}` is not a number of streams from 1 to 64 (1 pulls them one after another)"
        )),
    }
}

/// A `--database` URL: PostgreSQL's, sealed from logs and `Debug` (it may hold a password).
fn parse_database_url(s: &str) -> Result<crate::secrets::Secret, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(crate::secrets::Secret::new(s))
    } else {
        Err("expected a PostgreSQL URL, postgres://user@host:port/db".into())
    }
}

fn config(cli: &Cli) -> AppConfig {
    let mut config = AppConfig::new(cli.data_dir.clone().unwrap_or_else(default_data_dir));
    config.database = cli.database.clone();
    config.allow_insecure_loopback = cli.allow_insecure_loopback;
    config.extra_origins = cli.extra_origins.clone();
    config.limits.outbound.extra_roots = cli.ca_files.iter().fold(
        Default::default(),
        |all: crate::engine::roots::ExtraRoots, file| all.with(file),
    );
    config.bundled_connector = Some(crate::SALESFORCE_COMPONENT);
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
            config.runs.parallel_streams = args.parallel_streams;
            config.tombstone_retention = args.tombstone_retention;
            config.webhook_retention = args.webhook_retention;
            config.lease_ttl = args.lease_ttl;
            serve::serve(config, args).await?;
        }
        Command::Demo(args) => demo::run(&cli, args).await?,
        Command::Dev(args) => return dev::run(&cli, args).await,
        Command::New(cmd) => new::run(cmd)?,
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
        Command::Discover { id } => {
            let app = open(&cli).await?;
            connector::discover(&app, id, cli.json).await?;
        }
        Command::Pull {
            id,
            full,
            parallel_streams,
        } => {
            let mut config = config(&cli);
            config.runs.parallel_streams = *parallel_streams;
            let app = App::open(config).await?;
            let summary = pull(&app, id, *full, "cli", cli.json).await?;
            if summary.status != RunStatus::Succeeded {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Records(args) => {
            let app = open(&cli).await?;
            records(&app, args).await?;
        }
        Command::Changes(args) => {
            let app = open(&cli).await?;
            changes::changes(&app, args).await?;
        }
        Command::Connector(cmd) => {
            let app = open(&cli).await?;
            connector(&app, cmd, cli.json).await?;
        }
        Command::Conformance(args) => {
            if !conformance::conformance(&cli, args).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Webhooks(cmd) => {
            let app = open(&cli).await?;
            webhooks::webhooks(&app, cmd, cli.json)?;
        }
        Command::Materialize(args) => {
            let app = open(&cli).await?;
            materialize::materialize(&app, args, cli.json).await?;
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

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

fn print_warnings(warnings: &[crate::app::FieldIssue]) {
    for w in warnings {
        eprintln!("warning: {}: {}", safe(&w.field), safe(&w.message));
    }
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
    fn parallel_streams_are_one_to_sixty_four() {
        assert_eq!(parse_parallel_streams("1"), Ok(1));
        assert_eq!(parse_parallel_streams("64"), Ok(64));
        for bad in ["0", "65", "-1", "four", ""] {
            let error = parse_parallel_streams(bad).unwrap_err();
            assert!(error.contains("from 1 to 64"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
