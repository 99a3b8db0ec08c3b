//! `sluice connector …`: install, list, activate and roll back connector versions, and show
//! what a connector declares; `sluice discover`: an integration's stream schemas.

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
            manifest,
        } => {
            let name = match name {
                Some(n) => n.clone(),
                None => crate::engine::registry::connector_name_of(file).with_context(|| {
                    format!("{}: expected NAME.wasm (or pass --name)", file.display())
                })?,
            };
            let mut wasm = crate::engine::registry::read_component_file(
                file,
                crate::engine::registry::Symlinks::Follow,
            )?;
            if let Some(path) = manifest {
                attach_manifest(&mut wasm, file, path)?;
            }
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
        ConnectorCommand::About { target, format } => {
            let info = about_target(app, target).await?;
            match format {
                AboutFormat::Markdown => outln!("{}", crate::about::markdown(&info))?,
                AboutFormat::JsonSchema => print_json(&crate::about::settings_schema(&info))?,
                AboutFormat::Json => print_json(&crate::about::info_json(&info))?,
            }
        }
        ConnectorCommand::List => {
            let rows = crate::views::connector_rows(app).await;
            if json {
                return print_json(&rows);
            }
            outln!(
                "{:<14} {:>7} {:<14} {:<9} {:<22} TITLE (CAPABILITIES)",
                "CONNECTOR",
                "VERSION",
                "SHA256",
                "CONTRACT",
                "ACTIVE SINCE"
            )?;
            for row in rows {
                let since = match (row.active, row.active_since_ms) {
                    (true, Some(t)) => format!("yes    {}", ago(t)),
                    (true, None) => "yes".to_string(),
                    (false, _) => String::new(),
                };
                let declared = match &row.title {
                    Some(title) => format!("{title} ({})", row.capabilities.join(", ")),
                    None => String::new(),
                };
                outln!(
                    "{:<14} {:>7} {:<14} {:<9} {:<22} {}",
                    safe(&row.name),
                    row.version,
                    &row.sha256[..12.min(row.sha256.len())],
                    safe(&row.contract),
                    since,
                    safe(&declared)
                )?;
            }
        }
    }
    Ok(())
}

/// The declaration of an installed connector, or of a component file (loaded, not installed).
async fn about_target(
    app: &Arc<App>,
    target: &str,
) -> anyhow::Result<crate::engine::wit::types::ConnectorInfo> {
    let path = std::path::Path::new(target);
    if !target.ends_with(".wasm") && !path.exists() {
        return Ok(app.describe(target).await?);
    }
    let wasm = crate::engine::registry::read_component_file(
        path,
        crate::engine::registry::Symlinks::Follow,
    )?;
    let name = crate::engine::registry::connector_name_of(path).unwrap_or_else(|| "file".into());
    let connector = app.engine().load(&name, &wasm)?;
    Ok(app
        .engine()
        .describe(&connector, &crate::engine::CallContext::default())
        .await?)
}

/// `sluice discover ID`.
pub(super) async fn discover(app: &Arc<App>, id: &str, json: bool) -> anyhow::Result<()> {
    let streams = app.discover(id).await?;
    if json {
        let list: Vec<serde_json::Value> = streams
            .iter()
            .map(|s| {
                let schema: serde_json::Value =
                    serde_json::from_str(&s.json_schema).unwrap_or(serde_json::Value::Null);
                serde_json::json!({
                    "name": s.name, "key_fields": s.key_fields,
                    "cursor_field": s.cursor_field, "json_schema": schema,
                })
            })
            .collect();
        return print_json(&list);
    }
    for s in &streams {
        let schema: serde_json::Value = serde_json::from_str(&s.json_schema)
            .with_context(|| format!("stream {}: the connector's schema is not JSON", s.name))?;
        let fields = schema["properties"].as_object().map_or(0, |p| p.len());
        outln!(
            "{:<24} key {:<28} cursor {:<20} {fields} fields",
            safe(&s.name),
            safe(&s.key_fields.join(",")),
            safe(s.cursor_field.as_deref().unwrap_or("-"))
        )?;
    }
    Ok(())
}

/// Appends the manifest in `path` to `wasm` (read from `file`) as its `sluice:manifest`
/// section, after checking that it parses and that the component has none yet.
fn attach_manifest(
    wasm: &mut Vec<u8>,
    file: &std::path::Path,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    use crate::engine::manifest::{Manifest, SECTION};
    let json = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Manifest::from_json(&json).with_context(|| format!("--manifest {}", path.display()))?;
    let existing = Manifest::of_component(wasm)
        .with_context(|| format!("reading the manifest of {}", file.display()))?;
    if existing != Manifest::default() {
        bail!(
            "{} already carries a `{SECTION}` section ({existing}); install it without --manifest",
            file.display()
        );
    }
    sluice_guest_build::append_custom_section(wasm, SECTION, &json);
    Ok(())
}
