//! Serving the two origins (the instance and the login host) over HTTP/1.1, or HTTPS with
//! HTTP/2 or HTTP/1.1 as the client chooses by ALPN, with header names in Salesforce's case and
//! the network costs of the WAN profile.
//!
//! hyper writes header names in lower case unless told otherwise. Salesforce's front end
//! sends `Content-Type`, `Sforce-Limit-Info`, `Sforce-Locator`, and widely used clients copy
//! headers into case-sensitive maps, so the emulator writes them in title case too, and
//! restores the one name whose Salesforce spelling is not title case
//! (`Sforce-NumberOfRecords`) in the response head as it is written. HTTP/2 header names are
//! lower case on the wire (RFC 9113 §8.2.1), so there is nothing to respell there.
//!
//! Over TLS the emulator offers `h2` and `http/1.1` by ALPN (only `http/1.1` with the setting
//! `http2` off) and serves the protocol the handshake agreed; it counts connections and HTTP/2
//! streams in the stats, so a test can tell requests that shared a connection.
//!
//! Each connection is layered as on a network: the TCP stream, the link's rate
//! ([`Throttled`], so bytes are counted on the wire), TLS when on, then the round trip of
//! each exchange ([`Exchanges`]) and the header spelling, which see HTTP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::state::Shared;
use crate::tls::ServerTls;
use crate::wan::{self, Exchanges, Throttled};

/// How connections are carried: the state holding the WAN settings, and TLS when on.
#[derive(Clone)]
pub struct Transport {
    pub state: Arc<Shared>,
    /// `Some` serves HTTPS on both origins.
    pub tls: Option<ServerTls>,
}

/// Serves `instance` and `login` until `shutdown` fires (or the sender is dropped).
pub async fn both(
    instance: TcpListener,
    instance_app: Router,
    login: TcpListener,
    login_app: Router,
    transport: Transport,
    shutdown: oneshot::Receiver<()>,
) {
    // Connections live in the set: when this task ends (shutdown or abort), they end too.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, app) = tokio::select! {
            _ = &mut shutdown => break,
            Ok((stream, _)) = instance.accept() => (stream, instance_app.clone()),
            Ok((stream, _)) = login.accept() => (stream, login_app.clone()),
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        connections.spawn(connection(stream, app, transport.clone()));
    }
}

/// One accepted connection: its handshakes, then HTTP until the client closes it.
async fn connection(tcp: TcpStream, app: Router, transport: Transport) {
    let Transport { state, tls } = transport;
    // The link's bursts are far below loopback's 64 KiB segment, so Nagle's algorithm would
    // hold each behind the previous one's acknowledgement (and the client's delayed ACK), a
    // stall that full-size segments on a real path do not see.
    let _ = tcp.set_nodelay(true);
    state.stats.lock().expect("stats lock").connections += 1;
    wan::pay_round_trips(&state, wan::TCP_HANDSHAKE_ROUND_TRIPS).await;
    let wire = Throttled::new(tcp, state.clone());
    let Some(tls) = tls else {
        return http1(wire, app, state).await;
    };
    let http2_offered = state.settings.read().expect("settings lock").http2;
    let acceptor = match http2_offered {
        true => tls.acceptor,
        false => tls.http1_acceptor,
    };
    // A client that does not trust the certificate ends the handshake; nothing to serve.
    let Ok(stream) = acceptor.accept(wire).await else {
        return;
    };
    let (_, session) = stream.get_ref();
    let round_trips = wan::tls_round_trips(session.protocol_version(), session.handshake_kind());
    let http2 = session.alpn_protocol() == Some(b"h2");
    wan::pay_round_trips(&state, round_trips).await;
    match http2 {
        true => serve_http2(stream, app, state).await,
        false => http1(stream, app, state).await,
    }
}

/// Serves HTTP/2 on `io`, counting the connection and each stream; each response starts one
/// round trip after its request arrived. Ends with GOAWAY when the control API asks.
async fn serve_http2<S>(io: S, app: Router, state: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    state.stats.lock().expect("stats lock").http2_connections += 1;
    let app = TowerToHyperService::new(app);
    let served = state.clone();
    // The round trip is paid per stream rather than per write (as `Exchanges` does for
    // HTTP/1.1): streams overlap, and the client's flow-control frames are no requests.
    let service = hyper::service::service_fn(move |request| {
        let (app, state) = (app.clone(), served.clone());
        async move {
            state.stats.lock().expect("stats lock").http2_streams += 1;
            wan::pay_round_trips(&state, 1).await;
            hyper::service::Service::call(&app, request).await
        }
    });
    let goaway = state.goaway.notified();
    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection, goaway);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = goaway => {}
    }
    state.stats.lock().expect("stats lock").http2_goaways += 1;
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Serves HTTP/1.1 (keep-alive included) on `io`.
async fn http1<S>(io: S, app: Router, state: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _ = hyper::server::conn::http1::Builder::new()
        .title_case_headers(true)
        .serve_connection(
            TokioIo::new(SalesforceCase(Exchanges::new(io, state))),
            TowerToHyperService::new(app),
        )
        .await;
}

/// Header names as hyper's title case writes them, and as Salesforce spells them (same
/// length, so the rewrite never changes how many bytes were written).
const SPELLINGS: &[(&[u8], &[u8])] = &[(
    b"\r\nSforce-Numberofrecords:",
    b"\r\nSforce-NumberOfRecords:",
)];

/// A connection that respells header names in each response head it writes.
struct SalesforceCase<S>(S);

/// Respells the head of `buf` (up to the blank line) when `buf` starts a response.
fn respell(buf: &[u8]) -> Option<Vec<u8>> {
    if !buf.starts_with(b"HTTP/1.1 ") {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let mut out: Option<Vec<u8>> = None;
    for (from, to) in SPELLINGS {
        let head = &buf[..head_end + 2];
        if let Some(at) = head.windows(from.len()).position(|w| w == *from) {
            let out = out.get_or_insert_with(|| buf.to_vec());
            out[at..at + to.len()].copy_from_slice(to);
        }
    }
    out
}

impl<S: AsyncRead + Unpin> AsyncRead for SalesforceCase<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SalesforceCase<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match respell(buf) {
            Some(fixed) => Pin::new(&mut self.0).poll_write(cx, &fixed),
            None => Pin::new(&mut self.0).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
