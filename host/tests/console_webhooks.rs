//! The console's Webhooks page in a real browser (chromium headless through chromedriver)
//! against `sluice serve`: a URL the egress rules refuse is shown as a field error with the
//! summary focused; an approved one is added for one integration, its signing secret shown
//! once; removing it asks first. The admin API confirms each change. Screenshots go to
//! `console-screenshots/webhooks-*.png` under the target directory.

mod support;

use fantoccini::Locator;
use serde_json::json;
use sf_emulator::{Emulator, EmulatorConfig};
use support::browser::*;
use support::dirs::temp_dir;
use support::served::Served;

/// The endpoints the admin API lists.
fn endpoints(served: &Served) -> Vec<serde_json::Value> {
    let listed = served.get_json("/api/webhooks", &served.generated_token());
    listed.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_endpoints_are_added_and_removed_in_a_real_browser() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = temp_dir("console-webhooks");
    let served = serve_with_emulator(&dir, &emu);
    let body = json!({
        "name": "Acme Support", "capability": "helpdesk",
        "settings": {"environment": "production", "domain": emu.url, "pull-by": "updated"},
    });
    let integration = add_integration_by_api(&served, &body);

    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.goto(&served.sign_in_link.clone().expect("a sign-in link"))
        .await
        .unwrap();
    click(&c, "nav a[href='/webhooks']").await;
    assert!(text(&c, "#no-webhooks").await.contains("No endpoint"));

    // A private address nobody approved: refused by the egress rules, next to the field.
    fill(&c, "#webhook-url", "http://10.1.2.3/hooks").await;
    click(&c, "#add-endpoint").await;
    let summary = text(&c, "#error-summary").await;
    assert!(summary.contains("Endpoint URL"), "{summary}");
    assert_eq!(active_element_id(&c).await, "error-summary");
    let said = text(&c, "#webhook-url-error").await;
    assert!(!said.trim().is_empty(), "the field says why");
    shot(&c, "webhooks-refused").await;
    assert!(endpoints(&served).is_empty(), "nothing was added");

    // The emulator's origin is approved (--extra-origin): added for one integration.
    let url = format!("{}/hooks", emu.url);
    fill(&c, "#webhook-url", &url).await;
    choose(&c, "#webhook-integration", &integration).await;
    click(&c, "#add-endpoint").await;
    let secret = c
        .wait()
        .for_element(Locator::Css("#added-secret"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(active_element_id(&c).await, "notice");
    let listed = endpoints(&served);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["url"], url.as_str());
    assert_eq!(listed[0]["integration_id"], integration.as_str());
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let row = text(&c, &format!("#webhook-{id}")).await;
    assert!(row.contains("Acme Support"), "{row}");
    shot(&c, "webhooks-added").await;

    // Shown once: the page itself does not show it again.
    c.goto(&format!("http://localhost:{}/webhooks", served.addr.port()))
        .await
        .unwrap();
    text(&c, "#webhooks").await;
    let source = c.source().await.unwrap();
    assert!(!source.contains(&secret), "the secret is shown only once");

    // Removing asks first, then the endpoint is gone.
    click(&c, &format!("#remove-{id}")).await;
    let effect = text(&c, "#remove-effect").await;
    assert!(effect.contains("Acme Support"), "{effect}");
    assert_eq!(
        endpoints(&served).len(),
        1,
        "nothing removed before confirming"
    );
    click(&c, "#confirm-remove").await;
    let notice = text(&c, "#notice").await;
    assert!(notice.contains("is removed"), "{notice}");
    assert!(endpoints(&served).is_empty());
    shot(&c, "webhooks-removed").await;
    c.close().await.unwrap();
}
