//! Group calls: concurrent operations of one kind share one script call.
//!
//! Every caller queues its item and then either receives a share of a call that is already
//! running, or takes the leader lock and starts the next call itself with everything queued so
//! far (at most [`Group::max`] items, and at most [`Group::max_bytes`] of them). No task is
//! spawned: the call is a shared future that every caller of the group awaits, so it runs to
//! its end even when the caller that started it is dropped (a timeout, a closed HTTP
//! connection), and each caller gets the answer of its own item.
//!
//! One call runs at a time per group: while it runs, the next callers queue, and the next call
//! takes them all. Under light load a call carries one item, as before; under load the number
//! of script calls (and their fixed cost in Redis's single thread) drops with the group size.

use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

use crate::error::{DbError, DbResult};

/// The answer of one item: its value, or the message of the script error it alone met.
pub(crate) type ItemResult<O> = Result<O, String>;

/// What one call of a group returns: an answer per item, in the order given, or the error of the
/// whole call (connection, timeout), shared by every caller.
type CallResult<O> = Result<Arc<Vec<ItemResult<O>>>, Arc<DbError>>;

type Call<O> = Shared<BoxFuture<'static, CallResult<O>>>;

/// A caller's share of a call: the call and the index of its item.
type Ticket<O> = (Call<O>, usize);

struct Queued<I, O> {
    item: I,
    bytes: usize,
    ticket: tokio::sync::oneshot::Sender<Ticket<O>>,
}

/// Concurrent operations sharing script calls (see the module docs).
pub(crate) struct Group<I, O> {
    queue: Mutex<Vec<Queued<I, O>>>,
    leader: tokio::sync::Mutex<()>,
    /// Most items in one call.
    max: usize,
    /// Most bytes (as the caller counts them) in one call; a call always takes at least one item.
    max_bytes: usize,
}

impl<I, O> std::fmt::Debug for Group<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("max", &self.max)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl<I, O> Group<I, O>
where
    I: Send + 'static,
    O: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(max: usize, max_bytes: usize) -> Self {
        Self {
            queue: Mutex::new(Vec::new()),
            leader: tokio::sync::Mutex::new(()),
            max: max.max(1),
            max_bytes,
        }
    }

    /// Runs `item` in a group call and returns its answer. `bytes` is the item's size for
    /// [`max_bytes`](Self::max_bytes); `run` makes the script call of a group when this caller
    /// leads one (it gets the items in queue order and must answer each, in that order).
    pub(crate) async fn submit<F>(&self, item: I, bytes: usize, run: F) -> DbResult<O>
    where
        F: Fn(Vec<I>) -> BoxFuture<'static, DbResult<Vec<ItemResult<O>>>>,
    {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.lock_queue().push(Queued {
            item,
            bytes,
            ticket: tx,
        });
        let (call, index) = loop {
            // A running call may take our item while we wait to lead: take the ticket as soon
            // as it comes.
            let guard = tokio::select! {
                biased;
                ticket = &mut rx => break ticket.map_err(|_| dropped())?,
                guard = self.leader.lock() => guard,
            };
            match rx.try_recv() {
                Ok(ticket) => break ticket,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => return Err(dropped()),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            }
            let batch = self.take_batch();
            if batch.is_empty() {
                // Cannot happen (our item is queued and unanswered); wait for the ticket.
                continue;
            }
            let (items, tickets): (Vec<I>, Vec<_>) =
                batch.into_iter().map(|q| (q.item, q.ticket)).unzip();
            let expected = items.len();
            let call: Call<O> = run(items)
                .map(move |r| match r {
                    Ok(answers) if answers.len() == expected => Ok(Arc::new(answers)),
                    Ok(answers) => Err(Arc::new(DbError::corrupt(
                        "group reply",
                        format!("{} answers for {expected} items", answers.len()),
                    ))),
                    Err(e) => Err(Arc::new(e)),
                })
                .boxed()
                .shared();
            for (i, t) in tickets.into_iter().enumerate() {
                // A caller that has gone away no longer wants its answer.
                let _ = t.send((call.clone(), i));
            }
            // Hold the lead until the call is over, so that the next callers queue up for the
            // next call; dropping this future releases it and leaves the call to the others.
            let _ = call.clone().await;
            drop(guard);
            if let Ok(ticket) = rx.try_recv() {
                break ticket;
            }
        };
        match call.await {
            Ok(answers) => answers[index].clone().map_err(DbError::Script),
            Err(e) => Err(DbError::Group(e)),
        }
    }

    /// The next call's items: the oldest queued, within the size limits.
    fn take_batch(&self) -> Vec<Queued<I, O>> {
        let mut q = self.lock_queue();
        let mut n = 0;
        let mut bytes = 0usize;
        for queued in q.iter() {
            if n == self.max || (n > 0 && bytes.saturating_add(queued.bytes) > self.max_bytes) {
                break;
            }
            bytes = bytes.saturating_add(queued.bytes);
            n += 1;
        }
        q.drain(..n).collect()
    }

    fn lock_queue(&self) -> MutexGuard<'_, Vec<Queued<I, O>>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn dropped() -> DbError {
    DbError::corrupt("group", "the group call went away without an answer")
}
