//! For store implementations: helpers that the store crates share to keep the contract of
//! [`store`](crate::store) (per-endpoint limits), which callers of a store never need.

use std::time::Duration;

use crate::store::RATE_HORIZON;
use crate::time::Timestamp;

/// The spacing of a rate limit of `per_second` requests, in microseconds (rounded up, so the
/// rate is never exceeded).
pub fn rate_interval_micros(per_second: u32) -> i64 {
    let r = i64::from(per_second.max(1));
    (1_000_000 + r - 1) / r
}

/// For store implementations: how many deliveries a claim may take of one endpoint with limits,
/// and the send times they get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitedRoom {
    /// How many the claim may take now (0: none).
    pub take: usize,
    /// With a rate limit: the first free send time and the spacing, in µs.
    pace: Option<(i64, i64)>,
}

impl LimitedRoom {
    /// The room at `now` for a claim with `room` free slots, of an endpoint with
    /// `max_concurrency` and `live` live leases, and with `rate_limit` whose next free send time
    /// is `pace_next_us` (µs; `None` before its first claim).
    pub fn new(
        now: Timestamp,
        room: usize,
        max_concurrency: Option<i64>,
        live: i64,
        rate_limit: Option<u32>,
        pace_next_us: Option<i64>,
    ) -> Self {
        let mut take = i64::try_from(room).unwrap_or(i64::MAX);
        if let Some(m) = max_concurrency {
            take = take.min(m - live);
        }
        let mut pace = None;
        if let Some(r) = rate_limit {
            let now_us = now.as_millis().saturating_mul(1000);
            let horizon_us = Self::horizon_us(now);
            let step = rate_interval_micros(r);
            let start = pace_next_us.unwrap_or(now_us).max(now_us);
            take = take.min((horizon_us - start).div_euclid(step) + 1);
            pace = Some((start, step));
        }
        Self {
            take: usize::try_from(take.max(0)).unwrap_or(0),
            pace,
        }
    }

    /// The end of the rate horizon of a claim at `now`, in µs: a rate-limited endpoint whose
    /// next free send time is later has no room.
    pub fn horizon_us(now: Timestamp) -> i64 {
        now.as_millis()
            .saturating_mul(1000)
            .saturating_add(RATE_HORIZON.as_micros() as i64)
    }

    /// The send time of the `i`-th delivery taken (from 0), rounded up to the millisecond so it
    /// is never earlier than reserved; `None` without a rate limit.
    pub fn send_time(&self, i: usize) -> Option<Timestamp> {
        self.pace.map(|(start, step)| {
            let at_us = start + step * i as i64;
            Timestamp::from_millis((at_us + 999).div_euclid(1000))
        })
    }

    /// The endpoint's next free send time (µs) once `taken` deliveries were claimed; `None`
    /// without a rate limit or when nothing was taken (nothing to write).
    pub fn next_free_us(&self, taken: usize) -> Option<i64> {
        match self.pace {
            Some((start, step)) if taken > 0 => Some(start + step * taken as i64),
            _ => None,
        }
    }
}

/// For store implementations: whether any endpoint has a `maxConcurrency` or `rateLimit`,
/// remembered for [`LimitedHint::TTL`], so claims can skip the limited-endpoint path (and its
/// query) while there are none. A store clears it on its own endpoint writes; a change made
/// through another process is seen within the TTL.
#[derive(Debug, Default)]
pub struct LimitedHint {
    known: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl LimitedHint {
    /// How long an answer is trusted.
    pub const TTL: Duration = Duration::from_secs(1);

    /// The remembered answer, if still fresh.
    pub fn get(&self) -> Option<bool> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.and_then(|(at, v)| (at.elapsed() < Self::TTL).then_some(v))
    }

    /// Remembers an answer.
    pub fn set(&self, any_limited: bool) {
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), any_limited));
    }

    /// Forgets the answer (after an endpoint write).
    pub fn clear(&self) {
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn concurrency_room_is_the_limit_minus_live_leases() {
        assert_eq!(LimitedRoom::new(NOW, 10, Some(3), 1, None, None).take, 2);
        assert_eq!(LimitedRoom::new(NOW, 1, Some(3), 0, None, None).take, 1);
        assert_eq!(LimitedRoom::new(NOW, 10, Some(3), 5, None, None).take, 0);
        assert_eq!(
            LimitedRoom::new(NOW, 10, None, 0, None, None).send_time(0),
            None
        );
    }

    #[test]
    fn rate_room_fills_the_horizon_with_spaced_send_times() {
        // 4/s from an idle endpoint: now, +250, +500, +750 and +1000 ms fit the 1 s horizon.
        let r = LimitedRoom::new(NOW, 100, None, 0, Some(4), None);
        assert_eq!(r.take, 5);
        assert_eq!(r.send_time(0), Some(NOW));
        assert_eq!(r.send_time(4), Some(NOW.add(Duration::from_millis(1000))));
        assert_eq!(r.next_free_us(5), Some((NOW.as_millis() + 1250) * 1000));
        assert_eq!(r.next_free_us(0), None);
        // The horizon is taken: nothing more until time passes.
        let full = LimitedRoom::new(NOW, 100, None, 0, Some(4), r.next_free_us(5));
        assert_eq!(full.take, 0);
        let later = LimitedRoom::new(
            NOW.add(Duration::from_millis(250)),
            100,
            None,
            0,
            Some(4),
            r.next_free_us(5),
        );
        assert_eq!(later.take, 1);
        assert_eq!(
            later.send_time(0),
            Some(NOW.add(Duration::from_millis(1250)))
        );
        // Both limits: the smaller room wins; a 3/s step rounds up so the rate is never exceeded.
        assert_eq!(
            LimitedRoom::new(NOW, 100, Some(2), 0, Some(4), None).take,
            2
        );
        assert_eq!(rate_interval_micros(3), 333_334);
    }
}
