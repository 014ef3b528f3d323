//! The domain model: accounts, sites, event types, endpoints, events, deliveries and attempts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::id::{
    AccountId, AttemptId, AuditId, DeliveryId, EndpointId, EventId, EventTypeName, KeyId, SiteId,
};
use crate::signing::Secret;
use crate::time::Timestamp;

/// A tenant: one customer of the producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// Producer-chosen id.
    pub id: AccountId,
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

impl Account {
    /// An account created at `now`.
    pub fn new(id: AccountId, name: impl Into<String>, now: Timestamp) -> Self {
        Self {
            id,
            name: name.into(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// A location inside an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Site {
    /// The account it belongs to.
    pub account: AccountId,
    /// Producer-chosen id, unique within the account.
    pub id: SiteId,
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

impl Site {
    /// A site of `account` created at `now`.
    pub fn new(account: AccountId, id: SiteId, name: impl Into<String>, now: Timestamp) -> Self {
        Self {
            account,
            id,
            name: name.into(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// An entry of the deployment's event catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventType {
    /// The name, e.g. `rx.completed`.
    pub name: EventTypeName,
    /// What the event means.
    pub description: String,
    /// An optional JSON Schema for the event's `data`.
    pub schema: Option<serde_json::Value>,
    /// Archived types accept no new events.
    pub archived: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

impl EventType {
    /// A catalog entry created at `now`, without a schema, not archived.
    pub fn new(name: EventTypeName, description: impl Into<String>, now: Timestamp) -> Self {
        Self {
            name,
            description: description.into(),
            schema: None,
            archived: false,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Who an API key speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The producer/operator: manages everything.
    Admin,
    /// One account: sees and manages only its own data.
    Account(AccountId),
}

/// An API key as stored: only its SHA-256 hash, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiKey {
    /// Its id: `key_` + the first 16 hex digits of [`hash`](Self::hash).
    pub id: KeyId,
    /// Lower-case hex SHA-256 of the key.
    pub hash: String,
    /// The first characters of the key, for display.
    pub prefix: String,
    /// Who the key speaks for.
    pub role: Role,
    /// A name for people (`"ci deploys"`); may be empty.
    pub name: String,
    /// A read-only key may read what its role may read but change nothing.
    pub read_only: bool,
    /// The admin key the server was started with (`HOOKLINE_ADMIN_KEY`, or the one generated at
    /// first start): replaced, and so revoked, when the server starts with another one.
    pub bootstrap: bool,
    /// When it was issued.
    pub created_at: Timestamp,
    /// After this instant the key is refused; `None`: never expires.
    pub expires_at: Option<Timestamp>,
    /// When it was last accepted (kept to about a minute); `None`: never used.
    pub last_used_at: Option<Timestamp>,
}

impl ApiKey {
    /// A stored key: its hash, its display prefix, who it speaks for, when it was issued; no
    /// name, full access, no expiry, never used.
    pub fn new(hash: String, prefix: String, role: Role, created_at: Timestamp) -> Self {
        Self {
            id: KeyId::of_hash(&hash),
            hash,
            prefix,
            role,
            name: String::new(),
            read_only: false,
            bootstrap: false,
            created_at,
            expires_at: None,
            last_used_at: None,
        }
    }

    /// Whether the key is refused at `now` because it expired.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Who made a change, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Principal {
    /// Code acting for itself without a key: an embedding service, or the server at start-up.
    System,
    /// The holder of an API key.
    Key(KeyId),
    /// A dashboard or portal session (its id).
    Session(String),
}

impl Principal {
    /// `("system", "")`, `("key", "key_…")` or `("session", "<id>")`: how stores keep it.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Self::System => ("system", ""),
            Self::Key(k) => ("key", k.as_str()),
            Self::Session(s) => ("session", s.as_str()),
        }
    }

    /// The principal from its [`parts`](Self::parts); `None` for an unknown kind or a bad id.
    pub fn from_parts(kind: &str, id: &str) -> Option<Self> {
        match kind {
            "system" => Some(Self::System),
            "key" => KeyId::parse(id).ok().map(Self::Key),
            "session" => Some(Self::Session(id.to_owned())),
            _ => None,
        }
    }
}

/// One entry of the audit log: who changed what, and when. It names the changed object by its
/// id and never holds a secret value or an event's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Its id (`aud_…`).
    pub id: AuditId,
    /// The account the change belongs to; `None` (absent in JSON) for deployment-wide changes
    /// (the event-type catalog, admin keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    /// Who made it.
    pub actor: Principal,
    /// What was done, `<object>.<verb>`: `endpoint.created`, `secret.rotated`, `key.revoked`, ….
    pub action: String,
    /// The id of the changed object (an endpoint id, a key id, an event-type name, …).
    pub target: String,
    /// When.
    pub at: Timestamp,
}

impl AuditEntry {
    /// An entry with a new id.
    pub fn new(
        account: Option<AccountId>,
        actor: Principal,
        action: impl Into<String>,
        target: impl Into<String>,
        at: Timestamp,
    ) -> Self {
        Self {
            id: AuditId::generate(),
            account,
            actor,
            action: action.into(),
            target: target.into(),
            at,
        }
    }
}

/// One signing secret of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EndpointSecret {
    /// The secret (`whsec_…`).
    pub key: Secret,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops signing (set on rotation); `None` while it is current.
    pub expires_at: Option<Timestamp>,
}

impl EndpointSecret {
    /// A current secret (no end), created at `now`.
    pub fn new(key: Secret, now: Timestamp) -> Self {
        Self {
            key,
            created_at: now,
            expires_at: None,
        }
    }
}

/// An HTTPS URL owned by an account, with its filters and settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Endpoint {
    /// Generated id.
    pub id: EndpointId,
    /// Owning account.
    pub account: AccountId,
    /// Target URL.
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// Event-type filter; empty means every type.
    pub event_types: Vec<EventTypeName>,
    /// Site filter; empty means a shared endpoint for all sites (and events without a site).
    pub sites: Vec<SiteId>,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Requests per second, if limited.
    pub rate_limit: Option<u32>,
    /// Requests in flight at once, if limited.
    pub max_concurrency: Option<u32>,
    /// Deliver events that share a `queueId` in order.
    pub ordered: bool,
    /// Signing secrets, newest first.
    pub secrets: Vec<EndpointSecret>,
    /// Whether deliveries are sent.
    pub enabled: bool,
    /// Why it was disabled, when it is.
    pub disabled_reason: Option<String>,
    /// Since when every attempt to it has failed, when its last attempt failed. Kept by the
    /// store ([`QueueStore::record_failing`](crate::store::QueueStore::record_failing)), never
    /// by callers: read it with [`failing_since`](Self::failing_since); `create_endpoint` and
    /// `update_endpoint` leave it alone.
    #[serde(default)]
    pub(crate) failing_since: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

impl Endpoint {
    /// A new enabled endpoint of `account` sending to `url`, signed with `secrets` (newest
    /// first; [`EndpointSecret::new`] makes a current one), created at `now`: every event type,
    /// every site, no headers or limits, unordered. Set the other fields before storing it.
    pub fn new(
        id: EndpointId,
        account: AccountId,
        url: impl Into<String>,
        secrets: Vec<EndpointSecret>,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            account,
            url: url.into(),
            description: None,
            event_types: Vec::new(),
            sites: Vec::new(),
            headers: BTreeMap::new(),
            rate_limit: None,
            max_concurrency: None,
            ordered: false,
            secrets,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Since when every attempt to it has failed (`None` while its last attempt succeeded or it
    /// has had none): the store's failure clock, which auto-disable reads.
    pub fn failing_since(&self) -> Option<Timestamp> {
        self.failing_since
    }

    /// For store implementations: the endpoint as read back, with the failure clock the store
    /// keeps. Callers never set it (stores ignore it on writes).
    pub fn with_failing_since(mut self, since: Option<Timestamp>) -> Self {
        self.failing_since = since;
        self
    }

    /// Whether an event of `kind` for `site` goes to this endpoint (enabled flag aside).
    ///
    /// Event types: an empty filter takes every type. Sites: an endpoint with no site filter is
    /// shared and takes events of every site and events without a site; an endpoint with a site
    /// filter takes only events of those sites.
    pub fn accepts(&self, site: Option<&SiteId>, kind: &EventTypeName) -> bool {
        let type_ok = self.event_types.is_empty() || self.event_types.contains(kind);
        let site_ok = self.sites.is_empty() || site.is_some_and(|s| self.sites.contains(s));
        type_ok && site_ok
    }

    /// The secrets that sign a request made at `now`: the current one plus any rotated-out
    /// secret still inside its overlap window. A secret still sealed (read from an encrypted
    /// store without opening it) never signs.
    pub fn active_secrets(&self, now: Timestamp) -> Vec<&Secret> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now) && !s.key.is_sealed())
            .map(|s| &s.key)
            .collect()
    }
}

/// An event as the producer sent it. Immutable once accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// `evt_…`; the same on every retry.
    pub id: EventId,
    /// The account it belongs to.
    pub account: AccountId,
    /// The site, if any.
    pub site: Option<SiteId>,
    /// The event type.
    #[serde(rename = "event")]
    pub event_type: EventTypeName,
    /// The producer's reference to the work item.
    pub queue_id: Option<String>,
    /// The event's JSON object, byte for byte as accepted.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Box<RawValue>,
    /// The producer's idempotency key, if given.
    pub idempotency_key: Option<String>,
    /// When the event fired (was accepted).
    pub timestamp: Timestamp,
}

impl Event {
    /// An event of `account` and type `event_type` fired at `timestamp`, without site, queue id
    /// or idempotency key. `data` is kept byte for byte.
    pub fn new(
        id: EventId,
        account: AccountId,
        event_type: EventTypeName,
        data: Box<RawValue>,
        timestamp: Timestamp,
    ) -> Self {
        Self {
            id,
            account,
            site: None,
            event_type,
            queue_id: None,
            data,
            idempotency_key: None,
            timestamp,
        }
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.account == other.account
            && self.site == other.site
            && self.event_type == other.event_type
            && self.queue_id == other.queue_id
            && self.data.get() == other.data.get()
            && self.idempotency_key == other.idempotency_key
            && self.timestamp == other.timestamp
    }
}

/// The state of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Retries exhausted (or stopped).
    Failed,
    /// Its endpoint was removed before it succeeded.
    Cancelled,
}

impl DeliveryStatus {
    /// The lower-case name used in APIs and stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// What started an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Trigger {
    /// The retry schedule.
    Scheduled,
    /// A person or API call (retry, recover, test).
    Manual,
}

impl Trigger {
    /// The lower-case name used in APIs and stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Manual => "manual",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(Self::Scheduled),
            "manual" => Some(Self::Manual),
            _ => None,
        }
    }
}

/// One event bound for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// `dlv_…`.
    pub id: DeliveryId,
    /// The account it belongs to.
    pub account: AccountId,
    /// The event.
    pub event_id: EventId,
    /// The target endpoint.
    pub endpoint_id: EndpointId,
    /// Current state.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<Timestamp>,
    /// When the last attempt started.
    pub last_attempt_at: Option<Timestamp>,
    /// When the delivery was created (with its event).
    pub created_at: Timestamp,
}

impl Delivery {
    /// A new pending delivery of `event_id` to `endpoint_id`, due at `created_at`.
    pub fn new(
        id: DeliveryId,
        account: AccountId,
        event_id: EventId,
        endpoint_id: EndpointId,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id,
            account,
            event_id,
            endpoint_id,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(created_at),
            last_attempt_at: None,
            created_at,
        }
    }
}

/// Largest response-body excerpt kept per attempt.
pub const RESPONSE_EXCERPT_BYTES: usize = 4096;

/// One HTTP try of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    /// `atm_…`.
    pub id: AttemptId,
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// 1 for the first try.
    pub number: u32,
    /// What started it.
    pub trigger: Trigger,
    /// When it started.
    pub started_at: Timestamp,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The HTTP status, when the endpoint answered.
    pub status_code: Option<u16>,
    /// The transport error, when it did not.
    pub error: Option<String>,
    /// The first 4 KiB of the response body (lossy UTF-8).
    pub response_body: String,
}

impl Attempt {
    /// Attempt `number` of a delivery, started at `started_at`, with no outcome recorded yet
    /// (no status, no error, empty excerpt, zero duration).
    pub fn new(
        id: AttemptId,
        delivery_id: DeliveryId,
        number: u32,
        trigger: Trigger,
        started_at: Timestamp,
    ) -> Self {
        Self {
            id,
            delivery_id,
            number,
            trigger,
            started_at,
            duration_ms: 0,
            status_code: None,
            error: None,
            response_body: String::new(),
        }
    }
}

/// Filters for listing events. All given filters must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventFilter {
    /// Only this type.
    pub event_type: Option<EventTypeName>,
    /// Only this site.
    pub site: Option<SiteId>,
    /// Only this queue id.
    pub queue_id: Option<String>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Only events before this instant.
    pub until: Option<Timestamp>,
}

/// Which deliveries to list. All given filters must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryFilter {
    /// Only deliveries of this event.
    pub event: Option<EventId>,
    /// Only deliveries to this endpoint.
    pub endpoint: Option<EndpointId>,
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of events of one of these types (every type when empty).
    pub event_types: Vec<EventTypeName>,
    /// Only deliveries created at or after this instant.
    pub since: Option<Timestamp>,
    /// Only deliveries created before this instant.
    pub until: Option<Timestamp>,
}

impl DeliveryFilter {
    /// Whether `d`, a delivery of an event of type `event_type`, passes every filter but the
    /// account (which every store checks on its own).
    pub fn keeps(&self, d: &Delivery, event_type: &EventTypeName) -> bool {
        self.keeps_without_type(d)
            && (self.event_types.is_empty() || self.event_types.contains(event_type))
    }

    /// Whether `d` passes every filter but the account and the event types.
    pub fn keeps_without_type(&self, d: &Delivery) -> bool {
        self.event.as_ref().is_none_or(|e| *e == d.event_id)
            && self.endpoint.as_ref().is_none_or(|e| *e == d.endpoint_id)
            && self.status.is_none_or(|s| s == d.status)
            && self.since.is_none_or(|t| d.created_at >= t)
            && self.until.is_none_or(|t| d.created_at < t)
    }
}

/// How an attempt ended, as a list filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AttemptOutcome {
    /// The endpoint answered with a 2xx status.
    Succeeded,
    /// Anything else: another status, or no answer (a transport error).
    Failed,
}

impl AttemptOutcome {
    /// The lower-case name used in APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// How `a` ended.
    pub fn of(a: &Attempt) -> Self {
        match a.status_code {
            Some(c) if (200..300).contains(&c) => Self::Succeeded,
            _ => Self::Failed,
        }
    }
}

/// Which attempts of a delivery to list. All given filters must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptFilter {
    /// Only attempts that ended this way.
    pub outcome: Option<AttemptOutcome>,
}

/// Upper bounds, in milliseconds, of the latency buckets of [`HourlyStats`]; one more bucket
/// holds everything slower.
pub const LATENCY_BOUNDS_MS: [u64; 11] =
    [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000];
/// How many latency buckets [`HourlyStats`] keeps.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// One endpoint's settled attempts in one hour: counts of delivered (2xx) and failed attempts
/// and a latency histogram. Kept by the store as counters that attempts add to, so charts read
/// at most 24 rows instead of counting attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HourlyStats {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The hour's start (UTC, a multiple of 3,600,000 ms).
    pub hour: Timestamp,
    /// Attempts that got a 2xx.
    pub delivered: u64,
    /// Attempts that did not.
    pub failed: u64,
    /// Attempts per latency bucket ([`LATENCY_BOUNDS_MS`], then everything slower).
    pub latency: [u64; LATENCY_BUCKETS],
}

impl HourlyStats {
    /// No attempts yet, for `endpoint` in the hour holding `at`.
    pub fn new(endpoint: EndpointId, at: Timestamp) -> Self {
        Self {
            endpoint,
            hour: Self::hour_of(at),
            delivered: 0,
            failed: 0,
            latency: [0; LATENCY_BUCKETS],
        }
    }

    /// The start of the hour holding `at`.
    pub fn hour_of(at: Timestamp) -> Timestamp {
        Timestamp::from_millis(at.as_millis().div_euclid(3_600_000) * 3_600_000)
    }

    /// Counts one attempt.
    pub fn record(&mut self, delivered: bool, duration_ms: u64) {
        if delivered {
            self.delivered += 1;
        } else {
            self.failed += 1;
        }
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|b| duration_ms <= *b)
            .unwrap_or(LATENCY_BUCKETS - 1);
        self.latency[bucket] += 1;
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &HourlyStats) {
        self.delivered += other.delivered;
        self.failed += other.failed;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
    }

    /// Attempts in all.
    pub fn attempts(&self) -> u64 {
        self.delivered + self.failed
    }

    /// The latency below which a share `q` (0 to 1) of the attempts finished, as the upper bound
    /// of its bucket in ms (`None` without attempts; the slowest bucket reports its lower bound).
    pub fn percentile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(
                    LATENCY_BOUNDS_MS
                        .get(i)
                        .copied()
                        .unwrap_or(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]),
                );
            }
        }
        None
    }
}

/// Where a page of a newest-first list ends: the sort key of its last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Creation time of the last row returned.
    pub created_at: Timestamp,
    /// Id of the last row returned (ties on time break on id).
    pub id: String,
}

impl Cursor {
    /// Opaque text form for APIs.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        let raw = format!("{}:{}", self.created_at.as_millis(), self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses the text form; `None` if it is not one.
    pub fn decode(s: &str) -> Option<Self> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (ms, id) = raw.split_once(':')?;
        Some(Self {
            created_at: Timestamp::from_millis(ms.parse().ok()?),
            id: id.to_owned(),
        })
    }
}

/// A page request: at most `limit` rows strictly after `after` in newest-first order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows at most.
    pub limit: usize,
    /// Continue after this row.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// The first page of `limit` rows.
    pub fn first(limit: usize) -> Self {
        Self { limit, after: None }
    }
}

/// A page of a newest-first list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Set when more rows may follow.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order, using `key` for the cursor.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> Cursor) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(key) } else { None };
        Self { items: rows, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(types: &[&str], sites: &[&str]) -> Endpoint {
        Endpoint {
            id: EndpointId::generate(),
            account: AccountId::parse("a").unwrap(),
            url: "https://example.com/hook".into(),
            description: None,
            event_types: types
                .iter()
                .map(|t| EventTypeName::parse(t).unwrap())
                .collect(),
            sites: sites.iter().map(|s| SiteId::parse(s).unwrap()).collect(),
            headers: BTreeMap::new(),
            rate_limit: None,
            max_concurrency: None,
            ordered: false,
            secrets: vec![],
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
        }
    }

    #[test]
    fn accepts_follows_type_and_site_filters() {
        let done = EventTypeName::parse("rx.completed").unwrap();
        let failed = EventTypeName::parse("rx.failed").unwrap();
        let s1 = SiteId::parse("store-1").unwrap();
        let s2 = SiteId::parse("store-2").unwrap();

        let shared_all = endpoint(&[], &[]);
        assert!(shared_all.accepts(None, &done));
        assert!(shared_all.accepts(Some(&s1), &failed));

        let site1_done = endpoint(&["rx.completed"], &["store-1"]);
        assert!(site1_done.accepts(Some(&s1), &done));
        assert!(!site1_done.accepts(Some(&s2), &done));
        assert!(!site1_done.accepts(Some(&s1), &failed));
        assert!(
            !site1_done.accepts(None, &done),
            "site endpoints skip site-less events"
        );
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            created_at: Timestamp::from_millis(42),
            id: "evt_x:y".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("%%%"), None);
        assert_eq!(Cursor::decode("bm9jb2xvbg"), None);
    }

    #[test]
    fn page_from_rows_sets_next_only_when_more() {
        let key = |n: &i64| Cursor {
            created_at: Timestamp::from_millis(*n),
            id: n.to_string(),
        };
        let p = Page::from_rows(vec![5, 4, 3], 2, key);
        assert_eq!(p.items, vec![5, 4]);
        assert_eq!(p.next.unwrap().id, "4");
        let p = Page::from_rows(vec![5, 4], 2, key);
        assert!(p.next.is_none());
    }
}
