//! [`QueueStore`] and [`HistoryStore`]: events, deliveries, leases and attempts — each write one Lua script.

use std::collections::HashMap;
use std::time::Duration;

use hookline_core::model::{
    Attempt, Delivery, DeliveryFilter, Endpoint, Event, EventFilter, Page, PageRequest, Trigger,
};
use hookline_core::store::{
    Backlog, Claimed, HistoryStore, LeaseToken, Next, QueueStore, Receipt, StoreError,
};
use hookline_core::{AccountId, DeliveryId, EndpointId, EventId, Timestamp};

use crate::RedisStore;
use crate::codec;
use crate::endpoints::failing_since;
use crate::error::{DbError, DbResult};
use crate::group::ItemResult;
use crate::keys::{member, time_part};
use crate::list::Window;
use crate::scripts;
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

fn parse_ids<T>(
    ids: Vec<String>,
    what: &'static str,
    parse: impl Fn(&str) -> Result<T, hookline_core::id::InvalidId>,
) -> DbResult<Vec<T>> {
    ids.iter()
        .map(|id| parse(id).map_err(|e| DbError::corrupt(what, e)))
        .collect()
}

/// Values per claimed delivery in the claim's reply (see `lua/claim.lua`).
const CLAIM_ROW: usize = 12;

/// A 1-based number in the claim's reply as an index into a list of `len`.
fn number(n: &str, len: usize, what: &'static str) -> DbResult<usize> {
    n.parse::<usize>()
        .ok()
        .and_then(|i| i.checked_sub(1))
        .filter(|i| *i < len)
        .ok_or_else(|| DbError::corrupt("claim reply", what))
}

/// A fresh, unguessable lease id base for one claim call (the script appends `.<n>`).
fn lease_base() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

impl RedisStore {
    async fn enqueue_inner(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> DbResult<Receipt> {
        let item = EnqueueItem::new(event, targets, now, trigger)?;
        let bytes = item.json.len() + 64 * item.deliveries.len();
        let (outcome, event_id, deliveries) = self
            .groups
            .enqueues
            .submit(item, bytes, |items| self.enqueue_call(items))
            .await?;
        receipt((outcome, event_id, deliveries))
    }

    /// One script call storing a whole batch, all or nothing (see `lua/enqueue.lua`, mode
    /// `all`). It does not join the enqueue group: its events are checked together before any
    /// is written, which a group of independent enqueues does not do.
    async fn enqueue_batch_inner(
        &self,
        items: &[(Event, Vec<EndpointId>)],
        now: Timestamp,
        trigger: Trigger,
    ) -> DbResult<Vec<Receipt>> {
        let items = items
            .iter()
            .map(|(event, targets)| EnqueueItem::new(event, targets, now, trigger))
            .collect::<DbResult<Vec<_>>>()?;
        let expected = items.len();
        let answers = self.enqueue_script(&items, "all").await?;
        if answers.len() != expected {
            return Err(DbError::corrupt(
                "enqueue reply",
                format!("{} answers for {expected} events", answers.len()),
            ));
        }
        answers
            .into_iter()
            .map(|a| a.map_err(DbError::Script).and_then(receipt))
            .collect()
    }

    /// One script call storing the events of `items` (see `lua/enqueue.lua`): each one's
    /// `(outcome, event id, delivery ids)`.
    fn enqueue_call(
        &self,
        items: Vec<EnqueueItem>,
    ) -> BoxFuture<'static, DbResult<Vec<ItemResult<EnqueueAnswer>>>> {
        self.enqueue_script(&items, "each")
    }

    /// The enqueue script's call for `items` in `mode` (`each` or `all`).
    fn enqueue_script(
        &self,
        items: &[EnqueueItem],
        mode: &'static str,
    ) -> BoxFuture<'static, DbResult<Vec<ItemResult<EnqueueAnswer>>>> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let mut inv = scripts::ENQUEUE.key(k.due());
        inv.arg(k.q()).arg(self.retention_ms).arg(mode);
        for it in items {
            inv.arg(&it.event)
                .arg(&it.account)
                .arg(&it.idempotency_key)
                .arg(&it.json)
                .arg(&it.member)
                .arg(it.now)
                .arg(&it.queue)
                .arg(it.trigger.as_str())
                .arg(it.deliveries.len());
            for (id, endpoint, m) in &it.deliveries {
                inv.arg(id).arg(endpoint).arg(m);
            }
        }
        async move {
            // The script also wakes idle processes (it publishes on the work channel, see
            // `listen_for_work`).
            let answers: Vec<redis::Value> = inv.invoke_async(&mut conn).await?;
            answers
                .into_iter()
                .map(|a| match a {
                    redis::Value::Array(_) => redis::from_redis_value::<EnqueueAnswer>(a)
                        .map(Ok)
                        .map_err(|e| DbError::corrupt("enqueue reply", e.to_string())),
                    other => {
                        let msg: String = redis::from_redis_value(other)
                            .map_err(|e| DbError::corrupt("enqueue reply", e.to_string()))?;
                        Ok(Err(msg.strip_prefix('!').unwrap_or(&msg).to_owned()))
                    }
                })
                .collect()
        }
        .boxed()
    }

    async fn event_inner(&self, account: &AccountId, id: &EventId) -> DbResult<Option<Event>> {
        let mut conn = self.conn.clone();
        let (owner, json): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.event(id.as_str()))
            .arg("a")
            .arg("j")
            .query_async(&mut conn)
            .await?;
        match (owner, json) {
            (Some(owner), Some(j)) if owner == account.as_str() => {
                codec::from_json(&j, "event").map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn delivery_inner(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> DbResult<Option<Delivery>> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.delivery(id.as_str()))
            .query_async(&mut conn)
            .await?;
        if map.get("account").map(String::as_str) != Some(account.as_str()) {
            return Ok(None);
        }
        codec::delivery(id.as_str(), &map).map(Some)
    }

    /// Deliveries matching every filter but the event types.
    async fn deliveries_untyped(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> DbResult<Page<Delivery>> {
        let k = &self.keys;
        if let Some(event) = &filter.event {
            return self.event_deliveries(account, filter, event, page).await;
        }
        let index = match &filter.endpoint {
            Some(ep) => k.endpoint_deliveries(ep.as_str()),
            None => k.deliveries(account.as_str()),
        };
        let window = Window {
            since: filter.since,
            until: filter.until,
        };
        self.list_index(
            &index,
            page,
            window,
            |id| k.delivery(id),
            |d: &Delivery| d.account == *account && keeps(filter, d),
        )
        .await
    }

    /// Deliveries of events of the filter's types: the other filters' pages, newest first,
    /// each delivery checked against its event's type (read once per event), until a page is
    /// full or the index ends.
    async fn deliveries_typed(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> DbResult<Page<Delivery>> {
        let mut untyped = filter.clone();
        untyped.event_types.clear();
        let mut req = PageRequest {
            limit: page.limit.saturating_add(1).clamp(50, 250),
            after: page.after.clone(),
        };
        let mut types: HashMap<EventId, Option<hookline_core::EventTypeName>> = HashMap::new();
        let mut out = Vec::new();
        'pages: loop {
            let got = self.deliveries_untyped(account, &untyped, &req).await?;
            let unknown: Vec<EventId> = {
                let mut v: Vec<EventId> = got
                    .items
                    .iter()
                    .map(|d| d.event_id.clone())
                    .filter(|e| !types.contains_key(e))
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            if !unknown.is_empty() {
                let mut pipe = redis::pipe();
                for e in &unknown {
                    pipe.cmd("HGET").arg(self.keys.event(e.as_str())).arg("j");
                }
                let mut conn = self.conn.clone();
                let found: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
                for (e, j) in unknown.into_iter().zip(found) {
                    let t = j
                        .map(|j| codec::from_json::<Event>(&j, "event"))
                        .transpose()?
                        .map(|ev| ev.event_type);
                    types.insert(e, t);
                }
            }
            for d in got.items {
                let keep = types
                    .get(&d.event_id)
                    .and_then(Option::as_ref)
                    .is_some_and(|t| filter.event_types.contains(t));
                if keep {
                    out.push(d);
                    if out.len() > page.limit {
                        break 'pages;
                    }
                }
            }
            match got.next {
                Some(c) => req.after = Some(c),
                None => break,
            }
        }
        Ok(Page::from_rows(out, page.limit, |d: &Delivery| {
            hookline_core::model::Cursor {
                created_at: d.created_at,
                id: d.id.as_str().to_owned(),
            }
        }))
    }

    /// The deliveries of one event (a short list), filtered and paged in memory.
    async fn event_deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        event: &EventId,
        page: &PageRequest,
    ) -> DbResult<Page<Delivery>> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(k.event_deliveries(event.as_str()))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let mut rows = Vec::new();
        if !ids.is_empty() {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HGETALL").arg(k.delivery(id));
            }
            let maps: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            for (id, map) in ids.iter().zip(maps) {
                if map.is_empty() {
                    continue;
                }
                let d = codec::delivery(id, &map)?;
                let after = page
                    .after
                    .as_ref()
                    .is_none_or(|c| (d.created_at, d.id.as_str()) < (c.created_at, c.id.as_str()));
                if d.account == *account && after && keeps(filter, &d) {
                    rows.push(d);
                }
            }
        }
        rows.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(Page::from_rows(rows, page.limit, |d: &Delivery| {
            hookline_core::model::Cursor {
                created_at: d.created_at,
                id: d.id.as_str().to_owned(),
            }
        }))
    }

    async fn claim_inner(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
        skip: &[EndpointId],
    ) -> DbResult<Vec<Claimed>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let k = &self.keys;
        // The lease must end after `now`, or the claimed entry would still be in range.
        let lease_end = now.add(lease).max(now.add(Duration::from_millis(1)));
        let mut conn = self.conn.clone();
        let mut inv = scripts::CLAIM.key(k.due());
        inv.arg(k.q())
            .arg(now.as_millis())
            .arg(max)
            .arg(lease_end.as_millis())
            .arg(lease_base())
            .arg(hookline_core::store::RATE_HORIZON.as_millis() as u64);
        for ep in skip {
            inv.arg(ep.as_str());
        }
        let (rows, events, endpoints): (Vec<String>, Vec<String>, Vec<String>) =
            inv.invoke_async(&mut conn).await?;
        if rows.len() % CLAIM_ROW != 0 || endpoints.len() % 3 != 0 {
            return Err(DbError::corrupt("claim reply", "rows of the wrong length"));
        }
        // Each event's and endpoint's JSON comes once per claim.
        let events = events
            .iter()
            .map(|j| codec::from_json::<Event>(j, "event"))
            .collect::<DbResult<Vec<_>>>()?;
        let endpoints = endpoints
            .chunks_exact(3)
            .map(|e| {
                let endpoint: Endpoint = codec::from_json(&e[1], "endpoint")?;
                Ok(endpoint.with_failing_since(failing_since(Some(&e[2]))?))
            })
            .collect::<DbResult<Vec<_>>>()?;
        let lease_end = lease_end.as_millis().to_string();
        let mut out = Vec::with_capacity(rows.len() / CLAIM_ROW);
        for r in rows.chunks_exact(CLAIM_ROW) {
            let [
                id,
                account,
                event,
                endpoint,
                attempts,
                last_at,
                created,
                lease_id,
                trigger,
                not_before,
                ev,
                ep,
            ] = r
            else {
                unreachable!("chunks of CLAIM_ROW");
            };
            let event_index = number(ev, events.len(), "event number")?;
            let endpoint_index = number(ep, endpoints.len(), "endpoint number")?;
            let not_before = match not_before.as_str() {
                "" => None,
                s => Some(Timestamp::from_millis(
                    s.parse::<i64>()
                        .map_err(|e| DbError::corrupt("claim send time", e))?,
                )),
            };
            let delivery = codec::delivery_from(codec::Fields {
                id,
                account,
                event,
                endpoint,
                status: "pending",
                attempts,
                next_at: &lease_end,
                last_at,
                created,
            })?;
            let lease = LeaseToken::new(delivery.id.clone(), lease_id.clone());
            let number = delivery.attempts.saturating_add(1);
            let mut claimed = Claimed::new(
                delivery,
                events[event_index].clone(),
                endpoints[endpoint_index].clone(),
                number,
                codec::trigger(trigger)?,
                lease,
            );
            claimed.not_before = not_before;
            out.push(claimed);
        }
        Ok(out)
    }

    async fn settle_inner(
        &self,
        lease: &LeaseToken,
        attempt: &Attempt,
        next: Next,
    ) -> DbResult<()> {
        let (status, next_at) = match next {
            Next::Delivered => ("succeeded", String::new()),
            Next::RetryAt(t) => ("pending", t.as_millis().to_string()),
            Next::Exhausted => ("failed", String::new()),
        };
        let item = SettleItem {
            delivery: lease.delivery.as_str().to_owned(),
            lease: lease.lease_id.clone(),
            status,
            next_at,
            started: attempt.started_at.as_millis(),
            attempt: codec::to_json(attempt, "attempt")?,
        };
        let bytes = item.attempt.len();
        let settled = self
            .groups
            .settles
            .submit(item, bytes, |items| self.settle_call(items))
            .await?;
        if settled {
            Ok(())
        } else {
            Err(DbError::Store(StoreError::LeaseLost))
        }
    }

    /// One script call settling `items` (see `lua/settle.lua`): whether each lease was current.
    fn settle_call(
        &self,
        items: Vec<SettleItem>,
    ) -> BoxFuture<'static, DbResult<Vec<ItemResult<bool>>>> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let mut inv = scripts::SETTLE.key(k.due());
        inv.arg(k.q()).arg(self.retention_ms);
        for it in &items {
            inv.arg(&it.delivery)
                .arg(&it.lease)
                .arg(it.status)
                .arg(&it.next_at)
                .arg(it.started)
                .arg(&it.attempt);
        }
        async move {
            let answers: Vec<String> = inv.invoke_async(&mut conn).await?;
            Ok(answers
                .into_iter()
                .map(|a| match a.as_str() {
                    "1" => Ok(true),
                    "0" => Ok(false),
                    other => Err(other.strip_prefix('!').unwrap_or(other).to_owned()),
                })
                .collect())
        }
        .boxed()
    }

    async fn attempts_inner(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
    ) -> DbResult<Vec<Attempt>> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let (owner, rows): (Option<String>, Vec<String>) = redis::pipe()
            .cmd("HGET")
            .arg(k.delivery(delivery.as_str()))
            .arg("account")
            .cmd("LRANGE")
            .arg(k.attempts(delivery.as_str()))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        if owner.as_deref() != Some(account.as_str()) {
            return Ok(Vec::new());
        }
        let mut attempts = rows
            .iter()
            .map(|j| codec::from_json::<Attempt>(j, "attempt"))
            .collect::<DbResult<Vec<_>>>()?;
        attempts
            .sort_by(|a, b| (a.number, a.started_at, &a.id).cmp(&(b.number, b.started_at, &b.id)));
        Ok(attempts)
    }
}

/// One event of an enqueue group call.
pub(crate) struct EnqueueItem {
    event: String,
    account: String,
    idempotency_key: String,
    json: String,
    member: String,
    now: i64,
    queue: String,
    trigger: Trigger,
    /// `(delivery id, endpoint id, index member)` per target.
    deliveries: Vec<(String, String, String)>,
}

impl EnqueueItem {
    /// `event` to `targets`, each delivery with a fresh id.
    fn new(
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> DbResult<Self> {
        Ok(Self {
            event: event.id.as_str().to_owned(),
            account: event.account.as_str().to_owned(),
            idempotency_key: event.idempotency_key.clone().unwrap_or_default(),
            json: codec::to_json(event, "event")?,
            member: member(event.timestamp, event.id.as_str()),
            now: now.as_millis(),
            queue: event.queue_id.clone().unwrap_or_default(),
            trigger,
            deliveries: targets
                .iter()
                .map(|target| {
                    let id = DeliveryId::generate();
                    let m = member(now, id.as_str());
                    (id.as_str().to_owned(), target.as_str().to_owned(), m)
                })
                .collect(),
        })
    }
}

/// What enqueue answers for one event: `new`, `dup` or `unknown`, the event id, its delivery
/// ids.
pub(crate) type EnqueueAnswer = (String, String, Vec<String>);

/// The receipt of one enqueue answer (`unknown`: `NotFound`).
fn receipt((outcome, event_id, deliveries): EnqueueAnswer) -> DbResult<Receipt> {
    if outcome == "unknown" {
        return Err(DbError::Store(StoreError::NotFound("endpoint")));
    }
    Ok(Receipt::new(
        EventId::parse(&event_id).map_err(|e| DbError::corrupt("receipt", e))?,
        parse_ids(deliveries, "receipt", DeliveryId::parse)?,
        outcome == "dup",
    ))
}

/// One settle of a group call.
pub(crate) struct SettleItem {
    delivery: String,
    lease: String,
    status: &'static str,
    next_at: String,
    started: i64,
    attempt: String,
}

/// Whether a delivery matches the filter's endpoint and status (the event is matched by the
/// index that was read).
fn keeps(filter: &DeliveryFilter, d: &Delivery) -> bool {
    filter.keeps_without_type(d)
}

#[async_trait::async_trait]
impl QueueStore for RedisStore {
    fn listen_for_work(&self) -> Option<hookline_core::store::WorkListener> {
        self.work_listener()
    }

    async fn enqueue_with(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Receipt, StoreError> {
        self.op(self.enqueue_inner(event, targets, now, trigger))
            .await
    }

    async fn enqueue_batch(
        &self,
        items: &[(Event, Vec<EndpointId>)],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Vec<Receipt>, StoreError> {
        self.op(self.enqueue_batch_inner(items, now, trigger)).await
    }

    async fn claim_due_except(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
        skip: &[EndpointId],
    ) -> Result<Vec<Claimed>, StoreError> {
        self.op(self.claim_inner(now, max, lease, skip)).await
    }

    async fn defer(&self, lease: &LeaseToken, until: Timestamp) -> Result<(), StoreError> {
        self.op(async {
            let k = &self.keys;
            let mut conn = self.conn.clone();
            let done: i64 = scripts::DEFER
                .key(k.due())
                .arg(k.q())
                .arg(lease.delivery.as_str())
                .arg(&lease.lease_id)
                .arg(until.as_millis())
                .invoke_async(&mut conn)
                .await?;
            if done == 1 {
                Ok(())
            } else {
                Err(DbError::Store(StoreError::LeaseLost))
            }
        })
        .await
    }

    async fn hold_endpoint(
        &self,
        endpoint: &EndpointId,
        until: Timestamp,
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        self.op(async {
            let k = &self.keys;
            let mut conn = self.conn.clone();
            let _: i64 = scripts::HOLD
                .key(k.due())
                .arg(k.q())
                .arg(endpoint.as_str())
                .arg(until.as_millis())
                .invoke_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn purge(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        if max == 0 {
            return Ok(0);
        }
        self.op(async {
            let k = &self.keys;
            let mut conn = self.conn.clone();
            let n: u64 = scripts::PURGE
                .key(k.due())
                .arg(k.q())
                .arg(format!("({}", time_part(before)))
                .arg(max)
                .invoke_async(&mut conn)
                .await?;
            Ok(n)
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.op(async {
            let k = &self.keys;
            let mut conn = self.conn.clone();
            let due: Option<String> = scripts::NEXT_DUE
                .key(k.due())
                .arg(k.q())
                .invoke_async(&mut conn)
                .await?;
            due.map(|s| {
                codec::parse_millis(&s)
                    .map(Timestamp::from_millis)
                    .ok_or_else(|| DbError::corrupt("due index score", s))
            })
            .transpose()
        })
        .await
    }

    async fn settle(
        &self,
        lease: &LeaseToken,
        attempt: &Attempt,
        next: Next,
    ) -> Result<(), StoreError> {
        self.op(self.settle_inner(lease, attempt, next)).await
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        let pending: u64 = self
            .op(async {
                let mut conn = self.conn.clone();
                Ok(redis::cmd("SCARD")
                    .arg(self.keys.pending())
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        Ok(Backlog::new(pending, self.next_due().await?))
    }

    async fn add_hourly(
        &self,
        stats: &[hookline_core::model::HourlyStats],
    ) -> Result<(), StoreError> {
        if stats.is_empty() {
            return Ok(());
        }
        self.op(async {
            let k = &self.keys;
            let mut pipe = redis::pipe();
            pipe.atomic();
            for st in stats {
                let hour = hookline_core::model::HourlyStats::hour_of(st.hour).as_millis();
                let key = k.hourly(st.endpoint.as_str(), hour);
                let hours = k.hours(st.endpoint.as_str());
                pipe.hincr(&key, "d", st.delivered).ignore();
                pipe.hincr(&key, "f", st.failed).ignore();
                for (i, n) in st.latency.iter().enumerate().filter(|(_, n)| **n > 0) {
                    pipe.hincr(&key, format!("l{i}"), *n).ignore();
                }
                pipe.expire(&key, HOURLY_KEEP_SECS).ignore();
                pipe.zadd(&hours, hour, hour).ignore();
                pipe.zrembyscore(&hours, "-inf", hour - HOURLY_KEEP_SECS * 1000)
                    .ignore();
                pipe.expire(&hours, HOURLY_KEEP_SECS).ignore();
            }
            let mut conn = self.conn.clone();
            pipe.query_async::<()>(&mut conn).await?;
            Ok(())
        })
        .await
    }

    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        self.op(async {
            let k = &self.keys;
            let mut conn = self.conn.clone();
            let flat: Option<Vec<String>> = scripts::RETRY
                .key(k.due())
                .arg(k.q())
                .arg(account.as_str())
                .arg(id.as_str())
                .arg(now.as_millis())
                .invoke_async(&mut conn)
                .await?;
            match flat {
                Some(flat) => codec::delivery(id.as_str(), &codec::fields(flat)),
                None => Err(DbError::Store(StoreError::NotFound("delivery"))),
            }
        })
        .await
    }

    async fn recover_failed(
        &self,
        account: &AccountId,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.op(async {
            let k = &self.keys;
            let mut conn = self.conn.clone();
            let n: u64 = scripts::RECOVER
                .key(k.due())
                .arg(k.q())
                .arg(account.as_str())
                .arg(endpoint.as_str())
                .arg(format!("[{}", time_part(since)))
                .arg(now.as_millis())
                .invoke_async(&mut conn)
                .await?;
            Ok(n)
        })
        .await
    }

    async fn replace_event_data(
        &self,
        account: &AccountId,
        id: &EventId,
        data: &serde_json::value::RawValue,
    ) -> Result<bool, StoreError> {
        self.op(async {
            let Some(mut ev) = self.event_inner(account, id).await? else {
                return Ok(false);
            };
            ev.data = data.to_owned();
            let mut conn = self.conn.clone();
            let n: i64 = scripts::EVENT_DATA
                .key(self.keys.event(id.as_str()))
                .arg(account.as_str())
                .arg(codec::to_json(&ev, "event")?)
                .invoke_async(&mut conn)
                .await?;
            Ok(n == 1)
        })
        .await
    }

    async fn record_failing(
        &self,
        id: &EndpointId,
        at: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        self.op(async {
            let k = &self.keys;
            let mut conn = self.conn.clone();
            let since: Option<String> = scripts::ENDPOINT_FAILING
                .key(k.due())
                .arg(k.q())
                .arg(id.as_str())
                .arg(at.as_millis())
                .invoke_async(&mut conn)
                .await?;
            failing_since(since.as_deref())
        })
        .await
    }

    async fn disable_endpoint(
        &self,
        id: &EndpointId,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.op(async {
            let k = &self.keys;
            let mut conn = self.conn.clone();
            // Read, change, compare-and-set; a record changed meanwhile is read again.
            for _ in 0..8 {
                let read: Option<String> = redis::cmd("HGET")
                    .arg(k.endpoint(id.as_str()))
                    .arg("j")
                    .query_async(&mut conn)
                    .await?;
                let Some(read) = read else {
                    return Ok(false);
                };
                let mut ep: Endpoint = codec::from_json(&read, "endpoint")?;
                if !ep.enabled {
                    return Ok(false);
                }
                ep.enabled = false;
                ep.disabled_reason = Some(reason.to_owned());
                ep.updated_at = now;
                let done: i64 = scripts::ENDPOINT_DISABLE
                    .key(k.due())
                    .arg(k.q())
                    .arg(id.as_str())
                    .arg(&read)
                    .arg(codec::to_json(&ep, "endpoint")?)
                    .invoke_async(&mut conn)
                    .await?;
                if done >= 0 {
                    return Ok(done == 1);
                }
            }
            Err(DbError::Store(StoreError::Conflict("endpoint")))
        })
        .await
    }

    async fn record_healthy(&self, id: &EndpointId) -> Result<(), StoreError> {
        self.op(async {
            let mut conn = self.conn.clone();
            let _: i64 = redis::cmd("HDEL")
                .arg(self.keys.endpoint(id.as_str()))
                .arg("fs")
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }
}

#[async_trait::async_trait]
impl HistoryStore for RedisStore {
    async fn event(&self, account: &AccountId, id: &EventId) -> Result<Option<Event>, StoreError> {
        self.op(self.event_inner(account, id)).await
    }

    async fn event_by_idempotency_key(
        &self,
        account: &AccountId,
        key: &str,
    ) -> Result<Option<Event>, StoreError> {
        self.op(async {
            let mut conn = self.conn.clone();
            let id: Option<String> = redis::cmd("GET")
                .arg(self.keys.idempotency(account.as_str(), key))
                .query_async(&mut conn)
                .await?;
            match id.map(|id| EventId::parse(&id)) {
                Some(Ok(id)) => self.event_inner(account, &id).await,
                _ => Ok(None),
            }
        })
        .await
    }

    async fn list_events(
        &self,
        account: &AccountId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<Event>, StoreError> {
        let k = &self.keys;
        let window = Window {
            since: filter.since,
            until: filter.until,
        };
        self.op(self.list_index(
            &k.events(account.as_str()),
            page,
            window,
            |id| k.event(id),
            |e: &Event| {
                e.account == *account
                    && filter
                        .event_type
                        .as_ref()
                        .is_none_or(|t| *t == e.event_type)
                    && filter
                        .site
                        .as_ref()
                        .is_none_or(|s| Some(s) == e.site.as_ref())
                    && filter
                        .queue_id
                        .as_ref()
                        .is_none_or(|q| Some(q) == e.queue_id.as_ref())
            },
        ))
        .await
    }

    async fn delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        self.op(self.delivery_inner(account, id)).await
    }

    async fn list_deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        if filter.event_types.is_empty() {
            self.op(self.deliveries_untyped(account, filter, page))
                .await
        } else {
            self.op(self.deliveries_typed(account, filter, page)).await
        }
    }

    async fn attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
    ) -> Result<Vec<Attempt>, StoreError> {
        self.op(self.attempts_inner(account, delivery)).await
    }

    async fn hourly(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
    ) -> Result<Vec<hookline_core::model::HourlyStats>, StoreError> {
        use hookline_core::model::{HourlyStats, LATENCY_BUCKETS};
        self.op(async {
            let k = &self.keys;
            let mut conn = self.conn.clone();
            let hours: Vec<i64> = redis::cmd("ZRANGEBYSCORE")
                .arg(k.hours(endpoint.as_str()))
                .arg(since.as_millis())
                .arg("+inf")
                .query_async(&mut conn)
                .await?;
            if hours.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for h in &hours {
                pipe.hgetall(k.hourly(endpoint.as_str(), *h));
            }
            let maps: Vec<HashMap<String, u64>> = pipe.query_async(&mut conn).await?;
            let mut out = Vec::new();
            for (h, m) in hours.into_iter().zip(maps) {
                if m.is_empty() {
                    continue;
                }
                let mut st = HourlyStats::new(endpoint.clone(), Timestamp::from_millis(h));
                st.delivered = m.get("d").copied().unwrap_or(0);
                st.failed = m.get("f").copied().unwrap_or(0);
                for i in 0..LATENCY_BUCKETS {
                    st.latency[i] = m.get(&format!("l{i}")).copied().unwrap_or(0);
                }
                out.push(st);
            }
            Ok(out)
        })
        .await
    }
}

/// How long hourly counters are kept (8 days).
const HOURLY_KEEP_SECS: i64 = 8 * 24 * 3600;
