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
        self.conn().execute(
            "INSERT INTO oauth_states (state, integration_id, verifier, redirect_uri, created_at_ms,
                 token_url)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                state,
                integration_id,
                self.cipher.seal_secret(&ctx_verifier(state), verifier),
                redirect_uri,
                now_ms(),
                token_url
            ],
        )?;
        Ok(())
    }

    /// Takes (and deletes: a state is single-use) the pending authorization of `state`.
    /// States older than `max_age` are deleted and not returned.
    pub fn take_oauth_state(
        &self,
        state: &str,
        max_age: Duration,
    ) -> Result<Option<PendingAuth>, StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM oauth_states WHERE created_at_ms < ?1",
            [now_ms() - max_age.as_millis() as i64],
        )?;
        let row = conn
            .query_row(
                "DELETE FROM oauth_states WHERE state = ?1
                 RETURNING integration_id, verifier, redirect_uri, created_at_ms, token_url",
                [state],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()?;
        drop(conn);
        let Some((integration_id, verifier, redirect_uri, created_at_ms, token_url)) = row else {
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
