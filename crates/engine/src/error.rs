//! Why the engine could not load a connector or complete a call, and which limit a call hit.

/// Which resource limit a call exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`EngineLimits::cpu_deadline`].
    Cpu,
    /// [`EngineLimits::wall_timeout`].
    WallClock,
    /// [`EngineLimits::memory_bytes`].
    Memory,
    /// [`EngineLimits::max_page_bytes`].
    PageSize,
    /// [`EngineLimits::max_describe_bytes`].
    DescribeSize,
    /// [`EngineLimits::max_discover_bytes`].
    DiscoverSize,
    /// [`EngineLimits::max_resources`].
    Resources,
    /// [`EngineLimits::max_header_map_bytes`].
    HeaderMap,
    /// [`outbound::OutboundLimits::max_buffered_bytes`].
    HostBuffers,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Cpu => "CPU deadline",
            Limit::WallClock => "wall-clock timeout",
            Limit::Memory => "memory cap",
            Limit::PageSize => "page size cap",
            Limit::DescribeSize => "describe answer cap",
            Limit::DiscoverSize => "discover answer cap",
            Limit::Resources => "resource cap",
            Limit::HeaderMap => "header map cap",
            Limit::HostBuffers => "host buffer budget",
        })
    }
}

/// Why the engine could not load a connector or complete a call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The bytes are not a valid WebAssembly component.
    #[error("connector {connector} is not a valid WebAssembly component: {detail}")]
    InvalidComponent {
        /// The connector.
        connector: String,
        /// What the validator said.
        detail: String,
    },
    /// The component targets no contract version this host supports.
    #[error(
        "connector {connector} does not export a sluice:connector version this host supports \
         (it exports: {found}); supported: {supported}"
    )]
    UnsupportedContract {
        /// The connector.
        connector: String,
        /// The interfaces the component exports.
        found: String,
        /// The exports this host runs.
        supported: String,
    },
    /// The component's contract version has no such call.
    #[error(
        "connector {connector} targets sluice:connector@{contract}, which has no `{call}`: \
         install a version built on a newer contract"
    )]
    NotInContract {
        /// The connector.
        connector: String,
        /// The call.
        call: &'static str,
        /// The contract version the component targets.
        contract: &'static str,
    },
    /// The component's imports cannot be satisfied by this host.
    #[error("connector {connector} cannot be linked against this host: {detail}")]
    Link {
        /// The connector.
        connector: String,
        /// What is missing or mismatched.
        detail: String,
    },
    /// A call exceeded a resource limit.
    #[error("connector {connector}: call `{call}` exceeded the {limit} ({detail})")]
    LimitExceeded {
        /// The connector.
        connector: String,
        /// The exported function.
        call: &'static str,
        /// Which limit.
        limit: Limit,
        /// The configured value.
        detail: String,
    },
    /// The guest trapped.
    #[error("connector {connector}: call `{call}` trapped: {detail}")]
    Trap {
        /// The connector.
        connector: String,
        /// The exported function.
        call: &'static str,
        /// The trap message.
        detail: String,
    },
    /// The engine could not be set up.
    #[error("could not set up the WebAssembly engine: {0}")]
    Setup(String),
}
