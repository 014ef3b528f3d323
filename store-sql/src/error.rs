//! The error every shared query returns, classified into [`StoreError`] at the trait boundary.

use hookline_core::store::StoreError;
use hookline_core::transport::BoxError;

/// What a query of a SQL store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// sqlx or the database failed.
    #[error("sql query failed")]
    Query(#[from] sqlx::Error),
    /// A shared write (a write group) could not start or commit; reported to each of its writes.
    #[error("write group failed: {0}")]
    Group(String),
    /// A stored value does not decode into the model (hand-edited or corrupted row).
    #[error("stored value in column `{column}` is invalid")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// Why it does not decode.
        #[source]
        source: BoxError,
    },
}

/// A result of [`DbError`].
pub type DbResult<T> = Result<T, DbError>;

impl DbError {
    /// A stored value in `column` that does not decode.
    pub fn corrupt(column: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Corrupt {
            column,
            source: source.into(),
        }
    }

    /// Classifies for the trait boundary: a unique violation is a conflict on `entity`, a
    /// database that is unreachable, busy or asks to retry is `Unavailable`, the rest `Backend`.
    pub fn into_store(self, entity: &'static str) -> StoreError {
        match &self {
            Self::Query(e) if is_unique_violation(e) => StoreError::Conflict(entity),
            Self::Query(e) if is_unavailable(e) && may_have_applied(e) => {
                StoreError::Unconfirmed(Box::new(self))
            }
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

/// Whether a connection failure may have come after the statement reached the database (a
/// reset, broken pipe or unexpected end mid-query): a write may have committed. A refused
/// connection, a pool that found no connection in time and an error answer from the database
/// (its transaction rolled back) apply nothing.
pub(crate) fn may_have_applied(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(io) => io.kind() != std::io::ErrorKind::ConnectionRefused,
        sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// The database is unreachable, restarting, overloaded, locked or asked us to retry: the caller
/// should back off and try again (the API answers 503 `store_unavailable`).
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        // No connection within `acquire_timeout` (also: the server refuses connections).
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        // Reset, refused, broken pipe, unexpected EOF, TLS failure.
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => is_transient(db.as_ref()),
        // The connection closed while asking the server for TLS (sqlx reads the missing answer
        // byte as 0x00).
        sqlx::Error::Protocol(msg) => msg.starts_with(CLOSED_AT_SSL_REQUEST),
        _ => false,
    }
}

/// How sqlx reports a connection closed before the server answered its TLS request.
pub const CLOSED_AT_SSL_REQUEST: &str = "unexpected response from SSLRequest: 0x00";

/// A database error that means "not now" rather than "never", in the dialect that raised it.
#[allow(unused_variables)] // without a dialect feature there is nothing to look at
fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "sqlite")]
    if let Some(e) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        return crate::sqlite::is_transient(e);
    }
    #[cfg(feature = "postgres")]
    if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return crate::postgres::is_transient_sqlstate(e.code());
    }
    false
}

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
        let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(
            matches!(
                DbError::from(reset).into_store("event"),
                StoreError::Unconfirmed(_)
            ),
            "a connection lost mid-statement may have committed"
        );
        assert!(matches!(
            DbError::from(sqlx::Error::RowNotFound).into_store("event"),
            StoreError::Backend(_)
        ));
        let closed = sqlx::Error::Protocol(format!("{CLOSED_AT_SSL_REQUEST} (tls.rs:95)"));
        assert!(matches!(
            DbError::from(closed).into_store("event"),
            StoreError::Unavailable(_)
        ));
        let other = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x45".into());
        assert!(matches!(
            DbError::from(other).into_store("event"),
            StoreError::Backend(_)
        ));
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
