//! Integrations: added, edited, shown and deleted, each validated by the connector's
//! `configure`; deleting or re-generating revokes the superseded refresh token.

use super::*;

/// The integration-side input of `add` and `edit`.
#[derive(Debug, Clone, Default)]
pub struct IntegrationInput {
    /// The installed connector that serves it (add only; default [`DEFAULT_CONNECTOR`]).
    pub connector: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Capability.
    pub capability: Option<String>,
    /// The connector's settings by declared name, in order; on edit an empty value removes
    /// the setting and names not given keep their value.
    pub settings: Vec<(String, String)>,
    /// Pull interval.
    pub interval: Option<Duration>,
    /// Per-integration client id.
    pub client_id: Option<String>,
    /// Per-integration client secret.
    pub client_secret: Option<String>,
}

/// An integration with what the connector says about it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Validated {
    /// The stored integration.
    pub integration: Integration,
    /// Warnings from `configure`.
    pub warnings: Vec<FieldIssue>,
    /// The settings in normal form.
    #[schema(value_type = Vec<crate::views::SettingPair>)]
    pub normalized: Vec<(String, String)>,
    /// The streams it will pull.
    pub streams: Vec<String>,
}

impl App {
    /// Calls `configure` for stored settings; field errors become [`AppError::Invalid`].
    pub async fn configure(
        &self,
        integration_id: Option<&str>,
        connector: &LoadedConnector,
        settings: &IntegrationSettings,
    ) -> Result<Configured, AppError> {
        let wit = to_wit_settings(settings);
        let ctx = CallContext {
            integration: integration_id.map(String::from),
            policy: Arc::new(OutboundPolicy::deny_all()),
            ..CallContext::default()
        };
        self.engine
            .configure(connector, &ctx, &wit, &self.host_context())
            .await?
            .map_err(|errors| AppError::Invalid(errors.into_iter().map(Into::into).collect()))
    }

    /// Validates and stores a new integration. Nothing is stored when anything is invalid.
    pub async fn add_integration(&self, input: IntegrationInput) -> Result<Validated, AppError> {
        let mut problems = Vec::new();
        let name = input.name.clone().unwrap_or_default();
        if name.trim().is_empty() {
            problems.push(issue("name", "a name is required"));
        }
        let capability = input.capability.clone().unwrap_or_default();
        // Which settings are required, the capability's values included, is the connector's
        // to say (`configure`).
        let interval = input.interval.unwrap_or(DEFAULT_INTERVAL);
        problems.extend(check_interval(interval));
        if input.client_secret.is_some() && input.client_id.is_none() {
            problems.push(issue(
                "client-secret",
                "a client secret needs its client id (--client-id)",
            ));
        }
        let settings = IntegrationSettings::new(
            capability,
            input.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let connector_name = input
            .connector
            .clone()
            .unwrap_or_else(|| DEFAULT_CONNECTOR.to_string());
        let configured = match self.chosen_connector(&connector_name) {
            Err(problem) => {
                problems.push(problem);
                None
            }
            Ok(connector) => {
                if settings.capability.is_empty() {
                    problems.push(self.missing_capability(&connector).await?);
                }
                match self.configure(None, &connector, &settings).await {
                    Ok(c) => Some(c),
                    Err(AppError::Invalid(more)) => {
                        problems.extend(more);
                        None
                    }
                    Err(other) => return Err(other),
                }
            }
        };
        let Some(configured) = configured.filter(|_| problems.is_empty()) else {
            dedup(&mut problems);
            return Err(AppError::Invalid(problems));
        };
        let integration = self.store.insert_integration(&NewIntegration {
            name: name.trim().to_string(),
            connector: connector_name,
            settings,
            interval_s: interval.as_secs(),
            client_id: input.client_id,
            client_secret: input.client_secret.map(crate::secrets::Secret::new),
        })?;
        tracing::info!(integration = %integration.id, connector = %integration.connector, "integration added");
        let integration = self.activate_without_credentials(integration, &configured)?;
        Ok(validated(integration, configured))
    }

    /// Changes an integration; fields left `None` keep their value. Validated by
    /// `configure` first; nothing changes when anything is invalid. Data, checkpoints and
    /// tokens are kept.
    pub async fn edit_integration(
        &self,
        id: &str,
        input: IntegrationInput,
    ) -> Result<Validated, AppError> {
        let current = self.store.integration(id)?;
        let mut problems = Vec::new();
        if let Some(other) = input
            .connector
            .as_ref()
            .filter(|c| **c != current.connector)
        {
            // Checkpoints and stored records mean something only to the connector that wrote them.
            problems.push(issue(
                "connector",
                format!(
                    "an integration keeps its connector ({}); to pull with {other}, add a new integration",
                    current.connector
                ),
            ));
        }
        let name = input.name.clone().unwrap_or(current.name.clone());
        if name.trim().is_empty() {
            problems.push(issue("name", "a name is required"));
        }
        let interval = input
            .interval
            .unwrap_or(Duration::from_secs(current.interval_s));
        problems.extend(check_interval(interval));
        let mut settings = current.settings.clone();
        if let Some(v) = input.capability {
            settings.capability = v;
        }
        for (name, value) in &input.settings {
            settings.set(name, value);
        }
        let client_id = input.client_id.or(current.client_id.clone());
        if input.client_secret.is_some() && client_id.is_none() {
            problems.push(issue(
                "client-secret",
                "a client secret needs its client id (--client-id)",
            ));
        }
        let connector = self.connector(&current.connector)?;
        let configured = match self.configure(Some(id), &connector, &settings).await {
            Ok(c) => Some(c),
            Err(AppError::Invalid(more)) => {
                problems.extend(more);
                None
            }
            Err(other) => return Err(other),
        };
        let Some(configured) = configured.filter(|_| problems.is_empty()) else {
            dedup(&mut problems);
            return Err(AppError::Invalid(problems));
        };
        let secret = input.client_secret.map(crate::secrets::Secret::new);
        let integration = self.store.update_integration(
            id,
            name.trim(),
            &settings,
            interval.as_secs(),
            client_id.as_deref(),
            secret.as_ref().map(Some),
        )?;
        tracing::info!(integration = id, "integration edited");
        let integration = self.activate_without_credentials(integration, &configured)?;
        Ok(validated(integration, configured))
    }

    /// A connector that needs no credentials for these settings needs no connect: its pending
    /// integration is active at once.
    fn activate_without_credentials(
        &self,
        integration: Integration,
        configured: &Configured,
    ) -> Result<Integration, AppError> {
        let pending = integration.state == IntegrationState::PendingAuthorization;
        if !pending || !matches!(configured.credentials, CredentialPlan::None) {
            return Ok(integration);
        }
        self.store
            .set_state(&integration.id, IntegrationState::Active, None)?;
        tracing::info!(integration = %integration.id, "active: its connector needs no credentials");
        Ok(self.store.integration(&integration.id)?)
    }

    /// The field error for an add without a capability, naming the connector's capabilities.
    async fn missing_capability(
        &self,
        connector: &LoadedConnector,
    ) -> Result<FieldIssue, AppError> {
        let info = self
            .engine
            .describe(connector, &CallContext::default())
            .await?;
        let names: Vec<&str> = info.capabilities.iter().map(|c| c.name.as_str()).collect();
        Ok(issue(
            "capability",
            format!("required: one of {}", names.join(", ")),
        ))
    }

    /// The active version of the connector an integration asks for, or a field error on
    /// `connector` that names the installed ones.
    fn chosen_connector(&self, name: &str) -> Result<Arc<LoadedConnector>, FieldIssue> {
        self.registry.active(name).ok_or_else(|| {
            let mut installed: Vec<String> = self
                .registry
                .list(None)
                .into_iter()
                .filter(|v| v.active)
                .map(|v| v.record.name)
                .collect();
            installed.sort();
            installed.dedup();
            let installed = match installed.is_empty() {
                true => "none is installed".to_string(),
                false => format!("installed: {}", installed.join(", ")),
            };
            issue(
                "connector",
                format!("no connector named {name:?} is active ({installed}); install it with `sluice connector install`"),
            )
        })
    }

    /// Deletes an integration with its tokens, records, checkpoints and runs, then revokes
    /// its refresh token at the provider (Salesforce keeps only five approvals per user and
    /// app, so an orphaned one would end another integration's). A failed revocation is
    /// logged; the deletion stands.
    pub async fn delete_integration(&self, id: &str) -> Result<(), AppError> {
        let revocation = match self.store.tokens(id)? {
            Some(tokens) => self.revocation(id, &tokens).await.ok(),
            None => None,
        };
        self.store.delete_integration(id)?;
        crate::locks::LockDir::new(&self.config.data_dir).forget(id);
        self.tokens.forget(id);
        tracing::info!(integration = id, "integration deleted");
        if let Some(revocation) = revocation {
            let _ = revocation.run(self, id).await;
        }
        Ok(())
    }

    /// What revoking `tokens` needs: where (the revoke URL stored with them, else the current
    /// OAuth plan's), the approved endpoints and the app. Without one of them, why not
    /// (logged): the tokens then stay valid at the provider.
    pub(super) async fn revocation(
        &self,
        id: &str,
        tokens: &TokenSet,
    ) -> Result<Revocation, String> {
        let not_revocable = |why: String| {
            tracing::warn!(integration = id, reason = %why, "cannot revoke the tokens");
            why
        };
        let (current, rules) = match self.plan(id).await {
            Ok((plan, rules)) => (plan.revoke_url, rules),
            // The plan is no longer OAuth (or cannot be had): the stored URL may still say.
            Err(_) => (
                None,
                self.rules_of(id)
                    .map_err(|e| not_revocable(e.to_string()))?,
            ),
        };
        let Some(url) = tokens.revoke_url.clone().or(current) else {
            return Err(not_revocable(
                "the OAuth plan names no revoke URL: the token stays valid at the provider until it expires"
                    .into(),
            ));
        };
        let app = self
            .tokens
            .client_for(id)
            .map_err(|e| not_revocable(e.to_string()))?;
        let token = match &tokens.refresh {
            Some(refresh) => RevocableToken::Refresh(refresh.clone()),
            None => RevocableToken::Access(tokens.access.clone()),
        };
        Ok(Revocation {
            url,
            app,
            token,
            rules,
        })
    }

    /// Pauses integration `id`'s pulls, scheduled or asked for, or resumes them. A run going
    /// on finishes; tokens are still refreshed and checked, so resuming needs no new login.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<Integration, AppError> {
        let integration = self.store.set_paused(id, paused)?;
        tracing::info!(
            integration = id,
            paused,
            "integration pulls paused or resumed"
        );
        Ok(integration)
    }

    /// The integration with what `configure` says about it now.
    pub async fn show_integration(&self, id: &str) -> Result<Validated, AppError> {
        let integration = self.store.integration(id)?;
        let connector = self.connector(&integration.connector)?;
        let configured = self
            .configure(Some(id), &connector, &integration.settings)
            .await?;
        Ok(validated(integration, configured))
    }
}

/// A token to revoke and where.
pub(super) struct Revocation {
    url: String,
    app: crate::oauth::OAuthClient,
    token: RevocableToken,
    /// The approved endpoints: the revoke URL is held to them like the token URL.
    rules: EgressRules,
}

impl Revocation {
    /// Revokes; a failure is logged and returned as its reason (the token then lives until it
    /// expires or a person revokes it in the provider's settings).
    pub(super) async fn run(self, app: &App, id: &str) -> Result<(), String> {
        match app
            .tokens
            .oauth()
            .revoke(&self.url, &self.app, &self.token, &self.rules)
            .await
        {
            Ok(()) => {
                tracing::info!(integration = id, "superseded token revoked");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(integration = id, error = %e, "could not revoke a superseded token");
                Err(e.to_string())
            }
        }
    }
}

fn dedup(problems: &mut Vec<FieldIssue>) {
    let mut seen = HashSet::new();
    problems.retain(|p| seen.insert((p.field.clone(), p.message.clone())));
}

fn check_interval(interval: Duration) -> Option<FieldIssue> {
    (interval < Duration::from_secs(1) || interval > Duration::from_secs(7 * 24 * 3600))
        .then(|| issue("interval", "must be between 1s and 7d, e.g. 15m"))
}

fn validated(integration: Integration, configured: Configured) -> Validated {
    Validated {
        integration,
        warnings: configured
            .warnings
            .into_iter()
            .map(|w| FieldIssue {
                field: w.field,
                message: w.message,
            })
            .collect(),
        normalized: configured.normalized,
        streams: configured.streams.into_iter().map(|s| s.name).collect(),
    }
}

/// The contract's settings of stored ones.
pub fn to_wit_settings(s: &IntegrationSettings) -> Settings {
    Settings {
        capability: s.capability.clone(),
        values: s
            .values
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    }
}
