//! Table and schema names from stream names.
//!
//! Threat: stream names come from the connector, a guest we do not trust, and become SQL
//! identifiers. A name spliced into a statement could run SQL of the guest's choosing; a name
//! PostgreSQL truncates (past 63 bytes) could land two streams in one table; a name in our
//! own `_sluice_` namespace could overwrite the cursor table.
//! Rule: a name is used only after [`Ident::new`] accepted it (letters, digits, `_`, `-`, `.`,
//! at most 63 bytes, not starting with `_sluice`), and only ever quoted ([`Ident::quoted`]).
//! Record contents never become SQL text: they travel as bound parameters.

/// The longest identifier PostgreSQL keeps whole (NAMEDATALEN - 1).
pub const MAX_IDENT_BYTES: usize = 63;

/// The prefix of the names this crate owns (the cursor table, the bookkeeping columns).
pub const RESERVED_PREFIX: &str = "_sluice";

/// Why a name cannot be a PostgreSQL identifier here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} cannot name a PostgreSQL {what}: {why}")]
pub struct BadName {
    /// The name given (stream or schema).
    pub name: String,
    /// Whether it was to name a table or a schema.
    pub what: &'static str,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A validated identifier: a stream's table or the destination schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Accepts `name` as the identifier of a `what` ("table" or "schema"), or says why not.
    pub fn new(name: &str, what: &'static str) -> Result<Self, BadName> {
        let bad = |why| BadName {
            name: name.to_string(),
            what,
            why,
        };
        if name.is_empty() {
            return Err(bad("it is empty"));
        }
        if name.len() > MAX_IDENT_BYTES {
            return Err(bad(
                "it is longer than 63 bytes, which PostgreSQL would truncate",
            ));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
        if !name.bytes().all(allowed) {
            return Err(bad("only letters, digits, '_', '-' and '.' are accepted"));
        }
        if name.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
            return Err(bad(
                "names starting with \"_sluice\" are reserved for Sluice's own",
            ));
        }
        Ok(Self(name.to_string()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier (case kept).
    pub fn quoted(&self) -> String {
        quote(&self.0)
    }
}

impl std::fmt::Display for Ident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `name` as a quoted SQL identifier. Validated names hold no `"`; doubling it anyway keeps
/// this safe for any name.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_become_quoted_identifiers() {
        assert_eq!(
            Ident::new("Account", "table").unwrap().quoted(),
            "\"Account\""
        );
        assert_eq!(
            Ident::new("ticket-events.v2", "table").unwrap().quoted(),
            "\"ticket-events.v2\""
        );
    }

    #[test]
    fn hostile_or_ambiguous_names_are_refused_with_the_reason() {
        for (name, why) in [
            ("", "empty"),
            ("a\"; DROP TABLE x; --", "only letters"),
            ("Acc ount", "only letters"),
            ("Äccount", "only letters"),
            ("nul\0byte", "only letters"),
            ("_sluice_cursors", "reserved"),
            ("_SLUICE_x", "reserved"),
        ] {
            let err = Ident::new(name, "table").unwrap_err();
            assert!(err.why.contains(why), "{name:?}: {err}");
            assert!(err.to_string().contains("table"), "{err}");
        }
        let long = "a".repeat(64);
        assert!(Ident::new(&long, "table").unwrap_err().why.contains("63"));
        assert!(Ident::new(&"a".repeat(63), "table").is_ok());
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
