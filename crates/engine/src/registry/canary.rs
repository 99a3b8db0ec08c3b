//! The canary: a new version runs `configure`, `test` and one bounded `pull` page for every
//! integration of its connector, in scratch stores and without credentials, before it is published.

use super::*;

/// One integration a canary exercises.
#[derive(Clone)]
pub struct CanaryTarget {
    /// The integration's id.
    pub integration: String,
    /// Its settings.
    pub settings: Settings,
    /// The host facts its calls get.
    pub host: HostContext,
    /// Its grant, where it is connected; then `test` and one `pull` page run too, without
    /// its credentials.
    pub session: Option<CanarySession>,
}

/// The connection of a [`CanaryTarget`]: the non-secret grant only. The canary is never given
/// the integration's credentials.
#[derive(Clone)]
pub struct CanarySession {
    /// The non-secret grant.
    pub grant: Grant,
    /// The host's extra approved origins (the version's manifest supplies the rest).
    pub extra_origins: Arc<[Origin]>,
}

/// The integrations that use a connector. The runtime implements it over its integrations table.
pub trait CanaryTargets: Send + Sync + 'static {
    /// The integrations that use connector `name`.
    fn targets(&self, name: &str) -> BoxFuture<'_, Vec<CanaryTarget>>;
}

/// A [`CanaryTargets`] in memory.
#[derive(Default)]
pub struct StaticCanaryTargets {
    targets: Mutex<HashMap<String, Vec<CanaryTarget>>>,
}

impl StaticCanaryTargets {
    /// Adds an integration of connector `name`.
    pub fn add(&self, name: &str, target: CanaryTarget) {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .push(target);
    }
}

impl CanaryTargets for StaticCanaryTargets {
    fn targets(&self, name: &str) -> BoxFuture<'_, Vec<CanaryTarget>> {
        let targets = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default();
        Box::pin(async move { targets })
    }
}

/// How many integrations each canary step ran for.
#[derive(Debug, Default)]
pub(super) struct CanaryCounts {
    pub(super) configured: usize,
    pub(super) tested: usize,
    pub(super) pulled: usize,
}

/// Records the canary's `pull` asks for: enough to run the connector's read path.
pub const CANARY_PULL_RECORDS: u32 = 1;

/// Whether a connector failure in the canary is the version's fault. Without credentials a
/// good version is expected to fail as unauthorized; an unreachable or throttling provider
/// says nothing about it either.
pub(super) fn blames_the_version(kind: FailureKind) -> bool {
    match kind {
        FailureKind::ReauthorizationRequired
        | FailureKind::PermissionDenied
        | FailureKind::Unreachable
        | FailureKind::RateLimited => false,
        FailureKind::Misconfigured | FailureKind::Unknown => true,
    }
}

impl ConnectorRegistry {
    /// Runs, for every integration of `name`: `configure`, and for connected ones `test` and
    /// one bounded `pull` page, all without credentials (see the module doc).
    pub(super) async fn run_canary(
        &self,
        name: &str,
        connector: &LoadedConnector,
        wasm: &[u8],
    ) -> Result<CanaryCounts, RegistryError> {
        let targets = self.canary.targets(name).await;
        let mut counts = CanaryCounts::default();
        for target in targets {
            let fail = |stage, reason: String| {
                rejected(name, wasm, stage, Some(target.integration.clone()), reason)
            };
            let ctx = CallContext {
                integration: Some(target.integration.clone()),
                run: Some("canary".into()),
                policy: Arc::new(OutboundPolicy::deny_all()),
                credentials: None,
                stored_keys: None,
            };
            let configured = match self
                .engine
                .configure(connector, &ctx, &target.settings, &target.host)
                .await
            {
                Ok(Ok(configured)) => configured,
                Ok(Err(errors)) => {
                    let reason = errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(fail(
                        Stage::CanaryConfigure,
                        format!("the integration's settings are refused: {reason}"),
                    ));
                }
                Err(e) => return Err(fail(Stage::CanaryConfigure, e.to_string())),
            };
            counts.configured += 1;
            let Some(session) = &target.session else {
                continue;
            };
            // The policy the integration's calls get, and no credentials: what leaves carries
            // no token.
            let rules = EgressRules::new(
                connector.manifest.clone(),
                session.extra_origins.clone(),
                target.host.allow_insecure_loopback,
            );
            let policy = OutboundPolicy::for_integration(
                rules,
                &configured.allowed_hosts,
                session.grant.instance_url.as_deref(),
            )
            .map_err(|e| fail(Stage::CanaryConfigure, e.to_string()))?;
            let ctx = CallContext {
                policy: Arc::new(policy),
                credentials: None,
                ..ctx
            };
            let session = Session {
                settings: target.settings.clone(),
                host: target.host.clone(),
                grant: session.grant.clone(),
            };
            match self.engine.test(connector, &ctx, &session).await {
                Ok(report) => {
                    if let Some(failure) = report.failure
                        && blames_the_version(failure.kind)
                    {
                        return Err(fail(
                            Stage::CanaryTest,
                            format!("{:?}: {}", failure.kind, failure.message),
                        ));
                    }
                }
                Err(e) => return Err(fail(Stage::CanaryTest, e.to_string())),
            }
            counts.tested += 1;
            let Some(stream) = configured.streams.first() else {
                continue;
            };
            let request = PullRequest {
                stream: stream.name.clone(),
                checkpoint: None,
                max_records: CANARY_PULL_RECORDS,
            };
            match self.engine.pull(connector, &ctx, &session, &request).await {
                Ok(Ok(page)) if page.rows.len() > CANARY_PULL_RECORDS as usize => {
                    return Err(fail(
                        Stage::CanaryPull,
                        format!(
                            "a page of at most {CANARY_PULL_RECORDS} records was asked for and \
                             {} came back",
                            page.rows.len()
                        ),
                    ));
                }
                Ok(Ok(_)) => {}
                Ok(Err(failure)) if blames_the_version(failure.kind) => {
                    return Err(fail(
                        Stage::CanaryPull,
                        format!("{:?}: {}", failure.kind, failure.message),
                    ));
                }
                Ok(Err(failure)) => {
                    tracing::debug!(connector = name, integration = %target.integration, kind = ?failure.kind, "canary pull failed as expected without credentials");
                }
                Err(e) => return Err(fail(Stage::CanaryPull, e.to_string())),
            }
            counts.pulled += 1;
        }
        Ok(counts)
    }
}
