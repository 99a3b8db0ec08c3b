//! How a request gets its connection: a kept one of the same integration at an address the
//! request's own resolution approved, the integration's shared HTTP/2 connection, or a new one
//! (TCP, then TLS with ALPN choosing HTTP/2 or HTTP/1.1). The policy checks happen before any
//! of this, in the parent module, for every request.

use super::*;

impl OutboundCall {
    /// A kept connection to one of `target`'s approved addresses that is ready for a request.
    async fn kept(&self, target: &Target<'_>, timeout: Duration) -> Option<(SocketAddr, Sender)> {
        let tenant = self.tenant();
        while let Some((addr, mut sender)) =
            self.shared.pool.take(&tenant, target.origin, target.addrs)
        {
            // The connection task marks it ready once the previous exchange is done; a
            // connection the server closed meanwhile fails here and is dropped.
            if let Ok(Ok(())) = tokio::time::timeout(timeout, sender.ready()).await {
                return Some((addr, sender));
            }
        }
        None
    }

    /// A connection for one request: a kept one, else a new one, opened after the tenant's
    /// other opening to the origin so that an HTTP/2 connection is shared (see the pool's
    /// gate). `true` with a connection that was open before.
    pub(super) async fn connection(
        &self,
        target: &Target<'_>,
        timeout: Duration,
    ) -> Result<(SocketAddr, Sender, bool), HttpError> {
        if !self.shared.limits.reuse_connections {
            let (addr, sender) = self.connect(target, timeout).await?;
            return Ok((addr, sender, false));
        }
        if let Some((addr, sender)) = self.kept(target, timeout).await {
            return Ok((addr, sender, true));
        }
        let gate = self.shared.pool.gate(&self.tenant(), target.origin);
        let turn = match &gate {
            Some(gate) => gate.turn().await,
            None => None,
        };
        if turn.is_some()
            && let Some((addr, sender)) = self.kept(target, timeout).await
        {
            return Ok((addr, sender, true));
        }
        let (addr, sender) = self.open(target, timeout).await?;
        if let Some(gate) = &gate {
            gate.opened(&sender);
        }
        Ok((addr, sender, false))
    }

    /// A new connection to `target`'s first approved address; an HTTP/2 one is kept at once,
    /// for the tenant's concurrent requests.
    pub(super) async fn open(
        &self,
        target: &Target<'_>,
        timeout: Duration,
    ) -> Result<(SocketAddr, Sender), HttpError> {
        let (addr, sender) = self.connect(target, timeout).await?;
        if let Some(shared) = sender.share() {
            let key = PoolKey {
                tenant: self.tenant(),
                origin: target.origin.to_string(),
                addr,
            };
            self.shared.pool.put(key, shared);
        }
        Ok((addr, sender))
    }

    /// A new connection to `target`'s first approved address: HTTP/2 when the server chose it
    /// by ALPN, else HTTP/1.1.
    async fn connect(
        &self,
        target: &Target<'_>,
        timeout: Duration,
    ) -> Result<(SocketAddr, Sender), HttpError> {
        let addr = target.addrs[0];
        let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(connect_error)?;
        let _ = tcp.set_nodelay(true);
        if !target.use_tls {
            return Ok((addr, handshake_http1(tcp, timeout).await?));
        }
        let name = rustls::pki_types::ServerName::try_from(target.host.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(self.shared.tls.clone()).connect(name, tcp);
        let tls = tokio::time::timeout(timeout, tls)
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(|e| self.tls_error(target.origin, e))?;
        let sender = match tls.get_ref().1.alpn_protocol() {
            Some(HTTP2_ALPN) => handshake_http2(tls, timeout).await?,
            _ => handshake_http1(tls, timeout).await?,
        };
        Ok((addr, sender))
    }

    /// A certificate the host does not trust is reported as such, with what to do about it.
    fn tls_error(&self, origin: &str, e: std::io::Error) -> HttpError {
        let cause = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match cause {
            Some(rustls::Error::InvalidCertificate(why)) => {
                tracing::warn!(
                    connector = %self.label.connector,
                    integration = self.label.integration.as_deref().unwrap_or("-"),
                    target = origin,
                    reason = ?why,
                    "the server's TLS certificate is not trusted; if its CA is one the operator \
                     trusts, add it with --ca-file"
                );
                HttpError::TlsCertificateError
            }
            _ => HttpError::Tls(e),
        }
    }
}

/// The ALPN name of HTTP/2 (RFC 9113 §3.2).
const HTTP2_ALPN: &[u8] = b"h2";

/// The largest DATA frame the server may send: a page of hundreds of kilobytes then crosses as
/// a few frames rather than dozens of the 16 KiB default, each written to the socket on its own.
const HTTP2_MAX_FRAME_BYTES: u32 = 256 * 1024;

async fn handshake_http1<S>(stream: S, timeout: Duration) -> Result<Sender, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = tokio::time::timeout(
        timeout,
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Sender::Http1(sender))
}

async fn handshake_http2<S>(stream: S, timeout: Duration) -> Result<Sender, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = tokio::time::timeout(
        timeout,
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .max_frame_size(HTTP2_MAX_FRAME_BYTES)
            .handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Sender::Http2(sender))
}

/// `request` as `sender`'s protocol writes it: HTTP/1.1 sends the origin-form target and
/// `Host`; HTTP/2 names the scheme and authority in the URI (its `:authority`, taken from
/// `Host`, which RFC 9113 §8.3.1 says to send instead).
pub(super) fn for_protocol(
    mut request: OutboundRequest,
    sender: &Sender,
    target: &Target<'_>,
) -> OutboundRequest {
    if !sender.is_shared() {
        return request;
    }
    // Connection-specific fields are HTTP/1's; HTTP/2 refuses them (RFC 9113 §8.2.2).
    request.headers_mut().remove(http::header::CONNECTION);
    let authority = request
        .headers_mut()
        .remove(http::header::HOST)
        .and_then(|host| http::uri::Authority::try_from(host.as_bytes()).ok());
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(match target.use_tls {
        true => http::uri::Scheme::HTTPS,
        false => http::uri::Scheme::HTTP,
    });
    parts.authority = authority.or_else(|| {
        let origin = target
            .origin
            .split_once("://")
            .map_or(target.origin, |(_, rest)| rest);
        http::uri::Authority::try_from(origin).ok()
    });
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

/// The TLS client: the web PKI roots plus `extra`.
pub(super) fn tls_config(extra: &ExtraRoots) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(extra.root_store())
    .with_no_client_auth();
    config.alpn_protocols = vec![HTTP2_ALPN.to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

fn connect_error(e: std::io::Error) -> HttpError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
        _ => HttpError::Connect(e),
    }
}
