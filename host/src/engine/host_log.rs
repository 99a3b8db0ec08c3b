//! The `log` function of the `sluice:connector/host` import: structured guest logs routed
//! into `tracing`.
//!
//! Threat: a guest could flood the host's logs or smuggle forged context into them. Rule: the
//! host, not the guest, attaches the plugin, integration and run ids; messages are truncated
//! and a per-call line budget stops floods.

use super::bindings::v0_1::sluice::connector::host::Level;

/// Longest message kept from one guest log line, in bytes.
const MAX_MESSAGE: usize = 4096;
/// Most lines one call may log before the rest are dropped.
const MAX_LINES_PER_CALL: u32 = 10_000;

/// Per-call logging context.
#[derive(Debug, Clone, Default)]
pub struct GuestLog {
    /// The plugin's name and version, e.g. `salesforce@3f2a…`.
    pub plugin: String,
    /// The integration the call serves, if any.
    pub integration: Option<String>,
    /// The run the call belongs to, if any.
    pub run: Option<String>,
    lines: u32,
}

impl GuestLog {
    /// A log context for one call.
    pub fn new(plugin: String, integration: Option<String>, run: Option<String>) -> Self {
        Self {
            plugin,
            integration,
            run,
            lines: 0,
        }
    }
}

impl GuestLog {
    /// Writes one guest line, with the host's ids attached.
    pub fn write(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        self.lines += 1;
        if self.lines > MAX_LINES_PER_CALL {
            return;
        }
        let mut message = message;
        if message.len() > MAX_MESSAGE {
            let cut = (0..=MAX_MESSAGE)
                .rev()
                .find(|i| message.is_char_boundary(*i))
                .unwrap_or(0);
            message.truncate(cut);
        }
        let fields = fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let integration = self.integration.as_deref().unwrap_or("-");
        let run = self.run.as_deref().unwrap_or("-");
        let plugin = self.plugin.as_str();
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(target: "sluice::guest", $lvl, plugin, integration, run, fields = %fields, "{message}")
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
        }
    }
}
