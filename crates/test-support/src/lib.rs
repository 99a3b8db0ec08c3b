//! Helpers shared by Sluice's tests and its bench: temporary data directories ([`dirs`]), the
//! hostile guest component built once per target directory ([`guests`]), WIT values and egress
//! rules ([`wit`]), a scripted loopback HTTP server ([`server`]), a fake credential provider
//! ([`credentials`]), captured logs ([`logs`]), a throwaway PostgreSQL cluster ([`postgres`]), a new store on each backend ([`stores`]), an opened app with the OAuth connect flow and
//! the emulator's control API ([`runtime`]), and a served `sluice serve` spoken to over raw
//! HTTP/1.1 ([`served`]), a toy REST/JSON API behind an API key ([`toy_api`]), and a
//! workspace member copied out as a standalone crate ([`standalone`]).
//!
//! A test-only crate: `sluice` takes it as a dev-dependency and the bench as a dependency;
//! nothing shipped depends on it.

pub mod conformance_guest;
pub mod credentials;
pub mod dirs;
pub mod guests;
pub mod logs;
pub mod postgres;
pub mod runtime;
pub mod served;
pub mod server;
pub mod standalone;
pub mod stores;
pub mod toy_api;
pub mod wit;

pub use conformance_guest::conformance_guest;
pub use credentials::FakeProvider;
pub use dirs::{TestDir, temp_dir};
pub use guests::{
    OVERSIZED_DESCRIBE_BYTES, creds_guest, creds_guest_oversized_describe, hostile, hostile_broken,
    target_dir, with_custom_section, workspace,
};
pub use logs::captured_logs;
pub use postgres::{PgCluster, PgDatabase};
pub use server::{Received, Reply, TestServer};
pub use toy_api::ToyApi;
pub use wit::{
    host_ctx, manifest_json, origin, policy_for, pull_request, rules, session, settings,
};
