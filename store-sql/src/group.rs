//! Write groups: concurrent calls of one kind (enqueues, settles) share one statement, one round
//! trip and one commit (with its WAL flush).
//!
//! Every caller queues its operation and waits for the group's lock; whoever gets it (the
//! leader) takes everything queued so far — its own operation and any that arrived while the
//! previous group ran — and runs them together. Each caller gets its answer only after the
//! group's statement has committed, so an `Ok` still means "on disk". The group runs in a task
//! of its own: a leader whose caller goes away (an HTTP client that hung up) does not abandon
//! the others' operations half-way.

use std::future::Future;
use std::sync::Mutex;

use hookline_core::store::StoreError;
use tokio::sync::oneshot;

/// Where a grouped operation's answer goes.
pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// The queue and the lock of one kind of grouped write.
#[derive(Debug)]
pub struct Group<Op, T> {
    queue: Mutex<Vec<(Op, Reply<T>)>>,
    leader: tokio::sync::Mutex<()>,
    /// Most operations in one group.
    max: usize,
}

impl<Op, T> Group<Op, T>
where
    Op: Send + 'static,
    T: Send + 'static,
{
    /// An empty group of at most `max` operations at a time.
    pub fn new(max: usize) -> Self {
        Self {
            queue: Mutex::new(Vec::new()),
            leader: tokio::sync::Mutex::new(()),
            max: max.max(1),
        }
    }

    /// Runs `op` in the next group; `run` is given the whole group and must answer every
    /// operation in it.
    pub async fn submit<F, Fut>(&self, op: Op, run: F) -> Result<T, StoreError>
    where
        F: Fn(Vec<(Op, Reply<T>)>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, mut rx) = oneshot::channel();
        self.lock_queue().push((op, tx));
        loop {
            let guard = self.leader.lock().await;
            // A previous leader may have taken (and answered) our operation already.
            match rx.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(dropped()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch: Vec<(Op, Reply<T>)> = {
                let mut q = self.lock_queue();
                let n = q.len().min(self.max);
                q.drain(..n).collect()
            };
            if !batch.is_empty() {
                // A panic in the group's task drops its replies: every caller gets an error.
                let _ = tokio::spawn(run(batch)).await;
            }
            drop(guard);
            match rx.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(dropped()),
                // Ours was beyond this group's size limit: lead (or join) the next one.
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<(Op, Reply<T>)>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn dropped() -> StoreError {
    StoreError::Backend("a write group ended without answering".into())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_gets_its_own_answer_and_groups_form() {
        let group = Arc::new(Group::<u32, u32>::new(8));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..100u32 {
            let (group, runs) = (group.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                group
                    .submit(i, move |batch| {
                        let runs = runs.clone();
                        async move {
                            assert!(batch.len() <= 8, "group of {}", batch.len());
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            for (op, reply) in batch {
                                let _ = reply.send(Ok(op * 2));
                            }
                        }
                    })
                    .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), i as u32 * 2);
        }
        let runs = runs.load(Ordering::SeqCst);
        assert!((13..100).contains(&runs), "{runs} groups for 100 calls");
    }

    #[tokio::test]
    async fn a_group_that_drops_a_reply_fails_that_caller_only() {
        let group = Group::<u32, u32>::new(8);
        let got = group.submit(1, |batch| async move { drop(batch) }).await;
        assert!(matches!(got, Err(StoreError::Backend(_))), "{got:?}");
        let got = group
            .submit(2, |batch| async move {
                for (op, reply) in batch {
                    let _ = reply.send(Ok(op + 1));
                }
            })
            .await;
        assert_eq!(got.unwrap(), 3);
    }
}
