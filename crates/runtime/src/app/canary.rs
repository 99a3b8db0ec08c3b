//! The canary's targets: every integration of a connector, with its non-secret grant.

use super::*;

/// [`CanaryTargets`] over the integrations table: every integration of a connector, with its
/// non-secret grant when it has tokens and is active (never its credentials).
pub(super) struct StoreCanary {
    pub(super) store: Arc<Store>,
    pub(super) allow_insecure_loopback: bool,
    pub(super) extra_origins: Arc<[Origin]>,
}

impl CanaryTargets for StoreCanary {
    fn targets(&self, name: &str) -> crate::engine::credentials::BoxFuture<'_, Vec<CanaryTarget>> {
        let name = name.to_string();
        Box::pin(async move {
            let Ok(integrations) = self.store.integrations() else {
                return Vec::new();
            };
            let host = HostContext {
                allow_insecure_loopback: self.allow_insecure_loopback,
                contract_version: crate::engine::wit::VERSION.into(),
            };
            integrations
                .into_iter()
                .filter(|i| i.connector == name)
                .map(|i| {
                    let settings = to_wit_settings(&i.settings);
                    let session = match (i.state, self.store.tokens(&i.id)) {
                        (IntegrationState::Active, Ok(Some(tokens))) => Some(CanarySession {
                            grant: wit_grant(&tokens),
                            extra_origins: self.extra_origins.clone(),
                        }),
                        _ => None,
                    };
                    CanaryTarget {
                        integration: i.id,
                        settings,
                        host: host.clone(),
                        session,
                    }
                })
                .collect()
        })
    }
}
