//! `sluice records`: the stored records of an integration, as JSON lines or a table.

use super::*;

pub(super) fn records(app: &Arc<App>, args: &RecordsArgs) -> anyhow::Result<()> {
    app.store()
        .integration(&args.id)
        .map_err(crate::app::AppError::from)?;
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
                RecordFormat::Jsonl => writeln!(out, "{line}"),
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
