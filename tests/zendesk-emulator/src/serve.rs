//! Serving the origin over HTTP/1.1, or HTTPS with [`crate::tls`].

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Serves `app` on `listener` until `shutdown` fires (or its sender is dropped).
pub async fn run(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: oneshot::Receiver<()>,
) {
    // Connections live in the set: when this task ends, they end too.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            Ok((stream, _)) = listener.accept() => stream,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        connections.spawn(connection(stream, app.clone(), tls.clone()));
    }
}

async fn connection(tcp: TcpStream, app: Router, tls: Option<TlsAcceptor>) {
    let service = TowerToHyperService::new(app);
    let http = hyper::server::conn::http1::Builder::new();
    match tls {
        None => {
            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
        }
        // A client that does not trust the certificate ends the handshake; nothing to serve.
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(tcp).await {
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            }
        }
    }
}
