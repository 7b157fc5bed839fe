#![cfg(all(feature = "redis", feature = "jwt"))]
//! Several replicas on one Redis: sessions work, and hijacks are refused, whichever replica a
//! request lands on.
//!
//! Every test starts its own `redis-server` (tests/support/redis_server.rs; skipped with a
//! `SKIP:` line when it is not installed, fatal under `CI`/`REQUIRE_REDIS`) and two replicas
//! sharing it. A replica is the stack of the `mcp_server` example: `JwtAuthLayer` (HS256), then
//! `SessionBindingLayer` on a [`RedisStore`], then the demo rmcp server whose session state is in
//! Redis too (`examples/common/rmcp_redis_sessions.rs`), so a replica that does not hold a
//! session restores it. In process (axum on loopback, with a recorder of what reaches the MCP
//! service), except the process-restart test, which runs the example binary itself.
//!
//! What Redis holds, per session: the binding at `mcpsb:<SessionKey hex>` and rmcp's state at
//! `mcpsb-session:<SessionKey hex>`.

use crate::support;

use support::example_bin;
use support::jwt_stack;
use support::redis_server;
use support::rmcp_redis_sessions;

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use example_bin::Spawned;
use http::StatusCode;
use jwt_stack::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, StackConfig, TokenMinter};
use mcp_session_binding::{
    Identity,
    store::{
        BindOutcome, BindingStore, KeyDerivation, KeySecret, Owner, Record, RedisOptions,
        RedisStore,
    },
};
use redis_server::{RedisCluster, RedisServer};
use rmcp_redis_sessions::RedisSessionStore;
use serde_json::{Value, json};
use support::{Answer, Raw, Seen, TestServer, demo_mcp, initialize_body, tool_call, tool_text};

/// The HS256 secret every replica shares.
const SECRET: &str = "multi-replica-test-secret-32-bytes!!";
/// The bound on one binding-store operation in these tests (the default is 2 s).
const STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// A fresh token for `sub`: new bytes on every call, like a refreshed token.
fn token(sub: &str) -> String {
    TokenMinter::new(SECRET.as_bytes(), DEFAULT_AUDIENCE).token(DEFAULT_ISSUER, sub)
}

/// What `whoami` answers for `sub`.
fn who(sub: &str) -> String {
    format!("{DEFAULT_ISSUER} {sub}")
}

/// The Redis key of `session`'s rmcp state.
fn state_key(session: &str) -> String {
    format!(
        "{}{}",
        rmcp_redis_sessions::DEFAULT_PREFIX,
        KeyDerivation::public().session(session).to_hex()
    )
}

/// The stored binding of `sub` (issuer [`DEFAULT_ISSUER`], 22 bytes).
fn bound_to(sub: &str) -> String {
    format!("mcpsb1:user:22:{DEFAULT_ISSUER}{sub}")
}

const TOMBSTONE: &str = "mcpsb1:ended";

/// A stored binding without the bind time the store writes before the owner
/// (`mcpsb1:at:<ms>:`); fails when there is none.
fn without_time(value: &str) -> String {
    let rest = value
        .strip_prefix("mcpsb1:at:")
        .unwrap_or_else(|| panic!("no bind time: {value}"));
    let (ms, owner) = rest.split_once(':').unwrap();
    assert!(ms.parse::<u64>().is_ok(), "{value}");
    owner.to_owned()
}

/// Where the replicas keep their bindings and rmcp's sessions: one `redis-server`, or a Redis
/// Cluster of 3 masters and 3 replicas. The scenarios that do not stop Redis run on both (see
/// [`on_both`]).
enum Backend {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Backend {
    fn single() -> Option<Self> {
        RedisServer::start().map(Self::Single)
    }

    fn cluster() -> Option<Self> {
        RedisCluster::start().map(Self::Cluster)
    }

    /// The bindings' store, as a replica with `options` opens it (with the tests' timeout).
    async fn store_with(&self, options: RedisOptions) -> RedisStore {
        let options = options.timeout(STORE_TIMEOUT);
        match self {
            Self::Single(server) => RedisStore::connect_with(&server.url(), options).await,
            Self::Cluster(cluster) => RedisStore::connect_cluster(&cluster.urls(), options).await,
        }
        .expect("redis for the bindings")
    }

    /// The example server's flags for this Redis.
    fn server_args(&self) -> Vec<String> {
        match self {
            Self::Single(server) => vec!["--redis".to_owned(), server.url()],
            Self::Cluster(cluster) => cluster
                .urls()
                .into_iter()
                .flat_map(|url| ["--redis-cluster".to_owned(), url])
                .collect(),
        }
    }

    /// The single server.
    ///
    /// # Panics
    ///
    /// On a cluster.
    fn server(&self) -> &RedisServer {
        match self {
            Self::Single(server) => server,
            Self::Cluster(_) => panic!("a single-server scenario"),
        }
    }

    fn server_mut(&mut self) -> &mut RedisServer {
        match self {
            Self::Single(server) => server,
            Self::Cluster(_) => panic!("a single-server scenario"),
        }
    }

    /// The Redis key of `session`'s binding without a key secret: `mcpsb:<hex>`, on a cluster
    /// `{mcpsb:}<hex>` (the store's hash tag).
    fn binding_key(&self, session: &str) -> String {
        let prefix = match self {
            Self::Single(_) => "mcpsb:",
            Self::Cluster(_) => "{mcpsb:}",
        };
        format!(
            "{prefix}{}",
            KeyDerivation::public().session(session).to_hex()
        )
    }

    /// `GET key` (on the master of its slot), `""` for a missing key.
    fn get(&self, key: &str) -> String {
        match self {
            Self::Single(server) => server.command(&["GET", key]),
            Self::Cluster(cluster) => cluster.get(key),
        }
    }

    /// `SET key value` (on the master of its slot).
    fn set(&self, key: &str, value: &str) {
        match self {
            Self::Single(server) => server.command(&["SET", key, value]),
            Self::Cluster(cluster) => cluster.master_of(key).command(&["SET", key, value]),
        };
    }

    fn reset_stats(&self) {
        match self {
            Self::Single(server) => server.reset_stats(),
            Self::Cluster(cluster) => cluster.reset_stats(),
        }
    }

    /// Redis command calls since the last [`reset_stats`](Self::reset_stats) (on a cluster,
    /// summed over the masters), without the harness's own `INFO`, `CONFIG` and `ROLE`.
    fn command_calls(&self) -> BTreeMap<String, u64> {
        let mut calls = match self {
            Self::Single(server) => server.command_calls(),
            Self::Cluster(cluster) => cluster.command_calls(),
        };
        calls.retain(|name, _| !name.starts_with("info") && !name.starts_with("config"));
        calls
    }
}

/// Runs each scenario twice: `<scenario>::single` on one `redis-server`, `<scenario>::cluster` on
/// a Redis Cluster.
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test]
                async fn single() {
                    if let Some(redis) = super::Backend::single() {
                        super::$scenario(redis).await;
                    }
                }

                #[tokio::test]
                async fn cluster() {
                    if let Some(redis) = super::Backend::cluster() {
                        super::$scenario(redis).await;
                    }
                }
            }
        )*
    };
}

on_both!(
    a_session_opened_on_a_serves_its_owner_on_b,
    concurrent_first_requests_on_b_restore_the_session_once,
    a_thief_on_b_is_refused_and_the_session_ends_on_every_replica,
    an_owner_delete_on_b_ends_the_session_on_a,
    a_stored_value_that_is_not_a_binding_fails_closed,
    one_redis_round_trip_per_checked_request_and_per_bind,
    a_server_process_restart_keeps_every_binding,
    replicas_with_different_key_secrets_share_no_session,
    a_thief_on_b_ends_the_owners_open_stream_on_a,
    an_owner_delete_on_b_ends_her_open_stream_on_a,
);

/// One replica, in this process.
struct Replica {
    raw: Raw,
    /// The server, and every request that reached the MCP service (behind both layers).
    server: TestServer,
}

impl Replica {
    /// A replica whose bindings and rmcp sessions are in the Redis at `redis`.
    async fn start(redis: &Backend) -> Self {
        Self::start_with(redis, RedisOptions::new()).await
    }

    /// A replica whose binding store has `options`.
    async fn start_with(redis: &Backend, options: RedisOptions) -> Self {
        Self::start_rechecking(redis, options, None).await
    }

    /// A replica whose binding store has `options`, whose open streams check their session
    /// every `stream_recheck` (the example's `--stream-recheck-ms`; `None`: the default).
    async fn start_rechecking(
        redis: &Backend,
        options: RedisOptions,
        stream_recheck: Option<Duration>,
    ) -> Self {
        let bindings = redis.store_with(options).await;
        let sessions = RedisSessionStore::sharing(&bindings);
        let (mcp, seen) = support::recorded(demo_mcp::service_for(Some(Arc::new(sessions)), None));
        let (listener, base_url) = support::listen().await;
        let config = StackConfig {
            stream_recheck,
            ..StackConfig::new(SECRET, Arc::new(bindings))
        };
        let app = jwt_stack::router(&config, &base_url, mcp).expect("the JWT stack");
        let server = support::serve_on(listener, app, seen);
        Self {
            raw: Raw::at(server.url.clone()),
            server,
        }
    }

    /// How many requests reached the MCP service.
    fn forwarded(&self) -> usize {
        self.server.forwarded_count()
    }

    /// The methods of the requests that reached the MCP service carrying `session`.
    fn forwarded_with(&self, session: &str) -> Vec<http::Method> {
        self.server.forwarded_with(session)
    }

    /// `whoami` by `sub` on `session`, which must answer 200: the text.
    async fn whoami(&self, session: &str, sub: &str) -> String {
        let answer = self.raw.whoami(session, Some(&token(sub)), 7).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let message = answer.json();
        assert_ne!(message["result"]["isError"], json!(true), "{message}");
        tool_text(&message).to_owned()
    }

    /// `whoami` by `sub` on `session`: the status.
    async fn whoami_status(&self, session: &str, sub: &str) -> StatusCode {
        self.raw.whoami(session, Some(&token(sub)), 8).await.status
    }
}

/// The binding layer's mismatch answer to a `tools/call`.
fn assert_mismatch(answer: &Answer) {
    answer.assert_mismatch(None);
}

/// The binding layer's answer when its store is unreachable.
fn assert_unavailable(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {answer:?}"
    );
    assert!(
        answer.headers.contains_key(http::header::RETRY_AFTER),
        "{what}: {answer:?}"
    );
    let body: Value = serde_json::from_str(&answer.text).expect("a JSON-RPC error body");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .map(|(name, n)| ((*name).to_owned(), *n))
        .collect()
}

/// Replicas with a key secret and without one share no session: each finds only the sessions
/// under its own keys (so setting or rotating a secret starts every session anew), a session
/// opened with the secret is stored under its keyed key only, and a thief is refused there.
async fn replicas_with_different_key_secrets_share_no_session(redis: Backend) {
    let secret = || KeySecret::from_material(b"rollout-test-secret-of-32-bytes!!").unwrap();
    let a = Replica::start(&redis).await;
    let b = Replica::start_with(&redis, RedisOptions::new().key_secret(secret())).await;

    let old = a.raw.open_session(Some(&token("alice"))).await;
    assert_eq!(
        without_time(&redis.get(&redis.binding_key(&old))),
        bound_to("alice")
    );
    assert_eq!(b.whoami_status(&old, "alice").await, StatusCode::NOT_FOUND);
    assert_eq!(
        a.whoami(&old, "alice").await,
        who("alice"),
        "B changed nothing"
    );

    let new = b.raw.open_session(Some(&token("alice"))).await;
    let keyed = redis
        .store_with(RedisOptions::new().key_secret(secret()))
        .await;
    let keyed_key = format!(
        "{}{}",
        keyed.prefix(),
        keyed.key_derivation().session(&new).to_hex()
    );
    assert_eq!(without_time(&redis.get(&keyed_key)), bound_to("alice"));
    assert_eq!(redis.get(&redis.binding_key(&new)), "", "no unkeyed key");
    assert_eq!(a.whoami_status(&new, "alice").await, StatusCode::NOT_FOUND);
    assert_eq!(b.whoami(&new, "alice").await, who("alice"));
    assert_mismatch(&b.raw.whoami(&new, Some(&token("mallory")), 4).await);
    assert_eq!(redis.get(&keyed_key), TOMBSTONE);
}

/// A session alice opens on A serves her on B, which never saw it: rmcp restores it from Redis
/// (replaying `initialize` with the request in hand, so the tool sees the caller's own,
/// complete identity) and the binding layer on B finds the binding in Redis. Back on A, it still
/// works.
async fn a_session_opened_on_a_serves_its_owner_on_b(redis: Backend) {
    let (a, b) = (Replica::start(&redis).await, Replica::start(&redis).await);

    let session = a.raw.open_session(Some(&token("alice"))).await;
    assert_eq!(
        without_time(&redis.get(&redis.binding_key(&session))),
        bound_to("alice")
    );
    let state: Value = serde_json::from_str(&redis.get(&state_key(&session))).unwrap();
    assert_eq!(state["initialize_params"]["clientInfo"]["name"], "raw-test");
    assert!(b.forwarded_with(&session).is_empty(), "B has not seen it");

    assert_eq!(b.whoami(&session, "alice").await, who("alice"));
    let echo = b
        .raw
        .post(
            Some(&session),
            Some(&token("alice")),
            &tool_call(9, "echo", json!({"text": "on B"})),
        )
        .await;
    assert_eq!(tool_text(&echo.json()), "on B", "{echo:?}");
    assert_eq!(
        b.forwarded_with(&session),
        [http::Method::POST, http::Method::POST]
    );
    assert_eq!(a.whoami(&session, "alice").await, who("alice"));
}

/// Concurrent first requests for a session on a replica that does not hold it: all are served
/// for their owner, and the replica restores the session once (one `GET` of its rmcp state; the
/// other `GET`s are the binding lookups': the script for those that ran before the replica
/// learnt the binding's expiry, plain `GET`s after).
async fn concurrent_first_requests_on_b_restore_the_session_once(redis: Backend) {
    const N: u64 = 16;
    let (a, b) = (Replica::start(&redis).await, Replica::start(&redis).await);
    let session = a.raw.open_session(Some(&token("alice"))).await;
    // Warm up: B's first sliding lookup loads the script into Redis.
    let warm = a.raw.open_session(Some(&token("bob"))).await;
    assert_eq!(b.whoami(&warm, "bob").await, who("bob"));

    let tokens: Vec<String> = (0..N).map(|_| token("alice")).collect();
    redis.reset_stats();
    let answers = futures::future::join_all(
        (0..N).map(|id| b.raw.whoami(&session, Some(&tokens[id as usize]), id)),
    )
    .await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(tool_text(&answer.json()), who("alice"));
    }
    // N binding lookups (each a GET, inside the script or plain), one restore; the lookups
    // that ran before the first script answered ran the script too, the others were GETs.
    let calls = redis.command_calls();
    let scripts = calls.get("evalsha").copied().unwrap_or(0);
    assert!((1..=N).contains(&scripts), "{calls:?}");
    assert_eq!(
        calls,
        counts(&[("evalsha", scripts), ("get", N + 1), ("pttl", scripts)]),
        "N binding lookups, one restore"
    );
}

/// mallory, with a valid token of her own, presents alice's session id on B: the `tools/call`
/// gets the mismatch answer, nothing of hers reaches the MCP service (B does not even restore
/// the session for her), and the session is ended: a tombstone in Redis, so alice gets 404 on
/// A, which still holds the session in memory, and on B.
async fn a_thief_on_b_is_refused_and_the_session_ends_on_every_replica(redis: Backend) {
    let (a, b) = (Replica::start(&redis).await, Replica::start(&redis).await);
    let session = a.raw.open_session(Some(&token("alice"))).await;
    assert_eq!(a.whoami(&session, "alice").await, who("alice"));

    let answer = b.raw.whoami(&session, Some(&token("mallory")), 2).await;
    assert_mismatch(&answer);
    assert_eq!(
        b.forwarded_with(&session),
        [http::Method::DELETE],
        "only the layer's DELETE that ends the session reached B's MCP service"
    );
    assert_eq!(redis.get(&redis.binding_key(&session)), TOMBSTONE);
    assert_eq!(
        redis.get(&state_key(&session)),
        "",
        "the DELETE removed rmcp's state"
    );

    let before = a.forwarded();
    assert_eq!(
        a.whoami_status(&session, "alice").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.whoami_status(&session, "alice").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(a.forwarded(), before, "the 404 came from the binding layer");
}

/// How often the replicas of the stream tests check their open streams' sessions.
const RECHECK: Duration = Duration::from_millis(200);
/// How long an ended session's stream may take to end, at most: a correctness deadline (an
/// interval, the store's answer, and room for a loaded machine), not a measure of speed.
const STREAM_END_DEADLINE: Duration = Duration::from_secs(5);

/// alice's GET stream on `replica`: a task that reads it and ends when the stream ends.
async fn open_stream(replica: &Replica, session: &str, sub: &str) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    let response = replica
        .raw
        .request(reqwest::Method::GET, Some(session), Some(&token(sub)))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET sent");
    assert_eq!(response.status(), StatusCode::OK, "{response:?}");
    let content_type = response.headers()[http::header::CONTENT_TYPE].as_bytes();
    assert!(content_type.starts_with(b"text/event-stream"));
    let mut stream = response.bytes_stream();
    tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} })
}

/// The stream stays open across several rechecks while its session is bound to its caller.
async fn assert_stays_open(stream: &mut tokio::task::JoinHandle<()>) {
    let open = tokio::time::timeout(RECHECK * 4, &mut *stream).await;
    assert!(open.is_err(), "the owner's stream ended on its own");
}

/// The stream ends before [`STREAM_END_DEADLINE`].
async fn assert_ends(stream: tokio::task::JoinHandle<()>, what: &str) {
    tokio::time::timeout(RECHECK + STREAM_END_DEADLINE, stream)
        .await
        .unwrap_or_else(|_| panic!("{what}: the owner's stream on A is still open"))
        .expect("the reading task");
}

/// mallory presents alice's session id on B while alice's GET stream is open on A: B refuses her
/// and ends the session (a tombstone in Redis, rmcp's state deleted), and A, whose rmcp still
/// holds the session in memory and would stream on, ends alice's stream at its next recheck.
async fn a_thief_on_b_ends_the_owners_open_stream_on_a(redis: Backend) {
    let a = Replica::start_rechecking(&redis, RedisOptions::new(), Some(RECHECK)).await;
    let b = Replica::start_rechecking(&redis, RedisOptions::new(), Some(RECHECK)).await;
    let session = a.raw.open_session(Some(&token("alice"))).await;
    let mut stream = open_stream(&a, &session, "alice").await;
    assert_stays_open(&mut stream).await;

    assert_mismatch(&b.raw.whoami(&session, Some(&token("mallory")), 2).await);
    assert_eq!(redis.get(&redis.binding_key(&session)), TOMBSTONE);
    assert_ends(stream, "a thief on B ended the session").await;
    assert_eq!(
        a.whoami_status(&session, "alice").await,
        StatusCode::NOT_FOUND
    );
}

/// alice deletes her session on B while her GET stream is open on A: the stream ends.
async fn an_owner_delete_on_b_ends_her_open_stream_on_a(redis: Backend) {
    let a = Replica::start_rechecking(&redis, RedisOptions::new(), Some(RECHECK)).await;
    let b = Replica::start(&redis).await;
    let session = a.raw.open_session(Some(&token("alice"))).await;
    let mut stream = open_stream(&a, &session, "alice").await;
    assert_stays_open(&mut stream).await;

    let answer = b.raw.delete(&session, Some(&token("alice"))).await;
    assert!(answer.status.is_success(), "{answer:?}");
    assert_ends(stream, "alice deleted the session on B").await;
}

/// With client-side caches on both replicas, A's rechecks are served from its cache (no round
/// trip), and a thief on B still ends alice's stream on A: the invalidation reaches A's cache
/// within its staleness bound, and the next recheck ends the stream.
#[tokio::test]
async fn with_client_side_caches_a_thief_on_b_ends_the_owners_stream_on_a() {
    let Some(redis) = Backend::single() else {
        return;
    };
    let cached = || RedisOptions::new().client_side_cache(Duration::from_secs(1));
    let a = Replica::start_rechecking(&redis, cached(), Some(RECHECK)).await;
    let b = Replica::start_rechecking(&redis, cached(), Some(RECHECK)).await;
    let session = a.raw.open_session(Some(&token("alice"))).await;
    let mut stream = open_stream(&a, &session, "alice").await;
    // Once A's tracking connection is on, its rechecks stop reaching Redis.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        redis.reset_stats();
        assert_stays_open(&mut stream).await;
        let mut calls = redis.command_calls();
        calls.remove("ping");
        if calls.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A's rechecks never came from its cache: {calls:?}"
        );
    }

    assert_mismatch(&b.raw.whoami(&session, Some(&token("mallory")), 2).await);
    assert_eq!(redis.get(&redis.binding_key(&session)), TOMBSTONE);
    assert_ends(stream, "a thief on B ended the session (cached)").await;
}

/// alice ends her session with a DELETE on B: A, where she opened it, answers 404 from then on.
async fn an_owner_delete_on_b_ends_the_session_on_a(redis: Backend) {
    let (a, b) = (Replica::start(&redis).await, Replica::start(&redis).await);
    let session = a.raw.open_session(Some(&token("alice"))).await;

    let answer = b.raw.delete(&session, Some(&token("alice"))).await;
    assert!(answer.status.is_success(), "{answer:?}");
    assert_eq!(b.forwarded_with(&session), [http::Method::DELETE]);
    assert_eq!(redis.get(&redis.binding_key(&session)), TOMBSTONE);
    assert_eq!(redis.get(&state_key(&session)), "");

    assert_eq!(
        a.whoami_status(&session, "alice").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.whoami_status(&session, "alice").await,
        StatusCode::NOT_FOUND
    );
}

/// Redis stops mid-run and is restarted.
///
/// "Restarted" here means what a Redis with persistence does: its data was on disk when it
/// stopped (the test takes a `SAVE` snapshot, since the harness runs Redis without automatic
/// persistence), the process is killed (clients see refused connections), and a new process
/// starts on the same port and loads the snapshot. The replicas keep running throughout.
///
/// While Redis is down, every request on a session gets 503 with `Retry-After` and a JSON-RPC
/// error, whoever sends it, and none reaches the MCP service; an `initialize` also gets 503 and
/// the session rmcp opened for it is ended (the layer never hands out an unbound session). Once
/// Redis is back, the same replicas serve the same sessions from the first request: nothing
/// was ended, no binding was lost, and a thief is still refused.
#[tokio::test]
async fn while_redis_is_down_requests_get_503_and_nothing_is_lost() {
    let Some(mut redis) = Backend::single() else {
        return;
    };
    let (a, b) = (Replica::start(&redis).await, Replica::start(&redis).await);
    let alice = a.raw.open_session(Some(&token("alice"))).await;
    let bob = b.raw.open_session(Some(&token("bob"))).await;
    // A holds alice's session; B holds bob's, and alice's too once it restored it.
    assert_eq!(b.whoami(&alice, "alice").await, who("alice"));
    redis.server().command(&["SAVE"]);
    let stored = [
        (
            redis.binding_key(&alice),
            redis.get(&redis.binding_key(&alice)),
        ),
        (redis.binding_key(&bob), redis.get(&redis.binding_key(&bob))),
    ];
    redis.server_mut().stop();

    let (seen_a, seen_b) = (a.forwarded(), b.forwarded());
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    // Every kind of request on a session, by its owner and by a thief, on both replicas, all
    // at once.
    let mut requests = Vec::new();
    for (replica, name) in [(&a, "A"), (&b, "B")] {
        for (session, sub) in [(&alice, "alice"), (&bob, "bob"), (&alice, "mallory")] {
            for kind in ["tools/call", "notification", "GET", "DELETE"] {
                let (raw, session, t) = (replica.raw.clone(), session.clone(), token(sub));
                let note = &note;
                let answer = async move {
                    let (session, t) = (Some(session.as_str()), Some(t.as_str()));
                    match kind {
                        "tools/call" => {
                            raw.post(session, t, &tool_call(3, "whoami", json!({})))
                                .await
                        }
                        "notification" => raw.post(session, t, note).await,
                        "GET" => {
                            let get = raw.request(reqwest::Method::GET, session, t);
                            Raw::send(get.header("accept", "text/event-stream")).await
                        }
                        _ => Raw::send(raw.request(reqwest::Method::DELETE, session, t)).await,
                    }
                };
                requests.push((format!("{kind} by {sub} on {name}"), answer));
            }
        }
    }
    let started = Instant::now();
    let (names, answers): (Vec<String>, Vec<_>) = requests.into_iter().unzip();
    let answers = futures::future::join_all(answers).await;
    let elapsed = started.elapsed();
    for (what, answer) in names.iter().zip(&answers) {
        assert_unavailable(answer, what);
    }
    assert_eq!(a.forwarded(), seen_a, "nothing reached A's MCP service");
    assert_eq!(b.forwarded(), seen_b, "nothing reached B's MCP service");
    assert!(
        elapsed < Duration::from_secs(5),
        "{} requests answered in {elapsed:?}",
        answers.len()
    );

    // A new session cannot be bound: 503, and the inner session is ended, not handed out.
    let answer = a
        .raw
        .post(None, Some(&token("alice")), &initialize_body())
        .await;
    assert_unavailable(&answer, "initialize");
    assert!(!answer.headers.contains_key("mcp-session-id"), "{answer:?}");
    let seen: Vec<Seen> = a.server.seen.lock().unwrap()[seen_a..].to_vec();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        (&seen[0].method, &seen[0].session),
        (&http::Method::POST, &None)
    );
    assert_eq!(seen[1].method, http::Method::DELETE, "{seen:?}");
    assert!(seen[1].session.is_some(), "{seen:?}");

    redis.server_mut().restart();
    for (key, value) in &stored {
        assert_eq!(&redis.get(key), value, "the binding survived the restart");
    }
    // The first request after the restart is served.
    assert_eq!(a.whoami(&alice, "alice").await, who("alice"));
    assert_eq!(b.whoami(&alice, "alice").await, who("alice"));
    assert_eq!(b.whoami(&bob, "bob").await, who("bob"));
    // A never held bob's session: rmcp restores it from the snapshot.
    assert_eq!(a.whoami(&bob, "bob").await, who("bob"));
    assert_mismatch(&a.raw.whoami(&alice, Some(&token("mallory")), 4).await);
    assert_eq!(
        a.whoami_status(&alice, "alice").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(b.whoami(&bob, "bob").await, who("bob"));
}

/// A Redis that comes back empty (no persistence) has forgotten every binding: each session
/// answers 404 on every replica, for its owner and for anyone else (an unbound session is never
/// adopted by whoever calls first), and the owner opens a new one.
#[tokio::test]
async fn redis_restarted_without_its_data_turns_sessions_into_404() {
    let Some(mut redis) = Backend::single() else {
        return;
    };
    let (a, b) = (Replica::start(&redis).await, Replica::start(&redis).await);
    let session = a.raw.open_session(Some(&token("alice"))).await;
    assert_eq!(a.whoami(&session, "alice").await, who("alice"));

    redis.server_mut().restart();
    assert_eq!(
        a.whoami_status(&session, "mallory").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.whoami_status(&session, "alice").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.whoami_status(&session, "alice").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        redis.get(&redis.binding_key(&session)),
        "",
        "nobody adopted it"
    );

    let fresh = b.raw.open_session(Some(&token("alice"))).await;
    assert_eq!(a.whoami(&fresh, "alice").await, who("alice"));
}

/// A binding value that this crate did not write (here a token-hash binding of some older
/// scheme, written by hand) fails closed: the owner's own request gets the mismatch answer, the
/// session is ended, and it answers 404 on both replicas.
async fn a_stored_value_that_is_not_a_binding_fails_closed(redis: Backend) {
    let (a, b) = (Replica::start(&redis).await, Replica::start(&redis).await);
    let session = a.raw.open_session(Some(&token("alice"))).await;
    let legacy = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    redis.set(&redis.binding_key(&session), legacy);

    assert_mismatch(&b.raw.whoami(&session, Some(&token("alice")), 2).await);
    assert_eq!(b.forwarded_with(&session), [http::Method::DELETE]);
    assert_eq!(redis.get(&redis.binding_key(&session)), TOMBSTONE);
    assert_eq!(
        a.whoami_status(&session, "alice").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.whoami_status(&session, "alice").await,
        StatusCode::NOT_FOUND
    );
}

/// The cost, counted by Redis itself (`INFO commandstats`), through the HTTP stack:
///
/// - one `initialize` ⇒ one round trip for the binding: `EVALSHA` of the bind script (the
///   insert-if-absent and the owner's session count, whose commands Redis counts too). The
///   window holds exactly two `SET`s, and both the binding key and rmcp's state key were
///   written in it; each needs at least one write, so each got exactly one.
/// - N checked requests of the owner on the replica that bound the session ⇒ exactly N plain
///   `GET`s: that replica knows the binding has more than half its TTL left, so no script and
///   no write (no `SET`, no `PEXPIRE`), nothing from rmcp.
/// - the same N on the other replica ⇒ one `EVALSHA` of the sliding-expiry script (its `GET`
///   and `PTTL`; it learns the TTL, writes nothing), then `GET`s, plus one `GET` for rmcp's
///   restore.
async fn one_redis_round_trip_per_checked_request_and_per_bind(redis: Backend) {
    const N: u64 = 20;
    let (a, b) = (Replica::start(&redis).await, Replica::start(&redis).await);
    // Warm up: the connections are open and the lookup script is in Redis' cache.
    let warm = a.raw.open_session(Some(&token("bob"))).await;
    assert_eq!(a.whoami(&warm, "bob").await, who("bob"));
    assert_eq!(b.whoami(&warm, "bob").await, who("bob"));

    redis.reset_stats();
    let answer = a
        .raw
        .post(None, Some(&token("alice")), &initialize_body())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let session = answer.session_id();
    let bind = redis.command_calls();
    assert_eq!(
        without_time(&redis.get(&redis.binding_key(&session))),
        bound_to("alice")
    );
    assert!(!redis.get(&state_key(&session)).is_empty());
    // One round trip for the bind (the script, with the owner's count inside it), one write
    // for rmcp's state.
    assert_eq!(
        bind,
        counts(&[
            ("evalsha", 1),
            ("get", 1),
            ("time", 1),
            ("zremrangebyscore", 1),
            // The owner's sessions, and its tombstones.
            ("zcard", 2),
            ("set", 2),
            ("zadd", 1),
            ("pttl", 1),
            ("pexpire", 1),
        ]),
        "one bind, one rmcp state"
    );

    redis.reset_stats();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let answer = a
        .raw
        .post(Some(&session), Some(&token("alice")), &note)
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    for _ in 1..N {
        assert_eq!(a.whoami(&session, "alice").await, who("alice"));
    }
    let on_a = redis.command_calls();
    assert_eq!(
        on_a,
        counts(&[("get", N)]),
        "{N} checked requests on A, which bound the session and knows its TTL is fresh"
    );

    redis.reset_stats();
    for _ in 0..N {
        assert_eq!(b.whoami(&session, "alice").await, who("alice"));
    }
    let on_b = redis.command_calls();
    assert_eq!(
        on_b,
        counts(&[("evalsha", 1), ("get", N + 1), ("pttl", 1)]),
        "{N} checked requests on B: one script that learns the TTL, then GETs; one restore"
    );
    println!("initialize: {bind:?}; {N} requests on A: {on_a:?}; {N} requests on B: {on_b:?}");
}

/// Both replicas with the client-side cache (`RedisOptions::client_side_cache`, the example's
/// `--redis-cache-ms`): A checks alice's requests without a round trip, and a thief on B still
/// ends the session everywhere: A answers 404 once the invalidation has arrived.
#[tokio::test]
async fn with_client_side_caches_a_session_ended_on_b_is_refused_on_a() {
    let Some(redis) = Backend::single() else {
        return;
    };
    let cached = || RedisOptions::new().client_side_cache(Duration::from_secs(1));
    let a = Replica::start_with(&redis, cached()).await;
    let b = Replica::start_with(&redis, cached()).await;
    let session = a.raw.open_session(Some(&token("alice"))).await;
    // Until the tracking connection is on, lookups read Redis; then they stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert_eq!(a.whoami(&session, "alice").await, who("alice"));
        redis.reset_stats();
        for _ in 0..5 {
            assert_eq!(a.whoami(&session, "alice").await, who("alice"));
        }
        // The tracking connections' PINGs aside, nothing reached Redis.
        let mut calls = redis.command_calls();
        calls.remove("ping");
        if calls.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "A's cache never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_mismatch(&b.raw.whoami(&session, Some(&token("mallory")), 2).await);
    assert_eq!(redis.get(&redis.binding_key(&session)), TOMBSTONE);
    let ended = Instant::now();
    loop {
        match a.whoami_status(&session, "alice").await {
            StatusCode::NOT_FOUND => break,
            StatusCode::OK => assert!(
                ended.elapsed() < Duration::from_secs(1),
                "A served the ended session past the cache's bound"
            ),
            other => panic!("{other}"),
        }
    }
    println!(
        "A refused the session {:?} after B ended it",
        ended.elapsed()
    );
    assert_eq!(
        b.whoami_status(&session, "mallory").await,
        StatusCode::NOT_FOUND
    );
}

/// The example binary with `--redis`: sessions created before a crash (SIGKILL) of the only
/// server process work for their owners after it starts again on the same Redis (on another
/// port), and are still refused to others.
async fn a_server_process_restart_keeps_every_binding(redis: Backend) {
    let redis_args = redis.server_args();
    // Both are given the same MCP_KEY_SECRET: the second finds the bindings the first wrote.
    let server = |key_secret: Option<&str>| {
        let mut command = example_bin::server_command("mcp_server", Some(SECRET));
        command.args(&redis_args).env_remove("MCP_KEY_SECRET");
        if let Some(secret) = key_secret {
            command.env("MCP_KEY_SECRET", secret);
        }
        Spawned::start(&mut command)
    };

    let key_secret = "restart-test-key-secret-32-bytes!!";
    let first = server(Some(key_secret));
    let raw = Raw::at(first.url.clone());
    let alice = raw.open_session(Some(&token("alice"))).await;
    let bob = raw.open_session(Some(&token("bob"))).await;
    drop(first);

    let second = server(Some(key_secret));
    let raw = Raw::at(second.url.clone());
    let whoami = async |session: &str, sub: &str| {
        let answer = raw.whoami(session, Some(&token(sub)), 5).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        tool_text(&answer.json()).to_owned()
    };
    assert_eq!(whoami(&alice, "alice").await, who("alice"));
    assert_eq!(whoami(&bob, "bob").await, who("bob"));
    // bob's valid token does not open alice's session; that ends it, and only it.
    assert_mismatch(&raw.whoami(&alice, Some(&token("bob")), 6).await);
    let answer = raw.whoami(&alice, Some(&token("alice")), 7).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert_eq!(whoami(&bob, "bob").await, who("bob"));
    // A session of the second process has a keyed key only.
    let carol = raw.open_session(Some(&token("carol"))).await;
    assert_eq!(whoami(&carol, "carol").await, who("carol"));
    assert_eq!(redis.get(&redis.binding_key(&carol)), "", "no unkeyed key");
}

/// On a Redis Cluster, the master that holds the bindings is killed (SIGKILL) while two replicas
/// serve sessions. Until a replica of it is promoted, requests get 503 (or already work); after
/// the promotion, each session works for its owner or answers 404 (a write the dead master had
/// not replicated is lost), and never works for anyone else; new sessions work on both replicas.
#[tokio::test]
async fn a_cluster_failover_never_hands_a_session_to_another_caller() {
    let Some(mut redis) = Backend::cluster() else {
        return;
    };
    let (a, b) = (Replica::start(&redis).await, Replica::start(&redis).await);
    let mut sessions = Vec::new();
    for (i, sub) in ["alice", "bob", "carol", "dave"].iter().enumerate() {
        let replica = if i % 2 == 0 { &a } else { &b };
        let session = replica.raw.open_session(Some(&token(sub))).await;
        assert_eq!(replica.whoami(&session, sub).await, who(sub));
        sessions.push((session, *sub));
    }
    let key = redis.binding_key(&sessions[0].0);
    let Backend::Cluster(cluster) = &mut redis else {
        unreachable!()
    };
    let killed = cluster.fail_over(&key);
    eprintln!("killed the master on port {killed}; a replica took over");

    for (session, sub) in &sessions {
        for replica in [&a, &b] {
            // The clients may need a moment to find the new master: 503 until then (bounded).
            let deadline = Instant::now() + Duration::from_secs(20);
            let status = loop {
                let status = replica.whoami_status(session, sub).await;
                if status != StatusCode::SERVICE_UNAVAILABLE || Instant::now() >= deadline {
                    break status;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert!(
                [StatusCode::OK, StatusCode::NOT_FOUND].contains(&status),
                "{sub}'s session after the failover: {status}"
            );
        }
        // Anyone else: refused (the mismatch answer, which ends the session) or 404; never
        // served as themselves on it.
        let answer = b.raw.whoami(session, Some(&token("mallory")), 5).await;
        if answer.status == StatusCode::OK {
            assert_mismatch(&answer);
        } else {
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
        }
        assert_eq!(a.whoami_status(session, sub).await, StatusCode::NOT_FOUND);
    }
    for (replica, other) in [(&a, &b), (&b, &a)] {
        let fresh = replica.raw.open_session(Some(&token("erin"))).await;
        assert_eq!(other.whoami(&fresh, "erin").await, who("erin"));
        assert_mismatch(&other.raw.whoami(&fresh, Some(&token("mallory")), 6).await);
    }
}

/// Environment variables of the child process of
/// [`concurrent_binds_across_processes_have_exactly_one_winner`].
const RACE_REDIS: &str = "MCPSB_RACE_REDIS";
const RACE_IDS: &str = "MCPSB_RACE_IDS";
/// How many session ids the two processes race for.
const RACE_COUNT: usize = 200;

/// The ids raced over, in order.
fn race_ids(prefix: &str) -> Vec<String> {
    (0..RACE_COUNT).map(|i| format!("{prefix}-{i}")).collect()
}

/// The list whose element starts round `i` of the race.
fn race_start(prefix: &str, i: usize) -> String {
    format!("{prefix}:start:{i}")
}

fn user(sub: &str) -> Owner {
    Owner::User(Identity::new(DEFAULT_ISSUER, sub).unwrap())
}

/// One racer: for each id, waits for its round to start (`BLPOP` on a connection of its own),
/// then binds the id to `owner` through `RedisStore`. The outcomes, in `ids` order.
async fn race(url: &str, prefix: &str, owner: &Owner) -> Vec<BindOutcome> {
    let store = RedisStore::connect(url).await.unwrap();
    let client = redis::Client::open(url).unwrap();
    let mut gate = client.get_multiplexed_async_connection().await.unwrap();
    let mut outcomes = Vec::with_capacity(RACE_COUNT);
    for (i, id) in race_ids(prefix).iter().enumerate() {
        let _: (String, String) = redis::cmd("BLPOP")
            .arg(race_start(prefix, i))
            .arg(0)
            .query_async(&mut gate)
            .await
            .unwrap();
        let outcome = store
            .bind(
                Record::new(
                    store.key_derivation().session(id),
                    owner,
                    Duration::from_secs(60),
                ),
                usize::MAX,
            )
            .await
            .expect("bind");
        outcomes.push(outcome);
    }
    outcomes
}

/// Two processes (this test, and a copy of this test binary running [`bind_race_child`]) race
/// to bind the same 200 session ids to different owners on one Redis, through `RedisStore`.
/// Each id is one round: both racers block on a Redis list (`BLPOP`), a starter thread waits
/// until both are blocked and pushes two elements, Redis releases both in the same event-loop
/// turn, and both send their bind at once. For every id exactly one bind reports `Created`, the
/// other reports `AlreadyBound` with the winner, and Redis holds the winner. (A check-then-set
/// bind, `GET` then `SET`, fails this test: two winners on some ids.)
#[tokio::test]
async fn concurrent_binds_across_processes_have_exactly_one_winner() {
    let Some(redis) = Backend::single() else {
        return;
    };
    let prefix = format!("race-{}", std::process::id());
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "multi_replica::bind_race_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RACE_REDIS, redis.server().url())
        .env(RACE_IDS, &prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    // The starter: opens round i once both racers are blocked on it.
    let starter = {
        let (url, prefix) = (redis.server().url(), prefix.clone());
        std::thread::spawn(move || {
            let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            for i in 0..RACE_COUNT {
                loop {
                    let info: String = redis::cmd("INFO").arg("clients").query(&mut conn).unwrap();
                    if info.lines().any(|line| line.trim() == "blocked_clients:2") {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "the racers never met at round {i}"
                    );
                    std::thread::yield_now();
                }
                let _: () = redis::cmd("RPUSH")
                    .arg(race_start(&prefix, i))
                    .arg("go")
                    .arg("go")
                    .query(&mut conn)
                    .unwrap();
            }
        })
    };
    let ours = race(&redis.server().url(), &prefix, &user("alice")).await;
    starter.join().expect("the starter");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the child failed");
    let theirs: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| Some(line.split_once("race: ")?.1.to_owned()))
        .collect();
    assert_eq!(theirs.len(), RACE_COUNT, "{theirs:?}");

    let mallory = user("mallory");
    let (mut won, mut lost) = (0, 0);
    for ((id, ours), theirs) in race_ids(&prefix).iter().zip(&ours).zip(&theirs) {
        let stored = redis.get(&format!(
            "mcpsb:{}",
            KeyDerivation::public().session(id).to_hex()
        ));
        match ours {
            BindOutcome::Created => {
                won += 1;
                assert_eq!(theirs, &format!("{id} bound alice"), "{id}");
                assert_eq!(without_time(&stored), bound_to("alice"), "{id}");
            }
            BindOutcome::AlreadyBound(owner) => {
                lost += 1;
                assert_eq!(owner, &mallory, "{id}");
                assert_eq!(theirs, &format!("{id} created"), "{id}");
                assert_eq!(without_time(&stored), bound_to("mallory"), "{id}");
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    println!("of {RACE_COUNT} ids, this process won {won}, the other {lost}");
    assert!(
        won > 0 && lost > 0,
        "both processes won some ids (else they did not race): {won} / {lost}"
    );
}

/// The child process of [`concurrent_binds_across_processes_have_exactly_one_winner`]: does
/// nothing unless started by it.
#[tokio::test]
#[ignore = "the child process of concurrent_binds_across_processes_have_exactly_one_winner"]
async fn bind_race_child() {
    let (Ok(url), Ok(prefix)) = (std::env::var(RACE_REDIS), std::env::var(RACE_IDS)) else {
        return;
    };
    let outcomes = race(&url, &prefix, &user("mallory")).await;
    for (id, outcome) in race_ids(&prefix).iter().zip(outcomes) {
        let text = match outcome {
            BindOutcome::Created => "created".to_owned(),
            BindOutcome::AlreadyBound(Owner::User(identity)) => {
                format!("bound {}", identity.sub())
            }
            other => format!("{other:?}"),
        };
        println!("race: {id} {text}");
    }
}

/// Two processes of the example server on one Redis, with the same `MCP_KEY_SECRET` (keyed task
/// keys): a task alice creates on A is hers on B too. bob's `subscriptions/listen` naming it on
/// B gets the layer's `-32602` (`TaskParamsLayer` reads the record A wrote); alice's passes the
/// layers and reaches rmcp on B, which has no `subscriptions/listen` (`-32601`).
#[tokio::test]
async fn a_task_created_on_a_is_bound_on_b_for_listen() {
    use support::modern::{create_task, request};
    let Some(redis) = Backend::single() else {
        return;
    };
    let redis_args = redis.server_args();
    let server = || {
        let mut command = example_bin::server_command("mcp_server", Some(SECRET));
        command
            .args(&redis_args)
            .env("MCP_KEY_SECRET", "listen-test-key-secret-of-32-bytes!");
        Spawned::start(&mut command)
    };
    let (a, b) = (server(), server());
    let task = create_task(&Raw::at(a.url.clone()), &token("alice"), "on A", 50).await;

    let on_b = Raw::at(b.url.clone());
    let listen = async |sub: &str| {
        let body = request(
            5,
            "subscriptions/listen",
            json!({"notifications": {"taskIds": [task]}}),
        );
        support::modern::modern(
            &on_b,
            Some(&token(sub)),
            "subscriptions/listen",
            None,
            &body,
        )
        .await
    };
    let bobs = listen("bob").await;
    assert_eq!(bobs.status, StatusCode::OK, "{bobs:?}");
    let bobs = bobs.json();
    assert_eq!(bobs["id"], 5, "{bobs}");
    assert_eq!(bobs["error"]["code"], -32602, "{bobs}");
    assert_eq!(bobs["error"]["message"], format!("unknown task: {task}"));
    // rmcp's own answer (404, method not found): alice's listen passed both layers.
    let alices = listen("alice").await.json();
    assert_eq!(alices["error"]["code"], -32601, "{alices}");
}
