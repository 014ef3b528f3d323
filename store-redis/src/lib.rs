//! # hookline-store-redis
//!
//! Hookline's Redis store. (Being built: `connect` reports that it is not ready yet.)
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

/// Redis store settings.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RedisConfig {}

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// Not built yet.
    #[error("the Redis store is not available in this build yet")]
    NotReady,
}

/// The Redis store.
#[derive(Debug, Clone)]
pub struct RedisStore {}

impl RedisStore {
    /// Connects to `url`.
    pub async fn connect(_url: &str, _cfg: RedisConfig) -> Result<Self, RedisError> {
        Err(RedisError::NotReady)
    }
}
