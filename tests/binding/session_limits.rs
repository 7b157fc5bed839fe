//! Issue 10 §6, end to end: the per-identity session limit (429 with `Retry-After`), the separate
//! anonymous budget, and a capacity-bounded store that neither anonymous sessions nor tombstones
//! can fill. On the demo rmcp server behind the test auth layer and `SessionBindingLayer`, on
//! loopback; with `MemoryStore`, and with `RedisStore` on a real `redis-server` shared by two
//! replicas (skipped with a loud `SKIP:` line when it is not installed, fatal under `CI`).

use crate::support;

use support::redis_server;

use std::time::Duration;

use http::{Method, StatusCode};
use mcp_session_binding::{
    RejectionReason, SessionBindingLayer,
    store::{MemoryStore, RedisStore},
};
use serde_json::json;
use support::*;

/// The binding layer's default `anonymous_binding_ttl`. (not exported)
const DEFAULT_ANONYMOUS_BINDING_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

fn alice() -> String {
    token(ISS_A, "alice", 1)
}

fn bob() -> String {
    token(ISS_A, "bob", 1)
}

/// Asserts `answer` is the 429 of a caller at its limit, and returns its `Retry-After` seconds.
fn assert_too_many(answer: &Answer) -> u64 {
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{answer:?}");
    assert!(
        answer.headers.get("mcp-session-id").is_none(),
        "no session id handed out: {answer:?}"
    );
    let retry_after: u64 = answer
        .headers
        .get(http::header::RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1, "{retry_after}");
    let message = answer.json();
    assert_eq!(message["jsonrpc"], json!("2.0"));
    assert!(message.get("id").is_none(), "{message}");
    assert_eq!(message["error"]["code"], json!(-32000), "{message}");
    assert!(
        message["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many sessions"),
        "{message}"
    );
    assert_eq!(RejectionReason::TooManySessions.code(), "too_many_sessions");
    retry_after
}

/// Initializes a session; returns the raw answer (200 with a session id, or the refusal).
async fn initialize(raw: &Raw, token: Option<&str>) -> Answer {
    raw.post(None, token, &initialize_body()).await
}

/// The session ids the inner service saw a `DELETE` for.
fn deleted(server: &TestServer) -> Vec<String> {
    server
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == Method::DELETE)
        .filter_map(|s| s.session.clone())
        .collect()
}

#[tokio::test]
async fn over_the_limit_is_429_with_retry_after_and_the_new_session_is_ended() {
    let server = serve(SessionBindingLayer::new().max_sessions_per_identity(3)).await;
    let raw = Raw::new(&server);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(raw.open_session(Some(&alice())).await);
    }
    let answer = initialize(&raw, Some(&alice())).await;
    let retry_after = assert_too_many(&answer);
    assert!(
        retry_after <= 24 * 3600,
        "at most the binding TTL: {retry_after}"
    );

    // The session rmcp created for the refused request was ended, and is unknown to the layer.
    let ended = deleted(&server);
    assert_eq!(ended.len(), 1, "one inner DELETE: {ended:?}");
    assert!(!sessions.contains(&ended[0]));
    assert_eq!(
        raw.whoami(&ended[0], Some(&alice()), 1).await.status,
        StatusCode::NOT_FOUND
    );

    // Alice's sessions go on; another identity is not affected.
    for (i, session) in sessions.iter().enumerate() {
        let answer = raw.whoami(session, Some(&alice()), i as u64).await;
        assert_eq!(tool_text(&answer.json()), format!("{ISS_A} alice"));
    }
    let bobs = raw.open_session(Some(&bob())).await;
    assert_eq!(
        tool_text(&raw.whoami(&bobs, Some(&bob()), 1).await.json()),
        format!("{ISS_A} bob")
    );
    // Still refused: nothing freed a slot.
    assert_too_many(&initialize(&raw, Some(&alice())).await);
}

#[tokio::test]
async fn deleting_a_session_frees_its_slot() {
    let server = serve(SessionBindingLayer::new().max_sessions_per_identity(2)).await;
    let raw = Raw::new(&server);
    let first = raw.open_session(Some(&alice())).await;
    raw.open_session(Some(&alice())).await;
    assert_too_many(&initialize(&raw, Some(&alice())).await);

    let answer = raw.delete(&first, Some(&alice())).await;
    assert!(answer.status.is_success(), "{answer:?}");
    let third = raw.open_session(Some(&alice())).await;
    assert_eq!(
        tool_text(&raw.whoami(&third, Some(&alice()), 1).await.json()),
        format!("{ISS_A} alice")
    );
    assert_too_many(&initialize(&raw, Some(&alice())).await);
}

#[tokio::test]
async fn a_session_ended_by_a_refusal_frees_its_slot() {
    let server = serve(SessionBindingLayer::new().max_sessions_per_identity(1)).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice())).await;
    assert_too_many(&initialize(&raw, Some(&alice())).await);
    // Bob, holding alice's id, is refused and the session is ended: alice may open another.
    assert_eq!(
        raw.whoami(&session, Some(&bob()), 1).await.status,
        StatusCode::OK
    );
    raw.open_session(Some(&alice())).await;
}

#[tokio::test]
async fn expired_bindings_free_their_slots() {
    let ttl = Duration::from_secs(1);
    let server = serve(
        SessionBindingLayer::new()
            .binding_ttl(ttl)
            .max_sessions_per_identity(1),
    )
    .await;
    let raw = Raw::new(&server);
    raw.open_session(Some(&alice())).await;
    assert_eq!(
        assert_too_many(&initialize(&raw, Some(&alice())).await),
        1,
        "Retry-After: when the oldest binding expires"
    );
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    raw.open_session(Some(&alice())).await;
}

#[tokio::test]
async fn an_anonymous_flood_meets_its_own_budget_and_never_locks_out_users() {
    let server = serve(
        SessionBindingLayer::new()
            .allow_anonymous(true)
            .max_anonymous_sessions(5)
            .max_sessions_per_identity(2),
    )
    .await;
    let raw = Raw::new(&server);
    let mut anonymous = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let answer = initialize(&raw, None).await;
        if answer.status == StatusCode::OK {
            anonymous.push(answer.session_id());
        } else {
            assert_too_many(&answer);
            refused += 1;
        }
    }
    assert_eq!(anonymous.len(), 5, "the anonymous budget");
    assert_eq!(refused, 15);

    // Authenticated users are not affected, each within its own limit.
    for token in [alice(), alice(), bob()] {
        raw.open_session(Some(&token)).await;
    }
    assert_too_many(&initialize(&raw, Some(&alice())).await);

    // An anonymous DELETE frees an anonymous slot.
    let answer = raw.delete(&anonymous[0], None).await;
    assert!(answer.status.is_success(), "{answer:?}");
    raw.open_session(None).await;
    assert_too_many(&initialize(&raw, None).await);
}

#[tokio::test]
async fn a_bounded_store_full_of_anonymous_sessions_or_tombstones_still_serves_users() {
    // Capacity 8, and the default anonymous budget (10,000): the store keeps anonymous
    // bindings to half of its capacity, so the flood gets 429, never the 503 of a full store.
    let server = serve(
        SessionBindingLayer::new()
            .store(MemoryStore::with_capacity(8))
            .allow_anonymous(true),
    )
    .await;
    let raw = Raw::new(&server);
    let mut opened = 0;
    for _ in 0..20 {
        let answer = initialize(&raw, None).await;
        if answer.status == StatusCode::OK {
            opened += 1;
        } else {
            assert_too_many(&answer);
        }
    }
    assert_eq!(opened, 4);
    raw.open_session(Some(&alice())).await;

    // Now tombstones: every session alice opens and deletes leaves one, far more than the
    // capacity holds. The oldest are evicted to make room; a bind is never refused for them.
    for round in 0..12 {
        let answer = initialize(&raw, Some(&bob())).await;
        assert_eq!(answer.status, StatusCode::OK, "round {round}: {answer:?}");
        let session = answer.session_id();
        let answer = raw.delete(&session, Some(&bob())).await;
        assert!(answer.status.is_success(), "{answer:?}");
        assert_eq!(
            raw.whoami(&session, Some(&bob()), 1).await.status,
            StatusCode::NOT_FOUND
        );
    }
    raw.open_session(Some(&alice())).await;
}

/// Two replicas on one real `redis-server`: the limit and the anonymous budget are shared.
#[tokio::test]
async fn on_redis_the_limit_is_shared_by_every_replica() {
    let Some(redis) = redis_server::RedisServer::start() else {
        return;
    };
    let replica = || async {
        let store = RedisStore::connect(&redis.url()).await.expect("redis");
        serve(
            SessionBindingLayer::with_store(store)
                .allow_anonymous(true)
                .max_sessions_per_identity(2)
                .max_anonymous_sessions(3),
        )
        .await
    };
    let (a, b) = (replica().await, replica().await);
    let (raw_a, raw_b) = (Raw::new(&a), Raw::new(&b));

    raw_a.open_session(Some(&alice())).await;
    let on_b = raw_b.open_session(Some(&alice())).await;
    let retry_after = assert_too_many(&initialize(&raw_a, Some(&alice())).await);
    assert!(retry_after <= 24 * 3600, "{retry_after}");
    assert_too_many(&initialize(&raw_b, Some(&alice())).await);
    assert_eq!(deleted(&a).len(), 1, "replica A ended its refused session");
    assert_eq!(deleted(&b).len(), 1, "replica B ended its refused session");

    // Bob is not affected.
    raw_a.open_session(Some(&bob())).await;

    // A DELETE on replica B frees a slot for replica A.
    let answer = raw_b.delete(&on_b, Some(&alice())).await;
    assert!(answer.status.is_success(), "{answer:?}");
    raw_a.open_session(Some(&alice())).await;
    assert_too_many(&initialize(&raw_b, Some(&alice())).await);

    // The anonymous budget is shared too, and never locks out a user.
    let mut opened = 0;
    for i in 0..10 {
        let raw = if i % 2 == 0 { &raw_a } else { &raw_b };
        let answer = initialize(raw, None).await;
        if answer.status == StatusCode::OK {
            opened += 1;
        } else {
            let retry_after = assert_too_many(&answer);
            assert!(retry_after <= 600, "the anonymous TTL: {retry_after}");
        }
    }
    assert_eq!(opened, 3, "one anonymous budget for both replicas");
    let carol = token(ISS_B, "carol", 1);
    raw_b.open_session(Some(&carol)).await;
    raw_a.open_session(Some(&carol)).await;
}

/// Issue 19 item 8: one identity creating and deleting sessions over and over leaves a bounded
/// number of tombstones (twice its limit at most: bindings and tombstones together), and every
/// session it ended still answers 404.
#[tokio::test]
async fn create_and_delete_cycles_leave_a_bounded_number_of_tombstones() {
    const LIMIT: usize = 5;
    const CYCLES: usize = 1_500;
    let store = MemoryStore::new();
    let server = serve(
        SessionBindingLayer::new()
            .store(store.clone())
            .max_sessions_per_identity(LIMIT),
    )
    .await;
    let raw = Raw::new(&server);
    let sessions = create_and_delete(&[&raw], CYCLES).await;
    assert!(
        store.len() <= 2 * LIMIT,
        "{} entries after {CYCLES} create-and-DELETE cycles with a limit of {LIMIT}",
        store.len()
    );
    assert_all_not_found(&[&raw], &sessions).await;
    // The newest ended sessions keep their tombstones: a DELETE of one is 204, as before.
    let last = sessions.last().unwrap();
    assert_eq!(
        raw.delete(last, Some(&alice())).await.status,
        StatusCode::NO_CONTENT
    );
}

/// `cycles` sessions alice opens and deletes, one after the other, on the replicas in turn.
async fn create_and_delete(replicas: &[&Raw], cycles: usize) -> Vec<String> {
    let mut sessions = Vec::with_capacity(cycles);
    for cycle in 0..cycles {
        let raw = replicas[cycle % replicas.len()];
        let answer = initialize(raw, Some(&alice())).await;
        assert_eq!(answer.status, StatusCode::OK, "cycle {cycle}: {answer:?}");
        let session = answer.session_id();
        let answer = raw.delete(&session, Some(&alice())).await;
        assert!(answer.status.is_success(), "cycle {cycle}: {answer:?}");
        sessions.push(session);
    }
    sessions
}

/// Every one of `sessions` answers 404 on every replica.
async fn assert_all_not_found(replicas: &[&Raw], sessions: &[String]) {
    for (i, session) in sessions.iter().enumerate() {
        for raw in replicas {
            let answer = raw.whoami(session, Some(&alice()), i as u64).await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "session {i}: {answer:?}"
            );
        }
    }
}

/// Item 8 on Redis, two replicas: counted in Redis, the tombstones stay within the bound too.
#[tokio::test]
async fn on_redis_create_and_delete_cycles_leave_a_bounded_number_of_tombstones() {
    const LIMIT: usize = 5;
    const CYCLES: usize = 1_500;
    let Some(redis) = redis_server::RedisServer::start() else {
        return;
    };
    let replica = || async {
        let store = RedisStore::connect(&redis.url()).await.expect("redis");
        serve(SessionBindingLayer::with_store(store).max_sessions_per_identity(LIMIT)).await
    };
    let (a, b) = (replica().await, replica().await);
    let (raw_a, raw_b) = (Raw::new(&a), Raw::new(&b));
    let sessions = create_and_delete(&[&raw_a, &raw_b], CYCLES).await;
    let tombstones: usize = redis
        .command(&[
            "EVAL",
            "local n = 0
             for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
               if redis.call('TYPE', key).ok == 'string' and redis.call('GET', key) == ARGV[2] then
                 n = n + 1
               end
             end
             return n",
            "0",
            "mcpsb:*",
            "mcpsb1:ended",
        ])
        .parse()
        .unwrap();
    assert!(
        tombstones <= 2 * LIMIT,
        "{tombstones} tombstones in Redis after {CYCLES} cycles with a limit of {LIMIT}"
    );
    let keys: usize = redis.command(&["DBSIZE"]).parse().unwrap();
    assert!(
        keys <= 2 * LIMIT + 2,
        "{keys} keys: the tombstones, and alice's owner and tombstone sets"
    );
    assert_all_not_found(&[&raw_a, &raw_b], &sessions).await;
}

/// Item 10: a flood that spent the anonymous budget stops locking anonymous callers out once
/// its bindings have been idle for the anonymous TTL, even when it used them (sliding keeps an
/// anonymous binding for the anonymous TTL, not the binding TTL).
#[tokio::test]
async fn an_anonymous_flood_clears_after_the_anonymous_ttl() {
    let ttl = Duration::from_secs(1);
    let server = serve(
        SessionBindingLayer::new()
            .allow_anonymous(true)
            .max_anonymous_sessions(3)
            .anonymous_binding_ttl(ttl),
    )
    .await;
    let raw = Raw::new(&server);
    let mut flood = Vec::new();
    for _ in 0..3 {
        flood.push(raw.open_session(None).await);
    }
    let retry_after = assert_too_many(&initialize(&raw, None).await);
    assert_eq!(retry_after, 1, "at most the anonymous TTL");
    // Used once more with less than half the TTL left: slid by the anonymous TTL only.
    tokio::time::sleep(ttl * 6 / 10).await;
    for (i, session) in flood.iter().enumerate() {
        let answer = raw.whoami(session, None, i as u64).await;
        assert_eq!(tool_text(&answer.json()), "anonymous", "{answer:?}");
    }
    assert_too_many(&initialize(&raw, None).await);
    // Then the flood stops.
    tokio::time::sleep(ttl + Duration::from_millis(400)).await;
    let newcomer = raw.open_session(None).await;
    assert_eq!(
        tool_text(&raw.whoami(&newcomer, None, 1).await.json()),
        "anonymous"
    );
    for session in &flood {
        assert_eq!(
            raw.whoami(session, None, 1).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

/// Item 10, with the defaults: the 429 of a spent anonymous budget tells anonymous callers to
/// come back within 15 minutes (the default anonymous TTL, 10), not a day later.
#[tokio::test]
async fn by_default_a_spent_anonymous_budget_clears_within_fifteen_minutes() {
    let server = serve(
        SessionBindingLayer::new()
            .allow_anonymous(true)
            .max_anonymous_sessions(2),
    )
    .await;
    let raw = Raw::new(&server);
    raw.open_session(None).await;
    raw.open_session(None).await;
    let retry_after = assert_too_many(&initialize(&raw, None).await);
    assert!(retry_after <= 900, "Retry-After: {retry_after}");
    assert!(
        retry_after <= DEFAULT_ANONYMOUS_BINDING_TTL.as_secs(),
        "{retry_after}"
    );
}
