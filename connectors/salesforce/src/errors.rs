//! Salesforce error bodies and their classification into [`FailureKind`]s.

use sluice_connector_sdk::http::{Response, TransportError};
use sluice_connector_sdk::model::{Failure, FailureKind};

/// An unsuccessful call: an HTTP error, or a transport or budget failure already classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfError {
    /// The HTTP status (0 when there was no response).
    pub status: u16,
    /// Salesforce's `errorCode`, or OAuth `error`, upper-cased; empty when unknown.
    pub code: String,
    /// The message Salesforce gave (or a summary of a non-JSON body).
    pub message: String,
    /// A classification decided before any response was read.
    pub preset: Option<Failure>,
}

impl SfError {
    /// Whether the error carries `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }

    /// A successful response whose body could not be read.
    pub fn unreadable(status: u16, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status,
            code: "UNREADABLE_RESPONSE".into(),
            preset: Some(Failure::new(
                FailureKind::Unknown,
                format!("Salesforce sent a response the connector could not read: {message}"),
            )),
            message,
        }
    }
}

/// Reads an error response: JSON array, OAuth object, or anything else (HTML 5xx pages).
pub fn parse(resp: &Response) -> SfError {
    let (code, message) = parse_body(&resp.body);
    SfError {
        status: resp.status,
        code,
        message,
        preset: None,
    }
}

fn parse_body(body: &[u8]) -> (String, String) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let first = match &v {
            serde_json::Value::Array(a) => a.first().cloned(),
            o @ serde_json::Value::Object(_) => Some(o.clone()),
            _ => None,
        };
        if let Some(o) = first {
            let s = |k: &str| o.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            if !s("errorCode").is_empty() {
                return (s("errorCode"), s("message"));
            }
            if !s("error").is_empty() {
                return (s("error").to_ascii_uppercase(), s("error_description"));
            }
        }
    }
    // Not JSON: keep a short, tag-free excerpt so the message stays readable.
    let text = String::from_utf8_lossy(body);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                plain.push(' ');
            }
            _ if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let plain = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    (String::new(), plain.chars().take(200).collect())
}

/// Classifies a transport failure.
pub fn transport(e: &TransportError) -> SfError {
    let kind = match e {
        TransportError::Unreachable { .. } | TransportError::Timeout(_) => FailureKind::Unreachable,
        TransportError::Denied(_) => FailureKind::Misconfigured,
        TransportError::Other(_) | TransportError::ResponseTooLarge(_) => FailureKind::Unknown,
    };
    let message = match e {
        TransportError::Denied(t) => format!(
            "the host refused the request to {t}: the org's instance does not match the \
             configured domain; check the domain setting and authorize again"
        ),
        other => format!("{other}; check the domain and the network, then try again"),
    };
    SfError {
        status: 0,
        code: String::new(),
        message: message.clone(),
        preset: Some(Failure::new(kind, message)),
    }
}

/// Classifies an error for the platform; `object` names what was being read, if anything.
pub fn classify(e: &SfError, object: Option<&str>) -> Failure {
    if let Some(f) = &e.preset {
        return f.clone();
    }
    let what = object.map(|o| format!(" {o}")).unwrap_or_default();
    let detail = if e.code.is_empty() {
        format!("HTTP {}: {}", e.status, e.message)
    } else {
        format!("{}: {}", e.code, e.message)
    };
    let code = e.code.as_str();
    let (kind, message) = match code {
        "INVALID_GRANT" | "INACTIVE_USER" | "INACTIVE_ORG" | "INVALID_SESSION_ID" => (
            FailureKind::ReauthorizationRequired,
            format!(
                "Salesforce rejected the credentials ({detail}); authorize the integration again"
            ),
        ),
        "REQUEST_LIMIT_EXCEEDED" | "RATE_LIMIT_EXCEEDED" => {
            let daily = e.message.contains("TotalRequests");
            return Failure {
                kind: FailureKind::RateLimited,
                message: format!(
                    "Salesforce's API limit is reached ({detail}); the pull resumes later"
                ),
                retry_after_s: Some(if daily {
                    crate::limits::BUDGET_RETRY_S
                } else {
                    60
                }),
            };
        }
        "API_DISABLED_FOR_ORG" | "API_CURRENTLY_DISABLED" => (
            FailureKind::PermissionDenied,
            format!(
                "the Salesforce API is not available{} ({detail}): the org's edition must include \
                 API access and the user needs the API Enabled permission",
                object.map(|o| format!(" for {o}")).unwrap_or_default()
            ),
        ),
        "INSUFFICIENT_ACCESS"
        | "INSUFFICIENT_ACCESS_OR_READONLY"
        | "INSUFFICIENT_PRIVILEGES"
        | "TXN_SECURITY_METERING_ERROR"
        | "INVALID_TYPE"
        | "NOT_FOUND"
        | "INVALIDENTITY"
            if object.is_some() =>
        {
            (
                FailureKind::PermissionDenied,
                format!(
                    "the user cannot read{what} ({detail}): grant Read access to{what} in the \
                     user's profile or a permission set"
                ),
            )
        }
        "INSUFFICIENT_ACCESS" | "INSUFFICIENT_ACCESS_OR_READONLY" | "INSUFFICIENT_PRIVILEGES" => (
            FailureKind::PermissionDenied,
            format!("the user lacks a permission ({detail})"),
        ),
        _ if e.status == 401 => (
            FailureKind::ReauthorizationRequired,
            format!(
                "Salesforce rejected the credentials after a refresh ({detail}); authorize again"
            ),
        ),
        _ if e.status == 403 => (
            FailureKind::PermissionDenied,
            format!("Salesforce refused the request for{what} ({detail})"),
        ),
        _ if e.status == 410 => (
            FailureKind::Misconfigured,
            format!("the API version is retired ({detail}); set a newer api-version"),
        ),
        _ if e.status == 429 || e.status == 420 => {
            return Failure {
                kind: FailureKind::RateLimited,
                message: format!("Salesforce is throttling requests ({detail})"),
                retry_after_s: Some(60),
            };
        }
        _ => (
            FailureKind::Unknown,
            format!(
                "Salesforce returned an error{}: {detail}",
                object.map(|o| format!(" reading {o}")).unwrap_or_default()
            ),
        ),
    };
    Failure::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    fn kind(status: u16, body: &str, object: Option<&str>) -> (FailureKind, String) {
        let f = classify(&parse(&resp(status, body)), object);
        (f.kind, f.message)
    }

    #[test]
    fn classification_table() {
        use FailureKind::*;
        let cases: &[(u16, &str, Option<&str>, FailureKind)] = &[
            (
                401,
                r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
                None,
                ReauthorizationRequired,
            ),
            (
                400,
                r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
                None,
                ReauthorizationRequired,
            ),
            (401, "", None, ReauthorizationRequired),
            (
                403,
                r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
                None,
                RateLimited,
            ),
            (
                403,
                r#"[{"message":"The REST API is not enabled for this Organization.","errorCode":"API_DISABLED_FOR_ORG"}]"#,
                None,
                PermissionDenied,
            ),
            (
                404,
                r#"[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]"#,
                Some("EmailMessage"),
                PermissionDenied,
            ),
            (
                400,
                r#"[{"errorCode":"MALFORMED_QUERY","message":"unexpected token"}]"#,
                Some("Case"),
                Unknown,
            ),
            (
                503,
                "<html><body><h1>We are down for maintenance</h1></body></html>",
                None,
                Unknown,
            ),
        ];
        for (status, body, obj, want) in cases {
            let (k, msg) = kind(*status, body, *obj);
            assert_eq!(k, *want, "{status} {body}: {msg}");
            if let Some(o) = obj {
                assert!(msg.contains(o), "{msg}");
            }
        }
        let (_, msg) = kind(
            503,
            "<html><body><h1>We are down for maintenance</h1></body></html>",
            None,
        );
        assert_eq!(
            msg,
            "Salesforce returned an error: HTTP 503: We are down for maintenance"
        );
        let f = classify(
            &parse(&resp(
                403,
                r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
            )),
            None,
        );
        assert_eq!(f.retry_after_s, Some(3600));
    }

    #[test]
    fn transport_failures() {
        let e = transport(&TransportError::Unreachable {
            target: "acme.my.salesforce.com".into(),
            detail: "dns".into(),
        });
        assert_eq!(classify(&e, Some("Case")).kind, FailureKind::Unreachable);
        assert_eq!(
            classify(&transport(&TransportError::Denied("x".into())), None).kind,
            FailureKind::Misconfigured
        );
    }
}
