//! What the CLI's `--json` and the admin API show, built once for both.

use std::sync::Arc;

use crate::app::{App, AppError};
use crate::store::Integration;

/// One row of `integration list`.
#[derive(Debug, serde::Serialize)]
pub struct ListRow {
    /// The integration.
    #[serde(flatten)]
    pub integration: Integration,
    /// Its latest run.
    pub last_run: Option<crate::store::RunRecord>,
    /// Its token health.
    pub token: Option<crate::store::TokenHealth>,
}

/// The rows of `integration list`, newest first.
pub fn list_rows(app: &Arc<App>) -> Result<Vec<ListRow>, AppError> {
    let mut rows = Vec::new();
    for integration in app.store.integrations()? {
        let last_run = app.runs(&integration.id, 1)?.into_iter().next();
        let token = app.store.token_health(&integration.id)?;
        rows.push(ListRow {
            integration,
            last_run,
            token,
        });
    }
    Ok(rows)
}
