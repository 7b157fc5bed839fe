//! The DPoP replay cache in a real Redis, shared by two JWT layers (two replicas): a proof
//! accepted by one is refused by the other; one `SET` per accepted proof and none for a refused
//! one; a Redis that does not answer fails closed with 503 and `Retry-After`.

use crate::support;

use std::convert::Infallible;

use http::{Request, Response, StatusCode, header};
use mcp_session_binding::{
    Identity,
    jwt::{Algorithm, DpopError, DpopPolicy, JwtAuthLayer, JwtKey, JwtRejection},
    store::{RedisOptions, RedisStore},
};
use support::{
    dpop,
    redis_server::{RedisCluster, RedisServer},
};
use tower::{Layer, ServiceExt, service_fn};

const ISS: &str = "https://issuer.example";
const URL: &str = "https://mcp.example/mcp";
const SECRET: &[u8] = b"dpop-replay-test-secret-of-32+-bytes";

/// One replica's JWT layer, with its own connection to `server`.
async fn replica(server: &RedisServer) -> JwtAuthLayer {
    layer(&RedisStore::connect(&server.url()).await.unwrap())
}

/// A JWT layer requiring DPoP, its replay cache in `store`'s Redis.
fn layer(store: &RedisStore) -> JwtAuthLayer {
    JwtAuthLayer::builder()
        .issuer_keys(ISS, JwtKey::hmac(SECRET).unwrap())
        .algorithms([Algorithm::HS256])
        .audiences([URL])
        .dpop(ISS, DpopPolicy::Required)
        .dpop_replay_redis(store)
        .build()
        .unwrap()
}

async fn send(layer: &JwtAuthLayer, token: &str, proof: &str) -> Response<()> {
    let service = layer.layer(service_fn(|req: Request<String>| async move {
        assert_eq!(
            req.extensions().get::<Identity>().unwrap().jkt(),
            Some(dpop::JKT)
        );
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let request = Request::post(URL)
        .header(header::AUTHORIZATION, format!("DPoP {token}"))
        .header("dpop", proof)
        .body(String::new())
        .unwrap();
    service.oneshot(request).await.unwrap().map(|_| ())
}

fn rejection(response: &Response<()>) -> Option<JwtRejection> {
    response.extensions().get::<JwtRejection>().cloned()
}

fn sets(server: &RedisServer) -> u64 {
    server.command_calls().get("set").copied().unwrap_or(0)
}

#[tokio::test]
async fn a_proof_accepted_by_one_replica_is_refused_by_the_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (replica(&server).await, replica(&server).await);
    let token = dpop::bound_token(SECRET, ISS, URL);
    let proof = dpop::proof("POST", URL, &token);
    assert_eq!(send(&a, &token, &proof).await.status(), StatusCode::OK);
    for replica in [&b, &a] {
        let replayed = send(replica, &token, &proof).await;
        assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            rejection(&replayed),
            Some(JwtRejection::Dpop(DpopError::Replayed))
        );
    }
    // A fresh proof passes on either.
    let fresh = dpop::proof("POST", URL, &token);
    assert_eq!(send(&b, &token, &fresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn one_set_per_accepted_proof_none_for_a_refused_one_expiring_with_the_window() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let layer = replica(&server).await;
    let token = dpop::bound_token(SECRET, ISS, URL);
    server.reset_stats();
    let refused = send(&layer, &token, &dpop::proof("GET", URL, &token)).await;
    assert_eq!(
        rejection(&refused),
        Some(JwtRejection::Dpop(DpopError::Method))
    );
    assert_eq!(sets(&server), 0, "a refused proof costs no round trip");
    let accepted = send(&layer, &token, &dpop::proof("POST", URL, &token)).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(sets(&server), 1);
    let calls = server.command_calls();
    assert_eq!(
        calls
            .keys()
            .filter(|c| !c.starts_with("config") && *c != "info")
            .count(),
        1,
        "one round trip, the SET: {calls:?}"
    );
    // The key expires with the window (5 min from `iat`, and a second).
    let keys = server.command(&["KEYS", "mcpsb:dpop:*"]);
    let key = keys
        .lines()
        .find(|l| l.starts_with("mcpsb:dpop:"))
        .expect("the proof's key");
    let pttl: u64 = server.command(&["PTTL", key]).trim().parse().unwrap();
    assert!((295_000..=301_000).contains(&pttl), "PTTL {pttl}");
}

#[tokio::test]
async fn a_store_that_fails_fails_closed() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let layer = replica(&server).await;
    let token = dpop::bound_token(SECRET, ISS, URL);
    server.stop();
    let response = send(&layer, &token, &dpop::proof("POST", URL, &token)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::DpopReplayUnavailable)
    );
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
}

/// On a Redis Cluster too: two replicas, each with its own cluster connection.
#[tokio::test]
async fn replicas_share_the_replay_cache_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let urls = cluster.urls();
    let connect = || RedisStore::connect_cluster(&urls, RedisOptions::new());
    let (a, b) = (
        layer(&connect().await.unwrap()),
        layer(&connect().await.unwrap()),
    );
    let token = dpop::bound_token(SECRET, ISS, URL);
    let proof = dpop::proof("POST", URL, &token);
    assert_eq!(send(&a, &token, &proof).await.status(), StatusCode::OK);
    let replayed = send(&b, &token, &proof).await;
    assert_eq!(
        rejection(&replayed),
        Some(JwtRejection::Dpop(DpopError::Replayed))
    );
}
