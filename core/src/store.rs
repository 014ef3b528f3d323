//! The store traits: everything Hookline keeps, behind one object-safe async boundary.
//!
//! A store is held as `Arc<dyn Store>`. Every method takes the time from the caller (`now`), so
//! lease and backoff behaviour is deterministic under test. Methods that read or change tenant
//! data take the [`AccountId`]: a row of another account is "not found", whatever its id.
//!
//! The delivery contract (what at-least-once rests on):
//! * [`QueueStore::enqueue`] writes an event and one pending delivery per target in one
//!   atomic step: after it returns `Ok`, all of it is durable; after an error, none of it exists.
//!   An event whose idempotency key (per account) or id was already accepted writes nothing and
//!   returns the original's receipt with `duplicate: true`.
//! * [`QueueStore::enqueue_batch`] does the same for several events in one atomic step: either
//!   every event is stored (or answered as a duplicate) with its deliveries, or nothing of the
//!   batch is written. Its events are taken in order, so one with the id or idempotency key of
//!   an earlier one of the same batch is that one's duplicate.
//! * [`QueueStore::claim_due`] leases up to `max` pending deliveries due at `now` (oldest due
//!   first) to the caller until `now + lease`. While the lease is live no other claim returns
//!   them; once it ends they are due again, so the work of a dead worker is retried.
//! * Per-endpoint limits hold across every process sharing the store, because the claim enforces
//!   them: an endpoint with `maxConcurrency` m never has more than m live leases (a claimed
//!   delivery counts as in flight until it is settled or deferred, or its lease ends), and the
//!   deliveries claimed for an endpoint with `rateLimit` r carry send times
//!   ([`Claimed::not_before`]) at least 1/r s apart across all claims, none more than
//!   [`RATE_HORIZON`] ahead of the claim.
//! * [`QueueStore::settle`] records the attempt and the next state in one step, only if the
//!   lease is still the caller's. Otherwise it changes nothing and returns
//!   [`StoreError::LeaseLost`]: a late report can never undo another worker's result.
//!
//! Background work: a store starts no long-lived task by itself. The one it may run, a listener
//! for other processes' work, starts only from [`QueueStore::listen_for_work`] and stops when the
//! [`WorkListener`] it returns is dropped. (Short tasks that finish a write already under way,
//! such as sending a notification after a commit, end on their own.)

use std::sync::Arc;
use std::time::Duration;

use crate::id::{AccountId, DeliveryId, EndpointId, EventId, EventTypeName, KeyId, SiteId};
use crate::model::{
    Account, ApiKey, Attempt, AttemptFilter, AttemptOutcome, AuditEntry, Cursor, Delivery,
    DeliveryFilter, Endpoint, Event, EventFilter, EventType, HourlyStats, Page, PageRequest, Site,
    Trigger,
};
use crate::time::Timestamp;
use crate::transport::BoxError;

/// Store failures, classified for the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The row does not exist (for this account).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A row with this key exists already.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The lease ended or was taken over; nothing was changed.
    #[error("lease expired or re-claimed")]
    LeaseLost,
    /// The backend is unreachable, overloaded or refused the operation before applying any of
    /// it: nothing was changed. Try again later.
    #[error("store temporarily unavailable")]
    Unavailable(#[source] BoxError),
    /// The backend stopped answering during the operation (a connection dropped or timed out
    /// after the request was sent, or no answer came in time): a write may or may not have been
    /// applied. Try again later; repeating an idempotent write (the same event id or idempotency
    /// key) is safe.
    #[error("store did not confirm the operation")]
    Unconfirmed(#[source] BoxError),
    /// Any other backend failure.
    #[error("store failure")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// Whether trying again later may succeed ([`Unavailable`](Self::Unavailable) or
    /// [`Unconfirmed`](Self::Unconfirmed)).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Unconfirmed(_))
    }

    /// Whether the operation is known to have changed nothing. False for
    /// [`Unconfirmed`](Self::Unconfirmed), whose write may have landed.
    pub fn changed_nothing(&self) -> bool {
        !matches!(self, Self::Unconfirmed(_) | Self::Backend(_))
    }
}

/// What enqueue did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// The event's id (the original's, for a duplicate).
    pub event_id: EventId,
    /// The deliveries created for it.
    pub deliveries: Vec<DeliveryId>,
    /// True when the event had been accepted before and nothing was written now.
    pub duplicate: bool,
}

impl Receipt {
    /// What an enqueue answers.
    pub fn new(event_id: EventId, deliveries: Vec<DeliveryId>, duplicate: bool) -> Self {
        Self {
            event_id,
            deliveries,
            duplicate,
        }
    }
}

/// How far ahead of `now` a claim may reserve send times for a rate-limited endpoint.
pub const RATE_HORIZON: Duration = Duration::from_secs(1);

/// Proof of a claim: which delivery, and which lease on it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseToken {
    /// The claimed delivery.
    pub delivery: DeliveryId,
    /// Unique per claim.
    pub lease_id: String,
}

impl LeaseToken {
    /// The proof of claim `lease_id` on `delivery`.
    pub fn new(delivery: DeliveryId, lease_id: impl Into<String>) -> Self {
        Self {
            delivery,
            lease_id: lease_id.into(),
        }
    }
}

/// A delivery leased to a worker, with everything needed to send it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Claimed {
    /// The delivery as claimed.
    pub delivery: Delivery,
    /// Its event.
    pub event: Event,
    /// Its endpoint.
    pub endpoint: Endpoint,
    /// The number this attempt gets (attempts made + 1).
    pub attempt_number: u32,
    /// Scheduled, or manual after a retry request.
    pub trigger: Trigger,
    /// Present it to [`QueueStore::settle`].
    pub lease: LeaseToken,
    /// For an endpoint with a rate limit: the send time reserved for this request. The sender
    /// waits until then (never longer than [`RATE_HORIZON`] after the claim).
    pub not_before: Option<Timestamp>,
}

impl Claimed {
    /// A claimed delivery with its event and endpoint, for attempt `attempt_number`, with no
    /// reserved send time.
    pub fn new(
        delivery: Delivery,
        event: Event,
        endpoint: Endpoint,
        attempt_number: u32,
        trigger: Trigger,
        lease: LeaseToken,
    ) -> Self {
        Self {
            delivery,
            event,
            endpoint,
            attempt_number,
            trigger,
            lease,
            not_before: None,
        }
    }
}

/// The queue's size, as [`QueueStore::backlog`] reports it: what an operator watches to see
/// whether deliveries keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Backlog {
    /// Pending deliveries, of every endpoint (disabled ones too), leased or not.
    pub pending: u64,
    /// The earliest due time among the pending deliveries a claim could return (as
    /// [`QueueStore::next_due`] reports it): when it lies in the past, the queue is that far
    /// behind.
    pub oldest_due: Option<Timestamp>,
}

impl Backlog {
    /// `pending` deliveries, the earliest claimable one due at `oldest_due`.
    pub fn new(pending: u64, oldest_due: Option<Timestamp>) -> Self {
        Self {
            pending,
            oldest_due,
        }
    }
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// It succeeded: terminal.
    Delivered,
    /// Try again at this instant.
    RetryAt(Timestamp),
    /// Retries are exhausted: failed, terminal.
    Exhausted,
}

/// A subscription to a store's cross-process work notifications, made by
/// [`QueueStore::listen_for_work`]. It owns the task that listens: dropping the listener stops
/// the task.
#[derive(Debug)]
pub struct WorkListener {
    signal: Arc<tokio::sync::Notify>,
    task: tokio::task::AbortHandle,
}

impl WorkListener {
    /// For store implementations: spawns `listen` on the current tokio runtime with the signal
    /// it raises ([`Notify::notify_one`](tokio::sync::Notify::notify_one)) whenever work was
    /// made due. The task may run until it is stopped: it ends when the listener is dropped.
    pub fn spawn<F>(listen: impl FnOnce(Arc<tokio::sync::Notify>) -> F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let signal = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(listen(signal.clone())).abort_handle();
        Self { signal, task }
    }

    /// Waits for the next notification. One raised while nobody waited is kept, so a
    /// notification between two waits is not lost.
    pub async fn notified(&self) {
        self.signal.notified().await;
    }
}

impl Drop for WorkListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accounts, sites, the event-type catalog and API keys.
#[async_trait::async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Inserts an account; `Conflict` if the id is taken.
    async fn create_account(&self, account: &Account) -> Result<(), StoreError>;
    /// Replaces an account's fields; `NotFound` if missing.
    async fn update_account(&self, account: &Account) -> Result<(), StoreError>;
    /// One account.
    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError>;
    /// Accounts, newest first.
    async fn list_accounts(&self, page: &PageRequest) -> Result<Page<Account>, StoreError>;
    /// Removes an account and everything it owns; false if it did not exist.
    async fn delete_account(&self, id: &AccountId) -> Result<bool, StoreError>;

    /// Inserts a site; `Conflict` if the id is taken in the account.
    async fn create_site(&self, site: &Site) -> Result<(), StoreError>;
    /// Replaces a site's fields; `NotFound` if missing.
    async fn update_site(&self, site: &Site) -> Result<(), StoreError>;
    /// One site.
    async fn site(&self, account: &AccountId, id: &SiteId) -> Result<Option<Site>, StoreError>;
    /// An account's sites, newest first.
    async fn list_sites(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Site>, StoreError>;
    /// Removes a site; false if it did not exist.
    async fn delete_site(&self, account: &AccountId, id: &SiteId) -> Result<bool, StoreError>;

    /// Inserts a catalog entry; `Conflict` if the name is taken.
    async fn create_event_type(&self, et: &EventType) -> Result<(), StoreError>;
    /// Replaces a catalog entry; `NotFound` if missing.
    async fn update_event_type(&self, et: &EventType) -> Result<(), StoreError>;
    /// One catalog entry.
    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError>;
    /// The catalog, newest first.
    async fn list_event_types(&self, page: &PageRequest) -> Result<Page<EventType>, StoreError>;
    /// Removes a catalog entry; false if it did not exist.
    async fn delete_event_type(&self, name: &EventTypeName) -> Result<bool, StoreError>;

    /// Stores an API key hash with its fields (idempotent on the hash: a key stored before
    /// stays as it is).
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// Looks a key up by its hash.
    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError>;
    /// Whether any admin key exists.
    async fn has_admin_key(&self) -> Result<bool, StoreError>;

    /// A deployment setting the store keeps for Hookline itself (such as the record of which
    /// encryption keys sealed its values, [`crate::sealing::MARKER_SETTING`]); `None` if it was
    /// never written.
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Writes a deployment setting, replacing its value.
    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError>;
    /// The keys of one scope — an account's (`Some`) or the admin keys (`None`) — newest first
    /// (by `created_at`, then id).
    async fn list_api_keys(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError>;
    /// Removes the key `id` of one scope (as in [`list_api_keys`](Self::list_api_keys)) and
    /// returns it; `None` if that scope has no such key. From then on
    /// [`api_key`](Self::api_key) does not find it.
    async fn delete_api_key(
        &self,
        account: Option<&AccountId>,
        id: &KeyId,
    ) -> Result<Option<ApiKey>, StoreError>;
    /// Sets a key's `last_used_at`; does nothing if the key is gone (never recreates it).
    async fn touch_api_key(&self, hash: &str, at: Timestamp) -> Result<(), StoreError>;
}

/// The audit log: who changed what, and when.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends an entry.
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The entries of one account (`Some`) or of the whole deployment (`None`: every entry,
    /// deployment-wide ones and every account's), newest first (by `at`, then id).
    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError>;
    /// Deletes up to `max` entries made before `before`; returns how many (call again until it
    /// returns less than `max`). Entries outlive the account they name until then.
    async fn purge_audit(&self, before: Timestamp, max: usize) -> Result<u64, StoreError>;
}

/// Endpoints: their configuration and who subscribes to what.
#[async_trait::async_trait]
pub trait EndpointStore: Send + Sync + 'static {
    /// Inserts an endpoint; `Conflict` if its id is taken.
    async fn create_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError>;
    /// Replaces an endpoint (matched on account and id); `NotFound` if missing.
    async fn update_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError>;
    /// One endpoint of an account.
    async fn endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError>;
    /// An account's endpoints, newest first.
    async fn list_endpoints(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Endpoint>, StoreError>;
    /// Removes an endpoint and cancels its pending deliveries; false if it did not exist.
    async fn remove_endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<bool, StoreError>;
    /// The enabled endpoints of `account` that take an event of `kind` for `site`
    /// (see [`Endpoint::accepts`]): shared endpoints plus those filtered to the site.
    async fn subscribers(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        kind: &EventTypeName,
    ) -> Result<Vec<Endpoint>, StoreError>;
}

/// The delivery queue: what the [`Dispatcher`](crate::dispatcher::Dispatcher) uses (enqueue,
/// claim, settle, the endpoint health it keeps), plus the manual operations that put deliveries
/// back on it.
#[async_trait::async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Atomically stores the event plus one pending delivery (due at `now`) per target, whose
    /// first attempt gets `trigger`. See the module docs for idempotency.
    async fn enqueue_with(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Receipt, StoreError>;
    /// [`enqueue_with`](Self::enqueue_with) a scheduled first attempt: what the producer's
    /// events get.
    async fn enqueue(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
    ) -> Result<Receipt, StoreError> {
        self.enqueue_with(event, targets, now, Trigger::Scheduled)
            .await
    }
    /// Stores several events, each with one pending delivery (due at `now`) per target of its
    /// own, in one atomic write: all or nothing. Returns one receipt per item, in order.
    ///
    /// Each item is answered as [`enqueue_with`](Self::enqueue_with) would answer it if the
    /// items were enqueued one after the other: an event whose id or idempotency key was
    /// accepted before — by an earlier call or by an earlier item of this batch — writes nothing
    /// and gets the original's receipt with `duplicate: true`. If any new event names a target
    /// that is not an endpoint of its account, the whole batch is refused with
    /// [`StoreError::NotFound`] and nothing of it is written. Whatever the outcome, a batch is
    /// never stored in part: after an error that may have changed something
    /// ([`StoreError::changed_nothing`] false) it is stored whole or not at all.
    async fn enqueue_batch(
        &self,
        items: &[(Event, Vec<EndpointId>)],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Vec<Receipt>, StoreError>;
    /// Leases up to `max` pending deliveries of enabled endpoints due at `now`, oldest due first
    /// ([`claim_due_except`](Self::claim_due_except) skipping nothing).
    async fn claim_due(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_due_except(now, max, lease, &[]).await
    }
    /// Leases up to `max` pending deliveries of enabled endpoints due at `now`, oldest due first
    /// (deliveries of endpoints with a `maxConcurrency` or `rateLimit` may come after those of
    /// endpoints without; see the module docs for how the limits are kept), never returning
    /// deliveries to the endpoints in `skip` (endpoints the caller cannot send to right now: at
    /// their concurrency or rate limit, or with an open circuit).
    async fn claim_due_except(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
        skip: &[EndpointId],
    ) -> Result<Vec<Claimed>, StoreError>;
    /// Gives a claimed delivery back without an attempt: it becomes due at `until`, its attempt
    /// count and trigger unchanged. `LeaseLost` (and no change) if the lease is no longer current.
    async fn defer(&self, lease: &LeaseToken, until: Timestamp) -> Result<(), StoreError>;
    /// Makes the pending deliveries of `endpoint` that are due before `until` (leased ones only
    /// once their lease has ended at `now`) wait until `until`, together: used while the endpoint
    /// is failing (an open circuit, a `Retry-After` pause), so claims in every process stop
    /// passing over its backlog. Attempt counts and triggers are unchanged.
    async fn hold_endpoint(
        &self,
        endpoint: &EndpointId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Records `attempt` and moves the delivery to `next`, if `lease` is still current.
    async fn settle(
        &self,
        lease: &LeaseToken,
        attempt: &Attempt,
        next: Next,
    ) -> Result<(), StoreError>;
    /// The earliest instant a pending delivery becomes due (leased ones count at lease end).
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;
    /// How many deliveries are pending and the earliest due time among those a claim could
    /// return ([`Backlog`]), for monitoring: sampled every few seconds, not per delivery, so a
    /// store may count with one cheap query over the index of pending deliveries.
    async fn backlog(&self) -> Result<Backlog, StoreError>;
    /// Adds each of `stats` to its endpoint's counters of that hour (creating them at zero),
    /// for the dashboard's charts. The dispatcher calls it every few seconds with what settled
    /// since; a failure loses those counts only (they are statistics, not deliveries).
    async fn add_hourly(&self, stats: &[HourlyStats]) -> Result<(), StoreError>;
    /// Starts listening for work that other processes make due (for example PostgreSQL
    /// `LISTEN/NOTIFY` or Redis pub/sub), so idle dispatchers wake at once instead of at their
    /// next poll; `None` (the default) when the store has no such channel. Call it inside a
    /// tokio runtime.
    ///
    /// This is the only way a store starts a long-lived task: the returned [`WorkListener`] owns
    /// it, and dropping the listener stops it. [`Dispatcher::run`](crate::dispatcher::Dispatcher::run)
    /// holds one while it runs. Each call starts a listener of its own.
    fn listen_for_work(&self) -> Option<WorkListener> {
        None
    }
    /// Deletes up to `max` events that fired before `before`, with their deliveries and attempts;
    /// returns how many events were deleted (call again until it returns less than `max`).
    async fn purge(&self, before: Timestamp, max: usize) -> Result<u64, StoreError>;
    /// Starts the failure clock of an endpoint whose attempt failed at `at`, unless it runs
    /// already; returns when it started (the earliest failure not followed by a success, kept
    /// across restarts and shared by every process), or `None` if the endpoint is gone.
    async fn record_failing(
        &self,
        id: &EndpointId,
        at: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError>;
    /// Stops the failure clock of an endpoint (an attempt succeeded, or it was enabled).
    async fn record_healthy(&self, id: &EndpointId) -> Result<(), StoreError>;
    /// Disables an enabled endpoint with `reason` (its `updated_at` set to `now`) in one step,
    /// leaving every other field as it is; false if it was already disabled or is gone.
    async fn disable_endpoint(
        &self,
        id: &EndpointId,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Makes a delivery pending and due at `now` with a manual trigger, whatever its state.
    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery, StoreError>;
    /// Re-queues (as [`retry_delivery`](Self::retry_delivery) does) each of `ids` that is a
    /// delivery of `account`, whatever its state; returns how many (ids that are gone are
    /// skipped). Callers pass bounded batches (a replay passes one page at a time). The default
    /// makes one [`retry_delivery`](Self::retry_delivery) call per id.
    async fn retry_deliveries(
        &self,
        account: &AccountId,
        ids: &[DeliveryId],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for id in ids {
            match self.retry_delivery(account, id, now).await {
                Ok(_) => n += 1,
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
    /// Re-queues (as [`retry_delivery`](Self::retry_delivery) does) every failed delivery of the
    /// endpoint created at or after `since`; returns how many.
    async fn recover_failed(
        &self,
        account: &AccountId,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Replaces the stored `data` of an event of `account`, leaving everything else (its
    /// deliveries included) as it is; false if there is no such event. Events are immutable:
    /// this exists only to store the same data in another form (sealed again under a new
    /// encryption key, [`crate::sealing::SealedStore::rekey`]).
    async fn replace_event_data(
        &self,
        account: &AccountId,
        id: &EventId,
        data: &serde_json::value::RawValue,
    ) -> Result<bool, StoreError>;
}

/// What happened: events, deliveries and attempts, read back for listings and detail views.
#[async_trait::async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// One event of an account.
    async fn event(&self, account: &AccountId, id: &EventId) -> Result<Option<Event>, StoreError>;
    /// The event of an account accepted with idempotency key `key`, while it is kept (until the
    /// retention purge removes it, which frees the key).
    async fn event_by_idempotency_key(
        &self,
        account: &AccountId,
        key: &str,
    ) -> Result<Option<Event>, StoreError>;
    /// An account's events matching `filter`, newest first.
    async fn list_events(
        &self,
        account: &AccountId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<Event>, StoreError>;
    /// One delivery of an account.
    async fn delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError>;
    /// An account's deliveries matching `filter`, newest first.
    async fn list_deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError>;
    /// A delivery's attempts, oldest first.
    async fn attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
    ) -> Result<Vec<Attempt>, StoreError>;
    /// A delivery's attempts matching `filter`, newest first by `(started_at, id)` like every
    /// list. A delivery has few attempts (its retry schedule's length plus manual retries), so
    /// the default pages [`attempts`](Self::attempts) in memory.
    async fn list_attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        let mut all = self.attempts(account, delivery).await?;
        all.retain(|a| {
            filter.outcome.is_none_or(|o| o == AttemptOutcome::of(a))
                && page
                    .after
                    .as_ref()
                    .is_none_or(|c| (a.started_at, a.id.as_str()) < (c.created_at, c.id.as_str()))
        });
        all.sort_by(|x, y| (y.started_at, y.id.as_str()).cmp(&(x.started_at, x.id.as_str())));
        all.truncate(page.limit.saturating_add(1));
        Ok(Page::from_rows(all, page.limit, |a| Cursor {
            created_at: a.started_at,
            id: a.id.as_str().to_owned(),
        }))
    }

    /// An endpoint's hourly counters ([`QueueStore::add_hourly`]) of the hours starting at or
    /// after `since`, oldest first; hours without attempts are absent.
    async fn hourly(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
    ) -> Result<Vec<HourlyStats>, StoreError>;
}

/// Everything Hookline keeps: the one object-safe bound callers hold (`Arc<dyn Store>`).
/// Implemented for every type that implements the five parts.
pub trait Store: CatalogStore + EndpointStore + QueueStore + HistoryStore + AuditStore {}
impl<T: CatalogStore + EndpointStore + QueueStore + HistoryStore + AuditStore> Store for T {}

// `Store` must stay object safe: the server and embedders hold `Arc<dyn Store>`.
const _: Option<&dyn Store> = None;

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets its flag when dropped (when the task holding it ends, or is stopped).
    struct Dropped(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_work_listener_relays_signals_and_stops_its_task_when_dropped() {
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let guard = Dropped(stopped.clone());
        let listener = WorkListener::spawn(|signal| async move {
            let _guard = guard;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                signal.notify_one();
            }
        });
        tokio::time::timeout(Duration::from_millis(1500), listener.notified())
            .await
            .expect("the task raised the signal");
        assert!(!stopped.load(std::sync::atomic::Ordering::SeqCst));
        drop(listener);
        // Let the runtime act on the abort.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(
            stopped.load(std::sync::atomic::Ordering::SeqCst),
            "dropping the listener stopped its task"
        );
    }
}
