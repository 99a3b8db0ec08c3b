//! `sluice new connector NAME`: a connector crate from a template embedded in the binary, so
//! it works offline. The crate builds at once for wasm32-wasip2 and natively, has unit tests on
//! the SDK's fake host, a README whose settings table is the template's `describe`, a
//! `manifest.json` and a settings example.
//!
//! The crate finds the SDK without a network: by default the binary writes the SDK sources it
//! was built with into the crate's `vendor/sluice-connector-sdk` and points a path dependency
//! at it; `--sdk PATH` points the dependency at an SDK checkout instead.

mod templates;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::output::outln;
use crate::terminal::safe;

pub use templates::Template;

/// `sluice new …`.
#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// A connector crate from a template: builds at once, with tests, a README, a manifest and
    /// a settings example.
    Connector(NewConnectorArgs),
}

/// `sluice new connector`.
#[derive(Debug, Args)]
pub struct NewConnectorArgs {
    /// The connector's name: a lower-case letter, then up to 63 of `a-z 0-9 - _`.
    pub name: String,
    /// `rest-json` (an API key in a header, cursor and next-URL pagination) or `oauth`
    /// (OAuth 2.0 with PKCE, cursor pagination).
    #[arg(long, value_enum, default_value_t = Template::RestJson)]
    pub template: Template,
    /// The crate's directory (default: ./NAME); it must not exist, or be empty.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Depend on the SDK at PATH (Sluice's `crates/sdk`) instead of writing this binary's copy
    /// into the crate's `vendor/sluice-connector-sdk`.
    #[arg(long, value_name = "PATH")]
    pub sdk: Option<PathBuf>,
}

/// Runs `sluice new`.
pub fn run(cmd: &NewCommand) -> anyhow::Result<()> {
    match cmd {
        NewCommand::Connector(args) => connector(args),
    }
}

fn connector(args: &NewConnectorArgs) -> anyhow::Result<()> {
    let names = templates::Names::of(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if !is_empty_or_absent(&dir)? {
        bail!(
            "{} already exists and is not empty; choose another --dir or remove it",
            dir.display()
        );
    }
    let sdk = match &args.sdk {
        Some(path) => templates::Sdk::At(checked_sdk(path)?),
        None => templates::Sdk::Vendored,
    };
    let files = templates::render(args.template, &names, &sdk)?;
    write_atomically(&dir, &files)?;
    let lib = &names.lib_name;
    outln!(
        "Created connector `{}` from the {} template in {}",
        safe(&names.name),
        args.template.name(),
        safe(&dir.display().to_string())
    )?;
    outln!("  cd {}", safe(&dir.display().to_string()))?;
    outln!("  cargo test                                     # unit tests, no network")?;
    outln!(
        "  cargo build --release --target wasm32-wasip2   # target/wasm32-wasip2/release/{lib}.wasm"
    )?;
    outln!("  sluice connector about target/wasm32-wasip2/release/{lib}.wasm")?;
    Ok(())
}

fn is_empty_or_absent(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// The SDK directory `--sdk` names, absolute: it must hold the `sluice-connector-sdk` package.
fn checked_sdk(path: &Path) -> anyhow::Result<PathBuf> {
    let manifest = path.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "--sdk {}: no Cargo.toml there; give the SDK's directory (Sluice's crates/sdk)",
            path.display()
        )
    })?;
    if !text.contains("name = \"sluice-connector-sdk\"") {
        bail!(
            "--sdk {}: its Cargo.toml is not the sluice-connector-sdk package",
            path.display()
        );
    }
    std::fs::canonicalize(path).with_context(|| format!("--sdk {}", path.display()))
}

/// Writes every file under a temporary sibling of `dir`, then renames it into place, so a
/// failure leaves no half-written crate behind.
fn write_atomically(dir: &Path, files: &[templates::File]) -> anyhow::Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let leaf = dir
        .file_name()
        .with_context(|| format!("{} names no directory", dir.display()))?;
    let staging = parent.join(format!(
        ".{}.sluice-new-{}",
        leaf.to_string_lossy(),
        std::process::id()
    ));
    let written = write_all(&staging, files).and_then(|()| {
        std::fs::rename(&staging, dir)
            .with_context(|| format!("moving the new crate to {}", dir.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

fn write_all(root: &Path, files: &[templates::File]) -> anyhow::Result<()> {
    for file in files {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
