//! The `log` function of the `sluice:connector/host` import: structured guest logs routed
//! into `tracing`.
//!
//! Threat: a guest could flood the host's logs or smuggle forged context into them: a newline
//! in a message or field starts what looks like a host log line, an escape sequence rewrites
//! the operator's terminal, a huge field fills the disk. Rule: the host, not the guest,
//! attaches the connector, integration and run ids; every control character the guest sends is
//! escaped (`\n`, `\u{1b}`), so one guest line is one host line; messages, field names,
//! field values and the number of fields are capped, and a per-call line budget stops floods.

use super::bindings::latest::sluice::connector::host::Level;

/// Longest message kept from one guest log line, in bytes.
const MAX_MESSAGE: usize = 4096;
/// Longest field name kept, in bytes.
const MAX_FIELD_NAME: usize = 64;
/// Longest field value kept, in bytes.
const MAX_FIELD_VALUE: usize = 1024;
/// Most fields kept from one line.
const MAX_FIELDS: usize = 32;
/// Most lines one call may log before the rest are dropped.
const MAX_LINES_PER_CALL: u32 = 10_000;

/// Per-call logging context.
#[derive(Debug, Clone, Default)]
pub struct GuestLog {
    /// The connector's name and version, e.g. `salesforce@3f2a…`.
    pub connector: String,
    /// The integration the call serves, if any.
    pub integration: Option<String>,
    /// The run the call belongs to, if any.
    pub run: Option<String>,
    lines: u32,
}

impl GuestLog {
    /// A log context for one call.
    pub fn new(connector: String, integration: Option<String>, run: Option<String>) -> Self {
        Self {
            connector,
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
        let message = clean(&message, MAX_MESSAGE);
        let fields = fields
            .iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| format!("{}={}", clean(k, MAX_FIELD_NAME), clean(v, MAX_FIELD_VALUE)))
            .collect::<Vec<_>>()
            .join(" ");
        let integration = self.integration.as_deref().unwrap_or("-");
        let run = self.run.as_deref().unwrap_or("-");
        let connector = self.connector.as_str();
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(target: "sluice::guest", $lvl, connector, integration, run, fields = %fields, "{message}")
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

/// `text` cut to at most `max` bytes (on a character boundary, marked with `…`), with every
/// control character escaped.
fn clean(text: &str, max: usize) -> String {
    let cut = if text.len() > max {
        (0..=max)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0)
    } else {
        text.len()
    };
    let mut out = String::with_capacity(cut + 8);
    for c in text[..cut].chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_lengths_capped() {
        assert_eq!(
            clean("a\nb\r\u{1b}[2K\u{85}c", 100),
            "a\\nb\\r\\u{1b}[2K\\u{85}c"
        );
        assert_eq!(clean("héllo", 2), "h…");
        assert_eq!(clean(&"v".repeat(5000), 10), format!("{}…", "v".repeat(10)));
    }
}
