//! Stored values ↔ model. Records are JSON (serde, with event data kept byte for byte as a raw
//! value); deliveries are hashes of plain fields, so that the Lua scripts can change them.

use std::collections::HashMap;

use hookline_core::model::{Delivery, DeliveryStatus, Trigger};
use hookline_core::{AccountId, DeliveryId, EndpointId, EventId, Timestamp};

use crate::error::{DbError, DbResult};

pub(crate) fn to_json<T: serde::Serialize>(v: &T, what: &'static str) -> DbResult<String> {
    serde_json::to_string(v).map_err(|e| DbError::corrupt(what, e))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    s: &str,
    what: &'static str,
) -> DbResult<T> {
    serde_json::from_str(s).map_err(|e| DbError::corrupt(what, e))
}

/// A flat `field, value, …` reply (HGETALL from a script) as a map.
pub(crate) fn fields(flat: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}

fn field<'m>(map: &'m HashMap<String, String>, name: &'static str) -> DbResult<&'m str> {
    map.get(name)
        .map(String::as_str)
        .ok_or_else(|| DbError::corrupt("delivery", format!("field `{name}` is missing")))
}

fn millis(s: &str, what: &'static str) -> DbResult<Timestamp> {
    parse_millis(s)
        .map(Timestamp::from_millis)
        .ok_or_else(|| DbError::corrupt(what, format!("not a time: {s:?}")))
}

/// Milliseconds as Redis prints them (an integer, or a sorted-set score such as `1.8e+12`).
pub(crate) fn parse_millis(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().or_else(|| {
        let f = s.parse::<f64>().ok()?;
        f.is_finite().then_some(f.round() as i64)
    })
}

fn opt_millis(s: &str, what: &'static str) -> DbResult<Option<Timestamp>> {
    if s.is_empty() {
        Ok(None)
    } else {
        millis(s, what).map(Some)
    }
}

/// A delivery's stored fields (empty strings stand for "none").
pub(crate) struct Fields<'a> {
    pub(crate) id: &'a str,
    pub(crate) account: &'a str,
    pub(crate) event: &'a str,
    pub(crate) endpoint: &'a str,
    pub(crate) status: &'a str,
    pub(crate) attempts: &'a str,
    pub(crate) next_at: &'a str,
    pub(crate) last_at: &'a str,
    pub(crate) created: &'a str,
}

/// A delivery from its hash. `id` is the key's id.
pub(crate) fn delivery(id: &str, map: &HashMap<String, String>) -> DbResult<Delivery> {
    delivery_from(Fields {
        id,
        account: field(map, "account")?,
        event: field(map, "event")?,
        endpoint: field(map, "endpoint")?,
        status: field(map, "status")?,
        attempts: field(map, "attempts")?,
        next_at: field(map, "next_at")?,
        last_at: field(map, "last_at")?,
        created: field(map, "created")?,
    })
}

/// A delivery from its fields.
pub(crate) fn delivery_from(f: Fields<'_>) -> DbResult<Delivery> {
    let corrupt = |what: &'static str| move |e| DbError::corrupt(what, e);
    let mut d = Delivery::new(
        DeliveryId::parse(f.id).map_err(corrupt("delivery.id"))?,
        AccountId::parse(f.account).map_err(corrupt("delivery.account"))?,
        EventId::parse(f.event).map_err(corrupt("delivery.event"))?,
        EndpointId::parse(f.endpoint).map_err(corrupt("delivery.endpoint"))?,
        millis(f.created, "delivery.created")?,
    );
    d.status = DeliveryStatus::parse(f.status)
        .ok_or_else(|| DbError::corrupt("delivery.status", format!("unknown {:?}", f.status)))?;
    d.attempts = f
        .attempts
        .parse::<u32>()
        .map_err(|e| DbError::corrupt("delivery.attempts", e))?;
    d.next_attempt_at = opt_millis(f.next_at, "delivery.next_at")?;
    d.last_attempt_at = opt_millis(f.last_at, "delivery.last_at")?;
    Ok(d)
}

/// What starts a delivery's next attempt, from its `trigger` field.
pub(crate) fn trigger(t: &str) -> DbResult<Trigger> {
    Trigger::parse(t).ok_or_else(|| DbError::corrupt("delivery.trigger", format!("unknown {t:?}")))
}
