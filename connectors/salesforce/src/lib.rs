//! The Salesforce connector for Sluice.
//!
//! Everything here is plain Rust that builds and unit-tests on the native target.
//! [`Salesforce`] implements the SDK's [`sluice_connector_sdk::Connector`]; built for
//! `wasm32`, `export_connector!` binds it to the `sluice:connector` WIT world.

pub mod bulk;
pub mod client;
pub mod connection_test;
pub mod connector;
pub mod cursor;
pub mod describe;
pub mod discover;
pub mod dt;
pub mod errors;
pub mod limits;
pub mod pull;
#[cfg(test)]
mod pull_tests;
pub mod settings;
pub mod soql;
#[cfg(test)]
mod testenv;

pub use connector::Salesforce;

sluice_connector_sdk::export_connector!(Salesforce);
