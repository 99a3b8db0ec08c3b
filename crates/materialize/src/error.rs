//! What can go wrong while materializing, as a caller can act on it.

use sluice_runtime::store::StoreError;

use crate::names::BadName;

/// A materialization failure. Nothing is applied past the last committed batch.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    /// The destination URL is not one this materializer connects to.
    #[error("the destination URL: {0}")]
    BadUrl(String),
    /// A stream or schema name cannot be an identifier.
    #[error(transparent)]
    BadName(#[from] BadName),
    /// A table of the destination exists with columns other than a stream table's.
    #[error(
        "table {table} exists with other columns than a Sluice stream table ({found}; expected \
         {expected}): drop or rename it, or materialize into another schema (--schema)"
    )]
    TableShape {
        /// The table, schema-qualified.
        table: String,
        /// Its columns as found.
        found: String,
        /// The columns expected.
        expected: String,
    },
    /// The schema already holds another integration's tables.
    #[error(
        "schema {schema} already holds the tables of integration {other}; materialize each \
         integration into its own schema (--schema)"
    )]
    SchemaTaken {
        /// The schema.
        schema: String,
        /// The integration whose cursor is there.
        other: String,
    },
    /// A record cannot be stored in PostgreSQL as it is.
    #[error("stream {stream}, key {key:?}: {why}; nothing from this batch was applied")]
    BadRecord {
        /// The stream.
        stream: String,
        /// The record's key.
        key: String,
        /// What PostgreSQL cannot hold.
        why: String,
    },
    /// The destination's cursor is older than tombstones the feed has pruned.
    #[error(
        "the destination's feed cursor {cursor} is older than delete tombstones the feed no \
         longer keeps (through {pruned_through}); resync: reload the integration's snapshot \
         and mark rows it lacks as deleted (--resync)"
    )]
    ResyncRequired {
        /// The destination's cursor.
        cursor: i64,
        /// The newest pruned tombstone's sequence number.
        pruned_through: i64,
    },
    /// The destination's cursor is past the feed's head: the tables came from another feed.
    #[error(
        "the destination's feed cursor {cursor} is past this integration's latest change \
         ({head}): the schema was filled from another data directory; use another schema"
    )]
    CursorAhead {
        /// The destination's cursor.
        cursor: i64,
        /// The feed's head.
        head: i64,
    },
    /// Reading the feed failed.
    #[error("reading the change feed: {0}")]
    Feed(#[source] StoreError),
    /// PostgreSQL refused or the connection failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

impl From<StoreError> for MaterializeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ResyncRequired {
                cursor,
                pruned_through,
            } => Self::ResyncRequired {
                cursor,
                pruned_through,
            },
            StoreError::CursorAhead { cursor, head, .. } => Self::CursorAhead { cursor, head },
            other => Self::Feed(other),
        }
    }
}
