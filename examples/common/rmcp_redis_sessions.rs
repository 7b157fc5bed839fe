//! rmcp's session state in Redis, so that any replica can serve any session: an implementation
//! of rmcp's [`SessionStore`] on the connection of a [`RedisStore`] ([`RedisConnection`]: one
//! server, TLS or not, or a Redis Cluster).
//!
//! rmcp keeps each Streamable HTTP session in the memory of the process that created it. With a
//! [`SessionStore`] in `StreamableHttpServerConfig::session_store`, it also saves the client's
//! `initialize` parameters ([`SessionState`]) when a session is created; a replica that gets a
//! request for a session it does not hold loads them and replays the `initialize` handshake
//! ("transparent cross-instance restore"), then serves the request. Concurrent requests for the
//! same unknown session on one replica wait for a single restore.
//!
//! The restore replays `initialize` with the HTTP request that triggered it, so the tools see
//! that request's identity, never a stored or partial one. In front of rmcp,
//! `SessionBindingLayer` checks that identity against the binding before the request reaches
//! rmcp: only the session's owner can make a replica restore it.
//!
//! # What Redis holds
//!
//! ```text
//! mcpsb-session:<key hex>  ->  {"initialize_params":{"protocolVersion":…,"clientInfo":…}}  PX ttl
//! ```
//!
//! The key is the prefix and 128 bits of a hash of the session id, so a dump of Redis hands out
//! no session id:
//!
//! - **Keyed** ([`RedisSessionStore::keyed`]; the `mcp_server` example when `MCP_KEY_SECRET` is
//!   set): BLAKE3 keyed with a subkey of the secret derived for this purpose alone
//!   (`key_secret::rmcp_sessions_key`), as the bindings' format 2 does with subkeys of their
//!   own. Without the secret, a key cannot be checked against a guessed session id.
//! - **Unkeyed** otherwise: the session key under the crate's public secret
//!   ([`KeyDerivation::public`], what [`RedisStore`] uses for the binding without a key secret:
//!   `mcpsb:<SessionKey hex>`). A dump then holds keys that can be checked against guessed ids;
//!   rmcp's ids are random UUIDs, but the keyed form does not rely on that.
//!
//! Setting (or changing) the secret changes every key: state written before is not found, and
//! those sessions start anew. The value is the JSON of [`SessionState`].
//!
//! | rmcp calls | when | Redis command |
//! | --- | --- | --- |
//! | `store` | a session was created (after the `initialize` answer) | `SET key json PX ttl` |
//! | `load` | a replica meets a session id it does not hold | `GET key` |
//! | `delete` | a `DELETE` of the session reached rmcp (the client's, or the binding layer ending it) | `DEL key` |
//!
//! rmcp does not tell the store about activity, so the state expires `ttl` after the session was
//! created (default 24 h, the binding layer's default binding TTL). Past it, a replica that does
//! not hold the session answers 404 and the client re-initializes; the replica that holds it
//! keeps serving it. Make the TTL at least as long as a session may live.
//!
//! Errors (Redis unreachable, a timeout, a value that is not the JSON of a `SessionState`) are
//! [`SessionStoreError`]s: rmcp logs a failed `store` or `delete` and goes on; a failed `load`
//! answers 500 (the session is not restored).
#![allow(dead_code)]

use std::{fmt, future::Future, io, pin::Pin, sync::Arc, time::Duration};

use mcp_session_binding::store::{KeyDerivation, RedisConnection, RedisStore};
use redis::AsyncCommands;
use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore, SessionStoreError,
};

/// The key prefix unless told otherwise.
pub const DEFAULT_PREFIX: &str = "mcpsb-session:";
/// How long a session's state lives unless told otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The bound on one operation unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// rmcp [`SessionState`]s in Redis. Clones share one connection.
#[derive(Clone)]
pub struct RedisSessionStore {
    conn: RedisConnection,
    prefix: Arc<str>,
    ttl: Duration,
    timeout: Duration,
    /// The BLAKE3 key of the keyed keys; `None`: unkeyed keys.
    key: Option<[u8; 32]>,
}

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Shows whether keys are keyed, never the key.
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .field("keyed", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisSessionStore {
    /// A store on `conn`, with the default prefix, TTL and timeout.
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            prefix: Arc::from(DEFAULT_PREFIX),
            ttl: DEFAULT_TTL,
            timeout: DEFAULT_TIMEOUT,
            key: None,
        }
    }

    /// Keys the Redis keys with BLAKE3 under `key` (32 bytes, the same on every replica; derive
    /// it for this purpose alone, as `key_secret::rmcp_sessions_key` does).
    pub fn keyed(mut self, key: [u8; 32]) -> Self {
        self.key = Some(key);
        self
    }

    /// A store on the connection of the bindings' `store` (one connection for both).
    pub fn sharing(store: &RedisStore) -> Self {
        Self::new(store.connection())
    }

    /// Connects to the Redis at `url` as [`RedisStore::connect`] does (bounded reconnects, TCP
    /// keepalive), waiting at most the default timeout.
    pub async fn connect(url: &str) -> Result<Self, SessionStoreError> {
        Ok(Self::sharing(&RedisStore::connect(url).await?))
    }

    /// Sets the key prefix (default `"mcpsb-session:"`). Replicas that share sessions must use
    /// the same one.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// Sets how long a session's state lives after its creation (default 24 h; at least 1 ms).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Bounds every operation (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The Redis key of `session_id`'s state: the prefix, then the first 128 bits of the keyed
    /// BLAKE3 hash in hex ([`keyed`](Self::keyed)), or else the unkeyed key.
    pub fn redis_key(&self, session_id: &str) -> String {
        match &self.key {
            Some(key) => {
                let hash = blake3::keyed_hash(key, session_id.as_bytes());
                let hex = hash.to_hex();
                format!("{}{}", self.prefix, &hex[..32])
            }
            None => self.unkeyed_key(session_id),
        }
    }

    /// The unkeyed Redis key of `session_id`'s state.
    fn unkeyed_key(&self, session_id: &str) -> String {
        format!(
            "{}{}",
            self.prefix,
            KeyDerivation::public().session(session_id).to_hex()
        )
    }

    /// `GET key`.
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, SessionStoreError> {
        self.run("load", |mut conn| {
            let key = key.clone();
            async move { conn.get(key).await }
        })
        .await
    }

    /// `DEL key`.
    async fn del(&self, key: String) -> Result<(), SessionStoreError> {
        self.run("delete", |mut conn| {
            let key = key.clone();
            async move { conn.del::<_, ()>(key).await }
        })
        .await
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Runs `op` under the timeout, once more if the first attempt met a dead connection (the
    /// connection runs the second on a fresh one, as after a Redis restart).
    async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, SessionStoreError>
    where
        F: Fn(RedisConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempts = async {
            match op(self.conn.clone()).await {
                Err(err) if connection_failed(&err) => op(self.conn.clone()).await,
                done => done,
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(timed_out(what, self.timeout).into()),
        }
    }

    async fn load_state(
        &self,
        session_id: &str,
    ) -> Result<Option<SessionState>, SessionStoreError> {
        match self.get(self.redis_key(session_id)).await? {
            None => Ok(None),
            Some(json) => Ok(Some(serde_json::from_slice(&json).map_err(|err| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("stored session state is not a SessionState: {err}"),
                )
            })?)),
        }
    }

    async fn store_state(
        &self,
        session_id: &str,
        state: &SessionState,
    ) -> Result<(), SessionStoreError> {
        let json = serde_json::to_vec(state)?;
        let mut set = redis::cmd("SET");
        set.arg(self.redis_key(session_id))
            .arg(json)
            .arg("PX")
            .arg(self.ttl_ms());
        self.run("store", |mut conn| {
            let set = &set;
            async move { set.query_async::<()>(&mut conn).await }
        })
        .await
    }

    async fn delete_state(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.del(self.redis_key(session_id)).await
    }
}

/// A failure of the connection rather than of the command: worth one more try.
fn connection_failed(err: &redis::RedisError) -> bool {
    err.is_connection_refusal() || err.is_connection_dropped() || err.is_unrecoverable_error()
}

fn timed_out(what: &str, after: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "redis session store {what} timed out after {} ms",
            after.as_millis()
        ),
    )
}

type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SessionStoreError>> + Send + 'a>>;

// rmcp declares the trait with `#[async_trait]`; these are the signatures it expands to.
impl SessionStore for RedisSessionStore {
    fn load<'life0, 'life1, 'async_trait>(
        &'life0 self,
        session_id: &'life1 str,
    ) -> StoreFuture<'async_trait, Option<SessionState>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.load_state(session_id))
    }

    fn store<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        session_id: &'life1 str,
        state: &'life2 SessionState,
    ) -> StoreFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.store_state(session_id, state))
    }

    fn delete<'life0, 'life1, 'async_trait>(
        &'life0 self,
        session_id: &'life1 str,
    ) -> StoreFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.delete_state(session_id))
    }
}
