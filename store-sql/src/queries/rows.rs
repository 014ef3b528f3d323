//! Row → model conversions, one function per model type. Timestamps are integer milliseconds;
//! headers, secrets, event data and schemas are JSON text; an endpoint's event types and sites
//! are stored the dialect's way (`dialect::names`).

use hookline_core::model::{
    Account, ApiKey, Attempt, AuditEntry, Delivery, DeliveryStatus, Endpoint, Event, EventType,
    Principal, Role, Site, Trigger,
};
use hookline_core::transport::BoxError;
use hookline_core::{
    AccountId, AttemptId, AuditId, DeliveryId, EndpointId, EventId, EventTypeName, SiteId,
    Timestamp,
};
use serde_json::value::RawValue;
use sqlx::Row as _;

use super::dialect::{self, Db, Row};
use crate::error::{DbError, DbResult};

pub use super::dialect::{DELIVERY_COLS, ENDPOINT_COLS};

/// An account's columns.
pub const ACCOUNT_COLS: &str = "id, name, created_at, updated_at";
/// A site's columns.
pub const SITE_COLS: &str = "account, id, name, created_at, updated_at";
/// An event type's columns.
pub const EVENT_TYPE_COLS: &str =
    "name, description, json_schema, archived, created_at, updated_at";
/// An API key's columns.
pub const API_KEY_COLS: &str = "id, hash, prefix, account, name, read_only, bootstrap, \
    created_at, expires_at, last_used_at";
/// An audit entry's columns.
pub const AUDIT_COLS: &str = "id, account, actor_kind, actor_id, action, target, at";
/// An event's columns.
pub const EVENT_COLS: &str =
    "id, account, site, event_type, queue_id, data, idempotency_key, fired_at";
/// An attempt's columns.
pub const ATTEMPT_COLS: &str = "id, delivery_id, number, trigger_kind, started_at, \
    duration_ms, status_code, error, response_body";

/// The value of `col`.
pub fn get<'r, T>(row: &'r Row, col: &'static str) -> DbResult<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    Ok(row.try_get(col)?)
}

fn ts(row: &Row, col: &'static str) -> DbResult<Timestamp> {
    Ok(Timestamp::from_millis(get::<i64>(row, col)?))
}

fn opt_ts(row: &Row, col: &'static str) -> DbResult<Option<Timestamp>> {
    Ok(get::<Option<i64>>(row, col)?.map(Timestamp::from_millis))
}

/// The text of `col` parsed with `parse` (a parse failure is [`DbError::Corrupt`]).
fn parsed<T, E>(
    row: &Row,
    col: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> DbResult<T>
where
    E: Into<BoxError>,
{
    parse(get::<&str>(row, col)?).map_err(|e| DbError::corrupt(col, e))
}

fn opt_parsed<T, E>(
    row: &Row,
    col: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> DbResult<Option<T>>
where
    E: Into<BoxError>,
{
    get::<Option<&str>>(row, col)?
        .map(|s| parse(s).map_err(|e| DbError::corrupt(col, e)))
        .transpose()
}

fn json<T: serde::de::DeserializeOwned>(row: &Row, col: &'static str) -> DbResult<T> {
    parsed(row, col, |s| serde_json::from_str::<T>(s))
}

/// An unsigned model value from a signed column of type `S`.
fn uint<T, S>(row: &Row, col: &'static str) -> DbResult<T>
where
    S: for<'r> sqlx::Decode<'r, Db> + sqlx::Type<Db>,
    T: TryFrom<S>,
    T::Error: Into<BoxError>,
{
    T::try_from(get::<S>(row, col)?).map_err(|e| DbError::corrupt(col, e))
}

fn opt_uint<T, S>(row: &Row, col: &'static str) -> DbResult<Option<T>>
where
    S: for<'r> sqlx::Decode<'r, Db> + sqlx::Type<Db>,
    T: TryFrom<S>,
    T::Error: Into<BoxError>,
{
    get::<Option<S>>(row, col)?
        .map(|v| T::try_from(v).map_err(|e| DbError::corrupt(col, e)))
        .transpose()
}

/// Encodes a model value as JSON text for a column.
pub fn to_json<T: serde::Serialize>(v: &T, col: &'static str) -> DbResult<String> {
    serde_json::to_string(v).map_err(|e| DbError::corrupt(col, e))
}

#[derive(Debug, thiserror::Error)]
#[error("unknown {0} {1:?}")]
struct UnknownName(&'static str, String);

/// An account.
pub fn account(row: &Row) -> DbResult<Account> {
    let mut a = Account::new(
        parsed(row, "id", AccountId::parse)?,
        get::<String>(row, "name")?,
        ts(row, "created_at")?,
    );
    a.updated_at = ts(row, "updated_at")?;
    Ok(a)
}

/// A site.
pub fn site(row: &Row) -> DbResult<Site> {
    let mut site = Site::new(
        parsed(row, "account", AccountId::parse)?,
        parsed(row, "id", SiteId::parse)?,
        get::<String>(row, "name")?,
        ts(row, "created_at")?,
    );
    site.updated_at = ts(row, "updated_at")?;
    Ok(site)
}

/// An event type.
pub fn event_type(row: &Row) -> DbResult<EventType> {
    let mut et = EventType::new(
        parsed(row, "name", EventTypeName::parse)?,
        get::<String>(row, "description")?,
        ts(row, "created_at")?,
    );
    et.schema = opt_parsed(row, "json_schema", |s| {
        serde_json::from_str::<serde_json::Value>(s)
    })?;
    et.archived = get(row, "archived")?;
    et.updated_at = ts(row, "updated_at")?;
    Ok(et)
}

/// An API key (no account: the admin's). Its id is computed from its hash, as when stored.
pub fn api_key(row: &Row) -> DbResult<ApiKey> {
    let role = match opt_parsed(row, "account", AccountId::parse)? {
        Some(a) => Role::Account(a),
        None => Role::Admin,
    };
    let mut key = ApiKey::new(
        get(row, "hash")?,
        get(row, "prefix")?,
        role,
        ts(row, "created_at")?,
    );
    key.name = get(row, "name")?;
    key.read_only = get(row, "read_only")?;
    key.bootstrap = get(row, "bootstrap")?;
    key.expires_at = opt_ts(row, "expires_at")?;
    key.last_used_at = opt_ts(row, "last_used_at")?;
    Ok(key)
}

/// An audit entry (selected with [`AUDIT_COLS`]).
pub fn audit_entry(row: &Row) -> DbResult<AuditEntry> {
    let kind: String = get(row, "actor_kind")?;
    let actor_id: String = get(row, "actor_id")?;
    let actor = Principal::from_parts(&kind, &actor_id)
        .ok_or_else(|| DbError::corrupt("actor_kind", format!("unknown actor `{kind}`")))?;
    let mut e = AuditEntry::new(
        opt_parsed(row, "account", AccountId::parse)?,
        actor,
        get::<String>(row, "action")?,
        get::<String>(row, "target")?,
        ts(row, "at")?,
    );
    e.id = parsed(row, "id", AuditId::parse)?;
    Ok(e)
}

/// An endpoint (selected with [`ENDPOINT_COLS`]).
pub fn endpoint(row: &Row) -> DbResult<Endpoint> {
    let mut ep = Endpoint::new(
        parsed(row, "id", EndpointId::parse)?,
        parsed(row, "account", AccountId::parse)?,
        get::<String>(row, "url")?,
        json(row, "secrets")?,
        ts(row, "created_at")?,
    );
    ep.description = get(row, "description")?;
    ep.event_types = dialect::names(row, "event_types", EventTypeName::parse)?;
    ep.sites = dialect::names(row, "sites", SiteId::parse)?;
    ep.headers = json(row, "headers")?;
    ep.rate_limit = opt_uint::<_, i64>(row, "rate_limit")?;
    ep.max_concurrency = opt_uint::<_, i64>(row, "max_concurrency")?;
    ep.ordered = get(row, "ordered")?;
    ep.enabled = get(row, "enabled")?;
    ep.disabled_reason = get(row, "disabled_reason")?;
    ep.updated_at = ts(row, "updated_at")?;
    Ok(ep.with_failing_since(opt_ts(row, "failing_since")?))
}

/// An event.
pub fn event(row: &Row) -> DbResult<Event> {
    let mut ev = Event::new(
        parsed(row, "id", EventId::parse)?,
        parsed(row, "account", AccountId::parse)?,
        parsed(row, "event_type", EventTypeName::parse)?,
        RawValue::from_string(get(row, "data")?).map_err(|e| DbError::corrupt("data", e))?,
        ts(row, "fired_at")?,
    );
    ev.site = opt_parsed(row, "site", SiteId::parse)?;
    ev.queue_id = get(row, "queue_id")?;
    ev.idempotency_key = get(row, "idempotency_key")?;
    Ok(ev)
}

fn status(s: &str) -> Result<DeliveryStatus, BoxError> {
    DeliveryStatus::parse(s).ok_or_else(|| UnknownName("status", s.to_owned()).into())
}

fn trigger(s: &str) -> Result<Trigger, BoxError> {
    Trigger::parse(s).ok_or_else(|| UnknownName("trigger", s.to_owned()).into())
}

/// A delivery (selected with [`DELIVERY_COLS`]). Where a claim keeps the lease's end apart
/// (`dialect::LEASE_UNTIL`), a claimed delivery shows it as its next attempt: the moment it is
/// due again unless it is settled first.
pub fn delivery(row: &Row) -> DbResult<Delivery> {
    let due = opt_ts(row, "next_attempt_at")?;
    let mut d = Delivery::new(
        parsed(row, "id", DeliveryId::parse)?,
        parsed(row, "account", AccountId::parse)?,
        parsed(row, "event_id", EventId::parse)?,
        parsed(row, "endpoint_id", EndpointId::parse)?,
        ts(row, "created_at")?,
    );
    d.status = parsed(row, "status", status)?;
    d.attempts = uint::<_, i32>(row, "attempts")?;
    d.next_attempt_at = match (due, dialect::LEASE_UNTIL) {
        (Some(due), true) => Some(opt_ts(row, "lease_until")?.map_or(due, |end| due.max(end))),
        (due, _) => due,
    };
    d.last_attempt_at = opt_ts(row, "last_attempt_at")?;
    Ok(d)
}

/// The claim-only columns of a delivery row returned by a claim.
#[derive(Debug)]
pub struct ClaimColumns {
    /// The new lease.
    pub lease_id: String,
    /// The due time the claim found.
    pub due_at: Timestamp,
    /// Why the delivery is sent.
    pub trigger: Trigger,
}

/// The columns `lease_id`, `claimed_due_at` and `next_trigger` of a claimed delivery.
pub fn claim_columns(row: &Row) -> DbResult<ClaimColumns> {
    Ok(ClaimColumns {
        lease_id: get(row, "lease_id")?,
        due_at: ts(row, "claimed_due_at")?,
        trigger: parsed(row, "next_trigger", trigger)?,
    })
}

/// An attempt.
pub fn attempt(row: &Row) -> DbResult<Attempt> {
    let mut a = Attempt::new(
        parsed(row, "id", AttemptId::parse)?,
        parsed(row, "delivery_id", DeliveryId::parse)?,
        uint::<_, i32>(row, "number")?,
        parsed(row, "trigger_kind", trigger)?,
        ts(row, "started_at")?,
    );
    a.duration_ms = uint::<_, i64>(row, "duration_ms")?;
    a.status_code = opt_uint::<_, i32>(row, "status_code")?;
    a.error = get(row, "error")?;
    a.response_body = get(row, "response_body")?;
    Ok(a)
}
