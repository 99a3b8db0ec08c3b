//! Entered credentials: an API key or basic credentials a person gave for an integration,
//! sealed like tokens (the key or password never lies in the database in clear).

use super::integrations::{activate_pg, activate_sqlite};
use super::*;

fn ctx_entered(id: &str) -> String {
    format!("entered-secret/{id}")
}

/// An integration's entered credentials, opened.
#[derive(Debug, Clone)]
pub struct EnteredCredentials {
    /// API key or basic.
    pub kind: EnteredKind,
    /// The user name of basic credentials; not secret, never shown.
    pub username: Option<String>,
    /// The API key, or the basic password.
    pub secret: Secret,
    /// When they were stored.
    pub stored_at_ms: i64,
}

impl Store {
    /// Stores entered credentials in place of whatever the integration held (OAuth tokens
    /// included) and marks it active, in one transaction.
    pub fn put_entered(&self, id: &str, entered: &EnteredCredentials) -> Result<(), StoreError> {
        let sealed = self.cipher.seal_secret(&ctx_entered(id), &entered.secret);
        let now = now_ms();
        match &self.db {
            // The integration first (see `activate_sqlite`).
            Db::Sqlite(db) => {
                let mut conn = db.conn();
                let tx = conn.transaction()?;
                activate_sqlite(&tx, id, now)?;
                tx.execute(
                    "INSERT INTO entered_credentials (integration_id, kind, username, secret,
                         stored_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(integration_id) DO UPDATE SET kind = excluded.kind,
                         username = excluded.username, secret = excluded.secret,
                         stored_at_ms = excluded.stored_at_ms",
                    params![
                        id,
                        entered.kind,
                        entered.username,
                        sealed,
                        entered.stored_at_ms,
                    ],
                )?;
                tx.execute("DELETE FROM tokens WHERE integration_id = ?1", [id])?;
                tx.commit()?;
            }
            Db::Postgres(pg) => {
                let mut client = pg.client()?;
                pg::wait(async {
                    let tx = client.transaction().await?;
                    activate_pg(&tx, id, now).await?;
                    tx.execute(
                        "INSERT INTO entered_credentials (integration_id, kind, username, secret,
                             stored_at_ms)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (integration_id) DO UPDATE SET kind = excluded.kind,
                             username = excluded.username, secret = excluded.secret,
                             stored_at_ms = excluded.stored_at_ms",
                        &[
                            &id,
                            &entered.kind.as_str(),
                            &entered.username,
                            &sealed,
                            &entered.stored_at_ms,
                        ],
                    )
                    .await?;
                    tx.execute("DELETE FROM tokens WHERE integration_id = $1", &[&id])
                        .await?;
                    tx.commit().await?;
                    Ok::<_, StoreError>(())
                })?;
            }
        }
        Ok(())
    }

    /// The integration's entered credentials, opened; `None` when it has none.
    pub fn entered(&self, id: &str) -> Result<Option<EnteredCredentials>, StoreError> {
        let row = match &self.db {
            Db::Sqlite(db) => db
                .conn()
                .query_row(
                    "SELECT kind, username, secret, stored_at_ms FROM entered_credentials
                     WHERE integration_id = ?1",
                    [id],
                    |r| {
                        Ok((
                            r.get::<_, EnteredKind>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    },
                )
                .optional()?,
            Db::Postgres(pg) => pg::wait(pg.client()?.query_opt(
                "SELECT kind, username, secret, stored_at_ms FROM entered_credentials
                 WHERE integration_id = $1",
                &[&id],
            ))?
            .map(|r| {
                Ok::<_, StoreError>((
                    EnteredKind::parse(r.try_get(0)?)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                ))
            })
            .transpose()?,
        };
        let Some((kind, username, secret, stored_at_ms)) = row else {
            return Ok(None);
        };
        Ok(Some(EnteredCredentials {
            kind,
            username,
            secret: self.cipher.open_secret(&ctx_entered(id), &secret)?,
            stored_at_ms,
        }))
    }

    /// The kind of credentials the integration holds; `None` before the first connect (and
    /// for connectors that need none).
    pub fn credential_kind(&self, id: &str) -> Result<Option<CredentialKind>, StoreError> {
        let (entered, flow): (Option<EnteredKind>, Option<String>) = match &self.db {
            Db::Sqlite(db) => {
                let conn = db.conn();
                let entered = conn
                    .query_row(
                        "SELECT kind FROM entered_credentials WHERE integration_id = ?1",
                        [id],
                        |r| r.get(0),
                    )
                    .optional()?;
                let flow = match entered {
                    Some(_) => None,
                    None => conn
                        .query_row(
                            "SELECT flow FROM tokens WHERE integration_id = ?1",
                            [id],
                            |r| r.get(0),
                        )
                        .optional()?,
                };
                (entered, flow)
            }
            // One statement, so a concurrent switch between kinds is seen whole.
            Db::Postgres(pg) => {
                let row = pg::wait(pg.client()?.query_one(
                    "SELECT (SELECT kind FROM entered_credentials WHERE integration_id = $1),
                         (SELECT flow FROM tokens WHERE integration_id = $1)",
                    &[&id],
                ))?;
                let entered: Option<&str> = row.try_get(0)?;
                (
                    entered.map(EnteredKind::parse).transpose()?,
                    row.try_get(1)?,
                )
            }
        };
        if let Some(kind) = entered {
            return Ok(Some(match kind {
                EnteredKind::ApiKey => CredentialKind::ApiKey,
                EnteredKind::Basic => CredentialKind::Basic,
            }));
        }
        flow.map(|f| {
            Ok(match GrantFlow::parse(&f)? {
                GrantFlow::AuthorizationCode => CredentialKind::Oauth2AuthorizationCode,
                GrantFlow::ClientCredentials => CredentialKind::Oauth2ClientCredentials,
            })
        })
        .transpose()
    }
}
