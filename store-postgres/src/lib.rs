//! # hookline-store-postgres
//!
//! Hookline's PostgreSQL store. (Being built: `connect` reports that it is not ready yet.)
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

/// PostgreSQL store settings.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PgConfig {}

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// Not built yet.
    #[error("the PostgreSQL store is not available in this build yet")]
    NotReady,
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {}

impl PgStore {
    /// Connects to `url` and migrates the schema.
    pub async fn connect(_url: &str, _cfg: PgConfig) -> Result<Self, PgError> {
        Err(PgError::NotReady)
    }
}
