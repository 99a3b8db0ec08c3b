//! How the outbound client turns a provider's name into addresses.
//!
//! Threat: the answer to a lookup is chosen by whoever controls the name: it can change between
//! two requests (and point into a private range), so a connection opened under an earlier
//! answer must not carry a request whose own answer no longer includes its address.
//!
//! Rule: the outbound client asks the [`Resolver`] afresh for every request and checks every
//! address of the answer itself (see [`super::outbound`]); the resolver only answers and
//! decides nothing. It is the system's resolver unless the embedder supplies another one.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// The addresses a lookup answered, or why it failed.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// A source of name lookups.
pub trait Resolve: Send + Sync {
    /// Every address of `host`, with `port`.
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Lookup<'a>;
}

/// The resolver the outbound client uses (the system's by default).
#[derive(Clone)]
pub struct Resolver(Arc<dyn Resolve>);

impl Resolver {
    /// A resolver answering with `source`.
    pub fn new(source: impl Resolve + 'static) -> Self {
        Self(Arc::new(source))
    }

    /// Every address of `host`, with `port`.
    pub async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self.0.lookup(host, port).await
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new(System)
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

/// The operating system's resolver (`getaddrinfo`, off the async workers).
struct System;

impl Resolve for System {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Lookup<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}
