//! What a component imports.
//!
//! Threat: a connector that imports filesystem or socket interfaces (or an interface the host
//! does not define) is written for a sandbox other than Sluice's: it fails to link, or it was
//! built expecting a way out the host never gives. Rule: a connector imports only
//! `wasi:http`, the interfaces `wasi:http` itself needs (those of the `wasi:http/proxy` world:
//! `wasi:io`, `wasi:clocks`, `wasi:random`, `wasi:cli` standard streams) and the host interface
//! `sluice:connector/*`. The Rust standard library's runtime also imports
//! `wasi:cli/environment`, `wasi:cli/exit` and the terminal interfaces, which the host answers
//! empty; they are accepted as part of what a `wasi:http` guest needs.

use wasmparser::{Encoding, Parser, Payload};

use crate::report::Outcome;

/// Interface prefixes a connector may import.
const ALLOWED: [&str; 11] = [
    "wasi:http/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/terminal-",
    "sluice:connector/",
];

/// The names the component imports at its top level.
pub fn top_level_imports(wasm: &[u8]) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("the component cannot be parsed: {e}"))? {
            Payload::Version { encoding, .. } => {
                depth += 1;
                if depth == 1 && encoding != Encoding::Component {
                    return Err("a core module, not a component".into());
                }
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| format!("an unreadable import: {e}"))?;
                    names.push(import.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// Checks the component's imports.
pub fn check(wasm: &[u8]) -> Outcome {
    let names = match top_level_imports(wasm) {
        Ok(names) => names,
        Err(reason) => return Outcome::Fail(reason),
    };
    let refused: Vec<&String> = names
        .iter()
        .filter(|name| !ALLOWED.iter().any(|prefix| name.starts_with(prefix)))
        .collect();
    if refused.is_empty() {
        return Outcome::Pass(format!(
            "{} imports, all wasi:http, what it needs, or the host interface",
            names.len()
        ));
    }
    let list: Vec<&str> = refused.iter().map(|s| s.as_str()).collect();
    Outcome::Fail(format!(
        "imports beyond wasi:http and the host interface: {}",
        list.join(", ")
    ))
}
