//! The connector's entry points: [`Salesforce`], the [`Connector`] that `lib.rs` exports.

use crate::connection_test::{IDENTITY_FIELD, identity_ids};
use crate::settings::{self, Purpose};
use sluice_connector_sdk::Connector;
use sluice_connector_sdk::http::Host;
use sluice_connector_sdk::model::{
    AccountInfo, Configured, ConnectorInfo, CredentialPlan, Failure, FailureKind, FieldError,
    HostContext, Page, PullRequest, Session, Settings, StreamSchema, TestReport,
};

/// The Salesforce connector.
pub struct Salesforce;

impl Connector for Salesforce {
    /// Capabilities, declared settings and OAuth 2.0.
    fn describe() -> ConnectorInfo {
        settings::declared::describe()
    }

    /// Validates settings and says what the connector needs: hosts, OAuth plan and streams.
    fn configure(
        settings: &Settings,
        context: &HostContext,
    ) -> Result<Configured, Vec<FieldError>> {
        let n = settings::validate(settings, context, Purpose::Configure)?;
        Ok(Configured {
            allowed_hosts: n.allowed_hosts(),
            credentials: CredentialPlan::OAuth2(n.oauth_plan()),
            streams: n.streams(),
            warnings: n.warnings.clone(),
            normalized: n.normalized_pairs(),
        })
    }

    /// Test Connection: identity, limits and one describe per object.
    fn test(host: &mut dyn Host, session: &Session) -> TestReport {
        crate::connection_test::run(host, session)
    }

    /// The org of the grant, from its identity URL.
    fn account(_: &mut dyn Host, session: &Session) -> Result<AccountInfo, Failure> {
        let (org, _user) = session
            .grant
            .field(IDENTITY_FIELD)
            .and_then(identity_ids)
            .ok_or_else(|| {
                Failure::new(
                    FailureKind::Misconfigured,
                    "the token response named no organisation: its identity URL (`id`) is \
                     missing or not `…/id/{orgId}/{userId}`",
                )
            })?;
        // The 15-character id is the org's; the 18-character form adds a checksum suffix.
        Ok(AccountInfo {
            id: org[..15].to_string(),
            label: org,
        })
    }

    /// Each stream's schema from its describe.
    fn discover(host: &mut dyn Host, session: &Session) -> Result<Vec<StreamSchema>, Failure> {
        crate::discover::discover(host, session)
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
