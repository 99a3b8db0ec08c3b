//! `sluice records`: the stored records of an integration, as JSON lines or a table.

use super::*;

pub(super) async fn records(app: &Arc<App>, args: &RecordsArgs) -> anyhow::Result<()> {
    app.store()
        .integration(&args.id)
        .map_err(crate::app::AppError::from)?;
    if matches!(args.format, RecordFormat::Airbyte) {
        return records_airbyte(app, args).await;
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut first = true;
    if matches!(args.format, RecordFormat::Json) {
        out.write_all(b"[")?;
    }
    let mut io_err = None;
    app.store()
        .for_each_record(&args.id, args.stream.as_deref(), args.with_deleted, |r| {
            let line = serde_json::to_string(&crate::views::RecordView::from(r))
                .expect("a record view serializes");
            let res = match args.format {
                RecordFormat::Jsonl | RecordFormat::Airbyte => writeln!(out, "{line}"),
                RecordFormat::Json => {
                    let sep = if first { "" } else { "," };
                    first = false;
                    write!(out, "{sep}\n{line}")
                }
            };
            if let Err(e) = res {
                io_err = Some(e);
            }
            Ok(())
        })?;
    if let Some(e) = io_err {
        // A closed pipe (`| head`) is not an error worth a message.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            bail!("writing records: {e}");
        }
        return Ok(());
    }
    if matches!(args.format, RecordFormat::Json) {
        out.write_all(b"\n]\n")?;
    }
    out.flush().or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok(())
}

/// The records as Airbyte messages: the catalog, a RECORD each, and a STATE holding the
/// change-feed cursor of the snapshot, from which `changes --after` follows on.
async fn records_airbyte(app: &Arc<App>, args: &RecordsArgs) -> anyhow::Result<()> {
    let catalog = super::airbyte::catalog(app, &args.id).await?;
    let streams = super::airbyte::catalog_streams(&catalog);
    let keys = super::airbyte::primary_keys(&catalog);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !super::changes::write_line(&mut out, &catalog)? {
        return Ok(());
    }
    let now = crate::store::now_ms();
    let mut gone = false;
    let mut io_err = None;
    let cursor =
        app.store()
            .export_records(&args.id, args.stream.as_deref(), args.with_deleted, |r| {
                if !gone && io_err.is_none() {
                    match super::changes::write_line(
                        &mut out,
                        &super::airbyte::record(&r, &keys, now),
                    ) {
                        Ok(written) => gone = !written,
                        Err(e) => io_err = Some(e),
                    }
                }
                Ok(())
            })?;
    if let Some(e) = io_err {
        return Err(e);
    }
    if gone || !super::changes::write_line(&mut out, &super::airbyte::state(cursor, &streams))? {
        return Ok(());
    }
    super::changes::flush(&mut out)?;
    Ok(())
}
