//! Where the changes come from: an integration's change feed in the store.

use sluice_runtime::store::{FeedCursor, FeedPage, Store, StoreError, StoredRecord};

/// An integration's change feed, as the materializer reads it.
pub trait Feed {
    /// At most `limit` changes after `after`, in commit order.
    fn changes_after(&self, after: FeedCursor, limit: usize) -> Result<FeedPage, StoreError>;

    /// Every stored record, tombstones included, read in one snapshot, with that snapshot's
    /// cursor (what follows it comes from [`Feed::changes_after`]).
    fn snapshot(&self) -> Result<(FeedCursor, Vec<StoredRecord>), StoreError>;
}

/// Integration `integration`'s feed in `store`.
pub struct StoreFeed<'a> {
    /// The store.
    pub store: &'a Store,
    /// The integration id.
    pub integration: &'a str,
}

impl Feed for StoreFeed<'_> {
    fn changes_after(&self, after: FeedCursor, limit: usize) -> Result<FeedPage, StoreError> {
        self.store
            .changes_after(self.integration, after, None, limit)
    }

    fn snapshot(&self) -> Result<(FeedCursor, Vec<StoredRecord>), StoreError> {
        let mut records = Vec::new();
        let cursor = self
            .store
            .export_records(self.integration, None, true, |record| {
                records.push(record);
                Ok(())
            })?;
        Ok((cursor, records))
    }
}
