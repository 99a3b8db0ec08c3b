//! The admin API: health, metrics, the OpenAPI document, 422 with per-field errors, 404, the
//! bearer token, and the OAuth callback's refusals.

mod support;

use std::sync::Arc;

use sluice::admin::{AdminState, router};
use sluice::app::{App, AppConfig};
use sluice::scheduler::SchedulerStats;
use support::dirs::{TestDir, temp_dir};
use support::runtime::{approve_emulator, open_app};

async fn server(token: Option<&str>) -> (String, Arc<App>, TestDir) {
    server_for(token, None).await
}

/// The admin API over an app whose connectors may reach the emulator at `emulator`.
async fn server_for(token: Option<&str>, emulator: Option<&str>) -> (String, Arc<App>, TestDir) {
    let dir = temp_dir("admin");
    let mut config = AppConfig::new(dir.to_path_buf());
    config.allow_insecure_loopback = true;
    if let Some(url) = emulator {
        approve_emulator(&mut config, url);
    }
    let app = open_app(config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let state = AdminState::new(
        app.clone(),
        Arc::new(SchedulerStats::default()),
        token.map(Into::into),
        addr,
        base.clone(),
    )
    .unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.unwrap();
    });
    (base, app, dir)
}

async fn json(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[tokio::test]
async fn the_api_validates_and_describes_itself() {
    let (base, _app, _dir) = server(None).await;
    let http = reqwest::Client::new();
    let (status, body) = json(http.get(format!("{base}/healthz")).send().await.unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    let (status, doc) = json(
        http.get(format!("{base}/api/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/integrations"]["post"].is_object());

    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("sluice_connector_calls_total") && text.contains("sluice_integrations"));

    // 422 with per-field errors; nothing stored.
    let (status, body) = json(
        http.post(format!("{base}/api/integrations"))
            .header("content-type", "application/json")
            .body(r#"{"name":"x","capability":"helpdesk","settings":{"environment":"staging","domain":"ftp://x"}}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"environment"), "{fields:?}");
    let (status, body) = json(
        http.post(format!("{base}/api/integrations"))
            .header("content-type", "application/json")
            .body(r#"{"name":"x","bogus":1}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (_, list) = json(
        http.get(format!("{base}/api/integrations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list, serde_json::json!([]));

    let (status, _) = json(
        http.get(format!("{base}/api/integrations/int_nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);

    // The OAuth callback refuses a stale state and a callback without a code.
    let stale = http
        .get(format!("{base}/oauth/callback?code=abc&state=never-issued"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 400);
    let no_code = http
        .get(format!("{base}/oauth/callback?state=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_code.status().as_u16(), 400);
    let denied = http
        .get(format!(
            "{base}/oauth/callback?error=access_denied&error_description=end-user+denied+authorization&state=x"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 400);
    assert!(denied.text().await.unwrap().contains("access_denied"));
}

#[tokio::test]
async fn a_configured_admin_token_is_required() {
    let (base, _app, _dir) = server(Some("t0ken")).await;
    let http = reqwest::Client::new();
    let open = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(open.status().as_u16(), 200);
    for path in ["/api/integrations", "/metrics", "/api/connectors"] {
        let none = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(none.status().as_u16(), 401, "{path}");
        let wrong = http
            .get(format!("{base}{path}"))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401, "{path}");
        let right = http
            .get(format!("{base}{path}"))
            .bearer_auth("t0ken")
            .send()
            .await
            .unwrap();
        assert_eq!(right.status().as_u16(), 200, "{path}");
    }
}

#[tokio::test]
async fn integrations_are_added_and_authorized_through_the_api() {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        dataset: sf_emulator::Dataset::Empty,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .unwrap();
    let (base, app, _dir) = server_for(None, Some(&emu.url)).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let body = serde_json::json!({
        "name": "Acme", "capability": "helpdesk",
        "settings": {"environment": "production", "domain": emu.url, "pull-by": "updated"},
        "client_id": emu.client_id,
        "client_secret": emu.client_secret, "interval": "30m",
    });
    let (status, created) = json(
        http.post(format!("{base}/api/integrations"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(
        created.to_string().find(&emu.client_secret).is_none(),
        "no secret echoed"
    );
    let id = created["integration"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["integration"]["state"], "pending-authorization");
    assert_eq!(created["integration"]["interval_s"], 1800);

    let (status, auth) = json(
        http.post(format!("{base}/api/integrations/{id}/authorize"))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    let approve = http
        .get(auth["authorize_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let location = approve.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{base}/oauth/callback?")),
        "{location}"
    );
    let callback = http.get(&location).send().await.unwrap();
    assert_eq!(callback.status().as_u16(), 200);
    assert_eq!(
        app.store().integration(&id).unwrap().state,
        sluice::store::IntegrationState::Active
    );
    // The same callback again: the state was single-use.
    let replay = http.get(&location).send().await.unwrap();
    assert_eq!(replay.status().as_u16(), 400);

    // What the connector declares, and the streams it describes for this integration.
    let (status, about) = json(
        http.get(format!("{base}/api/connectors/salesforce/about"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{about}");
    assert_eq!(about["declaration"]["name"], "salesforce");
    let required = about["settings_schema"]["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["if"]["properties"]["capability"]["const"] == "content-management")
        .map(|r| r["then"]["required"].clone());
    assert_eq!(required, Some(serde_json::json!(["environment", "domain"])));
    let (status, missing) = json(
        http.get(format!("{base}/api/connectors/zendesk/about"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{missing}");
    let (status, streams) = json(
        http.get(format!("{base}/api/integrations/{id}/streams"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{streams}");
    let names: Vec<&str> = streams
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    // The empty org lacks the optional EmailMessage; the others are described.
    assert!(
        names.contains(&"Case") && names.contains(&"CaseHistory"),
        "{names:?}"
    );
    let case = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Case")
        .unwrap();
    assert_eq!(case["key_fields"], serde_json::json!(["Id"]));
    assert_eq!(case["json_schema"]["properties"]["Id"]["type"], "string");

    // A pull asked for while a run holds the integration is refused, not queued silently.
    let pull_url = format!("{base}/api/integrations/{id}/pull");
    let held = app.claim_run(&id).expect("nothing runs yet");
    let (status, busy) = json(
        http.post(&pull_url)
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{busy}");
    assert!(busy["error"].as_str().unwrap().contains("already running"));
    // The scheduler tells an overlap from other conflicts by this variant, not by the text.
    assert!(matches!(
        sluice::runner::run_pull(&app, &id, Default::default()).await,
        Err(sluice::app::AppError::AlreadyRunning(_))
    ));
    drop(held);
    let (status, started) = json(
        http.post(&pull_url)
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    // Wait for that run to end before the integration is deleted below.
    for _ in 0..100 {
        if app.claim_run(&id).is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let (status, edited) = json(
        http.patch(format!("{base}/api/integrations/{id}"))
            .header("content-type", "application/json")
            .body(r#"{"settings":{"pull-by":"sideways"}}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{edited}");
    let del = http
        .delete(format!("{base}/api/integrations/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 204);
    let (status, _) = json(
        http.get(format!("{base}/api/integrations/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

/// The API's install refuses a manifest that reaches further than the active version's until
/// the caller approves its hosts, as `plugin install --approve-hosts` does.
#[tokio::test]
async fn installing_a_wider_manifest_needs_approve_hosts() {
    let (base, app, _dir) = server(None).await;
    let wider = support::with_custom_section(
        support::hostile(),
        "sluice:manifest",
        &support::manifest_json(&["*.salesforce.com", "attacker.example"], &["GET"]),
    );
    let http = reqwest::Client::new();
    let install = |query: &'static str| {
        http.post(format!("{base}/api/connectors/salesforce{query}"))
            .header("content-type", "application/wasm")
            .body(wider.clone())
            .send()
    };
    let (status, body) = json(install("").await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("attacker.example"),
        "{body}"
    );
    assert_eq!(app.registry().active("salesforce").unwrap().version, 1);

    let (status, body) = json(install("?approve_hosts=true").await.unwrap()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["manifest"]["hosts"][1], "attacker.example", "{body}");
    assert_eq!(app.registry().active("salesforce").unwrap().version, 2);
}
