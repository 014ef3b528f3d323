//! [`MemoryStore`]: the whole store contract in one process's memory, for tests.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::backend::LimitedRoom;
use crate::id::{AccountId, DeliveryId, EndpointId, EventId, EventTypeName, KeyId, SiteId};
use crate::model::{
    Account, ApiKey, Attempt, AuditEntry, Cursor, Delivery, DeliveryFilter, DeliveryStatus,
    Endpoint, Event, EventFilter, EventType, Page, PageRequest, Role, Site, Trigger,
};
use crate::store::{
    AuditStore, CatalogStore, Claimed, EndpointStore, HistoryStore, LeaseToken, Next, QueueStore,
    Receipt, StoreError,
};
use crate::time::Timestamp;

/// A failure [`MemoryStore::set_fault`] makes every store call return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// [`StoreError::Unavailable`]: the backend is down for now.
    Unavailable,
    /// [`StoreError::Backend`]: a failure that retrying does not cure.
    Backend,
}

/// Why a faulty [`MemoryStore`] failed.
#[derive(Debug, thiserror::Error)]
#[error("injected {0:?} fault")]
struct Injected(Fault);

/// A store that keeps everything in memory, behind one lock: every operation is atomic, so it
/// keeps the whole contract of [`store`](crate::store) (leases, idempotency, per-endpoint limits,
/// ordering per `queueId`) and passes the conformance suite. Nothing survives the process and no
/// other process shares it, so it offers no work signal.
///
/// Meant for tests of code above the store (the dispatcher, the service, an embedder's own
/// handlers): no database, no sleeping, and time only from the `now` arguments. Failures can be
/// injected with [`set_fault`](Self::set_fault).
///
/// ```
/// # use std::sync::Arc;
/// use hookline_core::store::Store;
/// use hookline_core::testkit::MemoryStore;
///
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// ```
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    fault: Mutex<Option<Fault>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("MemoryStore")
            .field("endpoints", &s.endpoints.len())
            .field("events", &s.events.len())
            .field("deliveries", &s.deliveries.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    accounts: HashMap<AccountId, Account>,
    sites: HashMap<(AccountId, SiteId), Site>,
    event_types: HashMap<EventTypeName, EventType>,
    api_keys: HashMap<String, ApiKey>,
    audit: HashMap<crate::id::AuditId, AuditEntry>,
    endpoints: HashMap<EndpointId, EndpointRow>,
    events: HashMap<EventId, EventRow>,
    idempotency: HashMap<(AccountId, String), EventId>,
    deliveries: HashMap<DeliveryId, DeliveryRow>,
    attempts: HashMap<DeliveryId, Vec<Attempt>>,
    settings: HashMap<String, String>,
    /// Insertion order of deliveries (orders the queues of ordered endpoints).
    seq: u64,
    /// Makes lease ids unique.
    leases: u64,
    /// Hourly counters per endpoint and hour.
    hourly: std::collections::BTreeMap<(EndpointId, Timestamp), crate::model::HourlyStats>,
}

struct EndpointRow {
    endpoint: Endpoint,
    /// With a rate limit: the next free send time, in µs.
    pace_next_us: Option<i64>,
}

struct EventRow {
    event: Event,
    /// Its deliveries, in creation order.
    deliveries: Vec<DeliveryId>,
}

struct DeliveryRow {
    delivery: Delivery,
    seq: u64,
    lease: Option<String>,
    /// What starts the next attempt.
    trigger: Trigger,
    /// For an ordered endpoint: the event's `queueId`.
    ordering_key: Option<String>,
}

impl DeliveryRow {
    fn pending(&self) -> bool {
        self.delivery.status == DeliveryStatus::Pending
    }

    /// Whether `lease` is the current lease of this pending delivery.
    fn leased_to(&self, lease: &LeaseToken) -> bool {
        self.pending() && self.lease.as_deref() == Some(lease.lease_id.as_str())
    }

    /// Pending, due at `at` and not leased: what a manual retry makes it.
    fn requeue_manual(&mut self, at: Timestamp) {
        self.delivery.status = DeliveryStatus::Pending;
        self.delivery.next_attempt_at = Some(at);
        self.lease = None;
        self.trigger = Trigger::Manual;
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail with `fault` from now on (`None`: work again). Nothing is changed
    /// by a call that fails this way.
    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// The state, unless a fault is set.
    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        match *self.fault.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(f @ Fault::Unavailable) => Err(StoreError::Unavailable(Box::new(Injected(f)))),
            Some(f @ Fault::Backend) => Err(StoreError::Backend(Box::new(Injected(f)))),
            None => Ok(self.state.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }
}

/// A newest-first page of `rows` by `key` (creation time, id), after the request's cursor.
fn page<T: Clone>(
    rows: impl Iterator<Item = T>,
    page: &PageRequest,
    key: impl Fn(&T) -> (Timestamp, String),
) -> Page<T> {
    let mut rows: Vec<(Timestamp, String, T)> = rows
        .map(|r| {
            let (t, id) = key(&r);
            (t, id, r)
        })
        .filter(|(t, id, _)| {
            page.after
                .as_ref()
                .is_none_or(|c| (*t, id.as_str()) < (c.created_at, c.id.as_str()))
        })
        .collect();
    rows.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    rows.truncate(page.limit.saturating_add(1));
    let items = rows.into_iter().map(|(_, _, r)| r).collect();
    Page::from_rows(items, page.limit, |r| {
        let (created_at, id) = key(r);
        Cursor { created_at, id }
    })
}

impl State {
    /// Whether `target` is an endpoint of `account` (disabled ones included).
    fn known_target(&self, account: &AccountId, target: &EndpointId) -> bool {
        self.endpoints
            .get(target)
            .is_some_and(|e| e.endpoint.account == *account)
    }

    /// [`QueueStore::enqueue_with`] on the locked state.
    fn enqueue(
        &mut self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Receipt, StoreError> {
        let s = self;
        if s.events.contains_key(&event.id) {
            return Ok(s.receipt(&event.id));
        }
        let key = event
            .idempotency_key
            .as_ref()
            .map(|k| (event.account.clone(), k.clone()));
        if let Some(original) = key.as_ref().and_then(|k| s.idempotency.get(k)) {
            let original = original.clone();
            return Ok(s.receipt(&original));
        }
        // Every target must be an endpoint of the event's account (disabled ones included).
        if !targets.iter().all(|t| s.known_target(&event.account, t)) {
            return Err(StoreError::NotFound("endpoint"));
        }
        let mut deliveries = Vec::with_capacity(targets.len());
        for target in targets {
            let ordering_key = s
                .endpoints
                .get(target)
                .filter(|e| e.endpoint.ordered)
                .and_then(|_| event.queue_id.clone());
            let id = DeliveryId::generate();
            s.seq += 1;
            let row = DeliveryRow {
                delivery: Delivery {
                    id: id.clone(),
                    account: event.account.clone(),
                    event_id: event.id.clone(),
                    endpoint_id: target.clone(),
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    next_attempt_at: Some(now),
                    last_attempt_at: None,
                    created_at: now,
                },
                seq: s.seq,
                lease: None,
                trigger,
                ordering_key,
            };
            s.deliveries.insert(id.clone(), row);
            deliveries.push(id);
        }
        if let Some(k) = key {
            s.idempotency.insert(k, event.id.clone());
        }
        s.events.insert(
            event.id.clone(),
            EventRow {
                event: event.clone(),
                deliveries: deliveries.clone(),
            },
        );
        Ok(Receipt {
            event_id: event.id.clone(),
            deliveries,
            duplicate: false,
        })
    }

    /// The enabled endpoint a delivery of `account` to `id` goes to, if any.
    fn live_endpoint(&self, account: &AccountId, id: &EndpointId) -> Option<&EndpointRow> {
        self.endpoints
            .get(id)
            .filter(|e| e.endpoint.enabled && e.endpoint.account == *account)
    }

    fn receipt(&self, event: &EventId) -> Receipt {
        Receipt {
            event_id: event.clone(),
            deliveries: self
                .events
                .get(event)
                .map(|e| e.deliveries.clone())
                .unwrap_or_default(),
            duplicate: true,
        }
    }

    fn remove_events(&mut self, ids: &[EventId]) {
        for id in ids {
            let Some(row) = self.events.remove(id) else {
                continue;
            };
            if let Some(key) = &row.event.idempotency_key {
                self.idempotency
                    .remove(&(row.event.account.clone(), key.clone()));
            }
            for d in &row.deliveries {
                self.deliveries.remove(d);
                self.attempts.remove(d);
            }
        }
    }
}

#[async_trait::async_trait]
impl CatalogStore for MemoryStore {
    async fn create_account(&self, account: &Account) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if s.accounts.contains_key(&account.id) {
            return Err(StoreError::Conflict("account"));
        }
        s.accounts.insert(account.id.clone(), account.clone());
        Ok(())
    }

    async fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        let mut s = self.state()?;
        match s.accounts.get_mut(&account.id) {
            Some(a) => {
                *a = account.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound("account")),
        }
    }

    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self.state()?.accounts.get(id).cloned())
    }

    async fn list_accounts(&self, req: &PageRequest) -> Result<Page<Account>, StoreError> {
        let s = self.state()?;
        Ok(page(s.accounts.values().cloned(), req, |a| {
            (a.created_at, a.id.as_str().to_owned())
        }))
    }

    async fn delete_account(&self, id: &AccountId) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        let existed = s.accounts.remove(id).is_some();
        s.sites.retain(|(a, _), _| a != id);
        s.api_keys
            .retain(|_, k| !matches!(&k.role, Role::Account(a) if a == id));
        s.endpoints.retain(|_, e| e.endpoint.account != *id);
        let events: Vec<EventId> = s
            .events
            .values()
            .filter(|e| e.event.account == *id)
            .map(|e| e.event.id.clone())
            .collect();
        s.remove_events(&events);
        // Deliveries always belong to their event's account; this only catches strays.
        let strays: Vec<DeliveryId> = s
            .deliveries
            .values()
            .filter(|d| d.delivery.account == *id)
            .map(|d| d.delivery.id.clone())
            .collect();
        for d in strays {
            s.deliveries.remove(&d);
            s.attempts.remove(&d);
        }
        Ok(existed)
    }

    async fn create_site(&self, site: &Site) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let key = (site.account.clone(), site.id.clone());
        if s.sites.contains_key(&key) {
            return Err(StoreError::Conflict("site"));
        }
        s.sites.insert(key, site.clone());
        Ok(())
    }

    async fn update_site(&self, site: &Site) -> Result<(), StoreError> {
        let mut s = self.state()?;
        match s.sites.get_mut(&(site.account.clone(), site.id.clone())) {
            Some(x) => {
                *x = site.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound("site")),
        }
    }

    async fn site(&self, account: &AccountId, id: &SiteId) -> Result<Option<Site>, StoreError> {
        let s = self.state()?;
        Ok(s.sites.get(&(account.clone(), id.clone())).cloned())
    }

    async fn list_sites(
        &self,
        account: &AccountId,
        req: &PageRequest,
    ) -> Result<Page<Site>, StoreError> {
        let s = self.state()?;
        let mine = s.sites.values().filter(|x| x.account == *account).cloned();
        Ok(page(mine, req, |x| {
            (x.created_at, x.id.as_str().to_owned())
        }))
    }

    async fn delete_site(&self, account: &AccountId, id: &SiteId) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        Ok(s.sites.remove(&(account.clone(), id.clone())).is_some())
    }

    async fn create_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if s.event_types.contains_key(&et.name) {
            return Err(StoreError::Conflict("event type"));
        }
        s.event_types.insert(et.name.clone(), et.clone());
        Ok(())
    }

    async fn update_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        let mut s = self.state()?;
        match s.event_types.get_mut(&et.name) {
            Some(x) => {
                *x = et.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound("event type")),
        }
    }

    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        Ok(self.state()?.event_types.get(name).cloned())
    }

    async fn list_event_types(&self, req: &PageRequest) -> Result<Page<EventType>, StoreError> {
        let s = self.state()?;
        Ok(page(s.event_types.values().cloned(), req, |x| {
            (x.created_at, x.name.as_str().to_owned())
        }))
    }

    async fn delete_event_type(&self, name: &EventTypeName) -> Result<bool, StoreError> {
        Ok(self.state()?.event_types.remove(name).is_some())
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut s = self.state()?;
        s.api_keys
            .entry(key.hash.clone())
            .or_insert_with(|| key.clone());
        Ok(())
    }

    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.state()?.api_keys.get(hash).cloned())
    }

    async fn has_admin_key(&self) -> Result<bool, StoreError> {
        let s = self.state()?;
        Ok(s.api_keys.values().any(|k| k.role == Role::Admin))
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.state()?.settings.get(name).cloned())
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.state()?
            .settings
            .insert(name.to_owned(), value.to_owned());
        Ok(())
    }
    async fn list_api_keys(
        &self,
        account: Option<&AccountId>,
        req: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        let s = self.state()?;
        let scope = scope_role(account);
        let mine = s.api_keys.values().filter(|k| k.role == scope).cloned();
        Ok(page(mine, req, |k| {
            (k.created_at, k.id.as_str().to_owned())
        }))
    }

    async fn delete_api_key(
        &self,
        account: Option<&AccountId>,
        id: &KeyId,
    ) -> Result<Option<ApiKey>, StoreError> {
        let mut s = self.state()?;
        let scope = scope_role(account);
        let hash = s
            .api_keys
            .values()
            .find(|k| k.id == *id && k.role == scope)
            .map(|k| k.hash.clone());
        Ok(hash.and_then(|h| s.api_keys.remove(&h)))
    }

    async fn touch_api_key(&self, hash: &str, at: Timestamp) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if let Some(k) = s.api_keys.get_mut(hash) {
            k.last_used_at = Some(at);
        }
        Ok(())
    }
}

/// The role of the keys of a scope: an account's, or the admin's (`None`).
fn scope_role(account: Option<&AccountId>) -> Role {
    match account {
        Some(a) => Role::Account(a.clone()),
        None => Role::Admin,
    }
}

#[async_trait::async_trait]
impl AuditStore for MemoryStore {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut s = self.state()?;
        s.audit.insert(entry.id.clone(), entry.clone());
        Ok(())
    }

    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        req: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let s = self.state()?;
        let mine = s
            .audit
            .values()
            .filter(|e| account.is_none() || e.account.as_ref() == account)
            .cloned();
        Ok(page(mine, req, |e| (e.at, e.id.as_str().to_owned())))
    }

    async fn purge_audit(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let mut old: Vec<(Timestamp, crate::id::AuditId)> = s
            .audit
            .values()
            .filter(|e| e.at < before)
            .map(|e| (e.at, e.id.clone()))
            .collect();
        old.sort();
        old.truncate(max);
        for (_, id) in &old {
            s.audit.remove(id);
        }
        Ok(old.len() as u64)
    }
}

#[async_trait::async_trait]
impl EndpointStore for MemoryStore {
    async fn create_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if s.endpoints.contains_key(&ep.id) {
            return Err(StoreError::Conflict("endpoint"));
        }
        let mut endpoint = ep.clone();
        endpoint.failing_since = None;
        s.endpoints.insert(
            ep.id.clone(),
            EndpointRow {
                endpoint,
                pace_next_us: None,
            },
        );
        Ok(())
    }

    async fn update_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        let mut s = self.state()?;
        match s.endpoints.get_mut(&ep.id) {
            Some(row) if row.endpoint.account == ep.account => {
                let failing_since = row.endpoint.failing_since;
                row.endpoint = ep.clone();
                row.endpoint.failing_since = failing_since;
                Ok(())
            }
            _ => Err(StoreError::NotFound("endpoint")),
        }
    }

    async fn endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        let s = self.state()?;
        Ok(s.endpoints
            .get(id)
            .filter(|e| e.endpoint.account == *account)
            .map(|e| e.endpoint.clone()))
    }

    async fn list_endpoints(
        &self,
        account: &AccountId,
        req: &PageRequest,
    ) -> Result<Page<Endpoint>, StoreError> {
        let s = self.state()?;
        let mine = s
            .endpoints
            .values()
            .filter(|e| e.endpoint.account == *account)
            .map(|e| e.endpoint.clone());
        Ok(page(mine, req, |e| {
            (e.created_at, e.id.as_str().to_owned())
        }))
    }

    async fn remove_endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        if s.endpoints
            .get(id)
            .is_none_or(|e| e.endpoint.account != *account)
        {
            return Ok(false);
        }
        s.endpoints.remove(id);
        for d in s.deliveries.values_mut() {
            if d.delivery.endpoint_id == *id && d.pending() {
                d.delivery.status = DeliveryStatus::Cancelled;
                d.delivery.next_attempt_at = None;
                d.lease = None;
            }
        }
        Ok(true)
    }

    async fn subscribers(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        kind: &EventTypeName,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let s = self.state()?;
        let mut subs: Vec<Endpoint> = s
            .endpoints
            .values()
            .map(|e| &e.endpoint)
            .filter(|e| e.account == *account && e.enabled && e.accepts(site, kind))
            .cloned()
            .collect();
        subs.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(subs)
    }
}

#[async_trait::async_trait]
impl QueueStore for MemoryStore {
    async fn enqueue_with(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Receipt, StoreError> {
        self.state()?.enqueue(event, targets, now, trigger)
    }

    async fn enqueue_batch(
        &self,
        items: &[(Event, Vec<EndpointId>)],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Vec<Receipt>, StoreError> {
        let mut s = self.state()?;
        // Check every item as if the earlier ones were stored already, then write: the writes
        // cannot fail, so the batch is stored whole or not at all.
        let mut ids = HashSet::new();
        let mut keys = HashSet::new();
        for (event, targets) in items {
            let key = event
                .idempotency_key
                .as_ref()
                .map(|k| (event.account.clone(), k.clone()));
            let duplicate = s.events.contains_key(&event.id)
                || ids.contains(&event.id)
                || key
                    .as_ref()
                    .is_some_and(|k| s.idempotency.contains_key(k) || keys.contains(k));
            if duplicate {
                continue;
            }
            if !targets.iter().all(|t| s.known_target(&event.account, t)) {
                return Err(StoreError::NotFound("endpoint"));
            }
            ids.insert(event.id.clone());
            keys.extend(key);
        }
        items
            .iter()
            .map(|(event, targets)| s.enqueue(event, targets, now, trigger))
            .collect()
    }

    async fn claim_due_except(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
        skip: &[EndpointId],
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut guard = self.state()?;
        let s = &mut *guard;
        let lease_end = now.add(lease);
        // The head of each ordered queue: its oldest pending delivery.
        let mut heads: HashMap<(&EndpointId, &str), u64> = HashMap::new();
        for d in s.deliveries.values().filter(|d| d.pending()) {
            if let Some(k) = &d.ordering_key {
                let head = heads
                    .entry((&d.delivery.endpoint_id, k.as_str()))
                    .or_insert(d.seq);
                *head = (*head).min(d.seq);
            }
        }
        let mut due: Vec<(Timestamp, u64, DeliveryId)> = s
            .deliveries
            .values()
            .filter(|d| {
                d.pending()
                    && d.delivery.next_attempt_at.is_some_and(|t| t <= now)
                    && !skip.contains(&d.delivery.endpoint_id)
                    && s.live_endpoint(&d.delivery.account, &d.delivery.endpoint_id)
                        .is_some()
                    && d.ordering_key
                        .as_deref()
                        .is_none_or(|k| heads.get(&(&d.delivery.endpoint_id, k)) == Some(&d.seq))
            })
            .map(|d| {
                (
                    d.delivery.next_attempt_at.unwrap_or(now),
                    d.seq,
                    d.delivery.id.clone(),
                )
            })
            .collect();
        drop(heads);
        due.sort();

        // Endpoints with limits: the room each has in this claim, and how much of it is taken.
        let mut rooms: HashMap<EndpointId, (LimitedRoom, usize)> = HashMap::new();
        let mut taken: Vec<(DeliveryId, Option<Timestamp>)> = Vec::new();
        for (_, _, id) in due {
            if taken.len() >= max {
                break;
            }
            let ep_id = s.deliveries[&id].delivery.endpoint_id.clone();
            let row = &s.endpoints[&ep_id];
            let ep = &row.endpoint;
            let not_before = if ep.max_concurrency.is_some() || ep.rate_limit.is_some() {
                let (room, used) = rooms.entry(ep_id.clone()).or_insert_with(|| {
                    let live = s
                        .deliveries
                        .values()
                        .filter(|d| {
                            d.delivery.endpoint_id == ep_id
                                && d.pending()
                                && d.lease.is_some()
                                && d.delivery.next_attempt_at.is_some_and(|t| t > now)
                        })
                        .count();
                    let room = LimitedRoom::new(
                        now,
                        max,
                        ep.max_concurrency.map(i64::from),
                        i64::try_from(live).unwrap_or(i64::MAX),
                        ep.rate_limit,
                        row.pace_next_us,
                    );
                    (room, 0)
                });
                if *used >= room.take {
                    continue;
                }
                *used += 1;
                room.send_time(*used - 1)
            } else {
                None
            };
            taken.push((id, not_before));
        }
        for (ep_id, (room, used)) in &rooms {
            if let (Some(next), Some(row)) = (room.next_free_us(*used), s.endpoints.get_mut(ep_id))
            {
                row.pace_next_us = Some(next);
            }
        }

        let mut out = Vec::with_capacity(taken.len());
        for (id, not_before) in taken {
            s.leases += 1;
            let lease_id = format!("lease-{}", s.leases);
            let Some(d) = s.deliveries.get_mut(&id) else {
                continue;
            };
            d.lease = Some(lease_id.clone());
            d.delivery.next_attempt_at = Some(lease_end);
            let (delivery, trigger) = (d.delivery.clone(), d.trigger);
            let (Some(event), Some(endpoint)) = (
                s.events.get(&delivery.event_id),
                s.endpoints.get(&delivery.endpoint_id),
            ) else {
                continue;
            };
            out.push(Claimed {
                attempt_number: delivery.attempts.saturating_add(1),
                trigger,
                lease: LeaseToken {
                    delivery: id,
                    lease_id,
                },
                not_before,
                event: event.event.clone(),
                endpoint: endpoint.endpoint.clone(),
                delivery,
            });
        }
        Ok(out)
    }

    async fn defer(&self, lease: &LeaseToken, until: Timestamp) -> Result<(), StoreError> {
        let mut s = self.state()?;
        match s.deliveries.get_mut(&lease.delivery) {
            Some(d) if d.leased_to(lease) => {
                d.lease = None;
                d.delivery.next_attempt_at = Some(until);
                Ok(())
            }
            _ => Err(StoreError::LeaseLost),
        }
    }

    async fn hold_endpoint(
        &self,
        endpoint: &EndpointId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        for d in s.deliveries.values_mut() {
            let Some(due) = d.delivery.next_attempt_at else {
                continue;
            };
            let lease_over = d.lease.is_none() || due <= now;
            if d.delivery.endpoint_id == *endpoint && d.pending() && due < until && lease_over {
                d.delivery.next_attempt_at = Some(until);
                d.lease = None;
            }
        }
        Ok(())
    }

    async fn settle(
        &self,
        lease: &LeaseToken,
        attempt: &Attempt,
        next: Next,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        let Some(d) = s
            .deliveries
            .get_mut(&lease.delivery)
            .filter(|d| d.leased_to(lease))
        else {
            return Err(StoreError::LeaseLost);
        };
        let (status, next_at) = match next {
            Next::Delivered => (DeliveryStatus::Succeeded, None),
            Next::RetryAt(t) => (DeliveryStatus::Pending, Some(t)),
            Next::Exhausted => (DeliveryStatus::Failed, None),
        };
        d.delivery.status = status;
        d.delivery.attempts += 1;
        d.delivery.next_attempt_at = next_at;
        d.delivery.last_attempt_at = Some(attempt.started_at);
        d.lease = None;
        d.trigger = Trigger::Scheduled;
        s.attempts
            .entry(lease.delivery.clone())
            .or_default()
            .push(attempt.clone());
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let s = self.state()?;
        Ok(s.deliveries
            .values()
            .filter(|d| {
                d.pending()
                    && s.live_endpoint(&d.delivery.account, &d.delivery.endpoint_id)
                        .is_some()
            })
            .filter_map(|d| d.delivery.next_attempt_at)
            .min())
    }

    async fn backlog(&self) -> Result<crate::store::Backlog, StoreError> {
        let pending = {
            let s = self.state()?;
            s.deliveries.values().filter(|d| d.pending()).count() as u64
        };
        Ok(crate::store::Backlog::new(pending, self.next_due().await?))
    }

    async fn add_hourly(&self, stats: &[crate::model::HourlyStats]) -> Result<(), StoreError> {
        let mut s = self.state()?;
        for st in stats {
            let hour = crate::model::HourlyStats::hour_of(st.hour);
            s.hourly
                .entry((st.endpoint.clone(), hour))
                .or_insert_with(|| crate::model::HourlyStats::new(st.endpoint.clone(), hour))
                .merge(st);
        }
        Ok(())
    }

    async fn purge(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let mut old: Vec<(Timestamp, EventId)> = s
            .events
            .values()
            .filter(|e| e.event.timestamp < before)
            .map(|e| (e.event.timestamp, e.event.id.clone()))
            .collect();
        old.sort();
        old.truncate(max);
        let ids: Vec<EventId> = old.into_iter().map(|(_, id)| id).collect();
        s.remove_events(&ids);
        Ok(ids.len() as u64)
    }

    async fn record_failing(
        &self,
        id: &EndpointId,
        at: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let mut s = self.state()?;
        Ok(s.endpoints
            .get_mut(id)
            .map(|e| *e.endpoint.failing_since.get_or_insert(at)))
    }

    async fn record_healthy(&self, id: &EndpointId) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if let Some(e) = s.endpoints.get_mut(id) {
            e.endpoint.failing_since = None;
        }
        Ok(())
    }

    async fn disable_endpoint(
        &self,
        id: &EndpointId,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        match s.endpoints.get_mut(id) {
            Some(e) if e.endpoint.enabled => {
                e.endpoint.enabled = false;
                e.endpoint.disabled_reason = Some(reason.to_owned());
                e.endpoint.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        let mut s = self.state()?;
        match s.deliveries.get_mut(id) {
            Some(d) if d.delivery.account == *account => {
                d.requeue_manual(now);
                Ok(d.delivery.clone())
            }
            _ => Err(StoreError::NotFound("delivery")),
        }
    }

    async fn recover_failed(
        &self,
        account: &AccountId,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut s = self.state()?;
        let mut n = 0;
        for d in s.deliveries.values_mut() {
            let x = &d.delivery;
            if x.account == *account
                && x.endpoint_id == *endpoint
                && x.status == DeliveryStatus::Failed
                && x.created_at >= since
            {
                d.requeue_manual(now);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn replace_event_data(
        &self,
        account: &AccountId,
        id: &EventId,
        data: &serde_json::value::RawValue,
    ) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        match s.events.get_mut(id) {
            Some(row) if row.event.account == *account => {
                row.event.data = data.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait::async_trait]
impl HistoryStore for MemoryStore {
    async fn event(&self, account: &AccountId, id: &EventId) -> Result<Option<Event>, StoreError> {
        let s = self.state()?;
        Ok(s.events
            .get(id)
            .filter(|e| e.event.account == *account)
            .map(|e| e.event.clone()))
    }

    async fn event_by_idempotency_key(
        &self,
        account: &AccountId,
        key: &str,
    ) -> Result<Option<Event>, StoreError> {
        let s = self.state()?;
        Ok(s.idempotency
            .get(&(account.clone(), key.to_owned()))
            .and_then(|id| s.events.get(id))
            .map(|e| e.event.clone()))
    }

    async fn list_events(
        &self,
        account: &AccountId,
        filter: &EventFilter,
        req: &PageRequest,
    ) -> Result<Page<Event>, StoreError> {
        let s = self.state()?;
        let matching = s.events.values().map(|e| &e.event).filter(|e| {
            e.account == *account
                && filter
                    .event_type
                    .as_ref()
                    .is_none_or(|t| *t == e.event_type)
                && filter
                    .site
                    .as_ref()
                    .is_none_or(|x| e.site.as_ref() == Some(x))
                && filter
                    .queue_id
                    .as_ref()
                    .is_none_or(|q| e.queue_id.as_ref() == Some(q))
                && filter.since.is_none_or(|t| e.timestamp >= t)
                && filter.until.is_none_or(|t| e.timestamp < t)
        });
        Ok(page(matching.cloned(), req, |e| {
            (e.timestamp, e.id.as_str().to_owned())
        }))
    }

    async fn delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        let s = self.state()?;
        Ok(s.deliveries
            .get(id)
            .filter(|d| d.delivery.account == *account)
            .map(|d| d.delivery.clone()))
    }

    async fn list_deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        req: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        let s = self.state()?;
        let matching = s.deliveries.values().map(|d| &d.delivery).filter(|d| {
            d.account == *account
                && filter.keeps_without_type(d)
                && (filter.event_types.is_empty()
                    || s.events
                        .get(&d.event_id)
                        .is_some_and(|e| filter.event_types.contains(&e.event.event_type)))
        });
        Ok(page(matching.cloned(), req, |d| {
            (d.created_at, d.id.as_str().to_owned())
        }))
    }

    async fn hourly(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
    ) -> Result<Vec<crate::model::HourlyStats>, StoreError> {
        let s = self.state()?;
        Ok(s.hourly
            .range((endpoint.clone(), since)..)
            .take_while(|((e, _), _)| e == endpoint)
            .map(|(_, st)| st.clone())
            .collect())
    }

    async fn attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
    ) -> Result<Vec<Attempt>, StoreError> {
        let s = self.state()?;
        let mine = s
            .deliveries
            .get(delivery)
            .is_some_and(|d| d.delivery.account == *account);
        if !mine {
            return Ok(Vec::new());
        }
        let mut got = s.attempts.get(delivery).cloned().unwrap_or_default();
        got.sort_by_key(|a| (a.number, a.started_at));
        Ok(got)
    }
}
