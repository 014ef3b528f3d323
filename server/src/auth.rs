//! API keys: generation, hashing and the `Authorization: Bearer` extractor.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use hookline_core::AccountId;
use hookline_core::model::{ApiKey, Role};
use hookline_core::store::Store;
use hookline_core::time::Timestamp;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// A new random API key (`hk_` + 43 URL-safe characters) and its stored form.
pub fn new_key(role: Role, now: Timestamp) -> (String, ApiKey) {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let key = format!(
        "hk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let stored = stored_key(&key, role, now);
    (key, stored)
}

/// The stored (hashed) form of `key`.
pub fn stored_key(key: &str, role: Role, now: Timestamp) -> ApiKey {
    ApiKey {
        hash: hash_key(key),
        prefix: key.chars().take(10).collect(),
        role,
        created_at: now,
    }
}

/// Lower-case hex SHA-256 of a key. Keys are 256-bit random values, so a fast hash is enough.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Makes sure an admin key exists: stores `configured` if given, else generates one when the
/// store has none. Returns a generated key, which the caller shows once.
pub async fn bootstrap_admin_key(
    store: &dyn Store,
    configured: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let now = Timestamp::now();
    if let Some(key) = configured {
        store
            .put_api_key(&stored_key(key, Role::Admin, now))
            .await?;
        return Ok(None);
    }
    if store.has_admin_key().await? {
        return Ok(None);
    }
    let (key, stored) = new_key(Role::Admin, now);
    store.put_api_key(&stored).await?;
    Ok(Some(key))
}

/// The caller, as proven by its bearer key.
#[derive(Debug, Clone)]
pub struct Caller(pub Role);

impl Caller {
    /// Only the admin key.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.0 {
            Role::Admin => Ok(()),
            Role::Account(_) => Err(ApiError::forbidden("this route needs the admin key")),
        }
    }

    /// The admin key or the key of `account`.
    pub fn require_account(&self, account: &AccountId) -> Result<(), ApiError> {
        match &self.0 {
            Role::Admin => Ok(()),
            Role::Account(a) if a == account => Ok(()),
            Role::Account(_) => Err(ApiError::forbidden("this key belongs to another account")),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <key>`"))?;
        let key = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <key>`"))?;
        let hash = hash_key(key);
        if let Some(role) = state.cache.keys.get(&hash) {
            return Ok(Caller(role));
        }
        match state.store().api_key(&hash).await? {
            Some(k) => {
                state.cache.keys.put(hash, k.role.clone());
                Ok(Caller(k.role))
            }
            None => Err(ApiError::unauthorized("unknown API key")),
        }
    }
}
