//! Replays: re-queuing an account's deliveries that match a filter, as manual attempts, in a
//! job that runs in the background in bounded batches and reports its progress.
//!
//! A replay walks the matching deliveries newest first by `(created_at, id)` one page of
//! [`REPLAY_BATCH`] at a time (the lists' keyset paging, so re-queuing a delivery, which changes
//! its state but not its place, never makes the walk skip or repeat one) and re-queues each page
//! with one [`QueueStore::retry_deliveries`](crate::store::QueueStore::retry_deliveries) call,
//! whatever the deliveries' states (succeeded ones too), waking the dispatcher after each.
//!
//! Jobs live in the process that runs them, not in the store: after a restart a job's id is
//! unknown (`replay_not_found`). What it had re-queued stays queued (that is in the store); the
//! rest was not. Its last report's `reached` says how far it got: a new replay with the same
//! filter and `until` set to `reached` re-queues exactly the deliveries it had not reached.
//! The process keeps the last [`KEPT_REPLAYS`] jobs and runs at most [`MAX_RUNNING_REPLAYS`] at
//! once (`too_many_replays` beyond that).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::{Actor, Hookline, ServiceError};
use crate::id::{AccountId, DeliveryId, EndpointId, EventTypeName, ReplayId};
use crate::model::{DeliveryFilter, DeliveryStatus, PageRequest};
use crate::time::Timestamp;

/// Deliveries listed and re-queued per batch.
pub const REPLAY_BATCH: usize = 250;
/// Most replay jobs running at once in one process.
pub const MAX_RUNNING_REPLAYS: usize = 4;
/// Most replay jobs (running or finished) a process remembers.
pub const KEPT_REPLAYS: usize = 1000;
/// Most event types one replay may name.
pub const MAX_REPLAY_TYPES: usize = 100;

/// A replay request, as received.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewReplay {
    /// Deliveries created at or after this instant.
    pub since: Timestamp,
    /// Deliveries created before this instant (default: now).
    pub until: Option<Timestamp>,
    /// Only deliveries to this endpoint.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::id::EndpointId>))]
    pub endpoint: Option<String>,
    /// Only deliveries of events of these types (every type when absent or empty).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::id::EventTypeName>))]
    pub event_types: Vec<String>,
    /// Only deliveries in this state (every state when absent, succeeded ones too).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::model::DeliveryStatus>))]
    pub status: Option<String>,
}

impl NewReplay {
    /// Every delivery created at or after `since`.
    pub fn since(since: Timestamp) -> Self {
        Self {
            since,
            until: None,
            endpoint: None,
            event_types: Vec::new(),
            status: None,
        }
    }

    /// Only deliveries created before `until`.
    pub fn until(mut self, until: Timestamp) -> Self {
        self.until = Some(until);
        self
    }

    /// Only deliveries to this endpoint.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Only deliveries of events of this type (may be given several times).
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_types.push(event_type.into());
        self
    }

    /// Only deliveries in this state.
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }
}

/// Where a replay job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReplayState {
    /// Still walking the matching deliveries.
    Running,
    /// Every matching delivery was re-queued (or was gone).
    Completed,
    /// Stopped by a store error (`error` says which); what it re-queued stays queued.
    Failed,
}

/// A replay job and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayJob {
    /// `rpl_…`.
    pub id: ReplayId,
    /// The account replayed.
    pub account: AccountId,
    /// Where the job is.
    pub state: ReplayState,
    /// Deliveries created at or after this instant.
    pub since: Timestamp,
    /// Deliveries created before this instant.
    pub until: Timestamp,
    /// The endpoint filter, if any.
    pub endpoint: Option<EndpointId>,
    /// The event-type filter (every type when empty).
    pub event_types: Vec<EventTypeName>,
    /// The state filter, if any.
    pub status: Option<DeliveryStatus>,
    /// Matching deliveries found so far.
    pub matched: u64,
    /// Of those, re-queued (pending again, due now, as manual attempts).
    pub queued: u64,
    /// Of those, handled (re-queued, or gone since they were found): `matched` once a batch is
    /// through.
    pub done: u64,
    /// How far back the walk has come: every matching delivery created at or after this
    /// instant (and before `until`) has been handled. Equals `since` once completed.
    pub reached: Timestamp,
    /// Share of the time window walked, from 0 to 1 (1 once completed).
    pub progress: f64,
    /// When the job was started.
    pub created_at: Timestamp,
    /// When it completed or failed.
    pub finished_at: Option<Timestamp>,
    /// Why it failed.
    pub error: Option<String>,
}

impl ReplayJob {
    fn advance(&mut self, reached: Timestamp) {
        self.reached = reached.max(self.since);
        let span = self
            .until
            .as_millis()
            .saturating_sub(self.since.as_millis());
        let walked = self
            .until
            .as_millis()
            .saturating_sub(self.reached.as_millis());
        self.progress = if span <= 0 {
            1.0
        } else {
            (walked as f64 / span as f64).clamp(0.0, 1.0)
        };
    }
}

type Slot = Arc<Mutex<ReplayJob>>;

/// The replay jobs of this process, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Replays {
    jobs: Mutex<VecDeque<Slot>>,
}

fn read(slot: &Slot) -> ReplayJob {
    slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn update(slot: &Slot, f: impl FnOnce(&mut ReplayJob)) {
    f(&mut slot.lock().unwrap_or_else(|p| p.into_inner()));
}

impl Replays {
    /// Registers `job` unless too many run; forgets the oldest finished jobs beyond the cap.
    fn start(&self, job: ReplayJob) -> Result<Slot, ServiceError> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let running = jobs
            .iter()
            .filter(|j| read(j).state == ReplayState::Running)
            .count();
        if running >= MAX_RUNNING_REPLAYS {
            return Err(ServiceError::Conflict {
                code: "too_many_replays",
                message: format!(
                    "{running} replays are running, at most {MAX_RUNNING_REPLAYS} may: try again \
                     when one has finished"
                ),
            });
        }
        while jobs.len() >= KEPT_REPLAYS {
            match jobs
                .iter()
                .position(|j| read(j).state != ReplayState::Running)
            {
                Some(i) => {
                    jobs.remove(i);
                }
                None => break,
            }
        }
        let slot = Arc::new(Mutex::new(job));
        jobs.push_back(slot.clone());
        Ok(slot)
    }

    fn get(&self, account: &AccountId, id: &ReplayId) -> Option<ReplayJob> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter()
            .map(read)
            .find(|j| j.id == *id && j.account == *account)
    }
}

impl Hookline {
    /// Starts re-queuing the account's deliveries that match `input` as manual attempts, in
    /// the background: `invalid_replay` (bad window or state, too many types), `invalid_id`,
    /// `endpoint_not_found`, `too_many_replays`. Answers the job as started.
    pub async fn start_replay(
        &self,
        by: &Actor,
        account: &str,
        input: NewReplay,
    ) -> Result<ReplayJob, ServiceError> {
        by.require_write()?;
        let a = self.reach_account(by, account).await?;
        let now = self.now();
        let until = input.until.unwrap_or(now);
        if input.since >= until {
            return Err(ServiceError::invalid(
                "invalid_replay",
                "since must be before until (which defaults to now)",
            ));
        }
        if input.event_types.len() > MAX_REPLAY_TYPES {
            return Err(ServiceError::invalid(
                "invalid_replay",
                format!("at most {MAX_REPLAY_TYPES} event types"),
            ));
        }
        let status = input
            .status
            .as_deref()
            .map(|s| {
                DeliveryStatus::parse(s).ok_or_else(|| {
                    ServiceError::invalid(
                        "invalid_replay",
                        "status is one of pending, succeeded, failed, cancelled",
                    )
                })
            })
            .transpose()?;
        let mut event_types = input
            .event_types
            .iter()
            .map(|t| EventTypeName::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        event_types.sort();
        event_types.dedup();
        let endpoint = match &input.endpoint {
            None => None,
            Some(e) => Some(self.endpoint(by, account, e).await?.id),
        };
        let job = ReplayJob {
            id: ReplayId::generate(),
            account: a.id.clone(),
            state: ReplayState::Running,
            since: input.since,
            until,
            endpoint,
            event_types,
            status,
            matched: 0,
            queued: 0,
            done: 0,
            reached: until,
            progress: 0.0,
            created_at: now,
            finished_at: None,
            error: None,
        };
        let slot = self.inner.replays.start(job.clone())?;
        let this = self.clone();
        let span = tracing::info_span!("replay", id = %job.id, account = %job.account);
        // A task that ends on its own once the walk reaches `since` (or a store error stops it).
        tokio::spawn(async move { this.run_replay(slot).await }.instrument(span));
        self.audit(by, Some(&job.account), "replay.started", job.id.as_str())
            .await;
        Ok(job)
    }

    /// A replay job of the account: `replay_not_found` (also for a job of an earlier process).
    pub async fn replay(
        &self,
        by: &Actor,
        account: &str,
        job: &str,
    ) -> Result<ReplayJob, ServiceError> {
        let a = self.reach_account(by, account).await?;
        let id = ReplayId::parse(job)?;
        self.inner.replays.get(&a.id, &id).ok_or_else(|| {
            ServiceError::not_found(
                "replay_not_found",
                format!(
                    "no replay `{id}` in account `{}` (jobs are kept by the process that runs \
                     them, and not across restarts)",
                    a.id
                ),
            )
        })
    }

    async fn run_replay(&self, slot: Slot) {
        let job = read(&slot);
        let filter = DeliveryFilter {
            endpoint: job.endpoint.clone(),
            status: job.status,
            event_types: job.event_types.clone(),
            since: Some(job.since),
            until: Some(job.until),
            ..DeliveryFilter::default()
        };
        let mut page = PageRequest::first(REPLAY_BATCH);
        loop {
            let found = match self
                .store()
                .list_deliveries(&job.account, &filter, &page)
                .await
            {
                Ok(p) => p,
                Err(e) => return self.fail_replay(&slot, e.to_string()),
            };
            let ids: Vec<DeliveryId> = found.items.iter().map(|d| d.id.clone()).collect();
            let queued = if ids.is_empty() {
                0
            } else {
                match self
                    .store()
                    .retry_deliveries(&job.account, &ids, self.now())
                    .await
                {
                    Ok(n) => n,
                    Err(e) => return self.fail_replay(&slot, e.to_string()),
                }
            };
            if queued > 0 {
                self.dispatcher().wake();
            }
            let oldest = found.items.last().map(|d| d.created_at);
            update(&slot, |j| {
                j.matched += ids.len() as u64;
                j.queued += queued;
                j.done = j.matched;
                if let Some(t) = oldest {
                    j.advance(t);
                }
            });
            match found.next {
                Some(c) => page.after = Some(c),
                None => break,
            }
            // Let the dispatcher and requests in between batches.
            tokio::task::yield_now().await;
        }
        let now = self.now();
        update(&slot, |j| {
            j.advance(j.since);
            j.state = ReplayState::Completed;
            j.finished_at = Some(now);
            tracing::info!(matched = j.matched, queued = j.queued, "replay completed");
        });
    }

    fn fail_replay(&self, slot: &Slot, error: String) {
        let now = self.now();
        tracing::warn!(%error, "replay stopped by a store error");
        update(slot, |j| {
            j.state = ReplayState::Failed;
            j.finished_at = Some(now);
            j.error = Some(error);
        });
    }
}
