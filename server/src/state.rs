//! Shared state of the API handlers.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::dispatcher::Dispatcher;
use hookline_core::store::Store;

/// Limits and policies the API enforces.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted event request body in bytes (default 256 KiB).
    pub max_event_bytes: usize,
    /// Whether endpoint URLs may be plain `http`.
    pub allow_http: bool,
    /// How long a rotated-out secret keeps signing (default 24 h).
    pub rotation_overlap: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_event_bytes: 256 * 1024,
            allow_http: false,
            rotation_overlap: Duration::from_secs(24 * 3600),
        }
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine (publishing wakes it).
    pub dispatcher: Dispatcher,
    /// API limits.
    pub api: Arc<ApiConfig>,
    /// Short-lived caches of keys, accounts and event types.
    pub cache: Arc<crate::cache::Caches>,
}

impl AppState {
    /// State over a dispatcher.
    pub fn new(dispatcher: Dispatcher, api: ApiConfig) -> Self {
        Self {
            dispatcher,
            api: Arc::new(api),
            cache: Arc::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.dispatcher.store()
    }
}
