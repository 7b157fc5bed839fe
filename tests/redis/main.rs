//! Redis: `RedisStore` on one server, on a cluster and over TLS, and two replicas sharing one
//! Redis. One test binary; each module is compiled with the features it needs.

#[path = "../support/mod.rs"]
mod support;

#[cfg(feature = "jwt")]
mod dpop_replay;
#[cfg(feature = "oidc")]
mod introspection_cache;
#[cfg(all(feature = "oidc", feature = "memory"))]
mod multi_replica;
mod redis_cluster;
mod redis_store;
#[cfg(all(
    feature = "redis-tls",
    feature = "jwt",
    feature = "oidc",
    feature = "memory"
))]
mod redis_tls;
#[cfg(feature = "memory")]
mod revocation;
#[cfg(feature = "memory")]
mod rotation;
