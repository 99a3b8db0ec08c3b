//! Tokens: each integration's sealed OAuth grant, refreshed in place, and its health.

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
        let mut conn = self.conn("put_grant")?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO tokens (integration_id, flow, access_token, refresh_token, token_url,
                 instance_url, provider_fields, scopes, obtained_at_ms, generation, health,
                 health_checked_ms, revoke_url)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?9, ?11)
             ON CONFLICT(integration_id) DO UPDATE SET flow = excluded.flow,
                 access_token = excluded.access_token, refresh_token = excluded.refresh_token,
                 token_url = excluded.token_url, instance_url = excluded.instance_url,
                 revoke_url = excluded.revoke_url,
                 provider_fields = excluded.provider_fields,
                 scopes = excluded.scopes, obtained_at_ms = excluded.obtained_at_ms,
                 generation = tokens.generation + 1, health = excluded.health,
                 health_checked_ms = excluded.obtained_at_ms",
            params![
                id,
                tokens.flow.as_str(),
                self.cipher.seal_secret(&ctx_access(id), &tokens.access),
                tokens
                    .refresh
                    .as_ref()
                    .map(|r| self.cipher.seal_secret(&ctx_refresh(id), r)),
                tokens.token_url,
                tokens.instance_url,
                fields_json(&tokens.provider_fields),
                tokens.scopes.join(" "),
                tokens.obtained_at_ms,
                TokenHealthState::Ok,
                tokens.revoke_url,
            ],
        )?;
        tx.execute(
            "DELETE FROM entered_credentials WHERE integration_id = ?1",
            [id],
        )?;
        let n = tx.execute(
            "UPDATE integrations SET state = ?3, state_reason = NULL, updated_at_ms = ?2
             WHERE id = ?1",
            params![id, now_ms(), IntegrationState::Active],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownIntegration(id.to_string()));
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores the result of a refresh: the new access token and, when the provider rotated
    /// it, the new refresh token, in one statement — so a rotated refresh token is durable
    /// before the access token that came with it is handed to anyone. The refresh's provider
    /// fields replace those of the same name; the others are kept.
    pub fn put_refreshed(
        &self,
        id: &str,
        access: &Secret,
        rotated_refresh: Option<&Secret>,
        fields: &ProviderFields,
    ) -> Result<i64, StoreError> {
        let instance_url = fields.get(crate::grant::INSTANCE_URL);
        let now = now_ms();
        let conn = self.conn("put_refreshed")?;
        let generation: Option<i64> = conn
            .query_row(
                "UPDATE tokens SET access_token = ?2,
                     refresh_token = COALESCE(?3, refresh_token),
                     instance_url = COALESCE(?4, instance_url),
                     provider_fields = json_patch(provider_fields, ?5),
                     obtained_at_ms = ?6, generation = generation + 1,
                     health = ?7, health_checked_ms = ?6
                 WHERE integration_id = ?1 RETURNING generation",
                params![
                    id,
                    self.cipher.seal_secret(&ctx_access(id), access),
                    rotated_refresh.map(|r| self.cipher.seal_secret(&ctx_refresh(id), r)),
                    instance_url,
                    fields_json(fields),
                    now,
                    TokenHealthState::Ok
                ],
                |r| r.get(0),
            )
            .optional()?;
        generation.ok_or_else(|| StoreError::UnknownIntegration(id.to_string()))
    }

    /// The integration's tokens, opened; `None` before the first connect.
    pub fn tokens(&self, id: &str) -> Result<Option<TokenSet>, StoreError> {
        let row = self
            .conn("tokens")?
            .query_row(
                "SELECT flow, access_token, refresh_token, token_url, instance_url,
                     provider_fields, scopes, obtained_at_ms, generation, revoke_url
                 FROM tokens WHERE integration_id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, i64>(7)?,
                        r.get::<_, i64>(8)?,
                        r.get::<_, Option<String>>(9)?,
                    ))
                },
            )
            .optional()?;
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
        self.conn("set_token_health")?.execute(
            "UPDATE tokens SET health = ?2, health_checked_ms = ?3 WHERE integration_id = ?1",
            params![id, health, now_ms()],
        )?;
        Ok(())
    }

    /// The token health of an integration; `None` before the first connect.
    pub fn token_health(&self, id: &str) -> Result<Option<TokenHealth>, StoreError> {
        Ok(self
            .conn("token_health")?
            .query_row(
                "SELECT COALESCE(health, ?2), health_checked_ms, obtained_at_ms
                 FROM tokens WHERE integration_id = ?1",
                params![id, TokenHealthState::Unchecked],
                |r| {
                    Ok(TokenHealth {
                        health: r.get(0)?,
                        checked_at_ms: r.get(1)?,
                        obtained_at_ms: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }
}
