//! Revoking one principal's sessions at scale: 10,000 sessions and 100 tasks of alice's, on the
//! memory store and on one Redis, ended with `end_owner`; its time, Redis' longest busy spell
//! (one batch) and Redis' memory, printed for the deployment guide, and bounded here.
//!
//! Figures: `cargo test --release --all-features --test redis -- revocation --nocapture`.

use crate::support;

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use mcp_session_binding::{
    Identity,
    store::{BindingStore, Lookup, MemoryStore, Owner, Record, RedisStore},
};
use support::redis_server::RedisServer;

const SESSIONS: usize = 10_000;
const TASKS: usize = 100;
const TTL: Duration = Duration::from_secs(600);
/// Generous, for a debug build on a shared 2-core machine: the release figure is far below.
const BOUND: Duration = Duration::from_secs(20);

fn user(sub: &str) -> Owner {
    Owner::User(Identity::new("https://issuer.example", sub).unwrap())
}

/// Binds `SESSIONS` sessions and `TASKS` tasks of alice's and 3 of bob's; ends alice's; checks
/// every one of hers ended and bob's kept. Returns the time `end_owner` took.
async fn revoke_ten_thousand<S: BindingStore>(store: &S, what: &str) -> Duration {
    let (alice, bob) = (user("alice"), user("bob"));
    let keys: Vec<_> = (0..SESSIONS)
        .map(|i| store.key_derivation().session(&format!("{what}-alice-{i}")))
        .collect();
    let started = Instant::now();
    stream::iter(&keys)
        .for_each_concurrent(64, |key| {
            let alice = &alice;
            async move {
                store
                    .bind(Record::new(*key, alice, TTL), usize::MAX)
                    .await
                    .expect("bind");
            }
        })
        .await;
    for i in 0..TASKS {
        let task = store.key_derivation().task(&format!("{what}-task-{i}"));
        store
            .bind_task(Record::new(task, &alice, TTL))
            .await
            .expect("task");
    }
    let bobs: Vec<_> = (0..3)
        .map(|i| store.key_derivation().session(&format!("{what}-bob-{i}")))
        .collect();
    for key in &bobs {
        store
            .bind(Record::new(*key, &bob, TTL), 10)
            .await
            .expect("bind");
    }
    eprintln!(
        "{what}: bound {SESSIONS} sessions and {TASKS} tasks in {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let revoked = store.end_owner(&alice, TTL).await.expect("end_owner");
    let took = started.elapsed();
    assert_eq!(
        (revoked.sessions, revoked.tasks),
        (SESSIONS, TASKS),
        "{what}"
    );

    stream::iter(&keys)
        .for_each_concurrent(64, |key| async move {
            assert_eq!(
                store.lookup(*key, None).await.expect("lookup"),
                Lookup::Ended,
                "{what}"
            );
        })
        .await;
    for key in &bobs {
        assert_eq!(
            store.lookup(*key, None).await.expect("lookup"),
            Lookup::Bound(bob.clone())
        );
    }
    eprintln!("{what}: end_owner of {SESSIONS} sessions and {TASKS} tasks took {took:?}");
    assert!(took < BOUND, "{what}: {took:?}");
    took
}

#[tokio::test]
async fn revoking_ten_thousand_sessions_in_memory_is_bounded() {
    revoke_ten_thousand(&MemoryStore::new(), "memory").await;
}

/// On Redis, also: the longest single script run (from `SLOWLOG`), which is
/// how long Redis serves nobody else, and Redis' memory before and after.
#[tokio::test]
async fn revoking_ten_thousand_sessions_on_redis_is_bounded() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    let used = |server: &RedisServer| -> u64 {
        let info = server.command(&["INFO", "memory"]);
        info.lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("used_memory")
    };
    let empty = used(&server);
    // Every script run over 100 µs is logged (a bind takes less).
    server.command(&["CONFIG", "SET", "slowlog-log-slower-than", "100"]);
    server.command(&["CONFIG", "SET", "slowlog-max-len", "10000"]);
    let took = revoke_ten_thousand(&store, "redis").await;
    let after = used(&server);
    // The longest EVALSHA: one batch of `end_owner` (512 keys), or a bind.
    let slowlog = server.command(&["SLOWLOG", "GET", "10000"]);
    let longest_us = slowest_script(&slowlog);
    eprintln!(
        "redis: end_owner took {took:?}; longest script run {longest_us} µs; used_memory {} KiB \
         empty, {} KiB after (10,000 tombstones)",
        empty / 1024,
        after / 1024
    );
    assert!(
        longest_us < 1_000_000,
        "one batch held Redis for {longest_us} µs"
    );
}

/// The longest duration (µs) of an `evalsha` entry in the `SLOWLOG GET` reply as the harness
/// prints it (one field per line: id, time, duration, then the command's arguments).
fn slowest_script(slowlog: &str) -> u64 {
    let lines: Vec<&str> = slowlog.lines().map(str::trim).collect();
    let mut longest = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.eq_ignore_ascii_case("evalsha") && i >= 1 {
            // The duration is the last number before the command's name.
            if let Some(duration) = lines[..i].iter().rev().find_map(|l| l.parse::<u64>().ok()) {
                longest = longest.max(duration);
            }
        }
    }
    longest
}
