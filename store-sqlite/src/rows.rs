//! Row ↔ model conversions. Timestamps are INTEGER milliseconds; lists and maps are JSON text.

use hookline_core::model::{
    Account, ApiKey, Attempt, Delivery, DeliveryStatus, Endpoint, Event, EventType, Role, Site,
    Trigger,
};
use hookline_core::{
    AccountId, AttemptId, DeliveryId, EndpointId, EventId, EventTypeName, SiteId, Timestamp,
};
use serde_json::value::RawValue;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::error::{DbError, DbResult};

pub(crate) const ACCOUNT_COLS: &str = "id, name, created_at, updated_at";
pub(crate) const SITE_COLS: &str = "account, id, name, created_at, updated_at";
pub(crate) const EVENT_TYPE_COLS: &str =
    "name, description, json_schema, archived, created_at, updated_at";
pub(crate) const API_KEY_COLS: &str = "hash, prefix, account, created_at";
pub(crate) const ENDPOINT_COLS: &str = "id, account, url, description, event_types, sites, \
    headers, rate_limit, max_concurrency, ordered, secrets, enabled, disabled_reason, \
    created_at, updated_at";
/// [`ENDPOINT_COLS`] plus the columns the store keeps itself.
pub(crate) const ENDPOINT_READ_COLS: &str = "id, account, url, description, event_types, sites, \
    headers, rate_limit, max_concurrency, ordered, secrets, enabled, disabled_reason, \
    failing_since, created_at, updated_at";
pub(crate) const EVENT_COLS: &str =
    "id, account, site, event_type, queue_id, data, idempotency_key, fired_at";
pub(crate) const DELIVERY_COLS: &str = "id, account, event_id, endpoint_id, status, attempts, \
    next_attempt_at, last_attempt_at, created_at";
pub(crate) const ATTEMPT_COLS: &str = "id, delivery_id, number, trigger_kind, started_at, \
    duration_ms, status_code, error, response_body";

fn get<'r, T>(row: &'r SqliteRow, col: &'static str) -> DbResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    Ok(row.try_get(col)?)
}

fn ts(row: &SqliteRow, col: &'static str) -> DbResult<Timestamp> {
    Ok(Timestamp::from_millis(get::<i64>(row, col)?))
}

fn opt_ts(row: &SqliteRow, col: &'static str) -> DbResult<Option<Timestamp>> {
    Ok(get::<Option<i64>>(row, col)?.map(Timestamp::from_millis))
}

fn parsed<T, E>(
    row: &SqliteRow,
    col: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> DbResult<T>
where
    E: Into<hookline_core::transport::BoxError>,
{
    let s: String = get(row, col)?;
    parse(&s).map_err(|e| DbError::corrupt(col, e))
}

fn opt_parsed<T, E>(
    row: &SqliteRow,
    col: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> DbResult<Option<T>>
where
    E: Into<hookline_core::transport::BoxError>,
{
    match get::<Option<String>>(row, col)? {
        Some(s) => parse(&s).map(Some).map_err(|e| DbError::corrupt(col, e)),
        None => Ok(None),
    }
}

fn json<T: serde::de::DeserializeOwned>(row: &SqliteRow, col: &'static str) -> DbResult<T> {
    parsed(row, col, |s| serde_json::from_str::<T>(s))
}

fn uint<T: TryFrom<i64>>(row: &SqliteRow, col: &'static str) -> DbResult<T>
where
    T::Error: Into<hookline_core::transport::BoxError>,
{
    T::try_from(get::<i64>(row, col)?).map_err(|e| DbError::corrupt(col, e))
}

fn opt_uint<T: TryFrom<i64>>(row: &SqliteRow, col: &'static str) -> DbResult<Option<T>>
where
    T::Error: Into<hookline_core::transport::BoxError>,
{
    get::<Option<i64>>(row, col)?
        .map(|v| T::try_from(v).map_err(|e| DbError::corrupt(col, e)))
        .transpose()
}

/// Encodes a model value as JSON text for a column.
pub(crate) fn to_json<T: serde::Serialize>(v: &T, col: &'static str) -> DbResult<String> {
    serde_json::to_string(v).map_err(|e| DbError::corrupt(col, e))
}

#[derive(Debug, thiserror::Error)]
#[error("unknown {0} {1:?}")]
struct UnknownName(&'static str, String);

pub(crate) fn account(row: &SqliteRow) -> DbResult<Account> {
    Ok(Account {
        id: parsed(row, "id", AccountId::parse)?,
        name: get(row, "name")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

pub(crate) fn site(row: &SqliteRow) -> DbResult<Site> {
    Ok(Site {
        account: parsed(row, "account", AccountId::parse)?,
        id: parsed(row, "id", SiteId::parse)?,
        name: get(row, "name")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

pub(crate) fn event_type(row: &SqliteRow) -> DbResult<EventType> {
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

pub(crate) fn api_key(row: &SqliteRow) -> DbResult<ApiKey> {
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

pub(crate) fn endpoint(row: &SqliteRow) -> DbResult<Endpoint> {
    let mut ep = Endpoint::new(
        parsed(row, "id", EndpointId::parse)?,
        parsed(row, "account", AccountId::parse)?,
        get::<String>(row, "url")?,
        json(row, "secrets")?,
        ts(row, "created_at")?,
    );
    ep.description = get(row, "description")?;
    ep.event_types = json(row, "event_types")?;
    ep.sites = json(row, "sites")?;
    ep.headers = json(row, "headers")?;
    ep.rate_limit = opt_uint(row, "rate_limit")?;
    ep.max_concurrency = opt_uint(row, "max_concurrency")?;
    ep.ordered = get(row, "ordered")?;
    ep.enabled = get(row, "enabled")?;
    ep.disabled_reason = get(row, "disabled_reason")?;
    ep.updated_at = ts(row, "updated_at")?;
    Ok(ep.with_failing_since(opt_ts(row, "failing_since")?))
}

pub(crate) fn event(row: &SqliteRow) -> DbResult<Event> {
    Ok(Event {
        id: parsed(row, "id", EventId::parse)?,
        account: parsed(row, "account", AccountId::parse)?,
        site: opt_parsed(row, "site", SiteId::parse)?,
        event_type: parsed(row, "event_type", EventTypeName::parse)?,
        queue_id: get(row, "queue_id")?,
        data: {
            let s: String = get(row, "data")?;
            RawValue::from_string(s).map_err(|e| DbError::corrupt("data", e))?
        },
        idempotency_key: get(row, "idempotency_key")?,
        timestamp: ts(row, "fired_at")?,
    })
}

pub(crate) fn status(s: &str) -> Result<DeliveryStatus, UnknownNameError> {
    DeliveryStatus::parse(s).ok_or_else(|| UnknownName("status", s.to_owned()).into())
}

pub(crate) fn trigger(s: &str) -> Result<Trigger, UnknownNameError> {
    Trigger::parse(s).ok_or_else(|| UnknownName("trigger", s.to_owned()).into())
}

/// A boxed [`UnknownName`] (keeps the private type out of signatures).
pub(crate) type UnknownNameError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) fn delivery(row: &SqliteRow) -> DbResult<Delivery> {
    Ok(Delivery {
        id: parsed(row, "id", DeliveryId::parse)?,
        account: parsed(row, "account", AccountId::parse)?,
        event_id: parsed(row, "event_id", EventId::parse)?,
        endpoint_id: parsed(row, "endpoint_id", EndpointId::parse)?,
        status: parsed(row, "status", status)?,
        attempts: uint(row, "attempts")?,
        next_attempt_at: opt_ts(row, "next_attempt_at")?,
        last_attempt_at: opt_ts(row, "last_attempt_at")?,
        created_at: ts(row, "created_at")?,
    })
}

/// The claim-only columns of a delivery row returned by the claim UPDATE.
pub(crate) struct ClaimColumns {
    pub(crate) lease_id: String,
    pub(crate) due_at: Timestamp,
    pub(crate) trigger: Trigger,
}

pub(crate) fn claim_columns(row: &SqliteRow) -> DbResult<ClaimColumns> {
    Ok(ClaimColumns {
        lease_id: get(row, "lease_id")?,
        due_at: ts(row, "claimed_due_at")?,
        trigger: parsed(row, "next_trigger", trigger)?,
    })
}

pub(crate) fn attempt(row: &SqliteRow) -> DbResult<Attempt> {
    Ok(Attempt {
        id: parsed(row, "id", AttemptId::parse)?,
        delivery_id: parsed(row, "delivery_id", DeliveryId::parse)?,
        number: uint(row, "number")?,
        trigger: parsed(row, "trigger_kind", trigger)?,
        started_at: ts(row, "started_at")?,
        duration_ms: uint(row, "duration_ms")?,
        status_code: opt_uint(row, "status_code")?,
        error: get(row, "error")?,
        response_body: get(row, "response_body")?,
    })
}
