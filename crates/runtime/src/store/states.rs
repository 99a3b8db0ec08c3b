//! The states the store keeps as text, each with one mapping between its variants and the
//! text stored and shown, so that no decision compares strings.

use super::StoreError;

/// Defines a state enum stored as text: `as_str` gives the stored text, `parse` reads it back
/// (anything else is a corrupt value), and serde and SQLite use the same text.
macro_rules! stored_as_text {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] #[schema(rename = $text)] $variant,)+
        }

        impl $name {
            /// The name as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Reads the stored name back.
            pub fn parse(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(StoreError::Corrupt(format!("{} {other:?}", $what))),
                }
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                Self::parse(value.as_str()?)
                    .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_as_text! {
    /// The lifecycle state of an integration.
    pub enum IntegrationState ("integration state") {
        /// Created; no credentials yet (`sluice connect` gives it some).
        PendingAuthorization = "pending-authorization",
        /// Has credentials; pulls run.
        Active = "active",
        /// The refresh token is dead; pulls stop until a person re-connects.
        NeedsReauthorization = "needs-reauthorization",
    }
}

stored_as_text! {
    /// Where a run stands.
    pub enum RunState ("run state") {
        /// Going on (or its process died; see `Store::close_orphan_runs`).
        Running = "running",
        /// Every stream completed or was skipped on purpose.
        Succeeded = "succeeded",
        /// Some stream failed.
        Failed = "failed",
        /// Stopped by a shutdown or a crash; the next run resumes from the checkpoints.
        Interrupted = "interrupted",
        /// Stopped because the API budget is spent.
        RateLimited = "rate-limited",
        /// Stopped because the credentials are dead.
        NeedsReauthorization = "needs-reauthorization",
    }
}

stored_as_text! {
    /// How a stream stood after its last committed page.
    pub enum CheckpointState ("checkpoint state") {
        /// More pages follow.
        Partial = "partial",
        /// Caught up as of the checkpoint.
        Complete = "complete",
        /// Not read, for a reason the run records; the checkpoint did not advance.
        Skipped = "skipped",
    }
}

stored_as_text! {
    /// What the last check of an integration's refresh token found.
    pub enum TokenHealthState ("token health") {
        /// The refresh worked.
        Ok = "ok",
        /// The provider refused the refresh token: a person must connect again.
        Dead = "dead",
        /// Not checked since the token was obtained.
        Unchecked = "unchecked",
        /// The provider could not be reached.
        Unreachable = "unreachable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_its_own_text() {
        for s in [
            RunState::Running,
            RunState::RateLimited,
            RunState::NeedsReauthorization,
        ] {
            assert_eq!(RunState::parse(s.as_str()).unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(
            CheckpointState::parse("skipped").unwrap(),
            CheckpointState::Skipped
        );
        assert!(matches!(
            TokenHealthState::parse("fine"),
            Err(StoreError::Corrupt(m)) if m == "token health \"fine\""
        ));
    }
}

stored_as_text! {
    /// A kind of credential a person enters once and the host keeps sealed.
    pub enum EnteredKind ("entered credential kind") {
        /// An API key or token, sent in the header the connector's plan names.
        ApiKey = "api-key",
        /// A user name and password, sent as HTTP basic authentication.
        Basic = "basic",
    }
}

stored_as_text! {
    /// The kind of credentials an integration holds, as `integration show` and list say.
    pub enum CredentialKind ("credential kind") {
        /// OAuth 2.0, authorization code (with PKCE).
        Oauth2AuthorizationCode = "oauth2-authorization-code",
        /// OAuth 2.0, client credentials.
        Oauth2ClientCredentials = "oauth2-client-credentials",
        /// An API key.
        ApiKey = "api-key",
        /// HTTP basic.
        Basic = "basic",
    }
}

stored_as_text! {
    /// What a webhook event reports.
    pub enum WebhookEventType ("webhook event type") {
        /// An integration got working credentials.
        IntegrationConnected = "integration.connected",
        /// An integration's credentials died: a person must connect it again.
        IntegrationNeedsReauthorization = "integration.needs_reauthorization",
        /// A run succeeded.
        SyncCompleted = "sync.completed",
        /// A run ended any other way (failed, rate-limited, interrupted, lost authorization).
        SyncFailed = "sync.failed",
        /// A connector version became the active one.
        ConnectorVersionActivated = "connector.version_activated",
    }
}

stored_as_text! {
    /// Where one event's delivery to one endpoint stands.
    pub enum DeliveryState ("webhook delivery state") {
        /// Not delivered yet; tried again at its next attempt time.
        Pending = "pending",
        /// The endpoint answered 2xx.
        Delivered = "delivered",
        /// Given up after the last attempt; `sluice webhooks retry` sends it again.
        Failed = "failed",
    }
}
