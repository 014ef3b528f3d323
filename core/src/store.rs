//! The store traits: everything Hookline keeps, behind one object-safe async boundary.
//!
//! A store is held as `Arc<dyn Store>`. Every method takes the time from the caller (`now`), so
//! lease and backoff behaviour is deterministic under test. Methods that read or change tenant
//! data take the [`AccountId`]: a row of another account is "not found", whatever its id.
//!
//! The delivery contract (what at-least-once rests on):
//! * [`DeliveryStore::enqueue`] writes an event and one pending delivery per target in one
//!   atomic step: after it returns `Ok`, all of it is durable; after an error, none of it exists.
//!   An event whose idempotency key (per account) or id was already accepted writes nothing and
//!   returns the original's receipt with `duplicate: true`.
//! * [`DeliveryStore::claim_due`] leases up to `max` pending deliveries due at `now` (oldest due
//!   first) to the caller until `now + lease`. While the lease is live no other claim returns
//!   them; once it ends they are due again, so the work of a dead worker is retried.
//! * Per-endpoint limits hold across every process sharing the store, because the claim enforces
//!   them: an endpoint with `maxConcurrency` m never has more than m live leases (a claimed
//!   delivery counts as in flight until it is settled or deferred, or its lease ends), and the
//!   deliveries claimed for an endpoint with `rateLimit` r carry send times
//!   ([`Claimed::not_before`]) at least 1/r s apart across all claims, none more than
//!   [`RATE_HORIZON`] ahead of the claim.
//! * [`DeliveryStore::settle`] records the attempt and the next state in one step, only if the
//!   lease is still the caller's. Otherwise it changes nothing and returns
//!   [`StoreError::LeaseLost`]: a late report can never undo another worker's result.

use std::sync::Arc;
use std::time::Duration;

use crate::id::{AccountId, DeliveryId, EndpointId, EventId, EventTypeName, SiteId};
use crate::model::{
    Account, ApiKey, Attempt, Delivery, DeliveryFilter, Endpoint, Event, EventFilter, EventType,
    Page, PageRequest, Site, Trigger,
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
    /// The backend is unreachable or overloaded; try again later.
    #[error("store temporarily unavailable")]
    Unavailable(#[source] BoxError),
    /// Any other backend failure.
    #[error("store failure")]
    Backend(#[source] BoxError),
}

/// What enqueue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The event's id (the original's, for a duplicate).
    pub event_id: EventId,
    /// The deliveries created for it.
    pub deliveries: Vec<DeliveryId>,
    /// True when the event had been accepted before and nothing was written now.
    pub duplicate: bool,
}

/// How far ahead of `now` a claim may reserve send times for a rate-limited endpoint.
pub const RATE_HORIZON: Duration = Duration::from_secs(1);

/// The spacing of a rate limit of `per_second` requests, in microseconds (rounded up, so the
/// rate is never exceeded).
pub fn rate_interval_micros(per_second: u32) -> i64 {
    let r = i64::from(per_second.max(1));
    (1_000_000 + r - 1) / r
}

/// For store implementations: how many deliveries a claim may take of one endpoint with limits,
/// and the send times they get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitedRoom {
    /// How many the claim may take now (0: none).
    pub take: usize,
    /// With a rate limit: the first free send time and the spacing, in µs.
    pace: Option<(i64, i64)>,
}

impl LimitedRoom {
    /// The room at `now` for a claim with `room` free slots, of an endpoint with
    /// `max_concurrency` and `live` live leases, and with `rate_limit` whose next free send time
    /// is `pace_next_us` (µs; `None` before its first claim).
    pub fn new(
        now: Timestamp,
        room: usize,
        max_concurrency: Option<i64>,
        live: i64,
        rate_limit: Option<u32>,
        pace_next_us: Option<i64>,
    ) -> Self {
        let mut take = i64::try_from(room).unwrap_or(i64::MAX);
        if let Some(m) = max_concurrency {
            take = take.min(m - live);
        }
        let mut pace = None;
        if let Some(r) = rate_limit {
            let now_us = now.as_millis().saturating_mul(1000);
            let horizon_us = Self::horizon_us(now);
            let step = rate_interval_micros(r);
            let start = pace_next_us.unwrap_or(now_us).max(now_us);
            take = take.min((horizon_us - start).div_euclid(step) + 1);
            pace = Some((start, step));
        }
        Self {
            take: usize::try_from(take.max(0)).unwrap_or(0),
            pace,
        }
    }

    /// The end of the rate horizon of a claim at `now`, in µs: a rate-limited endpoint whose
    /// next free send time is later has no room.
    pub fn horizon_us(now: Timestamp) -> i64 {
        now.as_millis()
            .saturating_mul(1000)
            .saturating_add(RATE_HORIZON.as_micros() as i64)
    }

    /// The send time of the `i`-th delivery taken (from 0), rounded up to the millisecond so it
    /// is never earlier than reserved; `None` without a rate limit.
    pub fn send_time(&self, i: usize) -> Option<Timestamp> {
        self.pace.map(|(start, step)| {
            let at_us = start + step * i as i64;
            Timestamp::from_millis((at_us + 999).div_euclid(1000))
        })
    }

    /// The endpoint's next free send time (µs) once `taken` deliveries were claimed; `None`
    /// without a rate limit or when nothing was taken (nothing to write).
    pub fn next_free_us(&self, taken: usize) -> Option<i64> {
        match self.pace {
            Some((start, step)) if taken > 0 => Some(start + step * taken as i64),
            _ => None,
        }
    }
}

/// For store implementations: whether any endpoint has a `maxConcurrency` or `rateLimit`,
/// remembered for [`LimitedHint::TTL`], so claims can skip the limited-endpoint path (and its
/// query) while there are none. A store clears it on its own endpoint writes; a change made
/// through another process is seen within the TTL.
#[derive(Debug, Default)]
pub struct LimitedHint {
    known: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl LimitedHint {
    /// How long an answer is trusted.
    pub const TTL: Duration = Duration::from_secs(1);

    /// The remembered answer, if still fresh.
    pub fn get(&self) -> Option<bool> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.and_then(|(at, v)| (at.elapsed() < Self::TTL).then_some(v))
    }

    /// Remembers an answer.
    pub fn set(&self, any_limited: bool) {
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), any_limited));
    }

    /// Forgets the answer (after an endpoint write).
    pub fn clear(&self) {
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Proof of a claim: which delivery, and which lease on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseToken {
    /// The claimed delivery.
    pub delivery: DeliveryId,
    /// Unique per claim.
    pub lease_id: String,
}

/// A delivery leased to a worker, with everything needed to send it.
#[derive(Debug, Clone)]
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
    /// Present it to [`DeliveryStore::settle`].
    pub lease: LeaseToken,
    /// For an endpoint with a rate limit: the send time reserved for this request. The sender
    /// waits until then (never longer than [`RATE_HORIZON`] after the claim).
    pub not_before: Option<Timestamp>,
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

    /// Stores an API key hash (idempotent on the hash).
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// Looks a key up by its hash.
    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError>;
    /// Whether any admin key exists.
    async fn has_admin_key(&self) -> Result<bool, StoreError>;
}

/// Endpoints.
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
    /// The enabled endpoints of `account` that take an event of `kind` for `site`
    /// (see [`Endpoint::accepts`]): shared endpoints plus those filtered to the site.
    async fn subscribers(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        kind: &EventTypeName,
    ) -> Result<Vec<Endpoint>, StoreError>;
}

/// Events, deliveries and attempts.
#[async_trait::async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Atomically stores the event plus one pending delivery (due at `now`) per target.
    /// See the module docs for idempotency.
    async fn enqueue(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
    ) -> Result<Receipt, StoreError>;
    /// One event of an account.
    async fn event(&self, account: &AccountId, id: &EventId) -> Result<Option<Event>, StoreError>;
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
    /// endpoints without; see the module docs for how the limits are kept), never returning deliveries to the endpoints in `skip` (endpoints the caller cannot send to
    /// right now: at their concurrency or rate limit, or with an open circuit).
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
    /// Deletes up to `max` events that fired before `before`, with their deliveries and attempts;
    /// returns how many events were deleted (call again until it returns less than `max`).
    async fn purge(&self, before: Timestamp, max: usize) -> Result<u64, StoreError>;
    /// A signal the store raises when another process makes work due (for example PostgreSQL
    /// `LISTEN/NOTIFY` or Redis pub/sub), so idle dispatchers wake at once instead of at their
    /// next poll. `None` (the default) when the store has no such channel; a store may start its
    /// listener on the first call, which the dispatcher makes from `run`.
    fn work_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
    /// The earliest instant a pending delivery becomes due (leased ones count at lease end).
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;
    /// Records `attempt` and moves the delivery to `next`, if `lease` is still current.
    async fn settle(
        &self,
        lease: &LeaseToken,
        attempt: &Attempt,
        next: Next,
    ) -> Result<(), StoreError>;
    /// A delivery's attempts, oldest first.
    async fn attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
    ) -> Result<Vec<Attempt>, StoreError>;
    /// Makes a delivery pending and due at `now` with a manual trigger, whatever its state.
    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery, StoreError>;
    /// Re-queues (as [`retry_delivery`](Self::retry_delivery) does) every failed delivery of the
    /// endpoint created at or after `since`; returns how many.
    async fn recover_failed(
        &self,
        account: &AccountId,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
}

/// Everything Hookline keeps. Implemented for every type that implements the three parts.
pub trait Store: CatalogStore + EndpointStore + DeliveryStore {}
impl<T: CatalogStore + EndpointStore + DeliveryStore> Store for T {}

// `Store` must stay object safe: the server and embedders hold `Arc<dyn Store>`.
const _: Option<&dyn Store> = None;

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn concurrency_room_is_the_limit_minus_live_leases() {
        assert_eq!(LimitedRoom::new(NOW, 10, Some(3), 1, None, None).take, 2);
        assert_eq!(LimitedRoom::new(NOW, 1, Some(3), 0, None, None).take, 1);
        assert_eq!(LimitedRoom::new(NOW, 10, Some(3), 5, None, None).take, 0);
        assert_eq!(
            LimitedRoom::new(NOW, 10, None, 0, None, None).send_time(0),
            None
        );
    }

    #[test]
    fn rate_room_fills_the_horizon_with_spaced_send_times() {
        // 4/s from an idle endpoint: now, +250, +500, +750 and +1000 ms fit the 1 s horizon.
        let r = LimitedRoom::new(NOW, 100, None, 0, Some(4), None);
        assert_eq!(r.take, 5);
        assert_eq!(r.send_time(0), Some(NOW));
        assert_eq!(r.send_time(4), Some(NOW.add(Duration::from_millis(1000))));
        assert_eq!(r.next_free_us(5), Some((NOW.as_millis() + 1250) * 1000));
        assert_eq!(r.next_free_us(0), None);
        // The horizon is taken: nothing more until time passes.
        let full = LimitedRoom::new(NOW, 100, None, 0, Some(4), r.next_free_us(5));
        assert_eq!(full.take, 0);
        let later = LimitedRoom::new(
            NOW.add(Duration::from_millis(250)),
            100,
            None,
            0,
            Some(4),
            r.next_free_us(5),
        );
        assert_eq!(later.take, 1);
        assert_eq!(
            later.send_time(0),
            Some(NOW.add(Duration::from_millis(1250)))
        );
        // Both limits: the smaller room wins; a 3/s step rounds up so the rate is never exceeded.
        assert_eq!(
            LimitedRoom::new(NOW, 100, Some(2), 0, Some(4), None).take,
            2
        );
        assert_eq!(rate_interval_micros(3), 333_334);
    }
}
