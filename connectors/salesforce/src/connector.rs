//! The connector's four entry points: [`Salesforce`], the [`Connector`] that `lib.rs` exports.

use crate::settings::{self, Purpose};
use sluice_connector_sdk::Connector;
use sluice_connector_sdk::http::Host;
use sluice_connector_sdk::model::{
    Configured, Failure, FieldError, HostContext, OAuthPlan, Page, PullRequest, Session, Settings,
    TestReport,
};

/// The Salesforce connector.
pub struct Salesforce;

impl Connector for Salesforce {
    /// Validates settings and says what the connector needs: hosts, OAuth plan and streams.
    fn configure(
        settings: &Settings,
        context: &HostContext,
    ) -> Result<Configured, Vec<FieldError>> {
        let n = settings::validate(settings, context, Purpose::Configure)?;
        Ok(Configured {
            allowed_hosts: n.allowed_hosts(),
            oauth: n.oauth_plan(),
            streams: n.streams(),
            warnings: n.warnings.clone(),
            normalized: n.normalized_pairs(),
        })
    }

    /// Returns the OAuth plan for these settings (My Domain endpoints when a domain is given).
    fn authorize(settings: &Settings, context: &HostContext) -> Result<OAuthPlan, Vec<FieldError>> {
        let n = settings::validate(settings, context, Purpose::Authorize)?;
        Ok(n.oauth_plan())
    }

    /// Test Connection: identity, limits and one describe per object.
    fn test(host: &mut dyn Host, session: &Session) -> TestReport {
        crate::connection_test::run(host, session)
    }

    /// Reads the next bounded page of one stream.
    fn pull(
        host: &mut dyn Host,
        session: &Session,
        request: &PullRequest,
    ) -> Result<Page, Failure> {
        crate::pull::pull(host, session, request)
    }
}
