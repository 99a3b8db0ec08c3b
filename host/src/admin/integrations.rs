//! `/api/integrations...`: list, add, show, edit, delete, test, pull, pause, resume, runs and
//! records.

use super::*;

/// Every integration with its latest run and token health.
#[utoipa::path(get, path = "/api/integrations", tag = "integrations",
    responses((status = 200, description = "The integrations, newest first", body = Vec<ListRow>),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn list(State(s): State<AdminState>) -> Result<Response, ApiError> {
    let rows = crate::views::list_rows(&s.app)?;
    Ok(Json(rows).into_response())
}

/// The body of `POST /api/integrations` and `PATCH /api/integrations/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct IntegrationBody {
    /// The installed connector that serves it (add only; default `salesforce`). An
    /// integration keeps its connector: editing it to another is a field error.
    #[schema(min_length = 1)]
    connector: Option<String>,
    /// Its display name (required to add).
    #[schema(min_length = 1, pattern = r"\S")]
    name: Option<String>,
    /// What it pulls (required to add): one of the connector's capabilities
    /// (`GET /api/connectors/{name}/about` lists them).
    #[schema(min_length = 1)]
    capability: Option<String>,
    /// The connected app's client id for this integration.
    client_id: Option<String>,
    /// Its client secret (stored encrypted, never shown); needs `client_id`.
    client_secret: Option<String>,
    /// Time between scheduled pulls, 1s to 7d: seconds, or a text such as `15m`.
    #[schema(schema_with = interval_schema)]
    interval: Option<serde_json::Value>,
    /// The connector's declared settings by name (`GET /api/connectors/{name}/about`), e.g.
    /// Salesforce's `environment`, `domain` and `pull-by`. On edit, names not given keep their
    /// value and an empty value removes the setting.
    #[serde(default)]
    settings: std::collections::BTreeMap<String, String>,
}

/// The texts of 1s to 7d: each unit's numbers in that range, leading zeros allowed.
pub(crate) const INTERVAL_TEXT: &str = concat!(
    "^0*(",
    "([1-9][0-9]{3,7}|[1-5][0-9]{8}|60[0-3][0-9]{6}|604[0-7][0-9]{5}|604800000)ms",
    "|([1-9][0-9]{0,4}|[1-5][0-9]{5}|60[0-3][0-9]{3}|604[0-7][0-9]{2}|604800)s?",
    "|([1-9][0-9]{0,3}|100[0-7][0-9]|10080)m",
    "|([1-9][0-9]?|1[0-5][0-9]|16[0-8])h",
    "|[1-7]d",
    ")$"
);

/// `interval`: whole seconds from 1 to 7 days, or digits and a unit (`ms`, `s`, `m`, `h`,
/// `d`); the runtime refuses anything shorter than 1s or longer than 7d.
pub(crate) fn interval_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(7 * 24 * 3600)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(INTERVAL_TEXT)),
        )
        // `null`, like a missing field: the default (add) or the current value (edit).
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "Time between scheduled pulls, 1s to 7d: seconds, or a text such as `15m`",
        ))
        .build()
        .into()
}

impl IntegrationBody {
    fn into_input(self) -> Result<IntegrationInput, AppError> {
        let interval = self.interval.as_ref().map(parse_interval).transpose()?;
        Ok(IntegrationInput {
            connector: self.connector,
            name: self.name,
            capability: self.capability,
            settings: self.settings.into_iter().collect(),
            interval,
            client_id: self.client_id,
            client_secret: self.client_secret,
        })
    }
}

/// `interval` as seconds (a whole number) or a duration text such as `15m`; anything else is a
/// field error, never a silent default.
pub(crate) fn parse_interval(value: &serde_json::Value) -> Result<std::time::Duration, AppError> {
    let invalid = |message: String| {
        AppError::Invalid(vec![crate::app::FieldIssue {
            field: "interval".into(),
            message,
        }])
    };
    match value {
        // JSON has one number type: `60.0` is the whole number 60, as JSON Schema's
        // `integer` says.
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| whole_seconds(n.as_f64()?))
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| invalid(format!("{n} is not a whole number of seconds"))),
        serde_json::Value::String(s) => crate::duration::parse_duration(s).map_err(invalid),
        other => Err(invalid(format!(
            "{other} is not a duration: use seconds or a text such as \"15m\""
        ))),
    }
}

/// `f` as a whole number of seconds, if it is one that fits.
pub(crate) fn whole_seconds(f: f64) -> Option<u64> {
    // `u64::MAX as f64` rounds up to 2^64, which does not fit: compare strictly.
    (f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64).then_some(f as u64)
}

pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| {
        AppError::Invalid(vec![crate::app::FieldIssue {
            field: "body".into(),
            message: e.to_string(),
        }])
    })
}

/// An integration's id.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IntegrationId {
    /// The id `POST /api/integrations` gave it.
    #[param(pattern = "^int_[A-Za-z0-9_-]{12}$")]
    pub(crate) id: String,
}

/// Validates and stores a new integration; nothing is stored when anything is invalid.
#[utoipa::path(post, path = "/api/integrations", tag = "integrations",
    request_body(content = IntegrationBody, content_type = "application/json"),
    responses((status = 201, description = "Added, pending authorization", body = crate::app::Validated),
        (status = 403, description = "The connector asks for hosts the operator has not approved", body = ErrorBody),
        (status = 413, description = "The body is over 2 MiB", body = ErrorBody),
        (status = 422, description = "Invalid input, per field (the connector validates its settings)", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody)))]
pub(crate) async fn add(
    State(s): State<AdminState>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: IntegrationBody = parse_body(&body?)?;
    let v = s.app.add_integration(body.into_input()?).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// An integration with its settings, streams, latest runs, checkpoints and record counts.
#[utoipa::path(get, path = "/api/integrations/{id}", tag = "integrations", params(IntegrationId),
    responses((status = 200, description = "The integration", body = IntegrationView),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody)))]
pub(crate) async fn show(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    let v = crate::views::integration_view(&s.app, &id).await?;
    Ok(Json(v).into_response())
}

/// Changes an integration; fields left out keep their value.
#[utoipa::path(patch, path = "/api/integrations/{id}", tag = "integrations", params(IntegrationId),
    request_body(content = IntegrationBody, content_type = "application/json"),
    responses((status = 200, description = "Changed", body = crate::app::Validated),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 403, description = "The connector asks for hosts the operator has not approved", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 413, description = "The body is over 2 MiB", body = ErrorBody),
        (status = 422, description = "Invalid input, per field", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody)))]
pub(crate) async fn edit(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    let body: IntegrationBody = parse_body(&body?)?;
    let v = s.app.edit_integration(&id, body.into_input()?).await?;
    Ok(Json(v).into_response())
}

/// Deletes an integration with its records and tokens (the refresh token is revoked).
#[utoipa::path(delete, path = "/api/integrations/{id}", tag = "integrations", params(IntegrationId),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn delete(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    s.app.delete_integration(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Test Connection: identity, limits and one probe per object.
#[utoipa::path(post, path = "/api/integrations/{id}/test", tag = "integrations", params(IntegrationId),
    responses((status = 200, description = "The report; `ok` says whether the connection works", body = TestView),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 409, description = "Not authorized yet, or the credentials are unusable", body = ErrorBody),
        (status = 422, description = "The stored settings are no longer valid", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody),
        (status = 502, description = "The provider refused or failed the token refresh", body = ErrorBody)))]
pub(crate) async fn test(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    let report = s.app.test(&id).await?;
    Ok(Json(TestView::from(&report)).into_response())
}

/// One stream as the connector describes it (`discover`).
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamView {
    /// The stream's name.
    pub name: String,
    /// The fields that form a record's key.
    pub key_fields: Vec<String>,
    /// The field incremental pulls follow, if any.
    pub cursor_field: Option<String>,
    /// A JSON Schema (draft 2020-12) of its records.
    #[schema(value_type = Object)]
    pub json_schema: serde_json::Value,
}

/// Each stream's JSON Schema, key and cursor fields, as the connector describes them.
#[utoipa::path(get, path = "/api/integrations/{id}/streams", tag = "integrations", params(IntegrationId),
    responses((status = 200, description = "The streams", body = Vec<StreamView>),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 409, description = "Not authorized yet, or the credentials are unusable", body = ErrorBody),
        (status = 422, description = "The stored settings are no longer valid", body = ErrorBody),
        (status = 500, description = "The store or the connector failed", body = ErrorBody),
        (status = 502, description = "The provider or the connector could not describe the streams", body = ErrorBody)))]
pub(crate) async fn streams(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    let mut views = Vec::new();
    for stream in s.app.discover(&id).await? {
        let json_schema = serde_json::from_str(&stream.json_schema).map_err(|e| {
            AppError::Discover(format!(
                "the schema of stream {} is not JSON: {e}",
                stream.name
            ))
        })?;
        views.push(StreamView {
            name: stream.name,
            key_fields: stream.key_fields,
            cursor_field: stream.cursor_field,
            json_schema,
        });
    }
    Ok(Json(views).into_response())
}

/// The query of `POST /api/integrations/{id}/pull`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PullQuery {
    /// Reset the checkpoints first and pull everything.
    #[serde(default)]
    full: bool,
}

/// The answer of a pull that started.
#[derive(Debug, Serialize, ToSchema)]
pub struct PullStarted {
    /// Always `started`.
    pub status: PullStatus,
    /// The integration.
    pub integration: String,
}

/// Where a requested pull stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PullStatus {
    /// The run began; follow it under `/runs`.
    Started,
}

/// Starts a pull; the run is recorded and shows under `/runs`.
#[utoipa::path(post, path = "/api/integrations/{id}/pull", tag = "integrations",
    params(IntegrationId, PullQuery),
    responses((status = 202, description = "The run started", body = PullStarted),
        (status = 400, description = "The path or the query is malformed", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 409, description = "A run of this integration is already going on, or its pulls are paused", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn pull(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
    q: Result<Query<PullQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(IntegrationId { id }), Query(q)) = (id?, q?);
    // Claimed before answering, so a second request while a run is going on gets 409.
    let claim = crate::runner::claim(&s.app, &id)?;
    let app = s.app.clone();
    let run_id = id.clone();
    // The run is recorded; the caller follows it under /runs.
    tokio::spawn(async move {
        let opts = PullOptions {
            full: q.full,
            trigger: "api".into(),
            ..PullOptions::default()
        };
        if let Err(e) = crate::runner::run_claimed(&app, &claim, opts).await {
            tracing::warn!(integration = %run_id, error = %e, "pull requested through the API failed");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(PullStarted {
            status: PullStatus::Started,
            integration: id,
        }),
    )
        .into_response())
}

/// Pauses an integration's pulls: the schedule skips it and pull requests get 409 until it
/// is resumed. A run going on finishes; its token is still refreshed and checked.
#[utoipa::path(post, path = "/api/integrations/{id}/pause", tag = "integrations", params(IntegrationId),
    responses((status = 200, description = "Paused (`paused_at_ms` says since when)", body = crate::store::Integration),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn pause(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    Ok(Json(s.app.set_paused(&id, true)?).into_response())
}

/// Resumes an integration's pulls; a pull that came due while it was paused runs soon.
#[utoipa::path(post, path = "/api/integrations/{id}/resume", tag = "integrations", params(IntegrationId),
    responses((status = 200, description = "Resumed (`paused_at_ms` is null)", body = crate::store::Integration),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn resume(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    Ok(Json(s.app.set_paused(&id, false)?).into_response())
}

/// Runs the API lists.
pub(crate) const LISTED_RUNS: usize = 50;

/// The latest runs of an integration, newest first.
#[utoipa::path(get, path = "/api/integrations/{id}/runs", tag = "integrations", params(IntegrationId),
    responses((status = 200, description = "At most 50 runs, newest first", body = Vec<crate::store::RunRecord>),
        (status = 400, description = "The path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn runs(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(IntegrationId { id }) = id?;
    s.app.store().integration(&id)?;
    Ok(Json(s.app.runs(&id, LISTED_RUNS)?).into_response())
}

/// The largest page of `GET /records`.
pub(crate) const MAX_RECORDS_PAGE: usize = 10_000;

/// The query of `GET /api/integrations/{id}/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RecordsQuery {
    /// Only this stream.
    stream: Option<String>,
    /// Include tombstones of deleted records.
    #[serde(default)]
    with_deleted: bool,
    /// Records per page.
    #[param(minimum = 0, maximum = 10000, default = 1000)]
    limit: Option<usize>,
    /// Keyset cursor: the `stream` of the last record of the previous page. Records after
    /// (`after_stream`, `after_key`) follow; a missing half is the empty text, so
    /// `after_stream` alone starts at that stream.
    after_stream: Option<String>,
    /// Keyset cursor: the `key` of the last record of the previous page.
    after_key: Option<String>,
}

/// A page of stored records, ordered by stream and key.
#[utoipa::path(get, path = "/api/integrations/{id}/records", tag = "integrations",
    params(IntegrationId, RecordsQuery),
    responses((status = 200, description = "At most `limit` records. The `Sluice-Snapshot-Cursor` header is the change-feed cursor of the page's snapshot: follow `/changes` from the first page's to catch every change made since",
            body = Vec<RecordView>, headers(("sluice-snapshot-cursor" = String, description = "The change-feed cursor of this page's snapshot"))),
        (status = 400, description = "The path or the query is malformed", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 422, description = "`limit` is over 10000", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn records(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
    q: Result<Query<RecordsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(IntegrationId { id }), Query(q)) = (id?, q?);
    s.app.store().integration(&id)?;
    let limit = q.limit.unwrap_or(1000);
    if limit > MAX_RECORDS_PAGE {
        return Err(invalid_query(
            "limit",
            format!("{limit} is over the largest page, {MAX_RECORDS_PAGE}"),
        ));
    }
    // A missing half of the cursor is the empty text, which sorts first: `after_stream`
    // alone starts at that stream.
    let after = match (&q.after_stream, &q.after_key) {
        (None, None) => None,
        (stream, key) => Some((
            stream.as_deref().unwrap_or(""),
            key.as_deref().unwrap_or(""),
        )),
    };
    let page =
        s.app
            .store()
            .records_snapshot(&id, q.stream.as_deref(), q.with_deleted, after, limit)?;
    let out: Vec<RecordView> = page.records.into_iter().map(RecordView::from).collect();
    Ok((
        [(SNAPSHOT_CURSOR_HEADER, page.cursor.to_string())],
        Json(out),
    )
        .into_response())
}

/// The header of `GET /records` naming the change-feed cursor of the page's snapshot.
pub(crate) const SNAPSHOT_CURSOR_HEADER: &str = "sluice-snapshot-cursor";

/// The largest page of `GET /changes`.
pub(crate) const MAX_CHANGES_PAGE: usize = 10_000;

/// The query of `GET /api/integrations/{id}/changes`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChangesQuery {
    /// The cursor of the last change read: a previous answer's `next_cursor`, a change's `seq`,
    /// or a records snapshot's `Sluice-Snapshot-Cursor`. Default `0`: the whole compacted feed.
    #[param(pattern = "^[0-9]{1,18}$")]
    after: Option<String>,
    /// Only this stream's changes (the cursor stays the integration's).
    stream: Option<String>,
    /// Changes per page.
    #[param(minimum = 0, maximum = 10000, default = 1000)]
    limit: Option<usize>,
}

/// The changes after a cursor, in commit order: the latest version of each changed record
/// (its tombstone if deleted), each key at most once per catch-up.
#[utoipa::path(get, path = "/api/integrations/{id}/changes", tag = "integrations",
    params(IntegrationId, ChangesQuery),
    responses((status = 200, description = "At most `limit` changes and the cursor to ask with next", body = ChangesView),
        (status = 400, description = "The path or the query is malformed: `after` is not a cursor", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
        (status = 409, description = "`after` is past the feed's latest change: this feed never gave it", body = ErrorBody),
        (status = 410, description = "Resync required: `after` is older than the tombstone retention. Take a snapshot (`GET /records` and its `Sluice-Snapshot-Cursor` header, or the changes from `0`) and follow the feed from its cursor", body = ErrorBody),
        (status = 422, description = "`limit` is over 10000", body = ErrorBody),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub(crate) async fn changes(
    State(s): State<AdminState>,
    id: Result<Path<IntegrationId>, PathRejection>,
    q: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(IntegrationId { id }), Query(q)) = (id?, q?);
    s.app.store().integration(&id)?;
    let limit = q.limit.unwrap_or(1000);
    if limit > MAX_CHANGES_PAGE {
        return Err(invalid_query(
            "limit",
            format!("{limit} is over the largest page, {MAX_CHANGES_PAGE}"),
        ));
    }
    let after = match q.after.as_deref() {
        None => crate::store::FeedCursor::default(),
        Some(text) => crate::store::FeedCursor::parse(text)
            .map_err(|e| ApiError::Request(StatusCode::BAD_REQUEST, format!("after: {e}")))?,
    };
    let page = s
        .app
        .store()
        .changes_after(&id, after, q.stream.as_deref(), limit)?;
    Ok(Json(ChangesView::from(page)).into_response())
}

pub(crate) fn invalid_query(field: &str, message: String) -> ApiError {
    ApiError::App(AppError::Invalid(vec![crate::app::FieldIssue {
        field: field.into(),
        message,
    }]))
}
