//! The binding layer itself: session binding and refusals, limits, streams and event ids, the
//! hyper and `poll_ready` paths, logging, identity errors, the `Identity` extractor, the DELETE
//! that ends a session, task parameters and sessionless requests. One test binary; each module
//! is compiled with the features it needs (`cargo test` with the default features runs the
//! memory-only ones).

#[path = "../support/mod.rs"]
mod support;

mod ended_session_delete;
mod event_ids;
#[cfg(feature = "axum")]
mod handler_identity;
mod hyper_server;
mod identity_errors;
mod lifecycle;
mod logging;
mod poll_ready;
mod refusal_path;
mod session_binding;
#[cfg(feature = "redis")]
mod session_limits;
#[cfg(all(feature = "redis", feature = "request-state"))]
mod sessionless;
mod stream_end;
#[cfg(feature = "redis")]
mod task_params;
