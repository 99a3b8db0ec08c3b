//! Connecting an integration: the OAuth plan, the authorization-code flow with PKCE, client
//! credentials, and storing a grant (refused when the connector says it belongs to another
//! account than the current one).

use super::*;

impl App {
    /// The OAuth plan of an integration, with the egress rules its endpoints must meet.
    pub async fn plan(&self, id: &str) -> Result<(OauthPlan, EgressRules), AppError> {
        let integration = self.store.integration(id)?;
        let connector = self.connector(&integration.connector)?;
        let configured = self
            .configure(Some(id), &connector, &integration.settings)
            .await?;
        match configured.credentials {
            CredentialPlan::Oauth2(plan) => Ok((plan, self.rules(&connector))),
            other => Err(AppError::Unsupported(format!(
                "connector {} asks for {} credentials for this integration, not OAuth 2.0{}",
                connector.name,
                crate::entered::plan_kind(&other),
                match other {
                    CredentialPlan::ApiKey(_) => format!(": run `sluice connect {id} --api-key`"),
                    CredentialPlan::Basic(_) => format!(": run `sluice connect {id} --basic USER`"),
                    _ => ": it needs no connect".to_string(),
                }
            ))),
        }
    }

    /// The egress rules of the connector an integration uses now.
    pub(super) fn rules_of(&self, id: &str) -> Result<EgressRules, AppError> {
        let integration = self.store.integration(id)?;
        let connector = self.connector(&integration.connector)?;
        Ok(self.rules(&connector))
    }

    /// Starts the authorization-code flow: stores the single-use `state` (tied to the
    /// integration) with its sealed PKCE verifier and returns the authorize URL.
    pub async fn begin_authorization(
        &self,
        id: &str,
        redirect_uri: &str,
    ) -> Result<AuthorizationStart, AppError> {
        let (plan, rules) = self.plan(id).await?;
        let app = self.tokens.client_for(id)?;
        let start = self
            .tokens
            .oauth()
            .start_authorization(&plan, &app, redirect_uri, &rules)?;
        // The plan is bound to the state here: the callback uses this token endpoint and does
        // not ask the connector again.
        self.store.put_oauth_state(
            &start.state,
            id,
            &start.verifier,
            redirect_uri,
            &plan.token_url,
        )?;
        tracing::info!(integration = id, "authorization started");
        Ok(start)
    }

    /// Finishes an authorization from its callback: checks the state (single-use, not
    /// expired), exchanges the code with the PKCE verifier and stores the grant. The
    /// integration's records and checkpoints are kept (re-generate token).
    pub async fn complete_authorization(
        &self,
        callback: Callback,
    ) -> Result<Integration, AppError> {
        let (code, state) = match callback {
            Callback::Code { code, state } => (code, state),
            Callback::Error {
                error,
                description,
                state,
            } => {
                if let Some(state) = state {
                    // Burn the state: the flow is over.
                    let _ = self.store.take_oauth_state(&state, AUTHORIZATION_TTL);
                }
                return Err(OAuthError::Provider { error, description }.into());
            }
            Callback::Malformed(why) => return Err(AppError::BadCallback(why)),
        };
        let pending = self
            .store
            .take_oauth_state(&state, AUTHORIZATION_TTL)?
            .ok_or_else(|| {
                AppError::BadCallback(
                    "unknown, used or expired OAuth state: start again with `sluice connect`"
                        .into(),
                )
            })?;
        let id = pending.integration_id.clone();
        let token_url = pending.token_url.clone().ok_or_else(|| {
            AppError::BadCallback(
                "this authorization was started by an older Sluice: start again with `sluice connect`"
                    .into(),
            )
        })?;
        let rules = self.rules_of(&id)?;
        let app = self.tokens.client_for(&id)?;
        let grant = self
            .tokens
            .oauth()
            .exchange_code(
                &token_url,
                &app,
                &pending.redirect_uri,
                &code,
                &pending.verifier,
                &rules,
            )
            .await?;
        // The callback does not carry the plan: its revoke URL is the connector's now.
        let revoke_url = self
            .plan(&id)
            .await
            .ok()
            .and_then(|(plan, _)| plan.revoke_url);
        let endpoints = Endpoints {
            token_url: &token_url,
            revoke_url,
        };
        self.replace_grant(&id, GrantFlow::AuthorizationCode, endpoints, grant)
            .await?;
        tracing::info!(integration = %id, "integration authorized");
        Ok(self.store.integration(&id)?)
    }

    /// Stores a new grant in place of the integration's current one: refused when it belongs
    /// to another org than the one first connected (the new grant is then revoked), and the
    /// superseded refresh token is revoked once the new grant is stored.
    async fn replace_grant(
        &self,
        id: &str,
        flow: GrantFlow,
        endpoints: Endpoints<'_>,
        grant: crate::oauth::Grant,
    ) -> Result<(), AppError> {
        let previous = self.store.tokens(id)?;
        if let Some(previous) = &previous
            && let Some(message) = self.other_account(id, previous, &grant).await?
        {
            let unwanted = TokenSet {
                access: grant.access.clone(),
                refresh: grant.refresh.clone(),
                ..previous.clone()
            };
            if let Ok(revocation) = self.revocation(id, &unwanted).await {
                let _ = revocation.run(self, id).await;
            }
            return Err(AppError::OtherAccount(message));
        }
        let kept = |old: &crate::secrets::Secret, new: &Option<crate::secrets::Secret>| {
            new.as_ref().is_some_and(|n| n.expose() == old.expose())
        };
        let superseded = previous.filter(|p| match &p.refresh {
            Some(old) => !kept(old, &grant.refresh),
            None => !kept(&p.access, &Some(grant.access.clone())),
        });
        self.store_grant(id, flow, endpoints, grant)?;
        if let Some(previous) = superseded
            && let Ok(revocation) = self.revocation(id, &previous).await
        {
            let _ = revocation.run(self, id).await;
        }
        Ok(())
    }

    /// Connects with the client-credentials grant (server-to-server).
    pub async fn connect_client_credentials(&self, id: &str) -> Result<Integration, AppError> {
        let (plan, rules) = self.plan(id).await?;
        if !plan.client_credentials_supported {
            return Err(AppError::Unsupported(
                "the connector offers no client-credentials grant for this integration's \
                 settings (its authorization plan says so); see the connector's documentation \
                 for the settings a server-to-server login needs, or use `sluice connect`"
                    .into(),
            ));
        }
        let app = self.tokens.client_for(id)?;
        let grant = self
            .tokens
            .oauth()
            .client_credentials(&plan.token_url, &app, &rules)
            .await?;
        let endpoints = Endpoints {
            token_url: &plan.token_url,
            revoke_url: plan.revoke_url.clone(),
        };
        self.replace_grant(id, GrantFlow::ClientCredentials, endpoints, grant)
            .await?;
        tracing::info!(
            integration = id,
            "integration connected with client credentials"
        );
        Ok(self.store.integration(id)?)
    }

    fn store_grant(
        &self,
        id: &str,
        flow: GrantFlow,
        endpoints: Endpoints<'_>,
        grant: crate::oauth::Grant,
    ) -> Result<(), AppError> {
        // The OAuth client already held the instance URL, which decides where the token is
        // sent, to the connector's approved rules.
        let instance_url = crate::grant::instance_url(&grant.fields).map(String::from);
        if flow == GrantFlow::AuthorizationCode && grant.refresh.is_none() {
            tracing::warn!(
                integration = id,
                "no refresh token granted; the integration will need re-authorization when the session ends"
            );
        }
        let tokens = TokenSet {
            flow,
            access: grant.access,
            refresh: grant.refresh,
            token_url: endpoints.token_url.to_string(),
            revoke_url: endpoints.revoke_url,
            instance_url,
            provider_fields: grant.fields,
            scopes: grant.scopes,
            obtained_at_ms: now_ms(),
            generation: 0,
        };
        self.store.put_grant(id, &tokens)?;
        Ok(())
    }
}

impl App {
    /// The refusal of a grant of another account than the one `previous` belongs to, as the
    /// integration's connector tells accounts apart (its `account`); `None` when both are the
    /// same, or when the connector cannot name either (logged).
    async fn other_account(
        &self,
        id: &str,
        previous: &TokenSet,
        grant: &crate::oauth::Grant,
    ) -> Result<Option<String>, AppError> {
        let first = crate::grant::wit_grant(previous);
        let now = crate::grant::grant_of(&grant.fields, &grant.scopes);
        Ok(self
            .other_account_between(id, first, now)
            .await?
            .map(|message| format!("{message}, and the new grant was revoked")))
    }

    /// The refusal of credentials whose grant `now` belongs to another account than `first`,
    /// as the connector's `account` tells them apart; `None` when both are the same or the
    /// connector cannot name either (logged).
    async fn other_account_between(
        &self,
        id: &str,
        first: crate::engine::wit::types::Grant,
        now: crate::engine::wit::types::Grant,
    ) -> Result<Option<String>, AppError> {
        let integration = self.store.integration(id)?;
        let connector = self.connector(&integration.connector)?;
        let account = async |grant| {
            let session = Session {
                settings: to_wit_settings(&integration.settings),
                host: self.host_context(),
                grant,
            };
            // No network and no credentials: the account comes from the session alone.
            let ctx = CallContext {
                integration: Some(id.to_string()),
                policy: Arc::new(OutboundPolicy::deny_all()),
                ..CallContext::default()
            };
            match self.engine.account(&connector, &ctx, &session).await? {
                Ok(account) => Ok::<_, AppError>(Some(account)),
                Err(failure) => {
                    tracing::warn!(integration = id, kind = ?failure.kind, reason = %failure.message, "the connector cannot name the grant's account");
                    Ok(None)
                }
            }
        };
        let first = account(first).await?;
        let now = account(now).await?;
        let (Some(first), Some(now)) = (first, now) else {
            return Ok(None);
        };
        Ok((first.id != now.id).then(|| {
            format!(
                "these credentials are for account {} ({}), but integration {id} belongs to \
                 account {} ({}): log in to {} (or set the integration's settings to that \
                 account) and connect again. Nothing was changed",
                now.label, now.id, first.label, first.id, first.label
            )
        }))
    }
}

/// Credentials a person enters for an integration (`sluice connect ID --api-key`, `--basic`).
#[derive(Clone, PartialEq, Eq)]
pub enum EnteredSecret {
    /// An API key or token.
    ApiKey {
        /// The key.
        key: crate::secrets::Secret,
    },
    /// HTTP basic credentials.
    Basic {
        /// The user name.
        username: String,
        /// The password (or token).
        password: crate::secrets::Secret,
    },
}

impl std::fmt::Debug for EnteredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiKey { .. } => f.write_str("ApiKey(<redacted>)"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

impl EnteredSecret {
    fn kind(&self) -> EnteredKind {
        match self {
            Self::ApiKey { .. } => EnteredKind::ApiKey,
            Self::Basic { .. } => EnteredKind::Basic,
        }
    }

    /// Field problems: an empty key, user name or password.
    fn problems(&self) -> Vec<FieldIssue> {
        let mut problems = Vec::new();
        match self {
            Self::ApiKey { key } if key.expose().trim().is_empty() => {
                problems.push(issue("key", "the API key is empty"));
            }
            Self::Basic { username, password } => {
                if username.trim().is_empty() {
                    problems.push(issue("username", "the user name is empty"));
                }
                if username.contains(':') {
                    problems.push(issue(
                        "username",
                        "HTTP basic user names cannot contain ':'",
                    ));
                }
                if password.expose().is_empty() {
                    problems.push(issue("password", "the password is empty"));
                }
            }
            Self::ApiKey { .. } => {}
        }
        problems
    }

    fn into_stored(self) -> EnteredCredentials {
        let kind = self.kind();
        let (username, secret) = match self {
            Self::ApiKey { key } => (None, key),
            Self::Basic { username, password } => (Some(username), password),
        };
        EnteredCredentials {
            kind,
            username,
            secret,
            stored_at_ms: now_ms(),
        }
    }
}

impl App {
    /// Stores an API key or basic credentials for an integration whose connector's plan asks
    /// for that kind (another kind is [`AppError::Unsupported`], naming the plan's), refused
    /// as [`AppError::OtherAccount`] when the connector's `account` says they belong to another
    /// account than the ones they replace; the integration is then active. An OAuth token
    /// they replace is revoked at the provider once they are stored; a failed revocation is
    /// logged and reported, and the credentials stay stored.
    pub async fn connect_entered(
        &self,
        id: &str,
        secret: EnteredSecret,
    ) -> Result<EnteredConnection, AppError> {
        let integration = self.store.integration(id)?;
        let connector = self.connector(&integration.connector)?;
        let plan = self
            .configure(Some(id), &connector, &integration.settings)
            .await?
            .credentials;
        let given = crate::entered::entered_kind(secret.kind());
        let wanted = crate::entered::plan_kind(&plan);
        let matches = matches!(
            (&plan, secret.kind()),
            (CredentialPlan::ApiKey(_), EnteredKind::ApiKey)
                | (CredentialPlan::Basic(_), EnteredKind::Basic)
        );
        if !matches {
            return Err(AppError::Unsupported(format!(
                "connector {} asks for {wanted} credentials for integration {id}, not {given}",
                connector.name
            )));
        }
        let problems = secret.problems();
        if !problems.is_empty() {
            return Err(AppError::Invalid(problems));
        }
        let entered = secret.into_stored();
        crate::entered::credential_for(&plan, &entered)
            .map_err(|e| AppError::Unsupported(e.to_string()))?;
        if let Some(previous) = self.store.entered(id)?
            && previous.kind == entered.kind
        {
            let first = crate::grant::entered_grant(&previous);
            let now = crate::grant::entered_grant(&entered);
            if let Some(message) = self.other_account_between(id, first, now).await? {
                return Err(AppError::OtherAccount(message));
            }
        }
        let superseded = self.store.tokens(id)?;
        let revocation = match &superseded {
            Some(tokens) => Some(self.revocation(id, tokens).await),
            None => None,
        };
        // Stored first: the new credentials never wait on, or depend on, the provider.
        self.store.put_entered(id, &entered)?;
        tracing::info!(integration = id, kind = %entered.kind, "integration connected with entered credentials");
        let superseded_token = match revocation {
            None => None,
            Some(Err(reason)) => Some(SupersededToken::NotRevoked { reason }),
            Some(Ok(revocation)) => Some(match revocation.run(self, id).await {
                Ok(()) => SupersededToken::Revoked,
                Err(reason) => SupersededToken::NotRevoked { reason },
            }),
        };
        Ok(EnteredConnection {
            integration: self.store.integration(id)?,
            superseded_token,
        })
    }
}

/// The OAuth plan's endpoints a grant is stored with.
struct Endpoints<'a> {
    /// Where its refreshes go.
    token_url: &'a str,
    /// Where it is revoked, if the plan named a place.
    revoke_url: Option<String>,
}

/// Entered credentials stored, and what became of the OAuth token they replaced.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnteredConnection {
    /// The integration, now active.
    #[serde(flatten)]
    pub integration: Integration,
    /// The OAuth token the credentials replaced; null when the integration held none.
    pub superseded_token: Option<SupersededToken>,
}

/// What became of an OAuth token that entered credentials replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum SupersededToken {
    /// Revoked at the provider's revocation endpoint.
    Revoked,
    /// Not revoked: it stays valid at the provider until it expires or a person revokes it
    /// in the provider's settings.
    NotRevoked {
        /// Why (no revocation endpoint, or the provider's answer); never the token.
        reason: String,
    },
}
