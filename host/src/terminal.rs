//! Text from outside printed to the operator's terminal.
//!
//! Threat: names, settings, provider error messages and connector messages are chosen by
//! tenants, by connectors and by remote servers. Printed raw, an escape sequence in them can
//! rewrite the screen, hide or fake lines, set the window title, or (on some terminals) write
//! to the clipboard or answer back as typed input.
//!
//! Rule: everything the CLI prints for a human that did not come from Sluice itself goes
//! through [`safe`], which shows control characters (C0, DEL, C1) and Unicode direction
//! overrides as visible `\u{…}` escapes. JSON output needs nothing more: the encoder escapes
//! control characters itself.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control or direction-override character shown as a `\u{…}` escape.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_dangerous) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_dangerous(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn is_dangerous(c: char) -> bool {
    // Bidirectional embeddings, overrides and isolates reorder what the reader sees.
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(safe("Acme Support"), "Acme Support");
        assert_eq!(safe("x\u{1b}]0;pwned\u{7}"), "x\\u{1b}]0;pwned\\u{7}");
        assert_eq!(safe("a\r\nb\u{9b}2J"), "a\\u{d}\\u{a}b\\u{9b}2J");
        assert_eq!(safe("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(safe("ünïcödé ✓"), "ünïcödé ✓");
    }
}
