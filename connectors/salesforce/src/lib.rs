//! The Salesforce connector for Sluice.
//!
//! Everything here is plain Rust that builds and unit-tests on the native target. The only
//! WebAssembly-specific part is `component.rs`, compiled for `wasm32`, which binds the
//! `sluice:connector` WIT world to [`connector`]'s functions.

pub mod bulk;
pub mod client;
pub mod connection_test;
pub mod connector;
pub mod cursor;
pub mod describe;
pub mod dt;
pub mod errors;
pub mod http;
pub mod limits;
pub mod model;
pub mod pull;
#[cfg(test)]
mod pull_tests;
pub mod settings;
pub mod soql;
#[cfg(test)]
mod testenv;

pub use connector::{authorize, configure, pull, test};

#[cfg(target_arch = "wasm32")]
// wit-bindgen's generated exports are `unsafe` glue around the canonical ABI.
#[allow(unsafe_code)]
mod component;
