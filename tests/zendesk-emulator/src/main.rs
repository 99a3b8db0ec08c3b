//! `zendesk-emulator [--listen ADDR] [--scale N] [--seed S] [--auto-approve]
//! [--redirect-url URL]… [--tls [--tls-cert-out PATH]]`: starts the emulator, prints one JSON
//! line with the credentials when ready, and serves until stopped.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use zendesk_emulator::{Emulator, EmulatorConfig};

const USAGE: &str = "usage: zendesk-emulator [--listen ADDR] [--scale N] [--seed S] [--auto-approve] [--redirect-url URL]... [--tls [--tls-cert-out PATH]]";

/// What the command line asks for.
struct Args {
    config: EmulatorConfig,
    /// Where to write the PEM of the CA a client must trust (with `--tls`).
    tls_cert_out: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut config = EmulatorConfig::default();
    let mut tls_cert_out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || -> anyhow::Result<String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => config.listen = value()?.parse().context("--listen needs HOST:PORT")?,
            "--scale" => config.scale = value()?.parse().context("--scale needs a ticket count")?,
            "--seed" => config.seed = value()?.parse().context("--seed needs a whole number")?,
            "--auto-approve" => config.settings.auto_approve = true,
            "--redirect-url" => config.redirect_urls.push(value()?),
            "--tls" => config.tls = true,
            "--tls-cert-out" => tls_cert_out = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if tls_cert_out.is_some() && !config.tls {
        anyhow::bail!("--tls-cert-out needs --tls (there is no certificate without it)\n{USAGE}");
    }
    Ok(Args {
        config,
        tls_cert_out,
    })
}

fn main() -> anyhow::Result<()> {
    let Args {
        config,
        tls_cert_out,
    } = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let emu = Emulator::start(config).await?;
        let mut line = serde_json::json!({
            "url": emu.url, "email": emu.email, "api_token": emu.api_token,
            "client_id": emu.client_id, "client_secret": emu.client_secret,
            "control_key": emu.control_key,
        });
        if let Some(pem) = &emu.tls_root_pem {
            line["tls_root_pem"] = pem.clone().into();
            if let Some(path) = &tls_cert_out {
                std::fs::write(path, pem).with_context(|| {
                    format!("writing the TLS root certificate to {}", path.display())
                })?;
                line["tls_cert"] = path.display().to_string().into();
            }
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        drop(out);
        tokio::signal::ctrl_c().await?;
        emu.shutdown();
        anyhow::Ok(())
    })
}
