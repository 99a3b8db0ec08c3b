//! The streams' checkpoints: versioned JSON, so a later version can migrate an older one.
//!
//! Every checkpoint carries `v`. [`parse`] reads every version this connector knows (today
//! only 1) into the current form; a version it does not know (written by a newer connector)
//! is refused by name rather than guessed at, so a downgrade never restarts or skips silently.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sluice_connector_sdk::model::{Failure, FailureKind};

/// The checkpoint version this connector writes.
pub const VERSION: u32 = 1;

/// Where an export stream (tickets, users) resumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// The export's `after_cursor`; none before the first answer (start at `start_time`).
    pub cursor: Option<String>,
}

/// A ticket whose comments are still to be read (or, when deleted, removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTicket {
    /// The ticket's id.
    pub id: u64,
    /// Whether the export reported it deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Where reading stopped inside it: the comment list's `after_cursor` for a live ticket,
    /// the last comment key deleted for a deleted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Where the comments stream resumes: the tickets of one ticket-export page still to visit,
/// and the export cursor after that page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comments {
    /// The ticket export's `after_cursor` past the pending tickets.
    pub cursor: Option<String>,
    /// Tickets of the last export page not finished yet, in export order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingTicket>,
}

#[derive(Deserialize)]
struct Versioned {
    v: u32,
}

#[derive(Serialize)]
struct Tagged<'a, T> {
    v: u32,
    #[serde(flatten)]
    state: &'a T,
}

/// Reads a checkpoint of any known version; none gives the starting state.
pub fn parse<T: DeserializeOwned + Default>(text: Option<&str>) -> Result<T, Failure> {
    let Some(text) = text else {
        return Ok(T::default());
    };
    let bad = |e: serde_json::Error| {
        Failure::new(
            FailureKind::Unknown,
            format!("the stream's checkpoint is not one this connector wrote ({e}): {text}"),
        )
    };
    let Versioned { v } = serde_json::from_str(text).map_err(bad)?;
    match v {
        1 => serde_json::from_str(text).map_err(bad),
        newer => Err(Failure::new(
            FailureKind::Misconfigured,
            format!(
                "the stream's checkpoint is version {newer}, written by a newer Zendesk \
                 connector; this one reads up to version {VERSION}: install the newer version \
                 again"
            ),
        )),
    }
}

/// Writes `state` as a checkpoint of the current version.
pub fn write<T: Serialize>(state: &T) -> String {
    serde_json::to_string(&Tagged { v: VERSION, state }).expect("checkpoint serializes")
}
