//! The console's Connectors page and a running pull's progress, in a real browser (chromium
//! headless through chromedriver) against `sluice serve`: installing uploaded components with
//! the checks' verdict (hosts approved by a box, a refused component changing nothing),
//! rollback, and a pull's pages and records advancing on the integration's page. Screenshots of
//! each step go to `console-screenshots/connectors-*.png` under the target directory. A second
//! test sends forged uploads without a browser.

mod support;

use fantoccini::{Client, Locator};
use serde_json::json;
use sf_emulator::{Emulator, EmulatorConfig};
use support::binary::serve;
use support::browser::*;
use support::dirs::temp_dir;
use support::served::Served;
use support::{hostile, hostile_broken, manifest_json, with_custom_section};

/// The emulator holds the pull's API call after this many: past the first stream's page (its
/// Bulk job's create, poll and results, and the calls before it), with three streams to go.
const HELD_AFTER_CALLS: u32 = 8;

/// The hostile test guest as a connector whose manifest declares one host.
fn guest_v1() -> Vec<u8> {
    with_custom_section(
        hostile(),
        "sluice:manifest",
        &manifest_json(&["api.guest.example"], &["GET"]),
    )
}

/// The same connector under new bytes: a second version, within the approved manifest.
fn guest_v2() -> Vec<u8> {
    with_custom_section(&guest_v1(), "sluice:test-version", b"2")
}

/// A version of it whose `configure` traps, within the approved manifest.
fn guest_trapping() -> Vec<u8> {
    with_custom_section(
        hostile_broken(),
        "sluice:manifest",
        &manifest_json(&["api.guest.example"], &["GET"]),
    )
}

/// Adds an integration served by the `guest` connector through the admin API; its id.
fn guest_integration(served: &Served) -> String {
    let body = json!({
        "name": "Guest data", "connector": "guest", "capability": "crm",
        "settings": {"environment": "production", "behaviour": "ok"},
    });
    add_integration_by_api(served, &body)
}

/// The versions of connector `name` the admin API lists: (version, active).
fn versions(served: &Served, name: &str) -> Vec<(u64, bool)> {
    let rows = served.get_json("/api/connectors", &served.generated_token());
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == name)
        .map(|r| {
            (
                r["version"].as_u64().unwrap(),
                r["active"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Chooses `file` in the upload form under `name` and submits it.
async fn upload(c: &Client, base: &str, name: &str, file: &std::path::Path) {
    c.goto(&format!("{base}/connectors")).await.unwrap();
    fill(c, "#upload-name", name).await;
    let input = c.find(Locator::Css("#upload-file")).await.unwrap();
    input.send_keys(&file.display().to_string()).await.unwrap();
    click(c, "#upload").await;
    c.wait()
        .for_element(Locator::Css("#verdict"))
        .await
        .unwrap();
}

/// The state the verdict shows for check `id`.
async fn check_state(c: &Client, id: &str) -> String {
    c.find(Locator::Css(&format!("#{id}")))
        .await
        .unwrap()
        .attr("data-state")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Adds a Salesforce integration through the admin API and connects it (the emulator
/// approves); returns its id.
async fn connected_salesforce(served: &Served, emu: &Emulator) -> String {
    let body = json!({
        "name": "Acme Support", "capability": "helpdesk",
        "settings": {"environment": "production", "domain": emu.url, "pull-by": "updated"},
    });
    let id = add_integration_by_api(served, &body);
    let token = format!("Bearer {}", served.generated_token());
    let headers = [
        ("Authorization", token.as_str()),
        ("Content-Type", "application/json"),
    ];
    let host = served.host();
    let path = format!("/api/integrations/{id}/authorize");
    let (status, auth) = served.send("POST", &path, &host, &headers, b"");
    assert_eq!(status, 200, "{auth}");
    let auth: serde_json::Value = serde_json::from_str(&auth).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let approved = http
        .get(auth["authorize_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let callback = approved.headers()["location"].to_str().unwrap().to_string();
    let done = http.get(&callback).send().await.unwrap();
    assert_eq!(done.status().as_u16(), 200, "the callback");
    id
}

/// The progress summary's text and whether it says the pull runs.
async fn progress(c: &Client) -> (String, bool) {
    let summary = c.find(Locator::Css("#progress-summary")).await.unwrap();
    let running = summary.attr("data-running").await.unwrap();
    (
        summary.text().await.unwrap(),
        running.as_deref() == Some("true"),
    )
}

/// The number before `word` in `text` ("12 pages" → 12).
fn number_before(text: &str, word: &str) -> u64 {
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.trim_end_matches([',', ';', '.']) == word)
        .unwrap_or_else(|| panic!("no {word:?} in {text:?}"));
    words[at - 1].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_and_a_pulls_progress_in_a_real_browser() {
    let emu = Emulator::start(EmulatorConfig {
        auto_approve: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = temp_dir("console-connectors");
    let served = serve_with_emulator(&dir, &emu);
    let files = temp_dir("console-connectors-files");
    let (v1, v2, broken) = (
        files.path().join("guest-v1.wasm"),
        files.path().join("guest-v2.wasm"),
        files.path().join("not-a-component.wasm"),
    );
    std::fs::write(&v1, guest_v1()).unwrap();
    std::fs::write(&v2, guest_v2()).unwrap();
    std::fs::write(&broken, b"this is not a wasm component").unwrap();
    let trapping = files.path().join("guest-trapping.wasm");
    std::fs::write(&trapping, guest_trapping()).unwrap();

    let base = format!("http://localhost:{}", served.addr.port());
    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.goto(&served.sign_in_link.clone().expect("a sign-in link"))
        .await
        .unwrap();

    // The page from the nav: the bundled Salesforce connector, active.
    click(&c, "nav a[href='/connectors']").await;
    let sf = text(&c, "#versions-salesforce").await;
    assert!(sf.contains("Active since"), "{sf}");
    shot(&c, "connectors-01-page").await;

    // A new connector whose manifest declares a host: its hosts are shown for approval, and
    // nothing is installed until the box is ticked.
    upload(&c, &base, "guest", &v1).await;
    assert_eq!(
        active_element_id(&c).await,
        "verdict",
        "the verdict has the focus"
    );
    assert_eq!(check_state(&c, "check-component").await, "passed");
    assert_eq!(check_state(&c, "check-hosts").await, "needs your approval");
    assert_eq!(check_state(&c, "check-canary-configure").await, "not run");
    assert_eq!(text(&c, "#manifest-hosts").await, "api.guest.example");
    assert!(
        versions(&served, "guest").is_empty(),
        "installed before approval"
    );
    shot(&c, "connectors-02-approve-hosts").await;
    click(&c, "#approve").await;
    // The box is required: the browser keeps the form until it is ticked.
    assert!(versions(&served, "guest").is_empty());
    click(&c, "#approve-hosts").await;
    click(&c, "#approve").await;
    until(
        &c,
        "the install's verdict",
        "document.querySelector('#verdict') && !document.querySelector('#approve-form')",
    )
    .await;
    let verdict = text(&c, "#verdict").await;
    assert!(verdict.contains("guest version 1 is active"), "{verdict}");
    assert_eq!(check_state(&c, "check-canary-pull").await, "passed");
    assert_eq!(versions(&served, "guest"), vec![(1, true)]);
    shot(&c, "connectors-03-installed-v1").await;

    // The installed connector joins the Add Integration catalogue, and the search narrows it.
    c.goto(&format!("{base}/integrations/new")).await.unwrap();
    assert_eq!(text(&c, "#catalogue-count").await, "2 connector(s)");
    fill(&c, "#catalogue-search", "sales").await;
    until(
        &c,
        "the catalogue filtered",
        "document.querySelector('#catalogue-count').textContent.startsWith('1 ')",
    )
    .await;
    let shown_entries = c
        .execute(
            "return [...document.querySelectorAll('#catalogue li')] \
             .filter((li) => !li.hidden).map((li) => li.textContent.trim());",
            vec![],
        )
        .await
        .unwrap();
    let shown_entries = shown_entries.to_string().to_lowercase();
    assert!(
        shown_entries.contains("salesforce") && !shown_entries.contains("guest"),
        "{shown_entries}"
    );

    // A second version within the approved manifest installs at once.
    upload(&c, &base, "guest", &v2).await;
    let verdict = text(&c, "#verdict").await;
    assert!(verdict.contains("guest version 2 is active"), "{verdict}");
    assert_eq!(check_state(&c, "check-hosts").await, "passed");
    assert_eq!(versions(&served, "guest"), vec![(1, false), (2, true)]);
    shot(&c, "connectors-04-installed-v2").await;

    // A file that is not a component is refused with its reason, and nothing changes.
    upload(&c, &base, "guest", &broken).await;
    let verdict = text(&c, "#verdict").await;
    assert!(verdict.contains("Refused: nothing changed"), "{verdict}");
    assert_eq!(check_state(&c, "check-component").await, "failed");
    assert!(
        text(&c, "#check-component .detail").await.len() > 3,
        "a reason"
    );
    assert_eq!(check_state(&c, "check-contract").await, "not run");
    assert_eq!(versions(&served, "guest"), vec![(1, false), (2, true)]);
    shot(&c, "connectors-05-refused").await;

    // A version whose `configure` traps: the canary refuses it for the integration using
    // the connector, naming it, and nothing changes.
    let guest_id = guest_integration(&served);
    upload(&c, &base, "guest", &trapping).await;
    let verdict = text(&c, "#verdict").await;
    assert!(verdict.contains("Refused: nothing changed"), "{verdict}");
    assert_eq!(check_state(&c, "check-hosts").await, "passed");
    assert_eq!(check_state(&c, "check-canary-configure").await, "failed");
    let reason = text(&c, "#check-canary-configure .detail").await;
    assert!(reason.contains(&guest_id), "{reason}");
    assert_eq!(check_state(&c, "check-canary-test").await, "not run");
    assert_eq!(versions(&served, "guest"), vec![(1, false), (2, true)]);
    shot(&c, "connectors-05b-refused-by-the-canary").await;

    // Rollback: confirmed on its own page, then version 1 serves from the next page on.
    c.goto(&format!("{base}/connectors")).await.unwrap();
    let v2_row = text(&c, "#version-guest-2").await;
    assert!(v2_row.contains("Active since"), "{v2_row}");
    click(&c, "#activate-guest-1").await;
    let effect = text(&c, "#activate-effect").await;
    assert!(effect.contains("Version 2 serves guest now"), "{effect}");
    assert!(effect.contains("from the next page on"), "{effect}");
    assert_eq!(
        versions(&served, "guest"),
        vec![(1, false), (2, true)],
        "the confirmation page changes nothing"
    );
    shot(&c, "connectors-06-confirm-rollback").await;
    click(&c, "#confirm-activate").await;
    let notice = text(&c, "#notice").await;
    assert!(notice.contains("guest version 1 is active"), "{notice}");
    assert!(text(&c, "#version-guest-1").await.contains("Active since"));
    assert!(text(&c, "#version-guest-2").await.contains("not active"));
    assert_eq!(versions(&served, "guest"), vec![(1, true), (2, false)]);
    shot(&c, "connectors-07-rolled-back").await;

    // A pull of several pages (Bulk result chunks over four streams), held by the emulator
    // after its first stream's page until the page has shown it running: its progress
    // advances on the integration's page without a reload, then shows the final counts.
    let id = connected_salesforce(&served, &emu).await;
    control_json(
        &emu,
        "/__emulator/faults",
        json!({"path_prefix": "/services/data/", "skip": HELD_AFTER_CALLS, "hold": true}),
    )
    .await;
    c.goto(&format!("{base}/")).await.unwrap();
    click(&c, &format!("#row-{id} button.pull")).await;
    until(
        &c,
        "the pull started",
        "location.search.includes('pulling=')",
    )
    .await;
    c.goto(&format!("{base}/integrations/{id}")).await.unwrap();
    // A mark a reload would wipe, and the focus on a control the updates must leave alone.
    let keep = "window.sluiceNotReloaded = true; \
                document.querySelector('a.button[href$=\"/edit\"]').focus();";
    c.execute(keep, vec![]).await.unwrap();
    until(
        &c,
        "a committed page while the pull runs",
        "(() => { const s = document.querySelector('#progress-summary'); \
         return s.dataset.running === 'true' && /[1-9][0-9]* pages/.test(s.textContent); })()",
    )
    .await;
    let (first, running) = progress(&c).await;
    assert!(running, "{first}");
    let first_pages = number_before(&first, "pages");
    shot(&c, "connectors-08-pull-running").await;
    control_json(&emu, "/__emulator/faults/release", json!({})).await;
    // More pages, or the end, arrive by the page's own polling: no reload.
    until(
        &c,
        "more pages without a reload",
        &format!(
            "(() => {{ const s = document.querySelector('#progress-summary'); \
             const m = s.textContent.match(/([0-9]+) pages/); \
             return m && Number(m[1]) > {first_pages}; }})()"
        ),
    )
    .await;
    let (later, _) = progress(&c).await;
    shot(&c, "connectors-09-pull-advanced").await;
    until(
        &c,
        "the pull's end",
        "document.querySelector('#progress-summary').dataset.running === 'false'",
    )
    .await;
    let (last, running) = progress(&c).await;
    assert!(!running);
    assert!(last.starts_with("Last pull succeeded"), "{last}");
    let view = served.get_json(
        &format!("/api/integrations/{id}"),
        &served.generated_token(),
    );
    let run = &view["runs"][0];
    assert_eq!(
        number_before(&last, "records"),
        run["records"].as_u64().unwrap(),
        "{later} → {last}"
    );
    assert!(
        number_before(&last, "pages") > first_pages,
        "{first} → {last}"
    );
    let rows = text(&c, "#progress-streams").await;
    assert!(rows.contains("complete"), "{rows}");
    until(
        &c,
        "the runs table showing the ended run",
        "document.querySelector('#runs tbody tr').textContent.includes('succeeded')",
    )
    .await;
    let kept = c
        .execute(
            "return window.sluiceNotReloaded === true && \
             document.activeElement.getAttribute('href').endsWith('/edit');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, json!(true), "the page was reloaded or lost its focus");
    shot(&c, "connectors-10-pull-ended").await;
}

/// A multipart form of `fields` (name, value) in order: its content type and body.
fn multipart(fields: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "sluice-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, value) in fields {
        let file = if *name == "component" {
            "; filename=\"guest.wasm\"\r\nContent-Type: application/wasm"
        } else {
            ""
        };
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The value of cookie `name` a response sets.
fn set_cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie set"))
        .to_string()
}

/// An upload forged one way.
struct Forgery<'a> {
    what: &'static str,
    fields: Vec<(&'static str, &'a [u8])>,
    extra: Option<(&'static str, &'static str)>,
}

/// Forged uploads (no CSRF field, a wrong one, one after the file, another site's, a GET, a
/// file posted to a form that takes none) install nothing; the same upload made right does.
#[tokio::test]
async fn an_upload_without_its_csrf_token_or_from_another_site_installs_nothing() {
    let dir = temp_dir("console-upload-forgery");
    let served = serve(&dir, &[], &[], "");
    let base = format!("http://localhost:{}", served.addr.port());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let link = served.sign_in_link.clone().expect("a sign-in link");
    let signed_in = http.get(&link).send().await.unwrap();
    let session = set_cookie(&signed_in, "sluice_session");
    let page = http
        .get(format!("{base}/connectors"))
        .header("Cookie", format!("sluice_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csrf = set_cookie(&page, "sluice_csrf");
    let cookies = format!("sluice_session={session}; sluice_csrf={csrf}");
    let wasm = hostile();
    // Raw requests: a refusal may come before the body is read, and the connection close.
    let post = |path: &str, fields: &[(&str, &[u8])], extra: Option<(&str, &str)>| {
        let (content_type, body) = multipart(fields);
        let mut headers = vec![
            ("Cookie", cookies.as_str()),
            ("Content-Type", &content_type),
        ];
        headers.extend(extra);
        served.send("POST", path, &served.host(), &headers, &body).0
    };
    let name: &[u8] = b"guest";
    let wrong = "x".repeat(csrf.len());
    let with_csrf: [(&str, &[u8]); 3] = [
        ("csrf", csrf.as_bytes()),
        ("name", name),
        ("component", wasm),
    ];
    let forged = [
        Forgery {
            what: "no CSRF field",
            fields: vec![("name", name), ("component", wasm)],
            extra: None,
        },
        Forgery {
            what: "a wrong CSRF field",
            fields: vec![
                ("csrf", wrong.as_bytes()),
                ("name", name),
                ("component", wasm),
            ],
            extra: None,
        },
        Forgery {
            what: "the CSRF field after the file",
            fields: vec![
                ("name", name),
                ("component", wasm),
                ("csrf", csrf.as_bytes()),
            ],
            extra: None,
        },
        Forgery {
            what: "another site's Origin",
            fields: with_csrf.to_vec(),
            extra: Some(("Origin", "http://evil.example")),
        },
        Forgery {
            what: "a cross-site fetch",
            fields: with_csrf.to_vec(),
            extra: Some(("Sec-Fetch-Site", "cross-site")),
        },
    ];
    for f in forged {
        let status = post("/connectors/upload", &f.fields, f.extra);
        assert_eq!(status, 403, "{}", f.what);
        assert!(
            versions(&served, "guest").is_empty(),
            "{} installed it",
            f.what
        );
    }
    let elsewhere = post(
        "/connectors/approve",
        &[
            ("csrf", csrf.as_bytes()),
            ("pending", b"x"),
            ("approve", b"yes"),
        ],
        None,
    );
    assert_eq!(elsewhere, 415, "a file where no form takes one");
    let get = http
        .get(format!("{base}/connectors/upload?name=guest"))
        .header("Cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405, "no install through a GET");
    let (content_type, body) = multipart(&with_csrf);
    let csrf_only = format!("sluice_csrf={csrf}");
    let headers = [
        ("Cookie", csrf_only.as_str()),
        ("Content-Type", &content_type),
    ];
    let unsigned = served.send(
        "POST",
        "/connectors/upload",
        &served.host(),
        &headers,
        &body,
    );
    assert_eq!(unsigned.0, 401, "no session");
    assert!(versions(&served, "guest").is_empty());

    // The admin API's cap on a component holds here too: a body past axum's default 2 MiB is
    // read and checked (and refused as no component), one past 64 MiB is not read.
    let junk = vec![0u8; 3 << 20];
    let fields: [(&str, &[u8]); 3] = [
        ("csrf", csrf.as_bytes()),
        ("name", name),
        ("component", &junk),
    ];
    assert_eq!(
        post("/connectors/upload", &fields, None),
        422,
        "3 MiB of junk"
    );
    let oversized = vec![0u8; (64 << 20) + 1];
    let fields: [(&str, &[u8]); 3] = [
        ("csrf", csrf.as_bytes()),
        ("name", name),
        ("component", &oversized),
    ];
    assert_eq!(
        post("/connectors/upload", &fields, None),
        413,
        "over 64 MiB"
    );
    assert!(versions(&served, "guest").is_empty());

    // The same upload made right installs: the refusals above were the forgeries'.
    assert_eq!(post("/connectors/upload", &with_csrf, None), 201);
    assert_eq!(versions(&served, "guest"), vec![(1, true)]);
}
