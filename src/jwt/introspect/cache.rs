//! The in-memory answer cache: keyed by a keyed hash of the token, bounded in entries, with a
//! deadline per entry.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use crate::jwt::introspected::Answer;

/// A keyed BLAKE3 hash of a token: what the cache (and Redis) key on, never the token.
pub(crate) type TokenKey = [u8; 32];

/// Active and inactive answers, each map bounded by its own capacity.
#[derive(Debug)]
pub(crate) struct MemoryCache {
    positive: Mutex<HashMap<TokenKey, (Arc<Answer>, Instant)>>,
    negative: Mutex<HashMap<TokenKey, Instant>>,
    positive_capacity: usize,
    negative_capacity: usize,
}

impl MemoryCache {
    pub(crate) fn new(positive_capacity: usize, negative_capacity: usize) -> Self {
        Self {
            positive: Mutex::default(),
            negative: Mutex::default(),
            positive_capacity,
            negative_capacity,
        }
    }

    /// The answer for `key`, if cached and not past its deadline.
    pub(crate) fn get(&self, key: &TokenKey, now: Instant) -> Option<Arc<Answer>> {
        if let Some((answer, until)) = lock(&self.positive).get(key)
            && now < *until
        {
            return Some(answer.clone());
        }
        match lock(&self.negative).get(key) {
            Some(until) if now < *until => Some(Arc::new(Answer::Inactive)),
            _ => None,
        }
    }

    /// Keeps `answer` until `until`. A full map first drops its expired entries, then (still
    /// full) one arbitrary entry: memory stays bounded whatever the traffic.
    pub(crate) fn put(&self, key: TokenKey, answer: Arc<Answer>, until: Instant, now: Instant) {
        if until <= now {
            return;
        }
        match *answer {
            Answer::Active(_) => {
                let mut map = lock(&self.positive);
                make_room(&mut map, self.positive_capacity, |(_, until)| *until > now);
                if self.positive_capacity > 0 {
                    map.insert(key, (answer, until));
                }
                drop(map);
                lock(&self.negative).remove(&key);
            }
            Answer::Inactive => {
                let mut map = lock(&self.negative);
                make_room(&mut map, self.negative_capacity, |until| *until > now);
                if self.negative_capacity > 0 {
                    map.insert(key, until);
                }
                drop(map);
                lock(&self.positive).remove(&key);
            }
        }
    }

    /// Entries held now (active, inactive).
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (lock(&self.positive).len(), lock(&self.negative).len())
    }
}

fn make_room<V>(map: &mut HashMap<TokenKey, V>, capacity: usize, live: impl Fn(&V) -> bool) {
    if map.len() < capacity {
        return;
    }
    map.retain(|_, value| live(value));
    if map.len() >= capacity
        && let Some(key) = map.keys().next().copied()
    {
        map.remove(&key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn active() -> Arc<Answer> {
        Arc::new(Answer::Active(serde_json::Map::new()))
    }

    #[test]
    fn entries_expire_and_stay_bounded() {
        let cache = MemoryCache::new(2, 3);
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        cache.put([1; 32], active(), later, now);
        assert!(matches!(
            cache.get(&[1; 32], now).as_deref(),
            Some(Answer::Active(_))
        ));
        assert!(cache.get(&[1; 32], later).is_none(), "past its deadline");
        for i in 0..10u8 {
            cache.put([i; 32], active(), later, now);
            cache.put([100 + i; 32], Arc::new(Answer::Inactive), later, now);
        }
        assert_eq!(cache.len(), (2, 3));
        assert_eq!(
            cache.get(&[109; 32], now).as_deref(),
            Some(&Answer::Inactive)
        );
        // An answer already past its deadline is not kept.
        cache.put([50; 32], active(), now, now);
        assert!(cache.get(&[50; 32], now).is_none());
        // A later inactive answer replaces an active one.
        cache.put([9; 32], Arc::new(Answer::Inactive), later, now);
        assert_eq!(cache.get(&[9; 32], now).as_deref(), Some(&Answer::Inactive));
    }
}
