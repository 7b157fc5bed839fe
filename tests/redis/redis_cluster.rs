#![cfg(feature = "redis")]
//! `RedisStore` on a real Redis Cluster (3 masters, 3 replicas of `redis-server` on loopback,
//! made by `redis-cli --cluster create`; tests/support/redis_server.rs). Skipped with a `SKIP:`
//! line without `redis-server`/`redis-cli`, fatal under `CI`/`REQUIRE_REDIS`. The two-replica
//! scenarios on a cluster, and its failover, are in tests/redis/multi_replica.rs.

use crate::support;

use std::time::Duration;

use mcp_session_binding::{
    Identity,
    store::{
        BindOutcome, BindingStore, KeyDerivation, Lookup, Owner, Record, RedisOptions, RedisStore,
        SessionKey, StoreErrorKind, conformance,
    },
};
use support::redis_server::RedisCluster;

/// The key of session id `id` under a store without a key secret.
fn key_of(id: &str) -> SessionKey {
    KeyDerivation::public().session(id)
}

const TTL: Duration = Duration::from_secs(300);

async fn connect(cluster: &RedisCluster, options: RedisOptions) -> RedisStore {
    RedisStore::connect_cluster(&cluster.urls(), options)
        .await
        .expect("connect to the test cluster")
}

#[tokio::test]
async fn conformance_suite_passes_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let store = connect(&cluster, RedisOptions::new()).await;
    assert_eq!(
        store.prefix(),
        "{mcpsb:}",
        "the default prefix gets a hash tag"
    );
    conformance::run_all(&store).await;
    // A prefix with a tag of its own is kept.
    let tagged = connect(&cluster, RedisOptions::new().prefix("app:{bindings}:")).await;
    assert_eq!(tagged.prefix(), "app:{bindings}:");
    conformance::run_all(&tagged).await;
}

/// A binding and its owner's sets (what the bind and end scripts touch together) are on the
/// master of the store's tag, and a lookup from a store that was given only one seed node (not
/// that master) finds them.
#[tokio::test]
async fn every_key_of_the_store_is_on_the_master_of_its_tag() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let store = connect(&cluster, RedisOptions::new().prefix("t:")).await;
    let alice = Owner::User(Identity::new("https://issuer.example", "alice").unwrap());
    let keys: Vec<SessionKey> = (0..20).map(|i| key_of(&format!("cluster-{i}"))).collect();
    for key in &keys {
        assert_eq!(
            store
                .bind(Record::new(*key, &alice, TTL), 100)
                .await
                .unwrap(),
            BindOutcome::Created
        );
    }
    store.end(keys[0], TTL).await.unwrap();
    let master = cluster.master_of("{t:}");
    let held = master.command(&["KEYS", "{t:}*"]);
    // The bindings (one a tombstone), alice's owner set and her tombstone set.
    assert_eq!(held.lines().count(), keys.len() + 2, "{held}");
    assert!(held.lines().any(|k| k.starts_with("{t:}owner:")), "{held}");
    assert!(held.lines().any(|k| k.starts_with("{t:}ended:")), "{held}");

    let seed = cluster
        .nodes
        .iter()
        .find(|node| node.port() != master.port())
        .unwrap();
    let other = RedisStore::connect_cluster(&[seed.url()], RedisOptions::new().prefix("t:"))
        .await
        .unwrap();
    assert_eq!(
        other.lookup(keys[1], Some(TTL)).await.unwrap(),
        Lookup::Bound(alice.clone())
    );
    assert_eq!(other.lookup(keys[0], None).await.unwrap(), Lookup::Ended);
    // The per-owner limit counts across both stores: 19 live, limit 20, one more fits.
    let more = key_of("cluster-more");
    assert_eq!(
        other
            .bind(Record::new(more, &alice, TTL), 20)
            .await
            .unwrap(),
        BindOutcome::Created
    );
    assert!(matches!(
        store
            .bind(Record::new(key_of("cluster-over"), &alice, TTL), 20)
            .await
            .unwrap(),
        BindOutcome::LimitReached { .. }
    ));
}

#[tokio::test]
async fn cluster_connect_errors_are_bounded_and_clear() {
    let err = RedisStore::connect_cluster(&[] as &[&str], RedisOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    assert!(err.to_string().contains("no Redis Cluster seed"), "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let options = RedisOptions::new().timeout(Duration::from_millis(800));
    let err = RedisStore::connect_cluster(&[format!("redis://127.0.0.1:{port}")], options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{err}");
}
