//! The store conformance suite judges [`MemoryStore`] as it judges every backend.
#![cfg(feature = "testkit")]

use std::sync::Arc;

use hookline_core::store::Store;
use hookline_core::testkit::MemoryStore;

async fn fresh() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

hookline_core::store_conformance!(fresh);

/// The suite judges [`MeteredStore`](hookline_core::metrics::MeteredStore) too: it passes
/// everything on unchanged.
mod metered {
    use super::*;
    use hookline_core::metrics::MeteredStore;

    async fn fresh() -> Arc<dyn Store> {
        Arc::new(MeteredStore::new(
            Arc::new(MemoryStore::new()) as Arc<dyn Store>
        ))
    }

    hookline_core::store_conformance!(fresh);
}
