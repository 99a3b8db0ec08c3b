//! Salesforce-shaped fixtures for unit tests on the SDK's scripted [`FakeHost`]: a response
//! with the headers every Salesforce answer carries, and a session on a My Domain org.

use crate::settings::{Cap, PullBy};
use sluice_connector_sdk::http::Response;
use sluice_connector_sdk::model::{Grant, HostContext, Session, Settings};

pub use sluice_connector_sdk::fake::FakeHost;

pub const DATE: &str = "Tue, 02 Jan 2024 03:10:00 GMT";

pub fn resp(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: vec![
            ("date".into(), DATE.into()),
            ("sforce-limit-info".into(), "api-usage=10/1000".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

pub fn session(cap: Cap, pull_by: Option<PullBy>, extra: &[(&str, &str)]) -> Session {
    let mut settings = Settings::new(cap.as_str())
        .with("environment", "production")
        .with("domain", "https://acme.my.salesforce.com");
    if let Some(p) = pull_by {
        settings = settings.with(
            "pull-by",
            match p {
                PullBy::CreatedTime => "created",
                PullBy::UpdatedTime => "updated",
            },
        );
    }
    for (name, value) in extra {
        settings = settings.with(name, value);
    }
    Session {
        settings,
        host: HostContext {
            allow_insecure_loopback: false,
            contract_version: sluice_connector_sdk::CONTRACT_VERSION.into(),
        },
        grant: Grant {
            instance_url: Some("https://acme.my.salesforce.com".into()),
            fields: vec![(
                "id".into(),
                "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA".into(),
            )],
            issued_at_ms: None,
            scopes: vec!["api".into(), "refresh_token".into()],
        },
    }
}
