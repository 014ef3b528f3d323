//! Integration tests of the SQLite store: the shared conformance suite (on a fresh database file
//! per case, in memory, and in memory through the cached decorator) and durability across closing
//! and reopening a file.

mod cached;
mod group;
mod reopen;
mod sealed;

/// The conformance suite, each case on its own database file in its own temporary directory.
mod conformance_file {
    use std::sync::Arc;

    use hookline_core::store::Store;
    use hookline_store_sqlite::{SqliteConfig, SqliteStore};

    /// A fresh store; the directory (and the database) is removed when the case ends.
    async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let path = dir.path().join("hookline.db");
        let path = path.to_str().expect("temporary paths are UTF-8");
        let store = SqliteStore::connect(path, SqliteConfig::default())
            .await
            .expect("opening a fresh SQLite file");
        (Arc::new(store), dir)
    }

    hookline_core::store_conformance!(fresh);
}

/// The conformance suite on in-memory databases (one connection for reads and writes).
mod conformance_memory {
    use std::sync::Arc;

    use hookline_core::store::Store;
    use hookline_store_sqlite::{SqliteConfig, SqliteStore};

    async fn fresh() -> Arc<dyn Store> {
        let store = SqliteStore::connect("sqlite::memory:", SqliteConfig::default())
            .await
            .expect("opening an in-memory database");
        Arc::new(store)
    }

    hookline_core::store_conformance!(fresh);
}
