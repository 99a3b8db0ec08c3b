//! The outbound HTTP policy: the guest's only way out of the sandbox.
//!
//! Threat: a connector (buggy, or swapped for a hostile version) tries to reach hosts it has no
//! business with — the cloud metadata service, the platform's internal network, or an attacker's
//! server that would collect whatever it sends — or tries to get hold of the integration's
//! access token. Allow-listing names alone is not enough: an allowed name can resolve (or be
//! re-pointed by its owner) into a private range.
//!
//! Rule: deny by default; [`super::policy`] decides where a request may go and whether it
//! carries credentials.
//! - A request leaves only when the policy approves its origin (scheme, host and port) and,
//!   after the host resolved the name itself, every address; the connection goes to the
//!   address that was checked (no second lookup an attacker could race).
//! - `Authorization`, and the header the integration's credential goes in (an API key's named
//!   header), are forbidden headers for the guest; for the policy's credential origins the host
//!   adds the [`Credential`] itself from the [`CredentialProvider`]. On a 401 to a request that
//!   carried it the provider refreshes once (OAuth) and the request is retried once, as any
//!   OAuth client does; a credential that cannot be refreshed (an API key, basic) is marked for
//!   re-authorization by the provider instead and the 401 goes back to the guest, so nothing
//!   loops. The body of the 401 is the provider's business and is not read.
//! - Request and response bodies are buffered with size caps, counted against the call's
//!   [`BufferBudget`]; a request body must be finished in time; concurrent requests are capped
//!   per integration; transient failures of idempotent requests are retried with bounded,
//!   jittered exponential backoff ([`super::retry`] says which).
//! - [`OutboundLimits::reuse_connections`] and [`OutboundLimits::accept_gzip`] exist to measure
//!   what reuse and compression save (the bench's WAN comparison): off, every request opens its
//!   own connection and says `Connection: close`, and every request asks for `identity`
//!   whatever the guest asked. Neither changes what the policy allows.
//! - Connections are kept for reuse ([`super::pool`]): idle HTTP/1.1 ones, and HTTP/2 ones
//!   (negotiated by ALPN over TLS; plain http stays HTTP/1.1) that carry an integration's
//!   concurrent requests as streams. Only as a transport: every request passes the origin
//!   check and a fresh resolution with the address checks first, and may then take a kept
//!   connection of the same integration to the same origin whose address is among the ones
//!   just approved, else it connects to an approved address. A kept connection the server
//!   closed meanwhile (or a stream its GOAWAY refused) is replaced by a new one for that
//!   request, which is not counted as a retry.
//! - TLS trusts the web PKI roots plus the operator's [`ExtraRoots`], nothing else.
//! - Every denial is logged with the connector, integration and target, and counted.
//! - With a [`Tape`] ([`cassette`]), answers are recorded as the guest saw them, or replayed
//!   instead of the network; replay comes after the origin checks and needs no DNS.

pub mod cassette;
mod connections;
mod denials;

use connections::{for_protocol, tls_config};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;
use tracing::Instrument;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use super::budget::{BodyRefused, BufferBudget, collect_body};
use super::credentials::{Credential, CredentialError, CredentialProvider};
use super::metrics::EngineMetrics;
use super::policy::{Origin, normalize_host};
use super::pool::{ConnectionPool, OutboundRequest, PoolKey, PoolLimits, Sender};
use super::resolver::Resolver;
pub use super::retry::RetryPolicy;
use super::retry::{
    is_idempotent, is_transient_error, is_transient_status, never_processed, retry_after,
};
use super::roots::ExtraRoots;
pub use cassette::{Cassette, Recorder, Tape};
pub use denials::Denial;
use denials::DenialLog;

pub use super::policy::{OutboundPolicy, is_loopback_name, prohibited_range};

/// Limits and retry behaviour of outbound requests.
#[derive(Debug, Clone)]
pub struct OutboundLimits {
    /// Largest request body a guest may send, in bytes.
    pub max_request_bytes: usize,
    /// Largest response body the host reads for a guest, in bytes.
    pub max_response_bytes: usize,
    /// Body bytes (requests and responses) the host may buffer for one call at once; at least
    /// `max_response_bytes`.
    pub max_buffered_bytes: usize,
    /// Time a guest has to finish a request body it started.
    pub request_body_timeout: Duration,
    /// Requests one integration may have in flight at once.
    pub max_concurrent_per_integration: usize,
    /// Default connect timeout (the guest's request options may shorten it).
    pub connect_timeout: Duration,
    /// Default time to wait for the response head, and between body chunks.
    pub read_timeout: Duration,
    /// Retries of transient failures of idempotent requests.
    pub retry: RetryPolicy,
    /// Bounds of the connections kept for reuse (HTTP/1.1 keep-alive and HTTP/2).
    pub pool: PoolLimits,
    /// Whether a request may take a kept connection and leave its own for the next one; off,
    /// each request opens a connection and closes it (`Connection: close`).
    pub reuse_connections: bool,
    /// Whether requests may ask for gzip; off, every request says `Accept-Encoding: identity`
    /// whatever the guest set.
    pub accept_gzip: bool,
    /// Roots trusted besides the web PKI's (the operator's `--ca-file`).
    pub extra_roots: ExtraRoots,
    /// Where provider names are looked up (the system's resolver by default).
    pub resolver: Resolver,
    /// Whether answers are recorded to, or replayed from, a cassette (off by default).
    pub tape: Tape,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        Self {
            max_request_bytes: 8 << 20,
            max_response_bytes: 64 << 20,
            max_buffered_bytes: 128 << 20,
            request_body_timeout: Duration::from_secs(30),
            max_concurrent_per_integration: 8,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            pool: PoolLimits::default(),
            reuse_connections: true,
            accept_gzip: true,
            extra_roots: ExtraRoots::default(),
            resolver: Resolver::default(),
            tape: Tape::Off,
        }
    }
}

/// Identifies a call in denial logs.
#[derive(Debug, Clone, Default)]
pub struct CallLabel {
    /// The connector, e.g. `salesforce@<sha>`.
    pub connector: Arc<str>,
    /// The integration, if any.
    pub integration: Option<Arc<str>>,
}

/// State shared by the outbound hooks of every call of one engine.
pub struct OutboundShared {
    limits: OutboundLimits,
    metrics: Arc<EngineMetrics>,
    concurrency: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
    tls: Arc<rustls::ClientConfig>,
    pool: ConnectionPool,
    denials: DenialLog,
}

impl OutboundShared {
    /// Shared outbound state with `limits`, counting into `metrics`.
    pub fn new(limits: OutboundLimits, metrics: Arc<EngineMetrics>) -> Self {
        Self {
            tls: tls_config(&limits.extra_roots),
            pool: ConnectionPool::new(limits.pool.clone()),
            limits,
            metrics,
            concurrency: Mutex::new(HashMap::new()),
            denials: DenialLog::default(),
        }
    }

    /// The denials since the last call (at most the latest 256), oldest first.
    pub fn take_denials(&self) -> Vec<Denial> {
        self.denials.take()
    }

    /// The limits in force.
    pub fn limits(&self) -> &OutboundLimits {
        &self.limits
    }

    /// Idle connections kept for reuse now.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle()
    }

    fn semaphore(&self, key: &Arc<str>) -> Arc<Semaphore> {
        let mut map = self.concurrency.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.limits.max_concurrent_per_integration.max(1),
                ))
            })
            .clone()
    }
}

impl std::fmt::Debug for OutboundShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundShared")
            .field("limits", &self.limits)
            .finish()
    }
}

/// The wasi:http hooks of one call.
pub struct OutboundHooks {
    /// The policy in force.
    pub policy: Arc<OutboundPolicy>,
    /// Who is calling.
    pub label: CallLabel,
    /// The integration's credential source; `None` sends no credentials.
    pub credentials: Option<Arc<dyn CredentialProvider>>,
    /// Engine-wide outbound state.
    pub shared: Arc<OutboundShared>,
    /// The body bytes the call may have buffered at once.
    pub budget: Arc<BufferBudget>,
}

/// The headers a guest may never set: wasmtime's defaults plus `Authorization` (and
/// `Cookie`), which only the host adds, and the header the integration's credential goes in.
fn forbidden_header(name: &HeaderName, credential: Option<&HeaderName>) -> bool {
    *name == AUTHORIZATION
        || *name == http::header::COOKIE
        || Some(name) == credential
        || DEFAULT_FORBIDDEN_HEADERS.contains(name)
}

impl OutboundHooks {
    fn credential_header(&self) -> Option<HeaderName> {
        self.credentials.as_ref().map(|p| p.header().clone())
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        forbidden_header(name, self.credential_header().as_ref())
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        let credential = self.credential_header();
        Arc::new(move |name| forbidden_header(name, credential.as_ref()))
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        _ = fut;
        let call = OutboundCall {
            policy: self.policy.clone(),
            label: self.label.clone(),
            credentials: self.credentials.clone(),
            shared: self.shared.clone(),
            budget: self.budget.clone(),
        };
        let method = request.method().clone();
        let host = request.uri().host().map(normalize_host).unwrap_or_default();
        let span = tracing::info_span!(
            "outbound_request",
            connector = %call.label.connector,
            integration = call.label.integration.as_deref().unwrap_or("-"),
            method = %method,
            host = %host,
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        Box::new(
            async move {
                let started = Instant::now();
                let result = call.send(request, options).await;
                let span = tracing::Span::current();
                span.record("duration_ms", started.elapsed().as_millis() as u64);
                match &result {
                    Ok(response) => {
                        span.record("status", response.status().as_u16());
                        tracing::debug!("outbound request done");
                    }
                    Err(e) => tracing::debug!(error = %e, "outbound request failed"),
                }
                result.map(|response| {
                    (
                        response,
                        Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
                    )
                })
            }
            .instrument(span),
        )
    }
}

/// One guest request, owned by its future.
struct OutboundCall {
    policy: Arc<OutboundPolicy>,
    label: CallLabel,
    credentials: Option<Arc<dyn CredentialProvider>>,
    shared: Arc<OutboundShared>,
    budget: Arc<BufferBudget>,
}

/// A buffered response.
struct Buffered {
    head: http::response::Parts,
    body: Bytes,
}

impl OutboundCall {
    fn deny(&self, target: &str, reason: &str) {
        EngineMetrics::bump(&self.shared.metrics.denials);
        self.shared.denials.keep(Denial {
            connector: self.label.connector.to_string(),
            integration: self.label.integration.as_deref().map(String::from),
            target: target.to_string(),
            reason: reason.to_string(),
        });
        tracing::warn!(
            connector = %self.label.connector,
            integration = self.label.integration.as_deref().unwrap_or("-"),
            target,
            reason,
            "outbound request denied"
        );
    }

    async fn send(
        self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let uri = request.uri().clone();
        let origin = match Origin::of_uri(&uri) {
            Ok(origin) => origin,
            Err(e) => {
                self.deny(&uri.to_string(), &e.to_string());
                return Err(HttpError::HttpRequestDenied);
            }
        };
        let host = origin.host.clone();
        let use_tls = origin.scheme == super::policy::Scheme::Https;
        let target = origin.to_string();

        if let Err(reason) = self.policy.check(&origin) {
            self.deny(&target, &reason);
            return Err(HttpError::HttpRequestDenied);
        }
        let credentialed = self.credentials.is_some() && self.policy.carries_credentials(&origin);
        if credentialed && let Err(reason) = self.policy.check_credentialed_method(request.method())
        {
            self.deny(&target, &reason);
            return Err(HttpError::HttpRequestDenied);
        }
        if let Tape::Replay(cassette) = &self.shared.limits.tape {
            let cassette = cassette.clone();
            return self.replay(&cassette, &origin, request).await;
        }
        let addrs = match self.resolve(&origin).await {
            Ok(addrs) => addrs,
            Err(Resolve::Denied(reason)) => {
                self.deny(&target, &reason);
                return Err(HttpError::DestinationIpProhibited);
            }
            Err(Resolve::Failed(e)) => return Err(e),
        };

        let (mut head, body) = request.into_parts();
        // The guest cannot set them (forbidden headers), but never forward one regardless.
        head.headers.remove(AUTHORIZATION);
        if let Some(provider) = &self.credentials {
            head.headers.remove(provider.header());
        }
        let limits = &self.shared.limits;
        if !limits.accept_gzip {
            head.headers
                .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        if !limits.reuse_connections {
            head.headers
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        let body = self.collect_request(body, &target).await?;
        // HTTP/1 over a direct connection sends origin-form targets.
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        head.uri = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;

        let credentials = match &self.credentials {
            Some(provider) if credentialed => Some(provider.clone()),
            _ => None,
        };
        let mut credential = match &credentials {
            Some(provider) => match provider.credential().await {
                Ok(credential) => Some(credential),
                Err(CredentialError::ReauthorizationRequired(reason)) => {
                    tracing::warn!(connector = %self.label.connector, %reason, "no usable credentials");
                    return Ok(reauthorization_response(&reason));
                }
                Err(CredentialError::Unavailable(reason)) => {
                    return Err(HttpError::InternalError(Some(format!(
                        "the host could not obtain the integration's credentials: {reason}"
                    ))));
                }
            },
            None => None,
        };

        let idempotent = is_idempotent(&head.method);
        let retry = self.shared.limits.retry.clone();
        let semaphore = self.shared.semaphore(&self.tenant());
        let mut retries = 0u32;
        let mut refreshed = false;
        loop {
            let attempt = {
                let _permit = semaphore
                    .acquire()
                    .await
                    .map_err(|_| HttpError::InternalError(Some("request limiter closed".into())))?;
                EngineMetrics::bump(&self.shared.metrics.outbound_requests);
                let to = Target {
                    origin: &target,
                    host: &host,
                    use_tls,
                    addrs: &addrs,
                };
                self.attempt(&to, &head, &body, credential.as_ref(), options)
                    .await
            };
            tracing::Span::current().record("attempts", retries + u32::from(refreshed) + 1);
            // One refresh and one retry on a rejected credential; a provider that cannot
            // refresh marks the integration for re-authorization and the 401 goes back.
            if let (Ok(response), Some(provider), Some(rejected), false) =
                (&attempt, &credentials, &credential, refreshed)
                && response.head.status == StatusCode::UNAUTHORIZED
            {
                refreshed = true;
                EngineMetrics::bump(&self.shared.metrics.refreshes);
                match provider.refresh(rejected).await {
                    Ok(fresh) => {
                        credential = Some(fresh);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(connector = %self.label.connector, error = %e, "credentials refused; returning the 401");
                    }
                }
            }
            let wait = match &attempt {
                _ if !idempotent || retries >= retry.max_retries => None,
                Ok(response)
                    if is_transient_status(response.head.status)
                        || self.policy.retries_status(response.head.status.as_u16()) =>
                {
                    let delay = retry.delay(retries);
                    match retry_after(&response.head.headers) {
                        Some(after) if after > retry.max_delay => None,
                        Some(after) => Some(after.max(delay)),
                        None => Some(delay),
                    }
                }
                Err(e) if is_transient_error(e) => Some(retry.delay(retries)),
                _ => None,
            };
            match wait {
                Some(delay) => {
                    retries += 1;
                    EngineMetrics::bump(&self.shared.metrics.retries);
                    tracing::debug!(
                        retry = retries,
                        delay_ms = delay.as_millis() as u64,
                        "retrying transient failure"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => {
                    if let Tape::Record(recorder) = &self.shared.limits.tape {
                        record(recorder, &head, &uri, &body, &attempt);
                    }
                    let Buffered { head, body } = attempt?;
                    return Ok(http::Response::from_parts(head, full_body(body)));
                }
            }
        }
    }

    /// The request body, buffered within the size cap, the call's budget and the time limit.
    async fn collect_request(&self, body: WasiBody, target: &str) -> Result<Bytes, HttpError> {
        let limits = &self.shared.limits;
        let cap = limits.max_request_bytes;
        match collect_body(body, cap, limits.request_body_timeout, &self.budget).await {
            Ok(body) => Ok(body),
            Err(BodyRefused::TooLarge) => Err(HttpError::HttpRequestBodySize(Some(cap as u64))),
            Err(BodyRefused::Budget(over)) => {
                self.deny(target, &over.to_string());
                Err(HttpError::InternalError(Some(over.to_string())))
            }
            Err(BodyRefused::Unfinished) => {
                self.deny(target, "the request body was not finished in time");
                Err(HttpError::ConnectionWriteTimeout)
            }
            Err(BodyRefused::Failed(e)) => Err(e),
        }
    }

    /// Answers a request the policy allowed from `cassette`, without DNS or network.
    async fn replay(
        &self,
        cassette: &Cassette,
        origin: &Origin,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let target = origin.to_string();
        // An address literal is checked as a resolved name would be; names are not resolved.
        if let Ok(ip) = origin.host.parse::<IpAddr>()
            && let Err(reason) = self.policy.check_addr(origin, ip)
        {
            self.deny(&target, &reason);
            return Err(HttpError::DestinationIpProhibited);
        }
        let url = request.uri().to_string();
        let (head, body) = request.into_parts();
        let body = self.collect_request(body, &target).await?;
        EngineMetrics::bump(&self.shared.metrics.outbound_requests);
        match cassette.answer(head.method.as_str(), &url, &body) {
            Ok(cassette::Answer::Response(head, body)) => {
                Ok(http::Response::from_parts(head, full_body(body)))
            }
            Ok(cassette::Answer::Failure(failure)) => Err(failure.error()),
            Err(miss) => {
                tracing::warn!(
                    connector = %self.label.connector,
                    integration = self.label.integration.as_deref().unwrap_or("-"),
                    %miss,
                    "request not in the cassette"
                );
                Err(HttpError::InternalError(Some(miss.to_string())))
            }
        }
    }

    /// The integration, else the connector: whose limiter and kept connections a request uses.
    fn tenant(&self) -> Arc<str> {
        self.label
            .integration
            .clone()
            .unwrap_or_else(|| self.label.connector.clone())
    }

    /// Every address of `origin`, each approved by the policy.
    async fn resolve(&self, origin: &Origin) -> Result<Vec<SocketAddr>, Resolve> {
        let (host, port) = (origin.host.as_str(), origin.port);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let lookup = tokio::time::timeout(
                    self.shared.limits.connect_timeout,
                    self.shared.limits.resolver.lookup(host, port),
                )
                .await
                .map_err(|_| Resolve::Failed(HttpError::DnsTimeout))?;
                lookup.map_err(|e| {
                    Resolve::Failed(HttpError::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    })
                })?
            }
        };
        if addrs.is_empty() {
            return Err(Resolve::Failed(HttpError::DestinationNotFound));
        }
        // A name with any non-public address is refused as a whole.
        for addr in &addrs {
            self.policy
                .check_addr(origin, addr.ip())
                .map_err(Resolve::Denied)?;
        }
        Ok(addrs)
    }

    async fn attempt(
        &self,
        target: &Target<'_>,
        head: &http::request::Parts,
        body: &Bytes,
        credential: Option<&Credential>,
        options: Option<RequestOptions>,
    ) -> Result<Buffered, HttpError> {
        let limits = &self.shared.limits;
        let connect_timeout = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(limits.connect_timeout)
            .min(limits.connect_timeout);
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(limits.read_timeout)
            .min(limits.read_timeout);
        let between = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(limits.read_timeout)
            .min(limits.read_timeout)
            .max(Duration::from_millis(1));

        let request = || -> Result<http::Request<Full<Bytes>>, HttpError> {
            let mut request = http::Request::from_parts(head.clone(), Full::new(body.clone()));
            if let Some(credential) = credential {
                let mut value = HeaderValue::from_str(credential.expose()).map_err(|_| {
                    HttpError::InternalError(Some(
                        "the integration's credential is not a valid header value".into(),
                    ))
                })?;
                value.set_sensitive(true);
                request
                    .headers_mut()
                    .insert(credential.header().clone(), value);
            }
            Ok(request)
        };
        let idempotent = is_idempotent(&head.method);
        let host = target.host;
        let use_tls = target.use_tls;

        let (mut addr, mut sender, reused) = self.connection(target, connect_timeout).await?;
        let sent = tokio::time::timeout(
            first_byte,
            sender.try_send_request(for_protocol(request()?, &sender, target)),
        )
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)?;
        let response = match sent {
            Ok(response) => response,
            Err(mut failed) => {
                let unsent = failed.take_message();
                let refused = never_processed(failed.error());
                let error = HttpError::from(failed.into_error());
                // A kept connection the server closed while it was idle (or an HTTP/2 stream
                // its GOAWAY refused): the request goes out again on a new connection, as any
                // keep-alive client does (a request that may have reached the server only when
                // repeating it is harmless).
                let stale = reused
                    && (unsent.is_some() || refused || idempotent && is_transient_error(&error));
                if !stale {
                    return Err(error);
                }
                tracing::debug!(error = %error, "kept connection was closed; using a new one");
                (addr, sender) = self.open(target, connect_timeout).await?;
                let request = for_protocol(request()?, &sender, target);
                tokio::time::timeout(first_byte, sender.try_send_request(request))
                    .await
                    .map_err(|_| HttpError::ConnectionReadTimeout)?
                    .map_err(|failed| HttpError::from(failed.into_error()))?
            }
        };
        let (head, mut incoming) = response.into_parts();
        let cap = limits.max_response_bytes;
        let mut collected = Vec::new();
        let mut reservation = self.budget.reservation();
        // Times the body's arrival apart from the wait for its head (for a profiler).
        let receiving = tracing::debug_span!("outbound_body");
        loop {
            let frame = tokio::time::timeout(between, incoming.frame())
                .await
                .map_err(|_| HttpError::ConnectionReadTimeout)?;
            match frame {
                None => break,
                Some(Err(e)) => return Err(HttpError::from(e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if collected.len() + data.len() > cap {
                            self.deny(
                                &format!("{}://{host}", if use_tls { "https" } else { "http" }),
                                &format!("response body exceeds the {cap}-byte cap"),
                            );
                            return Err(HttpError::HttpResponseBodySize(Some(cap as u64)));
                        }
                        if let Err(over) = reservation.grow(data.len()) {
                            self.deny(host, &over.to_string());
                            return Err(HttpError::InternalError(Some(over.to_string())));
                        }
                        collected.extend_from_slice(&data);
                    }
                }
            }
        }
        if limits.reuse_connections && !sender.is_shared() && keeps_alive(&head) {
            let key = PoolKey {
                tenant: self.tenant(),
                origin: target.origin.to_string(),
                addr,
            };
            self.shared.pool.put(key, sender);
        }
        drop(receiving);
        let mut head = head;
        let inflating = tracing::debug_span!("inflate");
        let collected =
            inflating.in_scope(|| super::gzip::decode_response(&mut head, collected, cap));
        let collected = collected.map_err(|e| {
            let origin = format!("{}://{host}", if use_tls { "https" } else { "http" });
            self.deny(&origin, &e.to_string());
            match e {
                super::gzip::GzipError::TooLarge { .. } => {
                    HttpError::HttpResponseBodySize(Some(cap as u64))
                }
                super::gzip::GzipError::Corrupt(_) => HttpError::InternalError(Some(e.to_string())),
            }
        })?;
        Ok(Buffered {
            head,
            body: reservation.into_bytes(collected),
        })
    }
}

/// Where one request goes: its origin (`scheme://host:port`) and the addresses the policy
/// approved for it just now.
struct Target<'a> {
    origin: &'a str,
    host: &'a str,
    use_tls: bool,
    addrs: &'a [SocketAddr],
}

/// Whether the connection may carry another request after this response (read to the end).
fn keeps_alive(head: &http::response::Parts) -> bool {
    let close = head
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("close"));
    head.version == http::Version::HTTP_11 && !close
}

/// Writes one finished request to the cassette: the guest's head and body (the host's
/// credentials are added later, per attempt, so they are not in `head`) and what it got.
fn record(
    recorder: &Recorder,
    head: &http::request::Parts,
    uri: &http::Uri,
    body: &Bytes,
    attempt: &Result<Buffered, HttpError>,
) {
    let outcome = match attempt {
        Ok(answer) => Ok((&answer.head, &answer.body[..])),
        Err(e) => match cassette::TransportFailure::of(e) {
            Some(failure) => Err(failure),
            None => return,
        },
    };
    recorder.record(head, &uri.to_string(), body, outcome);
}

enum Resolve {
    Denied(String),
    Failed(HttpError),
}

fn full_body(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What the guest sees when the host holds no usable token: a 401 as a resource server gives
/// for a dead token (RFC 6750, `invalid_token`), so the connector reports
/// `reauthorization-required` whatever its provider's error format.
fn reauthorization_response(reason: &str) -> http::Response<WasiBody> {
    let body = serde_json::json!({
        "error": "reauthorization_required",
        "message": format!("the host holds no usable credentials for this integration: {reason}; a person must connect again"),
    });
    let mut response = http::Response::new(full_body(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer error="invalid_token""#),
    );
    response
}
