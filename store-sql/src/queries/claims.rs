//! What both stores' claims do around their own claim statements: the limited-endpoint
//! bookkeeping (candidates, room, send times, the pace column) and turning claimed rows into
//! [`Claimed`] deliveries with their events and endpoints (two more queries for a whole batch).

use std::collections::HashMap;

use hookline_core::backend::{LimitedHint, LimitedRoom};
use hookline_core::model::{Delivery, Event};
use hookline_core::store::{Claimed, LeaseToken};
use hookline_core::{EventId, Timestamp};
use sqlx::QueryBuilder;

use super::dialect::{self, Db, Row};
use super::rows::{self, ClaimColumns, ENDPOINT_COLS, EVENT_COLS, get};
use crate::SqlStore;
use crate::error::DbResult;

/// A claimed delivery with its lease and, for a rate-limited endpoint, its send time.
pub type ClaimedRow = (Delivery, ClaimColumns, Option<Timestamp>);

/// Claimed delivery rows, oldest due first (ties by id).
pub fn claimed_rows(found: &[Row]) -> DbResult<Vec<ClaimedRow>> {
    let mut batch = Vec::with_capacity(found.len());
    for row in found {
        batch.push((rows::delivery(row)?, rows::claim_columns(row)?, None));
    }
    batch.sort_by(|(a, ca, _), (b, cb, _)| (ca.due_at, &a.id).cmp(&(cb.due_at, &b.id)));
    Ok(batch)
}

/// Whether any enabled endpoint has limits, asked at most once per [`LimitedHint::TTL`] unless
/// endpoints change in this process.
pub async fn any_limited<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    hint: &LimitedHint,
) -> DbResult<bool> {
    if let Some(known) = hint.get() {
        return Ok(known);
    }
    let any: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM endpoints WHERE enabled = TRUE \
         AND (max_concurrency IS NOT NULL OR rate_limit IS NOT NULL))",
    )
    .fetch_one(s.read_pool())
    .await?;
    hint.set(any);
    Ok(any)
}

/// One limited endpoint a claim may take deliveries of: a row of the store's candidates query
/// (`id, max_concurrency, rate_limit, pace_next_us, live`).
#[derive(Debug)]
pub struct Limited {
    /// The endpoint.
    pub id: String,
    max_concurrency: Option<i64>,
    rate_limit: Option<u32>,
    pace_next_us: Option<i64>,
    live: i64,
}

impl Limited {
    /// Decodes a candidate row.
    pub fn from_row(row: &Row) -> DbResult<Self> {
        Ok(Self {
            id: get(row, "id")?,
            max_concurrency: get(row, "max_concurrency")?,
            rate_limit: get::<Option<i64>>(row, "rate_limit")?
                .map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
            pace_next_us: get(row, "pace_next_us")?,
            live: get(row, "live")?,
        })
    }

    /// How many of `room` deliveries this endpoint may take at `now`, and when they go.
    pub fn room(&self, now: Timestamp, room: usize) -> LimitedRoom {
        LimitedRoom::new(
            now,
            room,
            self.max_concurrency,
            self.live,
            self.rate_limit,
            self.pace_next_us,
        )
    }
}

/// The deliveries claimed of a limited endpoint (`found`), oldest due first with their send
/// times; moves the endpoint's next free send time on in the claim's transaction.
pub async fn take_limited(
    conn: &mut <Db as sqlx::Database>::Connection,
    endpoint: &Limited,
    allowed: &LimitedRoom,
    found: &[Row],
) -> DbResult<Vec<ClaimedRow>> {
    let mut mine = claimed_rows(found)?;
    for (i, c) in mine.iter_mut().enumerate() {
        c.2 = allowed.send_time(i);
    }
    if let Some(next) = allowed.next_free_us(mine.len()) {
        let mut qb = QueryBuilder::<Db>::new("UPDATE endpoints SET pace_next_us = ");
        qb.push_bind(next)
            .push(" WHERE id = ")
            .push_bind(endpoint.id.as_str());
        qb.build().execute(&mut *conn).await?;
    }
    Ok(mine)
}

/// `SELECT <cols> FROM <table> WHERE id` in `ids` (each once) on the read pool.
async fn fetch_by_ids<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    cols: &str,
    table: &str,
    mut ids: Vec<&str>,
) -> DbResult<Vec<Row>> {
    ids.sort_unstable();
    ids.dedup();
    let mut qb = QueryBuilder::<Db>::new(format!("SELECT {cols} FROM {table} WHERE id"));
    dialect::push_id_set(&mut qb, ids);
    Ok(qb.build().fetch_all(s.read_pool()).await?)
}

/// The claimed deliveries with their events and endpoints. A delivery whose event or endpoint
/// was removed since the claim (endpoint deleted, account deleted) is left out: its row is
/// cancelled or gone, and the lease just lapses.
pub async fn claimed<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    batch: Vec<ClaimedRow>,
) -> DbResult<Vec<Claimed>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let event_ids = batch.iter().map(|(d, _, _)| d.event_id.as_str()).collect();
    let event_rows = fetch_by_ids(s, EVENT_COLS, "events", event_ids).await?;
    // Each event with the number of deliveries in the batch that still need it.
    let mut events: HashMap<EventId, (Event, usize)> = HashMap::with_capacity(event_rows.len());
    for row in &event_rows {
        let e = rows::event(row)?;
        events.insert(e.id.clone(), (e, 0));
    }
    // Events can be large: hold one copy of each at a time, not the rows as well.
    drop(event_rows);
    for (d, _, _) in &batch {
        if let Some((_, uses)) = events.get_mut(&d.event_id) {
            *uses += 1;
        }
    }
    let endpoint_ids = batch
        .iter()
        .map(|(d, _, _)| d.endpoint_id.as_str())
        .collect();
    let endpoint_rows = fetch_by_ids(s, ENDPOINT_COLS, "endpoints", endpoint_ids).await?;
    let mut endpoints = HashMap::with_capacity(endpoint_rows.len());
    for row in &endpoint_rows {
        let e = rows::endpoint(row)?;
        endpoints.insert(e.id.clone(), e);
    }

    let mut out = Vec::with_capacity(batch.len());
    for (delivery, cols, not_before) in batch {
        // The last delivery of an event takes it; the others get a copy.
        let event = match events.get_mut(&delivery.event_id) {
            Some((_, uses)) if *uses > 1 => {
                *uses -= 1;
                events.get(&delivery.event_id).map(|(e, _)| e.clone())
            }
            Some(_) => events.remove(&delivery.event_id).map(|(e, _)| e),
            None => None,
        };
        let (Some(event), Some(endpoint)) = (event, endpoints.get(&delivery.endpoint_id).cloned())
        else {
            continue;
        };
        let attempt_number = delivery.attempts.saturating_add(1);
        let lease = LeaseToken::new(delivery.id.clone(), cols.lease_id);
        let mut claimed = Claimed::new(
            delivery,
            event,
            endpoint,
            attempt_number,
            cols.trigger,
            lease,
        );
        claimed.not_before = not_before;
        out.push(claimed);
    }
    Ok(out)
}
