//! One fresh schema per test on the test server, dropped afterwards.

use std::time::Duration;

use hookline_store_postgres::{PgConfig, PgStore};
use rand::Rng as _;
use sqlx::Connection as _;

/// The variable naming the test server. Never `DATABASE_URL`: these tests drop schemas.
pub(crate) const URL_VAR: &str = "HOOKLINE_TEST_POSTGRES_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The test server's URL.
pub(crate) fn url() -> String {
    hookline_core::testkit::service_url(URL_VAR, DEFAULT_URL)
}

/// Connects once to the test server, failing the test with instructions when it is not there.
pub(crate) async fn admin() -> sqlx::PgConnection {
    let url = url();
    let attempt = tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&url));
    match attempt.await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!("{}", unreachable_message(&url, &e.to_string())),
        Err(_) => panic!("{}", unreachable_message(&url, "no answer within 10 s")),
    }
}

fn unreachable_message(url: &str, why: &str) -> String {
    format!(
        "PostgreSQL is not reachable at {url} ({why}).\n\
         These tests need a PostgreSQL server (13 or newer):\n\
         * run them with `cargo xtask test --store postgres`, or start one with \
           `cargo xtask services start` (it finds or starts a local server and prints its URL);\n\
         * or install one (`apt-get install postgresql`) and start it;\n\
         * or point {URL_VAR} at a server where the tests may create and drop schemas."
    )
}

/// A schema that is dropped (with everything in it) when this guard is dropped, also when the
/// test panics.
#[derive(Debug)]
pub(crate) struct FreshSchema {
    pub(crate) name: String,
}

impl FreshSchema {
    /// A new random schema name (`t_` + 16 hex digits); the schema itself is created by
    /// `PgStore::connect`.
    pub(crate) fn new() -> Self {
        let n: u64 = rand::thread_rng().r#gen();
        Self {
            name: format!("t_{n:016x}"),
        }
    }
}

impl Drop for FreshSchema {
    fn drop(&mut self) {
        // Drop may run inside a runtime (and during a panic): do the async work on a thread of
        // its own with a runtime of its own, and wait for it.
        let name = std::mem::take(&mut self.name);
        let url = url();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test schema");
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop a test schema: {e}");
        }
    }
}

/// A store in a fresh schema, with a small pool (tests run in parallel on one server).
pub(crate) async fn fresh_store() -> (PgStore, FreshSchema) {
    fresh_store_with(PgConfig::default().max_connections(4)).await
}

/// A store in a fresh schema with `cfg` (its schema is replaced).
pub(crate) async fn fresh_store_with(cfg: PgConfig) -> (PgStore, FreshSchema) {
    drop(admin().await); // fails with instructions when the server is missing
    let schema = FreshSchema::new();
    let store = PgStore::connect(&url(), cfg.schema(schema.name.clone()))
        .await
        .expect("connecting a fresh store");
    (store, schema)
}
