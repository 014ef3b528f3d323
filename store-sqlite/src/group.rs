//! Group commit: concurrent enqueues and settles share one write transaction and one `fsync`.
//!
//! Every caller puts its operation in a queue and then waits for the commit lock. Whoever gets it
//! first (the leader) takes everything queued so far — its own operation and any that arrived
//! while the previous group was committing — and runs them in one `BEGIN IMMEDIATE` transaction:
//! as a few multi-row statements for the whole group (a lost lease or a duplicate event is an
//! answer, not a failure), or, when the group holds duplicates of its own or a statement fails,
//! again one operation at a time, each inside its own savepoint so that one failing operation
//! leaves the others intact (see [`commit_group`]). Only after `COMMIT` has returned (with
//! `synchronous = FULL`, after the `fsync`) does any caller get its answer, so an `Ok` still
//! means "on disk". The queue and the leader's lock are the shared
//! [`Group`](hookline_store_sql::group::Group): the group runs in a task of its own, so a leader
//! whose caller goes away does not abandon the others' writes half-way.
//!
//! A batch enqueue is one operation: its events and deliveries are written together with the
//! group's, and in the one-by-one run it has one savepoint for all of them, so it is stored
//! whole or not at all.
//!
//! Everything a group writes is here: the multi-row statements ([`run_batched`]) and the
//! one-by-one fallback ([`enqueue_in`], [`settle_in`]).

use std::collections::HashSet;

use hookline_core::model::{Attempt, Event, Trigger};
use hookline_core::store::{LeaseToken, Next, Receipt, StoreError};
use hookline_core::{DeliveryId, EndpointId, Timestamp};
use hookline_store_sql::group::Group;
use hookline_store_sql::sqlite::queue::{self, original_receipt};
use hookline_store_sql::sqlite::rows::{ATTEMPT_COLS, EVENT_COLS};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::error::{DbError, DbResult};

/// Most operations in one transaction.
const MAX_GROUP: usize = 256;

/// A write that may share a transaction with others.
#[derive(Debug)]
pub(crate) enum Op {
    /// [`QueueStore::enqueue_with`](hookline_core::store::QueueStore::enqueue_with).
    Enqueue {
        event: Event,
        targets: Vec<EndpointId>,
        now: Timestamp,
        trigger: Trigger,
    },
    /// [`QueueStore::enqueue_batch`](hookline_core::store::QueueStore::enqueue_batch): one
    /// operation, so one savepoint in the one-by-one run.
    EnqueueBatch {
        items: Vec<(Event, Vec<EndpointId>)>,
        now: Timestamp,
        trigger: Trigger,
    },
    /// [`QueueStore::settle`](hookline_core::store::QueueStore::settle).
    Settle {
        lease: LeaseToken,
        attempt: Attempt,
        next: Next,
    },
}

/// What an operation produced.
#[derive(Debug)]
pub(crate) enum Done {
    Enqueued(Receipt),
    Batch(Vec<Receipt>),
    Settled,
}

type Reply = hookline_store_sql::group::Reply<Done>;

/// One event an operation enqueues: the event, its targets, `now` and the first trigger.
type Item<'a> = (&'a Event, &'a [EndpointId], Timestamp, Trigger);

impl Op {
    /// The events this operation enqueues, in order (none for a settle).
    fn items(&self) -> Vec<Item<'_>> {
        match self {
            Op::Enqueue {
                event,
                targets,
                now,
                trigger,
            } => vec![(event, targets.as_slice(), *now, *trigger)],
            Op::EnqueueBatch {
                items,
                now,
                trigger,
            } => items
                .iter()
                .map(|(event, targets)| (event, targets.as_slice(), *now, *trigger))
                .collect(),
            Op::Settle { .. } => Vec::new(),
        }
    }
}

/// The queue and the commit lock (the shared [`Group`]), answering with [`Done`].
#[derive(Debug)]
pub(crate) struct GroupCommit(Group<Op, Done>);

impl Default for GroupCommit {
    fn default() -> Self {
        Self(Group::new(MAX_GROUP))
    }
}

impl GroupCommit {
    /// Runs `op` in the next group transaction on `pool`; returns once that group is committed.
    pub(crate) async fn submit(&self, pool: &SqlitePool, op: Op) -> Result<Done, StoreError> {
        let pool = pool.clone();
        self.0
            .submit(op, move |batch| run_group(pool.clone(), batch))
            .await
    }
}

async fn run_group(pool: SqlitePool, batch: Vec<(Op, Reply)>) {
    let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().unzip();
    let results = match commit_group(&pool, &ops).await {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(error = %e, "committing a write group failed");
            let e = e.to_string();
            ops.iter()
                .map(|_| Err(StoreError::Unavailable(Box::new(DbError::Group(e.clone())))))
                .collect()
        }
    };
    for (result, reply) in results.into_iter().zip(replies) {
        let _ = reply.send(result);
    }
}

/// Runs `ops` in one write transaction and commits it; the per-operation results are only
/// returned once `COMMIT` has returned.
///
/// The usual way is [`run_batched`]: a handful of multi-row statements for the whole group, so
/// the cost per operation is a few rows rather than a few round trips to the connection's
/// thread. If that meets anything unusual (a failing statement, duplicates inside the group) the
/// transaction is rolled back and the group is run again one operation at a time, each in its
/// own savepoint ([`run_one`]), which gives every operation its exact individual outcome.
async fn commit_group(
    pool: &SqlitePool,
    ops: &[Op],
) -> Result<Vec<Result<Done, StoreError>>, DbError> {
    if batchable(ops) {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        match run_batched(&mut tx, ops).await {
            Ok(results) => {
                tx.commit().await?;
                return Ok(results);
            }
            Err(e) => {
                tracing::debug!(error = %e, "batched write group failed; running it one by one");
                tx.rollback().await?;
            }
        }
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        results.push(run_one(&mut tx, op).await);
    }
    tx.commit().await?;
    Ok(results)
}

/// Whether the group can run as multi-row statements: no two enqueues of the same event id or
/// idempotency key, and no two settles of the same delivery (their relative order decides
/// which one wins, which only the one-by-one path preserves).
fn batchable(ops: &[Op]) -> bool {
    let mut ids = HashSet::new();
    let mut keys = HashSet::new();
    let mut leased = HashSet::new();
    ops.iter().all(|op| match op {
        Op::Enqueue { .. } | Op::EnqueueBatch { .. } => {
            op.items().into_iter().all(|(event, ..)| {
                ids.insert(event.id.as_str())
                    && event
                        .idempotency_key
                        .as_deref()
                        .is_none_or(|k| keys.insert((event.account.as_str(), k)))
            })
        }
        Op::Settle { lease, .. } => leased.insert(lease.delivery.as_str()),
    })
}

async fn run_one(conn: &mut sqlx::SqliteConnection, op: &Op) -> Result<Done, StoreError> {
    let savepoint = |sql: &'static str| sqlx::query(sql);
    savepoint("SAVEPOINT op")
        .execute(&mut *conn)
        .await
        .map_err(DbError::from)?;
    let result = match op {
        Op::Enqueue {
            event,
            targets,
            now,
            trigger,
        } => enqueue_in(conn, event, targets, *now, *trigger)
            .await
            .map(Done::Enqueued),
        Op::EnqueueBatch { .. } => enqueue_batch_in(conn, op).await.map(Done::Batch),
        Op::Settle {
            lease,
            attempt,
            next,
        } => settle_in(conn, lease, attempt, *next)
            .await
            .map(|()| Done::Settled),
    };
    let end = if result.is_ok() {
        "RELEASE op"
    } else {
        "ROLLBACK TO op"
    };
    savepoint(end)
        .execute(&mut *conn)
        .await
        .map_err(DbError::from)?;
    if result.is_err() {
        savepoint("RELEASE op")
            .execute(&mut *conn)
            .await
            .map_err(DbError::from)?;
    }
    result
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
        .flat_map(|(i, op)| {
            op.items()
                .into_iter()
                .map(move |(event, targets, now, trigger)| (i, event, targets, now, trigger))
        })
        .collect();
    // Each operation's receipts, in the order of its events.
    let mut receipts: Vec<Vec<Receipt>> = ops.iter().map(|_| Vec::new()).collect();
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
            receipts[i].push(original_receipt(&mut *conn, &id).await?);
            continue;
        }
        let ids: Vec<DeliveryId> = targets.iter().map(|_| DeliveryId::generate()).collect();
        for (id, target) in ids.iter().zip(targets) {
            rows.push((id.as_str().to_owned(), event, target, now, trigger));
        }
        receipts[i].push(Receipt::new(event.id.clone(), ids, false));
    }
    for (i, (op, mut got)) in ops.iter().zip(receipts).enumerate() {
        match op {
            Op::Enqueue { .. } => {
                let receipt = got
                    .pop()
                    .ok_or_else(|| DbError::Group("an enqueue got no receipt".into()))?;
                results[i] = Some(Ok(Done::Enqueued(receipt)));
            }
            Op::EnqueueBatch { .. } => results[i] = Some(Ok(Done::Batch(got))),
            Op::Settle { .. } => {}
        }
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
            Op::Enqueue { .. } | Op::EnqueueBatch { .. } => None,
        })
        .collect();
    for chunk in settles.chunks(ROWS_PER_STATEMENT) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("WITH v (id, lease_id, status, next_at, last_at) AS (");
        qb.push_values(chunk, |mut row, (_, lease, attempt, next)| {
            let (status, next_at) = queue::settled_state(*next);
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
    Ok(Receipt::new(event.id.clone(), deliveries, false))
}

/// A batch enqueue inside the caller's savepoint (see [`run_one`]): its events one after the
/// other, each as [`enqueue_in`] (so one with the id or idempotency key of an earlier one is
/// that one's duplicate). The first error ends it; the caller's savepoint is then rolled back,
/// so nothing of the batch is written. A batch without duplicates of its own is tried first as
/// the multi-row statements of [`run_batched`], inside a savepoint of its own.
async fn enqueue_batch_in(
    conn: &mut SqliteConnection,
    op: &Op,
) -> Result<Vec<Receipt>, StoreError> {
    let single = std::slice::from_ref(op);
    if batchable(single) {
        let step = |sql: &'static str| sqlx::query(sql);
        step("SAVEPOINT batch")
            .execute(&mut *conn)
            .await
            .map_err(DbError::from)?;
        let fast = match run_batched(&mut *conn, single).await {
            Ok(mut results) => match results.pop() {
                Some(Ok(Done::Batch(receipts))) => Some(receipts),
                _ => None,
            },
            Err(_) => None,
        };
        if fast.is_none() {
            step("ROLLBACK TO batch")
                .execute(&mut *conn)
                .await
                .map_err(DbError::from)?;
        }
        step("RELEASE batch")
            .execute(&mut *conn)
            .await
            .map_err(DbError::from)?;
        if let Some(receipts) = fast {
            return Ok(receipts);
        }
    }
    let mut receipts = Vec::new();
    for (event, targets, now, trigger) in op.items() {
        receipts.push(enqueue_in(&mut *conn, event, targets, now, trigger).await?);
    }
    Ok(receipts)
}

/// Settle inside the caller's write transaction (see [`crate::group`]).
pub(crate) async fn settle_in(
    tx: &mut SqliteConnection,
    lease: &LeaseToken,
    attempt: &Attempt,
    next: Next,
) -> Result<(), StoreError> {
    let (status, next_at) = queue::settled_state(next);
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
