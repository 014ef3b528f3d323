//! A store under a fresh random prefix, and a guard that deletes its keys.

use hookline_store_redis::{RedisConfig, RedisStore};

/// The Redis the tests use.
pub(crate) fn redis_url() -> String {
    hookline_core::testkit::service_url("HOOKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

/// Deletes every key under `prefix` when dropped (also when the test panics).
#[derive(Debug)]
pub(crate) struct Cleanup {
    url: String,
    pub(crate) prefix: String,
}

impl Cleanup {
    /// A guard for keys under `prefix` on the test Redis.
    pub(crate) fn for_prefix(prefix: &str) -> Self {
        Self {
            url: redis_url(),
            prefix: prefix.to_owned(),
        }
    }

    /// The keys under the prefix now.
    pub(crate) fn keys(&self) -> Vec<String> {
        let client = redis::Client::open(self.url.as_str()).expect("valid Redis URL");
        let mut conn = client.get_connection().expect("connecting to Redis");
        let pattern = format!("{}*", self.prefix);
        let iter: redis::Iter<'_, String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)
            .expect("SCAN");
        iter.map(|k| k.expect("key")).collect()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let keys = self.keys();
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

/// A store under a fresh prefix `hl_t_<random>:`; fails with instructions when Redis is down.
pub(crate) async fn fresh_store(cfg: RedisConfig) -> (RedisStore, Cleanup) {
    let url = redis_url();
    let prefix = format!("hl_t_{:016x}:", rand::random::<u64>());
    let store = RedisStore::connect(&url, cfg.prefix(prefix.clone()))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Redis is not reachable at {url} ({e}): run the tests with `cargo xtask test`, start \
                 `redis-server --port 6379`, or set HOOKLINE_TEST_REDIS_URL"
            )
        });
    (store, Cleanup { url, prefix })
}
