//! OAuth 2.0 against the connector's plan, with the `oauth2` crate.
//!
//! The connector's `configure`/`authorize` says where the endpoints are and what to ask for;
//! this module runs the grants: authorization code with PKCE S256 (and a `state` the caller
//! stores server-side, single-use, tied to the integration), refresh, and client credentials.
//! What a token response carries beyond RFC 6749's fields is kept as non-secret provider
//! fields ([`ProviderFields`]); [`crate::grant`] says which of them the contract passes on.
//!
//! Every endpoint (authorize, token, revoke) and every `instance_url` a token response names
//! (a provider may name none)
//! must be an origin the operator approved for the connector (see
//! [`crate::engine::policy`]): the connector's plan cannot send the host's client secret, a
//! code, a PKCE verifier or a refresh token anywhere else. Token requests resolve the name with
//! the same range checks as guest traffic and connect to the checked addresses only. Redirects
//! are never followed: a token endpoint that redirects would otherwise receive the refresh
//! token at a second address.

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::manifest::Manifest;
use crate::engine::policy::{EgressRules, Origin, resolve_checked};
use crate::engine::roots::ExtraRoots;
use crate::engine::wit::types::OauthPlan;
use crate::secrets::Secret;

/// A token response's fields beyond RFC 6749's, as the provider sent them.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraFields {
    #[serde(flatten)]
    fields: BTreeMap<String, serde_json::Value>,
}

impl ExtraTokenFields for ExtraFields {}

/// A provider's own token-response fields (Salesforce's `instance_url`, `id`, `issued_at`, …),
/// by name, as text. Only scalar fields whose names do not suggest a credential are kept:
/// these pairs are stored in clear and shown to the connector, while credentials stay sealed.
pub type ProviderFields = BTreeMap<String, String>;

/// Name parts that mark a field as a credential or a proof of one (`id_token`, `signature`).
const SECRET_NAME_PARTS: [&str; 5] = ["token", "secret", "password", "signature", "key"];

fn provider_fields(extra: &ExtraFields) -> ProviderFields {
    extra
        .fields
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
        })
        .filter_map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((name.clone(), text))
        })
        .collect()
}

type ProviderTokenResponse = StandardTokenResponse<ExtraFields, BasicTokenType>;
type TokenClient<HasAuth> = Client<
    BasicErrorResponse,
    ProviderTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuth,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Why an OAuth step failed. Never carries a token or secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// The provider refused, with its own error code and text (`invalid_grant`,
    /// `access_denied`, `redirect_uri_mismatch`, ...).
    #[error("{error}: {description}")]
    Provider {
        /// The provider's `error`.
        error: String,
        /// The provider's `error_description` (or a default).
        description: String,
    },
    /// The token endpoint could not be reached.
    #[error("token endpoint unreachable: {0}")]
    Transport(String),
    /// The provider answered something that is not a token response.
    #[error("unexpected token response: {0}")]
    BadResponse(String),
    /// An endpoint is not acceptable (not https, or not a URL).
    #[error("refusing OAuth endpoint {url}: {reason}")]
    Endpoint {
        /// The endpoint.
        url: String,
        /// Why.
        reason: String,
    },
    /// No client id is configured for the integration or the host.
    #[error(
        "no OAuth client id: pass --client-id to `integration add`/`edit`, or set \
         SLUICE_CLIENT_ID (and SLUICE_CLIENT_SECRET) for the host"
    )]
    NoClient,
}

impl OAuthError {
    /// Whether the credentials themselves are dead (`invalid_grant`): re-authorize, don't
    /// retry.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::Provider { error, .. } if error == "invalid_grant")
    }

    /// Whether the grant is dead for good and only a person can fix it: `invalid_grant`,
    /// a deactivated user or org (`inactive_user`, `inactive_org`), or an unknown or wrong
    /// client. Retrying cannot help.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Provider { error, .. } if matches!(
            error.as_str(),
            "invalid_grant" | "inactive_user" | "inactive_org" | "invalid_client_id" | "invalid_client"
        ))
    }

    /// Whether the provider rejected the request for good (any error response), as opposed
    /// to a transient failure to reach it.
    pub fn is_provider_refusal(&self) -> bool {
        matches!(self, Self::Provider { .. })
    }
}

/// The OAuth client (connected app) an integration authorizes with.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// The client id (consumer key).
    pub client_id: String,
    /// The client secret (consumer secret), if the app has one.
    pub client_secret: Option<Secret>,
}

/// What a successful grant returned.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The access token.
    pub access: Secret,
    /// The refresh token: on code grants, and on refreshes when rotation is on.
    pub refresh: Option<Secret>,
    /// The provider's own non-secret fields.
    pub fields: ProviderFields,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// A token to revoke.
#[derive(Debug, Clone)]
pub enum RevocableToken {
    /// A refresh token: revoking it ends its sessions too.
    Refresh(Secret),
    /// An access token (grants without a refresh token).
    Access(Secret),
}

/// A started authorization: the URL for the browser and what the callback will need.
#[derive(Debug)]
pub struct AuthorizationStart {
    /// Where to send the user.
    pub url: url::Url,
    /// The `state` value (store it server-side, tied to the integration).
    pub state: String,
    /// The PKCE verifier (store it sealed under the state).
    pub verifier: Secret,
}

/// How long a token endpoint may take to resolve and answer.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs OAuth grants under the host's egress settings.
#[derive(Debug, Clone)]
pub struct OAuth {
    allow_insecure_loopback: bool,
    extra_origins: Arc<[Origin]>,
    extra_roots: ExtraRoots,
}

impl OAuth {
    /// A client for a host with these insecure-loopback and extra-origin settings.
    pub fn new(
        allow_insecure_loopback: bool,
        extra_origins: Arc<[Origin]>,
    ) -> Result<Self, OAuthError> {
        Ok(Self {
            allow_insecure_loopback,
            extra_origins,
            extra_roots: ExtraRoots::default(),
        })
    }

    /// Also trusts `roots` (the operator's, as the connectors' outbound client does).
    pub fn with_extra_roots(mut self, roots: ExtraRoots) -> Self {
        self.extra_roots = roots;
        self
    }

    /// The rules in force for a connector whose approved manifest is `manifest`.
    pub fn rules(&self, manifest: Arc<Manifest>) -> EgressRules {
        EgressRules::new(
            manifest,
            self.extra_origins.clone(),
            self.allow_insecure_loopback,
        )
    }

    /// Checks that `url` is an approved endpoint under `rules`.
    pub fn check_endpoint(&self, url: &str, rules: &EgressRules) -> Result<url::Url, OAuthError> {
        let refuse = |reason: String| OAuthError::Endpoint {
            url: url.to_string(),
            reason,
        };
        rules.check_url(url).map_err(|e| refuse(e.to_string()))?;
        url::Url::parse(url).map_err(|e| refuse(e.to_string()))
    }

    /// An HTTP client for one request to `url`: no redirects, and the name pinned to the
    /// addresses [`resolve_checked`] approved, so nothing is resolved a second time.
    async fn client_for(
        &self,
        url: &url::Url,
        rules: &EgressRules,
    ) -> Result<reqwest::Client, OAuthError> {
        let origin = Origin::of_url(url).map_err(|e| OAuthError::Endpoint {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let addrs = tokio::time::timeout(TOKEN_TIMEOUT, resolve_checked(rules, &origin))
            .await
            .map_err(|_| OAuthError::Transport(format!("resolving {} timed out", origin.host)))?
            .map_err(|e| OAuthError::Endpoint {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TOKEN_TIMEOUT)
            .resolve_to_addrs(&origin.host, &addrs)
            .dns_resolver(Arc::new(NoLookups));
        for root in self.extra_roots.certificates() {
            let root = reqwest::Certificate::from_der(root)
                .map_err(|e| OAuthError::Transport(format!("an extra root is unusable: {e}")))?;
            builder = builder.add_root_certificate(root);
        }
        builder
            .build()
            .map_err(|e| OAuthError::Transport(e.to_string()))
    }

    fn client(
        &self,
        token_url: &str,
        app: &OAuthClient,
        rules: &EgressRules,
    ) -> Result<TokenClient<EndpointNotSet>, OAuthError> {
        let token_url = self.check_endpoint(token_url, rules)?;
        let mut client = Client::new(ClientId::new(app.client_id.clone()))
            .set_token_uri(TokenUrl::from_url(token_url))
            // Salesforce and every client library send the secret in the form body.
            .set_auth_type(AuthType::RequestBody);
        if let Some(secret) = &app.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        Ok(client)
    }

    async fn http_for_token(
        &self,
        token_url: &str,
        rules: &EgressRules,
    ) -> Result<reqwest::Client, OAuthError> {
        let url = self.check_endpoint(token_url, rules)?;
        self.client_for(&url, rules).await
    }

    /// Builds the authorize URL of `plan` with PKCE S256 and a fresh random `state`.
    /// Every endpoint of the plan must be approved under `rules`.
    pub fn start_authorization(
        &self,
        plan: &OauthPlan,
        app: &OAuthClient,
        redirect_uri: &str,
        rules: &EgressRules,
    ) -> Result<AuthorizationStart, OAuthError> {
        let auth_url = self.check_endpoint(&plan.authorize_url, rules)?;
        if let Some(revoke) = &plan.revoke_url {
            self.check_endpoint(revoke, rules)?;
        }
        let redirect =
            RedirectUrl::new(redirect_uri.to_string()).map_err(|e| OAuthError::Endpoint {
                url: redirect_uri.to_string(),
                reason: e.to_string(),
            })?;
        let client = self
            .client(&plan.token_url, app, rules)?
            .set_auth_uri(AuthUrl::from_url(auth_url))
            .set_redirect_uri(redirect);
        // PKCE S256 always: it costs nothing and protects the code even when not required.
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge)
            .add_scopes(plan.scopes.iter().cloned().map(Scope::new));
        for (name, value) in &plan.extra_authorize_params {
            request = request.add_extra_param(name.clone(), value.clone());
        }
        let (url, state) = request.url();
        Ok(AuthorizationStart {
            url,
            state: state.secret().clone(),
            verifier: Secret::new(verifier.secret().clone()),
        })
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        token_url: &str,
        app: &OAuthClient,
        redirect_uri: &str,
        code: &str,
        verifier: &Secret,
        rules: &EgressRules,
    ) -> Result<Grant, OAuthError> {
        let redirect =
            RedirectUrl::new(redirect_uri.to_string()).map_err(|e| OAuthError::Endpoint {
                url: redirect_uri.to_string(),
                reason: e.to_string(),
            })?;
        let client = self
            .client(token_url, app, rules)?
            .set_redirect_uri(redirect);
        let http = self.http_for_token(token_url, rules).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_string()))
            .request_async(&http)
            .await;
        self.checked(grant_from_response(response), rules)
    }

    /// Uses a refresh token.
    pub async fn refresh(
        &self,
        token_url: &str,
        app: &OAuthClient,
        refresh: &Secret,
        rules: &EgressRules,
    ) -> Result<Grant, OAuthError> {
        let client = self.client(token_url, app, rules)?;
        let http = self.http_for_token(token_url, rules).await?;
        let token = RefreshToken::new(refresh.expose().to_string());
        let response = client
            .exchange_refresh_token(&token)
            .request_async(&http)
            .await;
        self.checked(grant_from_response(response), rules)
    }

    /// Revokes a token at `revoke_url` (RFC 7009: a form POST of `token`, with the client
    /// id). Revoking a refresh token also ends the sessions issued from it. The endpoint is
    /// held to `rules` and reached through a client pinned to the checked addresses, as the
    /// grants are: a token is a secret wherever it goes.
    pub async fn revoke(
        &self,
        revoke_url: &str,
        app: &OAuthClient,
        token: &RevocableToken,
        rules: &EgressRules,
    ) -> Result<(), OAuthError> {
        let url = self.check_endpoint(revoke_url, rules)?;
        let http = self.client_for(&url, rules).await?;
        let (token, hint) = match token {
            RevocableToken::Refresh(t) => (t, "refresh_token"),
            RevocableToken::Access(t) => (t, "access_token"),
        };
        let form = [
            ("token", token.expose()),
            ("token_type_hint", hint),
            ("client_id", app.client_id.as_str()),
        ];
        let response = http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| OAuthError::Transport(crate::error_text::with_causes(&e)))?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let text = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Err(OAuthError::Provider {
            error: text("error").unwrap_or_else(|| format!("HTTP {status}")),
            description: text("error_description").unwrap_or_else(|| "(no description)".into()),
        })
    }

    /// Runs the client-credentials grant.
    pub async fn client_credentials(
        &self,
        token_url: &str,
        app: &OAuthClient,
        rules: &EgressRules,
    ) -> Result<Grant, OAuthError> {
        let client = self.client(token_url, app, rules)?;
        let http = self.http_for_token(token_url, rules).await?;
        let response = client
            .exchange_client_credentials()
            .request_async(&http)
            .await;
        self.checked(grant_from_response(response), rules)
    }

    /// A grant whose instance URL, when it names one (it decides where the access token
    /// goes), is approved under `rules`; every token response is held to this, refreshes
    /// included.
    fn checked(
        &self,
        grant: Result<Grant, OAuthError>,
        rules: &EgressRules,
    ) -> Result<Grant, OAuthError> {
        let grant = grant?;
        if let Some(url) = crate::grant::instance_url(&grant.fields) {
            self.check_endpoint(url, rules)?;
        }
        Ok(grant)
    }
}

/// A resolver for names that were not pinned: refuses, so every connection goes to an
/// address [`resolve_checked`] approved.
pub(crate) struct NoLookups;

impl reqwest::dns::Resolve for NoLookups {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            Err(
                format!("{host} was not checked by the egress policy; refusing to resolve it")
                    .into(),
            )
        })
    }
}

fn grant_from_response<RE: std::error::Error + 'static>(
    response: Result<ProviderTokenResponse, RequestTokenError<RE, BasicErrorResponse>>,
) -> Result<Grant, OAuthError> {
    let response = response.map_err(|e| match e {
        RequestTokenError::ServerResponse(err) => OAuthError::Provider {
            error: err.error().as_ref().to_string(),
            description: err
                .error_description()
                .cloned()
                .unwrap_or_else(|| "(no description)".into()),
        },
        RequestTokenError::Request(e) => OAuthError::Transport(crate::error_text::with_causes(&e)),
        // The body may hold a token: never echo it.
        RequestTokenError::Parse(e, _) => OAuthError::BadResponse(e.to_string()),
        RequestTokenError::Other(msg) => OAuthError::BadResponse(msg),
    })?;
    Ok(Grant {
        access: Secret::new(response.access_token().secret().clone()),
        refresh: response
            .refresh_token()
            .map(|r| Secret::new(r.secret().clone())),
        fields: provider_fields(response.extra_fields()),
        scopes: response
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
    })
}

/// What came back to the redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// `code` and `state`.
    Code {
        /// The authorization code.
        code: String,
        /// The state.
        state: String,
    },
    /// The provider's error redirect.
    Error {
        /// `error`, e.g. `access_denied`.
        error: String,
        /// `error_description`.
        description: String,
        /// The state, if echoed.
        state: Option<String>,
    },
    /// Neither a code nor an error (or no state).
    Malformed(String),
}

impl Callback {
    /// Reads a callback's query parameters.
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let (mut code, mut state, mut error, mut description) = (None, None, None, None);
        for (k, v) in pairs {
            match k {
                "code" => code = Some(v.to_string()),
                "state" => state = Some(v.to_string()),
                "error" => error = Some(v.to_string()),
                "error_description" => description = Some(v.to_string()),
                _ => {}
            }
        }
        match (error, code, state) {
            (Some(error), _, state) => Callback::Error {
                error,
                description: description.unwrap_or_else(|| "(no description)".into()),
                state,
            },
            (None, Some(code), Some(state)) if !code.is_empty() => Callback::Code { code, state },
            (None, None, _) | (None, Some(_), _) => Callback::Malformed(
                "the callback carries neither an authorization code and state nor an error".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_fields_keep_scalars_and_drop_credentials() {
        let extra: ExtraFields = serde_json::from_str(
            r#"{"instance_url":"https://acme.my.salesforce.com","id":"https://x/id/00D/005",
                "issued_at":"1700000000000","signature":"c2ln","id_token":"eyJ.x.y",
                "api_key":"k","expires_at":17,"sandbox":true,"nested":{"a":1}}"#,
        )
        .unwrap();
        let fields = provider_fields(&extra);
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["expires_at", "id", "instance_url", "issued_at", "sandbox"]
        );
        assert_eq!(fields["expires_at"], "17");
        assert_eq!(fields["sandbox"], "true");
    }

    fn plan(base: &str) -> OauthPlan {
        OauthPlan {
            authorize_url: format!("{base}/services/oauth2/authorize"),
            token_url: format!("{base}/services/oauth2/token"),
            revoke_url: None,
            scopes: vec!["api".into(), "refresh_token".into()],
            pkce_required: true,
            extra_authorize_params: vec![("prompt".into(), "login consent".into())],
            client_credentials_supported: true,
        }
    }

    fn salesforce() -> Arc<Manifest> {
        Arc::new(Manifest::from_json(br#"{"hosts":["*.salesforce.com"]}"#).unwrap())
    }

    fn oauth(loopback: bool, extra: &[&str]) -> OAuth {
        let extra: Vec<Origin> = extra
            .iter()
            .map(|o| crate::engine::policy::parse_extra_origin(o).unwrap())
            .collect();
        OAuth::new(loopback, extra.into()).unwrap()
    }

    #[test]
    fn authorize_url_has_pkce_s256_state_and_scopes() {
        let oauth = oauth(false, &[]);
        let rules = oauth.rules(salesforce());
        let app = OAuthClient {
            client_id: "cid".into(),
            client_secret: Some(Secret::new("shh")),
        };
        let start = oauth
            .start_authorization(
                &plan("https://login.salesforce.com"),
                &app,
                "http://127.0.0.1:5555/oauth/callback",
                &rules,
            )
            .unwrap();
        let q: std::collections::HashMap<_, _> = start.url.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], start.state);
        assert_eq!(q["scope"], "api refresh_token");
        assert_eq!(q["prompt"], "login consent");
        assert_eq!(q["client_id"], "cid");
        assert!(!start.url.as_str().contains("shh"));
        assert!(start.verifier.expose().len() >= 43);
    }

    #[test]
    fn endpoints_must_be_approved_origins() {
        let strict = oauth(false, &["http://127.0.0.1:9"]);
        let lax = oauth(true, &["http://127.0.0.1:9"]);
        let (strict, lax) = (strict.rules(salesforce()), lax.rules(salesforce()));
        let o = oauth(true, &[]);
        assert!(o.check_endpoint("http://127.0.0.1:9/x", &strict).is_err());
        assert!(o.check_endpoint("http://127.0.0.1:9/x", &lax).is_ok());
        assert!(o.check_endpoint("http://127.0.0.1:10/x", &lax).is_err());
        assert!(o.check_endpoint("http://example.com/x", &lax).is_err());
        assert!(
            o.check_endpoint("https://login.salesforce.com/x", &strict)
                .is_ok()
        );
        assert!(
            o.check_endpoint("https://attacker.example/x", &strict)
                .is_err()
        );
        assert!(
            o.check_endpoint("https://u:p@login.salesforce.com/x", &strict)
                .is_err()
        );
        assert!(
            o.check_endpoint("ftp://login.salesforce.com/x", &strict)
                .is_err()
        );
    }

    #[tokio::test]
    async fn token_requests_resolve_with_the_range_check() {
        // An approved https origin whose name resolves to loopback is refused before any
        // connection, as guest traffic is.
        let o = oauth(false, &["https://localhost:9"]);
        let rules = o.rules(salesforce());
        let err = o
            .refresh(
                "https://localhost:9/token",
                &OAuthClient {
                    client_id: "cid".into(),
                    client_secret: Some(Secret::new("shh")),
                },
                &Secret::new("refresh"),
                &rules,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, OAuthError::Endpoint { reason, .. } if reason.contains("loopback")),
            "{err}"
        );
    }

    #[test]
    fn a_plan_with_an_unapproved_endpoint_is_refused() {
        let oauth = oauth(false, &[]);
        let rules = oauth.rules(salesforce());
        let app = OAuthClient {
            client_id: "cid".into(),
            client_secret: None,
        };
        let mut bad = plan("https://login.salesforce.com");
        bad.token_url = "https://attacker.example/token".into();
        assert!(
            oauth
                .start_authorization(&bad, &app, "http://127.0.0.1:5/cb", &rules)
                .is_err()
        );
        let mut bad = plan("https://login.salesforce.com");
        bad.revoke_url = Some("https://169.254.169.254/revoke".into());
        assert!(
            oauth
                .start_authorization(&bad, &app, "http://127.0.0.1:5/cb", &rules)
                .is_err()
        );
    }

    #[test]
    fn callbacks_parse_codes_errors_and_garbage() {
        assert_eq!(
            Callback::from_query([("code", "c"), ("state", "s")]),
            Callback::Code {
                code: "c".into(),
                state: "s".into()
            }
        );
        assert!(matches!(
            Callback::from_query([("error", "access_denied"), ("error_description", "end-user denied authorization"), ("state", "s")]),
            Callback::Error { error, .. } if error == "access_denied"
        ));
        assert!(matches!(
            Callback::from_query([("state", "s")]),
            Callback::Malformed(_)
        ));
    }
}
