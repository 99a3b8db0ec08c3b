//! The `sluice:connector` world, with behaviour chosen by the `behaviour` setting.

wit_bindgen::generate!({
    path: "../../crates/sdk/wit-0.1",
    world: "sluice:connector/connector",
    generate_all,
});

use exports::sluice::connector::plugin::Guest;
use sluice::connector::host::{Level, log};
use sluice::connector::types as w;
// wasi:http through the SDK's bindings, so that `send` can reuse its body plumbing
// (`exchange`); the request itself is built here, raw, with whatever authority a test names.
use sluice_connector_sdk::wasi_http::outgoing_handler;
use sluice_connector_sdk::wasi_http::streams::OutputStream;
use sluice_connector_sdk::wasi_http::types::{
    Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};

struct Component;

export!(Component);

fn extra<'a>(settings: &'a w::Settings, name: &str) -> Option<&'a str> {
    settings
        .extra
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The OAuth plan; the `authorize-url`, `token-url` and `revoke-url` settings choose its
/// endpoints, as a hostile version would.
fn plan(settings: &w::Settings) -> w::OauthPlan {
    w::OauthPlan {
        authorize_url: extra(settings, "authorize-url")
            .unwrap_or("https://login.example/authorize")
            .into(),
        token_url: extra(settings, "token-url")
            .unwrap_or("https://login.example/token")
            .into(),
        revoke_url: extra(settings, "revoke-url").map(str::to_string),
        scopes: vec!["api".into()],
        pkce_required: true,
        extra_authorize_params: Vec::new(),
        client_credentials_supported: false,
    }
}

impl Guest for Component {
    fn configure(
        settings: w::Settings,
        _host: w::HostContext,
    ) -> Result<w::Configured, Vec<w::FieldError>> {
        // A build with SLUICE_HOSTILE_BROKEN set is a broken version: configure always traps.
        if option_env!("SLUICE_HOSTILE_BROKEN").is_some() {
            panic!("broken build: configure always traps");
        }
        let Some(behaviour) = extra(&settings, "behaviour") else {
            panic!("broken version: configure always traps");
        };
        if behaviour == "refuse" {
            return Err(vec![w::FieldError {
                field: "behaviour".into(),
                message: "this version refuses every integration".into(),
            }]);
        }
        let allowed_hosts = extra(&settings, "hosts")
            .unwrap_or("")
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect();
        Ok(w::Configured {
            allowed_hosts,
            oauth: plan(&settings),
            streams: vec![w::StreamInfo {
                name: "Thing".into(),
                key_fields: vec!["Id".into()],
                cursor_field: "Id".into(),
                emits_deletes: false,
            }],
            warnings: Vec::new(),
            normalized: Vec::new(),
        })
    }

    fn authorize(
        settings: w::Settings,
        _host: w::HostContext,
    ) -> Result<w::OauthPlan, Vec<w::FieldError>> {
        Ok(plan(&settings))
    }

    fn test(session: w::Session) -> w::TestReport {
        let behaviour = extra(&session.settings, "behaviour").unwrap_or("");
        let failure = match behaviour {
            "fail-test" => Some("this version fails every test".to_string()),
            "fetch" | "header-spy" => {
                let url = extra(&session.settings, "url").unwrap_or("");
                match get(url, behaviour == "header-spy") {
                    Ok((200, _, _)) => None,
                    Ok((status, _, body)) => Some(format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&body)
                    )),
                    Err(e) => Some(e),
                }
            }
            _ => None,
        };
        w::TestReport {
            failure: failure.map(|message| w::Failure {
                kind: w::FailureKind::Unknown,
                message,
                retry_after_s: None,
            }),
            org: Some("hostile".into()),
            user: None,
            api_usage: None,
            probes: Vec::new(),
        }
    }

    fn pull(session: w::Session, request: w::PullRequest) -> Result<w::Page, w::Failure> {
        let settings = &session.settings;
        let behaviour = extra(settings, "behaviour").unwrap_or("");
        let url = extra(settings, "url").unwrap_or("");
        let row = |key: &str, json: String| w::Row {
            key: key.to_string(),
            op: w::Operation::Upsert,
            cursor: key.to_string(),
            json: json.into_bytes(),
        };
        let page = |rows: Vec<w::Row>| w::Page {
            rows,
            checkpoint: request.checkpoint.clone(),
            status: w::StreamStatus::Complete,
            api_usage: None,
            api_calls: 0,
        };
        let failure = |message: String| w::Failure {
            kind: w::FailureKind::Unknown,
            message,
            retry_after_s: None,
        };
        match behaviour {
            "ok" => Ok(page(vec![row("1", "{\"ok\":true}".into())])),
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk[0] = 1;
                    hoard.push(std::hint::black_box(chunk));
                }
            }
            "undeclared" => match get("https://undeclared.example/data", false) {
                Ok((status, _, _)) => Ok(page(vec![row(
                    "reached",
                    format!("{{\"status\":{status}}}"),
                )])),
                Err(e) => Err(failure(e)),
            },
            "post" => {
                let size: usize = extra(settings, "size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(10_000);
                match send(Method::Post, url, false, Some(&vec![b'a'; size])) {
                    Ok((status, _, body)) => Ok(page(vec![row(
                        "response",
                        format!(
                            "{{\"status\":{status},\"body\":\"{}\"}}",
                            escape(&String::from_utf8_lossy(&body))
                        ),
                    )])),
                    Err(e) => Err(failure(e)),
                }
            }
            "fetch" => match get(url, false) {
                Ok((status, _, body)) => Ok(page(vec![row(
                    "response",
                    format!(
                        "{{\"status\":{status},\"body\":\"{}\"}}",
                        escape(&String::from_utf8_lossy(&body))
                    ),
                )])),
                Err(e) => Err(failure(e)),
            },
            "fs-env" => {
                let mut seen = Vec::new();
                seen.push(format!(
                    "read_dir(/)={}",
                    match std::fs::read_dir("/") {
                        Ok(d) => format!("ok:{}", d.count()),
                        Err(e) => format!("err:{e}"),
                    }
                ));
                seen.push(format!(
                    "read_dir(.)={}",
                    match std::fs::read_dir(".") {
                        Ok(d) => format!("ok:{}", d.count()),
                        Err(e) => format!("err:{e}"),
                    }
                ));
                seen.push(format!(
                    "read(/etc/passwd)={}",
                    match std::fs::read("/etc/passwd") {
                        Ok(b) => format!("ok:{}", b.len()),
                        Err(e) => format!("err:{e}"),
                    }
                ));
                seen.push(format!("env={}", std::env::vars().count()));
                seen.push(format!("HOME={:?}", std::env::var("HOME").ok()));
                seen.push(format!("args={}", std::env::args().count()));
                seen.push(format!(
                    "cwd={:?}",
                    std::env::current_dir()
                        .map(|p| p.display().to_string())
                        .ok()
                ));
                let rows = seen
                    .iter()
                    .enumerate()
                    .map(|(i, s)| row(&i.to_string(), format!("\"{}\"", escape(s))))
                    .collect();
                Ok(page(rows))
            }
            "pull-fetch" => {
                // Harmless in `configure` and `test`; only `pull` goes out, to `url`.
                let (status, _, body) = get(url, false).map_err(failure)?;
                Ok(page(vec![row(
                    "response",
                    format!(
                        "{{\"status\":{status},\"body\":\"{}\"}}",
                        escape(&String::from_utf8_lossy(&body))
                    ),
                )]))
            }
            "trap" => {
                if !url.is_empty() {
                    let _ = get(url, false);
                }
                panic!("hostile: trap mid-pull");
            }
            "big-page" => {
                let size: usize = extra(settings, "size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1 << 20);
                let chunk = 64 << 10;
                let rows = (0..size.div_ceil(chunk))
                    .map(|i| row(&i.to_string(), "x".repeat(chunk)))
                    .collect();
                Ok(page(rows))
            }
            "header-spy" => {
                // The guest may not set Authorization itself: the host forbids the header.
                let forbidden = Fields::new().append("authorization", b"Bearer guest-made");
                log(
                    Level::Info,
                    "spy: setting authorization",
                    &[("result".into(), format!("{forbidden:?}"))],
                );
                // Nor the header an API key goes in, named by the `set-header` setting.
                if let Some(name) = extra(&session.settings, "set-header") {
                    let forbidden = Fields::new().append(name, b"guest-made");
                    log(
                        Level::Info,
                        "spy: setting credential header",
                        &[("result".into(), format!("{forbidden:?}"))],
                    );
                }
                for (name, value) in std::env::vars() {
                    log(Level::Info, "spy: env", &[(name, value)]);
                }
                match get(url, true) {
                    Ok((status, headers, body)) => {
                        let mut rows = vec![row(
                            "body",
                            format!("\"{}\"", escape(&String::from_utf8_lossy(&body))),
                        )];
                        rows.push(row("status", status.to_string()));
                        for (i, (name, value)) in headers.iter().enumerate() {
                            rows.push(row(
                                &format!("header-{i}"),
                                format!("\"{}: {}\"", escape(name), escape(value)),
                            ));
                        }
                        Ok(page(rows))
                    }
                    Err(e) => Err(failure(e)),
                }
            }
            "pager" => {
                let after: u64 = request
                    .checkpoint
                    .as_deref()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let target = format!("{url}/page?after={after}&limit={}", request.max_records);
                let (status, _, body) = get(&target, false).map_err(failure)?;
                if status != 200 {
                    return Err(failure(format!("status {status}")));
                }
                let ids: Vec<u64> = String::from_utf8_lossy(&body)
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect();
                let checkpoint = ids.last().copied().unwrap_or(after);
                let rows = ids
                    .iter()
                    .map(|id| row(&id.to_string(), format!("{{\"Id\":{id}}}")))
                    .collect::<Vec<_>>();
                let status = if (rows.len() as u32) < request.max_records {
                    w::StreamStatus::Complete
                } else {
                    w::StreamStatus::Partial
                };
                Ok(w::Page {
                    rows,
                    checkpoint: Some(checkpoint.to_string()),
                    status,
                    api_usage: None,
                    api_calls: 1,
                })
            }
            "sf-pager" => {
                // Case Ids in Id order from a Salesforce REST API (the emulator), after the
                // checkpoint; the host adds the credentials.
                let filter = match &request.checkpoint {
                    Some(after) => format!(" WHERE Id > '{after}'"),
                    None => String::new(),
                };
                let soql = format!(
                    "SELECT Id FROM Case{filter} ORDER BY Id LIMIT {}",
                    request.max_records
                );
                let target = format!("{url}/services/data/v62.0/query?q={}", encode(&soql));
                let (status, _, body) = get(&target, false).map_err(failure)?;
                if status == 401 {
                    // As a Salesforce connector answers a missing or expired session.
                    return Err(w::Failure {
                        kind: w::FailureKind::ReauthorizationRequired,
                        message: format!("status 401: {}", String::from_utf8_lossy(&body)),
                        retry_after_s: None,
                    });
                }
                if status != 200 {
                    return Err(failure(format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&body)
                    )));
                }
                let body = String::from_utf8_lossy(&body);
                let ids: Vec<String> = body
                    .split("\"Id\":\"")
                    .skip(1)
                    .filter_map(|rest| rest.split('"').next())
                    .map(str::to_string)
                    .collect();
                let rows: Vec<w::Row> = ids
                    .iter()
                    .map(|id| row(id, format!("{{\"Id\":\"{id}\"}}")))
                    .collect();
                let status = if (rows.len() as u32) < request.max_records {
                    w::StreamStatus::Complete
                } else {
                    w::StreamStatus::Partial
                };
                Ok(w::Page {
                    checkpoint: ids.last().cloned().or(request.checkpoint.clone()),
                    rows,
                    status,
                    api_usage: None,
                    api_calls: 1,
                })
            }
            "stall-spin" => {
                // Opens a request whose body never ends, then computes: the open request must
                // not make the spinning count as waiting.
                let _held = open_unfinished(url)?;
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "stall-wait" => {
                // Opens a request whose body never ends, then waits for its response.
                let (_body, _stream, pending) = open_unfinished(url)?;
                match wait_response(&pending) {
                    Ok(incoming) => Ok(page(vec![row(
                        "response",
                        format!("{{\"status\":{}}}", incoming.status()),
                    )])),
                    Err(e) => Err(failure(e)),
                }
            }
            "hoard" => {
                // Opens `count` GETs, waits for every response and reads none of them.
                let count = number(settings, "count", 10);
                let mut held = Vec::new();
                for _ in 0..count {
                    let pending = start_get(url)?;
                    held.push(wait_response(&pending).map_err(failure)?);
                }
                Ok(page(vec![row("held", held.len().to_string())]))
            }
            "header-flood" => {
                // Creates `count` header maps, each with one `size`-byte value, and keeps them.
                let count = number(settings, "count", 10);
                let value = vec![b'h'; number(settings, "size", 1024)];
                let mut held = Vec::new();
                for i in 0..count {
                    let fields = Fields::new();
                    fields
                        .append("x-flood", &value)
                        .map_err(|e| failure(format!("header map {i}: {e:?}")))?;
                    held.push(fields);
                }
                Ok(page(vec![row("held", held.len().to_string())]))
            }
            "stall" => Ok(w::Page {
                rows: Vec::new(),
                checkpoint: request.checkpoint.clone(),
                status: w::StreamStatus::Partial,
                api_usage: None,
                api_calls: 0,
            }),
            "endless" => {
                let next = request
                    .checkpoint
                    .as_deref()
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0)
                    + 1;
                Ok(w::Page {
                    rows: vec![row(&next.to_string(), format!("{{\"Id\":{next}}}"))],
                    checkpoint: Some(next.to_string()),
                    status: w::StreamStatus::Partial,
                    api_usage: None,
                    api_calls: 0,
                })
            }
            "rate-limited" => Err(w::Failure {
                kind: w::FailureKind::RateLimited,
                message: "the provider's API budget is spent".into(),
                retry_after_s: Some(
                    extra(settings, "retry-after")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(u32::MAX),
                ),
            }),
            "log-forge" => {
                let forged = "done\n2026-01-01T00:00:00.000000Z  INFO sluice::runner: run finished \
                              integration=victim status=succeeded\r\x1b[2Kforged";
                let huge = "v".repeat(number(settings, "size", 1 << 20));
                log(
                    Level::Info,
                    forged,
                    &[
                        ("note\nINFO forged-field".into(), "x\ny".into()),
                        ("huge".into(), huge),
                    ],
                );
                Ok(page(vec![row("1", "{}".into())]))
            }
            other => Err(failure(format!("unknown behaviour {other:?}"))),
        }
    }
}

/// The numeric setting `name`, or `default`.
fn number(settings: &w::Settings, name: &str, default: usize) -> usize {
    extra(settings, name)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// An outgoing request for `url` with `method` and `headers`, its authority taken verbatim
/// from the URL (userinfo and odd IP forms included, as a hostile guest would send them).
fn request(method: Method, url: &str, headers: Fields) -> Result<OutgoingRequest, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("not an absolute URL: {url:?}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let outgoing = OutgoingRequest::new(headers);
    outgoing
        .set_method(&method)
        .map_err(|_| "method".to_string())?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|_| "scheme".to_string())?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|_| "authority".to_string())?;
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|_| "path".to_string())?;
    Ok(outgoing)
}

/// A GET of `url`, sent; its response is pending.
fn start_get(url: &str) -> Result<FutureIncomingResponse, w::Failure> {
    let fail = |message: String| w::Failure {
        kind: w::FailureKind::Unknown,
        message,
        retry_after_s: None,
    };
    let outgoing = request(Method::Get, url, Fields::new()).map_err(fail)?;
    let body = outgoing.body().map_err(|_| fail("body".into()))?;
    let pending = outgoing_handler::handle(outgoing, None).map_err(|e| fail(format!("{e:?}")))?;
    OutgoingBody::finish(body, None).map_err(|e| fail(format!("{e:?}")))?;
    Ok(pending)
}

/// A POST of `url` whose body is started and never finished: the body, its open stream and
/// the pending response.
fn open_unfinished(
    url: &str,
) -> Result<(OutgoingBody, OutputStream, FutureIncomingResponse), w::Failure> {
    let fail = |message: String| w::Failure {
        kind: w::FailureKind::Unknown,
        message,
        retry_after_s: None,
    };
    let outgoing = request(Method::Post, url, Fields::new()).map_err(fail)?;
    let body = outgoing.body().map_err(|_| fail("body".into()))?;
    let pending = outgoing_handler::handle(outgoing, None).map_err(|e| fail(format!("{e:?}")))?;
    let stream = body.write().map_err(|_| fail("body stream".into()))?;
    stream
        .blocking_write_and_flush(b"the start of a body that never ends")
        .map_err(|e| fail(format!("writing the body: {e:?}")))?;
    Ok((body, stream, pending))
}

/// Blocks until `pending` resolves; the response, or the error code's name.
fn wait_response(pending: &FutureIncomingResponse) -> Result<IncomingResponse, String> {
    loop {
        match pending.get() {
            Some(result) => {
                return result
                    .map_err(|_| "response taken twice".to_string())?
                    .map_err(|e| format!("{e:?}"));
            }
            None => pending.subscribe().block(),
        }
    }
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A GET through wasi:http. With `spy`, logs every request and response header it can see.
fn get(url: &str, spy: bool) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    send(Method::Get, url, spy, None)
}

/// A request through wasi:http, its body written by the SDK's `exchange` after the request is
/// handed over, in 4 KiB chunks, as a streaming guest does. With `spy`, logs every request and
/// response header the guest can see, and the response body.
fn send(
    method: Method,
    url: &str,
    spy: bool,
    payload: Option<&[u8]>,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    let headers = Fields::from_list(&[("accept".to_string(), b"*/*".to_vec())])
        .map_err(|e| format!("{e:?}"))?;
    let outgoing = request(method, url, headers)?;
    if spy {
        for (name, value) in outgoing.headers().entries() {
            log(
                Level::Info,
                "spy: request header",
                &[(name, String::from_utf8_lossy(&value).into_owned())],
            );
        }
    }
    let response = sluice_connector_sdk::wasi_http::exchange(outgoing, payload)
        .map_err(|e| format!("{e:?}"))?;
    if spy {
        for (name, value) in &response.headers {
            log(
                Level::Info,
                "spy: response header",
                &[(name.clone(), value.clone())],
            );
        }
        log(
            Level::Info,
            "spy: response body",
            &[(
                "body".into(),
                String::from_utf8_lossy(&response.body).into_owned(),
            )],
        );
    }
    Ok((response.status, response.headers, response.body))
}
