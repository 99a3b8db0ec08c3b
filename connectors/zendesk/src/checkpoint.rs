//! The streams' checkpoints: versioned JSON, so a later version can migrate an older one.
//!
//! Every checkpoint carries `v`, through the SDK's versioned checkpoints: a version this
//! connector does not know (written by a newer one) is refused by name rather than guessed at,
//! so a downgrade never restarts or skips silently; a later version teaches `migrate` this
//! one's shape.

use serde::{Deserialize, Serialize};
use sluice_connector_sdk::checkpoint::{self, Versioned};
use sluice_connector_sdk::model::Failure;

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

impl Versioned for Export {
    const VERSION: u32 = VERSION;
}

impl Versioned for Comments {
    const VERSION: u32 = VERSION;
}

/// Reads a checkpoint of any version this connector knows; none gives the starting state.
pub fn parse<T: Versioned + Default>(text: Option<&str>) -> Result<T, Failure> {
    Ok(checkpoint::load(text)?.unwrap_or_default())
}

/// Writes `state` as a checkpoint of the current version.
pub fn write<T: Versioned>(state: &T) -> String {
    checkpoint::save(state)
}
