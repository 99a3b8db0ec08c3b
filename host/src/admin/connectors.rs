//! `/api/connectors...`: installed versions, and installing a component.

use super::*;

/// Every installed version of every connector, with what the active ones declare.
#[utoipa::path(get, path = "/api/connectors", tag = "connectors",
    responses((status = 200, description = "The versions", body = Vec<crate::views::ConnectorRow>)))]
pub(crate) async fn connectors(State(s): State<AdminState>) -> Response {
    Json(crate::views::connector_rows(&s.app).await).into_response()
}

/// The query of a connector install.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InstallQuery {
    /// `true` approves the manifest's hosts and methods as they are (`--approve-hosts`).
    #[serde(default)]
    approve_hosts: bool,
}

/// A connector's name.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ConnectorName {
    /// 1 to 64 of `a-z 0-9 - _`, starting with a letter or digit.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: String,
}

/// What an install did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Installed {
    /// The connector's name.
    pub name: String,
    /// The version now active.
    pub version: u32,
    /// The sha256 of the component.
    pub sha256: String,
    /// Whether these bytes were already a stored version.
    pub existing: bool,
    /// Integrations the canary ran `configure` for.
    pub canary_configured: usize,
    /// Integrations the canary ran `test` for.
    pub canary_tested: usize,
    /// Integrations the canary pulled one page for.
    pub canary_pulled: usize,
    /// What the version may reach, as approved: `hosts` and `credential-methods`.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
}

/// Installs a component as the newest version of connector `name` and activates it, after a
/// canary against the existing integrations.
#[utoipa::path(post, path = "/api/connectors/{name}", tag = "connectors",
    params(ConnectorName, InstallQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm",
        description = "The component (WASI 0.2) with its `sluice:manifest` section"),
    responses((status = 201, description = "Installed and active", body = Installed),
        (status = 400, description = "The path or the query is malformed", body = ErrorBody),
        (status = 403, description = "The manifest reaches further than the active version; approve with `approve_hosts=true`", body = ErrorBody),
        (status = 413, description = "The body is over 64 MiB", body = ErrorBody),
        (status = 422, description = "Not a valid component, manifest or name, or the canary rejected it", body = ErrorBody),
        (status = 500, description = "The engine or the store failed", body = ErrorBody)))]
pub(crate) async fn install_connector(
    State(s): State<AdminState>,
    name: Result<Path<ConnectorName>, PathRejection>,
    query: Result<Query<InstallQuery>, QueryRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (Path(ConnectorName { name }), Query(query), body) = (name?, query?, body?);
    let approval = if query.approve_hosts {
        crate::engine::registry::HostApproval::Approved
    } else {
        crate::engine::registry::HostApproval::Covered
    };
    let report = install_component(&s.app, &name, &body, approval)
        .await
        .map_err(AppError::from)?;
    let manifest = serde_json::to_value(&*report.manifest)
        .map_err(|e| AppError::Internal(format!("the manifest does not serialize: {e}")))?;
    Ok((
        StatusCode::CREATED,
        Json(Installed {
            name: report.name,
            version: report.version,
            sha256: report.sha256,
            existing: report.existing,
            canary_configured: report.canary_configured,
            canary_tested: report.canary_tested,
            canary_pulled: report.canary_pulled,
            manifest,
        }),
    )
        .into_response())
}

/// Installs `wasm` as the newest version of connector `name` and activates it, after the
/// registry's checks and a canary against the integrations using it: the one install path of
/// the API and the console.
pub(crate) async fn install_component(
    app: &App,
    name: &str,
    wasm: &[u8],
    approval: crate::engine::registry::HostApproval,
) -> Result<crate::engine::registry::InstallReport, crate::engine::registry::RegistryError> {
    app.registry()
        .install_with_approval(name, wasm, true, approval)
        .await
}

/// What a connector declares about itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorAbout {
    /// The declaration: name, title, version, description, capabilities, settings (name,
    /// label, help, kind, options, required_for, default, group, order) and credential kinds.
    #[schema(value_type = Object)]
    pub declaration: serde_json::Value,
    /// A JSON Schema (draft 2020-12) of its settings, with the fields each capability requires.
    #[schema(value_type = Object)]
    pub settings_schema: serde_json::Value,
}

/// What the active version of connector `name` declares (`describe`): the data a setup form
/// is generated from.
#[utoipa::path(get, path = "/api/connectors/{name}/about", tag = "connectors",
    params(ConnectorName),
    responses((status = 200, description = "The declaration and a schema of the settings", body = ConnectorAbout),
        (status = 400, description = "The path is malformed", body = ErrorBody),
        (status = 404, description = "No such connector is active", body = ErrorBody),
        (status = 500, description = "The connector failed", body = ErrorBody)))]
pub(crate) async fn about_connector(
    State(s): State<AdminState>,
    name: Result<Path<ConnectorName>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(ConnectorName { name }) = name?;
    let info = s.app.describe(&name).await?;
    Ok(Json(ConnectorAbout {
        declaration: crate::about::info_json(&info),
        settings_schema: crate::about::settings_schema(&info),
    })
    .into_response())
}
