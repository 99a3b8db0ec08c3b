//! An integration's detail: its runs (status, records, API calls, per-stream status, connector
//! version), its streams with record counts, and a record browser by pages.

use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;

use super::list::{failure, urlencode};
use super::page::{Shell, render, when};
use super::security::CsrfToken;
use crate::admin::AdminState;

/// Records per page of the browser.
const PAGE: usize = 25;

/// One run as the page shows it.
pub(crate) struct RunRow {
    started: String,
    status: String,
    records: i64,
    api_calls: i64,
    version: String,
    streams: String,
}

/// One stored record as the page shows it.
pub(crate) struct RecordRow {
    stream: String,
    key: String,
    json: String,
}

#[derive(Template)]
#[template(path = "detail.html")]
struct DetailPage {
    shell: Shell,
    /// The latest pull's progress part, rendered.
    progress: String,
    id: String,
    name: String,
    runs: Vec<RunRow>,
    counts: Vec<(String, i64, i64)>,
    records: Vec<RecordRow>,
    stream: String,
    next: Option<String>,
}

/// The query of the record browser: a stream, and the keyset cursor of the page.
#[derive(serde::Deserialize, Default)]
pub(crate) struct DetailQuery {
    stream: Option<String>,
    after_stream: Option<String>,
    after_key: Option<String>,
}

/// `GET /integrations/{id}`.
pub(crate) async fn page(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let view = match crate::views::integration_view(&s.app, &id).await {
        Ok(v) => v,
        Err(e) => return failure(&e),
    };
    let stream = q.stream.clone().filter(|s| !s.is_empty());
    let after = q
        .after_stream
        .as_deref()
        .map(|st| (st, q.after_key.as_deref().unwrap_or("")));
    let page = match s
        .app
        .store()
        .records_page(&id, stream.as_deref(), false, after, PAGE)
    {
        Ok(p) => p,
        Err(e) => return failure(&e.into()),
    };
    let next = (page.len() == PAGE).then(|| {
        let last = &page[page.len() - 1];
        format!(
            "/integrations/{}?stream={}&after_stream={}&after_key={}",
            urlencode(&id),
            urlencode(stream.as_deref().unwrap_or("")),
            urlencode(&last.stream),
            urlencode(&last.key)
        )
    });
    let records = page
        .into_iter()
        .map(|r| {
            let text = String::from_utf8_lossy(&r.json);
            let json: String = text.chars().take(300).collect();
            RecordRow {
                stream: r.stream,
                key: r.key,
                json,
            }
        })
        .collect();
    let progress = match super::progress::ProgressPart::of(&s, &id).map(|p| p.render()) {
        Ok(Ok(html)) => html,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the progress part failed to render");
            String::new()
        }
        Err(e) => return failure(&e),
    };
    render(&DetailPage {
        progress,
        shell: Shell::new(&view.integration.name, csrf),
        name: view.integration.name.clone(),
        id,
        runs: view
            .runs
            .iter()
            .map(|r| RunRow {
                started: when(r.started_at_ms),
                status: r.status.to_string(),
                records: r.records,
                api_calls: r.api_calls,
                version: r.connector_version.clone(),
                streams: r.streams.to_string(),
            })
            .collect(),
        counts: view
            .records
            .iter()
            .map(|c| (c.stream.clone(), c.live, c.deleted))
            .collect(),
        records,
        stream: stream.unwrap_or_default(),
        next,
    })
}
