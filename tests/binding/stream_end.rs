//! Open GET streams of a session are checked again while they stream
//! (`SessionBindingLayer::stream_recheck_interval`): a session that stops being bound to the
//! stream's caller stops streaming, whoever ended it. The demo rmcp server behind the test auth
//! layer and `SessionBindingLayer` on loopback; the session is ended in the store itself, as
//! another replica's refusal does (the tombstone arrives, and this process's rmcp, which nobody
//! told, would stream on). The end-to-end version on two replicas sharing Redis is in
//! `tests/redis/multi_replica.rs`.

use crate::support;

use std::time::Duration;

use futures::StreamExt;
use http::StatusCode;
use mcp_session_binding::{
    Identity, SessionBindingLayer,
    store::{BindOutcome, BindingStore, MemoryStore, Owner, Record},
};
use support::{
    fault_store::{Fault, FaultStore},
    *,
};
use tokio::task::JoinHandle;

/// The interval of these tests.
const RECHECK: Duration = Duration::from_millis(100);
/// How long an ended session's stream may take to end, at most: a correctness deadline with
/// room for a loaded machine, not a measure of speed.
const DEADLINE: Duration = Duration::from_secs(5);

fn alice(nonce: u32) -> String {
    token(ISS_A, "alice", nonce)
}

/// Reads `response`, an SSE stream, on a task that ends with the stream, and returns its text.
fn read_stream(response: reqwest::Response) -> JoinHandle<String> {
    assert_eq!(response.status(), StatusCode::OK, "{response:?}");
    let content_type = response.headers()[http::header::CONTENT_TYPE].as_bytes();
    assert!(content_type.starts_with(b"text/event-stream"));
    let mut stream = response.bytes_stream();
    tokio::spawn(async move {
        let mut text = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.extend_from_slice(&chunk);
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// alice's GET stream on `session`.
async fn open_stream(raw: &Raw, session: &str) -> JoinHandle<String> {
    let response = raw
        .request(reqwest::Method::GET, Some(session), Some(&alice(2)))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    read_stream(response)
}

/// The stream is still open after several intervals.
async fn assert_stays_open(stream: &mut JoinHandle<String>, what: &str) {
    let open = tokio::time::timeout(RECHECK * 5, &mut *stream).await;
    assert!(open.is_err(), "{what}: the stream ended");
}

/// The stream ends before the deadline: its text.
async fn assert_ends(stream: JoinHandle<String>, what: &str) -> String {
    tokio::time::timeout(RECHECK + DEADLINE, stream)
        .await
        .unwrap_or_else(|_| panic!("{what}: the stream is still open"))
        .unwrap()
}

/// Ends `session` in `store` only, as another replica's refusal does.
async fn end_elsewhere(store: &impl BindingStore, session: &str) {
    let key = store.key_derivation().session(session);
    store.end(key, Duration::from_secs(60)).await.unwrap();
}

#[tokio::test]
async fn a_session_ended_in_the_store_ends_its_open_get_stream() {
    let store = MemoryStore::new();
    let layer = SessionBindingLayer::with_store(store.clone()).stream_recheck_interval(RECHECK);
    let server = serve(layer).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let mut stream = open_stream(&raw, &session).await;
    assert_stays_open(&mut stream, "a bound session").await;

    end_elsewhere(&store, &session).await;
    assert_ends(stream, "the session was ended").await;
    let answer = raw.whoami(&session, Some(&alice(3)), 4).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
}

/// With rechecking off (`Duration::ZERO`), an open stream is not checked again: it outlives its
/// session (what every stream did before the setting existed).
#[tokio::test]
async fn with_rechecking_off_an_open_stream_outlives_its_session() {
    let store = MemoryStore::new();
    let layer =
        SessionBindingLayer::with_store(store.clone()).stream_recheck_interval(Duration::ZERO);
    let server = serve(layer).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let mut stream = open_stream(&raw, &session).await;

    end_elsewhere(&store, &session).await;
    assert_stays_open(&mut stream, "rechecking is off").await;
}

/// While the store cannot answer, an open stream goes on (its caller was checked when it opened;
/// new requests get 503); a stored binding that does not parse ends it (fail closed).
#[tokio::test]
async fn a_store_outage_keeps_an_open_stream_and_a_corrupt_binding_ends_it() {
    let store = FaultStore::<MemoryStore>::default();
    let layer = SessionBindingLayer::with_store(store.clone()).stream_recheck_interval(RECHECK);
    let server = serve(layer).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let mut stream = open_stream(&raw, &session).await;

    store.set(Fault::Unavailable);
    assert_stays_open(&mut stream, "the store is unavailable").await;
    let answer = raw.whoami(&session, Some(&alice(3)), 4).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");

    store.set(Fault::Corrupt);
    assert_ends(stream, "the stored binding does not parse").await;
}

/// A recheck slides the binding as a request does: a stream open for longer than the binding
/// TTL, with no request meanwhile, keeps its session.
#[tokio::test]
async fn an_open_stream_keeps_its_binding_alive() {
    const TTL: Duration = Duration::from_millis(600);
    let layer = SessionBindingLayer::new()
        .binding_ttl(TTL)
        .stream_recheck_interval(RECHECK);
    let server = serve(layer).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let mut stream = open_stream(&raw, &session).await;

    tokio::time::sleep(TTL * 3).await;
    assert_stays_open(&mut stream, "the stream keeps its binding").await;
    let answer = raw.whoami(&session, Some(&alice(3)), 4).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

/// A session whose binding now names someone else (its tombstone expired and the id was bound
/// again, to bob) ends alice's stream: a recheck compares the owner, not just the binding's
/// existence.
#[tokio::test]
async fn a_session_bound_again_to_someone_else_ends_the_stream() {
    // Long enough that the ending and the new binding both land before the first recheck.
    const SLOW: Duration = Duration::from_secs(1);
    let store = MemoryStore::new();
    let layer = SessionBindingLayer::with_store(store.clone()).stream_recheck_interval(SLOW);
    let server = serve(layer).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let stream = open_stream(&raw, &session).await;

    let key = store.key_derivation().session(&session);
    store.end(key, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let bob = Owner::User(Identity::new(ISS_A, "bob").unwrap());
    let bound = store
        .bind(Record::new(key, &bob, Duration::from_secs(60)), 10)
        .await;
    assert_eq!(bound.unwrap(), BindOutcome::Created);
    assert_ends(stream, "the session is bob's now").await;
}
