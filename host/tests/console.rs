//! The web console in a real browser: chromium headless, driven through chromedriver
//! (WebDriver), against `sluice serve` and the emulator's real login and consent pages
//! (no auto-approve). One browser session walks the scenario; screenshots of each step
//! are saved under the target directory (`console-screenshots/`) for review.

mod support;

use fantoccini::{Client, Locator};
use serde_json::json;
use sf_emulator::{Emulator, EmulatorConfig};
use support::binary::serve;
use support::browser::*;
use support::dirs::temp_dir;
use support::served::Served;

/// The admin API's view of an integration.
fn integration(served: &Served, id: &str) -> serde_json::Value {
    served.get_json(
        &format!("/api/integrations/{id}"),
        &served.generated_token(),
    )
}

fn record_total(view: &serde_json::Value) -> i64 {
    view["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["live"].as_i64().unwrap())
        .sum()
}

/// Opens Add Integration, finds Salesforce through the search and opens its form.
async fn open_salesforce_form(c: &Client, base: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    click(c, "#add-integration").await;
    fill(c, "#catalogue-search", "Salesforce").await;
    until(
        c,
        "the catalogue filtered",
        "document.querySelector('#catalogue-count').textContent.startsWith('1 ')",
    )
    .await;
    click(c, "#catalogue a.connector").await;
    c.wait()
        .for_element(Locator::Css("#tab-basic"))
        .await
        .unwrap();
}

/// Logs in (when asked) and allows access in the popup, then returns to the console window.
async fn allow_in_popup(c: &Client, console: &fantoccini::wd::WindowHandle, emu: &Emulator) {
    until(c, "the popup", "true").await;
    switch_to_popup(c, console).await;
    until(
        c,
        "the provider's page",
        "document.querySelector('#login_form')",
    )
    .await;
    shot(c, "03a-provider-login").await;
    fill(c, "#username", &emu.username).await;
    fill(c, "#password", &emu.password).await;
    click(c, "#Login").await;
    c.wait()
        .for_element(Locator::Css("#oaapprove"))
        .await
        .unwrap();
    shot(c, "03b-provider-consent").await;
    click(c, "#oaapprove").await;
    c.switch_to_window(console.clone()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_flow_in_a_real_browser() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = temp_dir("console");
    let served = serve_with_emulator(&dir, &emu);
    // The public URL `serve` registers for the callback is localhost: the console is opened
    // there so the callback page is the console's own origin.
    let base = format!("http://localhost:{}", served.addr.port());
    let driver = start_driver().await;
    let c = browser(&driver).await;

    // The sign-in link `serve` printed opens the browser's session and lands on the list.
    let link = served
        .sign_in_link
        .clone()
        .expect("serve prints a sign-in link");
    c.goto(&link).await.unwrap();

    // 1. The list, Add, search "Salesforce", the Basic and Authentication tabs.
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(text(&c, "#empty").await.contains("No integrations"));
    shot(&c, "01a-empty-list").await;
    open_salesforce_form(&c, &base).await;
    shot(&c, "01b-basic-tab").await;
    fill(&c, "#field-name", "Acme Helpdesk").await;
    choose(&c, "#field-capability", "helpdesk").await;
    click(&c, "#tab-authentication").await;
    assert!(shown(&c, "#field-s-environment").await);
    assert!(
        shown(&c, "#field-s-pull-by").await,
        "Helpdesk asks for Pull Record By"
    );
    assert!(!shown(&c, "#field-name").await, "the Basic panel is hidden");
    shot(&c, "01c-authentication-tab").await;

    // 2. A bad domain: the field error beside the field, summarised at the top with focus.
    choose(&c, "#field-s-environment", "production").await;
    choose(&c, "#field-s-pull-by", "updated").await;
    fill(&c, "#field-s-domain", "ftp://acme.example").await;
    click(&c, "#save").await;
    let summary = text(&c, "#error-summary").await;
    assert!(summary.contains("Salesforce domain URL"), "{summary}");
    assert!(text(&c, "#field-s-domain-error").await.len() > 3);
    assert_eq!(active_element_id(&c).await, "error-summary");
    assert!(
        shown(&c, "#field-s-domain").await,
        "the tab with the error is open"
    );
    shot(&c, "02-field-error").await;

    // 3. Connect: log in and Allow in the popup; the success message, the row on top.
    fill(&c, "#field-s-domain", &emu.url).await;
    click(&c, "#save").await;
    assert!(text(&c, "#notice").await.contains("Connect it"));
    let console = c.window().await.unwrap();
    click(&c, "#connect").await;
    allow_in_popup(&c, &console, &emu).await;
    until(
        &c,
        "the list after connect",
        "location.search.startsWith('?connected=')",
    )
    .await;
    assert!(
        text(&c, "#notice")
            .await
            .contains("Connected: Acme Helpdesk")
    );
    let first = c
        .find(Locator::Css("#integrations tbody tr"))
        .await
        .unwrap();
    let id = first.attr("data-id").await.unwrap().unwrap();
    assert!(first.text().await.unwrap().contains("Active"));
    shot(&c, "03c-connected").await;

    // 4. Test Connection is ok, inline.
    let row = format!("#row-{id}");
    click(&c, &format!("{row} button.test")).await;
    until(
        &c,
        "the test result",
        &format!("document.querySelector('#result-{id}').textContent.includes('Connection')"),
    )
    .await;
    let result = text(&c, &format!("#result-{id}")).await;
    assert!(result.contains("Connection OK"), "{result}");
    // Each probe's result, and a live region that announces it.
    for probe in ["passed: identity", "passed: limits", "passed: object:Case"] {
        assert!(result.contains(probe), "{probe}: {result}");
    }
    for live in [format!("#result-{id}"), "#notice".to_string()] {
        let role = c
            .find(Locator::Css(&live))
            .await
            .unwrap()
            .attr("role")
            .await
            .unwrap();
        assert_eq!(role.as_deref(), Some("status"), "{live}");
    }
    assert_eq!(active_element_id(&c).await, format!("result-{id}"));
    shot(&c, "04-test-ok").await;

    // Records to keep: a pull from the list.
    click(&c, &format!("{row} button.pull")).await;
    for _ in 0..600 {
        let runs = served.get_json(
            &format!("/api/integrations/{id}/runs"),
            &served.generated_token(),
        );
        if runs[0]["status"] == "succeeded" {
            break;
        }
        assert!(runs[0]["status"] != "failed", "{runs}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let before = integration(&served, &id);
    assert!(record_total(&before) > 0, "{before}");
    // The row: connector, capability, the last run and the token, in words.
    c.goto(&format!("{base}/")).await.unwrap();
    let cells = text(&c, &row).await;
    for said in [
        "salesforce",
        "helpdesk",
        "Active",
        "succeeded · ",
        " records",
        "Token OK",
    ] {
        assert!(cells.contains(said), "{said}: {cells}");
    }
    // The detail: runs, streams with record counts, records by pages.
    c.goto(&format!("{base}/integrations/{id}")).await.unwrap();
    // The run as the API has it: status, records, API calls, connector version, streams.
    let runs = served.get_json(
        &format!("/api/integrations/{id}/runs"),
        &served.generated_token(),
    );
    let runs_table = text(&c, "#runs").await;
    for said in [
        "succeeded".to_string(),
        runs[0]["records"].to_string(),
        runs[0]["api_calls"].to_string(),
        runs[0]["connector_version"].as_str().unwrap().to_string(),
        "CaseComment".to_string(),
    ] {
        assert!(runs_table.contains(&said), "{said}: {runs_table}");
    }
    let cases = before["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stream"] == "Case")
        .unwrap()["live"]
        .to_string();
    assert!(text(&c, "#streams").await.contains(&cases));
    let first_page = text(&c, "#records tbody").await;
    click(&c, "#next-page").await;
    until(
        &c,
        "the next page",
        "location.search.includes('after_key=')",
    )
    .await;
    let second_page = text(&c, "#records tbody").await;
    assert!(!second_page.is_empty() && second_page != first_page);
    shot(&c, "04b-detail").await;

    // 5. The tokens die at the provider; Test Connection says re-authorization is required.
    control(&emu, "/__emulator/tokens/revoke").await;
    c.goto(&format!("{base}/")).await.unwrap();
    click(&c, &format!("{row} button.test")).await;
    until(
        &c,
        "the failed test",
        &format!("document.querySelector('#result-{id}').textContent.includes('Re-authorization')"),
    )
    .await;
    shot(&c, "05-reauthorization-required").await;

    // 6. Edit → Authentication → Re-generate Token: consent without a login form (the
    // browser's provider session), then Test Connection is ok and the records are kept.
    click(&c, &format!("{row} a.edit")).await;
    click(&c, "#tab-authentication").await;
    assert_eq!(text(&c, "#connect").await, "Re-generate Token");
    assert!(
        text(&c, "#connect-box")
            .await
            .contains("records and its checkpoints are kept")
    );
    // The emulator, like Salesforce, remembers the user's approval of the connected app, and
    // the browser holds its session: the popup comes back with neither a login form nor a
    // consent page. Nothing is typed here, so a login form would stop the flow.
    click(&c, "#connect").await;
    until(
        &c,
        "the list after re-generate",
        "location.search.startsWith('?connected=')",
    )
    .await;
    click(&c, &format!("{row} button.test")).await;
    until(
        &c,
        "the test result",
        &format!("document.querySelector('#result-{id}').textContent.includes('Connection OK')"),
    )
    .await;
    shot(&c, "06b-regenerated").await;
    let after = integration(&served, &id);
    assert_eq!(record_total(&after), record_total(&before));
    assert_eq!(after["records"], before["records"]);
    assert_eq!(
        after["checkpoints"], before["checkpoints"],
        "checkpoints kept"
    );
    let list = served.get_json("/api/integrations", &served.generated_token());
    assert_eq!(list.as_array().unwrap().len(), 1, "not re-created: {list}");

    // The list's third state: paused, in words, with Resume in place of Pull now.
    let state_has = |words: &str| {
        format!("document.querySelector('{row} .state').textContent.includes('{words}')")
    };
    c.goto(&format!("{base}/")).await.unwrap();
    click(&c, &format!("{row} button.pause")).await;
    until(&c, "the paused row", &state_has("Paused")).await;
    assert!(text(&c, "#notice").await.contains("Paused Acme Helpdesk"));
    assert!(
        c.find(Locator::Css(&format!("{row} button.pull")))
            .await
            .is_err(),
        "a paused integration offers no Pull now"
    );
    assert!(integration(&served, &id)["integration"]["paused_at_ms"].is_i64());
    shot(&c, "06c-paused").await;
    click(&c, &format!("{row} button.resume")).await;
    until(&c, "the resumed row", &state_has("Active")).await;
    assert!(integration(&served, &id)["integration"]["paused_at_ms"].is_null());

    // 7. Content Management hides Pull Record By.
    open_salesforce_form(&c, &base).await;
    fill(&c, "#field-name", "Acme Knowledge").await;
    choose(&c, "#field-capability", "content-management").await;
    // The tabs follow the WAI-ARIA keyboard pattern: arrow keys move and select.
    c.execute("document.getElementById('tab-basic').focus();", vec![])
        .await
        .unwrap();
    let right = char::from(fantoccini::key::Key::Right).to_string();
    c.active_element()
        .await
        .unwrap()
        .send_keys(&right)
        .await
        .unwrap();
    assert_eq!(active_element_id(&c).await, "tab-authentication");
    let selected = c
        .find(Locator::Css("#tab-authentication"))
        .await
        .unwrap()
        .attr("aria-selected")
        .await
        .unwrap();
    assert_eq!(selected.as_deref(), Some("true"));
    assert!(!shown(&c, "#field-s-pull-by").await);
    assert!(shown(&c, "#field-s-domain").await);
    shot(&c, "07-content-management").await;

    // 8. The popup is blocked: the whole page goes to the provider and comes back.
    choose(&c, "#field-s-environment", "production").await;
    fill(&c, "#field-s-domain", &emu.url).await;
    click(&c, "#save").await;
    until(
        &c,
        "the saved integration",
        "location.search.includes('created=1')",
    )
    .await;
    click(&c, "#tab-authentication").await;
    c.execute("window.open = () => null;", vec![])
        .await
        .unwrap();
    click(&c, "#connect").await;
    // The whole page goes to the provider (its session and the approval are remembered, so
    // it comes straight back) and returns to the console; no second window was opened.
    until(
        &c,
        "the list after the redirect",
        "location.search.startsWith('?connected=')",
    )
    .await;
    assert!(
        text(&c, "#notice")
            .await
            .contains("Connected: Acme Knowledge")
    );
    let top = text(&c, "#integrations tbody tr th").await;
    assert_eq!(top, "Acme Knowledge", "the newest is on top");
    assert_eq!(c.windows().await.unwrap().len(), 1);
    shot(&c, "08b-redirect-connected").await;

    // Delete asks first: dismissed, nothing is deleted; accepted, the integration is gone.
    let knowledge = c
        .find(Locator::Css("#integrations tbody tr"))
        .await
        .unwrap()
        .attr("data-id")
        .await
        .unwrap()
        .unwrap();
    let delete = format!("#row-{knowledge} button.delete");
    click(&c, &delete).await;
    let asked = c.get_alert_text().await.unwrap();
    assert!(asked.contains("Delete Acme Knowledge"), "{asked}");
    c.dismiss_alert().await.unwrap();
    let listed = || served.get_json("/api/integrations", &served.generated_token());
    assert_eq!(listed().as_array().unwrap().len(), 2, "dismissed: kept");
    click(&c, &delete).await;
    c.accept_alert().await.unwrap();
    until(
        &c,
        "the list after the deletion",
        "location.search.startsWith('?deleted=')",
    )
    .await;
    assert!(text(&c, "#notice").await.contains("Deleted Acme Knowledge"));
    let left = listed();
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left[0]["id"], id.as_str());

    c.close().await.unwrap();
}

/// Connect's other endings in the popup. Deny: the provider's refusal comes back to the
/// console page in words a person can act on, and nothing is connected. A popup whose opener
/// link is cut (`window.opener = null`, as a provider page or a browser setting may do): the
/// callback cannot post to the console page, yet the page still learns of the grant, through
/// the broadcast channel or its polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_denied_says_why_and_a_popup_cut_from_its_opener_still_connects() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = temp_dir("console-popup");
    let served = serve_with_emulator(&dir, &emu);
    let base = format!("http://localhost:{}", served.addr.port());
    let id = add_integration_by_api(
        &served,
        &json!({"name": "Acme Denied", "capability": "crm",
            "settings": {"environment": "production", "domain": emu.url, "pull-by": "updated"}}),
    );
    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.goto(served.sign_in_link.as_deref().expect("a sign-in link"))
        .await
        .unwrap();
    let edit = format!("{base}/integrations/{id}/edit");

    c.goto(&edit).await.unwrap();
    click(&c, "#tab-authentication").await;
    let console = c.window().await.unwrap();
    click(&c, "#connect").await;
    switch_to_popup(&c, &console).await;
    until(
        &c,
        "the login form",
        "document.querySelector('#login_form')",
    )
    .await;
    fill(&c, "#username", &emu.username).await;
    fill(&c, "#password", &emu.password).await;
    click(&c, "#Login").await;
    c.wait().for_element(Locator::Css("#oadeny")).await.unwrap();
    click(&c, "#oadeny").await;
    c.switch_to_window(console.clone()).await.unwrap();
    until(
        &c,
        "the refusal on the console page",
        "document.querySelector('#connect-status').textContent.includes('Access was denied')",
    )
    .await;
    let said = text(&c, "#connect-status").await;
    assert!(
        said.starts_with(
            "Sluice could not connect the integration: access_denied: end-user denied authorization."
        ),
        "{said}"
    );
    assert!(said.contains("choose Allow"), "{said}");
    assert_eq!(active_element_id(&c).await, "connect-status");
    shot(&c, "09a-connect-denied").await;
    assert_eq!(
        integration(&served, &id)["integration"]["state"],
        "pending-authorization"
    );
    // The denied popup may still be open on the callback page.
    for handle in c.windows().await.unwrap() {
        if handle != console {
            c.switch_to_window(handle).await.unwrap();
            c.close_window().await.unwrap();
        }
    }
    c.switch_to_window(console.clone()).await.unwrap();

    c.goto(&edit).await.unwrap();
    click(&c, "#tab-authentication").await;
    click(&c, "#connect").await;
    switch_to_popup(&c, &console).await;
    // Logged in at the provider already: its consent page, without a login form.
    c.wait()
        .for_element(Locator::Css("#oaapprove"))
        .await
        .unwrap();
    assert!(
        c.find(Locator::Css("#login_form")).await.is_err(),
        "the provider session is reused"
    );
    c.execute("window.opener = null;", vec![]).await.unwrap();
    click(&c, "#oaapprove").await;
    c.switch_to_window(console).await.unwrap();
    until(
        &c,
        "the list after connect",
        "location.search.startsWith('?connected=')",
    )
    .await;
    assert!(text(&c, "#notice").await.contains("Connected: Acme Denied"));
    assert_eq!(integration(&served, &id)["integration"]["state"], "active");
    shot(&c, "09b-connected-without-opener").await;
    c.close().await.unwrap();
}

/// A client that shows redirects instead of following them.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of cookie `name` set by `resp`.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(String::from)
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

/// A session cookie (`name=value`) opened through the sign-in link `serve` printed.
async fn signed_in(served: &Served) -> String {
    let link = served
        .sign_in_link
        .clone()
        .expect("serve prints a sign-in link");
    let resp = http().get(link).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let session = set_cookie(&resp, "sluice_session").expect("a session cookie");
    cookie_value(&session).to_string()
}

/// `GET base+path` carrying `cookies`.
async fn get_with(base: &str, path: &str, cookies: &str) -> reqwest::Response {
    http()
        .get(format!("{base}{path}"))
        .header("cookie", cookies)
        .send()
        .await
        .unwrap()
}

/// The CSRF cookie and token the console gives a browser on its first page.
async fn csrf(base: &str, path: &str) -> (String, String) {
    let resp = http().get(format!("{base}{path}")).send().await.unwrap();
    let header = set_cookie(&resp, "sluice_csrf").expect("a CSRF cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Strict"),
        "{header}"
    );
    let token = cookie_value(&header).split_once('=').unwrap().1.to_string();
    (cookie_value(&header).to_string(), token)
}

/// Pages carry a CSP without inline script; a wrong Host is refused; a form from another site,
/// or without the browser's CSRF token, changes nothing; a client secret is never rendered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_forged_requests_and_never_shows_a_secret() {
    let dir = temp_dir("console-guard");
    let served = serve(&dir, &[], &[], "");
    let base = format!("http://localhost:{}", served.addr.port());
    let session = signed_in(&served).await;
    let page = get_with(&base, "/", &session).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    // A provider's refusal comes back in words a person can act on, under the same CSP.
    let denied = http()
        .get(format!(
            "{base}/oauth/callback?error=access_denied&error_description=end-user+denied+authorization&state=x"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 400);
    assert!(denied.headers().contains_key("content-security-policy"));
    let words = denied.text().await.unwrap();
    assert!(
        words.contains("access_denied") && words.contains("choose Allow"),
        "{words}"
    );

    // DNS rebinding: a page whose own name resolves to loopback.
    let (status, _) = served.send(
        "GET",
        "/",
        &format!("evil.example:{}", served.addr.port()),
        &[],
        b"",
    );
    assert_eq!(status, 421);

    let (cookie, token) = csrf(&base, "/").await;
    let form = format!(
        "csrf={token}&name=Forged&capability=helpdesk&s.environment=production&s.pull-by=updated&s.domain=https%3A%2F%2Facme.my.salesforce.com"
    );
    let post = |origin: Option<&'static str>, cookie: Option<String>, body: String| {
        let mut req = http()
            .post(format!("{base}/integrations/new?connector=salesforce"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(o) = origin {
            req = req
                .header("origin", o)
                .header("sec-fetch-site", "cross-site");
        }
        let cookies = match cookie {
            Some(c) => format!("{c}; {session}"),
            None => session.clone(),
        };
        req.header("cookie", cookies).send()
    };
    // A cross-site form post, even one carrying the right token.
    let cross = post(
        Some("http://evil.example"),
        Some(cookie.clone()),
        form.clone(),
    )
    .await
    .unwrap();
    assert_eq!(cross.status(), 403);
    // A same-origin post without the browser's CSRF cookie, or with another token.
    let no_cookie = post(None, None, form.clone()).await.unwrap();
    assert_eq!(no_cookie.status(), 403);
    let wrong = post(
        None,
        Some(cookie.clone()),
        form.replace(&token, "x".repeat(43).as_str()),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), 403);
    let list = served.get_json("/api/integrations", &served.generated_token());
    assert_eq!(list, json!([]), "nothing was stored");

    // The real form stores it; its client secret shows as "set", never its value.
    let secret = "s3cret-never-rendered";
    let ok = post(
        None,
        Some(cookie.clone()),
        format!("{form}&client_id=abc&client_secret={secret}"),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 303, "{}", ok.text().await.unwrap());
    let edit = ok.headers()["location"].to_str().unwrap().to_string();
    let html = http()
        .get(format!("{base}{edit}"))
        .header("cookie", format!("{cookie}; {session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Currently: set"), "{html}");
    assert!(!html.contains(secret));
    let list_html = get_with(&base, "/", &session).await.text().await.unwrap();
    assert!(list_html.contains("Forged") && !list_html.contains(secret));
}

/// Beyond loopback, every page needs a session that only the admin token opens; the session
/// cookie is HttpOnly and SameSite=Strict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_the_console_needs_the_admin_token() {
    let dir = temp_dir("console-login");
    let mut cmd = support::binary::sluice_command(&dir);
    cmd.args([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--public-url",
        "http://sluice.test",
    ])
    .env("SLUICE_ADMIN_TOKEN", "the-admin-token");
    let served = Served::spawn(cmd, &dir);
    let base = format!("http://127.0.0.1:{}", served.addr.port());

    let page = http().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login");
    let new = http()
        .get(format!("{base}/integrations/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(new.headers()["location"], "/login");

    let (cookie, token) = csrf(&base, "/login").await;
    let login = |typed: &str| {
        http()
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie.clone())
            .body(format!("csrf={token}&token={typed}"))
            .send()
    };
    let wrong = login("not-the-token").await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(&wrong, "sluice_session").is_none());
    let right = login("the-admin-token").await.unwrap();
    assert_eq!(right.status(), 303);
    let session = set_cookie(&right, "sluice_session").expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let both = format!("{cookie}; {}", cookie_value(&session));
    let page = http()
        .get(format!("{base}/"))
        .header("cookie", both)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Add Integration"));
}

/// On loopback too, every page needs a session: the sign-in link `serve` printed opens one,
/// once; a used or made-up code opens none and says how to sign in instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_needs_a_sign_in_even_on_loopback() {
    let dir = temp_dir("console-sign-in");
    let served = serve(&dir, &[], &[], "");
    let base = format!("http://localhost:{}", served.addr.port());
    for path in ["/", "/integrations/new"] {
        let page = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(page.status(), 303, "{path}");
        assert_eq!(page.headers()["location"], "/login", "{path}");
    }
    // Opened at the address, a page moves to the origin its OAuth callback and session use.
    let port = served.addr.port();
    for path in ["/", "/login", "/integrations/new?connector=salesforce"] {
        let page = http()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 303, "{path}");
        assert_eq!(
            page.headers()["location"],
            format!("http://localhost:{port}{path}").as_str(),
            "{path}"
        );
    }
    let (cookie, token) = csrf(&base, "/login").await;
    let forged = http()
        .post(format!("{base}/integrations/new?connector=salesforce"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .body(format!("csrf={token}&name=NoSession&capability=helpdesk"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    let link = served
        .sign_in_link
        .clone()
        .expect("serve prints a sign-in link");
    assert!(link.starts_with(&format!("{base}/login?code=")), "{link}");
    let made_up = http()
        .get(format!("{base}/login?code=not-the-code"))
        .send()
        .await
        .unwrap();
    assert_eq!(made_up.status(), 401);
    assert!(set_cookie(&made_up, "sluice_session").is_none());

    let session = signed_in(&served).await;
    let page = get_with(&base, "/", &session).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Add Integration"));

    let again = http().get(&link).send().await.unwrap();
    assert_eq!(again.status(), 401, "the link works once");
    assert!(set_cookie(&again, "sluice_session").is_none());
    assert!(again.text().await.unwrap().contains("sluice admin-token"));
    let list = served.get_json("/api/integrations", &served.generated_token());
    assert_eq!(list, json!([]), "nothing was stored without a session");
}
