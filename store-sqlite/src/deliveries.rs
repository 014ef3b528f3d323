//! [`SqlQueue`] (and so `QueueStore`): claims, leases, the write group's enqueues and settles,
//! holds and purges.

use hookline_core::backend::LimitedRoom;
use hookline_core::model::{Attempt, Event, Trigger};
use hookline_core::store::{Claimed, LeaseToken, Next, Receipt, StoreError};
use hookline_core::{EndpointId, Timestamp};
use hookline_store_sql::SqlQueue;
use hookline_store_sql::sqlite::claims::{self, ClaimedRow, Limited};
use sqlx::{QueryBuilder, Sqlite};

use crate::SqliteStore;
use crate::error::{DbError, DbResult};
use crate::group::{Done, Op};

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

impl SqliteStore {
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
        if !claims::any_limited(self, &self.limited).await? {
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
            let allowed = l.room(now, room);
            if allowed.take == 0 {
                continue;
            }
            let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(CLAIM_SET);
            qb.push_bind(lease_end.as_millis());
            qb.push(" WHERE id IN (SELECT d.id FROM deliveries d WHERE d.endpoint_id = ");
            qb.push_bind(l.id.as_str());
            qb.push(" AND d.status = 'pending' AND d.next_attempt_at <= ");
            qb.push_bind(now.as_millis());
            qb.push(ORDERED_HEAD);
            qb.push(" ORDER BY d.next_attempt_at, d.id LIMIT ");
            qb.push_bind(allowed.take as i64);
            qb.push(format!(") {CLAIM_RETURNING}"));
            let got = qb.build().fetch_all(&mut *tx).await?;
            let mine = claims::take_limited(&mut tx, &l, &allowed, &got).await?;
            room = room.saturating_sub(mine.len());
            batch.extend(mine);
        }
        tx.commit().await?;
        Ok(())
    }
}

impl SqlQueue for SqliteStore {
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
                Op::Enqueue {
                    event: event.clone(),
                    targets: targets.to_vec(),
                    now,
                    trigger,
                },
            )
            .await
            .map(|done| match done {
                Done::Enqueued(r) => r,
                _ => unreachable!("an enqueue answers with a receipt"),
            })
    }

    async fn enqueue_batch(
        &self,
        items: &[(Event, Vec<EndpointId>)],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Vec<Receipt>, StoreError> {
        // One operation of the write group, submitted from a task of its own: once handed over
        // it is written whole (or not at all) even if the caller goes away, and it never waits
        // in the queue for a later caller to lead its group.
        let (group, pool) = (self.group.clone(), self.write.clone());
        let op = Op::EnqueueBatch {
            items: items.to_vec(),
            now,
            trigger,
        };
        let done = tokio::spawn(async move { group.submit(&pool, op).await })
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))??;
        match done {
            Done::Batch(receipts) => Ok(receipts),
            _ => unreachable!("a batch enqueue answers with receipts"),
        }
    }

    async fn claim(
        &self,
        now: Timestamp,
        max: usize,
        lease_end: Timestamp,
        skip: &[EndpointId],
    ) -> Result<Vec<Claimed>, StoreError> {
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
                sep.push_bind(id.as_str());
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

        let mut batch = claims::claimed_rows(&claimed)?;
        if batch.len() < max {
            self.claim_limited(now, max - batch.len(), lease_end, skip, &mut batch)
                .await?;
        }
        Ok(claims::claimed(self, batch).await?)
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
                Op::Settle {
                    lease: lease.clone(),
                    attempt: attempt.clone(),
                    next,
                },
            )
            .await
            .map(|_| ())
    }
}
