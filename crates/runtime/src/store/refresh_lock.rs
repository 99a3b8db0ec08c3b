//! A hold on one integration's token refresh across every host sharing a PostgreSQL store.
//!
//! Threat: with refresh-token rotation, two hosts refreshing one integration's token at once
//! both spend the same refresh token; the provider may honour only one, and the other host's
//! refusal would mark a healthy integration `needs-reauthorization`. The token service
//! serialises refreshes in one process (a mutex) and among processes sharing a data directory
//! (an OS file lock), but hosts sharing a database share no directory.
//!
//! Rule: on PostgreSQL a refresh runs under a session advisory lock keyed by the integration,
//! taken on a connection of its own and released by closing that connection, so the server
//! also releases it when the holder's host dies. It is not a row lock on `tokens`: the
//! refresher's own writes (the refreshed tokens, the token health, the integration's state)
//! go through other pooled connections and would wait for the lock forever. On SQLite it
//! holds nothing: the processes sharing the file share its directory's lock.

use std::future::Future;

use super::*;

/// The advisory lock namespace of token refreshes (the first of the two-key form, whose keys
/// never collide with the one-key migration lock).
const REFRESH_LOCKS: i32 = 0x746f_6b6e; // "tokn"

/// Held while one host refreshes an integration's token; dropping it lets the next one in.
#[must_use = "the refresh is exclusive only while the lock is held"]
pub struct RefreshLock<'a> {
    /// The connection holding the advisory lock (PostgreSQL only).
    session: Option<pg::Pooled<'a>>,
}

impl std::fmt::Debug for RefreshLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshLock")
            .field("held_in_database", &self.session.is_some())
            .finish()
    }
}

impl Drop for RefreshLock<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            session.close();
        }
    }
}

impl Store {
    /// Waits until no other host refreshes integration `id`'s token, and holds that until
    /// the answer drops. The connection is taken at once (like every store call, without
    /// awaiting); the wait for the lock is awaited, so it blocks no thread.
    pub fn lock_refresh<'s>(
        &'s self,
        id: &'s str,
    ) -> impl Future<Output = Result<RefreshLock<'s>, StoreError>> + Send + 's {
        let session = match &self.db {
            Db::Sqlite(_) => Ok(None),
            Db::Postgres(pg) => pg.client().map(Some),
        };
        async move {
            let session = session?;
            if let Some(session) = &session {
                session
                    .execute(
                        "SELECT pg_advisory_lock($1, hashtext($2))",
                        &[&REFRESH_LOCKS, &id],
                    )
                    .await?;
            }
            Ok(RefreshLock { session })
        }
    }
}
