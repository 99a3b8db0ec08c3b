//! `sluice conformance FILE.wasm`: the generic conformance checks against a real account (an
//! emulator in tests), printed one line per check with a summary, optionally as JUnit XML.
//! The access token comes from an environment variable, never from the command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use sluice_conformance::{Approvals, Integration, Options, Report};

use crate::engine::credentials::AccessToken;
use crate::output::outln;
use crate::terminal::safe;

/// `sluice conformance`.
#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// The connector component to check.
    pub file: PathBuf,
    /// The version it replaces: the new one must resume from its checkpoints, with the same
    /// stream names, keys and cursor fields.
    #[arg(long, value_name = "OLD.wasm")]
    pub previous: Option<PathBuf>,
    /// A JSON file with the integration under test: {"capability", "values": {NAME: VALUE},
    /// "grant": {"instance_url", …}} (the grant's non-secret token-response fields).
    #[arg(long, value_name = "FILE.json")]
    pub settings: PathBuf,
    /// The environment variable that holds the access token the host sends (never give the
    /// token itself on the command line).
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Also write the report as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

fn token(var: &str) -> anyhow::Result<AccessToken> {
    let value = std::env::var(var)
        .with_context(|| format!("environment variable {var} (--token-env) is not set"))?;
    anyhow::ensure!(
        !value.trim().is_empty(),
        "environment variable {var} (--token-env) is empty"
    );
    Ok(AccessToken::new(value.trim()))
}

/// Runs the checks; true when none failed.
pub async fn conformance(cli: &super::Cli, args: &ConformanceArgs) -> anyhow::Result<bool> {
    let settings = String::from_utf8(read(&args.settings, "the settings file")?)
        .context("the settings file is not UTF-8")?;
    let integration = Integration::from_json(&settings)
        .with_context(|| format!("in {}", args.settings.display()))?;
    let limits = super::config(cli).limits;
    let options = Options {
        component: read(&args.file, "the component")?,
        previous: args
            .previous
            .as_deref()
            .map(|p| read(p, "the previous component"))
            .transpose()?,
        integration,
        token: args.token_env.as_deref().map(token).transpose()?,
        approvals: Approvals {
            extra_origins: cli.extra_origins.clone(),
            allow_insecure_loopback: cli.allow_insecure_loopback,
        },
        limits,
    };
    let report = sluice_conformance::run(options).await?;
    print(&report)?;
    if let Some(path) = &args.junit {
        std::fs::write(path, sluice_conformance::to_junit(&report))
            .with_context(|| format!("cannot write the JUnit report to {}", path.display()))?;
    }
    Ok(report.passed())
}

fn print(report: &Report) -> anyhow::Result<()> {
    for line in report.to_string().lines() {
        outln!("{}", safe(line))?;
    }
    Ok(())
}
