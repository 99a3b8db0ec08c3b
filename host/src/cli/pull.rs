//! `sluice pull`: one run with a progress display, and its summary.

use super::*;

/// `sluice pull`, with progress bars on a terminal and a summary at the end.
pub async fn pull(
    app: &Arc<App>,
    id: &str,
    full: bool,
    trigger: &str,
    json: bool,
) -> anyhow::Result<RunSummary> {
    let bars = (!json && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
    let progress: Option<crate::runner::ProgressFn> = bars.map(|multi| {
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {prefix:<16} {pos:>9} records  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let active: Mutex<std::collections::HashMap<String, indicatif::ProgressBar>> =
            Mutex::default();
        let f = move |p: &Progress| {
            let mut active = active.lock().unwrap_or_else(|e| e.into_inner());
            match p {
                Progress::Started { .. } => {}
                Progress::Page {
                    stream,
                    stream_total,
                    api_usage,
                    ..
                } => {
                    let bar = active.entry(stream.clone()).or_insert_with(|| {
                        let bar = multi.add(indicatif::ProgressBar::new_spinner());
                        bar.set_style(style.clone());
                        bar.set_prefix(safe(stream).into_owned());
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bar
                    });
                    bar.set_position(*stream_total);
                    if let Some((used, limit)) = api_usage {
                        bar.set_message(format!("API {used}/{limit}"));
                    }
                }
                Progress::StreamDone { outcome } => {
                    if let Some(bar) = active.remove(&outcome.stream) {
                        bar.finish_with_message(safe(outcome.status.as_str()).into_owned());
                    }
                }
            }
        };
        Arc::new(f) as crate::runner::ProgressFn
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Ctrl-C / SIGTERM: finish the page in flight, commit, stop.
    let signal_task = tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("stopping after the current page...");
        let _ = stop_tx.send(true);
    });
    let result = crate::runner::run_pull(
        app,
        id,
        PullOptions {
            full,
            trigger: trigger.into(),
            page_records: 0,
            progress,
            stop: Some(stop_rx),
        },
    )
    .await;
    signal_task.abort();
    let summary = result?;
    if json {
        print_json(&summary)?;
    } else {
        print_summary(&summary)?;
    }
    Ok(summary)
}

/// Prints a run summary.
pub fn print_summary(s: &RunSummary) -> std::io::Result<()> {
    outln!(
        "run {} {}: {} records, {} API calls in {:.1}s ({})",
        s.run_id,
        s.status.as_str(),
        s.records,
        s.api_calls,
        s.elapsed_ms as f64 / 1000.0,
        safe(&s.connector_version)
    )?;
    for o in &s.streams {
        let why = o
            .failure
            .as_ref()
            .map(|f| format!(" — {}: {}", f.kind, f.message))
            .or_else(|| o.detail.as_ref().map(|d| format!(" — {d}")))
            .unwrap_or_default();
        outln!(
            "  {:<20} {:<12} {:>9} records {:>5} pages{}",
            safe(&o.stream),
            safe(o.status.as_str()),
            o.records,
            o.pages,
            safe(&why)
        )?;
    }
    Ok(())
}
