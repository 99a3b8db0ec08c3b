//! What a call to the connector needs (session, Test Connection) and the runs of an
//! integration.

use super::*;

impl App {
    /// What a call that talks to the provider needs: the connector, the session and the call
    /// context with the outbound policy and the integration's credentials.
    pub async fn session(
        &self,
        id: &str,
        run: Option<&str>,
    ) -> Result<(Arc<LoadedConnector>, Session, CallContext, Configured), AppError> {
        let integration = self.store.integration(id)?;
        match integration.state {
            IntegrationState::PendingAuthorization => {
                return Err(AppError::NotConnected(format!(
                    "integration {id} is not connected yet: run `sluice connect {id}`"
                )));
            }
            IntegrationState::NeedsReauthorization => {
                return Err(AppError::NotConnected(format!(
                    "integration {id} needs re-authorization ({}): run `sluice connect {id}`",
                    integration
                        .state_reason
                        .as_deref()
                        .unwrap_or("no reason recorded")
                )));
            }
            IntegrationState::Active => {}
        }
        let connector = self.connector(&integration.connector)?;
        let configured = self
            .configure(Some(id), &connector, &integration.settings)
            .await?;
        let held = self.held_credentials(id, &configured.credentials)?;
        let settings = to_wit_settings(&integration.settings);
        let session = Session {
            settings,
            host: self.host_context(),
            grant: held.grant,
        };
        let ctx = CallContext {
            integration: Some(id.to_string()),
            run: run.map(String::from),
            policy: Arc::new(OutboundPolicy::for_integration(
                self.rules(&connector),
                &configured.allowed_hosts,
                held.instance_url.as_deref(),
            )?),
            credentials: held.provider,
            stored_keys: Some(self.store.keys_of(id)),
        };
        Ok((connector, session, ctx, configured))
    }

    /// What the integration holds for its connector's credential plan: the grant the connector
    /// sees, the instance URL (where an OAuth token goes, when the provider named one) and the
    /// provider the engine asks for the credential header. Missing or mismatched credentials
    /// are [`AppError::NotConnected`], naming the kind the plan asks for.
    fn held_credentials(&self, id: &str, plan: &CredentialPlan) -> Result<Held, AppError> {
        let not_connected = |how: &str| {
            AppError::NotConnected(format!(
                "integration {id} has no {} credentials: run `sluice connect {id}{how}`",
                crate::entered::plan_kind(plan)
            ))
        };
        match plan {
            CredentialPlan::None => Ok(Held {
                grant: empty_grant(),
                instance_url: None,
                provider: None,
            }),
            CredentialPlan::Oauth2(_) => {
                let tokens = self.store.tokens(id)?.ok_or_else(|| not_connected(""))?;
                Ok(Held {
                    grant: wit_grant(&tokens),
                    instance_url: tokens.instance_url,
                    provider: Some(self.tokens.provider(id)),
                })
            }
            CredentialPlan::ApiKey(_) | CredentialPlan::Basic(_) => {
                let how = match plan {
                    CredentialPlan::Basic(_) => " --basic USER",
                    _ => " --api-key",
                };
                let entered = self.store.entered(id)?.ok_or_else(|| not_connected(how))?;
                // Checks the kind and the plan's header before anything is sent.
                crate::entered::credential_for(plan, &entered).map_err(|e| match e {
                    crate::entered::EnteredError::OtherKind { .. } => not_connected(how),
                    bad => AppError::Unsupported(bad.to_string()),
                })?;
                let provider = crate::entered::EnteredProvider::new(
                    self.store.clone(),
                    self.tokens.clone(),
                    id,
                    plan.clone(),
                )
                .map_err(|e| AppError::Unsupported(e.to_string()))?;
                Ok(Held {
                    grant: crate::grant::entered_grant(&entered),
                    instance_url: None,
                    provider: Some(provider),
                })
            }
        }
    }

    /// Test Connection.
    pub async fn test(&self, id: &str) -> Result<TestReport, AppError> {
        let (connector, session, ctx, _) = self.session(id, Some("test")).await?;
        let report = self.engine.test(&connector, &ctx, &session).await?;
        Ok(report)
    }

    /// The schemas of the integration's streams, by the connector's `discover`. A failure the
    /// connector reports is [`AppError::Discover`].
    pub async fn discover(&self, id: &str) -> Result<Vec<StreamSchema>, AppError> {
        let (connector, session, ctx, _) = self.session(id, Some("discover")).await?;
        self.engine
            .discover(&connector, &ctx, &session)
            .await?
            .map_err(|f| AppError::Discover(format!("{:?}: {}", f.kind, f.message)))
    }

    /// What connector `name` (its active version) declares about itself.
    pub async fn describe(&self, name: &str) -> Result<ConnectorInfo, AppError> {
        let connector = self.connector(name)?;
        Ok(self
            .engine
            .describe(&connector, &CallContext::default())
            .await?)
    }
}

/// What an integration holds for its connector's credential plan.
struct Held {
    grant: crate::engine::wit::types::Grant,
    instance_url: Option<String>,
    provider: Option<Arc<dyn crate::engine::credentials::CredentialProvider>>,
}

/// The grant of an integration that holds no grant: nothing to tell the connector.
pub(crate) fn empty_grant() -> crate::engine::wit::types::Grant {
    crate::engine::wit::types::Grant {
        instance_url: None,
        fields: Vec::new(),
        issued_at_ms: None,
        scopes: Vec::new(),
    }
}

impl App {
    /// The latest runs of `id`, newest first. A run still marked `running` whose process is
    /// gone (killed before it could record its end: nobody holds the integration's run claim)
    /// is recorded as interrupted first.
    pub fn runs(self: &Arc<Self>, id: &str, limit: usize) -> Result<Vec<RunRecord>, AppError> {
        let runs = self.store.runs(id, limit)?;
        if !runs.iter().any(|r| r.status == RunState::Running) {
            return Ok(runs);
        }
        // Holding the claim, no run of `id` can be going on, here or in another process.
        let Some(_claim) = self.claim_run(id) else {
            return Ok(runs);
        };
        self.store.close_orphan_runs(id)?;
        tracing::info!(
            integration = id,
            "runs whose process ended are recorded as interrupted"
        );
        Ok(self.store.runs(id, limit)?)
    }
}
