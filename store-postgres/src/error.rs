//! Errors: the public one of connecting; queries return the shared [`DbError`], classified into
//! `StoreError` at the trait boundary (unreachable or busy database: `Unavailable`).

/// Failures of opening or migrating the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The URL could not be parsed (the URL is left out: it may hold a password).
    #[error("invalid PostgreSQL URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// [`PgConfig::schema`](crate::PgConfig::schema) is not a plain lower-case identifier.
    #[error(
        "invalid schema name {0:?}: use 1 to 63 of a-z, 0-9 and `_`, not starting with a digit"
    )]
    InvalidSchema(String),
    /// The database could not be reached or refused the connection.
    #[error("could not connect to PostgreSQL")]
    Connect(#[source] sqlx::Error),
    /// Creating the configured schema failed.
    #[error("could not create the schema")]
    CreateSchema(#[source] sqlx::Error),
    /// The embedded migrations failed.
    #[error("migrating the PostgreSQL schema failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

pub(crate) use hookline_store_sql::{DbError, DbResult};
