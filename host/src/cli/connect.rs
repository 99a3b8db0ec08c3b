//! `sluice connect`: the OAuth authorization-code flow with PKCE, through a one-shot loopback
//! callback server and the user's browser; or an API key or basic credentials, read from
//! stdin or an environment variable (never from argv, where `ps` and shell history show it).

use super::*;
use crate::app::{EnteredSecret, SupersededToken};
use crate::secrets::Secret;

/// The API key or password `args` says where to read: the variable `--from-env` names, else
/// one line typed at the terminal (not echoed), else stdin to its end (one trailing newline
/// dropped).
fn read_secret(args: &ConnectArgs, what: &str) -> anyhow::Result<Secret> {
    let text = match &args.from_env {
        Some(var) => std::env::var(var)
            .with_context(|| format!("environment variable {var} (--from-env) is not set"))?,
        // Typed at a terminal: one line, not echoed (nor kept in the scrollback).
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            rpassword::prompt_password(format!("{what} (not shown): "))
                .with_context(|| format!("reading the {what} from the terminal"))?
        }
        None => {
            use std::io::Read as _;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .with_context(|| format!("reading the {what} from stdin"))?;
            text
        }
    };
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if text.is_empty() {
        anyhow::bail!("the {what} is empty: pipe it to stdin or name a variable with --from-env");
    }
    Ok(Secret::new(text))
}

/// The entered credentials `args` asks to store, if any.
fn entered_secret(args: &ConnectArgs) -> anyhow::Result<Option<EnteredSecret>> {
    if args.api_key {
        let key = read_secret(args, "API key")?;
        return Ok(Some(EnteredSecret::ApiKey { key }));
    }
    if let Some(username) = &args.basic {
        let password = read_secret(args, "password")?;
        return Ok(Some(EnteredSecret::Basic {
            username: username.clone(),
            password,
        }));
    }
    if args.from_env.is_some() {
        anyhow::bail!("--from-env needs --api-key or --basic USER");
    }
    Ok(None)
}

/// `sluice connect`: the loopback flow, or client credentials. `show_url` receives the
/// authorize URL (the CLI prints it; the demo follows it).
pub async fn connect(
    app: &Arc<App>,
    args: &ConnectArgs,
    show_url: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<Integration> {
    let before = app
        .store()
        .integration(&args.id)
        .map_err(crate::app::AppError::from)?;
    if let Some(secret) = entered_secret(args)? {
        let connected = app.connect_entered(&args.id, secret).await?;
        let i = connected.integration;
        outln!(
            "connected integration {} ({}) with the credentials entered",
            i.id,
            safe(&i.name)
        )?;
        match connected.superseded_token {
            Some(SupersededToken::Revoked) => {
                outln!("the OAuth token they replace was revoked at the provider")?
            }
            Some(SupersededToken::NotRevoked { reason }) => outln!(
                "the OAuth token they replace could not be revoked ({}): it stays valid at the \
                 provider until it expires; revoke it in the provider's settings",
                safe(&reason)
            )?,
            None => {}
        }
        return Ok(i);
    }
    if args.client_credentials {
        let i = app.connect_client_credentials(&args.id).await?;
        outln!("connected {} with the client-credentials grant", i.id)?;
        return Ok(i);
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let port = listener.local_addr()?.port();
    let redirect = format!("http://127.0.0.1:{port}/oauth/callback");
    let start = app.begin_authorization(&args.id, &redirect).await?;
    show_url(start.url.as_str());
    if !args.no_browser {
        open_browser(start.url.as_str());
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<CallbackMsg>(4);
    let router = axum::Router::new()
        .route("/oauth/callback", axum::routing::get(callback_handler))
        .with_state(CallbackListener {
            tx,
            state: start.state.as_str().into(),
        });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });
    let outcome = async {
        let (callback, reply) = tokio::time::timeout(args.timeout, rx.recv())
            .await
            .map_err(|_| {
                // Providers show errors such as redirect_uri_mismatch on their own page
                // instead of redirecting (RFC 6749 §4.1.2.1), so a timeout is all the CLI
                // sees of them.
                anyhow::anyhow!(
                    "no authorization within {:?}; if the provider's page showed an error such \
                     as redirect_uri_mismatch, register {redirect} as a callback URL of the \
                     OAuth client (use --port to fix the port), then run `sluice connect {}` again",
                    args.timeout,
                    args.id
                )
            })?
            .ok_or_else(|| anyhow::anyhow!("the callback listener stopped"))?;
        let result = app.complete_authorization(callback).await;
        let page = match &result {
            Ok(_) => (
                axum::http::StatusCode::OK,
                "Sluice: authorized. You can close this window.".to_string(),
            ),
            Err(e) => (
                axum::http::StatusCode::BAD_REQUEST,
                format!("Sluice: authorization failed: {e}"),
            ),
        };
        let _ = reply.send(page);
        Ok::<_, anyhow::Error>(result?)
    }
    .await;
    // Give the browser its page before the listener goes away.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    let integration = outcome?;
    let verb = if before.state == IntegrationState::PendingAuthorization {
        "authorized"
    } else {
        "re-generated the token of"
    };
    outln!(
        "{verb} integration {} ({})",
        integration.id,
        safe(&integration.name)
    )?;
    Ok(integration)
}

/// The page the browser gets back from the loopback listener.
type CallbackPage = (axum::http::StatusCode, String);
/// A callback of the flow in progress, and where its page goes.
type CallbackMsg = (Callback, tokio::sync::oneshot::Sender<CallbackPage>);

/// The loopback listener's state: where callbacks go and the `state` of the flow it waits for.
#[derive(Clone)]
struct CallbackListener {
    tx: tokio::sync::mpsc::Sender<CallbackMsg>,
    state: Arc<str>,
}

/// Passes on only a callback carrying this flow's `state`: any page or local process can send
/// a request to the loopback port, and a drive-by `?error=` must not end the flow.
async fn callback_handler(
    axum::extract::State(listener): axum::extract::State<CallbackListener>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> CallbackPage {
    let query = query.unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let callback = Callback::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let ours = callback_state(&callback).is_some_and(|state| {
        crate::admin::constant_time_eq(state.as_bytes(), listener.state.as_bytes())
    });
    if !ours {
        tracing::warn!("ignored a request to the OAuth callback without this flow's state");
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "Sluice: this request is not the answer to the authorization in progress; \
             it was ignored."
                .into(),
        );
    }
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    if listener.tx.send((callback, reply_tx)).await.is_err() {
        return (
            axum::http::StatusCode::GONE,
            "Sluice: this authorization is over.".into(),
        );
    }
    reply_rx.await.unwrap_or_else(|_| {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "Sluice: authorization did not finish.".into(),
        )
    })
}

fn callback_state(callback: &Callback) -> Option<&str> {
    match callback {
        Callback::Code { state, .. } => Some(state),
        Callback::Error { state, .. } => state.as_deref(),
        Callback::Malformed(_) => None,
    }
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let mut command = std::process::Command::new(opener);
    // The browser needs none of Sluice's settings, and some of them are secrets.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            command.env_remove(name);
        }
    }
    match command
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => eprintln!("(opened your browser; use --no-browser to skip)"),
        Err(_) => eprintln!("(could not open a browser; open the URL above yourself)"),
    }
}
