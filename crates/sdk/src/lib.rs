//! Everything a Sluice connector needs besides its provider logic.
//!
//! A connector implements [`Connector`] over the plain-Rust contract types of [`model`], talks
//! to its provider through a [`Host`], and calls [`export_connector!`] once. Built for
//! `wasm32-wasip2`, the macro exports the type as the `sluice:connector/connector` interface and
//! the host is `wasi:http` plus the contract's `host` imports; built natively, the same code
//! unit-tests against [`fake::FakeHost`] (and, with the `native` feature, runs against a real
//! provider through [`native::NativeHost`]). No connector code touches wit-bindgen.

pub mod checkpoint;
pub mod failures;
pub mod fake;
pub mod http;
pub mod model;
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
pub mod native;
pub mod paginate;
pub mod window;

#[cfg(target_arch = "wasm32")]
pub mod guest;
#[cfg(target_arch = "wasm32")]
pub mod wasi_http;

/// The bindings wit-bindgen generates for the `sluice:connector` world, once, for
/// [`export_connector!`] and [`wasi_http`]. Not a stable interface: connectors use [`model`].
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
// Generated glue around the canonical ABI: `unsafe` by nature, and without docs of its own.
#[allow(unsafe_code, missing_docs)]
pub mod wit {
    wit_bindgen::generate!({
        path: "wit",
        world: "sluice:connector/sluice-connector",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_sluice_connector",
        default_bindings_module: "$crate::wit",
    });
}

pub use http::{Host, InFlight, Method, Request, Response, TransportError};
pub use model::*;

/// The contract version this SDK's WIT files describe.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// A connector: the calls of the `sluice:connector/connector` interface over plain types.
///
/// The functions take no `self`: the host creates a fresh instance for every call, so a
/// connector keeps nothing between calls; whatever must survive goes into a page's checkpoint.
pub trait Connector {
    /// What the connector is and which settings it takes; makes no call.
    fn describe() -> ConnectorInfo;

    /// Validates settings and says what the connector needs: hosts, credential plan and
    /// streams. Every error names a declared setting (or `capability`).
    fn configure(settings: &Settings, context: &HostContext)
    -> Result<Configured, Vec<FieldError>>;

    /// Test Connection: one cheap probe of each thing that can be wrong.
    fn test(host: &mut dyn Host, session: &Session) -> TestReport;

    /// The account the session's credentials belong to.
    fn account(host: &mut dyn Host, session: &Session) -> Result<AccountInfo, Failure>;

    /// Each configured stream's JSON Schema, keys and cursor field.
    fn discover(host: &mut dyn Host, session: &Session) -> Result<Vec<StreamSchema>, Failure>;

    /// Reads the next bounded page of one stream, resuming from the request's checkpoint.
    fn pull(host: &mut dyn Host, session: &Session, request: &PullRequest)
    -> Result<Page, Failure>;
}

/// Exports a [`Connector`] type as the component's `sluice:connector/connector` interface.
///
/// Call it once, at the crate's top level. On wasm32 it generates the component's exports;
/// natively it only checks that the type implements [`Connector`], so the same crate builds
/// and unit-tests on the host.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        #[cfg(target_arch = "wasm32")]
        // The exports wit-bindgen generates are `unsafe` glue around the canonical ABI.
        #[allow(unsafe_code)]
        const _: () = {
            use $crate::wit::sluice::connector::types as wit_types;

            struct SluiceConnectorExport;

            impl $crate::wit::exports::sluice::connector::connector::Guest for SluiceConnectorExport {
                fn describe() -> wit_types::ConnectorInfo {
                    $crate::guest::describe::<$connector>()
                }

                fn configure(
                    settings: wit_types::Settings,
                    context: wit_types::HostContext,
                ) -> Result<wit_types::Configured, Vec<wit_types::FieldError>> {
                    $crate::guest::configure::<$connector>(settings, context)
                }

                fn test(session: wit_types::Session) -> wit_types::TestReport {
                    $crate::guest::test::<$connector>(session)
                }

                fn account(
                    session: wit_types::Session,
                ) -> Result<wit_types::AccountInfo, wit_types::Failure> {
                    $crate::guest::account::<$connector>(session)
                }

                fn discover(
                    session: wit_types::Session,
                ) -> Result<Vec<wit_types::StreamSchema>, wit_types::Failure> {
                    $crate::guest::discover::<$connector>(session)
                }

                fn pull(
                    session: wit_types::Session,
                    request: wit_types::PullRequest,
                ) -> Result<wit_types::Page, wit_types::Failure> {
                    $crate::guest::pull::<$connector>(session, request)
                }
            }

            $crate::wit::__export_sluice_connector!(SluiceConnectorExport with_types_in $crate::wit);
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            fn is_a_connector<C: $crate::Connector>() {}
            let _ = is_a_connector::<$connector>;
        };
    };
}

/// The README's example connector and its unit test, compiled and run as a doc-test so the
/// README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
