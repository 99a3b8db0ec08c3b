//! The Zendesk Support connector for Sluice: tickets, ticket comments and users, pulled
//! incrementally through Zendesk's cursor-based incremental exports.
//!
//! Everything here is plain Rust on the connector SDK that builds and unit-tests natively.
//! [`Zendesk`] implements [`sluice_connector_sdk::Connector`]; built for `wasm32`,
//! `export_connector!` binds it to the `sluice:connector` WIT world.

pub mod checkpoint;
pub mod client;
pub mod comments;
pub mod connection;
pub mod connector;
pub mod export;
pub mod settings;
pub mod streams;
#[cfg(test)]
mod tests;

pub use connector::Zendesk;

sluice_connector_sdk::export_connector!(Zendesk);
