//! `sluice test`: Test Connection, printed probe by probe.

use super::*;

pub(super) async fn test(app: &Arc<App>, id: &str, json: bool) -> anyhow::Result<bool> {
    let report = app.test(id).await?;
    let kind = |k| crate::runner::kind_label(k);
    if json {
        print_json(&crate::views::TestView::from(&report))?;
    } else {
        for p in &report.probes {
            match &p.failure {
                None => outln!("ok    {:<24} {}", safe(&p.name), safe(&p.detail))?,
                // A probe that failed while the report passed is a warning.
                Some(f) if report.failure.is_none() => outln!(
                    "warn  {:<24} {}: {}",
                    safe(&p.name),
                    kind(f.kind),
                    safe(&f.message)
                )?,
                Some(f) => outln!(
                    "FAIL  {:<24} {}: {}",
                    safe(&p.name),
                    kind(f.kind),
                    safe(&f.message)
                )?,
            }
        }
        if let Some(org) = &report.org {
            outln!("org:  {}", safe(org))?;
        }
        if let Some(user) = &report.user {
            outln!("user: {}", safe(user))?;
        }
        if let Some(u) = report.api_usage {
            outln!("api usage: {}/{}", u.used, u.limit)?;
        }
    }
    match report.failure {
        None => {
            if !json {
                outln!("connection ok")?;
            }
            Ok(true)
        }
        Some(f) => {
            eprintln!("error: test failed: {}: {}", kind(f.kind), safe(&f.message));
            Ok(false)
        }
    }
}
