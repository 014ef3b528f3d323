//! [`TokioClock`]: wall-clock timestamps that follow tokio's clock, for tests with paused time.

use crate::time::{Clock, Timestamp};

/// A [`Clock`] that reads tokio's clock: it says `base` when created and moves exactly as
/// [`tokio::time::Instant`] does. Under paused time (`#[tokio::test(start_paused = true)]`,
/// `tokio::time::pause`) it stands still until tokio's time is advanced or auto-advances to
/// the next timer, so code that sleeps with tokio and stamps with the [`Clock`] (such as the
/// [`Dispatcher`](crate::dispatcher::Dispatcher)) sees one consistent, deterministic time, and
/// hours of retries pass in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `base` now. Must be called inside a tokio runtime when time is paused.
    pub fn new(base: Timestamp) -> Self {
        Self {
            base,
            start: tokio::time::Instant::now(),
        }
    }

    /// The timestamp `base` had become at tokio instant `at` (earlier instants saturate to
    /// `base`).
    pub fn at(&self, at: tokio::time::Instant) -> Timestamp {
        self.base.add(at.saturating_duration_since(self.start))
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.at(tokio::time::Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn moves_only_with_tokio_time() {
        let base = Timestamp::from_millis(1_000_000);
        let clock = TokioClock::new(base);
        assert_eq!(clock.now(), base);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), base.add(Duration::from_secs(90)));
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(clock.now().as_millis(), 1_090_250);
    }
}
