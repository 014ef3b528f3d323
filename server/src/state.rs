//! Shared state of the API handlers.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::dispatcher::Dispatcher;
use hookline_core::service::Hookline;
use hookline_core::store::Store;

use crate::config::RateLimit;

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service façade every handler calls (its dispatcher runs the deliveries).
    pub hookline: Hookline,
    /// The dashboard's sessions, portal links and sign-in throttle (in memory).
    pub ui: Arc<crate::ui::session::Sessions>,
    /// The request limits the router applies.
    pub limits: RequestLimits,
}

/// Limits the router applies to every request (the connection-level ones are in
/// [`crate::door`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestLimits {
    /// Per-key request rate on `/v1` (`None`: unlimited).
    pub rate_limit: Option<RateLimit>,
    /// How long the server waits for each part of a request body.
    pub body_read_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        let d = crate::config::ServerConfig::default();
        Self {
            rate_limit: d.rate_limit,
            body_read_timeout: d.body_read_timeout,
        }
    }
}

impl RequestLimits {
    /// These limits with `rate` per key (`None`: unlimited).
    pub fn with_rate_limit(mut self, rate: Option<RateLimit>) -> Self {
        self.rate_limit = rate;
        self
    }

    /// These limits with `timeout` for each part of a request body.
    pub fn with_body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// The limits of `config`.
    pub fn from_config(config: &crate::config::ServerConfig) -> Self {
        Self {
            rate_limit: config.rate_limit,
            body_read_timeout: config.body_read_timeout,
        }
    }
}

impl AppState {
    /// State over the façade.
    pub fn new(hookline: Hookline) -> Self {
        Self {
            hookline,
            ui: Arc::default(),
            limits: RequestLimits::default(),
        }
    }

    /// The same state with `limits`.
    pub fn with_limits(mut self, limits: RequestLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The engine.
    pub fn dispatcher(&self) -> &Dispatcher {
        self.hookline.dispatcher()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.hookline.store()
    }
}
