//! Errors: the public one of connecting; queries return the shared [`DbError`], classified into
//! `StoreError` at the trait boundary.

/// Failures of opening or migrating a database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The URL or path could not be parsed.
    #[error("invalid SQLite URL {url:?}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// Why sqlx rejected it.
        #[source]
        source: sqlx::Error,
    },
    /// The database file could not be created.
    #[error("could not create the SQLite database file")]
    Create(#[source] std::io::Error),
    /// The database could not be opened or configured.
    #[error("could not open the SQLite database")]
    Open(#[source] sqlx::Error),
    /// The embedded migrations failed.
    #[error("migrating the SQLite schema failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

pub(crate) use hookline_store_sql::{DbError, DbResult};
