//! The memory layout of [`MemoryStore`](super::MemoryStore), behind a small interface so that the
//! store's logic reads plainly:
//!
//! - [`Slot`]: one map value in 24 bytes, an owner pointer, one word that packs the expiry
//!   with the record's [`Kind`], and the time a binding was made (for
//!   `SessionBindingLayer::max_session_age`);
//! - [`Owners`]: interned owners, so that sessions of one user share one copy of the identity,
//!   and users of one issuer one copy of the issuer, with each owner's live count;
//! - [`Map`]: the table, hashed by eight bytes of the key (already a uniform hash) instead of
//!   hashing it again.
//!
//! Each is kept because a measurement justifies it (December 2026, this machine):
//!
//! - the key hasher: the default SipHash instead costs the owner path 1,653 instructions a
//!   request instead of 1,481 (`cargo bench --bench instructions`), +12%;
//! - the issuer interning: without it, a binding costs 138 bytes instead of 131 (10 sessions
//!   per user) and 417 instead of 353 (one session per user), +18%
//!   (`cargo run --release --example memory_per_binding`);
//! - the user interning also holds each owner's live count and lists, which the limit and the
//!   bound on tombstones need.

use std::{
    collections::VecDeque,
    hash::{BuildHasherDefault, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use dashmap::DashMap;

use super::super::{Owner, SessionKey};
use crate::Identity;

/// The store's table: session and task keys to their records.
pub(super) type Map = DashMap<SessionKey, Slot, BuildHasherDefault<KeyHasher>>;

/// What a [`Slot`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A session binding: counts towards its owner's live bindings while it exists.
    Bound,
    /// A session's tombstone.
    Ended,
    /// A task record: never counted.
    Task,
}

/// The bits of [`Slot::word`] that say the kind; the rest is the expiry in milliseconds, capped
/// below them (2^62 ms is some 146 million years).
const ENDED: u64 = 1 << 63;
const TASK: u64 = 1 << 62;
const EXPIRY: u64 = TASK - 1;

/// One map value: 24 bytes.
pub(super) struct Slot {
    /// The owner of a binding or task, or of the binding a tombstone replaced (which keeps the
    /// owner's entry, with its list of tombstones, alive). `None` for a tombstone of a key that
    /// held no binding when it was ended.
    owner: Option<Arc<OwnerEntry>>,
    /// The expiry, with the kind's bit. The kind never changes in place: a new slot replaces
    /// the old one.
    word: AtomicU64,
    /// When a binding was made, on the store's clock (0 for a tombstone or task record).
    made_at: u64,
}

impl Slot {
    /// A binding of `owner`: counts towards its live bindings until dropped.
    #[cfg(test)]
    pub(super) fn bound(owner: Arc<OwnerEntry>, expires_at: u64) -> Self {
        Self::bound_at(owner, expires_at, 0)
    }

    /// A binding of `owner` made at `made_at` (the store's clock).
    pub(super) fn bound_at(owner: Arc<OwnerEntry>, expires_at: u64, made_at: u64) -> Self {
        owner.live.fetch_add(1, Ordering::Relaxed);
        Self {
            owner: Some(owner),
            word: AtomicU64::new(expires_at.min(EXPIRY)),
            made_at,
        }
    }

    /// When a binding was made, on the store's clock.
    pub(super) fn made_at(&self) -> u64 {
        self.made_at
    }

    /// A tombstone; `owner`: the owner of the binding it replaces, if any.
    pub(super) fn ended(owner: Option<Arc<OwnerEntry>>, expires_at: u64) -> Self {
        Self {
            owner,
            word: AtomicU64::new(expires_at.min(EXPIRY) | ENDED),
            made_at: 0,
        }
    }

    /// A task record of `owner`.
    pub(super) fn task(owner: Arc<OwnerEntry>, expires_at: u64) -> Self {
        Self {
            owner: Some(owner),
            word: AtomicU64::new(expires_at.min(EXPIRY) | TASK),
            made_at: 0,
        }
    }

    pub(super) fn kind(&self) -> Kind {
        let word = self.word.load(Ordering::Relaxed);
        if word & ENDED != 0 {
            Kind::Ended
        } else if word & TASK != 0 {
            Kind::Task
        } else {
            Kind::Bound
        }
    }

    pub(super) fn expires_at(&self) -> u64 {
        self.word.load(Ordering::Relaxed) & EXPIRY
    }

    pub(super) fn expired(&self, now: u64) -> bool {
        self.expires_at() <= now
    }

    /// Pushes the expiry of a binding or task out to `now + slide`, once less than half of
    /// `slide` is left (at most two writes per slide). A tombstone keeps its expiry.
    pub(super) fn slide(&self, now: u64, slide: u64) {
        if self.kind() == Kind::Ended || self.expires_at().saturating_sub(now) >= slide / 2 {
            return;
        }
        // The kind bits are the same in both words, so the max of the words is the max of the
        // expiries.
        let kind = self.word.load(Ordering::Relaxed) & !EXPIRY;
        let refreshed = now.saturating_add(slide).min(EXPIRY);
        self.word.fetch_max(kind | refreshed, Ordering::Relaxed);
    }

    /// Whether this is a binding (not a tombstone or task) of `owner`.
    pub(super) fn is_bound_to(&self, owner: &Arc<OwnerEntry>) -> bool {
        self.kind() == Kind::Bound && self.is_of(owner)
    }

    /// Whether this slot belongs to `owner`.
    pub(super) fn is_of(&self, owner: &Arc<OwnerEntry>) -> bool {
        self.owner.as_ref().is_some_and(|o| Arc::ptr_eq(o, owner))
    }

    /// The owner's interned entry, if the slot has an owner.
    pub(super) fn owner_entry(&self) -> Option<&Arc<OwnerEntry>> {
        self.owner.as_ref()
    }

    /// The owner, as the store API names it (a tombstone of no owner reads as anonymous; the
    /// store never reports a tombstone's owner).
    pub(super) fn owner(&self) -> Owner {
        match self.owner.as_deref() {
            Some(owner) if !owner.anonymous => Owner::User(owner.id.clone()),
            _ => Owner::Anonymous,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(owner) = &self.owner
            && self.kind() == Kind::Bound
        {
            owner.live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One owner: a user, or the anonymous owner.
pub(super) struct OwnerEntry {
    /// The user; for the anonymous owner, empty strings (which no [`Identity::new`] accepts).
    id: Identity,
    anonymous: bool,
    /// Bound slots of this owner that exist, expired ones included until reclaimed: counted by
    /// [`Slot`] itself (up when a bound slot is made, down when it is dropped), so every way a
    /// binding leaves the map (end, expiry, sweep, replacement) frees its place.
    live: AtomicUsize,
    /// The keys of this owner's bindings and tombstones, which the store keeps; locked by the
    /// binds and ends of this owner.
    pub(super) keys: Mutex<OwnerKeys>,
}

/// The keys of one owner, oldest first. Both lists may still name keys since ended, expired,
/// evicted or reclaimed: the store drops them when it examines them.
#[derive(Default)]
pub(super) struct OwnerKeys {
    /// Keys this owner bound.
    pub(super) live: VecDeque<SessionKey>,
    /// Keys whose binding of this owner an `end` turned into a tombstone, in the order ended.
    pub(super) ended: VecDeque<SessionKey>,
    /// Keys of this owner's task records, for `end_owner`.
    pub(super) tasks: VecDeque<SessionKey>,
}

impl OwnerEntry {
    fn new(id: Option<Identity>) -> Self {
        Self {
            anonymous: id.is_none(),
            id: id.unwrap_or_else(|| Identity::from_shared(Arc::from(""), Arc::from(""))),
            live: AtomicUsize::new(0),
            keys: Mutex::new(OwnerKeys::default()),
        }
    }

    /// Bound slots of this owner that exist.
    pub(super) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// An interned user, looked up by its identity.
struct UserKey(Arc<OwnerEntry>);

impl std::borrow::Borrow<Identity> for UserKey {
    fn borrow(&self) -> &Identity {
        &self.0.id
    }
}

impl std::hash::Hash for UserKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl PartialEq for UserKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for UserKey {}

/// The interned owners: one entry per user that some slot refers to, and the one anonymous
/// owner every anonymous session shares.
pub(super) struct Owners {
    /// A set (the key is the shared entry): 8 bytes a user in the table.
    users: DashMap<UserKey, ()>,
    /// One copy of each issuer string, shared by all of its users.
    issuers: DashMap<Arc<str>, ()>,
    anonymous: Arc<OwnerEntry>,
}

impl Default for Owners {
    fn default() -> Self {
        Self {
            users: DashMap::new(),
            issuers: DashMap::new(),
            anonymous: Arc::new(OwnerEntry::new(None)),
        }
    }
}

impl Owners {
    /// The entry of `owner`, interned.
    pub(super) fn entry(&self, owner: &Owner) -> Arc<OwnerEntry> {
        let Owner::User(id) = owner else {
            return Arc::clone(&self.anonymous);
        };
        if let Some(user) = self.users.get(id) {
            return Arc::clone(&user.key().0);
        }
        let (iss, sub) = id.shared_parts();
        let id = Identity::from_shared(self.issuer(iss), sub.clone());
        // A concurrent bind may have interned the same user since: the table keeps the first.
        let user = UserKey(Arc::new(OwnerEntry::new(Some(id))));
        Arc::clone(&self.users.entry(user).or_insert(()).key().0)
    }

    /// The entry of `owner`, if it is interned (a user with no slot is not).
    pub(super) fn find(&self, owner: &Owner) -> Option<Arc<OwnerEntry>> {
        match owner {
            Owner::Anonymous => Some(Arc::clone(&self.anonymous)),
            Owner::User(id) => self.users.get(id).map(|user| Arc::clone(&user.key().0)),
        }
    }

    fn issuer(&self, iss: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.issuers.get(&**iss) {
            return Arc::clone(shared.key());
        }
        Arc::clone(self.issuers.entry(Arc::clone(iss)).or_insert(()).key())
    }

    /// Drops a slot that left the map. When it was the last slot of a user, the user's entry
    /// goes too (unless a bind holds it meanwhile).
    pub(super) fn release(&self, slot: Slot) {
        let Some(owner) = slot.owner.clone() else {
            return;
        };
        drop(slot);
        if !owner.anonymous && Arc::strong_count(&owner) == 2 {
            // Two: the table's and `owner`. A bind in flight holds a third.
            self.users
                .remove_if(&owner.id, |shared, ()| Arc::strong_count(&shared.0) == 2);
        }
    }

    /// Forgets the users and issuers no slot refers to any more.
    pub(super) fn sweep(&self) {
        self.users
            .retain(|shared, ()| Arc::strong_count(&shared.0) > 1);
        self.issuers
            .retain(|shared, ()| Arc::strong_count(shared) > 1);
    }

    /// Interned users.
    #[cfg(test)]
    pub(super) fn users(&self) -> usize {
        self.users.len()
    }

    /// Interned issuers.
    #[cfg(test)]
    pub(super) fn issuers(&self) -> usize {
        self.issuers.len()
    }
}

/// The keys are already uniform hashes (SipHash or keyed BLAKE3 of the ids), so the map uses
/// eight of their bytes as the hash instead of hashing them again.
#[derive(Default)]
pub(super) struct KeyHasher(u64);

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

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn alice() -> Owner {
        Owner::User(Identity::new("https://i.example", "alice").unwrap())
    }

    #[test]
    fn a_slot_takes_24_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
    }

    #[test]
    fn kinds_and_expiries_round_trip() {
        let owners = Owners::default();
        let entry = owners.entry(&alice());
        for (slot, kind) in [
            (Slot::bound(entry.clone(), 5), Kind::Bound),
            (Slot::ended(Some(entry.clone()), 5), Kind::Ended),
            (Slot::ended(None, 5), Kind::Ended),
            (Slot::task(entry.clone(), 5), Kind::Task),
        ] {
            assert_eq!(slot.kind(), kind);
            assert_eq!(slot.expires_at(), 5);
            assert!(!slot.expired(4) && slot.expired(5));
        }
        // A huge expiry never spills into the kind bits.
        let far = Slot::bound(entry.clone(), u64::MAX);
        assert_eq!((far.kind(), far.expires_at()), (Kind::Bound, EXPIRY));
        let far = Slot::task(entry, u64::MAX);
        assert_eq!((far.kind(), far.expires_at()), (Kind::Task, EXPIRY));
    }

    #[test]
    fn only_bindings_count_and_dropping_one_uncounts_it() {
        let owners = Owners::default();
        let entry = owners.entry(&alice());
        let bound = Slot::bound(entry.clone(), 10);
        let task = Slot::task(entry.clone(), 10);
        let ended = Slot::ended(Some(entry.clone()), 10);
        assert_eq!(entry.live(), 1);
        assert!(bound.is_bound_to(&entry) && !task.is_bound_to(&entry));
        assert!(task.is_of(&entry) && ended.is_of(&entry));
        drop((task, ended));
        assert_eq!(entry.live(), 1);
        drop(bound);
        assert_eq!(entry.live(), 0);
    }

    #[test]
    fn sliding_writes_once_under_half_and_never_revives_a_tombstone() {
        let owners = Owners::default();
        let entry = owners.entry(&alice());
        for slot in [
            Slot::bound(entry.clone(), 100),
            Slot::task(entry.clone(), 100),
        ] {
            let kind = slot.kind();
            slot.slide(0, 100);
            assert_eq!(slot.expires_at(), 100, "more than half left");
            slot.slide(60, 100);
            assert_eq!((slot.kind(), slot.expires_at()), (kind, 160));
        }
        let ended = Slot::ended(None, 100);
        ended.slide(90, 100);
        assert_eq!((ended.kind(), ended.expires_at()), (Kind::Ended, 100));
    }

    #[test]
    fn users_share_their_entry_and_issuers_their_string() {
        let owners = Owners::default();
        let a = owners.entry(&alice());
        let fresh = Owner::User(Identity::new(String::from("https://i.example"), "alice").unwrap());
        assert!(Arc::ptr_eq(&a, &owners.entry(&fresh)));
        let bob = owners.entry(&Owner::User(
            Identity::new(String::from("https://i.example"), "bob").unwrap(),
        ));
        assert!(Arc::ptr_eq(a.id.shared_parts().0, bob.id.shared_parts().0));
        assert_eq!(owners.users(), 2);
        assert!(Arc::ptr_eq(
            &owners.entry(&Owner::Anonymous),
            &owners.entry(&Owner::Anonymous)
        ));
        let anonymous = Slot::bound(owners.entry(&Owner::Anonymous), 1);
        assert_eq!(anonymous.owner(), Owner::Anonymous);
        assert_eq!(Slot::task(a, 1).owner(), alice());
    }

    #[test]
    fn a_user_leaves_with_its_last_slot() {
        let owners = Owners::default();
        let entry = owners.entry(&alice());
        let (one, two) = (Slot::bound(entry.clone(), 1), Slot::task(entry.clone(), 1));
        drop(entry);
        owners.release(one);
        assert_eq!(owners.users(), 1, "the task still refers to alice");
        owners.release(two);
        assert_eq!(owners.users(), 0);
        // Sweeping forgets users and issuers nothing refers to.
        drop(owners.entry(&alice()));
        owners.sweep();
        assert_eq!((owners.users(), owners.issuers()), (0, 0));
    }

    #[test]
    fn the_key_hasher_uses_the_key_bytes() {
        let build = BuildHasherDefault::<KeyHasher>::default();
        let (a, b) = (SessionKey([1; 16]), SessionKey([2; 16]));
        assert_ne!(build.hash_one(a), build.hash_one(b));
        assert_eq!(build.hash_one(a), build.hash_one(SessionKey([1; 16])));
    }
}
