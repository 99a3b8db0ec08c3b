//! Versioned checkpoints: a hot-swapped connector version resumes from the checkpoints the
//! previous version wrote.
//!
//! The danger: the host keeps a stream's checkpoint across connector versions, so a new
//! version that changed its checkpoint's shape would misread the old one (and silently skip
//! or repeat records), and an older version put back after a newer one would misread the
//! newer shape. The rule: a checkpoint is a JSON object carrying its version in `v`. Its own
//! version is read as is; an older one goes through the connector's [`Versioned::migrate`]; a
//! newer one, or one that does not read, fails the pull with an error that says so, and
//! nothing is read or lost.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use sluice_connector_sdk::checkpoint::{self, Versioned};
//!
//! #[derive(Serialize, Deserialize)]
//! struct State { after: String }
//!
//! impl Versioned for State {
//!     const VERSION: u32 = 2;
//!     // Version 1 kept the cursor as `cursor`.
//!     fn migrate(from: u32, old: serde_json::Value) -> Result<Self, String> {
//!         match (from, old["cursor"].as_str()) {
//!             (1, Some(c)) => Ok(State { after: c.to_string() }),
//!             _ => Err("version 1 without a cursor".into()),
//!         }
//!     }
//! }
//!
//! let old = r#"{"v":1,"cursor":"abc"}"#;
//! let state: State = checkpoint::load(Some(old)).unwrap().unwrap();
//! assert_eq!(checkpoint::save(&state), r#"{"after":"abc","v":2}"#);
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::model::{Failure, FailureKind};

/// The field that carries a checkpoint's version.
pub const VERSION_FIELD: &str = "v";

/// A connector's checkpoint state, with the version it is written as.
pub trait Versioned: Serialize + DeserializeOwned {
    /// The version this build of the connector writes. Raise it whenever the state's shape or
    /// meaning changes, and teach [`Versioned::migrate`] the old one.
    const VERSION: u32;

    /// The state an older version's checkpoint stands for. `from` is that version (0 for a
    /// checkpoint written before it carried one); `old` is its JSON object without `v`. The
    /// default knows no older version.
    fn migrate(from: u32, old: Value) -> Result<Self, String> {
        let _ = old;
        Err(format!(
            "this connector cannot read checkpoints of version {from}"
        ))
    }
}

/// Why a checkpoint could not be read. Nothing is read and nothing is lost: the stream's
/// checkpoint stays as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not a JSON object.
    #[error("the stream's checkpoint is not a JSON object: {0}")]
    Unreadable(String),
    /// Written by a newer version of the connector.
    #[error(
        "the stream's checkpoint has version {found}, written by a newer version of this \
         connector (this one reads up to version {supported}); activate that version again, or \
         start the stream over with a full pull"
    )]
    Newer {
        /// The checkpoint's version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The `v` field is not a whole number.
    #[error("the stream's checkpoint has a version that is not a whole number: {0}")]
    BadVersion(String),
    /// An older version's checkpoint that the migration refused.
    #[error(
        "the stream's checkpoint of version {from} cannot be migrated to version {to}: {reason}"
    )]
    Migration {
        /// The checkpoint's version.
        from: u32,
        /// The version this build writes.
        to: u32,
        /// What the migration said.
        reason: String,
    },
    /// A checkpoint of this very version whose fields do not read.
    #[error("the stream's checkpoint of version {version} does not read: {reason}")]
    Invalid {
        /// The checkpoint's version.
        version: u32,
        /// What is wrong.
        reason: String,
    },
}

impl From<CheckpointError> for Failure {
    fn from(e: CheckpointError) -> Self {
        Failure::new(FailureKind::Unknown, e.to_string())
    }
}

/// The state in `checkpoint`, migrated from an older version when needed; None for no
/// checkpoint (start from the beginning).
pub fn load<T: Versioned>(checkpoint: Option<&str>) -> Result<Option<T>, CheckpointError> {
    let Some(text) = checkpoint else {
        return Ok(None);
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| CheckpointError::Unreadable(e.to_string()))?;
    let Value::Object(mut fields) = value else {
        return Err(CheckpointError::Unreadable(format!(
            "found {}",
            kind_of(&value)
        )));
    };
    let version = match fields.remove(VERSION_FIELD) {
        None => 0,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| CheckpointError::BadVersion(v.to_string()))?,
    };
    let object = Value::Object(fields);
    if version == T::VERSION {
        return serde_json::from_value(object)
            .map(Some)
            .map_err(|e| CheckpointError::Invalid {
                version,
                reason: e.to_string(),
            });
    }
    if version > T::VERSION {
        return Err(CheckpointError::Newer {
            found: version,
            supported: T::VERSION,
        });
    }
    T::migrate(version, object)
        .map(Some)
        .map_err(|reason| CheckpointError::Migration {
            from: version,
            to: T::VERSION,
            reason,
        })
}

/// The checkpoint text of `state`: its JSON object with `v` set to [`Versioned::VERSION`].
/// A state that does not serialise to an object is kept under `state`.
pub fn save<T: Versioned>(state: &T) -> String {
    let mut fields = match serde_json::to_value(state) {
        Ok(Value::Object(fields)) => fields,
        Ok(other) => Map::from_iter([("state".to_string(), other)]),
        Err(e) => Map::from_iter([("unserialisable".to_string(), Value::String(e.to_string()))]),
    };
    fields.insert(VERSION_FIELD.to_string(), Value::from(T::VERSION));
    Value::Object(fields).to_string()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct V3 {
        after: String,
        pages: u32,
    }

    impl Versioned for V3 {
        const VERSION: u32 = 3;
        fn migrate(from: u32, old: Value) -> Result<Self, String> {
            match from {
                // Unversioned: a bare cursor.
                0 | 1 => Ok(V3 {
                    after: old["cursor"].as_str().ok_or("no cursor")?.to_string(),
                    pages: 0,
                }),
                2 => Ok(V3 {
                    after: old["after"].as_str().ok_or("no after")?.to_string(),
                    pages: old["pages"].as_u64().unwrap_or(0) as u32,
                }),
                _ => Err(format!("unknown version {from}")),
            }
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct NoMigration {
        n: u32,
    }

    impl Versioned for NoMigration {
        const VERSION: u32 = 2;
    }

    #[test]
    fn the_current_version_round_trips_and_none_starts_over() {
        let state = V3 {
            after: "c9".into(),
            pages: 4,
        };
        let text = save(&state);
        assert_eq!(text, r#"{"after":"c9","pages":4,"v":3}"#);
        assert_eq!(load::<V3>(Some(&text)).unwrap(), Some(state));
        assert_eq!(load::<V3>(None).unwrap(), None);
    }

    #[test]
    fn older_versions_go_through_the_connectors_migration() {
        let from_unversioned = load::<V3>(Some(r#"{"cursor":"c1"}"#)).unwrap().unwrap();
        assert_eq!(from_unversioned.after, "c1");
        let from_two = load::<V3>(Some(r#"{"v":2,"after":"c2","pages":7}"#))
            .unwrap()
            .unwrap();
        assert_eq!((from_two.after.as_str(), from_two.pages), ("c2", 7));
        let refused = load::<V3>(Some(r#"{"v":1}"#)).unwrap_err();
        assert_eq!(
            refused,
            CheckpointError::Migration {
                from: 1,
                to: 3,
                reason: "no cursor".into()
            }
        );
        let default_hook = load::<NoMigration>(Some(r#"{"v":1,"n":1}"#)).unwrap_err();
        assert!(
            default_hook
                .to_string()
                .contains("cannot read checkpoints of version 1"),
            "{default_hook}"
        );
    }

    #[test]
    fn newer_and_broken_checkpoints_fail_clearly() {
        let newer = load::<V3>(Some(r#"{"v":4,"after":"x","pages":1}"#)).unwrap_err();
        assert_eq!(
            newer,
            CheckpointError::Newer {
                found: 4,
                supported: 3
            }
        );
        let failure = Failure::from(newer);
        assert_eq!(failure.kind, FailureKind::Unknown);
        assert!(failure.message.contains("version 4"), "{}", failure.message);
        assert!(matches!(
            load::<V3>(Some("not json")),
            Err(CheckpointError::Unreadable(_))
        ));
        assert!(matches!(
            load::<V3>(Some("[1]")),
            Err(CheckpointError::Unreadable(m)) if m == "found an array"
        ));
        assert!(matches!(
            load::<V3>(Some(r#"{"v":"3"}"#)),
            Err(CheckpointError::BadVersion(_))
        ));
        assert!(matches!(
            load::<V3>(Some(r#"{"v":-1}"#)),
            Err(CheckpointError::BadVersion(_))
        ));
        assert!(matches!(
            load::<V3>(Some(r#"{"v":3,"after":"x"}"#)),
            Err(CheckpointError::Invalid { version: 3, .. })
        ));
    }
}
