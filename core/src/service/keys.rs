//! API keys: generation and the hashed form a store keeps.
//!
//! A key is `hk_` followed by 43 URL-safe characters (256 random bits). Stores keep only its
//! SHA-256 hash and its first characters; [`Hookline::authenticate`](super::Hookline::authenticate)
//! maps a presented key back to its [`Actor`](super::Actor).

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::model::{ApiKey, Role};
use crate::store::{Store, StoreError};
use crate::time::Timestamp;

/// A new random API key and its stored form.
pub fn generate(role: Role, now: Timestamp) -> (String, ApiKey) {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let key = format!(
        "hk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let stored = stored(&key, role, now);
    (key, stored)
}

/// The stored (hashed) form of `key`.
pub fn stored(key: &str, role: Role, now: Timestamp) -> ApiKey {
    ApiKey::new(hash(key), key.chars().take(10).collect(), role, now)
}

/// Lower-case hex SHA-256 of a key. Keys are 256-bit random values, so a fast hash is enough.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Makes sure `store` holds an admin key: stores `configured` if given, else generates one when
/// the store has none. Returns a generated key, which the caller shows once (never in logs).
pub async fn ensure_admin(
    store: &dyn Store,
    configured: Option<&str>,
    now: Timestamp,
) -> Result<Option<String>, StoreError> {
    if let Some(key) = configured {
        store.put_api_key(&stored(key, Role::Admin, now)).await?;
        return Ok(None);
    }
    if store.has_admin_key().await? {
        return Ok(None);
    }
    let (key, stored) = generate(Role::Admin, now);
    store.put_api_key(&stored).await?;
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_random_and_stored_hashed() {
        let (a, stored_a) = generate(Role::Admin, Timestamp::EPOCH);
        let (b, _) = generate(Role::Admin, Timestamp::EPOCH);
        assert_ne!(a, b);
        assert!(a.starts_with("hk_") && a.len() == 46, "{a}");
        assert_eq!(stored_a.hash, hash(&a));
        assert_eq!(stored_a.hash.len(), 64);
        assert!(!stored_a.hash.contains(&a[3..]));
        assert_eq!(stored_a.prefix, a[..10]);
    }
}
