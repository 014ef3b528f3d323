//! Short-lived caches for what every ingest request reads: API keys, accounts and event types.
//!
//! Entries live for a few seconds. Changes made through this process invalidate them at once;
//! changes made through another process sharing the store are seen within the time to live.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hookline_core::model::{Account, EventType, Role};
use hookline_core::{AccountId, EventTypeName};

/// Entries at most per cache; a full cache starts over.
const CAPACITY: usize = 10_000;

/// A map whose entries expire.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache whose entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value for `k`, if cached and fresh.
    pub fn get(&self, k: &K) -> Option<V> {
        let map = self.lock();
        map.get(k)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Caches `v` for `k`.
    pub fn put(&self, k: K, v: V) {
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(k, (Instant::now(), v));
    }

    /// Forgets `k`.
    pub fn invalidate(&self, k: &K) {
        self.lock().remove(k);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// The caches of one server process.
#[derive(Debug)]
pub struct Caches {
    /// Key hash → who it speaks for (only keys that exist).
    pub keys: TtlCache<String, Role>,
    /// Account id → account (only accounts that exist).
    pub accounts: TtlCache<AccountId, Account>,
    /// Event type name → catalog entry (only entries that exist).
    pub event_types: TtlCache<EventTypeName, EventType>,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            keys: TtlCache::new(Duration::from_secs(10)),
            accounts: TtlCache::new(Duration::from_secs(2)),
            event_types: TtlCache::new(Duration::from_secs(2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_invalidate() {
        let c: TtlCache<&str, u32> = TtlCache::new(Duration::from_millis(50));
        c.put("a", 1);
        assert_eq!(c.get(&"a"), Some(1));
        c.invalidate(&"a");
        assert_eq!(c.get(&"a"), None);
        c.put("b", 2);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&"b"), None, "expired");
    }
}
