//! The page the provider sends the browser back to: it tells the console's page that opened
//! the popup (postMessage to this origin only, BroadcastChannel when the opener link is cut),
//! and puts the provider's refusals in words a person can act on.

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::page::render;
use crate::app::AppError;
use crate::oauth::OAuthError;
use crate::store::Integration;

/// The cookie set when the whole page went to the provider: the callback returns to the
/// console instead of asking to close the window.
pub(crate) const RETURN_COOKIE: &str = "sluice_return";

#[derive(Template)]
#[template(path = "callback.html")]
struct CallbackPage {
    ok: bool,
    id: String,
    headline: String,
    advice: String,
    code: String,
    return_to_console: bool,
}

/// The callback's answer for `outcome`, from the provider's redirect with `headers`.
pub(crate) fn callback_page(
    outcome: Result<Integration, AppError>,
    headers: &HeaderMap,
    public_url: &str,
) -> Response {
    let return_to_console = super::security::cookie(headers, RETURN_COOKIE).is_some();
    let (status, page) = match outcome {
        Ok(i) => (
            StatusCode::OK,
            CallbackPage {
                ok: true,
                headline: format!("Sluice: integration {} is authorized.", i.id),
                advice: "You can close this window.".into(),
                id: i.id,
                code: String::new(),
                return_to_console,
            },
        ),
        Err(e) => {
            let status = match &e {
                AppError::BadCallback(_) | AppError::OAuth(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let (code, advice) = advice(&e, public_url);
            // The provider's own words, once: `AppError::OAuth` would prefix them again.
            let why = match &e {
                AppError::OAuth(inner) => inner.to_string(),
                other => other.to_string(),
            };
            (
                status,
                CallbackPage {
                    ok: false,
                    id: String::new(),
                    headline: format!("Sluice could not connect the integration: {why}."),
                    advice,
                    code,
                    return_to_console,
                },
            )
        }
    };
    let mut resp = (status, render(&page)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::CSP),
    );
    if return_to_console {
        let v = format!("{RETURN_COOKIE}=; Path=/oauth; HttpOnly; SameSite=Lax; Max-Age=0");
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The provider's error code and what a person can do about it.
fn advice(e: &AppError, public_url: &str) -> (String, String) {
    let callback = format!("{}/oauth/callback", public_url.trim_end_matches('/'));
    let AppError::OAuth(OAuthError::Provider { error, .. }) = e else {
        return (
            String::new(),
            "Start again with Connect (or Re-generate Token) in the console; the link you \
             followed can be used only once and only for 15 minutes."
                .into(),
        );
    };
    let words = match error.as_str() {
        "access_denied" => "Access was denied on the provider's page (Deny was clicked, or \
             the user may not use this connected app). Click Connect again and choose Allow, \
             or ask the provider's admin to give the user access to the connected app."
            .to_string(),
        "redirect_uri_mismatch" => format!(
            "The connected app's callback URL does not match this server's. Add {callback} \
             to the connected app's callback URLs, or start `sluice serve` with the \
             --public-url the app registers."
        ),
        "invalid_client_id" | "invalid_client" => "The provider does not know the connected \
             app's client id (or its secret is wrong). Check the client id and secret on the \
             Authentication tab or SLUICE_CLIENT_ID / SLUICE_CLIENT_SECRET."
            .into(),
        "invalid_grant" => "The login could not be turned into a token (the code expired or \
             was used). Click Connect again."
            .into(),
        _ => "The provider refused the authorization; its message is above. Fix what it names \
              and click Connect again."
            .into(),
    };
    (error.clone(), words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(error: &str) -> AppError {
        AppError::OAuth(OAuthError::Provider {
            error: error.into(),
            description: "as the provider put it".into(),
        })
    }

    #[test]
    fn each_provider_refusal_says_what_to_do_next() {
        let public = "http://localhost:7070/";
        let (code, words) = advice(&refusal("redirect_uri_mismatch"), public);
        assert_eq!(code, "redirect_uri_mismatch");
        assert!(
            words.contains("Add http://localhost:7070/oauth/callback")
                && words.contains("--public-url"),
            "{words}"
        );
        for (error, says) in [
            ("access_denied", "choose Allow"),
            ("invalid_client_id", "client id"),
            ("invalid_client", "SLUICE_CLIENT_SECRET"),
            ("invalid_grant", "Click Connect again"),
            ("a_code_nobody_knows", "its message is above"),
        ] {
            let (code, words) = advice(&refusal(error), public);
            assert_eq!(code, error);
            assert!(words.contains(says), "{error}: {words}");
        }
        let (code, words) = advice(&AppError::BadCallback("stale".into()), public);
        assert!(code.is_empty(), "{code}");
        assert!(words.contains("only once"), "{words}");
    }
}
