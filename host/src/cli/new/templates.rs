//! The connector templates and the SDK sources, embedded in the binary, and how a template
//! becomes files: `{{key}}` placeholders replaced by the connector's names, a `.tmpl` suffix
//! dropped, `_gitignore` written as `.gitignore`.
//!
//! A template's settings declaration (`src/settings.rs`) is also compiled into this binary, so
//! the README's settings table is rendered from the template's own `describe` by the same code
//! as `sluice connector about`, and cannot drift from what the built component declares.

use include_dir::{Dir, include_dir};

use crate::engine::wit::types as wit;
use sluice_connector_sdk::model as sdk;

/// The templates, one directory each.
static CONNECTOR_TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates/connector");
/// The SDK's sources as this binary was built with them.
static SDK_SOURCES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../crates/sdk");
/// The vendored SDK's manifest: the workspace's inherits dependencies it cannot have alone.
const SDK_MANIFEST: &str = include_str!("../../../templates/sdk/Cargo.toml.tmpl");
/// Where the vendored SDK goes inside the new crate.
const VENDORED_SDK: &str = "vendor/sluice-connector-sdk";

// Compiled here only for their declarations; the validation in them runs in the connector.
#[allow(dead_code)]
#[path = "../../../templates/connector/oauth/src/settings.rs"]
mod oauth_settings;
#[allow(dead_code)]
#[path = "../../../templates/connector/rest-json/src/settings.rs"]
mod rest_json_settings;

/// The templates `sluice new connector` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// A REST/JSON API with an API key in a header, cursor and next-URL pagination.
    RestJson,
    /// A SaaS API with OAuth 2.0 (authorization code with PKCE) and cursor pagination.
    Oauth,
}

impl Template {
    /// Its name on the command line and its directory.
    pub fn name(self) -> &'static str {
        match self {
            Template::RestJson => "rest-json",
            Template::Oauth => "oauth",
        }
    }

    /// What the template's `describe` declares, for a connector named by `names`.
    pub fn describe(self, names: &Names) -> sdk::ConnectorInfo {
        let (description, capabilities, settings, kinds) = match self {
            Template::RestJson => (
                rest_json_settings::DESCRIPTION,
                rest_json_settings::capabilities(),
                rest_json_settings::declared(),
                rest_json_settings::CREDENTIAL_KINDS,
            ),
            Template::Oauth => (
                oauth_settings::DESCRIPTION,
                oauth_settings::capabilities(),
                oauth_settings::declared(),
                oauth_settings::CREDENTIAL_KINDS,
            ),
        };
        sdk::ConnectorInfo {
            name: names.name.clone(),
            title: names.title.clone(),
            // The generated Cargo.toml's version.
            version: "0.1.0".into(),
            description: description.into(),
            documentation_url: None,
            capabilities,
            settings,
            credential_kinds: kinds.to_vec(),
        }
    }
}

/// The names a connector goes by in its crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// As given: the package name and `describe`'s name, e.g. `demo-rest`.
    pub name: String,
    /// The library's name, which names the component file, e.g. `demo_rest`.
    pub lib_name: String,
    /// What a person sees, e.g. `Demo Rest`.
    pub title: String,
    /// The connector type, e.g. `DemoRestConnector`.
    pub type_name: String,
}

/// Crate names Cargo or Rust reserve.
const RESERVED: &[&str] = &["test", "core", "std", "alloc", "proc_macro", "proc-macro"];

impl Names {
    /// The names of connector `name`, which must be a valid connector and crate name.
    pub fn of(name: &str) -> anyhow::Result<Self> {
        let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
        if !starts_with_letter || !crate::engine::registry::valid_connector_name(name) {
            anyhow::bail!(
                "`{}` is not a connector name: use a lower-case letter, then up to 63 of \
                 a-z, 0-9, `-` and `_`",
                crate::terminal::safe(name)
            );
        }
        if RESERVED.contains(&name) {
            anyhow::bail!("`{name}` is reserved by Rust for its own crates; choose another name");
        }
        let words: Vec<String> = name
            .split(['-', '_'])
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut chars = w.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Ok(Self {
            name: name.to_string(),
            lib_name: name.replace('-', "_"),
            title: words.join(" "),
            type_name: format!("{}Connector", words.concat()),
        })
    }
}

/// Where the new crate's SDK comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// This binary's copy, written into the crate's `vendor/`.
    Vendored,
    /// An SDK directory elsewhere (absolute).
    At(std::path::PathBuf),
}

/// One file of the new crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its path inside the crate.
    pub path: std::path::PathBuf,
    /// Its contents.
    pub contents: Vec<u8>,
}

/// The files of a crate made from `template` for `names`, with its SDK.
pub fn render(template: Template, names: &Names, sdk: &Sdk) -> anyhow::Result<Vec<File>> {
    let dir = CONNECTOR_TEMPLATES
        .get_dir(template.name())
        .ok_or_else(|| anyhow::anyhow!("the {} template is missing", template.name()))?;
    let about = crate::about::markdown(&to_wit(template.describe(names)));
    let (sdk_path, sdk_note) = match sdk {
        Sdk::Vendored => (
            VENDORED_SDK.to_string(),
            format!(
                "The SDK is the copy in `{VENDORED_SDK}`, written by the `sluice` binary that \
                 generated this crate (SDK {}), so the crate builds offline. To take a newer \
                 SDK, replace that directory, or point the dependency in `Cargo.toml` at \
                 Sluice's `crates/sdk`.",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        Sdk::At(path) => (
            path.display().to_string(),
            format!("The SDK is the one at `{}` (`--sdk`).", path.display()),
        ),
    };
    let values = [
        ("name", names.name.as_str()),
        ("lib_name", names.lib_name.as_str()),
        ("title", names.title.as_str()),
        ("type_name", names.type_name.as_str()),
        ("sdk_path", &toml_escape(&sdk_path)),
        ("sdk_note", &sdk_note),
        ("about", &about),
    ];
    let mut files = Vec::new();
    for file in all_files(dir) {
        let relative = file.path().strip_prefix(dir.path())?;
        let text = std::str::from_utf8(file.contents())
            .map_err(|_| anyhow::anyhow!("template file {} is not UTF-8", relative.display()))?;
        files.push(File {
            path: output_path(relative),
            contents: fill(text, &values, relative)?.into_bytes(),
        });
    }
    if *sdk == Sdk::Vendored {
        files.extend(vendored_sdk()?);
    }
    Ok(files)
}

/// The SDK's sources under `vendor/`, with a manifest of its own instead of the workspace's.
fn vendored_sdk() -> anyhow::Result<Vec<File>> {
    let root = std::path::Path::new(VENDORED_SDK);
    let mut files = vec![File {
        path: root.join("Cargo.toml"),
        contents: fill(
            SDK_MANIFEST,
            &[("sdk_version", env!("CARGO_PKG_VERSION"))],
            std::path::Path::new("Cargo.toml"),
        )?
        .into_bytes(),
    }];
    for file in all_files(&SDK_SOURCES) {
        let path = file.path();
        // The first contract's WIT is the host's business, not a connector's.
        if path == std::path::Path::new("Cargo.toml") || path.starts_with("wit-0.1") {
            continue;
        }
        files.push(File {
            path: root.join(path),
            contents: file.contents().to_vec(),
        });
    }
    Ok(files)
}

fn all_files<'a>(dir: &'a Dir<'a>) -> Vec<&'a include_dir::File<'a>> {
    let mut files: Vec<&include_dir::File> = dir.files().collect();
    for sub in dir.dirs() {
        files.extend(all_files(sub));
    }
    files
}

/// A template file's path in the crate: `.tmpl` dropped, `_gitignore` as `.gitignore`.
fn output_path(relative: &std::path::Path) -> std::path::PathBuf {
    let text = relative.to_string_lossy();
    let text = text.strip_suffix(".tmpl").unwrap_or(&text);
    let text = if text == "_gitignore" {
        ".gitignore"
    } else {
        text
    };
    std::path::PathBuf::from(text)
}

/// `text` with every `{{key}}` replaced; a placeholder left over is a broken template.
fn fill(text: &str, values: &[(&str, &str)], file: &std::path::Path) -> anyhow::Result<String> {
    let mut out = text.to_string();
    for (key, value) in values {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    if let Some(at) = out.find("{{") {
        let rest: String = out[at..].chars().take(40).collect();
        anyhow::bail!(
            "template file {} has an unknown placeholder at `{rest}`",
            file.display()
        );
    }
    Ok(out)
}

fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The SDK's declaration as the engine's WIT types, which `about` renders.
fn to_wit(info: sdk::ConnectorInfo) -> wit::ConnectorInfo {
    wit::ConnectorInfo {
        name: info.name,
        title: info.title,
        version: info.version,
        description: info.description,
        documentation_url: info.documentation_url,
        capabilities: info
            .capabilities
            .into_iter()
            .map(|c| wit::CapabilityInfo {
                name: c.name,
                label: c.label,
            })
            .collect(),
        settings: info.settings.into_iter().map(setting).collect(),
        credential_kinds: info
            .credential_kinds
            .into_iter()
            .map(credential_kind)
            .collect(),
    }
}

fn setting(s: sdk::Setting) -> wit::Setting {
    wit::Setting {
        name: s.name,
        label: s.label,
        help: s.help,
        kind: match s.kind {
            sdk::SettingKind::Text => wit::SettingKind::Text,
            sdk::SettingKind::Url => wit::SettingKind::Url,
            sdk::SettingKind::Choice(options) => wit::SettingKind::Choice(
                options
                    .into_iter()
                    .map(|o| wit::ChoiceOption {
                        value: o.value,
                        label: o.label,
                    })
                    .collect(),
            ),
            sdk::SettingKind::Boolean => wit::SettingKind::Boolean,
            sdk::SettingKind::Integer => wit::SettingKind::Integer,
            sdk::SettingKind::Duration => wit::SettingKind::Duration,
            sdk::SettingKind::Date => wit::SettingKind::Date,
            sdk::SettingKind::Secret => wit::SettingKind::Secret,
        },
        required: match s.required {
            sdk::RequiredFor::None => wit::RequiredFor::None,
            sdk::RequiredFor::All => wit::RequiredFor::All,
            sdk::RequiredFor::Capabilities(names) => wit::RequiredFor::Capabilities(names),
        },
        default: s.default,
        group: s.group,
        order: s.order,
    }
}

fn credential_kind(k: sdk::CredentialKind) -> wit::CredentialKind {
    match k {
        sdk::CredentialKind::OAuth2AuthorizationCode => {
            wit::CredentialKind::Oauth2AuthorizationCode
        }
        sdk::CredentialKind::OAuth2ClientCredentials => {
            wit::CredentialKind::Oauth2ClientCredentials
        }
        sdk::CredentialKind::ApiKey => wit::CredentialKind::ApiKey,
        sdk::CredentialKind::Basic => wit::CredentialKind::Basic,
        sdk::CredentialKind::None => wit::CredentialKind::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_connector_name_and_bad_names_are_refused() {
        let names = Names::of("demo-rest_api").unwrap();
        assert_eq!(names.lib_name, "demo_rest_api");
        assert_eq!(names.title, "Demo Rest Api");
        assert_eq!(names.type_name, "DemoRestApiConnector");
        for bad in [
            "",
            "Demo",
            "9lives",
            "-x",
            "a b",
            "a/../b",
            "test",
            &"a".repeat(65),
        ] {
            assert!(Names::of(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        let names = Names::of("demo").unwrap();
        for template in [Template::RestJson, Template::Oauth] {
            let files = render(template, &names, &Sdk::Vendored).unwrap();
            let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
            for expected in [
                "Cargo.toml",
                "README.md",
                "manifest.json",
                "settings.example.json",
                ".gitignore",
                "src/lib.rs",
                "src/settings.rs",
                "src/tests.rs",
                "vendor/sluice-connector-sdk/Cargo.toml",
                "vendor/sluice-connector-sdk/src/lib.rs",
                "vendor/sluice-connector-sdk/wit/connector.wit",
            ] {
                assert!(
                    paths.iter().any(|p| p == expected),
                    "{expected} in {paths:?}"
                );
            }
            assert!(!paths.iter().any(|p| p.contains("wit-0.1")));
            let readme = files
                .iter()
                .find(|f| f.path.ends_with("README.md"))
                .unwrap();
            let readme = String::from_utf8(readme.contents.clone()).unwrap();
            assert!(readme.contains("| `base-url` |"), "{readme}");
        }
        assert!(fill("{{nope}}", &[], std::path::Path::new("x")).is_err());
    }

    /// The vendored SDK's manifest spells out what the workspace's inherits: a dependency
    /// added to the SDK must be added there too, or generated crates stop building.
    #[test]
    fn the_vendored_sdk_manifest_has_every_dependency_of_the_sdk() {
        let real = SDK_SOURCES
            .get_file("Cargo.toml")
            .and_then(|f| f.contents_utf8())
            .unwrap();
        let mut section = "";
        for line in real.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line;
                continue;
            }
            let Some((name, _)) = line.split_once('=') else {
                continue;
            };
            let name = name.trim().trim_end_matches(".workspace");
            if section.contains("dependencies") && !section.contains("dev-") {
                assert!(
                    SDK_MANIFEST
                        .lines()
                        .any(|l| l.trim_start().starts_with(&format!("{name} "))),
                    "the SDK depends on `{name}` ({section}); add it to templates/sdk/Cargo.toml.tmpl"
                );
            }
            if section == "[features]" {
                assert!(SDK_MANIFEST.contains(line), "feature `{line}`");
            }
        }
    }
}
