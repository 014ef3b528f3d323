//! Integration tests of the Redis store against the Redis at `HOOKLINE_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`): the shared conformance suite, each case under its own random key
//! prefix that is deleted afterwards, plus Redis-specific behaviour.

mod support;

mod conformance {
    use std::sync::Arc;

    use hookline_core::store::Store;

    use crate::support::{Cleanup, fresh_store};

    async fn fresh() -> (Arc<dyn Store>, Cleanup) {
        let (store, cleanup) = fresh_store(Default::default()).await;
        (Arc::new(store), cleanup)
    }

    hookline_core::store_conformance!(fresh);
}

mod redis_specific;
mod tls;
mod tls_server;
