//! `sf-emulator --listen 127.0.0.1:PORT --dataset demo|bench|empty [--scale N] [--seed S]
//! [--auto-approve] [--tls [--tls-cert-out PATH]] [--rtt-ms N] [--mbps N] [--no-http2] [--no-slow-start]`: starts the
//! emulator, prints one JSON line with the credentials when ready, and serves until stopped.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use sf_emulator::{Dataset, Emulator, EmulatorConfig};

const USAGE: &str = "usage: sf-emulator [--listen ADDR] [--dataset demo|bench|empty] [--scale N] [--seed S] [--auto-approve] [--tls [--tls-cert-out PATH]] [--rtt-ms N] [--mbps N] [--no-http2] [--no-slow-start]";

/// What the command line asks for.
struct Args {
    config: EmulatorConfig,
    /// Where to write the PEM of the CA a client must trust (with `--tls`).
    tls_cert_out: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut cfg = EmulatorConfig::default();
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
            "--listen" => cfg.listen = value()?.parse()?,
            "--dataset" => {
                cfg.dataset = match value()?.as_str() {
                    "demo" => Dataset::Demo,
                    "bench" => Dataset::Bench,
                    "empty" => Dataset::Empty,
                    other => anyhow::bail!("unknown dataset {other}\n{USAGE}"),
                }
            }
            "--scale" => cfg.scale = value()?.parse()?,
            "--seed" => cfg.seed = value()?.parse()?,
            "--auto-approve" => cfg.auto_approve = true,
            "--tls" => cfg.tls = true,
            "--tls-cert-out" => tls_cert_out = Some(PathBuf::from(value()?)),
            "--rtt-ms" => {
                cfg.settings.rtt_ms = value()?.parse().map_err(|e| {
                    anyhow::anyhow!("--rtt-ms needs whole milliseconds: {e}\n{USAGE}")
                })?
            }
            "--mbps" => cfg.settings.mbps = parse_mbps(&value()?)?,
            "--no-http2" => cfg.settings.http2 = false,
            "--no-slow-start" => cfg.settings.slow_start = false,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if tls_cert_out.is_some() && !cfg.tls {
        anyhow::bail!("--tls-cert-out needs --tls (there is no certificate without it)\n{USAGE}");
    }
    Ok(Args {
        config: cfg,
        tls_cert_out,
    })
}

fn parse_mbps(text: &str) -> anyhow::Result<f64> {
    match text.parse::<f64>() {
        Ok(mbps) if sf_emulator::wan::valid_mbps(mbps) => Ok(mbps),
        _ => anyhow::bail!(
            "--mbps needs 0 (uncapped) or megabits per second of at least {}, not {text:?}\n{USAGE}",
            sf_emulator::wan::MIN_MBPS
        ),
    }
}

fn main() -> anyhow::Result<()> {
    let Args {
        config: cfg,
        tls_cert_out,
    } = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let emu = Emulator::start(cfg).await?;
        let mut line = serde_json::json!({
            "url": emu.url, "login_url": emu.login_url, "client_id": emu.client_id, "client_secret": emu.client_secret,
            "username": emu.username, "password": emu.password, "control_key": emu.control_key,
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
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate() => {}
        }
        emu.shutdown();
        anyhow::Ok(())
    })
}

#[cfg(unix)]
async fn terminate() {
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
    } else {
        std::future::pending::<()>().await;
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await;
}
