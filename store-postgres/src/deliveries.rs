//! [`SqlQueue`] (and so `QueueStore`): claims, leases, grouped enqueues and settles, holds and
//! purges.

use hookline_core::backend::LimitedRoom;
use hookline_core::model::{Attempt, Event, Trigger};
use hookline_core::store::{Claimed, LeaseToken, Next, Receipt, StoreError};
use hookline_core::{DeliveryId, EndpointId, Timestamp};
use hookline_store_sql::SqlQueue;

use hookline_store_sql::group::{Group, Reply};
use hookline_store_sql::postgres::claims::{self, ClaimedRow, Limited};
use hookline_store_sql::postgres::queue::{self, original_receipt};
use hookline_store_sql::postgres::rows::{ATTEMPT_COLS, DELIVERY_COLS, EVENT_COLS};
use hookline_store_sql::qualified;
use sqlx::PgConnection;

use crate::PgStore;
use crate::error::{DbError, DbResult};

/// How often enqueue looks for the row it conflicted with before giving up (the row can vanish
/// between the conflict and the look-up only if it is deleted in that instant).
const DUPLICATE_LOOKUPS: usize = 3;

/// The claim: pending deliveries of enabled endpoints due at `$1` without a live lease, oldest
/// due first, at most `$2`, not to the endpoints in `$4`, and for ordered endpoints only the
/// head of each queue id (a pending delivery with the same endpoint and key and a lower id
/// blocks it, leased or not), locked with `SKIP LOCKED` so concurrent claimers (in any process)
/// pass each other instead of queueing; each gets a fresh lease id and a lease ending at `$3`
/// (`lease_until`). `next_attempt_at` is left alone, so the update touches no indexed column
/// and is a HOT update (migration 0003).
///
/// `FOR UPDATE … SKIP LOCKED` under READ COMMITTED: a row another claimer updated after our
/// snapshot is re-checked against the `WHERE` clause on its newest version, whose
/// `lease_until` is now in the future, so it is dropped: two claims never return one row.
///
/// The locked ids are handed to the `UPDATE` as an array (`id = ANY (ARRAY(…))`), not joined
/// from a CTE: with a join, PostgreSQL's generic plan for the prepared statement (used after a
/// few executions, when it does not know `$2` is small) hashes the whole table — about 0.5 s
/// at a million rows — where the array is always a primary-key index scan.
pub(crate) const CLAIM_SQL: &str = "\
UPDATE deliveries d
SET lease_id = gen_random_uuid()::text,
    claimed_due_at = d.next_attempt_at,
    lease_until = $3
WHERE d.id = ANY (ARRAY(
    SELECT due.id
    FROM deliveries due
    JOIN endpoints e ON e.id = due.endpoint_id AND e.account = due.account
    WHERE due.status = 'pending' AND due.endpoint_enabled AND due.next_attempt_at <= $1
      AND (due.lease_until IS NULL OR due.lease_until <= $1)
      AND e.enabled AND e.max_concurrency IS NULL AND e.rate_limit IS NULL
      AND NOT (due.endpoint_id = ANY ($4))
      AND (due.ordering_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM deliveries p
          WHERE p.endpoint_id = due.endpoint_id AND p.ordering_key = due.ordering_key
            AND p.status = 'pending' AND p.id < due.id))
    ORDER BY due.next_attempt_at, due.id
    LIMIT $2
    FOR UPDATE OF due SKIP LOCKED
))
RETURNING ";

/// Endpoints with a `maxConcurrency` or `rateLimit`, not in `$3`, that have due deliveries and
/// room now: fewer live leases than their limit, and a next free send time within the horizon
/// (`$2`, µs). `$1` is now (ms). `$4` restricts it to the given ids when not NULL.
const LIMITED_CANDIDATES: &str = "\
SELECT id, max_concurrency, rate_limit, pace_next_us, live FROM (
    SELECT e.id, e.max_concurrency, e.rate_limit, e.pace_next_us,
        (SELECT count(*) FROM deliveries l WHERE l.endpoint_id = e.id AND l.status = 'pending'
            AND l.lease_id IS NOT NULL
            AND GREATEST(l.next_attempt_at, l.lease_until) > $1) AS live,
        (SELECT min(d.next_attempt_at) FROM deliveries d WHERE d.endpoint_id = e.id
            AND d.status = 'pending' AND d.next_attempt_at <= $1
            AND (d.lease_until IS NULL OR d.lease_until <= $1)) AS first_due
    FROM endpoints e
    WHERE e.enabled AND (e.max_concurrency IS NOT NULL OR e.rate_limit IS NOT NULL)
      AND (e.rate_limit IS NULL OR e.pace_next_us IS NULL OR e.pace_next_us <= $2)
      AND NOT (e.id = ANY ($3))
      AND ($4::text[] IS NULL OR e.id = ANY ($4))
) c
WHERE first_due IS NOT NULL AND (max_concurrency IS NULL OR live < max_concurrency)
ORDER BY first_due, id";

/// The claim of up to `$4` due deliveries of one endpoint (`$1`), oldest due first, heads of
/// ordering queues only.
const CLAIM_ONE_ENDPOINT: &str = "\
UPDATE deliveries d
SET lease_id = gen_random_uuid()::text,
    claimed_due_at = d.next_attempt_at,
    lease_until = $3
WHERE d.id = ANY (ARRAY(
    SELECT due.id FROM deliveries due
    WHERE due.endpoint_id = $1 AND due.status = 'pending' AND due.next_attempt_at <= $2
      AND (due.lease_until IS NULL OR due.lease_until <= $2)
      AND (due.ordering_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM deliveries p
          WHERE p.endpoint_id = due.endpoint_id AND p.ordering_key = due.ordering_key
            AND p.status = 'pending' AND p.id < due.id))
    ORDER BY due.next_attempt_at, due.id
    LIMIT $4
    FOR UPDATE OF due SKIP LOCKED
))
RETURNING ";

impl PgStore {
    /// Claims up to `room` more deliveries of endpoints with limits. The endpoints' rows are
    /// locked (`FOR UPDATE SKIP LOCKED`) for the transaction, so claimers in every process take
    /// turns per endpoint and the limits hold across them: at most `maxConcurrency` live leases,
    /// and send times `1/rateLimit` apart (kept in `endpoints.pace_next_us`) no further ahead
    /// than the rate horizon. An endpoint another claimer holds is simply passed over.
    async fn claim_limited(
        &self,
        now: Timestamp,
        mut room: usize,
        lease_end: Timestamp,
        skip: &[EndpointId],
        batch: &mut Vec<ClaimedRow>,
    ) -> DbResult<()> {
        let horizon_us = LimitedRoom::horizon_us(now);
        let skip: Vec<&str> = skip.iter().map(|e| e.as_str()).collect();
        if !claims::any_limited(self, &self.limited).await? {
            return Ok(());
        }
        // Look without locks first: most claims find nothing to do here.
        let first_look: Vec<String> = sqlx::query(LIMITED_CANDIDATES)
            .bind(now.as_millis())
            .bind(horizon_us)
            .bind(&skip)
            .bind(None::<Vec<String>>)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Limited::from_row(r).map(|l| l.id))
            .collect::<Result<_, _>>()?;
        if first_look.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let locked: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM endpoints WHERE id = ANY ($1) ORDER BY id FOR UPDATE SKIP LOCKED",
        )
        .bind(&first_look)
        .fetch_all(&mut *tx)
        .await?;
        if locked.is_empty() {
            return Ok(());
        }
        let candidates = sqlx::query(LIMITED_CANDIDATES)
            .bind(now.as_millis())
            .bind(horizon_us)
            .bind(&skip)
            .bind(&locked)
            .fetch_all(&mut *tx)
            .await?;
        for row in &candidates {
            if room == 0 {
                break;
            }
            let l = Limited::from_row(row)?;
            let allowed = l.room(now, room);
            if allowed.take == 0 {
                continue;
            }
            let got = sqlx::query(&format!(
                "{CLAIM_ONE_ENDPOINT}{}, d.lease_id, d.claimed_due_at, d.next_trigger",
                qualified("d", DELIVERY_COLS)
            ))
            .bind(&l.id)
            .bind(now.as_millis())
            .bind(lease_end.as_millis())
            .bind(allowed.take as i64)
            .fetch_all(&mut *tx)
            .await?;
            let mine = claims::take_limited(&mut tx, &l, &allowed, &got).await?;
            room = room.saturating_sub(mine.len());
            batch.extend(mine);
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Whether every one of `targets` is an endpoint of the event's account (when not, an enqueue
/// writes nothing and is not a duplicate either).
async fn targets_known(
    conn: &mut PgConnection,
    event: &Event,
    targets: &[EndpointId],
) -> DbResult<bool> {
    let (known, wanted): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM endpoints WHERE account = $1 AND id = ANY($2::text[])), \
                (SELECT count(DISTINCT t) FROM UNNEST($2::text[]) AS t)",
    )
    .bind(event.account.as_str())
    .bind(targets.iter().map(|t| t.as_str()).collect::<Vec<_>>())
    .fetch_one(&mut *conn)
    .await?;
    Ok(known == wanted)
}

impl SqlQueue for PgStore {
    async fn enqueue_with(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Receipt, StoreError> {
        for _ in 0..DUPLICATE_LOOKUPS {
            let deliveries: Vec<DeliveryId> =
                targets.iter().map(|_| DeliveryId::generate()).collect();
            let op = EnqueueOp {
                event: event.clone(),
                targets: targets.to_vec(),
                deliveries: deliveries.clone(),
                now,
                trigger,
            };
            let pool = self.pool.clone();
            let inserted = self
                .enqueues
                .submit(op, move |batch| run_enqueues(pool.clone(), batch))
                .await?;
            if !inserted {
                // A new statement sees the winner's committed row (READ COMMITTED).
                let mut conn = self.pool.acquire().await.map_err(DbError::from)?;
                let original: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM events WHERE id = $1 \
                     UNION ALL \
                     SELECT id FROM events WHERE account = $2 AND idempotency_key = $3 \
                     LIMIT 1",
                )
                .bind(event.id.as_str())
                .bind(event.account.as_str())
                .bind(&event.idempotency_key)
                .fetch_optional(&mut *conn)
                .await
                .map_err(DbError::from)?;
                match original {
                    Some(id) => return Ok(original_receipt(&mut conn, &id).await?),
                    None if !targets_known(&mut conn, event, targets).await? => {
                        return Err(StoreError::NotFound("endpoint"));
                    }
                    None => continue,
                }
            }
            if !targets.is_empty() {
                // Wakes every process listening (see `listen_for_work`), after the commit.
                self.announcer.announce(&self.pool);
            }
            return Ok(Receipt::new(event.id.clone(), deliveries, false));
        }
        Err(StoreError::Conflict("event"))
    }

    async fn enqueue_batch(
        &self,
        items: &[(Event, Vec<EndpointId>)],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Vec<Receipt>, StoreError> {
        // The transaction runs in a task of its own, so a caller that goes away (a client that
        // hung up) never leaves it between statements: it commits whole or rolls back.
        let pool = self.pool.clone();
        let items = items.to_vec();
        let receipts = tokio::spawn(async move {
            for _ in 0..DUPLICATE_LOOKUPS {
                if let Some(receipts) = enqueue_batch_tx(&pool, &items, now, trigger).await? {
                    return Ok(receipts);
                }
            }
            Err(StoreError::Conflict("event"))
        })
        .await
        .map_err(|e| StoreError::Backend(Box::new(e)))??;
        if receipts
            .iter()
            .any(|r| !r.duplicate && !r.deliveries.is_empty())
        {
            self.announcer.announce(&self.pool);
        }
        Ok(receipts)
    }

    fn listen_for_work(&self) -> Option<hookline_core::store::WorkListener> {
        Some(self.work_listener())
    }

    async fn claim(
        &self,
        now: Timestamp,
        max: usize,
        lease_end: Timestamp,
        skip: &[EndpointId],
    ) -> Result<Vec<Claimed>, StoreError> {
        // The claim should walk the due index in order and stop after `max` rows. On a table
        // that grew faster than autovacuum analyses it, the planner's statistics say "a handful
        // of rows" and it prefers to collect every due row (a bitmap scan, or all pending rows
        // of the endpoint) and sort them: 120 ms instead of 9 ms per claim at 35,000 pending
        // rows (README, Performance). So the claim runs with sorts and bitmap scans switched
        // off for its own transaction — unless endpoints are skipped: then an ordered walk has
        // to step over every skipped due row, one heap fetch each, and is not bounded by the
        // limit, so the planner keeps its choice (measured on the black-hole test: p99 of the
        // healthy endpoint 1.1–2.3× its baseline with the walk forced, 1.0–1.4× without).
        let mut tx = self.pool.begin().await.map_err(DbError::from)?;
        if skip.is_empty() {
            sqlx::query(
                "SELECT set_config('enable_sort', 'off', true), \
                 set_config('enable_bitmapscan', 'off', true)",
            )
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?;
        }
        let claimed = sqlx::query(&format!(
            "{CLAIM_SQL}{}, d.lease_id, d.claimed_due_at, d.next_trigger",
            qualified("d", DELIVERY_COLS)
        ))
        .bind(now.as_millis())
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .bind(lease_end.as_millis())
        .bind(skip.iter().map(|e| e.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;

        let mut batch = claims::claimed_rows(&claimed)?;
        if batch.len() < max {
            self.claim_limited(now, max - batch.len(), lease_end, skip, &mut batch)
                .await?;
        }
        // Two more round trips for the whole batch: its events and its endpoints.
        Ok(claims::claimed(self, batch).await?)
    }

    async fn hold_endpoint(
        &self,
        endpoint: &EndpointId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET next_attempt_at = $1, lease_id = NULL, lease_until = NULL, \
             claimed_due_at = NULL \
             WHERE endpoint_id = $2 AND status = 'pending' AND next_attempt_at < $1 \
             AND (lease_id IS NULL OR GREATEST(next_attempt_at, lease_until) <= $3)",
        )
        .bind(until.as_millis())
        .bind(endpoint.as_str())
        .bind(now.as_millis())
        .execute(&self.pool)
        .await
        .map_err(DbError::from)?;
        Ok(())
    }

    async fn purge(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        // One statement: the oldest events (index on `fired_at`), their deliveries and attempts
        // by `ON DELETE CASCADE`. A leased delivery that is purged settles as `LeaseLost`.
        let done = sqlx::query(
            "DELETE FROM events WHERE id = ANY (ARRAY( \
                 SELECT id FROM events WHERE fired_at < $1 ORDER BY fired_at LIMIT $2))",
        )
        .bind(before.as_millis())
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(DbError::from)?;
        Ok(done.rows_affected())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        // Only deliveries a claim could return: reporting ones of disabled endpoints would make
        // the dispatcher wake for work it cannot take. A delivery can be claimed at its due
        // time, or when its lease ends if that is later. Same index as the claim: the first
        // delivery in due order without a live lease (`a`), and before it only leased ones
        // (at most what is in flight), whose lease ends count instead.
        let due: Option<i64> = sqlx::query_scalar::<_, Option<i64>>(
            "WITH a AS ( \
                 SELECT d.next_attempt_at AS at FROM deliveries d \
                 JOIN endpoints e ON e.id = d.endpoint_id AND e.account = d.account \
                 WHERE d.status = 'pending' AND d.endpoint_enabled AND e.enabled \
                   AND (d.lease_until IS NULL OR d.lease_until <= d.next_attempt_at) \
                 ORDER BY d.next_attempt_at, d.id LIMIT 1) \
             SELECT min(x) FROM ( \
                 SELECT at AS x FROM a \
                 UNION ALL \
                 SELECT d.lease_until FROM deliveries d \
                 JOIN endpoints e ON e.id = d.endpoint_id AND e.account = d.account \
                 WHERE d.status = 'pending' AND d.endpoint_enabled AND e.enabled \
                   AND d.lease_until > d.next_attempt_at \
                   AND d.next_attempt_at <= COALESCE((SELECT at FROM a), 9223372036854775807) \
             ) y",
        )
        .fetch_one(&self.pool)
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
        let pool = self.pool.clone();
        self.settles
            .submit(
                SettleOp {
                    lease: lease.clone(),
                    attempt: attempt.clone(),
                    next,
                },
                move |batch| run_settles(pool.clone(), batch),
            )
            .await
    }
}

/// What becomes of one item of a batch enqueue.
#[derive(Debug, Clone)]
enum BatchItem {
    /// A new event: the `n`-th of the batch's inserts.
    New(usize),
    /// A duplicate of an event stored before (its id).
    Stored(String),
    /// A duplicate of an earlier item of the batch (its position).
    Earlier(usize),
}

/// [`QueueStore::enqueue_batch`] in one transaction: `None` when an event lost a race to a
/// concurrent enqueue whose row has vanished again (the transaction is rolled back; try again).
///
/// The targets of every event are locked (`FOR KEY SHARE`, as [`enqueue_one`] does) and
/// checked, the events stored before looked up, and the batch's own duplicates found (the
/// first of an id or idempotency key wins), before anything is written; the new events then go
/// in as one [`enqueue_many`] statement, sorted by idempotency key so that concurrent batches
/// take the key locks in one order. A new event that conflicts anyway (a concurrent enqueue
/// committed it first) becomes a duplicate of the winner, read in a later statement of the
/// transaction (READ COMMITTED sees it).
async fn enqueue_batch_tx(
    pool: &sqlx::PgPool,
    items: &[(Event, Vec<EndpointId>)],
    now: Timestamp,
    trigger: Trigger,
) -> Result<Option<Vec<Receipt>>, StoreError> {
    use std::collections::HashMap;

    let mut tx = pool.begin().await.map_err(DbError::from)?;
    let targets: Vec<&str> = items
        .iter()
        .flat_map(|(_, t)| t.iter().map(|e| e.as_str()))
        .collect();
    let known: HashMap<String, String> = sqlx::query_as(&format!(
        "SELECT id, account FROM ({KNOWN} WHERE id = ANY($1::text[]) FOR KEY SHARE) k"
    ))
    .bind(&targets)
    .fetch_all(&mut *tx)
    .await
    .map_err(DbError::from)?
    .into_iter()
    .collect();
    let stored = stored_originals(&mut tx, items.iter().map(|(e, _)| e)).await?;

    let mut plan = Vec::with_capacity(items.len());
    let mut new_ops = Vec::new();
    let mut first_by_id: HashMap<&str, usize> = HashMap::new();
    let mut first_by_key: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, (event, targets)) in items.iter().enumerate() {
        let key = event
            .idempotency_key
            .as_deref()
            .map(|k| (event.account.as_str(), k));
        let earlier = first_by_id
            .get(event.id.as_str())
            .or_else(|| key.and_then(|k| first_by_key.get(&k)));
        let item = if let Some(original) = stored.original(event) {
            BatchItem::Stored(original.to_owned())
        } else if let Some(&j) = earlier {
            BatchItem::Earlier(j)
        } else {
            let own = |t: &EndpointId| {
                known
                    .get(t.as_str())
                    .is_some_and(|a| a == event.account.as_str())
            };
            if !targets.iter().all(own) {
                return Err(StoreError::NotFound("endpoint"));
            }
            first_by_id.insert(event.id.as_str(), i);
            if let Some(k) = key {
                first_by_key.insert(k, i);
            }
            new_ops.push(EnqueueOp {
                event: event.clone(),
                targets: targets.clone(),
                deliveries: targets.iter().map(|_| DeliveryId::generate()).collect(),
                now,
                trigger,
            });
            BatchItem::New(new_ops.len() - 1)
        };
        plan.push(item);
    }

    let mut sorted: Vec<&EnqueueOp> = new_ops.iter().collect();
    sorted.sort_by_key(|op| {
        (
            op.event.account.as_str(),
            op.event.idempotency_key.as_deref(),
        )
    });
    let inserted = if sorted.is_empty() {
        Default::default()
    } else {
        enqueue_many(&mut *tx, &sorted)
            .await
            .map_err(|e| e.into_store("event"))?
    };
    let lost: Vec<&Event> = new_ops
        .iter()
        .filter(|op| !inserted.contains(op.event.id.as_str()))
        .map(|op| &op.event)
        .collect();
    let winners = stored_originals(&mut tx, lost.iter().copied()).await?;

    let mut receipts: Vec<Receipt> = Vec::with_capacity(items.len());
    for item in plan {
        let receipt = match item {
            BatchItem::New(n) => {
                let op = &new_ops[n];
                if inserted.contains(op.event.id.as_str()) {
                    Receipt::new(op.event.id.clone(), op.deliveries.clone(), false)
                } else {
                    match winners.original(&op.event) {
                        Some(id) => original_receipt(&mut tx, id).await?,
                        None => return Ok(None),
                    }
                }
            }
            BatchItem::Stored(id) => original_receipt(&mut tx, &id).await?,
            BatchItem::Earlier(j) => {
                let first = &receipts[j];
                Receipt::new(first.event_id.clone(), first.deliveries.clone(), true)
            }
        };
        receipts.push(receipt);
    }
    tx.commit().await.map_err(DbError::from)?;
    Ok(Some(receipts))
}

/// The events stored already with the ids or idempotency keys of some events.
#[derive(Debug, Default)]
struct Originals {
    ids: std::collections::HashSet<String>,
    keys: std::collections::HashMap<(String, String), String>,
}

impl Originals {
    /// The stored event `event` is a duplicate of: the one with its id, else the one with its
    /// idempotency key.
    fn original<'a>(&'a self, event: &'a Event) -> Option<&'a str> {
        if self.ids.contains(event.id.as_str()) {
            return Some(event.id.as_str());
        }
        let key = event.idempotency_key.as_ref()?;
        self.keys
            .get(&(event.account.as_str().to_owned(), key.clone()))
            .map(String::as_str)
    }
}

/// Looks up, in one statement, the stored events with the ids or idempotency keys of `events`.
async fn stored_originals<'e>(
    conn: &mut PgConnection,
    events: impl Iterator<Item = &'e Event>,
) -> DbResult<Originals> {
    let (mut ids, mut accounts, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for e in events {
        ids.push(e.id.as_str());
        if let Some(k) = &e.idempotency_key {
            accounts.push(e.account.as_str());
            keys.push(k.as_str());
        }
    }
    let mut found = Originals::default();
    if ids.is_empty() {
        return Ok(found);
    }
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, account, idempotency_key FROM events WHERE id = ANY($1::text[]) \
         UNION \
         SELECT e.id, e.account, e.idempotency_key FROM events e \
         JOIN UNNEST($2::text[], $3::text[]) AS k (account, idempotency_key) \
           ON e.account = k.account AND e.idempotency_key = k.idempotency_key",
    )
    .bind(&ids)
    .bind(&accounts)
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    let wanted: std::collections::HashSet<&str> = ids.iter().copied().collect();
    for (id, account, key) in rows {
        if let Some(k) = key {
            found.keys.insert((account, k), id.clone());
        }
        if wanted.contains(id.as_str()) {
            found.ids.insert(id);
        }
    }
    Ok(found)
}

/// One [`QueueStore::enqueue_with`] call, with the ids of its deliveries.
#[derive(Debug)]
pub(crate) struct EnqueueOp {
    event: Event,
    targets: Vec<EndpointId>,
    deliveries: Vec<DeliveryId>,
    now: Timestamp,
    trigger: Trigger,
}

/// Most enqueues in one statement.
pub(crate) const MAX_ENQUEUE_GROUP: usize = 128;

/// Concurrent enqueues share one statement (see [`Group`]); each answers
/// whether its event was new (`false`: the id or idempotency key was taken, and nothing of it
/// was written). A group with two events of one id, or whose statement fails, is run again one
/// enqueue per statement.
pub(crate) type EnqueueGroup = Group<EnqueueOp, bool>;

async fn run_enqueues(pool: sqlx::PgPool, batch: Vec<(EnqueueOp, Reply<bool>)>) {
    let (ops, replies): (Vec<EnqueueOp>, Vec<Reply<bool>>) = batch.into_iter().unzip();
    let mut distinct = std::collections::HashSet::new();
    if ops.len() > 1 && ops.iter().all(|op| distinct.insert(op.event.id.as_str())) {
        match enqueue_many(&pool, &ops).await {
            Ok(inserted) => {
                for (op, reply) in ops.iter().zip(replies) {
                    let _ = reply.send(Ok(inserted.contains(op.event.id.as_str())));
                }
                return;
            }
            Err(e) => {
                let e = e.into_store("event");
                if e.is_transient() {
                    // The database is unreachable or stopped answering: one statement per
                    // enqueue would wait for it once per event. Every enqueue of the group
                    // shares the answer (unconfirmed if the statement may have committed).
                    let text = e.to_string();
                    let unconfirmed = !e.changed_nothing();
                    for reply in replies {
                        let why = DbError::Group(text.clone());
                        let _ = reply.send(Err(if unconfirmed {
                            StoreError::Unconfirmed(Box::new(why))
                        } else {
                            StoreError::Unavailable(Box::new(why))
                        }));
                    }
                    return;
                }
                tracing::debug!(error = %e, "batched enqueue failed; enqueueing one by one");
            }
        }
    }
    for (op, reply) in ops.iter().zip(replies) {
        let _ = reply.send(enqueue_one(&pool, op).await);
    }
}

/// One event and its whole fan-out in one statement, so one round trip and atomic on its own;
/// the deliveries (ordered endpoints get the queue id as ordering key) only if the event was
/// new. No conflict target: both the primary key and the per-account idempotency key count. A
/// concurrent insert of the same key makes this wait for that transaction and then do nothing,
/// so exactly one of many racing creates wins. (The deliveries' foreign key is checked at the
/// end of the statement, when the event row is there.)
///
/// Nothing is written unless every target is an endpoint of the event's account ([`KNOWN`]).
async fn enqueue_one(pool: &sqlx::PgPool, op: &EnqueueOp) -> Result<bool, StoreError> {
    let event = &op.event;
    let inserted: i64 = sqlx::query_scalar(&format!(
        "WITH known AS ({KNOWN} WHERE account = $2 AND id = ANY($10::text[]) FOR KEY SHARE), \
         ev AS ( \
             INSERT INTO events ({EVENT_COLS}) SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
             WHERE (SELECT count(*) FROM known) \
                 = (SELECT count(DISTINCT t) FROM UNNEST($10::text[]) AS t) \
             ON CONFLICT DO NOTHING RETURNING id), \
         dl AS ( \
             INSERT INTO deliveries (id, account, event_id, endpoint_id, status, \
                 attempts, next_attempt_at, created_at, next_trigger, ordering_key) \
             SELECT t.id, $2, ev.id, t.endpoint_id, 'pending', 0, $11, $11, \
                 $12, CASE WHEN e.ordered THEN $5 END \
             FROM ev \
             CROSS JOIN UNNEST($9::text[], $10::text[]) WITH ORDINALITY \
                 AS t (id, endpoint_id, n) \
             JOIN known e ON e.id = t.endpoint_id \
             ORDER BY t.n) \
         SELECT count(*) FROM ev"
    ))
    .bind(event.id.as_str())
    .bind(event.account.as_str())
    .bind(event.site.as_ref().map(|s| s.as_str()))
    .bind(event.event_type.as_str())
    .bind(&event.queue_id)
    .bind(event.data.get())
    .bind(&event.idempotency_key)
    .bind(event.timestamp.as_millis())
    .bind(op.deliveries.iter().map(|d| d.as_str()).collect::<Vec<_>>())
    .bind(op.targets.iter().map(|t| t.as_str()).collect::<Vec<_>>())
    .bind(op.now.as_millis())
    .bind(op.trigger.as_str())
    .fetch_one(pool)
    .await
    .map_err(|e| DbError::from(e).into_store("event"))?;
    Ok(inserted == 1)
}

/// The endpoints an enqueue may target (the statement adds its filter and `FOR KEY SHARE`).
/// Locking them makes the check atomic with the write: a concurrent `remove_endpoint` deletes
/// the row first, so either it waits for the enqueue and then cancels the new deliveries, or
/// the enqueue waits for it and no longer finds the endpoint.
const KNOWN: &str = "SELECT id, account, ordered FROM endpoints";

/// Enqueues `ops` (of distinct event ids) in one statement, each as [`enqueue_one`] would;
/// returns the ids of the events that were new. Two events with one idempotency key: the
/// first is inserted, the second conflicts with it and writes nothing. An event with a target
/// that is not an endpoint of its account is not inserted either.
async fn enqueue_many<'e, O: std::borrow::Borrow<EnqueueOp>>(
    conn: impl sqlx::PgExecutor<'e>,
    ops: &[O],
) -> DbResult<std::collections::HashSet<String>> {
    let ops: &[&EnqueueOp] = &ops.iter().map(O::borrow).collect::<Vec<_>>();
    let mut d_event = Vec::new();
    let mut d_id = Vec::new();
    let mut d_endpoint = Vec::new();
    let mut d_at = Vec::new();
    let mut d_trigger = Vec::new();
    for op in ops {
        for (id, target) in op.deliveries.iter().zip(&op.targets) {
            d_event.push(op.event.id.as_str());
            d_id.push(id.as_str());
            d_endpoint.push(target.as_str());
            d_at.push(op.now.as_millis());
            d_trigger.push(op.trigger.as_str());
        }
    }
    let ev = |f: fn(&Event) -> Option<&str>| ops.iter().map(|op| f(&op.event)).collect::<Vec<_>>();
    let inserted: Vec<String> = sqlx::query_scalar(&format!(
        "WITH input AS ( \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::int8[]) WITH ORDINALITY \
             AS i (id, account, site, event_type, queue_id, data, idempotency_key, fired_at, n)), \
         t AS ( \
             SELECT * FROM UNNEST($9::text[], $10::text[], $11::text[], $12::int8[], \
                 $13::text[]) WITH ORDINALITY AS t (event_id, id, endpoint_id, at, next_trigger, n)), \
         known AS ({KNOWN} WHERE id = ANY($11::text[]) FOR KEY SHARE), \
         missing AS ( \
             SELECT t.event_id FROM t JOIN input i ON i.id = t.event_id \
             LEFT JOIN known k ON k.id = t.endpoint_id AND k.account = i.account \
             WHERE k.id IS NULL), \
         ev AS ( \
             INSERT INTO events ({EVENT_COLS}) \
             SELECT {EVENT_COLS} FROM input \
             WHERE id NOT IN (SELECT event_id FROM missing) ORDER BY n \
             ON CONFLICT DO NOTHING RETURNING id, account, queue_id), \
         dl AS ( \
             INSERT INTO deliveries (id, account, event_id, endpoint_id, status, \
                 attempts, next_attempt_at, created_at, next_trigger, ordering_key) \
             SELECT t.id, ev.account, ev.id, t.endpoint_id, 'pending', 0, t.at, t.at, \
                 t.next_trigger, CASE WHEN e.ordered THEN ev.queue_id END \
             FROM t \
             JOIN ev ON ev.id = t.event_id \
             JOIN known e ON e.id = t.endpoint_id AND e.account = ev.account \
             ORDER BY t.n) \
         SELECT id FROM ev"
    ))
    .bind(ev(|e| Some(e.id.as_str())))
    .bind(ev(|e| Some(e.account.as_str())))
    .bind(ev(|e| e.site.as_ref().map(|s| s.as_str())))
    .bind(ev(|e| Some(e.event_type.as_str())))
    .bind(ev(|e| e.queue_id.as_deref()))
    .bind(ev(|e| Some(e.data.get())))
    .bind(ev(|e| e.idempotency_key.as_deref()))
    .bind(
        ops.iter()
            .map(|op| op.event.timestamp.as_millis())
            .collect::<Vec<_>>(),
    )
    .bind(d_event)
    .bind(d_id)
    .bind(d_endpoint)
    .bind(d_at)
    .bind(d_trigger)
    .fetch_all(conn)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// One [`QueueStore::settle`] call.
#[derive(Debug)]
pub(crate) struct SettleOp {
    lease: LeaseToken,
    attempt: Attempt,
    next: Next,
}

/// Most settles in one statement.
pub(crate) const MAX_SETTLE_GROUP: usize = 256;

/// Concurrent settles share one statement (see [`Group`]). A group with
/// two settles of one delivery, or whose statement fails, is run again one settle per
/// statement, which gives every settle its exact individual outcome.
pub(crate) type SettleGroup = Group<SettleOp, ()>;

async fn run_settles(pool: sqlx::PgPool, batch: Vec<(SettleOp, Reply<()>)>) {
    let pool = &pool;
    let (ops, replies): (Vec<SettleOp>, Vec<Reply<()>>) = batch.into_iter().unzip();
    let mut distinct = std::collections::HashSet::new();
    let batched = if ops.len() > 1
        && ops
            .iter()
            .all(|op| distinct.insert(op.lease.delivery.as_str()))
    {
        match settle_many(pool, &ops).await {
            Ok(settled) => Some(settled),
            Err(e) => {
                tracing::debug!(error = %e, "batched settle failed; settling one by one");
                None
            }
        }
    } else {
        None
    };
    match batched {
        Some(settled) => {
            for (op, reply) in ops.iter().zip(replies) {
                let _ = reply.send(if settled.contains(op.lease.delivery.as_str()) {
                    Ok(())
                } else {
                    Err(StoreError::LeaseLost)
                });
            }
        }
        None => {
            for (op, reply) in ops.iter().zip(replies) {
                let _ = reply.send(settle_one(pool, op).await);
            }
        }
    }
}

/// Settles `ops` (of distinct deliveries) in one statement; returns the deliveries whose lease
/// was current (settled), the others changed nothing.
async fn settle_many(
    pool: &sqlx::PgPool,
    ops: &[SettleOp],
) -> DbResult<std::collections::HashSet<String>> {
    let states: Vec<(&str, Option<i64>)> =
        ops.iter().map(|op| queue::settled_state(op.next)).collect();
    // The deliveries are found through `id = ANY ($1)` (a primary-key lookup whatever the plan)
    // and only then joined with their new values.
    let settled: Vec<String> = sqlx::query_scalar(&format!(
        "WITH v AS ( \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
                 $6::text[], $7::int4[], $8::text[], $9::int8[], $10::int4[], $11::text[], \
                 $12::text[]) \
             AS v (id, lease_id, status, next_at, started_at, attempt_id, number, trigger_kind, \
                 duration_ms, status_code, error, response_body)), \
         settled AS ( \
             UPDATE deliveries d SET status = v.status, attempts = d.attempts + 1, \
                 next_attempt_at = v.next_at, last_attempt_at = v.started_at, lease_id = NULL, \
                 lease_until = NULL, \
                 claimed_due_at = NULL, next_trigger = 'scheduled' \
             FROM v \
             WHERE d.id = ANY ($1) AND d.id = v.id AND d.lease_id = v.lease_id \
                 AND d.status = 'pending' \
             RETURNING d.id) \
         INSERT INTO attempts ({ATTEMPT_COLS}) \
         SELECT v.attempt_id, v.id, v.number, v.trigger_kind, v.started_at, v.duration_ms, \
             v.status_code, v.error, v.response_body \
         FROM v JOIN settled ON settled.id = v.id \
         RETURNING delivery_id"
    ))
    .bind(
        ops.iter()
            .map(|op| op.lease.delivery.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        ops.iter()
            .map(|op| op.lease.lease_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(states.iter().map(|(status, _)| *status).collect::<Vec<_>>())
    .bind(
        states
            .iter()
            .map(|(_, next_at)| *next_at)
            .collect::<Vec<_>>(),
    )
    .bind(
        ops.iter()
            .map(|op| op.attempt.started_at.as_millis())
            .collect::<Vec<_>>(),
    )
    .bind(
        ops.iter()
            .map(|op| op.attempt.id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        ops.iter()
            .map(|op| i32::try_from(op.attempt.number).unwrap_or(i32::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(
        ops.iter()
            .map(|op| op.attempt.trigger.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        ops.iter()
            .map(|op| i64::try_from(op.attempt.duration_ms).unwrap_or(i64::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(
        ops.iter()
            .map(|op| op.attempt.status_code.map(i32::from))
            .collect::<Vec<_>>(),
    )
    .bind(
        ops.iter()
            .map(|op| op.attempt.error.as_deref().map(|e| pg_text(e).into_owned()))
            .collect::<Vec<_>>(),
    )
    .bind(
        ops.iter()
            .map(|op| pg_text(&op.attempt.response_body).into_owned())
            .collect::<Vec<_>>(),
    )
    .fetch_all(pool)
    .await?;
    Ok(settled.into_iter().collect())
}

/// One settle in one statement, so one round trip and atomic on its own: the attempt row is
/// written only if the lease check of the UPDATE matched.
async fn settle_one(pool: &sqlx::PgPool, op: &SettleOp) -> Result<(), StoreError> {
    let (lease, attempt) = (&op.lease, &op.attempt);
    let (status, next_at) = queue::settled_state(op.next);
    let done = sqlx::query(&format!(
        "WITH settled AS ( \
                 UPDATE deliveries SET status = $3, attempts = attempts + 1, \
                     next_attempt_at = $4, last_attempt_at = $5, lease_id = NULL, \
                     lease_until = NULL, \
                     claimed_due_at = NULL, next_trigger = 'scheduled' \
                 WHERE id = $1 AND lease_id = $2 AND status = 'pending' \
                 RETURNING id) \
             INSERT INTO attempts ({ATTEMPT_COLS}) \
             SELECT $6, settled.id, $7, $8, $9, $10, $11, $12, $13 FROM settled"
    ))
    .bind(lease.delivery.as_str())
    .bind(&lease.lease_id)
    .bind(status)
    .bind(next_at)
    .bind(attempt.started_at.as_millis())
    .bind(attempt.id.as_str())
    .bind(i32::try_from(attempt.number).unwrap_or(i32::MAX))
    .bind(attempt.trigger.as_str())
    .bind(attempt.started_at.as_millis())
    .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
    .bind(attempt.status_code.map(i32::from))
    .bind(attempt.error.as_deref().map(pg_text))
    .bind(pg_text(&attempt.response_body))
    .execute(pool)
    .await
    .map_err(|e| DbError::from(e).into_store("attempt"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::LeaseLost);
    }
    Ok(())
}

/// PostgreSQL text cannot hold NUL characters. Free text we record but did not validate (a
/// receiver's response body, a transport error) has them replaced, so that a receiver answering
/// with binary garbage cannot make an attempt impossible to settle.
fn pg_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::pg_text;

    #[test]
    fn nul_characters_are_replaced() {
        assert_eq!(pg_text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(pg_text("ab"), std::borrow::Cow::Borrowed(_)));
    }
}
