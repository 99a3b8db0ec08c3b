//! Kept connections of the outbound client: idle HTTP/1.1 keep-alive connections, and HTTP/2
//! connections shared by concurrent requests.
//!
//! Threat: a kept connection outlives the decision that opened it. Handed to another
//! integration it would carry one tenant's requests (and token) over a session another tenant
//! opened; taken after the provider's name re-resolved it would reach an address the policy no
//! longer approves; an unbounded pool holds sockets and memory for ever.
//!
//! Rule: a connection is kept under (tenant, origin, the socket address it was opened to) and
//! only by [`super::outbound`]: an HTTP/1.1 one after its response was read to the end without
//! error and without `Connection: close`, an HTTP/2 one as soon as it is open (its streams are
//! independent, so it carries the tenant's concurrent requests). It is taken only by a request
//! of the same tenant to the same origin that passed the policy again and whose freshly
//! approved addresses include the kept address; the pool itself decides nothing about egress.
//! Taking an HTTP/1.1 connection removes it (one request at a time); taking an HTTP/2 one hands
//! out a handle and keeps it, and a key holds at most one. At most
//! [`PoolLimits::max_idle_per_key`] per key and [`PoolLimits::max_idle_total`] in all are kept
//! (the oldest go first); none is reused after [`PoolLimits::idle_timeout`] without use
//! (expired ones are dropped at the pool's next use), and one the server closed meanwhile
//! (an HTTP/2 GOAWAY included) is dropped when found.
//!
//! While a tenant has no kept connection to an origin, its new connections there are opened one
//! at a time ([`ConnectionPool::gate`]), so that requests arriving together share the first
//! HTTP/2 connection instead of each opening one; once an origin answered with HTTP/1.1 the
//! gate is skipped, since such connections are never shared.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};

/// A request as the outbound client sends it: buffered.
pub type OutboundRequest = http::Request<Full<Bytes>>;

/// The sender side of a connection.
pub enum Sender {
    /// An HTTP/1.1 connection: one request at a time.
    Http1(http1::SendRequest<Full<Bytes>>),
    /// An HTTP/2 connection: requests run as concurrent streams.
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// Whether the connection has ended (closed by either side, or after a GOAWAY).
    pub fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }

    /// Whether several requests may use the connection at once.
    pub fn is_shared(&self) -> bool {
        matches!(self, Sender::Http2(_))
    }

    /// Waits until the connection can take a request; an error when it has ended.
    pub async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::Http1(sender) => sender.ready().await,
            Sender::Http2(sender) => sender.ready().await,
        }
    }

    /// Sends `request`; on failure the request comes back when it never left.
    pub async fn try_send_request(
        &mut self,
        request: OutboundRequest,
    ) -> Result<http::Response<Incoming>, TrySendError<OutboundRequest>> {
        match self {
            Sender::Http1(sender) => sender.try_send_request(request).await,
            Sender::Http2(sender) => sender.try_send_request(request).await,
        }
    }

    /// A second handle on a shared (HTTP/2) connection.
    pub fn share(&self) -> Option<Sender> {
        match self {
            Sender::Http1(_) => None,
            Sender::Http2(sender) => Some(Sender::Http2(sender.clone())),
        }
    }
}

/// Bounds of the connection pool.
#[derive(Debug, Clone)]
pub struct PoolLimits {
    /// How long an unused connection is kept.
    pub idle_timeout: Duration,
    /// Connections kept per (tenant, origin, address), an HTTP/2 one counting as one; 0
    /// disables reuse.
    pub max_idle_per_key: usize,
    /// Connections kept in all.
    pub max_idle_total: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(90),
            max_idle_per_key: 8,
            max_idle_total: 256,
        }
    }
}

impl PoolLimits {
    /// Whether connections are kept at all.
    pub fn reuses(&self) -> bool {
        self.max_idle_per_key > 0 && self.max_idle_total > 0
    }
}

/// Where a connection may be reused: one tenant (integration, else connector), one origin, the
/// address the policy approved when it was opened.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The integration, or the connector for calls without one.
    pub tenant: Arc<str>,
    /// `scheme://host:port`.
    pub origin: String,
    /// The socket address the connection goes to.
    pub addr: SocketAddr,
}

struct Idle {
    sender: Sender,
    /// When it was kept, or last handed out when shared.
    since: Instant,
}

/// The tenant's connection opening to one origin, one at a time (see the module doc).
#[derive(Default)]
pub struct Gate {
    opening: tokio::sync::Mutex<()>,
    /// The origin answered with HTTP/1.1: its connections are never shared, no need to wait.
    http1: AtomicBool,
}

impl Gate {
    /// Waits for the tenant's other connection opening to this origin, unless it speaks
    /// HTTP/1.1; holds the turn until the guard is dropped.
    pub async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.http1.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.opening.lock().await)
    }

    /// Records the protocol a new connection to this origin negotiated.
    pub fn opened(&self, sender: &Sender) {
        self.http1.store(!sender.is_shared(), Ordering::Relaxed);
    }
}

type GateKey = (Arc<str>, String);

#[derive(Default)]
struct Slots {
    by_key: HashMap<PoolKey, Vec<Idle>>,
    total: usize,
    gates: HashMap<GateKey, Arc<Gate>>,
}

/// Kept connections of every tenant of one engine.
pub struct ConnectionPool {
    limits: PoolLimits,
    slots: Mutex<Slots>,
}

impl ConnectionPool {
    /// An empty pool with `limits`.
    pub fn new(limits: PoolLimits) -> Self {
        Self {
            limits,
            slots: Mutex::new(Slots::default()),
        }
    }

    /// A live connection of `tenant` to `origin` at one of `approved` (tried in order), with
    /// its address: the most recently kept one; an HTTP/2 connection stays kept for others.
    pub fn take(
        &self,
        tenant: &Arc<str>,
        origin: &str,
        approved: &[SocketAddr],
    ) -> Option<(SocketAddr, Sender)> {
        let mut slots = self.lock();
        slots.sweep(self.limits.idle_timeout);
        for addr in approved {
            let key = PoolKey {
                tenant: tenant.clone(),
                origin: origin.to_string(),
                addr: *addr,
            };
            let Some(list) = slots.by_key.get_mut(&key) else {
                continue;
            };
            // The sweep just dropped closed ones.
            let found = match list.last_mut() {
                Some(idle) => match idle.sender.share() {
                    Some(shared) => {
                        idle.since = Instant::now();
                        Some(shared)
                    }
                    None => list.pop().map(|idle| idle.sender),
                },
                None => None,
            };
            if list.is_empty() {
                slots.by_key.remove(&key);
            }
            if let Some(sender) = found {
                if !sender.is_shared() {
                    slots.total -= 1;
                }
                return Some((*addr, sender));
            }
        }
        None
    }

    /// Keeps `sender` for reuse under `key`, within the bounds; an HTTP/2 connection replaces
    /// the one kept there.
    pub fn put(&self, key: PoolKey, sender: Sender) {
        if !self.limits.reuses() || sender.is_closed() {
            return;
        }
        let mut slots = self.lock();
        slots.sweep(self.limits.idle_timeout);
        let list = slots.by_key.entry(key).or_default();
        let before = list.len();
        if sender.is_shared() {
            list.retain(|idle| !idle.sender.is_shared());
        }
        if list.len() >= self.limits.max_idle_per_key {
            list.remove(0);
        }
        list.push(Idle {
            sender,
            since: Instant::now(),
        });
        let after = list.len();
        slots.total = slots.total + after - before;
        while slots.total > self.limits.max_idle_total {
            slots.drop_oldest();
        }
    }

    /// The turn `tenant` takes to open a connection to `origin`; `None` when nothing is kept.
    pub fn gate(&self, tenant: &Arc<str>, origin: &str) -> Option<Arc<Gate>> {
        if !self.limits.reuses() {
            return None;
        }
        let mut slots = self.lock();
        let gate = slots
            .gates
            .entry((tenant.clone(), origin.to_string()))
            .or_default();
        Some(gate.clone())
    }

    /// Connections kept now.
    pub fn idle(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Slots {
    /// Drops connections unused longer than `timeout` or closed by the other side, and the
    /// gates nobody waits at and no kept connection belongs to.
    fn sweep(&mut self, timeout: Duration) {
        let mut total = 0;
        self.by_key.retain(|_, list| {
            list.retain(|idle| idle.since.elapsed() < timeout && !idle.sender.is_closed());
            total += list.len();
            !list.is_empty()
        });
        self.total = total;
        let by_key = &self.by_key;
        self.gates.retain(|(tenant, origin), gate| {
            Arc::strong_count(gate) > 1
                || by_key
                    .keys()
                    .any(|key| key.tenant == *tenant && key.origin == *origin)
        });
    }

    fn drop_oldest(&mut self) {
        let oldest = self
            .by_key
            .iter()
            .filter_map(|(key, list)| list.first().map(|idle| (key.clone(), idle.since)))
            .min_by_key(|(_, since)| *since)
            .map(|(key, _)| key);
        let Some(key) = oldest else {
            self.total = 0;
            return;
        };
        if let Some(list) = self.by_key.get_mut(&key) {
            list.remove(0);
            if list.is_empty() {
                self.by_key.remove(&key);
            }
        }
        self.total -= 1;
    }
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("limits", &self.limits)
            .field("idle", &self.idle())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live HTTP/1.1 connection over an in-memory pipe; the pipe's other end is returned to
    /// keep it open.
    async fn connection() -> (Sender, tokio::io::DuplexStream) {
        let (client, server) = tokio::io::duplex(1024);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(client))
                .await
                .unwrap();
        tokio::spawn(conn);
        (Sender::Http1(sender), server)
    }

    /// A live HTTP/2 connection over an in-memory pipe, as [`connection`].
    async fn shared_connection() -> (Sender, tokio::io::DuplexStream) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            wasmtime_wasi_http::io::TokioIo::new(client),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        (Sender::Http2(sender), server)
    }

    fn key(tenant: &str, origin: &str, port: u16) -> PoolKey {
        PoolKey {
            tenant: tenant.into(),
            origin: origin.into(),
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
        }
    }

    const ORIGIN: &str = "https://api.example:443";

    #[tokio::test]
    async fn a_connection_is_taken_only_at_an_approved_address_of_its_tenant_and_origin() {
        let pool = ConnectionPool::new(PoolLimits::default());
        let (sender, _pipe) = connection().await;
        let kept = key("acme", ORIGIN, 1);
        pool.put(kept.clone(), sender);
        let elsewhere = key("acme", ORIGIN, 2).addr;
        assert!(pool.take(&kept.tenant, ORIGIN, &[elsewhere]).is_none());
        assert!(pool.take(&"globex".into(), ORIGIN, &[kept.addr]).is_none());
        assert!(
            pool.take(&kept.tenant, "https://other.example:443", &[kept.addr])
                .is_none()
        );
        let (addr, _) = pool
            .take(&kept.tenant, ORIGIN, &[elsewhere, kept.addr])
            .expect("kept at an approved address");
        assert_eq!(addr, kept.addr);
        assert_eq!(pool.idle(), 0, "a taken connection leaves the pool");
    }

    #[tokio::test]
    async fn the_caps_and_the_idle_timeout_hold() {
        let mut pipes = Vec::new();
        let per_key = ConnectionPool::new(PoolLimits {
            max_idle_per_key: 2,
            ..PoolLimits::default()
        });
        for _ in 0..3 {
            let (sender, pipe) = connection().await;
            pipes.push(pipe);
            per_key.put(key("acme", ORIGIN, 1), sender);
        }
        assert_eq!(per_key.idle(), 2);

        let total = ConnectionPool::new(PoolLimits {
            max_idle_total: 2,
            ..PoolLimits::default()
        });
        for port in 1..=3 {
            let (sender, pipe) = connection().await;
            pipes.push(pipe);
            total.put(key("acme", ORIGIN, port), sender);
        }
        assert_eq!(total.idle(), 2);
        let oldest = key("acme", ORIGIN, 1);
        assert!(total.take(&oldest.tenant, ORIGIN, &[oldest.addr]).is_none());

        let expiring = ConnectionPool::new(PoolLimits {
            idle_timeout: Duration::ZERO,
            ..PoolLimits::default()
        });
        let (sender, _pipe) = connection().await;
        let kept = key("acme", ORIGIN, 1);
        expiring.put(kept.clone(), sender);
        assert!(expiring.take(&kept.tenant, ORIGIN, &[kept.addr]).is_none());
        assert_eq!(expiring.idle(), 0);
    }

    #[tokio::test]
    async fn a_shared_connection_stays_kept_and_is_handed_out_only_at_an_approved_address() {
        let pool = ConnectionPool::new(PoolLimits::default());
        let (sender, _pipe) = shared_connection().await;
        let kept = key("acme", ORIGIN, 1);
        pool.put(kept.clone(), sender);
        // The name now resolves elsewhere: the connection to the old address is not used.
        let moved = key("acme", ORIGIN, 2).addr;
        assert!(pool.take(&kept.tenant, ORIGIN, &[moved]).is_none());
        assert!(pool.take(&"globex".into(), ORIGIN, &[kept.addr]).is_none());
        for _ in 0..3 {
            let (addr, sender) = pool
                .take(&kept.tenant, ORIGIN, &[moved, kept.addr])
                .expect("shared at an approved address");
            assert_eq!(addr, kept.addr);
            assert!(sender.is_shared());
        }
        assert_eq!(
            pool.idle(),
            1,
            "a shared connection stays kept while in use"
        );

        // A newer connection replaces the one kept under the same key.
        let (newer, _newer_pipe) = shared_connection().await;
        pool.put(kept.clone(), newer);
        assert_eq!(pool.idle(), 1);
    }

    #[tokio::test]
    async fn a_shared_connection_the_server_closed_is_dropped() {
        let pool = ConnectionPool::new(PoolLimits::default());
        let (sender, pipe) = shared_connection().await;
        let kept = key("acme", ORIGIN, 1);
        pool.put(kept.clone(), sender);
        drop(pipe);
        // The connection task sees the end of the stream and closes the sender.
        for _ in 0..100 {
            if pool.take(&kept.tenant, ORIGIN, &[kept.addr]).is_none() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(pool.take(&kept.tenant, ORIGIN, &[kept.addr]).is_none());
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn no_gate_and_nothing_kept_when_reuse_is_off() {
        let pool = ConnectionPool::new(PoolLimits {
            max_idle_per_key: 0,
            ..PoolLimits::default()
        });
        let (sender, _pipe) = shared_connection().await;
        let kept = key("acme", ORIGIN, 1);
        pool.put(kept.clone(), sender);
        assert_eq!(pool.idle(), 0);
        assert!(pool.gate(&kept.tenant, ORIGIN).is_none());
    }
}
