//! Sluice: a runtime for sandboxed data connectors, as a command line, an admin API and a demo.
//!
//! Connectors are WebAssembly components that implement the `sluice:connector` WIT contract
//! (see `crates/sdk/wit/connector.wit`). [`engine`] (`sluice-engine`) runs them in a sandbox;
//! the runtime (`sluice-runtime`: [`app`], [`store`], [`runner`], [`scheduler`], [`tokens`], …)
//! keeps their state and runs their pulls. This crate faces users through [`cli`] (one module
//! per command, `serve` and `demo` among them) and [`admin`], and embeds the Salesforce
//! connector ([`SALESFORCE_COMPONENT`]).

pub use sluice_runtime::{
    about, app, data_dir, duration, engine, grant, locks, oauth, private_fs, retention, runner,
    scheduler, secrets, store, tokens, views, webhooks,
};

pub mod admin;
pub mod admin_guard;
pub mod admin_token;
pub mod cli;
pub mod console;
pub mod heap;
pub mod http_server;
pub mod openapi;
pub mod output;
pub mod terminal;

/// The default Salesforce connector component, compiled from `connectors/salesforce/` by `build.rs`.
pub const SALESFORCE_COMPONENT: &[u8] = include_bytes!(env!("SLUICE_SALESFORCE_WASM"));
