//! The JWT layer: token checks, several issuers, the JWT layer in front of the binding layer,
//! JWKS sources, and a real OpenID provider. One test binary; each module is compiled with the
//! features it needs.

#[path = "../support/mod.rs"]
mod support;

#[cfg(all(feature = "oidc", feature = "redis", feature = "memory"))]
mod dpop_e2e;
#[cfg(all(feature = "oidc", feature = "redis", feature = "memory"))]
mod introspection;
#[cfg(all(feature = "oidc", feature = "redis", feature = "memory"))]
mod jwks_source;
mod jwt_auth;
#[cfg(all(feature = "oidc", feature = "memory"))]
mod jwt_binding;
mod jwt_issuers;
#[cfg(all(feature = "oidc", feature = "redis", feature = "memory"))]
mod oidc_provider;
