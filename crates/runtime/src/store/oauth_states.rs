//! Pending OAuth authorizations, each under its single-use `state`.

use super::*;

/// A pending authorization: what the OAuth callback needs to finish it.
#[derive(Debug)]
pub struct PendingAuth {
    /// The integration being authorized.
    pub integration_id: String,
    /// The PKCE verifier.
    pub verifier: Secret,
    /// The redirect URI used in the authorize request.
    pub redirect_uri: String,
    /// The token endpoint of the plan the flow started with (None for a flow started by an
    /// older version, which cannot be finished).
    pub token_url: Option<String>,
    /// When the flow started.
    pub created_at_ms: i64,
}

/// A stored state's columns: integration, sealed verifier, redirect URI, start, token URL.
type StateRow = (String, Vec<u8>, String, i64, Option<String>);

impl Store {
    /// Remembers a pending authorization under its `state`.
    pub fn put_oauth_state(
        &self,
        state: &str,
        integration_id: &str,
        verifier: &Secret,
        redirect_uri: &str,
        token_url: &str,
    ) -> Result<(), StoreError> {
        let verifier = self.cipher.seal_secret(&ctx_verifier(state), verifier);
        let now = now_ms();
        match &self.db {
            Db::Sqlite(db) => {
                db.conn().execute(
                    "INSERT INTO oauth_states (state, integration_id, verifier, redirect_uri,
                         created_at_ms, token_url)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        state,
                        integration_id,
                        verifier,
                        redirect_uri,
                        now,
                        token_url
                    ],
                )?;
            }
            Db::Postgres(pg) => {
                pg::wait(pg.client()?.execute(
                    "INSERT INTO oauth_states (state, integration_id, verifier, redirect_uri,
                         created_at_ms, token_url)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &state,
                        &integration_id,
                        &verifier,
                        &redirect_uri,
                        &now,
                        &token_url,
                    ],
                ))?;
            }
        }
        Ok(())
    }

    /// Takes (and deletes: a state is single-use) the pending authorization of `state`.
    /// States older than `max_age` are deleted and not returned.
    pub fn take_oauth_state(
        &self,
        state: &str,
        max_age: Duration,
    ) -> Result<Option<PendingAuth>, StoreError> {
        let expired_before = now_ms() - max_age.as_millis() as i64;
        let row = match &self.db {
            Db::Sqlite(db) => {
                let conn = db.conn();
                conn.execute(
                    "DELETE FROM oauth_states WHERE created_at_ms < ?1",
                    [expired_before],
                )?;
                conn.query_row(
                    "DELETE FROM oauth_states WHERE state = ?1
                     RETURNING integration_id, verifier, redirect_uri, created_at_ms, token_url",
                    [state],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?
            }
            Db::Postgres(pg) => {
                let client = pg.client()?;
                pg::wait(async {
                    client
                        .execute(
                            "DELETE FROM oauth_states WHERE created_at_ms < $1",
                            &[&expired_before],
                        )
                        .await?;
                    let row = client
                        .query_opt(
                            "DELETE FROM oauth_states WHERE state = $1
                             RETURNING integration_id, verifier, redirect_uri, created_at_ms,
                                 token_url",
                            &[&state],
                        )
                        .await?;
                    Ok::<_, StoreError>(
                        row.map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))),
                    )
                })?
            }
        };
        let Some((integration_id, verifier, redirect_uri, created_at_ms, token_url)): Option<
            StateRow,
        > = row
        else {
            return Ok(None);
        };
        Ok(Some(PendingAuth {
            integration_id,
            verifier: self.cipher.open_secret(&ctx_verifier(state), &verifier)?,
            redirect_uri,
            token_url,
            created_at_ms,
        }))
    }
}
