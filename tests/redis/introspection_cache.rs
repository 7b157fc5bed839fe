//! The introspection cache shared through Redis (features `oidc` and `redis`), in process: two
//! `JwtAuthLayer`s (two replicas) on one Redis (one server, a Cluster, TLS) and one
//! introspection endpoint on loopback that counts its calls.

use crate::support;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use http::{Request, Response, StatusCode};
use mcp_session_binding::{
    jwt::{Introspection, JwtAuthLayer},
    store::{RedisConnection, RedisOptions, RedisStore},
};
use redis::AsyncCommands;
use support::redis_server::{RedisCluster, RedisServer};
use tower::{Layer, ServiceExt};

const AUD: &str = "https://mcp.example/mcp";
const TOKEN: &str = "an-opaque-token-of-alice-0123456789";

/// An endpoint that says `TOKEN` is alice's; its call count.
async fn endpoint() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let answer = serde_json::json!({
        "active": true, "iss": issuer, "sub": "alice", "aud": AUD,
        "exp": jsonwebtoken::get_current_timestamp() + 600,
    })
    .to_string();
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/introspect",
        axum::routing::post(move |body: String| {
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = if body.contains(TOKEN) {
                answer.clone()
            } else {
                r#"{"active":false}"#.to_owned()
            };
            std::future::ready(answer)
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (issuer, calls)
}

/// A replica: the layer with the shared cache on `conn`, the client secret `secret`, and
/// answers cached for `cache_max` at most.
fn replica(issuer: &str, conn: RedisConnection, secret: &str, cache_max: Duration) -> JwtAuthLayer {
    JwtAuthLayer::builder()
        .issuer_introspection(
            issuer,
            Introspection::new("rs", secret)
                .endpoint(format!("{issuer}/introspect"))
                .cache_max(cache_max)
                .redis(conn),
        )
        .audiences([AUD])
        .build()
        .unwrap()
}

async fn status(layer: &JwtAuthLayer) -> StatusCode {
    let service = layer.layer(tower::service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let request = Request::builder()
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(String::new())
        .unwrap();
    service.oneshot(request).await.unwrap().status()
}

async fn replica_status(issuer: &str, conn: RedisConnection, secret: &str) -> StatusCode {
    status(&replica(issuer, conn, secret, Duration::from_secs(60))).await
}

/// Replica b finds replica a's answer (no second call); Redis holds neither the token nor the
/// subject in clear; a replica with another client secret cannot read it (its own call).
async fn shared_by_replicas(conn: RedisConnection) {
    let (issuer, calls) = endpoint().await;
    assert_eq!(
        replica_status(&issuer, conn.clone(), "s1").await,
        StatusCode::OK
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        replica_status(&issuer, conn.clone(), "s1").await,
        StatusCode::OK
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second replica asked the provider"
    );

    let mut redis = conn.clone();
    // KEYS runs on every master of a cluster (redis-rs routes it to all of them).
    let keys: Vec<String> = redis.keys("mcpsb-introspect:*").await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    for key in &keys {
        assert!(!key.contains(TOKEN));
        let value: Vec<u8> = redis.get(key).await.unwrap();
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains("alice") && !text.contains(TOKEN), "{text}");
    }
    assert_eq!(replica_status(&issuer, conn, "s2").await, StatusCode::OK);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "another secret reads nothing"
    );
}

#[tokio::test]
async fn one_server() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    shared_by_replicas(store.connection()).await;
}

/// A replica that reads a shared answer late serves it only until the deadline of the call
/// that made it: the revocation delay stays `cache_max` across replicas.
#[tokio::test]
async fn a_shared_answer_keeps_its_first_deadline() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let (issuer, calls) = endpoint().await;
    let max = Duration::from_secs(3);
    let called = Instant::now();
    assert_eq!(
        status(&replica(&issuer, store.connection(), "s", max)).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = replica(&issuer, store.connection(), "s", max);
    assert_eq!(status(&late).await, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "read from Redis");
    while calls.load(Ordering::SeqCst) == 1 {
        assert!(
            called.elapsed() <= max + Duration::from_millis(200),
            "served {:?} after the call",
            called.elapsed()
        );
        assert_eq!(status(&late).await, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let store = RedisStore::connect_cluster(&cluster.urls(), RedisOptions::new())
        .await
        .unwrap();
    shared_by_replicas(store.connection()).await;
}

#[cfg(feature = "redis-tls")]
#[tokio::test]
async fn over_tls() {
    let Some(server) = RedisServer::start_tls() else {
        return;
    };
    let options = RedisOptions::new().ca_pem(std::fs::read(server.ca_file()).expect("the CA file"));
    let store = RedisStore::connect_with(&server.url(), options)
        .await
        .unwrap();
    shared_by_replicas(store.connection()).await;
}
