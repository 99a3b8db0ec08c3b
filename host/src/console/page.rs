//! What every page shares: the shell (title, CSRF token) and rendering.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::security::CsrfToken;

/// The parts of the layout every page fills.
pub(crate) struct Shell {
    /// The page's title.
    pub title: String,
    /// The CSRF token its forms carry.
    pub csrf: String,
}

impl Shell {
    /// The shell of a page titled `title`.
    pub(crate) fn new(title: &str, csrf: CsrfToken) -> Self {
        Self {
            title: title.into(),
            csrf: csrf.0,
        }
    }
}

/// `page` as an HTML answer; a template failure is a 500 that says so.
pub(crate) fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render; the server log has the details",
            )
                .into_response()
        }
    }
}

/// A time in ms since the epoch as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn when(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}
