//! The size of what `describe` and `discover` answer.
//!
//! Threat: a guest is untrusted. Its `describe` answer is read when a connector is installed
//! or listed, before any integration exists, and its `discover` answer is kept and served to
//! forms, docs and the admin API. Bounded only by the call's memory cap, a hostile guest could
//! hand the host hundreds of megabytes of labels or schemas per call, which the host then
//! copies, stores and renders.
//!
//! Rule: each answer is measured once lifted, as the bytes of every string it holds, and an
//! answer over [`crate::EngineLimits::max_describe_bytes`] or
//! [`crate::EngineLimits::max_discover_bytes`] is refused as
//! [`crate::EngineError::LimitExceeded`] naming the cap and the answer's size; the host never
//! uses a part of it.

use crate::wit::types::{ConnectorInfo, RequiredFor, Setting, SettingKind, StreamSchema};

/// The bytes of the strings a `describe` answer holds.
pub fn describe_bytes(info: &ConnectorInfo) -> usize {
    let capabilities: usize = info
        .capabilities
        .iter()
        .map(|c| c.name.len() + c.label.len())
        .sum();
    let settings: usize = info.settings.iter().map(setting_bytes).sum();
    info.name.len()
        + info.title.len()
        + info.version.len()
        + info.description.len()
        + info.documentation_url.as_ref().map_or(0, String::len)
        + capabilities
        + settings
}

/// The bytes of the strings one declared setting holds.
fn setting_bytes(setting: &Setting) -> usize {
    let options = match &setting.kind {
        SettingKind::Choice(options) => options.iter().map(|o| o.value.len() + o.label.len()).sum(),
        _ => 0,
    };
    let required = match &setting.required {
        RequiredFor::Capabilities(names) => names.iter().map(String::len).sum(),
        RequiredFor::None | RequiredFor::All => 0,
    };
    setting.name.len()
        + setting.label.len()
        + setting.help.len()
        + setting.default.as_ref().map_or(0, String::len)
        + setting.group.len()
        + options
        + required
}

/// The bytes of the strings a `discover` answer holds.
pub fn discover_bytes(streams: &[StreamSchema]) -> usize {
    streams
        .iter()
        .map(|s| {
            s.name.len()
                + s.json_schema.len()
                + s.key_fields.iter().map(String::len).sum::<usize>()
                + s.cursor_field.as_ref().map_or(0, String::len)
        })
        .sum()
}
