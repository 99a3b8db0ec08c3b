//! Idle keep-alive connections of the outbound client, kept for the next request.
//!
//! Threat: a kept connection outlives the decision that opened it. Handed to another
//! integration it would carry one tenant's requests (and token) over a session another tenant
//! opened; taken after the provider's name re-resolved it would reach an address the policy no
//! longer approves; an unbounded pool holds sockets and memory for ever.
//!
//! Rule: a connection is kept under (tenant, origin, the socket address it was opened to) and
//! only by [`super::outbound`] after its response was read to the end without error and without
//! `Connection: close`. It is taken only by a request of the same tenant to the same origin that
//! passed the policy again and whose freshly approved addresses include the kept address; the
//! pool itself decides nothing about egress. At most [`PoolLimits::max_idle_per_key`] per key
//! and [`PoolLimits::max_idle_total`] in all are kept (the oldest go first); none is reused
//! after [`PoolLimits::idle_timeout`] (expired ones are closed at the pool's next use), and one
//! the server closed meanwhile is dropped when found.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

/// The sender side of an HTTP/1.1 connection.
pub type Sender = SendRequest<Full<Bytes>>;

/// Bounds of the idle-connection pool.
#[derive(Debug, Clone)]
pub struct PoolLimits {
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Idle connections kept per (tenant, origin, address); 0 disables reuse.
    pub max_idle_per_key: usize,
    /// Idle connections kept in all.
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
    since: Instant,
}

#[derive(Default)]
struct Slots {
    by_key: HashMap<PoolKey, Vec<Idle>>,
    total: usize,
}

/// Idle connections of every tenant of one engine.
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

    /// The most recently kept live connection of `tenant` to `origin` at one of `approved`
    /// (tried in order), with its address.
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
            let mut found = None;
            let mut dropped = 0;
            while let Some(idle) = list.pop() {
                dropped += 1;
                if !idle.sender.is_closed() {
                    found = Some(idle.sender);
                    break;
                }
            }
            if list.is_empty() {
                slots.by_key.remove(&key);
            }
            slots.total -= dropped;
            if let Some(sender) = found {
                return Some((*addr, sender));
            }
        }
        None
    }

    /// Keeps `sender` for reuse under `key`, within the bounds.
    pub fn put(&self, key: PoolKey, sender: Sender) {
        if self.limits.max_idle_per_key == 0 || self.limits.max_idle_total == 0 {
            return;
        }
        if sender.is_closed() {
            return;
        }
        let mut slots = self.lock();
        slots.sweep(self.limits.idle_timeout);
        let list = slots.by_key.entry(key).or_default();
        let mut freed = 0;
        if list.len() >= self.limits.max_idle_per_key {
            list.remove(0);
            freed = 1;
        }
        list.push(Idle {
            sender,
            since: Instant::now(),
        });
        slots.total = slots.total + 1 - freed;
        while slots.total > self.limits.max_idle_total {
            slots.drop_oldest();
        }
    }

    /// Idle connections kept now.
    pub fn idle(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Slots {
    /// Drops connections idle longer than `timeout` or closed by the other side.
    fn sweep(&mut self, timeout: Duration) {
        let mut total = 0;
        self.by_key.retain(|_, list| {
            list.retain(|idle| idle.since.elapsed() < timeout && !idle.sender.is_closed());
            total += list.len();
            !list.is_empty()
        });
        self.total = total;
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

    /// A live connection over an in-memory pipe; the pipe's other end is returned to keep it open.
    async fn connection() -> (Sender, tokio::io::DuplexStream) {
        let (client, server) = tokio::io::duplex(1024);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(client))
                .await
                .unwrap();
        tokio::spawn(conn);
        (sender, server)
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
}
