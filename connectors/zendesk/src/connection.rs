//! Test Connection and the account a grant belongs to.
//!
//! The account is the Zendesk instance (its host), which every user and token of it shares;
//! `users/me` proves the credentials work and names who they act as. No secret is read.

use serde_json::Value;
use sluice_connector_sdk::model::{AccountInfo, Failure, FailureKind, Probe, TestReport};

use crate::client::Client;

/// The user the credentials act as: `(id, email)`.
pub fn me(client: &mut Client) -> Result<(u64, String), Failure> {
    let body = client.get_json("/api/v2/users/me.json")?;
    let user = &body["user"];
    // An anonymous caller reads as a user without an id: the credentials were not accepted.
    let id = user["id"].as_u64().ok_or_else(|| {
        Failure::new(
            FailureKind::ReauthorizationRequired,
            "users/me answered no user: the credentials were not accepted; connect again",
        )
    })?;
    Ok((id, user["email"].as_str().unwrap_or_default().to_string()))
}

/// The account of `client`'s instance, labelled with the user the credentials act as.
pub fn account(client: &mut Client, host: &str) -> Result<AccountInfo, Failure> {
    let (_, email) = me(client)?;
    Ok(AccountInfo {
        id: host.to_string(),
        label: format!("{host} ({email})"),
    })
}

/// Probes identity, then read access to tickets and to users.
pub fn test(client: &mut Client, host: &str) -> TestReport {
    let mut report = TestReport {
        org: Some(host.to_string()),
        ..TestReport::default()
    };
    match me(client) {
        Ok((id, email)) => {
            report.user = Some(email.clone());
            report
                .probes
                .push(passed("identity", format!("user {id} ({email})")));
        }
        Err(failure) => {
            report.probes.push(failed("identity", &failure));
            report.failure = Some(failure);
            return report;
        }
    }
    for (name, path) in [
        ("tickets", "/api/v2/tickets.json?page[size]=1"),
        ("users", "/api/v2/users.json?page[size]=1"),
    ] {
        let probe = match client.get_json(path) {
            Ok(body) => passed(name, listed(&body, name)),
            Err(failure) => {
                let probe = failed(name, &failure);
                report.failure.get_or_insert(failure);
                probe
            }
        };
        report.probes.push(probe);
    }
    report.api_usage = client.usage;
    report
}

fn listed(body: &Value, key: &str) -> String {
    let n = body[key].as_array().map_or(0, Vec::len);
    format!("{key} readable ({n} on the first page)")
}

fn passed(name: &str, detail: String) -> Probe {
    Probe {
        name: name.into(),
        failure: None,
        detail,
    }
}

fn failed(name: &str, failure: &Failure) -> Probe {
    Probe {
        name: name.into(),
        failure: Some(failure.clone()),
        detail: failure.message.clone(),
    }
}
