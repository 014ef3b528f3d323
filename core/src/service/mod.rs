//! The service façade: every operation Hookline offers, with its rules, in one place.
//!
//! [`Hookline`] is what every front end calls — the JSON API, a dashboard, a command line, or
//! a Rust service that embeds Hookline. It holds the [`Dispatcher`] (and through it the store,
//! the transport and the [`Clock`]) plus a [`ServiceConfig`], and offers:
//!
//! - accounts and their sites ([`create_account`](Hookline::create_account), …);
//! - API keys of the admin and of each account: issue with a name, an expiry, read-only or not,
//!   list, revoke ([`create_key`](Hookline::create_key), [`list_keys`](Hookline::list_keys),
//!   [`revoke_key`](Hookline::revoke_key)); [`authenticate`](Hookline::authenticate) turns a
//!   presented key into an [`Actor`] and notes its use; the bootstrap admin key is
//!   [`ensure_admin_key`](Hookline::ensure_admin_key)'s;
//! - the audit log ([`list_audit`](Hookline::list_audit), [`list_all_audit`](Hookline::list_all_audit)):
//!   every operation below that changes something records who did it (see the `audit` module);
//! - the event-type catalog ([`create_event_type`](Hookline::create_event_type), …);
//! - endpoints: create, update, rotate the secret, enable, disable, send a test event, recover
//!   failed deliveries ([`create_endpoint`](Hookline::create_endpoint), …);
//! - events: publish one or a batch, with every check (catalog, archived types, sites, the
//!   shape and size of `data`, idempotency keys) ([`publish`](Hookline::publish), …). A batch
//!   ([`publish_batch`](Hookline::publish_batch)) is stored all or nothing, in one atomic store
//!   write, within two limits checked before anything is stored:
//!   [`max_batch`](ServiceConfig::max_batch) events (`invalid_batch`) and
//!   [`max_batch_deliveries`](ServiceConfig::max_batch_deliveries) deliveries in all, its events
//!   times their subscribed endpoints (`batch_too_large`);
//! - deliveries: look up, list, retry ([`retry_delivery`](Hookline::retry_delivery), …), and
//!   replay an account's deliveries of a time window in a background job
//!   ([`start_replay`](Hookline::start_replay), [`replay`](Hookline::replay));
//! - lists: every listing takes one [`ListQuery`] (paging and filters), refused alike when it
//!   names a filter the list does not take.
//!
//! Changes (`AccountPatch`, `SitePatch`, `EventTypePatch`, `EndpointPatch`) are JSON Merge
//! Patches (RFC 7396): an absent field stays as it is, a field with a value is set, and `null`
//! removes a field, which then takes the value it has when left out at creation (a name goes
//! back to the id, a description to none or empty, a filter to none, a limit to none, `ordered`
//! and `archived` to false, `enabled` to true). A field required at creation (an endpoint's
//! `url`) cannot be removed: `null` is refused. Objects merge member by member: in an
//! endpoint's `headers`, a header with a value is set, one with `null` removed, the others stay.
//!
//! Every operation takes the caller first, as an [`Actor`]: the façade checks what it may do
//! (an account's key reaches only its own account; some operations need the admin; a read-only
//! key changes nothing, `read_only_key`), and names it in the audit log. Embedders acting for
//! themselves pass [`Actor::Admin`] (audited as [`Principal::System`]); front ends pass the
//! [`Actor::Credential`] that [`authenticate`](Hookline::authenticate) returned, or one they
//! build for a session of their own. Inputs are plain structs holding raw text
//! ([`NewEndpoint`], [`NewEvent`], …) so that every rule answers with a [`ServiceError`] whose
//! [`code`](ServiceError::code) says what was wrong; they deserialize from the JSON API's
//! request bodies. Time always comes from the dispatcher's clock.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn hookline_core::store::Store>, transport: hookline_core::transport::BoxTransport) -> Result<(), hookline_core::service::ServiceError> {
//! use hookline_core::service::{Actor, Hookline, NewAccount, NewEndpoint, NewEvent, NewEventType};
//!
//! let hookline = Hookline::builder(store, transport).build();
//! let admin = &Actor::Admin;
//! hookline.create_event_type(admin, NewEventType::new("order.paid")).await?;
//! hookline.create_account(admin, NewAccount::new("acme")).await?;
//! let endpoint = hookline
//!     .create_endpoint(admin, "acme", NewEndpoint::new("https://example.com/hook"))
//!     .await?;
//! let data = serde_json::json!({ "order": 42 });
//! let event = NewEvent::json("order.paid", &data).expect("serializable");
//! let receipt = hookline.publish(admin, "acme", event).await?;
//! assert_eq!(receipt.deliveries.len(), 1, "one delivery, to {}", endpoint.id);
//!
//! // Refusals say what was wrong, with the JSON API's codes.
//! let unknown = NewEvent::json("order.lost", &data).expect("serializable");
//! let err = hookline.publish(admin, "acme", unknown).await.unwrap_err();
//! assert_eq!(err.code(), "unknown_event_type");
//! # Ok(()) }
//! ```
//!
//! The engine that sends the deliveries runs apart: `hookline.dispatcher().run(shutdown)`.

use std::sync::Arc;
use std::time::Duration;

use crate::dispatcher::{Dispatcher, DispatcherBuilder, DispatcherConfig, PublishError};
use crate::id::{AccountId, InvalidId};
use crate::model::{Account, AuditEntry, Principal, Role};
use crate::retry::RetryPolicy;
use crate::signing::Signer;
use crate::store::{Store, StoreError};
use crate::time::{Clock, Timestamp};
use crate::transport::{BoxError, BoxTransport};

mod accounts;
mod audit;
mod catalog;
mod deliveries;
mod endpoints;
mod events;
pub mod keys;
mod lists;
mod replay;
pub mod schema;
pub mod validate;

pub use accounts::{AccountPatch, IssuedKey, NewAccount, NewKey, NewSite, SitePatch};
pub use catalog::{EventTypePatch, NewEventType};
pub use endpoints::{
    EndpointPatch, HEADER_MASK, NewEndpoint, SecretRotation, TEST_EVENT_TYPE, mask_header_value,
};
pub use events::NewEvent;
pub use lists::ListQuery;
pub use replay::{
    KEPT_REPLAYS, MAX_REPLAY_TYPES, MAX_RUNNING_REPLAYS, NewReplay, REPLAY_BATCH, ReplayJob,
    ReplayState,
};
pub use schema::Violation;

/// Who is asking. Every operation of [`Hookline`] takes one and checks what it may do, and
/// every change it makes is written to the audit log under the actor's
/// [`principal`](Self::principal).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Actor {
    /// The producer or operator acting in-process (an embedding service): may do everything.
    /// Audited as [`Principal::System`].
    Admin,
    /// In-process code acting for one account: sees and manages only its own endpoints, sites,
    /// events and deliveries. Audited as [`Principal::System`].
    Account(AccountId),
    /// A caller proven by a credential — an API key ([`Hookline::authenticate`]) or a dashboard
    /// session — with its role, and read-only or not.
    Credential(Credential),
}

/// What a credential proves: who holds it (for the audit log), whom it speaks for, and whether
/// it may change anything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credential {
    /// Who holds it: [`Principal::Key`] for an API key, [`Principal::Session`] for a session.
    pub principal: Principal,
    /// Whom it speaks for.
    pub role: Role,
    /// A read-only credential reads what its role may read and changes nothing (`read_only_key`).
    pub read_only: bool,
}

impl Credential {
    /// A credential of `principal` speaking for `role`, with full access.
    pub fn new(principal: Principal, role: Role) -> Self {
        Self {
            principal,
            role,
            read_only: false,
        }
    }

    /// Makes it read-only.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }
}

impl Actor {
    /// The account the actor is confined to; `None` for the admin.
    pub fn account(&self) -> Option<&AccountId> {
        match self {
            Self::Admin => None,
            Self::Account(a) => Some(a),
            Self::Credential(c) => match &c.role {
                Role::Admin => None,
                Role::Account(a) => Some(a),
            },
        }
    }

    /// Who the audit log names for the actor's changes.
    pub fn principal(&self) -> Principal {
        match self {
            Self::Admin | Self::Account(_) => Principal::System,
            Self::Credential(c) => c.principal.clone(),
        }
    }

    /// Whether the actor may only read.
    pub fn is_read_only(&self) -> bool {
        matches!(self, Self::Credential(c) if c.read_only)
    }

    /// Refuses anyone but the admin.
    pub fn require_admin(&self) -> Result<(), ServiceError> {
        match self.account() {
            None => Ok(()),
            Some(_) => Err(ServiceError::Forbidden {
                message: "only the admin key may do this".into(),
            }),
        }
    }

    /// Refuses anyone but the admin and `account` itself.
    pub fn require_account(&self, account: &AccountId) -> Result<(), ServiceError> {
        match self.account() {
            None => Ok(()),
            Some(a) if a == account => Ok(()),
            Some(_) => Err(ServiceError::Forbidden {
                message: "this key belongs to another account".into(),
            }),
        }
    }

    /// Refuses a read-only actor: every operation that changes something calls it first.
    pub fn require_write(&self) -> Result<(), ServiceError> {
        if self.is_read_only() {
            return Err(ServiceError::ReadOnly {
                message: "this key is read-only: it may not change anything".into(),
            });
        }
        Ok(())
    }
}

impl From<Role> for Actor {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => Self::Admin,
            Role::Account(a) => Self::Account(a),
        }
    }
}

/// Why an operation was refused or failed. Each kind has a stable [`code`](Self::code) (the one
/// the JSON API answers with) and a message for people.
///
/// | kind | JSON API status | codes |
/// | --- | --- | --- |
/// | `NotFound` | 404 | `account_not_found`, `site_not_found`, `event_type_not_found`, `endpoint_not_found`, `event_not_found`, `delivery_not_found`, `not_found` |
/// | `Invalid` | 422 | `invalid_idempotency_key`, `unknown_event_type`, `event_type_archived`, `unknown_site`, `invalid_data`, `invalid_url`, `insecure_url`, `invalid_header`, `reserved_header`, `invalid_limit`, `invalid_secret`, `invalid_schema`, `field_too_long`, `invalid_text`, `too_many_items`, `invalid_batch`, `batch_too_large`, `invalid_body` |
/// | `BadRequest` | 400 | `invalid_id`, `invalid_limit` (paging), `invalid_cursor`, `invalid_query` |
/// | `Forbidden` | 403 | `forbidden` |
/// | `ReadOnly` | 403 | `read_only_key` |
/// | `Conflict` | 409 | `account_exists`, `site_exists`, `event_type_exists`, `already_exists`, `idempotency_conflict` |
/// | `DataViolations` | 422 | `invalid_data` (with the violations of the type's JSON Schema) |
/// | `PayloadTooLarge` | 413 | `payload_too_large` |
/// | `InBatch` | the item's | the item's |
/// | `Unavailable` | 503 | `store_unavailable` |
/// | `Internal` | 500 | `internal` |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The thing asked for does not exist (for this caller's account).
    #[error("{message}")]
    NotFound {
        /// Stable code, e.g. `endpoint_not_found`.
        code: &'static str,
        /// What was not found.
        message: String,
    },
    /// The input is well formed but not acceptable (an unknown event type, an `http` URL, …).
    #[error("{message}")]
    Invalid {
        /// Stable code, e.g. `unknown_event_type`.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The input is malformed (an id that is not an id, a bad page limit or cursor, …).
    #[error("{message}")]
    BadRequest {
        /// Stable code, e.g. `invalid_id`.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The caller may not do this.
    #[error("{message}")]
    Forbidden {
        /// Why.
        message: String,
    },
    /// A read-only key asked for a change.
    #[error("{message}")]
    ReadOnly {
        /// Why.
        message: String,
    },
    /// The thing to create exists already.
    #[error("{message}")]
    Conflict {
        /// Stable code, e.g. `account_exists`.
        code: &'static str,
        /// What exists.
        message: String,
    },
    /// An event's `data` is larger than [`ServiceConfig::max_event_bytes`].
    #[error("{message}")]
    PayloadTooLarge {
        /// What was too large.
        message: String,
    },
    /// One item of a batch was refused; nothing of the batch was stored.
    #[error("item {index}: rejected ({})", error.code())]
    InBatch {
        /// The item's position in the batch, from 0.
        index: usize,
        /// Why it was refused.
        #[source]
        error: Box<ServiceError>,
    },
    /// An event's `data` does not match its type's JSON Schema (`invalid_data`).
    #[error("`data` does not match the schema of `{event_type}`: {}", first_violation(.violations))]
    DataViolations {
        /// The event type whose schema was broken.
        event_type: String,
        /// The first [`schema::MAX_VIOLATIONS`] violations, each with its JSON pointer in `data`.
        violations: Vec<Violation>,
    },
    /// The store is unreachable, overloaded or did not answer in time. Whether the request
    /// changed anything is [`ServiceError::changed_nothing`]: known for a store that refused at
    /// once, unknown for one that stopped answering mid-way.
    #[error("{}", unavailable_text(.0))]
    Unavailable(#[source] StoreError),
    /// Any other failure (of the store, or a bug).
    #[error("internal error")]
    Internal(#[source] BoxError),
}

fn first_violation(v: &[Violation]) -> String {
    match v.first() {
        Some(v) if v.pointer.is_empty() => v.message.clone(),
        Some(v) => format!("at `{}`: {}", v.pointer, v.message),
        None => String::new(),
    }
}

fn unavailable_text(e: &StoreError) -> &'static str {
    if e.changed_nothing() {
        "the store is unavailable; nothing was changed, try again later"
    } else {
        "the store did not confirm the write, so it may or may not have been applied; try again \
         later with the same Idempotency-Key (if the first try was stored, the answer is its \
         receipt with `duplicate: true`)"
    }
}

impl ServiceError {
    /// For [`Unavailable`](Self::Unavailable): whether the request is known to have changed
    /// nothing (false when the store may have applied it). True for every other error, which
    /// the façade raises before writing.
    pub fn changed_nothing(&self) -> bool {
        match self {
            Self::Unavailable(e) => e.changed_nothing(),
            Self::InBatch { error, .. } => error.changed_nothing(),
            Self::Internal(_) => false,
            _ => true,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { code, .. }
            | Self::Invalid { code, .. }
            | Self::BadRequest { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::Forbidden { .. } => "forbidden",
            Self::ReadOnly { .. } => "read_only_key",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::DataViolations { .. } => "invalid_data",
            Self::InBatch { error, .. } => error.code(),
            Self::Unavailable(_) => "store_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    /// A store conflict as `code`; any other store error as usual.
    pub(crate) fn conflict_as(
        code: &'static str,
        message: impl FnOnce() -> String,
    ) -> impl FnOnce(StoreError) -> Self {
        move |e| match e {
            StoreError::Conflict(_) => Self::Conflict {
                code,
                message: message(),
            },
            other => other.into(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found("not_found", format!("{what} not found")),
            StoreError::Conflict(what) => Self::Conflict {
                code: "already_exists",
                message: format!("{what} already exists"),
            },
            StoreError::Unavailable(_) | StoreError::Unconfirmed(_) => Self::Unavailable(e),
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<PublishError> for ServiceError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Store(s) => s.into(),
            PublishError::TooManyDeliveries { deliveries, limit } => Self::invalid(
                "batch_too_large",
                format!(
                    "the batch would create {deliveries} deliveries (events × subscribed \
                     endpoints); at most {limit} are allowed: send fewer events per batch"
                ),
            ),
        }
    }
}

impl From<InvalidId> for ServiceError {
    fn from(e: InvalidId) -> Self {
        Self::bad_request("invalid_id", e.to_string())
    }
}

/// Limits and policies the façade enforces.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// Largest accepted event `data` in bytes (default 256 KiB).
    pub max_event_bytes: usize,
    /// Whether endpoint URLs may be plain `http` (default no).
    pub allow_http: bool,
    /// How long a rotated-out secret keeps signing (default 24 h).
    pub rotation_overlap: Duration,
    /// Most events in one batch (default 100).
    pub max_batch: usize,
    /// Most deliveries one batch may create: the sum over its events of their subscribed
    /// endpoints (default 10,000). A larger batch is refused with `batch_too_large`, nothing
    /// stored.
    pub max_batch_deliveries: usize,
    /// How long publishing (its checks and its write) may wait for the store before answering
    /// [`ServiceError::Unavailable`] (default 5 s): an unreachable or stalled store is reported
    /// within this time, as unconfirmed once the write had been sent.
    pub write_timeout: Duration,
    /// Which addresses an endpoint URL may name literally (`https://10.0.0.5/hook`): the
    /// transport's SSRF rule, so that an endpoint it would never connect to is refused at
    /// creation (`forbidden_address`) instead of failing for a day. Host names are still checked
    /// when connecting. `None` (the default) accepts any address.
    pub endpoint_addresses: Option<AddressRule>,
}

/// A rule saying whether an IP address may be connected to (see
/// [`ServiceConfig::endpoint_addresses`]).
#[derive(Clone)]
pub struct AddressRule(Arc<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>);

impl AddressRule {
    /// A rule from a predicate: `true` means the address may be used.
    pub fn new(allows: impl Fn(std::net::IpAddr) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(allows))
    }

    /// Whether `ip` may be used.
    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        (self.0)(ip)
    }
}

impl std::fmt::Debug for AddressRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressRule(..)")
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_event_bytes: 256 * 1024,
            allow_http: false,
            rotation_overlap: Duration::from_secs(24 * 3600),
            max_batch: 100,
            max_batch_deliveries: 10_000,
            write_timeout: Duration::from_secs(5),
            endpoint_addresses: None,
        }
    }
}

impl ServiceConfig {
    /// Sets the largest accepted event `data` in bytes.
    pub fn with_max_event_bytes(mut self, n: usize) -> Self {
        self.max_event_bytes = n;
        self
    }

    /// Allows (or forbids) plain `http` endpoint URLs.
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Sets which addresses endpoint URLs may name literally.
    pub fn with_endpoint_addresses(mut self, rule: AddressRule) -> Self {
        self.endpoint_addresses = Some(rule);
        self
    }

    /// Sets how long publishing may wait for the store.
    pub fn with_write_timeout(mut self, d: Duration) -> Self {
        self.write_timeout = d;
        self
    }

    /// Sets how long a rotated-out secret keeps signing.
    pub fn with_rotation_overlap(mut self, d: Duration) -> Self {
        self.rotation_overlap = d;
        self
    }

    /// Sets the most events in one batch.
    pub fn with_max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// Sets the most deliveries one batch may create.
    pub fn with_max_batch_deliveries(mut self, n: usize) -> Self {
        self.max_batch_deliveries = n;
        self
    }
}

/// Largest page size.
pub const MAX_PAGE_LIMIT: usize = 250;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_LIMIT: usize = 50;

/// The service façade. Cheap to clone; clones share one service.
#[derive(Debug, Clone)]
pub struct Hookline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dispatcher: Dispatcher,
    config: ServiceConfig,
    replays: replay::Replays,
    /// When this process last wrote each key's `last_used_at` (by hash).
    key_touches: std::sync::Mutex<std::collections::HashMap<String, Timestamp>>,
    schemas: schema::SchemaCache,
}

impl Hookline {
    /// The façade over `dispatcher` (which holds the store, the transport and the clock).
    pub fn new(dispatcher: Dispatcher, config: ServiceConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                dispatcher,
                config,
                replays: replay::Replays::default(),
                key_touches: Default::default(),
                schemas: schema::SchemaCache::default(),
            }),
        }
    }

    /// Starts building the façade and its dispatcher over `store` and `transport`.
    pub fn builder(store: Arc<dyn Store>, transport: BoxTransport) -> HooklineBuilder {
        HooklineBuilder {
            dispatcher: Dispatcher::builder(store, transport),
            config: ServiceConfig::default(),
        }
    }

    /// The delivery engine: run it with [`Dispatcher::run`].
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.inner.dispatcher
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.inner.dispatcher.store()
    }

    /// The limits and policies.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// The compiled JSON Schemas of the catalog.
    pub(crate) fn schemas(&self) -> &schema::SchemaCache {
        &self.inner.schemas
    }

    /// The current instant, from the dispatcher's clock.
    pub(crate) fn now(&self) -> Timestamp {
        self.inner.dispatcher.clock().now()
    }

    /// Writes an audit entry for a change `by` just made. The change is done, so a failure to
    /// record it is logged (at error level) rather than answered.
    pub(crate) async fn audit(
        &self,
        by: &Actor,
        account: Option<&AccountId>,
        action: &str,
        target: &str,
    ) {
        let entry = AuditEntry::new(account.cloned(), by.principal(), action, target, self.now());
        if let Err(e) = self.store().record_audit(&entry).await {
            tracing::error!(error = %e, action, target, "recording an audit entry failed");
        }
    }

    /// Loads an account `by` may reach: `invalid_id`, `forbidden` or `account_not_found`.
    pub(crate) async fn reach_account(
        &self,
        by: &Actor,
        account: &str,
    ) -> Result<Account, ServiceError> {
        let id = AccountId::parse(account)?;
        by.require_account(&id)?;
        self.store().account(&id).await?.ok_or_else(|| {
            ServiceError::not_found("account_not_found", format!("no account `{id}`"))
        })
    }
}

/// Builds a [`Hookline`] and its [`Dispatcher`].
#[derive(Debug)]
pub struct HooklineBuilder {
    dispatcher: DispatcherBuilder,
    config: ServiceConfig,
}

impl HooklineBuilder {
    /// Replaces the limits and policies.
    pub fn config(mut self, config: ServiceConfig) -> Self {
        self.config = config;
        self
    }

    /// Allows (or forbids) plain `http` endpoint URLs.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.config.allow_http = allow;
        self
    }

    /// Sets the largest accepted event `data` in bytes.
    pub fn max_event_bytes(mut self, n: usize) -> Self {
        self.config.max_event_bytes = n;
        self
    }

    /// Replaces the dispatcher's signer.
    pub fn signer(mut self, s: impl Signer) -> Self {
        self.dispatcher = self.dispatcher.signer(s);
        self
    }

    /// Replaces the dispatcher's retry policy.
    pub fn retry_policy(mut self, p: impl RetryPolicy) -> Self {
        self.dispatcher = self.dispatcher.retry_policy(p);
        self
    }

    /// Replaces the clock (of the dispatcher and the façade).
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.dispatcher = self.dispatcher.clock(c);
        self
    }

    /// Replaces the dispatcher's settings.
    pub fn dispatcher_config(mut self, c: DispatcherConfig) -> Self {
        self.dispatcher = self.dispatcher.config(c);
        self
    }

    /// The façade.
    pub fn build(self) -> Hookline {
        Hookline::new(self.dispatcher.build(), self.config)
    }
}

/// Deserializes a field that may be `null`: present (`Some`, possibly `Some(None)`) differs
/// from absent (`None`, with `#[serde(default)]`), as a PATCH needs.
fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// A field of a merge patch that cannot be removed: present with a value, or absent (`None`);
/// `null` is refused.
fn required<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    match <Option<T> as serde::Deserialize>::deserialize(d)? {
        Some(v) => Ok(Some(v)),
        None => Err(serde::de::Error::custom(
            "this field is required: it can be changed but not removed with `null`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_reach_what_they_may() {
        let a = AccountId::parse("a").unwrap();
        let b = AccountId::parse("b").unwrap();
        assert!(Actor::Admin.require_admin().is_ok());
        assert!(Actor::Admin.require_account(&a).is_ok());
        let key_a = Actor::from(Role::Account(a.clone()));
        assert!(key_a.require_account(&a).is_ok());
        assert_eq!(key_a.require_account(&b).unwrap_err().code(), "forbidden");
        assert_eq!(key_a.require_admin().unwrap_err().code(), "forbidden");
    }

    #[test]
    fn paging_takes_1_to_250_rows_and_known_cursors() {
        use crate::model::Cursor;
        let first = ListQuery::new().request().unwrap();
        assert_eq!((first.limit, first.after), (DEFAULT_PAGE_LIMIT, None));
        assert_eq!(ListQuery::new().limit(250).request().unwrap().limit, 250);
        for bad in [0, MAX_PAGE_LIMIT + 1] {
            let e = ListQuery::new().limit(bad).request().unwrap_err();
            assert_eq!(e.code(), "invalid_limit", "{bad}");
        }
        let cursor = Cursor {
            created_at: Timestamp::from_millis(7),
            id: "evt_x".into(),
        };
        let next = ListQuery::new().cursor(cursor.encode()).request().unwrap();
        assert_eq!(next.after, Some(cursor));
        let e = ListQuery::new().cursor("%%").request().unwrap_err();
        assert_eq!(e.code(), "invalid_cursor");
    }

    #[test]
    fn errors_keep_their_codes() {
        let e = ServiceError::from(StoreError::NotFound("delivery"));
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("not_found", "delivery not found")
        );
        assert_eq!(
            ServiceError::from(StoreError::Conflict("site")).code(),
            "already_exists"
        );
        assert_eq!(
            ServiceError::from(StoreError::Unavailable("down".into())).code(),
            "store_unavailable"
        );
        assert_eq!(ServiceError::from(StoreError::LeaseLost).code(), "internal");
        let conflict = ServiceError::conflict_as("site_exists", || "site `s` exists".into());
        let e = conflict(StoreError::Conflict("site"));
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("site_exists", "site `s` exists")
        );
        let e = ServiceError::InBatch {
            index: 2,
            error: Box::new(ServiceError::invalid("unknown_site", "no site")),
        };
        assert_eq!(e.code(), "unknown_site");
        assert_eq!(e.to_string(), "item 2: rejected (unknown_site)");
        let e = ServiceError::from(AccountId::parse("").unwrap_err());
        assert_eq!(e.code(), "invalid_id");
    }

    #[test]
    fn config_defaults_and_setters() {
        let c = ServiceConfig::default();
        assert_eq!(
            (
                c.max_event_bytes,
                c.allow_http,
                c.rotation_overlap,
                c.max_batch
            ),
            (256 * 1024, false, Duration::from_secs(24 * 3600), 100)
        );
        assert_eq!(c.max_batch_deliveries, 10_000);
        let c = c
            .with_max_event_bytes(10)
            .with_allow_http(true)
            .with_rotation_overlap(Duration::from_secs(1))
            .with_max_batch(3)
            .with_max_batch_deliveries(7);
        assert_eq!(c.max_batch_deliveries, 7);
        assert_eq!(
            (
                c.max_event_bytes,
                c.allow_http,
                c.rotation_overlap,
                c.max_batch
            ),
            (10, true, Duration::from_secs(1), 3)
        );
    }
}
