//! Opaque access tokens: RFC 7662 token introspection (feature `oidc`).
//!
//! An issuer given with
//! [`JwtAuthLayerBuilder::issuer_introspection`](super::JwtAuthLayerBuilder::issuer_introspection)
//! is trusted by asking its introspection endpoint about each token instead of verifying a
//! signature. Which tokens go where:
//!
//! - a JWT whose `iss` is an issuer with keys is verified locally, as before;
//! - a JWT whose `iss` is an introspected issuer goes to that issuer's endpoint only;
//! - a JWT naming any other issuer is refused (`untrusted_issuer`): it is never sent out;
//! - any other token (opaque) goes to the introspected issuers in the order they were given,
//!   until one says it is active. Every introspected issuer may thus see opaque tokens meant
//!   for another: trust only providers you would trust with each other's tokens, or give one.
//!
//! The answer decides ([`introspected::decide`](super::introspected::decide)); the scopes and the
//! revocation check then work as for JWTs (the answer's members are the
//! [`Claims`](crate::identity::Claims)).
//!
//! Answers are cached in memory, keyed by a keyed BLAKE3 hash of the token (never the token),
//! with one call in flight per token whatever the number of requests waiting for it.

mod cache;
mod client;
#[cfg(feature = "redis")]
mod shared;

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};

use super::introspected::{self, Answer, Expect};
use super::{
    JwtConfigError, JwtRejection,
    validate::{Verification, Verified, Verifier},
};
use cache::{MemoryCache, TokenKey};
use client::{CallError, Client, ClientAuth};

/// How one issuer is trusted through introspection (RFC 7662): the endpoint, the credentials
/// of this server at it, and the cache of its answers. Give it to
/// [`JwtAuthLayerBuilder::issuer_introspection`](super::JwtAuthLayerBuilder::issuer_introspection).
///
/// Defaults: the endpoint from discovery (`introspection_endpoint` of
/// `{issuer}/.well-known/openid-configuration`, or of the RFC 8414 document), HTTP Basic
/// client authentication (`client_secret_basic`), no subject for tokens without `sub`, active
/// answers cached for at most 60 s, inactive ones 10 s, 10 000 of each at most, calls bounded
/// to 5 s and 32 at once.
///
/// ```
/// use std::time::Duration;
/// use mcp_session_binding::jwt::{Introspection, JwtAuthLayer};
///
/// let layer = JwtAuthLayer::builder()
///     .issuer_introspection(
///         "https://auth.example.com",
///         Introspection::new("mcp-server", "its secret")
///             .cache_max(Duration::from_secs(30)) // the revocation delay accepted
///             .subject_fallback("client_id"),     // client-credentials tokens
///     )
///     .audiences(["https://mcp.example.com/mcp"])
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), mcp_session_binding::jwt::JwtConfigError>(())
/// ```
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
pub struct Introspection {
    endpoint: Option<String>,
    client_id: String,
    client_secret: String,
    auth: ClientAuth,
    subject_fallback: Option<String>,
    cache_max: Duration,
    negative_cache: Duration,
    capacity: usize,
    timeout: Duration,
    max_concurrency: usize,
    #[cfg(feature = "redis")]
    shared: Option<shared::SharedCache>,
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspection")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("subject_fallback", &self.subject_fallback)
            .field("cache_max", &self.cache_max)
            .field("negative_cache", &self.negative_cache)
            .field("capacity", &self.capacity)
            .field("timeout", &self.timeout)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl Introspection {
    /// Introspection with this server's client credentials at the authorization server.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            auth: ClientAuth::Basic,
            subject_fallback: None,
            cache_max: Duration::from_secs(60),
            negative_cache: Duration::from_secs(10),
            capacity: 10_000,
            timeout: Duration::from_secs(5),
            max_concurrency: 32,
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// The introspection endpoint, instead of discovery. Must be `https`, or `http` on a
    /// loopback host.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Sends the credentials in the form (`client_secret_post`) rather than with HTTP Basic
    /// (`client_secret_basic`, the default).
    pub fn client_secret_post(mut self) -> Self {
        self.auth = ClientAuth::Post;
        self
    }

    /// For an active token without `sub` (client credentials), the subject is this member of
    /// the answer, prefixed with its name: `subject_fallback("client_id")` makes the client
    /// `abc` the subject `client_id:abc`, which no user of a provider whose subjects have no
    /// colon can collide with. Default: none, and such tokens get 401 (`invalid_claims`). A
    /// missing or empty member is refused too: a subject is never empty.
    pub fn subject_fallback(mut self, member: impl Into<String>) -> Self {
        self.subject_fallback = Some(member.into());
        self
    }

    /// How long an active answer is served from the cache at most (default 60 s, whole
    /// seconds); never past the token's `exp`. **This is the revocation delay the deployment
    /// accepts**: a token revoked at the provider keeps working for up to this long. A cached
    /// answer is served during a provider outage, but never past this bound either.
    pub fn cache_max(mut self, max: Duration) -> Self {
        self.cache_max = max;
        self
    }

    /// How long an inactive answer is cached (default 10 s, whole seconds): a flood of junk
    /// tokens costs the provider one call per distinct token per period.
    pub fn negative_cache(mut self, ttl: Duration) -> Self {
        self.negative_cache = ttl;
        self
    }

    /// Most active answers, and most inactive answers, kept in memory (default 10 000 each);
    /// a full cache drops expired entries first, then arbitrary ones.
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.capacity = entries;
        self
    }

    /// Bound of one call, discovery included (default 5 s); past it the request gets 503.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Most calls to the endpoint in flight at once (default 32); a request whose token would
    /// need one more gets 503 with `Retry-After`.
    pub fn max_concurrency(mut self, calls: usize) -> Self {
        self.max_concurrency = calls.max(1);
        self
    }

    /// Shares the answers with the other replicas through Redis (feature `redis`), under keys
    /// `mcpsb-introspect:<hash>`: a replica that finds an answer there makes no call. The
    /// connection is a [`RedisStore`](crate::store::RedisStore)'s
    /// ([`connection`](crate::store::RedisStore::connection)): one server, a Cluster, TLS.
    ///
    /// The keys are keyed hashes of the tokens and the values are sealed (XChaCha20-Poly1305),
    /// both with keys derived from the client secret and the issuer, which every replica
    /// shares: Redis never holds a token or a subject in clear. Each replica still keeps its
    /// memory cache in front. A Redis that fails or is slow (500 ms) is skipped: the endpoint is
    /// asked.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(mut self, conn: crate::store::RedisConnection) -> Self {
        self.shared = Some(shared::SharedCache::new(
            conn,
            "mcpsb-introspect:".to_owned(),
        ));
        self
    }
}

/// BLAKE3 `derive_key` contexts of the shared cache's keys.
#[cfg(feature = "redis")]
const HASH_CONTEXT: &str = "mcp-session-binding 2026-12 introspection cache key";
#[cfg(feature = "redis")]
const SEAL_CONTEXT: &str = "mcp-session-binding 2026-12 introspection cache seal";

/// A call in flight, shared by every request waiting for the same token.
type Flight = Shared<BoxFuture<'static, Result<Arc<Answer>, CallError>>>;

/// One introspected issuer at run time.
pub(crate) struct Introspector {
    client: Client,
    /// Key of the token hash: random, or (shared cache) derived from the client secret so that
    /// every replica computes the same.
    hash_key: [u8; 32],
    cache: MemoryCache,
    flights: Mutex<HashMap<TokenKey, Flight>>,
    in_flight: AtomicUsize,
    max_concurrency: usize,
    cache_max: Duration,
    negative_cache: Duration,
    subject_fallback: Option<String>,
    #[cfg(feature = "redis")]
    shared: Option<shared::SharedCache>,
}

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector")
            .field("client", &self.client)
            .field("cache_max", &self.cache_max)
            .finish_non_exhaustive()
    }
}

/// The introspected issuers of one layer, in the order given.
#[derive(Debug)]
pub(crate) struct Introspectors {
    issuers: Vec<Arc<Introspector>>,
    audiences: HashSet<String>,
    leeway: u64,
}

impl Introspectors {
    /// Builds the run-time side; `audiences` and `leeway` are the layer's.
    pub(crate) fn build(
        issuers: Vec<(String, Introspection)>,
        audiences: HashSet<String>,
        leeway: Duration,
    ) -> Result<Self, JwtConfigError> {
        let mut built = Vec::with_capacity(issuers.len());
        for (issuer, settings) in issuers {
            if let Some(endpoint) = &settings.endpoint
                && !super::jwks::is_fetchable_url(endpoint)
            {
                return Err(JwtConfigError::InsecureIssuer(endpoint.clone()));
            }
            if settings.endpoint.is_none() && !super::jwks::is_fetchable_url(&issuer) {
                return Err(JwtConfigError::InsecureIssuer(issuer));
            }
            let http =
                super::remote::http_client(settings.timeout).map_err(JwtConfigError::HttpClient)?;
            // With a shared cache, every replica derives the same keys from what they share
            // (the client secret and the issuer); without, they are random.
            #[cfg(feature = "redis")]
            let (hash_key, shared) = match settings.shared {
                Some(shared) => {
                    let mut material = settings.client_secret.as_bytes().to_vec();
                    material.push(0);
                    material.extend_from_slice(issuer.as_bytes());
                    let seal = blake3::derive_key(SEAL_CONTEXT, &material);
                    (
                        blake3::derive_key(HASH_CONTEXT, &material),
                        Some(shared.with_key(seal, &issuer)),
                    )
                }
                None => (random_key(), None),
            };
            #[cfg(not(feature = "redis"))]
            let hash_key = random_key();
            built.push(Arc::new(Introspector {
                client: Client::new(
                    issuer,
                    http,
                    settings.endpoint,
                    (settings.client_id, settings.client_secret),
                    settings.auth,
                    settings.timeout,
                ),
                hash_key,
                cache: MemoryCache::new(settings.capacity, settings.capacity),
                flights: Mutex::default(),
                in_flight: AtomicUsize::new(0),
                max_concurrency: settings.max_concurrency,
                cache_max: settings.cache_max,
                negative_cache: settings.negative_cache,
                subject_fallback: settings.subject_fallback,
                #[cfg(feature = "redis")]
                shared,
            }));
        }
        Ok(Self {
            issuers: built,
            audiences,
            leeway: leeway.as_secs(),
        })
    }

    /// The verification of `token` when introspection decides it; `None` when it is a JWT whose
    /// `iss` is not an introspected issuer (then the local verdict stands). Called for the
    /// tokens the local path does not take: not a JWT of an issuer with keys.
    pub(crate) fn route(
        self: &Arc<Self>,
        verifier: &Arc<Verifier>,
        token: &str,
    ) -> Option<Verification> {
        let targets: Vec<Arc<Introspector>> = match jwt_issuer(token) {
            Some(iss) => {
                let target = self.issuers.iter().find(|i| i.client.issuer == iss)?;
                vec![target.clone()]
            }
            None => self.issuers.clone(),
        };
        if token.len() > super::validate::MAX_TOKEN_LEN {
            return Some(Verification::Done(Err(JwtRejection::Malformed)));
        }
        // From the cache when every answer needed is there (no allocation of a future).
        let now = Instant::now();
        let mut pending_from = None;
        for (index, target) in targets.iter().enumerate() {
            match target.cache.get(&target.key(token), now) {
                Some(answer) => match *answer {
                    Answer::Inactive => continue,
                    Answer::Active(_) => {
                        return Some(Verification::Done(self.judge(verifier, target, &answer)));
                    }
                },
                None => {
                    pending_from = Some(index);
                    break;
                }
            }
        }
        let Some(from) = pending_from else {
            return Some(Verification::Done(Err(JwtRejection::Inactive)));
        };
        let this = self.clone();
        let verifier = verifier.clone();
        let token = token.to_owned();
        Some(Verification::Pending(Box::pin(async move {
            for target in &targets[from..] {
                let answer = target.lookup(&token).await.map_err(|err| {
                    tracing::warn!(
                        reason = "introspection_unavailable",
                        issuer = %target.client.issuer,
                        error = %err,
                        "bearer token refused: introspection failed"
                    );
                    JwtRejection::IntrospectionUnavailable
                })?;
                if let Answer::Active(_) = *answer {
                    return this.judge(&verifier, target, &answer);
                }
            }
            Err(JwtRejection::Inactive)
        })))
    }

    /// The verdict on an active answer: [`introspected::decide`], then the scopes as for a JWT.
    fn judge(
        &self,
        verifier: &Verifier,
        target: &Introspector,
        answer: &Answer,
    ) -> Result<Verified, JwtRejection> {
        let expect = Expect {
            issuer: &target.client.issuer,
            audiences: &self.audiences,
            leeway: self.leeway,
            subject_fallback: target.subject_fallback.as_deref(),
        };
        let verified = introspected::decide(answer, &expect, unix_now())?;
        verifier.check_scopes(&verified.claims)?;
        Ok(verified)
    }
}

impl Introspector {
    fn key(&self, token: &str) -> TokenKey {
        *blake3::keyed_hash(&self.hash_key, token.as_bytes()).as_bytes()
    }

    /// The answer for `token`: cached, or from the one call in flight for it.
    async fn lookup(self: &Arc<Self>, token: &str) -> Result<Arc<Answer>, CallError> {
        let key = self.key(token);
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            // Checked under the lock: a flight puts its answer in the cache before it leaves
            // the map, so an answer is never missed between the two.
            if let Some(answer) = self.cache.get(&key, Instant::now()) {
                return Ok(answer);
            }
            match flights.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let flight = self.start(key, token.to_owned());
                    flights.insert(key, flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    /// A task of its own: a request that gives up waiting does not cancel the call.
    fn start(self: &Arc<Self>, key: TokenKey, token: String) -> Flight {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let result = this.fetch(key, &token).await;
            drop(token);
            if let Ok((answer, until)) = &result {
                // To the millisecond: never past the deadline, whole seconds since the epoch.
                let ttl =
                    Duration::from_millis(until.saturating_mul(1000).saturating_sub(unix_now_ms()));
                this.cache
                    .put(key, answer.clone(), Instant::now() + ttl, Instant::now());
            }
            this.flights
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            result.map(|(answer, _)| answer)
        });
        async move {
            task.await
                .unwrap_or_else(|_| Err(CallError::Failed("introspection task failed".into())))
        }
        .boxed()
        .shared()
    }

    /// The shared cache (Redis), then the endpoint; an answer from the endpoint is put in the
    /// shared cache. The answer, and until when it may be served (seconds since the epoch): a
    /// shared answer keeps the deadline of the call that made it, so a replica that reads it
    /// late never serves it longer than `cache_max` after that call.
    async fn fetch(&self, key: TokenKey, token: &str) -> Result<(Arc<Answer>, u64), CallError> {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared
            && let Some((answer, until)) = shared.get(&key, unix_now()).await
        {
            return Ok((Arc::new(answer), until));
        }
        let answer = Arc::new(self.call(token).await?);
        let now = unix_now();
        let until = introspected::cache_until(
            &answer,
            now,
            self.cache_max.as_secs(),
            self.negative_cache.as_secs(),
        );
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            shared.put(&key, &answer, until, now).await;
        }
        #[cfg(not(feature = "redis"))]
        let _ = key;
        Ok((answer, until))
    }

    /// One call to the endpoint, within the concurrency bound.
    async fn call(&self, token: &str) -> Result<Answer, CallError> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max_concurrency {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(CallError::Busy);
        }
        let result = self.client.introspect(token).await;
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        result
    }
}

/// The `iss` of a token shaped as a signed JWT (three base64url parts, a JSON payload with a
/// string `iss`), unverified; `None` for any other token.
fn jwt_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    #[derive(serde::Deserialize)]
    struct Unverified {
        iss: Option<serde_json::Value>,
    }
    let payload: Unverified =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    match payload.iss {
        Some(serde_json::Value::String(iss)) => Some(iss),
        _ => None,
    }
}

fn random_key() -> [u8; 32] {
    let mut key = [0; 32];
    getrandom::fill(&mut key).expect("the operating system's random source failed");
    key
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
