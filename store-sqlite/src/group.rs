//! Group commit: concurrent enqueues and settles share one write transaction and one `fsync`.
//!
//! Every caller puts its operation in a queue and then waits for the commit lock. Whoever gets it
//! first (the leader) takes everything queued so far — its own operation and any that arrived
//! while the previous group was committing — and runs them in one `BEGIN IMMEDIATE` transaction:
//! as a few multi-row statements for the whole group (a lost lease or a duplicate event is an
//! answer, not a failure), or, when the group holds duplicates of its own or a statement fails,
//! again one operation at a time, each inside its own savepoint so that one failing operation
//! leaves the others intact (see [`commit_group`]). Only after `COMMIT` has returned (with `synchronous = FULL`, after the
//! `fsync`) does any caller get its answer, so an `Ok` still means "on disk". No task is spawned:
//! the leader is always one of the callers.

use std::collections::HashSet;
use std::sync::Mutex;

use hookline_core::model::{Attempt, Event, Trigger};
use hookline_core::store::{LeaseToken, Next, Receipt, StoreError};
use hookline_core::{EndpointId, Timestamp};
use sqlx::SqlitePool;
use tokio::sync::oneshot;

use crate::deliveries::{enqueue_in, run_batched, settle_in};
use crate::error::DbError;

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
    Settled,
}

type Reply = oneshot::Sender<Result<Done, StoreError>>;

/// The queue and the commit lock.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Vec<(Op, Reply)>>,
    leader: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    /// Runs `op` in the next group transaction on `pool`; returns once that group is committed.
    pub(crate) async fn submit(&self, pool: &SqlitePool, op: Op) -> Result<Done, StoreError> {
        let (tx, mut rx) = oneshot::channel();
        self.lock_queue().push((op, tx));
        loop {
            let guard = self.leader.lock().await;
            // A previous leader may have taken (and answered) our operation already.
            match rx.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => {
                    return Err(StoreError::Backend(
                        "the group commit dropped an operation".into(),
                    ));
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch: Vec<(Op, Reply)> = {
                let mut q = self.lock_queue();
                let n = q.len().min(MAX_GROUP);
                q.drain(..n).collect()
            };
            if !batch.is_empty() {
                run_group(pool, batch).await;
            }
            drop(guard);
            if let Ok(result) = rx.try_recv() {
                return result;
            }
            // Our operation was beyond this group's size limit: lead (or join) the next one.
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<(Op, Reply)>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn run_group(pool: &SqlitePool, batch: Vec<(Op, Reply)>) {
    let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().unzip();
    let results = match commit_group(pool, &ops).await {
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
        Op::Enqueue { event, .. } => {
            ids.insert(event.id.as_str())
                && event
                    .idempotency_key
                    .as_deref()
                    .is_none_or(|k| keys.insert((event.account.as_str(), k)))
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
