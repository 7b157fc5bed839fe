//! Session lifecycle: the maximum session age (`max_session_age`) and the operator's revocation
//! (`end_session`, `end_sessions_of`), against the demo rmcp server over loopback.

use crate::support;

use std::time::Duration;

use http::StatusCode;
use mcp_session_binding::{Identity, SessionBindingLayer, store::MemoryStore};
use serde_json::json;
use support::*;

/// Tokens of `sub` at `ISS_A`.
fn of(sub: &str, nonce: u32) -> String {
    token(ISS_A, sub, nonce)
}

/// A session used all the time still ends at its maximum age: 404 to its owner, the inner
/// session deleted, and from then on an ended session (404, a `DELETE` 204). A session
/// without the setting lives on.
#[tokio::test]
async fn a_busy_session_ends_at_its_maximum_age() {
    const MAX_AGE: Duration = Duration::from_millis(1_500);
    let server = serve(SessionBindingLayer::new().max_session_age(MAX_AGE)).await;
    let raw = Raw::new(&server);
    // The session is bound between these two instants.
    let opening = std::time::Instant::now();
    let session = raw.open_session(Some(&of("alice", 1))).await;
    let opened = std::time::Instant::now();

    // Busy: a request every 100 ms, each answered, until the maximum age.
    let mut id = 1;
    let answer = loop {
        id += 1;
        let answer = raw.whoami(&session, Some(&of("alice", 1)), id).await;
        if answer.status != StatusCode::OK {
            break answer;
        }
        assert!(
            opened.elapsed() < MAX_AGE + Duration::from_secs(2),
            "the session outlived its maximum age"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        opening.elapsed() >= MAX_AGE,
        "ended early, after {:?}",
        opening.elapsed()
    );
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert_eq!(
        answer.json()["error"]["message"],
        json!("Session not found")
    );
    assert_eq!(
        server.deletes_forwarded(&session),
        1,
        "the inner session is deleted"
    );
    // An ended session now, for everyone.
    let answer = raw.whoami(&session, Some(&of("alice", 2)), 99).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert_eq!(
        raw.delete(&session, Some(&of("alice", 3))).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(server.deletes_forwarded(&session), 1);

    // Without a maximum age, the same session lives on.
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&of("alice", 1))).await;
    tokio::time::sleep(MAX_AGE + Duration::from_millis(200)).await;
    assert_eq!(
        raw.whoami(&session, Some(&of("alice", 1)), 2).await.status,
        StatusCode::OK
    );
}

/// `end_sessions_of(alice)` ends every session of alice's, and only hers; `end_session(id)`
/// ends one session, whoever holds it. Both through the layer, on the store the server uses.
#[tokio::test]
async fn the_operator_ends_one_session_or_all_of_a_principal() {
    let layer = SessionBindingLayer::with_store(MemoryStore::new());
    let server = serve(layer.clone()).await;
    let raw = Raw::new(&server);
    let alices = [
        raw.open_session(Some(&of("alice", 1))).await,
        raw.open_session(Some(&of("alice", 2))).await,
        raw.open_session(Some(&of("alice", 3))).await,
    ];
    let bobs = [
        raw.open_session(Some(&of("bob", 1))).await,
        raw.open_session(Some(&of("bob", 1))).await,
    ];
    let revoked = layer
        .end_sessions_of(&Identity::new(ISS_A, "alice").unwrap())
        .await
        .unwrap();
    assert_eq!((revoked.sessions, revoked.tasks), (3, 0));
    for session in &alices {
        let answer = raw.whoami(session, Some(&of("alice", 4)), 2).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    }
    for session in &bobs {
        assert_eq!(
            raw.whoami(session, Some(&of("bob", 1)), 2).await.status,
            StatusCode::OK
        );
    }
    // Alice at another issuer is someone else: nothing to end.
    let other = layer
        .end_sessions_of(&Identity::new(ISS_B, "alice").unwrap())
        .await
        .unwrap();
    assert_eq!((other.sessions, other.tasks), (0, 0));
    // A new login of alice's works (her tokens are not refused by the binding layer).
    let again = raw.open_session(Some(&of("alice", 5))).await;
    assert_eq!(
        raw.whoami(&again, Some(&of("alice", 5)), 2).await.status,
        StatusCode::OK
    );

    layer.end_session(&bobs[0]).await.unwrap();
    assert_eq!(
        raw.whoami(&bobs[0], Some(&of("bob", 1)), 3).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        raw.whoami(&bobs[1], Some(&of("bob", 1)), 3).await.status,
        StatusCode::OK
    );
}
