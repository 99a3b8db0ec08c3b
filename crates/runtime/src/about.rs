//! What a connector declares (`describe`), shown three ways: as JSON, as a JSON Schema of its
//! settings (for generated forms and validation), and as Markdown documentation.

use serde_json::{Map, Value, json};

use crate::engine::wit::types::{ConnectorInfo, CredentialKind, RequiredFor, Setting, SettingKind};

/// The declaration as plain JSON.
pub fn info_json(info: &ConnectorInfo) -> Value {
    json!({
        "name": info.name,
        "title": info.title,
        "version": info.version,
        "description": info.description,
        "documentation_url": info.documentation_url,
        "capabilities": info.capabilities.iter()
            .map(|c| json!({"name": c.name, "label": c.label}))
            .collect::<Vec<_>>(),
        "settings": ordered(info).into_iter().map(setting_json).collect::<Vec<_>>(),
        "credential_kinds": info.credential_kinds.iter().map(|k| credential_kind(*k)).collect::<Vec<_>>(),
    })
}

/// The settings in form order: by group (in first-seen order), then by `order`.
fn ordered(info: &ConnectorInfo) -> Vec<&Setting> {
    let mut groups: Vec<&str> = Vec::new();
    for s in &info.settings {
        if !groups.contains(&s.group.as_str()) {
            groups.push(&s.group);
        }
    }
    let mut settings: Vec<&Setting> = info.settings.iter().collect();
    settings.sort_by_key(|s| (groups.iter().position(|g| *g == s.group), s.order));
    settings
}

fn setting_json(s: &Setting) -> Value {
    json!({
        "name": s.name,
        "label": s.label,
        "help": s.help,
        "kind": kind_name(&s.kind),
        "options": match &s.kind {
            SettingKind::Choice(options) => options.iter()
                .map(|o| json!({"value": o.value, "label": o.label}))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        },
        "required_for": required_json(&s.required),
        "default": s.default,
        "group": s.group,
        "order": s.order,
    })
}

fn required_json(r: &RequiredFor) -> Value {
    match r {
        RequiredFor::None => json!([]),
        RequiredFor::All => json!("all"),
        RequiredFor::Capabilities(names) => json!(names),
    }
}

fn kind_name(k: &SettingKind) -> &'static str {
    match k {
        SettingKind::Text => "text",
        SettingKind::Url => "url",
        SettingKind::Choice(_) => "choice",
        SettingKind::Boolean => "boolean",
        SettingKind::Integer => "integer",
        SettingKind::Duration => "duration",
        SettingKind::Date => "date",
        SettingKind::Secret => "secret",
    }
}

fn credential_kind(k: CredentialKind) -> &'static str {
    match k {
        CredentialKind::Oauth2AuthorizationCode => "oauth2-authorization-code",
        CredentialKind::Oauth2ClientCredentials => "oauth2-client-credentials",
        CredentialKind::ApiKey => "api-key",
        CredentialKind::Basic => "basic",
        CredentialKind::None => "none",
    }
}

/// A JSON Schema (draft 2020-12) of the settings object: `capability` and every declared
/// setting as text, each required where the connector says (`if`/`then` per capability).
pub fn settings_schema(info: &ConnectorInfo) -> Value {
    let mut properties = Map::new();
    let capabilities: Vec<&str> = info.capabilities.iter().map(|c| c.name.as_str()).collect();
    properties.insert(
        "capability".into(),
        json!({"title": "Capability", "enum": capabilities}),
    );
    for s in ordered(info) {
        let mut p = json!({"title": s.label, "description": s.help, "type": "string"});
        match &s.kind {
            SettingKind::Choice(options) => {
                p["enum"] = json!(options.iter().map(|o| &o.value).collect::<Vec<_>>());
            }
            SettingKind::Url => p["format"] = json!("uri"),
            SettingKind::Date => p["format"] = json!("date"),
            SettingKind::Boolean => p["enum"] = json!(["true", "false"]),
            SettingKind::Integer => p["pattern"] = json!("^-?[0-9]+$"),
            SettingKind::Secret => p["writeOnly"] = json!(true),
            SettingKind::Text | SettingKind::Duration => {}
        }
        if let Some(d) = &s.default {
            p["default"] = json!(d);
        }
        properties.insert(s.name.clone(), p);
    }
    let required_for = |cap: &str| -> Vec<&str> {
        ordered(info)
            .into_iter()
            .filter(|s| match &s.required {
                RequiredFor::None => false,
                RequiredFor::All => true,
                RequiredFor::Capabilities(names) => names.iter().any(|n| n == cap),
            })
            .map(|s| s.name.as_str())
            .collect()
    };
    let rules: Vec<Value> = capabilities
        .iter()
        .map(|cap| {
            json!({
                "if": {"properties": {"capability": {"const": cap}}, "required": ["capability"]},
                "then": {"required": required_for(cap)},
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("{} settings", info.title),
        "type": "object",
        "properties": properties,
        "required": ["capability"],
        "additionalProperties": false,
        "allOf": rules,
    })
}

/// Markdown documentation: the description, capabilities, credentials and a settings table
/// per group.
pub fn markdown(info: &ConnectorInfo) -> String {
    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
    let mut out = format!("# {}\n\n{}\n\n", info.title, info.description);
    out.push_str(&format!(
        "Connector `{}`, version {}.",
        info.name,
        if info.version.is_empty() {
            "unknown"
        } else {
            &info.version
        }
    ));
    if let Some(url) = &info.documentation_url {
        out.push_str(&format!(" Documentation: <{url}>."));
    }
    out.push_str("\n\n## Capabilities\n\n");
    for c in &info.capabilities {
        out.push_str(&format!("- `{}`: {}\n", c.name, cell(&c.label)));
    }
    out.push_str("\n## Credentials\n\n");
    for k in &info.credential_kinds {
        out.push_str(&format!("- {}\n", credential_kind(*k)));
    }
    let mut group = None;
    for s in ordered(info) {
        if group != Some(s.group.as_str()) {
            group = Some(s.group.as_str());
            out.push_str(&format!(
                "\n## Settings: {}\n\n| Setting | Label | Kind | Required for | Default | Help |\n|---|---|---|---|---|---|\n",
                s.group
            ));
        }
        let kind = match &s.kind {
            SettingKind::Choice(options) => {
                let values: Vec<String> =
                    options.iter().map(|o| format!("`{}`", o.value)).collect();
                format!("one of {}", values.join(", "))
            }
            other => kind_name(other).to_string(),
        };
        let required = match &s.required {
            RequiredFor::None => "–".to_string(),
            RequiredFor::All => "all".to_string(),
            RequiredFor::Capabilities(names) => names.join(", "),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            s.name,
            cell(&s.label),
            kind,
            required,
            s.default
                .as_deref()
                .map_or("–".to_string(), |d| format!("`{}`", cell(d))),
            cell(&s.help),
        ));
    }
    out
}
