//! Bearer-token authentication with JWT access tokens (feature `jwt`).
//!
//! [`JwtAuthLayer`] validates the `Authorization: Bearer` token of **every** request (MCP:
//! "authorization MUST be included in every HTTP request") and, on success, puts the caller's
//! [`Identity`](crate::Identity) and the token's [`Claims`](crate::identity::Claims) in the
//! request extensions. Stack it outside [`SessionBindingLayer`](crate::SessionBindingLayer),
//! which reads that `Identity` by default: no glue code.
//!
//! ```text
//! client ──► JwtAuthLayer ──► SessionBindingLayer ──► MCP service (rmcp, ...)
//! ```
//!
//! # What is checked
//!
//! In this order; the first failure decides the [`JwtRejection`]:
//!
//! 1. The token comes from a single `Authorization: Bearer` header, and nowhere else: never the
//!    query string (MCP forbids it) nor the body.
//! 2. A signed JWT (JWS compact form): three base64url parts, a JSON header, no `crit`.
//! 3. `alg` is in the allowlist. `none` is always refused (it cannot even be allowed).
//! 4. Optionally `typ` is `at+jwt` or `application/at+jwt` (RFC 9068 §4).
//! 5. `iss` (read before the signature is checked) names a trusted issuer, exactly, and only
//!    **that issuer's** keys are tried: a key never verifies a token that claims another
//!    issuer. A `kid` in the header picks the key (see [`JwtKeys`]). Keys embedded in or
//!    pointed to by the token (`jwk`, `jku`, `x5u`, `x5c`) are never used. For an issuer trusted
//!    through discovery (feature `oidc`), an unknown `kid` refetches its JWK set (rate limited,
//!    single flight), and keys older than the staleness bound need a successful refresh.
//! 6. `exp` is required and in the future, `nbf` (if present) in the past, both with a
//!    configurable leeway; `aud` contains one of this server's audiences (required, RFC 8707).
//! 7. `iss` and `sub` are strings that make a valid [`Identity`](crate::Identity).
//! 8. Optionally, the required scopes ([`JwtAuthLayerBuilder::required_scopes`]): all granted
//!    by `scope` or `scp`, or 403 `insufficient_scope`.
//! 9. Optionally, a [`RevocationCheck`] by `jti`. A revoked token gets 401. A check that errors
//!    or times out gets **503 with `Retry-After`**: the token is never admitted on a failed
//!    check (fail closed).
//! 10. For an issuer with DPoP (RFC 9449, [`JwtAuthLayerBuilder::dpop`]): the `DPoP` proof of an
//!     `Authorization: DPoP` request, bound to the token by `cnf.jkt`, never replayed; the
//!     downgrades to `Bearer` are refused. The key's thumbprint is
//!     [`Identity::jkt`](crate::Identity::jkt). Checked after the scopes, before the revocation
//!     check. See `docs/dpop.md`.
//!
//! With the feature `oidc`, an issuer can instead be trusted through RFC 7662 token
//! introspection ([`JwtAuthLayerBuilder::issuer_introspection`], [`Introspection`]): its tokens
//! (opaque or JWT) are judged by its introspection endpoint's answer, cached by a keyed hash
//! of the token; steps 6 to 9 then apply to the answer's members.
//!
//! # Failures
//!
//! Every rejection is a response, never an error of the service; the inner service is not
//! called. The body is a JSON-RPC error without `id`
//! (`{"jsonrpc":"2.0","error":{"code":-32000,"message":"Unauthorized: …"}}`, the same shape and
//! code as the binding layer's "not authorized") that says what failed and never echoes the
//! token. The [`JwtRejection`] is in the response extensions. An answer made before the request
//! body was read drains a small body (64 KiB within 1 s) or, on HTTP/1.1, says
//! `Connection: close`, so a pooled client never reuses a connection the server will close.
//!
//! | situation | status | `WWW-Authenticate` |
//! | --- | --- | --- |
//! | no token (no header, another scheme, token only in the query string) | 401 | `Bearer resource_metadata="…"` |
//! | malformed header (repeated, empty token, not RFC 6750 `b64token`) | 400 | `Bearer error="invalid_request", …` |
//! | any invalid token (expired, bad signature, wrong audience, revoked, …) | 401 | `Bearer error="invalid_token", error_description="…", resource_metadata="…"` |
//! | a required scope is missing | 403 | `Bearer error="insufficient_scope", error_description="…", scope="…", resource_metadata="…"` |
//! | revocation check failed or timed out; issuer's keys unavailable beyond the staleness bound; introspection endpoint failed, slow or oversized | 503, `Retry-After` | none |
//!
//! RFC 6750 §3.1 decides the split: `error=` only when a token was presented, and
//! `invalid_request` with 400 for a request that is itself malformed. A client that sent two
//! `Authorization` headers or `Bearer ` with nothing after it has a bug that re-authorizing
//! would not fix. `resource_metadata` (RFC 9728 §5.1) is how MCP clients discover the
//! authorization server: set it with [`JwtAuthLayerBuilder::protected_resource`], and serve
//! the same [`ProtectedResourceMetadata`] document beside the endpoint.
//!
//! # Logging
//!
//! `tracing` events carry a stable reason code ([`JwtRejection::code`]) at `debug` (rejections)
//! and `warn` (revocation check failures, unavailable keys). With discovery, `info` says which
//! issuer's key ids are loaded and when they change, and `error` names every fetch that failed
//! and why. The token is never logged.
//!
//! # Crypto backend
//!
//! The feature enables `jsonwebtoken`'s `rust_crypto` backend. If something else in your
//! dependency graph also enables its `aws_lc_rs` backend, `jsonwebtoken` cannot choose and
//! panics on first use unless you install a provider with
//! `jsonwebtoken::crypto::CryptoProvider::install_default` at start-up.
//!
//! # Example
//!
//! An axum server: the MCP endpoint behind the layer, the metadata document beside it.
//!
//! ```
//! use axum::{Extension, Router, routing::post};
//! use mcp_session_binding::{
//!     Identity,
//!     jwt::{Algorithm, JwtAuthLayer, JwtKey, ProtectedResourceMetadata},
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let metadata = ProtectedResourceMetadata::new(
//!     "https://mcp.example.com/mcp",
//!     ["https://auth.example.com"],
//! );
//! let auth = JwtAuthLayer::builder()
//!     // Each issuer with its own keys; with the `oidc` feature,
//!     // `.issuer_discovery("https://auth.example.com")` fetches and rotates them instead.
//!     .issuer_keys(
//!         "https://auth.example.com",
//!         mcp_session_binding::jwt::JwtKeys::from_jwk_set_json(
//!             r#"{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#,
//!         )?,
//!     )
//!     .algorithms([Algorithm::HS256])
//!     .protected_resource(&metadata) // audience and resource_metadata
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route(
//!         "/mcp",
//!         post(|Extension(who): Extension<Identity>| async move { format!("hello {}", who.sub()) }),
//!     )
//!     .layer(auth)
//!     .route_service(&metadata.well_known_path(), metadata.clone());
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod admit;
mod algorithm;
mod config;
mod dpop;
mod error;
mod future;
#[cfg(feature = "oidc")]
mod introspect;
mod introspected;
mod jwks;
mod keys;
mod layer;
mod metadata;
mod reject;
#[cfg(feature = "oidc")]
mod remote;
mod revocation;
mod service;
mod validate;

pub use algorithm::Algorithm;
pub(crate) use algorithm::KeyFamily;
pub use dpop::{DpopError, DpopPolicy};
pub use error::JwtConfigError;
pub use future::ResponseFuture;
#[cfg(feature = "oidc")]
pub use introspect::Introspection;
#[cfg(feature = "oidc")]
pub use jwks::IssuerKeysError;
#[cfg(feature = "oidc")]
pub(crate) use jwks::KeySourceError;
pub use keys::{JwtKey, JwtKeys};
pub use layer::{JwtAuthLayer, JwtAuthLayerBuilder};
pub use metadata::ProtectedResourceMetadata;
pub use reject::JwtRejection;
pub use revocation::RevocationCheck;
pub use service::JwtAuth;

/// Not API: the parsers of published documents, for the fuzz targets.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses a published JWK set; the number of usable keys.
    ///
    /// # Errors
    ///
    /// Why the set is refused.
    pub fn parse_jwks(bytes: &[u8]) -> Result<usize, String> {
        super::jwks::parse_jwks(bytes)
            .map(|keys| keys.len())
            .map_err(|e| e.to_string())
    }

    /// Parses a discovery document for `expected_issuer`; its `jwks_uri`.
    ///
    /// # Errors
    ///
    /// Why the document is refused.
    pub fn parse_discovery(bytes: &[u8], expected_issuer: &str) -> Result<String, String> {
        super::jwks::parse_discovery(bytes, expected_issuer)
            .map(|d| d.jwks_uri)
            .map_err(|e| e.to_string())
    }

    /// Parses and judges an introspection answer; the subject, or the rejection's code.
    ///
    /// # Errors
    ///
    /// The code of the rejection.
    pub fn parse_introspection(bytes: &[u8]) -> Result<String, String> {
        super::introspected::fuzz_answer(bytes)
    }

    /// Checks a DPoP proof for `POST https://mcp.example/mcp` with `token` at `now`, any
    /// asymmetric algorithm allowed; the key's thumbprint.
    ///
    /// # Errors
    ///
    /// Why the proof is refused.
    pub fn check_dpop_proof(
        proof: &[u8],
        token: &str,
        now: u64,
    ) -> Result<String, super::DpopError> {
        super::dpop::fuzz_check_proof(proof, token, now)
    }
}
