//! `sluice demo`: the whole job against the bundled Salesforce emulator, in one process.
//!
//! It starts the emulator (auto-approving logins), adds one integration per capability,
//! authorizes each through the real OAuth flow (loopback listener, PKCE, state), runs Test
//! Connection, pulls with progress bars, prints what landed per object, then shows a token
//! expiring and being refreshed, and a re-generated token that keeps the data.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::{Cli, ConnectArgs, default_data_dir};
use crate::app::{App, AppConfig, IntegrationInput};
use crate::engine::credentials::{AccessToken, Credential};
use crate::output::outln;

/// `sluice demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The emulator's random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Runs the demo. Failures of one step are reported and the demo goes on where it can.
pub async fn run(cli: &Cli, args: &DemoArgs) -> anyhow::Result<()> {
    let data_dir = match &cli.data_dir {
        Some(dir) => dir.clone(),
        None => default_data_dir().join("demo").join(format!(
            "{}",
            time::OffsetDateTime::now_utc().unix_timestamp()
        )),
    };
    outln!("Starting the Salesforce emulator...")?;
    let emulator = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        seed: args.seed,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .context("starting the emulator")?;
    outln!("  emulator at {}", emulator.url)?;
    let mut config = AppConfig::new(data_dir.clone());
    // The emulator speaks plain http on loopback: the operator approves its exact origin.
    config.allow_insecure_loopback = true;
    config.bundled_connector = Some(crate::SALESFORCE_COMPONENT);
    config.extra_origins = vec![crate::engine::policy::parse_extra_origin(&emulator.url)?];
    let app = App::open(config).await?;
    outln!("  data directory: {}", data_dir.display())?;

    // The "browser": follows the authorize URL; the emulator approves and redirects to the
    // loopback callback that `connect` listens on.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()?;

    let mut ids = Vec::new();
    for capability in ["helpdesk", "crm", "content-management"] {
        outln!("\n== {capability} ==")?;
        let added = app
            .add_integration(IntegrationInput {
                name: Some(format!("Demo {capability}")),
                capability: Some(capability.into()),
                settings: demo_settings(capability, &emulator.url),
                client_id: Some(emulator.client_id.clone()),
                client_secret: Some(emulator.client_secret.clone()),
                ..IntegrationInput::default()
            })
            .await?;
        let id = added.integration.id.clone();
        outln!(
            "added integration {id} (streams: {})",
            added.streams.join(", ")
        )?;
        authorize(&app, &browser, &id).await?;
        match app.test(&id).await {
            Ok(report) => match report.failure {
                None => outln!("test connection: ok")?,
                Some(f) => outln!(
                    "test connection: FAILED {}: {}",
                    crate::runner::kind_label(f.kind),
                    f.message
                )?,
            },
            Err(e) => outln!("test connection: FAILED {e}")?,
        }
        match super::pull(&app, &id, false, "demo", false).await {
            Ok(_) => {}
            Err(e) => outln!("pull: FAILED {e:#}")?,
        }
        ids.push(id);
    }

    outln!("\n== what landed ==")?;
    for id in &ids {
        let integration = app.store().integration(id)?;
        outln!("{} ({id}):", integration.name)?;
        let counts = app.store().record_counts(id)?;
        if counts.is_empty() {
            outln!("  (no records)")?;
        }
        for c in counts {
            outln!(
                "  {:<24} {:>8} records {:>6} deleted",
                c.stream,
                c.live,
                c.deleted
            )?;
        }
    }

    if let Some(first) = ids.first() {
        outln!("\n== a token expiring ==")?;
        let before = app
            .store()
            .tokens(first)?
            .context("the demo integration has tokens")?;
        let expired = reqwest::Client::new()
            .post(format!("{}/__emulator/tokens/expire", emulator.url))
            .bearer_auth(&emulator.control_key)
            .send()
            .await?
            .text()
            .await?;
        outln!("emulator ended every session: {expired}")?;
        // The next pull meets 401 INVALID_SESSION_ID; the engine asks the token store for a
        // replacement (one serialised refresh, stored before use) and retries.
        outln!("pulling again with the dead session...")?;
        let engine_refreshes =
            || crate::engine::metrics::EngineMetrics::get(&app.engine().metrics().refreshes);
        let refreshes_before = engine_refreshes();
        if let Err(e) = super::pull(&app, first, false, "demo", false).await {
            outln!("pull: FAILED {e:#}")?;
        }
        let mut after = app.store().tokens(first)?.context("tokens")?;
        if after.generation == before.generation {
            // The pull made no call that needed the session: refresh as a 401 would.
            app.tokens()
                .provider(first)
                .refresh(&Credential::bearer(&AccessToken::new(
                    before.access.expose(),
                )))
                .await
                .context("refreshing the expired token")?;
            after = app.store().tokens(first)?.context("tokens")?;
        }
        let how = if engine_refreshes() > refreshes_before {
            "on the 401 during the pull"
        } else {
            "directly"
        };
        outln!(
            "refreshed {how} with the refresh token: token generation {} -> {} (tokens are \
             never printed)",
            before.generation,
            after.generation
        )?;

        outln!("\n== a re-generated token ==")?;
        let counts_before = app.store().record_counts(first)?;
        authorize(&app, &browser, first).await?;
        let counts_after = app.store().record_counts(first)?;
        let checkpoints = app.store().checkpoints(first)?.len();
        outln!(
            "re-generated: same integration {first}, records kept ({} streams before, {} after), {checkpoints} checkpoints kept",
            counts_before.len(),
            counts_after.len()
        )?;
    }
    outln!("\nData directory: {}", data_dir.display())?;
    outln!(
        "Try: {} --data-dir {} --allow-insecure-loopback --extra-origin {} integration list",
        this_binary(),
        shell_word(&data_dir.display().to_string()),
        emulator.url
    )?;
    Ok(())
}

/// `sluice connect` with an automatic browser.
async fn authorize(app: &Arc<App>, browser: &reqwest::Client, id: &str) -> anyhow::Result<()> {
    let browser = browser.clone();
    let mut follow = move |url: &str| {
        let (browser, url) = (browser.clone(), url.to_string());
        tokio::spawn(async move {
            if let Err(e) = browser.get(&url).send().await {
                tracing::warn!(error = %e, "demo browser could not follow the authorize URL");
            }
        });
    };
    super::connect(
        app,
        &ConnectArgs {
            id: id.to_string(),
            no_browser: true,
            client_credentials: false,
            port: 0,
            timeout: Duration::from_secs(30),
            api_key: false,
            basic: None,
            from_env: None,
        },
        &mut follow,
    )
    .await?;
    Ok(())
}

/// How to run this binary again, ready for a shell: its own path, since `cargo run` puts no
/// `sluice` on the PATH.
fn this_binary() -> String {
    std::env::current_exe()
        .map(|path| shell_word(&path.display().to_string()))
        .unwrap_or_else(|_| "cargo run --release -p sluice --".into())
}

/// Quotes `word` for a POSIX shell when it holds anything but plainly safe characters.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:@,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The demo org's settings for `capability` (Content Management has no "pull records by").
fn demo_settings(capability: &str, domain: &str) -> Vec<(String, String)> {
    let mut settings = vec![
        ("environment".to_string(), "production".to_string()),
        ("domain".to_string(), domain.to_string()),
    ];
    if capability != "content-management" {
        settings.push(("pull-by".to_string(), "updated".to_string()));
    }
    settings
}
