//! The connector's entry points: [`Zendesk`], the [`Connector`] that `lib.rs` exports.

use sluice_connector_sdk::Connector;
use sluice_connector_sdk::http::Host;
use sluice_connector_sdk::model::{
    AccountInfo, Configured, ConnectorInfo, Failure, FailureKind, FieldError, HostContext, Page,
    PullRequest, Session, Settings, StreamSchema, TestReport,
};

use crate::client::Client;
use crate::export::Kind;
use crate::settings::{self, Valid};
use crate::streams::{self, TICKET_COMMENTS, TICKETS, USERS};

/// The Zendesk Support connector.
pub struct Zendesk;

impl Connector for Zendesk {
    /// Capability, declared settings and credential kinds.
    fn describe() -> ConnectorInfo {
        settings::describe()
    }

    /// Validates settings; the one host, the credential plan and the three streams.
    fn configure(
        settings: &Settings,
        context: &HostContext,
    ) -> Result<Configured, Vec<FieldError>> {
        let valid = settings::validate(settings, context)?;
        Ok(Configured {
            allowed_hosts: vec![valid.account.host()],
            credentials: valid.credential_plan(),
            streams: streams::infos(),
            warnings: Vec::new(),
            normalized: valid.normalized(),
        })
    }

    /// Test Connection: who the credentials act as, and read access to tickets and users.
    fn test(host: &mut dyn Host, session: &Session) -> TestReport {
        match valid(session) {
            Ok(valid) => {
                let mut client = Client::new(host, valid.account.base_url());
                crate::connection::test(&mut client, &valid.account.host())
            }
            Err(failure) => TestReport {
                failure: Some(failure),
                ..TestReport::default()
            },
        }
    }

    /// The Zendesk instance the credentials belong to.
    fn account(host: &mut dyn Host, session: &Session) -> Result<AccountInfo, Failure> {
        let valid = valid(session)?;
        let mut client = Client::new(host, valid.account.base_url());
        crate::connection::account(&mut client, &valid.account.host())
    }

    /// The three streams' schemas; no call is needed.
    fn discover(_: &mut dyn Host, session: &Session) -> Result<Vec<StreamSchema>, Failure> {
        valid(session)?;
        Ok(streams::schemas())
    }

    /// The next page of one stream.
    fn pull(
        host: &mut dyn Host,
        session: &Session,
        request: &PullRequest,
    ) -> Result<Page, Failure> {
        let valid = valid(session)?;
        let now_s = host.now_ms().map(|ms| ms.div_euclid(1000));
        let mut client = Client::new(host, valid.account.base_url());
        let checkpoint = request.checkpoint.as_deref();
        let per_page = valid.page_size.min(request.max_records.max(1));
        let start = valid.start_time;
        match request.stream.as_str() {
            TICKETS => crate::export::pull(
                &mut client,
                Kind::Tickets,
                checkpoint,
                start,
                per_page,
                now_s,
            ),
            USERS => {
                crate::export::pull(&mut client, Kind::Users, checkpoint, start, per_page, now_s)
            }
            TICKET_COMMENTS => {
                crate::comments::pull(&mut client, checkpoint, start, request.max_records, now_s)
            }
            other => Err(Failure::new(
                FailureKind::Misconfigured,
                format!(
                    "stream `{other}` is not one of this connector's: {TICKETS}, {TICKET_COMMENTS}, {USERS}"
                ),
            )),
        }
    }
}

/// The session's settings, validated again (the host configures before every run, but a
/// call must not trust that).
fn valid(session: &Session) -> Result<Valid, Failure> {
    settings::validate(&session.settings, &session.host).map_err(|errors| {
        let list: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        Failure::new(FailureKind::Misconfigured, list.join("; "))
    })
}
