//! Errors: the public one of connecting, and the private one every query returns, which is
//! classified into [`StoreError`] at the trait boundary.

use hookline_core::store::StoreError;
use hookline_core::transport::BoxError;

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
    /// The database could not be opened or configured.
    #[error("could not open the SQLite database")]
    Open(#[source] sqlx::Error),
    /// The embedded migrations failed.
    #[error("migrating the SQLite schema failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// What a query can fail with inside this crate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// sqlx or SQLite failed.
    #[error("sqlite query failed")]
    Query(#[from] sqlx::Error),
    /// A shared write transaction could not start or commit (reported to each of its writes).
    #[error("write group failed: {0}")]
    Group(String),
    /// A stored value does not decode into the model (hand-edited or corrupted row).
    #[error("stored value in column `{column}` is invalid")]
    Corrupt {
        column: &'static str,
        #[source]
        source: BoxError,
    },
}

impl DbError {
    pub(crate) fn corrupt(column: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Corrupt {
            column,
            source: source.into(),
        }
    }

    /// Classifies for the trait boundary; a unique violation is a conflict on `entity`.
    pub(crate) fn into_store(self, entity: &'static str) -> StoreError {
        match &self {
            Self::Query(e) if is_unique_violation(e) => StoreError::Conflict(entity),
            Self::Query(e) if is_transient(e) => StoreError::Unavailable(Box::new(self)),
            _ => StoreError::Backend(Box::new(self)),
        }
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        e.into_store("row")
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Pool exhaustion and lock contention pass; the caller should back off and retry.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including their extended codes.
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

pub(crate) type DbResult<T> = Result<T, DbError>;
