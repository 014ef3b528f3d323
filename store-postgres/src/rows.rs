//! Row ↔ model conversions. Timestamps are BIGINT milliseconds; filters are TEXT[]; headers and
//! secrets are JSONB (selected as text); event data and schemas are JSON text.

use hookline_core::model::{
    Account, ApiKey, Attempt, Delivery, DeliveryStatus, Endpoint, Event, EventType, Role, Site,
    Trigger,
};
use hookline_core::transport::BoxError;
use hookline_core::{
    AccountId, AttemptId, DeliveryId, EndpointId, EventId, EventTypeName, SiteId, Timestamp,
};
use serde_json::value::RawValue;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::{DbError, DbResult};

pub(crate) const ACCOUNT_COLS: &str = "id, name, created_at, updated_at";
pub(crate) const SITE_COLS: &str = "account, id, name, created_at, updated_at";
pub(crate) const EVENT_TYPE_COLS: &str =
    "name, description, json_schema, archived, created_at, updated_at";
pub(crate) const API_KEY_COLS: &str = "hash, prefix, account, created_at";
pub(crate) const ENDPOINT_COLS: &str = "id, account, url, description, event_types, sites, \
    headers::text AS headers, rate_limit, max_concurrency, ordered, secrets::text AS secrets, \
    enabled, disabled_reason, failing_since, created_at, updated_at";
pub(crate) const EVENT_COLS: &str =
    "id, account, site, event_type, queue_id, data, idempotency_key, fired_at";
/// A delivery's columns. `lease_until` is read with them: a claimed delivery shows its lease's
/// end as its next attempt, the moment it is due again unless it is settled first.
pub(crate) const DELIVERY_COLS: &str = "id, account, event_id, endpoint_id, status, attempts, \
    next_attempt_at, lease_until, last_attempt_at, created_at";
pub(crate) const ATTEMPT_COLS: &str = "id, delivery_id, number, trigger_kind, started_at, \
    duration_ms, status_code, error, response_body";

/// `cols` with every column qualified by `alias` (`id, name` → `d.id, d.name`).
pub(crate) fn qualified(alias: &str, cols: &str) -> String {
    cols.split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn get<'r, T>(row: &'r PgRow, col: &'static str) -> DbResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    Ok(row.try_get(col)?)
}

fn ts(row: &PgRow, col: &'static str) -> DbResult<Timestamp> {
    Ok(Timestamp::from_millis(get::<i64>(row, col)?))
}

fn opt_ts(row: &PgRow, col: &'static str) -> DbResult<Option<Timestamp>> {
    Ok(get::<Option<i64>>(row, col)?.map(Timestamp::from_millis))
}

fn parsed<T, E>(
    row: &PgRow,
    col: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> DbResult<T>
where
    E: Into<BoxError>,
{
    let s: String = get(row, col)?;
    parse(&s).map_err(|e| DbError::corrupt(col, e))
}

fn opt_parsed<T, E>(
    row: &PgRow,
    col: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> DbResult<Option<T>>
where
    E: Into<BoxError>,
{
    match get::<Option<String>>(row, col)? {
        Some(s) => parse(&s).map(Some).map_err(|e| DbError::corrupt(col, e)),
        None => Ok(None),
    }
}

fn parsed_list<T, E>(
    row: &PgRow,
    col: &'static str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> DbResult<Vec<T>>
where
    E: Into<BoxError>,
{
    get::<Vec<String>>(row, col)?
        .iter()
        .map(|s| parse(s).map_err(|e| DbError::corrupt(col, e)))
        .collect()
}

fn json<T: serde::de::DeserializeOwned>(row: &PgRow, col: &'static str) -> DbResult<T> {
    parsed(row, col, |s| serde_json::from_str::<T>(s))
}

fn uint<T, S>(row: &PgRow, col: &'static str) -> DbResult<T>
where
    S: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    T: TryFrom<S>,
    T::Error: Into<BoxError>,
{
    T::try_from(get::<S>(row, col)?).map_err(|e| DbError::corrupt(col, e))
}

fn opt_uint<T, S>(row: &PgRow, col: &'static str) -> DbResult<Option<T>>
where
    S: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    T: TryFrom<S>,
    T::Error: Into<BoxError>,
{
    get::<Option<S>>(row, col)?
        .map(|v| T::try_from(v).map_err(|e| DbError::corrupt(col, e)))
        .transpose()
}

/// Encodes a model value as JSON text for a column.
pub(crate) fn to_json<T: serde::Serialize>(v: &T, col: &'static str) -> DbResult<String> {
    serde_json::to_string(v).map_err(|e| DbError::corrupt(col, e))
}

/// PostgreSQL text cannot hold NUL characters. Free text we record but did not validate (a
/// receiver's response body, a transport error) has them replaced, so that a receiver answering
/// with binary garbage cannot make an attempt impossible to settle.
pub(crate) fn pg_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown {0} {1:?}")]
struct UnknownName(&'static str, String);

pub(crate) fn account(row: &PgRow) -> DbResult<Account> {
    Ok(Account {
        id: parsed(row, "id", AccountId::parse)?,
        name: get(row, "name")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

pub(crate) fn site(row: &PgRow) -> DbResult<Site> {
    Ok(Site {
        account: parsed(row, "account", AccountId::parse)?,
        id: parsed(row, "id", SiteId::parse)?,
        name: get(row, "name")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

pub(crate) fn event_type(row: &PgRow) -> DbResult<EventType> {
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

pub(crate) fn api_key(row: &PgRow) -> DbResult<ApiKey> {
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

pub(crate) fn endpoint(row: &PgRow) -> DbResult<Endpoint> {
    let mut ep = Endpoint::new(
        parsed(row, "id", EndpointId::parse)?,
        parsed(row, "account", AccountId::parse)?,
        get::<String>(row, "url")?,
        json(row, "secrets")?,
        ts(row, "created_at")?,
    );
    ep.description = get(row, "description")?;
    ep.event_types = parsed_list(row, "event_types", EventTypeName::parse)?;
    ep.sites = parsed_list(row, "sites", SiteId::parse)?;
    ep.headers = json(row, "headers")?;
    ep.rate_limit = opt_uint::<_, i64>(row, "rate_limit")?;
    ep.max_concurrency = opt_uint::<_, i64>(row, "max_concurrency")?;
    ep.ordered = get(row, "ordered")?;
    ep.enabled = get(row, "enabled")?;
    ep.disabled_reason = get(row, "disabled_reason")?;
    ep.updated_at = ts(row, "updated_at")?;
    Ok(ep.with_failing_since(opt_ts(row, "failing_since")?))
}

pub(crate) fn event(row: &PgRow) -> DbResult<Event> {
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

fn status(s: &str) -> Result<DeliveryStatus, BoxError> {
    DeliveryStatus::parse(s).ok_or_else(|| UnknownName("status", s.to_owned()).into())
}

fn trigger(s: &str) -> Result<Trigger, BoxError> {
    Trigger::parse(s).ok_or_else(|| UnknownName("trigger", s.to_owned()).into())
}

pub(crate) fn delivery(row: &PgRow) -> DbResult<Delivery> {
    Ok(Delivery {
        id: parsed(row, "id", DeliveryId::parse)?,
        account: parsed(row, "account", AccountId::parse)?,
        event_id: parsed(row, "event_id", EventId::parse)?,
        endpoint_id: parsed(row, "endpoint_id", EndpointId::parse)?,
        status: parsed(row, "status", status)?,
        attempts: uint::<_, i32>(row, "attempts")?,
        next_attempt_at: match (opt_ts(row, "next_attempt_at")?, opt_ts(row, "lease_until")?) {
            (Some(due), Some(lease_end)) => Some(due.max(lease_end)),
            (due, _) => due,
        },
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

pub(crate) fn claim_columns(row: &PgRow) -> DbResult<ClaimColumns> {
    Ok(ClaimColumns {
        lease_id: get(row, "lease_id")?,
        due_at: ts(row, "claimed_due_at")?,
        trigger: parsed(row, "next_trigger", trigger)?,
    })
}

pub(crate) fn attempt(row: &PgRow) -> DbResult<Attempt> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifies_column_lists() {
        assert_eq!(qualified("d", "id, a,\n b"), "d.id, d.a, d.b");
    }

    #[test]
    fn nul_characters_are_replaced() {
        assert_eq!(pg_text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(pg_text("ab"), std::borrow::Cow::Borrowed(_)));
    }
}
