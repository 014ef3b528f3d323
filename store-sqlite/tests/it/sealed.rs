//! Encryption at rest over SQLite: the conformance suite through a
//! [`SealedStore`](hookline_core::sealing::SealedStore) with event data sealed too, so every
//! sealed value makes the round trip through real rows.

use std::sync::Arc;

use hookline_core::sealing::{Keyring, SealedStore, SealingOptions};
use hookline_core::store::Store;
use hookline_store_sqlite::{SqliteConfig, SqliteStore};

async fn fresh() -> Arc<dyn Store> {
    let inner: Arc<dyn Store> = Arc::new(
        SqliteStore::connect("sqlite::memory:", SqliteConfig::default())
            .await
            .expect("in-memory SQLite"),
    );
    let (keyring, _) = Keyring::generate("k1").expect("a key");
    let sealed = SealedStore::open(
        inner,
        Arc::new(keyring),
        SealingOptions::new().payloads(true),
    )
    .await
    .expect("open");
    Arc::new(sealed)
}

hookline_core::store_conformance!(fresh);
