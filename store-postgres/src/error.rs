//! Errors: the public one of connecting, and the private one every query returns, which is
//! classified into [`StoreError`] at the trait boundary.

use hookline_core::store::StoreError;
use hookline_core::transport::BoxError;

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

/// What a query can fail with inside this crate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// sqlx or PostgreSQL failed.
    #[error("postgres query failed")]
    Query(#[from] sqlx::Error),
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
            Self::Query(e) if is_unavailable(e) => StoreError::Unavailable(Box::new(self)),
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

/// The database is unreachable, restarting, overloaded or asked us to retry: the caller should
/// back off and try again (the API answers 503 `store_unavailable`).
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        // No connection within `acquire_timeout` (also: the server refuses connections).
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        // Reset, refused, broken pipe, unexpected EOF, TLS failure.
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| is_transient_sqlstate(&c)),
        _ => false,
    }
}

/// SQLSTATEs that mean "not now" rather than "never".
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || matches!(
            code,
            "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now (starting up, recovering)
                | "53300" // too_many_connections
                | "53400" // configuration_limit_exceeded
                | "40001" // serialization_failure
                | "40P01" // deadlock_detected
                | "55P03" // lock_not_available
                | "25006" // read_only_sql_transaction (a failover in progress)
        )
}

pub(crate) type DbResult<T> = Result<T, DbError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_unavailable() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            DbError::from(refused).into_store("event"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            DbError::from(sqlx::Error::PoolTimedOut).into_store("event"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            DbError::from(sqlx::Error::RowNotFound).into_store("event"),
            StoreError::Backend(_)
        ));
        assert!(is_transient_sqlstate("08006"));
        assert!(is_transient_sqlstate("57P01"));
        assert!(!is_transient_sqlstate("23505"));
    }

    #[test]
    fn sources_are_kept() {
        let e = DbError::from(sqlx::Error::PoolTimedOut).into_store("event");
        let source = std::error::Error::source(&e).expect("a source");
        assert!(
            std::error::Error::source(source).is_some(),
            "the sqlx error is kept"
        );
    }
}
