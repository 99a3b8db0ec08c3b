//! Record and replay of a connector's outbound requests (cassettes).
//!
//! Threat: a recording is a file a developer commits and shares, so anything secret in it
//! leaks; and a replay that answers a request it was not recorded for (matching on the URL
//! alone, or answering from the network) hides the very change a test should catch.
//!
//! Rule:
//! - Recording stores each request as the guest sent it, before the host adds the
//!   integration's credentials, so no token can be written; `Authorization`,
//!   `Proxy-Authorization`, `Cookie` and `Set-Cookie` are dropped from what is stored whatever
//!   their origin, as are hop-by-hop headers that mean nothing in a file.
//! - Replay runs after the policy's origin checks (a denied request stays denied) and never
//!   resolves a name or opens a connection. A request is answered only by a recorded
//!   interaction with the same method, the same normalised URL (scheme and host lower-case,
//!   default port dropped, query parameters sorted, no fragment) and the same body (SHA-256);
//!   identical requests take their recorded answers in recorded order, each once.
//! - An unmatched request fails: the guest gets an internal error whose text names the request
//!   and the nearest recorded interaction and how it differs, and the cassette keeps the miss
//!   for the developer ([`Cassette::misses`]).
//!
//! Format: a cassette is a directory of JSON files, one per interaction, named
//! `NNNN-METHOD-host-path.json` and replayed in name order:
//! `{"request": {"method", "url", "headers": [[name, value]…], "body_sha256", "body" or
//! "body_base64"}, "response": {"status", "headers", "body" or "body_base64"}}`, or
//! `"error": "connection-refused"` (also `connection-timeout`, `connection-terminated`,
//! `dns-error`, `read-timeout`) instead of `"response"` for a request that got no answer. Only
//! method, URL and body hash take part in matching; stored request headers are for reading.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime_wasi_http::Error as HttpError;

/// Headers never written to a cassette: credentials and cookies, and hop-by-hop framing.
const UNRECORDED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "set-cookie2",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
];

/// What happens to outbound requests besides the policy: nothing, recording, or replay.
#[derive(Clone, Default)]
pub enum Tape {
    /// Requests go to the network.
    #[default]
    Off,
    /// Requests go to the network and each answer is written to a cassette.
    Record(std::sync::Arc<Recorder>),
    /// Requests are answered from a cassette; nothing reaches the network.
    Replay(std::sync::Arc<Cassette>),
}

impl fmt::Debug for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tape::Off => f.write_str("Off"),
            Tape::Record(r) => write!(f, "Record({})", r.dir.display()),
            Tape::Replay(c) => write!(f, "Replay({} interactions)", c.interactions.len()),
        }
    }
}

/// Why a cassette could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CassetteError {
    /// A file or directory could not be read or written.
    #[error("cassette {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not a valid interaction.
    #[error("cassette file {path} is not a valid interaction: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory holds no interaction file.
    #[error("cassette directory {0} holds no interaction (*.json) file")]
    Empty(PathBuf),
    /// Recording would mix with an earlier cassette.
    #[error(
        "cassette directory {0} already holds interactions; remove them or record into another directory"
    )]
    NotEmpty(PathBuf),
}

/// A body as stored: text when it is UTF-8, else base64.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBody {
    /// The body as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body as base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

impl StoredBody {
    /// Stores `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok("") => Self::default(),
            Ok(text) => Self {
                body: Some(text.to_string()),
                body_base64: None,
            },
            Err(_) => Self {
                body: None,
                body_base64: Some(BASE64.encode(bytes)),
            },
        }
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        match (&self.body, &self.body_base64) {
            (Some(_), Some(_)) => Err("has both `body` and `body_base64`".into()),
            (Some(text), None) => Ok(text.clone().into_bytes()),
            (None, Some(b64)) => BASE64
                .decode(b64)
                .map_err(|e| format!("`body_base64` is not base64: {e}")),
            (None, None) => Ok(Vec::new()),
        }
    }
}

/// A request as the guest sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The method, upper-case.
    pub method: String,
    /// The normalised URL ([`normalize_url`]).
    pub url: String,
    /// The guest's headers, minus the unrecorded ones; not matched on.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// SHA-256 of the body, hex; matched on.
    pub body_sha256: String,
    /// The body itself, for reading.
    #[serde(flatten)]
    pub body: StoredBody,
}

/// A response as the guest received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedResponse {
    /// The status code.
    pub status: u16,
    /// The headers, minus the unrecorded ones.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body (already decompressed, as the host hands it to the guest).
    #[serde(flatten)]
    pub body: StoredBody,
}

/// A transport failure the request met instead of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportFailure {
    /// The connection was refused.
    ConnectionRefused,
    /// Connecting timed out.
    ConnectionTimeout,
    /// The connection was closed before an answer.
    ConnectionTerminated,
    /// The name did not resolve.
    DnsError,
    /// The answer did not come in time.
    ReadTimeout,
}

impl TransportFailure {
    /// The failure `error` stands for, when it is one a cassette keeps.
    pub fn of(error: &HttpError) -> Option<Self> {
        Some(match error {
            HttpError::ConnectionRefused => Self::ConnectionRefused,
            HttpError::ConnectionTimeout => Self::ConnectionTimeout,
            HttpError::ConnectionTerminated => Self::ConnectionTerminated,
            HttpError::DnsError { .. } | HttpError::DnsTimeout => Self::DnsError,
            HttpError::DestinationNotFound => Self::DnsError,
            HttpError::ConnectionReadTimeout => Self::ReadTimeout,
            _ => return None,
        })
    }

    /// The error the guest sees on replay.
    pub fn error(self) -> HttpError {
        match self {
            Self::ConnectionRefused => HttpError::ConnectionRefused,
            Self::ConnectionTimeout => HttpError::ConnectionTimeout,
            Self::ConnectionTerminated => HttpError::ConnectionTerminated,
            Self::DnsError => HttpError::DnsError {
                rcode: Some("NXDOMAIN (recorded)".into()),
                info_code: None,
            },
            Self::ReadTimeout => HttpError::ConnectionReadTimeout,
        }
    }
}

/// One recorded exchange: a request and its answer or failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    /// The request.
    pub request: RecordedRequest,
    /// The answer, unless the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RecordedResponse>,
    /// The failure, when no answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TransportFailure>,
}

/// What a replayed request gets.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A response.
    Response(http::response::Parts, Bytes),
    /// A transport failure.
    Failure(TransportFailure),
}

/// A request the cassette could not answer, with the nearest recorded interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// The request's method.
    pub method: String,
    /// The request's normalised URL.
    pub url: String,
    /// SHA-256 of the request's body, hex.
    pub body_sha256: String,
    /// The nearest recorded interaction (its file, or its position) and how it differs.
    pub nearest: Option<(String, String)>,
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no recorded answer for {} {} (body sha256 {})",
            self.method,
            self.url,
            short(&self.body_sha256)
        )?;
        match &self.nearest {
            Some((name, difference)) => write!(f, "; nearest recorded: {name}, {difference}"),
            None => f.write_str("; the cassette records nothing"),
        }
    }
}

/// Recorded interactions answering requests in replay.
pub struct Cassette {
    interactions: Vec<(String, Interaction)>,
    used: Mutex<Vec<bool>>,
    fallback: Option<Interaction>,
    misses: Mutex<Vec<Miss>>,
}

impl Cassette {
    /// The cassette in `dir` (every `*.json` file, in name order).
    pub fn load(dir: &Path) -> Result<Self, CassetteError> {
        let io = |source| CassetteError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(CassetteError::Empty(dir.to_path_buf()));
        }
        let mut interactions = Vec::with_capacity(files.len());
        for path in files {
            let interaction = read_interaction(&path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            interactions.push((name, interaction));
        }
        Ok(Self::named(interactions))
    }

    /// A cassette of `interactions` built in code (named by position in misses).
    pub fn from_interactions(interactions: Vec<Interaction>) -> Self {
        Self::named(
            interactions
                .into_iter()
                .enumerate()
                .map(|(i, interaction)| (format!("interaction #{}", i + 1), interaction))
                .collect(),
        )
    }

    /// A cassette that answers every request, however often, with `status`, `headers` and
    /// `body` (to see how a connector takes a given failure).
    pub fn answering_every_request(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        let mut cassette = Self::named(Vec::new());
        cassette.fallback = Some(Interaction {
            request: RecordedRequest {
                method: "*".into(),
                url: "*".into(),
                headers: Vec::new(),
                body_sha256: String::new(),
                body: StoredBody::default(),
            },
            response: Some(RecordedResponse {
                status,
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                body: StoredBody::of(body.as_bytes()),
            }),
            error: None,
        });
        cassette
    }

    /// A cassette that fails every request with `failure`.
    pub fn failing_every_request(failure: TransportFailure) -> Self {
        let mut cassette = Self::answering_every_request(200, &[], "");
        if let Some(fallback) = &mut cassette.fallback {
            fallback.response = None;
            fallback.error = Some(failure);
        }
        cassette
    }

    fn named(interactions: Vec<(String, Interaction)>) -> Self {
        Self {
            used: Mutex::new(vec![false; interactions.len()]),
            interactions,
            fallback: None,
            misses: Mutex::new(Vec::new()),
        }
    }

    /// The answer to a request, or why there is none (also kept in [`Cassette::misses`]).
    pub fn answer(&self, method: &str, url: &str, body: &[u8]) -> Result<Answer, Miss> {
        let url = normalize_url(url);
        let body_sha256 = sha256_hex(body);
        let found = {
            let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            let index = self
                .interactions
                .iter()
                .enumerate()
                .position(|(i, (_, x))| {
                    !used[i]
                        && x.request.method == method
                        && x.request.url == url
                        && x.request.body_sha256 == body_sha256
                });
            if let Some(i) = index {
                used[i] = true;
            }
            index
                .map(|i| &self.interactions[i].1)
                .or(self.fallback.as_ref())
        };
        match found {
            Some(interaction) => answer_of(interaction).map_err(|reason| Miss {
                method: method.to_string(),
                url: url.clone(),
                body_sha256: body_sha256.clone(),
                nearest: Some(("the matching interaction".into(), reason)),
            }),
            None => {
                let miss = Miss {
                    nearest: self.nearest(method, &url, &body_sha256),
                    method: method.to_string(),
                    url,
                    body_sha256,
                };
                self.misses
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(miss.clone());
                Err(miss)
            }
        }
    }

    /// Every request the cassette could not answer so far.
    pub fn misses(&self) -> Vec<Miss> {
        self.misses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many recorded interactions have not answered a request yet.
    pub fn unused(&self) -> usize {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.iter().filter(|u| !**u).count()
    }

    /// The recorded interaction closest to the request, and how it differs.
    fn nearest(&self, method: &str, url: &str, body_sha256: &str) -> Option<(String, String)> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        self.interactions
            .iter()
            .enumerate()
            .map(|(i, (name, x))| {
                let (distance, difference) =
                    difference(&x.request, method, url, body_sha256, used[i]);
                (distance, i, name, difference)
            })
            .min_by_key(|(distance, i, _, _)| (*distance, *i))
            .map(|(_, _, name, difference)| (name.clone(), difference))
    }
}

/// How far a recorded request is from the one sent, and a sentence saying how they differ.
fn difference(
    recorded: &RecordedRequest,
    method: &str,
    url: &str,
    body_sha256: &str,
    used: bool,
) -> (u32, String) {
    let mut distance = 0;
    let mut parts = Vec::new();
    if recorded.method != method {
        distance += 8;
        parts.push(format!("method differs (recorded {})", recorded.method));
    }
    let (recorded_base, recorded_query) = split_query(&recorded.url);
    let (base, query) = split_query(url);
    if recorded_base != base {
        distance += 16;
        parts.push(format!("URL differs (recorded {})", recorded.url));
    } else if recorded_query != query {
        distance += 4;
        let recorded_params: Vec<&str> = params(recorded_query);
        let sent_params: Vec<&str> = params(query);
        let only_recorded: Vec<&str> = recorded_params
            .iter()
            .filter(|p| !sent_params.contains(p))
            .copied()
            .collect();
        let only_sent: Vec<&str> = sent_params
            .iter()
            .filter(|p| !recorded_params.contains(p))
            .copied()
            .collect();
        parts.push(format!(
            "query differs (recorded `{}`, sent `{}`)",
            only_recorded.join("&"),
            only_sent.join("&")
        ));
    }
    if recorded.body_sha256 != body_sha256 {
        distance += 2;
        parts.push(format!(
            "body differs (recorded sha256 {}, sent {})",
            short(&recorded.body_sha256),
            short(body_sha256)
        ));
    }
    if used {
        distance += 1;
        if parts.is_empty() {
            parts.push("the same request, but its recorded answer was already given (a request repeated more often than recorded)".into());
        } else {
            parts.push("and its answer was already given".into());
        }
    }
    let described = format!("{} {}: {}", recorded.method, recorded.url, parts.join(", "));
    (distance, described)
}

fn split_query(url: &str) -> (&str, &str) {
    url.split_once('?').unwrap_or((url, ""))
}

fn params(query: &str) -> Vec<&str> {
    query.split('&').filter(|p| !p.is_empty()).collect()
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// The response or failure `interaction` holds.
fn answer_of(interaction: &Interaction) -> Result<Answer, String> {
    match (&interaction.response, interaction.error) {
        (Some(response), None) => {
            let mut head = http::Response::new(()).into_parts().0;
            head.status = StatusCode::from_u16(response.status)
                .map_err(|_| format!("status {} is not an HTTP status", response.status))?;
            head.headers = header_map(&response.headers)?;
            let body = response.body.bytes()?;
            Ok(Answer::Response(head, Bytes::from(body)))
        }
        (None, Some(failure)) => Ok(Answer::Failure(failure)),
        _ => Err("it holds neither exactly one `response` nor one `error`".into()),
    }
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a header name"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of `{name}` is not a header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

fn read_interaction(path: &Path) -> Result<Interaction, CassetteError> {
    let text = std::fs::read_to_string(path).map_err(|source| CassetteError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason: String| CassetteError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let mut interaction: Interaction =
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    answer_of(&interaction).map_err(invalid)?;
    let body = interaction.request.body.bytes().map_err(invalid)?;
    // The hash is what matches; a hand-edited body without a hash gets one.
    if interaction.request.body_sha256.is_empty() {
        interaction.request.body_sha256 = sha256_hex(&body);
    }
    interaction.request.url = normalize_url(&interaction.request.url);
    interaction.request.method = interaction.request.method.to_ascii_uppercase();
    Ok(interaction)
}

/// Writes each answered request to a cassette directory.
pub struct Recorder {
    dir: PathBuf,
    next: AtomicU32,
    failures: Mutex<Vec<String>>,
}

impl Recorder {
    /// A recorder writing into `dir`, created when missing; refused when it already holds
    /// interaction files.
    pub fn create(dir: &Path) -> Result<Self, CassetteError> {
        let io = |source| CassetteError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let holds_json = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "json"));
        if holds_json {
            return Err(CassetteError::NotEmpty(dir.to_path_buf()));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            next: AtomicU32::new(1),
            failures: Mutex::new(Vec::new()),
        })
    }

    /// The directory recorded into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Interactions written so far.
    pub fn recorded(&self) -> u32 {
        self.next.load(Ordering::SeqCst) - 1
    }

    /// Files that could not be written (the requests themselves went on).
    pub fn failures(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records a request (its guest-side head and body) and what it got.
    pub fn record(
        &self,
        request: &http::request::Parts,
        url: &str,
        body: &[u8],
        outcome: Result<(&http::response::Parts, &[u8]), TransportFailure>,
    ) {
        let interaction = Interaction {
            request: RecordedRequest {
                method: request.method.as_str().to_string(),
                url: normalize_url(url),
                headers: recorded_headers(&request.headers),
                body_sha256: sha256_hex(body),
                body: StoredBody::of(body),
            },
            response: outcome.ok().map(|(head, body)| RecordedResponse {
                status: head.status.as_u16(),
                headers: recorded_headers(&head.headers),
                body: StoredBody::of(body),
            }),
            error: outcome.err(),
        };
        let sequence = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(file_name(sequence, &interaction.request));
        let written = serde_json::to_vec_pretty(&interaction)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(&path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "could not write a cassette file");
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{}: {e}", path.display()));
        }
    }
}

fn recorded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !UNRECORDED_HEADERS.contains(&name.as_str()))
        .filter(|(_, value)| !value.is_sensitive())
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// `NNNN-METHOD-host-path.json`, readable and in recorded order.
fn file_name(sequence: u32, request: &RecordedRequest) -> String {
    let target = request
        .url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(&request.url);
    let target = target.split('?').next().unwrap_or(target);
    let slug: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    format!(
        "{sequence:04}-{}-{}.json",
        request.method,
        slug.trim_matches('-')
    )
}

/// The URL requests match on: scheme and host lower-case, default port dropped, query
/// parameters sorted (as sent, not re-encoded), fragment dropped. Text that is not a URL is
/// kept as it is.
pub fn normalize_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    parsed.set_fragment(None);
    let query = parsed.query().map(|q| {
        let mut sorted: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
        sorted.sort_unstable();
        sorted.join("&")
    });
    parsed.set_query(None);
    let mut normalized = parsed.to_string();
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        normalized.push('?');
        normalized.push_str(&query);
    }
    normalized
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests;
