//! Per-endpoint admission inside one dispatcher: the in-flight cap, a circuit breaker and
//! `Retry-After` pauses, and the local view of the failure clock.
//!
//! This state lives in the process. The limits an endpoint sets (`maxConcurrency`, `rateLimit`)
//! are kept by the store's claim across every process (see [`crate::store`]); the cap here adds
//! the per-process ceiling `endpoint_concurrency` so one slow endpoint cannot take every slot.
//! The failure clock is started and stopped in the store, so it survives restarts.
//!
//! # The circuit breaker judges health, not streaks
//!
//! Each gate remembers how the endpoint's last attempts in this process ended, in a window of
//! twice `min_calls` attempts (10 by default, at most 64). An attempt that got no answer (a
//! time-out, a connection, DNS or TLS failure, a URL that cannot be used) counts as a whole
//! failure; one answered with anything but a 2xx counts as half a failure, because an answer
//! shows the endpoint is up. The circuit opens when the window holds at least `min_calls`
//! attempts (5) and their failures reach `failure_rate` (50 %) of them. So:
//!
//! - an endpoint that stops answering opens after `min_calls` attempts (5), and once its window
//!   is full of successes, after half the window (5 of 10) fails;
//! - one that answers nothing but errors opens once every attempt in the window failed: after
//!   5 attempts when the window is fresh, after 10 when it was full of successes;
//! - a minority of answered errors (say 20 % random 500s) never opens it: with the default 50 %,
//!   answered errors alone must fill the whole window, and a run of 10 failures in a row at 20 %
//!   comes once in ten million attempts (Resilience4j's `minimumNumberOfCalls` and
//!   `failureRateThreshold` over a count-based sliding window; Envoy's outlier detection likewise
//!   tells gateway failures apart from other 5xx).
//!
//! A `min_calls` above 64 never fills the window: the breaker is off (pauses still apply).
//!
//! # An adaptive limit per endpoint
//!
//! How many requests an endpoint gets in flight at once is learnt from how it answers (additive
//! increase, multiplicative decrease, as TCP's congestion window): a gate starts at
//! [`INITIAL_LIMIT`] (4) requests; after `limit` answers in a row that came back faster than
//! `slow_after` while at least half the limit was in use, the limit grows by one (an endpoint
//! with a `maxConcurrency` starts at it instead); a request
//! that times out, gets no answer, or takes longer than `slow_after` halves it (at least 1).
//! The limit never exceeds the endpoint's `maxConcurrency`, nor `endpoint_concurrency`. So a
//! fast endpoint climbs to the ceiling within a few thousand deliveries, while one that hangs
//! drops to a single request in flight.
//!
//! A request still in flight after `slow_after` moves to the dispatcher's slow lane (see
//! [`crate::dispatcher`]); while an endpoint has one there, it gets no other request
//! ([`Gates::went_slow`]), and its deliveries are skipped in claims.
//!
//! When the circuit opens, the endpoint waits for the cool-down (first `cooldown`, doubling on
//! every failed probe up to `max_cooldown`); then a single probe is sent. Its success (or any
//! success) closes the circuit with an empty window; its failure opens it again (a circuit that
//! opens or closes is logged at `info` with the endpoint's and account's ids, and counted in
//! [`CIRCUITS_OPEN`](crate::metrics::CIRCUITS_OPEN)). Outcomes of
//! requests that were in flight when the circuit opened do not extend it while it cools down. A
//! gate that has been idle (nothing in flight, closed, no pause, not failing) for
//! [`FORGET_AFTER`] is dropped, so a quiet endpoint starts again with an empty window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::id::{AccountId, EndpointId};
use crate::model::Endpoint;
use crate::time::Timestamp;
use crate::transport::{DeliveryResponse, TransportError};

/// How long an idle gate (see [`Gate::idle`]) is kept before its window is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(30);

/// The most attempts a window remembers.
const MAX_WINDOW: u32 = 64;

/// The in-flight limit a gate starts with (at most its ceiling).
pub(crate) const INITIAL_LIMIT: u32 = 4;

/// Circuit and limit settings.
#[derive(Debug, Clone)]
pub(crate) struct GateConfig {
    /// In-flight requests per endpoint when the endpoint sets no `maxConcurrency`; also the
    /// ceiling for one that does.
    pub(crate) endpoint_concurrency: u32,
    /// Attempts the window must hold before it is judged; the window holds twice as many (at
    /// most 64). Above 64 the circuit never opens.
    pub(crate) min_calls: u32,
    /// The share of failures, in percent (1 to 100), that opens the circuit; an answered error
    /// counts half a failure.
    pub(crate) failure_rate: u32,
    /// First open period; doubles on every failed probe.
    pub(crate) cooldown: Duration,
    /// Longest open period (also caps `Retry-After` pauses).
    pub(crate) max_cooldown: Duration,
    /// An answer slower than this halves the endpoint's limit, and a request in flight this
    /// long moves to the slow lane.
    pub(crate) slow_after: Duration,
}

impl GateConfig {
    /// The dispatcher's settings for the gates.
    pub(crate) fn of(c: &crate::dispatcher::DispatcherConfig) -> Self {
        Self {
            endpoint_concurrency: c.endpoint_concurrency,
            min_calls: c.circuit_threshold,
            failure_rate: c.circuit_failure_rate.clamp(1, 100),
            cooldown: c.circuit_cooldown,
            max_cooldown: c.circuit_max_cooldown,
            slow_after: c.slow_after(),
        }
    }

    fn window(&self) -> u32 {
        self.min_calls.saturating_mul(2).clamp(1, MAX_WINDOW)
    }
}

/// How an attempt ended, as the breaker judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A 2xx.
    Delivered,
    /// Answered with anything but a 2xx: the endpoint is up; half a failure.
    Refused,
    /// No answer (time-out, connection, DNS or TLS failure, unusable URL); a whole failure.
    Unreachable,
}

impl Verdict {
    /// The verdict on a transport result (2xx is delivered, as in [`crate::retry::classify`]).
    pub(crate) fn of(result: &Result<DeliveryResponse, TransportError>) -> Self {
        match result {
            Ok(r) if (200..300).contains(&r.status) => Self::Delivered,
            Ok(_) => Self::Refused,
            Err(_) => Self::Unreachable,
        }
    }
}

/// The endpoint's last attempts, newest in the lowest bit.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    /// Attempts that got no answer.
    unreachable: u64,
    /// Attempts answered with an error.
    refused: u64,
    /// Attempts remembered (at most the window size).
    len: u32,
}

impl Window {
    fn push(&mut self, v: Verdict, size: u32) {
        let mask = if size >= 64 {
            u64::MAX
        } else {
            (1u64 << size) - 1
        };
        self.unreachable = ((self.unreachable << 1) | u64::from(v == Verdict::Unreachable)) & mask;
        self.refused = ((self.refused << 1) | u64::from(v == Verdict::Refused)) & mask;
        self.len = (self.len + 1).min(size);
    }

    /// Failures in the window, counted in halves.
    fn half_failures(&self) -> u32 {
        2 * self.unreachable.count_ones() + self.refused.count_ones()
    }

    /// Whether the window holds enough attempts and enough of them failed.
    fn trips(&self, cfg: &GateConfig) -> bool {
        let half = self.half_failures();
        self.len >= cfg.min_calls
            && half > 0
            && u64::from(half) * 100 >= 2 * u64::from(cfg.failure_rate) * u64::from(self.len)
    }
}

#[derive(Debug)]
struct Gate {
    /// The endpoint's account, for the log lines.
    account: AccountId,
    /// The most requests in flight the settings allow (`maxConcurrency`, the process ceiling).
    cap: u32,
    /// The adaptive limit (1 ..= `cap`).
    limit: u32,
    /// Fast answers since the limit last changed.
    fast: u32,
    /// Requests in the slow lane.
    slow: u32,
    in_flight: u32,
    window: Window,
    opens: u32,
    open_until: Option<Instant>,
    probing: bool,
    paused_until: Option<Instant>,
    failing_since: Option<Timestamp>,
    /// When the last request finished (or the gate was made).
    last: Instant,
}

/// How long a finished request took, for the adaptive limit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pace {
    /// From sending to the answer (or failure).
    pub(crate) elapsed: Duration,
    /// Whether it moved to the slow lane ([`Gates::went_slow`]).
    pub(crate) went_slow: bool,
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
        if self.in_flight >= self.limit.min(self.cap) || (self.slow > 0 && self.in_flight > 0) {
            return Some(None);
        }
        None
    }

    /// Halves the limit (a time-out, no answer or a slow answer).
    fn decrease(&mut self) {
        self.limit = (self.limit / 2).max(1);
        self.fast = 0;
    }

    /// Nothing in flight, closed, no pause, not failing, and quiet for [`FORGET_AFTER`].
    fn idle(&self, now: Instant) -> bool {
        self.in_flight == 0
            && self.open_until.is_none()
            && self.paused_until.is_none()
            && self.failing_since.is_none()
            && now.saturating_duration_since(self.last) >= FORGET_AFTER
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
            account: ep.account.clone(),
            cap,
            // An endpoint that declares its capacity starts at it; others at the initial limit.
            limit: if ep.max_concurrency.is_some() {
                cap
            } else {
                INITIAL_LIMIT.min(cap)
            },
            fast: 0,
            slow: 0,
            in_flight: 0,
            window: Window::default(),
            opens: 0,
            open_until: None,
            probing: false,
            paused_until: None,
            failing_since: None,
            last: now,
        });
        g.cap = cap;
        g.limit = g.limit.clamp(1, cap);
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

    /// A request to `id` has been in flight for `slow_after`: it moves to the slow lane, the
    /// endpoint's limit halves and it gets no other request until its slow ones end.
    pub(crate) fn went_slow(&self, id: &EndpointId) {
        if let Some(g) = self.lock().get_mut(id) {
            g.slow += 1;
            g.decrease();
        }
    }

    /// The endpoint's adaptive limit, if it has a gate.
    #[cfg(test)]
    pub(crate) fn limit(&self, id: &EndpointId) -> Option<u32> {
        self.lock().get(id).map(|g| g.limit)
    }

    /// Records how a request admitted by [`admit`](Self::admit) ended at `at`, as a fast answer
    /// (see [`finish_paced`](Self::finish_paced)).
    #[cfg(test)]
    pub(crate) fn finish(
        &self,
        id: &EndpointId,
        verdict: Verdict,
        retry_after: Option<Duration>,
        at: Timestamp,
        now: Instant,
    ) -> Health {
        self.finish_paced(id, verdict, retry_after, at, now, Pace::default())
    }

    /// Records how a request admitted by [`admit`](Self::admit) ended at `at`, after `pace`.
    pub(crate) fn finish_paced(
        &self,
        id: &EndpointId,
        verdict: Verdict,
        retry_after: Option<Duration>,
        at: Timestamp,
        now: Instant,
        pace: Pace,
    ) -> Health {
        let mut map = self.lock();
        let Some(g) = map.get_mut(id) else {
            return if verdict == Verdict::Delivered {
                Health::Delivered { was_failing: false }
            } else {
                Health::Failing {
                    first: true,
                    since: at,
                    hold: None,
                }
            };
        };
        if pace.went_slow {
            // The limit was halved when it went slow.
            g.slow = g.slow.saturating_sub(1);
        } else if verdict == Verdict::Unreachable || pace.elapsed >= self.cfg.slow_after {
            g.decrease();
        } else if verdict == Verdict::Delivered && g.slow == 0 && 2 * g.in_flight >= g.limit {
            // A fast answer while at least half the limit was in use (and none in the slow
            // lane).
            g.fast += 1;
            if g.fast >= g.limit {
                g.limit = (g.limit + 1).min(g.cap);
                g.fast = 0;
            }
        }
        g.in_flight = g.in_flight.saturating_sub(1);
        g.last = now;
        if verdict == Verdict::Delivered {
            if g.open_until.take().is_some() {
                // Closing: the judgement starts afresh.
                g.window = Window::default();
                tracing::info!(account_id = %g.account, endpoint_id = %id, "circuit closed");
                crate::metrics::circuits_open(-1.0);
            } else {
                g.window.push(verdict, self.cfg.window());
            }
            g.opens = 0;
            g.probing = false;
            return Health::Delivered {
                was_failing: g.failing_since.take().is_some(),
            };
        }
        let first = g.failing_since.is_none();
        let since = *g.failing_since.get_or_insert(at);
        let mut hold = None;
        if let Some(ra) = retry_after {
            let until = now + ra.min(self.cfg.max_cooldown);
            g.paused_until = Some(until);
            hold = Some(until);
        }
        let was_open = g.open_until.is_some();
        let open = match g.open_until {
            // Half-open, a failed probe (or request from before the circuit opened) opens it
            // again; while it cools down, requests from before it opened do not extend it.
            Some(t) => now >= t,
            None => {
                g.window.push(verdict, self.cfg.window());
                g.window.trips(&self.cfg)
            }
        };
        if open {
            g.opens += 1;
            let factor = 2u32.saturating_pow(g.opens.saturating_sub(1).min(16));
            let cooldown = self
                .cfg
                .cooldown
                .saturating_mul(factor)
                .min(self.cfg.max_cooldown);
            g.open_until = Some(now + cooldown);
            g.window = Window::default();
            hold = Some(hold.map_or(now + cooldown, |h: Instant| h.max(now + cooldown)));
            let cooldown_ms = cooldown.as_millis() as u64;
            if was_open {
                // A failed probe: logged once per cool-down, which doubles up to its maximum.
                tracing::debug!(account_id = %g.account, endpoint_id = %id, cooldown_ms, "circuit open again");
            } else {
                tracing::info!(account_id = %g.account, endpoint_id = %id, cooldown_ms, "circuit opened");
                crate::metrics::circuits_open(1.0);
            }
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
        map.retain(|_, g| !g.idle(now));
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
        if self
            .lock()
            .remove(id)
            .is_some_and(|g| g.open_until.is_some())
        {
            crate::metrics::circuits_open(-1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    use super::*;
    use crate::dispatcher::DispatcherConfig;
    use crate::id::AccountId;

    fn cfg() -> GateConfig {
        GateConfig {
            endpoint_concurrency: 4,
            min_calls: 3,
            failure_rate: 50,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(60),
            slow_after: Duration::from_secs(5),
        }
    }

    /// The gates as a dispatcher with default settings has them.
    fn defaults() -> Gates {
        Gates::new(GateConfig::of(&DispatcherConfig::default()))
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

    /// One request admitted at `now` (it must be) that ends with `v` at once; `Some(until)` when
    /// it opened the circuit.
    fn attempt(gates: &Gates, e: &Endpoint, v: Verdict, now: Instant) -> Option<Instant> {
        assert_eq!(gates.admit(e, now), Admit::Go, "admitted");
        match gates.finish(&e.id, v, None, Timestamp::EPOCH, now) {
            Health::Delivered { .. } => None,
            Health::Failing { hold, .. } => hold,
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn verdicts_tell_no_answer_from_an_answered_error() {
        let answer = |status| {
            Ok(DeliveryResponse {
                status,
                headers: Default::default(),
                body: Default::default(),
            })
        };
        assert_eq!(Verdict::of(&answer(204)), Verdict::Delivered);
        assert_eq!(Verdict::of(&answer(500)), Verdict::Refused);
        assert_eq!(Verdict::of(&answer(302)), Verdict::Refused);
        assert_eq!(
            Verdict::of(&Err(TransportError::Timeout)),
            Verdict::Unreachable
        );
        assert_eq!(
            Verdict::of(&Err(TransportError::Connect("refused".into()))),
            Verdict::Unreachable
        );
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
        gates.finish(&e.id, Verdict::Delivered, None, Timestamp::EPOCH, now);
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

    /// 20 % of answers are 500s, at random, in waves of 4 concurrent requests (the initial
    /// limit): with the default settings the circuit never opens, although the
    /// same outcomes hold runs of five failures in a row (which opened it before).
    #[test]
    fn twenty_percent_random_errors_never_open_the_circuit() {
        let mut longest_run = 0;
        for seed in 0..20 {
            let gates = defaults();
            let e = ep();
            let mut rng = StdRng::seed_from_u64(seed);
            let t0 = Instant::now();
            let (mut failed, mut run) = (0, 0);
            for wave in 0..1000 / 4 {
                let now = ms(t0, 20 * wave);
                let n = 4;
                for _ in 0..n {
                    assert_eq!(gates.admit(&e, now), Admit::Go, "seed {seed}");
                }
                for i in 0..n {
                    let v = if rng.gen_bool(0.2) {
                        failed += 1;
                        run += 1;
                        longest_run = longest_run.max(run);
                        Verdict::Refused
                    } else {
                        run = 0;
                        Verdict::Delivered
                    };
                    let at = Timestamp::from_millis((20 * wave) as i64);
                    let health = gates.finish(&e.id, v, None, at, ms(now, 1));
                    assert!(
                        !matches!(health, Health::Failing { hold: Some(_), .. }),
                        "seed {seed}, wave {wave}, request {i}: the circuit opened"
                    );
                }
                assert!(!gates.is_failing(&e.id), "seed {seed}");
            }
            assert!(
                (150..=250).contains(&failed),
                "seed {seed}: {failed} of 1000"
            );
        }
        assert!(
            longest_run >= 5,
            "the outcomes hold runs of failures that a streak rule would trip on ({longest_run})"
        );
    }

    /// `n` requests admitted at `now` (they must be), answered `v` after `elapsed` each.
    fn wave(gates: &Gates, e: &Endpoint, n: u32, v: Verdict, elapsed: Duration, now: Instant) {
        for i in 0..n {
            assert_eq!(gates.admit(e, now), Admit::Go, "request {i} of {n}");
        }
        for _ in 0..n {
            let pace = Pace {
                elapsed,
                went_slow: false,
            };
            gates.finish_paced(&e.id, v, None, Timestamp::EPOCH, now, pace);
        }
    }

    #[test]
    fn the_limit_grows_with_fast_answers_and_halves_on_slow_ones() {
        let gates = defaults();
        let e = ep();
        let t0 = Instant::now();
        let fast = Duration::from_millis(5);
        assert_eq!(gates.admit(&e, t0), Admit::Go);
        gates.finish(&e.id, Verdict::Delivered, None, Timestamp::EPOCH, t0);
        assert_eq!(gates.limit(&e.id), Some(INITIAL_LIMIT));
        // Full waves of fast answers: +1 per `limit` answers, up to the ceiling of 64.
        for n in 0..200 {
            let limit = gates.limit(&e.id).unwrap();
            wave(&gates, &e, limit, Verdict::Delivered, fast, ms(t0, n));
        }
        assert_eq!(gates.limit(&e.id), Some(64), "the default ceiling");
        // Answers that use less than half the limit do not grow it.
        let gates = defaults();
        for n in 0..200 {
            wave(&gates, &e, 1, Verdict::Delivered, fast, ms(t0, n));
        }
        assert_eq!(gates.limit(&e.id), Some(INITIAL_LIMIT));
        // A slow answer (over a third of the 15 s timeout) or no answer halves it.
        let gates = defaults();
        for n in 0..100 {
            let limit = gates.limit(&e.id).unwrap_or(INITIAL_LIMIT);
            wave(&gates, &e, limit, Verdict::Delivered, fast, ms(t0, n));
        }
        let grown = gates.limit(&e.id).unwrap();
        assert!(grown > 16, "{grown}");
        wave(
            &gates,
            &e,
            1,
            Verdict::Delivered,
            Duration::from_secs(6),
            ms(t0, 200),
        );
        assert_eq!(gates.limit(&e.id), Some(grown / 2));
        wave(&gates, &e, 1, Verdict::Unreachable, fast, ms(t0, 201));
        assert_eq!(gates.limit(&e.id), Some(grown / 4));
        // An answered error neither grows nor shrinks it.
        wave(&gates, &e, 2, Verdict::Refused, fast, ms(t0, 202));
        assert_eq!(gates.limit(&e.id), Some(grown / 4));
        // `maxConcurrency` caps it.
        let mut capped = e.clone();
        capped.max_concurrency = Some(2);
        assert_eq!(gates.admit(&capped, ms(t0, 300)), Admit::Go);
        assert_eq!(gates.admit(&capped, ms(t0, 300)), Admit::Go);
        assert_eq!(gates.admit(&capped, ms(t0, 300)), Admit::Wait(None));
        assert_eq!(gates.limit(&e.id), Some(2));
        // An endpoint with a `maxConcurrency` starts at it.
        let declared = Endpoint {
            id: EndpointId::generate(),
            max_concurrency: Some(10),
            ..ep()
        };
        for _ in 0..10 {
            assert_eq!(gates.admit(&declared, ms(t0, 400)), Admit::Go);
        }
        assert_eq!(gates.admit(&declared, ms(t0, 400)), Admit::Wait(None));
    }

    #[test]
    fn an_endpoint_with_a_slow_request_gets_no_other_until_it_ends() {
        let gates = defaults();
        let e = ep();
        let t0 = Instant::now();
        for _ in 0..INITIAL_LIMIT {
            assert_eq!(gates.admit(&e, t0), Admit::Go);
        }
        gates.went_slow(&e.id);
        // Three requests end fast: the one in the slow lane still holds the endpoint.
        for _ in 0..3 {
            gates.finish(&e.id, Verdict::Delivered, None, Timestamp::EPOCH, t0);
        }
        assert_eq!(gates.admit(&e, t0), Admit::Wait(None));
        assert_eq!(gates.blocked(t0).0, vec![e.id.clone()]);
        let pace = Pace {
            elapsed: Duration::from_secs(15),
            went_slow: true,
        };
        gates.finish_paced(
            &e.id,
            Verdict::Unreachable,
            None,
            Timestamp::EPOCH,
            t0,
            pace,
        );
        assert_eq!(gates.limit(&e.id), Some(INITIAL_LIMIT / 2), "halved once");
        assert_eq!(gates.admit(&e, t0), Admit::Go);
        assert!(gates.blocked(t0).0.is_empty());
    }

    #[test]
    fn an_endpoint_failing_every_attempt_opens_after_min_calls() {
        for v in [Verdict::Unreachable, Verdict::Refused] {
            let gates = defaults();
            let e = ep();
            let t0 = Instant::now();
            for n in 0..4 {
                assert_eq!(attempt(&gates, &e, v, ms(t0, n)), None, "{v:?} {n}");
            }
            let until = ms(t0, 4) + Duration::from_secs(5);
            assert_eq!(attempt(&gates, &e, v, ms(t0, 4)), Some(until), "{v:?}");
            assert_eq!(gates.admit(&e, ms(t0, 5)), Admit::Wait(Some(until)));
            assert!(gates.is_failing(&e.id));
        }
    }

    /// After a healthy stretch the window is full of successes: no answer at all opens the
    /// circuit once half the window failed, answered errors once all of it did.
    #[test]
    fn a_healthy_endpoint_that_dies_opens_within_one_window() {
        for (v, opens_at) in [(Verdict::Unreachable, 5), (Verdict::Refused, 10)] {
            let gates = defaults();
            let e = ep();
            let t0 = Instant::now();
            for n in 0..50 {
                assert_eq!(attempt(&gates, &e, Verdict::Delivered, ms(t0, n)), None);
            }
            for n in 1..opens_at {
                assert_eq!(attempt(&gates, &e, v, ms(t0, 100 + n)), None, "{v:?} {n}");
            }
            assert!(
                attempt(&gates, &e, v, ms(t0, 200)).is_some(),
                "{v:?}: failure {opens_at} opens"
            );
        }
    }

    #[test]
    fn no_answer_weighs_a_whole_failure_and_an_error_half() {
        let gates = defaults();
        let e = ep();
        let t0 = Instant::now();
        for n in 0..10 {
            attempt(&gates, &e, Verdict::Delivered, ms(t0, n));
        }
        // The window of 10: four successes, 3 × 1 + 3 × ½ = 4.5 failures: below half.
        use Verdict::{Refused as R, Unreachable as U};
        for (n, v) in [U, R, U, R, U, R].into_iter().enumerate() {
            assert_eq!(attempt(&gates, &e, v, ms(t0, 20 + n as u64)), None);
        }
        // One more error: 3 × 1 + 4 × ½ = 5 failures of 10.
        assert!(attempt(&gates, &e, R, ms(t0, 30)).is_some());
    }

    #[test]
    fn a_min_calls_above_the_largest_window_turns_the_breaker_off() {
        let gates = Gates::new(GateConfig {
            min_calls: 1000,
            ..cfg()
        });
        let e = ep();
        let t0 = Instant::now();
        for n in 0..500 {
            assert_eq!(attempt(&gates, &e, Verdict::Unreachable, ms(t0, n)), None);
        }
    }

    #[test]
    fn circuit_opens_half_opens_with_one_probe_and_backs_off() {
        let gates = Gates::new(cfg());
        let t0 = Instant::now();
        let e = ep();
        let at = Timestamp::from_millis(0);
        for _ in 0..3 {
            assert_eq!(gates.admit(&e, t0), Admit::Go);
            gates.finish(&e.id, Verdict::Refused, None, at, t0);
        }
        let open_until = t0 + Duration::from_secs(10);
        assert_eq!(gates.admit(&e, t0), Admit::Wait(Some(open_until)));
        // Half-open: one probe only.
        assert_eq!(gates.admit(&e, open_until), Admit::Go);
        assert_eq!(gates.admit(&e, open_until), Admit::Wait(None));
        // The probe fails: open again for twice as long.
        gates.finish(&e.id, Verdict::Unreachable, None, at, open_until);
        assert_eq!(
            gates.admit(&e, open_until),
            Admit::Wait(Some(open_until + Duration::from_secs(20)))
        );
        // A successful probe closes it.
        let later = open_until + Duration::from_secs(20);
        assert_eq!(gates.admit(&e, later), Admit::Go);
        gates.finish(&e.id, Verdict::Delivered, None, at, later);
        assert!(!gates.is_failing(&e.id));
        assert_eq!(gates.admit(&e, later), Admit::Go);
        assert_eq!(gates.admit(&e, later), Admit::Go);
    }

    /// Recovery closes the circuit with an empty window and the first cool-down again.
    #[test]
    fn recovery_closes_and_judges_afresh() {
        let gates = Gates::new(cfg());
        let t0 = Instant::now();
        let e = ep();
        for n in 0..3 {
            attempt(&gates, &e, Verdict::Unreachable, ms(t0, n));
        }
        // Two failed probes: the cool-down is at 40 s.
        let mut t = ms(t0, 2) + Duration::from_secs(10);
        for cooldown in [20, 40] {
            let until = attempt(&gates, &e, Verdict::Unreachable, t).unwrap();
            assert_eq!(until, t + Duration::from_secs(cooldown));
            t = until;
        }
        assert_eq!(attempt(&gates, &e, Verdict::Delivered, t), None);
        assert!(!gates.is_failing(&e.id));
        // Closed: requests go again (few at a time: the time-outs halved the limit to 1, the
        // probe's success added one), and the window starts empty.
        assert_eq!(gates.limit(&e.id), Some(2));
        for n in 0..4 {
            assert_eq!(attempt(&gates, &e, Verdict::Delivered, ms(t, n)), None);
        }
        for n in 0..2 {
            assert_eq!(
                attempt(&gates, &e, Verdict::Unreachable, ms(t, 10 + n)),
                None
            );
        }
        // The window of 6 now holds three successes and three failures: half failed.
        assert_eq!(
            attempt(&gates, &e, Verdict::Unreachable, ms(t, 20)),
            Some(ms(t, 20) + Duration::from_secs(10)),
            "half the window failed: open again, for the first cool-down"
        );
    }

    #[test]
    fn requests_in_flight_when_it_opens_do_not_extend_the_cooldown() {
        let gates = Gates::new(cfg());
        let t0 = Instant::now();
        let e = ep();
        for _ in 0..4 {
            assert_eq!(gates.admit(&e, t0), Admit::Go);
        }
        for n in 0..3 {
            gates.finish(&e.id, Verdict::Refused, None, Timestamp::EPOCH, ms(t0, n));
        }
        let until = ms(t0, 2) + Duration::from_secs(10);
        assert_eq!(gates.admit(&e, ms(t0, 3)), Admit::Wait(Some(until)));
        let straggler = gates.finish(
            &e.id,
            Verdict::Unreachable,
            None,
            Timestamp::EPOCH,
            ms(t0, 5),
        );
        assert!(
            matches!(straggler, Health::Failing { hold: None, .. }),
            "{straggler:?}"
        );
        assert_eq!(gates.admit(&e, until), Admit::Go, "the probe goes on time");
    }

    #[test]
    fn a_quiet_gate_is_forgotten() {
        let gates = Gates::new(cfg());
        let t0 = Instant::now();
        let e = ep();
        for n in 0..2 {
            attempt(&gates, &e, Verdict::Unreachable, ms(t0, n));
        }
        attempt(&gates, &e, Verdict::Delivered, ms(t0, 2));
        gates.blocked(ms(t0, 2) + FORGET_AFTER - Duration::from_millis(1));
        assert_eq!(gates.lock().len(), 1, "kept while recent");
        gates.blocked(ms(t0, 2) + FORGET_AFTER);
        assert_eq!(gates.lock().len(), 0, "dropped once quiet");
    }

    #[test]
    fn retry_after_pauses_and_the_failure_clock_runs_until_a_success() {
        let gates = Gates::new(cfg());
        let t0 = Instant::now();
        let e = ep();
        assert_eq!(gates.admit(&e, t0), Admit::Go);
        let first = gates.finish(
            &e.id,
            Verdict::Refused,
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
        let later = gates.finish(
            &e.id,
            Verdict::Refused,
            None,
            Timestamp::from_millis(3_600_000),
            t1,
        );
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
            gates.finish(
                &e.id,
                Verdict::Refused,
                None,
                Timestamp::from_millis(3_650_000),
                t2
            ),
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
            gates.finish(
                &e.id,
                Verdict::Delivered,
                None,
                Timestamp::from_millis(3_700_000),
                t2
            ),
            Health::Delivered { was_failing: true }
        );
        assert_eq!(gates.admit(&e, t2), Admit::Go);
        assert_eq!(
            gates.finish(
                &e.id,
                Verdict::Refused,
                None,
                Timestamp::from_millis(3_800_000),
                t2
            ),
            Health::Failing {
                first: true,
                since: Timestamp::from_millis(3_800_000),
                hold: None,
            },
            "a success stopped the clock"
        );
    }
}
