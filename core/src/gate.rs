//! Per-endpoint admission inside one dispatcher: the in-flight cap, a circuit breaker and
//! `Retry-After` pauses, and the local view of the failure clock.
//!
//! This state lives in the process. The limits an endpoint sets (`maxConcurrency`, `rateLimit`)
//! are kept by the store's claim across every process (see [`crate::store`]); the cap here adds
//! the per-process ceiling `endpoint_concurrency` so one slow endpoint cannot take every slot.
//! The failure clock is started and stopped in the store, so it survives restarts.

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
}

#[derive(Debug)]
struct Gate {
    cap: u32,
    in_flight: u32,
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

/// How a finished request leaves the endpoint's failure clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// Delivered; `was_failing` if this process saw it failing before.
    Delivered { was_failing: bool },
    /// Failed; `first` if this failure started the local clock, which runs since `since`;
    /// `hold` when it opened the circuit or set a pause: the endpoint waits until then.
    Failing {
        first: bool,
        since: Timestamp,
        hold: Option<Instant>,
    },
}

impl Gate {
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
        None
    }

    fn idle(&self) -> bool {
        self.in_flight == 0
            && self.failures == 0
            && self.open_until.is_none()
            && self.paused_until.is_none()
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
            failures: 0,
            opens: 0,
            open_until: None,
            probing: false,
            paused_until: None,
            failing_since: None,
        });
        g.cap = cap;
        if let Some(until) = g.blocked(now) {
            return Admit::Wait(until);
        }
        if g.open_until.is_some() {
            // Half-open: this request is the single probe.
            g.probing = true;
        }
        g.in_flight += 1;
        Admit::Go
    }

    /// Records how a request admitted by [`admit`](Self::admit) ended at `at`.
    pub(crate) fn finish(
        &self,
        id: &EndpointId,
        delivered: bool,
        retry_after: Option<Duration>,
        at: Timestamp,
        now: Instant,
    ) -> Health {
        let mut map = self.lock();
        let Some(g) = map.get_mut(id) else {
            return if delivered {
                Health::Delivered { was_failing: false }
            } else {
                Health::Failing {
                    first: true,
                    since: at,
                    hold: None,
                }
            };
        };
        g.in_flight = g.in_flight.saturating_sub(1);
        if delivered {
            g.failures = 0;
            g.opens = 0;
            g.open_until = None;
            g.probing = false;
            return Health::Delivered {
                was_failing: g.failing_since.take().is_some(),
            };
        }
        g.failures += 1;
        let first = g.failing_since.is_none();
        let since = *g.failing_since.get_or_insert(at);
        let mut hold = None;
        if let Some(ra) = retry_after {
            let until = now + ra.min(self.cfg.max_cooldown);
            g.paused_until = Some(until);
            hold = Some(until);
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
            hold = Some(hold.map_or(now + cooldown, |h: Instant| h.max(now + cooldown)));
            tracing::debug!(endpoint_id = %id, cooldown_ms = cooldown.as_millis() as u64, "circuit open");
        }
        g.probing = false;
        Health::Failing { first, since, hold }
    }

    /// Adopts the failure clock's start as the store keeps it (it may be earlier than this
    /// process's first failure: before a restart, or in another process).
    pub(crate) fn adopt_failing_since(&self, id: &EndpointId, since: Timestamp) {
        if let Some(g) = self.lock().get_mut(id)
            && g.failing_since.is_some()
        {
            g.failing_since = Some(since);
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
            failing_since: None,
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
    fn retry_after_pauses_and_the_failure_clock_runs_until_a_success() {
        let gates = Gates::new(cfg());
        let t0 = Instant::now();
        let e = ep();
        assert_eq!(gates.admit(&e, t0), Admit::Go);
        let first = gates.finish(
            &e.id,
            false,
            Some(Duration::from_secs(30)),
            Timestamp::from_millis(0),
            t0,
        );
        assert_eq!(
            first,
            Health::Failing {
                first: true,
                since: Timestamp::from_millis(0),
                hold: Some(t0 + Duration::from_secs(30)),
            },
            "a pause holds the endpoint"
        );
        assert_eq!(
            gates.admit(&e, t0),
            Admit::Wait(Some(t0 + Duration::from_secs(30)))
        );
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(gates.admit(&e, t1), Admit::Go);
        let later = gates.finish(&e.id, false, None, Timestamp::from_millis(3_600_000), t1);
        assert_eq!(
            later,
            Health::Failing {
                first: false,
                since: Timestamp::from_millis(0),
                hold: None,
            },
            "the clock keeps its start"
        );
        // The store knew of an earlier start (before a restart, or in another process).
        gates.adopt_failing_since(&e.id, Timestamp::from_millis(-5));
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(gates.admit(&e, t2), Admit::Go);
        assert_eq!(
            gates.finish(&e.id, false, None, Timestamp::from_millis(3_650_000), t2),
            Health::Failing {
                first: false,
                since: Timestamp::from_millis(-5),
                hold: Some(t2 + Duration::from_secs(10)),
            },
            "the third failure opens the circuit and holds the endpoint for the cool-down"
        );
        let t2 = t2 + Duration::from_secs(120);
        assert_eq!(gates.admit(&e, t2), Admit::Go);
        assert_eq!(
            gates.finish(&e.id, true, None, Timestamp::from_millis(3_700_000), t2),
            Health::Delivered { was_failing: true }
        );
        assert_eq!(gates.admit(&e, t2), Admit::Go);
        assert_eq!(
            gates.finish(&e.id, false, None, Timestamp::from_millis(3_800_000), t2),
            Health::Failing {
                first: true,
                since: Timestamp::from_millis(3_800_000),
                hold: None,
            },
            "a success stopped the clock"
        );
    }
}
