use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// With the Standard Webhooks crate (`standardwebhooks` on crates.io): checks the
/// `webhook-signature` header and that `webhook-timestamp` is within five minutes.
pub fn verify_standard(secret: &str, headers: &http::HeaderMap, body: &[u8]) -> bool {
    standardwebhooks::Webhook::new(secret)
        .and_then(|webhook| webhook.verify(body, headers))
        .is_ok()
}

/// The HMAC key is the base64-decoded part after `whsec_`, not the text of the secret.
pub fn key_bytes(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// `X-Hookline-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, one entry per active secret,
/// comma-separated. `verify_slice` compares in constant time.
pub fn verify_hookline_signature(secret: &str, header: &str, body: &[u8]) -> bool {
    let Some(key) = key_bytes(secret) else {
        return false;
    };
    header.split(',').any(|entry| {
        let hex_digest = entry.trim().trim_start_matches("sha256=");
        let Ok(expected) = hex::decode(hex_digest) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}
