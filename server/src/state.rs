//! Shared state of the API handlers.

use std::sync::Arc;

use hookline_core::dispatcher::Dispatcher;
use hookline_core::service::Hookline;
use hookline_core::store::Store;

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service façade every handler calls (its dispatcher runs the deliveries).
    pub hookline: Hookline,
    /// The dashboard's sessions, portal links and sign-in throttle (in memory).
    pub ui: Arc<crate::ui::session::Sessions>,
}

impl AppState {
    /// State over the façade.
    pub fn new(hookline: Hookline) -> Self {
        Self {
            hookline,
            ui: Arc::default(),
        }
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
