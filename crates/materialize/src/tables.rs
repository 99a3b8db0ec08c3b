//! The destination's tables: one per stream, plus the cursor table.
//!
//! Threat: writing rows into a table someone else made (other columns, no key) would mix our
//! rows into theirs or fail halfway; two integrations in one schema would overwrite each
//! other's rows of a same-named stream.
//! Rule: a stream table is created with exactly [`COLUMNS`] and a primary key on
//! `_sluice_key`; an existing table is used only when it has exactly those columns and that
//! key, else the error names what differs. A schema belongs to the first integration whose
//! cursor row it holds.

use tokio_postgres::GenericClient;

use crate::MaterializeError;
use crate::names::{Ident, quote};

/// The cursor table's name (in the destination schema).
pub const CURSORS_TABLE: &str = "_sluice_cursors";

/// A stream table's columns and their types, as `information_schema` names them.
pub const COLUMNS: [(&str, &str); 5] = [
    ("_sluice_key", "text"),
    ("_sluice_deleted", "boolean"),
    ("_sluice_seq", "bigint"),
    ("_sluice_synced_at", "timestamp with time zone"),
    ("_sluice_record", "jsonb"),
];

/// `schema.table`, both quoted.
pub fn qualified(schema: &Ident, table: &str) -> String {
    format!("{}.{}", schema.quoted(), quote(table))
}

/// Creates the schema and the cursor table if missing, and claims the schema for
/// `integration` (a cursor row at 0), refusing a schema another integration holds.
pub async fn prepare_schema(
    client: &mut tokio_postgres::Client,
    schema: &Ident,
    integration: &str,
) -> Result<(), MaterializeError> {
    let cursors = qualified(schema, CURSORS_TABLE);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema_q};
             CREATE TABLE IF NOT EXISTS {cursors} (
                 integration_id text PRIMARY KEY,
                 feed_cursor bigint NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now())",
            schema_q = schema.quoted()
        ))
        .await?;
    let tx = client.transaction().await?;
    // Two integrations claiming one schema at once: one waits, then sees the other.
    tx.batch_execute(&format!("LOCK TABLE {cursors} IN SHARE ROW EXCLUSIVE MODE"))
        .await?;
    let other = tx
        .query_opt(
            &format!("SELECT integration_id FROM {cursors} WHERE integration_id <> $1 LIMIT 1"),
            &[&integration],
        )
        .await?;
    if let Some(row) = other {
        return Err(MaterializeError::SchemaTaken {
            schema: schema.to_string(),
            other: row.get(0),
        });
    }
    tx.execute(
        &format!(
            "INSERT INTO {cursors} (integration_id, feed_cursor) VALUES ($1, 0)
             ON CONFLICT (integration_id) DO NOTHING"
        ),
        &[&integration],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Creates `stream`'s table if missing, then checks its shape.
pub async fn ensure_stream_table(
    client: &impl GenericClient,
    schema: &Ident,
    stream: &Ident,
) -> Result<(), MaterializeError> {
    let table = qualified(schema, stream.as_str());
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 _sluice_key text PRIMARY KEY,
                 _sluice_deleted boolean NOT NULL,
                 _sluice_seq bigint NOT NULL,
                 _sluice_synced_at timestamptz NOT NULL,
                 _sluice_record jsonb NOT NULL)"
        ))
        .await?;
    check_shape(client, schema, stream.as_str()).await
}

async fn check_shape(
    client: &impl GenericClient,
    schema: &Ident,
    table: &str,
) -> Result<(), MaterializeError> {
    let found: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema.as_str(), &table],
        )
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let keyed = client
        .query_opt(
            "SELECT 1 FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1
               AND a.attname = '_sluice_key'",
            &[&qualified(schema, table)],
        )
        .await?
        .is_some();
    if let Some(found) = shape_mismatch(&found, keyed) {
        return Err(MaterializeError::TableShape {
            table: format!("{schema}.{table}"),
            found,
            expected: describe(COLUMNS.iter().map(|(n, t)| (*n, *t)))
                + " with a unique key on _sluice_key",
        });
    }
    Ok(())
}

/// How `found` differs from a stream table, described; `None` when it is one.
fn shape_mismatch(found: &[(String, String)], keyed_on_key: bool) -> Option<String> {
    let mut have: Vec<(&str, &str)> = found
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let mut want = COLUMNS.to_vec();
    have.sort_unstable();
    want.sort_unstable();
    if have != want {
        return Some(describe(
            found.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        ));
    }
    (!keyed_on_key).then(|| "no unique key on _sluice_key".to_string())
}

fn describe<'a>(columns: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    columns
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stream tables of `schema`: every table but the cursor table that has `_sluice_key`.
pub async fn stream_tables(
    client: &impl GenericClient,
    schema: &Ident,
) -> Result<Vec<String>, MaterializeError> {
    Ok(client
        .query(
            "SELECT table_name::text FROM information_schema.columns
             WHERE table_schema = $1 AND column_name = '_sluice_key' AND table_name <> $2
             ORDER BY 1",
            &[&schema.as_str(), &CURSORS_TABLE],
        )
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn a_stream_table_in_any_column_order_fits() {
        let mut found = cols(&COLUMNS);
        found.reverse();
        assert_eq!(shape_mismatch(&found, true), None);
    }

    #[test]
    fn other_columns_or_types_or_no_key_are_named() {
        let mut extra = cols(&COLUMNS);
        extra.push(("name".into(), "text".into()));
        assert!(shape_mismatch(&extra, true).unwrap().contains("name text"));
        let mut retyped = cols(&COLUMNS);
        retyped[4].1 = "json".into();
        assert!(
            shape_mismatch(&retyped, true)
                .unwrap()
                .contains("_sluice_record json")
        );
        assert!(
            shape_mismatch(&cols(&COLUMNS), false)
                .unwrap()
                .contains("no unique key")
        );
        assert!(shape_mismatch(&[], true).is_some());
    }
}
