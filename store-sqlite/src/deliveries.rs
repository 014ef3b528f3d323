//! [`QueueStore`] and [`HistoryStore`]: events, deliveries, leases and attempts.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hookline_core::backend::LimitedRoom;
use hookline_core::model::{
    Attempt, Cursor, Delivery, DeliveryFilter, Event, EventFilter, Page, PageRequest, Trigger,
};
use hookline_core::store::{
    Claimed, HistoryStore, LeaseToken, Next, QueueStore, Receipt, StoreError,
};
use hookline_core::{AccountId, DeliveryId, EndpointId, EventId, Timestamp};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::SqliteStore;
use crate::catalog::push_page;
use crate::error::{DbError, DbResult};
use crate::group::{Done, Op};
use crate::rows::{self, ATTEMPT_COLS, DELIVERY_COLS, ENDPOINT_READ_COLS, EVENT_COLS};

/// The receipt of an event accepted before: its id and its deliveries.
async fn original_receipt(conn: &mut SqliteConnection, event: &str) -> DbResult<Receipt> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM deliveries WHERE event_id = ? ORDER BY id")
            .bind(event)
            .fetch_all(&mut *conn)
            .await?;
    Ok(Receipt {
        event_id: EventId::parse(event).map_err(|e| DbError::corrupt("events.id", e))?,
        deliveries: ids
            .iter()
            .map(|id| DeliveryId::parse(id).map_err(|e| DbError::corrupt("deliveries.id", e)))
            .collect::<Result<_, _>>()?,
        duplicate: true,
    })
}

/// `SELECT <cols> FROM <table> WHERE <col> IN (<ids>)`.
async fn fetch_by_ids(
    pool: &sqlx::SqlitePool,
    cols: &str,
    table: &str,
    ids: impl IntoIterator<Item = String>,
) -> DbResult<Vec<SqliteRow>> {
    let mut qb: QueryBuilder<'_, Sqlite> =
        QueryBuilder::new(format!("SELECT {cols} FROM {table} WHERE id IN ("));
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id);
    }
    qb.push(")");
    Ok(qb.build().fetch_all(pool).await?)
}

/// The claim's assignment: a fresh lease, the due time it was found at, and the lease end (bound
/// next) as the new due time, so an expired lease is simply due again.
const CLAIM_SET: &str = "UPDATE deliveries SET lease_id = lower(hex(randomblob(16))), \
    claimed_due_at = next_attempt_at, next_attempt_at = ";

/// What a claim returns of each delivery.
const CLAIM_RETURNING: &str = "RETURNING id, account, event_id, endpoint_id, status, attempts, \
    next_attempt_at, last_attempt_at, created_at, lease_id, claimed_due_at, next_trigger";

/// Ordered endpoints: only the head of each key's queue is eligible (`d` is the candidate).
const ORDERED_HEAD: &str = " AND (d.ordering_key IS NULL OR NOT EXISTS ( \
    SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id \
    AND p.ordering_key = d.ordering_key AND p.status = 'pending' AND p.id < d.id))";

/// Endpoints with a `maxConcurrency` or `rateLimit` that have due deliveries and room now:
/// fewer live leases than their limit, and a next free send time within the horizon.
/// Binds: now (ms) ×3, now + horizon (µs).
const LIMITED_CANDIDATES: &str = "SELECT id, max_concurrency, rate_limit, pace_next_us, live \
    FROM (SELECT e.id, e.max_concurrency, e.rate_limit, e.pace_next_us, \
            (SELECT count(*) FROM deliveries l WHERE l.endpoint_id = e.id \
               AND l.status = 'pending' AND l.next_attempt_at > ?1 \
               AND l.lease_id IS NOT NULL) AS live, \
            (SELECT min(d.next_attempt_at) FROM deliveries d WHERE d.endpoint_id = e.id \
               AND d.status = 'pending' AND d.next_attempt_at <= ?1) AS first_due \
          FROM endpoints e \
          WHERE e.enabled = 1 AND (e.max_concurrency IS NOT NULL OR e.rate_limit IS NOT NULL) \
            AND (e.rate_limit IS NULL OR e.pace_next_us IS NULL OR e.pace_next_us <= ?2)) \
    WHERE first_due IS NOT NULL AND (max_concurrency IS NULL OR live < max_concurrency) \
    ORDER BY first_due, id";

/// Moves an endpoint's pending deliveries due before `?1` (not leased, or with an ended lease at
/// `?3`, which is cleared) to `?1`. Binds: until, endpoint, now.
const HOLD_ENDPOINT: &str = "UPDATE deliveries \
    SET next_attempt_at = ?1, lease_id = NULL, claimed_due_at = NULL \
    WHERE endpoint_id = ?2 AND status = 'pending' AND next_attempt_at < ?1 \
    AND (lease_id IS NULL OR next_attempt_at <= ?3)";

/// Sets a delivery pending, due at `now`, with a manual trigger and no lease.
const REQUEUE_MANUAL: &str = "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, \
    lease_id = NULL, claimed_due_at = NULL, next_trigger = 'manual'";

/// One limited endpoint the claim may take deliveries of.
struct Limited {
    id: String,
    max_concurrency: Option<i64>,
    rate_limit: Option<u32>,
    pace_next_us: Option<i64>,
    live: i64,
}

impl Limited {
    fn from_row(row: &SqliteRow) -> DbResult<Self> {
        use sqlx::Row as _;
        Ok(Self {
            id: row.try_get("id")?,
            max_concurrency: row.try_get("max_concurrency")?,
            rate_limit: row
                .try_get::<Option<i64>, _>("rate_limit")?
                .map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
            pace_next_us: row.try_get("pace_next_us")?,
            live: row.try_get("live")?,
        })
    }
}

/// A claimed delivery with its lease and, for a rate-limited endpoint, its send time.
type ClaimedRow = (Delivery, rows::ClaimColumns, Option<Timestamp>);

impl SqliteStore {
    /// Whether any enabled endpoint has limits (asked at most once per
    /// [`LimitedHint::TTL`](hookline_core::backend::LimitedHint::TTL) unless endpoints change here).
    async fn any_limited(&self) -> DbResult<bool> {
        if let Some(known) = self.limited.get() {
            return Ok(known);
        }
        let any: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM endpoints WHERE enabled = 1 \
             AND (max_concurrency IS NOT NULL OR rate_limit IS NOT NULL))",
        )
        .fetch_one(&self.read)
        .await?;
        self.limited.set(any);
        Ok(any)
    }

    /// Claims up to `room` more deliveries of endpoints with limits, one endpoint at a time in
    /// a write transaction, so the limits hold against every process on the file: at most
    /// `maxConcurrency` live leases, and send times `1/rateLimit` apart (kept in
    /// `endpoints.pace_next_us`) no further ahead than the rate horizon.
    async fn claim_limited(
        &self,
        now: Timestamp,
        mut room: usize,
        lease_end: Timestamp,
        skip: &[EndpointId],
        batch: &mut Vec<ClaimedRow>,
    ) -> DbResult<()> {
        let horizon_us = LimitedRoom::horizon_us(now);
        let skipped = |id: &str| skip.iter().any(|s| s.as_str() == id);
        if !self.any_limited().await? {
            return Ok(());
        }
        // Look without the write lock first: most claims find nothing to do here.
        let first_look = sqlx::query(LIMITED_CANDIDATES)
            .bind(now.as_millis())
            .bind(horizon_us)
            .fetch_all(&self.read)
            .await?;
        if !first_look
            .iter()
            .filter_map(|r| Limited::from_row(r).ok())
            .any(|l| !skipped(&l.id))
        {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let candidates = sqlx::query(LIMITED_CANDIDATES)
            .bind(now.as_millis())
            .bind(horizon_us)
            .fetch_all(&mut *tx)
            .await?;
        for row in &candidates {
            if room == 0 {
                break;
            }
            let l = Limited::from_row(row)?;
            if skipped(&l.id) {
                continue;
            }
            let allowed = LimitedRoom::new(
                now,
                room,
                l.max_concurrency,
                l.live,
                l.rate_limit,
                l.pace_next_us,
            );
            if allowed.take == 0 {
                continue;
            }
            let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(CLAIM_SET);
            qb.push_bind(lease_end.as_millis());
            qb.push(" WHERE id IN (SELECT d.id FROM deliveries d WHERE d.endpoint_id = ");
            qb.push_bind(l.id.clone());
            qb.push(" AND d.status = 'pending' AND d.next_attempt_at <= ");
            qb.push_bind(now.as_millis());
            qb.push(ORDERED_HEAD);
            qb.push(" ORDER BY d.next_attempt_at, d.id LIMIT ");
            qb.push_bind(allowed.take as i64);
            qb.push(format!(") {CLAIM_RETURNING}"));
            let got = qb.build().fetch_all(&mut *tx).await?;
            let mut mine = Vec::with_capacity(got.len());
            for row in &got {
                mine.push((rows::delivery(row)?, rows::claim_columns(row)?, None));
            }
            mine.sort_by(|(a, ca, _), (b, cb, _)| (ca.due_at, &a.id).cmp(&(cb.due_at, &b.id)));
            for (i, c) in mine.iter_mut().enumerate() {
                c.2 = allowed.send_time(i);
            }
            if let Some(next) = allowed.next_free_us(mine.len()) {
                sqlx::query("UPDATE endpoints SET pace_next_us = ? WHERE id = ?")
                    .bind(next)
                    .bind(&l.id)
                    .execute(&mut *tx)
                    .await?;
            }
            room = room.saturating_sub(mine.len());
            batch.extend(mine);
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl QueueStore for SqliteStore {
    async fn enqueue_with(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Receipt, StoreError> {
        self.group
            .submit(
                &self.write,
                crate::group::Op::Enqueue {
                    event: event.clone(),
                    targets: targets.to_vec(),
                    now,
                    trigger,
                },
            )
            .await
            .map(|done| match done {
                crate::group::Done::Enqueued(r) => r,
                crate::group::Done::Settled => unreachable!("an enqueue answers with a receipt"),
            })
    }

    async fn claim_due_except(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
        skip: &[EndpointId],
    ) -> Result<Vec<Claimed>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let lease_end = now.add(lease);
        // Endpoints without limits: one statement, so it is atomic on its own. SET expressions
        // read the old row, so `claimed_due_at` keeps the due time the claim found (to order
        // the batch).
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(CLAIM_SET);
        qb.push_bind(lease_end.as_millis());
        qb.push(
            " WHERE id IN ( \
                 SELECT d.id FROM deliveries d \
                 JOIN endpoints e ON e.id = d.endpoint_id AND e.account = d.account \
                 WHERE d.status = 'pending' AND e.enabled = 1 \
                 AND e.max_concurrency IS NULL AND e.rate_limit IS NULL \
                 AND d.next_attempt_at <= ",
        );
        qb.push_bind(now.as_millis());
        qb.push(ORDERED_HEAD);
        if !skip.is_empty() {
            qb.push(" AND d.endpoint_id NOT IN (");
            let mut sep = qb.separated(", ");
            for id in skip {
                sep.push_bind(id.as_str().to_owned());
            }
            qb.push(")");
        }
        qb.push(" ORDER BY d.next_attempt_at, d.id LIMIT ");
        qb.push_bind(i64::try_from(max).unwrap_or(i64::MAX));
        qb.push(format!(") {CLAIM_RETURNING}"));
        let claimed = qb
            .build()
            .fetch_all(&self.write)
            .await
            .map_err(DbError::from)?;

        let mut batch = Vec::with_capacity(claimed.len());
        for row in &claimed {
            batch.push((rows::delivery(row)?, rows::claim_columns(row)?, None));
        }
        batch.sort_by(|(a, ca, _), (b, cb, _)| (ca.due_at, &a.id).cmp(&(cb.due_at, &b.id)));
        if batch.len() < max {
            self.claim_limited(now, max - batch.len(), lease_end, skip, &mut batch)
                .await?;
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }

        let event_rows = fetch_by_ids(
            &self.read,
            EVENT_COLS,
            "events",
            batch.iter().map(|(d, _, _)| d.event_id.as_str().to_owned()),
        )
        .await?;
        let mut events = HashMap::new();
        for row in &event_rows {
            let e = rows::event(row)?;
            events.insert(e.id.clone(), e);
        }
        // Events can be large: hold one copy of each at a time, not the rows as well.
        drop(event_rows);
        let mut uses: HashMap<EventId, usize> = HashMap::new();
        for (d, _, _) in &batch {
            *uses.entry(d.event_id.clone()).or_default() += 1;
        }
        let endpoint_rows = fetch_by_ids(
            &self.read,
            ENDPOINT_READ_COLS,
            "endpoints",
            batch
                .iter()
                .map(|(d, _, _)| d.endpoint_id.as_str().to_owned()),
        )
        .await?;
        let mut endpoints = HashMap::new();
        for row in &endpoint_rows {
            let e = rows::endpoint(row)?;
            endpoints.insert(e.id.clone(), e);
        }

        let mut out = Vec::with_capacity(batch.len());
        for (delivery, cols, not_before) in batch {
            // Removed since the claim (endpoint deleted, account deleted): the row is cancelled
            // or gone, and the lease just lapses.
            // The last delivery of an event takes it; the others get a copy.
            let last = uses.get_mut(&delivery.event_id).is_some_and(|n| {
                *n -= 1;
                *n == 0
            });
            let event = if last {
                events.remove(&delivery.event_id)
            } else {
                events.get(&delivery.event_id).cloned()
            };
            let (Some(event), Some(endpoint)) =
                (event, endpoints.get(&delivery.endpoint_id).cloned())
            else {
                continue;
            };
            out.push(Claimed {
                attempt_number: delivery.attempts.saturating_add(1),
                trigger: cols.trigger,
                lease: LeaseToken {
                    delivery: delivery.id.clone(),
                    lease_id: cols.lease_id,
                },
                not_before,
                delivery,
                event,
                endpoint,
            });
        }
        Ok(out)
    }

    async fn defer(&self, lease: &LeaseToken, until: Timestamp) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET next_attempt_at = ?, lease_id = NULL, claimed_due_at = NULL \
             WHERE id = ? AND lease_id = ? AND status = 'pending'",
        )
        .bind(until.as_millis())
        .bind(lease.delivery.as_str())
        .bind(&lease.lease_id)
        .execute(&self.write)
        .await
        .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::LeaseLost);
        }
        Ok(())
    }

    async fn hold_endpoint(
        &self,
        endpoint: &EndpointId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(HOLD_ENDPOINT)
            .bind(until.as_millis())
            .bind(endpoint.as_str())
            .bind(now.as_millis())
            .execute(&self.write)
            .await
            .map_err(DbError::from)?;
        Ok(())
    }

    async fn purge(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM events WHERE fired_at < ? ORDER BY fired_at LIMIT ?",
        )
        .bind(before.as_millis())
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(DbError::from)?;
        for chunk in ids.chunks(200) {
            for (table, col) in [
                (
                    "attempts",
                    "delivery_id IN (SELECT id FROM deliveries WHERE event_id",
                ),
                ("deliveries", "event_id"),
                ("events", "id"),
            ] {
                let close = if table == "attempts" { "))" } else { ")" };
                let mut qb: QueryBuilder<'_, Sqlite> =
                    QueryBuilder::new(format!("DELETE FROM {table} WHERE {col} IN ("));
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(id.clone());
                }
                qb.push(close);
                qb.build().execute(&mut *tx).await.map_err(DbError::from)?;
            }
        }
        tx.commit().await.map_err(DbError::from)?;
        Ok(ids.len() as u64)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        // Only deliveries a claim could return: reporting ones of disabled endpoints would make
        // the dispatcher wake for work it cannot take.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT d.next_attempt_at FROM deliveries d \
             JOIN endpoints e ON e.id = d.endpoint_id AND e.account = d.account \
             WHERE d.status = 'pending' AND e.enabled = 1 \
             ORDER BY d.next_attempt_at LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await
        .map_err(DbError::from)?;
        Ok(due.map(Timestamp::from_millis))
    }

    async fn settle(
        &self,
        lease: &LeaseToken,
        attempt: &Attempt,
        next: Next,
    ) -> Result<(), StoreError> {
        self.group
            .submit(
                &self.write,
                crate::group::Op::Settle {
                    lease: lease.clone(),
                    attempt: attempt.clone(),
                    next,
                },
            )
            .await
            .map(|_| ())
    }

    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        let row = sqlx::query(&format!(
            "{REQUEUE_MANUAL} WHERE account = ? AND id = ? RETURNING {DELIVERY_COLS}"
        ))
        .bind(now.as_millis())
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.write)
        .await
        .map_err(DbError::from)?;
        match row {
            Some(row) => Ok(rows::delivery(&row)?),
            None => Err(StoreError::NotFound("delivery")),
        }
    }

    async fn recover_failed(
        &self,
        account: &AccountId,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "{REQUEUE_MANUAL} WHERE account = ? AND endpoint_id = ? AND status = 'failed' \
             AND created_at >= ?"
        ))
        .bind(now.as_millis())
        .bind(account.as_str())
        .bind(endpoint.as_str())
        .bind(since.as_millis())
        .execute(&self.write)
        .await
        .map_err(DbError::from)?;
        Ok(done.rows_affected())
    }

    async fn record_failing(
        &self,
        id: &EndpointId,
        at: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let since: Option<i64> = sqlx::query_scalar(
            "UPDATE endpoints SET failing_since = coalesce(failing_since, ?) WHERE id = ? \
             RETURNING failing_since",
        )
        .bind(at.as_millis())
        .bind(id.as_str())
        .fetch_optional(&self.write)
        .await
        .map_err(DbError::from)?;
        Ok(since.map(Timestamp::from_millis))
    }

    async fn disable_endpoint(
        &self,
        id: &EndpointId,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE endpoints SET enabled = 0, disabled_reason = ?, updated_at = ? \
             WHERE id = ? AND enabled = 1",
        )
        .bind(reason)
        .bind(now.as_millis())
        .bind(id.as_str())
        .execute(&self.write)
        .await
        .map_err(DbError::from)?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_healthy(&self, id: &EndpointId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL",
        )
        .bind(id.as_str())
        .execute(&self.write)
        .await
        .map_err(DbError::from)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl HistoryStore for SqliteStore {
    async fn event(&self, account: &AccountId, id: &EventId) -> Result<Option<Event>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLS} FROM events WHERE account = ? AND id = ?"
        ))
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await
        .map_err(DbError::from)?;
        Ok(row.as_ref().map(rows::event).transpose()?)
    }

    async fn list_events(
        &self,
        account: &AccountId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<Event>, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {EVENT_COLS} FROM events WHERE account = "));
        qb.push_bind(account.as_str().to_owned());
        if let Some(t) = &filter.event_type {
            qb.push(" AND event_type = ")
                .push_bind(t.as_str().to_owned());
        }
        if let Some(s) = &filter.site {
            qb.push(" AND site = ").push_bind(s.as_str().to_owned());
        }
        if let Some(q) = &filter.queue_id {
            qb.push(" AND queue_id = ").push_bind(q.clone());
        }
        if let Some(t) = filter.since {
            qb.push(" AND fired_at >= ").push_bind(t.as_millis());
        }
        if let Some(t) = filter.until {
            qb.push(" AND fired_at < ").push_bind(t.as_millis());
        }
        push_page(&mut qb, "fired_at", "id", page);
        let found = qb
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(DbError::from)?;
        let items = found.iter().map(rows::event).collect::<Result<_, _>>()?;
        Ok(Page::from_rows(items, page.limit, |e: &Event| Cursor {
            created_at: e.timestamp,
            id: e.id.as_str().to_owned(),
        }))
    }

    async fn delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLS} FROM deliveries WHERE account = ? AND id = ?"
        ))
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await
        .map_err(DbError::from)?;
        Ok(row.as_ref().map(rows::delivery).transpose()?)
    }

    async fn list_deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {DELIVERY_COLS} FROM deliveries WHERE account = "
        ));
        qb.push_bind(account.as_str().to_owned());
        if let Some(e) = &filter.event {
            qb.push(" AND event_id = ").push_bind(e.as_str().to_owned());
        }
        if let Some(e) = &filter.endpoint {
            qb.push(" AND endpoint_id = ")
                .push_bind(e.as_str().to_owned());
        }
        if let Some(s) = filter.status {
            qb.push(" AND status = ").push_bind(s.as_str());
        }
        push_page(&mut qb, "created_at", "id", page);
        let found = qb
            .build()
            .fetch_all(&self.read)
            .await
            .map_err(DbError::from)?;
        let items = found.iter().map(rows::delivery).collect::<Result<_, _>>()?;
        Ok(Page::from_rows(items, page.limit, |d: &Delivery| Cursor {
            created_at: d.created_at,
            id: d.id.as_str().to_owned(),
        }))
    }

    async fn attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
    ) -> Result<Vec<Attempt>, StoreError> {
        let found = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLS} FROM attempts WHERE delivery_id = ? \
             AND EXISTS (SELECT 1 FROM deliveries d WHERE d.id = attempts.delivery_id AND d.account = ?) \
             ORDER BY number, started_at, id"
        ))
        .bind(delivery.as_str())
        .bind(account.as_str())
        .fetch_all(&self.read)
        .await
        .map_err(DbError::from)?;
        Ok(found.iter().map(rows::attempt).collect::<Result<_, _>>()?)
    }
}

/// The id of an event accepted before with `event`'s id or idempotency key.
async fn find_original(conn: &mut SqliteConnection, event: &Event) -> DbResult<Option<String>> {
    let same_id: Option<String> = sqlx::query_scalar("SELECT id FROM events WHERE id = ?")
        .bind(event.id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match (same_id, &event.idempotency_key) {
        (Some(id), _) => Some(id),
        (None, Some(key)) => {
            sqlx::query_scalar("SELECT id FROM events WHERE account = ? AND idempotency_key = ?")
                .bind(event.account.as_str())
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?
        }
        (None, None) => None,
    })
}

/// Rows per multi-row statement of a batched group (well under SQLite's 32,766 variables).
const ROWS_PER_STATEMENT: usize = 200;

/// A whole group commit's enqueues and settles as a few multi-row statements, inside the
/// caller's write transaction (see [`crate::group`]); the group has no two enqueues of one event
/// id or idempotency key and no two settles of one delivery. The results are those running the
/// operations one by one would give. An `Err` means part of the group may have been written:
/// the caller rolls the transaction back.
pub(crate) async fn run_batched(
    conn: &mut SqliteConnection,
    ops: &[Op],
) -> DbResult<Vec<Result<Done, StoreError>>> {
    let mut results: Vec<Option<Result<Done, StoreError>>> = ops.iter().map(|_| None).collect();

    // Events: one row each; an id or idempotency key seen before inserts nothing.
    let enqueues: Vec<(usize, &Event, &[EndpointId], Timestamp, Trigger)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Enqueue {
                event,
                targets,
                now,
                trigger,
            } => Some((i, event, targets.as_slice(), *now, *trigger)),
            Op::Settle { .. } => None,
        })
        .collect();
    let mut inserted = HashSet::new();
    for chunk in by_size(&enqueues, |(_, event, _, _, _)| event.data.get().len()) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new(format!("INSERT INTO events ({EVENT_COLS}) "));
        qb.push_values(chunk, |mut row, (_, event, _, _, _)| {
            row.push_bind(event.id.as_str())
                .push_bind(event.account.as_str())
                .push_bind(event.site.as_ref().map(|s| s.as_str()))
                .push_bind(event.event_type.as_str())
                .push_bind(event.queue_id.as_deref())
                .push_bind(event.data.get())
                .push_bind(event.idempotency_key.as_deref())
                .push_bind(event.timestamp.as_millis());
        });
        qb.push(" ON CONFLICT DO NOTHING RETURNING id");
        let ids: Vec<String> = qb
            .build_query_scalar()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        inserted.extend(ids);
    }

    // Deliveries of the new events; duplicates answer with the original's receipt.
    let mut rows = Vec::new();
    for &(i, event, targets, now, trigger) in &enqueues {
        if !inserted.contains(event.id.as_str()) {
            let Some(id) = find_original(&mut *conn, event).await? else {
                return Err(DbError::Group(
                    "an event was neither inserted nor a duplicate".into(),
                ));
            };
            results[i] = Some(Ok(Done::Enqueued(original_receipt(&mut *conn, &id).await?)));
            continue;
        }
        let ids: Vec<DeliveryId> = targets.iter().map(|_| DeliveryId::generate()).collect();
        for (id, target) in ids.iter().zip(targets) {
            rows.push((id.as_str().to_owned(), event, target, now, trigger));
        }
        results[i] = Some(Ok(Done::Enqueued(Receipt {
            event_id: event.id.clone(),
            deliveries: ids,
            duplicate: false,
        })));
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        // Only to endpoints of the event's account: a row left out is an unknown target, which
        // the one-by-one run answers with `NotFound` for that enqueue alone.
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO deliveries (id, account, event_id, endpoint_id, status, attempts, \
             next_attempt_at, last_attempt_at, created_at, lease_id, claimed_due_at, next_trigger, \
             ordering_key) \
             SELECT v.column1, v.column2, v.column3, v.column4, 'pending', 0, v.column5, NULL, \
             v.column5, NULL, NULL, v.column7, CASE WHEN e.ordered = 1 THEN v.column6 END \
             FROM (",
        );
        qb.push_values(chunk, |mut row, (id, event, target, now, trigger)| {
            row.push_bind(id.as_str())
                .push_bind(event.account.as_str())
                .push_bind(event.id.as_str())
                .push_bind(target.as_str())
                .push_bind(now.as_millis())
                .push_bind(event.queue_id.as_deref())
                .push_bind(trigger.as_str());
        });
        qb.push(") AS v JOIN endpoints e ON e.id = v.column4 AND e.account = v.column2");
        let done = qb.build().persistent(false).execute(&mut *conn).await?;
        if done.rows_affected() != chunk.len() as u64 {
            return Err(DbError::Group(
                "an enqueue names an unknown endpoint".into(),
            ));
        }
    }

    // Settles: one UPDATE for all leases, then the attempts of those whose lease was current.
    let settles: Vec<(usize, &LeaseToken, &Attempt, Next)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Settle {
                lease,
                attempt,
                next,
            } => Some((i, lease, attempt, *next)),
            Op::Enqueue { .. } => None,
        })
        .collect();
    for chunk in settles.chunks(ROWS_PER_STATEMENT) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("WITH v (id, lease_id, status, next_at, last_at) AS (");
        qb.push_values(chunk, |mut row, (_, lease, attempt, next)| {
            let (status, next_at) = settled_state(*next);
            row.push_bind(lease.delivery.as_str())
                .push_bind(lease.lease_id.as_str())
                .push_bind(status)
                .push_bind(next_at)
                .push_bind(attempt.started_at.as_millis());
        });
        qb.push(
            ") UPDATE deliveries SET status = v.status, attempts = attempts + 1, \
             next_attempt_at = v.next_at, last_attempt_at = v.last_at, lease_id = NULL, \
             claimed_due_at = NULL, next_trigger = 'scheduled' \
             FROM v WHERE deliveries.id = v.id AND deliveries.lease_id = v.lease_id \
             AND deliveries.status = 'pending' RETURNING deliveries.id",
        );
        let done: HashSet<String> = qb
            .build_query_scalar()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
        let mut settled = Vec::with_capacity(done.len());
        for &(i, lease, attempt, _) in chunk {
            results[i] = Some(if done.contains(lease.delivery.as_str()) {
                settled.push((lease, attempt));
                Ok(Done::Settled)
            } else {
                Err(StoreError::LeaseLost)
            });
        }
        if settled.is_empty() {
            continue;
        }
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new(format!("INSERT INTO attempts ({ATTEMPT_COLS}) "));
        qb.push_values(settled, |mut row, (lease, attempt)| {
            row.push_bind(attempt.id.as_str())
                .push_bind(lease.delivery.as_str())
                .push_bind(i64::from(attempt.number))
                .push_bind(attempt.trigger.as_str())
                .push_bind(attempt.started_at.as_millis())
                .push_bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
                .push_bind(attempt.status_code.map(i64::from))
                .push_bind(attempt.error.as_deref())
                .push_bind(attempt.response_body.as_str());
        });
        qb.build().persistent(false).execute(&mut *conn).await?;
    }

    results
        .into_iter()
        .map(|r| r.ok_or_else(|| DbError::Group("an operation was left out".into())))
        .collect()
}

/// Event data bound to one statement at most: sqlx and SQLite each copy what is bound, so a
/// group of large events is written a few at a time rather than all at once.
const BYTES_PER_STATEMENT: usize = 1 << 20;

/// `items` cut into runs of at most [`ROWS_PER_STATEMENT`] items and, unless one item is larger
/// on its own, [`BYTES_PER_STATEMENT`] bytes.
fn by_size<T>(items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start && (i - start == ROWS_PER_STATEMENT || bytes + n > BYTES_PER_STATEMENT) {
            chunks.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

/// A delivery's status and next due time after an attempt with outcome `next`.
fn settled_state(next: Next) -> (&'static str, Option<i64>) {
    match next {
        Next::Delivered => ("succeeded", None),
        Next::RetryAt(t) => ("pending", Some(t.as_millis())),
        Next::Exhausted => ("failed", None),
    }
}

/// Enqueue inside the caller's write transaction (see [`crate::group`]).
pub(crate) async fn enqueue_in(
    tx: &mut SqliteConnection,
    event: &Event,
    targets: &[EndpointId],
    now: Timestamp,
    trigger: Trigger,
) -> Result<Receipt, StoreError> {
    if let Some(id) = find_original(&mut *tx, event).await? {
        return Ok(original_receipt(&mut *tx, &id).await?);
    }

    sqlx::query(&format!(
        "INSERT INTO events ({EVENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(event.id.as_str())
    .bind(event.account.as_str())
    .bind(event.site.as_ref().map(|s| s.as_str()))
    .bind(event.event_type.as_str())
    .bind(&event.queue_id)
    .bind(event.data.get())
    .bind(&event.idempotency_key)
    .bind(event.timestamp.as_millis())
    .execute(&mut *tx)
    .await
    .map_err(|e| DbError::from(e).into_store("event"))?;
    let mut deliveries = Vec::with_capacity(targets.len());
    for target in targets {
        let id = DeliveryId::generate();
        // Only to an endpoint of the event's account; otherwise the caller's savepoint is
        // rolled back, so a refused enqueue writes nothing.
        let done = sqlx::query(
            "INSERT INTO deliveries (id, account, event_id, endpoint_id, status, attempts, \
             next_attempt_at, last_attempt_at, created_at, lease_id, claimed_due_at, next_trigger, \
             ordering_key) \
             SELECT ?, account, ?, id, 'pending', 0, ?, NULL, ?, NULL, NULL, ?, \
             CASE WHEN ordered = 1 THEN ? END \
             FROM endpoints WHERE id = ? AND account = ?",
        )
        .bind(id.as_str())
        .bind(event.id.as_str())
        .bind(now.as_millis())
        .bind(now.as_millis())
        .bind(trigger.as_str())
        .bind(&event.queue_id)
        .bind(target.as_str())
        .bind(event.account.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| DbError::from(e).into_store("delivery"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("endpoint"));
        }
        deliveries.push(id);
    }
    Ok(Receipt {
        event_id: event.id.clone(),
        deliveries,
        duplicate: false,
    })
}

/// Settle inside the caller's write transaction (see [`crate::group`]).
pub(crate) async fn settle_in(
    tx: &mut SqliteConnection,
    lease: &LeaseToken,
    attempt: &Attempt,
    next: Next,
) -> Result<(), StoreError> {
    let (status, next_at) = settled_state(next);
    let done = sqlx::query(
        "UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, \
         last_attempt_at = ?, lease_id = NULL, claimed_due_at = NULL, \
         next_trigger = 'scheduled' \
         WHERE id = ? AND lease_id = ? AND status = 'pending'",
    )
    .bind(status)
    .bind(next_at)
    .bind(attempt.started_at.as_millis())
    .bind(lease.delivery.as_str())
    .bind(&lease.lease_id)
    .execute(&mut *tx)
    .await
    .map_err(DbError::from)?;
    if done.rows_affected() == 0 {
        // Nothing changed (the caller's savepoint is rolled back).
        return Err(StoreError::LeaseLost);
    }
    sqlx::query(&format!(
        "INSERT INTO attempts ({ATTEMPT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(attempt.id.as_str())
    .bind(lease.delivery.as_str())
    .bind(i64::from(attempt.number))
    .bind(attempt.trigger.as_str())
    .bind(attempt.started_at.as_millis())
    .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
    .bind(attempt.status_code.map(i64::from))
    .bind(&attempt.error)
    .bind(&attempt.response_body)
    .execute(&mut *tx)
    .await
    .map_err(|e| DbError::from(e).into_store("attempt"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{BYTES_PER_STATEMENT, ROWS_PER_STATEMENT, by_size};

    #[test]
    fn statements_are_cut_by_rows_and_by_bytes() {
        let lens = |chunks: Vec<&[usize]>| chunks.iter().map(|c| c.len()).collect::<Vec<_>>();
        assert!(by_size(&[] as &[usize], |n| *n).is_empty());
        let small = vec![10; ROWS_PER_STATEMENT + 1];
        assert_eq!(lens(by_size(&small, |n| *n)), [ROWS_PER_STATEMENT, 1]);
        let large = vec![BYTES_PER_STATEMENT / 3; 7];
        assert_eq!(lens(by_size(&large, |n| *n)), [3, 3, 1]);
        // One item larger than the limit goes alone.
        let huge = [1, BYTES_PER_STATEMENT * 2, 1];
        assert_eq!(lens(by_size(&huge, |n| *n)), [1, 1, 1]);
    }
}
