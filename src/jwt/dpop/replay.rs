//! The `jti` replay cache: each accepted proof is remembered for as long as its `iat` keeps it
//! acceptable, in memory (bounded, refusing when full) or in Redis (shared by replicas).

use std::{
    collections::{HashSet, VecDeque},
    fmt,
    sync::Mutex,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use tower::BoxError;

/// What remembering a proof's key said.
pub(crate) enum Remembered {
    /// The key was new; it is remembered now.
    Fresh,
    /// The key was already remembered: a replay.
    Replayed,
    /// The cache cannot take the key (the memory cache is full): refuse, never forget.
    Full,
    /// The answer comes from a store: `Ok(true)` fresh, `Ok(false)` replayed, `Err` unavailable.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Later(BoxFuture<'static, Result<bool, BoxError>>),
}

/// Remembers the keys of accepted proofs. Implementations must remember a key for at least
/// `ttl` and answer [`Remembered::Replayed`] for it during that time.
pub(crate) trait ReplayCache: Send + Sync + fmt::Debug + 'static {
    /// Remembers `key` for `ttl`, atomically with the check that it was not remembered yet.
    fn remember(&self, key: [u8; 16], ttl: Duration) -> Remembered;
}

/// The in-memory cache: a set of keys and a queue of their expiries, behind one lock. A full
/// cache refuses new keys rather than evicting live ones (an evicted key could be replayed).
pub(crate) struct MemoryReplayCache {
    capacity: usize,
    started: Instant,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    keys: HashSet<[u8; 16]>,
    /// Keys with their expiry (milliseconds since `started`), in insertion order.
    expiries: VecDeque<(u64, [u8; 16])>,
}

impl MemoryReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            started: Instant::now(),
            inner: Mutex::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().unwrap().keys.len()
    }
}

impl ReplayCache for MemoryReplayCache {
    fn remember(&self, key: [u8; 16], ttl: Duration) -> Remembered {
        let now = self.now_ms();
        let expiry = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let mut entries = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Expiries are nearly in insertion order (each is `iat` + window): the front holds the
        // oldest. A later entry that expired behind a live one waits for it; the capacity
        // bounds them all.
        while let Some(&(front, old)) = entries.expiries.front() {
            if front > now {
                break;
            }
            entries.expiries.pop_front();
            entries.keys.remove(&old);
        }
        if entries.keys.contains(&key) {
            return Remembered::Replayed;
        }
        if entries.keys.len() >= self.capacity {
            return Remembered::Full;
        }
        entries.keys.insert(key);
        entries.expiries.push_back((expiry, key));
        Remembered::Fresh
    }
}

impl fmt::Debug for MemoryReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// The Redis cache: one `SET key 1 NX PX ttl` per accepted proof, so replicas share it. The
/// key is the store's prefix, `dpop:`, and the proof's key in hex; it expires with the window.
#[cfg(feature = "redis")]
pub(crate) struct RedisReplayCache {
    conn: crate::store::RedisConnection,
    prefix: String,
    timeout: Duration,
}

#[cfg(feature = "redis")]
impl RedisReplayCache {
    pub(crate) fn new(store: &crate::store::RedisStore) -> Self {
        Self {
            conn: store.connection(),
            prefix: format!("{}dpop:", store.prefix()),
            timeout: store.timeout(),
        }
    }
}

#[cfg(feature = "redis")]
impl ReplayCache for RedisReplayCache {
    fn remember(&self, key: [u8; 16], ttl: Duration) -> Remembered {
        use std::fmt::Write;
        let mut name = String::with_capacity(self.prefix.len() + 32);
        name.push_str(&self.prefix);
        for byte in key {
            let _ = write!(name, "{byte:02x}");
        }
        let mut conn = self.conn.clone();
        let timeout = self.timeout;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Remembered::Later(Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            let set = cmd
                .arg(&name)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<Option<String>>(&mut conn);
            match tokio::time::timeout(timeout, set).await {
                Ok(Ok(reply)) => Ok(reply.is_some()),
                Ok(Err(err)) => Err(err.into()),
                Err(_) => Err(format!("no answer from Redis within {timeout:?}").into()),
            }
        }))
    }
}

#[cfg(feature = "redis")]
impl fmt::Debug for RedisReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayCache")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(outcome: Remembered) -> Option<bool> {
        match outcome {
            Remembered::Fresh => Some(true),
            Remembered::Replayed => Some(false),
            Remembered::Full => None,
            Remembered::Later(_) => unreachable!("memory answers at once"),
        }
    }

    #[test]
    fn a_key_is_fresh_once() {
        let cache = MemoryReplayCache::new(10);
        let ttl = Duration::from_secs(60);
        assert_eq!(fresh(cache.remember([1; 16], ttl)), Some(true));
        assert_eq!(fresh(cache.remember([1; 16], ttl)), Some(false));
        assert_eq!(fresh(cache.remember([2; 16], ttl)), Some(true));
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let cache = MemoryReplayCache::new(2);
        let ttl = Duration::from_secs(60);
        assert_eq!(fresh(cache.remember([1; 16], ttl)), Some(true));
        assert_eq!(fresh(cache.remember([2; 16], ttl)), Some(true));
        assert_eq!(fresh(cache.remember([3; 16], ttl)), None);
        // The live keys are still remembered.
        assert_eq!(fresh(cache.remember([1; 16], ttl)), Some(false));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn expired_keys_make_room() {
        let cache = MemoryReplayCache::new(1);
        assert_eq!(fresh(cache.remember([1; 16], Duration::ZERO)), Some(true));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            fresh(cache.remember([2; 16], Duration::from_secs(60))),
            Some(true)
        );
        assert_eq!(cache.len(), 1);
    }
}
