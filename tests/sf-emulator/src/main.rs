//! `sf-emulator --listen 127.0.0.1:PORT --dataset demo|bench|empty [--scale N] [--seed S]
//! [--auto-approve]`: starts the emulator, prints one JSON line with the credentials
//! when ready, and serves until stopped.

use std::io::Write;

use sf_emulator::{Dataset, Emulator, EmulatorConfig};

const USAGE: &str = "usage: sf-emulator [--listen ADDR] [--dataset demo|bench|empty] [--scale N] [--seed S] [--auto-approve]";

fn parse_args() -> anyhow::Result<EmulatorConfig> {
    let mut cfg = EmulatorConfig::default();
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
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(cfg)
}

fn main() -> anyhow::Result<()> {
    let cfg = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let emu = Emulator::start(cfg).await?;
        let line = serde_json::json!({
            "url": emu.url, "login_url": emu.login_url, "client_id": emu.client_id, "client_secret": emu.client_secret,
            "username": emu.username, "password": emu.password, "control_key": emu.control_key,
        });
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
