//! The keyboard of the browser session, as a keyboard-only user has it: key presses sent as
//! WebDriver actions (never element clicks), and where focus is after each of them.

use fantoccini::Client;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::json;

/// Presses and releases each key in turn.
pub async fn press(c: &Client, keys: &[Key]) {
    let mut actions = KeyActions::new("keyboard".into());
    for key in keys {
        let value = char::from(*key);
        actions = actions
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
    }
    c.perform_actions(actions).await.expect("key presses");
}

/// Holds `modifier` while pressing `key` (Shift+Tab, Control+A).
pub async fn chord(c: &Client, modifier: Key, key: char) {
    let modifier = char::from(modifier);
    let actions = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: modifier })
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key })
        .then(KeyAction::Up { value: modifier });
    c.perform_actions(actions).await.expect("a key chord");
}

/// Types `text` into whatever has focus, one key at a time.
pub async fn type_text(c: &Client, text: &str) {
    let mut actions = KeyActions::new("keyboard".into());
    for value in text.chars() {
        actions = actions
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
    }
    c.perform_actions(actions).await.expect("typing");
}

/// Replaces the text of the focused field: select all, then type.
pub async fn retype(c: &Client, text: &str) {
    chord(c, Key::Control, 'a').await;
    press(c, &[Key::Backspace]).await;
    type_text(c, text).await;
}

/// A short description of the focused element (`tag#id "text"`), for assertions and failures.
pub async fn focused(c: &Client) -> String {
    let script = "const e = document.activeElement; if (!e) return ''; \
                  return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' \"' + \
                  (e.innerText || e.value || '').trim().slice(0, 40) + '\"';";
    c.execute(script, vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Whether the focused element matches the CSS selector `css`.
pub async fn focus_is(c: &Client, css: &str) -> bool {
    c.execute(
        "return !!document.activeElement && document.activeElement.matches(arguments[0]);",
        vec![json!(css)],
    )
    .await
    .unwrap()
        == json!(true)
}

/// Presses `key` (Tab, or Shift+Tab when `backwards`) until focus is on `css`, at most `most`
/// times; fails naming every stop focus made on the way.
pub async fn tab_to(c: &Client, css: &str, backwards: bool, most: usize) {
    let mut stops = Vec::new();
    for _ in 0..most {
        if backwards {
            chord(c, Key::Shift, char::from(Key::Tab)).await;
        } else {
            press(c, &[Key::Tab]).await;
        }
        if focus_is(c, css).await {
            return;
        }
        stops.push(focused(c).await);
    }
    panic!(
        "{css} is not reachable with {} {most} times; focus went to: {stops:?}",
        if backwards { "Shift+Tab" } else { "Tab" }
    );
}

/// Waits until focus is on `css` (after a page load or an update), failing with where it is.
pub async fn wait_focus(c: &Client, what: &str, css: &str) {
    for _ in 0..300 {
        if focus_is(c, css).await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "after {what}, focus should be on {css} but is on {}",
        focused(c).await
    );
}

/// Asserts that the focused element shows its focus with an indicator a sighted user can see:
/// an outline or a box shadow, as the page's styles compute it now.
pub async fn assert_focus_indicator(c: &Client) {
    let script = "const e = document.activeElement; \
        const s = getComputedStyle(e); \
        return { focus_visible: e.matches(':focus-visible'), outline: s.outlineStyle, \
                 width: parseFloat(s.outlineWidth) || 0, shadow: s.boxShadow };";
    let style = c.execute(script, vec![]).await.unwrap();
    let outlined = style["outline"] != "none" && style["width"].as_f64().unwrap_or(0.0) >= 1.0;
    let shadowed = style["shadow"] != "none";
    assert!(
        outlined || shadowed,
        "{} has no visible focus indicator: {style}",
        focused(c).await
    );
}

/// A Chrome DevTools Protocol command sent through chromedriver (`goog/cdp/execute`).
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or("")
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Makes the current tab behave as the focused window a person types into: headless chromium
/// can leave a page loaded by a form post without window focus, and then no `:focus` style
/// applies, whatever the page's CSS says.
pub async fn emulate_window_focus(c: &Client) {
    c.issue_cmd(Cdp {
        cmd: "Emulation.setFocusEmulationEnabled",
        params: json!({ "enabled": true }),
    })
    .await
    .expect("focus emulation through chromedriver");
}
