//! [`HistoryStore`](hookline_core::store::HistoryStore): events, deliveries and attempts as
//! they were stored, newest first.

use hookline_core::model::{
    Attempt, Cursor, Delivery, DeliveryFilter, Event, EventFilter, Page, PageRequest,
};
use hookline_core::store::StoreError;
use hookline_core::{AccountId, DeliveryId, EventId};
use sqlx::QueryBuilder;

use super::dialect::Db;
use super::page::{fetch_page, optional, push_page};
use super::rows::{self, ATTEMPT_COLS, DELIVERY_COLS, EVENT_COLS};
use crate::error::DbError;
use crate::{SqlStore, qualified};

/// One event of an account.
pub async fn event<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    id: &EventId,
) -> Result<Option<Event>, StoreError> {
    let mut qb = QueryBuilder::new(format!("SELECT {EVENT_COLS} FROM events WHERE account = "));
    qb.push_bind(account.as_str())
        .push(" AND id = ")
        .push_bind(id.as_str());
    optional(qb, s.read_pool(), rows::event).await
}

/// The event of an account accepted with an idempotency key.
pub async fn event_by_idempotency_key<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    key: &str,
) -> Result<Option<Event>, StoreError> {
    let mut qb = QueryBuilder::new(format!("SELECT {EVENT_COLS} FROM events WHERE account = "));
    qb.push_bind(account.as_str())
        .push(" AND idempotency_key = ")
        .push_bind(key);
    optional(qb, s.read_pool(), rows::event).await
}

/// An account's events, newest first.
pub async fn list_events<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    filter: &EventFilter,
    page: &PageRequest,
) -> Result<Page<Event>, StoreError> {
    let mut qb = QueryBuilder::new(format!("SELECT {EVENT_COLS} FROM events WHERE account = "));
    qb.push_bind(account.as_str());
    if let Some(t) = &filter.event_type {
        qb.push(" AND event_type = ").push_bind(t.as_str());
    }
    if let Some(site) = &filter.site {
        qb.push(" AND site = ").push_bind(site.as_str());
    }
    if let Some(q) = &filter.queue_id {
        qb.push(" AND queue_id = ").push_bind(q.as_str());
    }
    if let Some(t) = filter.since {
        qb.push(" AND fired_at >= ").push_bind(t.as_millis());
    }
    if let Some(t) = filter.until {
        qb.push(" AND fired_at < ").push_bind(t.as_millis());
    }
    push_page(&mut qb, "fired_at", "id", page);
    Ok(
        fetch_page(qb, s.read_pool(), page, rows::event, |e| Cursor {
            created_at: e.timestamp,
            id: e.id.as_str().to_owned(),
        })
        .await?,
    )
}

/// One delivery of an account.
pub async fn delivery<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    id: &DeliveryId,
) -> Result<Option<Delivery>, StoreError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {DELIVERY_COLS} FROM deliveries WHERE account = "
    ));
    qb.push_bind(account.as_str())
        .push(" AND id = ")
        .push_bind(id.as_str());
    optional(qb, s.read_pool(), rows::delivery).await
}

/// An account's deliveries, newest first.
pub async fn list_deliveries<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    filter: &DeliveryFilter,
    page: &PageRequest,
) -> Result<Page<Delivery>, StoreError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {DELIVERY_COLS} FROM deliveries WHERE account = "
    ));
    qb.push_bind(account.as_str());
    if let Some(e) = &filter.event {
        qb.push(" AND event_id = ").push_bind(e.as_str());
    }
    if let Some(e) = &filter.endpoint {
        qb.push(" AND endpoint_id = ").push_bind(e.as_str());
    }
    if let Some(status) = filter.status {
        qb.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(t) = filter.since {
        qb.push(" AND created_at >= ").push_bind(t.as_millis());
    }
    if let Some(t) = filter.until {
        qb.push(" AND created_at < ").push_bind(t.as_millis());
    }
    if !filter.event_types.is_empty() {
        // The event's type is not a delivery column: each row the newest-first index scan
        // reaches is checked against its event by primary key, until the page is full.
        qb.push(" AND EXISTS (SELECT 1 FROM events e WHERE e.id = deliveries.event_id AND e.event_type IN (");
        let mut sep = qb.separated(", ");
        for t in &filter.event_types {
            sep.push_bind(t.as_str().to_owned());
        }
        qb.push("))");
    }
    push_page(&mut qb, "created_at", "id", page);
    Ok(
        fetch_page(qb, s.read_pool(), page, rows::delivery, |d| Cursor {
            created_at: d.created_at,
            id: d.id.as_str().to_owned(),
        })
        .await?,
    )
}

/// A delivery's attempts, in order.
pub async fn attempts<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    delivery: &DeliveryId,
) -> Result<Vec<Attempt>, StoreError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {} FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
         WHERE a.delivery_id = ",
        qualified("a", ATTEMPT_COLS)
    ));
    qb.push_bind(delivery.as_str())
        .push(" AND d.account = ")
        .push_bind(account.as_str())
        .push(" ORDER BY a.number, a.started_at, a.id");
    let found = qb
        .build()
        .fetch_all(s.read_pool())
        .await
        .map_err(DbError::from)?;
    Ok(found.iter().map(rows::attempt).collect::<Result<_, _>>()?)
}

/// Replaces an event's stored data.
pub async fn replace_event_data<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    id: &EventId,
    data: &serde_json::value::RawValue,
) -> Result<bool, StoreError> {
    let mut qb = QueryBuilder::new("UPDATE events SET data = ");
    qb.push_bind(data.get())
        .push(" WHERE account = ")
        .push_bind(account.as_str())
        .push(" AND id = ")
        .push_bind(id.as_str());
    Ok(super::page::affected(qb, s.write_pool()).await? > 0)
}

/// An endpoint's hourly counters from `since`, oldest first.
pub async fn hourly<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    endpoint: &hookline_core::EndpointId,
    since: hookline_core::Timestamp,
) -> Result<Vec<hookline_core::model::HourlyStats>, StoreError> {
    use hookline_core::model::{HourlyStats, LATENCY_BUCKETS};
    use sqlx::Row as _;
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT hour, delivered, failed, l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11 \
         FROM endpoint_hourly WHERE endpoint_id = ",
    );
    qb.push_bind(endpoint.as_str())
        .push(" AND hour >= ")
        .push_bind(since.as_millis())
        .push(" ORDER BY hour");
    let rows = qb
        .build()
        .fetch_all(s.read_pool())
        .await
        .map_err(DbError::from)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let get = |i: usize| -> Result<u64, StoreError> {
            let v: i64 = row.try_get(i).map_err(DbError::from)?;
            Ok(v.max(0) as u64)
        };
        let hour: i64 = row.try_get(0).map_err(DbError::from)?;
        let mut st = HourlyStats::new(
            endpoint.clone(),
            hookline_core::Timestamp::from_millis(hour),
        );
        st.delivered = get(1)?;
        st.failed = get(2)?;
        for i in 0..LATENCY_BUCKETS {
            st.latency[i] = get(3 + i)?;
        }
        out.push(st);
    }
    Ok(out)
}
