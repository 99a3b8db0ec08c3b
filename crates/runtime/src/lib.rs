//! Sluice's runtime: the platform logic around the engine, with no front end.
//!
//! Connectors are WebAssembly components that implement the `sluice:connector` WIT contract
//! (see `crates/sdk/wit/connector.wit`); [`engine`] (the `sluice-engine` crate) runs them in a
//! sandbox.
//! This crate keeps state in SQLite ([`store`], secrets sealed by [`secrets`], lock files in
//! [`locks`]), runs OAuth ([`oauth`], [`tokens`]), pulls ([`runner`], [`scheduler`]) and
//! answers the operations every front end shares ([`app`], shown through [`views`]). It has no
//! command line, no HTTP server and no embedded connector: the `sluice` crate adds those.

pub use sluice_engine as engine;

pub mod about;
pub mod app;
pub mod data_dir;
pub mod duration;
pub mod entered;
mod error_text;
pub mod grant;
pub mod locks;
pub mod oauth;
pub mod private_fs;
pub mod retention;
pub mod runner;
pub mod scheduler;
pub mod secrets;
pub mod store;
pub mod tokens;
pub mod views;
pub mod webhooks;
