//! The OAuth connect flow against the emulator with `auto_approve`, as the runtime tests and
//! the connector's end-to-end tests run it: authorize, follow the redirect like a browser, and
//! hand the callback to the app.

use sluice::app::App;
use sluice::oauth::Callback;

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
