//! # hookline-store-sqlite
//!
//! Hookline's embedded default store: [`SqliteStore`] keeps accounts, endpoints, events,
//! deliveries and attempts in one SQLite file and implements every store trait of
//! [`hookline_core::store`], so it can be used as `Arc<dyn Store>`. Zero set-up: the file is
//! created and migrated on [`SqliteStore::connect`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use hookline_core::store::Store;
//! use hookline_store_sqlite::{SqliteConfig, SqliteStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteStore::connect("data/hookline.db", SqliteConfig::default()).await?;
//! let store: Arc<dyn Store> = Arc::new(store);
//! // hand `store` to `hookline_core::dispatcher::Dispatcher::builder(store, transport)`
//! # let _ = store; Ok(()) }
//! ```
//!
//! ## Durability
//! The database runs in WAL mode with `synchronous = FULL`: every commit waits for the WAL to be
//! fsynced. So when [`enqueue`](hookline_core::store::QueueStore::enqueue) returns `Ok`, the
//! event and its deliveries survive `kill -9` *and* power loss. (`NORMAL` would survive a crash
//! of the process but could lose the last commits on power loss, breaking at-least-once.)
//! Foreign keys are on and `busy_timeout` is set (see [`SqliteConfig`]).
//!
//! ## Concurrency
//! SQLite allows one writer at a time. [`SqliteStore::connect`] opens two pools: a **writer pool
//! of exactly one connection**, through which every write goes (so writers in this process queue
//! in the pool instead of storming on `SQLITE_BUSY`), and a pool of read-only connections that,
//! thanks to WAL, read concurrently with the writer. Write transactions still start with
//! `BEGIN IMMEDIATE`, so they take the write lock up front and wait (`busy_timeout`) instead of
//! failing when another process or a shared [`SqliteStore::from_pool`] pool writes too.
//! In-memory databases (`sqlite::memory:`) use a single connection for everything.
//!
//! Claims are one atomic `UPDATE … WHERE id IN (SELECT … ORDER BY next_attempt_at LIMIT ?)
//! RETURNING …`: a claim stores a fresh lease id and moves `next_attempt_at` to the lease's end,
//! so an expired lease is simply due again and one index on `(status, next_attempt_at)` serves
//! both. `settle` checks the lease id and `status = 'pending'` in the same transaction that
//! inserts the attempt.
//!
//! ## Features
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | *(none)* | — | SQLite itself is compiled in (bundled by sqlx); there is nothing to install |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod deliveries;
mod error;
mod group;

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use error::SqliteError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How [`SqliteStore::connect`] opens the database.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// Read-only connections in the read pool (default 4). Writes always use one connection.
    pub read_connections: u32,
    /// How long a statement waits for a lock held by another connection (default 5 s).
    pub busy_timeout: Duration,
    /// How long a call waits for a free pooled connection before failing with
    /// `StoreError::Unavailable` (default 10 s).
    pub acquire_timeout: Duration,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

impl SqliteConfig {
    /// Sets [`read_connections`](Self::read_connections) (at least 1).
    pub fn read_connections(mut self, n: u32) -> Self {
        self.read_connections = n.max(1);
        self
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    pub fn busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = d;
        self
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }
}

/// Hookline's store on SQLite. Cheap to clone (it holds pools).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Every write goes here.
    write: SqlitePool,
    /// Reads go here (the same pool as `write` for in-memory databases and `from_pool`).
    read: SqlitePool,
    /// Shares write transactions between concurrent enqueues and settles.
    group: std::sync::Arc<group::GroupCommit>,
    /// Whether any endpoint has limits (claims skip the limited path while none has).
    limited: std::sync::Arc<hookline_core::backend::LimitedHint>,
}

/// Creates the database file readable and writable by its owner only (0600) when it does not
/// exist yet, before SQLite opens it: SQLite gives the `-wal` and `-shm` files the mode of the
/// database file, so they are private too. An existing file keeps its mode; a warning says when
/// others can read it.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format!("{:o}", mode & 0o777),
                        "the database file is readable by other users; `chmod 600` it (and its -wal and -shm files)"
                    );
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl SqliteStore {
    /// Opens (creating it if missing, with mode 0600) and migrates the database at `url_or_path`: a
    /// `sqlite:` URL (`sqlite://data/hookline.db?mode=rwc`, `sqlite::memory:`) or a plain path.
    pub async fn connect(url_or_path: &str, cfg: SqliteConfig) -> Result<Self, SqliteError> {
        let base = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path).map_err(|source| {
                SqliteError::InvalidUrl {
                    url: url_or_path.to_owned(),
                    source,
                }
            })?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        let base = base
            .busy_timeout(cfg.busy_timeout)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Full);
        let in_memory = url_or_path.contains(":memory:") || url_or_path.contains("mode=memory");
        if !in_memory && !url_or_path.contains("mode=ro") {
            create_private(base.get_filename()).map_err(SqliteError::Create)?;
        }

        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(cfg.acquire_timeout)
            // An in-memory database lives exactly as long as its one connection.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(SqliteError::Open)?;
        let store = if in_memory {
            Self::from_pool(write)
        } else {
            let read = SqlitePoolOptions::new()
                .max_connections(cfg.read_connections.max(1))
                .acquire_timeout(cfg.acquire_timeout)
                .connect_lazy_with(base.read_only(true));
            Self {
                write,
                read,
                group: Default::default(),
                limited: Default::default(),
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Uses an existing pool for reads and writes. The pool's connections should have foreign
    /// keys on, a `busy_timeout`, and `synchronous = FULL` for the durability described in the
    /// crate docs; run [`migrate`](Self::migrate) before use.
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            write: pool.clone(),
            read: pool,
            group: Default::default(),
            limited: Default::default(),
        }
    }

    /// Applies the embedded migrations (idempotent; [`connect`](Self::connect) runs it).
    pub async fn migrate(&self) -> Result<(), SqliteError> {
        MIGRATOR
            .run(&self.write)
            .await
            .map_err(SqliteError::Migrate)
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Begins a write transaction that holds SQLite's write lock from the start.
    async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, error::DbError> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl hookline_store_sql::SqlStore for SqliteStore {
    type Db = sqlx::Sqlite;

    fn read_pool(&self) -> &SqlitePool {
        &self.read
    }

    fn write_pool(&self) -> &SqlitePool {
        &self.write
    }

    fn endpoints_changed(&self) {
        self.limited.clear();
    }
}

hookline_store_sql::impl_catalog_store!(SqliteStore, sqlite);
hookline_store_sql::impl_endpoint_store!(SqliteStore, sqlite);
hookline_store_sql::impl_history_store!(SqliteStore, sqlite);
hookline_store_sql::impl_queue_store!(SqliteStore, sqlite);
