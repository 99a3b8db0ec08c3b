//! `sluice integration …`: add, list, show, edit, delete and re-generate a token.

use super::*;

pub(super) async fn integration(
    app: &Arc<App>,
    cmd: &IntegrationCommand,
    json: bool,
) -> anyhow::Result<()> {
    match cmd {
        IntegrationCommand::Add(a) => {
            let v = app
                .add_integration(IntegrationInput {
                    connector: Some(a.connector.clone()),
                    name: Some(a.name.clone()),
                    capability: Some(a.capability.clone()),
                    settings: a.settings.clone(),
                    interval: a.interval,
                    client_id: a.client_id.clone(),
                    client_secret: a.client_secret.clone(),
                })
                .await?;
            print_warnings(&v.warnings);
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
                "{:<18} {:<20} {:<12} {:<18} {:<22} {:<28} TOKEN",
                "ID",
                "NAME",
                "CONNECTOR",
                "CAPABILITY",
                "STATE",
                "LAST RUN"
            )?;
            for r in rows {
                let i = &r.integration;
                let last = r.last_run.as_ref().map_or("never".to_string(), |run| {
                    format!("{} {}", run.status, ago(run.started_at_ms))
                });
                // Entered credentials (an API key, basic) have no token: show their kind.
                let entered = r.credentials.map(|kind| kind.to_string());
                let token = r
                    .token
                    .as_ref()
                    .map_or(entered.unwrap_or("none".into()), |t| {
                        t.checked_at_ms.map_or(t.health.to_string(), |c| {
                            format!("{} (checked {})", t.health, ago(c))
                        })
                    });
                outln!(
                    "{:<18} {:<20} {:<12} {:<18} {:<22} {:<28} {}",
                    i.id,
                    truncate(&safe(&i.name), 20),
                    truncate(&safe(&i.connector), 12),
                    safe(&i.settings.capability),
                    if i.paused_at_ms.is_some() {
                        "paused"
                    } else {
                        i.state.as_str()
                    },
                    safe(&last),
                    safe(&token)
                )?;
            }
        }
        IntegrationCommand::Show { id } => {
            let v = crate::views::integration_view(app, id).await?;
            if json {
                return print_json(&v);
            }
            let (runs, counts, token) = (&v.runs, &v.records, &v.token);
            let i = &v.integration;
            outln!("id:           {}", i.id)?;
            outln!("name:         {}", safe(&i.name))?;
            outln!("connector:    {}", safe(&i.connector))?;
            outln!("state:        {}", i.state.as_str())?;
            if let Some(reason) = &i.state_reason {
                outln!("reason:       {}", safe(reason))?;
            }
            if let Some(since) = i.paused_at_ms {
                outln!(
                    "paused:       {} (`sluice integration resume {}`)",
                    ago(since),
                    i.id
                )?;
            }
            outln!("capability:   {}", safe(&i.settings.capability))?;
            for (name, value) in &i.settings.values {
                outln!("{:<13} {}", safe(&format!("{name}:")), safe(value))?;
            }
            outln!("interval:     {}s", i.interval_s)?;
            outln!(
                "client id:    {}",
                safe(i.client_id.as_deref().unwrap_or("(host default)"))
            )?;
            outln!(
                "token:        {}",
                safe(
                    token
                        .as_ref()
                        .map_or("not connected", |t| t.health.as_str())
                )
            )?;
            outln!(
                "credentials:  {}",
                v.credentials.map_or("none held", |kind| kind.as_str())
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
            print_warnings(&v.warnings);
        }
        IntegrationCommand::Edit(a) => {
            let v = app
                .edit_integration(
                    &a.id,
                    IntegrationInput {
                        connector: None,
                        name: a.name.clone(),
                        capability: a.capability.clone(),
                        settings: a.settings.clone(),
                        interval: a.interval,
                        client_id: a.client_id.clone(),
                        client_secret: a.client_secret.clone(),
                    },
                )
                .await?;
            print_warnings(&v.warnings);
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
        IntegrationCommand::Pause { id } => {
            let integration = app.set_paused(id, true)?;
            if json {
                return print_json(&integration);
            }
            outln!("paused {id}: no pulls until `sluice integration resume {id}`")?;
        }
        IntegrationCommand::Resume { id } => {
            let integration = app.set_paused(id, false)?;
            if json {
                return print_json(&integration);
            }
            outln!("resumed {id}")?;
        }
    }
    Ok(())
}
