//! Salesforce-shaped fixtures for unit tests on the SDK's scripted [`FakeHost`]: a response
//! with the headers every Salesforce answer carries, and a session on a My Domain org.

use sluice_connector_sdk::http::Response;
use sluice_connector_sdk::model::{
    Capability, Environment, Grant, HostContext, PullBy, Session, Settings,
};

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

pub fn session(cap: Capability, pull_by: Option<PullBy>, extra: &[(&str, &str)]) -> Session {
    Session {
        settings: Settings {
            capability: cap,
            environment: Environment::Production,
            pull_by,
            domain: Some("https://acme.my.salesforce.com".into()),
            extra: extra
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        },
        host: HostContext {
            allow_insecure_loopback: false,
            contract_version: "0.1.0".into(),
        },
        grant: Grant {
            instance_url: "https://acme.my.salesforce.com".into(),
            identity_url: Some(
                "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA".into(),
            ),
            issued_at_ms: None,
            scopes: vec!["api".into(), "refresh_token".into()],
        },
    }
}
