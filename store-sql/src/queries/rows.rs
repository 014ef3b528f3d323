//! Row → model conversions, one function per model type. Timestamps are integer milliseconds;
//! headers, secrets, event data and schemas are JSON text; an endpoint's event types and sites
//! are stored the dialect's way (`dialect::names`).

use hookline_core::model::{
    Account, ApiKey, Attempt, Delivery, DeliveryStatus, Endpoint, Event, EventType, Role, Site,
    Trigger,
};
use hookline_core::transport::BoxError;
use hookline_core::{
    AccountId, AttemptId, DeliveryId, EndpointId, EventId, EventTypeName, SiteId, Timestamp,
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
pub const API_KEY_COLS: &str = "hash, prefix, account, created_at";
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
    Ok(Account {
        id: parsed(row, "id", AccountId::parse)?,
        name: get(row, "name")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

/// A site.
pub fn site(row: &Row) -> DbResult<Site> {
    Ok(Site {
        account: parsed(row, "account", AccountId::parse)?,
        id: parsed(row, "id", SiteId::parse)?,
        name: get(row, "name")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

/// An event type.
pub fn event_type(row: &Row) -> DbResult<EventType> {
    Ok(EventType {
        name: parsed(row, "name", EventTypeName::parse)?,
        description: get(row, "description")?,
        schema: opt_parsed(row, "json_schema", |s| {
            serde_json::from_str::<serde_json::Value>(s)
        })?,
        archived: get(row, "archived")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

/// An API key (no account: the admin's).
pub fn api_key(row: &Row) -> DbResult<ApiKey> {
    Ok(ApiKey {
        hash: get(row, "hash")?,
        prefix: get(row, "prefix")?,
        role: match opt_parsed(row, "account", AccountId::parse)? {
            Some(a) => Role::Account(a),
            None => Role::Admin,
        },
        created_at: ts(row, "created_at")?,
    })
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
    Ok(Event {
        id: parsed(row, "id", EventId::parse)?,
        account: parsed(row, "account", AccountId::parse)?,
        site: opt_parsed(row, "site", SiteId::parse)?,
        event_type: parsed(row, "event_type", EventTypeName::parse)?,
        queue_id: get(row, "queue_id")?,
        data: RawValue::from_string(get(row, "data")?).map_err(|e| DbError::corrupt("data", e))?,
        idempotency_key: get(row, "idempotency_key")?,
        timestamp: ts(row, "fired_at")?,
    })
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
    Ok(Delivery {
        id: parsed(row, "id", DeliveryId::parse)?,
        account: parsed(row, "account", AccountId::parse)?,
        event_id: parsed(row, "event_id", EventId::parse)?,
        endpoint_id: parsed(row, "endpoint_id", EndpointId::parse)?,
        status: parsed(row, "status", status)?,
        attempts: uint::<_, i32>(row, "attempts")?,
        next_attempt_at: match (due, dialect::LEASE_UNTIL) {
            (Some(due), true) => Some(opt_ts(row, "lease_until")?.map_or(due, |end| due.max(end))),
            (due, _) => due,
        },
        last_attempt_at: opt_ts(row, "last_attempt_at")?,
        created_at: ts(row, "created_at")?,
    })
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
    Ok(Attempt {
        id: parsed(row, "id", AttemptId::parse)?,
        delivery_id: parsed(row, "delivery_id", DeliveryId::parse)?,
        number: uint::<_, i32>(row, "number")?,
        trigger: parsed(row, "trigger_kind", trigger)?,
        started_at: ts(row, "started_at")?,
        duration_ms: uint::<_, i64>(row, "duration_ms")?,
        status_code: opt_uint::<_, i32>(row, "status_code")?,
        error: get(row, "error")?,
        response_body: get(row, "response_body")?,
    })
}
