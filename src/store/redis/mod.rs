//! [`RedisStore`]: bindings in Redis, shared by every replica (feature `redis`).

use std::{
    fmt, io,
    sync::{Arc, LazyLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::{
    Client, ConnectionAddr, IntoConnectionInfo, ProtocolVersion, RedisError, Script, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
    io::tcp::{TcpSettings, socket2},
};
use futures::future::FutureExt;

mod cache;

use self::cache::LocalCache;
use super::{
    BindOutcome, BindingStore, KeyDerivation, KeySecret, Lookup, Owner, Record, Revoked,
    SessionKey, StoreError, StoreFuture,
    codec::{self, Stored},
};

/// The key prefix a [`RedisStore`] uses unless told otherwise.
const DEFAULT_PREFIX: &str = "mcpsb:";
/// The bound on one operation unless told otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Redis refuses an expiry that overflows its clock; no binding needs more than ten years.
const MAX_TTL_MS: u64 = 10 * 365 * 24 * 60 * 60 * 1000;

/// The middle of an owner set's key: `<prefix>owner:<SHA-1 hex of the stored owner value>`.
const OWNER_SET: &str = "owner:";
/// The middle of the key of an owner's tombstone set: `<prefix>ended:<SHA-1 hex of the value>`.
const ENDED_SET: &str = "ended:";
/// The middle of a task record's key: `<prefix>task:<key hex>`.
const TASK_RECORD: &str = "task:";
/// The middle of the key of an owner's task index: `<prefix>tasks:<SHA-1 hex of the value>`.
const TASK_SET: &str = "tasks:";
/// How many keys one run of [`END_OWNER_LUA`] ends at most: Redis runs nothing else meanwhile.
const END_OWNER_BATCH: usize = 512;

/// Lua: `owner_of(value)`, the owner encoding of a stored binding value, without the bind time
/// the bind script writes before it (`mcpsb1:at:<ms>:`); any other value as it is.
macro_rules! lua_owner_of {
    () => {
        "local function owner_of(v)\n  if type(v) ~= 'string' then return v end\n  return string.match(v, '^mcpsb1:at:%d+:(.*)$') or v\nend\n"
    };
}

/// Lua: the current Redis time in milliseconds, as `now`.
macro_rules! lua_now {
    () => {
        "local time = redis.call('TIME')\nlocal now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)\n"
    };
}

/// `bind`, in one round trip: insert-if-absent, the owner's limit, and the bound on its
/// tombstones, atomically.
///
/// `KEYS[1]` the key; `ARGV[1]` the owner's encoding, `ARGV[2]` the TTL in milliseconds,
/// `ARGV[3]` the limit, `ARGV[4]` the owner-set prefix, `ARGV[5]` the tombstone-set prefix,
/// `ARGV[6]` the tombstone encoding. Returns the value already at the key, an integer
/// (milliseconds until the owner's oldest binding expires) when the owner is at its limit, or
/// nil once bound.
///
/// The owner set is a sorted set of the owner's session keys scored by expiry (Redis time, ms):
/// members past their score are dropped first. At the limit, up to 64 of the oldest members are
/// checked against their keys, so a binding removed behind the store's back (`DEL`, eviction)
/// stops counting.
///
/// Before it binds, the owner's tombstone set (see [`END_LUA`]) is cut down to `limit` members,
/// those closest to expiry first (at most 64 a bind), and each popped key that still holds a
/// tombstone is deleted. Members whose tombstone expired have the lowest scores, so they go
/// first and cost no live tombstone.
const BIND_LUA: &str = concat!(
    lua_owner_of!(),
    r"
local old = redis.call('GET', KEYS[1])
if old then
  return old
end
local ttl = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local set = ARGV[4] .. redis.sha1hex(ARGV[1])
",
    lua_now!(),
    r"
redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
if redis.call('ZCARD', set) >= limit then
  for _, member in ipairs(redis.call('ZRANGE', set, 0, 63)) do
    if owner_of(redis.pcall('GET', member)) ~= ARGV[1] then
      redis.call('ZREM', set, member)
    end
  end
  if redis.call('ZCARD', set) >= limit then
    local oldest = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
    local wait = ttl
    if oldest[2] then
      wait = tonumber(oldest[2]) - now
    end
    return math.max(wait, 1)
  end
end
local ended = ARGV[5] .. redis.sha1hex(ARGV[1])
local excess = redis.call('ZCARD', ended) - limit
if excess > 0 then
  local popped = redis.call('ZPOPMIN', ended, math.min(excess, 64))
  for i = 1, #popped, 2 do
    if redis.pcall('GET', popped[i]) == ARGV[6] then
      redis.call('DEL', popped[i])
    end
  end
end
redis.call('SET', KEYS[1], 'mcpsb1:at:' .. string.format('%.0f', now) .. ':' .. ARGV[1], 'PX', ttl)
redis.call('ZADD', set, now + ttl, KEYS[1])
if redis.call('PTTL', set) < ttl then
  redis.call('PEXPIRE', set, ttl)
end
return false
"
);

/// `lookup` and `task_owner` with a slide, in one round trip: read the value and, only for a
/// live binding or task record (not a tombstone) with less than half the slide left, push its
/// expiry out to the full slide; for a binding, its score in the owner set with it (so the
/// owner's count keeps counting it).
///
/// `KEYS[1]` the key, `ARGV[1]` the slide in milliseconds, `ARGV[2]` the tombstone encoding,
/// `ARGV[3]` the owner-set prefix (empty for a task record: it is in no owner set). Returns nil
/// for a missing key, else `{value, ms left}` (`-1` for a key without expiry, written by hand,
/// which is left alone).
const SLIDE_LUA: &str = concat!(
    lua_owner_of!(),
    r"
local value = redis.call('GET', KEYS[1])
if not value then
  return false
end
local left = redis.call('PTTL', KEYS[1])
if value ~= ARGV[2] then
  local slide = tonumber(ARGV[1])
  if left >= 0 and left * 2 < slide then
    redis.call('PEXPIRE', KEYS[1], slide)
    left = slide
    if ARGV[3] ~= '' then
      local set = ARGV[3] .. redis.sha1hex(owner_of(value))
",
    lua_now!(),
    r"
      redis.call('ZADD', set, now + slide, KEYS[1])
      if redis.call('PTTL', set) < slide then
        redis.call('PEXPIRE', set, slide)
      end
    end
  end
end
return {value, left}
"
);

/// `end`, in one round trip: the tombstone replaces whatever is there (a value of another type
/// too) but a tombstone, which keeps its own expiry. A binding it replaces leaves its owner's
/// set, freeing the slot, and its key joins the owner's tombstone set, which [`BIND_LUA`] keeps
/// bounded.
///
/// `KEYS[1]` the key, `ARGV[1]` the tombstone encoding, `ARGV[2]` its TTL in milliseconds,
/// `ARGV[3]` the owner-set prefix, `ARGV[4]` the tombstone-set prefix.
///
/// The tombstone set is a sorted set of the keys of the owner's tombstones, scored by their
/// expiry in microseconds of Redis time (so that ends a millisecond apart keep their order;
/// formatted by hand, as Lua would round it to 14 digits). It expires with its last tombstone.
const END_LUA: &str = concat!(
    lua_owner_of!(),
    r"
local old = redis.pcall('GET', KEYS[1])
if old == ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if type(old) == 'string' then
  local owner = redis.sha1hex(owner_of(old))
  redis.call('ZREM', ARGV[3] .. owner, KEYS[1])
  local ended = ARGV[4] .. owner
  local ttl = tonumber(ARGV[2])
",
    lua_now!(),
    r"
  local expires = (tonumber(time[1]) * 1000000 + tonumber(time[2])) + ttl * 1000
  redis.call('ZADD', ended, string.format('%.0f', expires), KEYS[1])
  if redis.call('PTTL', ended) < ttl then
    redis.call('PEXPIRE', ended, ttl)
  end
end
return 1
"
);

/// `bind_task`, in one round trip: insert-if-absent (`SET NX GET`), and, once recorded, the key
/// joins its owner's task index, a sorted set scored by expiry (Redis time, ms) whose members
/// past their score are dropped first, so it holds about the owner's live task records. The
/// slide script keeps a slid record's score.
///
/// `KEYS[1]` the task key; `ARGV[1]` the owner's encoding, `ARGV[2]` the TTL in milliseconds,
/// `ARGV[3]` the task-index prefix. Returns the value already there, or nil once recorded.
const TASK_LUA: &str = concat!(
    r"
local old = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'PX', ARGV[2])
if old then
  return old
end
local ttl = tonumber(ARGV[2])
local set = ARGV[3] .. redis.sha1hex(ARGV[1])
",
    lua_now!(),
    r"
redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
redis.call('ZADD', set, now + ttl, KEYS[1])
if redis.call('PTTL', set) < ttl then
  redis.call('PEXPIRE', set, ttl)
end
return false
"
);

/// `end_owner`, one batch: up to `ARGV[6]` members of the owner's set (its live bindings) and,
/// after them, of its task index, each taken out of its set. A member still bound to the owner
/// becomes a tombstone for `ARGV[3]` ms and joins the owner's tombstone set (as [`END_LUA`]
/// does); a task record still the owner's is deleted; anything else (expired, since bound to
/// someone else) is left as it is.
///
/// `KEYS[1]` any key of the store's prefix (it only routes the script to the prefix's slot on
/// a Cluster); `ARGV[1]` the owner's encoding, `ARGV[2]` the tombstone encoding, `ARGV[3]` the
/// tombstone TTL (ms), `ARGV[4]` the batch size, `ARGV[5]` the owner-set prefix, `ARGV[6]` the
/// task-index prefix, `ARGV[7]` the tombstone-set prefix. Returns `{sessions ended, tasks
/// removed, members left}`.
const END_OWNER_LUA: &str = concat!(
    lua_owner_of!(),
    r"
local batch = tonumber(ARGV[4])
local ttl = tonumber(ARGV[3])
local hash = redis.sha1hex(ARGV[1])
local owned, indexed, ended = ARGV[5] .. hash, ARGV[6] .. hash, ARGV[7] .. hash
",
    lua_now!(),
    r"
local expires = string.format('%.0f', (tonumber(time[1]) * 1000000 + tonumber(time[2])) + ttl * 1000)
local sessions, tasks = 0, 0
local members = redis.call('ZRANGE', owned, 0, batch - 1)
for _, member in ipairs(members) do
  if owner_of(redis.pcall('GET', member)) == ARGV[1] then
    redis.call('SET', member, ARGV[2], 'PX', ttl)
    redis.call('ZADD', ended, expires, member)
    sessions = sessions + 1
  end
  redis.call('ZREM', owned, member)
end
if sessions > 0 and redis.call('PTTL', ended) < ttl then
  redis.call('PEXPIRE', ended, ttl)
end
if #members < batch then
  for _, member in ipairs(redis.call('ZRANGE', indexed, 0, batch - 1 - #members)) do
    if redis.pcall('GET', member) == ARGV[1] then
      redis.call('DEL', member)
      tasks = tasks + 1
    end
    redis.call('ZREM', indexed, member)
  end
end
return {sessions, tasks, redis.call('ZCARD', owned) + redis.call('ZCARD', indexed)}
"
);

static BIND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(BIND_LUA));
static TASK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TASK_LUA));
static END_OWNER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(END_OWNER_LUA));
static SLIDE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SLIDE_LUA));

/// Bindings in Redis: the store for several replicas behind a load balancer.
///
/// Every replica that points at the same Redis (and [prefix](RedisOptions::prefix)) sees the same
/// bindings, tombstones and task records, so a session bound on one replica is checked on all
/// of them, and a session ended on one answers 404 on all of them.
///
/// - **What it holds.** One string per session and one per task record, under the prefix and
///   the [`SessionKey`] in hex (a keyed hash of the id: a dump of Redis hands out no usable
///   id), and per owner two sorted sets: its live bindings, which the limit counts, and its
///   tombstones, which a bind keeps to the limit. Every key has an expiry. A value that does not
///   decode, or a key of another Redis type, is
///   [`Corrupt`](super::StoreErrorKind::Corrupt): the layer fails closed on it.
/// - **Cost.** Each operation is one round trip (a script where it must be atomic). A checked
///   request is a plain `GET` while its binding has more than half its slide left, so a busy
///   session costs one read per request and one write per half slide.
/// - **Deployment.** Redis 7.0 or later (or Valkey 7.2+): one server or primary endpoint
///   ([`connect`](Self::connect)), or a Redis Cluster
///   ([`connect_cluster`](Self::connect_cluster)), where every key of a store shares one hash
///   tag, so a store lives on one shard. Use the primary, with `maxmemory-policy noeviction`.
/// - **Failures.** Every operation is bounded by the [timeout](RedisOptions::timeout). A
///   timeout, a lost connection or a server error is
///   [`Unavailable`](super::StoreErrorKind::Unavailable) (the layer answers 503 and keeps the
///   session), and the connection comes back by itself. An operation that meets a dead
///   connection runs once more on a fresh one; a retried bind never weakens insert-if-absent or
///   the limit.
///
/// The keys and values, the commands of each operation, memory per session, TTLs, Cluster,
/// TLS, failover and keepalive are described in docs/deployment.md in the repository.
///
/// # Example
///
/// ```no_run
/// use std::{sync::Arc, time::Duration};
/// use mcp_session_binding::store::{BindingStore, RedisOptions, RedisStore, StoreError};
///
/// # async fn run() -> Result<(), StoreError> {
/// let options = RedisOptions::new()
///     .prefix("myapp:mcpsb:")
///     .timeout(Duration::from_millis(500));
/// let store = RedisStore::connect_with("redis://127.0.0.1:6379/", options).await?;
/// // Clones share one connection; hand one to every layer of this process.
/// let shared: Arc<dyn BindingStore> = Arc::new(store.clone());
/// # let _ = shared;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisStore {
    conn: RedisConnection,
    prefix: Arc<str>,
    /// `prefix` + [`OWNER_SET`].
    owner_prefix: Arc<str>,
    /// `prefix` + [`ENDED_SET`].
    ended_prefix: Arc<str>,
    /// `prefix` + [`TASK_RECORD`].
    task_prefix: Arc<str>,
    /// `prefix` + [`TASK_SET`].
    task_set_prefix: Arc<str>,
    timeout: Duration,
    /// When this store last learnt each binding's expiry: see [`Fresh`].
    fresh: Arc<Fresh>,
    keys: Arc<KeyDerivation>,
    /// The client-side cache, with [`RedisOptions::client_side_cache`].
    cache: Option<Arc<LocalCache>>,
}

/// How many bindings a [client-side cache](RedisOptions::client_side_cache) keeps by default.
const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// How many bindings [`Fresh`] remembers; past it, it starts over (each forgotten binding costs
/// one script call on its next checked request, which remembers it again).
const FRESH_CAPACITY: usize = 100_000;

/// What this store knows of its bindings' expiries, so that a sliding lookup is a plain `GET`
/// while the binding has more than half its slide left, and the slide script runs only when it
/// may have to write.
///
/// For each key: the local time until which the binding is known to have more than half the
/// slide left, learnt from this store's own bind (its TTL) and slide scripts (the TTL Redis
/// reported), counted from when the command was sent, so it errs early. Only the expiry is
/// remembered, never the value: every lookup still reads the binding (its owner, or a tombstone
/// another replica wrote) from Redis. Another replica's slide only makes the real expiry later
/// than remembered (an early script call, which finds the TTL fresh and writes nothing).
#[derive(Debug, Default)]
struct Fresh(std::sync::Mutex<std::collections::HashMap<SessionKey, tokio::time::Instant>>);

impl Fresh {
    /// Whether `key` is known to have more than half of `slide` left.
    fn is_fresh(&self, key: SessionKey, slide: Duration) -> bool {
        let Some(due) = tokio::time::Instant::now().checked_add(slide / 2) else {
            return false;
        };
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .is_some_and(|expiry| *expiry > due)
    }

    /// `key` had `left` until its expiry when a command sent at `sent` ran.
    fn learn(&self, key: SessionKey, sent: tokio::time::Instant, left: Duration) {
        let Some(expiry) = sent.checked_add(left) else {
            return self.forget(key);
        };
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= FRESH_CAPACITY && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, expiry);
    }

    fn forget(&self, key: SessionKey) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
    }
}

/// The connection a [`RedisStore`] talks through: a [`ConnectionManager`] to one server, or a
/// [`ClusterConnection`] to a Redis Cluster (both reconnect on their own; the cluster one follows
/// slot moves and failovers). Cheap to clone; clones share the connection.
///
/// It is a [`redis::aio::ConnectionLike`](::redis::aio::ConnectionLike), so any `redis` command
/// runs on it ([`RedisStore::connection`]).
///
/// ```no_run
/// use mcp_session_binding::store::{RedisConnection, RedisStore};
///
/// # async fn run() -> redis::RedisResult<()> {
/// let client = redis::Client::open("redis://127.0.0.1/")?;
/// let conn: RedisConnection = client.get_connection_manager().await?.into();
/// let store = RedisStore::new(conn);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisConnection(Conn);

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// Whether this is a connection to a Redis Cluster.
    fn is_cluster(&self) -> bool {
        matches!(self.0, Conn::Cluster(_))
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(conn: ConnectionManager) -> Self {
        Self(Conn::Single(conn))
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(conn: ClusterConnection) -> Self {
        Self(Conn::Cluster(conn))
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Conn::Single(_) => "RedisConnection(single)",
            Conn::Cluster(_) => "RedisConnection(cluster)",
        })
    }
}

impl ::redis::aio::ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a ::redis::Cmd,
    ) -> ::redis::RedisFuture<'a, Value> {
        match &mut self.0 {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a ::redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> ::redis::RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Conn::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// How a [`RedisStore`] uses its Redis: the key prefix and the bound on one operation.
///
/// A builder: start from [`RedisOptions::new`] (the defaults), set what differs, and pass it to
/// [`RedisStore::connect_with`] or [`RedisStore::with_options`].
///
/// ```
/// use std::time::Duration;
/// use mcp_session_binding::store::RedisOptions;
///
/// let options = RedisOptions::new()
///     .prefix("tenant-a:mcpsb:")
///     .timeout(Duration::from_millis(500));
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[must_use]
pub struct RedisOptions {
    prefix: String,
    timeout: Duration,
    keys: KeyDerivation,
    /// [`RedisOptions::client_side_cache`]: the staleness bound, and how many bindings.
    cache: Option<(Duration, usize)>,
    /// PEM of the CAs that a `rediss://` server's certificate must chain to.
    #[cfg(feature = "redis-tls")]
    ca_pem: Option<Arc<[u8]>>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisOptions {
    /// The defaults: prefix `"mcpsb:"`, timeout 2 s.
    ///
    /// ```
    /// let options = mcp_session_binding::store::RedisOptions::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            keys: KeyDerivation::public(),
            cache: None,
            #[cfg(feature = "redis-tls")]
            ca_pem: None,
        }
    }

    /// The prefix of every key (default `"mcpsb:"`). Replicas that share bindings must use the
    /// same prefix. On Redis Cluster, a hash tag such as `"{mcpsb}:"` keeps every key of the
    /// store on one slot, as its scripts need (see [`RedisStore`]).
    ///
    /// ```
    /// let options = mcp_session_binding::store::RedisOptions::new().prefix("tenant-a:mcpsb:");
    /// # let _ = options;
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds every operation, and the first connection (default 2 s): past it, the operation
    /// fails with [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable). With
    /// [`RedisStore::with_options`], keep it at least as long as the connection's own response
    /// timeout, or a dead connection may go unnoticed.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let options = mcp_session_binding::store::RedisOptions::new().timeout(Duration::from_millis(250));
    /// # let _ = options;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keys session and task keys with `secret` (keyed BLAKE3, [`KeyDerivation::keyed`]) instead
    /// of a fixed public secret (the default): a dump of Redis then cannot be matched to
    /// session ids even when they are guessable.
    ///
    /// Every replica that shares the store must use the same secret: a replica with another one
    /// (or none) finds none of the others' sessions and answers 404 on them. Setting or rotating
    /// it changes every key, so the sessions bound before answer 404 and their clients start new
    /// ones (rollout and rotation: docs/deployment.md in the repository).
    ///
    /// ```
    /// use mcp_session_binding::store::{KeySecret, RedisOptions};
    ///
    /// # let from_env = "0123456789abcdef0123456789abcdef".to_owned();
    /// // For example from an environment variable, the same on every replica:
    /// let secret = KeySecret::from_material(from_env.as_bytes()).expect("32 bytes or more");
    /// let options = RedisOptions::new().key_secret(secret);
    /// # let _ = options;
    /// ```
    pub fn key_secret(mut self, secret: KeySecret) -> Self {
        self.keys = KeyDerivation::keyed(secret);
        self
    }

    /// Keeps bindings read from Redis in this process (server-assisted client-side caching), so
    /// that a checked request usually costs no round trip; at most
    /// [`client_side_cache_capacity`](Self::client_side_cache_capacity) bindings.
    ///
    /// A binding that another replica changes or ends stops being served from the cache when
    /// Redis' invalidation arrives, and **never later than `max_staleness`** after the change:
    /// cached bindings are served only within `max_staleness` of the last answered `PING` of
    /// the tracking connection. A cached binding still names its owner, so what the window can
    /// serve is the owner's own request on a session ended moments before. Sliding expiry is
    /// unchanged.
    ///
    /// Needs [`connect_with`](RedisStore::connect_with) and Redis 6.0 or later (one more RESP3
    /// connection, `CLIENT TRACKING ON BCAST PREFIX`):
    /// [`connect_cluster`](RedisStore::connect_cluster) refuses the option, and
    /// [`with_options`](RedisStore::with_options) ignores it with a warning. How it stays right,
    /// and what it costs Redis: docs/deployment.md in the repository.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mcp_session_binding::store::RedisOptions;
    ///
    /// let options = RedisOptions::new().client_side_cache(Duration::from_millis(500));
    /// # let _ = options;
    /// ```
    pub fn client_side_cache(mut self, max_staleness: Duration) -> Self {
        let capacity = self.cache.map_or(DEFAULT_CACHE_CAPACITY, |(_, c)| c);
        self.cache = Some((max_staleness, capacity));
        self
    }

    /// With a [`client_side_cache`](Self::client_side_cache), how many bindings it keeps
    /// (default 100,000; at least 1). Past it the cache empties and fills again from the next
    /// lookups. Memory per entry: docs/deployment.md in the repository.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mcp_session_binding::store::RedisOptions;
    ///
    /// let options = RedisOptions::new()
    ///     .client_side_cache(Duration::from_millis(500))
    ///     .client_side_cache_capacity(10_000);
    /// # let _ = options;
    /// ```
    pub fn client_side_cache_capacity(mut self, capacity: usize) -> Self {
        if let Some((_, c)) = &mut self.cache {
            *c = capacity.max(1);
        }
        self
    }

    /// Trust only these CAs (PEM, one or more `CERTIFICATE` blocks) for a `rediss://` server,
    /// instead of the system's roots: for a Redis whose certificate a private CA issued (the
    /// usual case for managed Redis and for self-signed deployments). The server's certificate
    /// must chain to one of them and name the host of the URL (DNS name or IP address).
    ///
    /// [`RedisStore::connect_with`] fails with a `redis://` URL when a CA is set, and with a
    /// PEM that holds no certificate. Without a CA, a `rediss://` URL trusts the system's roots.
    ///
    /// ```no_run
    /// use mcp_session_binding::store::{RedisOptions, RedisStore};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis/ca.pem")?;
    /// let options = RedisOptions::new().ca_pem(ca);
    /// let store = RedisStore::connect_with("rediss://redis.internal:6380/", options).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(Arc::from(pem.into()));
        self
    }

    /// A cluster client for `seeds` with these options: timeouts, bounded retries, TCP settings,
    /// and TLS roots when set.
    fn cluster_client(
        &self,
        seeds: &[impl AsRef<str>],
    ) -> Result<::redis::cluster::ClusterClient, StoreError> {
        if seeds.is_empty() {
            return Err(config_error("no Redis Cluster seed node".to_owned()));
        }
        let mut infos = Vec::with_capacity(seeds.len());
        for seed in seeds {
            let info = seed
                .as_ref()
                .into_connection_info()
                .map_err(|err| config_error(format!("invalid Redis Cluster seed URL: {err}")))?;
            #[cfg(feature = "redis-tls")]
            if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
                default_crypto_provider();
            }
            infos.push(info);
        }
        let tcp = RedisStore::tcp_settings(infos[0].tcp_settings().clone(), self.timeout);
        #[allow(unused_mut)]
        let mut builder = ClusterClientBuilder::new(infos)
            .tcp_settings(tcp)
            .connection_timeout(self.timeout)
            .response_timeout(self.timeout)
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(500);
        #[cfg(feature = "redis-tls")]
        if let Some(pem) = &self.ca_pem {
            builder = builder.certs(::redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            });
        }
        builder
            .build()
            .map_err(|err| config_error(format!("invalid Redis Cluster settings: {err}")))
    }

    /// A client for `url` with these options: TCP settings, and TLS roots when set; RESP3 when
    /// `resp3`.
    fn client(&self, url: &str, resp3: bool) -> Result<Client, StoreError> {
        let info = url
            .into_connection_info()
            .map_err(|err| config_error(format!("invalid Redis URL: {err}")))?;
        let tcp = RedisStore::tcp_settings(info.tcp_settings().clone(), self.timeout);
        let mut info = info.set_tcp_settings(tcp);
        if resp3 {
            let settings = info.redis_settings().clone();
            info = info.set_redis_settings(settings.set_protocol(ProtocolVersion::RESP3));
        }
        #[cfg(feature = "redis-tls")]
        if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
            default_crypto_provider();
        }
        #[cfg(feature = "redis-tls")]
        if let Some(pem) = &self.ca_pem {
            if !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
                return Err(config_error(format!(
                    "a CA is set for {}, but the URL is not rediss://",
                    info.addr()
                )));
            }
            if !pem
                .windows(CERTIFICATE_PEM.len())
                .any(|w| w == CERTIFICATE_PEM)
            {
                return Err(config_error("the CA PEM holds no certificate".to_owned()));
            }
            let certs = ::redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            };
            return Client::build_with_tls(info, certs)
                .map_err(|err| config_error(format!("invalid Redis TLS settings: {err}")));
        }
        Client::open(info).map_err(|err| config_error(format!("invalid Redis URL: {err}")))
    }
}

/// Whether Redis Cluster hashes `key` by a hash tag: a `{` followed later by a `}` with at least
/// one byte between them.
fn has_hash_tag(key: &str) -> bool {
    key.split_once('{')
        .and_then(|(_, rest)| rest.find('}'))
        .is_some_and(|end| end > 0)
}

/// The start of a PEM certificate block.
#[cfg(feature = "redis-tls")]
const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// rustls needs a process-wide crypto provider when more than one is compiled in (another crate
/// may enable ring next to this crate's aws-lc-rs): install aws-lc-rs unless the application
/// installed one.
#[cfg(feature = "redis-tls")]
fn default_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// A configuration error: no server can fix it, but it is reported as the store's error.
fn config_error(message: String) -> StoreError {
    StoreError::unavailable(io::Error::new(io::ErrorKind::InvalidInput, message))
}

/// The first connection failed: what, where, and a hint for a plain URL against a TLS port.
fn connect_error(info: &ConnectionAddr, err: &RedisError) -> StoreError {
    let hint = if matches!(info, ConnectionAddr::Tcp(..))
        && (err.is_connection_dropped() || err.is_unrecoverable_error())
    {
        " (the server closed the connection during the handshake: if it only accepts TLS, use a rediss:// URL)"
    } else {
        ""
    };
    StoreError::unavailable(io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("cannot connect to Redis at {info}: {err}{hint}"),
    ))
}

impl RedisStore {
    /// A store on `conn`, with the default [`RedisOptions`].
    ///
    /// Build the manager with connection and response timeouts and a bounded number of retries
    /// (as [`connect`](Self::connect) does: the operation timeout, two retries 50–500 ms apart),
    /// so that a stopped server fails operations quickly instead of queueing them behind a long
    /// reconnect.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use mcp_session_binding::store::RedisStore;
    ///
    /// # async fn run() -> redis::RedisResult<()> {
    /// let client = redis::Client::open("redis://redis.internal:6379/0")?;
    /// let config = redis::aio::ConnectionManagerConfig::new()
    ///     .set_connection_timeout(Some(Duration::from_secs(2)))
    ///     .set_response_timeout(Some(Duration::from_secs(2)))
    ///     .set_number_of_retries(2);
    /// let conn = client.get_connection_manager_with_config(config).await?;
    /// let store = RedisStore::new(conn);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn new(conn: impl Into<RedisConnection>) -> Self {
        Self::with_options(conn, RedisOptions::new())
    }

    /// A store on `conn`, with `options`.
    ///
    /// On a cluster connection, a prefix without a hash tag is wrapped in braces (`"mcpsb:"`
    /// becomes `"{mcpsb:}"`), so that every key of the store, owner sets included, is on one
    /// slot, as its scripts need.
    #[must_use]
    pub fn with_options(conn: impl Into<RedisConnection>, options: RedisOptions) -> Self {
        let conn = conn.into();
        if options.cache.is_some() {
            tracing::warn!(
                target: "mcp_session_binding",
                "RedisOptions::client_side_cache is ignored by RedisStore::with_options: use RedisStore::connect_with"
            );
        }
        let prefix = if conn.is_cluster() && !has_hash_tag(&options.prefix) {
            format!("{{{}}}", options.prefix)
        } else {
            options.prefix
        };
        Self {
            conn,
            owner_prefix: Arc::from(format!("{prefix}{OWNER_SET}")),
            ended_prefix: Arc::from(format!("{prefix}{ENDED_SET}")),
            task_prefix: Arc::from(format!("{prefix}{TASK_RECORD}")),
            task_set_prefix: Arc::from(format!("{prefix}{TASK_SET}")),
            prefix: Arc::from(prefix),
            timeout: options.timeout,
            fresh: Arc::default(),
            keys: Arc::new(options.keys),
            cache: None,
        }
    }

    /// Connects to the Redis Cluster that `seeds` belong to (one or more node URLs,
    /// `redis://host:port` or `rediss://…`; the client discovers the other nodes and the slot
    /// map from them), with `options`, waiting at most the options' timeout for the first
    /// connection.
    ///
    /// Every key of the store shares one hash tag (see [`with_options`](Self::with_options)),
    /// so the bindings live on one shard (one primary and its replicas), and several stores
    /// with distinct tags spread over several (docs/deployment.md in the repository).
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable) when no seed is given,
    /// a seed or the TLS settings are invalid, or the cluster cannot be reached in time.
    ///
    /// ```no_run
    /// use mcp_session_binding::store::{RedisOptions, RedisStore};
    ///
    /// # async fn run() -> Result<(), mcp_session_binding::store::StoreError> {
    /// let seeds = ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"];
    /// let store = RedisStore::connect_cluster(&seeds, RedisOptions::new()).await?;
    /// assert_eq!(store.prefix(), "{mcpsb:}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_cluster(
        seeds: &[impl AsRef<str>],
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        if options.cache.is_some() {
            return Err(config_error(
                "the client-side cache needs one Redis endpoint, not a Redis Cluster".to_owned(),
            ));
        }
        let timeout = options.timeout;
        let client = options.cluster_client(seeds)?;
        let conn = tokio::time::timeout(timeout, client.get_async_connection())
            .await
            .map_err(|_| timed_out("cluster connect", timeout))?
            .map_err(|err| {
                StoreError::unavailable(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("cannot connect to the Redis Cluster: {err}"),
                ))
            })?;
        Ok(Self::with_options(conn, options))
    }

    /// Connects to the Redis at `url` with the default [`RedisOptions`]: see
    /// [`connect_with`](Self::connect_with).
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable) when the URL does not
    /// parse or the server cannot be reached in time.
    ///
    /// ```no_run
    /// use mcp_session_binding::store::RedisStore;
    ///
    /// # async fn run() -> Result<(), mcp_session_binding::store::StoreError> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, RedisOptions::new()).await
    }

    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS with the feature `redis-tls`) with
    /// connection and response timeouts of the options' timeout, at most two reconnect retries,
    /// TCP keepalive and (on Linux) `TCP_USER_TIMEOUT` of twice the timeout (at least 1 s), so
    /// a connection to a Redis that vanished without closing it is replaced; and waits for the
    /// first connection, at most that timeout.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::Unavailable`](super::StoreErrorKind::Unavailable) when the URL or the
    /// TLS settings are invalid, or the server cannot be reached in time. The message names the
    /// address (never the password) and the cause; a `redis://` URL whose server closes the
    /// connection at once (as a TLS-only port does) adds a hint to use `rediss://`. A TLS
    /// server whose certificate does not chain to the trusted CAs fails here too.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use mcp_session_binding::store::{RedisOptions, RedisStore};
    ///
    /// # async fn run() -> Result<(), mcp_session_binding::store::StoreError> {
    /// let options = RedisOptions::new()
    ///     .prefix("myapp:mcpsb:")
    ///     .timeout(Duration::from_millis(500));
    /// let store = RedisStore::connect_with("redis://127.0.0.1:6379/", options).await?;
    /// assert_eq!(store.prefix(), "myapp:mcpsb:");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(url: &str, mut options: RedisOptions) -> Result<Self, StoreError> {
        let timeout = options.timeout;
        let client = options.client(url, false)?;
        let connecting = client.get_connection_manager_with_config(Self::manager_config(timeout));
        let conn = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| timed_out("connect", timeout))?
            .map_err(|err| connect_error(client.get_connection_info().addr(), &err))?;
        let Some((max_staleness, capacity)) = options.cache.take() else {
            return Ok(Self::with_options(conn, options));
        };
        let tracking = options.client(url, true)?;
        let mut store = Self::with_options(conn, options);
        let cache = Arc::new(LocalCache::new(
            max_staleness,
            capacity,
            store.prefix.clone(),
        ));
        tokio::spawn(cache::track(tracking, Arc::downgrade(&cache), timeout));
        store.cache = Some(cache);
        Ok(store)
    }

    /// The [`ConnectionManagerConfig`] this store recommends for an operation timeout of
    /// `timeout`: connection and response timeouts of `timeout`, and at most two reconnect
    /// retries 50–500 ms apart, so that a stopped server yields errors, not a hang, and a
    /// restarted one is found again by the next operation.
    fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
    }

    /// `settings` with what [`connect`](Self::connect) adds for an operation timeout of
    /// `timeout`: TCP keepalive probes after 10 s idle, and on Linux `TCP_USER_TIMEOUT` of twice
    /// `timeout` (at least 1 s), so that a connection to a Redis that vanished without closing
    /// it (a host or pod gone, a dropped NAT entry) fails and is replaced, instead of timing
    /// every operation out until the kernel gives up on it many minutes later.
    fn tcp_settings(settings: TcpSettings, timeout: Duration) -> TcpSettings {
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(10));
        let settings = settings.set_keepalive(keepalive);
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        let settings = settings.set_user_timeout((timeout * 2).max(Duration::from_secs(1)));
        #[cfg(not(any(target_os = "android", target_os = "fuchsia", target_os = "linux")))]
        let _ = timeout;
        settings
    }

    /// Rotates the key secret while the store runs ([`KeyDerivation::rotate`]): new bindings and
    /// task records are keyed with `secret`, and for `overlap` the layers still find the ones
    /// keyed with the secret before (a session bound before keeps working, under its old key,
    /// until the overlap ends; then it answers 404 and its client starts a new one). Every
    /// replica must rotate to the same secret; this store's clones rotate with it.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use mcp_session_binding::store::{KeySecret, RedisOptions, RedisStore};
    ///
    /// let old = KeySecret::from_material(b"old secret, 32 bytes or more.....")?;
    /// let store = RedisStore::connect_with("redis://127.0.0.1/", RedisOptions::new().key_secret(old)).await?;
    /// let new = KeySecret::from_material(b"new secret, 32 bytes or more.....")?;
    /// store.rotate_key_secret(new, Duration::from_secs(24 * 3600));
    /// # Ok(())
    /// # }
    /// ```
    pub fn rotate_key_secret(&self, secret: KeySecret, overlap: Duration) {
        self.keys.rotate(secret, overlap);
    }

    /// The key prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The bound on one operation.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The Redis key that holds `key`'s binding: the prefix, then 32 hex digits.
    fn redis_key(&self, key: SessionKey) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 32);
        out.push_str(&self.prefix);
        out.push_str(&key.to_hex());
        out
    }

    /// The store's connection: clones share it. Other data of the application (rmcp's session
    /// state, say) can use it too, as the `mcp_server` example does, instead of opening one more
    /// with the same URL, TLS roots and timeouts.
    #[must_use]
    pub fn connection(&self) -> RedisConnection {
        self.conn.clone()
    }

    /// Runs `op` under the timeout, once more if the first attempt met a dead connection.
    async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: Fn(RedisConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let attempts = async {
            match op(self.conn.clone()).await {
                Err(err) if connection_failed(&err) => op(self.conn.clone()).await,
                done => done,
            }
        };
        let started = crate::metrics::started();
        let result = match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(redis_error(err)),
            Err(_) => Err(timed_out(what, self.timeout)),
        };
        crate::metrics::store_call("redis", what, started, result)
    }
}

impl RedisStore {
    /// [`BindingStore::end_owner`]: [`END_OWNER_LUA`] in batches of [`END_OWNER_BATCH`] keys
    /// until the owner's sets are empty, so that Redis is never busy with one owner for long.
    /// The owner's sets hold its live bindings (at most its session limit) and live task
    /// records, plus members a later run drops; a run that ends nothing and leaves members
    /// behind (the owner binding as fast as it is ended) stops.
    async fn end_owner_batches(
        &self,
        owner: &Owner,
        tombstone_ttl: Duration,
    ) -> Result<Revoked, StoreError> {
        let mut invocation = END_OWNER_SCRIPT.prepare_invoke();
        invocation
            .key(&*self.owner_prefix)
            .arg(codec::encode_owner(owner))
            .arg(codec::encode_ended())
            .arg(ttl_ms(tombstone_ttl))
            .arg(END_OWNER_BATCH)
            .arg(&*self.owner_prefix)
            .arg(&*self.task_set_prefix)
            .arg(&*self.ended_prefix);
        let mut revoked = Revoked::default();
        loop {
            let (sessions, tasks, left): (usize, usize, usize) = self
                .run("end owner", |mut conn| {
                    let invocation = &invocation;
                    async move { invocation.invoke_async(&mut conn).await }
                })
                .await?;
            revoked.sessions += sessions;
            revoked.tasks += tasks;
            if left == 0 || sessions + tasks == 0 && left >= END_OWNER_BATCH {
                break;
            }
        }
        // A client-side cache hears of each tombstone through Redis' invalidations.
        Ok(revoked)
    }

    /// The Redis key of a task record: the task prefix, then 32 hex digits.
    fn task_key(&self, key: SessionKey) -> String {
        format!("{}{}", self.task_prefix, key.to_hex())
    }

    /// A sliding lookup: the slide script, which also pushes the expiry out when less than half
    /// of `slide` is left, and tells the expiry [`Fresh`] remembers.
    async fn slide(&self, key: SessionKey, slide: Duration) -> Result<Aged, StoreError> {
        let value = self
            .slide_script(key, self.redis_key(key), &self.owner_prefix, slide)
            .await?;
        to_lookup(value.as_deref())
    }

    /// [`lookup`](BindingStore::lookup) with the bind time.
    async fn lookup_aged(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> Result<Aged, StoreError> {
        match slide {
            Some(slide) if !self.fresh.is_fresh(key, slide) => self.slide(key, slide).await,
            // No slide, or a binding known to have more than half its slide left: the cache,
            // or a plain GET, no script.
            _ => self.read(key, slide.is_some()).await,
        }
    }

    /// The slide script on `redis_key` (`owner_prefix` empty for a task record): the value
    /// found. Learns the expiry of a live value, and forgets that of any other.
    async fn slide_script(
        &self,
        key: SessionKey,
        redis_key: String,
        owner_prefix: &str,
        slide: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut invocation = SLIDE_SCRIPT.prepare_invoke();
        invocation
            .key(redis_key)
            .arg(ttl_ms(slide))
            .arg(codec::encode_ended())
            .arg(owner_prefix);
        let sent = tokio::time::Instant::now();
        let reply: Option<(Vec<u8>, i64)> = self
            .run("lookup", |mut conn| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        match &reply {
            Some((value, left)) if *left >= 0 && value != codec::encode_ended().as_bytes() => {
                let left = Duration::from_millis(left.unsigned_abs());
                self.fresh.learn(key, sent, left);
            }
            _ => self.fresh.forget(key),
        }
        Ok(reply.map(|(value, _)| value))
    }

    /// `GET redis_key`.
    async fn get(&self, redis_key: String) -> Result<Option<Vec<u8>>, StoreError> {
        let mut get = ::redis::cmd("GET");
        get.arg(redis_key);
        self.run("lookup", |mut conn| {
            let get = &get;
            async move { get.query_async(&mut conn).await }
        })
        .await
    }

    /// A lookup that writes nothing: from the client-side cache, else a `GET` (whose answer the
    /// cache keeps). `sliding`: the key's expiry is remembered in [`Fresh`].
    async fn read(&self, key: SessionKey, sliding: bool) -> Result<Aged, StoreError> {
        let cache = self.cache.as_deref();
        if let Some(found) = cache.and_then(|cache| cache.get_aged(key)) {
            return Ok(found);
        }
        let reserved = cache.and_then(|cache| Some((cache, cache.reserve(key)?)));
        let value = self.get(self.redis_key(key)).await?;
        // Gone or ended: nothing to slide any more.
        let ended = codec::encode_ended().as_bytes();
        if sliding && value.as_deref().is_none_or(|v| v == ended) {
            self.fresh.forget(key);
        }
        let found = to_lookup(value.as_deref())?;
        if let Some((cache, ticket)) = reserved {
            cache.fill_aged(key, ticket, &found.0, found.1);
        }
        Ok(found)
    }

    /// The owner of the task record under `key`, slid by `slide` as [`lookup`] slides a binding
    /// (through the script only when [`Fresh`] does not know it has more than half left). The
    /// client-side cache holds no task records.
    ///
    /// [`lookup`]: BindingStore::lookup
    async fn task(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> Result<Option<Owner>, StoreError> {
        let value = match slide {
            Some(slide) if !self.fresh.is_fresh(key, slide) => {
                self.slide_script(key, self.task_key(key), &self.task_set_prefix, slide)
                    .await?
            }
            _ => self.get(self.task_key(key)).await?,
        };
        match value.as_deref().map(decode).transpose()? {
            None => Ok(None),
            Some(Stored::Bound(owner)) => Ok(Some(owner)),
            Some(Stored::Ended) => Err(StoreError::corrupt(
                "a tombstone where a task record belongs",
            )),
        }
    }
}

/// A failure of the connection rather than of the command: worth one more try, which the
/// [`ConnectionManager`] runs on a fresh connection.
fn connection_failed(err: &RedisError) -> bool {
    err.is_connection_refusal() || err.is_connection_dropped() || err.is_unrecoverable_error()
}

fn timed_out(what: &str, after: Duration) -> StoreError {
    StoreError::unavailable(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("redis {what} timed out after {} ms", after.as_millis()),
    ))
}

/// Maps a Redis failure: another type at the key is corrupt, everything else is transient.
fn redis_error(err: RedisError) -> StoreError {
    if err.code() == Some("WRONGTYPE") {
        return StoreError::corrupt(err);
    }
    StoreError::unavailable(err)
}

/// A TTL as Redis milliseconds: at least 1 (Redis rejects 0), at most [`MAX_TTL_MS`].
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MS)
}

fn decode(value: &[u8]) -> Result<Stored, StoreError> {
    codec::decode_bytes(value).map_err(StoreError::corrupt)
}

/// A lookup's answer, with the time a binding was made when its value says.
type Aged = (Lookup, Option<SystemTime>);

/// What a binding key's value (or its absence) means.
fn to_lookup(value: Option<&[u8]>) -> Result<Aged, StoreError> {
    Ok(match value {
        None => (Lookup::Missing, None),
        Some(value) => match codec::decode_bytes_with_time(value).map_err(StoreError::corrupt)? {
            (Stored::Bound(owner), at) => (
                Lookup::Bound(owner),
                at.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            ),
            (Stored::Ended, _) => (Lookup::Ended, None),
        },
    })
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl BindingStore for RedisStore {
    fn bind<'a>(&'a self, record: Record<'a>, limit: usize) -> StoreFuture<'a, BindOutcome> {
        let Record { key, owner, ttl } = record;
        let mut invocation = BIND_SCRIPT.prepare_invoke();
        invocation
            .key(self.redis_key(key))
            .arg(codec::encode_owner(owner))
            .arg(ttl_ms(ttl))
            .arg(limit)
            .arg(&*self.owner_prefix)
            .arg(&*self.ended_prefix)
            .arg(codec::encode_ended());
        async move {
            let sent = tokio::time::Instant::now();
            let reply: Value = self
                .run("bind", |mut conn| {
                    let invocation = &invocation;
                    async move { invocation.invoke_async(&mut conn).await }
                })
                .await?;
            match reply {
                Value::Nil => {
                    self.fresh
                        .learn(key, sent, Duration::from_millis(ttl_ms(ttl)));
                    Ok(BindOutcome::Created)
                }
                Value::Int(wait_ms) => Ok(BindOutcome::LimitReached {
                    retry_after: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(1).max(1)),
                }),
                Value::BulkString(old) => match decode(&old)? {
                    Stored::Bound(owner) => Ok(BindOutcome::AlreadyBound(owner)),
                    Stored::Ended => Ok(BindOutcome::AlreadyEnded),
                },
                other => Err(StoreError::unavailable(io::Error::other(format!(
                    "unexpected reply to the bind script: {other:?}"
                )))),
            }
        }
        .boxed()
    }

    fn lookup(&self, key: SessionKey, slide: Option<Duration>) -> StoreFuture<'_, Lookup> {
        async move { self.lookup_aged(key, slide).await.map(|(found, _)| found) }.boxed()
    }

    fn lookup_with_age(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> StoreFuture<'_, (Lookup, Option<SystemTime>)> {
        self.lookup_aged(key, slide).boxed()
    }

    fn end_owner<'a>(
        &'a self,
        owner: &'a Owner,
        tombstone_ttl: Duration,
    ) -> StoreFuture<'a, Revoked> {
        self.end_owner_batches(owner, tombstone_ttl).boxed()
    }

    fn end(&self, key: SessionKey, tombstone_ttl: Duration) -> StoreFuture<'_, ()> {
        // EVAL with the script's text, not EVALSHA: an end needs no script cache, so it is one
        // round trip even on a Redis that just restarted, and one that was sent runs even if its
        // caller stopped waiting.
        let mut eval = ::redis::cmd("EVAL");
        eval.arg(END_LUA)
            .arg(1)
            .arg(self.redis_key(key))
            .arg(codec::encode_ended())
            .arg(ttl_ms(tombstone_ttl))
            .arg(&*self.owner_prefix)
            .arg(&*self.ended_prefix);
        self.fresh.forget(key);
        if let Some(cache) = &self.cache {
            cache.forget(key);
        }
        async move {
            self.run("end", |mut conn| {
                let eval = &eval;
                async move { eval.query_async::<()>(&mut conn).await }
            })
            .await
        }
        .boxed()
    }

    fn bind_task<'a>(&'a self, record: Record<'a>) -> StoreFuture<'a, BindOutcome> {
        let Record { key, owner, ttl } = record;
        // Insert-if-absent (Redis 7.0: `NX` with `GET`), in the owner's task index.
        let mut invocation = TASK_SCRIPT.prepare_invoke();
        invocation
            .key(self.task_key(key))
            .arg(codec::encode_owner(owner))
            .arg(ttl_ms(ttl))
            .arg(&*self.task_set_prefix);
        async move {
            let sent = tokio::time::Instant::now();
            let old: Option<Vec<u8>> = self
                .run("record task", |mut conn| {
                    let invocation = &invocation;
                    async move { invocation.invoke_async(&mut conn).await }
                })
                .await?;
            match old.as_deref().map(decode).transpose()? {
                None => {
                    self.fresh
                        .learn(key, sent, Duration::from_millis(ttl_ms(ttl)));
                    Ok(BindOutcome::Created)
                }
                Some(Stored::Bound(owner)) => Ok(BindOutcome::AlreadyBound(owner)),
                Some(Stored::Ended) => Err(StoreError::corrupt(
                    "a tombstone where a task record belongs",
                )),
            }
        }
        .boxed()
    }

    fn task_owner(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> StoreFuture<'_, Option<Owner>> {
        self.task(key, slide).boxed()
    }

    fn key_derivation(&self) -> &KeyDerivation {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::has_hash_tag;

    #[test]
    fn hash_tags_are_found_as_redis_cluster_finds_them() {
        for tagged in ["{mcpsb}:", "app:{b}:", "{a}{", "x{y}z{w}"] {
            assert!(has_hash_tag(tagged), "{tagged}");
        }
        // An empty tag (`{}`) hashes the whole key in Redis Cluster.
        for untagged in ["mcpsb:", "{}:", "{mcpsb", "}{", "a}b{"] {
            assert!(!has_hash_tag(untagged), "{untagged}");
        }
    }
}
