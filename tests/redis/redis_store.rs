//! `RedisStore` against a real `redis-server` started by the harness (no mock).
//!
//! Skipped, with a loud `SKIP:` line, when `redis-server` is not installed, unless `CI` or
//! `REQUIRE_REDIS` is set.
#![cfg(feature = "redis")]

use crate::support;

use support::redis_server;

use std::time::{Duration, Instant};

use mcp_session_binding::{
    Identity,
    store::{
        BindOutcome, BindingStore, KeyDerivation, KeySecret, Lookup, Owner, Record, RedisOptions,
        RedisStore, SessionKey, StoreError, StoreErrorKind, conformance,
    },
};
use redis_server::RedisServer;

/// The key of session id `id` under a store without a key secret.
fn key_of(id: &str) -> SessionKey {
    KeyDerivation::public().session(id)
}

/// The Redis key that holds `key`'s binding in `store`.
fn redis_key(store: &RedisStore, key: SessionKey) -> String {
    format!("{}{}", store.prefix(), key.to_hex())
}

const TTL: Duration = Duration::from_secs(300);
const NO_LIMIT: usize = usize::MAX;

fn alice() -> Owner {
    Owner::User(Identity::new("https://issuer.example", "alice").unwrap())
}

fn bob() -> Owner {
    Owner::User(Identity::new("https://issuer.example", "bob").unwrap())
}

async fn store(server: &RedisServer) -> RedisStore {
    store_with(server, RedisOptions::new()).await
}

async fn store_with(server: &RedisServer, options: RedisOptions) -> RedisStore {
    RedisStore::connect_with(&server.url(), options)
        .await
        .expect("connect to the test redis")
}

/// The calls of each command since the last reset, without `config|resetstat` and `info`
/// (the harness's own plumbing).
fn calls(server: &RedisServer) -> Vec<(String, u64)> {
    server
        .command_calls()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("config") && name != "info")
        .collect()
}

fn count(calls: &[(String, u64)], name: &str) -> u64 {
    calls.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
}

#[tokio::test]
async fn conformance_suite_passes() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = store(&server).await;
    conformance::run_all(&store).await;
    // And with another prefix, on the same server, without interference.
    let other =
        RedisStore::connect_with(&server.url(), RedisOptions::new().prefix("{other}:mcpsb:"))
            .await
            .unwrap();
    conformance::run_all(&other).await;
}

#[tokio::test]
async fn one_round_trip_per_bind_and_per_lookup() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = store(&server).await;
    const N: u64 = 50;
    let keys: Vec<SessionKey> = (0..N).map(|i| key_of(&format!("cost-{i}"))).collect();

    // Load the bind script once (the first call on a fresh server is EVALSHA, NOSCRIPT,
    // SCRIPT LOAD, EVALSHA), then measure.
    let warm = key_of("cost-warm");
    store
        .bind(Record::new(warm, &bob(), TTL), NO_LIMIT)
        .await
        .unwrap();
    // N binds: one EVALSHA each (the limit is counted inside it, and the owner's tombstones:
    // a second ZCARD), nothing else.
    server.reset_stats();
    for key in &keys {
        assert_eq!(
            store
                .bind(Record::new(*key, &alice(), TTL), 100)
                .await
                .unwrap(),
            BindOutcome::Created
        );
    }
    let after_binds = calls(&server);
    eprintln!("commandstats after {N} binds: {after_binds:?}");
    assert_eq!(count(&after_binds, "evalsha"), N, "one round trip per bind");
    for (name, n) in [("get", N), ("set", N), ("zadd", N), ("zcard", 2 * N)] {
        assert_eq!(count(&after_binds, name), n, "{name}");
    }
    let inside = [
        "evalsha",
        "get",
        "time",
        "zremrangebyscore",
        "zcard",
        "set",
        "zadd",
        "pttl",
        "pexpire",
    ];
    assert!(
        after_binds
            .iter()
            .all(|(name, _)| inside.contains(&name.as_str())),
        "nothing else: {after_binds:?}"
    );

    // N lookups without slide: N GETs.
    server.reset_stats();
    for key in &keys {
        assert_eq!(
            store.lookup(*key, None).await.unwrap(),
            Lookup::Bound(alice())
        );
    }
    let after_gets = calls(&server);
    eprintln!("commandstats after {N} plain lookups: {after_gets:?}");
    assert_eq!(after_gets, vec![("get".to_owned(), N)]);

    // Sliding lookups of bindings this store made, more than half the TTL left: it knows the
    // expiry, so each is a plain GET: no script, no write.
    server.reset_stats();
    for key in &keys {
        assert_eq!(
            store.lookup(*key, Some(TTL)).await.unwrap(),
            Lookup::Bound(alice())
        );
    }
    let fresh = calls(&server);
    eprintln!("commandstats after {N} sliding lookups, TTL fresh: {fresh:?}");
    assert_eq!(
        fresh,
        vec![("get".to_owned(), N)],
        "one plain GET per lookup while more than half the TTL is left"
    );

    // Another store (another replica) does not know the expiry: its first sliding lookup of a
    // key runs the script (GET, PTTL; no write while the TTL is fresh), the next ones are GETs.
    let other = store_with(&server, RedisOptions::new()).await;
    other.lookup(keys[3], Some(TTL)).await.unwrap(); // loads the script into Redis
    server.reset_stats();
    for _ in 0..N {
        assert_eq!(
            other.lookup(keys[4], Some(TTL)).await.unwrap(),
            Lookup::Bound(alice())
        );
    }
    let learnt = calls(&server);
    eprintln!("commandstats after {N} sliding lookups on another store: {learnt:?}");
    assert_eq!(count(&learnt, "evalsha"), 1);
    assert_eq!(count(&learnt, "get"), N);
    assert_eq!(count(&learnt, "pttl"), 1);
    assert_eq!(learnt.len(), 3, "no write: {learnt:?}");

    // Less than half the slide left, on a store that did not make the binding: the first lookup
    // refreshes once (the key and its owner set), the next ones are GETs.
    let key = keys[1];
    server.command(&["PEXPIRE", &redis_key(&store, key), "100000"]);
    server.reset_stats();
    for _ in 0..N {
        assert_eq!(
            other.lookup(key, Some(TTL)).await.unwrap(),
            Lookup::Bound(alice())
        );
    }
    let refresh = calls(&server);
    eprintln!("commandstats after {N} sliding lookups, TTL under half: {refresh:?}");
    assert_eq!(count(&refresh, "evalsha"), 1);
    assert_eq!(count(&refresh, "get"), N);
    assert_eq!(
        count(&refresh, "zadd"),
        1,
        "exactly one refresh per half TTL, of the key and of its owner set"
    );
    assert!(count(&refresh, "pexpire") <= 2, "{refresh:?}");
    // A tombstone is never extended.
    let store = other;
    store.end(key, Duration::from_secs(10)).await.unwrap();
    server.reset_stats();
    assert_eq!(store.lookup(key, Some(TTL)).await.unwrap(), Lookup::Ended);
    assert_eq!(count(&calls(&server), "pexpire"), 0);
    let left: u64 = server
        .command(&["PTTL", &redis_key(&store, key)])
        .parse()
        .unwrap();
    assert!(left <= 10_000);

    // end: one EVAL (the tombstone, the binding leaves its owner set and joins its owner's
    // tombstone set).
    server.reset_stats();
    store.end(keys[2], TTL).await.unwrap();
    let ended = calls(&server);
    eprintln!("commandstats after one end: {ended:?}");
    assert_eq!(count(&ended, "eval"), 1);
    assert_eq!(count(&ended, "set"), 1);
    assert_eq!(count(&ended, "zrem"), 1);
    assert_eq!(count(&ended, "zadd"), 1);
    let inside = [
        "eval", "get", "set", "zrem", "time", "zadd", "pttl", "pexpire",
    ];
    assert!(
        ended
            .iter()
            .all(|(name, _)| inside.contains(&name.as_str())),
        "nothing else: {ended:?}"
    );
    // Ending it again changes nothing.
    server.reset_stats();
    store.end(keys[2], TTL).await.unwrap();
    let again = calls(&server);
    assert_eq!(again.len(), 2, "eval, get: {again:?}");
}

#[tokio::test]
async fn stopped_redis_is_unavailable_quickly_and_a_restart_is_picked_up() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(800);
    let store = store_with(&server, RedisOptions::new().timeout(timeout)).await;
    let key = key_of("outage");
    assert_eq!(
        store
            .bind(Record::new(key, &alice(), TTL), NO_LIMIT)
            .await
            .unwrap(),
        BindOutcome::Created
    );

    server.stop();
    for round in 0..3 {
        let fresh = key_of(&format!("outage-{round}"));
        let started = Instant::now();
        let mut errors = Vec::new();
        for op in 0..4 {
            let op_started = Instant::now();
            let err = match op {
                0 => store
                    .bind(Record::new(fresh, &alice(), TTL), NO_LIMIT)
                    .await
                    .unwrap_err(),
                1 => store.lookup(key, None).await.unwrap_err(),
                2 => store.lookup(key, Some(TTL)).await.unwrap_err(),
                _ => store.end(key, TTL).await.unwrap_err(),
            };
            let took = op_started.elapsed();
            assert!(
                took <= timeout + Duration::from_millis(200),
                "op {op} did not hang: {took:?}"
            );
            assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
            assert!(err.is_transient());
            errors.push(err);
        }
        eprintln!(
            "round {round}: 4 ops failed in {:?}: {}",
            started.elapsed(),
            errors[0]
        );
    }

    server.restart();
    // The restarted server has no data (no persistence) and no script cache. The same store
    // value works again, from the first operation on.
    let again = key_of("after-restart");
    assert_eq!(
        store
            .bind(Record::new(again, &bob(), TTL), NO_LIMIT)
            .await
            .unwrap(),
        BindOutcome::Created
    );
    assert_eq!(store.lookup(key, Some(TTL)).await.unwrap(), Lookup::Missing);
    assert_eq!(store.lookup(key, None).await.unwrap(), Lookup::Missing);
    assert_eq!(
        store.lookup(again, Some(TTL)).await.unwrap(),
        Lookup::Bound(bob())
    );
    store.end(again, TTL).await.unwrap();
    assert_eq!(store.lookup(again, None).await.unwrap(), Lookup::Ended);
}

#[tokio::test]
async fn hung_redis_is_unavailable_within_the_timeout() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(500);
    let store = store_with(&server, RedisOptions::new().timeout(timeout)).await;
    let key = key_of("hung");
    store
        .bind(Record::new(key, &alice(), TTL), NO_LIMIT)
        .await
        .unwrap();
    store.lookup(key, Some(TTL)).await.unwrap();

    server.pause();
    for op in 0..4 {
        let started = Instant::now();
        let err = match op {
            0 => store
                .bind(Record::new(key_of("hung-2"), &alice(), TTL), NO_LIMIT)
                .await
                .unwrap_err(),
            1 => store.lookup(key, None).await.unwrap_err(),
            2 => store.lookup(key, Some(TTL)).await.unwrap_err(),
            _ => store.end(key, TTL).await.unwrap_err(),
        };
        let took = started.elapsed();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
        assert!(
            took >= timeout && took <= timeout + Duration::from_millis(300),
            "op {op}: {took:?}"
        );
        eprintln!("hung server, op {op}: {err} after {took:?}");
    }
    server.resume();
    // The connection is still good: the replies to the abandoned commands are discarded, and
    // the next ones get their own.
    assert_eq!(
        store.lookup(key, None).await.unwrap(),
        Lookup::Ended,
        "the queued end ran"
    );
    let fresh = key_of("after-thaw");
    assert_eq!(
        store
            .bind(Record::new(fresh, &bob(), TTL), NO_LIMIT)
            .await
            .unwrap(),
        BindOutcome::Created
    );
    assert_eq!(
        store.lookup(fresh, Some(TTL)).await.unwrap(),
        Lookup::Bound(bob())
    );
}

#[tokio::test]
async fn first_operation_after_a_restart_succeeds() {
    // With no other operation between the restart and it, each kind of operation meets the
    // dead connection first, and must still succeed.
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = store(&server).await;
    for op in 0..4 {
        store.lookup(key_of("warm"), None).await.unwrap();
        server.restart();
        let key = key_of(&format!("first-after-restart-{op}"));
        match op {
            0 => assert_eq!(
                store
                    .bind(Record::new(key, &alice(), TTL), NO_LIMIT)
                    .await
                    .unwrap(),
                BindOutcome::Created
            ),
            1 => assert_eq!(store.lookup(key, None).await.unwrap(), Lookup::Missing),
            2 => assert_eq!(store.lookup(key, Some(TTL)).await.unwrap(), Lookup::Missing),
            _ => store.end(key, TTL).await.unwrap(),
        }
    }
}

#[tokio::test]
async fn values_that_are_not_bindings_are_corrupt() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = store(&server).await;

    let key = key_of("legacy");
    server.command(&["SET", &redis_key(&store, key), "sha256:abcd"]);
    for slide in [None, Some(TTL)] {
        let err = store.lookup(key, slide).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
        assert!(!err.is_transient());
    }
    let err = store
        .bind(Record::new(key, &alice(), TTL), NO_LIMIT)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    assert_eq!(
        server.command(&["GET", &redis_key(&store, key)]),
        "sha256:abcd",
        "bind never overwrites"
    );
    assert_eq!(
        server.command(&["PTTL", &redis_key(&store, key)]),
        "-1",
        "a corrupt value is not extended"
    );
    // end replaces it with a tombstone.
    store.end(key, TTL).await.unwrap();
    assert_eq!(store.lookup(key, None).await.unwrap(), Lookup::Ended);

    // A key of another type.
    let listed = key_of("a-list");
    server.command(&["RPUSH", &redis_key(&store, listed), "x"]);
    for slide in [None, Some(TTL)] {
        assert_eq!(
            store.lookup(listed, slide).await.unwrap_err().kind(),
            StoreErrorKind::Corrupt
        );
    }
    assert_eq!(
        store
            .bind(Record::new(listed, &alice(), TTL), NO_LIMIT)
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::Corrupt
    );

    // Almost-valid encodings.
    for value in [
        "mcpsb1:user:99:ab",
        "mcpsb1:anon ",
        "mcpsb0:anon",
        "mcpsb1:ended\n",
    ] {
        let key = key_of(value);
        server.command(&["SET", &redis_key(&store, key), value]);
        assert_eq!(
            store.lookup(key, None).await.unwrap_err().kind(),
            StoreErrorKind::Corrupt,
            "{value:?}"
        );
    }
}

#[tokio::test]
async fn redis_never_holds_the_session_id() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = store_with(&server, RedisOptions::new().prefix("app:")).await;
    let session_id = "secret-session-id";
    let key = key_of(session_id);
    store
        .bind(Record::new(key, &alice(), TTL), NO_LIMIT)
        .await
        .unwrap();
    store.lookup(key, Some(TTL)).await.unwrap();
    let other = key_of("secret-session-id-2");
    store.end(other, TTL).await.unwrap();

    let keys = server.command(&["KEYS", "*"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    // The owner set: its name is a hash of the stored owner, its member the hashed key.
    let owner_set = keys.remove(
        keys.iter()
            .position(|k| k.starts_with("app:owner:"))
            .expect("alice's owner set"),
    );
    let hash = owner_set.strip_prefix("app:owner:").unwrap();
    assert!(
        hash.len() == 40 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{owner_set}"
    );
    assert_eq!(
        server.command(&["ZRANGE", owner_set, "0", "-1"]),
        format!("app:{}", key.to_hex())
    );
    let mut expected = vec![
        format!("app:{}", key.to_hex()),
        format!("app:{}", other.to_hex()),
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    for k in &keys {
        assert!(!k.contains("secret"), "{k}");
        let value = server.command(&["GET", k]);
        assert!(!value.contains("secret"), "{value}");
        assert!(value.starts_with("mcpsb1:"), "{value}");
    }
    let value = server.command(&["GET", &format!("app:{}", key.to_hex())]);
    let (ms, owner) = value
        .strip_prefix("mcpsb1:at:")
        .and_then(|rest| rest.split_once(':'))
        .unwrap_or_else(|| panic!("no bind time: {value}"));
    let ms: u64 = ms.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(now.abs_diff(ms) < 60_000, "bound at {ms}, now {now}");
    assert_eq!(owner, "mcpsb1:user:22:https://issuer.examplealice");
}

/// A task record is a string of its own, `<prefix>task:<key hex>`, in no owner set (so it counts
/// towards no limit), written in one script with its entry in the owner's task index
/// (`<prefix>tasks:<sha1>`, for `end_owner`); with a key secret, every key is keyed by it.
#[tokio::test]
async fn task_records_are_keys_of_their_own_in_no_owner_set() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let secret = KeySecret::from_material(&[5; 32]).unwrap();
    let store = store_with(
        &server,
        RedisOptions::new().prefix("app:").key_secret(secret),
    )
    .await;
    let task = store.key_derivation().task("task-1");
    assert_ne!(
        task,
        KeyDerivation::public().task("task-1"),
        "keyed by the secret"
    );
    server.reset_stats();
    assert_eq!(
        store
            .bind_task(Record::new(task, &alice(), TTL))
            .await
            .unwrap(),
        BindOutcome::Created
    );
    let calls = calls(&server);
    assert_eq!(
        (count(&calls, "set"), count(&calls, "zadd")),
        (1, 1),
        "one SET and its index entry: {calls:?}"
    );
    assert_eq!(
        store.task_owner(task, Some(TTL)).await.unwrap(),
        Some(alice())
    );
    let key = format!("app:task:{}", task.to_hex());
    let mut keys: Vec<String> = server
        .command(&["KEYS", "*"])
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], key, "no owner set");
    assert!(
        keys[1].starts_with("app:tasks:"),
        "the task index: {keys:?}"
    );
    assert_eq!(
        server.command(&["ZRANGE", &keys[1], "0", "-1"]),
        key,
        "the index names the task"
    );
    assert_eq!(
        server.command(&["GET", &key]),
        "mcpsb1:user:22:https://issuer.examplealice"
    );
    let left: u64 = server.command(&["PTTL", &key]).parse().unwrap();
    assert!(left > 290_000 && left <= 300_000, "{left}");
    server.command(&["SET", &key, "mcpsb1:ended"]);
    assert_eq!(
        store.task_owner(task, None).await.unwrap_err().kind(),
        StoreErrorKind::Corrupt
    );
}

#[tokio::test]
async fn concurrent_binds_from_two_stores_have_one_winner() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (store(&server).await, store(&server).await);
    for run in 0..200 {
        let key = key_of(&format!("race-{run}"));
        let (alice_bind, bob_bind) = (alice(), bob());
        let (ra, rb) = tokio::join!(
            a.bind(Record::new(key, &alice_bind, TTL), NO_LIMIT),
            b.bind(Record::new(key, &bob_bind, TTL), NO_LIMIT)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        match (&ra, &rb) {
            (BindOutcome::Created, BindOutcome::AlreadyBound(o)) => assert_eq!(*o, alice()),
            (BindOutcome::AlreadyBound(o), BindOutcome::Created) => assert_eq!(*o, bob()),
            other => panic!("run {run}: not exactly one winner: {other:?}"),
        }
        let winner = if ra == BindOutcome::Created {
            alice()
        } else {
            bob()
        };
        assert_eq!(
            a.lookup(key, None).await.unwrap(),
            Lookup::Bound(winner.clone())
        );
        assert_eq!(b.lookup(key, None).await.unwrap(), Lookup::Bound(winner));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_binds_from_two_stores_on_separate_threads() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (store(&server).await, store(&server).await);
    let mut wins = [0u32; 2];
    for run in 0..200u32 {
        let key = key_of(&format!("race-thread-{run}"));
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let spawn = |store: RedisStore, owner: Owner| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .bind(Record::new(key, &owner, TTL), NO_LIMIT)
                    .await
                    .unwrap()
            })
        };
        // Alternate who is spawned first, so that each store wins some races.
        let (ta, tb) = if run % 2 == 0 {
            let ta = spawn(a.clone(), alice());
            (ta, spawn(b.clone(), bob()))
        } else {
            let tb = spawn(b.clone(), bob());
            (spawn(a.clone(), alice()), tb)
        };
        let outcomes = [ta.await.unwrap(), tb.await.unwrap()];
        let winners: Vec<usize> = (0..2)
            .filter(|&i| outcomes[i] == BindOutcome::Created)
            .collect();
        assert_eq!(winners.len(), 1, "run {run}: {outcomes:?}");
        let (winner, loser) = (winners[0], 1 - winners[0]);
        let owner = if winner == 0 { alice() } else { bob() };
        assert_eq!(
            outcomes[loser],
            BindOutcome::AlreadyBound(owner.clone()),
            "run {run}"
        );
        assert_eq!(a.lookup(key, None).await.unwrap(), Lookup::Bound(owner));
        wins[winner] += 1;
    }
    eprintln!("wins (store a, store b) over 200 races: {wins:?}");
    assert!(
        wins[0] > 0 && wins[1] > 0,
        "both stores won some races: {wins:?}"
    );
}

#[tokio::test]
async fn ttls_are_kept_and_clamped() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = store(&server).await;
    let key = key_of("ttl");
    store
        .bind(
            Record::new(key, &alice(), Duration::from_secs(42)),
            NO_LIMIT,
        )
        .await
        .unwrap();
    let left: u64 = server
        .command(&["PTTL", &redis_key(&store, key)])
        .parse()
        .unwrap();
    assert!((41_000..=42_000).contains(&left), "{left}");

    // A zero TTL is not a Redis error (Redis rejects PX 0): it expires at once.
    let zero = key_of("zero");
    assert_eq!(
        store
            .bind(Record::new(zero, &alice(), Duration::ZERO), NO_LIMIT)
            .await
            .unwrap(),
        BindOutcome::Created
    );
    store.end(zero, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.lookup(zero, None).await.unwrap(), Lookup::Missing);

    // A huge TTL is clamped instead of overflowing Redis's clock.
    let huge = key_of("huge");
    assert_eq!(
        store
            .bind(Record::new(huge, &alice(), Duration::MAX), NO_LIMIT)
            .await
            .unwrap(),
        BindOutcome::Created
    );
    store.lookup(huge, Some(Duration::MAX)).await.unwrap();
    store.end(huge, Duration::MAX).await.unwrap();
    assert_eq!(store.lookup(huge, None).await.unwrap(), Lookup::Ended);
}

#[tokio::test]
async fn unreachable_server_at_connect_is_unavailable() {
    // A port nobody listens on: take a free one and keep nothing on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = RedisStore::connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let err = RedisStore::connect("not a url").await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn usable_behind_arc_dyn() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store: std::sync::Arc<dyn BindingStore> = std::sync::Arc::new(store(&server).await);
    support::assert_binds_anonymous(&*store, "dyn", TTL, NO_LIMIT).await;
    let key = key_of("dyn");
    assert!(
        store.lookup_now(key, None).is_none(),
        "Redis answers asynchronously only"
    );
}

/// A store that knows a binding's expiry (and so looks it up with a plain `GET`) still reads the
/// binding itself on every lookup: a session another store (replica) ended, or whose value
/// changed, is seen at the next lookup, with no window.
#[tokio::test]
async fn knowing_the_expiry_never_hides_what_another_replica_wrote() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (store(&server).await, store(&server).await);
    for round in 0..20 {
        let key = key_of(&format!("seen-at-once-{round}"));
        a.bind(Record::new(key, &alice(), TTL), NO_LIMIT)
            .await
            .unwrap();
        assert_eq!(
            a.lookup(key, Some(TTL)).await.unwrap(),
            Lookup::Bound(alice())
        );
        match round % 3 {
            0 => {
                b.end(key, TTL).await.unwrap();
                assert_eq!(a.lookup(key, Some(TTL)).await.unwrap(), Lookup::Ended);
            }
            1 => {
                server.command(&["DEL", &redis_key(&a, key)]);
                assert_eq!(a.lookup(key, Some(TTL)).await.unwrap(), Lookup::Missing);
            }
            _ => {
                server.command(&["SET", &redis_key(&a, key), "sha256:abcd"]);
                assert_eq!(
                    a.lookup(key, Some(TTL)).await.unwrap_err().kind(),
                    StoreErrorKind::Corrupt
                );
            }
        }
    }
    // A binding that Redis expired is gone for the store that knew it fresh, too.
    let key = key_of("expired-behind");
    a.bind(Record::new(key, &alice(), TTL), NO_LIMIT)
        .await
        .unwrap();
    server.command(&["PEXPIRE", &redis_key(&a, key), "1"]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(a.lookup(key, Some(TTL)).await.unwrap(), Lookup::Missing);
}

/// A store with the client-side cache (`max_staleness`, operations bounded by 1 s), once its
/// tracking is on: it has served a lookup of a binding from the cache, without a `GET`.
async fn cached_store(server: &RedisServer, url: &str, max_staleness: Duration) -> RedisStore {
    let timeout = Duration::from_secs(1);
    let store = RedisStore::connect_with(
        url,
        RedisOptions::new()
            .client_side_cache(max_staleness)
            .timeout(timeout),
    )
    .await
    .expect("connect to the test redis");
    let probe = key_of(&format!("probe-{url}-{max_staleness:?}"));
    store
        .bind(Record::new(probe, &alice(), TTL), NO_LIMIT)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        store.lookup(probe, None).await.unwrap();
        server.reset_stats();
        assert_eq!(
            store.lookup(probe, None).await.unwrap(),
            Lookup::Bound(alice())
        );
        if count(&calls(server), "get") == 0 {
            return store;
        }
        assert!(Instant::now() < deadline, "the cache never served a lookup");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Looks `key` up on `store` until it is no longer `Bound` (at most 2 s): what it became, and how
/// long it took.
async fn until_not_bound(
    store: &RedisStore,
    key: SessionKey,
) -> (Result<Lookup, StoreError>, Duration) {
    let started = Instant::now();
    loop {
        match store.lookup(key, None).await {
            Ok(Lookup::Bound(_)) => {
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "still served as bound after 2 s"
                );
                tokio::task::yield_now().await;
            }
            other => return (other, started.elapsed()),
        }
    }
}

#[tokio::test]
async fn conformance_suite_passes_with_the_client_side_cache() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = cached_store(&server, &server.url(), Duration::from_secs(5)).await;
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn the_client_side_cache_saves_round_trips_and_hears_every_other_writer() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = cached_store(&server, &server.url(), Duration::from_secs(5)).await;
    let b = store(&server).await;

    // Repeated checks of a binding cost one GET, sliding or not while the TTL is fresh.
    let key = key_of("cached");
    a.bind(Record::new(key, &alice(), TTL), NO_LIMIT)
        .await
        .unwrap();
    server.reset_stats();
    for _ in 0..50 {
        assert_eq!(a.lookup(key, None).await.unwrap(), Lookup::Bound(alice()));
        assert_eq!(
            a.lookup(key, Some(TTL)).await.unwrap(),
            Lookup::Bound(alice())
        );
    }
    let stats = calls(&server);
    assert_eq!(count(&stats, "get"), 1, "{stats:?}");
    assert_eq!(count(&stats, "evalsha"), 0, "{stats:?}");

    // Each kind of change by someone else reaches the cache: an end on another replica, a
    // DEL, another value, an expiry, a FLUSHDB.
    let mut windows = Vec::new();
    for round in 0..5 {
        let key = key_of(&format!("changed-{round}"));
        a.bind(Record::new(key, &alice(), TTL), NO_LIMIT)
            .await
            .unwrap();
        a.lookup(key, None).await.unwrap();
        assert_eq!(a.lookup(key, None).await.unwrap(), Lookup::Bound(alice()));
        let redis_key = redis_key(&a, key);
        match round {
            0 => b.end(key, TTL).await.unwrap(),
            1 => drop(server.command(&["DEL", &redis_key])),
            2 => drop(server.command(&["SET", &redis_key, "sha256:abcd"])),
            3 => drop(server.command(&["PEXPIRE", &redis_key, "1"])),
            _ => drop(server.command(&["FLUSHDB"])),
        }
        let (seen, window) = until_not_bound(&a, key).await;
        windows.push(window);
        match round {
            0 => assert_eq!(seen.unwrap(), Lookup::Ended),
            2 => assert_eq!(seen.unwrap_err().kind(), StoreErrorKind::Corrupt),
            _ => assert_eq!(seen.unwrap(), Lookup::Missing, "round {round}"),
        }
    }
    eprintln!("client-side cache: change seen after {windows:?} (end, DEL, SET, expiry, FLUSHDB)");

    // This store's own end never waits for an invalidation.
    let key = key_of("ended-here");
    a.bind(Record::new(key, &alice(), TTL), NO_LIMIT)
        .await
        .unwrap();
    a.lookup(key, None).await.unwrap();
    a.end(key, TTL).await.unwrap();
    assert_eq!(a.lookup(key, None).await.unwrap(), Lookup::Ended);
}

#[tokio::test]
async fn a_killed_tracking_connection_empties_the_cache_until_tracking_is_back() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = cached_store(&server, &server.url(), Duration::from_secs(5)).await;
    let b = store(&server).await;
    let key = key_of("kill-tracking");
    a.bind(Record::new(key, &alice(), TTL), NO_LIMIT)
        .await
        .unwrap();
    a.lookup(key, None).await.unwrap();

    // Kill the tracking connection and end the session while it is gone.
    let killed = server.command(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    eprintln!("killed {killed} connections");
    b.end(key, TTL).await.unwrap();
    let (seen, after) = until_not_bound(&a, key).await;
    assert_eq!(seen.unwrap(), Lookup::Ended);
    eprintln!("end seen {after:?} after the kill");

    // Tracking comes back on a new connection, and the cache serves again.
    let fresh = key_of("after-kill");
    a.bind(Record::new(fresh, &bob(), TTL), NO_LIMIT)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        a.lookup(fresh, None).await.unwrap();
        server.reset_stats();
        a.lookup(fresh, None).await.unwrap();
        if count(&calls(&server), "get") == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "tracking never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.end(fresh, TTL).await.unwrap();
    assert_eq!(until_not_bound(&a, fresh).await.0.unwrap(), Lookup::Ended);
}

#[tokio::test]
async fn a_hung_tracking_connection_stops_the_cache_within_max_staleness() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = support::tcp_proxy::TcpProxy::start(
        format!("127.0.0.1:{}", server.port()).parse().unwrap(),
    )
    .await;
    // Shorter than the operations' timeout (1 s): the bound holds before the tracking
    // connection's PING times out.
    let max_staleness = Duration::from_millis(300);
    let url = format!("redis://{}/", proxy.addr());
    let a = cached_store(&server, &url, max_staleness).await;
    let b = store(&server).await;
    let key = key_of("hung-tracking");
    a.bind(Record::new(key, &alice(), TTL), NO_LIMIT)
        .await
        .unwrap();
    a.lookup(key, None).await.unwrap();
    assert_eq!(a.lookup(key, None).await.unwrap(), Lookup::Bound(alice()));

    // The network between A and Redis drops everything, silently; B ends the session.
    proxy.freeze(true);
    // After the freeze: a PING whose answer got through was sent before this instant.
    let frozen = Instant::now();
    b.end(key, TTL).await.unwrap();
    let mut last_bound = None;
    let mut refused = 0;
    while frozen.elapsed() < max_staleness * 3 {
        let asked = frozen.elapsed();
        match a.lookup(key, None).await {
            Ok(Lookup::Bound(_)) => last_bound = Some(asked),
            Ok(other) => panic!("{other:?} through a frozen network"),
            Err(err) => {
                assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
                refused += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("frozen tracking: served from the cache until {last_bound:?}, then {refused} errors");
    assert!(
        last_bound.is_none_or(|at| at < max_staleness),
        "served {last_bound:?} after the freeze, bound {max_staleness:?}"
    );
    assert!(refused > 0, "never went to Redis");

    // Once the network is back, A sees the end.
    proxy.freeze(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match a.lookup(key, None).await {
            Ok(Lookup::Ended) => break,
            Ok(Lookup::Bound(_)) => panic!("bound after the end, the network back"),
            other => assert!(Instant::now() < deadline, "{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_client_side_cache_needs_one_endpoint() {
    let err = RedisStore::connect_cluster(
        &["redis://127.0.0.1:1/"],
        RedisOptions::new().client_side_cache(Duration::from_secs(1)),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("client-side cache"), "{err}");
}

/// The client-side cache's hits, misses and invalidations are counted (feature `metrics`): a
/// binding read from Redis, then from the cache, then changed by another client.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn client_side_cache_hits_misses_and_invalidations_are_counted() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let recorded = support::recorder::Recorded::default();
    let _recording = metrics::set_default_local_recorder(&recorded);
    let options = RedisOptions::new().client_side_cache(Duration::from_secs(1));
    let store = store_with(&server, options).await;
    let key = store.key_derivation().session("cached");
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store
            .bind(Record::new(key, &alice(), ttl), usize::MAX)
            .await
            .unwrap(),
        BindOutcome::Created
    );
    let count = |name: &str| {
        recorded
            .counts()
            .get(&format!("mcp_session_binding_store_{name}"))
            .copied()
            .unwrap_or(0)
    };
    // Until the tracking connection is on, lookups miss; then they hit.
    let deadline = Instant::now() + Duration::from_secs(5);
    while count("cache_lookups_total{result=hit}") == 0 {
        assert_eq!(
            store.lookup(key, None).await.unwrap(),
            Lookup::Bound(alice())
        );
        assert!(Instant::now() < deadline, "the cache never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(count("cache_lookups_total{result=miss}") >= 1);
    // Another client changes the key: Redis invalidates it here (its own bind may have been
    // invalidated already, had the tracking been on by then).
    let before = count("cache_invalidations_total{}");
    server.command(&["DEL", &redis_key(&store, key)]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while count("cache_invalidations_total{}") == before {
        assert!(Instant::now() < deadline, "no invalidation counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.lookup(key, None).await.unwrap(), Lookup::Missing);
}
