//! `sluice changes`: an integration's change feed after a cursor, as JSON lines or Airbyte
//! protocol messages, read to the feed's head page by page.

use super::*;
use crate::store::FeedCursor;

/// Changes read per store page.
const PAGE: usize = 1000;

pub(super) async fn changes(app: &Arc<App>, args: &ChangesArgs) -> anyhow::Result<()> {
    app.store()
        .integration(&args.id)
        .map_err(crate::app::AppError::from)?;
    let mut after = FeedCursor::parse(&args.after).map_err(|e| anyhow::anyhow!("--after: {e}"))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (streams, keys) = match args.format {
        ChangeFormat::Airbyte => {
            let catalog = super::airbyte::catalog(app, &args.id).await?;
            if !write_line(&mut out, &catalog)? {
                return Ok(());
            }
            (
                super::airbyte::catalog_streams(&catalog),
                super::airbyte::primary_keys(&catalog),
            )
        }
        ChangeFormat::Jsonl => Default::default(),
    };
    loop {
        let page = app
            .store()
            .changes_after(&args.id, after, args.stream.as_deref(), PAGE)
            .map_err(crate::app::AppError::from)?;
        let now = crate::store::now_ms();
        for change in page.changes {
            let line = match args.format {
                ChangeFormat::Jsonl => {
                    serde_json::to_value(crate::views::ChangeView::from(change))?
                }
                ChangeFormat::Airbyte => super::airbyte::record(&change.record, &keys, now),
            };
            if !write_line(&mut out, &line)? {
                return Ok(());
            }
        }
        after = page.next;
        // A state after each page: a destination that stops midway resumes from there.
        if matches!(args.format, ChangeFormat::Airbyte)
            && !write_line(&mut out, &super::airbyte::state(after, &streams))?
        {
            return Ok(());
        }
        if !page.more {
            break;
        }
    }
    if flush(&mut out)? {
        eprintln!("next cursor: {after}");
    }
    Ok(())
}

/// Writes `value` as one line; false when the reader went away (`| head`).
pub(super) fn write_line(out: &mut impl Write, value: &serde_json::Value) -> anyhow::Result<bool> {
    match writeln!(out, "{value}") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => bail!("writing changes: {e}"),
    }
}

/// Flushes `out`; false when the reader went away.
pub(super) fn flush(out: &mut impl Write) -> anyhow::Result<bool> {
    match out.flush() {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => bail!("writing changes: {e}"),
    }
}
