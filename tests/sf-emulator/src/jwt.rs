//! OAuth 2.0 JWT bearer grant (spec §1.8): an RS256-signed assertion whose `iss` is the
//! connected app's client id, `sub` a username, `aud` the login origin, `exp` in the
//! future, verified against the public key (or certificate) registered on the app.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::Value as Json;

use crate::dt;
use crate::oauth::OAuthError;
use crate::state::Shared;

/// The grant type of the JWT bearer flow.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Parses a PEM public key: `PUBLIC KEY` (SPKI), `RSA PUBLIC KEY` (PKCS#1) or
/// `CERTIFICATE` (X.509, as uploaded to a Salesforce connected app).
pub fn parse_public_key(pem: &str) -> Option<RsaPublicKey> {
    if let Ok(k) = RsaPublicKey::from_public_key_pem(pem) {
        return Some(k);
    }
    if let Ok(k) = RsaPublicKey::from_pkcs1_pem(pem) {
        return Some(k);
    }
    let (label, der) = rsa::pkcs8::der::pem::decode_vec(pem.trim().as_bytes()).ok()?;
    (label == "CERTIFICATE").then_some(())?;
    spki_of_certificate(&der).and_then(|spki| RsaPublicKey::from_public_key_der(spki).ok())
}

/// The SubjectPublicKeyInfo of an RSA certificate: the DER SEQUENCE that starts with
/// the `rsaEncryption` AlgorithmIdentifier (the certificate's own signature algorithm
/// is `sha256WithRSAEncryption`, a different OID, so the match is unambiguous).
fn spki_of_certificate(der: &[u8]) -> Option<&[u8]> {
    const ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let at = der.windows(ALG.len()).position(|w| w == ALG)?;
    // The SPKI header is `30 81 LL` or `30 82 LL LL` right before the algorithm.
    for (hdr, len) in [
        (3usize, der.get(at.checked_sub(1)?).map(|&l| l as usize)),
        (
            4,
            at.checked_sub(2)
                .map(|i| (der[i] as usize) << 8 | der[i + 1] as usize),
        ),
    ] {
        let start = at.checked_sub(hdr)?;
        let tag_ok = der[start] == 0x30 && der[start + 1] == 0x80 + (hdr as u8 - 2);
        if let Some(len) = len
            && tag_ok
            && start + hdr + len <= der.len()
        {
            return Some(&der[start..start + hdr + len]);
        }
    }
    None
}

fn invalid(description: &str) -> OAuthError {
    OAuthError::bad("invalid_grant", description)
}

/// Verifies the assertion; returns the user index of `sub`.
pub fn verify(
    state: &Shared,
    assertion: &str,
    find_user: impl Fn(&str) -> Option<u32>,
) -> Result<u32, OAuthError> {
    let parts: Vec<&str> = assertion.trim().split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(invalid("invalid assertion"));
    };
    let decode = |part: &str| -> Result<Json, OAuthError> {
        let raw = URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| invalid("invalid assertion"))?;
        serde_json::from_slice(&raw).map_err(|_| invalid("invalid assertion"))
    };
    let header = decode(h)?;
    let claims = decode(p)?;
    if header["alg"] != "RS256" {
        return Err(invalid("invalid assertion"));
    }
    // The issuer names the connected app.
    if claims["iss"].as_str() != Some(state.app.client_id.as_str()) {
        return Err(OAuthError::bad(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    let key = state
        .app
        .jwt_public_key_pem
        .as_deref()
        .and_then(parse_public_key)
        .ok_or_else(|| invalid("invalid assertion"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .and_then(|b| Signature::try_from(b.as_slice()).ok())
        .ok_or_else(|| invalid("invalid assertion"))?;
    VerifyingKey::<sha2::Sha256>::new(key)
        .verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| invalid("invalid assertion"))?;
    // Audience: the login hosts from the settings, or this emulator's own origin.
    let audiences = state.settings().jwt_audiences;
    let aud_ok = |a: &str| {
        let a = a.trim_end_matches('/');
        a == state.base_url || audiences.iter().any(|x| x.trim_end_matches('/') == a)
    };
    let aud_matches = match &claims["aud"] {
        Json::String(a) => aud_ok(a),
        Json::Array(v) => v.iter().filter_map(Json::as_str).any(aud_ok),
        _ => false,
    };
    if !aud_matches {
        return Err(invalid("Audience validation failed"));
    }
    let exp = claims["exp"]
        .as_i64()
        .or_else(|| claims["exp"].as_f64().map(|f| f as i64))
        .ok_or_else(|| invalid("invalid assertion"))?;
    if exp * 1000 <= dt::now_ms() {
        return Err(invalid("expired authorization code"));
    }
    let sub = claims["sub"]
        .as_str()
        .ok_or_else(|| invalid("invalid assertion"))?;
    find_user(sub).ok_or_else(|| invalid("user hasn't approved this consumer"))
}
