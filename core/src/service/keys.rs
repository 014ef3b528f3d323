//! API keys: generation and the hashed form a store keeps.
//!
//! A key is `hk_` followed by 43 URL-safe characters (256 random bits). Stores keep only its
//! SHA-256 hash and its first characters; [`Hookline::authenticate`](super::Hookline::authenticate)
//! maps a presented key back to its [`Actor`](super::Actor).

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::model::{ApiKey, PageRequest, Role};
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

/// Makes sure `store` holds an admin key, and that the bootstrap key is the configured one.
///
/// With `configured`, that key is stored as the bootstrap admin key and every other bootstrap
/// key is revoked: starting with a new `HOOKLINE_ADMIN_KEY` replaces the old one. Without, a
/// key is generated (and returned, for the caller to show once, never in logs) only when the
/// store holds no admin key at all. Admin keys made through the API are never touched.
pub async fn ensure_admin(
    store: &dyn Store,
    configured: Option<&str>,
    now: Timestamp,
) -> Result<Option<String>, StoreError> {
    if let Some(key) = configured {
        let mut bootstrap = stored(key, Role::Admin, now);
        bootstrap.name = "bootstrap".into();
        bootstrap.bootstrap = true;
        store.put_api_key(&bootstrap).await?;
        revoke_other_bootstraps(store, &bootstrap.hash).await?;
        return Ok(None);
    }
    if store.has_admin_key().await? {
        return Ok(None);
    }
    let (key, mut stored) = generate(Role::Admin, now);
    stored.name = "bootstrap".into();
    stored.bootstrap = true;
    store.put_api_key(&stored).await?;
    Ok(Some(key))
}

/// Deletes every bootstrap admin key but the one with hash `keep`.
async fn revoke_other_bootstraps(store: &dyn Store, keep: &str) -> Result<(), StoreError> {
    let mut old = Vec::new();
    let mut page = PageRequest {
        limit: 250,
        after: None,
    };
    loop {
        let found = store.list_api_keys(None, &page).await?;
        old.extend(
            found
                .items
                .into_iter()
                .filter(|k| k.bootstrap && k.hash != keep)
                .map(|k| k.id),
        );
        match found.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    for id in old {
        if store.delete_api_key(None, &id).await?.is_some() {
            tracing::info!(key = %id, "revoked the previous bootstrap admin key");
        }
    }
    Ok(())
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

#[cfg(test)]
mod bootstrap_tests {
    use super::*;
    use crate::store::CatalogStore as _;
    use crate::testkit::MemoryStore;

    const ONE: &str = "hk_first_bootstrap_key_0123456789abcdefghijklmnop";
    const TWO: &str = "hk_second_bootstrap_key_0123456789abcdefghijklmno";

    #[tokio::test]
    async fn a_new_bootstrap_key_revokes_the_old_one_and_nothing_else() {
        let store = MemoryStore::new();
        let t = Timestamp::from_millis(1_000);
        assert_eq!(ensure_admin(&store, Some(ONE), t).await.unwrap(), None);
        let first = store.api_key(&hash(ONE)).await.unwrap().unwrap();
        assert!(first.bootstrap && first.role == Role::Admin);
        // An admin key issued through the API.
        let (issued, stored_issued) = generate(Role::Admin, t);
        store.put_api_key(&stored_issued).await.unwrap();

        assert_eq!(ensure_admin(&store, Some(TWO), t).await.unwrap(), None);
        assert_eq!(store.api_key(&hash(ONE)).await.unwrap(), None, "revoked");
        assert!(store.api_key(&hash(TWO)).await.unwrap().unwrap().bootstrap);
        assert!(store.api_key(&hash(&issued)).await.unwrap().is_some());
        // The same key again, or none: nothing changes, nothing is generated.
        assert_eq!(ensure_admin(&store, Some(TWO), t).await.unwrap(), None);
        assert_eq!(ensure_admin(&store, None, t).await.unwrap(), None);
        let admins = store
            .list_api_keys(None, &PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(admins.items.len(), 2);
    }

    #[tokio::test]
    async fn a_key_is_generated_only_for_a_store_without_admin_keys() {
        let store = MemoryStore::new();
        let t = Timestamp::from_millis(1_000);
        let key = ensure_admin(&store, None, t)
            .await
            .unwrap()
            .expect("generated");
        let stored = store.api_key(&hash(&key)).await.unwrap().unwrap();
        assert!(stored.bootstrap);
        assert_eq!(ensure_admin(&store, None, t).await.unwrap(), None);
    }
}
