//! Response compression: REST and Bulk results are gzip-compressed when the request says
//! `Accept-Encoding: gzip`, as Salesforce does (REST API guide, "Compression Headers"; Bulk
//! API 2.0 "query-compression"). A response that already names an encoding (a fault that
//! sets `Content-Encoding` itself) is left alone.

use std::io::Write;

use std::sync::Arc;

use tracing::Instrument;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::Shared;

fn accepts_gzip(req: &Request) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn compress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// Middleware: gzip the data API's answers for clients that accept it.
pub async fn gzip(State(state): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let wanted = req.uri().path().starts_with("/services/data") && accepts_gzip(&req);
    // The span times the answer's generation (the query, the JSON) apart from its gzip, for a
    // profiler; without a subscriber that wants it, it costs nothing.
    let resp = next
        .run(req)
        .instrument(tracing::debug_span!("emulator_answer"))
        .await;
    let bodiless =
        resp.status() == StatusCode::NOT_MODIFIED || resp.status() == StatusCode::NO_CONTENT;
    if !wanted || bodiless || resp.headers().contains_key(header::CONTENT_ENCODING) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if bytes.is_empty() {
        return Response::from_parts(parts, Body::empty());
    }
    let Ok(compressed) = tracing::debug_span!("emulator_gzip").in_scope(|| compress(&bytes)) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    state.stats.lock().expect("stats lock").compressed_responses += 1;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(compressed))
}
