//! Integration tests of the PostgreSQL store: the shared conformance suite, each case in a fresh
//! schema, plus what only a shared database shows (several pools claiming at once, failures
//! classified as `Unavailable`).
//!
//! The server comes from `HOOKLINE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `cargo xtask services start` provides one.

mod isolation;
mod shared;

/// The conformance suite, each case in its own `t_<random>` schema, dropped when it ends.
mod conformance {
    use std::sync::Arc;

    use hookline_core::store::Store;

    use crate::isolation::{FreshSchema, fresh_store};

    async fn fresh() -> (Arc<dyn Store>, FreshSchema) {
        let (store, schema) = fresh_store().await;
        (Arc::new(store), schema)
    }

    hookline_core::store_conformance!(fresh);
}

mod tls;
mod tls_cluster;
