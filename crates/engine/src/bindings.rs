//! Generated glue for each `sluice:connector` contract version the host supports.
//!
//! One module per released WIT version, as Zed does for its extension API: a breaking change to
//! the contract adds a module here. The newest version's types are the host's own
//! ([`latest`]); [`crate::contract`] converts older components' calls to and from them, so the
//! rest of the host sees one contract.

/// Bindings for `sluice:connector@0.1.0`.
// The generated items carry the WIT's own doc comments where it has them.
#[allow(missing_docs)]
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../sdk/wit-0.1",
        world: "sluice:connector/connector",
        imports: { default: trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });

    /// The contract version these bindings implement.
    pub const VERSION: &str = "0.1.0";
    /// The name under which a component exports the connector interface.
    pub const EXPORT: &str = "sluice:connector/plugin@0.1.0";

    pub use exports::sluice::connector::plugin;
    pub use sluice::connector::types;
}

/// Bindings for `sluice:connector@0.2.0`.
#[allow(missing_docs)]
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "sluice:connector/sluice-connector",
        imports: { default: trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });

    /// The contract version these bindings implement.
    pub const VERSION: &str = "0.2.0";
    /// The name under which a component exports the connector interface.
    pub const EXPORT: &str = "sluice:connector/connector@0.2.0";

    pub use exports::sluice::connector::connector;
    pub use sluice::connector::types;
}

/// The newest contract version: its types are the ones the host works with.
pub use v0_2 as latest;
