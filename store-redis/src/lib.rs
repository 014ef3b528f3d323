//! # hookline-store-redis
//!
//! Hookline's store on Redis: [`RedisStore`] keeps the catalog, endpoints, events, deliveries and
//! attempts in Redis and implements every store trait of [`hookline_core::store`], so it can be
//! used as `Arc<dyn Store>` — also by several `hookline serve` processes sharing one Redis. Claims,
//! settling, rescheduling and enqueueing are Lua scripts, so each is atomic (concurrent enqueues,
//! and concurrent settles, share one script call: see [Group calls](#group-calls)); the
//! connection is a [`redis::aio::ConnectionManager`], which reconnects by itself after Redis
//! restarts or the network drops.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use hookline_core::store::Store;
//! use hookline_store_redis::{RedisConfig, RedisStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = RedisConfig::default()
//!     .prefix("hookline:")
//!     .retention(Duration::from_secs(30 * 24 * 3600));
//! let store = RedisStore::connect("redis://127.0.0.1:6379/", cfg).await?;
//! let store: Arc<dyn Store> = Arc::new(store);
//! // hand `store` to `hookline_core::dispatcher::Dispatcher::builder(store, transport)`
//! # let _ = store; Ok(()) }
//! ```
//!
//! ## URLs
//! `redis://[user:password@]host[:port][/db][?prefix=<prefix>]`, or `rediss://…` for TLS (see
//! [TLS](#tls)). A `prefix` query parameter overrides
//! [`RedisConfig::prefix`], so deployments and tests can share one server from a URL alone
//! (`hookline serve --store 'redis://127.0.0.1:6379/?prefix=staging:'`). Other query parameters
//! go to the redis crate (`protocol`, …).
//!
//! ## TLS
//! `rediss://` connects with TLS (rustls with *ring*, always compiled in) and always verifies
//! the server: its certificate chain must lead to a trusted CA and name the URL's host (a DNS
//! name, or an IP address for an IP host). Trusted CAs are the Mozilla roots built in
//! (`webpki-roots`, the same set as Hookline's webhook requests; the operating system's store is
//! not read), or, with [`RedisConfig::ca_file`], only the CAs of that PEM file. Not supported:
//! `rediss://…/#insecure` (no certificate checks; refused as [`RedisError::InsecureTls`]: give
//! the server's CA instead) and client certificates (a server with `tls-auth-clients yes`). A
//! CA file with a `redis://` URL is refused ([`RedisError::CaWithoutTls`]).
//!
//! If a rustls crypto provider is not installed for the process yet, connecting to a `rediss://`
//! URL installs *ring*'s (what rustls does by itself when only one provider is compiled in).
//!
//! [`RedisStore::connect`] fails at once when Redis cannot be reached, with
//! [`RedisError::Connect`], whose message names the server and the cause (`could not connect
//! to Redis at 127.0.0.1:6379: connection refused`, `… TLS handshake failed: invalid peer
//! certificate: UnknownIssuer`) and never the password.
//!
//! ## Key layout
//! Every key starts with the prefix `P` (default `hookline:`). Times are milliseconds since the
//! Unix epoch. *Index* means a sorted set whose members are `<time>:<id>` with score 0, where
//! `<time>` is 16 hex digits that sort like the time: `ZRANGE … BYLEX REV` lists it newest first
//! with ties broken by id, and a [`Cursor`](hookline_core::model::Cursor) is an exclusive bound.
//!
//! | key | type | what | expires |
//! | --- | --- | --- | --- |
//! | `P{c}:acct:<account>` | hash `m`, `j` | account JSON and its index member | — |
//! | `P{c}:accts` | index | accounts by creation | — |
//! | `P{c}:et:<name>` | hash `m`, `j` | event type JSON | — |
//! | `P{c}:ets` | index | event types by creation | — |
//! | `P{c}:key:<sha256>` | hash `prefix`, `account` (`""` = admin), `created`, `name`, `ro`, `boot`, `exp`, `used` | API key (its id is `key_` + the first 16 digits of the hash; an admin key without `boot`, stored by an older version, is a bootstrap key) | — |
//! | `P{c}:admins` | set | hashes of admin keys (listing a scope reads its whole set: keys are few) | — |
//! | `P{c}:settings` | hash | deployment settings by name (`encryption`: the encryption marker) | — |
//! | `P{c}:acctkeys:<account>` | set | hashes of the account's keys | — |
//! | `P{c}:aud:<id>` | hash `j` | audit entry JSON | retention |
//! | `P{c}:audall` | index | every audit entry by time (for the deployment's list and `purge_audit`) | pruned |
//! | `P{c}:auds:<account>` | index | the account's audit entries by time | pruned |
//! | `P{a:<account>}:site:<site>` | hash `m`, `j` | site JSON | — |
//! | `P{a:<account>}:sites` | index | the account's sites | — |
//! | `P{q}:ep:<endpoint>` | hash `account`, `enabled`, `ordered`, `m`, `j` | endpoint JSON and the flags scripts read | — |
//! | `P{q}:eps:<account>` | index | the account's endpoints | — |
//! | `P{q}:ev:<event>` | hash `a`, `k`, `j` | account, idempotency key, event JSON (data byte for byte) | retention |
//! | `P{q}:idem:<account>:<key>` | string | idempotency key → event id (`SET NX`) | retention |
//! | `P{q}:evs:<account>` | index | the account's events by event timestamp | pruned |
//! | `P{q}:evall` | index | every event by event timestamp (for `purge`) | pruned |
//! | `P{q}:evd:<event>` | list | the event's delivery ids (its receipt) | retention |
//! | `P{q}:dlv:<delivery>` | hash | `account event endpoint status attempts next_at last_at created lease due_at trigger okey lz` | retention |
//! | `P{q}:dlvs:<account>` | index | the account's deliveries by creation | pruned |
//! | `P{q}:epd:<endpoint>` | index | the endpoint's deliveries by creation | pruned |
//! | `P{q}:hourly:<endpoint>:<hour>` | hash `d`, `f`, `l0` … `l11` | an endpoint's attempts of one hour: delivered, failed, per latency bucket | 8 days |
//! | `P{q}:hours:<endpoint>` | sorted set | the hours an endpoint has counters of (score = member = hour, ms) | 8 days |
//! | `P{q}:due` | sorted set | pending deliveries of enabled endpoints, score = due time | — |
//! | `P{q}:pending` | set | every pending delivery's id, wherever it waits (`backlog` counts it); added when a delivery becomes pending, removed when it finishes, is cancelled or purged (deliveries made pending by a version without this set are not in it) | — |
//! | `P{q}:park:<endpoint>` | sorted set | pending deliveries of a disabled or held endpoint, score = due time | — |
//! | `P{q}:side:<endpoint>` | sorted set | due deliveries of an endpoint a claim passed over (skipped by the caller, or out of room under its limits), score = due time | — |
//! | `P{q}:sides` | sorted set | endpoints with set-aside deliveries, score = the earliest | — |
//! | `P{q}:holds` | sorted set | held (failing) endpoints, score = end of the hold | — |
//! | `P{q}:lz:<endpoint>` | sorted set | live leases of an endpoint with limits, score = lease end (a delivery's `lz` is `0` when its lease is not in it) | — |
//! | `P{q}:oq:<endpoint>:<queue id>` | sorted set | pending deliveries of an ordered endpoint that share a queue id, by delivery id | — |
//! | `P{q}:att:<delivery>` | list | attempt JSON, oldest first | retention |
//!
//! *Retention* ([`RedisConfig::retention`], default 30 days) is a `PEXPIRE` set when the event is
//! stored (attempts: when the last one was recorded), by Redis's clock — a safety net beside the
//! dispatcher's periodic [`purge`](hookline_core::store::QueueStore::purge), which deletes
//! events by their timestamp together with their deliveries, attempts and idempotency keys.
//! *Pruned*: index members whose record expired are removed when a list meets them, and by
//! enqueues: up to two per event and index, oldest first, stopping at the first member whose
//! record is still there. Retention must be longer than the retry horizon (24 h by default): a
//! delivery whose event has expired is cancelled when it comes due.
//!
//! ## Claims and leases
//! Mirrors the reference SQLite store: a claim (one script) takes the lowest-scored entries of
//! `P{q}:due` up to `now`, writes a fresh lease id into each delivery hash and moves its score —
//! and `next_at` — to the lease's end, so an expired lease is simply due again. `settle` (one
//! script) checks the lease id and `status = pending`, records the attempt and reschedules or
//! finishes the delivery. Deliveries of a disabled endpoint are *parked* in `P{q}:park:<endpoint>`
//! (by the claim or `next_due` that meets them, or at scheduling) and moved back when it is
//! enabled, so claims never scan them repeatedly. Ordered endpoints: deliveries that share a
//! queue id wait in `P{q}:oq:…` and only the oldest pending one (by delivery id, as in SQLite) is
//! ever in the due index; when it finishes, the next one is scheduled. `claim_due_except` passes
//! the endpoints to skip to the claim script, which sets their due entries aside
//! (`P{q}:side:<endpoint>`) so that later claims do not walk the same backlog again; each claim
//! first puts back the set-aside entries it may take (the earliest, up to its `max`, and no more
//! than a limited endpoint has room for). A claim looks at most 2 000 due entries.
//! Limits: the endpoint hash carries `mc` (`maxConcurrency`), `rl` (`rateLimit`) and `pace` (the
//! next free send time, µs); the claim counts live leases in `P{q}:lz:<endpoint>` and hands out
//! send times, atomically, so the limits hold across processes. `hold_endpoint` sets `hold` on
//! the endpoint hash and adds it to `P{q}:holds`: claims park the entries of a held endpoint
//! they meet, and the first claim after the hold puts them back. `fs` is the failure clock.
//! `defer` is a script like `settle` without the attempt. Every time is
//! passed in by the caller; scripts never read Redis `TIME`. A claim reads each endpoint's flags
//! once and returns each event's and endpoint's JSON once, however many of their deliveries it
//! takes.
//!
//! ## Group calls
//! Redis runs one script at a time, and each call has a fixed cost besides its commands, so
//! concurrent `enqueue`s share one script call, and so do concurrent `settle`s. Each caller queues
//! its item; whoever takes the group's lock runs everything queued so far (up to 64 events or 128
//! settles, and about 1 MiB of JSON) as one call, while the next callers queue for the next one.
//! No task is spawned: the call is a shared future awaited by every caller of the group, so it
//! runs to its end even if the caller that started it goes away. The script handles the items one
//! after the other, exactly as separate calls would, and answers each: a settle gets `Ok` or
//! `LeaseLost` (of two settles of one lease, the first wins); an event is stored with all its
//! deliveries or is a duplicate — by id or idempotency key, also of an earlier event of the same
//! call — answered with the original's receipt. An item whose commands fail (a corrupted key)
//! fails alone; if the call itself fails (connection, timeout), every caller of the group gets
//! that error. A call that stores deliveries publishes on the work channel once, and trims the
//! indexes it wrote once per account. Under light load a call carries a single item.
//!
//! A batch (`enqueue_batch`) is one script call of its own, outside the group, in the script's
//! all-or-nothing mode: it checks every event first — duplicates as the one-by-one answers would
//! find them, and the targets of every new event — and writes nothing if one names a target that
//! is not an endpoint of its account; otherwise it stores the events in order as above. Redis
//! runs the script without interleaving anything else and the AOF records it as one
//! transaction, so no reader and no restart sees part of a batch. (Redis does not undo the
//! commands of a script that fails half-way; only a key of the wrong type under the prefix, a
//! corrupted store, could make a check-passed batch fail.)
//!
//! ## Cluster
//! Every multi-key script and transaction touches keys of one hash slot. A claim must see the due
//! deliveries of **all** accounts atomically, so the whole delivery pipeline — endpoints, events,
//! idempotency keys, deliveries, attempts and the due index — shares the hash tag `{q}`, and
//! enqueue, claim, settle, retry, recover and endpoint changes are each a single script on that
//! slot. Scripts build the names of further `{q}` keys (delivery hashes met in the due index)
//! from `ARGV[1]`; they are in the slot of `KEYS[1]`, which Redis Cluster accepts. Catalog
//! records share `{c}`; an account's sites share `{a:<account>}`. So Redis Cluster
//! works (failover, and the catalog spreads out), but the pipeline lives on one shard: for
//! Hookline, a cluster adds availability, not write throughput. `delete_account` is three steps
//! (pipeline data, then sites, then the account and its keys); if it is interrupted, calling it
//! again finishes it.
//!
//! ## Durability
//! Redis acknowledges a write once it is in memory. What survives depends on the server's
//! persistence settings, and at-least-once delivery needs the append-only file:
//!
//! | Redis setting | what a crash or restart can lose |
//! | --- | --- |
//! | `appendonly yes`, `appendfsync always` | nothing that was acknowledged (every write is fsynced before the reply) |
//! | `appendonly yes`, `appendfsync everysec` | up to about one second of acknowledged writes, on a crash of the Redis **host** (power, kernel); a crash of the Redis process alone loses nothing |
//! | `appendonly no` with RDB `save` points | everything since the last snapshot |
//! | no persistence (`appendonly no`, `save ""`) | everything, on any Redis restart |
//!
//! Each script is written to the AOF as one transaction, so a restart never sees half an
//! enqueue. Set `maxmemory-policy noeviction` too: an evicting Redis drops accepted events under
//! memory pressure (and `volatile-*` policies pick exactly the keys that carry the retention TTL).
//! [`RedisStore::connect`] reads these settings (`CONFIG GET`) and logs a `warn` when
//! acknowledged events could be lost (persistence off, RDB only, `appendfsync no`, or an eviction
//! policy under a `maxmemory` limit); where
//! `CONFIG` is not allowed (managed Redis) it says at `info` that it could not check.
//! When Redis is unreachable, operations fail within [`RedisConfig::operation_timeout`] —
//! never with a success for something that was not written — as `StoreError::Unavailable` when
//! the command cannot have run (a refused connection, an error reply such as `LOADING` or
//! `OOM`) and as `StoreError::Unconfirmed` when it may have (a timeout, a connection lost
//! mid-call). The server answers `503 store_unavailable` either way, saying which; the
//! connection manager reconnects by itself.
//!
//! ## Features
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | *(none)* | — | the store, over the `redis` crate with tokio, its connection manager and TLS (rustls, Mozilla roots) |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod catalog;
mod codec;
mod deliveries;
mod endpoints;
mod error;
mod group;
mod keys;
mod list;
mod scripts;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookline_core::store::{StoreError, WorkListener};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use error::RedisError;
/// The `redis` crate this store is built on, for [`RedisStore::from_connection_manager`].
pub use redis;

use crate::error::DbError;
use crate::keys::Keys;

/// How [`RedisStore::connect`] talks to Redis and names its keys.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The start of every key (default `hookline:`); must not contain `{` or `}`. A `prefix`
    /// query parameter of the URL overrides it.
    pub prefix: String,
    /// How long events, their deliveries and attempts are kept (default 30 days).
    pub retention: Duration,
    /// How long one connection attempt may take (default 2 s).
    pub connect_timeout: Duration,
    /// How long Redis may take to answer one command (default 3 s).
    pub response_timeout: Duration,
    /// How long one store operation may take in all, reconnecting included, before it fails
    /// with `StoreError::Unavailable` (default 5 s).
    pub operation_timeout: Duration,
    /// CA certificates (a PEM file) that a `rediss://` server's certificate must be issued by,
    /// trusted instead of the public roots built in (see [TLS](crate#tls)).
    pub ca_file: Option<PathBuf>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            prefix: "hookline:".to_owned(),
            retention: Duration::from_secs(30 * 24 * 3600),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

impl RedisConfig {
    /// Sets [`prefix`](Self::prefix).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`retention`](Self::retention).
    pub fn retention(mut self, d: Duration) -> Self {
        self.retention = d;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets [`response_timeout`](Self::response_timeout).
    pub fn response_timeout(mut self, d: Duration) -> Self {
        self.response_timeout = d;
        self
    }

    /// Sets [`operation_timeout`](Self::operation_timeout).
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// Sets [`ca_file`](Self::ca_file).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
}

/// Hookline's store on Redis. Cheap to clone (it holds a multiplexed, self-healing connection).
#[derive(Debug, Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    keys: Arc<Keys>,
    retention_ms: u64,
    operation_timeout: Duration,
    /// For the pub/sub connection of the work signal (absent with `from_connection_manager`).
    client: Option<redis::Client>,
    /// Concurrent enqueues and settles share script calls.
    groups: Arc<Groups>,
}

/// The group calls of one store (see `group.rs`).
#[derive(Debug)]
struct Groups {
    enqueues: group::Group<deliveries::EnqueueItem, deliveries::EnqueueAnswer>,
    settles: group::Group<deliveries::SettleItem, bool>,
}

impl Default for Groups {
    fn default() -> Self {
        Self {
            enqueues: group::Group::new(MAX_ENQUEUE_GROUP, MAX_GROUP_BYTES),
            settles: group::Group::new(MAX_SETTLE_GROUP, MAX_GROUP_BYTES),
        }
    }
}

/// Most events in one enqueue call.
const MAX_ENQUEUE_GROUP: usize = 64;
/// Most settles in one settle call.
const MAX_SETTLE_GROUP: usize = 128;
/// Most bytes of arguments (event JSON, attempt JSON) in one group call, beyond its first item.
const MAX_GROUP_BYTES: usize = 1 << 20;

impl RedisStore {
    /// Connects to the Redis at `url` (see the crate docs for the URL form), checks its
    /// persistence settings and returns the store. Fails if Redis cannot be reached now.
    pub async fn connect(url: &str, cfg: RedisConfig) -> Result<Self, RedisError> {
        let (url, prefix) = split_prefix(url)?;
        let cfg = match prefix {
            Some(p) => cfg.prefix(p),
            None => cfg,
        };
        let client = client(&url, cfg.ca_file.as_deref())?;
        let target = client.get_connection_info().addr().to_string();
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout))
            .set_response_timeout(Some(cfg.response_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let wait = cfg.operation_timeout.max(cfg.connect_timeout * 3);
        let conn = tokio::time::timeout(
            wait,
            ConnectionManager::new_with_config(client.clone(), manager_cfg),
        )
        .await
        .map_err(|_| RedisError::Timeout {
            target: target.clone(),
            after: wait,
        })?
        .map_err(|source| {
            let mut reason = error::connect_reason(&source);
            if reason.starts_with(error::CLOSED) && !url.starts_with("rediss:") {
                // What a server that speaks only TLS does to a plain-text client.
                reason.push_str("; does it expect TLS (`rediss://`)?");
            }
            RedisError::Connect {
                reason,
                target,
                source,
            }
        })?;
        let mut store = Self::from_connection_manager(conn, cfg)?;
        store.client = Some(client);
        store.check_persistence().await;
        Ok(store)
    }

    /// Uses an existing connection manager (its timeouts and reconnect policy are the caller's).
    pub fn from_connection_manager(
        conn: ConnectionManager,
        cfg: RedisConfig,
    ) -> Result<Self, RedisError> {
        if cfg.prefix.contains(['{', '}']) {
            return Err(RedisError::InvalidPrefix(cfg.prefix));
        }
        Ok(Self {
            conn,
            keys: Arc::new(Keys::new(&cfg.prefix)),
            retention_ms: u64::try_from(cfg.retention.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            operation_timeout: cfg.operation_timeout,
            client: None,
            groups: Default::default(),
        })
    }

    /// The channel enqueues publish on when they create deliveries (`Q .. 'work'` in
    /// `lua/enqueue.lua`).
    pub(crate) fn work_channel(&self) -> String {
        format!("{}work", self.keys.q())
    }

    /// The cross-process wake-up: a task subscribed to the work channel raises the listener's
    /// signal on every message. It holds a connection of its own, resubscribes by itself after
    /// connection losses, and stops when the listener is dropped. `None` without a client to
    /// open that connection (a store made with `from_connection_manager`).
    pub(crate) fn work_listener(&self) -> Option<WorkListener> {
        let client = self.client.clone()?;
        let channel = self.work_channel();
        Some(WorkListener::spawn(move |signal| async move {
            use futures_util::StreamExt as _;
            let mut backoff = Duration::from_millis(100);
            loop {
                let sub = async {
                    let mut ps = client.get_async_pubsub().await?;
                    ps.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(ps)
                };
                match sub.await {
                    Ok(ps) => {
                        backoff = Duration::from_millis(100);
                        let mut messages = ps.into_on_message();
                        while messages.next().await.is_some() {
                            signal.notify_one();
                        }
                        tracing::warn!("work notifications interrupted; resubscribing");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "subscribing to work notifications failed; retrying");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }))
    }

    /// Runs one store operation under the operation timeout and classifies its error.
    async fn op<T>(&self, f: impl Future<Output = Result<T, DbError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.operation_timeout, f).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(DbError::Timeout(self.operation_timeout).into()),
        }
    }

    /// Logs what the connected Redis's persistence settings mean for accepted events.
    async fn check_persistence(&self) {
        let settings = async {
            let mut conn = self.conn.clone();
            Ok::<_, redis::RedisError>((
                config_get(&mut conn, "appendonly").await?,
                config_get(&mut conn, "appendfsync").await?,
                config_get(&mut conn, "save").await?,
                config_get(&mut conn, "maxmemory").await?,
                config_get(&mut conn, "maxmemory-policy").await?,
            ))
        };
        let settings = tokio::time::timeout(self.operation_timeout, settings).await;
        match settings {
            Ok(Ok((aof, fsync, save, maxmemory, policy))) => {
                if maxmemory != "0" && policy != "noeviction" {
                    tracing::warn!(
                        maxmemory_policy = %policy,
                        "Redis may evict keys (maxmemory-policy `{policy}`): under memory pressure it would silently drop accepted events. Set `maxmemory-policy noeviction`"
                    );
                }
                match (aof.as_str(), fsync.as_str()) {
                    ("yes", "always") => tracing::info!(
                        "Redis persistence: AOF with appendfsync always; acknowledged events survive a crash"
                    ),
                    ("yes", "everysec") => tracing::info!(
                        "Redis persistence: AOF with appendfsync everysec; a crash of the Redis host can lose up to about one second of accepted events"
                    ),
                    ("yes", other) => tracing::warn!(
                        appendfsync = other,
                        "Redis persistence: AOF with appendfsync `{other}` leaves flushing to the OS; a crash of the Redis host can lose accepted events. Set `appendfsync everysec` or `always`"
                    ),
                    _ if save.trim().is_empty() => tracing::warn!(
                        "Redis persistence is OFF (appendonly no, no RDB save points): a Redis restart loses every accepted event and scheduled retry. Set `appendonly yes` with `appendfsync everysec` or `always`"
                    ),
                    _ => tracing::warn!(
                        save = %save,
                        "Redis runs without AOF (RDB snapshots only): a Redis crash or restart loses events accepted since the last snapshot. Set `appendonly yes` with `appendfsync everysec` or `always`"
                    ),
                }
            }
            Ok(Err(e)) => tracing::info!(
                error = %e,
                "could not read Redis persistence settings (CONFIG GET refused, e.g. managed Redis); at-least-once delivery needs AOF (`appendonly yes`, `appendfsync everysec` or `always`)"
            ),
            Err(_) => tracing::info!(
                "could not read Redis persistence settings in time; at-least-once delivery needs AOF (`appendonly yes`, `appendfsync everysec` or `always`)"
            ),
        }
    }
}

/// The client for `url`: TLS for `rediss://`, trusting the certificates in `ca_file` if given.
fn client(url: &str, ca_file: Option<&Path>) -> Result<redis::Client, RedisError> {
    let invalid = |e: redis::RedisError| RedisError::InvalidUrl(Box::new(e));
    let parsed = url::Url::parse(url).map_err(|e| RedisError::InvalidUrl(Box::new(e)))?;
    let tls = parsed.scheme() == "rediss";
    if tls && parsed.fragment() == Some("insecure") {
        return Err(RedisError::InsecureTls);
    }
    if tls && rustls::crypto::CryptoProvider::get_default().is_none() {
        // What rustls itself does when one provider is compiled in; with several (an embedder's
        // other dependencies), it would panic instead of choosing.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    match ca_file {
        None => redis::Client::open(url).map_err(invalid),
        Some(_) if !tls => Err(RedisError::CaWithoutTls),
        Some(path) => {
            let root_cert = read_ca_file(path)?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            redis::Client::build_with_tls(url, certs).map_err(invalid)
        }
    }
}

/// The contents of `path`, which must hold at least one PEM certificate.
fn read_ca_file(path: &Path) -> Result<Vec<u8>, RedisError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let fail = |reason: String| RedisError::CaFile {
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
    Ok(pem)
}

/// One setting of `CONFIG GET`.
async fn config_get(conn: &mut ConnectionManager, name: &str) -> redis::RedisResult<String> {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await?;
    Ok(pair.into_iter().nth(1).unwrap_or_default())
}

/// Splits a `prefix` query parameter off `url`; returns the URL for the redis crate.
fn split_prefix(url: &str) -> Result<(String, Option<String>), RedisError> {
    let mut parsed = url::Url::parse(url).map_err(|e| RedisError::InvalidUrl(Box::new(e)))?;
    let mut prefix = None;
    let rest: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "prefix" {
                prefix = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    Ok((parsed.to_string(), prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_comes_off_the_url() {
        let (url, p) = split_prefix("redis://:pw@127.0.0.1:6379/2?prefix=hl_t_1:&protocol=resp3")
            .expect("valid");
        assert_eq!(p.as_deref(), Some("hl_t_1:"));
        assert_eq!(url, "redis://:pw@127.0.0.1:6379/2?protocol=resp3");
        let (url, p) = split_prefix("redis://127.0.0.1/").expect("valid");
        assert_eq!((url.as_str(), p), ("redis://127.0.0.1/", None));
        assert!(split_prefix("not a url").is_err());
    }
}
