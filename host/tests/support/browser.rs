//! A real browser for the console's tests: Debian's chromium, headless, driven through
//! chromedriver (WebDriver) with `fantoccini`, and the small waits and actions the tests share.
//! Screenshots go under the target directory (`console-screenshots/`) for review.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use sf_emulator::Emulator;

use crate::support::binary::serve;
use crate::support::dirs::temp_dir;
use crate::support::served::Served;

/// A program the browser test needs, found on PATH; a clear failure when missing.
pub fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: the console's browser test needs Debian's chromium \
                 and chromium-driver; run `sudo bash .ci/install-test-tools` (it installs them)"
            )
        })
}

/// A running chromedriver; killed when dropped.
pub struct Driver {
    child: Child,
    url: String,
    profile: crate::support::dirs::TestDir,
}

impl Drop for Driver {
    /// Kills chromedriver's whole process group: the chromium it started too, which would
    /// otherwise outlive a test that panics before closing its session.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn start_driver() -> Driver {
    let chromedriver = tool("chromedriver");
    tool("chromium");
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        // Its own process group, so the browser it starts is killed with it.
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    // chromedriver answers /status once it listens.
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("{url}/status")).await
            && r.status().is_success()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Driver {
        child,
        url,
        profile: temp_dir("console-profile"),
    }
}

pub async fn browser(driver: &Driver) -> Client {
    browser_with(driver, &[]).await
}

/// A browser session started with `extra` chromium arguments besides the usual ones (for
/// example `--force-device-scale-factor=2`, which shows pages as at 200 % zoom).
pub async fn browser_with(driver: &Driver, extra: &[&str]) -> Client {
    let mut args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-gpu".into(),
        "--window-size=1280,1000".into(),
        format!("--user-data-dir={}", driver.profile.display()),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": tool("chromium"),
            "args": args,
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session through chromedriver")
}

/// Saves a screenshot of the current page as `NN-step.png`.
pub async fn shot(c: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

pub async fn text(c: &Client, css: &str) -> String {
    match c.wait().for_element(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => {
            let page = c.source().await.unwrap_or_default();
            panic!("{css}: {e}; the page:\n{page}")
        }
    }
}

pub async fn click(c: &Client, css: &str) {
    // An element found just before a navigation goes stale: find it again on the new page.
    let mut last = String::new();
    for _ in 0..50 {
        let found = c.wait().for_element(Locator::Css(css)).await;
        match found {
            Ok(e) => match e.click().await {
                Ok(_) => return,
                Err(err) => last = err.to_string(),
            },
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("click {css}: {last}");
}

pub async fn fill(c: &Client, css: &str, value: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

pub async fn choose(c: &Client, css: &str, value: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

pub async fn shown(c: &Client, css: &str) -> bool {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap()
}

/// Waits until `script` (a JS expression) is true in the page.
pub async fn until(c: &Client, what: &str, script: &str) {
    let body = format!("return !!({script});");
    for _ in 0..600 {
        if c.execute(&body, vec![]).await.ok() == Some(json!(true)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let url = c
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_default();
    let shown = c
        .execute("return document.body.innerText;", vec![])
        .await
        .unwrap_or_default();
    panic!("timed out waiting for {what} (at {url}); the page shows:\n{shown}");
}

pub async fn active_element_id(c: &Client) -> String {
    c.execute("return document.activeElement.id;", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Calls the emulator's control API (`POST`, with its key).
pub async fn control(emu: &Emulator, path: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
}

/// Calls the emulator's control API (`POST`, with its key) with a JSON `body`.
pub async fn control_json(emu: &Emulator, path: &str, body: serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
}

/// `sluice serve` on a free loopback port in `dir`, reaching the emulator (its origin
/// approved) with the emulator's connected app as the host's.
pub fn serve_with_emulator(dir: &Path, emu: &Emulator) -> Served {
    serve(
        dir,
        &["--allow-insecure-loopback", "--extra-origin", &emu.url],
        &[
            ("SLUICE_CLIENT_ID", &emu.client_id),
            ("SLUICE_CLIENT_SECRET", &emu.client_secret),
        ],
        "",
    )
}

/// Adds an integration through `served`'s admin API (`POST /api/integrations` with `body`);
/// returns its id.
pub fn add_integration_by_api(served: &Served, body: &serde_json::Value) -> String {
    let token = format!("Bearer {}", served.generated_token());
    let headers = [
        ("Authorization", token.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, created) = served.send(
        "POST",
        "/api/integrations",
        &served.host(),
        &headers,
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    created["integration"]["id"].as_str().unwrap().to_string()
}

/// Switches to the window that opened beside `console` (Connect's provider popup).
pub async fn switch_to_popup(c: &Client, console: &fantoccini::wd::WindowHandle) {
    let mut popup = None;
    for _ in 0..300 {
        let handles = c.windows().await.unwrap();
        if let Some(h) = handles.into_iter().find(|h| h != console) {
            popup = Some(h);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.switch_to_window(popup.expect("Connect opened a popup"))
        .await
        .unwrap();
}
