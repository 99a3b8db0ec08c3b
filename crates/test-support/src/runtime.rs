//! The runtime as the runtime, admin and end-to-end tests use it: an opened `App` (with the
//! connector build under test), the OAuth connect flow against the emulator with
//! `auto_approve` (authorize, follow the redirect like a browser, hand the callback over), and
//! the emulator's control API.

use std::sync::Arc;

use sluice::app::{App, AppConfig};
use sluice::oauth::Callback;
use sluice::secrets::Secret;
use sluice::store::{GrantFlow, TokenSet, now_ms};

use crate::dirs::{TestDir, temp_dir};

/// Opens an app; with `SLUICE_TEST_COMPONENT` set, that build of the connector is installed
/// and runs instead of the embedded one (e.g. a newer one).
pub async fn open_app(mut config: AppConfig) -> Arc<App> {
    config.bundled_connector = Some(sluice::SALESFORCE_COMPONENT);
    let app = App::open(config).await.expect("app opens");
    if let Ok(path) = std::env::var("SLUICE_TEST_COMPONENT") {
        app.registry()
            .install("salesforce", &std::fs::read(path).unwrap(), false)
            .await
            .unwrap();
    }
    app
}

/// Lets `config`'s connectors reach the emulator at `url` (plain http on loopback): the
/// operator's extra origin, exactly that port, and insecure loopback.
pub fn approve_emulator(config: &mut AppConfig, url: &str) {
    config.allow_insecure_loopback = true;
    config
        .extra_origins
        .push(sluice::engine::policy::parse_extra_origin(url).expect("the emulator's origin"));
}

/// An app in a fresh data directory (`sluice-TAG-…`) whose connectors reach the emulator at
/// `url`, with no host-wide connected app; the directory lives as long as the returned guard.
pub async fn emulator_app(tag: &str, url: &str) -> (Arc<App>, TestDir) {
    let dir = temp_dir(tag);
    let mut config = AppConfig::new(dir.to_path_buf());
    approve_emulator(&mut config, url);
    config.host_client = Default::default();
    (open_app(config).await, dir)
}

/// A started emulator (auto-approving) and an app with one CRM integration named `tag` over
/// `objects`, connected, pulling Bulk-free with no lag; `tune` adjusts the app's config first.
pub async fn connected_crm(
    tag: &str,
    objects: &[&str],
    tune: impl FnOnce(&mut AppConfig),
) -> (sf_emulator::Emulator, Arc<App>, TestDir, String) {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let dir = temp_dir(tag);
    let mut config = AppConfig::new(dir.to_path_buf());
    approve_emulator(&mut config, &emu.url);
    config.host_client = Default::default();
    tune(&mut config);
    let app = open_app(config).await;
    let id = add_connected(&app, crm_input(&emu, tag, objects)).await;
    (emu, app, dir, id)
}

/// A CRM integration named `name` over `objects` of the emulator's org, with the emulator's
/// connected app, pulling Bulk-free with no lag.
pub fn crm_input(
    emu: &sf_emulator::Emulator,
    name: &str,
    objects: &[&str],
) -> sluice::app::IntegrationInput {
    sluice::app::IntegrationInput {
        name: Some(name.into()),
        capability: Some("crm".into()),
        settings: salesforce_settings(
            &emu.url,
            &[
                ("objects", &objects.join(",")),
                ("bulk-threshold", "0"),
                ("lag-seconds", "0"),
            ],
        ),
        client_id: Some(emu.client_id.clone()),
        client_secret: Some(emu.client_secret.clone()),
        ..sluice::app::IntegrationInput::default()
    }
}

/// Adds the integration `input` describes and connects it; its id.
pub async fn add_connected(app: &App, input: sluice::app::IntegrationInput) -> String {
    let id = app.add_integration(input).await.unwrap().integration.id;
    connect(app, &id).await;
    id
}

/// The callback URL the tests register; nothing listens there, the redirect is read instead.
pub const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

/// Follows the authorize URL like a browser would, up to the redirect to the callback.
pub async fn approve(url: &str) -> Callback {
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_redirection(),
        "authorize answered {}",
        resp.status()
    );
    callback_of(resp.headers())
}

/// The callback a redirect's `Location` carries.
pub fn callback_of(headers: &reqwest::header::HeaderMap) -> Callback {
    let location = headers[reqwest::header::LOCATION].to_str().unwrap();
    let url = url::Url::parse(location).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    Callback::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Connects integration `id`: authorization with PKCE, consent by the emulator, tokens stored.
pub async fn connect(app: &App, id: &str) {
    let start = app.begin_authorization(id, REDIRECT).await.unwrap();
    let callback = approve(start.url.as_str()).await;
    app.complete_authorization(callback)
        .await
        .expect("authorized");
}

/// An integration of the hostile test connector (which `app` must have installed) with
/// `behaviour` and further `extra` settings, connected with a stored grant for
/// `instance_url` whose access token is `"t"`. Returns its id.
pub fn add_hostile_integration(
    app: &App,
    behaviour: &str,
    extra: &[(&str, &str)],
    instance_url: &str,
) -> String {
    use sluice::store::{IntegrationSettings, NewIntegration};
    let mut settings = IntegrationSettings::new(
        "crm",
        [("environment", "production"), ("behaviour", behaviour)],
    );
    for (name, value) in extra {
        settings.set(name, value);
    }
    let integration = app
        .store()
        .insert_integration(&NewIntegration {
            name: format!("hostile {behaviour}"),
            connector: "hostile".into(),
            settings,
            interval_s: 3600,
            client_id: None,
            client_secret: None,
        })
        .unwrap();
    app.store()
        .put_grant(
            &integration.id,
            &grant("t", None, "https://login.example/token", instance_url),
        )
        .unwrap();
    integration.id
}

/// Settings as `IntegrationInput` takes them, from `(name, value)` items.
pub fn setting_pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// The Salesforce connector's settings for a production org at `domain` pulled by updated
/// time, then `more` (a later pair of the same name wins, as on `integration add`).
pub fn salesforce_settings(domain: &str, more: &[(&str, &str)]) -> Vec<(String, String)> {
    let base = [
        ("environment", "production"),
        ("domain", domain),
        ("pull-by", "updated"),
    ];
    setting_pairs(&[&base[..], more].concat())
}

/// An authorization-code grant as stored after a connect: `access` (and `refresh`) issued by
/// `token_url` for `instance_url`, with scope `api`, obtained now.
pub fn grant(access: &str, refresh: Option<&str>, token_url: &str, instance_url: &str) -> TokenSet {
    TokenSet {
        flow: GrantFlow::AuthorizationCode,
        access: Secret::new(access),
        refresh: refresh.map(Secret::new),
        token_url: token_url.into(),
        revoke_url: None,
        instance_url: Some(instance_url.into()),
        provider_fields: Default::default(),
        scopes: vec!["api".into()],
        obtained_at_ms: now_ms(),
        generation: 0,
    }
}

/// Calls the emulator's control API and returns its JSON answer; a failure fails the test.
pub async fn control(
    emu: &sf_emulator::Emulator,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let client = reqwest::Client::new();
    let url = format!("{}/__emulator/{path}", emu.url);
    let req = match method {
        "GET" => client.get(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    }
    .bearer_auth(&emu.control_key);
    let req = match body {
        Some(b) => req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(b.to_string()),
        None => req,
    };
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Changes the emulator's settings.
pub async fn settings(emu: &sf_emulator::Emulator, s: serde_json::Value) {
    control(emu, "POST", "settings", Some(s)).await;
}

/// The emulator's request counters.
pub async fn stats(emu: &sf_emulator::Emulator) -> serde_json::Value {
    control(emu, "GET", "stats", None).await
}

/// The ids of `object` the APIs serve as live records.
pub async fn live_truth(
    emu: &sf_emulator::Emulator,
    object: &str,
) -> std::collections::BTreeSet<String> {
    live_records(emu, object).await.into_keys().collect()
}

/// The records of `object` the APIs serve as live: Id → the row as the control API lists it,
/// the emulator's own `_` fields without.
pub async fn live_records(
    emu: &sf_emulator::Emulator,
    object: &str,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut live = std::collections::BTreeMap::new();
    let mut offset = 0;
    loop {
        let path = format!("records/{object}?offset={offset}&limit=2000");
        let page = control(emu, "GET", &path, None).await;
        let rows = page["records"].as_array().unwrap();
        offset += rows.len();
        for r in rows {
            let flag = |k: &str| r[k].as_bool().unwrap_or(false);
            if flag("_visible") && !flag("_deleted") && !flag("_purged") {
                let mut fields = r.as_object().unwrap().clone();
                fields.retain(|k, _| !k.starts_with('_'));
                live.insert(
                    r["Id"].as_str().unwrap().to_string(),
                    serde_json::Value::Object(fields),
                );
            }
        }
        if rows.is_empty() || offset >= page["totalSize"].as_u64().unwrap() as usize {
            return live;
        }
    }
}
