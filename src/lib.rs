//! Binds MCP Streamable HTTP sessions to the caller's `(iss, sub)`, so a stolen `Mcp-Session-Id`
//! is useless without a token for the same user.
//!
//! An MCP server on the Streamable HTTP transport hands each client a session id. Anyone who
//! learns it can drive the session unless the server checks who is calling: the MCP security
//! guidance says servers "SHOULD bind session IDs to user-specific information", with the user id
//! "derived from the user token and not provided by the client". Binding to a hash of the bearer
//! token is wrong: every OAuth refresh changes the token bytes and would kill the session. The
//! issuer and subject survive a refresh, and together identify a user (OIDC Core §5.7).
//!
//! [`SessionBindingLayer`] is a tower layer that
//!
//! - binds a session to the caller's [`Identity`] when the response that creates it (the
//!   `initialize` response, carrying a new `Mcp-Session-Id`) passes through, before it leaves the
//!   layer;
//! - checks the identity on every later request of that session: POSTs of any JSON-RPC message,
//!   GET streams, DELETE;
//! - refuses a caller who is not the owner with an MCP answer and ends the session;
//! - keeps bindings in a pluggable [`BindingStore`](store::BindingStore): in memory by default,
//!   Redis (feature `redis`) for several replicas.
//!
//! # Layer order
//!
//! ```text
//! client ──► auth layer: validates the bearer token on every request, puts the Identity in the
//!            request extensions
//!        ──► SessionBindingLayer: binds on initialize, checks every later request
//!        ──► MCP service (rmcp StreamableHttpService, or any tower Service speaking MCP)
//! ```
//!
//! The auth layer runs first (it is added *after* the binding layer with axum's `.layer`, or
//! *before* it in a `ServiceBuilder`). The binding identifies; it does not authenticate: the auth
//! layer must validate every request's token.
//!
//! For browser clients, [`origin::OriginLayer`] (403 for a foreign `Origin`, the MCP transport's
//! DNS-rebinding rule) goes in front of the auth layer, with tower-http's `CorsLayer` outermost.
//!
//! # Quick start
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use axum::{Router, middleware};
//! use mcp_session_binding::{Identity, SessionBindingLayer};
//!
//! // Your auth layer: validate the token, then insert the caller's Identity.
//! async fn auth(mut req: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
//!     // ... validate `Authorization: Bearer …` here ...
//!     let identity = Identity::new("https://issuer.example", "alice").unwrap();
//!     req.extensions_mut().insert(identity);
//!     next.run(req).await
//! }
//!
//! # async fn mcp() -> &'static str { "" }
//! let app: Router = Router::new()
//!     .route("/mcp", axum::routing::any(mcp)) // or .nest_service("/mcp", rmcp's StreamableHttpService)
//!     .layer(SessionBindingLayer::new())        // inner: runs second
//!     .layer(middleware::from_fn(auth));        // outer: runs first
//! # }
//! ```
//!
//! # Behaviour
//!
//! | request | answer |
//! | --- | --- |
//! | no `Mcp-Session-Id` | forwarded; a 2xx response with a new `Mcp-Session-Id` is bound (insert-if-absent) before it leaves the layer; no identity → 401 (or an anonymous session when [allowed](SessionBindingLayer::allow_anonymous)); an `Authorization` header but no identity (the auth layer runs after this one) → 500 `credentials_without_identity`, even with anonymous sessions allowed; id already bound or ended → 500; store error → 503; in each refusal the new inner session is ended |
//! | no `Mcp-Session-Id`, and the identity already holds its limit of live sessions ([100](SessionBindingLayer::max_sessions_per_identity); anonymous callers share a [separate budget](SessionBindingLayer::max_anonymous_sessions)) | 429 with `Retry-After` and a JSON-RPC error (`too_many_sessions`); the new inner session is ended |
//! | session id, caller is the owner | forwarded untouched: no body buffering, streams flow; an owner `DELETE` that succeeds tombstones the binding |
//! | session id, caller is not the owner (other `sub`, other `iss`, token on an anonymous session, none on a bound one), or the stored binding is corrupt | mismatch: the session is ended first (tombstone + `DELETE` to the inner service), then `tools/call` → 200 with an `isError` result and the request's `id`; other requests → a JSON-RPC error with their `id`; a batch → one answer per request (at most [64](SessionBindingLayer::max_batch_answers)); GET, DELETE, notifications, responses, unparseable bodies, larger batches or answers over [64 KiB](SessionBindingLayer::max_answer_bytes) → 403 without `id`; a body not received within [10 s](SessionBindingLayer::refused_body_timeout) → 408. [Configurable](MismatchAnswer): 404 like an unknown session, and/or keep the session |
//! | unknown, expired or ended session | 404; a `DELETE` of an ended session → 204, not forwarded (idempotent: client shutdown code works after a refused hijack; from anyone, a tombstone has no owner; 404 with [`MismatchAnswer::NotFound`], where 204 would reveal that a refused id had been live) |
//! | malformed session header (empty, a byte outside 0x21–0x7E, too long, repeated) | 400 |
//! | body over the cap, on the mismatch path | 413 |
//! | binding store error | 503 with `Retry-After`; not forwarded, session kept |
//! | an identity that is present but unusable (claim missing or not a string) | 401, nothing written |
//! | `MCP-Protocol-Version` 2026-07-28 or later (sessionless) | POST forwarded without `Mcp-Session-Id` and `Last-Event-ID`; GET and DELETE → 405 with `Allow: POST`, not forwarded (the revision has no GET stream, no `DELETE`, no resumption) |
//!
//! # Refusals are bounded, and cannot be cancelled
//!
//! Every refusal is a response (the inner error type is unchanged) carrying its
//! [`RejectionReason`] in the response extensions, and a `tracing` event with a stable reason
//! code. Its answer is at most [`max_answer_bytes`](SessionBindingLayer::max_answer_bytes)
//! (64 KiB) whatever the body; the refused body is read up to
//! [`max_body_bytes`](SessionBindingLayer::max_body_bytes) (4 MiB) and within
//! [`refused_body_timeout`](SessionBindingLayer::refused_body_timeout) (10 s). On a mismatch the
//! session is ended before the body is read, on a task of its own that no client can cancel; the
//! cleanup `DELETE` carries only the session id and the path and `Host` of
//! [configuration](SessionBindingLayer::end_session_uri) or of the last session created through
//! the layer (an [`end_request_hook`](SessionBindingLayer::end_request_hook) adds what an inner
//! service needs). An answer made before the body was read drains a small body or says
//! `Connection: close`. rmcp's event stores key events by id alone: to keep a resumption inside
//! its session, see [`SessionBindingLayer::bind_event_ids`].
//!
//! # Guides
//!
//! Guides sit in the `docs/` folder of the repository and of the published package, next to the
//! README: `docs/behaviour.md` (every answer, bounds, logs, configuration),
//! `docs/identity-providers.md` (custom auth layers, the JWT layer, OpenID providers),
//! `docs/deployment.md` (replicas, Redis, Cluster, TLS, the key secret, session limits, sizing),
//! `docs/sessionless.md` (MCP 2026-07-28: tasks and `requestState`), `docs/metrics.md` (every
//! metric, its labels and cardinality, Prometheus), `docs/performance.md`
//! (figures and how to measure them), `docs/browsers.md`, `docs/other-servers.md` (hyper, tonic,
//! a gateway) and `docs/examples.md`. `SECURITY.md` says what the layer protects against and what
//! it does not.
//!
//! # Features
//!
//! - `memory` (default): [`MemoryStore`](store::MemoryStore).
//! - `redis`: `store::RedisStore`, bindings shared by several replicas on one Redis (7.0+) or a
//!   Redis Cluster.
//! - `redis-tls` (implies `redis`): `rediss://` with a CA of your own (rustls).
//! - `jwt`: `jwt::JwtAuthLayer`, bearer JWT validation with issuer-bound keys.
//! - `oidc` (implies `jwt`): issuers trusted by URL, through OpenID Connect discovery and their
//!   JWK sets, refreshed and rotated (`JwtAuthLayerBuilder::issuer_discovery`); an HTTPS client
//!   (reqwest with rustls).
//! - `axum`: [`Identity`] as an axum extractor (and `Option<Identity>`), with
//!   `identity::MissingIdentity` (401) as its rejection; depends on `axum-core` only.
//! - `request-state`: `state::RequestStateLayer`, MRTR `requestState` sealed to the caller
//!   (XChaCha20-Poly1305).
//! - `metrics`: the layers' decisions by reason and the store calls, through the `metrics`
//!   crate facade (`metrics` module, `docs/metrics.md`); nothing is recorded until a recorder
//!   is installed.
#![cfg_attr(docsrs, feature(doc_cfg))]
// The docs link to items of optional features (`MemoryStore`, `JwtAuthLayer`); docs.rs and CI
// build them with every feature, where every link resolves. Without those features, the links
// are left as text rather than failing `cargo doc`.
#![cfg_attr(
    not(all(feature = "memory", feature = "jwt")),
    allow(rustdoc::broken_intra_doc_links)
)]

#[macro_use]
mod macros;

mod binding;
pub mod identity;
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub mod jwt;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
pub mod origin;
mod protocol;
mod ready;
#[cfg(feature = "request-state")]
#[cfg_attr(docsrs, doc(cfg(feature = "request-state")))]
pub mod state;
pub mod store;
pub mod task_params;

/// The README's Rust blocks, compiled as doc tests: its Quick start must build as written.
#[cfg(all(doctest, feature = "jwt", feature = "memory"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Not API: hooks for the crate's benchmarks (`benches/`), fuzz targets (`fuzz/`) and
/// `tests/fuzz_corpus.rs`. May change or vanish in any release.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "jwt")]
    pub use crate::jwt::fuzzing::{
        check_dpop_proof, parse_discovery, parse_introspection, parse_jwks,
    };
    pub use crate::protocol::envelope::classify_len;

    /// The stored-value codec of the stores, for its fuzz target.
    pub mod codec {
        pub use crate::store::codec::{
            CodecError, Stored, decode, decode_bytes, decode_bytes_with_time, encode_bound_at,
            encode_ended, encode_owner,
        };
    }

    /// The `Mcp-Session-Id` header as the layer reads it: `Ok(None)` when absent, `Ok(Some(id))`
    /// when accepted, `Err(why)` when malformed.
    pub fn session_header(
        headers: &http::HeaderMap,
        max_len: usize,
    ) -> Result<Option<&str>, &'static str> {
        use crate::protocol::headers::{MCP_SESSION_ID, SessionHeader, as_str, session_header};
        // The one pass over the headers the layer makes, and the lookup: the same answer.
        let (_, values) = crate::protocol::route::request_headers(headers);
        let read = session_header(values.sessions.into_iter().flatten(), max_len);
        let looked_up = session_header(headers.get_all(MCP_SESSION_ID).iter(), max_len);
        assert_eq!(read, looked_up, "the one pass and the lookup disagree");
        match read {
            SessionHeader::Absent => Ok(None),
            SessionHeader::Present(value) => Ok(Some(as_str(value))),
            SessionHeader::Malformed(why) => Err(why),
        }
    }

    /// The answer scanner over an SSE body arriving as `frames`, passing every event: what it
    /// passed on, and the data of each event it handed its inspector.
    pub fn sse_scan(frames: &[&[u8]]) -> (Vec<u8>, Vec<Vec<u8>>) {
        crate::protocol::scan::events_of(frames)
    }

    /// Whether the scanners' pre-filter lets JSON text `bytes` through to be parsed for `name`
    /// (searched for by its byte at `anchor`, as the scanners search for their names).
    pub fn may_name(bytes: &[u8], name: &'static str, anchor: usize) -> bool {
        let name = crate::protocol::scan::Name::new(name.as_bytes(), anchor);
        crate::protocol::scan::may_name(bytes, &name)
    }

    /// Whether the layer treats the request as sessionless (`MCP-Protocol-Version`).
    pub fn is_sessionless(headers: &http::HeaderMap) -> bool {
        crate::protocol::headers::is_sessionless(headers)
    }

    /// One message as the body classifier sees it.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Message<'a> {
        /// A request, with its `id` as JSON text.
        Request {
            /// The `id`, as it appears in the body.
            id: &'a str,
            /// `method` is `tools/call`.
            tool_call: bool,
        },
        /// A notification or a response.
        NoAnswer,
        /// Not a JSON-RPC message.
        Invalid,
    }

    /// The body classifier: `None` for a body answered with one error without `id` (not JSON-RPC,
    /// or a batch that cannot be answered entry by entry), `Some((false, [m]))` for one message,
    /// `Some((true, requests))` for a batch (its requests only, at most `max_batch`).
    pub fn classify(body: &[u8], max_batch: usize) -> Option<(bool, Vec<Message<'_>>)> {
        use crate::protocol::envelope::{self as classify, Classified};
        let message = |m| match m {
            classify::Message::Request { id, tool_call } => Message::Request { id, tool_call },
            classify::Message::NoAnswer => Message::NoAnswer,
            classify::Message::Invalid => Message::Invalid,
        };
        match classify::classify(body, max_batch) {
            Classified::Invalid => None,
            Classified::Single(m) => Some((false, vec![message(m)])),
            Classified::Batch(ms) => Some((true, ms.into_iter().map(message).collect())),
        }
    }
}

pub use binding::{
    MismatchAnswer, RejectionReason, ResponseFuture, SessionBinding, SessionBindingLayer,
};
pub use identity::{Identity, IdentityExtractor};
pub use protocol::body::ResponseBody;
