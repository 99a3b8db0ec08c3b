//! The web console's accessibility in a real browser (chromium headless through chromedriver):
//! the setup flow walked with the keyboard alone, the vendored axe-core run on every page and
//! state, every page at 200 % zoom, and states that never rest on colour alone. Screenshots of
//! each step go under the target directory (`console-screenshots/`) for review.

mod support;

use fantoccini::Client;
use fantoccini::key::Key;
use serde_json::{Value, json};
use sf_emulator::{Emulator, EmulatorConfig};
use support::browser::*;
use support::dirs::{TestDir, temp_dir};
use support::keyboard::*;
use support::served::Served;

/// axe-core's minified build, pinned (see `vendor/axe-core/README.md`).
const AXE: &str = include_str!("vendor/axe-core/axe.min.js");

/// `sluice serve` with the console, an emulator and a chromium session on it.
struct Scene {
    emu: Emulator,
    served: Served,
    /// The console's origin as `serve` registers it for the OAuth callback.
    base: String,
    c: Client,
    _driver: Driver,
    _dir: TestDir,
}

/// Starts the scene; `auto_approve` lets the emulator skip its login and consent pages (for
/// the tests that need a connected integration but do not walk the login); `extra` goes to
/// chromium's command line.
async fn scene(name: &str, auto_approve: bool, extra: &[&str]) -> Scene {
    let emu = Emulator::start(EmulatorConfig {
        auto_approve,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = temp_dir(name);
    let served = serve_with_emulator(&dir, &emu);
    let base = format!("http://localhost:{}", served.addr.port());
    let driver = start_driver().await;
    let c = browser_with(&driver, extra).await;
    Scene {
        emu,
        served,
        base,
        c,
        _driver: driver,
        _dir: dir,
    }
}

impl Scene {
    /// Opens the browser's console session through the sign-in link `serve` printed.
    async fn sign_in(&self) {
        let link = self.served.sign_in_link.clone().expect("a sign-in link");
        self.c.goto(&link).await.unwrap();
        until(
            &self.c,
            "the list",
            "document.querySelector('#add-integration')",
        )
        .await;
    }

    /// Opens `path` of the console and waits for its load.
    async fn open(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }
}

/// Waits for an element matching `css` on a fully loaded page, its script set up (a key
/// press that navigates returns before the new page has loaded).
async fn page_has(c: &Client, what: &str, css: &str) {
    let loaded = format!(
        "document.readyState === 'complete' && document.querySelector({})",
        json!(css)
    );
    until(c, what, &loaded).await;
}

/// The value of the control `css`.
async fn value_of(c: &Client, css: &str) -> String {
    c.execute(
        "return document.querySelector(arguments[0]).value;",
        vec![json!(css)],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or("")
    .to_string()
}

/// The attribute `attr` of the first element matching `css` (empty when absent).
async fn attr_of(c: &Client, css: &str, attr: &str) -> String {
    c.execute(
        "return document.querySelector(arguments[0]).getAttribute(arguments[1]) || '';",
        vec![json!(css), json!(attr)],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap_or("")
    .to_string()
}

/// Selects `value` in the focused drop-down with the arrow keys, as a keyboard user does.
async fn choose_with_keys(c: &Client, css: &str, value: &str) {
    assert!(focus_is(c, css).await, "{css} has focus");
    press(c, &[Key::Home]).await;
    for _ in 0..10 {
        if value_of(c, css).await == value {
            return;
        }
        press(c, &[Key::Down]).await;
    }
    panic!("{value} is not reachable with the arrow keys in {css}");
}

/// The tab `key` is the selected one and the only tab in the Tab order (roving tabindex), and
/// only its panel is shown.
async fn assert_tab_selected(c: &Client, key: &str) {
    let script = "return Array.from(document.querySelectorAll('[role=tab]')).map(t => ({ \
        key: t.id.replace('tab-', ''), selected: t.getAttribute('aria-selected'), \
        tabindex: t.getAttribute('tabindex'), \
        shown: !document.getElementById(t.getAttribute('aria-controls')).hidden }));";
    let tabs = c.execute(script, vec![]).await.unwrap();
    let tabs = tabs.as_array().unwrap();
    assert!(
        tabs.iter().any(|t| t["key"] == key),
        "no tab {key}: {tabs:?}"
    );
    for t in tabs {
        let on = t["key"] == key;
        let want = json!({
            "key": t["key"],
            "selected": if on { "true" } else { "false" },
            "tabindex": if on { "0" } else { "-1" },
            "shown": on,
        });
        assert_eq!(
            t,
            &want,
            "with {key} selected (focus on {})",
            focused(c).await
        );
    }
}

/// Logs in and allows access in the popup with the keyboard, then returns to `console`.
async fn allow_in_popup_by_keyboard(
    c: &Client,
    console: &fantoccini::wd::WindowHandle,
    emu: &Emulator,
) {
    switch_to_popup(c, console).await;
    page_has(c, "the provider's login", "#login_form").await;
    tab_to(c, "#username", false, 10).await;
    type_text(c, &emu.username).await;
    tab_to(c, "#password", false, 2).await;
    type_text(c, &emu.password).await;
    shot(c, "a11y-03a-keyboard-login").await;
    press(c, &[Key::Enter]).await;
    page_has(c, "the consent page", "#oaapprove").await;
    tab_to(c, "#oaapprove", false, 10).await;
    shot(c, "a11y-03b-keyboard-consent").await;
    press(c, &[Key::Space]).await;
    c.switch_to_window(console.clone()).await.unwrap();
}

/// Scenario step 9: steps 1–3 with the keyboard alone. Every move is a key press sent as a
/// WebDriver action; focus is checked after each page load and update, and each control
/// reached shows a focus indicator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_only_adds_and_connects_an_integration() {
    let s = scene("console-a11y-keys", false, &[]).await;
    let c = &s.c;
    emulate_window_focus(c).await;
    s.sign_in().await;
    s.open("/").await;
    page_has(c, "the empty list", "#empty").await;

    // The first Tab stop skips to the content.
    press(c, &[Key::Tab]).await;
    assert!(
        focus_is(c, "a.skip").await,
        "first stop: {}",
        focused(c).await
    );
    assert_focus_indicator(c).await;
    let left = c
        .execute(
            "return document.activeElement.getBoundingClientRect().left;",
            vec![],
        )
        .await
        .unwrap();
    assert!(left.as_f64().unwrap() >= 0.0, "the focused skip link shows");
    press(c, &[Key::Enter]).await;
    wait_focus(c, "the skip link", "main").await;

    // 1. The list → Add Integration → search "Salesforce" → open it.
    tab_to(c, "#add-integration", false, 6).await;
    assert_focus_indicator(c).await;
    shot(c, "a11y-01a-keyboard-add").await;
    press(c, &[Key::Enter]).await;
    page_has(c, "the catalogue", "#catalogue-search").await;
    tab_to(c, "#catalogue-search", false, 8).await;
    assert_focus_indicator(c).await;
    type_text(c, "Salesforce").await;
    until(
        c,
        "the catalogue filtered",
        "document.querySelector('#catalogue-count').textContent.startsWith('1 ')",
    )
    .await;
    tab_to(c, "#catalogue a.connector", false, 4).await;
    assert_focus_indicator(c).await;
    shot(c, "a11y-01b-keyboard-catalogue").await;
    press(c, &[Key::Enter]).await;
    page_has(c, "the form", "#tab-basic").await;

    // The tabs: one stop in the Tab order; arrows, Home and End move and select.
    tab_to(c, "#tab-basic", false, 8).await;
    assert_focus_indicator(c).await;
    assert_tab_selected(c, "basic").await;
    press(c, &[Key::Right]).await;
    assert!(
        focus_is(c, "#tab-authentication").await,
        "{}",
        focused(c).await
    );
    assert_tab_selected(c, "authentication").await;
    assert_focus_indicator(c).await;
    press(c, &[Key::Left]).await;
    assert!(focus_is(c, "#tab-basic").await);
    assert_tab_selected(c, "basic").await;
    press(c, &[Key::End]).await;
    let last = attr_of(c, "[role=tab]:last-of-type", "id").await;
    assert!(focus_is(c, &format!("#{last}")).await, "End: the last tab");
    assert_tab_selected(c, last.trim_start_matches("tab-")).await;
    press(c, &[Key::Home]).await;
    assert!(focus_is(c, "#tab-basic").await);
    assert_tab_selected(c, "basic").await;

    // The Basic fields.
    tab_to(c, "#field-name", false, 3).await;
    assert_focus_indicator(c).await;
    type_text(c, "Acme Helpdesk").await;
    tab_to(c, "#field-capability", false, 2).await;
    assert_focus_indicator(c).await;
    choose_with_keys(c, "#field-capability", "helpdesk").await;
    shot(c, "a11y-01c-keyboard-basic").await;

    // Back to the tab list, arrow to Authentication, and its fields.
    tab_to(c, "#tab-basic", true, 4).await;
    press(c, &[Key::Right]).await;
    assert_tab_selected(c, "authentication").await;
    tab_to(c, "#field-s-environment", false, 3).await;
    assert_focus_indicator(c).await;
    choose_with_keys(c, "#field-s-environment", "production").await;
    tab_to(c, "#field-s-pull-by", false, 3).await;
    choose_with_keys(c, "#field-s-pull-by", "updated").await;
    tab_to(c, "#field-s-domain", false, 3).await;
    assert_focus_indicator(c).await;
    type_text(c, "ftp://acme.example").await;
    shot(c, "a11y-01d-keyboard-authentication").await;

    // 2. Save with a bad domain: focus lands on the error summary; its link takes focus to
    // the field.
    tab_to(c, "#save", false, 8).await;
    assert_focus_indicator(c).await;
    press(c, &[Key::Enter]).await;
    page_has(c, "the error summary", "#error-summary").await;
    wait_focus(c, "a save with a bad domain", "#error-summary").await;
    assert_focus_indicator(c).await;
    assert!(
        text(c, "#error-summary")
            .await
            .contains("Salesforce domain URL")
    );
    shot(c, "a11y-02a-keyboard-error-summary").await;
    tab_to(c, "#error-summary a[href='#field-s-domain']", false, 3).await;
    assert_focus_indicator(c).await;
    press(c, &[Key::Enter]).await;
    wait_focus(c, "following the summary's link", "#field-s-domain").await;
    assert_eq!(
        attr_of(c, "#field-s-domain", "aria-invalid").await,
        "true",
        "the field says it is invalid"
    );
    assert!(
        attr_of(c, "#field-s-domain", "aria-describedby")
            .await
            .contains("field-s-domain-error"),
        "the field's error is its description"
    );
    retype(c, &s.emu.url).await;
    shot(c, "a11y-02b-keyboard-fixed").await;
    tab_to(c, "#save", false, 8).await;
    press(c, &[Key::Enter]).await;

    // 3. Saved: focus on the notice, then Connect; log in and Allow with the keyboard too.
    page_has(c, "the saved integration", "#connect").await;
    wait_focus(c, "saving", "#notice").await;
    assert_focus_indicator(c).await;
    assert!(text(c, "#notice").await.contains("Connect it"));
    tab_to(c, "#connect", false, 16).await;
    assert_focus_indicator(c).await;
    shot(c, "a11y-03-keyboard-connect").await;
    let console = c.window().await.unwrap();
    press(c, &[Key::Enter]).await;
    allow_in_popup_by_keyboard(c, &console, &s.emu).await;
    until(
        c,
        "the list after connect",
        "location.search.startsWith('?connected=')",
    )
    .await;
    wait_focus(c, "connecting", "#notice").await;
    assert_focus_indicator(c).await;
    assert!(
        text(c, "#notice")
            .await
            .contains("Connected: Acme Helpdesk")
    );
    let top = text(c, "#integrations tbody tr th").await;
    assert_eq!(top, "Acme Helpdesk");
    shot(c, "a11y-03c-keyboard-connected").await;
    c.clone().close().await.unwrap();
}

/// What the walk over every page checks on each page and state.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    /// axe-core: no violation of impact `serious` or `critical`.
    Axe,
    /// At 200 % zoom: the page reflows into the viewport, and `Walk::keep_in_view` stays in it.
    Zoom,
}

/// axe-core's violations on the current page, injected on first use, as JSON.
async fn axe_violations(c: &Client) -> Vec<Value> {
    let loaded = c
        .execute("return typeof window.axe === 'object';", vec![])
        .await
        .unwrap();
    if loaded != json!(true) {
        c.execute(AXE, vec![]).await.expect("axe-core loads");
    }
    let run = "const done = arguments[arguments.length - 1]; \
        axe.run(document, { resultTypes: ['violations'] }) \
          .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, \
              nodes: v.nodes.map(n => n.target.join(' ') + ': ' + (n.failureSummary || '')) })))) \
          .catch(e => done([{ id: 'axe-failed', impact: 'critical', help: String(e), nodes: [] }]));";
    let found = c.execute_async(run, vec![]).await.expect("axe.run");
    found.as_array().cloned().unwrap_or_default()
}

/// axe-core really runs on these pages: a field without a label, planted in the page, is
/// reported as critical.
async fn assert_axe_sees_a_planted_violation(c: &Client) {
    let plant = "const i = document.createElement('input'); i.id = 'planted'; \
                 document.querySelector('main').appendChild(i);";
    c.execute(plant, vec![]).await.unwrap();
    let found = axe_violations(c).await;
    c.execute("document.getElementById('planted').remove();", vec![])
        .await
        .unwrap();
    assert!(
        found
            .iter()
            .any(|v| v["id"] == "label" && v["impact"] == "critical"),
        "axe-core missed a field without a label: {found:?}"
    );
}

/// Fails with each serious or critical violation's id, impact, help and target nodes.
async fn assert_axe_clean(c: &Client, page: &str) {
    let violations = axe_violations(c).await;
    let lesser: Vec<String> = violations
        .iter()
        .map(|v| {
            format!(
                "{} ({})",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if !lesser.is_empty() {
        eprintln!("axe-core on {page}: {}", lesser.join(", "));
    }
    let grave: Vec<String> = violations
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| {
            format!(
                "{} ({}): {}\n    {}",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or(""),
                v["nodes"]
                    .as_array()
                    .map(|n| n
                        .iter()
                        .map(|x| x.as_str().unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                        .join("\n    "))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert!(
        grave.is_empty(),
        "axe-core on {page}: {} serious or critical violation(s):\n{}",
        grave.len(),
        grave.join("\n")
    );
}

/// At 200 % zoom: nothing scrolls sideways, and every shown element matching `keep` lies
/// inside the viewport's width.
async fn assert_reflows(c: &Client, page: &str, keep: &[&str]) {
    let script = "const w = window.innerWidth; \
        const wide = document.documentElement.scrollWidth; \
        const out = []; \
        for (const css of arguments[0]) { \
          for (const e of document.querySelectorAll(css)) { \
            const r = e.getBoundingClientRect(); \
            if (r.width === 0 && r.height === 0) continue; \
            if (r.left < -0.5 || r.right > w + 0.5) \
              out.push(css + ' ' + (e.id || e.textContent.trim().slice(0, 30)) + ' spans ' + \
                Math.round(r.left) + '..' + Math.round(r.right)); \
          } \
        } \
        return { width: w, scroll: wide, out: out };";
    let got = c.execute(script, vec![json!(keep)]).await.unwrap();
    let (width, scroll) = (
        got["width"].as_i64().unwrap(),
        got["scroll"].as_i64().unwrap(),
    );
    assert!(
        scroll <= width,
        "{page} at 200 % zoom scrolls sideways: {scroll} CSS px wide in a {width} px viewport"
    );
    assert_eq!(
        got["out"],
        json!([]),
        "{page}: outside the {width} px viewport"
    );
}

/// The controls each page must keep in view at 200 % zoom.
const CONTROLS: &[&str] = &["h1", "button", "a.button", "input", "select", "[role=tab]"];

/// Runs `how` on the current page, then saves its screenshot as `a11y-<check>-<page>`.
async fn check(c: &Client, how: Check, page: &str) {
    match how {
        Check::Axe => {
            assert_axe_clean(c, page).await;
            shot(c, &format!("a11y-axe-{page}")).await;
        }
        Check::Zoom => {
            assert_reflows(c, page, CONTROLS).await;
            shot(c, &format!("a11y-zoom-{page}")).await;
        }
    }
}

/// The list's state and token cells say their state in words (an icon beside them is only
/// decoration, hidden from assistive technology), so colour is never the only signal.
async fn assert_states_in_words(c: &Client) {
    let script = "return Array.from(document.querySelectorAll('#integrations tbody tr')).map(r => { \
        const cells = r.querySelectorAll('td'); \
        const words = (td) => { const x = td.cloneNode(true); \
          x.querySelectorAll('[aria-hidden=true]').forEach(e => e.remove()); \
          return x.textContent.trim(); }; \
        const state = r.querySelector('td.state'); \
        const token = r.querySelector('td.token'); \
        const icons = Array.from(state.querySelectorAll('.icon')).every(i => i.getAttribute('aria-hidden') === 'true'); \
        return { state: state ? words(state) : '', token: token ? words(token) : '', icons }; });";
    let rows = c.execute(script, vec![]).await.unwrap();
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty(), "the list has rows");
    for row in rows {
        let state = row["state"].as_str().unwrap();
        assert!(
            ["Active", "Not connected yet", "Needs re-authorization"]
                .iter()
                .any(|w| state.contains(w)),
            "the state cell says its state in words: {row}"
        );
        assert!(
            row["token"].as_str().unwrap().starts_with("Token") || row["token"] == "No token",
            "the token cell says its health in words: {row}"
        );
        assert_eq!(row["icons"], true, "state icons are decoration: {row}");
    }
}

/// Walks every console page and state, running `how` on each: the sign-in page (and its
/// error), the list empty and with an integration, the catalogue, the form's two tabs, with
/// errors, saved and connected, the inline and full-page test results, the detail and the
/// OAuth callback page.
async fn every_page(s: &Scene, how: Check) {
    let c = &s.c;
    s.open("/").await;
    page_has(c, "the sign-in page", "#token").await;
    check(c, how, "01-sign-in").await;
    fill(c, "#token", "not-the-admin-token").await;
    click(c, "form[action='/login'] button[type=submit]").await;
    page_has(c, "the sign-in error", "#login-error").await;
    check(c, how, "02-sign-in-error").await;

    s.sign_in().await;
    page_has(c, "the empty list", "#empty").await;
    check(c, how, "03-list-empty").await;
    click(c, "#add-integration").await;
    page_has(c, "the catalogue", "#catalogue-search").await;
    fill(c, "#catalogue-search", "Salesforce").await;
    check(c, how, "04-catalogue").await;
    click(c, "#catalogue a.connector").await;
    page_has(c, "the form", "#tab-basic").await;
    check(c, how, "05-form-basic").await;
    click(c, "#tab-authentication").await;
    check(c, how, "06-form-authentication").await;

    // Saved empty: errors on both tabs.
    click(c, "#save").await;
    page_has(c, "the error summary", "#error-summary").await;
    check(c, how, "07-form-errors-basic").await;
    click(c, "#tab-authentication").await;
    check(c, how, "08-form-errors-authentication").await;
    click(c, "#tab-basic").await;
    fill(c, "#field-name", "Acme Helpdesk").await;
    choose(c, "#field-capability", "helpdesk").await;
    click(c, "#tab-authentication").await;
    choose(c, "#field-s-environment", "production").await;
    choose(c, "#field-s-pull-by", "updated").await;
    fill(c, "#field-s-domain", &s.emu.url).await;
    click(c, "#save").await;
    page_has(c, "the saved integration", "#connect").await;
    check(c, how, "09-form-saved").await;
    s.open("/").await;
    page_has(c, "the list", "#integrations").await;
    assert_states_in_words(c).await;
    check(c, how, "09b-list-not-connected").await;
    click(c, "#integrations a.edit").await;
    page_has(c, "the edit form", "#tab-authentication").await;
    click(c, "#tab-authentication").await;

    // Connected (the emulator approves at once), then tested inline and on its own page.
    click(c, "#connect").await;
    until(
        c,
        "the list after connect",
        "location.search.startsWith('?connected=')",
    )
    .await;
    let id = attr_of(c, "#integrations tbody tr", "data-id").await;
    assert_states_in_words(c).await;
    check(c, how, "10-list-connected").await;
    click(c, &format!("#row-{id} button.test")).await;
    until(
        c,
        "the test result",
        &format!("document.querySelector('#result-{id}').textContent.includes('Connection OK')"),
    )
    .await;
    check(c, how, "11-list-test-result").await;
    // Without script the form posts to the full test page.
    c.execute(
        "document.querySelector(arguments[0]).submit();",
        vec![json!(format!("#row-{id} form.inline-test"))],
    )
    .await
    .unwrap();
    until(
        c,
        "the test page",
        "document.title.startsWith('Test Connection')",
    )
    .await;
    check(c, how, "12-test-page").await;

    // A pull, then the detail with its runs, streams and records.
    s.open("/").await;
    click(c, &format!("#row-{id} button.pull")).await;
    for _ in 0..600 {
        let runs = s.served.get_json(
            &format!("/api/integrations/{id}/runs"),
            &s.served.generated_token(),
        );
        if runs[0]["status"] == "succeeded" {
            break;
        }
        assert!(runs[0]["status"] != "failed", "{runs}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    s.open("/").await;
    page_has(c, "the list", "#integrations").await;
    assert_states_in_words(c).await;
    check(c, how, "13-list-after-pull").await;
    s.open(&format!("/integrations/{id}?stream=Case")).await;
    page_has(c, "the detail", "#records").await;
    check(c, how, "14-detail").await;
    s.open(&format!("/integrations/{id}/edit?tab=authentication"))
        .await;
    page_has(c, "the edit form", "#connect").await;
    check(c, how, "15-form-edit").await;
    every_nav_page(s, how).await;

    // The tokens die at the provider: the failed test, and the state it leaves.
    control(&s.emu, "/__emulator/tokens/revoke").await;
    s.open("/").await;
    click(c, &format!("#row-{id} button.test")).await;
    until(
        c,
        "the failed test",
        &format!("document.querySelector('#result-{id}').textContent.includes('Re-authorization')"),
    )
    .await;
    check(c, how, "15b-list-test-failed").await;
    s.open("/").await;
    page_has(c, "the list", "#integrations").await;
    assert_states_in_words(c).await;
    check(c, how, "15c-list-needs-reauthorization").await;

    // The OAuth callback page, as a refusal at the provider shows it.
    s.open("/oauth/callback?error=access_denied&error_description=end-user+denied+authorization&state=x")
        .await;
    page_has(c, "the callback page", "#oauth-result").await;
    check(c, how, "16-oauth-callback").await;
}

/// Every other page the console's navigation links to (the list is walked above), so a page
/// added to the navigation is checked too.
async fn every_nav_page(s: &Scene, how: Check) {
    let links =
        s.c.execute(
            "return Array.from(document.querySelectorAll('header nav a')) \
               .map(a => new URL(a.href).pathname).filter(p => p !== '/');",
            vec![],
        )
        .await
        .unwrap();
    for path in links.as_array().unwrap() {
        let path = path.as_str().unwrap();
        s.open(path).await;
        page_has(&s.c, path, "main h1").await;
        check(&s.c, how, &format!("15a-nav{}", path.replace('/', "-"))).await;
    }
}

/// Scenario step 10: the vendored axe-core finds no serious or critical violation on any
/// console page or state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_core_finds_no_serious_violation_on_any_page() {
    let s = scene("console-a11y-axe", true, &[]).await;
    every_page(&s, Check::Axe).await;
    assert_axe_sees_a_planted_violation(&s.c).await;
    s.c.clone().close().await.unwrap();
}

/// At 200 % zoom (a window 1280 device pixels wide at device scale 2: a 640 CSS px viewport,
/// the window size being in CSS px) every page
/// reflows without sideways scrolling, and its tabs, fields and buttons stay in view and
/// work (the walk clicks them at that zoom).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_reflows_at_200_percent_zoom() {
    let s = scene(
        "console-a11y-zoom",
        true,
        &["--force-device-scale-factor=2", "--window-size=640,500"],
    )
    .await;
    s.open("/login").await;
    let width =
        s.c.execute("return window.innerWidth;", vec![])
            .await
            .unwrap();
    assert_eq!(width, json!(640), "a 1280 px window at 200 %");
    every_page(&s, Check::Zoom).await;
    s.c.clone().close().await.unwrap();
}
