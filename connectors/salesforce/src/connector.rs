//! The connector's four entry points, called by `component.rs` (wasm) or natively by the host.

use crate::http::Env;
use crate::model::{
    Configured, Failure, FieldError, HostContext, OAuthPlan, Page, PullRequest, Session, Settings,
    TestReport,
};
use crate::settings::{self, Purpose};

/// Validates settings and says what the connector needs: hosts, OAuth plan and streams.
pub fn configure(settings: &Settings, host: &HostContext) -> Result<Configured, Vec<FieldError>> {
    let n = settings::validate(settings, host, Purpose::Configure)?;
    Ok(Configured {
        allowed_hosts: n.allowed_hosts(),
        oauth: n.oauth_plan(),
        streams: n.streams(),
        warnings: n.warnings.clone(),
        normalized: n.normalized_pairs(),
    })
}

/// Returns the OAuth plan for these settings (My Domain endpoints when a domain is given).
pub fn authorize(settings: &Settings, host: &HostContext) -> Result<OAuthPlan, Vec<FieldError>> {
    let n = settings::validate(settings, host, Purpose::Authorize)?;
    Ok(n.oauth_plan())
}

/// Test Connection: identity, limits and one describe per object.
pub fn test(env: &mut dyn Env, session: &Session) -> TestReport {
    crate::connection_test::run(env, session)
}

/// Reads the next bounded page of one stream.
pub fn pull(env: &mut dyn Env, session: &Session, request: &PullRequest) -> Result<Page, Failure> {
    crate::pull::pull(env, session, request)
}
