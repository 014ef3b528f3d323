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

/// The suite judges [`SealedStore`](hookline_core::sealing::SealedStore) too, payloads sealed:
/// what it seals on the way in it opens on the way out, byte for byte.
mod sealed {
    use super::*;
    use hookline_core::sealing::{Keyring, SealedStore, SealingOptions};

    async fn fresh() -> Arc<dyn Store> {
        let (keyring, _) = Keyring::generate("k1").expect("keyring");
        let store = SealedStore::open(
            Arc::new(MemoryStore::new()) as Arc<dyn Store>,
            Arc::new(keyring),
            SealingOptions::new().payloads(true),
        )
        .await
        .expect("open");
        Arc::new(store)
    }

    hookline_core::store_conformance!(fresh);
}
