//! Signatures as the Standard Webhooks specification defines them, so that receivers can use
//! its libraries: headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature` (`v1,` then the base64 HMAC-SHA256 of `id.timestamp.body` keyed with
//! the base64-decoded part of the `whsec_...` secret).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::secrets::Secret;

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret's key (the specification asks for 24 to 64).
const KEY_BYTES: usize = 32;

/// The header carrying the event id.
pub const ID_HEADER: &str = "webhook-id";
/// The header carrying the send time, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Why a secret cannot sign.
#[derive(Debug, thiserror::Error)]
#[error("a webhook secret must be whsec_ followed by base64")]
pub struct BadSecret;

/// A new random signing secret, `whsec_` and base64.
pub fn new_secret() -> Secret {
    use chacha20poly1305::aead::OsRng;
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut key = [0u8; KEY_BYTES];
    OsRng.fill_bytes(&mut key);
    Secret::new(format!("{SECRET_PREFIX}{}", B64.encode(key)))
}

/// The `webhook-signature` value for event `id` sent at `timestamp` with `body`.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let encoded = secret
        .expose()
        .strip_prefix(SECRET_PREFIX)
        .ok_or(BadSecret)?;
    let key_bytes = B64.decode(encoded).map_err(|_| BadSecret)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key_bytes);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(format!("{id}.{timestamp}.").as_bytes());
    ctx.update(body);
    Ok(format!("v1,{}", B64.encode(ctx.sign().as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the specification's reference libraries (their test vectors).
    #[test]
    fn signs_as_the_reference_libraries_do() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_new_secret_signs_and_a_bad_one_is_refused() {
        let secret = new_secret();
        assert!(secret.expose().starts_with(SECRET_PREFIX));
        assert!(sign(&secret, "evt_1", 1, b"{}").unwrap().starts_with("v1,"));
        assert!(sign(&Secret::new("MfKQ9r8G"), "evt_1", 1, b"{}").is_err());
    }
}
