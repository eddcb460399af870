//! The parsed-lock cache (`orchestrator.md` §5.2): least recently used, bounded by
//! `KICI_LOCKFILE_CACHE_MAX` entries and `KICI_LOCKFILE_CACHE_TTL_MS` of age, keyed
//! `<provider>:<repo>:<sha>`.
//!
//! Only full commit ids are keys (a branch name moves; a commit's lock never changes), and
//! only successfully parsed locks are stored: "no lock", corrupt locks and fetch errors are
//! always asked again, so a transient error is never remembered as an answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kici_engine::lock::LockFile;

struct Entry {
    lock: Arc<LockFile>,
    inserted: Instant,
    /// Recency stamp: higher is more recent.
    used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    clock: u64,
}

/// A bounded LRU of parsed locks. Eviction scans for the least recent entry, which at the
/// spec's 500 entries costs less than keeping a linked list in step.
pub struct LockCache {
    inner: Mutex<Inner>,
    max: usize,
    ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for LockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockCache")
            .field("max", &self.max)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl LockCache {
    /// `max = 0` disables caching.
    pub fn new(max: usize, ttl: Duration) -> LockCache {
        LockCache {
            inner: Mutex::new(Inner::default()),
            max,
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cache key, or `None` when `sha` is not a full commit id (never cached).
    pub fn key(provider: &str, repo: &str, sha: &str) -> Option<String> {
        kici_engine::provider::lock_cache_key(provider, repo, sha)
    }

    /// The cached lock, counting a hit or a miss; expired entries are dropped.
    pub fn get(&self, key: &str) -> Option<Arc<LockFile>> {
        let now = Instant::now();
        let found = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.clock += 1;
            let clock = inner.clock;
            match inner.entries.get_mut(key) {
                Some(entry) if now.duration_since(entry.inserted) < self.ttl => {
                    entry.used = clock;
                    Some(entry.lock.clone())
                }
                Some(_) => {
                    inner.entries.remove(key);
                    None
                }
                None => None,
            }
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn insert(&self, key: String, lock: Arc<LockFile>) {
        if self.max == 0 {
            return;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.clock += 1;
        let clock = inner.clock;
        if !inner.entries.contains_key(&key) && inner.entries.len() >= self.max {
            let ttl = self.ttl;
            inner
                .entries
                .retain(|_, e| now.duration_since(e.inserted) < ttl);
            if inner.entries.len() >= self.max
                && let Some(oldest) = inner
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(k, _)| k.clone())
            {
                inner.entries.remove(&oldest);
            }
        }
        inner.entries.insert(
            key,
            Entry {
                lock,
                inserted: now,
                used: clock,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that had to fetch.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> Arc<LockFile> {
        Arc::new(
            LockFile::from_json(
                r##"{"schemaVersion":29,"source":{"file":"a.ts","export":"#default"},"contentHash":"0000000000000000000000000000000000000000000000000000000000000000","workflows":[]}"##,
            )
            .expect("lock"),
        )
    }

    #[test]
    fn evicts_the_least_recently_used_and_expires() {
        let cache = LockCache::new(2, Duration::from_secs(60));
        cache.insert("a".into(), lock());
        cache.insert("b".into(), lock());
        assert!(cache.get("a").is_some());
        cache.insert("c".into(), lock());
        assert!(cache.get("b").is_none(), "b was least recently used");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        assert_eq!((cache.hits(), cache.misses()), (3, 1));

        let expiring = LockCache::new(2, Duration::ZERO);
        expiring.insert("a".into(), lock());
        assert!(expiring.get("a").is_none());
        assert!(LockCache::key("local", "a/b", "main").is_none());
    }
}
