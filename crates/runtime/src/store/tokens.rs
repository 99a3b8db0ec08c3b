//! Tokens: each integration's sealed OAuth grant, refreshed in place, and its health.

use super::integrations::{activate_pg, activate_sqlite};
use super::*;
use crate::oauth::ProviderFields;

fn fields_json(fields: &ProviderFields) -> String {
    serde_json::to_string(fields).expect("text pairs serialize")
}

/// Which grant produced a token set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantFlow {
    /// Authorization code (+ PKCE): has a refresh token.
    AuthorizationCode,
    /// Client credentials: no refresh token; a new grant replaces an old token.
    ClientCredentials,
}

impl GrantFlow {
    fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization-code",
            Self::ClientCredentials => "client-credentials",
        }
    }
    pub(super) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "authorization-code" => Ok(Self::AuthorizationCode),
            "client-credentials" => Ok(Self::ClientCredentials),
            other => Err(StoreError::Corrupt(format!("grant flow {other:?}"))),
        }
    }
}

/// An integration's tokens and grant, opened.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The grant that produced them.
    pub flow: GrantFlow,
    /// The access token.
    pub access: Secret,
    /// The refresh token, if any.
    pub refresh: Option<Secret>,
    /// Where refreshes go.
    pub token_url: String,
    /// Where the tokens are revoked: the OAuth plan's revoke URL when the grant was stored, if
    /// it named one.
    pub revoke_url: Option<String>,
    /// Where data calls go and the access token is sent (the provider's `instance_url`), when
    /// the provider names one; without it the token goes to the connector's allowed hosts.
    pub instance_url: Option<String>,
    /// The provider's own non-secret token-response fields, as last received.
    pub provider_fields: ProviderFields,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When this host received the access token.
    pub obtained_at_ms: i64,
    /// Bumped by every new access token; lets concurrent refreshers see a replacement.
    pub generation: i64,
}

/// What [`Store::put_refreshed`] did with a refresh's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshStored {
    /// Stored: the token set's new generation.
    Stored(i64),
    /// Not stored: another refresh or a new grant replaced the tokens first, so the stored
    /// ones (this generation) are the current ones.
    Superseded(i64),
}

/// The health of an integration's refresh token, as the last check found it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenHealth {
    /// What the last check found.
    pub health: TokenHealthState,
    /// When it was last checked.
    pub checked_at_ms: Option<i64>,
    /// When the current access token was obtained.
    pub obtained_at_ms: i64,
}

impl Store {
    /// Stores a fresh grant (connect, re-generate) in place of whatever the integration held
    /// (entered credentials included) and marks the integration active, in one transaction.
    pub fn put_grant(&self, id: &str, tokens: &TokenSet) -> Result<(), StoreError> {
        let access = self.cipher.seal_secret(&ctx_access(id), &tokens.access);
        let refresh = tokens
            .refresh
            .as_ref()
            .map(|r| self.cipher.seal_secret(&ctx_refresh(id), r));
        let fields = fields_json(&tokens.provider_fields);
        let scopes = tokens.scopes.join(" ");
        let now = now_ms();
        match &self.db {
            // The integration first (see `activate_sqlite`).
            Db::Sqlite(db) => {
                let mut conn = db.conn();
                let tx = conn.transaction()?;
                activate_sqlite(&tx, id, now)?;
                tx.execute(
                    "INSERT INTO tokens (integration_id, flow, access_token, refresh_token,
                         token_url, instance_url, provider_fields, scopes, obtained_at_ms,
                         generation, health, health_checked_ms, revoke_url)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?9, ?11)
                     ON CONFLICT(integration_id) DO UPDATE SET flow = excluded.flow,
                         access_token = excluded.access_token,
                         refresh_token = excluded.refresh_token,
                         token_url = excluded.token_url, instance_url = excluded.instance_url,
                         revoke_url = excluded.revoke_url,
                         provider_fields = excluded.provider_fields,
                         scopes = excluded.scopes, obtained_at_ms = excluded.obtained_at_ms,
                         generation = tokens.generation + 1, health = excluded.health,
                         health_checked_ms = excluded.obtained_at_ms",
                    params![
                        id,
                        tokens.flow.as_str(),
                        access,
                        refresh,
                        tokens.token_url,
                        tokens.instance_url,
                        fields,
                        scopes,
                        tokens.obtained_at_ms,
                        TokenHealthState::Ok,
                        tokens.revoke_url,
                    ],
                )?;
                tx.execute(
                    "DELETE FROM entered_credentials WHERE integration_id = ?1",
                    [id],
                )?;
                tx.commit()?;
            }
            Db::Postgres(pg) => {
                let mut client = pg.client()?;
                pg::wait(async {
                    let tx = client.transaction().await?;
                    activate_pg(&tx, id, now).await?;
                    tx.execute(
                        "INSERT INTO tokens (integration_id, flow, access_token, refresh_token,
                             token_url, instance_url, provider_fields, scopes, obtained_at_ms,
                             generation, health, health_checked_ms, revoke_url)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $9, $11)
                         ON CONFLICT (integration_id) DO UPDATE SET flow = excluded.flow,
                             access_token = excluded.access_token,
                             refresh_token = excluded.refresh_token,
                             token_url = excluded.token_url,
                             instance_url = excluded.instance_url,
                             revoke_url = excluded.revoke_url,
                             provider_fields = excluded.provider_fields,
                             scopes = excluded.scopes, obtained_at_ms = excluded.obtained_at_ms,
                             generation = tokens.generation + 1, health = excluded.health,
                             health_checked_ms = excluded.obtained_at_ms",
                        &[
                            &id,
                            &tokens.flow.as_str(),
                            &access,
                            &refresh,
                            &tokens.token_url,
                            &tokens.instance_url,
                            &fields,
                            &scopes,
                            &tokens.obtained_at_ms,
                            &TokenHealthState::Ok.as_str(),
                            &tokens.revoke_url,
                        ],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM entered_credentials WHERE integration_id = $1",
                        &[&id],
                    )
                    .await?;
                    tx.commit().await?;
                    Ok::<_, StoreError>(())
                })?;
            }
        }
        Ok(())
    }

    /// Stores the result of a refresh of the token set of generation `read_generation`: the
    /// new access token and, when the provider rotated it, the new refresh token, in one
    /// statement — so a rotated refresh token is durable before the access token that came
    /// with it is handed to anyone. The refresh's provider fields replace those of the same
    /// name; the others are kept.
    ///
    /// A compare-and-set: when the stored generation is no longer `read_generation` (another
    /// host refreshed, or a person connected again, meanwhile) nothing is written and the
    /// answer is [`RefreshStored::Superseded`]: the stored tokens are newer than this refresh.
    pub fn put_refreshed(
        &self,
        id: &str,
        read_generation: i64,
        access: &Secret,
        rotated_refresh: Option<&Secret>,
        fields: &ProviderFields,
    ) -> Result<RefreshStored, StoreError> {
        let instance_url = fields.get(crate::grant::INSTANCE_URL);
        let now = now_ms();
        let access = self.cipher.seal_secret(&ctx_access(id), access);
        let refresh = rotated_refresh.map(|r| self.cipher.seal_secret(&ctx_refresh(id), r));
        let fields = fields_json(fields);
        let health = TokenHealthState::Ok.as_str();
        // The update's generation, else (the update matched no row) the stored one, if any.
        let (stored, current): (Option<i64>, Option<i64>) = match &self.db {
            Db::Sqlite(db) => {
                let conn = db.conn();
                let stored = conn
                    .query_row(
                        "UPDATE tokens SET access_token = ?2,
                             refresh_token = COALESCE(?3, refresh_token),
                             instance_url = COALESCE(?4, instance_url),
                             provider_fields = json_patch(provider_fields, ?5),
                             obtained_at_ms = ?6, generation = generation + 1,
                             health = ?7, health_checked_ms = ?6
                         WHERE integration_id = ?1 AND generation = ?8 RETURNING generation",
                        params![
                            id,
                            access,
                            refresh,
                            instance_url,
                            fields,
                            now,
                            health,
                            read_generation
                        ],
                        |r| r.get(0),
                    )
                    .optional()?;
                let current = match stored {
                    Some(_) => None,
                    None => conn
                        .query_row(
                            "SELECT generation FROM tokens WHERE integration_id = ?1",
                            [id],
                            |r| r.get(0),
                        )
                        .optional()?,
                };
                (stored, current)
            }
            // One statement: PostgreSQL re-checks the WHERE on the row's latest version after
            // waiting for a concurrent writer, so of two refreshes of one generation exactly
            // one matches.
            Db::Postgres(pg) => {
                let client = pg.client()?;
                pg::wait(async {
                    let stored = client
                        .query_opt(
                            "UPDATE tokens SET access_token = $2,
                                 refresh_token = COALESCE($3, refresh_token),
                                 instance_url = COALESCE($4, instance_url),
                                 provider_fields = (provider_fields::jsonb || $5::text::jsonb)::text,
                                 obtained_at_ms = $6, generation = generation + 1,
                                 health = $7, health_checked_ms = $6
                             WHERE integration_id = $1 AND generation = $8
                             RETURNING generation",
                            &[
                                &id,
                                &access,
                                &refresh,
                                &instance_url,
                                &fields,
                                &now,
                                &health,
                                &read_generation,
                            ],
                        )
                        .await?
                        .map(|r| r.try_get(0))
                        .transpose()?;
                    let current = match stored {
                        Some(_) => None,
                        None => client
                            .query_opt(
                                "SELECT generation FROM tokens WHERE integration_id = $1",
                                &[&id],
                            )
                            .await?
                            .map(|r| r.try_get(0))
                            .transpose()?,
                    };
                    Ok::<_, StoreError>((stored, current))
                })?
            }
        };
        match (stored, current) {
            (Some(generation), _) => Ok(RefreshStored::Stored(generation)),
            (None, Some(generation)) => Ok(RefreshStored::Superseded(generation)),
            (None, None) => Err(StoreError::UnknownIntegration(id.to_string())),
        }
    }

    /// The integration's tokens, opened; `None` before the first connect.
    pub fn tokens(&self, id: &str) -> Result<Option<TokenSet>, StoreError> {
        let row: Option<TokenRow> = match &self.db {
            Db::Sqlite(db) => db
                .conn()
                .query_row(
                    &format!("{SELECT_TOKENS} WHERE integration_id = ?1"),
                    [id],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                            r.get(8)?,
                            r.get(9)?,
                        ))
                    },
                )
                .optional()?,
            Db::Postgres(pg) => pg::wait(pg.client()?.query_opt(
                &format!("{SELECT_TOKENS} WHERE integration_id = $1"),
                &[&id],
            ))?
            .map(|r| {
                Ok::<_, StoreError>((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                    r.try_get(6)?,
                    r.try_get(7)?,
                    r.try_get(8)?,
                    r.try_get(9)?,
                ))
            })
            .transpose()?,
        };
        let Some((
            flow,
            access,
            refresh,
            token_url,
            instance_url,
            fields,
            scopes,
            obtained,
            generation,
            revoke_url,
        )) = row
        else {
            return Ok(None);
        };
        Ok(Some(TokenSet {
            flow: GrantFlow::parse(&flow)?,
            access: self.cipher.open_secret(&ctx_access(id), &access)?,
            refresh: refresh
                .map(|r| self.cipher.open_secret(&ctx_refresh(id), &r))
                .transpose()?,
            token_url,
            revoke_url,
            instance_url,
            provider_fields: serde_json::from_str(&fields)
                .map_err(|e| StoreError::Corrupt(format!("provider fields of {id}: {e}")))?,
            scopes: scopes.split_whitespace().map(String::from).collect(),
            obtained_at_ms: obtained,
            generation,
        }))
    }

    /// Records the outcome of a token health check.
    pub fn set_token_health(&self, id: &str, health: TokenHealthState) -> Result<(), StoreError> {
        let now = now_ms();
        match &self.db {
            Db::Sqlite(db) => {
                db.conn().execute(
                    "UPDATE tokens SET health = ?2, health_checked_ms = ?3
                     WHERE integration_id = ?1",
                    params![id, health, now],
                )?;
            }
            Db::Postgres(pg) => {
                pg::wait(pg.client()?.execute(
                    "UPDATE tokens SET health = $2, health_checked_ms = $3
                     WHERE integration_id = $1",
                    &[&id, &health.as_str(), &now],
                ))?;
            }
        }
        Ok(())
    }

    /// The token health of an integration; `None` before the first connect.
    pub fn token_health(&self, id: &str) -> Result<Option<TokenHealth>, StoreError> {
        let unchecked = TokenHealthState::Unchecked;
        match &self.db {
            Db::Sqlite(db) => Ok(db
                .conn()
                .query_row(
                    "SELECT COALESCE(health, ?2), health_checked_ms, obtained_at_ms
                     FROM tokens WHERE integration_id = ?1",
                    params![id, unchecked],
                    |r| {
                        Ok(TokenHealth {
                            health: r.get(0)?,
                            checked_at_ms: r.get(1)?,
                            obtained_at_ms: r.get(2)?,
                        })
                    },
                )
                .optional()?),
            Db::Postgres(pg) => pg::wait(pg.client()?.query_opt(
                "SELECT COALESCE(health, $2), health_checked_ms, obtained_at_ms
                 FROM tokens WHERE integration_id = $1",
                &[&id, &unchecked.as_str()],
            ))?
            .map(|r| {
                Ok(TokenHealth {
                    health: TokenHealthState::parse(r.try_get(0)?)?,
                    checked_at_ms: r.try_get(1)?,
                    obtained_at_ms: r.try_get(2)?,
                })
            })
            .transpose(),
        }
    }
}

/// A stored token set's columns, in [`SELECT_TOKENS`]'s order.
type TokenRow = (
    String,
    Vec<u8>,
    Option<Vec<u8>>,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    Option<String>,
);

const SELECT_TOKENS: &str = "SELECT flow, access_token, refresh_token, token_url, instance_url,
    provider_fields, scopes, obtained_at_ms, generation, revoke_url FROM tokens";
