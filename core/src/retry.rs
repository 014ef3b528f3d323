//! Retry policy: when to try a failed delivery again, and when to give up.

use std::fmt;
use std::time::Duration;

use rand::Rng as _;

use crate::transport::{DeliveryResponse, TransportError};

/// How one attempt went, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: the delivery succeeded.
    Delivered,
    /// Anything else: another status, a timeout, a connection or TLS error, a redirect.
    Failed {
        /// The receiver's `Retry-After` on a 429 or 503, if it sent one.
        retry_after: Option<Duration>,
    },
}

/// Classifies an attempt's result. Redirects are failures: they are never followed.
pub fn classify(result: &Result<DeliveryResponse, TransportError>) -> Outcome {
    match result {
        Ok(r) if (200..300).contains(&r.status) => Outcome::Delivered,
        Ok(r) if r.status == 429 || r.status == 503 => Outcome::Failed {
            retry_after: r
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(parse_retry_after),
        },
        _ => Outcome::Failed { retry_after: None },
    }
}

/// Parses `Retry-After` (delta-seconds or an HTTP date) into a delay from now.
fn parse_retry_after(v: &http::HeaderValue) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Decides the delay before the next attempt. Pure: no IO, no clock.
pub trait RetryPolicy: Send + Sync + fmt::Debug + 'static {
    /// The delay before the next attempt after `attempts_made` attempts (the last one had
    /// `outcome`), `since_first` after the delivery was created; `None` means give up.
    fn next_delay(
        &self,
        attempts_made: u32,
        since_first: Duration,
        outcome: &Outcome,
    ) -> Option<Duration>;
}

/// A schedule of delays with jitter, bounded by a window measured from the delivery's creation.
///
/// [`Schedule::default`] is the exponential default: first try at once, then about 5 s, 1 min,
/// 5 min, 30 min, 2 h, 5 h, 8 h, 8 h … until 24 h after the event, with ±10 % jitter.
/// [`Schedule::fixed`] replaces the delays with a list (no jitter) and gives up when the list
/// runs out. In both, the last try happens at the window's end, and a `Retry-After` longer than
/// the scheduled delay is honoured up to the largest delay of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    delays: Vec<Duration>,
    repeat_last: bool,
    window: Duration,
    jitter: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        let m = |n: u64| Duration::from_secs(60 * n);
        Self {
            delays: vec![
                Duration::from_secs(5),
                m(1),
                m(5),
                m(30),
                m(120),
                m(300),
                m(480),
            ],
            repeat_last: true,
            window: Duration::from_secs(24 * 3600),
            jitter: 0.1,
        }
    }
}

impl Schedule {
    /// Exactly these delays, then give up (still within the 24 h window).
    pub fn fixed(delays: Vec<Duration>) -> Self {
        Self {
            delays,
            repeat_last: false,
            window: Duration::from_secs(24 * 3600),
            jitter: 0.0,
        }
    }

    /// Replaces the window (default 24 h).
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Replaces the jitter fraction (0.0 to 0.5; default 0.1 for the exponential schedule).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 0.5);
        self
    }

    /// The delays before jitter.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// Parses a comma list of durations such as `1s,2s,5s` or `500ms,1m,1h`.
    pub fn parse_fixed(s: &str) -> Result<Self, InvalidSchedule> {
        let delays = s
            .split(',')
            .map(|p| parse_duration(p.trim()))
            .collect::<Option<Vec<_>>>();
        match delays {
            Some(d) if !d.is_empty() => Ok(Self::fixed(d)),
            _ => Err(InvalidSchedule),
        }
    }
}

/// A retry schedule that did not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("a retry schedule is a comma list of durations such as `1s,2s,5s` (units ms, s, m, h)")]
pub struct InvalidSchedule;

/// Parses `250ms`, `5s`, `1m`, `2h` or `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    })
}

impl RetryPolicy for Schedule {
    fn next_delay(
        &self,
        attempts_made: u32,
        since_first: Duration,
        outcome: &Outcome,
    ) -> Option<Duration> {
        if matches!(outcome, Outcome::Delivered) || since_first >= self.window {
            return None;
        }
        let idx = usize::try_from(attempts_made.saturating_sub(1)).unwrap_or(usize::MAX);
        let base = match self.delays.get(idx) {
            Some(d) => *d,
            None if self.repeat_last => *self.delays.last()?,
            None => return None,
        };
        let mut delay = if self.jitter > 0.0 {
            base.mul_f64(rand::thread_rng().gen_range(1.0 - self.jitter..=1.0 + self.jitter))
        } else {
            base
        };
        if let Outcome::Failed {
            retry_after: Some(ra),
        } = outcome
        {
            let cap = self.delays.iter().max().copied().unwrap_or(*ra);
            delay = delay.max((*ra).min(cap));
        }
        Some(delay.min(self.window - since_first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Outcome = Outcome::Failed { retry_after: None };

    #[test]
    fn default_schedule_follows_the_documented_steps() {
        let p = Schedule::default().with_jitter(0.0);
        let secs = |n, since| {
            p.next_delay(n, Duration::from_secs(since), &FAIL)
                .map(|d| d.as_secs())
        };
        let expected = [5, 60, 300, 1800, 7200, 18000, 28800, 28800];
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(
                secs(u32::try_from(i).unwrap() + 1, 0),
                Some(*e),
                "attempt {}",
                i + 1
            );
        }
        // Last try lands on the window's end, then give up.
        assert_eq!(secs(9, 86_000), Some(400));
        assert_eq!(secs(10, 86_400), None);
        assert_eq!(p.next_delay(1, Duration::ZERO, &Outcome::Delivered), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = Schedule::default();
        for _ in 0..200 {
            let d = p.next_delay(2, Duration::ZERO, &FAIL).unwrap();
            assert!(
                d >= Duration::from_secs(54) && d <= Duration::from_secs(66),
                "{d:?}"
            );
        }
    }

    #[test]
    fn fixed_schedule_runs_out() {
        let p = Schedule::parse_fixed("1s, 2s,500ms").unwrap();
        let d = |n| p.next_delay(n, Duration::ZERO, &FAIL);
        assert_eq!(d(1), Some(Duration::from_secs(1)));
        assert_eq!(d(3), Some(Duration::from_millis(500)));
        assert_eq!(d(4), None);
        assert!(Schedule::parse_fixed("").is_err());
        assert!(Schedule::parse_fixed("1s,soon").is_err());
        assert!(Schedule::parse_fixed("5x").is_err());
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let p = Schedule::fixed(vec![Duration::from_secs(1), Duration::from_secs(10)]);
        let ra = |secs| Outcome::Failed {
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            p.next_delay(1, Duration::ZERO, &ra(4)),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            p.next_delay(1, Duration::ZERO, &ra(3600)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            p.next_delay(2, Duration::ZERO, &ra(1)),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn classify_maps_statuses_and_errors() {
        let resp = |status, ra: Option<&str>| {
            let mut headers = http::HeaderMap::new();
            if let Some(v) = ra {
                headers.insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_str(v).unwrap(),
                );
            }
            Ok(DeliveryResponse {
                status,
                headers,
                body: bytes::Bytes::new(),
            })
        };
        assert_eq!(classify(&resp(204, None)), Outcome::Delivered);
        assert_eq!(classify(&resp(301, None)), FAIL);
        assert_eq!(classify(&resp(500, Some("7"))), FAIL);
        assert_eq!(
            classify(&resp(429, Some("7"))),
            Outcome::Failed {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(classify(&resp(503, Some("soon"))), FAIL);
        assert_eq!(classify(&Err(TransportError::Timeout)), FAIL);
    }
}
