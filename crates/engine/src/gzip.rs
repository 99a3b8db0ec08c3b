//! Compressed responses.
//!
//! Threat: a provider (or anything answering on an allowed host) sends a small gzip body that
//! inflates to gigabytes (a gzip bomb), or a `Content-Encoding` the guest cannot read.
//! Rule: the host inflates `Content-Encoding: gzip` bodies itself before the guest sees them,
//! and the decompressed bytes count against the same response cap as plain ones: inflation
//! stops at the cap and the response is refused with an error naming it. A body that is not
//! valid gzip is refused too. The guest receives plain bytes without `Content-Encoding`.

use std::io::Read;

use http::HeaderValue;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};

/// Why a compressed body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GzipError {
    /// It inflates past the response cap.
    #[error("the gzip response body inflates past the {cap}-byte response cap")]
    TooLarge {
        /// The cap, in decompressed bytes.
        cap: usize,
    },
    /// It is not valid gzip.
    #[error("the response says Content-Encoding: gzip but its body is not valid gzip: {0}")]
    Corrupt(String),
}

/// Whether the response's body is gzip-encoded (`gzip` or the legacy `x-gzip`).
pub fn is_gzip(head: &http::response::Parts) -> bool {
    head.headers.get(CONTENT_ENCODING).is_some_and(|v| {
        v.to_str()
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "gzip" | "x-gzip"))
    })
}

/// The most deflate expands: 1,032 output bytes per input byte (a run of one byte).
const MAX_DEFLATE_RATIO: usize = 1032;

/// The inflated size to allocate for up front: the gzip trailer's `ISIZE` (the last member's
/// length mod 2³², exact for the single member servers send), believed only as far as the
/// cap and the most that `body` could inflate to, so a lying trailer claims no more memory
/// than inflating would. Without it the output would grow by doubling and, for a chunk of
/// tens of megabytes, hold up to half as much again in spare capacity, and a copy of the
/// whole while it moves.
fn expected_size(body: &[u8], cap: usize) -> usize {
    let Some(trailer) = body.len().checked_sub(4).and_then(|at| body.get(at..)) else {
        return 0;
    };
    let stated = u32::from_le_bytes(trailer.try_into().unwrap_or_default()) as usize;
    stated
        .min(cap)
        .min(body.len().saturating_mul(MAX_DEFLATE_RATIO))
}

/// Inflates `body` (one or more gzip members) to at most `cap` bytes.
pub fn inflate(body: &[u8], cap: usize) -> Result<Vec<u8>, GzipError> {
    let mut out = Vec::with_capacity(expected_size(body, cap));
    flate2::read::MultiGzDecoder::new(body)
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| GzipError::Corrupt(e.to_string()))?;
    if out.len() > cap {
        return Err(GzipError::TooLarge { cap });
    }
    Ok(out)
}

/// Inflates a gzip response in place: the body becomes the plain bytes and the headers stop
/// announcing an encoding. Other responses are left as they are.
pub fn decode_response(
    head: &mut http::response::Parts,
    body: Vec<u8>,
    cap: usize,
) -> Result<Vec<u8>, GzipError> {
    if !is_gzip(head) {
        return Ok(body);
    }
    // A 304 (or any answer without a body) keeps the header but sends nothing to inflate.
    let plain = if body.is_empty() {
        body
    } else {
        inflate(&body, cap)?
    };
    head.headers.remove(CONTENT_ENCODING);
    head.headers
        .insert(CONTENT_LENGTH, HeaderValue::from(plain.len()));
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn head(encoding: Option<&str>) -> http::response::Parts {
        let mut b = http::Response::builder();
        if let Some(e) = encoding {
            b = b.header(CONTENT_ENCODING, e);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn gzip_bodies_are_inflated_and_lose_their_encoding() {
        let mut h = head(Some("gzip"));
        let body = decode_response(&mut h, gzip(b"{\"a\":1}"), 100).unwrap();
        assert_eq!(body, b"{\"a\":1}");
        assert!(h.headers.get(CONTENT_ENCODING).is_none());
        assert_eq!(h.headers[CONTENT_LENGTH], "7");
        let mut plain = head(None);
        assert_eq!(decode_response(&mut plain, b"x".to_vec(), 1).unwrap(), b"x");
        let mut not_modified = head(Some("gzip"));
        assert!(
            decode_response(&mut not_modified, Vec::new(), 1)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_bomb_stops_at_the_cap_counting_decompressed_bytes() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10, "10 MiB of zeros compress well");
        let mut h = head(Some("gzip"));
        assert_eq!(
            decode_response(&mut h, bomb, 1 << 20),
            Err(GzipError::TooLarge { cap: 1 << 20 })
        );
        let exact = gzip(&[7u8; 100]);
        assert_eq!(inflate(&exact, 100).unwrap().len(), 100);
        assert_eq!(inflate(&exact, 99), Err(GzipError::TooLarge { cap: 99 }));
    }

    #[test]
    fn the_output_is_sized_from_the_trailer_without_spare_capacity() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let out = inflate(&gzip(&data), 10 << 20).unwrap();
        assert_eq!(out, data);
        assert_eq!(
            out.capacity(),
            data.len(),
            "allocated once, at the inflated size"
        );
    }

    #[test]
    fn a_lying_trailer_claims_no_more_than_the_cap_or_the_deflate_ratio() {
        let mut lying = gzip(b"small");
        let at = lying.len() - 4;
        lying[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(expected_size(&lying, 1000), 1000);
        assert_eq!(expected_size(&lying, usize::MAX), lying.len() * 1032);
        assert_eq!(expected_size(b"abc", 100), 0);
        // The body is still judged by what it inflates to.
        assert!(matches!(
            inflate(&lying, 1 << 20),
            Err(GzipError::Corrupt(_))
        ));
    }

    #[test]
    fn corrupt_gzip_is_refused() {
        let mut h = head(Some("gzip"));
        assert!(matches!(
            decode_response(&mut h, b"not gzip".to_vec(), 100),
            Err(GzipError::Corrupt(_))
        ));
    }
}
