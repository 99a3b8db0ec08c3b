//! `sluice connector …`: install, list, activate and roll back connector versions.

use super::*;

pub(super) async fn connector(
    app: &Arc<App>,
    cmd: &ConnectorCommand,
    json: bool,
) -> anyhow::Result<()> {
    match cmd {
        ConnectorCommand::Install {
            file,
            name,
            approve_hosts,
        } => {
            let name = match name {
                Some(n) => n.clone(),
                None => crate::engine::registry::connector_name_of(file).with_context(|| {
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
                .registry()
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
        ConnectorCommand::Activate { name, version } => {
            app.registry().activate(name, *version)?;
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
        ConnectorCommand::List => {
            let list = app.registry().list(None);
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
                "CONNECTOR",
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
