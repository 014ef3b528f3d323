//! # hookline-store-postgres
//!
//! Hookline's production store: [`PgStore`] keeps accounts, endpoints, events, deliveries and
//! attempts in PostgreSQL (13 or newer) and implements every store trait of
//! [`hookline_core::store`], so it can be used as `Arc<dyn Store>`. Any number of
//! `hookline serve` processes (or embedding services) may share one database: work is split by
//! the claims themselves, `FOR UPDATE SKIP LOCKED`, never by a coordinator.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use hookline_core::store::Store;
//! use hookline_store_postgres::{PgConfig, PgStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = PgConfig::default()
//!     .max_connections(20)
//!     .acquire_timeout(Duration::from_secs(5));
//! // Connects and applies the embedded migrations.
//! let store = PgStore::connect("postgres://hookline@db.internal/hookline", cfg).await?;
//! let store: Arc<dyn Store> = Arc::new(store);
//! // hand `store` to `hookline_core::dispatcher::Dispatcher::builder(store, transport)`
//! # let _ = store; Ok(()) }
//! ```
//!
//! All SQL is run with the runtime `sqlx::query` API (no `query!` macros), so building needs no
//! database; the conformance suite of `hookline-core` covers every query instead.
//!
//! ## Migrations
//! The schema lives in `migrations/` and is embedded with `sqlx::migrate!`.
//! [`PgStore::connect`] applies it (so does `hookline migrate`, and `hookline serve` at
//! start-up); [`PgStore::migrate`] does it for a pool from [`PgStore::from_pool`]. sqlx takes a
//! PostgreSQL advisory lock while migrating, so several processes starting at once are safe.
//! The bookkeeping table `_sqlx_migrations` lives next to Hookline's tables.
//!
//! ## Schemas and isolation
//! Tables go into the first schema of the connection's `search_path` (normally `public`).
//! [`PgConfig::schema`] puts the store in its own schema instead: `connect` creates it if
//! missing and sets `search_path` on every pooled connection, so one database can hold several
//! independent Hookline stores. The tests use exactly this: every test case gets a fresh
//! `t_<random>` schema on the server named by `HOOKLINE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), migrated on connect and dropped with
//! `DROP SCHEMA … CASCADE` by a guard when the case ends, also when it fails. Server tests that
//! run several processes use a fresh database instead, dropped the same way.
//!
//! ## How the pipeline maps to SQL
//! * **Enqueue** is one statement: `INSERT INTO events … ON CONFLICT DO NOTHING` (the primary
//!   key and a unique index on `(account, idempotency_key)` both count) and, in the same
//!   statement, the whole fan-out from `UNNEST` arrays, joined to the events actually inserted.
//!   Concurrent enqueues share that statement (a *write group*: whoever gets the group's lock
//!   runs everything queued meanwhile, up to 128 events, and every caller is answered after the
//!   commit), so a burst of ingests costs one round trip, one commit and one WAL flush. When an
//!   event conflicts, its caller then looks up the original and returns its event id and
//!   deliveries (`duplicate: true`); concurrent creates with one idempotency key wait for the
//!   winner. A group with two events of one id, or whose statement fails, runs again one event
//!   per statement.
//! * **A batch** (`enqueue_batch`) is one transaction, run in a task of its own so that a caller
//!   that goes away cannot leave it between statements: it locks the targets of every event
//!   (`FOR KEY SHARE`) and checks them, looks up the events stored before (by id and idempotency
//!   key), and only then writes the new events and their deliveries as one multi-event statement
//!   (the group's), sorted by idempotency key so that concurrent batches take the key locks in one
//!   order. A target that is not an endpoint of its event's account rolls everything back
//!   (`NotFound`); an event a concurrent enqueue committed first becomes a duplicate of it.
//! * **Claim** is one statement: a `SELECT … ORDER BY next_attempt_at, id LIMIT n FOR UPDATE
//!   OF d SKIP LOCKED` inside an `UPDATE … RETURNING` that stamps a fresh lease id
//!   (`gen_random_uuid()`) and the lease's end (`lease_until`); a delivery is claimable when it
//!   is due and has no live lease, so an expired lease is simply due again (no sweeper).
//!   Claimers in different processes skip each other's locked rows instead of queueing behind
//!   them. No indexed column changes, so the update is a HOT update (the new row version stays
//!   on its page, no index gets a new entry); `deliveries` has `fillfactor = 50` so that a page
//!   has room for a claimed version of each of its rows (migration 0003). Measured with
//!   `pg_stat_statements` during `cargo xtask bench --store postgres`: 9 → 3 WAL records and
//!   23.5 → 11 buffer hits per claimed row, 38 → 18 µs of execution time.
//! * **Settle** is one statement: `WITH settled AS (UPDATE … WHERE id = $1 AND lease_id = $2 AND
//!   status = 'pending' RETURNING id) INSERT INTO attempts … SELECT … FROM settled`. No row
//!   means the lease was lost, and nothing changed. Concurrent settles share one statement (a
//!   write group of up to 256) built from `UNNEST` arrays the same way.
//! * Time always comes from the caller (`now: Timestamp`), never from `now()`; timestamps are
//!   `BIGINT` milliseconds. Lists are newest first by `(created_at, id)` with row-value cursors
//!   over matching indexes; ids use the `"C"` collation (byte order, as in Rust).
//!
//! ## The due index
//! `deliveries_due` is a partial index on `(next_attempt_at, id) WHERE status = 'pending' AND
//! endpoint_enabled`: it holds only claimable work, so finished deliveries never slow claims
//! down, and the backlog of a disabled endpoint is left out (`endpoint_enabled` is a copy of
//! the endpoint's flag kept by `update_endpoint`; the claim still checks `endpoints.enabled`).
//!
//! Measured, not assumed: a scratch database on PostgreSQL 15.20 (the 2-core development
//! machine, shared with other builds) was migrated and filled with 12,500 events × 100 endpoints
//! = **1,250,000 deliveries, 1,000,000 of them pending** (due from an hour ago to an hour ahead,
//! so 500,000 due at `now`) and 250,000 succeeded; 5 endpoints disabled, 10 ordered (500 queue
//! ids). After `VACUUM ANALYZE`, the claim statement exactly as this crate sends it
//! (`claim_due(now, 64, 45 s)`, no skipped endpoints, `jit = off` as the store sets it) was
//! prepared and run under `EXPLAIN (ANALYZE, BUFFERS)` in a transaction that was rolled back;
//! then the database was dropped. The plan:
//!
//! ```text
//!  Update on deliveries d  (cost=626.44..710.54 rows=10 width=54) (actual time=1.811..6.225 rows=64 loops=1)
//!    Buffers: shared hit=2087 dirtied=2 written=2
//!    InitPlan 2 (returns $9)
//!      ->  Limit  (cost=0.58..626.02 rows=64 width=51) (actual time=0.117..1.367 rows=64 loops=1)
//!            Buffers: shared hit=240
//!            ->  LockRows  (cost=0.58..3400866.02 rows=348004 width=51) (actual time=0.116..1.356 rows=64 loops=1)
//!                  Buffers: shared hit=240
//!                  ->  Nested Loop  (cost=0.58..3397385.98 rows=348004 width=51) (actual time=0.083..1.210 rows=64 loops=1)
//!                        Buffers: shared hit=176
//!                        ->  Index Scan using deliveries_due on deliveries due  (cost=0.42..3388265.39 rows=366320 width=80) (actual time=0.063..0.995 rows=64 loops=1)
//!                              Index Cond: (next_attempt_at <= '1800000000000'::bigint)
//!                              Filter: (endpoint_enabled AND (status = 'pending'::text) AND ((ordering_key IS NULL) OR (NOT (SubPlan 1))))
//!                              Rows Removed by Filter: 5
//!                              Buffers: shared hit=88
//!                              SubPlan 1
//!                                ->  Index Only Scan using deliveries_ordered on deliveries p  (cost=0.42..8.44 rows=1 width=0) (actual time=0.021..0.021 rows=1 loops=5)
//!                                      Index Cond: ((endpoint_id = due.endpoint_id) AND (ordering_key = due.ordering_key) AND (id < due.id))
//!                                      Heap Fetches: 0
//!                                      Buffers: shared hit=16
//!                        ->  Memoize  (cost=0.15..0.17 rows=1 width=41) (actual time=0.003..0.003 rows=1 loops=64)
//!                              Cache Key: due.endpoint_id, due.account
//!                              Cache Mode: logical
//!                              Hits: 20  Misses: 44  Evictions: 0  Overflows: 0  Memory Usage: 8kB
//!                              Buffers: shared hit=88
//!                              ->  Index Scan using endpoints_pkey on endpoints e  (cost=0.14..0.16 rows=1 width=41) (actual time=0.002..0.002 rows=1 loops=44)
//!                                    Index Cond: (id = due.endpoint_id)
//!                                    Filter: (enabled AND (due.account = account))
//!                                    Buffers: shared hit=88
//!    ->  Index Scan using deliveries_pkey on deliveries d  (cost=0.43..84.52 rows=10 width=54) (actual time=1.499..2.617 rows=64 loops=1)
//!          Index Cond: (id = ANY ($9))
//!          Buffers: shared hit=627
//!  Planning:
//!    Buffers: shared hit=274
//!  Planning Time: 1.861 ms
//!  Execution Time: 6.481 ms
//! ```
//!
//! The claim walks `deliveries_due` in due order, checks each candidate's endpoint by primary
//! key (memoized) and, for ordered endpoints only, that it heads its queue id (an index-only
//! probe of `deliveries_ordered`), locks, and stops after 64 rows: 240 buffers read to select
//! them (the rest of the 2,087 is the update writing new index entries for 64 rows — measured
//! before claims became HOT updates, which write none), so its cost does not grow with the
//! backlog. The same statement under
//! `plan_cache_mode = force_generic_plan` (what a prepared statement may switch to) has the
//! same shape and took 6.1 ms. `next_due` uses the same index with `LIMIT 1` (6 buffers,
//! 0.04 ms; it now also reads the leased rows in front of the first unleased one, at most what
//! is in flight). Two things were found and fixed this way: joining the locked rows back through a
//! CTE made the generic plan hash-join the whole table (≈ 0.5 s), hence `id = ANY (ARRAY(…))`;
//! and with JIT on, the generic plan's large estimates made PostgreSQL spend ≈ 35 ms compiling,
//! hence `jit = off` on the store's connections. A third, under load from an empty table: before
//! autovacuum had analysed `deliveries`, the planner believed it held a handful of rows and
//! collected every due row (a bitmap scan, or all pending rows of the endpoint) to sort them —
//! 120 ms per claim at 35,000 pending instead of 9 ms — so the claim runs in a transaction with
//! `enable_sort` and `enable_bitmapscan` off (`set_config(…, true)`, for that transaction only)
//! when it skips no endpoint (with skipped endpoints an ordered walk steps over all their due
//! rows, so the planner keeps its choice), and migration 0002 makes autovacuum visit
//! `deliveries` after 1 % of it changed.
//!
//! ## Errors
//! Failures are classified at the trait boundary, keeping the sqlx error as the source: no
//! connection within [`PgConfig::acquire_timeout`], refused connections, a closed pool, and
//! SQLSTATEs that mean "not now" (class `08`, `57P01`–`57P03`, `53300`, `40001`, `40P01`, …)
//! become [`StoreError::Unavailable`](hookline_core::store::StoreError::Unavailable): nothing was
//! written. A connection reset or ended mid-statement becomes
//! [`StoreError::Unconfirmed`](hookline_core::store::StoreError::Unconfirmed): the statement may
//! have committed. Both make the API answer 503 `store_unavailable` (saying whether the write
//! may have landed) and the dispatcher back off. When a shared enqueue statement fails that way,
//! every enqueue of its group gets the answer at once (not one statement each, which would wait
//! for the database once per event). Unique violations become
//! `Conflict`; everything else is `Backend`. The pool reconnects by itself once the database is
//! back. Response bodies and transport errors recorded with an attempt have NUL characters
//! replaced (PostgreSQL text cannot hold them).
//!
//! [`PgStore::connect`] opens one connection on its own before the pool, so that a server it
//! cannot reach fails at once with [`PgError::Connect`], whose message names the server and the
//! cause — `could not connect to PostgreSQL at 127.0.0.1:5432: connection refused`, `… TLS
//! handshake failed: invalid peer certificate: UnknownIssuer`, or the server's own message
//! (authentication, unknown database) — and never the password; a server that does not answer
//! within [`PgConfig::acquire_timeout`] gives [`PgError::ConnectTimeout`].
//!
//! ## TLS
//! TLS is rustls (with *ring*), always compiled in, and set up by the URL's `sslmode`, as with
//! libpq:
//!
//! | `sslmode` | encrypted | what is checked |
//! | --- | --- | --- |
//! | `disable` | no | nothing |
//! | `prefer` (the default) | when the server offers TLS | nothing: a man in the middle can read everything |
//! | `require` | always, or no connection | nothing, even with a CA given (libpq would check the chain then): protects from passive eavesdropping only |
//! | `verify-ca` | always | the certificate chain leads to a trusted CA; with sqlx 0.8 the host name too, as `verify-full` (it misses rustls's newer name-mismatch error, launchbadge/sqlx#3793) |
//! | `verify-full` | always | the chain, and that the certificate names the URL's host (a DNS name, or an IP address for an IP host) |
//!
//! Trusted CAs are the Mozilla roots built in (`webpki-roots`, the same set as Hookline's
//! webhook requests; the operating system's store is not read) plus the PEM file of the URL's
//! `sslrootcert=/path/ca.pem`, or else of [`PgConfig::ca_file`]. With `ca_file` and no
//! `sslmode` in the URL, the connection uses `verify-full` instead of `prefer` (not on a Unix
//! socket, which has no TLS). `sslcert` and `sslkey` present a client certificate. sqlx also
//! reads `PGSSLMODE` and `PGSSLROOTCERT` when the URL does not set them.
//!
//! ## Features
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | *(none)* | — | sqlx's PostgreSQL driver, with TLS (rustls, Mozilla roots) |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod deliveries;
mod error;

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use hookline_core::store::WorkListener;

/// Announces new work on the `LISTEN/NOTIFY` channel `hookline_work_<schema>` (per schema, so
/// stores sharing a database in different schemas do not wake each other).
pub(crate) const NOTIFY_WORK: &str = "SELECT pg_notify('hookline_work_' || current_schema(), '')";

/// Sends the work notification after enqueues have committed, coalesced: at most one `NOTIFY`
/// is in flight per store, and every enqueue committed while it runs is covered by one more.
///
/// Not inside the enqueue transaction: PostgreSQL serialises the commits of all transactions
/// that `NOTIFY` (a database-wide lock held through the commit's WAL flush), which capped
/// ingest at one commit-and-fsync at a time. A notification only wakes idle dispatchers early;
/// one that is lost costs at most their poll interval, never a delivery.
#[derive(Debug, Default)]
pub(crate) struct Announcer {
    /// An enqueue committed since the running `NOTIFY` started.
    pending: std::sync::atomic::AtomicBool,
    /// A task is sending notifications.
    running: std::sync::atomic::AtomicBool,
}

impl Announcer {
    /// Makes sure a `NOTIFY` is sent after now, without waiting for it.
    pub(crate) fn announce(self: &std::sync::Arc<Self>, pool: &PgPool) {
        use std::sync::atomic::Ordering::SeqCst;
        self.pending.store(true, SeqCst);
        if self.running.swap(true, SeqCst) {
            return; // the running task sends one more
        }
        let this = self.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            loop {
                this.pending.store(false, SeqCst);
                if let Err(e) = sqlx::query(NOTIFY_WORK).execute(&pool).await {
                    tracing::debug!(error = %e, "sending a work notification failed");
                }
                this.running.store(false, SeqCst);
                // Another enqueue committed meanwhile, and nobody took over: one more.
                if !this.pending.load(SeqCst) || this.running.swap(true, SeqCst) {
                    return;
                }
            }
        });
    }
}

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub use error::PgError;
/// The sqlx this crate is built with, for building the pool given to [`PgStore::from_pool`]
/// (the versions must match).
pub use sqlx;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How [`PgStore::connect`] opens its pool.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PgConfig {
    /// Connections in the pool at most (default 10). Every `hookline serve` process has its
    /// own pool: keep `processes × max_connections` below the server's `max_connections`.
    pub max_connections: u32,
    /// Connections kept open when idle (default 0).
    pub min_connections: u32,
    /// How long a call waits for a pooled connection (or for a new one to be established)
    /// before failing with `StoreError::Unavailable` (default 3 s). Short, so that ingest
    /// answers 503 quickly while the database is unreachable, and shorter than the service's
    /// 5 s write timeout, so that such a 503 can say that nothing was written.
    pub acquire_timeout: Duration,
    /// Idle connections are closed after this long (default 10 minutes).
    pub idle_timeout: Option<Duration>,
    /// Keep the store in this schema (created if missing) instead of the `search_path`'s
    /// first one. A plain lower-case identifier: `a-z`, `0-9`, `_`, at most 63 bytes.
    pub schema: Option<String>,
    /// `application_name` reported to the server when the URL names none (default `hookline`).
    pub application_name: String,
    /// CA certificates (a PEM file) that the server's certificate may be issued by, used when
    /// the URL names no `sslrootcert`; trusted besides the public roots built in. When the URL
    /// sets no `sslmode` either, the connection then uses `verify-full` (see [TLS](crate#tls)).
    pub ca_file: Option<PathBuf>,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(3),
            idle_timeout: Some(Duration::from_secs(600)),
            schema: None,
            application_name: "hookline".to_owned(),
            ca_file: None,
        }
    }
}

impl PgConfig {
    /// Sets [`max_connections`](Self::max_connections) (at least 1).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets [`min_connections`](Self::min_connections).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Sets [`schema`](Self::schema).
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = Some(name.into());
        self
    }

    /// Sets [`application_name`](Self::application_name).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Sets [`ca_file`](Self::ca_file).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
}

/// Where `options` connect to: `host:port`, or the Unix socket's path.
fn target(options: &PgConnectOptions) -> String {
    let port = options.get_port();
    match options.get_socket() {
        Some(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
        None if options.get_host().contains(':') => format!("[{}]:{port}", options.get_host()),
        None => format!("{}:{port}", options.get_host()),
    }
}

/// Trusts the CA certificates in `ca` unless the URL (or `PGSSLROOTCERT`) names its own, and
/// verifies the server (`verify-full`) unless the URL chooses an `sslmode`.
fn with_ca_file(
    options: PgConnectOptions,
    url: &str,
    ca: &Path,
) -> Result<PgConnectOptions, PgError> {
    use sqlx::ConnectOptions as _;
    let given = |keys: &[&str]| {
        options
            .to_url_lossy()
            .query_pairs()
            .any(|(k, _)| keys.contains(&k.as_ref()))
    };
    if given(&["sslrootcert"]) {
        return Ok(options);
    }
    check_ca_file(ca)?;
    let mut options = options.ssl_root_cert(ca);
    let mode_in_url = url
        .split_once('?')
        .map(|(_, query)| query.split('#').next().unwrap_or_default())
        .is_some_and(|query| {
            query
                .split('&')
                .any(|kv| matches!(kv.split('=').next(), Some("sslmode" | "ssl-mode")))
        });
    if !mode_in_url
        && options.get_socket().is_none()
        && matches!(options.get_ssl_mode(), sqlx::postgres::PgSslMode::Prefer)
    {
        options = options.ssl_mode(sqlx::postgres::PgSslMode::VerifyFull);
    }
    Ok(options)
}

/// Fails unless `path` can be read and holds at least one PEM certificate.
fn check_ca_file(path: &Path) -> Result<(), PgError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let fail = |reason: String| PgError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| fail(format!("not a PEM certificate file ({e})")))?;
        n += 1;
    }
    if n == 0 {
        return Err(fail("no PEM certificate in it".to_owned()));
    }
    Ok(())
}

/// Whether `name` is a schema name we accept: it needs no quoting anywhere.
fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Hookline's store on PostgreSQL. Cheap to clone (it holds a pool).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Whether any endpoint has limits (claims skip the limited path while none has).
    limited: std::sync::Arc<hookline_core::backend::LimitedHint>,
    /// Sends the work notifications of enqueues.
    announcer: std::sync::Arc<Announcer>,
    /// Shares one statement between concurrent enqueues.
    enqueues: std::sync::Arc<deliveries::EnqueueGroup>,
    /// Shares one statement between concurrent settles.
    settles: std::sync::Arc<deliveries::SettleGroup>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?…`, every parameter
    /// sqlx understands), creates [`PgConfig::schema`] if set, and applies the migrations.
    pub async fn connect(url: &str, cfg: PgConfig) -> Result<Self, PgError> {
        // JIT compilation costs tens of milliseconds per statement and never pays off for
        // these short, index-driven statements (it would kick in on a generic plan's estimates).
        let mut options = PgConnectOptions::from_str(url)
            .map_err(PgError::InvalidUrl)?
            .options([("jit", "off")]);
        if options.get_application_name().is_none() {
            options = options.application_name(&cfg.application_name);
        }
        if let Some(schema) = &cfg.schema {
            if !valid_schema(schema) {
                return Err(PgError::InvalidSchema(schema.clone()));
            }
            options = options.options([("search_path", schema.as_str())]);
        }
        if let Some(ca) = &cfg.ca_file {
            options = with_ca_file(options, url, ca)?;
        }
        // One connection first, on its own: the pool would retry until its acquire timeout and
        // then report only that it timed out, where this names the server and the cause.
        let target = target(&options);
        match tokio::time::timeout(cfg.acquire_timeout, sqlx::ConnectOptions::connect(&options))
            .await
        {
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
            Ok(Err(source)) => {
                return Err(PgError::Connect {
                    target,
                    reason: error::connect_reason(&source),
                    source,
                });
            }
            Err(_) => {
                return Err(PgError::ConnectTimeout {
                    target,
                    after: cfg.acquire_timeout,
                });
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .min_connections(cfg.min_connections)
            .acquire_timeout(cfg.acquire_timeout)
            .idle_timeout(cfg.idle_timeout)
            .connect_with(options)
            .await
            .map_err(|source| PgError::Connect {
                reason: error::connect_reason(&source),
                target: target.clone(),
                source,
            })?;
        if let Some(schema) = &cfg.schema {
            // Validated above: a bare identifier needs no quoting. Processes starting together
            // race here, and `IF NOT EXISTS` does not stop the loser from failing on the
            // catalog's unique index: whoever lost, the schema exists now.
            match sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&pool)
                .await
            {
                Ok(_) => {}
                Err(sqlx::Error::Database(db))
                    if db.kind() == sqlx::error::ErrorKind::UniqueViolation
                        || db.code().as_deref() == Some("42P06") => {}
                Err(e) => return Err(PgError::CreateSchema(e)),
            }
        }
        let store = Self::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Uses an existing pool; run [`migrate`](Self::migrate) before use. Tables are looked up
    /// through the connections' `search_path`. [`connect`](Self::connect) also sets `jit = off`
    /// on its connections (see the crate docs); do the same for a pool of your own.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            limited: Default::default(),
            announcer: Default::default(),
            enqueues: std::sync::Arc::new(deliveries::EnqueueGroup::new(
                deliveries::MAX_ENQUEUE_GROUP,
            )),
            settles: std::sync::Arc::new(deliveries::SettleGroup::new(
                deliveries::MAX_SETTLE_GROUP,
            )),
        }
    }

    /// The cross-process wake-up: a task that `LISTEN`s on the `hookline_work_<schema>` channel,
    /// which enqueues `NOTIFY` once they have committed (see [`Announcer`]), and raises the
    /// listener's signal. It holds one connection of the pool while it runs, reconnects by
    /// itself after connection losses, and stops when the listener is dropped.
    pub(crate) fn work_listener(&self) -> WorkListener {
        let pool = self.pool.clone();
        WorkListener::spawn(move |signal| async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let listener = async {
                    let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    let schema: String = sqlx::query_scalar("SELECT current_schema()")
                        .fetch_one(&pool)
                        .await?;
                    l.listen(&format!("hookline_work_{schema}")).await?;
                    Ok::<_, sqlx::Error>(l)
                };
                match listener.await {
                    Ok(mut l) => {
                        backoff = Duration::from_millis(100);
                        // `recv` reconnects by itself; an error means it could not.
                        loop {
                            match l.recv().await {
                                Ok(_) => signal.notify_one(),
                                Err(e) => {
                                    tracing::warn!(error = %e, "work notifications interrupted; reconnecting");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for work notifications failed; retrying")
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })
    }

    /// Applies the embedded migrations (idempotent, safe to run from several processes at once;
    /// [`connect`](Self::connect) runs it).
    pub async fn migrate(&self) -> Result<(), PgError> {
        MIGRATOR.run(&self.pool).await.map_err(PgError::Migrate)
    }

    /// The pool, for embedders that want to share it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl hookline_store_sql::SqlStore for PgStore {
    type Db = sqlx::Postgres;

    fn read_pool(&self) -> &PgPool {
        &self.pool
    }

    fn write_pool(&self) -> &PgPool {
        &self.pool
    }

    fn endpoints_changed(&self) {
        self.limited.clear();
    }
}

hookline_store_sql::impl_catalog_store!(PgStore, postgres);
hookline_store_sql::impl_endpoint_store!(PgStore, postgres);
hookline_store_sql::impl_history_store!(PgStore, postgres);
hookline_store_sql::impl_queue_store!(PgStore, postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_need_no_quoting() {
        assert!(valid_schema("t_01abc"));
        assert!(valid_schema("hookline"));
        assert!(!valid_schema(""));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema("Hookline"));
        assert!(!valid_schema("a;drop"));
        assert!(!valid_schema(&"a".repeat(64)));
    }

    #[test]
    fn defaults_fail_fast() {
        let cfg = PgConfig::default();
        assert!(cfg.acquire_timeout <= Duration::from_secs(5));
        assert_eq!(cfg.max_connections(0).max_connections, 1);
    }
}
