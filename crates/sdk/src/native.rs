//! A [`Host`] outside the sandbox, over reqwest, for benchmarks that run a connector's logic
//! natively against the same provider the component would call.
//!
//! It is no sandbox: nothing checks the destination, and the bearer token, when given, goes to
//! every URL. Use it only against a provider you trust, such as a local emulator.

use crate::http::{Host, InFlight, Method, Request, Response, TransportError};
use crate::model::Level;

/// The native host: HTTP through a reqwest client on a tokio runtime, logs through
/// `tracing`, the system clock, and no stored keys (a caller with a store wraps it and
/// answers [`Host::stored_keys`] itself).
pub struct NativeHost {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    bearer: Option<String>,
}

impl NativeHost {
    /// A host whose requests run on `runtime`; call [`Host::send`] from outside its async
    /// context (a blocking thread), since each request blocks until the response is read.
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        Self {
            client: reqwest::Client::new(),
            runtime,
            bearer: None,
        }
    }

    /// Adds `Authorization: Bearer <token>` to every request, as the sandbox's host does.
    pub fn with_bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }
}

impl Host for NativeHost {
    fn send(&mut self, request: Request) -> Result<Response, TransportError> {
        self.runtime.block_on(self.exchange(request))
    }

    // Like the sandbox's host, the request runs on the runtime while the caller works.
    fn start(&mut self, request: Request) -> InFlight {
        let task = self.runtime.spawn(self.exchange(request));
        let runtime = self.runtime.clone();
        InFlight::pending(move || {
            runtime
                .block_on(task)
                .map_err(|e| TransportError::Other(format!("the request's task failed: {e}")))?
        })
    }

    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]) {
        match level {
            Level::Trace => tracing::trace!(?fields, "{message}"),
            Level::Debug => tracing::debug!(?fields, "{message}"),
            Level::Info => tracing::info!(?fields, "{message}"),
            Level::Warn => tracing::warn!(?fields, "{message}"),
            Level::Error => tracing::error!(?fields, "{message}"),
        }
    }

    fn stored_keys(&mut self, _after: Option<&str>, _limit: u32) -> Vec<String> {
        Vec::new()
    }

    fn now_ms(&mut self) -> Option<i64> {
        crate::http::system_now_ms()
    }
}

impl NativeHost {
    /// The exchange of `request`, as a future that owns everything it needs.
    fn exchange(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, TransportError>> + Send + 'static {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.client.request(method, &request.url);
        if let Some(token) = &self.bearer {
            builder = builder.bearer_auth(token);
        }
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let target = request.url;
        async move {
            let response = builder
                .send()
                .await
                .map_err(|e| transport_error(&target, e))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = response
                .bytes()
                .await
                .map_err(|e| transport_error(&target, e))?
                .to_vec();
            Ok(Response {
                status,
                headers,
                body,
            })
        }
    }
}

/// Where a reqwest failure leaves the caller: the request to `target` produced no response.
fn transport_error(target: &str, error: reqwest::Error) -> TransportError {
    if error.is_timeout() {
        TransportError::Timeout(target.to_string())
    } else if error.is_connect() {
        TransportError::Unreachable {
            target: target.to_string(),
            detail: error.to_string(),
        }
    } else {
        TransportError::Other(error.to_string())
    }
}
