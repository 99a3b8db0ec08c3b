//! Add Integration (the connector catalogue, then the form) and Edit: tabs and fields generated
//! from the connector's `describe`, field errors from `configure`.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::list::{failure, state_words, urlencode};
use super::page::{Shell, render};
use super::security::CsrfToken;
use crate::admin::AdminState;
use crate::app::{AppError, FieldIssue, IntegrationInput};
use crate::engine::wit::types::{ConnectorInfo, RequiredFor, SettingKind};
use crate::store::{Integration, IntegrationState};

/// The prefix of a declared setting's form field, so it never collides with the form's own.
const SETTING_PREFIX: &str = "s.";

/// One connector of the catalogue.
pub(crate) struct CatalogueEntry {
    name: String,
    title: String,
    capabilities: String,
}

#[derive(Template)]
#[template(path = "catalogue.html")]
struct CataloguePage {
    shell: Shell,
    entries: Vec<CatalogueEntry>,
    search: String,
}

/// One input of the form.
pub(crate) struct Field {
    /// The form field's name.
    input: String,
    /// The HTML id.
    id: String,
    label: String,
    help: String,
    control: Control,
    value: String,
    /// Capabilities it shows for, space-separated; empty: all.
    shown_for: String,
    /// Whether it is shown for the current capability.
    shown: bool,
    /// Whether the current capability requires it.
    required: bool,
    error: Option<String>,
}

/// How a field is entered.
pub(crate) enum Control {
    /// An `<input type=...>`.
    Input(&'static str),
    /// A `<select>` of `(value, label)`.
    Select(Vec<(String, String)>),
    /// A secret: never shown, "set" when stored.
    Secret { set: bool },
}

/// One tab of the form.
pub(crate) struct Tab {
    key: String,
    label: String,
    fields: Vec<Field>,
}

/// What the Authentication tab says about the connection.
pub(crate) struct Connection {
    id: String,
    state: &'static str,
    connected_before: bool,
}

#[derive(Template)]
#[template(path = "form.html")]
struct FormPage {
    shell: Shell,
    heading: String,
    action: String,
    connector_title: String,
    tabs: Vec<Tab>,
    selected_tab: String,
    errors: Vec<(String, String)>,
    notice: Option<String>,
    connection: Option<Connection>,
}

/// The query of `GET /integrations/new`.
#[derive(serde::Deserialize, Default)]
pub(crate) struct NewQuery {
    connector: Option<String>,
    q: Option<String>,
}

/// `GET /integrations/new`: the catalogue, or the form for `?connector=`.
pub(crate) async fn new_page(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<NewQuery>,
) -> Response {
    let Some(connector) = q.connector else {
        return catalogue(&s, csrf, q.q.unwrap_or_default()).await;
    };
    let info = match s.app.describe(&connector).await {
        Ok(info) => info,
        Err(e) => return failure(&e),
    };
    let values = Values::default();
    render(&form_page(&info, csrf, &values, &[], None, None, "basic"))
}

async fn catalogue(s: &AdminState, csrf: CsrfToken, search: String) -> Response {
    let needle = search.trim().to_lowercase();
    let entries = crate::views::connector_rows(&s.app)
        .await
        .into_iter()
        .filter(|r| r.active)
        .map(|r| CatalogueEntry {
            title: r.title.clone().unwrap_or_else(|| r.name.clone()),
            capabilities: r.capabilities.join(", "),
            name: r.name,
        })
        .filter(|e| {
            needle.is_empty()
                || e.title.to_lowercase().contains(&needle)
                || e.name.contains(&needle)
        })
        .collect();
    render(&CataloguePage {
        shell: Shell::new("Add Integration", csrf),
        entries,
        search,
    })
}

/// What the form holds: its own fields and the declared settings by name.
#[derive(Default)]
struct Values {
    name: String,
    capability: String,
    client_id: String,
    settings: BTreeMap<String, String>,
    secret_set: bool,
}

impl Values {
    fn of(i: &Integration) -> Self {
        Self {
            name: i.name.clone(),
            capability: i.settings.capability.clone(),
            client_id: i.client_id.clone().unwrap_or_default(),
            settings: i.settings.values.clone(),
            secret_set: i.has_client_secret,
        }
    }

    fn from_form(form: &[(String, String)]) -> (Self, Option<String>) {
        let mut v = Self::default();
        let mut secret = None;
        for (k, value) in form {
            match k.as_str() {
                "name" => v.name = value.clone(),
                "capability" => v.capability = value.clone(),
                "client_id" => v.client_id = value.clone(),
                "client_secret" if !value.is_empty() => secret = Some(value.clone()),
                other => {
                    if let Some(setting) = other.strip_prefix(SETTING_PREFIX) {
                        v.settings.insert(setting.to_string(), value.clone());
                    }
                }
            }
        }
        (v, secret)
    }
}

fn form_page(
    info: &ConnectorInfo,
    csrf: CsrfToken,
    values: &Values,
    issues: &[FieldIssue],
    integration: Option<&Integration>,
    notice: Option<String>,
    tab: &str,
) -> FormPage {
    let tabs = tabs(info, values, issues);
    let known: Vec<&str> = tabs
        .iter()
        .flat_map(|t| t.fields.iter().map(|f| f.input.as_str()))
        .collect();
    let errors: Vec<(String, String)> = issues
        .iter()
        .map(|i| {
            let input = input_name(&i.field);
            let target = match known.contains(&input.as_str()) {
                true => format!("#field-{}", field_id(&input)),
                false => String::new(),
            };
            (
                target,
                format!("{}: {}", label_of(info, &i.field), i.message),
            )
        })
        .collect();
    // The tab holding the first error opens, so focus can reach the field.
    let selected_tab = tabs
        .iter()
        .find(|t| t.fields.iter().any(|f| f.error.is_some()))
        .or_else(|| tabs.iter().find(|t| t.key == tab))
        .map(|t| t.key.clone())
        .unwrap_or_else(|| "basic".into());
    let (heading, action, title) = match integration {
        Some(i) => (
            format!("Edit {}", i.name),
            format!("/integrations/{}/edit", i.id),
            "Edit Integration",
        ),
        None => (
            format!("Add {} Integration", info.title),
            format!("/integrations/new?connector={}", urlencode(&info.name)),
            "Add Integration",
        ),
    };
    FormPage {
        shell: Shell::new(title, csrf),
        heading,
        action,
        connector_title: info.title.clone(),
        tabs,
        selected_tab,
        errors,
        notice,
        connection: integration.map(|i| Connection {
            id: i.id.clone(),
            state: state_words(i.state).0,
            connected_before: i.state != IntegrationState::PendingAuthorization,
        }),
    }
}

/// A field name from `configure` as the form's input name.
fn input_name(field: &str) -> String {
    match field {
        "name" | "capability" | "client_id" | "client_secret" => field.into(),
        setting => format!("{SETTING_PREFIX}{setting}"),
    }
}

fn field_id(input: &str) -> String {
    input.replace('.', "-")
}

fn label_of(info: &ConnectorInfo, field: &str) -> String {
    match field {
        "name" => "Name".into(),
        "capability" => "Capability".into(),
        "client_id" => "Client id".into(),
        "client_secret" => "Client secret".into(),
        other => info
            .settings
            .iter()
            .find(|s| s.name == other)
            .map(|s| s.label.clone())
            .unwrap_or_else(|| other.into()),
    }
}

/// The tabs: Basic (name, capability and the `basic` group), then each declared group in
/// first-seen order; the connected app's client id and secret join Authentication.
fn tabs(info: &ConnectorInfo, values: &Values, issues: &[FieldIssue]) -> Vec<Tab> {
    let error_of = |input: &str| {
        issues
            .iter()
            .find(|i| input_name(&i.field) == input)
            .map(|i| i.message.clone())
    };
    let capability = values.capability.as_str();
    let mut groups: Vec<String> = vec!["basic".into()];
    for s in &info.settings {
        if !groups.contains(&s.group) {
            groups.push(s.group.clone());
        }
    }
    if !groups.iter().any(|g| g == "authentication") {
        groups.insert(1, "authentication".into());
    }
    let mut tabs: Vec<Tab> = groups
        .iter()
        .map(|g| Tab {
            key: g.clone(),
            label: title_case(g),
            fields: Vec::new(),
        })
        .collect();
    let plain = |input: &str, label: &str, help: &str, control, value: &str, required| Field {
        input: input.into(),
        id: format!("field-{}", field_id(input)),
        label: label.into(),
        help: help.into(),
        control,
        value: value.into(),
        shown_for: String::new(),
        shown: true,
        required,
        error: error_of(input),
    };
    let capabilities = info
        .capabilities
        .iter()
        .map(|c| (c.name.clone(), c.label.clone()))
        .collect();
    tabs[0].fields.push(plain(
        "name",
        "Name",
        "What the integration is called in this console.",
        Control::Input("text"),
        &values.name,
        true,
    ));
    tabs[0].fields.push(plain(
        "capability",
        "Capability",
        "What the integration pulls; the Authentication tab's fields follow it.",
        Control::Select(capabilities),
        capability,
        true,
    ));
    let mut settings: Vec<_> = info.settings.iter().collect();
    settings.sort_by_key(|s| s.order);
    for s in settings {
        let input = format!("{SETTING_PREFIX}{}", s.name);
        let shown_for = match &s.required {
            RequiredFor::Capabilities(names) => names.join(" "),
            RequiredFor::None | RequiredFor::All => String::new(),
        };
        let shown = shown_for.is_empty() || shown_for.split(' ').any(|c| c == capability);
        let control = match &s.kind {
            SettingKind::Choice(options) => Control::Select(
                options
                    .iter()
                    .map(|o| (o.value.clone(), o.label.clone()))
                    .collect(),
            ),
            SettingKind::Boolean => Control::Select(vec![
                ("true".into(), "Yes".into()),
                ("false".into(), "No".into()),
            ]),
            SettingKind::Url => Control::Input("url"),
            SettingKind::Integer => Control::Input("number"),
            SettingKind::Date => Control::Input("text"),
            SettingKind::Secret => Control::Secret { set: false },
            SettingKind::Text | SettingKind::Duration => Control::Input("text"),
        };
        let mut help = s.help.clone();
        if let Some(d) = &s.default {
            help.push_str(&format!(" Default: {d}."));
        }
        let field = Field {
            id: format!("field-{}", field_id(&input)),
            error: error_of(&input),
            label: s.label.clone(),
            help,
            control,
            value: values.settings.get(&s.name).cloned().unwrap_or_default(),
            shown,
            required: s.required.includes_capability(capability),
            shown_for,
            input,
        };
        if let Some(tab) = tabs.iter_mut().find(|t| t.key == s.group) {
            tab.fields.push(field);
        }
    }
    if let Some(auth) = tabs.iter_mut().find(|t| t.key == "authentication") {
        auth.fields.push(plain(
            "client_id",
            "Connected app client id",
            "Leave empty to use the host's connected app (SLUICE_CLIENT_ID).",
            Control::Input("text"),
            &values.client_id,
            false,
        ));
        auth.fields.push(plain(
            "client_secret",
            "Connected app client secret",
            "Stored encrypted and never shown again; leave empty to keep the current one.",
            Control::Secret {
                set: values.secret_set,
            },
            "",
            false,
        ));
    }
    tabs
}

trait Requires {
    fn includes_capability(&self, capability: &str) -> bool;
}

impl Requires for RequiredFor {
    fn includes_capability(&self, capability: &str) -> bool {
        match self {
            RequiredFor::None => false,
            RequiredFor::All => true,
            RequiredFor::Capabilities(names) => names.iter().any(|n| n == capability),
        }
    }
}

fn title_case(group: &str) -> String {
    let mut chars = group.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn input_of(values: Values, secret: Option<String>, connector: Option<String>) -> IntegrationInput {
    let blank = |s: String| (!s.trim().is_empty()).then_some(s);
    IntegrationInput {
        connector,
        name: Some(values.name),
        capability: Some(values.capability),
        settings: values.settings.into_iter().collect(),
        interval: None,
        client_id: blank(values.client_id),
        client_secret: secret,
    }
}

/// `POST /integrations/new?connector=`: stores the integration, then opens its Authentication
/// tab to connect it.
pub(crate) async fn create(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<NewQuery>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    let connector = q.connector.unwrap_or_else(|| "salesforce".into());
    let info = match s.app.describe(&connector).await {
        Ok(info) => info,
        Err(e) => return failure(&e),
    };
    let (values, secret) = Values::from_form(&form);
    let (kept, _) = Values::from_form(&form);
    match s
        .app
        .add_integration(input_of(values, secret, Some(connector)))
        .await
    {
        Ok(v) => Redirect::to(&format!(
            "/integrations/{}/edit?tab=authentication&created=1",
            v.integration.id
        ))
        .into_response(),
        Err(AppError::Invalid(issues)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&form_page(&info, csrf, &kept, &issues, None, None, "basic")),
        )
            .into_response(),
        Err(e) => failure(&e),
    }
}

/// The query of `GET /integrations/{id}/edit`.
#[derive(serde::Deserialize, Default)]
pub(crate) struct EditQuery {
    tab: Option<String>,
    created: Option<u8>,
    saved: Option<u8>,
}

/// `GET /integrations/{id}/edit`.
pub(crate) async fn edit_page(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Query(q): Query<EditQuery>,
) -> Response {
    let integration = match s.app.store().integration(&id) {
        Ok(i) => i,
        Err(e) => return failure(&e.into()),
    };
    let info = match s.app.describe(&integration.connector).await {
        Ok(info) => info,
        Err(e) => return failure(&e),
    };
    let notice = match (q.created, q.saved) {
        (Some(_), _) => Some(format!(
            "Saved {}. Connect it to {} to finish.",
            integration.name, info.title
        )),
        (_, Some(_)) => Some("Saved. Records and checkpoints are kept.".into()),
        _ => None,
    };
    let tab = q.tab.unwrap_or_else(|| "basic".into());
    let values = Values::of(&integration);
    render(&form_page(
        &info,
        csrf,
        &values,
        &[],
        Some(&integration),
        notice,
        &tab,
    ))
}

/// `POST /integrations/{id}/edit`: changes the settings; records and checkpoints are kept.
pub(crate) async fn update(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    let integration = match s.app.store().integration(&id) {
        Ok(i) => i,
        Err(e) => return failure(&e.into()),
    };
    let info = match s.app.describe(&integration.connector).await {
        Ok(info) => info,
        Err(e) => return failure(&e),
    };
    let (values, secret) = Values::from_form(&form);
    let (mut kept, _) = Values::from_form(&form);
    kept.secret_set = integration.has_client_secret;
    match s
        .app
        .edit_integration(&id, input_of(values, secret, None))
        .await
    {
        Ok(_) => Redirect::to(&format!("/integrations/{id}/edit?saved=1")).into_response(),
        Err(AppError::Invalid(issues)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&form_page(
                &info,
                csrf,
                &kept,
                &issues,
                Some(&integration),
                None,
                "basic",
            )),
        )
            .into_response(),
        Err(e) => failure(&e),
    }
}
