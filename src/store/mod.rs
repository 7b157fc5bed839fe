//! Where bindings and task records live: the [`BindingStore`] trait, its value types, and the
//! stores.
//!
//! # Semantics every store must have
//!
//! The conformance suite checks them (`store::conformance::run_all`, with the feature
//! `conformance`); every store in this crate runs it.
//!
//! - [`bind`](BindingStore::bind) is an **atomic insert-if-absent** with a TTL. It never
//!   overwrites: when the key is already bound (to anyone) or ended, it reports what it found.
//! - `bind` also enforces a **per-owner limit** on live bindings, in the same atomic step: when
//!   the owner already holds `limit` live bindings (bound, not expired, not ended), nothing is
//!   written and it reports [`BindOutcome::LimitReached`]. All anonymous sessions count as one
//!   owner, so the anonymous budget is one limit shared by every anonymous caller, and never
//!   touches a user's budget. Ending a binding ([`end`](BindingStore::end)) or its expiry frees
//!   its slot. A store must enforce the limit itself: the trait has no default that could skip
//!   it, and the conformance suite checks it. Task records never count.
//! - [`lookup`](BindingStore::lookup) returns the [`Owner`], [`Lookup::Ended`], or
//!   [`Lookup::Missing`] (unknown or expired). With `slide` set, it keeps an active binding alive
//!   for `slide` from now, but writes at most once per half TTL, never on every request.
//! - [`end`](BindingStore::end) replaces whatever is there with a tombstone that lives for its own
//!   TTL. It is idempotent: ending an ended session leaves its tombstone as it is.
//! - **Tombstones are bounded per owner.** A tombstone that replaces a binding belongs to that
//!   binding's owner. Before `bind` creates a binding for an owner, in the same atomic step, it
//!   evicts that owner's oldest tombstones (those closest to expiry) beyond the `limit` newest
//!   (a store may cap the work of one bind, but evicts at least one while there are more than
//!   `limit`). Since only ending one of the owner's
//!   bindings makes one of its tombstones, an owner holds at most `2 × limit` live bindings and
//!   tombstones together, and always keeps the tombstones of its newest `limit` ended sessions.
//!   An evicted tombstone reads as [`Lookup::Missing`]: its session still answers 404 on every
//!   replica, and is never adopted by a caller (the layer never forwards a request on a missing
//!   session). What it loses: a `DELETE` of it answers 404 instead of 204, and a bind of the same
//!   id would now succeed, which only an inner server that mints an id it used before can
//!   cause. A tombstone of a key that held no binding (an `end` racing the binding's expiry)
//!   belongs to no owner; each one needs a binding that lived its whole TTL.
//! - Expired bindings and tombstones are reclaimed by the store itself (no sweeper to run).
//! - Errors keep their source and say, through [`StoreErrorKind`], whether they are transient
//!   ([`StoreErrorKind::Unavailable`]: answer 503, retry) or not ([`StoreErrorKind::Corrupt`]:
//!   the stored value does not parse; the layer fails closed).
//!
//! # Session limits
//!
//! The layer passes each bind a limit: [`max_sessions_per_identity`] for a user,
//! [`max_anonymous_sessions`] for the anonymous owner. What counts is a live binding: bound, not
//! ended, not expired. So a slot is freed by the owner's `DELETE` (the layer tombstones the
//! session), by a refusal that ends the session, and by expiry. A binding kept alive by sliding
//! expiry keeps its slot. Since a binding lives for the binding TTL after its last use, sessions
//! a client abandoned keep counting until then: size the limit and the binding TTL together
//! (docs/deployment.md in the repository).
//!
//! [`MemoryStore`] counts exactly, per process. `RedisStore` (feature `redis`) counts in Redis,
//! in the bind's own script, so every replica shares the count; on Redis Cluster its keys need a
//! common hash tag.
//!
//! [`max_sessions_per_identity`]: crate::SessionBindingLayer::max_sessions_per_identity
//! [`max_anonymous_sessions`]: crate::SessionBindingLayer::max_anonymous_sessions
//!
//! # Task records
//!
//! A store also holds task records (MCP tasks): who created each task, under a key of its own
//! ([`KeyDerivation::task`]). They are a kind of record apart from session bindings:
//! [`bind_task`](BindingStore::bind_task) is an insert-if-absent with a TTL that counts towards
//! no limit and evicts nothing, [`task_owner`](BindingStore::task_owner) reads one back (and
//! slides it as [`lookup`](BindingStore::lookup) slides a binding), and neither ever sees a
//! session binding or tombstone.
//!
//! # Keys
//!
//! Keys are [`SessionKey`]s, a hash of the session or task id, so a dump of the store hands out
//! no usable id. Each store says how its keys are derived ([`BindingStore::key_derivation`]):
//! [`MemoryStore`] keys them with random keys of its own ([`KeyDerivation::local`]),
//! `RedisStore` with the deployment's [`KeySecret`] ([`KeyDerivation::keyed`]), or without one
//! with a secret this crate publishes ([`KeyDerivation::public`]).
//!
//! The trait returns boxed futures, so it works both as a generic parameter and behind
//! `Arc<dyn BindingStore>`.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use futures::future::BoxFuture;

use crate::Identity;

pub(crate) mod aged;
pub(crate) mod codec;
#[cfg(any(test, feature = "conformance"))]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod keys;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisConnection, RedisOptions, RedisStore};
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use memory::MemoryStore;

pub use keys::{KeyDerivation, KeySecret, ShortSecret};

/// The store key of a session or a task: 128 bits derived from its id by the store's
/// [`KeyDerivation`].
///
/// The session id is a bearer secret; the key is not. Its [`Debug`](fmt::Debug) and
/// [`short`](Self::short) forms are safe to log.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionKey([u8; 16]);

/// Hashes eight of the key's bytes: the key is already a uniform hash.
impl std::hash::Hash for SessionKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.0[..8]);
    }
}

impl SessionKey {
    /// The key of `session_id` under the public derivation: for the crate's own tests.
    #[cfg(test)]
    pub(crate) fn from_session_id(session_id: &str) -> Self {
        static KEYS: std::sync::LazyLock<KeyDerivation> =
            std::sync::LazyLock::new(KeyDerivation::public);
        KEYS.session(session_id)
    }

    /// The raw key bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The key as 32 lowercase hex digits (for text stores such as Redis).
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0.iter().fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// The first 8 hex digits: enough to correlate log lines, nothing to replay.
    #[must_use]
    pub fn short(&self) -> String {
        self.to_hex()[..8].to_owned()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({}…)", self.short())
    }
}

/// What [`BindingStore::bind`] and [`BindingStore::bind_task`] write: a key, its owner, and how
/// long the record lives.
///
/// ```
/// use std::time::Duration;
/// use mcp_session_binding::store::{KeyDerivation, Owner, Record};
///
/// let keys = KeyDerivation::local();
/// let record = Record::new(keys.session("s-1"), &Owner::Anonymous, Duration::from_secs(60));
/// assert_eq!(record.ttl, Duration::from_secs(60));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The key: a [`KeyDerivation::session`] key for a binding, a [`KeyDerivation::task`] key
    /// for a task record.
    pub key: SessionKey,
    /// Who the session or task belongs to.
    pub owner: &'a Owner,
    /// How long the record lives, unless a lookup slides it.
    pub ttl: Duration,
}

impl<'a> Record<'a> {
    /// A record of `key` for `owner`, living for `ttl`.
    #[must_use]
    pub const fn new(key: SessionKey, owner: &'a Owner, ttl: Duration) -> Self {
        Self { key, owner, ttl }
    }
}

/// What the [`BindingStore`] methods return: a boxed future of the answer or a [`StoreError`].
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// Who a session belongs to.
///
/// ```
/// use mcp_session_binding::{Identity, store::Owner};
///
/// let owner = Owner::User(Identity::new("https://i.example", "alice").unwrap());
/// assert!(owner.admits(Some(&Identity::new("https://i.example", "alice").unwrap())));
/// assert!(!owner.admits(None));
/// assert!(Owner::Anonymous.admits(None));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// An anonymous session: only callers without an identity match it.
    Anonymous,
    /// A session bound to `(iss, sub)`.
    User(Identity),
}

impl Owner {
    /// The owner a caller would create: [`Owner::User`] with an identity, else
    /// [`Owner::Anonymous`].
    ///
    /// ```
    /// use mcp_session_binding::{Identity, store::Owner};
    ///
    /// let alice = Identity::new("https://i.example", "alice").unwrap();
    /// assert_eq!(Owner::of(Some(&alice)), Owner::User(alice.clone()));
    /// assert_eq!(Owner::of(None), Owner::Anonymous);
    /// ```
    #[must_use]
    pub fn of(caller: Option<&Identity>) -> Self {
        caller.map_or(Self::Anonymous, |id| Self::User(id.clone()))
    }

    /// Whether `caller` may use a session owned by `self` (constant-time on the identity).
    ///
    /// ```
    /// use mcp_session_binding::{Identity, store::Owner};
    ///
    /// let alice = Identity::new("https://i.example", "alice").unwrap();
    /// let bob = Identity::new("https://i.example", "bob").unwrap();
    /// let owner = Owner::User(alice.clone());
    /// assert!(owner.admits(Some(&alice)));
    /// assert!(!owner.admits(Some(&bob)));
    /// assert!(!owner.admits(None));
    /// assert!(Owner::Anonymous.admits(None));
    /// ```
    #[must_use]
    pub fn admits(&self, caller: Option<&Identity>) -> bool {
        match (self, caller) {
            (Self::Anonymous, None) => true,
            (Self::User(owner), Some(caller)) => owner == caller,
            _ => false,
        }
    }
}

/// What [`BindingStore::lookup`] found.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use mcp_session_binding::store::{BindingStore, Lookup, MemoryStore, Owner, Record};
///
/// let store = MemoryStore::new();
/// let key = store.key_derivation().session("session-1");
/// assert_eq!(store.lookup(key, None).await.unwrap(), Lookup::Missing);
/// store.bind(Record::new(key, &Owner::Anonymous, Duration::from_secs(60)), 10).await.unwrap();
/// assert_eq!(store.lookup(key, None).await.unwrap(), Lookup::Bound(Owner::Anonymous));
/// store.end(key, Duration::from_secs(60)).await.unwrap();
/// assert_eq!(store.lookup(key, None).await.unwrap(), Lookup::Ended);
/// # });
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A live binding.
    Bound(Owner),
    /// A tombstone: the session was ended.
    Ended,
    /// Nothing: unknown or expired.
    Missing,
}

/// What [`BindingStore::bind`] did.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use mcp_session_binding::{Identity, store::{BindOutcome, BindingStore, MemoryStore, Owner, Record}};
///
/// let store = MemoryStore::new();
/// let alice = Owner::User(Identity::new("https://i.example", "alice").unwrap());
/// let ttl = Duration::from_secs(60);
/// let (first, second) = (store.key_derivation().session("s1"), store.key_derivation().session("s2"));
/// assert_eq!(store.bind(Record::new(first, &alice, ttl), 1).await.unwrap(), BindOutcome::Created);
/// assert_eq!(store.bind(Record::new(first, &Owner::Anonymous, ttl), 1).await.unwrap(), BindOutcome::AlreadyBound(alice.clone()));
/// // A limit of one live session per owner.
/// assert!(matches!(store.bind(Record::new(second, &alice, ttl), 1).await.unwrap(), BindOutcome::LimitReached { .. }));
/// # });
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindOutcome {
    /// The binding was created.
    Created,
    /// The key was already bound; nothing was written. Holds the existing owner.
    AlreadyBound(Owner),
    /// The key holds a tombstone; nothing was written.
    AlreadyEnded,
    /// The owner already holds its limit of live bindings; nothing was written. The layer
    /// answers 429 with `Retry-After` and ends the new inner session.
    LimitReached {
        /// How long until the owner's oldest live binding expires, if nothing frees a slot
        /// sooner (its owner ending a session frees one at once). At least 1 ms.
        retry_after: Duration,
    },
}

/// What [`BindingStore::end_owner`] ended.
///
/// ```
/// use mcp_session_binding::store::Revoked;
///
/// let revoked = Revoked::default();
/// assert_eq!((revoked.sessions, revoked.tasks), (0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Revoked {
    /// Live session bindings turned into tombstones.
    pub sessions: usize,
    /// Live task records removed.
    pub tasks: usize,
}

/// What kind of failure a [`StoreError`] is.
///
/// ```
/// use mcp_session_binding::store::{StoreError, StoreErrorKind};
///
/// let err = StoreError::unavailable("connection refused");
/// assert_eq!(err.kind(), StoreErrorKind::Unavailable);
/// assert!(err.is_transient());
/// assert!(!StoreError::corrupt("bad value").is_transient());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Transient: the store cannot be reached or timed out. The layer answers 503 and keeps the
    /// session.
    Unavailable,
    /// The stored value does not parse (corrupt or written by an older version). The layer
    /// treats it as a mismatch and fails closed.
    Corrupt,
    /// The store is full and refuses new bindings (it never evicts a live one).
    CapacityExceeded,
}

/// A binding store failure. Keeps its source error.
///
/// ```
/// use mcp_session_binding::store::{StoreError, StoreErrorKind};
///
/// let err = StoreError::unavailable(std::io::Error::other("connection refused"));
/// assert_eq!(err.kind(), StoreErrorKind::Unavailable);
/// assert!(err.is_transient());
/// assert!(std::error::Error::source(&err).is_some());
/// ```
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// A failure of `kind`, caused by `source`.
    ///
    /// ```
    /// use mcp_session_binding::store::{StoreError, StoreErrorKind};
    ///
    /// let err = StoreError::new(StoreErrorKind::CapacityExceeded, "10000 bindings");
    /// assert_eq!(err.kind(), StoreErrorKind::CapacityExceeded);
    /// ```
    pub fn new(
        kind: StoreErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }

    /// A transient failure: connection refused, timeout, …
    ///
    /// ```
    /// use mcp_session_binding::store::StoreError;
    /// let err = StoreError::unavailable(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    /// assert!(err.is_transient()); // the layer answers 503 and keeps the session
    /// ```
    pub fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(StoreErrorKind::Unavailable, source)
    }

    /// A stored value that does not parse.
    ///
    /// ```
    /// use mcp_session_binding::store::{StoreError, StoreErrorKind};
    /// let err = StoreError::corrupt("sha256:9f86d081");
    /// assert_eq!(err.kind(), StoreErrorKind::Corrupt); // the layer fails closed
    /// ```
    pub fn corrupt(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(StoreErrorKind::Corrupt, source)
    }

    /// The kind of failure.
    ///
    /// ```
    /// use mcp_session_binding::store::{StoreError, StoreErrorKind};
    /// assert_eq!(StoreError::unavailable("timeout").kind(), StoreErrorKind::Unavailable);
    /// ```
    #[must_use]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether retrying later may succeed.
    ///
    /// ```
    /// use mcp_session_binding::store::StoreError;
    /// assert!(StoreError::unavailable("timeout").is_transient());
    /// assert!(!StoreError::corrupt("bad value").is_transient());
    /// ```
    #[must_use]
    pub fn is_transient(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Unavailable => "binding store unavailable",
            StoreErrorKind::Corrupt => "stored binding is corrupt",
            StoreErrorKind::CapacityExceeded => "binding store is full",
        };
        write!(f, "{what}: {}", self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Storage for session bindings and task records. See the [module docs](self) for the
/// semantics.
///
/// Implementations hold a cheap-to-clone handle (an `Arc` inside), like [`MemoryStore`].
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use std::{sync::Arc, time::Duration};
/// use mcp_session_binding::{Identity, store::*};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store: Arc<dyn BindingStore> = Arc::new(MemoryStore::new());
/// let key = store.key_derivation().session("s-1");
/// let alice = Owner::User(Identity::new("https://i.example", "alice").unwrap());
/// let ttl = Duration::from_secs(60);
/// let limit = 100; // live bindings per owner
/// assert_eq!(store.bind(Record::new(key, &alice, ttl), limit).await.unwrap(), BindOutcome::Created);
/// assert_eq!(store.bind(Record::new(key, &Owner::Anonymous, ttl), limit).await.unwrap(), BindOutcome::AlreadyBound(alice.clone()));
/// assert_eq!(store.lookup(key, None).await.unwrap(), Lookup::Bound(alice.clone()));
/// store.end(key, ttl).await.unwrap();
/// assert_eq!(store.lookup(key, None).await.unwrap(), Lookup::Ended);
/// // A task record: a key space, and a kind of record, of its own.
/// let task = store.key_derivation().task("t-1");
/// assert_eq!(store.bind_task(Record::new(task, &alice, ttl)).await.unwrap(), BindOutcome::Created);
/// assert_eq!(store.task_owner(task, None).await.unwrap(), Some(alice));
/// # });
/// # }
/// ```
pub trait BindingStore: Send + Sync + 'static {
    /// Binds the record's `key` to its `owner` for its `ttl`, if the key is absent (or expired)
    /// and the owner holds fewer than `limit` live bindings. Atomic: the check of the key, the count and the write
    /// are one step, so concurrent binds (from any replica) never exceed `limit`.
    ///
    /// A key already bound or ended is reported as such whatever the count. `limit` 0 refuses
    /// every bind; `usize::MAX` means no limit.
    ///
    /// A bind that creates a binding first evicts the owner's oldest tombstones beyond `limit`,
    /// in the same step (see [Tombstones are bounded per owner](self)); the tombstones of other
    /// owners are never touched.
    fn bind<'a>(&'a self, record: Record<'a>, limit: usize) -> StoreFuture<'a, BindOutcome>;

    /// Looks `key` up. With `slide`, keeps a live binding alive for `slide` from now, writing at
    /// most once per half of `slide`.
    fn lookup(&self, key: SessionKey, slide: Option<Duration>) -> StoreFuture<'_, Lookup>;

    /// [`lookup`](Self::lookup), with the time the binding was made (by its
    /// [`bind`](Self::bind), on the store's clock) when the answer is [`Lookup::Bound`]: what
    /// [`SessionBindingLayer::max_session_age`] reads. `None` for any other answer, and for a
    /// binding whose time the store does not know (one written before it recorded times).
    ///
    /// The default answers `None` with every lookup: a store that does not override it cannot
    /// end sessions at a maximum age, and the conformance suite
    /// (`bindings_remember_when_they_were_made`) fails on it.
    ///
    /// [`SessionBindingLayer::max_session_age`]: crate::SessionBindingLayer::max_session_age
    fn lookup_with_age(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> StoreFuture<'_, (Lookup, Option<SystemTime>)> {
        let lookup = self.lookup(key, slide);
        Box::pin(async move { lookup.await.map(|found| (found, None)) })
    }

    /// A synchronous [`lookup_with_age`](Self::lookup_with_age), as
    /// [`lookup_now`](Self::lookup_now) is of [`lookup`](Self::lookup). `None` (the default)
    /// means "ask [`lookup_with_age`](Self::lookup_with_age)".
    fn lookup_with_age_now(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> Option<Result<(Lookup, Option<SystemTime>), StoreError>> {
        let _ = (key, slide);
        None
    }

    /// Ends the session: a tombstone for `tombstone_ttl` replaces the binding, and counts
    /// towards its owner's tombstones, which [`bind`](Self::bind) keeps bounded (see the
    /// [module docs](self)). Idempotent: a tombstone already there is left as it is.
    fn end(&self, key: SessionKey, tombstone_ttl: Duration) -> StoreFuture<'_, ()>;

    /// Ends every live session of `owner` (each binding becomes a tombstone for
    /// `tombstone_ttl`, as [`end`](Self::end) makes one, so the session answers 404 on every
    /// replica and its slot is free) and removes every live task record of `owner` (its tasks
    /// then answer as unknown). Other owners' sessions and tasks are not touched. For operators:
    /// "log alice out everywhere".
    ///
    /// The work is bounded by what the owner holds (its live bindings, at most its session
    /// limit, its tombstone-bounded keys and its live task records), never by the size of the
    /// store. Sessions and tasks the owner creates while the call runs may survive it: call it
    /// after the owner's tokens stop being accepted.
    ///
    /// The default answers an error ([`StoreErrorKind::Unavailable`]): a store that does not
    /// override it cannot revoke, and the conformance suite
    /// (`ending_one_owner_ends_all_its_sessions_and_tasks`) fails on it.
    fn end_owner<'a>(
        &'a self,
        owner: &'a Owner,
        tombstone_ttl: Duration,
    ) -> StoreFuture<'a, Revoked> {
        let _ = (owner, tombstone_ttl);
        Box::pin(async {
            Err(StoreError::unavailable(
                "this binding store cannot end an owner's sessions",
            ))
        })
    }

    /// Records that the record's `owner` created the task under its `key` (a
    /// [`KeyDerivation::task`] key), for its `ttl`, if no live task record is there: [`BindOutcome::Created`], else
    /// [`BindOutcome::AlreadyBound`] with the recorded owner, and nothing written. Atomic, as
    /// [`bind`](Self::bind) is. A task record is not a session binding: it counts towards no
    /// owner's limit, evicts no tombstone, and is never evicted to make room; it expires.
    fn bind_task<'a>(&'a self, record: Record<'a>) -> StoreFuture<'a, BindOutcome>;

    /// Who created the task under `key`: `None` when no live record is there. With `slide`,
    /// keeps the record alive for `slide` from now, writing at most once per half of `slide`.
    fn task_owner(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> StoreFuture<'_, Option<Owner>>;

    /// A synchronous [`lookup`](Self::lookup), for stores that can answer without waiting (such as
    /// [`MemoryStore`]). The layer uses it to serve a matching request without allocating.
    /// `None` (the default) means "ask [`lookup`](Self::lookup)".
    fn lookup_now(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> Option<Result<Lookup, StoreError>> {
        let _ = (key, slide);
        None
    }

    /// How the layers derive this store's keys from session and task ids: the same on every
    /// call, and on every process that shares the store. A store read by one process only can
    /// use [`KeyDerivation::local`] (as [`MemoryStore`] does), a shared one
    /// [`KeyDerivation::keyed`] with the deployment's [`KeySecret`].
    fn key_derivation(&self) -> &KeyDerivation;
}

impl<T: BindingStore + ?Sized> BindingStore for Arc<T> {
    fn bind<'a>(&'a self, record: Record<'a>, limit: usize) -> StoreFuture<'a, BindOutcome> {
        (**self).bind(record, limit)
    }

    fn lookup(&self, key: SessionKey, slide: Option<Duration>) -> StoreFuture<'_, Lookup> {
        (**self).lookup(key, slide)
    }

    fn lookup_with_age(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> StoreFuture<'_, (Lookup, Option<SystemTime>)> {
        (**self).lookup_with_age(key, slide)
    }

    fn lookup_with_age_now(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> Option<Result<(Lookup, Option<SystemTime>), StoreError>> {
        (**self).lookup_with_age_now(key, slide)
    }

    fn end(&self, key: SessionKey, tombstone_ttl: Duration) -> StoreFuture<'_, ()> {
        (**self).end(key, tombstone_ttl)
    }

    fn end_owner<'a>(
        &'a self,
        owner: &'a Owner,
        tombstone_ttl: Duration,
    ) -> StoreFuture<'a, Revoked> {
        (**self).end_owner(owner, tombstone_ttl)
    }

    fn bind_task<'a>(&'a self, record: Record<'a>) -> StoreFuture<'a, BindOutcome> {
        (**self).bind_task(record)
    }

    fn task_owner(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> StoreFuture<'_, Option<Owner>> {
        (**self).task_owner(key, slide)
    }

    fn lookup_now(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> Option<Result<Lookup, StoreError>> {
        (**self).lookup_now(key, slide)
    }

    fn key_derivation(&self) -> &KeyDerivation {
        (**self).key_derivation()
    }
}

impl fmt::Debug for dyn BindingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<BindingStore>")
    }
}
