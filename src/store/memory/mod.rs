//! [`MemoryStore`]: bindings and task records in this process, on `dashmap`.
//!
//! The memory layout (packed slots, interned owners, the key hasher) is in [`slots`]; this
//! module is the store's logic.

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use dashmap::mapref::entry::Entry;
use futures::future::{self, FutureExt};

mod slots;

use self::slots::{Kind, Map, OwnerEntry, OwnerKeys, Owners, Slot};
use super::{
    BindOutcome, BindingStore, KeyDerivation, Lookup, Owner, Record, Revoked, SessionKey,
    StoreError, StoreErrorKind, StoreFuture,
};
use crate::metrics::MemoryOp;

/// Entries the reclaimer examines per write (bind or end), at most.
const RECLAIM_STEP: usize = 64;
/// The reclaimer stops early once it has passed over this many live entries: each write pays
/// for a few live entries, and for as many expired ones as it finds, up to [`RECLAIM_STEP`].
const RECLAIM_LIVE: usize = 4;
/// Entries a bind into a full store examines to make room (expired entries, then tombstones).
const ROOM_STEP: usize = 1024;
/// Keys of one owner's index a bind at that owner's limit examines, at most.
const OWNER_SCAN: usize = 256;
/// Keys of the owner's index every bind examines, to keep the index near the live count.
const OWNER_TIDY: usize = 2;

/// Bindings and task records in this process's memory: the default store.
///
/// - Built on `dashmap`'s entry API: a bind is one insert-if-absent under the shard lock, so two
///   concurrent binds of one id cannot both win.
/// - **Reclaims expired entries by itself.** Every write (a bind, a task record or an end) also
///   advances a reclaimer over the entries in the order they were written: it examines up to 64
///   of them, removes those that expired, and stops early after passing over 4 live ones. So no
///   request pays more than that bounded step, no task or thread is needed (any runtime, or
///   none), and expired entries stay a bounded fraction of the store while it is written to. The
///   matching path (a lookup that finds the owner) does no reclaiming work. An expired entry
///   also reads as missing at once, and is replaced by the next bind of its key.
///   [`sweep`](Self::sweep) and [`spawn_sweeper`](Self::spawn_sweeper) remain for a store that
///   is no longer written to.
/// - **Per-owner limit** (see [`BindingStore::bind`]): exact, since the binds of one owner are
///   serialized on that owner's lock. A bind at the limit first reclaims that owner's expired
///   bindings (up to 256 of its keys) and reports
///   [`LimitReached`](BindOutcome::LimitReached) only when the owner really holds `limit` live
///   ones. Task records never count.
/// - **Tombstones per owner** (see [the store semantics](super#semantics-every-store-must-have)):
///   each owner lists the tombstones of its ended bindings, and a bind that creates a binding
///   for it first evicts its oldest beyond its limit (up to 256 a bind), under the owner's lock,
///   which the owner's ends take too. So one identity holds at most twice its limit of entries,
///   bindings and tombstones together, however often it creates and deletes sessions.
/// - Optional [capacity](Self::with_capacity): when full, a new bind first reclaims expired
///   entries, then evicts the oldest tombstones, and only then fails with
///   [`StoreErrorKind::CapacityExceeded`] (the layer answers 503). A live binding or task
///   record is never evicted. Anonymous bindings may fill at most half of the capacity.
/// - Sessions of one user share one copy of the identity strings, and users of one issuer one
///   copy of the issuer.
/// - Answers synchronously ([`BindingStore::lookup_now`]), so the layer's matching path does not
///   allocate.
/// - Keys are [local](KeyDerivation::local) (SipHash-2-4-128) with random keys drawn when the
///   store is made: nothing outside this process ever reads them, and an id of little entropy
///   cannot be matched to its key.
///
/// One process only: with several replicas, use a shared store (the `redis` feature).
///
/// ```
/// use std::time::Duration;
/// use mcp_session_binding::{Identity, store::*};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = MemoryStore::with_capacity(100_000);
/// let keys = store.key_derivation().clone();
/// let alice = Owner::User(Identity::new("https://i.example", "alice").unwrap());
/// let ttl = Duration::from_secs(60);
/// // At most two live sessions for alice:
/// for id in ["s-1", "s-2"] {
///     assert_eq!(store.bind(Record::new(keys.session(id), &alice, ttl), 2).await.unwrap(), BindOutcome::Created);
/// }
/// let third = keys.session("s-3");
/// assert!(matches!(
///     store.bind(Record::new(third, &alice, ttl), 2).await.unwrap(),
///     BindOutcome::LimitReached { .. }
/// ));
/// // Ending one frees its slot.
/// store.end(keys.session("s-1"), ttl).await.unwrap();
/// assert_eq!(store.bind(Record::new(third, &alice, ttl), 2).await.unwrap(), BindOutcome::Created);
/// assert_eq!(store.lookup_now(third, None).unwrap().unwrap(), Lookup::Bound(alice));
/// # });
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    map: Map,
    owners: Owners,
    len: AtomicUsize,
    capacity: Option<usize>,
    epoch: Instant,
    /// The wall-clock time of `epoch`, to tell when a binding was made.
    epoch_time: SystemTime,
    /// Every key of the map at least once, in the order written: the reclaimer's queue. Keys
    /// found live go to the back; keys found expired or gone leave it.
    written: Mutex<VecDeque<SessionKey>>,
    /// Local keys of this store's own.
    keys: KeyDerivation,
    /// Milliseconds added to the clock, for tests of expiry.
    #[cfg(test)]
    skew: std::sync::atomic::AtomicU64,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            map: Map::default(),
            owners: Owners::default(),
            len: AtomicUsize::new(0),
            capacity: None,
            epoch: Instant::now(),
            epoch_time: SystemTime::now(),
            written: Mutex::new(VecDeque::new()),
            keys: KeyDerivation::local(),
            #[cfg(test)]
            skew: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryStore {
    /// An empty, unbounded store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds the number of entries (bindings, tombstones and task records).
    ///
    /// When full, a new bind first reclaims expired entries, then evicts the oldest tombstones
    /// (at most 1,024 entries examined), and then fails with
    /// [`StoreErrorKind::CapacityExceeded`] (503). A live binding or task record is never
    /// evicted.
    ///
    /// - Anonymous bindings may take at most half of `capacity`, whatever limit the layer asks
    ///   for, so anonymous callers can never fill the store and lock authenticated users out.
    /// - Evicting a tombstone early turns that ended session from "ended" into "unknown": both
    ///   answer 404, and the id is never bound again unless the inner server mints the same id
    ///   anew. That is the trade-off for never refusing a bind because of tombstones.
    /// - Only many identities, each within its own limit, can fill it with live bindings: size
    ///   it for your users times their per-identity limit, or accept 503s past that.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity: Some(capacity),
                ..Inner::default()
            }),
        }
    }

    /// Number of entries (bindings, tombstones and task records), expired ones included until
    /// reclaimed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every expired entry at once, and interned identities no entry uses any more.
    /// Returns how many entries it removed.
    ///
    /// Not needed for a store in use: writes reclaim expired entries as they go (see the type's
    /// docs). It holds each shard's lock while it walks it, so lookups on that shard wait.
    pub fn sweep(&self) -> usize {
        let now = self.inner.now();
        let before = self.inner.map.len();
        self.inner.map.retain(|_, slot| !slot.expired(now));
        let removed = before.saturating_sub(self.inner.map.len());
        self.inner.len.fetch_sub(removed, Ordering::Relaxed);
        self.inner.owners.sweep();
        removed
    }

    /// Runs [`sweep`](Self::sweep) every `period` on the current tokio runtime, until the returned
    /// handle is aborted. Optional: writes reclaim expired entries by themselves; a sweeper only
    /// helps a store that stops being written to while it still holds many expired entries.
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

    /// The most live anonymous bindings this store accepts, whatever the layer asks for.
    fn anonymous_ceiling(&self) -> usize {
        self.inner.capacity.map_or(usize::MAX, |cap| cap / 2)
    }

    fn bind_now(
        &self,
        key: SessionKey,
        owner: &Owner,
        ttl: Duration,
        limit: usize,
    ) -> Result<BindOutcome, StoreError> {
        let entry = self.inner.owners.entry(owner);
        let limit = match owner {
            Owner::Anonymous => limit.min(self.anonymous_ceiling()),
            Owner::User(_) => limit,
        };
        let (outcome, inserted) = {
            let mut keys = lock(&entry.keys);
            self.bind_locked(&entry, &mut keys, key, ttl, limit)?
        };
        drop(entry);
        self.written(key, inserted);
        Ok(outcome)
    }

    /// After a write of `key` (`inserted`: a new key in the map): queues a new key, and runs
    /// one step of the reclaimer.
    fn written(&self, key: SessionKey, inserted: bool) {
        let mut written = lock(&self.inner.written);
        if inserted {
            written.push_back(key);
        }
        self.reclaim(&mut written, self.inner.now(), RECLAIM_STEP, RECLAIM_LIVE);
    }

    /// A bind, under the owner's lock: the count cannot grow meanwhile, since only binds of this
    /// owner make its bound slots. Returns the outcome, and whether a new key entered the map.
    fn bind_locked(
        &self,
        entry: &Arc<OwnerEntry>,
        keys: &mut OwnerKeys,
        key: SessionKey,
        ttl: Duration,
        limit: usize,
    ) -> Result<(BindOutcome, bool), StoreError> {
        let now = self.inner.now();
        self.scan_owner(entry, &mut keys.live, now, OWNER_TIDY);
        if let Some(found) = self.existing(key, now) {
            return Ok((found, false));
        }
        if entry.live() >= limit {
            let earliest = self.scan_owner(entry, &mut keys.live, now, OWNER_SCAN);
            if entry.live() >= limit {
                let wait = earliest.map_or(ttl, |at| Duration::from_millis(at.saturating_sub(now)));
                let retry_after = wait.max(Duration::from_millis(1));
                return Ok((BindOutcome::LimitReached { retry_after }, false));
            }
        }
        self.evict_tombstones(entry, &mut keys.ended, limit);
        let expires_at = now.saturating_add(millis(ttl));
        let slot = || Slot::bound_at(Arc::clone(entry), expires_at, now);
        let outcome = self.insert(key, now, slot)?;
        if outcome.0 == BindOutcome::Created {
            keys.live.push_back(key);
        }
        Ok(outcome)
    }

    /// Writes `slot()` at `key` unless a live entry is there: the insert-if-absent of binds and
    /// task records. Makes room in a full store first. Returns the outcome, and whether a new
    /// key entered the map.
    fn insert(
        &self,
        key: SessionKey,
        now: u64,
        slot: impl FnOnce() -> Slot,
    ) -> Result<(BindOutcome, bool), StoreError> {
        if self.is_full() {
            self.make_room();
        }
        Ok(match self.inner.map.entry(key) {
            Entry::Occupied(mut occupied) => {
                if occupied.get().expired(now) {
                    // The old slot is dropped here, which frees its owner's place.
                    occupied.insert(slot());
                    (BindOutcome::Created, false)
                } else {
                    (found(occupied.get()), false)
                }
            }
            Entry::Vacant(vacant) => {
                let taken = self.inner.len.fetch_add(1, Ordering::Relaxed);
                if self.inner.capacity.is_some_and(|cap| taken >= cap) {
                    self.inner.len.fetch_sub(1, Ordering::Relaxed);
                    return Err(StoreError::new(
                        StoreErrorKind::CapacityExceeded,
                        format!("memory store holds its capacity of {taken} entries"),
                    ));
                }
                vacant.insert(slot());
                (BindOutcome::Created, true)
            }
        })
    }

    /// Before a bind adds a binding of `entry`, evicts the owner's oldest tombstones until its
    /// list of them is down to `keep` (at most [`OWNER_SCAN`] per bind).
    ///
    /// This bounds the owner's tombstones without `end` knowing its limit: only an end of one of
    /// the owner's bindings adds to the list (and takes a binding away), and only a bind adds a
    /// binding, so the owner's bindings plus listed tombstones never exceed twice its limit (a
    /// bind that finds more than `keep` listed evicts at least one). An evicted tombstone reads
    /// as missing: its session still answers 404.
    fn evict_tombstones(
        &self,
        entry: &Arc<OwnerEntry>,
        ended: &mut VecDeque<SessionKey>,
        keep: usize,
    ) {
        let excess = ended.len().saturating_sub(keep).min(OWNER_SCAN);
        for _ in 0..excess {
            let Some(key) = ended.pop_front() else { break };
            // Only the owner's own tombstone: the key may have been reclaimed and reused since.
            self.remove_if(key, |slot| slot.kind() == Kind::Ended && slot.is_of(entry));
        }
    }

    /// What a live entry at `key` means to a bind, if there is one.
    fn existing(&self, key: SessionKey, now: u64) -> Option<BindOutcome> {
        let slot = self.inner.map.get(&key)?;
        (!slot.expired(now)).then(|| found(&slot))
    }

    /// Examines up to `budget` keys at the front of an owner's index: keys of live bindings of
    /// this owner go to the back, the others leave it (expired ones are reclaimed). Returns the
    /// earliest expiry among the live ones seen.
    fn scan_owner(
        &self,
        entry: &Arc<OwnerEntry>,
        keys: &mut VecDeque<SessionKey>,
        now: u64,
        budget: usize,
    ) -> Option<u64> {
        let mut earliest: Option<u64> = None;
        for _ in 0..budget.min(keys.len()) {
            let Some(key) = keys.pop_front() else { break };
            if let Some((expires_at, true)) = self.examine(key, now, Some(entry)) {
                keys.push_back(key);
                earliest = Some(earliest.map_or(expires_at, |e| e.min(expires_at)));
            }
        }
        earliest
    }

    /// Looks at `key`: reclaims it if it expired. Returns `None` when no entry is left, else the
    /// entry's expiry and whether it is a binding of `owner`.
    fn examine(
        &self,
        key: SessionKey,
        now: u64,
        owner: Option<&Arc<OwnerEntry>>,
    ) -> Option<(u64, bool)> {
        let seen = |slot: &Slot| {
            (
                slot.expires_at(),
                owner.is_some_and(|o| slot.is_bound_to(o)),
            )
        };
        let (expired, found) = {
            let slot = self.inner.map.get(&key)?;
            (slot.expired(now), seen(&slot))
        };
        if !expired || !self.remove_if(key, |slot| slot.expired(now)) {
            return Some(found);
        }
        // Removed; or replaced meanwhile by a live entry (or removed by someone else).
        self.inner.map.get(&key).map(|slot| seen(&slot))
    }

    /// Removes the entry at `key` if `condition` holds; frees the interned user when that was
    /// its last entry. Returns whether it removed one.
    fn remove_if(&self, key: SessionKey, condition: impl FnOnce(&Slot) -> bool) -> bool {
        match self.inner.map.remove_if(&key, |_, slot| condition(slot)) {
            Some((_, slot)) => {
                self.inner.len.fetch_sub(1, Ordering::Relaxed);
                self.inner.owners.release(slot);
                true
            }
            None => false,
        }
    }

    /// One step of the reclaimer: examines up to `budget` keys at the front of the queue,
    /// reclaims the expired ones, sends live ones to the back, and stops after `live` of those.
    fn reclaim(&self, queue: &mut VecDeque<SessionKey>, now: u64, budget: usize, live: usize) {
        let mut seen_live = 0;
        for _ in 0..budget.min(queue.len()) {
            let Some(key) = queue.pop_front() else { break };
            if self.examine(key, now, None).is_some() {
                queue.push_back(key);
                seen_live += 1;
                if seen_live >= live {
                    break;
                }
            }
        }
    }

    fn is_full(&self) -> bool {
        self.inner.capacity.is_some_and(|cap| self.len() >= cap)
    }

    /// Makes room in a full store: reclaims expired entries, then evicts tombstones, oldest
    /// written first, examining at most [`ROOM_STEP`] entries. Never evicts a live binding or
    /// task record.
    fn make_room(&self) {
        let now = self.inner.now();
        let mut queue = lock(&self.inner.written);
        for _ in 0..ROOM_STEP.min(queue.len()) {
            if !self.is_full() {
                break;
            }
            let Some(key) = queue.pop_front() else { break };
            if self.examine(key, now, None).is_some()
                && !self.remove_if(key, |slot| slot.kind() == Kind::Ended)
            {
                queue.push_back(key);
            }
        }
    }

    /// The live slot at `key`, slid by `slide`, read by `read`; reclaims an expired one.
    fn read<T>(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
        read: impl FnOnce(&Slot) -> T,
    ) -> Option<T> {
        self.read_at(self.inner.now(), key, slide, read)
    }

    /// [`read`](Self::read) at `now` (the store's clock).
    fn read_at<T>(
        &self,
        now: u64,
        key: SessionKey,
        slide: Option<Duration>,
        read: impl FnOnce(&Slot) -> T,
    ) -> Option<T> {
        match self.inner.map.get(&key) {
            None => return None,
            Some(slot) if !slot.expired(now) => {
                if let Some(slide) = slide {
                    slot.slide(now, millis(slide));
                }
                return Some(read(&slot));
            }
            Some(_) => {}
        }
        self.remove_if(key, |slot| slot.expired(now));
        None
    }

    #[cfg(test)]
    fn lookup_sync(&self, key: SessionKey, slide: Option<Duration>) -> Lookup {
        self.lookup_at(None, key, slide)
    }

    /// A lookup at `started` (when the caller read the clock already). Not
    /// `lookup_with_age_sync(..).0`: the bind time is not worked out when not asked for.
    fn lookup_at(
        &self,
        started: Option<Instant>,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> Lookup {
        let now = started.map_or_else(|| self.inner.now(), |at| self.inner.at(at));
        self.read_at(now, key, slide, |slot| match slot.kind() {
            Kind::Bound => Lookup::Bound(slot.owner()),
            Kind::Ended => Lookup::Ended,
            Kind::Task => Lookup::Missing,
        })
        .unwrap_or(Lookup::Missing)
    }

    fn lookup_with_age_sync(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> (Lookup, Option<SystemTime>) {
        self.read(key, slide, |slot| match slot.kind() {
            Kind::Bound => (Lookup::Bound(slot.owner()), Some(self.inner.time_of(slot))),
            Kind::Ended => (Lookup::Ended, None),
            // A task record at a session key (never, with derived keys) reads as missing.
            Kind::Task => (Lookup::Missing, None),
        })
        .unwrap_or((Lookup::Missing, None))
    }

    fn bind_task_now(
        &self,
        key: SessionKey,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<BindOutcome, StoreError> {
        let entry = self.inner.owners.entry(owner);
        let now = self.inner.now();
        let expires_at = now.saturating_add(millis(ttl));
        let task_entry = Arc::clone(&entry);
        let (outcome, inserted) = self.insert(key, now, || Slot::task(task_entry, expires_at))?;
        if outcome == BindOutcome::Created {
            let mut keys = lock(&entry.keys);
            self.tidy_tasks(&entry, &mut keys.tasks, now);
            keys.tasks.push_back(key);
        }
        drop(entry);
        self.written(key, inserted);
        Ok(outcome)
    }

    fn task_owner_now(&self, key: SessionKey, slide: Option<Duration>) -> Option<Owner> {
        self.read(key, slide, |slot| {
            (slot.kind() == Kind::Task).then(|| slot.owner())
        })
        .flatten()
    }

    /// Examines up to [`OWNER_TIDY`] keys at the front of an owner's task list: keys of its live
    /// task records go to the back, the others leave it (expired ones are reclaimed). So the
    /// list stays within a few keys of the owner's live task records.
    fn tidy_tasks(&self, entry: &Arc<OwnerEntry>, tasks: &mut VecDeque<SessionKey>, now: u64) {
        for _ in 0..OWNER_TIDY.min(tasks.len()) {
            let Some(key) = tasks.pop_front() else { break };
            let live = self.examine(key, now, None).is_some()
                && self.inner.map.get(&key).is_some_and(|slot| {
                    slot.kind() == Kind::Task && slot.is_of(entry) && !slot.expired(now)
                });
            if live {
                tasks.push_back(key);
            }
        }
    }

    /// Ends every live session of `owner` and removes its live task records.
    fn end_owner_now(&self, owner: &Owner, tombstone_ttl: Duration) -> Revoked {
        let Some(entry) = self.inner.owners.find(owner) else {
            return Revoked::default();
        };
        let (live, tasks) = {
            let mut keys = lock(&entry.keys);
            (
                std::mem::take(&mut keys.live),
                std::mem::take(&mut keys.tasks),
            )
        };
        let now = self.inner.now();
        let expires_at = now.saturating_add(millis(tombstone_ttl));
        let mut revoked = Revoked::default();
        for key in live {
            // Under the owner's lock, as `end_now`: its binds see the binding or the tombstone.
            let mut keys = lock(&entry.keys);
            let replaced = match self.inner.map.entry(key) {
                Entry::Occupied(mut occupied)
                    if !occupied.get().expired(now) && occupied.get().is_bound_to(&entry) =>
                {
                    keys.ended.push_back(key);
                    let tombstone = Slot::ended(Some(Arc::clone(&entry)), expires_at);
                    Some(occupied.insert(tombstone))
                }
                _ => None,
            };
            drop(keys);
            if let Some(old) = replaced {
                self.inner.owners.release(old);
                revoked.sessions += 1;
            }
        }
        for key in tasks {
            let removed = self.remove_if(key, |slot| {
                slot.kind() == Kind::Task && slot.is_of(&entry) && !slot.expired(now)
            });
            revoked.tasks += usize::from(removed);
        }
        revoked
    }

    /// Ends `key`: a live binding becomes a tombstone listed with its owner (under the owner's
    /// lock, so the owner's binds see the binding or the tombstone, never neither); a live
    /// tombstone stays as it is; anything else (nothing, an expired entry) becomes a tombstone of
    /// no owner.
    fn end_now(&self, key: SessionKey, tombstone_ttl: Duration) {
        let now = self.inner.now();
        let expires_at = now.saturating_add(millis(tombstone_ttl));
        // Whose binding is it? Read first, then locked in the binds' order: owner, then map.
        let owner = match self.inner.map.get(&key) {
            Some(slot) if !slot.expired(now) && slot.kind() == Kind::Bound => {
                slot.owner_entry().cloned()
            }
            _ => None,
        };
        let mut keys = owner.as_ref().map(|owner| lock(&owner.keys));
        let (replaced, added) = match self.inner.map.entry(key) {
            Entry::Occupied(mut occupied) => {
                let slot = occupied.get();
                if !slot.expired(now) && slot.kind() == Kind::Ended {
                    // Already ended: idempotent, and the tombstone keeps its own expiry.
                    (None, false)
                } else if let (Some(owner), Some(keys)) = (&owner, &mut keys)
                    && !slot.expired(now)
                    && slot.is_bound_to(owner)
                {
                    keys.ended.push_back(key);
                    let tombstone = Slot::ended(Some(Arc::clone(owner)), expires_at);
                    (Some(occupied.insert(tombstone)), false)
                } else {
                    // Expired, or bound to someone else than when read (it expired and was
                    // bound anew in between): a tombstone of no owner.
                    (Some(occupied.insert(Slot::ended(None, expires_at))), false)
                }
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Slot::ended(None, expires_at));
                (None, true)
            }
        };
        drop(keys);
        if let Some(old) = replaced {
            self.inner.owners.release(old);
        }
        if added {
            // A key already in the map is already in the queue.
            self.inner.len.fetch_add(1, Ordering::Relaxed);
        }
        self.written(key, added);
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

/// What a live slot means to a bind of its key. (A record of the other kind at the key, which
/// derived keys never produce, is reported as its owner's: the key is taken.)
fn found(slot: &Slot) -> BindOutcome {
    match slot.kind() {
        Kind::Bound | Kind::Task => BindOutcome::AlreadyBound(slot.owner()),
        Kind::Ended => BindOutcome::AlreadyEnded,
    }
}

impl Inner {
    /// The wall-clock time a binding's slot was made.
    fn time_of(&self, slot: &Slot) -> SystemTime {
        // `now` starts at 1.
        let since_epoch = Duration::from_millis(slot.made_at().saturating_sub(1));
        self.epoch_time + since_epoch
    }

    fn now(&self) -> u64 {
        self.at(Instant::now())
    }

    /// The store's clock at `instant`.
    fn at(&self, instant: Instant) -> u64 {
        // +1 so that a zero TTL is already expired.
        let now = millis(instant.saturating_duration_since(self.epoch)) + 1;
        #[cfg(test)]
        let now = now + self.skew.load(Ordering::Relaxed);
        now
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
    fn bind<'a>(&'a self, record: Record<'a>, limit: usize) -> StoreFuture<'a, BindOutcome> {
        let Record { key, owner, ttl } = record;
        let started = crate::metrics::started();
        let bound = self.bind_now(key, owner, ttl, limit);
        future::ready(crate::metrics::store_call("memory", "bind", started, bound)).boxed()
    }

    fn lookup(&self, key: SessionKey, slide: Option<Duration>) -> StoreFuture<'_, Lookup> {
        let found = crate::metrics::memory(MemoryOp::Lookup, |started| {
            self.lookup_at(started, key, slide)
        });
        future::ready(Ok(found)).boxed()
    }

    fn end(&self, key: SessionKey, tombstone_ttl: Duration) -> StoreFuture<'_, ()> {
        crate::metrics::memory(MemoryOp::End, |_| self.end_now(key, tombstone_ttl));
        future::ready(Ok(())).boxed()
    }

    fn bind_task<'a>(&'a self, record: Record<'a>) -> StoreFuture<'a, BindOutcome> {
        let Record { key, owner, ttl } = record;
        let started = crate::metrics::started();
        let bound = self.bind_task_now(key, owner, ttl);
        let bound = crate::metrics::store_call("memory", "bind_task", started, bound);
        future::ready(bound).boxed()
    }

    fn task_owner(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> StoreFuture<'_, Option<Owner>> {
        future::ready(Ok(crate::metrics::memory(MemoryOp::TaskOwner, |_| {
            self.task_owner_now(key, slide)
        })))
        .boxed()
    }

    fn lookup_now(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> Option<Result<Lookup, StoreError>> {
        Some(Ok(crate::metrics::memory(MemoryOp::Lookup, |started| {
            self.lookup_at(started, key, slide)
        })))
    }

    fn lookup_with_age(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> StoreFuture<'_, (Lookup, Option<SystemTime>)> {
        future::ready(Ok(self.lookup_with_age_sync(key, slide))).boxed()
    }

    fn end_owner<'a>(
        &'a self,
        owner: &'a Owner,
        tombstone_ttl: Duration,
    ) -> StoreFuture<'a, Revoked> {
        future::ready(Ok(self.end_owner_now(owner, tombstone_ttl))).boxed()
    }

    fn lookup_with_age_now(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> Option<Result<(Lookup, Option<SystemTime>), StoreError>> {
        Some(Ok(self.lookup_with_age_sync(key, slide)))
    }

    fn key_derivation(&self) -> &KeyDerivation {
        &self.inner.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    const NO_LIMIT: usize = usize::MAX;

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
                                .bind_now(key, &owner, Duration::from_secs(60), NO_LIMIT)
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
    fn capacity_refuses_new_binds_and_never_evicts() {
        let store = MemoryStore::with_capacity(2);
        let ttl = Duration::from_secs(60);
        let keys: Vec<_> = (0..3)
            .map(|i| SessionKey::from_session_id(&i.to_string()))
            .collect();
        assert_eq!(
            store.bind_now(keys[0], &alice(), ttl, NO_LIMIT).unwrap(),
            BindOutcome::Created
        );
        assert_eq!(
            store.bind_now(keys[1], &alice(), ttl, NO_LIMIT).unwrap(),
            BindOutcome::Created
        );
        let err = store
            .bind_now(keys[2], &alice(), ttl, NO_LIMIT)
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::CapacityExceeded);
        assert_eq!(store.lookup_sync(keys[0], None), Lookup::Bound(alice()));
        assert_eq!(store.lookup_sync(keys[1], None), Lookup::Bound(alice()));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn capacity_frees_up_when_entries_expire() {
        let store = MemoryStore::with_capacity(1);
        let a = SessionKey::from_session_id("a");
        let b = SessionKey::from_session_id("b");
        store
            .bind_now(a, &alice(), Duration::ZERO, NO_LIMIT)
            .unwrap();
        assert_eq!(
            store
                .bind_now(b, &alice(), Duration::from_secs(60), NO_LIMIT)
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
        store.bind_now(key, &alice(), ttl, NO_LIMIT).unwrap();
        let before = store.remaining(key).unwrap();
        store.lookup_sync(key, Some(ttl));
        assert_eq!(
            store.remaining(key).unwrap(),
            before,
            "no write while more than half is left"
        );
        advance(&store, Duration::from_secs(60));
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
                .bind_now(
                    SessionKey::from_session_id(&i.to_string()),
                    &fresh,
                    ttl,
                    NO_LIMIT,
                )
                .unwrap();
        }
        assert_eq!(store.inner.owners.users(), 1);
        let shared = store.inner.owners.entry(&alice());
        // The table's, each of the ten slots', and this one.
        assert_eq!(Arc::strong_count(&shared), 12);
        assert_eq!(shared.live(), 10);
    }

    #[test]
    fn huge_ttls_neither_expire_nor_turn_into_tombstones() {
        let store = MemoryStore::new();
        let (a, b) = (
            SessionKey::from_session_id("a"),
            SessionKey::from_session_id("b"),
        );
        store
            .bind_now(a, &alice(), Duration::MAX, NO_LIMIT)
            .unwrap();
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
        let ttl = Duration::from_secs(60);
        store
            .bind_now(SessionKey::from_session_id("a"), &alice(), ttl, NO_LIMIT)
            .unwrap();
        store.end_now(SessionKey::from_session_id("b"), ttl);
        store
            .bind_now(
                SessionKey::from_session_id("c"),
                &Owner::Anonymous,
                ttl * 10,
                NO_LIMIT,
            )
            .unwrap();
        advance(&store, ttl * 2);
        assert_eq!(store.sweep(), 2);
        assert_eq!(store.len(), 1);
        assert_eq!(store.inner.owners.users(), 0);
        assert_eq!(store.inner.owners.issuers(), 0);
    }

    fn advance(store: &MemoryStore, by: Duration) {
        store.inner.skew.fetch_add(millis(by), Ordering::Relaxed);
    }

    fn user(i: usize) -> Owner {
        Owner::User(Identity::new("https://i.example", format!("user-{i}")).unwrap())
    }

    fn key(i: usize) -> SessionKey {
        SessionKey::from_session_id(&format!("session-{i}"))
    }

    #[test]
    fn expired_entries_are_reclaimed_by_later_writes_without_sweep() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        for i in 0..100_000 {
            store
                .bind_now(key(i), &user(i % 10_000), ttl, NO_LIMIT)
                .unwrap();
        }
        for i in 0..10 {
            store.end_now(key(1_000_000 + i), ttl);
        }
        assert_eq!(store.len(), 100_010);
        advance(&store, ttl * 2);
        assert_eq!(store.len(), 100_010, "expiry alone removes nothing");
        // Further activity: each write reclaims a bounded slice.
        for i in 0..2_000 {
            store.end_now(key(2_000_000 + i), Duration::ZERO);
        }
        assert!(store.len() < 100, "still {} entries", store.len());
        assert_eq!(
            store.inner.owners.users(),
            0,
            "interned users are released too"
        );
        assert_eq!(store.inner.written.lock().unwrap().len(), store.len());
    }

    #[test]
    fn one_write_examines_a_bounded_number_of_entries() {
        let store = MemoryStore::new();
        for i in 0..10_000 {
            store
                .bind_now(key(i), &user(i), Duration::from_secs(60), NO_LIMIT)
                .unwrap();
        }
        advance(&store, Duration::from_secs(120));
        store.end_now(key(99_999), Duration::from_secs(60));
        assert_eq!(store.len(), 10_001 - RECLAIM_STEP);
    }

    #[test]
    fn live_entries_are_not_reclaimed() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        for i in 0..1_000 {
            store.bind_now(key(i), &user(i), ttl, NO_LIMIT).unwrap();
        }
        for i in 0..1_000 {
            store.end_now(key(10_000 + i), ttl);
        }
        assert_eq!(store.len(), 2_000);
        for i in 0..1_000 {
            assert_eq!(store.lookup_sync(key(i), None), Lookup::Bound(user(i)));
        }
    }

    #[test]
    fn the_limit_counts_live_bindings_of_one_owner() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        for i in 0..3 {
            assert_eq!(
                store.bind_now(key(i), &alice(), ttl, 3).unwrap(),
                BindOutcome::Created
            );
        }
        let BindOutcome::LimitReached { retry_after } =
            store.bind_now(key(3), &alice(), ttl, 3).unwrap()
        else {
            panic!("over the limit");
        };
        assert!(
            retry_after <= ttl && retry_after > ttl / 2,
            "{retry_after:?}"
        );
        assert_eq!(
            store.lookup_sync(key(3), None),
            Lookup::Missing,
            "nothing written"
        );
        // Another owner is not affected; a bound key reports itself first.
        assert_eq!(
            store.bind_now(key(3), &user(1), ttl, 3).unwrap(),
            BindOutcome::Created
        );
        assert_eq!(
            store.bind_now(key(0), &alice(), ttl, 3).unwrap(),
            BindOutcome::AlreadyBound(alice())
        );
        // Ending one frees a slot; so does expiry.
        store.end_now(key(0), ttl);
        assert_eq!(
            store.bind_now(key(4), &alice(), ttl, 3).unwrap(),
            BindOutcome::Created
        );
        assert!(matches!(
            store.bind_now(key(5), &alice(), ttl, 3).unwrap(),
            BindOutcome::LimitReached { .. }
        ));
        advance(&store, ttl * 2);
        assert_eq!(
            store.bind_now(key(5), &alice(), ttl, 3).unwrap(),
            BindOutcome::Created
        );
        // Sweeping frees slots too (and never double counts).
        advance(&store, ttl * 2);
        store.sweep();
        for i in 6..9 {
            assert_eq!(
                store.bind_now(key(i), &alice(), ttl, 3).unwrap(),
                BindOutcome::Created
            );
        }
        assert!(matches!(
            store.bind_now(key(9), &alice(), ttl, 3).unwrap(),
            BindOutcome::LimitReached { .. }
        ));
    }

    #[test]
    fn the_limit_holds_under_concurrent_binds() {
        for run in 0..50 {
            let store = MemoryStore::new();
            let created: usize = on_eight_threads(&store, move |store, t| {
                (0..4)
                    .filter(|i| {
                        let k = key(run * 100 + t * 4 + i);
                        let ttl = Duration::from_secs(60);
                        store.bind_now(k, &alice(), ttl, 5).unwrap() == BindOutcome::Created
                    })
                    .count()
            })
            .into_iter()
            .sum();
            assert_eq!(created, 5, "run {run}");
        }
    }

    /// Runs `work(store, t)` on threads `t` = 0..8 that start together; their results.
    fn on_eight_threads<T: Send + 'static>(
        store: &MemoryStore,
        work: impl Fn(&MemoryStore, usize) -> T + Clone + Send + 'static,
    ) -> Vec<T> {
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (store, barrier, work) = (store.clone(), barrier.clone(), work.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    work(&store, t)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    #[test]
    fn anonymous_bindings_take_at_most_half_the_capacity() {
        let store = MemoryStore::with_capacity(10);
        let ttl = Duration::from_secs(60);
        let created = (0..20)
            .filter(|&i| {
                store
                    .bind_now(key(i), &Owner::Anonymous, ttl, NO_LIMIT)
                    .unwrap()
                    == BindOutcome::Created
            })
            .count();
        assert_eq!(created, 5);
        for i in 0..5 {
            assert_eq!(
                store
                    .bind_now(key(100 + i), &user(i), ttl, NO_LIMIT)
                    .unwrap(),
                BindOutcome::Created
            );
        }
        assert_eq!(
            store
                .bind_now(key(200), &user(9), ttl, NO_LIMIT)
                .unwrap_err()
                .kind(),
            StoreErrorKind::CapacityExceeded,
            "full of live bindings"
        );
    }

    #[test]
    fn a_full_store_evicts_tombstones_oldest_first_before_refusing() {
        let store = MemoryStore::with_capacity(4);
        let ttl = Duration::from_secs(60);
        for i in 0..4 {
            store.end_now(key(i), ttl);
        }
        assert_eq!(store.len(), 4);
        assert_eq!(
            store.bind_now(key(10), &alice(), ttl, NO_LIMIT).unwrap(),
            BindOutcome::Created
        );
        assert_eq!(store.len(), 4);
        assert_eq!(
            store.lookup_sync(key(0), None),
            Lookup::Missing,
            "the oldest tombstone went"
        );
        assert_eq!(store.lookup_sync(key(1), None), Lookup::Ended);
        for i in 11..14 {
            assert_eq!(
                store.bind_now(key(i), &alice(), ttl, NO_LIMIT).unwrap(),
                BindOutcome::Created
            );
        }
        assert_eq!(
            store
                .bind_now(key(14), &alice(), ttl, NO_LIMIT)
                .unwrap_err()
                .kind(),
            StoreErrorKind::CapacityExceeded,
            "a live binding is never evicted"
        );
        for i in 10..14 {
            assert_eq!(store.lookup_sync(key(i), None), Lookup::Bound(alice()));
        }
    }

    #[test]
    fn one_owner_s_tombstones_are_bounded_by_twice_its_limit() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(24 * 3600);
        store.end_now(key(1_000_000), ttl); // no owner's: kept
        store.bind_now(key(1_000_001), &user(1), ttl, 5).unwrap();
        store.end_now(key(1_000_001), ttl); // bob's: kept
        for i in 0..1_500 {
            assert_eq!(
                store.bind_now(key(i), &alice(), ttl, 5).unwrap(),
                BindOutcome::Created,
                "cycle {i}"
            );
            store.end_now(key(i), ttl);
            // The two others', and alice's newest 5 and the one just ended.
            assert!(
                store.len() <= 2 + 5 + 1,
                "cycle {i}: {} entries",
                store.len()
            );
        }
        for i in 0..1_500 {
            let found = store.lookup_sync(key(i), None);
            assert!(found == Lookup::Ended || found == Lookup::Missing, "{i}");
        }
        for i in 1_495..1_500 {
            assert_eq!(store.lookup_sync(key(i), None), Lookup::Ended, "{i}");
        }
        assert_eq!(store.lookup_sync(key(1_000_000), None), Lookup::Ended);
        assert_eq!(store.lookup_sync(key(1_000_001), None), Lookup::Ended);
        let entry = store.inner.owners.entry(&alice());
        assert!(lock(&entry.keys).ended.len() <= 6);
        assert!(lock(&entry.keys).live.len() <= 1);
    }

    #[test]
    fn binds_and_ends_of_one_owner_on_many_threads_keep_the_bound() {
        for run in 0..20 {
            let store = MemoryStore::new();
            on_eight_threads(&store, move |store, t| {
                for i in 0..200 {
                    let k = key(run * 10_000 + t * 1_000 + i);
                    let ttl = Duration::from_secs(60);
                    if store.bind_now(k, &alice(), ttl, 3).unwrap() == BindOutcome::Created {
                        store.end_now(k, ttl);
                    }
                }
            });
            assert!(store.len() <= 2 * 3, "run {run}: {} entries", store.len());
        }
    }

    #[test]
    fn ending_an_ended_session_keeps_its_tombstone_and_its_expiry() {
        let store = MemoryStore::new();
        let k = key(1);
        store
            .bind_now(k, &alice(), Duration::from_secs(60), NO_LIMIT)
            .unwrap();
        store.end_now(k, Duration::from_secs(10));
        store.end_now(k, Duration::from_secs(1_000));
        assert!(store.remaining(k).unwrap() <= 10_000);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn tombstones_keep_their_owner_until_they_go() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        store.bind_now(key(1), &alice(), ttl, NO_LIMIT).unwrap();
        store.end_now(key(1), ttl);
        assert_eq!(
            store.inner.owners.users(),
            1,
            "the tombstone holds alice's entry"
        );
        assert_eq!(store.inner.owners.entry(&alice()).live(), 0);
        advance(&store, ttl * 2);
        assert_eq!(store.sweep(), 1);
        assert_eq!(store.inner.owners.users(), 0);
    }

    #[test]
    fn task_records_take_no_session_slot_and_are_never_evicted() {
        let store = MemoryStore::with_capacity(4);
        let ttl = Duration::from_secs(60);
        for i in 0..2 {
            assert_eq!(
                store.bind_task_now(key(100 + i), &alice(), ttl).unwrap(),
                BindOutcome::Created
            );
        }
        assert_eq!(store.inner.owners.entry(&alice()).live(), 0);
        assert_eq!(
            store.bind_now(key(0), &alice(), ttl, 1).unwrap(),
            BindOutcome::Created
        );
        store.end_now(key(1), ttl);
        assert_eq!(store.len(), 4);
        // Full: a bind evicts the tombstone, never a task record.
        assert_eq!(
            store.bind_now(key(2), &user(1), ttl, 1).unwrap(),
            BindOutcome::Created
        );
        assert_eq!(store.lookup_sync(key(1), None), Lookup::Missing);
        for i in 0..2 {
            assert_eq!(store.task_owner_now(key(100 + i), None), Some(alice()));
        }
        assert_eq!(
            store
                .bind_task_now(key(102), &alice(), ttl)
                .unwrap_err()
                .kind(),
            StoreErrorKind::CapacityExceeded
        );
        // Expired, a record is reclaimed like any entry, and its key can be recorded anew.
        advance(&store, ttl * 2);
        assert_eq!(store.task_owner_now(key(100), Some(ttl)), None);
        assert_eq!(
            store.bind_task_now(key(100), &user(2), ttl).unwrap(),
            BindOutcome::Created
        );
    }
}
