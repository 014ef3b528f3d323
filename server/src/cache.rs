//! Short-lived caches for what every ingest request reads: API keys, accounts, event types and
//! the endpoints subscribed to an event.
//!
//! Entries live for a few seconds (subscribers: one second). Changes made through this process
//! invalidate them at once; changes made through another process sharing the store are seen
//! within the time to live. For subscribers that means: for up to a second after another process
//! creates, enables or widens an endpoint, this process can still accept events without a
//! delivery to it; after another process disables or removes one, this process can still create
//! deliveries to it (they stay pending while it is disabled, like those created before, and are
//! never claimed once it is removed). An endpoint disabled automatically by this process's
//! dispatcher is likewise seen within the time to live.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hookline_core::model::{Account, EventType, Role};
use hookline_core::{AccountId, EndpointId, EventTypeName, SiteId};

/// Entries at most per cache; a full cache starts over.
const CAPACITY: usize = 10_000;

/// A map whose entries expire.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    map: Mutex<HashMap<K, (Instant, V)>>,
    /// Bumped by [`clear`](Self::clear), so a value read before a change is not cached after it.
    generation: AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache whose entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
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

    /// The current generation: take it before reading the value from the store, and cache the
    /// value with [`put_if_current`](Self::put_if_current).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches `v` for `k` unless the cache was cleared since `generation` was taken.
    pub fn put_if_current(&self, generation: u64, k: K, v: V) {
        let mut map = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
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
        let mut map = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
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
    /// (account, site, event type) → the enabled endpoints taking such an event. Cleared by
    /// every endpoint or account change made through this process.
    pub subscribers: TtlCache<SubscriberKey, Arc<[EndpointId]>>,
}

/// What the subscribers of an event depend on.
pub type SubscriberKey = (AccountId, Option<SiteId>, EventTypeName);

impl Default for Caches {
    fn default() -> Self {
        Self {
            keys: TtlCache::new(Duration::from_secs(10)),
            accounts: TtlCache::new(Duration::from_secs(2)),
            event_types: TtlCache::new(Duration::from_secs(2)),
            subscribers: TtlCache::new(Duration::from_secs(1)),
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
        let generation = c.generation();
        c.clear();
        c.put_if_current(generation, "a", 3);
        assert_eq!(
            c.get(&"a"),
            None,
            "read before the change, not cached after it"
        );
        c.put_if_current(c.generation(), "a", 4);
        assert_eq!(c.get(&"a"), Some(4));
        c.put("b", 2);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&"b"), None, "expired");
    }
}
