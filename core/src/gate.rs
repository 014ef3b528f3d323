//! Per-endpoint admission inside one dispatcher: concurrency and rate limits, a circuit breaker
//! and `Retry-After` pauses, and the bookkeeping for disabling endpoints that keep failing.
//!
//! The state lives in the process: with several processes on one store, each enforces the limits
//! for its own requests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::id::EndpointId;
use crate::model::Endpoint;
use crate::time::Timestamp;

/// Circuit and limit settings.
#[derive(Debug, Clone)]
pub(crate) struct GateConfig {
    /// In-flight requests per endpoint when the endpoint sets no `maxConcurrency`; also the
    /// ceiling for one that does.
    pub(crate) endpoint_concurrency: u32,
    /// Consecutive failures that open the circuit.
    pub(crate) threshold: u32,
    /// First open period; doubles on every failed probe.
    pub(crate) cooldown: Duration,
    /// Longest open period (also caps `Retry-After` pauses).
    pub(crate) max_cooldown: Duration,
    /// Disable an endpoint whose every attempt failed for this long.
    pub(crate) disable_after: Option<Duration>,
}

#[derive(Debug)]
struct Gate {
    cap: u32,
    in_flight: u32,
    rate: Option<u32>,
    tokens: f64,
    refilled: Instant,
    failures: u32,
    opens: u32,
    open_until: Option<Instant>,
    probing: bool,
    paused_until: Option<Instant>,
    failing_since: Option<Timestamp>,
}

/// Whether a request may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Send it; call [`Gates::finish`] afterwards.
    Go,
    /// Not now; try again at this instant, or when a request to the endpoint finishes.
    Wait(Option<Instant>),
}

#[derive(Debug)]
pub(crate) struct Gates {
    cfg: GateConfig,
    map: Mutex<HashMap<EndpointId, Gate>>,
}

impl Gate {
    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            // A bucket of one: requests are spaced evenly, never bursting above the rate.
            let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
            self.tokens = (self.tokens + elapsed * f64::from(rate)).min(1.0);
        }
        self.refilled = now;
    }

    /// When this gate stops blocking: `Some(None)` = when a request finishes, `None` = open now.
    fn blocked(&mut self, now: Instant) -> Option<Option<Instant>> {
        if let Some(t) = self.paused_until {
            if now < t {
                return Some(Some(t));
            }
            self.paused_until = None;
        }
        if let Some(t) = self.open_until {
            if now < t {
                return Some(Some(t));
            }
            if self.probing || self.in_flight > 0 {
                return Some(None);
            }
        }
        if self.in_flight >= self.cap {
            return Some(None);
        }
        if let Some(rate) = self.rate {
            self.refill(now);
            if self.tokens < 1.0 {
                let wait = (1.0 - self.tokens) / f64::from(rate);
                return Some(Some(now + Duration::from_secs_f64(wait)));
            }
        }
        None
    }

    fn idle(&self) -> bool {
        self.in_flight == 0
            && self.failures == 0
            && self.open_until.is_none()
            && self.paused_until.is_none()
            && (self.rate.is_none() || self.tokens >= 1.0)
    }
}

impl Gates {
    pub(crate) fn new(cfg: GateConfig) -> Self {
        Self {
            cfg,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, Gate>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for one request to `ep` if its limits and circuit allow it now.
    pub(crate) fn admit(&self, ep: &Endpoint, now: Instant) -> Admit {
        let ceiling = self.cfg.endpoint_concurrency.max(1);
        let cap = ep.max_concurrency.map_or(ceiling, |m| m.clamp(1, ceiling));
        let mut map = self.lock();
        let g = map.entry(ep.id.clone()).or_insert_with(|| Gate {
            cap,
            in_flight: 0,
            rate: ep.rate_limit,
            tokens: 1.0,
            refilled: now,
            failures: 0,
            opens: 0,
            open_until: None,
            probing: false,
            paused_until: None,
            failing_since: None,
        });
        g.cap = cap;
        g.rate = ep.rate_limit;
        if let Some(until) = g.blocked(now) {
            return Admit::Wait(until);
        }
        if g.open_until.is_some() {
            // Half-open: this request is the single probe.
            g.probing = true;
        }
        if g.rate.is_some() {
            g.tokens -= 1.0;
        }
        g.in_flight += 1;
        Admit::Go
    }

    /// Records how a request admitted by [`admit`](Self::admit) ended. Returns when the endpoint
    /// started failing if it has now failed for longer than the disable period.
    pub(crate) fn finish(
        &self,
        id: &EndpointId,
        delivered: bool,
        retry_after: Option<Duration>,
        at: Timestamp,
        now: Instant,
    ) -> Option<Timestamp> {
        let mut map = self.lock();
        let g = map.get_mut(id)?;
        g.in_flight = g.in_flight.saturating_sub(1);
        if delivered {
            g.failures = 0;
            g.opens = 0;
            g.open_until = None;
            g.probing = false;
            g.failing_since = None;
            return None;
        }
        g.failures += 1;
        let since = *g.failing_since.get_or_insert(at);
        if let Some(ra) = retry_after {
            g.paused_until = Some(now + ra.min(self.cfg.max_cooldown));
        }
        let cooling = g.open_until.is_some_and(|t| now < t);
        if !cooling && (g.probing || g.failures >= self.cfg.threshold) {
            g.opens += 1;
            let factor = 2u32.saturating_pow(g.opens.saturating_sub(1).min(16));
            let cooldown = self
                .cfg
                .cooldown
                .saturating_mul(factor)
                .min(self.cfg.max_cooldown);
            g.open_until = Some(now + cooldown);
            tracing::debug!(endpoint_id = %id, cooldown_ms = cooldown.as_millis() as u64, "circuit open");
        }
        g.probing = false;
        match self.cfg.disable_after {
            Some(period) if at.since(since) >= period => Some(since),
            _ => None,
        }
    }

    /// The endpoints that cannot take a request now, and the earliest instant one of them may.
    pub(crate) fn blocked(&self, now: Instant) -> (Vec<EndpointId>, Option<Instant>) {
        let mut map = self.lock();
        map.retain(|_, g| !g.idle());
        let mut ids = Vec::new();
        let mut earliest: Option<Instant> = None;
        for (id, g) in map.iter_mut() {
            if let Some(until) = g.blocked(now) {
                ids.push(id.clone());
                if let Some(t) = until {
                    earliest = Some(earliest.map_or(t, |e| e.min(t)));
                }
            }
        }
        (ids, earliest)
    }

    /// Whether the endpoint is failing: its circuit is open or half-open, or it asked for a pause.
    pub(crate) fn is_failing(&self, id: &EndpointId) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|g| g.open_until.is_some() || g.paused_until.is_some())
    }

    /// Drops what is known about an endpoint (after it was disabled).
    pub(crate) fn forget(&self, id: &EndpointId) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::AccountId;

    fn cfg() -> GateConfig {
        GateConfig {
            endpoint_concurrency: 4,
            threshold: 3,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(60),
            disable_after: Some(Duration::from_secs(3600)),
        }
    }

    fn ep() -> Endpoint {
        Endpoint {
            id: EndpointId::generate(),
            account: AccountId::parse("a").unwrap(),
            url: "https://example.com".into(),
            description: None,
            event_types: vec![],
            sites: vec![],
            headers: Default::default(),
            rate_limit: None,
            max_concurrency: None,
            ordered: false,
            secrets: vec![],
            enabled: true,
            disabled_reason: None,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
        }
    }

    #[test]
    fn concurrency_is_capped_by_endpoint_and_default() {
        let gates = Gates::new(cfg());
        let now = Instant::now();
        let mut e = ep();
        for _ in 0..4 {
            assert_eq!(gates.admit(&e, now), Admit::Go);
        }
        assert_eq!(
            gates.admit(&e, now),
            Admit::Wait(None),
            "default ceiling of 4"
        );
        assert_eq!(gates.blocked(now).0, vec![e.id.clone()]);
        gates.finish(&e.id, true, None, Timestamp::EPOCH, now);
        assert_eq!(gates.admit(&e, now), Admit::Go);
        e.max_concurrency = Some(1);
        let other = Endpoint {
            id: EndpointId::generate(),
            ..e.clone()
        };
        assert_eq!(gates.admit(&other, now), Admit::Go);
        assert_eq!(
            gates.admit(&other, now),
            Admit::Wait(None),
            "maxConcurrency 1"
        );
    }

    #[test]
    fn rate_limit_spaces_requests() {
        let gates = Gates::new(cfg());
        let t0 = Instant::now();
        let mut e = ep();
        e.rate_limit = Some(2);
        e.max_concurrency = Some(4);
        assert_eq!(gates.admit(&e, t0), Admit::Go);
        gates.finish(&e.id, true, None, Timestamp::EPOCH, t0);
        match gates.admit(&e, t0) {
            Admit::Wait(Some(t)) => assert_eq!(t - t0, Duration::from_millis(500)),
            other => panic!("{other:?}"),
        }
        assert_eq!(gates.admit(&e, t0 + Duration::from_millis(500)), Admit::Go);
        assert!(matches!(
            gates.admit(&e, t0 + Duration::from_millis(600)),
            Admit::Wait(Some(_))
        ));
    }

    #[test]
    fn circuit_opens_half_opens_with_one_probe_and_backs_off() {
        let gates = Gates::new(cfg());
        let t0 = Instant::now();
        let e = ep();
        let at = Timestamp::from_millis(0);
        for _ in 0..3 {
            assert_eq!(gates.admit(&e, t0), Admit::Go);
            gates.finish(&e.id, false, None, at, t0);
        }
        let open_until = t0 + Duration::from_secs(10);
        assert_eq!(gates.admit(&e, t0), Admit::Wait(Some(open_until)));
        // Half-open: one probe only.
        assert_eq!(gates.admit(&e, open_until), Admit::Go);
        assert_eq!(gates.admit(&e, open_until), Admit::Wait(None));
        // The probe fails: open again for twice as long.
        gates.finish(&e.id, false, None, at, open_until);
        assert_eq!(
            gates.admit(&e, open_until),
            Admit::Wait(Some(open_until + Duration::from_secs(20)))
        );
        // A successful probe closes it.
        let later = open_until + Duration::from_secs(20);
        assert_eq!(gates.admit(&e, later), Admit::Go);
        gates.finish(&e.id, true, None, at, later);
        assert_eq!(gates.admit(&e, later), Admit::Go);
        assert_eq!(gates.admit(&e, later), Admit::Go);
    }

    #[test]
    fn retry_after_pauses_and_long_failure_asks_to_disable() {
        let gates = Gates::new(cfg());
        let t0 = Instant::now();
        let e = ep();
        assert_eq!(gates.admit(&e, t0), Admit::Go);
        let none = gates.finish(
            &e.id,
            false,
            Some(Duration::from_secs(30)),
            Timestamp::from_millis(0),
            t0,
        );
        assert_eq!(none, None);
        assert_eq!(
            gates.admit(&e, t0),
            Admit::Wait(Some(t0 + Duration::from_secs(30)))
        );
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(gates.admit(&e, t1), Admit::Go);
        let since = gates.finish(&e.id, false, None, Timestamp::from_millis(3_600_000), t1);
        assert_eq!(
            since,
            Some(Timestamp::from_millis(0)),
            "failing for the whole period"
        );
    }
}
