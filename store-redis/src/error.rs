//! Errors: the public one of connecting, and the private one every operation returns, which is
//! classified into [`StoreError`] at the trait boundary.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::store::StoreError;
use hookline_core::transport::BoxError;

/// Failures of [`RedisStore::connect`](crate::RedisStore::connect).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL could not be parsed (the message never repeats a password).
    #[error("invalid Redis URL")]
    InvalidUrl(#[source] BoxError),
    /// The URL asks for TLS without certificate checks (`rediss://…/#insecure`), which this
    /// store does not do: give the server's CA instead
    /// ([`RedisConfig::ca_file`](crate::RedisConfig::ca_file)).
    #[error(
        "`rediss://…#insecure` (TLS without certificate checks) is not supported: trust the \
         server's CA certificate with a CA file instead"
    )]
    InsecureTls,
    /// A CA file was given for a URL without TLS (`redis://`, not `rediss://`).
    #[error("a CA file was given, but the Redis URL does not use TLS (use `rediss://`)")]
    CaWithoutTls,
    /// [`RedisConfig::ca_file`](crate::RedisConfig::ca_file) could not be read, or holds no PEM
    /// certificate.
    #[error("CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Redis could not be reached, refused the connection, or the TLS handshake or the
    /// authentication failed. `target` is `host:port` (or the socket's path); the password is
    /// never part of the message.
    #[error("could not connect to Redis at {target}: {reason}")]
    Connect {
        /// `host:port`, or the Unix socket's path.
        target: String,
        /// What went wrong, in a few words (`connection refused`, `TLS handshake failed: …`).
        reason: String,
        /// The error of the redis crate.
        #[source]
        source: redis::RedisError,
    },
    /// The key prefix contains `{` or `}`, which would break the hash tags.
    #[error("invalid key prefix {0:?}: it must not contain `{{` or `}}`")]
    InvalidPrefix(String),
    /// Redis did not complete a connection in time.
    #[error("could not connect to Redis at {target}: no answer within {after:?}")]
    Timeout {
        /// `host:port`, or the Unix socket's path.
        target: String,
        /// How long it waited.
        after: Duration,
    },
}

/// How [`connect_reason`] starts when the server hung up.
pub(crate) const CLOSED: &str = "the server closed the connection";

/// A few words on why connecting failed: the kind of network error, the TLS failure, or what
/// Redis answered (authentication).
pub(crate) fn connect_reason(e: &redis::RedisError) -> String {
    use std::io::ErrorKind;
    if let Some(io) = io_error(e) {
        // rustls reports a failed handshake (certificate not trusted, wrong name, …) as an I/O
        // error wrapping its own.
        if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            return format!("TLS handshake failed: {tls}");
        }
        return match io.kind() {
            ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            ErrorKind::TimedOut => "connection timed out".to_owned(),
            ErrorKind::NotFound => "no such socket".to_owned(),
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::UnexpectedEof
            | ErrorKind::BrokenPipe => format!("{CLOSED} ({io})"),
            _ => io.to_string(),
        };
    }
    e.to_string()
}

/// The I/O error under `e`, if it is one. The redis crate keeps it behind an `Arc`, whose
/// `source` skips it, so each cause is looked into as such an `Arc` too.
fn io_error(e: &redis::RedisError) -> Option<&std::io::Error> {
    type Shared = Arc<dyn std::error::Error + Send + Sync>;
    let mut cause = std::error::Error::source(e);
    for _ in 0..8 {
        let c = cause?;
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        if let Some(io) = c
            .downcast_ref::<Shared>()
            .and_then(|inner| inner.downcast_ref::<std::io::Error>())
        {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

/// What an operation can fail with inside this crate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// Redis (or the connection to it) failed.
    #[error("redis command failed")]
    Redis(#[from] redis::RedisError),
    /// The operation did not finish within the operation timeout.
    #[error("redis operation timed out after {0:?}")]
    Timeout(Duration),
    /// A stored value does not decode into the model (hand-edited or corrupted key).
    #[error("stored value `{what}` is invalid")]
    Corrupt {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    /// A classified outcome (not found, conflict, lease lost) passed through unchanged.
    #[error(transparent)]
    Store(StoreError),
    /// A script failed for one item of a group call (the other items have their own answers).
    #[error("redis script failed: {0}")]
    Script(String),
    /// The failure of a group call (see `group.rs`), which every item of the group shares.
    #[error(transparent)]
    Group(std::sync::Arc<DbError>),
}

impl DbError {
    pub(crate) fn corrupt(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Corrupt {
            what,
            source: source.into(),
        }
    }
}

impl DbError {
    /// Whether a transient failure happened after the command may have reached Redis: a
    /// timeout or a connection lost mid-call (a refused connection or an error reply from Redis
    /// means the command did not run).
    fn may_have_applied(&self) -> bool {
        match self {
            DbError::Timeout(_) => true,
            DbError::Redis(r) => {
                !r.is_connection_refusal()
                    && (r.is_io_error()
                        || r.is_connection_dropped()
                        || r.is_timeout()
                        || r.is_unrecoverable_error())
            }
            DbError::Group(e) => e.may_have_applied(),
            _ => false,
        }
    }

    /// Whether the caller should back off and try again (connection trouble, timeouts).
    fn is_transient(&self) -> bool {
        match self {
            DbError::Timeout(_) => true,
            DbError::Redis(r) => is_transient(r),
            DbError::Group(e) => e.is_transient(),
            // The error code leads the message (`OOM command not allowed …`).
            DbError::Script(msg) => matches!(
                msg.split_whitespace().next(),
                Some(
                    "OOM"
                        | "MISCONF"
                        | "BUSY"
                        | "LOADING"
                        | "TRYAGAIN"
                        | "CLUSTERDOWN"
                        | "MASTERDOWN"
                        | "READONLY"
                )
            ),
            DbError::Corrupt { .. } | DbError::Store(_) => false,
        }
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Store(e) => e,
            _ if e.is_transient() && e.may_have_applied() => StoreError::Unconfirmed(Box::new(e)),
            _ if e.is_transient() => StoreError::Unavailable(Box::new(e)),
            _ => StoreError::Backend(Box::new(e)),
        }
    }
}

/// Connection trouble, timeouts and a server that cannot take writes right now: the caller
/// should back off and try again.
pub(crate) fn is_transient(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        return true;
    }
    if matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        )
    ) {
        return true;
    }
    // Out of memory, or writes refused because the last RDB save failed.
    matches!(e.code(), Some("OOM" | "MISCONF" | "BUSY"))
}

pub(crate) type DbResult<T> = Result<T, DbError>;
