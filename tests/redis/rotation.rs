//! Rotating the store key secret while the server runs (`RedisStore::rotate_key_secret`): a
//! session bound before keeps working for the overlap, under its old key; new sessions are
//! keyed with the new secret; after the overlap the old session answers 404.

use crate::support;

use std::time::Duration;

use http::StatusCode;
use mcp_session_binding::{
    SessionBindingLayer,
    store::{KeyDerivation, KeySecret, RedisOptions, RedisStore},
};
use support::{ISS_A, Raw, redis_server::RedisServer, serve, token};

fn secret(byte: u8) -> KeySecret {
    KeySecret::from_material(&[byte; 32]).unwrap()
}

#[tokio::test]
async fn a_rotated_key_secret_keeps_old_sessions_for_the_overlap() {
    const OVERLAP: Duration = Duration::from_millis(2_500);
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect_with(&redis.url(), RedisOptions::new().key_secret(secret(1)))
        .await
        .unwrap();
    let server = serve(SessionBindingLayer::with_store(store.clone())).await;
    let raw = Raw::new(&server);
    let alice = token(ISS_A, "alice", 1);
    let bob = token(ISS_A, "bob", 1);
    let old = raw.open_session(Some(&alice)).await;
    let stale = raw.open_session(Some(&alice)).await;
    let stolen = raw.open_session(Some(&alice)).await;
    let redis_key =
        |keys: KeyDerivation, id: &str| format!("{}{}", store.prefix(), keys.session(id).to_hex());
    assert!(
        !redis
            .command(&["GET", &redis_key(KeyDerivation::keyed(secret(1)), &old)])
            .is_empty()
    );

    store.rotate_key_secret(secret(2), OVERLAP);
    let rotated = std::time::Instant::now();

    // Within the overlap: the session bound before works, and is refused to a thief, who ends
    // it (under its old key).
    assert_eq!(
        raw.whoami(&old, Some(&alice), 2).await.status,
        StatusCode::OK
    );
    raw.whoami(&stolen, Some(&bob), 2)
        .await
        .assert_mismatch(Some(2));
    assert_eq!(
        raw.whoami(&stolen, Some(&alice), 3).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        redis.command(&["GET", &redis_key(KeyDerivation::keyed(secret(1)), &stolen)]),
        "mcpsb1:ended"
    );
    // A new session is keyed with the new secret.
    let new = raw.open_session(Some(&alice)).await;
    assert!(
        redis
            .command(&["GET", &redis_key(KeyDerivation::keyed(secret(1)), &new)])
            .is_empty()
    );
    assert!(
        !redis
            .command(&["GET", &redis_key(KeyDerivation::keyed(secret(2)), &new)])
            .is_empty()
    );
    assert!(
        rotated.elapsed() < OVERLAP,
        "the machine is too slow for this test"
    );

    // After the overlap: the old session is unknown (404); the new one works.
    tokio::time::sleep(OVERLAP.saturating_sub(rotated.elapsed()) + Duration::from_millis(100))
        .await;
    let answer = raw.whoami(&stale, Some(&alice), 4).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert_eq!(
        raw.whoami(&new, Some(&alice), 4).await.status,
        StatusCode::OK
    );
}
