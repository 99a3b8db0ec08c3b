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
                "connector {} asks for {} credentials for this integration, and this host \
                 connects integrations with OAuth 2.0 only",
                connector.name,
                credential_kind(&other)
            ))),
        }
    }

    /// The egress rules of the connector an integration uses now.
    fn rules_of(&self, id: &str) -> Result<EgressRules, AppError> {
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
        self.replace_grant(&id, GrantFlow::AuthorizationCode, &token_url, grant)
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
        token_url: &str,
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
            if let Some(revocation) = self.revocation(id, &unwanted).await {
                revocation.run(self, id).await;
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
        self.store_grant(id, flow, token_url, grant)?;
        if let Some(previous) = superseded
            && let Some(revocation) = self.revocation(id, &previous).await
        {
            revocation.run(self, id).await;
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
        self.replace_grant(id, GrantFlow::ClientCredentials, &plan.token_url, grant)
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
        token_url: &str,
        grant: crate::oauth::Grant,
    ) -> Result<(), AppError> {
        // The OAuth client already held the instance URL, which decides where the token is
        // sent, to the connector's approved rules.
        let instance_url = crate::grant::instance_url(&grant.fields)?.to_string();
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
            token_url: token_url.to_string(),
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

/// What a person calls a kind of credentials.
fn credential_kind(plan: &CredentialPlan) -> &'static str {
    match plan {
        CredentialPlan::Oauth2(_) => "OAuth 2.0",
        CredentialPlan::ApiKey(_) => "API key",
        CredentialPlan::Basic(_) => "HTTP basic",
        CredentialPlan::None => "no",
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
        let first = account(crate::grant::wit_grant(previous)).await?;
        let now = account(crate::grant::grant_of(&grant.fields, &grant.scopes)).await?;
        let (Some(first), Some(now)) = (first, now) else {
            return Ok(None);
        };
        Ok((first.id != now.id).then(|| {
            format!(
                "this authorization is for account {} ({}), but integration {id} belongs to \
                 account {} ({}): log in to {} (or set the integration's settings to that \
                 account) and authorize again. Nothing was changed, and the new grant was revoked",
                now.label, now.id, first.label, first.id, first.label
            )
        }))
    }
}
