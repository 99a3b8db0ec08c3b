//! Generated glue for each `sluice:connector` contract version the host supports.
//!
//! One module per released WIT version, as Zed does for its extension API: a breaking change to
//! the contract adds a module here, and the engine dispatches on the version a component exports.

/// Bindings for `sluice:connector@0.1.0`.
// The generated items carry the WIT's own doc comments where it has them.
#[allow(missing_docs)]
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
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
    pub const PLUGIN_EXPORT: &str = "sluice:connector/plugin@0.1.0";

    pub use exports::sluice::connector::plugin;
    pub use sluice::connector::types;
}
