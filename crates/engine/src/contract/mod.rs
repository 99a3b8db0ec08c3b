//! The one place where contract versions are told apart.
//!
//! A component targets one `sluice:connector` version, named by its export. The engine links it
//! with that version's bindings ([`Pre`]) and calls it through them ([`Instance`]); calls of
//! older versions are converted to and from the newest types here ([`v0_1`]), so the rest of
//! the host speaks one contract.

pub(crate) mod v0_1;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use crate::bindings::{latest, v0_1 as b01, v0_2 as b02};
use crate::state::CallState;

/// The contract versions this host runs, newest first.
pub const SUPPORTED: [&str; 2] = [b02::VERSION, b01::VERSION];

/// Which contract version a component targets, from the interface it exports.
pub(crate) fn version_of(exports: &[String]) -> Option<&'static str> {
    if exports.iter().any(|e| e == b02::EXPORT) {
        Some(b02::VERSION)
    } else if exports.iter().any(|e| e == b01::EXPORT) {
        Some(b01::VERSION)
    } else {
        None
    }
}

/// A component pre-linked with the bindings of its contract version.
pub(crate) enum Pre {
    V0_1(b01::ConnectorPre<CallState>),
    V0_2(b02::SluiceConnectorPre<CallState>),
}

/// A live instance, called through the bindings of its contract version.
pub(crate) enum Instance {
    V0_1(b01::Connector),
    V0_2(b02::SluiceConnector),
}

impl Pre {
    /// Pre-links `pre` for `version` (one of [`SUPPORTED`]).
    pub(crate) fn new(version: &str, pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        match version {
            b01::VERSION => Ok(Self::V0_1(b01::ConnectorPre::new(pre)?)),
            _ => Ok(Self::V0_2(b02::SluiceConnectorPre::new(pre)?)),
        }
    }

    /// A fresh instance in `store`.
    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Instance> {
        Ok(match self {
            Self::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
            Self::V0_2(pre) => Instance::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

/// What `configure` returns.
pub type Configured = Result<latest::types::Configured, Vec<latest::types::FieldError>>;
