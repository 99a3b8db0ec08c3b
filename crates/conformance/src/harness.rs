//! One component loaded in an engine, configured for the integration under test, with the
//! call context its pulls use (the operator's egress rules, the declared hosts, the token).

use std::sync::Arc;

use sluice_engine::credentials::{CredentialProvider, FixedCredential};
use sluice_engine::manifest::Manifest;
use sluice_engine::policy::{EgressRules, Origin, OutboundPolicy};
use sluice_engine::wit::types::{Configured, ConnectorInfo, HostContext, Session, Settings};
use sluice_engine::{CallContext, ConnectorEngine, EngineError, LoadedConnector};

use crate::ConformanceError;
use crate::integration::Integration;

/// What the operator approves for the run, besides the component's manifest.
#[derive(Debug, Clone, Default)]
pub struct Approvals {
    /// Origins every connector may reach (the loopback emulator of tests).
    pub extra_origins: Vec<Origin>,
    /// Whether plain http to those loopback origins is allowed.
    pub allow_insecure_loopback: bool,
}

/// A loaded, configured component.
pub struct Harness {
    /// The engine that runs it.
    pub engine: Arc<ConnectorEngine>,
    /// The component.
    pub connector: LoadedConnector,
    /// What `describe` declared.
    pub info: ConnectorInfo,
    /// What `configure` answered for the integration's settings.
    pub configured: Configured,
    /// The egress rules of this component on this host.
    pub rules: EgressRules,
    /// The session every call gets.
    pub session: Session,
    /// The context of calls that reach the provider.
    pub ctx: CallContext,
}

impl Harness {
    /// Loads `wasm` under the name `role` (`candidate` or `previous`), asks it to describe itself and configure the integration.
    pub async fn open(
        engine: Arc<ConnectorEngine>,
        role: &str,
        wasm: &[u8],
        integration: &Integration,
        approvals: &Approvals,
        secret: Option<&str>,
    ) -> Result<Self, ConformanceError> {
        let connector = engine.load(role, wasm)?;
        let manifest: Arc<Manifest> = connector.manifest.clone();
        let rules = EgressRules::new(
            manifest,
            approvals.extra_origins.clone().into(),
            approvals.allow_insecure_loopback,
        );
        let quiet = CallContext::default();
        let info = engine.describe(&connector, &quiet).await?;
        let host = host_context(approvals.allow_insecure_loopback);
        let settings = integration.settings();
        let configured = engine
            .configure(&connector, &quiet, &settings, &host)
            .await?
            .map_err(|errors| {
                let named: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                ConformanceError::SettingsRefused(named.join("; "))
            })?;
        let policy = OutboundPolicy::for_integration(
            rules.clone(),
            &configured.allowed_hosts,
            integration.instance_url(),
        )?;
        let credentials = match secret {
            Some(secret) => FixedCredential::for_plan(
                &configured.credentials,
                secret,
                "the provider refused the conformance run's credentials; give fresh ones",
            )
            .map_err(ConformanceError::Credentials)?
            .map(|c| Arc::new(c) as Arc<dyn CredentialProvider>),
            None => None,
        };
        let ctx = CallContext {
            integration: Some("conformance".into()),
            run: None,
            policy: Arc::new(policy),
            credentials,
            stored_keys: None,
        };
        let session = Session {
            settings,
            host,
            grant: integration.grant(),
        };
        Ok(Self {
            engine,
            connector,
            info,
            configured,
            rules,
            session,
            ctx,
        })
    }

    /// `describe`'s name and version, or the engine's label (`name@sha`) for a component that
    /// declares no version (contract 0.1).
    pub fn label(&self) -> String {
        if self.info.version.is_empty() {
            return self.connector.label.clone();
        }
        format!("{} {}", self.info.name, self.info.version)
    }

    /// Calls `configure` with `settings`, and the host's insecure-loopback setting as given.
    pub async fn configure(
        &self,
        settings: &Settings,
        allow_insecure_loopback: bool,
    ) -> Result<sluice_engine::contract::Configured, EngineError> {
        let host = host_context(allow_insecure_loopback);
        self.engine
            .configure(&self.connector, &CallContext::default(), settings, &host)
            .await
    }
}

/// The host facts a call gets.
pub fn host_context(allow_insecure_loopback: bool) -> HostContext {
    HostContext {
        allow_insecure_loopback,
        contract_version: sluice_engine::bindings::v0_2::VERSION.into(),
    }
}

/// `wasm` loaded in an engine of its own whose every request is answered from `cassette`
/// (after the policy's checks, with no network), or why it could not be.
pub fn on_cassette(
    wasm: &[u8],
    limits: &sluice_engine::EngineLimits,
    cassette: sluice_engine::outbound::Cassette,
) -> Result<(Arc<ConnectorEngine>, LoadedConnector), String> {
    let mut limits = limits.clone();
    limits.outbound.tape = sluice_engine::outbound::Tape::Replay(Arc::new(cassette));
    let engine =
        ConnectorEngine::new(limits).map_err(|error| format!("no engine for replay: {error}"))?;
    let connector = engine
        .load("candidate", wasm)
        .map_err(|error| error.to_string())?;
    Ok((engine, connector))
}
