//! [`CachedStore`]: a [`Store`] decorator that keeps, for a short time, what every ingest and
//! every authenticated request reads: API keys, accounts, event types and the endpoints
//! subscribed to an event.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn hookline_core::store::Store>) {
//! use std::sync::Arc;
//! use hookline_core::cache::CachedStore;
//! use hookline_core::store::Store;
//!
//! // Hand this one store to everything in the process (API and dispatcher alike).
//! let store: Arc<dyn Store> = Arc::new(CachedStore::new(store));
//! # }
//! ```
//!
//! # What is cached, and for how long
//!
//! | read | kept for ([`CacheConfig`] default) | what is kept |
//! | --- | --- | --- |
//! | [`api_key`](CatalogStore::api_key) | 10 s | keys that exist |
//! | [`account`](CatalogStore::account) | 2 s | accounts that exist |
//! | [`event_type`](CatalogStore::event_type) | 2 s | catalog entries that exist |
//! | [`subscribers`](EndpointStore::subscribers) | 1 s | every answer, empty ones too |
//!
//! Every other method goes straight to the inner store. An answer is kept for its time to live
//! counted from when its read *started*, so it never reflects the store as it was longer ago than
//! that. Each kind holds at most [`CacheConfig::capacity`] entries: a full cache first drops its
//! expired entries and starts over if most of them are still fresh.
//!
//! # Changes made through this store
//!
//! A change made through the `CachedStore` is seen by every read through it that starts after
//! the change has returned, whether it returned `Ok` or an error. Each write that can change a
//! cached answer forgets that answer:
//!
//! * `create_account`, `update_account`: that account; `delete_account`: that account, every API
//!   key (the account's keys stop working at once) and every subscriber list;
//! * `create_event_type`, `update_event_type`, `delete_event_type`: that catalog entry;
//! * `put_api_key`, `touch_api_key`: that key; `delete_api_key`: the key it deleted (every key
//!   when the outcome is unknown) — a revoked key stops working in this process at once, and in
//!   others when their cached copy expires (10 s by default);
//! * `create_endpoint`, `update_endpoint`, `remove_endpoint`, `disable_endpoint`,
//!   `record_healthy`, and a `record_failing` that starts an endpoint's failure clock: every
//!   subscriber list (they carry the endpoints' fields, the failure clock included);
//! * an `enqueue`/`enqueue_with`/`enqueue_batch` refused with [`StoreError::NotFound`] (a target is gone): every
//!   subscriber list, so the caller's next [`subscribers`](EndpointStore::subscribers) reads the
//!   store.
//!
//! Each kind of entry also has a generation, advanced by every one of these: a value read from
//! the inner store before a change is never kept after it, even when the read returns later
//! than the change.
//!
//! Sites are not cached and no cached answer depends on them (an endpoint's site filter is part
//! of the endpoint).
//!
//! # Changes made by another process
//!
//! Another process sharing the store (or anything in this process that writes to the inner store
//! without going through this `CachedStore`, such as a dispatcher handed the undecorated store)
//! invalidates nothing here. A change it makes is seen here by every read that starts at least
//! the time to live after the change was committed; before that, reads here may still return
//! what was there before:
//!
//! * **API keys (10 s)**: a key created elsewhere works here at once (missing keys are never
//!   cached). After another process deletes an account, its keys can still authenticate here for
//!   up to 10 s.
//! * **Accounts (2 s)**: an account created elsewhere is found at once; one renamed or deleted
//!   elsewhere can still be returned as it was for up to 2 s.
//! * **Event types (2 s)**: an entry created elsewhere is found at once; one archived, changed
//!   or deleted elsewhere can still be returned as it was for up to 2 s, so events of a type
//!   archived elsewhere can still be accepted here for that long.
//! * **Subscribers (1 s)**: for up to a second after another process creates, enables or widens
//!   an endpoint, this process can still accept events without a delivery to it. After another
//!   process disables an endpoint, this process can still create deliveries to it (they stay
//!   pending while it is disabled, like those created before); after another process removes
//!   one, an enqueue to the stale list is refused with [`StoreError::NotFound`] by stores that
//!   check their targets, which clears the subscriber lists here, so asking again gets the
//!   current endpoints. Endpoints disabled automatically by another process's dispatcher, and
//!   failure clocks started or stopped there, are likewise seen within the second.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::id::{AccountId, DeliveryId, EndpointId, EventId, EventTypeName, KeyId, SiteId};
use crate::model::{
    Account, ApiKey, Attempt, AuditEntry, Delivery, DeliveryFilter, Endpoint, Event, EventFilter,
    EventType, Page, PageRequest, Site, Trigger,
};
use crate::store::{
    AuditStore, CatalogStore, Claimed, EndpointStore, HistoryStore, LeaseToken, Next, QueueStore,
    Receipt, Store, StoreError,
};
use crate::time::Timestamp;

/// How long [`CachedStore`] keeps each kind of answer, and how many of each it holds.
///
/// A time to live of zero turns that cache off. Start from [`Default`] and change fields:
///
/// ```
/// use std::time::Duration;
/// use hookline_core::cache::CacheConfig;
///
/// let mut config = CacheConfig::default();
/// config.subscribers = Duration::from_millis(250);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// API keys by hash (default 10 s).
    pub api_keys: Duration,
    /// Accounts by id (default 2 s).
    pub accounts: Duration,
    /// Event types by name (default 2 s).
    pub event_types: Duration,
    /// Subscriber lists by account, site and event type (default 1 s).
    pub subscribers: Duration,
    /// The most entries each kind holds (default 10 000).
    pub capacity: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            api_keys: Duration::from_secs(10),
            accounts: Duration::from_secs(2),
            event_types: Duration::from_secs(2),
            subscribers: Duration::from_secs(1),
            capacity: 10_000,
        }
    }
}

/// What the subscribers of an event depend on.
type SubscriberKey = (AccountId, Option<SiteId>, EventTypeName);

/// A [`Store`] that answers the reads every request makes from short-lived caches and passes
/// everything else to the store it wraps. See the [module docs](self) for what is cached and how
/// stale an answer can be.
///
/// `S` is the wrapped store: a concrete store type, or `dyn Store` (the default) to wrap an
/// `Arc<dyn Store>`.
pub struct CachedStore<S: ?Sized = dyn Store> {
    inner: Arc<S>,
    config: CacheConfig,
    keys: TtlMap<String, ApiKey>,
    accounts: TtlMap<AccountId, Account>,
    event_types: TtlMap<EventTypeName, EventType>,
    subscribers: TtlMap<SubscriberKey, Arc<[Endpoint]>>,
}

impl<S: ?Sized> fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: ?Sized> CachedStore<S> {
    /// Wraps `inner` with the [default](CacheConfig::default) times to live.
    pub fn new(inner: Arc<S>) -> Self {
        Self::with_config(inner, CacheConfig::default())
    }

    /// Wraps `inner` with the given times to live and capacity.
    pub fn with_config(inner: Arc<S>, config: CacheConfig) -> Self {
        let cap = config.capacity;
        Self {
            inner,
            keys: TtlMap::new(config.api_keys, cap),
            accounts: TtlMap::new(config.accounts, cap),
            event_types: TtlMap::new(config.event_types, cap),
            subscribers: TtlMap::new(config.subscribers, cap),
            config,
        }
    }

    /// The wrapped store. Changes made through it bypass this cache (see the module docs).
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The times to live and capacity in use.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Forgets every cached answer, for a caller that learns of a change made elsewhere.
    pub fn clear(&self) {
        self.keys.clear();
        self.accounts.clear();
        self.event_types.clear();
        self.subscribers.clear();
    }
}

/// Reads `key` through `map`: a fresh entry, or `load`'s answer (kept when `keep` says so).
async fn read_through<K, Q, V, T, F>(
    map: &TtlMap<K, V>,
    key: &Q,
    load: F,
    keep: impl FnOnce(&T) -> Option<V>,
    from_cache: impl FnOnce(V) -> T,
) -> Result<T, StoreError>
where
    K: Eq + Hash + Borrow<Q>,
    Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    V: Clone,
    F: Future<Output = Result<T, StoreError>>,
{
    let started = Instant::now();
    let generation = match map.lookup(key, started) {
        Lookup::Hit(v) => return Ok(from_cache(v)),
        Lookup::Miss(generation) => generation,
    };
    let found = load.await?;
    if let Some(v) = keep(&found) {
        map.insert(generation, key.to_owned(), v, started);
    }
    Ok(found)
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> CatalogStore for CachedStore<S> {
    async fn create_account(&self, account: &Account) -> Result<(), StoreError> {
        let r = self.inner.create_account(account).await;
        self.accounts.invalidate(&account.id);
        r
    }

    async fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        let r = self.inner.update_account(account).await;
        self.accounts.invalidate(&account.id);
        r
    }

    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        read_through(
            &self.accounts,
            id,
            self.inner.account(id),
            Option::clone,
            Some,
        )
        .await
    }

    async fn list_accounts(&self, page: &PageRequest) -> Result<Page<Account>, StoreError> {
        self.inner.list_accounts(page).await
    }

    async fn delete_account(&self, id: &AccountId) -> Result<bool, StoreError> {
        let r = self.inner.delete_account(id).await;
        self.accounts.invalidate(id);
        // Its keys and endpoints went with it.
        self.keys.clear();
        self.subscribers.clear();
        r
    }

    async fn create_site(&self, site: &Site) -> Result<(), StoreError> {
        self.inner.create_site(site).await
    }

    async fn update_site(&self, site: &Site) -> Result<(), StoreError> {
        self.inner.update_site(site).await
    }

    async fn site(&self, account: &AccountId, id: &SiteId) -> Result<Option<Site>, StoreError> {
        self.inner.site(account, id).await
    }

    async fn list_sites(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Site>, StoreError> {
        self.inner.list_sites(account, page).await
    }

    async fn delete_site(&self, account: &AccountId, id: &SiteId) -> Result<bool, StoreError> {
        self.inner.delete_site(account, id).await
    }

    async fn create_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        let r = self.inner.create_event_type(et).await;
        self.event_types.invalidate(&et.name);
        r
    }

    async fn update_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        let r = self.inner.update_event_type(et).await;
        self.event_types.invalidate(&et.name);
        r
    }

    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        read_through(
            &self.event_types,
            name,
            self.inner.event_type(name),
            Option::clone,
            Some,
        )
        .await
    }

    async fn list_event_types(&self, page: &PageRequest) -> Result<Page<EventType>, StoreError> {
        self.inner.list_event_types(page).await
    }

    async fn delete_event_type(&self, name: &EventTypeName) -> Result<bool, StoreError> {
        let r = self.inner.delete_event_type(name).await;
        self.event_types.invalidate(name);
        r
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let r = self.inner.put_api_key(key).await;
        self.keys.invalidate(key.hash.as_str());
        r
    }

    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        read_through(
            &self.keys,
            hash,
            self.inner.api_key(hash),
            Option::clone,
            Some,
        )
        .await
    }

    async fn has_admin_key(&self) -> Result<bool, StoreError> {
        self.inner.has_admin_key().await
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.inner.setting(name).await
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.inner.put_setting(name, value).await
    }

    async fn list_api_keys(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        self.inner.list_api_keys(account, page).await
    }

    async fn delete_api_key(
        &self,
        account: Option<&AccountId>,
        id: &KeyId,
    ) -> Result<Option<ApiKey>, StoreError> {
        let r = self.inner.delete_api_key(account, id).await;
        match &r {
            Ok(Some(key)) => self.keys.invalidate(key.hash.as_str()),
            // Unknown outcome: whatever it was, this process forgets its keys.
            Err(_) => self.keys.clear(),
            Ok(None) => {}
        }
        r
    }

    async fn touch_api_key(&self, hash: &str, at: Timestamp) -> Result<(), StoreError> {
        let r = self.inner.touch_api_key(hash, at).await;
        // Read again (with its new last use) next time; keys are touched about once a minute.
        self.keys.invalidate(hash);
        r
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> AuditStore for CachedStore<S> {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.inner.record_audit(entry).await
    }

    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.inner.list_audit(account, page).await
    }

    async fn purge_audit(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        self.inner.purge_audit(before, max).await
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> EndpointStore for CachedStore<S> {
    async fn create_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        let r = self.inner.create_endpoint(ep).await;
        self.subscribers.clear();
        r
    }

    async fn update_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        let r = self.inner.update_endpoint(ep).await;
        self.subscribers.clear();
        r
    }

    async fn endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        self.inner.endpoint(account, id).await
    }

    async fn list_endpoints(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Endpoint>, StoreError> {
        self.inner.list_endpoints(account, page).await
    }

    async fn remove_endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<bool, StoreError> {
        let r = self.inner.remove_endpoint(account, id).await;
        self.subscribers.clear();
        r
    }

    async fn subscribers(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        kind: &EventTypeName,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let key: SubscriberKey = (account.clone(), site.cloned(), kind.clone());
        read_through(
            &self.subscribers,
            &key,
            self.inner.subscribers(account, site, kind),
            |found: &Vec<Endpoint>| Some(Arc::from(found.as_slice())),
            |kept| kept.to_vec(),
        )
        .await
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> QueueStore for CachedStore<S> {
    async fn enqueue_with(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Receipt, StoreError> {
        let r = self.inner.enqueue_with(event, targets, now, trigger).await;
        self.after_enqueue(&r);
        r
    }

    async fn enqueue(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
    ) -> Result<Receipt, StoreError> {
        let r = self.inner.enqueue(event, targets, now).await;
        self.after_enqueue(&r);
        r
    }

    async fn enqueue_batch(
        &self,
        items: &[(Event, Vec<EndpointId>)],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Vec<Receipt>, StoreError> {
        let r = self.inner.enqueue_batch(items, now, trigger).await;
        if let Err(StoreError::NotFound(_)) = &r {
            self.subscribers.clear();
        }
        r
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.inner.claim_due(now, max, lease).await
    }

    async fn claim_due_except(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
        skip: &[EndpointId],
    ) -> Result<Vec<Claimed>, StoreError> {
        self.inner.claim_due_except(now, max, lease, skip).await
    }

    async fn defer(&self, lease: &LeaseToken, until: Timestamp) -> Result<(), StoreError> {
        self.inner.defer(lease, until).await
    }

    async fn hold_endpoint(
        &self,
        endpoint: &EndpointId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.hold_endpoint(endpoint, until, now).await
    }

    async fn settle(
        &self,
        lease: &LeaseToken,
        attempt: &Attempt,
        next: Next,
    ) -> Result<(), StoreError> {
        self.inner.settle(lease, attempt, next).await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_due().await
    }

    async fn backlog(&self) -> Result<crate::store::Backlog, StoreError> {
        self.inner.backlog().await
    }

    async fn add_hourly(&self, stats: &[crate::model::HourlyStats]) -> Result<(), StoreError> {
        self.inner.add_hourly(stats).await
    }

    fn listen_for_work(&self) -> Option<crate::store::WorkListener> {
        self.inner.listen_for_work()
    }

    async fn purge(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        self.inner.purge(before, max).await
    }

    async fn record_failing(
        &self,
        id: &EndpointId,
        at: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let r = self.inner.record_failing(id, at).await;
        // The clock started now (it is kept as the earliest failure), or the outcome is unknown:
        // the endpoints in the subscriber lists may carry an old `failing_since`. A clock that
        // was running already changed nothing.
        match &r {
            Ok(Some(since)) if *since < at => {}
            Ok(None) => {}
            _ => self.subscribers.clear(),
        }
        r
    }

    async fn record_healthy(&self, id: &EndpointId) -> Result<(), StoreError> {
        let r = self.inner.record_healthy(id).await;
        self.subscribers.clear();
        r
    }

    async fn disable_endpoint(
        &self,
        id: &EndpointId,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let r = self.inner.disable_endpoint(id, reason, now).await;
        self.subscribers.clear();
        r
    }

    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        self.inner.retry_delivery(account, id, now).await
    }

    async fn retry_deliveries(
        &self,
        account: &AccountId,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.inner.retry_deliveries(account, ids, now).await
    }

    async fn recover_failed(
        &self,
        account: &AccountId,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.inner
            .recover_failed(account, endpoint, since, now)
            .await
    }

    async fn replace_event_data(
        &self,
        account: &AccountId,
        id: &EventId,
        data: &serde_json::value::RawValue,
    ) -> Result<bool, StoreError> {
        self.inner.replace_event_data(account, id, data).await
    }
}

impl<S: ?Sized> CachedStore<S> {
    /// A target the caller took from a subscriber list is gone: let the next list be read anew.
    fn after_enqueue(&self, r: &Result<Receipt, StoreError>) {
        if let Err(StoreError::NotFound(_)) = r {
            self.subscribers.clear();
        }
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> HistoryStore for CachedStore<S> {
    async fn event(&self, account: &AccountId, id: &EventId) -> Result<Option<Event>, StoreError> {
        self.inner.event(account, id).await
    }

    async fn event_by_idempotency_key(
        &self,
        account: &AccountId,
        key: &str,
    ) -> Result<Option<Event>, StoreError> {
        self.inner.event_by_idempotency_key(account, key).await
    }

    async fn list_events(
        &self,
        account: &AccountId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<Event>, StoreError> {
        self.inner.list_events(account, filter, page).await
    }

    async fn delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        self.inner.delivery(account, id).await
    }

    async fn list_deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        self.inner.list_deliveries(account, filter, page).await
    }

    async fn attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
    ) -> Result<Vec<Attempt>, StoreError> {
        self.inner.attempts(account, delivery).await
    }

    async fn list_attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
        filter: &crate::model::AttemptFilter,
        page: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        self.inner
            .list_attempts(account, delivery, filter, page)
            .await
    }

    async fn hourly(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
    ) -> Result<Vec<crate::model::HourlyStats>, StoreError> {
        self.inner.hourly(endpoint, since).await
    }
}

/// The generation of a [`TtlMap`] when a read missed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Generation(u64);

/// What a [`TtlMap`] lookup found.
#[derive(Debug, PartialEq, Eq)]
enum Lookup<V> {
    /// A fresh entry.
    Hit(V),
    /// Nothing fresh: read the store, then [`insert`](TtlMap::insert) with this generation.
    Miss(Generation),
}

/// A bounded map whose entries expire, with a generation that every invalidation advances.
/// Time is passed in, so expiry is exact under test.
struct TtlMap<K, V> {
    ttl: Duration,
    capacity: usize,
    state: Mutex<TtlState<K, V>>,
}

struct TtlState<K, V> {
    /// Key → (when the read that produced the value started, the value).
    entries: HashMap<K, (Instant, V)>,
    generation: u64,
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            state: Mutex::new(TtlState {
                entries: HashMap::new(),
                generation: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TtlState<K, V>> {
        // The state is consistent after every statement: a panic elsewhere cannot break it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry for `key` if it is fresh at `now`; otherwise the generation to insert with.
    fn lookup<Q>(&self, key: &Q, now: Instant) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut state = self.lock();
        match state.entries.get(key) {
            Some((at, v)) if now.saturating_duration_since(*at) < self.ttl => {
                Lookup::Hit(v.clone())
            }
            Some(_) => {
                state.entries.remove(key);
                Lookup::Miss(Generation(state.generation))
            }
            None => Lookup::Miss(Generation(state.generation)),
        }
    }

    /// Keeps `value` for `key`, read by a read that started at `read_at`, unless the map was
    /// invalidated since `generation` was taken (the value may predate that change). Returns
    /// whether it was kept.
    fn insert(&self, generation: Generation, key: K, value: V, read_at: Instant) -> bool {
        if self.ttl.is_zero() || self.capacity == 0 {
            return false;
        }
        let mut state = self.lock();
        if state.generation != generation.0 {
            return false;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&key) {
            let ttl = self.ttl;
            state
                .entries
                .retain(|_, (at, _)| read_at.saturating_duration_since(*at) < ttl);
            // Mostly fresh: start over, so the next sweep is a quarter of the capacity away.
            if state.entries.len() >= self.capacity - self.capacity / 4 {
                state.entries.clear();
            }
        }
        state.entries.insert(key, (read_at, value));
        true
    }

    /// Forgets `key`, and makes every read that missed before now keep nothing.
    fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.remove(key);
    }

    /// Forgets everything, and makes every read that missed before now keep nothing.
    fn clear(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(2);

    fn map() -> TtlMap<String, u32> {
        TtlMap::new(TTL, 100)
    }

    fn miss(m: &TtlMap<String, u32>, k: &str, now: Instant) -> Generation {
        match m.lookup(k, now) {
            Lookup::Miss(g) => g,
            Lookup::Hit(v) => panic!("expected a miss for {k}, got {v}"),
        }
    }

    #[test]
    fn entries_are_fresh_until_the_ttl_from_the_read_start() {
        let m = map();
        let t0 = Instant::now();
        let g = miss(&m, "a", t0);
        assert!(m.insert(g, "a".into(), 1, t0));
        assert_eq!(m.lookup("a", t0), Lookup::Hit(1));
        let just_before = t0 + TTL - Duration::from_millis(1);
        assert_eq!(m.lookup("a", just_before), Lookup::Hit(1));
        assert!(
            matches!(m.lookup("a", t0 + TTL), Lookup::Miss(_)),
            "expired"
        );
        assert_eq!(m.len(), 0, "an expired entry is dropped when found");
    }

    #[test]
    fn a_value_read_before_an_invalidation_is_not_kept_after_it() {
        let m = map();
        let t0 = Instant::now();
        let g = miss(&m, "a", t0);
        // A local write lands while the read is in flight.
        m.invalidate("a");
        assert!(
            !m.insert(g, "a".into(), 1, t0),
            "the read predates the write"
        );
        assert!(matches!(m.lookup("a", t0), Lookup::Miss(_)));

        // Invalidating another key also makes the in-flight read keep nothing (one generation
        // per map); clear does the same.
        let g = miss(&m, "a", t0);
        m.invalidate("b");
        assert!(!m.insert(g, "a".into(), 1, t0));
        let g = miss(&m, "a", t0);
        m.clear();
        assert!(!m.insert(g, "a".into(), 1, t0));

        // A read that starts after the write is kept.
        let g = miss(&m, "a", t0);
        assert!(m.insert(g, "a".into(), 2, t0));
        assert_eq!(m.lookup("a", t0), Lookup::Hit(2));
    }

    #[test]
    fn invalidate_forgets_one_key_and_clear_forgets_all() {
        let m = map();
        let t0 = Instant::now();
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            let g = miss(&m, k, t0);
            assert!(m.insert(g, k.into(), v, t0));
        }
        m.invalidate("b");
        assert_eq!(m.lookup("a", t0), Lookup::Hit(1));
        assert!(matches!(m.lookup("b", t0), Lookup::Miss(_)));
        assert_eq!(m.lookup("c", t0), Lookup::Hit(3));
        m.clear();
        assert_eq!(m.len(), 0);
        assert!(matches!(m.lookup("a", t0), Lookup::Miss(_)));
    }

    #[test]
    fn a_full_map_drops_expired_entries_first_then_starts_over() {
        let m: TtlMap<String, u32> = TtlMap::new(TTL, 8);
        let t0 = Instant::now();
        let later = t0 + TTL;
        for i in 0..6 {
            let g = miss(&m, &format!("old{i}"), t0);
            assert!(m.insert(g, format!("old{i}"), i, t0));
        }
        for i in 0..2 {
            let g = miss(&m, &format!("new{i}"), later);
            assert!(m.insert(g, format!("new{i}"), i, later));
        }
        assert_eq!(m.len(), 8);
        // Full: the six expired entries go, the fresh ones stay.
        let g = miss(&m, "x", later);
        assert!(m.insert(g, "x".into(), 9, later));
        assert_eq!(m.len(), 3);
        assert_eq!(m.lookup("new0", later), Lookup::Hit(0));
        assert_eq!(m.lookup("x", later), Lookup::Hit(9));

        // Full of fresh entries: it starts over with the new one.
        for i in 0..5 {
            let g = miss(&m, &format!("y{i}"), later);
            assert!(m.insert(g, format!("y{i}"), i, later));
        }
        assert_eq!(m.len(), 8);
        let g = miss(&m, "z", later);
        assert!(m.insert(g, "z".into(), 7, later));
        assert_eq!(m.len(), 1);
        assert_eq!(m.lookup("z", later), Lookup::Hit(7));

        // Replacing a key in a full map evicts nothing.
        let full: TtlMap<String, u32> = TtlMap::new(TTL, 1);
        let g = miss(&full, "k", t0);
        assert!(full.insert(g, "k".into(), 1, t0));
        let g = miss(&full, "other", t0);
        assert!(full.insert(g, "k".into(), 2, t0));
        assert_eq!(full.lookup("k", t0), Lookup::Hit(2));
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let m: TtlMap<String, u32> = TtlMap::new(Duration::ZERO, 100);
        let t0 = Instant::now();
        let g = miss(&m, "a", t0);
        assert!(!m.insert(g, "a".into(), 1, t0));
        assert!(matches!(m.lookup("a", t0), Lookup::Miss(_)));
    }

    #[test]
    fn default_ttls_match_the_documented_ones() {
        let c = CacheConfig::default();
        assert_eq!(c.api_keys, Duration::from_secs(10));
        assert_eq!(c.accounts, Duration::from_secs(2));
        assert_eq!(c.event_types, Duration::from_secs(2));
        assert_eq!(c.subscribers, Duration::from_secs(1));
        assert_eq!(c.capacity, 10_000);
    }
}
