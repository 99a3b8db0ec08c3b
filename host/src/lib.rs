//! Sluice: a runtime for sandboxed data connectors.
//!
//! Connectors are WebAssembly components that implement the `sluice:connector` WIT contract
//! (see `wit/connector.wit`). This crate is the host: [`engine`] runs components in a sandbox;
//! the runtime around it keeps state in SQLite ([`store`], secrets sealed by [`secrets`]), runs
//! OAuth ([`oauth`], [`tokens`]), pulls ([`runner`], [`scheduler`]) and faces users through
//! [`cli`], [`admin`] and [`demo`]; [`app`] holds the operations they share.

pub use sluice_engine as engine;

pub mod admin;
pub mod admin_guard;
pub mod admin_token;
pub mod app;
pub mod cli;
pub mod demo;
pub mod duration;
pub mod http_server;
pub mod locks;
pub mod oauth;
pub mod output;
pub mod private_fs;
pub mod runner;
pub mod scheduler;
pub mod secrets;
pub mod serve;
pub mod store;
pub mod terminal;
pub mod tokens;
pub mod views;

/// The default Salesforce connector component, compiled from `plugin/` by `build.rs`.
pub const SALESFORCE_COMPONENT: &[u8] = include_bytes!(env!("SLUICE_SALESFORCE_WASM"));
