//! Errors: the public one of connecting; queries return the shared [`DbError`], classified into
//! `StoreError` at the trait boundary (unreachable or busy database: `Unavailable`).

use std::path::PathBuf;
use std::time::Duration;

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
    /// [`PgConfig::ca_file`](crate::PgConfig::ca_file) could not be read, or holds no PEM
    /// certificate.
    #[error("CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be reached, refused the connection, or the TLS handshake or the
    /// authentication failed. `target` is `host:port` (or the socket's path), `reason` says
    /// what happened in a few words (`connection refused`, `TLS handshake failed: …`,
    /// the server's message); the password is never part of it.
    #[error("could not connect to PostgreSQL at {target}: {reason}")]
    Connect {
        /// `host:port`, or the Unix socket's path.
        target: String,
        /// What went wrong, in a few words.
        reason: String,
        /// The error of the driver.
        #[source]
        source: sqlx::Error,
    },
    /// The server did not complete a connection in time (nothing answered, or the handshake
    /// stalled).
    #[error("could not connect to PostgreSQL at {target}: no answer within {after:?}")]
    ConnectTimeout {
        /// `host:port`, or the Unix socket's path.
        target: String,
        /// How long it waited ([`PgConfig::acquire_timeout`](crate::PgConfig::acquire_timeout)).
        after: Duration,
    },
    /// Creating the configured schema failed.
    #[error("could not create the schema")]
    CreateSchema(#[source] sqlx::Error),
    /// The embedded migrations failed.
    #[error("migrating the PostgreSQL schema failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// A few words on why connecting failed: the kind of network error, the TLS failure, or the
/// server's own message (authentication, unknown database).
pub(crate) fn connect_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io_reason(io),
        sqlx::Error::Tls(tls) => format!("TLS handshake failed: {tls}"),
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Configuration(c) => format!("invalid connection settings: {c}"),
        sqlx::Error::Protocol(p) if p.starts_with(hookline_store_sql::CLOSED_AT_SSL_REQUEST) => {
            "the server closed the connection when asked for TLS".to_owned()
        }
        other => other.to_string(),
    }
}

fn io_reason(io: &std::io::Error) -> String {
    use std::io::ErrorKind;
    // rustls reports a failed handshake (certificate not trusted, wrong name, …) as an I/O
    // error wrapping its own.
    if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return format!("TLS handshake failed: {tls}");
    }
    match io.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::TimedOut => "connection timed out".to_owned(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::UnexpectedEof => {
            format!("the server closed the connection ({io})")
        }
        ErrorKind::NotFound => "no such socket".to_owned(),
        _ => io.to_string(),
    }
}

pub(crate) use hookline_store_sql::{DbError, DbResult};
