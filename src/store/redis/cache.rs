//! The client-side cache of a [`RedisStore`](super::RedisStore): bindings read from Redis, kept
//! in the process while Redis promises to say when they change (RESP3 `CLIENT TRACKING` in
//! broadcast mode over a connection of its own), and never longer than a bound past the last
//! proof that its promises are arriving.
//!
//! # Why a cached answer is never staler than the bound
//!
//! - **Invalidations.** The tracking connection asks Redis for an invalidation of every key under
//!   the store's prefix that changes (`SET`, `PEXPIRE`, expiry, eviction, `DEL`, `FLUSHDB`),
//!   whoever changed it. The connection's reader applies each invalidation as it reads it, before
//!   it reads anything that came after.
//! - **Reads racing writes.** A read marks its key as being read (a ticket) *before* it is sent,
//!   and its answer is kept only if the mark is still there when the answer arrives. A write that
//!   Redis runs after the read drops the mark through its invalidation, so the answer, possibly
//!   stale already, is not kept; a write before the read is in the answer. Answers read before
//!   the tracking was on are never kept: turning it on drops every entry and mark.
//! - **Silence.** Every `interval` the tracking connection sends a `PING`. When its answer
//!   arrives, every invalidation Redis produced before the `PING` ran has been applied, so the
//!   time the `PING` was sent becomes the cache's *confirmed* instant. Entries are served only
//!   while `now < confirmed + max_staleness`: an invalidation produced at `t` is applied, or
//!   every entry has stopped being served, by `t + max_staleness`, whether the connection is
//!   slow, hung or gone. A failed `PING` or a dropped connection empties the cache until the
//!   tracking is on again on a new connection.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock, RwLockWriteGuard, Weak},
    time::{Duration, SystemTime},
};

use ::redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value, aio::SendError};
use tokio::time::Instant;

use super::super::{Lookup, SessionKey};

/// The pause before connecting again after the tracking connection failed, at first, and at most.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Bindings read from Redis, kept while the tracking connection confirms that nothing changed
/// them: see the [module](self).
#[derive(Debug)]
pub(super) struct LocalCache {
    max_staleness: Duration,
    capacity: usize,
    /// The store's key prefix: invalidated keys outside it (or not a session key) are ignored.
    prefix: Arc<str>,
    /// Read-locked by the lookups it serves, write-locked by the rest.
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Every invalidation produced before this instant has been applied; `None` while there is no
    /// tracking connection (nothing is served or kept then).
    confirmed: Option<Instant>,
    /// Which tracking connection `confirmed` is about: each one that turns tracking on takes the
    /// next number, so that a late disconnection of an older one stops nothing.
    connection: u64,
    entries: HashMap<SessionKey, Entry>,
    next_ticket: u64,
}

#[derive(Debug)]
enum Entry {
    /// A read of the key is on its way; its answer is kept if this ticket is still here.
    Reading(u64),
    /// What Redis held, as of the last invalidation applied (with a binding's bind time).
    Known(Lookup, Option<SystemTime>),
}

/// A read's claim to fill its key: see [`LocalCache::reserve`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(u64);

impl LocalCache {
    pub(super) fn new(max_staleness: Duration, capacity: usize, prefix: Arc<str>) -> Self {
        Self {
            max_staleness,
            capacity,
            prefix,
            state: RwLock::default(),
        }
    }

    fn state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`get_aged`](Self::get_aged) without the bind time.
    #[cfg(test)]
    pub(super) fn get(&self, key: SessionKey) -> Option<Lookup> {
        self.get_aged(key).map(|(found, _)| found)
    }

    /// [`fill_aged`](Self::fill_aged) without a bind time.
    #[cfg(test)]
    pub(super) fn fill(&self, key: SessionKey, ticket: Ticket, found: &Lookup) {
        self.fill_aged(key, ticket, found, None);
    }

    /// The cached answer for `key`, if there is one and the cache is confirmed recently enough.
    pub(super) fn get_aged(&self, key: SessionKey) -> Option<(Lookup, Option<SystemTime>)> {
        let found = self.cached(key);
        crate::metrics::cache_lookup(found.is_some());
        found
    }

    fn cached(&self, key: SessionKey) -> Option<(Lookup, Option<SystemTime>)> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let confirmed = state.confirmed?;
        if Instant::now() >= confirmed.checked_add(self.max_staleness)? {
            return None;
        }
        match state.entries.get(&key)? {
            Entry::Known(lookup, at) => Some((lookup.clone(), *at)),
            Entry::Reading(_) => None,
        }
    }

    /// Marks `key` as being read, before the read is sent: `None` while nothing is tracked.
    pub(super) fn reserve(&self, key: SessionKey) -> Option<Ticket> {
        let mut state = self.state();
        state.confirmed?;
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&key) {
            // Full: start over rather than keep an eviction order (every forgotten binding costs
            // one read, which fills it again).
            state.entries.clear();
        }
        state.next_ticket += 1;
        let ticket = state.next_ticket;
        state.entries.insert(key, Entry::Reading(ticket));
        Some(Ticket(ticket))
    }

    /// Keeps what the read of `ticket` found, if nothing changed the key since it was sent. Only
    /// bindings and tombstones are kept: a missing key stays a read.
    pub(super) fn fill_aged(
        &self,
        key: SessionKey,
        ticket: Ticket,
        found: &Lookup,
        at: Option<SystemTime>,
    ) {
        let mut state = self.state();
        let Some(entry) = state.entries.get_mut(&key) else {
            return;
        };
        if !matches!(entry, Entry::Reading(t) if *t == ticket.0) {
            return;
        }
        if matches!(found, Lookup::Missing) {
            state.entries.remove(&key);
        } else {
            *entry = Entry::Known(found.clone(), at);
        }
    }

    /// Forgets `key` (this store is about to change it).
    pub(super) fn forget(&self, key: SessionKey) {
        self.state().entries.remove(&key);
    }

    /// Applies one push message of tracking connection `connection` (0 before it turned
    /// tracking on).
    fn apply(&self, push: &PushInfo, connection: u64) {
        if matches!(push.kind, PushKind::Invalidate) {
            crate::metrics::cache_invalidated();
        }
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    let mut state = self.state();
                    for key in keys {
                        if let Some(key) = self.session_key(key) {
                            state.entries.remove(&key);
                        }
                    }
                }
                // After FLUSHDB / FLUSHALL, Redis names no key: everything changed.
                _ => self.state().entries.clear(),
            },
            PushKind::Disconnection => {
                let mut state = self.state();
                if state.connection == connection {
                    state.confirmed = None;
                    state.entries.clear();
                }
            }
            _ => {}
        }
    }

    /// The session key that a Redis key of this store holds: the prefix, then 32 hex digits.
    fn session_key(&self, key: &Value) -> Option<SessionKey> {
        let Value::BulkString(key) = key else {
            return None;
        };
        let hex = key.strip_prefix(self.prefix.as_bytes())?;
        if hex.len() != 32 {
            return None;
        }
        let mut bytes = [0; 16];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |d: u8| char::from(d).to_digit(16);
            *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
        }
        Some(SessionKey(bytes))
    }

    /// The tracking is on, as of a command sent at `sent`: start from nothing.
    /// Returns the connection's number.
    fn start(&self, sent: Instant) -> u64 {
        let mut state = self.state();
        state.entries.clear();
        state.confirmed = Some(sent);
        state.connection += 1;
        state.connection
    }

    /// A `PING` sent at `sent` was answered: every invalidation before it has been applied.
    fn confirm(&self, sent: Instant) {
        let mut state = self.state();
        if let Some(confirmed) = &mut state.confirmed {
            *confirmed = (*confirmed).max(sent);
        }
    }

    /// The tracking connection is gone: serve and keep nothing until it is back.
    fn stop(&self) {
        let mut state = self.state();
        state.confirmed = None;
        state.entries.clear();
    }

    /// How often the tracking connection proves it is alive.
    fn interval(&self) -> Duration {
        (self.max_staleness / 4).clamp(Duration::from_millis(1), Duration::from_secs(1))
    }
}

/// Keeps `cache` tracked through connections of `client` (RESP3) until the cache is dropped:
/// connects, turns broadcast tracking on for the prefix, `PING`s every interval, and starts
/// over on any failure. Each command is bounded by `timeout`.
pub(super) async fn track(client: Client, cache: Weak<LocalCache>, timeout: Duration) {
    let mut retry = RETRY_MIN;
    loop {
        let Some(strong) = cache.upgrade() else {
            return;
        };
        let (prefix, interval) = (strong.prefix.clone(), strong.interval());
        drop(strong);
        let began = Instant::now();
        match tracked(&client, &cache, &prefix, interval, timeout).await {
            Ok(()) => return,
            Err(err) => {
                // A connection that lasted starts the pauses over.
                if began.elapsed() > RETRY_MAX * 2 {
                    retry = RETRY_MIN;
                }
                tracing::warn!(
                    target: "mcp_session_binding",
                    error = %err,
                    "redis client-side cache: tracking connection failed; serving no cached binding until it is back"
                );
                if let Some(cache) = cache.upgrade() {
                    cache.stop();
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// One tracking connection's life: `Ok` when the cache is dropped, `Err` when the connection
/// fails.
async fn tracked(
    client: &Client,
    cache: &Weak<LocalCache>,
    prefix: &str,
    interval: Duration,
    timeout: Duration,
) -> Result<(), ::redis::RedisError> {
    let pushed = cache.clone();
    // This connection's number, once it turned tracking on.
    let number = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let numbered = number.clone();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_push_sender(move |push: PushInfo| {
            let cache = pushed.upgrade().ok_or(SendError)?;
            cache.apply(&push, numbered.load(std::sync::atomic::Ordering::Acquire));
            Ok::<(), SendError>(())
        });
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let sent = Instant::now();
    let () = ::redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(prefix)
        .query_async(&mut conn)
        .await?;
    match cache.upgrade() {
        Some(cache) => number.store(cache.start(sent), std::sync::atomic::Ordering::Release),
        None => return Ok(()),
    }
    tracing::debug!(target: "mcp_session_binding", "redis client-side cache: tracking on");
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let sent = Instant::now();
        let _pong: Value = ::redis::cmd("PING").query_async(&mut conn).await?;
        match cache.upgrade() {
            Some(cache) => cache.confirm(sent),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Identity, store::Owner};

    fn cache() -> LocalCache {
        LocalCache::new(Duration::from_secs(1), 3, Arc::from("p:"))
    }

    fn bound() -> Lookup {
        Lookup::Bound(Owner::User(
            Identity::new("https://i.example", "alice").unwrap(),
        ))
    }

    fn invalidate(keys: &[&str]) -> PushInfo {
        PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(
                keys.iter()
                    .map(|k| Value::BulkString(k.as_bytes().to_vec()))
                    .collect(),
            )],
        }
    }

    #[test]
    fn nothing_is_kept_or_served_before_the_tracking_is_on() {
        let cache = cache();
        let key = SessionKey([1; 16]);
        assert!(cache.reserve(key).is_none());
        cache.start(Instant::now());
        let ticket = cache.reserve(key).unwrap();
        cache.fill(key, ticket, &bound());
        assert_eq!(cache.get(key), Some(bound()));
        cache.stop();
        assert_eq!(cache.get(key), None);
    }

    #[test]
    fn an_invalidation_during_a_read_drops_its_answer() {
        let cache = cache();
        cache.start(Instant::now());
        let key = SessionKey([0xab; 16]);
        let ticket = cache.reserve(key).unwrap();
        cache.apply(&invalidate(&[&format!("p:{}", key.to_hex())]), 1);
        cache.fill(key, ticket, &bound());
        assert_eq!(cache.get(key), None);
        // A later read's ticket, not an older one, fills the key.
        let old = cache.reserve(key).unwrap();
        let new = cache.reserve(key).unwrap();
        cache.fill(key, old, &Lookup::Ended);
        assert_eq!(cache.get(key), None);
        cache.fill(key, new, &Lookup::Ended);
        assert_eq!(cache.get(key), Some(Lookup::Ended));
    }

    #[test]
    fn invalidations_name_keys_by_prefix_and_hex() {
        let cache = cache();
        cache.start(Instant::now());
        let key = SessionKey([0x5c; 16]);
        let fill = |cache: &LocalCache| {
            let ticket = cache.reserve(key).unwrap();
            cache.fill(key, ticket, &bound());
        };
        fill(&cache);
        let hex = key.to_hex();
        for other in [
            format!("q:{hex}"),
            format!("p:{}", &hex[..31]),
            format!("p:{hex}0"),
            format!("p:{}", hex.to_uppercase().replace('C', "g")),
            "p:owner:abc".to_owned(),
        ] {
            cache.apply(&invalidate(&[&other]), 1);
            assert_eq!(cache.get(key), Some(bound()), "{other}");
        }
        cache.apply(&invalidate(&["p:nothing", &format!("p:{hex}")]), 1);
        assert_eq!(cache.get(key), None);
        fill(&cache);
        // FLUSHDB: a null instead of keys.
        cache.apply(
            &PushInfo {
                kind: PushKind::Invalidate,
                data: vec![Value::Nil],
            },
            1,
        );
        assert_eq!(cache.get(key), None);
    }

    #[test]
    fn only_the_current_connections_disconnection_stops_the_cache() {
        let cache = cache();
        let key = SessionKey([3; 16]);
        let disconnection = PushInfo {
            kind: PushKind::Disconnection,
            data: Vec::new(),
        };
        assert_eq!(cache.start(Instant::now()), 1);
        assert_eq!(cache.start(Instant::now()), 2);
        let ticket = cache.reserve(key).unwrap();
        cache.fill(key, ticket, &bound());
        // The first connection's reader ends late: nothing changes.
        cache.apply(&disconnection, 1);
        cache.apply(&disconnection, 0);
        assert_eq!(cache.get(key), Some(bound()));
        cache.apply(&disconnection, 2);
        assert_eq!(cache.get(key), None);
        assert!(cache.reserve(key).is_none());
    }

    #[test]
    fn entries_are_served_only_within_max_staleness_of_the_last_confirmation() {
        let cache = cache();
        let long_ago = Instant::now() - Duration::from_secs(5);
        cache.start(long_ago);
        let key = SessionKey([7; 16]);
        let ticket = cache.reserve(key).unwrap();
        cache.fill(key, ticket, &bound());
        assert_eq!(cache.get(key), None, "last confirmed 5 s ago, bound 1 s");
        cache.confirm(Instant::now());
        assert_eq!(cache.get(key), Some(bound()));
        // An older PING's answer never moves the confirmation back.
        cache.confirm(long_ago);
        assert_eq!(cache.get(key), Some(bound()));
    }

    #[test]
    fn missing_keys_are_not_kept_and_a_full_cache_starts_over() {
        let cache = cache();
        cache.start(Instant::now());
        let key = |n| SessionKey([n; 16]);
        let ticket = cache.reserve(key(0)).unwrap();
        cache.fill(key(0), ticket, &Lookup::Missing);
        assert_eq!(cache.get(key(0)), None);
        for n in 1..=3 {
            let ticket = cache.reserve(key(n)).unwrap();
            cache.fill(key(n), ticket, &Lookup::Ended);
        }
        assert_eq!(cache.state().entries.len(), 3);
        let ticket = cache.reserve(key(4)).unwrap();
        cache.fill(key(4), ticket, &Lookup::Ended);
        assert_eq!(cache.state().entries.len(), 1);
        assert_eq!(cache.get(key(1)), None);
        assert_eq!(cache.get(key(4)), Some(Lookup::Ended));
    }
}
