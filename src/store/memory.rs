//! [`MemoryStore`]: bindings in this process, on `dashmap`.

use std::{
    fmt,
    hash::{BuildHasherDefault, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use dashmap::{DashMap, mapref::entry::Entry};
use futures::future::{self, BoxFuture, FutureExt};

use super::{BindOutcome, BindingStore, Lookup, Owner, SessionKey, StoreError, StoreErrorKind};
use crate::Identity;

/// Bindings in this process's memory: the default store.
///
/// - Built on `dashmap`'s entry API: a bind is one insert-if-absent under the shard lock, so two
///   concurrent binds of one id cannot both win.
/// - Expires bindings and tombstones lazily (an expired entry reads as missing and is replaced by
///   the next bind) and in [`sweep`](Self::sweep), which [`spawn_sweeper`](Self::spawn_sweeper)
///   runs periodically.
/// - Optional [capacity](Self::with_capacity): when full, new binds fail with
///   [`StoreErrorKind::CapacityExceeded`] (the layer answers 503). A live binding is never evicted.
/// - Sessions of one user share one copy of the identity strings, and users of one issuer one
///   copy of the issuer.
/// - Answers synchronously ([`BindingStore::lookup_now`]), so the layer's matching path does not
///   allocate.
///
/// One process only: with several replicas, use a shared store (the `redis` feature).
///
/// ```
/// use std::time::Duration;
/// use mcp_session_binding::{Identity, store::*};
///
/// let store = MemoryStore::new().with_capacity(100_000);
/// let key = SessionKey::from_session_id("s-1");
/// let alice = Owner::User(Identity::new("https://i.example", "alice").unwrap());
/// let found = store.lookup_now(key, None).unwrap().unwrap();
/// assert_eq!(found, Lookup::Missing);
/// # let _ = alice;
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    map: DashMap<SessionKey, Slot, BuildHasherDefault<KeyHasher>>,
    /// Interned identities: one allocation per user, shared by all of its sessions. A set (the
    /// map's key is the shared identity): 8 bytes a user in the table.
    users: DashMap<Arc<Identity>, ()>,
    /// Interned issuers: one copy of each issuer string, shared by all of its users.
    issuers: DashMap<Arc<str>, ()>,
    len: AtomicUsize,
    capacity: Option<usize>,
    epoch: Instant,
    last_full_sweep: Mutex<Option<Instant>>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            map: DashMap::default(),
            users: DashMap::new(),
            issuers: DashMap::new(),
            len: AtomicUsize::new(0),
            capacity: None,
            epoch: Instant::now(),
            last_full_sweep: Mutex::new(None),
        }
    }
}

/// One map value: 16 bytes.
struct Slot {
    /// `None` for anonymous sessions and tombstones.
    user: Option<Arc<Identity>>,
    /// Expiry in milliseconds since the store's epoch (below [`ENDED`]), with [`ENDED`] set for a
    /// tombstone. The state never changes in place: a tombstone replaces the slot.
    word: AtomicU64,
}

/// The bit of [`Slot::word`] that marks a tombstone; expiries are capped below it (2^63 ms is
/// some 292 million years).
const ENDED: u64 = 1 << 63;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Bound,
    Ended,
}

impl Slot {
    fn new(user: Option<Arc<Identity>>, expires_at: u64, state: State) -> Self {
        let expires_at = expires_at.min(ENDED - 1);
        let word = match state {
            State::Bound => expires_at,
            State::Ended => expires_at | ENDED,
        };
        Self {
            user,
            word: AtomicU64::new(word),
        }
    }

    fn expires_at(&self) -> u64 {
        self.word.load(Ordering::Relaxed) & !ENDED
    }

    fn state(&self) -> State {
        if self.word.load(Ordering::Relaxed) & ENDED == 0 {
            State::Bound
        } else {
            State::Ended
        }
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_at() <= now
    }

    fn owner(&self) -> Owner {
        match &self.user {
            Some(id) => Owner::User(Identity::clone(id)),
            None => Owner::Anonymous,
        }
    }

    fn lookup(&self) -> Lookup {
        match self.state() {
            State::Bound => Lookup::Bound(self.owner()),
            State::Ended => Lookup::Ended,
        }
    }
}

/// The keys are already uniform hashes (SHA-256 prefixes of server-minted ids), so the map uses
/// eight of their bytes as the hash instead of hashing them again.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl MemoryStore {
    /// An empty, unbounded store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds the number of entries (bindings and tombstones). When full, a new bind first sweeps
    /// expired entries (at most once a second) and then fails with
    /// [`StoreErrorKind::CapacityExceeded`].
    #[must_use]
    pub fn with_capacity(self, capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity: Some(capacity),
                ..Inner::default()
            }),
        }
    }

    /// Number of entries, bindings and tombstones, expired ones included until swept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes expired entries, and interned identities no session uses any more. Returns how many
    /// entries it removed.
    pub fn sweep(&self) -> usize {
        let now = self.inner.now();
        let before = self.inner.map.len();
        self.inner.map.retain(|_, slot| !slot.expired(now));
        let removed = before.saturating_sub(self.inner.map.len());
        self.inner.len.fetch_sub(removed, Ordering::Relaxed);
        self.inner
            .users
            .retain(|shared, ()| Arc::strong_count(shared) > 1);
        self.inner
            .issuers
            .retain(|shared, ()| Arc::strong_count(shared) > 1);
        removed
    }

    /// Runs [`sweep`](Self::sweep) every `period` on the current tokio runtime, until the returned
    /// handle is aborted.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = mcp_session_binding::store::MemoryStore::new();
    /// let sweeper = store.spawn_sweeper(std::time::Duration::from_secs(60));
    /// sweeper.abort();
    /// # }
    /// ```
    #[must_use = "aborting or dropping the handle decides the sweeper's lifetime"]
    pub fn spawn_sweeper(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let store = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.tick().await;
            loop {
                interval.tick().await;
                let Some(inner) = store.upgrade() else { return };
                MemoryStore { inner }.sweep();
            }
        })
    }

    fn intern(&self, owner: &Owner) -> Option<Arc<Identity>> {
        let Owner::User(id) = owner else {
            return None;
        };
        if let Some(user) = self.inner.users.get(id) {
            return Some(Arc::clone(user.key()));
        }
        let (iss, sub) = id.shared_parts();
        let user = Arc::new(Identity::from_shared(self.intern_issuer(iss), sub.clone()));
        // A concurrent bind may have interned the same user since: the entry keeps the first.
        Some(Arc::clone(self.inner.users.entry(user).or_insert(()).key()))
    }

    fn intern_issuer(&self, iss: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.inner.issuers.get(&**iss) {
            return Arc::clone(shared.key());
        }
        Arc::clone(
            self.inner
                .issuers
                .entry(Arc::clone(iss))
                .or_insert(())
                .key(),
        )
    }

    fn bind_now(
        &self,
        key: SessionKey,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<BindOutcome, StoreError> {
        let now = self.inner.now();
        let slot = || {
            Slot::new(
                self.intern(owner),
                now.saturating_add(millis(ttl)),
                State::Bound,
            )
        };
        if self.is_full() {
            self.sweep_when_full();
        }
        match self.inner.map.entry(key) {
            Entry::Occupied(mut entry) => {
                if entry.get().expired(now) {
                    entry.insert(slot());
                    return Ok(BindOutcome::Created);
                }
                Ok(match entry.get().state() {
                    State::Bound => BindOutcome::AlreadyBound(entry.get().owner()),
                    State::Ended => BindOutcome::AlreadyEnded,
                })
            }
            Entry::Vacant(entry) => {
                let taken = self.inner.len.fetch_add(1, Ordering::Relaxed);
                if self.inner.capacity.is_some_and(|cap| taken >= cap) {
                    self.inner.len.fetch_sub(1, Ordering::Relaxed);
                    return Err(StoreError::new(
                        StoreErrorKind::CapacityExceeded,
                        format!("memory store holds its capacity of {taken} entries"),
                    ));
                }
                entry.insert(slot());
                Ok(BindOutcome::Created)
            }
        }
    }

    fn is_full(&self) -> bool {
        self.inner.capacity.is_some_and(|cap| self.len() >= cap)
    }

    fn sweep_when_full(&self) {
        let now = Instant::now();
        {
            let mut last = self
                .inner
                .last_full_sweep
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
                return;
            }
            *last = Some(now);
        }
        self.sweep();
    }

    fn lookup_sync(&self, key: SessionKey, slide: Option<Duration>) -> Lookup {
        let now = self.inner.now();
        let expired = match self.inner.map.get(&key) {
            None => return Lookup::Missing,
            Some(slot) if !slot.expired(now) => {
                if let (Some(slide), State::Bound) = (slide, slot.state()) {
                    let slide = millis(slide);
                    let expires = slot.expires_at();
                    // Refresh only once half the window has passed: at most two writes per TTL.
                    // A bound slot's word is its expiry (no ENDED bit), so `fetch_max` on it is
                    // a max on the expiry.
                    if expires.saturating_sub(now) < slide / 2 {
                        let refreshed = now.saturating_add(slide).min(ENDED - 1);
                        slot.word.fetch_max(refreshed, Ordering::Relaxed);
                    }
                }
                return slot.lookup();
            }
            Some(_) => true,
        };
        if expired
            && self
                .inner
                .map
                .remove_if(&key, |_, slot| slot.expired(now))
                .is_some()
        {
            self.inner.len.fetch_sub(1, Ordering::Relaxed);
        }
        Lookup::Missing
    }

    fn end_now(&self, key: SessionKey, tombstone_ttl: Duration) {
        let tombstone = Slot::new(
            None,
            self.inner.now().saturating_add(millis(tombstone_ttl)),
            State::Ended,
        );
        if self.inner.map.insert(key, tombstone).is_none() {
            self.inner.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Milliseconds until the entry for `key` expires, for tests of sliding expiry.
    #[cfg(test)]
    fn remaining(&self, key: SessionKey) -> Option<u64> {
        let now = self.inner.now();
        self.inner
            .map
            .get(&key)
            .map(|slot| slot.expires_at().saturating_sub(now))
    }
}

impl Inner {
    fn now(&self) -> u64 {
        // +1 so that a zero TTL is already expired.
        millis(self.epoch.elapsed()) + 1
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

impl BindingStore for MemoryStore {
    fn bind<'a>(
        &'a self,
        key: SessionKey,
        owner: &'a Owner,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<BindOutcome, StoreError>> {
        future::ready(self.bind_now(key, owner, ttl)).boxed()
    }

    fn lookup(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> BoxFuture<'_, Result<Lookup, StoreError>> {
        future::ready(Ok(self.lookup_sync(key, slide))).boxed()
    }

    fn end(
        &self,
        key: SessionKey,
        tombstone_ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.end_now(key, tombstone_ttl);
        future::ready(Ok(())).boxed()
    }

    fn lookup_now(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> Option<Result<Lookup, StoreError>> {
        Some(Ok(self.lookup_sync(key, slide)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Owner {
        Owner::User(Identity::new("https://i.example", "alice").unwrap())
    }

    #[tokio::test]
    async fn conformance() {
        crate::store::conformance::run_all(&MemoryStore::new()).await;
    }

    #[test]
    fn concurrent_binds_across_threads_have_one_winner() {
        for run in 0..200 {
            let store = MemoryStore::new();
            let key = SessionKey::from_session_id(&format!("race-{run}"));
            let barrier = Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|i| {
                    let (store, barrier) = (store.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let owner =
                            Owner::User(Identity::new("https://i", format!("u{i}")).unwrap());
                        barrier.wait();
                        (
                            owner.clone(),
                            store
                                .bind_now(key, &owner, Duration::from_secs(60))
                                .unwrap(),
                        )
                    })
                })
                .collect();
            let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            let winners: Vec<_> = outcomes
                .iter()
                .filter(|(_, outcome)| *outcome == BindOutcome::Created)
                .collect();
            assert_eq!(winners.len(), 1, "run {run}");
            let winner = winners[0].0.clone();
            assert_eq!(store.lookup_sync(key, None), Lookup::Bound(winner.clone()));
            for (_, outcome) in &outcomes {
                if *outcome != BindOutcome::Created {
                    assert_eq!(*outcome, BindOutcome::AlreadyBound(winner.clone()));
                }
            }
            assert_eq!(store.len(), 1);
        }
    }

    #[test]
    fn slot_stays_small() {
        assert!(std::mem::size_of::<Slot>() <= 16);
    }

    #[test]
    fn capacity_refuses_new_binds_and_never_evicts() {
        let store = MemoryStore::new().with_capacity(2);
        let ttl = Duration::from_secs(60);
        let keys: Vec<_> = (0..3)
            .map(|i| SessionKey::from_session_id(&i.to_string()))
            .collect();
        assert_eq!(
            store.bind_now(keys[0], &alice(), ttl).unwrap(),
            BindOutcome::Created
        );
        assert_eq!(
            store.bind_now(keys[1], &alice(), ttl).unwrap(),
            BindOutcome::Created
        );
        let err = store.bind_now(keys[2], &alice(), ttl).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::CapacityExceeded);
        assert_eq!(store.lookup_sync(keys[0], None), Lookup::Bound(alice()));
        assert_eq!(store.lookup_sync(keys[1], None), Lookup::Bound(alice()));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn capacity_frees_up_when_entries_expire() {
        let store = MemoryStore::new().with_capacity(1);
        let a = SessionKey::from_session_id("a");
        let b = SessionKey::from_session_id("b");
        store.bind_now(a, &alice(), Duration::ZERO).unwrap();
        assert_eq!(
            store
                .bind_now(b, &alice(), Duration::from_secs(60))
                .unwrap(),
            BindOutcome::Created
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn sliding_refresh_writes_only_after_half_the_window() {
        let store = MemoryStore::new();
        let key = SessionKey::from_session_id("s");
        let ttl = Duration::from_secs(100);
        store.bind_now(key, &alice(), ttl).unwrap();
        let before = store.remaining(key).unwrap();
        store.lookup_sync(key, Some(ttl));
        assert_eq!(
            store.remaining(key).unwrap(),
            before,
            "no write while more than half is left"
        );
        store
            .inner
            .map
            .get(&key)
            .unwrap()
            .word
            .fetch_sub(60_000, Ordering::Relaxed);
        store.lookup_sync(key, Some(ttl));
        assert!(
            store.remaining(key).unwrap() > 90_000,
            "refreshed once under half"
        );
    }

    #[test]
    fn sessions_of_one_user_share_the_identity() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        for i in 0..10 {
            let fresh = Owner::User(Identity::new("https://i.example", "alice").unwrap());
            store
                .bind_now(SessionKey::from_session_id(&i.to_string()), &fresh, ttl)
                .unwrap();
        }
        assert_eq!(store.inner.users.len(), 1);
        let shared = store.inner.users.iter().next().unwrap().key().clone();
        assert_eq!(Arc::strong_count(&shared), 12);
    }

    #[test]
    fn users_of_one_issuer_share_the_issuer_string() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        for (i, sub) in ["alice", "bob"].into_iter().enumerate() {
            let fresh = Owner::User(Identity::new(String::from("https://i.example"), sub).unwrap());
            store
                .bind_now(SessionKey::from_session_id(&i.to_string()), &fresh, ttl)
                .unwrap();
        }
        assert_eq!(store.inner.users.len(), 2);
        assert_eq!(store.inner.issuers.len(), 1);
        let users: Vec<_> = store.inner.users.iter().map(|u| u.key().clone()).collect();
        assert!(Arc::ptr_eq(
            users[0].shared_parts().0,
            users[1].shared_parts().0
        ));
    }

    #[test]
    fn huge_ttls_neither_expire_nor_turn_into_tombstones() {
        let store = MemoryStore::new();
        let (a, b) = (
            SessionKey::from_session_id("a"),
            SessionKey::from_session_id("b"),
        );
        store.bind_now(a, &alice(), Duration::MAX).unwrap();
        assert_eq!(
            store.lookup_sync(a, Some(Duration::MAX)),
            Lookup::Bound(alice())
        );
        store.end_now(b, Duration::MAX);
        assert_eq!(store.lookup_sync(b, None), Lookup::Ended);
        assert_eq!(store.sweep(), 0);
    }

    #[test]
    fn sweep_removes_expired_entries_and_unused_identities() {
        let store = MemoryStore::new();
        store
            .bind_now(SessionKey::from_session_id("a"), &alice(), Duration::ZERO)
            .unwrap();
        store.end_now(SessionKey::from_session_id("b"), Duration::ZERO);
        store
            .bind_now(
                SessionKey::from_session_id("c"),
                &Owner::Anonymous,
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(store.sweep(), 2);
        assert_eq!(store.len(), 1);
        assert_eq!(store.inner.users.len(), 0);
        assert_eq!(store.inner.issuers.len(), 0);
    }
}
