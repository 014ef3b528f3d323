//! The parts of [`QueueStore`](hookline_core::store::QueueStore) that both stores write alike:
//! deferring a lease, manual requeues, an endpoint's failure clock and auto-disable, and the
//! count of pending deliveries. (Claims, enqueue fan-out, settle, holds, purges and `next_due`
//! are each store's own.)

use hookline_core::model::Delivery;
use hookline_core::store::{LeaseToken, Next, Receipt, StoreError};
use hookline_core::{AccountId, DeliveryId, EndpointId, EventId, Timestamp};
use sqlx::QueryBuilder;

use super::dialect::{self, Db};
use super::page::affected;
use super::rows::{self, DELIVERY_COLS};
use crate::SqlStore;
use crate::error::{DbError, DbResult};

/// Gives a claimed delivery back, due at `until`, if the lease is still current.
pub async fn defer<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    lease: &LeaseToken,
    until: Timestamp,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::<Db>::new(format!(
        "UPDATE deliveries SET {}, next_attempt_at = ",
        dialect::CLEAR_LEASE
    ));
    qb.push_bind(until.as_millis())
        .push(" WHERE id = ")
        .push_bind(lease.delivery.as_str())
        .push(" AND lease_id = ")
        .push_bind(lease.lease_id.as_str())
        .push(" AND status = 'pending'");
    if affected(qb, s.write_pool()).await? == 0 {
        return Err(StoreError::LeaseLost);
    }
    Ok(())
}

/// How many deliveries are pending (`QueueStore::backlog`): counted over the partial index of
/// pending deliveries (`deliveries_pending_by_endpoint`), without reading finished ones.
pub async fn pending<S: SqlStore<Db = Db> + ?Sized>(s: &S) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'")
        .fetch_one(s.read_pool())
        .await
        .map_err(DbError::from)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `UPDATE deliveries SET` a delivery pending, due at `now`, with a manual trigger and no lease,
/// up to the `WHERE`. Where deliveries copy their endpoint's flag, the copy is set to TRUE, the
/// value that is always safe (the claim checks the endpoint itself): a delivery that failed
/// while its endpoint was disabled must not come back hidden after it was enabled again.
fn requeue_manual<'a>(now: Timestamp) -> QueryBuilder<'a, Db> {
    let mut qb = QueryBuilder::new(format!(
        "UPDATE deliveries SET status = 'pending', {}, next_trigger = 'manual'{}, \
         next_attempt_at = ",
        dialect::CLEAR_LEASE,
        if dialect::ENDPOINT_ENABLED_COPY {
            ", endpoint_enabled = TRUE"
        } else {
            ""
        }
    ));
    qb.push_bind(now.as_millis());
    qb
}

/// Sends a delivery again now (a manual retry).
pub async fn retry_delivery<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    id: &DeliveryId,
    now: Timestamp,
) -> Result<Delivery, StoreError> {
    let mut qb = requeue_manual(now);
    qb.push(" WHERE account = ")
        .push_bind(account.as_str())
        .push(" AND id = ")
        .push_bind(id.as_str())
        .push(format_args!(" RETURNING {DELIVERY_COLS}"));
    let row = qb
        .build()
        .fetch_optional(s.write_pool())
        .await
        .map_err(DbError::from)?;
    match row {
        Some(row) => Ok(rows::delivery(&row)?),
        None => Err(StoreError::NotFound("delivery")),
    }
}

/// Sends a batch of an account's deliveries again now, in one statement; how many there were.
pub async fn retry_deliveries<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    ids: &[DeliveryId],
    now: Timestamp,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut qb = requeue_manual(now);
    qb.push(" WHERE account = ")
        .push_bind(account.as_str())
        .push(" AND id IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.as_str().to_owned());
    }
    qb.push(")");
    Ok(affected(qb, s.write_pool()).await?)
}

/// Sends again the failed deliveries of an endpoint created since `since`.
pub async fn recover_failed<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    endpoint: &EndpointId,
    since: Timestamp,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let mut qb = requeue_manual(now);
    qb.push(" WHERE account = ")
        .push_bind(account.as_str())
        .push(" AND endpoint_id = ")
        .push_bind(endpoint.as_str())
        .push(" AND status = 'failed' AND created_at >= ")
        .push_bind(since.as_millis());
    Ok(affected(qb, s.write_pool()).await?)
}

/// Starts an endpoint's failure clock at `at` unless it runs; returns when it started.
pub async fn record_failing<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    id: &EndpointId,
    at: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let mut qb =
        QueryBuilder::<Db>::new("UPDATE endpoints SET failing_since = coalesce(failing_since, ");
    qb.push_bind(at.as_millis())
        .push(") WHERE id = ")
        .push_bind(id.as_str())
        .push(" RETURNING failing_since");
    let since: Option<i64> = qb
        .build_query_scalar()
        .fetch_optional(s.write_pool())
        .await
        .map_err(DbError::from)?;
    Ok(since.map(Timestamp::from_millis))
}

/// Stops an endpoint's failure clock.
pub async fn record_healthy<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    id: &EndpointId,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::<Db>::new("UPDATE endpoints SET failing_since = NULL WHERE id = ");
    qb.push_bind(id.as_str())
        .push(" AND failing_since IS NOT NULL");
    qb.build()
        .execute(s.write_pool())
        .await
        .map_err(DbError::from)?;
    Ok(())
}

/// Disables an enabled endpoint with `reason`; whether this call disabled it.
pub async fn disable_endpoint<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    id: &EndpointId,
    reason: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let mut qb =
        QueryBuilder::<Db>::new("UPDATE endpoints SET enabled = FALSE, disabled_reason = ");
    qb.push_bind(reason)
        .push(", updated_at = ")
        .push_bind(now.as_millis())
        .push(" WHERE id = ")
        .push_bind(id.as_str())
        .push(" AND enabled = TRUE");
    Ok(affected(qb, s.write_pool()).await? == 1)
}

/// The receipt of an event accepted before: its id and its deliveries (`duplicate: true`).
pub async fn original_receipt(
    conn: &mut <Db as sqlx::Database>::Connection,
    event: &str,
) -> DbResult<Receipt> {
    let mut qb = QueryBuilder::<Db>::new("SELECT id FROM deliveries WHERE event_id = ");
    qb.push_bind(event).push(" ORDER BY id");
    let ids: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
    let deliveries = ids
        .iter()
        .map(|id| DeliveryId::parse(id).map_err(|e| DbError::corrupt("deliveries.id", e)))
        .collect::<Result<_, _>>()?;
    let event = EventId::parse(event).map_err(|e| DbError::corrupt("events.id", e))?;
    Ok(Receipt::new(event, deliveries, true))
}

/// A delivery's status and next due time after an attempt with outcome `next`.
pub fn settled_state(next: Next) -> (&'static str, Option<i64>) {
    match next {
        Next::Delivered => ("succeeded", None),
        Next::RetryAt(t) => ("pending", Some(t.as_millis())),
        Next::Exhausted => ("failed", None),
    }
}

/// The latency bucket columns of `endpoint_hourly`.
const HOURLY_BUCKETS: [&str; hookline_core::model::LATENCY_BUCKETS] = [
    "l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9", "l10", "l11",
];

/// Adds hourly counters: one upsert of every (endpoint, hour), duplicates merged first (an
/// upsert may touch a row once).
pub async fn add_hourly<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    stats: &[hookline_core::model::HourlyStats],
) -> Result<(), StoreError> {
    use hookline_core::model::HourlyStats;
    let mut merged: std::collections::BTreeMap<(&str, i64), HourlyStats> = Default::default();
    for st in stats {
        let hour = HourlyStats::hour_of(st.hour);
        merged
            .entry((st.endpoint.as_str(), hour.as_millis()))
            .or_insert_with(|| HourlyStats::new(st.endpoint.clone(), hour))
            .merge(st);
    }
    if merged.is_empty() {
        return Ok(());
    }
    let cols = HOURLY_BUCKETS.join(", ");
    let mut qb = QueryBuilder::<Db>::new(format!(
        "INSERT INTO endpoint_hourly (endpoint_id, hour, delivered, failed, {cols}) "
    ));
    qb.push_values(merged.values(), |mut row, st| {
        row.push_bind(st.endpoint.as_str().to_owned())
            .push_bind(st.hour.as_millis())
            .push_bind(st.delivered as i64)
            .push_bind(st.failed as i64);
        for n in st.latency {
            row.push_bind(n as i64);
        }
    });
    qb.push(" ON CONFLICT (endpoint_id, hour) DO UPDATE SET ");
    let mut set = qb.separated(", ");
    for c in ["delivered", "failed"].into_iter().chain(HOURLY_BUCKETS) {
        set.push(format!("{c} = endpoint_hourly.{c} + excluded.{c}"));
    }
    qb.build()
        .execute(s.write_pool())
        .await
        .map_err(DbError::from)?;
    Ok(())
}
