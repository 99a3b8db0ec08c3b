//! The host's own test helpers: everything in `sluice-test-support`, and this package's
//! `sluice` binary as a child process ([`binary`]), whose path only its own integration tests
//! know, and a real browser for the console ([`browser`]) and
//! its keyboard ([`keyboard`]).
#![allow(dead_code, unused_imports)]

pub mod binary;
pub mod browser;
pub mod keyboard;

pub use sluice_test_support::*;
